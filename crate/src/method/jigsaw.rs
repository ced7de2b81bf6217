//! Jigsaw puzzles: recognise which permutation shuffled an image's tiles.
//!
//! \[0\] M. Noroozi, P. Favaro, "Unsupervised Learning of Visual Representations
//!     by Solving Jigsaw Puzzles", ECCV 2016, arXiv:1603.09246.
//!
//! ```text
//! (t_{π(0)}, …, t_{π(g²−1)}), y = JigsawTask(x)        π = P[y], P a fixed permutation set
//! h_i = f(t_{π(i)})                                     the same encoder on every tile
//! L = CE(W [h_0; …; h_{g²−1}], y)                       a linear classifier over |P| classes
//! ```
//!
//! Choices: a 2×2 grid (four 14×14 tiles of a 28×28 image, touching, no gap)
//! and all 4! = 24 permutations; \[0\] uses 3×3 tiles with gaps and 100–1000
//! permutations on 225-pixel images. The permutation set is drawn from the run's
//! seed. Features for evaluation are the encoder's output on the whole image
//! (the CNN pools globally, so it accepts both sizes). Logged metric: the
//! permutation accuracy.

use super::{Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::loss::{accuracy, cross_entropy};
use crate::nn::{linear, Linear};
use crate::pretext::JigsawTask;
use crate::rng::{derive_seed, SeededRng};
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// Jigsaw: encoder `enc.*` shared by the tiles and a linear classifier `head.*`.
pub struct Jigsaw {
    encoder: Encoder,
    head: Linear,
    task: JigsawTask,
}

impl Jigsaw {
    /// Builds the encoder, the classifier over the concatenated tile features
    /// and the permutation set.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let (grid, permutations) = (cfg.jigsaw.grid, cfg.jigsaw.permutations);
        if shape.1 < 2 * grid || shape.2 < 2 * grid {
            candle_core::bail!("jigsaw with a {grid}×{grid} grid needs images of at least {0}×{0} pixels, got shape {shape:?} (C, H, W)", 2 * grid);
        }
        let encoder = EncoderConfig::with_in_channels(&cfg.encoder, shape.0).init(vb.pp("enc"))?;
        let k = grid * grid;
        let head = linear(k * encoder.feature_dim(), permutations, vb.pp("head"))?;
        let task = JigsawTask::new(grid, permutations, &mut SeededRng::new(derive_seed(cfg.seed, "jigsaw")))?;
        Ok(Self { encoder, head, task })
    }
}

impl Method for Jigsaw {
    fn metric_name(&self) -> &'static str {
        "permutation accuracy"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let (tiles, labels) = self.task.apply(images, rng)?;
        let (b, k, c, h, w) = tiles.dims5()?;
        let feats = self.encoder.forward_t(&tiles.reshape((b * k, c, h, w))?, true)?;
        let logits = self.head.forward(&feats.reshape((b, k * self.encoder.feature_dim()))?)?;
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
    fn jigsaw_loss_falls() {
        let run = train_tiny(MethodName::Jigsaw, 30, |_| {});
        let (first, last) = first_last(&run, 5);
        assert!(last < first, "jigsaw loss did not fall: {first} → {last}");
        assert!((first - (24f64).ln()).abs() < 0.5, "initial loss {first} should be near ln 24");
    }
}
