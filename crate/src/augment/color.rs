//! Colour augmentations: colour jitter, random grayscale and solarisation.
//!
//! [0] T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for
//!     Contrastive Learning of Visual Representations" (SimCLR), 2020,
//!     arXiv:2002.05709, appendix A (colour distortion).
//! [1] J.-B. Grill et al., "Bootstrap Your Own Latent" (BYOL), 2020,
//!     arXiv:2006.07733, appendix B (solarisation).
//! [2] `torchvision.transforms.functional` (`adjust_brightness`,
//!     `adjust_contrast`, `adjust_saturation`, `adjust_hue`,
//!     `rgb_to_grayscale`, `solarize`), whose formulas are used here.
//!
//! ```text
//! gray(x)        = 0.2989·R + 0.587·G + 0.114·B         (ITU-R 601-2 luma, torchvision's constants)
//! brightness b:  x̃ = clip(b·x)
//! contrast c:    x̃ = clip(c·x + (1−c)·mean(gray(x)))
//! saturation s:  x̃ = clip(s·x + (1−s)·gray(x))
//! hue h:         (H, S, V) = hsv(x);  x̃ = rgb((H + h) mod 1, S, V)
//! solarize t:    x̃ = x if x < t else 1 − x
//! ```
//!
//! [`ColorJitter`] draws `b, c, s ~ U[max(0, 1−k), 1+k]` and `h ~ U[−k, k]`
//! per image and applies them in the fixed order brightness → contrast →
//! saturation → hue (torchvision shuffles the order per image; we do not).

use super::{check_p, uniform_f64, Host, Transform};
use crate::rng::SeededRng;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

const WR: f32 = 0.2989;
const WG: f32 = 0.587;
const WB: f32 = 0.114;

fn clip(v: f32) -> f32 {
    v.clamp(0.0, 1.0)
}

fn check_channels(c: usize, what: &str, shape: &[usize]) -> Result<()> {
    if c != 1 && c != 3 {
        candle_core::bail!("{what} expects 1 (gray) or 3 (RGB) channels, got shape {shape:?}");
    }
    Ok(())
}

/// Gray level of each pixel of one `(C, H, W)` image (`C` = 1 or 3).
fn gray_of(img: &[f32], hw: usize) -> Vec<f32> {
    if img.len() == hw {
        return img.to_vec();
    }
    let (r, rest) = img.split_at(hw);
    let (g, b) = rest.split_at(hw);
    (0..hw).map(|i| WR * r[i] + WG * g[i] + WB * b[i]).collect()
}

fn brightness(img: &mut [f32], f: f32) {
    img.iter_mut().for_each(|v| *v = clip(f * *v));
}

fn contrast(img: &mut [f32], hw: usize, f: f32) {
    let gray = gray_of(img, hw);
    let mean = gray.iter().sum::<f32>() / hw as f32;
    img.iter_mut().for_each(|v| *v = clip(f * *v + (1.0 - f) * mean));
}

fn saturation(img: &mut [f32], hw: usize, f: f32) {
    if img.len() != 3 * hw {
        return; // torchvision: a gray image is returned unchanged
    }
    let gray = gray_of(img, hw);
    for plane in img.chunks_mut(hw) {
        plane.iter_mut().zip(&gray).for_each(|(v, g)| *v = clip(f * *v + (1.0 - f) * g));
    }
}

/// torchvision's `_rgb2hsv`, shift, `_hsv2rgb` for one pixel.
fn shift_hue(r: f32, g: f32, b: f32, shift: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let cr = maxc - minc;
    let eqc = maxc == minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let d = if eqc { 1.0 } else { cr };
    let (rc, gc, bc) = ((maxc - r) / d, (maxc - g) / d, (maxc - b) / d);
    let hh = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = (hh / 6.0 + 1.0).rem_euclid(1.0);
    let h = (h + shift).rem_euclid(1.0);
    let v = maxc;
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let p = clip(v * (1.0 - s));
    let q = clip(v * (1.0 - s * f));
    let t = clip(v * (1.0 - s * (1.0 - f)));
    match (i as i64).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

fn hue(img: &mut [f32], hw: usize, shift: f32) {
    if img.len() != 3 * hw {
        return;
    }
    let (r, rest) = img.split_at_mut(hw);
    let (g, b) = rest.split_at_mut(hw);
    for i in 0..hw {
        (r[i], g[i], b[i]) = shift_hue(r[i], g[i], b[i], shift);
    }
}

/// Applies `f` to every image of a `(B, C, H, W)` batch with `C` = 1 or 3.
fn per_image(x: &Tensor, what: &str, mut f: impl FnMut(&mut [f32], usize)) -> Result<Tensor> {
    let mut h = Host::images(x, what)?;
    check_channels(h.c, what, x.dims())?;
    let (n, hw) = (h.per_example(), h.h * h.w);
    h.data.chunks_mut(n).for_each(|img| f(img, hw));
    h.into_images()
}

fn check_factor(f: f64, what: &str) -> Result<()> {
    if !(f.is_finite() && f >= 0.0) {
        candle_core::bail!("{what}: factor must be finite and non-negative, got {f}");
    }
    Ok(())
}

/// `torchvision.transforms.functional.adjust_brightness`: `clip(f·x)`.
///
/// # Shapes
/// `(B, C, H, W)` with `C` = 1 or 3 → same.
pub fn adjust_brightness(x: &Tensor, factor: f64) -> Result<Tensor> {
    check_factor(factor, "adjust_brightness")?;
    per_image(x, "adjust_brightness", |img, _| brightness(img, factor as f32))
}

/// `torchvision.transforms.functional.adjust_contrast`: blend with the mean gray level.
///
/// # Shapes
/// `(B, C, H, W)` with `C` = 1 or 3 → same.
pub fn adjust_contrast(x: &Tensor, factor: f64) -> Result<Tensor> {
    check_factor(factor, "adjust_contrast")?;
    per_image(x, "adjust_contrast", |img, hw| contrast(img, hw, factor as f32))
}

/// `torchvision.transforms.functional.adjust_saturation`: blend with the gray
/// image (gray images are returned unchanged).
///
/// # Shapes
/// `(B, C, H, W)` with `C` = 1 or 3 → same.
pub fn adjust_saturation(x: &Tensor, factor: f64) -> Result<Tensor> {
    check_factor(factor, "adjust_saturation")?;
    per_image(x, "adjust_saturation", |img, hw| saturation(img, hw, factor as f32))
}

/// `torchvision.transforms.functional.adjust_hue`: rotate the hue by `shift`
/// turns, `shift ∈ [−0.5, 0.5]` (gray images are returned unchanged).
///
/// # Shapes
/// `(B, C, H, W)` with `C` = 1 or 3 → same.
pub fn adjust_hue(x: &Tensor, shift: f64) -> Result<Tensor> {
    if !(-0.5..=0.5).contains(&shift) {
        candle_core::bail!("adjust_hue: shift must be in [-0.5, 0.5], got {shift}");
    }
    per_image(x, "adjust_hue", |img, hw| hue(img, hw, shift as f32))
}

/// `torchvision.transforms.functional.rgb_to_grayscale` with one output channel:
/// `0.2989·R + 0.587·G + 0.114·B` (a gray input is returned as is).
///
/// # Shapes
/// `(B, C, H, W)` with `C` = 1 or 3 → `(B, 1, H, W)`.
pub fn rgb_to_grayscale(x: &Tensor) -> Result<Tensor> {
    let h = Host::images(x, "rgb_to_grayscale")?;
    check_channels(h.c, "rgb_to_grayscale", x.dims())?;
    let (n, hw) = (h.per_example(), h.h * h.w);
    let mut out = h.with_size(1, h.h, h.w);
    for (img, o) in h.data.chunks(n).zip(out.data.chunks_mut(hw)) {
        o.copy_from_slice(&gray_of(img, hw));
    }
    out.into_images()
}

/// `torchvision.transforms.functional.solarize`: `x < t ? x : 1 − x`.
///
/// # Shapes
/// any `(B, C, H, W)` → same.
pub fn solarize(x: &Tensor, threshold: f64) -> Result<Tensor> {
    let mut h = Host::images(x, "solarize")?;
    let t = threshold as f32;
    h.data.iter_mut().for_each(|v| *v = if *v >= t { 1.0 - *v } else { *v });
    h.into_images()
}

/// Random brightness, contrast, saturation and hue changes, applied to each
/// image with probability `p`, in the fixed order brightness → contrast →
/// saturation → hue (torchvision shuffles the order per image; we do not).
/// Factors: `b, c, s ~ U[max(0, 1 − k), 1 + k]`, hue shift `~ U[−hue, hue]`.
///
/// Brightness and contrast also apply to gray images; saturation and hue only
/// to RGB images.
///
/// # Shapes
/// `(B, C, H, W)` with `C` = 1 or 3 → same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColorJitter {
    /// Brightness factor drawn from `[max(0, 1 − brightness), 1 + brightness]`.
    pub brightness: f64,
    /// Contrast factor drawn from `[max(0, 1 − contrast), 1 + contrast]`.
    pub contrast: f64,
    /// Saturation factor drawn from `[max(0, 1 − saturation), 1 + saturation]`.
    pub saturation: f64,
    /// Hue shift drawn from `[−hue, hue]`, `hue ∈ [0, 0.5]`.
    pub hue: f64,
    /// Probability of jittering an image at all (SimCLR's `RandomApply`).
    pub p: f64,
}

impl Default for ColorJitter {
    /// SimCLR's colour distortion at strength 1: `0.8, 0.8, 0.8, 0.2`, `p = 0.8`.
    fn default() -> Self {
        Self { brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.2, p: 0.8 }
    }
}

impl ColorJitter {
    /// SimCLR's jitter at strength `s`: `0.8s, 0.8s, 0.8s, 0.2s`, `p = 0.8`.
    pub fn simclr(s: f64) -> Self {
        Self { brightness: 0.8 * s, contrast: 0.8 * s, saturation: 0.8 * s, hue: 0.2 * s, p: 0.8 }
    }
}

impl Transform for ColorJitter {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        check_p(self.p, "ColorJitter")?;
        for (name, k) in [("brightness", self.brightness), ("contrast", self.contrast), ("saturation", self.saturation)]
        {
            if !(k.is_finite() && k >= 0.0) {
                candle_core::bail!("ColorJitter: {name} must be finite and non-negative, got {k}");
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            candle_core::bail!("ColorJitter: hue must be in [0, 0.5], got {}", self.hue);
        }
        let range = |k: f64| ((1.0 - k).max(0.0), 1.0 + k);
        per_image(batch, "ColorJitter", |img, hw| {
            if !rng.bernoulli(self.p) {
                return;
            }
            let (b0, b1) = range(self.brightness);
            let (c0, c1) = range(self.contrast);
            let (s0, s1) = range(self.saturation);
            let fb = uniform_f64(rng, b0, b1) as f32;
            let fc = uniform_f64(rng, c0, c1) as f32;
            let fs = uniform_f64(rng, s0, s1) as f32;
            let fh = uniform_f64(rng, -self.hue, self.hue) as f32;
            if self.brightness > 0.0 {
                brightness(img, fb);
            }
            if self.contrast > 0.0 {
                contrast(img, hw, fc);
            }
            if self.saturation > 0.0 {
                saturation(img, hw, fs);
            }
            if self.hue > 0.0 {
                hue(img, hw, fh);
            }
        })
    }
}

/// Turns an RGB image gray (all three channels equal to its gray level) with
/// probability `p`; a no-op on gray images.
///
/// # Shapes
/// `(B, C, H, W)` with `C` = 1 or 3 → same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grayscale {
    /// Probability of turning an image gray.
    pub p: f64,
}

impl Default for Grayscale {
    /// SimCLR's `p = 0.2`.
    fn default() -> Self {
        Self { p: 0.2 }
    }
}

impl Transform for Grayscale {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        check_p(self.p, "Grayscale")?;
        per_image(batch, "Grayscale", |img, hw| {
            if rng.bernoulli(self.p) && img.len() == 3 * hw {
                let gray = gray_of(img, hw);
                img.chunks_mut(hw).for_each(|plane| plane.copy_from_slice(&gray));
            }
        })
    }
}

/// Solarises each image (`x ≥ threshold → 1 − x`) with probability `p`.
///
/// # Shapes
/// `(B, C, H, W)` → same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Solarize {
    /// Pixels at or above this value are inverted.
    pub threshold: f32,
    /// Probability of solarising an image.
    pub p: f64,
}

impl Default for Solarize {
    /// BYOL's threshold 0.5 with torchvision's `RandomSolarize` default `p = 0.5`
    /// (BYOL uses `p = 0.2` on its second view, see [`byol`](super::byol)).
    fn default() -> Self {
        Self { threshold: 0.5, p: 0.5 }
    }
}

impl Transform for Solarize {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        check_p(self.p, "Solarize")?;
        let mut h = Host::images(batch, "Solarize")?;
        let n = h.per_example();
        for img in h.data.chunks_mut(n) {
            if rng.bernoulli(self.p) {
                img.iter_mut().for_each(|v| *v = if *v >= self.threshold { 1.0 - *v } else { *v });
            }
        }
        h.into_images()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, max_diff, pattern, values};
    use super::*;
    use candle_core::Device;

    fn tiny_rgb() -> Tensor {
        // one 1×2 RGB image: pixel 0 = (1, 0.5, 0), pixel 1 = (0.2, 0.4, 0.8)
        Tensor::from_vec(vec![1.0f32, 0.2, 0.5, 0.4, 0.0, 0.8], (1, 3, 1, 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn augment_grayscale_and_solarize_exact_values() {
        let x = tiny_rgb();
        let g0 = 0.2989 * 1.0 + 0.587 * 0.5;
        let g1 = 0.2989 * 0.2 + 0.587 * 0.4 + 0.114 * 0.8;
        assert_close(&rgb_to_grayscale(&x).unwrap(), &[g0, g1], 1e-6);
        let y = Grayscale { p: 1.0 }.apply(&x, &mut SeededRng::new(0)).unwrap();
        assert_close(&y, &[g0, g1, g0, g1, g0, g1], 1e-6);
        assert_eq!(max_diff(&Grayscale { p: 0.0 }.apply(&x, &mut SeededRng::new(0)).unwrap(), &x), 0.0);
        // gray input: no-op
        let g = pattern(2, 1, 3, 3);
        assert_eq!(max_diff(&Grayscale { p: 1.0 }.apply(&g, &mut SeededRng::new(0)).unwrap(), &g), 0.0);
        let s = Solarize { threshold: 0.5, p: 1.0 }.apply(&x, &mut SeededRng::new(0)).unwrap();
        assert_close(&s, &[0.0, 0.2, 0.5, 0.4, 0.0, 0.2], 1e-6); // x >= 0.5 becomes 1 - x
        assert_eq!(max_diff(&Solarize { threshold: 0.5, p: 0.0 }.apply(&x, &mut SeededRng::new(0)).unwrap(), &x), 0.0);
    }

    #[test]
    fn augment_color_functions_match_torchvision() {
        // import torch, torchvision.transforms.functional as F
        // b, c, y, x = torch.meshgrid(*[torch.arange(n) for n in (1, 3, 2, 2)], indexing="ij")
        // img = ((7*b + 3*c + 5*y + 11*x) % 17).float() / 16
        // F.adjust_brightness(img, 1.3).flatten(); F.adjust_contrast(img, 0.6).flatten()
        // F.adjust_saturation(img, 1.7).flatten(); F.adjust_hue(img, 0.1).flatten()
        // F.rgb_to_grayscale(img).flatten(); F.solarize(img, 0.5).flatten()
        // F.adjust_contrast(img[:, :1], 0.6).flatten()
        let x = pattern(1, 3, 2, 2);
        let tol = 1e-4;
        assert_close(
            &adjust_brightness(&x, 1.3).unwrap(),
            &[
                0.00000, 0.89375, 0.40625, 1.00000, 0.24375, 1.00000, 0.65000, 0.16250, 0.48750, 0.00000, 0.89375,
                0.40625,
            ],
            tol,
        );
        assert_close(
            &adjust_contrast(&x, 0.6).unwrap(),
            &[
                0.17451, 0.58701, 0.36201, 0.77451, 0.28701, 0.69951, 0.47451, 0.24951, 0.39951, 0.17451, 0.58701,
                0.36201,
            ],
            tol,
        );
        assert_close(
            &adjust_saturation(&x, 1.7).unwrap(),
            &[
                0.00000, 0.66537, 0.20555, 1.00000, 0.21178, 0.98412, 0.52430, 0.00000, 0.53053, 0.00000, 0.84305,
                0.24572,
            ],
            tol,
        );
        assert_close(
            &adjust_hue(&x, 0.1).unwrap(),
            &[
                0.03750, 0.16250, 0.35000, 1.00000, 0.00000, 0.87500, 0.31250, 0.46250, 0.37500, 0.00000, 0.68750,
                0.12500,
            ],
            tol,
        );
        assert_close(&rgb_to_grayscale(&x).unwrap(), &[0.15281, 0.71912, 0.46528, 0.40790], tol);
        assert_close(
            &solarize(&x, 0.5).unwrap(),
            &[
                0.00000, 0.31250, 0.31250, 0.00000, 0.18750, 0.12500, 0.50000, 0.12500, 0.37500, 0.00000, 0.31250,
                0.31250,
            ],
            tol,
        );
        let gray = x.narrow(1, 0, 1).unwrap();
        assert_close(&adjust_contrast(&gray, 0.6).unwrap(), &[0.20000, 0.61250, 0.38750, 0.80000], tol);
    }

    #[test]
    fn augment_color_jitter_p0_identity_p1_changes_and_stays_in_range() {
        let x = pattern(64, 3, 6, 6);
        let mut rng = SeededRng::new(2);
        let id = ColorJitter { p: 0.0, ..ColorJitter::default() }.apply(&x, &mut rng).unwrap();
        assert_eq!(max_diff(&id, &x), 0.0);
        let y = ColorJitter { p: 1.0, ..ColorJitter::default() }.apply(&x, &mut rng).unwrap();
        let (xv, yv) = (values(&x), values(&y));
        let n = 3 * 36;
        assert!(xv.chunks(n).zip(yv.chunks(n)).all(|(a, b)| a != b), "every image changes with p = 1");
        assert!(yv.iter().all(|v| (0.0..=1.0).contains(v)));
        // gray images: brightness and contrast only
        let g = pattern(8, 1, 6, 6);
        let gy = ColorJitter { p: 1.0, ..ColorJitter::default() }.apply(&g, &mut rng).unwrap();
        assert!(max_diff(&gy, &g) > 0.0);
        let e = ColorJitter { hue: 0.7, ..ColorJitter::default() }.apply(&x, &mut rng).unwrap_err().to_string();
        assert!(e.contains("0.7"), "{e}");
        let e = ColorJitter::default().apply(&pattern(1, 2, 3, 3), &mut rng).unwrap_err().to_string();
        assert!(e.contains("[1, 2, 3, 3]"), "{e}");
    }
}
