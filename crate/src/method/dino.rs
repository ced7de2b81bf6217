//! DINO: self-distillation with no labels, over multi-crop views.
//!
//! \[0\] M. Caron, H. Touvron, I. Misra, H. Jégou, J. Mairal, P. Bojanowski,
//!     A. Joulin, "Emerging Properties in Self-Supervised Vision
//!     Transformers", 2021, arXiv:2104.14294.
//! \[1\] github.com/facebookresearch/dino; lightly's `examples/pytorch/dino.py`.
//!
//! ```text
//! views: 2 global crops x_g (full size) + n local crops x_l (about half size)
//! student  s = h(f(x))  on every view;   teacher  t = h_ξ(f_ξ(x_g))  on the global views only
//! P_t = softmax((t − c) / τ_t),   log P_s = log_softmax(s / τ_s)
//! L = Σ_{t ∈ global} Σ_{v ≠ t} −P_t · log P_s(v)  / #pairs          Algorithm 1 of [0]
//! ξ ← m_k ξ + (1 − m_k) θ     (cosine schedule from cfg.ema_momentum to 1)
//! c ← m c + (1 − m) mean(t)   (after each step; m = cfg.dino.center_momentum, 0.9)
//! τ_s = 0.1,  τ_t = 0.04       (cfg.dino: student_temperature, teacher_temperature, with an optional warm-up)
//! ```
//!
//! Choices (every number below is a field of [`DinoOptions`](super::DinoOptions)): 2 global views and 4 local views (`cfg.dino.local_crops`) of `⌊H/2⌋` pixels, rounded down
//! to a multiple of a ViT's patch (the encoder must accept both sizes:
//! [`crate::nn::SmallCnn`] pools globally, the ViT resizes its position
//! embeddings); on one-channel images the [`dino_digits`] crops (no flip, no
//! colour steps), otherwise DINO's own ([`crate::augment::dino`]); 256
//! prototypes (the head's output width, `cfg.dino.prototypes`) with a
//! `head_out` bottleneck; batch norm in the head's MLP (DINO's `--use_bn_in_head`):
//! without it the small CNN's untrained outputs are nearly the same for every
//! digit, the center catches up with them within about 30 steps, the
//! centered teacher is uniform and training never leaves that collapse (100
//! to 600 steps at learning rates 1e-4 to 2e-3, teacher temperatures 0.02
//! and 0.04, with and without batch norm in the encoder, 0 to 8 local crops
//! all ended at the entropy ln K); no teacher temperature warm-up by default. The
//! teacher copies every student tensor, and its batch norm uses batch
//! statistics. Logged metric: the entropy (in
//! nats) of the mean teacher distribution — high means the prototypes are
//! used evenly (no collapse to one prototype).
//!
//! The checkpointed state holds the teacher's tensors and the center.

use super::{load_teacher_state, teacher_state, Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::augment::{dino as dino_augment, dino_digits, MultiCrop};
use crate::loss::{dino, dino_update_center};
use crate::nn::{cosine_momentum, dino_head, DinoHead, EmaTeacher, Params};
use crate::rng::SeededRng;
use candle_core::{DType, Device, ModuleT, Result, Tensor, D};
use std::collections::HashMap;

/// DINO: student encoder `enc.*` and head `head.*`, their EMA teacher, and the center.
pub struct Dino {
    params: Params,
    encoder: Encoder,
    head: DinoHead,
    teacher: EmaTeacher,
    teacher_encoder: Encoder,
    teacher_head: DinoHead,
    center: Tensor,
    pending: Option<Vec<Tensor>>,
    augment: MultiCrop,
    base_tau: f64,
    options: super::DinoOptions,
    /// The next step (from 0), for the teacher-temperature warm-up.
    next_step: usize,
    last_parts: Vec<(&'static str, f64)>,
}

impl Dino {
    /// Builds the student in `params`, the teacher from an [`EmaTeacher`] copy,
    /// a zero center and the multi-crop augmentation (global views of the
    /// image size, local views of half of it).
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), params: &Params, dev: &Device) -> Result<Self> {
        let size = shape.1.min(shape.2);
        if size < 8 {
            candle_core::bail!("dino needs images of at least 8×8 pixels for its local crops, got shape {shape:?}");
        }
        let vb = params.builder(dev);
        let enc_cfg = EncoderConfig::with_in_channels(&cfg.encoder, shape.0);
        let encoder = enc_cfg.init(vb.pp("enc"))?;
        let f = encoder.feature_dim();
        let out = cfg.dino.prototypes;
        let head = dino_head(f, cfg.head_hidden, cfg.head_out, out, true, vb.pp("head"))?;
        let teacher = EmaTeacher::new(params)?;
        let tb = teacher.builder(dev);
        let teacher_encoder = enc_cfg.init(tb.pp("enc"))?;
        let teacher_head = dino_head(f, cfg.head_hidden, cfg.head_out, out, true, tb.pp("head"))?;
        Ok(Self {
            params: params.clone(),
            encoder,
            head,
            teacher,
            teacher_encoder,
            teacher_head,
            center: Tensor::zeros((1, out), DType::F32, dev)?,
            pending: None,
            augment: {
                let (local, n_local) = (local_size(&enc_cfg, size), cfg.dino.local_crops);
                let mut crops = if cfg.augment.is_digits(shape.0) { dino_digits(size, local, n_local) } else { dino_augment(size, local, n_local) };
                crops.n_global = cfg.dino.global_crops;
                crops
            },
            base_tau: cfg.ema_momentum,
            options: cfg.dino.clone(),
            next_step: 0,
            last_parts: Vec::new(),
        })
    }

    /// The teacher's tensors (an EMA of the student's; never trained).
    pub fn teacher(&self) -> &EmaTeacher {
        &self.teacher
    }

    /// The center subtracted from the teacher's outputs, `(1, out)`.
    pub fn center(&self) -> &Tensor {
        &self.center
    }
}

/// The side of the local crops: half the image, rounded down to a multiple
/// of a ViT's patch (at least one patch), so every crop tiles into patches.
fn local_size(encoder: &EncoderConfig, size: usize) -> usize {
    match encoder {
        EncoderConfig::Vit(v) if v.patch_size > 0 => (size / 2 / v.patch_size).max(1) * v.patch_size,
        _ => size / 2,
    }
}

impl Method for Dino {
    fn metric_name(&self) -> &'static str {
        "teacher entropy"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let b = images.dim(0)?;
        let views = self.augment.views(images, rng)?;
        let ng = self.augment.n_global;
        let globals = Tensor::cat(&views[..ng], 0)?;
        let s_global = self.head.forward_t(&self.encoder.forward_t(&globals, true)?, true)?;
        let mut student: Vec<Tensor> = (0..ng).map(|i| s_global.narrow(0, i * b, b)).collect::<Result<_>>()?;
        if views.len() > ng {
            let locals = Tensor::cat(&views[ng..], 0)?;
            let s_local = self.head.forward_t(&self.encoder.forward_t(&locals, true)?, true)?;
            for i in 0..views.len() - ng {
                student.push(s_local.narrow(0, i * b, b)?);
            }
        }
        let t = self.teacher_head.forward_t(&self.teacher_encoder.forward_t(&globals, true)?, true)?.detach();
        let teacher: Vec<Tensor> = (0..ng).map(|i| t.narrow(0, i * b, b)).collect::<Result<_>>()?;
        let tau_t = self.options.teacher_temperature_at(self.next_step);
        let loss = dino(&student, &teacher, &self.center, self.options.student_temperature, tau_t)?;
        let pt = candle_nn::ops::softmax(&(t.broadcast_sub(&self.center)? / tau_t)?, D::Minus1)?;
        let entropy_of = |p: &Tensor| -> Result<Tensor> { (p.clamp(1e-12, 1.0)?.log()? * p)?.sum(D::Minus1)?.neg() };
        let p = pt.mean(0)?;
        let entropy = entropy_of(&p)?.to_scalar::<f32>()?;
        // §5.3 of [0]: collapse onto one prototype drives each image's teacher
        // entropy to 0; collapse to uniform drives it to ln K and the
        // teacher–student KL divergence to 0
        let s_global = s_global.detach();
        let log_ps = candle_nn::ops::log_softmax(&(&s_global / self.options.student_temperature)?, D::Minus1)?;
        let per_image = entropy_of(&pt)?.mean_all()?.to_scalar::<f32>()?;
        let kl = ((&pt * (pt.clamp(1e-12, 1.0)?.log()? - log_ps)?)?.sum(D::Minus1)?.mean_all()?).to_scalar::<f32>()?;
        self.last_parts = vec![("teacher entropy per image", f64::from(per_image)), ("KL(teacher ‖ student)", f64::from(kl))];
        self.pending = Some(teacher);
        Ok(StepOutput { loss, metric: f64::from(entropy) })
    }

    fn after_step(&mut self, k: usize, total: usize) -> Result<()> {
        self.teacher.ema_update(&self.params, cosine_momentum(k + 1, total, self.base_tau))?;
        if let Some(t) = self.pending.take() {
            if self.options.centering {
                self.center = dino_update_center(&self.center, &t, self.options.center_momentum)?;
            }
        }
        self.next_step = k + 1;
        Ok(())
    }

    fn parts(&self) -> Vec<(&'static str, f64)> {
        self.last_parts.clone()
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The teacher's tensors (`teacher.*`), the center (`center`) and the
    /// next step (`next_step`, for the teacher-temperature warm-up).
    fn state(&self) -> HashMap<String, Tensor> {
        let mut s = teacher_state(&self.teacher);
        s.insert("center".into(), self.center.clone());
        // f32 holds every step count below 2²⁴ exactly
        if let Ok(t) = Tensor::new(&[self.next_step as f32], self.center.device()) {
            s.insert("next_step".into(), t);
        }
        s
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        load_teacher_state(&self.teacher, state)?;
        // absent in old checkpoints, which had no warm-up
        if let Some(t) = state.get("next_step") {
            self.next_step = t.to_dtype(DType::F32)?.flatten_all()?.get(0)?.to_scalar::<f32>()? as usize;
        }
        match state.get("center") {
            Some(c) if c.dims() == self.center.dims() => {
                self.center = c.to_dtype(DType::F32)?.to_device(self.center.device())?;
                Ok(())
            }
            Some(c) => candle_core::bail!("dino state: center has shape {:?}, expected {:?}", c.dims(), self.center.dims()),
            None => candle_core::bail!("dino state: center missing from the checkpoint"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{tiny_vit, feature_std_ratio, first_last, tiny, train_tiny};
    use super::*;
    use crate::method::MethodName;

    #[test]
    fn dino_trains_moves_its_center_and_its_teacher_is_not_trainable() {
        let run = train_tiny(MethodName::Dino, 20, |_| {});
        // the loss rises while the teacher sharpens; check for collapse instead:
        // neither one prototype (entropy 0) nor uniform (entropy ln 32)
        let _ = first_last(&run, 5);
        let h = *run.history().metric.last().unwrap();
        assert!(h > 0.3 && h < 0.95 * 32f64.ln(), "dino teacher entropy {h}");
        let ratio = feature_std_ratio(&run);
        assert!(ratio > 0.5, "dino features collapsed: embedding_std fell to {ratio} of its initial value");
        let dev = Device::Cpu;
        let params = Params::new(0);
        let mut m = Dino::new(&tiny(MethodName::Dino), (1, 28, 28), &params, &dev).unwrap();
        let ids: Vec<_> = params.named_trainable_vars().iter().map(|(_, v)| v.as_tensor().id()).collect();
        assert!(!m.teacher().is_empty());
        for (n, t) in m.teacher().named_tensors() {
            assert!(!t.is_variable() && !ids.contains(&t.id()), "teacher tensor {n} is trainable");
        }
        // one step moves the center off zero
        let x = crate::data::shapes(8, 0).unwrap().images;
        m.loss(&x, &mut SeededRng::new(0)).unwrap();
        m.after_step(0, 10).unwrap();
        let c: f32 = m.center().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(c > 0.0 && m.center().dims() == [1, 32]);
    }

    /// The two collapses of §5.3 of \[0\], in a short run: without
    /// centering each image's teacher distribution sharpens onto a prototype
    /// (its entropy falls below the full method's); without sharpening (τ_t =
    /// 0.5) it flattens towards uniform (entropy near ln K).
    #[test]
    fn dino_ablations_collapse_the_two_ways() {
        let last = |run: &crate::method::Pretrainer, part: &str| run.history().smoothed_part(part, 5).last().unwrap().1;
        let full = train_tiny(MethodName::Dino, 30, |_| {});
        let no_center = train_tiny(MethodName::Dino, 30, |c| c.dino.centering = false);
        let flat = train_tiny(MethodName::Dino, 30, |c| c.dino.teacher_temperature = 0.5);
        let k = 32f64.ln();
        let (e_full, e_nc, e_flat) =
            (last(&full, "teacher entropy per image"), last(&no_center, "teacher entropy per image"), last(&flat, "teacher entropy per image"));
        // the full method neither collapses to uniform (ln K; what it did without batch norm in the head) nor onto one prototype
        assert!(e_full < 0.85 * k && e_full > 0.3, "full method: entropy {e_full} of ln K = {k}");
        assert!(e_nc < e_full, "no centering: entropy {e_nc} not below the full method's {e_full}");
        assert!(e_flat > 0.9 * k && e_flat > e_full, "τ_t = 0.5: entropy {e_flat} of ln K = {k}");
        assert!(last(&flat, "KL(teacher ‖ student)") >= 0.0);
        // the center never moves without centering
        let dev = Device::Cpu;
        let params = Params::new(0);
        let mut cfg = tiny(MethodName::Dino);
        cfg.dino.centering = false;
        let mut m = Dino::new(&cfg, (1, 28, 28), &params, &dev).unwrap();
        let x = crate::data::shapes(8, 0).unwrap().images;
        m.loss(&x, &mut SeededRng::new(0)).unwrap();
        m.after_step(0, 10).unwrap();
        assert_eq!(m.center().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }

    /// The number of local crops and their size: half the image, rounded
    /// down to whole ViT patches; no local crops trains on the two global
    /// views; other methods refuse the setting.
    #[test]
    fn dino_local_crops_count_size_and_check() {
        let dev = Device::Cpu;
        let x = crate::data::shapes(4, 0).unwrap().images;
        let mut cfg = tiny(MethodName::Dino);
        cfg.dino.local_crops = 2;
        let m = Dino::new(&cfg, (1, 28, 28), &Params::new(0), &dev).unwrap();
        let views = m.augment.views(&x, &mut SeededRng::new(0)).unwrap();
        let sizes: Vec<usize> = views.iter().map(|v| v.dim(3).unwrap()).collect();
        assert_eq!(sizes, vec![28, 28, 14, 14]);
        let mut vit = tiny(MethodName::Dino);
        vit.encoder = EncoderConfig::Vit(crate::nn::VitConfig { patch_size: 4, ..crate::nn::VitConfig::default() });
        let m = Dino::new(&vit, (1, 28, 28), &Params::new(0), &dev).unwrap();
        let views = m.augment.views(&x, &mut SeededRng::new(0)).unwrap();
        assert_eq!((views.len(), views[2].dims()), (2 + super::super::DinoOptions::default().local_crops, &[4, 1, 12, 12][..]));
        assert_eq!(local_size(&tiny_vit(), 28), 14); // patch 7
        let run = train_tiny(MethodName::Dino, 2, |c| c.dino.local_crops = 0);
        assert_eq!(run.history().len(), 2);
        let mut other = tiny(MethodName::SimClr);
        other.dino.local_crops = 2;
        assert!(other.check().unwrap_err().to_string().contains("dino does not apply to simclr"));
    }

    /// Multi-crop with a ViT: the 14×14 local crops take resized position
    /// embeddings (`Vit::embed_patches`).
    #[test]
    fn dino_trains_a_vit_on_global_and_local_crops() {
        let run = train_tiny(MethodName::Dino, 3, |c| c.encoder = tiny_vit());
        assert_eq!(run.history().len(), 3);
        let _ = first_last(&run, 1);
    }
}
