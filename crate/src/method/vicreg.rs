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

use super::{per_view, stacked_views, split_views};
use super::{Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::augment::Compose;
use crate::loss::vicreg_terms;
use crate::nn::{vicreg_projection_head, ProjectionHead};
use crate::rng::SeededRng;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// VICReg: encoder `enc.*` and expander `proj.*`.
pub struct VicReg {
    encoder: Encoder,
    projector: ProjectionHead,
    augment: Compose,
    last_parts: Vec<(&'static str, f64)>,
    /// `(λ, μ, ν)`: the weights of the invariance, variance and covariance terms.
    weights: (f64, f64, f64),
}

impl VicReg {
    /// Builds the encoder and the expander.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let encoder = EncoderConfig::with_in_channels(&cfg.encoder, shape.0).init(vb.pp("enc"))?;
        let projector = vicreg_projection_head(encoder.feature_dim(), cfg.head_hidden, cfg.head_out, vb.pp("proj"))?;
        let w = &cfg.vicreg;
        Ok(Self { encoder, projector, augment: cfg.augmentation(shape), last_parts: Vec::new(), weights: (w.invariance, w.variance, w.covariance) })
    }
}

impl Method for VicReg {
    fn metric_name(&self) -> &'static str {
        "invariance term"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let views = stacked_views(&self.augment, images, rng)?;
        // batch norm per view, as in VICReg's code
        let z = per_view(&views, |v| self.projector.forward_t(&self.encoder.forward_t(v, true)?, true))?;
        let (z1, z2) = split_views(&z)?;
        let (l, m, n) = self.weights;
        // the loss of `loss::vicreg`, from its terms, which are also reported
        let (inv, var, cov) = vicreg_terms(&z1, &z2)?;
        let loss = (((&inv * l)? + (&var * m)?)? + (&cov * n)?)?;
        let scalar = |t: &Tensor| -> Result<f64> { Ok(f64::from(t.to_scalar::<f32>()?)) };
        let metric = scalar(&inv)?;
        self.last_parts = vec![("invariance λ·s", l * metric), ("variance μ·v", m * scalar(&var)?), ("covariance ν·c", n * scalar(&cov)?)];
        Ok(StepOutput { loss, metric })
    }

    fn parts(&self) -> Vec<(&'static str, f64)> {
        self.last_parts.clone()
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The expander's output `z` (what the loss regularises).
    fn embed(&self, images: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.projector.forward_t(&self.encoder.forward_t(images, false)?, false)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{first_last, train_tiny};
    use crate::method::MethodName;

    /// The three recorded parts add up to the loss at every step.
    #[test]
    fn vicreg_records_its_three_terms_and_they_sum_to_the_loss() {
        let run = train_tiny(MethodName::VicReg, 6, |_| {});
        let h = run.history();
        let names: Vec<&str> = h.parts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["invariance λ·s", "variance μ·v", "covariance ν·c"]);
        for k in 0..h.len() {
            let sum: f64 = h.parts.iter().map(|(_, xs)| xs[k]).sum();
            assert!((sum - h.loss[k]).abs() < 1e-3 * h.loss[k].abs().max(1.0), "step {k}: parts {sum} vs loss {}", h.loss[k]);
        }
        assert_eq!(h.smoothed_part("variance μ·v", 3).len(), h.len());
        assert!(h.smoothed_part("no such part", 3).is_empty());
        assert_eq!(h.parts_plot(3).series_len(), 4);
    }

    #[test]
    fn vicreg_loss_falls() {
        let run = train_tiny(MethodName::VicReg, 25, |_| {});
        let (first, last) = first_last(&run, 5);
        assert!(last < first, "vicreg loss did not fall: {first} → {last}");
    }
}
