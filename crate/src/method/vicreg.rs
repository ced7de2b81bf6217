//! VICReg: variance, invariance and covariance regularisation of two views' embeddings.
//!
//! \[0\] A. Bardes, J. Ponce, Y. LeCun, "VICReg: Variance-Invariance-Covariance
//!     Regularization for Self-Supervised Learning", 2021, arXiv:2105.04906.
//! \[1\] lightly's `examples/pytorch/vicreg.py`.
//!
//! ```text
//! z = g(f(x))
//! L = λ s(z₁, z₂) + μ [v(z₁) + v(z₂)] + ν [c(z₁) + c(z₂)]          eq. (6) of [0]
//! s = mean ‖z₁ − z₂‖²,  v = mean_j max(0, 1 − √(Var z_j + ε)),  c = Σ_{i≠j} Cov(z)_ij² / D
//! λ = μ = 25, ν = 1
//! ```
//!
//! Augmentations: [`crate::augment::simclr`]; expander
//! [`vicreg_projection_head`]. Logged metric: the invariance term `s`.

use super::{stacked_views, split_views};
use super::{Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::augment::Compose;
use crate::loss::{vicreg, vicreg_invariance};
use crate::nn::{vicreg_projection_head, ProjectionHead};
use crate::rng::SeededRng;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// The weights `(λ, μ, ν)` of the invariance, variance and covariance terms of \[0\].
pub const VICREG_WEIGHTS: (f64, f64, f64) = (25.0, 25.0, 1.0);

/// VICReg: encoder `enc.*` and expander `proj.*`.
pub struct VicReg {
    encoder: Encoder,
    projector: ProjectionHead,
    augment: Compose,
}

impl VicReg {
    /// Builds the encoder and the expander.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let encoder = EncoderConfig::with_in_channels(&cfg.encoder, shape.0).init(vb.pp("enc"))?;
        let projector = vicreg_projection_head(encoder.feature_dim(), cfg.head_hidden, cfg.head_out, vb.pp("proj"))?;
        Ok(Self { encoder, projector, augment: cfg.augmentation(shape) })
    }
}

impl Method for VicReg {
    fn metric_name(&self) -> &'static str {
        "invariance term"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let views = stacked_views(&self.augment, images, rng)?;
        let z = self.projector.forward_t(&self.encoder.forward_t(&views, true)?, true)?;
        let (z1, z2) = split_views(&z)?;
        let (l, m, n) = VICREG_WEIGHTS;
        let loss = vicreg(&z1, &z2, l, m, n)?;
        let metric = f64::from(vicreg_invariance(&z1.detach(), &z2.detach())?.to_scalar::<f32>()?);
        Ok(StepOutput { loss, metric })
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{first_last, train_tiny};
    use crate::method::MethodName;

    #[test]
    fn vicreg_loss_falls() {
        let run = train_tiny(MethodName::VicReg, 25, |_| {});
        let (first, last) = first_last(&run, 5);
        assert!(last < first, "vicreg loss did not fall: {first} → {last}");
    }
}
