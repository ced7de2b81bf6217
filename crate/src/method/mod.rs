//! Self-supervised pretraining methods behind one interface, and the
//! step-budgeted [`Pretrainer`] that runs them, checkpoints them and resumes
//! them exactly.
//!
//! Each method (one file per method) turns a batch of unlabelled images into
//! a loss: a pretext task ([`rotation`](MethodName::Rotation),
//! [`jigsaw`](MethodName::Jigsaw), [`mae`](MethodName::Mae), …) or a joint
//! embedding objective ([`simclr`](MethodName::SimClr),
//! [`moco`](MethodName::Moco), [`byol`](MethodName::Byol), …). The
//! [`Pretrainer`] owns the parameters, the optimiser and the schedule; one
//! seed drives initialisation, data order and augmentation.
//!
//! ```no_run
//! use sslab::method::{MethodName, PretrainConfig, Pretrainer};
//! let (train, _test) = sslab::data::load_images("shapes", 2000, 0)?;
//! let cfg = PretrainConfig::for_method(MethodName::SimClr);
//! let mut run = Pretrainer::new(cfg, train.image_shape()?, &candle_core::Device::Cpu)?;
//! run.train_for(50, &train)?;        // 50 steps …
//! run.train_for(50, &train)?;        // … and 50 more, continuing the same schedule
//! run.save("runs/simclr")?;
//! let again = Pretrainer::load("runs/simclr", &candle_core::Device::Cpu)?;
//! assert_eq!(again.step(), 100);
//! # Ok::<(), candle_core::Error>(())
//! ```

pub mod barlow;
pub mod byol;
pub mod colorization;
mod config;
pub mod context;
pub mod dino;
mod encoder;
pub mod jigsaw;
pub mod mae;
pub mod moco;
mod options;
mod pretrainer;
pub mod rotation;
pub mod simclr;
pub mod simsiam;
pub mod vicreg;

pub use config::{AugmentPreset, AugmentStep, MethodName, PretrainConfig};
pub use encoder::{Encoder, EncoderConfig};
pub use pretrainer::Pretrainer;
pub use options::{BarlowOptions, ContextOptions, DinoOptions, JigsawOptions, MaeOptions, VicRegOptions};

use crate::nn::{EmaTeacher, Params};
use crate::rng::SeededRng;
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;

/// The collapse diagnostics of one view's projections in the training step
/// (batch statistics, as in SimSiam's figure 2): the per-dimension std of the
/// normalised embeddings and their effective rank. BYOL and SimSiam record
/// them as [`Method::parts`].
pub(crate) fn collapse_parts(z: &Tensor) -> Result<Vec<(&'static str, f64)>> {
    let z = z.detach();
    Ok(vec![("embedding std", crate::metrics::embedding_std(&z)?), ("effective rank", crate::metrics::effective_rank(&z)?)])
}

/// What one training step produced.
pub struct StepOutput {
    /// The scalar loss to minimise.
    pub loss: Tensor,
    /// A number to log next to the loss (pretext accuracy, positive-pair similarity, …).
    pub metric: f64,
}

/// A pretraining method: a loss on unlabelled images plus any state outside
/// the optimiser (EMA teachers, queues, centres).
pub trait Method {
    /// The name of the logged metric.
    fn metric_name(&self) -> &'static str;

    /// The loss of one step on `images (B, C, H, W)`, drawing augmentations from `rng`.
    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput>;

    /// The named parts of the last step's loss, if the method reports them
    /// (VICReg: its three weighted terms); recorded in the history.
    fn parts(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Called after each optimiser step `k` (from 0) of `total`.
    fn after_step(&mut self, _k: usize, _total: usize) -> Result<()> {
        Ok(())
    }

    /// The backbone being pretrained (parameters under `enc.`).
    fn encoder(&self) -> &Encoder;

    /// The encoder's representation of `images`: `train = false` for
    /// evaluation (frozen statistics), `true` while fine-tuning. Gradients
    /// flow to the encoder's parameters (names starting with `enc.`).
    fn encode(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        candle_core::ModuleT::forward_t(self.encoder(), images, train)
    }

    /// The width of [`Method::encode`].
    fn feature_dim(&self) -> usize {
        self.encoder().feature_dim()
    }

    /// State to checkpoint besides the trainable parameters.
    fn state(&self) -> HashMap<String, Tensor> {
        HashMap::new()
    }

    /// Restores [`Method::state`].
    fn load_state(&mut self, _state: &HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }

    /// The embedding the loss compares (SimCLR's projection `z = g(f(x))`),
    /// in evaluation mode; `None` for methods without one.
    fn embed(&self, _images: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }

    /// For methods whose pretext output is an image (MAE, colourisation):
    /// what the model sees, what it predicts and the target, as images.
    /// `None` for the others.
    fn pretext_images(&self, _images: &Tensor, _rng: &mut SeededRng) -> Result<Option<PretextImages>> {
        Ok(None)
    }
}

/// A generative pretext task at work, as three image batches of the same
/// shape `(B, C, H, W)`, values in `[0, 1]`: show them as rows of an image grid.
#[derive(Clone, Debug)]
pub struct PretextImages {
    /// What the model is given (e.g. the visible patches, the gray image).
    pub input: Tensor,
    /// What it predicts (MAE: the reconstruction with the visible patches pasted back, as in the paper's figures).
    pub output: Tensor,
    /// The original images.
    pub target: Tensor,
}

impl PretextImages {
    /// Input, output and target rows stacked into one batch `(3B, C, H, W)`
    /// (for [`crate::plot::ImageGrid`] with `B` columns).
    pub fn stacked(&self) -> Result<Tensor> {
        Tensor::cat(&[&self.input, &self.output, &self.target], 0)?.clamp(0f32, 1f32)
    }
}

/// Two independently augmented views of every image, stacked `(2B, C, H, W)`:
/// all first views, then all second views, so that one forward pass sees both
/// (batch-norm statistics over 2B, as in lightly's examples).
pub(crate) fn stacked_views(augment: &crate::augment::Compose, images: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
    use crate::augment::Transform;
    Tensor::cat(&[augment.apply(images, rng)?, augment.apply(images, rng)?], 0)
}

/// `f` on each view of a `(2B, …)` stack separately, concatenated: every
/// batch norm inside `f` normalises one view's batch, as the reference code
/// of BYOL, SimSiam, Barlow Twins and VICReg does (`z1 = f(x1); z2 = f(x2)`,
/// also lightly's examples). SimCLR's reference normalises both views
/// together, which is what calling `f` on the stack does.
pub(crate) fn per_view(views: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let (a, b) = split_views(views)?;
    Tensor::cat(&[f(&a)?, f(&b)?], 0)
}

/// `f` on `x (N, …)` cut into `splits` sub-batches of (nearly) equal size,
/// at least 2 rows each, so that batch norm inside `f` uses each sub-batch's
/// own statistics (as on `splits` devices). With `order`, the sub-batches
/// take the rows in that order and the result comes back in the original
/// one: MoCo's shuffling batch norm.
pub(crate) fn split_forward(x: &Tensor, splits: usize, order: Option<&[usize]>, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let n = x.dim(0)?;
    let splits = splits.clamp(1, (n / 2).max(1));
    let index = |ids: Vec<u32>| Tensor::from_vec(ids, n, x.device());
    let xs = match order {
        Some(o) => x.index_select(&index(o.iter().map(|&i| i as u32).collect())?, 0)?,
        None => x.clone(),
    };
    let mut outs = Vec::with_capacity(splits);
    let mut start = 0;
    for i in 0..splits {
        let len = n / splits + usize::from(i < n % splits);
        outs.push(f(&xs.narrow(0, start, len)?)?);
        start += len;
    }
    let y = Tensor::cat(&outs, 0)?;
    match order {
        Some(o) => {
            let mut inverse = vec![0u32; n];
            for (pos, &i) in o.iter().enumerate() {
                inverse[i] = pos as u32;
            }
            y.index_select(&index(inverse)?, 0)
        }
        None => Ok(y),
    }
}

/// Splits a `(2B, …)` result of [`stacked_views`] into the two views' halves.
pub(crate) fn split_views(z: &Tensor) -> Result<(Tensor, Tensor)> {
    let b = z.dim(0)? / 2;
    Ok((z.narrow(0, 0, b)?, z.narrow(0, b, b)?))
}

/// Builds `cfg.method` with its parameters in `params` for images of `shape = (C, H, W)`.
///
/// Methods with a momentum teacher (MoCo, BYOL, DINO) keep a handle on
/// `params` to average them into the teacher after each step; the others only
/// build their layers from `params.builder(dev)`.
pub fn build_method(cfg: &PretrainConfig, shape: (usize, usize, usize), params: &Params, dev: &Device) -> Result<Box<dyn Method>> {
    let vb = params.builder(dev);
    Ok(match cfg.method {
        MethodName::Rotation => Box::new(rotation::Rotation::new(cfg, shape, vb)?),
        MethodName::SimClr => Box::new(simclr::SimClr::new(cfg, shape, vb)?),
        MethodName::Moco => Box::new(moco::Moco::new(cfg, shape, params, dev)?),
        MethodName::Byol => Box::new(byol::Byol::new(cfg, shape, params, dev)?),
        MethodName::SimSiam => Box::new(simsiam::SimSiam::new(cfg, shape, vb)?),
        MethodName::Barlow => Box::new(barlow::Barlow::new(cfg, shape, vb)?),
        MethodName::VicReg => Box::new(vicreg::VicReg::new(cfg, shape, vb)?),
        MethodName::Dino => Box::new(dino::Dino::new(cfg, shape, params, dev)?),
        MethodName::Mae => Box::new(mae::Mae::new(cfg, shape, vb)?),
        MethodName::Jigsaw => Box::new(jigsaw::Jigsaw::new(cfg, shape, vb)?),
        MethodName::Colorization => Box::new(colorization::Colorization::new(cfg, shape, vb)?),
        MethodName::Context => Box::new(context::Context::new(cfg, shape, vb)?),
    })
}

/// The checkpoint entries `teacher.{name}` of an EMA teacher.
fn teacher_state(teacher: &EmaTeacher) -> HashMap<String, Tensor> {
    teacher.named_tensors().into_iter().map(|(n, t)| (format!("teacher.{n}"), t)).collect()
}

/// Writes the entries of [`teacher_state`] back into `teacher`'s tensors, in
/// place (so the teacher models built from it see them).
fn load_teacher_state(teacher: &EmaTeacher, state: &HashMap<String, Tensor>) -> Result<()> {
    for (name, t) in teacher.named_tensors() {
        let key = format!("teacher.{name}");
        let Some(saved) = state.get(&key) else {
            candle_core::bail!("method state: {key} missing from the checkpoint");
        };
        if saved.dims() != t.dims() {
            candle_core::bail!("method state: {key} has shape {:?}, the teacher needs {:?}", saved.dims(), t.dims());
        }
        let new = saved.to_dtype(t.dtype())?.to_device(t.device())?.contiguous()?;
        t.flatten_all()?.slice_set(&new.flatten_all()?, 0, 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-block ViT 16 wide for 28×28 images (patches of 7).
    pub(super) fn tiny_vit() -> EncoderConfig {
        EncoderConfig::Vit(crate::nn::VitConfig {
            image_size: 28,
            patch_size: 7,
            in_channels: 1,
            dim: 16,
            depth: 1,
            heads: 2,
            mlp_ratio: 2.0,
            cls_token: true,
        })
    }

    /// A tiny configuration of `method` for tests (a 2-layer CNN, or a
    /// 1-block ViT for MAE; batch 8; 6 planned steps; a 64-key MoCo queue).
    pub(super) fn tiny(method: MethodName) -> PretrainConfig {
        let mut cfg = PretrainConfig::for_method(method);
        cfg.encoder = match method {
            MethodName::Mae => tiny_vit(),
            _ => EncoderConfig::Cnn(crate::nn::CnnConfig { in_channels: 1, widths: vec![4, 8], batch_norm: false }),
        };
        cfg.batch_size = 8;
        cfg.steps = 6;
        cfg.warmup_steps = 2;
        if PretrainConfig::users("head_out").contains(&method.as_str()) {
            cfg.head_hidden = 16;
            cfg.head_out = 8;
        }
        match method {
            MethodName::Moco => cfg.queue_size = 64,
            MethodName::Dino => cfg.dino.prototypes = 32,
            _ => {}
        }
        cfg
    }

    #[test]
    fn a_run_shows_the_encoder_it_built_for_its_images() {
        // the configured encoder says 1 input channel; colour images make it 3, in the
        // settings the run reports (printed and saved in checkpoints) as in the model
        for method in [MethodName::SimClr, MethodName::Mae] {
            let cfg = tiny(method);
            let run = Pretrainer::new(cfg.clone(), (3, 28, 28), &Device::Cpu).unwrap();
            assert_eq!(run.config().encoder, cfg.encoder.with_in_channels(3), "{method}");
            assert!(run.config().to_string().contains("in_channels: 3"), "{}", run.config());
            let x = Tensor::zeros((2, 3, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap();
            assert_eq!(run.features(&x).unwrap().dim(0).unwrap(), 2);
        }
    }

    /// Trains `tiny(method)` (with `steps` planned steps and any changes by
    /// `edit`) for `steps` steps on 64 shapes; returns the run.
    pub(super) fn train_tiny(method: MethodName, steps: usize, edit: impl FnOnce(&mut PretrainConfig)) -> Pretrainer {
        let data = crate::data::shapes(64, 0).unwrap();
        let mut cfg = tiny(method);
        cfg.steps = steps;
        edit(&mut cfg);
        let mut run = Pretrainer::new(cfg, (1, 28, 28), &Device::Cpu).unwrap();
        run.train_for(steps, &data).unwrap();
        run
    }

    /// A ViT's [CLS] attention over the patches, one row per image, averaged
    /// over heads: positive weights that, with the [CLS] column left out,
    /// sum to less than 1; a CNN run says it has no attention.
    #[test]
    fn cls_attention_is_one_row_of_patch_weights_per_image() {
        let run = train_tiny(MethodName::Dino, 2, |c| c.encoder = tiny_vit());
        let x = crate::data::shapes(3, 1).unwrap().images;
        let a = run.cls_attention(&x).unwrap();
        assert_eq!(a.dims(), &[3, 16]); // 28/7 = 4 × 4 patches
        for row in a.to_vec2::<f32>().unwrap() {
            let sum: f32 = row.iter().sum();
            assert!(row.iter().all(|&w| w > 0.0) && sum > 0.0 && sum < 1.0, "{row:?}");
        }
        let cnn = train_tiny(MethodName::Dino, 2, |_| {});
        assert!(cnn.cls_attention(&x).unwrap_err().to_string().contains("needs a ViT encoder, this dino run has the small CNN"));
    }

    /// SimCLR's embeddings are its projections `head_out` wide, the same in
    /// any batching; a method without a projection says so.
    #[test]
    fn embeddings_are_projections_or_a_named_error() {
        let run = train_tiny(MethodName::SimClr, 2, |_| {});
        let x = crate::data::shapes(300, 1).unwrap().images;
        let z = run.embeddings(&x).unwrap();
        assert_eq!(z.dims(), &[300, 8]);
        let z_part = run.embeddings(&x.narrow(0, 260, 40).unwrap()).unwrap();
        let d: f32 = (z.narrow(0, 260, 40).unwrap() - z_part).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-5, "{d}");
        let rot = train_tiny(MethodName::Rotation, 2, |_| {});
        let err = rot.embeddings(&x).unwrap_err().to_string();
        assert!(err.contains("rotation has no embedding"), "{err}");
    }

    /// Mean of the first and of the last `k` losses (after checking all are finite).
    pub(super) fn first_last(run: &Pretrainer, k: usize) -> (f64, f64) {
        let l = &run.history().loss;
        assert!(l.iter().all(|v| v.is_finite()), "non-finite loss in {l:?}");
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        (mean(&l[..k]), mean(&l[l.len() - k..]))
    }

    /// `embedding_std` of the run's features on 64 shapes.
    pub(super) fn feature_std(run: &Pretrainer) -> f64 {
        let data = crate::data::shapes(64, 1).unwrap();
        crate::metrics::embedding_std(&run.features(&data.images).unwrap()).unwrap()
    }

    /// `feature_std` after training divided by `feature_std` of the same run
    /// before training (the tiny CNN has no batch norm, so its initial
    /// features are already nearly parallel: a collapse shows as a ratio → 0).
    pub(super) fn feature_std_ratio(run: &Pretrainer) -> f64 {
        let fresh = Pretrainer::new(run.config().clone(), (1, 28, 28), &Device::Cpu).unwrap();
        let (after, before) = (feature_std(run), feature_std(&fresh));
        assert!(before > 0.0 && after.is_finite());
        after / before
    }

    #[test]
    fn the_collapse_ablations_are_for_byol_and_simsiam_only() {
        let mut cfg = PretrainConfig::for_method(MethodName::SimClr);
        cfg.stop_gradient = false;
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains("stop_gradient") && err.contains("simclr"), "{err}");
        for m in [MethodName::Byol, MethodName::SimSiam] {
            let mut cfg = PretrainConfig::for_method(m);
            (cfg.predictor, cfg.stop_gradient) = (false, false);
            cfg.check().unwrap();
        }
        // old checkpoints have neither field: both default to on
        let mut v = serde_json::to_value(PretrainConfig::for_method(MethodName::Byol)).unwrap();
        v.as_object_mut().unwrap().retain(|k, _| k != "predictor" && k != "stop_gradient");
        let back: PretrainConfig = serde_json::from_value(v).unwrap();
        assert!(back.predictor && back.stop_gradient);
    }

    #[test]
    fn the_dino_ablations_are_for_dino_only_and_checked() {
        let mut cfg = PretrainConfig::for_method(MethodName::SimClr);
        cfg.dino.centering = false;
        assert!(cfg.check().unwrap_err().to_string().contains("dino does not apply to simclr (it is used by dino)"));
        let mut cfg = PretrainConfig::for_method(MethodName::Dino);
        (cfg.dino.centering, cfg.dino.teacher_temperature) = (false, 0.1);
        cfg.check().unwrap();
        cfg.dino.teacher_temperature = 0.0;
        assert!(cfg.check().unwrap_err().to_string().contains("dino.teacher_temperature"));
    }

    /// A setting that the method would ignore is an error naming it and the
    /// methods that use it; every method's own options are range-checked.
    #[test]
    fn settings_a_method_does_not_use_are_errors_naming_them() {
        let err = |f: fn(&mut PretrainConfig), m: MethodName| {
            let mut cfg = PretrainConfig::for_method(m);
            f(&mut cfg);
            cfg.check().err().map(|e| e.to_string().lines().next().unwrap_or_default().to_string()).unwrap_or_default()
        };
        assert_eq!(err(|c| c.temperature = 0.5, MethodName::Dino), "temperature does not apply to dino (it is used by simclr, moco)");
        assert!(err(|c| c.temperature = 0.5, MethodName::SimClr).is_empty());
        assert!(err(|c| c.queue_size = 10, MethodName::SimClr).starts_with("queue_size does not apply to simclr"));
        assert!(err(|c| c.head_out = 10, MethodName::Rotation).starts_with("head_out does not apply to rotation"));
        assert!(err(|c| c.barlow.lambda = 0.1, MethodName::VicReg).starts_with("barlow does not apply to vicreg"));
        assert!(err(|c| c.vicreg.variance = 1.0, MethodName::Barlow).starts_with("vicreg does not apply"));
        assert!(err(|c| c.mae.mask_ratio = 0.5, MethodName::SimClr).starts_with("mae does not apply"));
        assert!(err(|c| c.augment_without = vec![AugmentStep::Crop], MethodName::Dino).starts_with("augment_without does not apply to dino"));
        assert!(err(|c| c.mae.mask_ratio = 1.0, MethodName::Mae).contains("mae.mask_ratio"));
        assert!(err(|c| c.vicreg.covariance = -1.0, MethodName::VicReg).contains("vicreg.covariance"));
        assert!(err(|c| c.dino.global_crops = 0, MethodName::Dino).contains("global crop"));
        assert!(err(|c| c.jigsaw.grid = 1, MethodName::Jigsaw).contains("grid"));
        assert!(err(|c| c.final_lr_fraction = 2.0, MethodName::SimClr).contains("final_lr_fraction"));
        // the printout lists what the method uses, and only that
        let text = PretrainConfig::for_method(MethodName::Dino).to_string();
        assert!(text.contains("teacher_temperature: 0.04") && text.contains("prototypes: 256") && text.contains("final_lr_fraction = 0.05"), "{text}");
        assert!(!text.contains("temperature = ") && !text.contains("vicreg") && !text.contains("queue_size"), "{text}");
        let text = PretrainConfig::for_method(MethodName::Rotation).to_string();
        assert!(!text.contains("head_out") && text.contains("steps = 200"), "{text}");
    }

    /// Each option reaches the method: a changed λ, weight or ratio changes
    /// the loss of the same step; DINO's teacher temperature follows its warm-up.
    #[test]
    fn method_options_change_the_training_step() {
        let x = crate::data::shapes(8, 0).unwrap().images;
        let first_loss = |cfg: &PretrainConfig| {
            let params = Params::new(0);
            let mut m = build_method(cfg, (1, 28, 28), &params, &Device::Cpu).unwrap();
            m.loss(&x, &mut SeededRng::new(1)).unwrap().loss.to_scalar::<f32>().unwrap()
        };
        let changed: [(MethodName, fn(&mut PretrainConfig)); 6] = [
            (MethodName::Barlow, |c| c.barlow.lambda = 0.5),
            (MethodName::VicReg, |c| c.vicreg.covariance = 10.0),
            (MethodName::Mae, |c| c.mae.mask_ratio = 0.5),
            (MethodName::Dino, |c| c.dino.student_temperature = 0.3),
            (MethodName::Jigsaw, |c| c.jigsaw.permutations = 10),
            (MethodName::Context, |c| c.context.gap = 1),
        ];
        for (m, f) in changed {
            let base = tests::tiny(m);
            let mut other = base.clone();
            f(&mut other);
            other.check().unwrap();
            assert_ne!(first_loss(&base), first_loss(&other), "{m}: the option changed nothing");
        }
        let warm = DinoOptions { warmup_teacher_temperature: 0.02, teacher_temperature: 0.06, teacher_warmup_steps: 4, ..Default::default() };
        let at: Vec<f64> = (0..6).map(|k| warm.teacher_temperature_at(k)).collect();
        assert!((at[0] - 0.02).abs() < 1e-12 && (at[2] - 0.04).abs() < 1e-12 && at[4] == 0.06 && at[5] == 0.06, "{at:?}");
        // MAE's decoder depth is the number of decoder blocks
        let params = |depth| {
            let mut cfg = tests::tiny(MethodName::Mae);
            cfg.mae.decoder_depth = depth;
            let p = Params::new(0);
            build_method(&cfg, (1, 28, 28), &p, &Device::Cpu).unwrap();
            p.named_trainable_vars().len()
        };
        assert!(params(2) > params(1));
    }

    /// Batch norm sees one view at a time (`per_view`), or one sub-batch at
    /// a time in a given order (`split_forward`, MoCo's shuffling BN): each
    /// group is standardised on its own statistics, and the rows come back
    /// in their original order.
    #[test]
    fn per_view_and_split_batch_norm_statistics() {
        let dev = Device::Cpu;
        let params = Params::new(0);
        let bn = crate::nn::batch_norm(3, false, params.builder(&dev).pp("bn")).unwrap();
        let x = SeededRng::new(0).randn((12, 3), 1.0, &dev).unwrap();
        let x = x.broadcast_add(&Tensor::new(&[[0f32, 5., -5.]], &dev).unwrap()).unwrap();
        let f = |t: &Tensor| candle_core::ModuleT::forward_t(&bn, t, true);
        let col_means = |t: &Tensor| t.mean(0).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let y = per_view(&x, f).unwrap();
        let (a, b) = split_views(&y).unwrap();
        assert!(col_means(&a) < 1e-5 && col_means(&b) < 1e-5);
        // on the stack the halves are not centred each (their raw means differ)
        let joint = f(&x).unwrap();
        assert!(col_means(&split_views(&joint).unwrap().0) > 1e-3);
        // the identity comes back in order, whatever the shuffle
        let order = SeededRng::new(1).permutation(12);
        assert_eq!(split_forward(&x, 3, Some(&order), |t| Ok(t.clone())).unwrap().to_vec2::<f32>().unwrap(), x.to_vec2::<f32>().unwrap());
        // shuffled sub-batches of 4: rows order[0..4] are standardised together
        let y = split_forward(&x, 3, Some(&order), f).unwrap();
        let group = Tensor::from_vec(order[..4].iter().map(|&i| i as u32).collect::<Vec<_>>(), 4, &dev).unwrap();
        assert!(col_means(&y.index_select(&group, 0).unwrap()) < 1e-5);
        let first4 = Tensor::new(&[0u32, 1, 2, 3], &dev).unwrap();
        assert!(col_means(&y.index_select(&first4, 0).unwrap()) > 1e-3 || order[..4].iter().all(|&i| i < 4));
        // never fewer than 2 rows per sub-batch
        assert_eq!(split_forward(&x, 100, None, |t| Ok(Tensor::new(&[t.dim(0).unwrap() as f32], &dev)?)).unwrap().to_vec1::<f32>().unwrap(), vec![2.0; 6]);
    }

    #[test]
    fn two_view_embeddings_are_seeded_views_of_the_same_images() {
        let run = train_tiny(MethodName::VicReg, 2, |_| {});
        let x = crate::data::shapes(8, 3).unwrap().images;
        let (a1, a2) = run.two_view_embeddings(&x, 1).unwrap();
        let (b1, _) = run.two_view_embeddings(&x, 1).unwrap();
        let (c1, _) = run.two_view_embeddings(&x, 2).unwrap();
        assert_eq!(a1.dims(), &[8, run.config().head_out]);
        let diff = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff(&a1, &b1), 0.0);
        assert!(diff(&a1, &a2) > 0.0 && diff(&a1, &c1) > 0.0);
    }

    /// Without the predictor, BYOL's target at step 0 is a copy of the online
    /// network and SimSiam's target is the online projection itself: the loss
    /// is the same with and without the stop-gradient, and removing the
    /// stop-gradient exactly doubles every gradient (each view's embedding
    /// now also receives the gradient of the term where it is the target).
    #[test]
    fn removing_the_stop_gradient_doubles_the_gradient() {
        let data = crate::data::shapes(16, 0).unwrap();
        for m in [MethodName::Byol, MethodName::SimSiam] {
            let run = |stop_gradient: bool| {
                let mut cfg = tiny(m);
                (cfg.predictor, cfg.stop_gradient) = (false, stop_gradient);
                let params = Params::new(3);
                let mut method = build_method(&cfg, (1, 28, 28), &params, &Device::Cpu).unwrap();
                let out = method.loss(&data.images, &mut SeededRng::new(5)).unwrap();
                let grads = out.loss.backward().unwrap();
                let g: Vec<(String, Tensor)> = params
                    .named_trainable_vars()
                    .into_iter()
                    .filter_map(|(n, v)| grads.get(v.as_tensor()).map(|g| (n, g.clone())))
                    .collect();
                (out.loss.to_scalar::<f32>().unwrap(), g)
            };
            let ((l_sg, g_sg), (l_free, g_free)) = (run(true), run(false));
            assert!((l_sg - l_free).abs() < 1e-5, "{m}: loss {l_sg} vs {l_free}");
            assert_eq!(g_sg.len(), g_free.len());
            assert!(g_sg.iter().any(|(n, _)| n.starts_with("enc.")), "{m}: no encoder gradient");
            for ((n, a), (_, b)) in g_sg.iter().zip(&g_free) {
                let d = (b - (a * 2.0).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
                assert!(d / scale < 1e-3, "{m}: gradient of {n} is not doubled (off by {d}, scale {scale})");
            }
        }
    }

    #[test]
    fn method_names_parse_and_reject_unknown() {
        for m in MethodName::ALL {
            assert_eq!(m.as_str().parse::<MethodName>().unwrap(), m);
        }
        let err = "simclear".parse::<MethodName>().unwrap_err().to_string();
        assert!(err.contains("simclear") && err.contains("rotation"), "{err}");
    }

    /// Training 3 + 3 steps with a save/load in between gives exactly the
    /// parameters of 6 uninterrupted steps.
    #[test]
    fn pretrainer_resumes_exactly() {
        let dev = Device::Cpu;
        let data = crate::data::shapes(32, 0).unwrap();
        for m in MethodName::ALL {
            if m == MethodName::Colorization {
                // needs colour images; its resume path has no state beyond the
                // parameters, and its 1-channel error is tested in colorization.rs
                continue;
            }
            let cfg = tiny(m);
            let mut straight = Pretrainer::new(cfg.clone(), (1, 28, 28), &dev).unwrap();
            straight.train_for(6, &data).unwrap();
            let mut first = Pretrainer::new(cfg, (1, 28, 28), &dev).unwrap();
            first.train_for(3, &data).unwrap();
            let dir = std::env::temp_dir().join(format!("sslab-resume-{m}-{}", std::process::id()));
            first.save(&dir).unwrap();
            let mut resumed = Pretrainer::load(&dir, &dev).unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
            resumed.train_for(3, &data).unwrap();
            assert_eq!(resumed.step(), 6);
            // (the first three come back from JSON: equal to ~1e-15)
            for (a, b) in resumed.history().loss.iter().zip(&straight.history().loss) {
                assert!((a - b).abs() < 1e-12, "{m}: losses differ after resume: {a} vs {b}");
            }
            for ((n, a), (_, b)) in straight.params().named_vars().iter().zip(resumed.params().named_vars()) {
                let d: f32 = (a.as_tensor() - b.as_tensor()).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
                assert!(d < 1e-6, "{m}: parameter {n} differs after resume by {d}");
            }
        }
    }

    #[test]
    fn wrong_data_shape_and_bad_checkpoint_are_named() {
        let dev = Device::Cpu;
        let mut run = Pretrainer::new(tiny(MethodName::Rotation), (1, 32, 32), &dev).unwrap();
        let data = crate::data::shapes(8, 0).unwrap();
        let err = run.train_for(1, &data).unwrap_err().to_string();
        assert!(err.contains("(1, 32, 32)") && err.contains("(1, 28, 28)"), "{err}");
        let err = Pretrainer::load("/nonexistent/run", &dev).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("/nonexistent/run"), "{err}");
        let mut cfg = tiny(MethodName::Rotation);
        cfg.batch_size = 1;
        let err = Pretrainer::new(cfg, (1, 28, 28), &dev).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("batch_size"), "{err}");
    }
}
