//! BYOL's regression loss: normalised mean squared error to the target.
//!
//! [0] J.-B. Grill, F. Strub, F. Altché, C. Tallec, P. H. Richemond et al.,
//!     "Bootstrap Your Own Latent: A New Approach to Self-Supervised
//!     Learning", 2020, arXiv:2006.07733, eq. (2).
//! [1] lightly 1.6.0 trains BYOL with `lightly/loss/negative_cosine_similarity.py`
//!     (`NegativeCosineSimilarity`), which is this loss up to `2 + 2·(−cos)`;
//!     the form below is the paper's and the authors' (deepmind-research/byol,
//!     `regression_loss`).
//!
//! For the online prediction `p` of one view and the target projection `z` of
//! the other:
//!
//! ```text
//! L = (1/B) Σᵢ ‖ pᵢ/‖pᵢ‖ − zᵢ/‖zᵢ‖ ‖²  =  (1/B) Σᵢ (2 − 2 cos(pᵢ, zᵢ))
//! ```
//!
//! with `z` treated as a constant (it comes from the momentum target
//! network). BYOL symmetrises by swapping the views: call this twice.

use super::check_pair;
use super::similarity::row_cosine;
use candle_core::{Result, Tensor};

/// BYOL's loss `mean(2 − 2 cos(p, stop_grad(z)))`: 0 when aligned, 4 when
/// opposite. Only `p` receives a gradient.
///
/// # Shapes
/// `p (B, D)`, `z (B, D)` → scalar.
///
/// # Errors
/// If `p`, `z` are not both `(B, D)` of the same shape with `B, D > 0`.
pub fn byol(p: &Tensor, z: &Tensor) -> Result<Tensor> {
    check_pair("byol expects p and z", p, z, 1)?;
    row_cosine(p, &z.detach(), "byol")?.affine(-2.0, 2.0)?.mean_all()
}

#[cfg(test)]
// golden values are pasted as Python printed them (8–9 significant digits)
#[allow(clippy::excessive_precision)]
mod tests {
    use super::super::test_util::{assert_close, assert_grad, assert_no_grad, scalar, wave, wave_var, zeros};
    use super::*;

    /// Reference: torch 2.15 (CPU, f32).
    ///
    /// ```python
    /// import torch, torch.nn.functional as F
    /// def wave(n, a, b, cos, shape):
    ///     k = torch.arange(n, dtype=torch.float32)
    ///     x = torch.cos(a * k + b) if cos else torch.sin(a * k + b)
    ///     return x.reshape(shape)
    /// p = wave(35, 0.37, 0.1, False, (7, 5)).requires_grad_()
    /// z = wave(35, 0.23, 0.0, True, (7, 5)).requires_grad_()
    /// loss = (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean(); loss.backward()
    /// loss.item(), p.grad.flatten()[:6], p.grad.norm(), z.grad  # z.grad is None
    /// ```
    #[test]
    fn byol_matches_torch_value_and_gradient_target_gets_none() {
        let p = wave_var(35, 0.37, 0.1, false, &[7, 5]);
        let z = wave_var(35, 0.23, 0.0, true, &[7, 5]);
        let loss = byol(p.as_tensor(), z.as_tensor()).unwrap();
        assert_close(&[scalar(&loss)], &[1.616_765_6], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &p, &[-0.082450397, -0.049191374, -0.016614296, 0.011456758, 0.032163341, -0.020953298], 0.364622444);
        assert_no_grad(&g, z.as_tensor());
    }

    #[test]
    fn byol_invariants_identity_opposite_and_relation_to_simsiam() {
        let z = wave(35, 0.23, 0.0, true, &[7, 5]);
        assert!(scalar(&byol(&z, &z).unwrap()).abs() < 1e-6);
        assert!((scalar(&byol(&z.neg().unwrap(), &z).unwrap()) - 4.0).abs() < 1e-5);
        let p = wave(35, 0.37, 0.1, false, &[7, 5]);
        let b = scalar(&byol(&p, &z).unwrap());
        let s = scalar(&super::super::negative_cosine(&p, &z).unwrap());
        assert!((b - (2.0 + 2.0 * s)).abs() < 1e-5, "{b} vs 2 + 2·{s}");
    }

    #[test]
    fn byol_errors_name_function_and_shapes() {
        let err = |a: &[usize], b: &[usize]| byol(&zeros(a), &zeros(b)).unwrap_err().to_string();
        let e = err(&[4, 8], &[5, 8]);
        assert!(e.contains("byol") && e.contains("[4, 8]") && e.contains("[5, 8]"), "{e}");
        assert!(err(&[4, 0], &[4, 0]).contains("[4, 0]"));
        assert!(err(&[2, 4, 8], &[2, 4, 8]).contains("[2, 4, 8]"));
    }
}
