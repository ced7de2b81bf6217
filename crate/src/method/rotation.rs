//! Rotation prediction (RotNet).
//!
//! \[0\] S. Gidaris, P. Singh, N. Komodakis, "Unsupervised Representation
//!     Learning by Predicting Image Rotations", 2018, arXiv:1803.07728.
//!
//! ```text
//! x̃ = rot(x, 90°·r),  r ∈ {0, 1, 2, 3};   L = CE(head(f(x̃)), r)
//! ```
//! Every image of the batch is shown in all four rotations.

use super::{EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::loss::{accuracy, cross_entropy};
use crate::method::Encoder;
use crate::nn::{linear, Linear};
use crate::pretext::rotation_batch;
use crate::rng::SeededRng;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// RotNet: an encoder and a 4-way linear head.
pub struct Rotation {
    encoder: Encoder,
    head: Linear,
}

impl Rotation {
    /// Builds the encoder (`enc.*`) and the head (`head.*`).
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let encoder = EncoderConfig::with_in_channels(&cfg.encoder, shape.0).init(vb.pp("enc"))?;
        let head = linear(encoder.feature_dim(), 4, vb.pp("head"))?;
        Ok(Self { encoder, head })
    }
}

impl Method for Rotation {
    fn metric_name(&self) -> &'static str {
        "rotation accuracy"
    }

    fn loss(&mut self, images: &Tensor, _rng: &mut SeededRng) -> Result<StepOutput> {
        let (x, y) = rotation_batch(images)?;
        let logits = self.head.forward(&self.encoder.forward_t(&x, true)?)?;
        Ok(StepOutput { metric: accuracy(&logits, &y)?, loss: cross_entropy(&logits, &y)? })
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }
}
