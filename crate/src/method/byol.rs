//! BYOL: predict a momentum teacher's projection of another view, without negatives.
//!
//! \[0\] J.-B. Grill, F. Strub, F. Altché, C. Tallec, P. H. Richemond et al.,
//!     "Bootstrap Your Own Latent: A New Approach to Self-Supervised
//!     Learning", 2020, arXiv:2006.07733.
//! \[1\] lightly's `examples/pytorch/byol.py`.
//!
//! ```text
//! online:  z = g(f(x)),  p = q(z)          f encoder, g projector, q predictor (trained)
//! target:  z' = g_ξ(f_ξ(x))                 EMA teacher of f and g (no gradient)
//! ℓ(p, z') = 2 − 2 · ⟨p, z'⟩ / (‖p‖ ‖z'‖)   eq. (2) of [0]
//! L = ℓ(p₁, z'₂) + ℓ(p₂, z'₁)               symmetrised, eq. (3)
//! ξ ← τ_k ξ + (1 − τ_k) θ,   τ_k = 1 − (1 − τ_base)(cos(π k / K) + 1)/2     §3.2
//! ```
//!
//! Augmentations: BYOL's asymmetric pair [`crate::augment::byol`] for colour
//! images with the default preset; otherwise (one-channel digits, another
//! preset, an ablation) the two-view methods' [`PretrainConfig::augmentation`]
//! for both views. The
//! schedule's base `τ_base = cfg.ema_momentum` (default 0.99; the paper uses
//! 0.996 over 300+ epochs). The teacher copies every student tensor,
//! predictor included (its copy is simply unused). Logged metric: the mean
//! cosine similarity between the predictions and the targets.
//!
//! The checkpointed state holds the teacher's tensors.

use super::{per_view, split_views};
use super::{load_teacher_state, teacher_state, Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::augment::{byol as byol_augment, TwoViews};
use crate::loss::{byol, l2_normalize, row_cosine};
use crate::nn::{byol_prediction_head, byol_projection_head, cosine_momentum, EmaTeacher, Params, ProjectionHead};
use crate::rng::SeededRng;
use candle_core::{Device, ModuleT, Result, Tensor};
use std::collections::HashMap;

/// BYOL: online encoder `enc.*`, projector `proj.*`, predictor `pred.*`, and
/// the EMA teacher of the encoder and projector.
pub struct Byol {
    params: Params,
    encoder: Encoder,
    projector: ProjectionHead,
    predictor: ProjectionHead,
    teacher: EmaTeacher,
    target_encoder: Encoder,
    target_projector: ProjectionHead,
    augment: TwoViews,
    base_tau: f64,
    use_predictor: bool,
    stop_gradient: bool,
    last_parts: Vec<(&'static str, f64)>,
}

impl Byol {
    /// Builds the online network in `params`, then the target network from an
    /// [`EmaTeacher`] copy of it.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), params: &Params, dev: &Device) -> Result<Self> {
        let vb = params.builder(dev);
        let enc_cfg = EncoderConfig::with_in_channels(&cfg.encoder, shape.0);
        let encoder = enc_cfg.init(vb.pp("enc"))?;
        let f = encoder.feature_dim();
        let projector = byol_projection_head(f, cfg.head_hidden, cfg.head_out, vb.pp("proj"))?;
        let predictor = byol_prediction_head(cfg.head_out, cfg.head_hidden, cfg.head_out, vb.pp("pred"))?;
        let teacher = EmaTeacher::new(params)?;
        let tb = teacher.builder(dev);
        let target_encoder = enc_cfg.init(tb.pp("enc"))?;
        let target_projector = byol_projection_head(f, cfg.head_hidden, cfg.head_out, tb.pp("proj"))?;
        Ok(Self {
            params: params.clone(),
            encoder,
            projector,
            predictor,
            teacher,
            target_encoder,
            target_projector,
            // BYOL's asymmetric colour pair is for RGB; grey digits take the
            // same pipeline as the other two-view methods (crop ≥ 40 %, no
            // flip): with BYOL's crops down to 8 % its MNIST features fell
            // below a random encoder's (k-NN 37.7 % against 48.0 %)
            augment: if shape.0 == 1 || cfg.augment != crate::method::AugmentPreset::Auto || !cfg.augment_without.is_empty() {
                TwoViews::new(cfg.augmentation(shape), cfg.augmentation(shape))
            } else {
                byol_augment(shape.1.min(shape.2))
            },
            base_tau: cfg.ema_momentum,
            use_predictor: cfg.predictor,
            stop_gradient: cfg.stop_gradient,
            last_parts: Vec::new(),
        })
    }

    /// The target network's tensors (an EMA of the online network's; never trained).
    pub fn teacher(&self) -> &EmaTeacher {
        &self.teacher
    }
}

impl Method for Byol {
    fn metric_name(&self) -> &'static str {
        "prediction cosine"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let (v1, v2) = self.augment.views(images, rng)?;
        let views = Tensor::cat(&[v1, v2], 0)?;
        // batch norm per view, as in BYOL's code
        let online = per_view(&views, |v| self.projector.forward_t(&self.encoder.forward_t(v, true)?, true))?;
        self.last_parts = super::collapse_parts(&split_views(&online)?.0)?;
        let p = if self.use_predictor { per_view(&online, |o| self.predictor.forward_t(o, true))? } else { online.clone() };
        let z = if self.stop_gradient {
            per_view(&views, |v| self.target_projector.forward_t(&self.target_encoder.forward_t(v, true)?, true))?.detach()
        } else {
            // the ablation: the online network is its own target, gradient and all
            online
        };
        let (p1, p2) = split_views(&p)?;
        let (z1, z2) = split_views(&z)?;
        let loss = if self.stop_gradient {
            (byol(&p1, &z2)? + byol(&p2, &z1)?)?
        } else {
            // BYOL's loss without its stop-gradient
            let l = |p: &Tensor, z: &Tensor| row_cosine(p, z, "byol")?.affine(-2.0, 2.0)?.mean_all();
            (l(&p1, &z2)? + l(&p2, &z1)?)?
        };
        // p·z' averaged over both terms: ℓ = 2 − 2 cos, so cos = 1 − L/4
        let swapped = Tensor::cat(&[z2, z1], 0)?;
        let cos = (l2_normalize(&p.detach())? * l2_normalize(&swapped)?)?.sum(1)?.mean_all()?.to_scalar::<f32>()?;
        Ok(StepOutput { loss, metric: f64::from(cos) })
    }

    fn after_step(&mut self, k: usize, total: usize) -> Result<()> {
        self.teacher.ema_update(&self.params, cosine_momentum(k + 1, total, self.base_tau))
    }

    fn parts(&self) -> Vec<(&'static str, f64)> {
        self.last_parts.clone()
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The online projection `z = g(f(x))` (what the collapse diagnostics watch).
    fn embed(&self, images: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.projector.forward_t(&self.encoder.forward_t(images, false)?, false)?))
    }

    /// The teacher's tensors (`teacher.*`).
    fn state(&self) -> HashMap<String, Tensor> {
        teacher_state(&self.teacher)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        load_teacher_state(&self.teacher, state)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{feature_std_ratio, first_last, tiny, train_tiny};
    use super::*;
    use crate::method::MethodName;

    #[test]
    fn byol_trains_without_collapse_and_its_target_is_not_trainable() {
        let run = train_tiny(MethodName::Byol, 25, |_| {});
        let _ = first_last(&run, 5); // finite
        let ratio = feature_std_ratio(&run);
        assert!(ratio > 0.5, "byol features collapsed: embedding_std fell to {ratio} of its initial value");
        let dev = Device::Cpu;
        let params = Params::new(0);
        let m = Byol::new(&tiny(MethodName::Byol), (1, 28, 28), &params, &dev).unwrap();
        let ids: Vec<_> = params.named_trainable_vars().iter().map(|(_, v)| v.as_tensor().id()).collect();
        assert!(!m.teacher().is_empty());
        for (n, t) in m.teacher().named_tensors() {
            assert!(!t.is_variable() && !ids.contains(&t.id()), "teacher tensor {n} is trainable");
        }
    }
}
