//! The settings of a CLIP model and its training.

use candle_core::Result;
use serde::{Deserialize, Serialize};

/// The longest caption or prompt, in words (the text encoder's positions).
pub(super) const MAX_WORDS: usize = 16;

/// Settings of a [`Clip`](super::Clip) model and its training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    /// Optimiser steps of a full run.
    pub steps: usize,
    /// Image–caption pairs per step.
    pub batch_size: usize,
    /// Width `E` of the shared embedding space.
    pub embed_dim: usize,
    /// Output channels of the image CNN's convolutions.
    pub image_widths: Vec<usize>,
    /// Width of the text transformer.
    pub text_dim: usize,
    /// Blocks of the text transformer.
    pub text_depth: usize,
    /// AdamW learning rate (cosine decay after a warm-up of `steps / 10`).
    pub lr: f64,
    /// AdamW weight decay (not on biases, norms and the logit scale).
    pub weight_decay: f64,
    /// The temperature τ at the start (CLIP: 0.07).
    pub temperature: f64,
    /// Learn the temperature (CLIP) or keep it at `temperature`.
    pub learn_temperature: bool,
    /// The seed behind initialisation and batch order.
    pub seed: u64,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            steps: 600,
            batch_size: 128,
            embed_dim: 64,
            image_widths: vec![32, 64, 128],
            text_dim: 64,
            text_depth: 2,
            lr: 2e-3,
            weight_decay: 0.05,
            temperature: 0.07,
            learn_temperature: true,
            seed: 0,
        }
    }
}

impl ClipConfig {
    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> Result<()> {
        if self.batch_size < 2 {
            candle_core::bail!("clip: batch_size must be at least 2 (one pair has no negatives), got {}", self.batch_size);
        }
        if self.embed_dim == 0 || self.text_dim == 0 || self.text_depth == 0 || self.image_widths.is_empty() {
            candle_core::bail!("clip: embed_dim, text_dim, text_depth and image_widths must be non-zero, got {self:?}");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            candle_core::bail!("clip: temperature must be positive, got {}", self.temperature);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            candle_core::bail!("clip: lr must be positive, got {}", self.lr);
        }
        Ok(())
    }
}

