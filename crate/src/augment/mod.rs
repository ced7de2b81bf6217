//! Data augmentations: random transformations that keep an example's meaning
//! and change its pixels (or samples), driven by the crate's seeded generator
//! so that the same seed gives the same views.
//!
//! Every augmentation implements [`Transform`]: it takes a batch and draws
//! fresh random parameters for every example in it.

use crate::rng::SeededRng;
use candle_core::{Result, Tensor};

/// A random transformation applied example by example.
pub trait Transform {
    /// Applies the transformation to every example of `batch`, drawing each
    /// example's random parameters from `rng`.
    ///
    /// # Shapes
    /// Images: `(B, C, H, W)` with values in `[0, 1]`. Series: `(B, C, T)`.
    /// The output has the same shape unless the transformation says otherwise
    /// (a crop resized to a new size).
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor>;
}
