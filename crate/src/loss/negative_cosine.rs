//! SimSiam's negative cosine similarity with a stop-gradient on the target.
//!
//! [0] X. Chen, K. He, "Exploring Simple Siamese Representation Learning",
//!     2020, arXiv:2011.10566, eqs. (1)–(2).
//! [1] lightly 1.6.0, `lightly/loss/negative_cosine_similarity.py`,
//!     `NegativeCosineSimilarity` (torch's `cosine_similarity`, eps 1e-8),
//!     applied to `(p, z.detach())`.
//!
//! For the predictor output `p` of one view and the projection `z` of the
//! other:
//!
//! ```text
//! D(p, z) = − (1/B) Σᵢ  pᵢ·zᵢ / (max(‖pᵢ‖, ε) · max(‖zᵢ‖, ε)),   ε = 1e-8
//! ```
//!
//! with `z` treated as a constant (stop-gradient). SimSiam symmetrises as
//! `½ D(p₁, z₂) + ½ D(p₂, z₁)`: call this function twice.

use super::check_pair;
use super::similarity::row_cosine;
use candle_core::{Result, Tensor};

/// SimSiam's loss `−mean cos(p, stop_grad(z))`: `−1` when every `pᵢ` points
/// along `zᵢ`, `+1` when opposite. Only `p` receives a gradient.
///
/// # Shapes
/// `p (B, D)`, `z (B, D)` → scalar.
///
/// # Errors
/// If `p`, `z` are not both `(B, D)` of the same shape with `B, D > 0`.
pub fn negative_cosine(p: &Tensor, z: &Tensor) -> Result<Tensor> {
    check_pair("negative_cosine expects p and z", p, z, 1)?;
    row_cosine(p, &z.detach(), "negative_cosine")?.mean_all()?.neg()
}

#[cfg(test)]
// golden values are pasted as Python printed them (8–9 significant digits)
#[allow(clippy::excessive_precision)]
mod tests {
    use super::super::test_util::{assert_close, assert_grad, assert_no_grad, scalar, wave, wave_var, zeros};
    use super::*;

    /// Reference: lightly 1.6.0, torch 2.15 (CPU, f32).
    ///
    /// ```python
    /// import torch
    /// from lightly.loss import NegativeCosineSimilarity
    /// def wave(n, a, b, cos, shape):
    ///     k = torch.arange(n, dtype=torch.float32)
    ///     x = torch.cos(a * k + b) if cos else torch.sin(a * k + b)
    ///     return x.reshape(shape)
    /// p = wave(35, 0.37, 0.1, False, (7, 5)).requires_grad_()
    /// z = wave(35, 0.23, 0.0, True, (7, 5)).requires_grad_()
    /// loss = NegativeCosineSimilarity()(p, z.detach()); loss.backward()
    /// loss.item(), p.grad.flatten()[:6], p.grad.norm(), z.grad  # z.grad is None
    /// ```
    #[test]
    fn negative_cosine_matches_lightly_value_and_gradient_target_gets_none() {
        let p = wave_var(35, 0.37, 0.1, false, &[7, 5]);
        let z = wave_var(35, 0.23, 0.0, true, &[7, 5]);
        let loss = negative_cosine(p.as_tensor(), z.as_tensor()).unwrap();
        assert_close(&[scalar(&loss)], &[-0.191_617_16], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &p, &[-0.041225199, -0.024595687, -0.0083071478, 0.0057283789, 0.01608167, -0.010476649], 0.182311222);
        assert_no_grad(&g, z.as_tensor());
    }

    #[test]
    fn negative_cosine_invariants_identity_opposite_scale() {
        let z = wave(35, 0.23, 0.0, true, &[7, 5]);
        assert!((scalar(&negative_cosine(&z, &z).unwrap()) + 1.0).abs() < 1e-6);
        assert!((scalar(&negative_cosine(&z.neg().unwrap(), &z).unwrap()) - 1.0).abs() < 1e-6);
        let p = wave(35, 0.37, 0.1, false, &[7, 5]);
        let a = scalar(&negative_cosine(&p, &z).unwrap());
        let b = scalar(&negative_cosine(&(&p * 3.0).unwrap(), &(&z * 0.5).unwrap()).unwrap());
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        // a batch of one is fine; a zero row gives cos 0 (not NaN)
        assert!((scalar(&negative_cosine(&zeros(&[1, 5]), &z.narrow(0, 0, 1).unwrap()).unwrap())).abs() < 1e-7);
    }

    #[test]
    fn negative_cosine_errors_name_function_and_shapes() {
        let err = |a: &[usize], b: &[usize]| negative_cosine(&zeros(a), &zeros(b)).unwrap_err().to_string();
        let e = err(&[4, 8], &[4, 7]);
        assert!(e.contains("negative_cosine") && e.contains("[4, 8]") && e.contains("[4, 7]"), "{e}");
        assert!(err(&[0, 8], &[0, 8]).contains("[0, 8]"));
        assert!(err(&[8], &[8]).contains("[8]"));
    }
}
