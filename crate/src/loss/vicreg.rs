//! VICReg: variance, invariance and covariance regularisation.
//!
//! [0] A. Bardes, J. Ponce, Y. LeCun, "VICReg: Variance-Invariance-Covariance
//!     Regularization for Self-Supervised Learning", 2021, arXiv:2105.04906,
//!     eqs. (1)–(6).
//! [1] lightly 1.6.0, `lightly/loss/vicreg_loss.py`, `VICRegLoss` and its
//!     functions `invariance_loss`, `variance_loss`, `covariance_loss`
//!     (after facebookresearch/vicreg).
//!
//! For two views `z1`, `z2` of shape `(B, D)`:
//!
//! ```text
//! s(z, Z)   = (1/B·D) Σ ‖z − Z‖²                                   invariance (MSE)
//! v(Z)      = (1/D) Σⱼ max(0, 1 − sqrt(Var_b(Z·ⱼ) + ε))             variance, unbiased Var, ε = 1e-4
//! C(Z)      = (Z − Z̄)ᵀ (Z − Z̄) / (B − 1)                            covariance matrix (D × D)
//! c(Z)      = (1/D) Σ_{i≠j} C(Z)ᵢⱼ²                                 covariance term
//!
//! L = λ s(z1, z2) + μ · ½ (v(z1) + v(z2)) + ν (c(z1) + c(z2))
//! ```
//!
//! (lightly averages the two variance terms and sums the two covariance
//! terms; the paper's defaults are λ = μ = 25, ν = 1).

use super::{check_pair, check_weight, eye_like};
use candle_core::{Result, Tensor};

/// Eps inside the square root of the variance term, as lightly's default.
const EPS: f64 = 1e-4;

fn check_single(fname: &str, z: &Tensor) -> Result<(usize, usize)> {
    super::check_float(fname, &[z])?;
    match z.dims() {
        &[b, d] if b >= 2 && d > 0 => Ok((b, d)),
        s => candle_core::bail!("{fname} expects z (B, D) with B >= 2 and D > 0, got {s:?}"),
    }
}

/// VICReg's invariance term: the mean squared error `(1/B·D) Σ (z1 − z2)²`
/// (lightly's `invariance_loss`, i.e. `F.mse_loss`).
///
/// # Shapes
/// `z1 (B, D)`, `z2 (B, D)` → scalar.
///
/// # Errors
/// If `z1`, `z2` are not both `(B, D)` of the same shape with `B, D > 0`.
pub fn vicreg_invariance(z1: &Tensor, z2: &Tensor) -> Result<Tensor> {
    check_pair("vicreg_invariance expects z1 and z2", z1, z2, 1)?;
    (z1 - z2)?.sqr()?.mean_all()
}

/// VICReg's variance term: a hinge on the standard deviation of every
/// dimension, `(1/D) Σⱼ relu(1 − sqrt(Var(z·ⱼ) + eps))`, with the unbiased
/// variance over the batch (lightly's `variance_loss`). Zero once every
/// dimension's std reaches 1; near 1 at collapse.
///
/// # Shapes
/// `z (B, D)` → scalar.
///
/// # Errors
/// If `z` is not `(B, D)` with `B ≥ 2` (unbiased variance) and `D > 0`, or
/// `eps` is negative or not finite.
pub fn vicreg_variance(z: &Tensor, eps: f64) -> Result<Tensor> {
    check_single("vicreg_variance", z)?;
    check_weight("vicreg_variance", "eps", eps)?;
    variance(z, eps)
}

fn variance(z: &Tensor, eps: f64) -> Result<Tensor> {
    let std = (z.var_keepdim(0)? + eps)?.sqrt()?;
    std.affine(-1.0, 1.0)?.relu()?.mean_all()
}

/// VICReg's covariance term: the sum of the squared off-diagonal entries of
/// the covariance matrix `(Z − Z̄)ᵀ(Z − Z̄) / (B − 1)`, divided by `D`
/// (lightly's `covariance_loss`). Zero when the dimensions are uncorrelated.
///
/// # Shapes
/// `z (B, D)` → scalar.
///
/// # Errors
/// If `z` is not `(B, D)` with `B ≥ 2` and `D > 0`.
pub fn vicreg_covariance(z: &Tensor) -> Result<Tensor> {
    check_single("vicreg_covariance", z)?;
    covariance(z)
}

fn covariance(z: &Tensor) -> Result<Tensor> {
    let (b, d) = z.dims2()?;
    let x = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let cov = (x.t()?.matmul(&x)? / (b - 1) as f64)?;
    let off = (1.0 - eye_like(d, &cov)?)?;
    (cov.sqr()? * off)?.sum_all()? / d as f64
}

/// The VICReg loss `λ·s(z1, z2) + μ·½(v(z1) + v(z2)) + ν·(c(z1) + c(z2))`
/// with ε = 1e-4; equals lightly's
/// `VICRegLoss(lambda_param=lambda, mu_param=mu, nu_param=nu, eps=1e-4)(z1, z2)`.
/// The paper uses `λ = μ = 25`, `ν = 1`. Symmetric in `z1`, `z2`.
///
/// # Shapes
/// `z1 (B, D)`, `z2 (B, D)` → scalar.
///
/// # Errors
/// If `z1`, `z2` are not both `(B, D)` with `B ≥ 2` and `D > 0`, or a
/// coefficient is negative or not finite.
pub fn vicreg(z1: &Tensor, z2: &Tensor, lambda: f64, mu: f64, nu: f64) -> Result<Tensor> {
    for (name, w) in [("lambda", lambda), ("mu", mu), ("nu", nu)] {
        check_weight("vicreg", name, w)?;
    }
    let (inv, var, cov) = vicreg_terms(z1, z2)?;
    ((inv * lambda)? + (var * mu)?)? + (cov * nu)?
}

/// The three unweighted terms of [`vicreg`], with gradients:
/// `(s(z1, z2), ½(v(z1) + v(z2)), c(z1) + c(z2))`, ε = 1e-4. A training
/// loop that reports the terms separately weights and sums these itself.
///
/// # Shapes
/// `z1 (B, D)`, `z2 (B, D)` → three scalars.
///
/// # Errors
/// If `z1`, `z2` are not both `(B, D)` with `B ≥ 2` and `D > 0`.
pub fn vicreg_terms(z1: &Tensor, z2: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    check_pair("vicreg expects z1 and z2", z1, z2, 2)?;
    let inv = (z1 - z2)?.sqr()?.mean_all()?;
    let var = ((variance(z1, EPS)? + variance(z2, EPS)?)? * 0.5)?;
    let cov = (covariance(z1)? + covariance(z2)?)?;
    Ok((inv, var, cov))
}

#[cfg(test)]
// golden values are pasted as Python printed them (8–9 significant digits)
#[allow(clippy::excessive_precision)]
mod tests {
    use super::super::test_util::{assert_close, assert_grad, scalar, wave, wave_var, zeros};
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Reference: lightly 1.6.0, torch 2.15 (CPU, f32).
    ///
    /// ```python
    /// import torch
    /// from lightly.loss import VICRegLoss
    /// from lightly.loss.vicreg_loss import invariance_loss, variance_loss, covariance_loss
    /// def wave(n, a, b, cos, shape):
    ///     k = torch.arange(n, dtype=torch.float32)
    ///     x = torch.cos(a * k + b) if cos else torch.sin(a * k + b)
    ///     return x.reshape(shape)
    /// z1 = (1.5 * wave(48, 0.37, 0.1, False, (8, 6))).requires_grad_()
    /// z2 = wave(48, 0.23, 0.0, True, (8, 6)).requires_grad_()
    /// loss = VICRegLoss(lambda_param=25.0, mu_param=25.0, nu_param=1.0, eps=1e-4)(z1, z2); loss.backward()
    /// loss.item(), z1.grad.flatten()[:6], z1.grad.norm(), z2.grad.flatten()[:6], z2.grad.norm()
    /// invariance_loss(z1, z2), variance_loss(z1, 1e-4), variance_loss(z2, 1e-4), covariance_loss(z1), covariance_loss(z2)
    /// z1.grad = None; z2.grad = None
    /// loss = VICRegLoss(lambda_param=1.0, mu_param=2.0, nu_param=3.0, eps=1e-4)(z1, z2); loss.backward()
    /// loss.item(), z1.grad.flatten()[:6], z1.grad.norm(), z2.grad.flatten()[:6], z2.grad.norm()
    /// ```
    #[test]
    fn vicreg_matches_lightly_value_gradients_and_terms() {
        let z1 = Var::from_tensor(&(wave(48, 0.37, 0.1, false, &[8, 6]) * 1.5).unwrap()).unwrap();
        let z2 = wave_var(48, 0.23, 0.0, true, &[8, 6]);
        let (a, b) = (z1.as_tensor(), z2.as_tensor());
        let loss = vicreg(a, b, 25.0, 25.0, 1.0).unwrap();
        assert_close(&[scalar(&loss)], &[46.645_592], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &z1, &[-0.71080518, 0.048783153, 0.70605338, 1.1808119, 1.4324944, 1.4507132], 10.8754873);
        #[rustfmt::skip]
        assert_grad(&g, &z2, &[0.69909346, 0.13018288, -0.39001235, -0.79470623, -1.0352166, -1.0879146], 8.44845772);
        let terms = [
            scalar(&vicreg_invariance(a, b).unwrap()),
            scalar(&vicreg_variance(a, 1e-4).unwrap()),
            scalar(&vicreg_variance(b, 1e-4).unwrap()),
            scalar(&vicreg_covariance(a).unwrap()),
            scalar(&vicreg_covariance(b).unwrap()),
        ];
        assert_close(&terms, &[1.525_302, 0.0, 0.244_524_4, 4.271_374, 1.185_107_8], 1e-4);

        let loss = vicreg(a, b, 1.0, 2.0, 3.0).unwrap();
        assert_close(&[scalar(&loss)], &[18.139_273], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &z1, &[0.48918837, 1.0538884, 1.437014, 1.5932201, 1.5406241, 1.3152035], 7.84980774);
        #[rustfmt::skip]
        assert_grad(&g, &z2, &[0.57764161, 0.60425472, 0.60451633, 0.57710814, 0.52153653, 0.43937773], 3.16126418);
    }

    #[test]
    fn vicreg_invariants_symmetry_identity_collapse_decorrelation() {
        let z1 = wave(48, 0.37, 0.1, false, &[8, 6]);
        let z2 = wave(48, 0.23, 0.0, true, &[8, 6]);
        let a = scalar(&vicreg(&z1, &z2, 25.0, 25.0, 1.0).unwrap());
        let b = scalar(&vicreg(&z2, &z1, 25.0, 25.0, 1.0).unwrap());
        assert!((a - b).abs() < 1e-5 * a, "{a} vs {b}");
        assert_eq!(scalar(&vicreg_invariance(&z1, &z1).unwrap()), 0.0);
        // collapse: a constant batch has std sqrt(eps) in every dimension
        let c = Tensor::ones((5, 3), DType::F32, &Device::Cpu).unwrap();
        let v = scalar(&vicreg_variance(&c, 1e-4).unwrap());
        assert!((v - 0.99).abs() < 1e-6, "{v}");
        assert_eq!(scalar(&vicreg_covariance(&c).unwrap()), 0.0);
        // decorrelated dimensions with std ≥ 1: variance and covariance terms vanish
        let h = Tensor::new(&[[3f32, 2., 2.], [3., -2., -2.], [-3., 2., -2.], [-3., -2., 2.]], &Device::Cpu).unwrap();
        assert_eq!(scalar(&vicreg_variance(&h, 1e-4).unwrap()), 0.0);
        assert!(scalar(&vicreg_covariance(&h).unwrap()).abs() < 1e-7);
        assert!(scalar(&vicreg(&h, &h, 25.0, 25.0, 1.0).unwrap()).abs() < 1e-6);
        // two identical columns of variance v: C = [[v, v], [v, v]] → c = 2v² / 2 = v²
        let col = Tensor::new(&[[1f32], [-1.], [2.], [-2.]], &Device::Cpu).unwrap(); // unbiased var 10/3
        let red = Tensor::cat(&[&col, &col], 1).unwrap();
        let cv = scalar(&vicreg_covariance(&red).unwrap());
        assert!((cv - 100.0 / 9.0).abs() < 1e-4, "{cv}");
    }

    #[test]
    fn vicreg_errors_name_function_and_shapes() {
        let err = |a: &[usize], b: &[usize]| vicreg(&zeros(a), &zeros(b), 25.0, 25.0, 1.0).unwrap_err().to_string();
        let e = err(&[8, 6], &[7, 6]);
        assert!(e.contains("vicreg") && e.contains("[8, 6]") && e.contains("[7, 6]"), "{e}");
        let e = err(&[1, 6], &[1, 6]);
        assert!(e.contains("B >= 2") && e.contains("[1, 6]"), "{e}");
        assert!(err(&[0, 6], &[0, 6]).contains("[0, 6]"));
        assert!(err(&[2, 3, 6], &[2, 3, 6]).contains("[2, 3, 6]"));
        let e = vicreg(&zeros(&[4, 3]), &zeros(&[4, 3]), 25.0, -1.0, 1.0).unwrap_err().to_string();
        assert!(e.contains("vicreg") && e.contains("mu"), "{e}");
        let e = vicreg_variance(&zeros(&[1, 3]), 1e-4).unwrap_err().to_string();
        assert!(e.contains("vicreg_variance") && e.contains("[1, 3]"), "{e}");
        let e = vicreg_variance(&zeros(&[4, 3]), f64::NAN).unwrap_err().to_string();
        assert!(e.contains("vicreg_variance") && e.contains("eps"), "{e}");
        let e = vicreg_covariance(&zeros(&[3])).unwrap_err().to_string();
        assert!(e.contains("vicreg_covariance") && e.contains("[3]"), "{e}");
        let e = vicreg_invariance(&zeros(&[4, 3]), &zeros(&[4, 2])).unwrap_err().to_string();
        assert!(e.contains("vicreg_invariance") && e.contains("[4, 2]"), "{e}");
    }
}
