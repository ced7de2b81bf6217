//! Barlow Twins: drive the cross-correlation matrix of two views' embeddings
//! towards the identity.
//!
//! \[0\] J. Zbontar, L. Jing, I. Misra, Y. LeCun, S. Deny, "Barlow Twins:
//!     Self-Supervised Learning via Redundancy Reduction", 2021, arXiv:2103.03230.
//! \[1\] lightly's `examples/pytorch/barlowtwins.py`.
//!
//! ```text
//! z = g(f(x)),   C_ij = Σ_b ẑ₁[b,i] ẑ₂[b,j] / B     ẑ: z standardised over the batch
//! L = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij²        eq. (1) of [0], λ = cfg.barlow.lambda (5·10⁻³)
//! ```
//!
//! Augmentations: [`crate::augment::simclr`]; projector
//! [`barlow_twins_projection_head`] (`head_hidden`, `head_out`; the paper uses
//! 8192 wide). Logged metric: the mean diagonal of `C` (1 when the two views
//! agree perfectly, dimension by dimension).

use super::{per_view, stacked_views, split_views};
use super::{Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::augment::Compose;
use crate::loss::{barlow_twins, cross_correlation};
use crate::nn::{barlow_twins_projection_head, ProjectionHead};
use crate::rng::SeededRng;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// Barlow Twins: encoder `enc.*` and projector `proj.*`.
pub struct Barlow {
    encoder: Encoder,
    projector: ProjectionHead,
    augment: Compose,
    lambda: f64,
}

impl Barlow {
    /// Builds the encoder and the projector.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let encoder = EncoderConfig::with_in_channels(&cfg.encoder, shape.0).init(vb.pp("enc"))?;
        let projector = barlow_twins_projection_head(encoder.feature_dim(), cfg.head_hidden, cfg.head_out, vb.pp("proj"))?;
        Ok(Self { encoder, projector, augment: cfg.augmentation(shape), lambda: cfg.barlow.lambda })
    }
}

impl Method for Barlow {
    fn metric_name(&self) -> &'static str {
        "mean on-diagonal correlation"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let views = stacked_views(&self.augment, images, rng)?;
        // batch norm per view, as in Barlow Twins's code
        let z = per_view(&views, |v| self.projector.forward_t(&self.encoder.forward_t(v, true)?, true))?;
        let (z1, z2) = split_views(&z)?;
        let loss = barlow_twins(&z1, &z2, self.lambda)?;
        let diag = cross_correlation(&z1.detach(), &z2.detach())?;
        let d = diag.dim(0)?;
        let eye = Tensor::eye(d, diag.dtype(), diag.device())?;
        let metric = f64::from((diag * eye)?.sum_all()?.to_scalar::<f32>()?) / d as f64;
        Ok(StepOutput { loss, metric })
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The projector's output `z` (whose cross-correlation the loss drives to I).
    fn embed(&self, images: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.projector.forward_t(&self.encoder.forward_t(images, false)?, false)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{first_last, train_tiny};
    use crate::method::MethodName;

    #[test]
    fn barlow_loss_falls() {
        // batch norm per view: 8 images per view are too few to standardise
        // an 8-wide projection, so 32
        let run = train_tiny(MethodName::Barlow, 25, |c| c.batch_size = 32);
        let (first, last) = first_last(&run, 5);
        assert!(last < 0.9 * first, "barlow loss did not fall: {first} → {last}");
    }
}
