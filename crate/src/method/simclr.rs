//! SimCLR: contrast two augmented views of each image against all others.
//!
//! \[0\] T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for
//!     Contrastive Learning of Visual Representations", 2020, arXiv:2002.05709.
//! \[1\] lightly's `examples/pytorch/simclr.py`.
//!
//! ```text
//! x₁ = t(x), x₂ = t'(x)           t, t' ~ the augmentation family (crop, flip, jitter, blur)
//! z = g(f(x))                      f: encoder, g: projection head (training only)
//! L = NT-Xent(z₁, z₂; τ)          the 2B-way cross-entropy of Eq. (1), averaged over all 2B anchors
//! ```
//! Logged metric: the contrastive accuracy, i.e. how often the positive is
//! the most similar of the 2B − 1 candidates.

use super::{stacked_views, split_views};
use super::{Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::augment::Compose;
use crate::loss::{accuracy, cross_entropy, nt_xent_logits};
use crate::nn::{simclr_projection_head, ProjectionHead};
use crate::rng::SeededRng;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// SimCLR: encoder `enc.*`, projection head `proj.*`, the SimCLR augmentations.
pub struct SimClr {
    encoder: Encoder,
    head: ProjectionHead,
    augment: Compose,
    temperature: f64,
}

impl SimClr {
    /// Builds the encoder and the projection head for images of `shape = (C, H, W)`.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let encoder = EncoderConfig::with_in_channels(&cfg.encoder, shape.0).init(vb.pp("enc"))?;
        let head = simclr_projection_head(encoder.feature_dim(), cfg.head_hidden, cfg.head_out, vb.pp("proj"))?;
        Ok(Self { encoder, head, augment: cfg.augmentation(shape), temperature: cfg.temperature })
    }
}

impl Method for SimClr {
    fn metric_name(&self) -> &'static str {
        "contrastive accuracy"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let views = stacked_views(&self.augment, images, rng)?;
        // one forward pass over both views (batch-norm statistics over 2B, as in lightly's examples)
        let z = self.head.forward_t(&self.encoder.forward_t(&views, true)?, true)?;
        let (z1, z2) = split_views(&z)?;
        let (logits, targets) = nt_xent_logits(&z1, &z2, self.temperature)?;
        Ok(StepOutput { metric: accuracy(&logits, &targets)?, loss: cross_entropy(&logits, &targets)? })
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn embed(&self, images: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.head.forward_t(&self.encoder.forward_t(images, false)?, false)?))
    }
}
