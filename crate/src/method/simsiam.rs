//! SimSiam: predict the stop-gradient projection of the other view.
//!
//! \[0\] X. Chen, K. He, "Exploring Simple Siamese Representation Learning",
//!     2020, arXiv:2011.10566.
//! \[1\] lightly's `examples/pytorch/simsiam.py`.
//!
//! ```text
//! z = g(f(x)),  p = h(z)                    f encoder, g projector, h predictor
//! D(p, z) = −⟨p, stopgrad(z)⟩ / (‖p‖ ‖z‖)   eq. (1) of [0]
//! L = ½ D(p₁, z₂) + ½ D(p₂, z₁)             eq. (2)–(3)
//! ```
//!
//! No negatives and no momentum teacher: the stop-gradient (inside
//! [`negative_cosine`]) and the predictor prevent collapse. Augmentations:
//! [`crate::augment::simclr`]. Logged metric: the mean cosine similarity −L.

use super::{per_view, stacked_views, split_views};
use super::{Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::augment::Compose;
use crate::loss::{negative_cosine, row_cosine};
use crate::nn::{simsiam_prediction_head, simsiam_projection_head, ProjectionHead};
use crate::rng::SeededRng;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// SimSiam: encoder `enc.*`, projector `proj.*`, predictor `pred.*`.
pub struct SimSiam {
    encoder: Encoder,
    projector: ProjectionHead,
    predictor: ProjectionHead,
    augment: Compose,
    use_predictor: bool,
    stop_gradient: bool,
    last_parts: Vec<(&'static str, f64)>,
}

impl SimSiam {
    /// Builds the encoder, the projector (`head_hidden → head_out`) and the
    /// bottleneck predictor (`head_out → head_out / 2 → head_out`, at least 4 wide).
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let encoder = EncoderConfig::with_in_channels(&cfg.encoder, shape.0).init(vb.pp("enc"))?;
        let projector = simsiam_projection_head(encoder.feature_dim(), cfg.head_hidden, cfg.head_out, vb.pp("proj"))?;
        let predictor = simsiam_prediction_head(cfg.head_out, (cfg.head_out / 2).max(4), cfg.head_out, vb.pp("pred"))?;
        Ok(Self {
            encoder,
            projector,
            predictor,
            augment: cfg.augmentation(shape),
            use_predictor: cfg.predictor,
            stop_gradient: cfg.stop_gradient,
            last_parts: Vec::new(),
        })
    }
}

impl Method for SimSiam {
    fn metric_name(&self) -> &'static str {
        "prediction cosine"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let views = stacked_views(&self.augment, images, rng)?;
        // batch norm per view, as in SimSiam's code
        let z = per_view(&views, |v| self.projector.forward_t(&self.encoder.forward_t(v, true)?, true))?;
        let p = if self.use_predictor { per_view(&z, |z| self.predictor.forward_t(z, true))? } else { z.clone() };
        let (z1, z2) = split_views(&z)?;
        let (p1, p2) = split_views(&p)?;
        let d = |p: &Tensor, z: &Tensor| -> Result<Tensor> {
            if self.stop_gradient {
                negative_cosine(p, z)
            } else {
                // the ablation: D(p, z) with a gradient through z as well
                row_cosine(p, z, "simsiam")?.mean_all()?.neg()
            }
        };
        let loss = ((d(&p1, &z2)? + d(&p2, &z1)?)? * 0.5)?;
        self.last_parts = super::collapse_parts(&z1)?;
        let metric = -f64::from(loss.to_scalar::<f32>()?);
        Ok(StepOutput { loss, metric })
    }

    fn parts(&self) -> Vec<(&'static str, f64)> {
        self.last_parts.clone()
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The projection `z = g(f(x))` (what the collapse diagnostics watch).
    fn embed(&self, images: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.projector.forward_t(&self.encoder.forward_t(images, false)?, false)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{feature_std_ratio, first_last, train_tiny};
    use crate::method::MethodName;

    #[test]
    fn simsiam_trains_without_collapse() {
        let run = train_tiny(MethodName::SimSiam, 25, |_| {});
        let _ = first_last(&run, 5); // finite
        let ratio = feature_std_ratio(&run);
        assert!(ratio > 0.5, "simsiam features collapsed: embedding_std fell to {ratio} of its initial value");
    }
}
