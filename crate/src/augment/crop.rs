//! Random resized crop: cut a random rectangle of random area and aspect
//! ratio, and resize it to a fixed size.
//!
//! [0] C. Szegedy et al., "Going Deeper with Convolutions", 2014,
//!     arXiv:1409.4842, §6 (the "Inception" crop).
//! [1] `torchvision.transforms.RandomResizedCrop` (sampling algorithm, 10
//!     tries and centre-crop fallback) and `torchvision.transforms.functional.
//!     resized_crop` with bilinear, anti-aliased interpolation.
//!
//! ```text
//! area ~ U(scale) · H·W,  log r ~ U(log ratio)
//! w = round(√(area·r)),  h = round(√(area / r))      (accepted if it fits)
//! top ~ U{0..H−h},  left ~ U{0..W−w}
//! x̃ = resize(x[:, top:top+h, left:left+w], size × size)
//! ```
//!
//! Resizing uses PyTorch's anti-aliased bilinear filter (`interpolate(...,
//! mode="bilinear", align_corners=False, antialias=True)`): a triangle filter
//! stretched by the scale factor when shrinking, plain bilinear when growing.

use super::{uniform_f64, Host, Transform};
use crate::rng::SeededRng;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// A crop rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// Crops a random rectangle and resizes it to `size × size` (bilinear,
/// anti-aliased), per image.
///
/// The rectangle is drawn as in torchvision: area fraction `~ U(scale)`,
/// aspect ratio log-uniform in `ratio`, up to 10 tries for a rectangle that
/// fits, otherwise a central crop (see [`RandomResizedCrop::sample`]).
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, size, size)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomResizedCrop {
    /// Output side length.
    pub size: usize,
    /// Range of the crop's area as a fraction of the image's area.
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
    pub ratio: (f64, f64),
}

impl Default for RandomResizedCrop {
    /// torchvision's and SimCLR's values: 224, scale (0.08, 1), ratio (3/4, 4/3).
    fn default() -> Self {
        Self { size: 224, scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) }
    }
}

impl RandomResizedCrop {
    /// A crop to `size × size` with the default scale and ratio ranges.
    pub fn new(size: usize) -> Self {
        Self { size, ..Self::default() }
    }

    /// The same crop with the area fraction drawn from `scale`.
    pub fn with_scale(mut self, scale: (f64, f64)) -> Self {
        self.scale = scale;
        self
    }

    fn check(&self) -> Result<()> {
        let (s, r) = (self.scale, self.ratio);
        if self.size == 0 {
            candle_core::bail!("RandomResizedCrop: size must be positive, got 0");
        }
        if !(s.0 > 0.0 && s.0 <= s.1 && s.1.is_finite()) {
            candle_core::bail!("RandomResizedCrop: scale must satisfy 0 < lo <= hi, got {s:?}");
        }
        if !(r.0 > 0.0 && r.0 <= r.1 && r.1.is_finite()) {
            candle_core::bail!("RandomResizedCrop: ratio must satisfy 0 < lo <= hi, got {r:?}");
        }
        Ok(())
    }

    /// Draws a crop for an `height × width` image, exactly as torchvision's
    /// `RandomResizedCrop.get_params` (Python's round-half-to-even included).
    pub fn sample(&self, height: usize, width: usize, rng: &mut SeededRng) -> CropBox {
        let area = (height * width) as f64;
        let (lr0, lr1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * uniform_f64(rng, self.scale.0, self.scale.1);
            let aspect = uniform_f64(rng, lr0, lr1).exp();
            let w = (target * aspect).sqrt().round_ties_even() as usize;
            let h = (target / aspect).sqrt().round_ties_even() as usize;
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = rng.below(height - h + 1);
                let left = rng.below(width - w + 1);
                return CropBox { top, left, height: h, width: w };
            }
        }
        // Fallback: a central crop with the ratio clamped into range.
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio.0 {
            (width, ((width as f64 / self.ratio.0).round_ties_even() as usize).clamp(1, height))
        } else if in_ratio > self.ratio.1 {
            (((height as f64 * self.ratio.1).round_ties_even() as usize).clamp(1, width), height)
        } else {
            (width, height)
        };
        CropBox { top: (height - h) / 2, left: (width - w) / 2, height: h, width: w }
    }
}

impl Transform for RandomResizedCrop {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        self.check()?;
        let src = Host::images(batch, "RandomResizedCrop")?;
        let (c, h, w) = (src.c, src.h, src.w);
        let mut out = src.with_size(c, self.size, self.size);
        let (n_in, n_out) = (c * h * w, c * self.size * self.size);
        for i in 0..src.b {
            let crop = self.sample(h, w, rng);
            resize_image(
                &src.data[i * n_in..(i + 1) * n_in],
                (c, h, w),
                crop,
                (self.size, self.size),
                &mut out.data[i * n_out..(i + 1) * n_out],
            );
        }
        out.into_images()
    }
}

/// Crops every image of the batch to `crop` and resizes it to `size = (h, w)`,
/// as `torchvision.transforms.functional.resized_crop(x, top, left, height,
/// width, size)` (bilinear, anti-aliased).
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, size.0, size.1)`.
pub fn resized_crop(x: &Tensor, crop: CropBox, size: (usize, usize)) -> Result<Tensor> {
    let src = Host::images(x, "resized_crop")?;
    let (c, h, w) = (src.c, src.h, src.w);
    if crop.height == 0 || crop.width == 0 || crop.top + crop.height > h || crop.left + crop.width > w {
        candle_core::bail!("resized_crop: crop {crop:?} is empty or outside the {h}×{w} image (shape {:?})", x.dims());
    }
    if size.0 == 0 || size.1 == 0 {
        candle_core::bail!("resized_crop: output size must be positive, got {size:?}");
    }
    let mut out = src.with_size(c, size.0, size.1);
    let (n_in, n_out) = (c * h * w, c * size.0 * size.1);
    for i in 0..src.b {
        resize_image(
            &src.data[i * n_in..(i + 1) * n_in],
            (c, h, w),
            crop,
            size,
            &mut out.data[i * n_out..(i + 1) * n_out],
        );
    }
    out.into_images()
}

/// Per output index: the first input index and the normalised filter weights
/// (PyTorch's `_compute_indices_weights_aa` for the bilinear filter).
fn aa_weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = n_in as f64 / n_out as f64;
    let (support, inv) = if scale >= 1.0 { (scale, 1.0 / scale) } else { (1.0, 1.0) };
    (0..n_out)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let lo = ((center - support + 0.5) as i64).max(0) as usize; // truncation, as the C++ cast
            let hi = ((center + support + 0.5) as i64).clamp(0, n_in as i64) as usize;
            let mut ws: Vec<f64> = (lo..hi)
                .map(|j| {
                    let t = ((j as f64 - center + 0.5) * inv).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let total: f64 = ws.iter().sum();
            if total > 0.0 {
                ws.iter_mut().for_each(|v| *v /= total);
            }
            (lo, ws.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}

/// Resizes the `crop` of one `(C, H, W)` image into `out` of `(C, oh, ow)`:
/// horizontal pass, then vertical pass.
fn resize_image(
    img: &[f32],
    (c, h, w): (usize, usize, usize),
    crop: CropBox,
    (oh, ow): (usize, usize),
    out: &mut [f32],
) {
    let wx = aa_weights(crop.width, ow);
    let wy = aa_weights(crop.height, oh);
    let mut tmp = vec![0f32; crop.height * ow];
    for ch in 0..c {
        let plane = &img[ch * h * w..(ch + 1) * h * w];
        for y in 0..crop.height {
            let row = &plane[(crop.top + y) * w + crop.left..(crop.top + y) * w + crop.left + crop.width];
            for (x, (lo, ws)) in wx.iter().enumerate() {
                tmp[y * ow + x] = ws.iter().zip(&row[*lo..]).map(|(a, b)| a * b).sum();
            }
        }
        let dst = &mut out[ch * oh * ow..(ch + 1) * oh * ow];
        for (y, (lo, ws)) in wy.iter().enumerate() {
            let drow = &mut dst[y * ow..(y + 1) * ow];
            drow.fill(0.0);
            for (k, wgt) in ws.iter().enumerate() {
                let srow = &tmp[(lo + k) * ow..(lo + k + 1) * ow];
                drow.iter_mut().zip(srow).for_each(|(d, s)| *d += wgt * s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, max_diff, pattern};
    use super::*;

    #[test]
    fn augment_resized_crop_full_image_same_size_is_identity() {
        let x = pattern(3, 3, 28, 28);
        let t = RandomResizedCrop { size: 28, scale: (1.0, 1.0), ratio: (1.0, 1.0) };
        let y = t.apply(&x, &mut SeededRng::new(0)).unwrap();
        assert_eq!(max_diff(&x, &y), 0.0);
    }

    #[test]
    fn augment_resized_crop_matches_torchvision() {
        // import torch, torchvision.transforms.functional as F
        // b, c, y, x = torch.meshgrid(*[torch.arange(n) for n in (1, 1, 6, 7)], indexing="ij")
        // img = ((7*b + 3*c + 5*y + 11*x) % 17).float() / 16
        // F.resized_crop(img, 1, 2, 4, 5, [3, 3]).flatten()   # shrink (anti-aliased)
        // F.resized_crop(img, 1, 1, 2, 3, [4, 5]).flatten()   # grow
        let img = pattern(1, 1, 6, 7);
        let down = resized_crop(&img, CropBox { top: 1, left: 2, height: 4, width: 5 }, (3, 3)).unwrap();
        assert_close(&down, &[0.5580, 0.6181, 0.4420, 0.6295, 0.4618, 0.5893, 0.3821, 0.5535, 0.3116], 1e-4);
        let up = resized_crop(&img, CropBox { top: 1, left: 1, height: 2, width: 3 }, (4, 5)).unwrap();
        assert_close(
            &up,
            &[
                1.0000, 0.8500, 0.6250, 0.4000, 0.2500, 0.8125, 0.7688, 0.7031, 0.4781, 0.3281, 0.4375, 0.6063, 0.8594,
                0.6344, 0.4844, 0.2500, 0.5250, 0.9375, 0.7125, 0.5625,
            ],
            1e-4,
        );
    }

    #[test]
    fn augment_resized_crop_area_fractions_stay_in_scale() {
        let t = RandomResizedCrop::new(28).with_scale((0.2, 1.0));
        let mut rng = SeededRng::new(3);
        let (mut lo, mut hi) = (f64::MAX, 0f64);
        for _ in 0..5000 {
            let c = t.sample(100, 100, &mut rng);
            assert!(c.top + c.height <= 100 && c.left + c.width <= 100);
            let frac = (c.height * c.width) as f64 / 10_000.0;
            let r = c.width as f64 / c.height as f64;
            // rounding to whole pixels moves the area by at most ~2 %
            assert!((0.19..=1.0).contains(&frac), "area fraction {frac}");
            assert!((0.74..=1.35).contains(&r), "ratio {r}");
            lo = lo.min(frac);
            hi = hi.max(frac);
        }
        assert!(lo < 0.22 && hi > 0.95, "{lo} {hi}");
    }

    #[test]
    fn augment_resized_crop_rejects_bad_input() {
        let mut rng = SeededRng::new(0);
        let x = pattern(1, 1, 8, 8);
        let e = RandomResizedCrop::new(0).apply(&x, &mut rng).unwrap_err().to_string();
        assert!(e.contains("size"), "{e}");
        let e = RandomResizedCrop::new(4).apply(&x.flatten_all().unwrap(), &mut rng).unwrap_err().to_string();
        assert!(e.contains("[64]"), "{e}");
        let e = RandomResizedCrop::new(4).with_scale((0.5, 0.1)).apply(&x, &mut rng).unwrap_err().to_string();
        assert!(e.contains("(0.5, 0.1)"), "{e}");
        let e = resized_crop(&x, CropBox { top: 4, left: 0, height: 5, width: 2 }, (2, 2)).unwrap_err().to_string();
        assert!(e.contains("8×8"), "{e}");
    }
}
