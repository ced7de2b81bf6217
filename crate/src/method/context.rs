//! Context prediction: where does this patch lie relative to the centre one?
//!
//! \[0\] C. Doersch, A. Gupta, A. A. Efros, "Unsupervised Visual Representation
//!     Learning by Context Prediction", ICCV 2015, arXiv:1505.05192.
//!
//! ```text
//! (p_c, p_n), y = relative_patch_pairs(x)            y ∈ {0..7}: one of the 8 neighbours
//! L = CE(W [f(p_c); f(p_n)] + b, y)                  the same encoder on both patches
//! ```
//!
//! Choices: 8×8 patches with a 2-pixel gap on 28×28 images (the 3×3 grid
//! spans 28 pixels, so its position is fixed and only the neighbour is
//! drawn); \[0\] uses 96-pixel patches with gaps of about half a patch and
//! up to 7 pixels of jitter, on 227-pixel images. The gap is the knob
//! against the trivial shortcut (continuing edges across the patch border).
//! Features for evaluation are the encoder's output on the whole image (the
//! CNN pools globally). Logged metric: the position accuracy (chance 1/8).

use super::{Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::loss::{accuracy, cross_entropy};
use crate::nn::{linear, Linear};
use crate::pretext::relative_patch_pairs;
use crate::rng::SeededRng;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// Context prediction: encoder `enc.*` shared by both patches, 8-way linear head `head.*`.
pub struct Context {
    encoder: Encoder,
    head: Linear,
    /// Patch side and gap in pixels (`cfg.context`).
    patch: usize,
    gap: usize,
}

impl Context {
    /// Builds the encoder and the classifier over the two concatenated patch
    /// features; errors when the images are too small for the 3×3 grid.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let (patch, gap) = (cfg.context.patch, cfg.context.gap);
        let extent = 3 * patch + 2 * gap;
        if shape.1 < extent || shape.2 < extent {
            candle_core::bail!(
                "context prediction needs images of at least {extent}×{extent} pixels (3×3 patches of {patch} \
                 with gaps of {gap}), got shape {shape:?} (C, H, W)"
            );
        }
        let encoder = EncoderConfig::with_in_channels(&cfg.encoder, shape.0).init(vb.pp("enc"))?;
        let head = linear(2 * encoder.feature_dim(), 8, vb.pp("head"))?;
        Ok(Self { encoder, head, patch, gap })
    }
}

impl Method for Context {
    fn metric_name(&self) -> &'static str {
        "position accuracy"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let (center, neighbour, labels) = relative_patch_pairs(images, self.patch, self.gap, rng)?;
        let b = center.dim(0)?;
        let feats = self.encoder.forward_t(&Tensor::cat(&[&center, &neighbour], 0)?, true)?;
        let pair = Tensor::cat(&[feats.narrow(0, 0, b)?, feats.narrow(0, b, b)?], 1)?;
        let logits = self.head.forward(&pair)?;
        Ok(StepOutput { metric: accuracy(&logits, &labels)?, loss: cross_entropy(&logits, &labels)? })
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
    fn context_loss_starts_near_ln8_and_falls() {
        // batches of 8 are too noisy for an 8-way task on mostly empty patches
        let run = train_tiny(MethodName::Context, 60, |c| c.batch_size = 32);
        let (first, last) = first_last(&run, 10);
        assert!((first - 8f64.ln()).abs() < 0.3, "initial loss {first} should be near ln 8");
        assert!(last < first, "context loss did not fall: {first} → {last}");
    }
}
