//! The seeded random generator behind everything random in a run.
//!
//! Candle's CPU backend cannot be seeded (`Device::set_seed` is unsupported),
//! so `Tensor::randn` and Candle's default initialisers differ on every run.
//! `sslab` draws all random numbers — parameter initialisation, data order,
//! subset draws, masks and augmentations — from [`SeededRng`], so one seed
//! reproduces a run exactly.
//!
//! Independent streams come from [`SeededRng::fork`], which derives a new
//! generator from the seed and a name, not from the draws made so far: adding
//! a draw in one place does not change the numbers elsewhere.

use candle_core::{Device, Result, Shape, Tensor};
use rand_chacha::ChaCha12Rng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// 64-bit FNV-1a hash: stable across platforms and Rust versions.
pub(crate) fn fnv1a(bytes: &[u8], start: u64) -> u64 {
    let mut h = start ^ 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Derives the seed of a named stream from a base seed.
pub fn derive_seed(seed: u64, stream: &str) -> u64 {
    // splitmix64 finaliser over the FNV hash, so nearby seeds give unrelated streams.
    let mut z = fnv1a(stream.as_bytes(), seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A reproducible random generator: ChaCha12 (`rand_chacha`), whose stream
/// is fixed by its specification, with `rand` and `rand_distr` pinned to
/// exact versions for the conversions (floats, ranges, shuffles, normals),
/// so a seed gives the same numbers with every build of the crate.
#[derive(Clone, Debug)]
pub struct SeededRng {
    seed: u64,
    inner: ChaCha12Rng,
}

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, inner: ChaCha12Rng::seed_from_u64(seed) }
    }

    /// The seed this generator was made from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// An independent generator for the named stream (e.g. `"data-order"`),
    /// derived from this generator's seed only.
    pub fn fork(&self, stream: &str) -> Self {
        Self::new(derive_seed(self.seed, stream))
    }

    /// The underlying `rand` generator, for use with the `rand` API.
    pub fn inner(&mut self) -> &mut ChaCha12Rng {
        &mut self.inner
    }

    /// A uniform number in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        self.inner.random::<f32>()
    }

    /// A uniform number in `[lo, hi)`.
    pub fn uniform_in(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// A standard normal number.
    pub fn normal(&mut self) -> f32 {
        StandardNormal.sample(&mut self.inner)
    }

    /// A uniform integer in `0..n` (`n` must be positive).
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            0
        } else {
            self.inner.random_range(0..n)
        }
    }

    /// `true` with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.inner.random::<f64>() < p
    }

    /// Shuffles a slice in place.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        xs.shuffle(&mut self.inner)
    }

    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }

    /// `k` distinct indices from `0..n`, in random order (`k <= n`).
    pub fn choose(&mut self, n: usize, k: usize) -> Result<Vec<usize>> {
        if k > n {
            candle_core::bail!("cannot choose {k} distinct items out of {n}");
        }
        let mut p = self.permutation(n);
        p.truncate(k);
        Ok(p)
    }

    /// An f32 tensor of normal samples with mean 0 and standard deviation `std`.
    pub fn randn<S: Into<Shape>>(&mut self, shape: S, std: f64, dev: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let data: Vec<f32> = (0..shape.elem_count()).map(|_| self.normal() * std as f32).collect();
        Tensor::from_vec(data, shape, dev)
    }

    /// An f32 tensor of uniform samples in `[lo, hi)`.
    pub fn rand_uniform<S: Into<Shape>>(&mut self, shape: S, lo: f64, hi: f64, dev: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let data: Vec<f32> =
            (0..shape.elem_count()).map(|_| self.uniform_in(lo as f32, hi as f32)).collect();
        Tensor::from_vec(data, shape, dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See `rng_stream_is_fixed_by_the_crate`.
    const KNOWN_SEED_0: (f32, f32, usize, [usize; 6]) = (0.801_459_25, 0.132_379_03, 773, [5, 0, 4, 2, 1, 3]);
    const KNOWN_DATA_ORDER_SEED: u64 = 5_700_229_736_406_820_138;

    #[test]
    fn rng_same_seed_same_numbers() {
        let (mut a, mut b) = (SeededRng::new(7), SeededRng::new(7));
        let xa: Vec<f32> = (0..5).map(|_| a.normal()).collect();
        let xb: Vec<f32> = (0..5).map(|_| b.normal()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, (0..5).map(|_| SeededRng::new(8).normal()).collect::<Vec<_>>());
    }

    #[test]
    fn rng_stream_is_fixed_by_the_crate() {
        // A known-answer check: these are the first draws for seed 0 with
        // ChaCha12 and the pinned conversions. If a dependency update changes
        // them, every committed notebook number changes with it: this test
        // fails so that the update is made on purpose (and the notebooks re-run).
        let mut r = SeededRng::new(0);
        let got = (r.uniform(), r.normal(), r.below(1000), <[usize; 6]>::try_from(r.permutation(6)).unwrap());
        assert_eq!(got, KNOWN_SEED_0, "the random stream changed");
        assert_eq!(derive_seed(0, "data-order"), KNOWN_DATA_ORDER_SEED);
    }

    #[test]
    fn rng_fork_ignores_draws_and_differs_by_name() {
        let a = SeededRng::new(3);
        let mut b = SeededRng::new(3);
        b.uniform();
        assert_eq!(a.fork("x").uniform(), b.fork("x").uniform());
        assert_ne!(a.fork("x").uniform(), a.fork("y").uniform());
    }

    #[test]
    fn rng_tensors_have_the_requested_moments() {
        let mut r = SeededRng::new(1);
        let t = r.randn(&[100_000], 2.0, &Device::Cpu).unwrap();
        let v: Vec<f32> = t.to_vec1().unwrap();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.03 && (var.sqrt() - 2.0).abs() < 0.03, "{mean} {var}");
        let u: Vec<f32> = r.rand_uniform(&[1000], -1.0, 1.0, &Device::Cpu).unwrap().to_vec1().unwrap();
        assert!(u.iter().all(|x| (-1.0..1.0).contains(x)));
        assert!(r.choose(3, 4).is_err());
        let mut c = r.choose(10, 10).unwrap();
        c.sort();
        assert_eq!(c, (0..10).collect::<Vec<_>>());
    }
}
