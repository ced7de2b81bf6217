//! Data augmentations: random transformations that keep an example's meaning
//! and change its pixels (or samples), driven by the crate's seeded generator
//! so that the same seed gives the same views.
//!
//! Every augmentation implements [`Transform`]: it takes a batch and draws
//! fresh random parameters for every example in it. The work is done on host
//! memory, image by image (one copy out of the tensor, one copy back), which
//! is much faster than many small Candle ops.
//!
//! | family | file | transforms |
//! |---|---|---|
//! | geometry | `crop.rs`, `flip.rs`, `cutout.rs` | [`RandomResizedCrop`], [`HorizontalFlip`], [`VerticalFlip`], [`Cutout`] |
//! | colour | `color.rs` | [`ColorJitter`], [`Grayscale`], [`Solarize`] |
//! | filtering | `blur.rs` | [`GaussianBlur`] |
//! | time series | `series.rs` | [`Jitter`], [`Scaling`], [`RandomCrop1d`] |
//! | pipelines | `compose.rs` | [`Compose`], [`TwoViews`], [`MultiCrop`] |
//! | presets | `presets.rs` | [`simclr`], [`byol`], [`dino`], [`time_series`] |
//!
//! Deterministic versions of the image operations ([`resized_crop`],
//! [`adjust_brightness`], [`adjust_contrast`], [`adjust_saturation`],
//! [`adjust_hue`], [`rgb_to_grayscale`], [`gaussian_blur`], [`solarize`])
//! match `torchvision.transforms.functional` and are tested against it.
//!
//! ```
//! use sslab::augment::{simclr, Transform, TwoViews};
//! use sslab::prelude::*;
//! let x = Tensor::full(0.5f32, (2, 1, 28, 28), &Device::Cpu)?;
//! let mut rng = SeededRng::new(0).fork("augment");
//! let pair = TwoViews::new(simclr(28), simclr(28));
//! let (a, b) = pair.views(&x, &mut rng)?;
//! assert_eq!(a.dims(), &[2, 1, 28, 28]);
//! assert_eq!(b.dims(), a.dims());
//! # Ok::<(), candle_core::Error>(())
//! ```

mod blur;
mod color;
mod compose;
mod crop;
mod cutout;
mod flip;
mod presets;
mod series;

pub use blur::{gaussian_blur, gaussian_kernel1d, GaussianBlur};
pub use color::{
    adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, rgb_to_grayscale, solarize, ColorJitter,
    Grayscale, Solarize,
};
pub use compose::{Compose, MultiCrop, TwoViews};
pub use crop::{resized_crop, CropBox, RandomResizedCrop};
pub use cutout::Cutout;
pub use flip::{HorizontalFlip, VerticalFlip};
pub use presets::{blur_kernel_for, byol, digits, dino, dino_digits, simclr, time_series};
pub use series::{Jitter, RandomCrop1d, Scaling};

use crate::rng::SeededRng;
use candle_core::{DType, Device, Result, Tensor};

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

/// A batch copied to host memory: `data` is row-major `(B, C, H, W)` (or
/// `(B, C, T)` with `h = 1`, `w = T`).
pub(crate) struct Host {
    pub data: Vec<f32>,
    pub b: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    dtype: DType,
    device: Device,
}

impl Host {
    /// Copies a `(B, C, H, W)` batch with `C, H, W > 0` to the host.
    pub fn images(x: &Tensor, what: &str) -> Result<Self> {
        let &[b, c, h, w] = x.dims() else {
            candle_core::bail!("{what} expects images (B, C, H, W), got shape {:?}", x.dims());
        };
        if c == 0 || h == 0 || w == 0 {
            candle_core::bail!("{what} expects images (B, C, H, W) with C, H, W > 0, got shape {:?}", x.dims());
        }
        Self::copy(x, b, c, h, w)
    }

    /// Copies a `(B, C, T)` batch with `C, T > 0` to the host.
    pub fn series(x: &Tensor, what: &str) -> Result<Self> {
        let &[b, c, t] = x.dims() else {
            candle_core::bail!("{what} expects series (B, C, T), got shape {:?}", x.dims());
        };
        if c == 0 || t == 0 {
            candle_core::bail!("{what} expects series (B, C, T) with C, T > 0, got shape {:?}", x.dims());
        }
        Self::copy(x, b, c, 1, t)
    }

    fn copy(x: &Tensor, b: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        let data = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self { data, b, c, h, w, dtype: x.dtype(), device: x.device().clone() })
    }

    /// Elements per example.
    pub fn per_example(&self) -> usize {
        self.c * self.h * self.w
    }

    /// An empty host batch of another size, on the same device and dtype.
    pub fn with_size(&self, c: usize, h: usize, w: usize) -> Self {
        Self { data: vec![0.0; self.b * c * h * w], b: self.b, c, h, w, dtype: self.dtype, device: self.device.clone() }
    }

    /// Back to a `(B, C, H, W)` tensor on the original device and dtype.
    pub fn into_images(self) -> Result<Tensor> {
        Tensor::from_vec(self.data, (self.b, self.c, self.h, self.w), &self.device)?.to_dtype(self.dtype)
    }

    /// Back to a `(B, C, T)` tensor on the original device and dtype.
    pub fn into_series(self) -> Result<Tensor> {
        Tensor::from_vec(self.data, (self.b, self.c, self.w), &self.device)?.to_dtype(self.dtype)
    }
}

/// Checks that a probability lies in `[0, 1]`.
pub(crate) fn check_p(p: f64, what: &str) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        candle_core::bail!("{what}: probability p must be in [0, 1], got {p}");
    }
    Ok(())
}

/// A uniform `f64` in `[lo, hi)` (`lo` when the range is empty).
pub(crate) fn uniform_f64(rng: &mut SeededRng, lo: f64, hi: f64) -> f64 {
    use rand::Rng;
    let u: f64 = rng.inner().random();
    lo + (hi - lo) * u
}

#[cfg(test)]
pub(crate) mod test_util {
    use candle_core::{Device, Tensor};

    /// A deterministic `(B, C, H, W)` test image in [0, 1]:
    /// `x[b, c, y, x] = ((7b + 3c + 5y + 11x) mod 17) / 16`, the same formula
    /// as in the Python snippets of the golden tests.
    pub fn pattern(b: usize, c: usize, h: usize, w: usize) -> Tensor {
        let mut v = Vec::with_capacity(b * c * h * w);
        for bi in 0..b {
            for ci in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        v.push(((7 * bi + 3 * ci + 5 * y + 11 * x) % 17) as f32 / 16.0);
                    }
                }
            }
        }
        Tensor::from_vec(v, (b, c, h, w), &Device::Cpu).unwrap()
    }

    /// All values of a tensor, flattened.
    pub fn values(x: &Tensor) -> Vec<f32> {
        x.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Largest absolute difference between two tensors of equal size.
    pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// Asserts that `got` matches the golden `want` to `tol`.
    pub fn assert_close(got: &Tensor, want: &[f32], tol: f32) {
        let g = values(got);
        assert_eq!(g.len(), want.len(), "length");
        for (i, (a, b)) in g.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= tol, "element {i}: got {a}, want {b}\n got {g:?}");
        }
    }
}
