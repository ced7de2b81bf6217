//! Self-supervised objectives, each a plain function returning a scalar tensor.
//!
//! One file per method; each cites its paper and its reference code and is
//! tested against lightly 1.6.0 / PyTorch for the value and the gradients.
//!
//! | function | method | inputs → scalar |
//! |---|---|---|
//! | [`info_nce`] | CPC's InfoNCE: one positive, N negatives per query | `(B, D), (B, D), (B, N, D), τ` |
//! | [`nt_xent`] | SimCLR's NT-Xent: the other 2B − 2 views of the batch are negatives | `(B, D), (B, D), τ` |
//! | [`moco`] | MoCo: positive key first, then a queue of negatives; key and queue get no gradient | `(B, D), (B, D), (K, D), τ` |
//! | [`negative_cosine`] | SimSiam: −cos(p, stop-grad z) | `(B, D), (B, D)` |
//! | [`byol`] | BYOL: 2 − 2·cos(p, stop-grad z) | `(B, D), (B, D)` |
//! | [`barlow_twins`] | Barlow Twins: cross-correlation towards the identity | `(B, D), (B, D), λ` |
//! | [`vicreg`] | VICReg: invariance + variance + covariance terms | `(B, D), (B, D), λ, μ, ν` |
//! | [`clip`] | CLIP: symmetric cross-entropy over image–text pairs | `(B, D), (B, D), τ` |
//! | [`dino`] | DINO: cross-entropy from the centred, sharpened teacher to the student | `[(B, D)], [(B, D)], center, τs, τt` |
//!
//! Helpers: [`l2_normalize`], [`cosine_similarity_matrix`], [`cross_entropy`],
//! [`accuracy`], the logits of the contrastive losses ([`info_nce_logits`],
//! [`nt_xent_logits`], [`moco_logits`], [`clip_logits`]), Barlow Twins'
//! [`cross_correlation`] matrix, VICReg's terms ([`vicreg_invariance`],
//! [`vicreg_variance`], [`vicreg_covariance`]) and DINO's
//! [`dino_update_center`].
//!
//! Every function checks its input shapes and hyperparameters first and
//! returns an error naming itself and the shapes or values it got; gradients
//! flow through every op used here (tested), and inputs that the method stops
//! gradients on (MoCo's keys and queue, the SimSiam / BYOL target, the DINO
//! teacher) are detached inside.

mod barlow_twins;
mod byol;
mod clip;
mod dino;
mod info_nce;
mod moco;
mod negative_cosine;
mod nt_xent;
mod similarity;
mod vicreg;

#[cfg(test)]
pub(crate) mod test_util;

pub use barlow_twins::{barlow_twins, cross_correlation};
pub use byol::byol;
pub use clip::{clip, clip_logits, clip_with_logit_scale, CLIP_MAX_LOGIT_SCALE};
pub use dino::{dino, dino_update_center};
pub use info_nce::{info_nce, info_nce_logits};
pub use moco::{moco, moco_logits};
pub use negative_cosine::negative_cosine;
pub use nt_xent::{nt_xent, nt_xent_breakdown, nt_xent_logits, NtXentBreakdown};
pub use similarity::{cosine_similarity_matrix, l2_normalize};
pub(crate) use similarity::row_cosine;
pub use vicreg::{vicreg, vicreg_covariance, vicreg_invariance, vicreg_terms, vicreg_variance};

use candle_core::{Result, Tensor, D};

/// Cross-entropy between logits and integer class targets, averaged over the batch.
///
/// # Shapes
/// `logits (B, C)`, `targets (B,)` of dtype u32 → scalar.
///
/// Built from `log_softmax` (composed ops with a backward pass), unlike
/// Candle's fused `softmax_last_dim`, which has none.
///
/// # Errors
/// If `logits` is not `(B, C)` or `targets` not `(B,)` with `B, C > 0`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check_float("cross_entropy logits", &[logits])?;
    match (logits.dims(), targets.dims()) {
        (&[b, c], &[bt]) if b == bt && b > 0 && c > 0 => {}
        (l, t) => candle_core::bail!(
            "cross_entropy expects logits (B, C) and targets (B,) with B, C > 0, got {l:?} and {t:?}"
        ),
    }
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    candle_nn::loss::nll(&logp, targets)
}

/// Fraction of rows whose arg-max logit equals the target.
///
/// # Shapes
/// `logits (B, C)`, `targets (B,)` u32.
///
/// # Errors
/// If the number of rows and targets differ or is zero.
pub fn accuracy(logits: &Tensor, targets: &Tensor) -> Result<f64> {
    let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
    let tgt: Vec<u32> = targets.to_vec1()?;
    if pred.len() != tgt.len() || pred.is_empty() {
        candle_core::bail!("accuracy: {} predictions for {} targets", pred.len(), tgt.len());
    }
    Ok(pred.iter().zip(&tgt).filter(|(p, t)| p == t).count() as f64 / tgt.len() as f64)
}

/// Checks that `a` and `b` are both `(B, D)` with the same shape, `B >= min_batch`
/// and `D > 0`; returns `(B, D)`. `what` names the function and its arguments
/// for the message, e.g. `"nt_xent expects z1 and z2"`.
pub(crate) fn check_pair(what: &str, a: &Tensor, b: &Tensor, min_batch: usize) -> Result<(usize, usize)> {
    check_float(what, &[a, b])?;
    match (a.dims(), b.dims()) {
        (&[n, d], &[n2, d2]) if n == n2 && d == d2 && n >= min_batch && d > 0 => Ok((n, d)),
        (ad, bd) => candle_core::bail!(
            "{what} of the same shape (B, D) with B >= {min_batch} and D > 0, got {ad:?} and {bd:?}"
        ),
    }
}

pub(crate) use crate::nn::check_float;

/// Checks that a temperature is positive and finite.
pub(crate) fn check_temperature(fname: &str, name: &str, t: f64) -> Result<()> {
    if !(t.is_finite() && t > 0.0) {
        candle_core::bail!("{fname}: {name} must be positive and finite, got {t}");
    }
    Ok(())
}

/// Checks that a loss weight is finite and non-negative.
pub(crate) fn check_weight(fname: &str, name: &str, w: f64) -> Result<()> {
    if !(w.is_finite() && w >= 0.0) {
        candle_core::bail!("{fname}: {name} must be finite and >= 0, got {w}");
    }
    Ok(())
}

/// `(n, n)` matrix with ones on the diagonal, in `like`'s dtype and device.
pub(crate) fn eye_like(n: usize, like: &Tensor) -> Result<Tensor> {
    Tensor::eye(n, like.dtype(), like.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn check_float_rejects_integer_tensors_without_panicking() {
        let dev = Device::Cpu;
        let z = Tensor::zeros((4, 3), candle_core::DType::U32, &dev).unwrap();
        let e = nt_xent(&z, &z, 0.5).unwrap_err().to_string();
        assert!(e.contains("nt_xent") && e.contains("U32") && e.contains("[4, 3]"), "{e}");
        assert!(l2_normalize(&z).unwrap_err().to_string().contains("l2_normalize"));
        assert!(vicreg_variance(&z, 1e-4).unwrap_err().to_string().contains("vicreg_variance"));
        assert!(moco(&z, &z, &z, 0.2).unwrap_err().to_string().contains("moco"));
        let v = vec![z.clone(), z.clone()];
        assert!(dino(&v, &v, &z.narrow(0, 0, 1).unwrap(), 0.1, 0.04).unwrap_err().to_string().contains("dino"));
        assert!(dino_update_center(&z.narrow(0, 0, 1).unwrap(), &v, 0.9).unwrap_err().to_string().contains("dino_update_center"));
    }

    #[test]
    fn cross_entropy_matches_torch_and_checks_shapes() {
        // import torch, torch.nn.functional as F
        // F.cross_entropy(torch.tensor([[1., 2., 3.], [0., 0., 5.]]), torch.tensor([0, 2])).item()
        // -> 1.210495948791504
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[1f32, 2., 3.], [0., 0., 5.]], &dev).unwrap();
        let t = Tensor::new(&[0u32, 2], &dev).unwrap();
        let l = cross_entropy(&logits, &t).unwrap().to_scalar::<f32>().unwrap();
        assert!((l - 1.210_496).abs() < 1e-5, "{l}");
        assert_eq!(accuracy(&logits, &t).unwrap(), 0.5);
        let err = cross_entropy(&logits, &Tensor::new(&[0u32], &dev).unwrap()).unwrap_err().to_string();
        assert!(err.contains("[2, 3]") && err.contains("[1]"), "{err}");
    }
}
