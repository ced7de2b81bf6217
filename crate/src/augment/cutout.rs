//! Cutout: hide a random square of each image.
//!
//! [0] T. DeVries, G. W. Taylor, "Improved Regularization of Convolutional
//!     Neural Networks with Cutout", 2017, arXiv:1708.04552.
//! [1] github.com/uoguelph-mlrg/Cutout (`util/cutout.py`).
//!
//! ```text
//! (cy, cx) ~ U{0..H−1} × U{0..W−1}
//! x̃[c, y, x] = fill   for |y − cy| and |x − cx| within the square (clipped at the border)
//! ```
//!
//! As in [1], the centre can lie anywhere in the image, so the square may be
//! partly outside it.

use super::{check_p, Host, Transform};
use crate::rng::SeededRng;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// Sets a random `size × size` square (rows `cy − size/2 .. cy − size/2 + size`)
/// of each image to `fill`, with probability `p`.
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, H, W)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cutout {
    /// Side of the square, in pixels.
    pub size: usize,
    /// Probability of cutting an image.
    pub p: f64,
    /// The value written into the square.
    pub fill: f32,
}

impl Default for Cutout {
    /// The CIFAR-10 setting of \[0]: a 16-pixel square, always, filled with 0.
    fn default() -> Self {
        Self { size: 16, p: 1.0, fill: 0.0 }
    }
}

impl Transform for Cutout {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        check_p(self.p, "Cutout")?;
        if self.size == 0 {
            candle_core::bail!("Cutout: size must be positive, got 0");
        }
        let mut x = Host::images(batch, "Cutout")?;
        let (n, h, w) = (x.per_example(), x.h, x.w);
        for img in x.data.chunks_mut(n) {
            if !rng.bernoulli(self.p) {
                continue;
            }
            let (cy, cx) = (rng.below(h), rng.below(w));
            let (y0, x0) = (cy.saturating_sub(self.size / 2), cx.saturating_sub(self.size / 2));
            let (y1, x1) = ((cy + self.size - self.size / 2).min(h), (cx + self.size - self.size / 2).min(w));
            for plane in img.chunks_mut(h * w) {
                for y in y0..y1 {
                    plane[y * w + x0..y * w + x1].fill(self.fill);
                }
            }
        }
        x.into_images()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{max_diff, values};
    use super::*;
    use candle_core::Device;

    #[test]
    fn augment_cutout_hides_one_clipped_square_per_image() {
        let x = Tensor::ones((200, 2, 12, 12), candle_core::DType::F32, &Device::Cpu).unwrap();
        let t = Cutout { size: 4, p: 1.0, fill: 0.0 };
        let y = values(&t.apply(&x, &mut SeededRng::new(0)).unwrap());
        let mut full = 0;
        for img in y.chunks(2 * 144) {
            let zeros = img[..144].iter().filter(|v| **v == 0.0).count();
            assert!((1..=16).contains(&zeros), "{zeros}");
            assert_eq!(img[..144], img[144..], "same square in every channel");
            full += usize::from(zeros == 16);
        }
        assert!(full > 100, "most squares lie inside: {full}");
        let z = Cutout { p: 0.0, ..t.clone() }.apply(&x, &mut SeededRng::new(0)).unwrap();
        assert_eq!(max_diff(&z, &x), 0.0);
        assert!(Cutout { size: 0, ..t }.apply(&x, &mut SeededRng::new(0)).unwrap_err().to_string().contains("size"));
    }
}
