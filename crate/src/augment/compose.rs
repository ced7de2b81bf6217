//! Pipelines of augmentations and multi-view sampling.
//!
//! [0] T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
//!     Representations" (SimCLR), 2020, arXiv:2002.05709 — two views per image.
//! [1] M. Caron et al., "Emerging Properties in Self-Supervised Vision
//!     Transformers" (DINO), 2021, arXiv:2104.14294 — multi-crop: 2 global
//!     and several small local views.
//!
//! ```text
//! Compose [t₁, …, tₙ]:   x̃ = tₙ(… t₂(t₁(x)))
//! TwoViews (t, t′):       (t(x), t′(x))           t, t′ with independent random draws
//! MultiCrop:              [g(x), g(x), l(x), …, l(x)]   globals first
//! ```

use super::Transform;
use crate::rng::SeededRng;
use candle_core::{Result, Tensor};
use std::fmt;

/// Transforms applied one after the other; itself a [`Transform`].
///
/// ```
/// use sslab::augment::{Compose, HorizontalFlip, Grayscale, Transform};
/// let t = Compose::new().then(HorizontalFlip::default()).then(Grayscale::default());
/// assert_eq!(t.len(), 2);
/// ```
#[derive(Default)]
pub struct Compose {
    steps: Vec<(&'static str, Box<dyn Transform + Send + Sync>)>,
}

impl Compose {
    /// An empty pipeline (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// The pipeline followed by `t`.
    pub fn then<T: Transform + Send + Sync + 'static>(mut self, t: T) -> Self {
        let name = std::any::type_name::<T>().rsplit("::").next().unwrap_or("?");
        self.steps.push((name, Box::new(t)));
        self
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the pipeline has no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The type names of the steps, in order.
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|(n, _)| *n).collect()
    }

    /// The pipeline without the steps whose type name is in `names` (for
    /// ablations: which augmentation matters?).
    ///
    /// ```
    /// use sslab::augment::{Compose, HorizontalFlip, Grayscale};
    /// let t = Compose::new().then(HorizontalFlip::default()).then(Grayscale::default()).without(&["HorizontalFlip"]);
    /// assert_eq!(t.step_names(), ["Grayscale"]);
    /// ```
    pub fn without(mut self, names: &[&str]) -> Self {
        self.steps.retain(|(n, _)| !names.contains(n));
        self
    }
}

impl fmt::Debug for Compose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Compose[{}]", self.step_names().join(" → "))
    }
}

impl Transform for Compose {
    fn apply(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        let mut x = batch.clone();
        for (_, t) in &self.steps {
            x = t.apply(&x, rng)?;
        }
        Ok(x)
    }
}

/// Two independently augmented views of each example (SimCLR, BYOL, …).
#[derive(Debug)]
pub struct TwoViews {
    /// Pipeline of the first view.
    pub first: Compose,
    /// Pipeline of the second view (the same as `first` for symmetric methods).
    pub second: Compose,
}

impl TwoViews {
    /// Views made by `first` and `second`.
    pub fn new(first: Compose, second: Compose) -> Self {
        Self { first, second }
    }

    /// The two views of `batch`: `first` then `second`, drawing from `rng` in that order.
    ///
    /// # Shapes
    /// `(B, …)` → two tensors of the pipelines' output shapes.
    pub fn views(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<(Tensor, Tensor)> {
        let a = self.first.apply(batch, rng)?;
        let b = self.second.apply(batch, rng)?;
        Ok((a, b))
    }
}

/// DINO's multi-crop: `n_global` views from `global`, then `n_local` from `local`.
#[derive(Debug)]
pub struct MultiCrop {
    /// Pipeline of the global (large) views.
    pub global: Compose,
    /// Pipeline of the local (small) views.
    pub local: Compose,
    /// Number of global views (2 in DINO).
    pub n_global: usize,
    /// Number of local views (DINO: 6–10).
    pub n_local: usize,
}

impl MultiCrop {
    /// All views of `batch`, globals first.
    ///
    /// # Shapes
    /// `(B, C, H, W)` → `n_global` tensors `(B, C, G, G)` then `n_local` tensors `(B, C, L, L)`.
    pub fn views(&self, batch: &Tensor, rng: &mut SeededRng) -> Result<Vec<Tensor>> {
        if self.n_global == 0 {
            candle_core::bail!("MultiCrop: n_global must be positive, got 0");
        }
        let mut out = Vec::with_capacity(self.n_global + self.n_local);
        for _ in 0..self.n_global {
            out.push(self.global.apply(batch, rng)?);
        }
        for _ in 0..self.n_local {
            out.push(self.local.apply(batch, rng)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{max_diff, pattern};
    use super::super::*;

    #[test]
    fn augment_compose_applies_in_order_and_empty_is_identity() {
        let x = pattern(3, 1, 5, 5);
        let mut rng = SeededRng::new(0);
        assert_eq!(max_diff(&Compose::new().apply(&x, &mut rng).unwrap(), &x), 0.0);
        // solarize then flip == flip then solarize (they commute), and flip twice is identity
        let t = Compose::new().then(HorizontalFlip { p: 1.0 }).then(HorizontalFlip { p: 1.0 });
        assert_eq!(max_diff(&t.apply(&x, &mut rng).unwrap(), &x), 0.0);
        assert_eq!(format!("{t:?}"), "Compose[HorizontalFlip → HorizontalFlip]");
        let t = Compose::new().then(RandomResizedCrop::new(3)).then(Cutout { size: 1, p: 1.0, fill: 0.0 });
        assert_eq!(t.apply(&x, &mut rng).unwrap().dims(), &[3, 1, 3, 3]);
    }

    #[test]
    fn augment_views_same_seed_same_views_different_seed_different() {
        let x = pattern(4, 3, 28, 28);
        let pair = TwoViews::new(simclr(28), simclr(28));
        let (a1, b1) = pair.views(&x, &mut SeededRng::new(5)).unwrap();
        let (a2, b2) = pair.views(&x, &mut SeededRng::new(5)).unwrap();
        let (a3, _) = pair.views(&x, &mut SeededRng::new(6)).unwrap();
        assert_eq!(max_diff(&a1, &a2), 0.0);
        assert_eq!(max_diff(&b1, &b2), 0.0);
        assert!(max_diff(&a1, &a3) > 0.1);
        assert!(max_diff(&a1, &b1) > 0.1, "the two views differ");
        for v in [&a1, &b1, &a3] {
            let vals = super::super::test_util::values(v);
            assert!(vals.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn augment_multicrop_globals_first() {
        let x = pattern(2, 3, 32, 32);
        let views = dino(24, 12, 3).views(&x, &mut SeededRng::new(0)).unwrap();
        let dims: Vec<Vec<usize>> = views.iter().map(|v| v.dims().to_vec()).collect();
        assert_eq!(
            dims,
            vec![vec![2, 3, 24, 24], vec![2, 3, 24, 24], vec![2, 3, 12, 12], vec![2, 3, 12, 12], vec![2, 3, 12, 12]]
        );
        let bad = MultiCrop { global: Compose::new(), local: Compose::new(), n_global: 0, n_local: 1 };
        assert!(bad.views(&x, &mut SeededRng::new(0)).is_err());
    }
}
