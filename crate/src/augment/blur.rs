//! Gaussian blur with a random width.
//!
//! [0] T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
//!     Representations" (SimCLR), 2020, arXiv:2002.05709, appendix A: blur
//!     with probability 0.5, σ ~ U[0.1, 2.0], kernel 10 % of the image side.
//! [1] `torchvision.transforms.functional.gaussian_blur` (kernel and reflect
//!     padding used here).
//!
//! ```text
//! g[i] = exp(−½ (i/σ)²),  i = −(k−1)/2 … (k−1)/2,   g ← g / Σ g
//! x̃ = g ⊛ (g ⊛ x along rows) along columns            (separable, reflect padding)
//! ```
//!
//! Reflect padding mirrors without repeating the edge pixel (`d c b | a b c d | c b a`);
//! kernels wider than the image reflect back and forth.

use super::{check_p, uniform_f64, Host, Transform};
use crate::rng::SeededRng;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// The normalised 1-D Gaussian kernel of odd length `kernel_size` (torchvision's `_get_gaussian_kernel1d`).
pub fn gaussian_kernel1d(kernel_size: usize, sigma: f64) -> Result<Vec<f32>> {
    if kernel_size == 0 || kernel_size.is_multiple_of(2) {
        candle_core::bail!("gaussian_kernel1d: kernel_size must be odd and positive, got {kernel_size}");
    }
    if !(sigma.is_finite() && sigma > 0.0) {
        candle_core::bail!("gaussian_kernel1d: sigma must be positive and finite, got {sigma}");
    }
    let half = (kernel_size - 1) as f64 / 2.0;
    let g: Vec<f64> = (0..kernel_size).map(|i| (-0.5 * ((i as f64 - half) / sigma).powi(2)).exp()).collect();
    let total: f64 = g.iter().sum();
    Ok(g.into_iter().map(|v| (v / total) as f32).collect())
}

/// Index `i` reflected into `0..n` (no edge repeat).
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

/// Blurs each `h × w` plane of `data` in place with the 1-D kernel `k`.
fn blur_planes(data: &mut [f32], h: usize, w: usize, k: &[f32]) {
    let r = (k.len() / 2) as isize;
    // Precompute source indices per output position (with reflection).
    let idx_x: Vec<usize> = (0..w as isize).flat_map(|x| (-r..=r).map(move |d| reflect(x + d, w))).collect();
    let idx_y: Vec<usize> = (0..h as isize).flat_map(|y| (-r..=r).map(move |d| reflect(y + d, h))).collect();
    let n = k.len();
    let mut tmp = vec![0f32; h * w];
    for plane in data.chunks_mut(h * w) {
        for y in 0..h {
            let row = &plane[y * w..(y + 1) * w];
            for x in 0..w {
                let ix = &idx_x[x * n..(x + 1) * n];
                tmp[y * w + x] = k.iter().zip(ix).map(|(a, &i)| a * row[i]).sum();
            }
        }
        for y in 0..h {
            let iy = &idx_y[y * n..(y + 1) * n];
            let out = &mut plane[y * w..(y + 1) * w];
            out.fill(0.0);
            for (a, &sy) in k.iter().zip(iy) {
                let src = &tmp[sy * w..(sy + 1) * w];
                out.iter_mut().zip(src).for_each(|(o, s)| *o += a * s);
            }
        }
    }
}

/// Blurs every image with a `kernel_size × kernel_size` Gaussian of width
/// `sigma`, as `torchvision.transforms.functional.gaussian_blur(x, [k, k], [σ, σ])`.
///
/// # Shapes
/// `(B, C, H, W)` → same.
pub fn gaussian_blur(x: &Tensor, kernel_size: usize, sigma: f64) -> Result<Tensor> {
    let k = gaussian_kernel1d(kernel_size, sigma)?;
    let mut h = Host::images(x, "gaussian_blur")?;
    let (hh, ww) = (h.h, h.w);
    blur_planes(&mut h.data, hh, ww, &k);
    h.into_images()
}

/// Blurs each image with probability `p`, with `σ ~ U[sigma.0, sigma.1]` drawn per image.
///
/// # Shapes
/// `(B, C, H, W)` → same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaussianBlur {
    /// Odd kernel side in pixels (SimCLR: 10 % of the image side).
    pub kernel_size: usize,
    /// Range of the standard deviation, in pixels.
    pub sigma: (f64, f64),
    /// Probability of blurring an image.
    pub p: f64,
}

impl Default for GaussianBlur {
    /// SimCLR on 224-pixel ImageNet crops: kernel 23, σ ∈ [0.1, 2], `p = 0.5`.
    fn default() -> Self {
        Self { kernel_size: 23, sigma: (0.1, 2.0), p: 0.5 }
    }
}

impl Transform for GaussianBlur {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        check_p(self.p, "GaussianBlur")?;
        let (s0, s1) = self.sigma;
        if !(s0 > 0.0 && s0 <= s1 && s1.is_finite()) {
            candle_core::bail!("GaussianBlur: sigma must satisfy 0 < lo <= hi, got {:?}", self.sigma);
        }
        gaussian_kernel1d(self.kernel_size, s0)?; // validates kernel_size
        let mut h = Host::images(batch, "GaussianBlur")?;
        let (n, hh, ww) = (h.per_example(), h.h, h.w);
        for img in h.data.chunks_mut(n) {
            if rng.bernoulli(self.p) {
                let k = gaussian_kernel1d(self.kernel_size, uniform_f64(rng, s0, s1))?;
                blur_planes(img, hh, ww, &k);
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

    #[test]
    fn augment_gaussian_blur_matches_torchvision() {
        // import torch, torchvision.transforms.functional as F
        // b, c, y, x = torch.meshgrid(*[torch.arange(n) for n in (1, 1, 4, 5)], indexing="ij")
        // img = ((7*b + 3*c + 5*y + 11*x) % 17).float() / 16
        // F.gaussian_blur(img, [3, 3], [0.8, 0.8]).flatten()
        // F.gaussian_blur(img, [5, 5], [1.5, 1.5]).flatten()
        let x = pattern(1, 1, 4, 5);
        assert_close(&gaussian_blur(&x, 3, 0.8).unwrap(), &GOLDEN3, 1e-4);
        assert_close(&gaussian_blur(&x, 5, 1.5).unwrap(), &GOLDEN5, 1e-4);
    }
    const GOLDEN3: [f32; 20] = [
        0.47799, 0.58294, 0.59443, 0.63033, 0.71086, 0.51974, 0.61351, 0.62500, 0.57580, 0.59770, 0.56713, 0.57580,
        0.61170, 0.56250, 0.49930, 0.60888, 0.53450, 0.55717, 0.59307, 0.52987,
    ];
    const GOLDEN5: [f32; 20] = [
        0.57355, 0.57731, 0.59104, 0.60992, 0.59527, 0.57763, 0.58149, 0.58779, 0.60307, 0.59167, 0.56583, 0.57318,
        0.57674, 0.57751, 0.57783, 0.58569, 0.58484, 0.57732, 0.55894, 0.55925,
    ];

    #[test]
    fn augment_gaussian_blur_keeps_constants_and_mass() {
        let c = Tensor::full(0.37f32, (2, 3, 9, 9), &Device::Cpu).unwrap();
        let t = GaussianBlur { kernel_size: 5, sigma: (0.5, 2.0), p: 1.0 };
        assert!(max_diff(&t.apply(&c, &mut SeededRng::new(0)).unwrap(), &c) < 1e-6);
        // a blob far from the border keeps its total mass
        let mut v = vec![0f32; 21 * 21];
        v[10 * 21 + 10] = 1.0;
        v[9 * 21 + 11] = 0.5;
        let x = Tensor::from_vec(v, (1, 1, 21, 21), &Device::Cpu).unwrap();
        let y = t.apply(&x, &mut SeededRng::new(1)).unwrap();
        let mass: f32 = values(&y).iter().sum();
        assert!((mass - 1.5).abs() < 1e-5, "{mass}");
        assert!(values(&y).iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(max_diff(&GaussianBlur { p: 0.0, ..t.clone() }.apply(&x, &mut SeededRng::new(1)).unwrap(), &x), 0.0);
        // kernel wider than the image: still defined, still constant-preserving
        let small = Tensor::full(0.5f32, (1, 1, 2, 3), &Device::Cpu).unwrap();
        assert!(max_diff(&gaussian_blur(&small, 7, 2.0).unwrap(), &small) < 1e-6);
        let e = GaussianBlur { kernel_size: 4, ..t.clone() }.apply(&x, &mut SeededRng::new(1)).unwrap_err();
        assert!(e.to_string().contains("got 4"), "{e}");
        let e = GaussianBlur { sigma: (0.0, 1.0), ..t }.apply(&x, &mut SeededRng::new(1)).unwrap_err();
        assert!(e.to_string().contains("(0.0, 1.0)"), "{e}");
    }

    #[test]
    fn augment_gaussian_blur_reflect_index() {
        assert_eq!((-3..8).map(|i| reflect(i, 4)).collect::<Vec<_>>(), vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(reflect(-5, 1), 0);
    }
}
