//! Barlow Twins: drive the cross-correlation of two views to the identity.
//!
//! [0] J. Zbontar, L. Jing, I. Misra, Y. LeCun, S. Deny, "Barlow Twins:
//!     Self-Supervised Learning via Redundancy Reduction", 2021,
//!     arXiv:2103.03230, eqs. (1)–(2) and Algorithm 1.
//! [1] lightly 1.6.0, `lightly/loss/barlow_twins_loss.py`, `BarlowTwinsLoss`
//!     with `gather_distributed=False`.
//!
//! Each embedding dimension is standardised over the batch as
//! `F.batch_norm(z, training=True)` does (biased variance, ε = 1e-5), then
//!
//! ```text
//! ẑ = (z − mean_b z) / sqrt(var_b z + 1e-5)            (per dimension, over the batch)
//! C = ẑ1ᵀ ẑ2 / B                                        (D × D)
//! L = Σᵢ (1 − Cᵢᵢ)²  +  λ Σᵢ Σ_{j≠i} Cᵢⱼ²
//! ```
//!
//! The first term makes each dimension invariant to the augmentation, the
//! second decorrelates different dimensions (redundancy reduction).

use super::{check_pair, check_weight, eye_like};
use candle_core::{Result, Tensor};

/// Batch-normalises each column as `F.batch_norm(z, None, None, training=True)`.
fn standardize(z: &Tensor) -> Result<Tensor> {
    let centred = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let var = centred.sqr()?.mean_keepdim(0)?; // biased, as batch norm
    centred.broadcast_div(&(var + 1e-5)?.sqrt()?)
}

/// The Barlow Twins cross-correlation matrix `C = ẑ1ᵀ ẑ2 / B` of the two
/// batch-standardised views (lightly's `c`), for the loss or a heatmap.
///
/// `Cᵢⱼ` is close to the Pearson correlation of dimension `i` of `z1` with
/// dimension `j` of `z2` over the batch (the biased variance has ε = 1e-5
/// added, so identical views give a diagonal just under 1).
///
/// # Shapes
/// `z1 (B, D)`, `z2 (B, D)` → `(D, D)`.
///
/// # Errors
/// If `z1`, `z2` are not both `(B, D)` with `B ≥ 2` (batch statistics) and
/// `D > 0`.
pub fn cross_correlation(z1: &Tensor, z2: &Tensor) -> Result<Tensor> {
    cc(z1, z2, "cross_correlation expects z1 and z2")
}

fn cc(z1: &Tensor, z2: &Tensor, what: &str) -> Result<Tensor> {
    let (b, _) = check_pair(what, z1, z2, 2)?;
    standardize(z1)?.t()?.matmul(&standardize(z2)?)? / b as f64
}

/// Barlow Twins loss `Σᵢ (1 − Cᵢᵢ)² + λ Σ_{i≠j} Cᵢⱼ²` of the
/// [`cross_correlation`] matrix; equals lightly's
/// `BarlowTwinsLoss(lambda_param=lambda)(z1, z2)`. The paper uses
/// `λ = 5e-3`. Symmetric in `z1`, `z2`.
///
/// # Shapes
/// `z1 (B, D)`, `z2 (B, D)` → scalar.
///
/// # Errors
/// If `z1`, `z2` are not both `(B, D)` with `B ≥ 2` and `D > 0`, or `lambda`
/// is negative or not finite.
pub fn barlow_twins(z1: &Tensor, z2: &Tensor, lambda: f64) -> Result<Tensor> {
    check_weight("barlow_twins", "lambda", lambda)?;
    let c = cc(z1, z2, "barlow_twins expects z1 and z2")?;
    let eye = eye_like(c.dim(0)?, &c)?;
    let on_diag = (c.broadcast_sub(&eye)?.sqr()? * &eye)?.sum_all()?;
    let off_diag = (c.sqr()? * (1.0 - &eye)?)?.sum_all()?;
    on_diag + (off_diag * lambda)?
}

#[cfg(test)]
// golden values are pasted as Python printed them (8–9 significant digits)
#[allow(clippy::excessive_precision)]
mod tests {
    use super::super::test_util::{assert_close, assert_grad, scalar, wave, wave_var, zeros};
    use super::*;
    use candle_core::Device;

    /// Reference: lightly 1.6.0, torch 2.15 (CPU, f32).
    ///
    /// ```python
    /// import torch, torch.nn.functional as F
    /// from lightly.loss import BarlowTwinsLoss
    /// def wave(n, a, b, cos, shape):
    ///     k = torch.arange(n, dtype=torch.float32)
    ///     x = torch.cos(a * k + b) if cos else torch.sin(a * k + b)
    ///     return x.reshape(shape)
    /// z1 = wave(48, 0.37, 0.1, False, (8, 6)).requires_grad_()
    /// z2 = wave(48, 0.23, 0.0, True, (8, 6)).requires_grad_()
    /// loss = BarlowTwinsLoss(lambda_param=0.05)(z1, z2); loss.backward()
    /// loss.item(), z1.grad.flatten()[:6], z1.grad.norm(), z2.grad.flatten()[:6], z2.grad.norm()
    /// with torch.no_grad():
    ///     za = F.batch_norm(z1, None, None, training=True); zb = F.batch_norm(z2, None, None, training=True)
    ///     c = za.T @ zb / 8
    ///     c[0, :3], c[5, 5], c.sum()
    /// ```
    #[test]
    fn barlow_twins_matches_lightly_value_gradients_and_cross_correlation() {
        let z1 = wave_var(48, 0.37, 0.1, false, &[8, 6]);
        let z2 = wave_var(48, 0.23, 0.0, true, &[8, 6]);
        let loss = barlow_twins(z1.as_tensor(), z2.as_tensor(), 0.05).unwrap();
        assert_close(&[scalar(&loss)], &[5.048_122_4], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &z1, &[-0.50661111, -0.43996266, -0.35901272, -0.30187282, -0.26817039, -0.23963089], 2.184973);
        #[rustfmt::skip]
        assert_grad(&g, &z2, &[0.0025169149, -0.12774445, -0.22995418, -0.31768203, -0.39740548, -0.45211828], 2.20262432);

        let c = cross_correlation(z1.as_tensor(), z2.as_tensor()).unwrap();
        assert_eq!(c.dims(), &[6, 6]);
        let rows = c.to_vec2::<f32>().unwrap();
        assert_close(&rows[0][..3], &[0.012_360_495, 0.030_225_802, 0.047_498_267], 1e-4);
        assert_close(&[rows[5][5], scalar(&c.sum_all().unwrap())], &[0.033_617_988, 3.900_944], 1e-4);
    }

    #[test]
    fn barlow_twins_invariants_symmetry_and_decorrelated_identical_views() {
        let z1 = wave(48, 0.37, 0.1, false, &[8, 6]);
        let z2 = wave(48, 0.23, 0.0, true, &[8, 6]);
        let a = scalar(&barlow_twins(&z1, &z2, 5e-3).unwrap());
        let b = scalar(&barlow_twins(&z2, &z1, 5e-3).unwrap());
        assert!((a - b).abs() < 1e-5 * a, "{a} vs {b}");
        // C(z2, z1) = C(z1, z2)ᵀ
        let c12 = cross_correlation(&z1, &z2).unwrap();
        let c21 = cross_correlation(&z2, &z1).unwrap();
        let d = (c12.t().unwrap() - c21).unwrap().abs().unwrap().max_all().unwrap();
        assert!(scalar(&d) < 1e-6);
        // identical views with uncorrelated columns (Hadamard, any scale and
        // shift): C = I·var/(var + 1e-5), so the loss is ~0 whatever λ
        let views = Tensor::new(
            &[[3f32, 0.5, 2.], [3., -0.5, -2.], [-3., 0.5, -2.], [-3., -0.5, 2.]],
            &Device::Cpu,
        )
        .unwrap();
        let shifted = (&views + 7.0).unwrap();
        let l = scalar(&barlow_twins(&views, &shifted, 1.0).unwrap());
        assert!(l < 1e-8, "{l}");
        let c = cross_correlation(&views, &views).unwrap().to_vec2::<f32>().unwrap();
        for (i, r) in c.iter().enumerate() {
            for (j, x) in r.iter().enumerate() {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((x - want).abs() < 1e-4, "C[{i}][{j}] = {x}");
            }
        }
        // fully redundant columns are penalised by λ: the same column twice gives C = 1 everywhere
        let col = Tensor::new(&[[1f32], [-1.], [2.], [-2.]], &Device::Cpu).unwrap();
        let red = Tensor::cat(&[&col, &col], 1).unwrap();
        let l0 = scalar(&barlow_twins(&red, &red, 0.0).unwrap());
        let l1 = scalar(&barlow_twins(&red, &red, 1.0).unwrap());
        assert!(l0 < 1e-8 && (l1 - 2.0).abs() < 1e-4, "{l0} {l1}");
    }

    #[test]
    fn barlow_twins_errors_name_function_and_shapes() {
        let err = |a: &[usize], b: &[usize], l: f64| barlow_twins(&zeros(a), &zeros(b), l).unwrap_err().to_string();
        let e = err(&[8, 6], &[8, 5], 5e-3);
        assert!(e.contains("barlow_twins") && e.contains("[8, 6]") && e.contains("[8, 5]"), "{e}");
        let e = err(&[1, 6], &[1, 6], 5e-3);
        assert!(e.contains("B >= 2") && e.contains("[1, 6]"), "{e}");
        assert!(err(&[0, 6], &[0, 6], 5e-3).contains("[0, 6]"));
        assert!(err(&[6], &[6], 5e-3).contains("[6]"));
        for l in [-1.0, f64::NAN] {
            let e = err(&[8, 6], &[8, 6], l);
            assert!(e.contains("barlow_twins") && e.contains("lambda"), "{e}");
        }
        let e = cross_correlation(&zeros(&[1, 3]), &zeros(&[1, 3])).unwrap_err().to_string();
        assert!(e.contains("cross_correlation") && e.contains("[1, 3]"), "{e}");
    }
}
