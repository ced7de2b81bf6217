//! Augmentations of multichannel time series (wearable-sensor data).
//!
//! [0] T. T. Um et al., "Data Augmentation of Wearable Sensor Data for
//!     Parkinson's Disease Monitoring using Convolutional Neural Networks",
//!     2017, arXiv:1706.00527, §3.
//! [1] github.com/terryum/Data-Augmentation-For-Wearable-Sensor-Data
//!     (`DA_Jitter`, `DA_Scaling`; σ = 0.05 and 0.1 there).
//!
//! ```text
//! jitter:   x̃[c, t] = x[c, t] + ε[c, t],     ε ~ N(0, σ²)
//! scaling:  x̃[c, t] = α[c] · x[c, t],         α[c] ~ N(1, σ²)   (one factor per channel)
//! crop:     x̃[c, t] = x[c, s + t],            s ~ U{0..T−L},  t < L
//! ```

use super::{Host, Transform};
use crate::rng::SeededRng;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

fn check_sigma(sigma: f64, what: &str) -> Result<()> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        candle_core::bail!("{what}: sigma must be finite and non-negative, got {sigma}");
    }
    Ok(())
}

/// Adds Gaussian noise of standard deviation `sigma` to every sample.
///
/// # Shapes
/// `(B, C, T)` → `(B, C, T)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Jitter {
    /// Standard deviation of the additive noise.
    pub sigma: f64,
}

impl Default for Jitter {
    /// Um et al.'s `σ = 0.05`.
    fn default() -> Self {
        Self { sigma: 0.05 }
    }
}

impl Transform for Jitter {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        check_sigma(self.sigma, "Jitter")?;
        let mut x = Host::series(batch, "Jitter")?;
        let s = self.sigma as f32;
        x.data.iter_mut().for_each(|v| *v += s * rng.normal());
        x.into_series()
    }
}

/// Multiplies each channel of each series by a factor drawn from `N(1, σ²)`.
///
/// # Shapes
/// `(B, C, T)` → `(B, C, T)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// Standard deviation of the multiplicative factor.
    pub sigma: f64,
}

impl Default for Scaling {
    /// Um et al.'s `σ = 0.1`.
    fn default() -> Self {
        Self { sigma: 0.1 }
    }
}

impl Transform for Scaling {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        check_sigma(self.sigma, "Scaling")?;
        let mut x = Host::series(batch, "Scaling")?;
        let (t, s) = (x.w, self.sigma as f32);
        for channel in x.data.chunks_mut(t) {
            let a = 1.0 + s * rng.normal();
            channel.iter_mut().for_each(|v| *v *= a);
        }
        x.into_series()
    }
}

/// Cuts a random window of `length` samples (the same window in every
/// channel of a series). No `Default`: the length depends on the data.
///
/// # Shapes
/// `(B, C, T)` → `(B, C, length)`, `length <= T`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomCrop1d {
    /// Window length in samples.
    pub length: usize,
}

impl RandomCrop1d {
    /// A crop to windows of `length` samples.
    pub fn new(length: usize) -> Self {
        Self { length }
    }
}

impl Transform for RandomCrop1d {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        let x = Host::series(batch, "RandomCrop1d")?;
        let (c, t, l) = (x.c, x.w, self.length);
        if l == 0 || l > t {
            candle_core::bail!(
                "RandomCrop1d: length must be in 1..={t} for series of shape {:?}, got {l}",
                batch.dims()
            );
        }
        let mut out = x.with_size(c, 1, l);
        for (src, dst) in x.data.chunks(c * t).zip(out.data.chunks_mut(c * l)) {
            let s = rng.below(t - l + 1);
            for (sc, dc) in src.chunks(t).zip(dst.chunks_mut(l)) {
                dc.copy_from_slice(&sc[s..s + l]);
            }
        }
        out.into_series()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::values;
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn augment_series_jitter_and_scaling_have_the_requested_spread() {
        let x = Tensor::ones((200, 3, 100), DType::F32, &Device::Cpu).unwrap();
        let j = values(&Jitter { sigma: 0.05 }.apply(&x, &mut SeededRng::new(0)).unwrap());
        let mean = j.iter().sum::<f32>() / j.len() as f32;
        let sd = (j.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / j.len() as f32).sqrt();
        assert!((mean - 1.0).abs() < 0.002 && (sd - 0.05).abs() < 0.002, "{mean} {sd}");
        let s = values(&Scaling { sigma: 0.1 }.apply(&x, &mut SeededRng::new(0)).unwrap());
        // one factor per (series, channel): constant along time
        assert!(s.chunks(100).all(|c| c.iter().all(|v| *v == c[0])));
        let f: Vec<f32> = s.chunks(100).map(|c| c[0]).collect();
        let m = f.iter().sum::<f32>() / f.len() as f32;
        let sd = (f.iter().map(|v| (v - m).powi(2)).sum::<f32>() / f.len() as f32).sqrt();
        assert!((m - 1.0).abs() < 0.02 && (sd - 0.1).abs() < 0.015, "{m} {sd}");
        assert_eq!(values(&Jitter { sigma: 0.0 }.apply(&x, &mut SeededRng::new(0)).unwrap()), values(&x));
        assert!(Jitter { sigma: -1.0 }.apply(&x, &mut SeededRng::new(0)).is_err());
    }

    #[test]
    fn augment_series_crop_cuts_a_contiguous_window() {
        // x[b, c, t] = 1000 b + 100 c + t
        let (b, c, t) = (50, 2, 20);
        let v: Vec<f32> = (0..b * c * t).map(|i| (1000 * (i / (c * t)) + 100 * (i / t % c) + i % t) as f32).collect();
        let x = Tensor::from_vec(v, (b, c, t), &Device::Cpu).unwrap();
        let y = RandomCrop1d::new(8).apply(&x, &mut SeededRng::new(4)).unwrap();
        assert_eq!(y.dims(), &[50, 2, 8]);
        let mut starts = std::collections::BTreeSet::new();
        for (i, ex) in values(&y).chunks(16).enumerate() {
            let s = ex[0] - (1000 * i) as f32;
            starts.insert(s as usize);
            for (k, v) in ex.iter().enumerate() {
                assert_eq!(*v, (1000 * i + 100 * (k / 8)) as f32 + s + (k % 8) as f32);
            }
        }
        assert!(starts.len() > 6 && *starts.last().unwrap() <= 12, "{starts:?}");
        let e = RandomCrop1d::new(21).apply(&x, &mut SeededRng::new(4)).unwrap_err().to_string();
        assert!(e.contains("[50, 2, 20]") && e.contains("21"), "{e}");
        let e =
            Jitter::default().apply(&Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(), &mut SeededRng::new(0));
        assert!(e.unwrap_err().to_string().contains("[2, 3]"));
    }
}
