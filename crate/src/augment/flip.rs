//! Random mirror flips.
//!
//! [0] A. Krizhevsky, I. Sutskever, G. Hinton, "ImageNet Classification with
//!     Deep Convolutional Neural Networks", NeurIPS 2012, §4.1.
//! [1] `torchvision.transforms.RandomHorizontalFlip` / `RandomVerticalFlip`.
//!
//! ```text
//! horizontal: x̃[c, y, x] = x[c, y, W−1−x]     with probability p
//! vertical:   x̃[c, y, x] = x[c, H−1−y, x]     with probability p
//! ```

use super::{check_p, Host, Transform};
use crate::rng::SeededRng;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// Mirrors each image left–right with probability `p`.
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, H, W)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HorizontalFlip {
    /// Probability of flipping an image.
    pub p: f64,
}

impl Default for HorizontalFlip {
    /// torchvision's and SimCLR's `p = 0.5`.
    fn default() -> Self {
        Self { p: 0.5 }
    }
}

/// Mirrors each image top–bottom with probability `p`.
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, H, W)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerticalFlip {
    /// Probability of flipping an image.
    pub p: f64,
}

impl Default for VerticalFlip {
    /// torchvision's `p = 0.5`.
    fn default() -> Self {
        Self { p: 0.5 }
    }
}

impl Transform for HorizontalFlip {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        check_p(self.p, "HorizontalFlip")?;
        let mut x = Host::images(batch, "HorizontalFlip")?;
        let (n, w) = (x.per_example(), x.w);
        for img in x.data.chunks_mut(n) {
            if rng.bernoulli(self.p) {
                img.chunks_mut(w).for_each(|row| row.reverse());
            }
        }
        x.into_images()
    }
}

impl Transform for VerticalFlip {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        check_p(self.p, "VerticalFlip")?;
        let mut x = Host::images(batch, "VerticalFlip")?;
        let (n, h, w) = (x.per_example(), x.h, x.w);
        for img in x.data.chunks_mut(n) {
            if rng.bernoulli(self.p) {
                for plane in img.chunks_mut(h * w) {
                    for y in 0..h / 2 {
                        let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
                        top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
                    }
                }
            }
        }
        x.into_images()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{max_diff, pattern, values};
    use super::*;
    use crate::pretext::flip;

    #[test]
    fn augment_flips_with_p1_match_reversal_and_twice_is_identity() {
        let x = pattern(4, 3, 5, 6);
        let mut rng = SeededRng::new(0);
        let h = HorizontalFlip { p: 1.0 }.apply(&x, &mut rng).unwrap();
        assert_eq!(max_diff(&h, &flip(&x, 3).unwrap()), 0.0);
        let v = VerticalFlip { p: 1.0 }.apply(&x, &mut rng).unwrap();
        assert_eq!(max_diff(&v, &flip(&x, 2).unwrap()), 0.0);
        let hh = HorizontalFlip { p: 1.0 }.apply(&h, &mut rng).unwrap();
        let vv = VerticalFlip { p: 1.0 }.apply(&v, &mut rng).unwrap();
        assert_eq!(max_diff(&hh, &x), 0.0);
        assert_eq!(max_diff(&vv, &x), 0.0);
        assert_eq!(max_diff(&HorizontalFlip { p: 0.0 }.apply(&x, &mut rng).unwrap(), &x), 0.0);
        assert_eq!(max_diff(&VerticalFlip { p: 0.0 }.apply(&x, &mut rng).unwrap(), &x), 0.0);
    }

    #[test]
    fn augment_flip_rate_is_p_and_bad_p_is_an_error() {
        // a one-pixel-wide marker at x = 0: flipped images have it at x = W-1
        let (b, w) = (4000, 3);
        let mut data = vec![0f32; b * w];
        data.iter_mut().step_by(w).for_each(|v| *v = 1.0);
        let x = Tensor::from_vec(data, (b, 1, 1, w), &candle_core::Device::Cpu).unwrap();
        let y = values(&HorizontalFlip { p: 0.3 }.apply(&x, &mut SeededRng::new(1)).unwrap());
        let flipped = y.chunks(w).filter(|r| r[w - 1] == 1.0).count() as f64 / b as f64;
        assert!((flipped - 0.3).abs() < 0.03, "{flipped}");
        let e = HorizontalFlip { p: 1.5 }.apply(&x, &mut SeededRng::new(1)).unwrap_err().to_string();
        assert!(e.contains("1.5"), "{e}");
        assert!(VerticalFlip { p: -0.1 }.apply(&x, &mut SeededRng::new(1)).is_err());
    }
}
