//! Section 25.5: CLIP.

use super::Profile;
use crate::data::{captioned_shapes, shape_colour, Attributes, CaptionedImages};
use crate::multimodal::ClipConfig;
use crate::rng::derive_seed;
use serde::{Deserialize, Serialize};

impl Profile {
    /// The sizes of section 25.5 (CLIP on captioned shapes) in this profile.
    pub fn multimodal(self) -> MultimodalConfig {
        let base = MultimodalConfig {
            profile: self,
            train_pairs: 6000,
            test_pairs: 2000,
            steps: 300,
            batch_size: 128,
            short_steps: 100,
            held_out: [("triangle", "red"), ("circle", "blue"), ("square", "yellow"), ("cross", "green")]
                .iter()
                .map(|(s, c)| (s.to_string(), c.to_string()))
                .collect(),
            seed: 0,
        };
        match self {
            Self::Smoke => MultimodalConfig { train_pairs: 600, test_pairs: 300, steps: 5, batch_size: 32, short_steps: 2, ..base },
            Self::Cpu => base,
            Self::Gpu => MultimodalConfig { train_pairs: 60000, test_pairs: 10000, steps: 3000, batch_size: 512, short_steps: 1000, ..base },
        }
    }
}

/// Sizes of section 25.5: CLIP on generated image–caption pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultimodalConfig {
    /// The profile these sizes came from.
    pub profile: Profile,
    /// Generated training pairs (before the held-out combinations are removed).
    pub train_pairs: usize,
    /// Generated test pairs (seen and held-out combinations).
    pub test_pairs: usize,
    /// Optimiser steps of the main run.
    pub steps: usize,
    /// Pairs per step.
    pub batch_size: usize,
    /// Optimiser steps of a "Try it" run.
    pub short_steps: usize,
    /// (shape, colour) pairs never shown together in training.
    pub held_out: Vec<(String, String)>,
    /// The seed behind the data, initialisation and batch order.
    pub seed: u64,
}

impl MultimodalConfig {
    /// The model and training settings of the main run.
    pub fn clip(&self) -> ClipConfig {
        ClipConfig { steps: self.steps, batch_size: self.batch_size, seed: self.seed, ..Default::default() }
    }

    /// The held-out pairs as (shape, colour) indices.
    ///
    /// # Errors
    /// Naming a word that is not a shape or a colour.
    pub fn held_out_indices(&self) -> crate::Result<Vec<(usize, usize)>> {
        self.held_out.iter().map(|(s, c)| shape_colour(s, c)).collect()
    }

    /// Training pairs without the held-out combinations, test pairs with
    /// them (from another seed), and the test pairs split into seen and
    /// held-out combinations: `(train, test_seen, test_held_out)`.
    pub fn data(&self) -> crate::Result<(CaptionedImages, CaptionedImages, CaptionedImages)> {
        let held = self.held_out_indices()?;
        let is_held = |a: &Attributes| held.contains(&(a.shape, a.colour));
        let train = captioned_shapes(self.train_pairs, self.seed)?.filter(|a| !is_held(a))?;
        let test = captioned_shapes(self.test_pairs, derive_seed(self.seed, "captions-test"))?;
        Ok((train, test.filter(|a| !is_held(a))?, test.filter(is_held)?))
    }
}
