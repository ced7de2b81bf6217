//! The augmentation pipelines of SimCLR, BYOL and DINO, and a time-series pipeline.
//!
//! [0] T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
//!     Representations" (SimCLR), 2020, arXiv:2002.05709, appendix A.
//! [1] J.-B. Grill et al., "Bootstrap Your Own Latent" (BYOL), 2020,
//!     arXiv:2006.07733, appendix B, table 6.
//! [2] M. Caron et al., "Emerging Properties in Self-Supervised Vision
//!     Transformers" (DINO), 2021, arXiv:2104.14294; github.com/facebookresearch/dino
//!     (`DataAugmentationDINO` in `main_dino.py`).
//! [3] T. T. Um et al., "Data Augmentation of Wearable Sensor Data", 2017, arXiv:1706.00527.
//!
//! ```text
//! simclr:  crop → flip → jitter(p=0.8) → gray(p=0.2) → blur(p=0.5)
//! byol:    view 1 as simclr with blur p=1.0, solarize p=0;  view 2 blur p=0.1, solarize p=0.2
//! dino:    global crops (0.4–1) and local crops (0.05–0.4) → flip → jitter → gray → blur/solarize
//! series:  crop → scaling(σ=0.1) → jitter(σ=0.05)
//! ```

use super::{
    ColorJitter, Compose, GaussianBlur, Grayscale, HorizontalFlip, Jitter, MultiCrop, RandomCrop1d, RandomResizedCrop,
    Scaling, Solarize, TwoViews,
};

/// SimCLR's blur kernel for images of side `size`: 10 % of the side, made odd,
/// at least 3 (224 → 23, 96 → 11, 32 → 3, 28 → 3).
pub fn blur_kernel_for(size: usize) -> usize {
    let k = ((size as f64) / 10.0).round() as usize;
    (k | 1).max(3)
}

fn crop(size: usize, scale: (f64, f64)) -> RandomResizedCrop {
    RandomResizedCrop::new(size).with_scale(scale)
}

fn blur(size: usize, p: f64) -> GaussianBlur {
    GaussianBlur { kernel_size: blur_kernel_for(size), sigma: (0.1, 2.0), p }
}

/// SimCLR's augmentation for small images (28×28 MNIST, 32×32 CIFAR), output `size × size`.
///
/// Random resized crop with scale (0.2, 1), horizontal flip (p = 0.5), colour
/// jitter 0.4/0.4/0.4/0.1 with p = 0.8, grayscale (p = 0.2), Gaussian blur
/// (σ ∈ [0.1, 2], kernel [`blur_kernel_for`]`(size)`, p = 0.5).
///
/// Deviations from the ImageNet recipe of \[0]: crop scale starts at 0.2, not
/// 0.08 (an 8 % crop of a 28-pixel digit is an 8×8 stroke fragment); colour
/// strength 0.5, not 1.0 (the value used for CIFAR-10 in \[0], appendix B.9);
/// \[0] drops the blur on CIFAR, we keep it with a 3-pixel kernel. On gray
/// images the saturation, hue and grayscale steps do nothing.
pub fn simclr(size: usize) -> Compose {
    Compose::new()
        .then(crop(size, (0.2, 1.0)))
        .then(HorizontalFlip { p: 0.5 })
        .then(ColorJitter::simclr(0.5))
        .then(Grayscale { p: 0.2 })
        .then(blur(size, 0.5))
}

/// SimCLR's recipe adapted to small gray-scale digits (MNIST-like data).
///
/// Random resized crop with scale (0.4, 1) and aspect ratio (3/4, 4/3),
/// brightness and contrast jitter 0.4 (p = 0.8), Gaussian blur (p = 0.5).
/// No flip: a mirrored 2, 3, 4, 5, 7 or 9 is not the same digit, so flip
/// invariance would teach the encoder to confuse classes; no crop below 40%
/// of the area, which leaves a stroke fragment rather than a digit; no
/// saturation, hue or grayscale steps, which do nothing on one channel.
pub fn digits(size: usize) -> Compose {
    Compose::new()
        .then(crop(size, (0.4, 1.0)))
        .then(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.0, hue: 0.0, p: 0.8 })
        .then(blur(size, 0.5))
}

fn byol_view(size: usize, blur_p: f64, solarize_p: f64) -> Compose {
    Compose::new()
        .then(crop(size, (0.08, 1.0)))
        .then(HorizontalFlip { p: 0.5 })
        .then(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 })
        .then(Grayscale { p: 0.2 })
        .then(blur(size, blur_p))
        .then(Solarize { threshold: 0.5, p: solarize_p })
}

/// BYOL's asymmetric pair of pipelines (\[1], table 6): crop (0.08, 1), flip,
/// jitter 0.4/0.4/0.2/0.1 (p = 0.8), grayscale (p = 0.2); the first view is
/// always blurred and never solarised, the second blurred with p = 0.1 and
/// solarised with p = 0.2. Kernel size as [`simclr`]; the crop scale is the
/// paper's 0.08 even on small images.
pub fn byol(size: usize) -> TwoViews {
    TwoViews::new(byol_view(size, 1.0, 0.0), byol_view(size, 0.1, 0.2))
}

/// DINO's multi-crop (\[2]): 2 global views of `global_size` (crop scale 0.4–1)
/// and `n_local` local views of `local_size` (crop scale 0.05–0.4), each with
/// flip, jitter 0.4/0.4/0.2/0.1 (p = 0.8) and grayscale (p = 0.2).
///
/// DINO blurs its first global view always and its second with p = 0.1 and
/// solarises only the second (p = 0.2); [`MultiCrop`] has one global
/// pipeline, so both globals use the averages (blur p = 0.55, solarize
/// p = 0.1). Local views are blurred with p = 0.5 as in DINO.
pub fn dino(global_size: usize, local_size: usize, n_local: usize) -> MultiCrop {
    let base = |size, scale| {
        Compose::new()
            .then(crop(size, scale))
            .then(HorizontalFlip { p: 0.5 })
            .then(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 })
            .then(Grayscale { p: 0.2 })
    };
    MultiCrop {
        global: base(global_size, (0.4, 1.0)).then(blur(global_size, 0.55)).then(Solarize { threshold: 0.5, p: 0.1 }),
        local: base(local_size, (0.05, 0.4)).then(blur(local_size, 0.5)),
        n_global: 2,
        n_local,
    }
}

/// DINO's multi-crop for small gray-scale digits: the [`digits`] pipeline
/// for the 2 global views of `global_size` (crop scale 0.4–1) and for the
/// `n_local` local views of `local_size` (crop scale 0.2–0.4: below a fifth
/// of a 28×28 digit a crop is a blank corner or a stroke fragment). No flip,
/// no solarisation, no colour steps, for the reasons given at [`digits`].
pub fn dino_digits(global_size: usize, local_size: usize, n_local: usize) -> MultiCrop {
    let view = |size, scale| {
        Compose::new()
            .then(crop(size, scale))
            .then(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.0, hue: 0.0, p: 0.8 })
            .then(blur(size, 0.5))
    };
    MultiCrop { global: view(global_size, (0.4, 1.0)), local: view(local_size, (0.2, 0.4)), n_global: 2, n_local }
}

/// A time-series pipeline after \[3]: crop a window of `length` samples, scale
/// each channel by `N(1, 0.1²)`, add `N(0, 0.05²)` noise.
///
/// # Shapes
/// `(B, C, T)` → `(B, C, length)`.
pub fn time_series(length: usize) -> Compose {
    Compose::new().then(RandomCrop1d::new(length)).then(Scaling { sigma: 0.1 }).then(Jitter { sigma: 0.05 })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{pattern, values};
    use super::super::Transform;
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::Device;

    #[test]
    fn augment_presets_shapes_ranges_and_kernel_sizes() {
        assert_eq!([224, 96, 32, 28, 10].map(blur_kernel_for), [23, 11, 3, 3, 3]);
        let x = pattern(4, 3, 32, 32);
        let mut rng = SeededRng::new(0);
        let (a, b) = byol(24).views(&x, &mut rng).unwrap();
        assert_eq!((a.dims(), b.dims()), (&[4, 3, 24, 24][..], &[4, 3, 24, 24][..]));
        assert!(values(&a).iter().chain(values(&b).iter()).all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(byol(24).first.step_names().last(), Some(&"Solarize"));
        let s = rng.randn((2, 3, 50), 1.0, &Device::Cpu).unwrap();
        assert_eq!(time_series(30).apply(&s, &mut rng).unwrap().dims(), &[2, 3, 30]);
    }

    /// SimCLR on MNIST: 2 × 256 images of 28×28 per step. Prints the time; run
    /// with `--nocapture` to see it. The bound is loose because the test
    /// profile is opt-level 1 and the machine is shared.
    #[test]
    fn augment_simclr_speed_on_an_mnist_batch() {
        let x = pattern(256, 1, 28, 28);
        let pair = TwoViews::new(simclr(28), simclr(28));
        let mut rng = SeededRng::new(0);
        pair.views(&x, &mut rng).unwrap();
        let t0 = std::time::Instant::now();
        let reps = 5;
        for _ in 0..reps {
            pair.views(&x, &mut rng).unwrap();
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0 / reps as f64;
        println!("simclr(28) two views of 256 MNIST images: {ms:.1} ms per step");
        assert!(ms < 500.0, "{ms} ms");
    }
}
