//! MoCo's contrastive loss: InfoNCE against a queue of negative keys.
//!
//! [0] K. He, H. Fan, Y. Wu, S. Xie, R. Girshick, "Momentum Contrast for
//!     Unsupervised Visual Representation Learning", 2019, arXiv:1911.05722,
//!     eq. (1) and Algorithm 1.
//! [1] lightly 1.6.0, `lightly/loss/ntx_ent_loss.py`, `NTXentLoss` with a
//!     memory bank (the queue), the branch `negatives is not None`.
//!
//! For a query `q`, its key `k⁺` from the momentum encoder and a queue of `K`
//! keys from earlier batches, all L2-normalised:
//!
//! ```text
//!                      exp(q·k⁺ / τ)
//! L = − log  ─────────────────────────────────────
//!             exp(q·k⁺ / τ) + Σᵢ₌₁..K exp(q·kᵢ / τ)
//! ```
//!
//! averaged over the batch: a cross-entropy over `1 + K` logits with the
//! positive in column 0. The keys and the queue come from the momentum
//! encoder and receive no gradient (they are detached here).

use super::{cross_entropy, l2_normalize};
use candle_core::{DType, Result, Tensor, D};

fn check(q: &Tensor, k: &Tensor, queue: &Tensor, temperature: f64) -> Result<()> {
    super::check_float("moco", &[q, k, queue])?;
    let ok = matches!((q.dims(), k.dims(), queue.dims()), (&[b, d], &[b2, d2], &[n, d3])
        if b > 0 && d > 0 && n > 0 && b == b2 && d == d2 && d == d3);
    if !ok {
        candle_core::bail!(
            "moco expects q (B, D), k (B, D) and queue (K, D) with B, K, D > 0, got {:?}, {:?} and {:?}",
            q.dims(),
            k.dims(),
            queue.dims()
        );
    }
    super::check_temperature("moco", "temperature", temperature)
}

/// The `(B, 1 + K)` MoCo logits `[q·k⁺, q·queueᵀ] / τ`, positive first.
///
/// `q`, `k` and the queue rows are L2-normalised inside (normalising an
/// already-normalised queue changes nothing); `k` and `queue` are detached.
///
/// # Shapes
/// `q (B, D)`, `k (B, D)`, `queue (K, D)` → `(B, 1 + K)`.
///
/// # Errors
/// If the shapes do not match the above with `B, K, D > 0`, or the temperature
/// is not positive and finite.
pub fn moco_logits(q: &Tensor, k: &Tensor, queue: &Tensor, temperature: f64) -> Result<Tensor> {
    check(q, k, queue, temperature)?;
    let q = l2_normalize(q)?;
    let k = l2_normalize(&k.detach())?;
    let queue = l2_normalize(&queue.detach())?;
    let pos = (&q * &k)?.sum_keepdim(D::Minus1)?; // (B, 1)
    let neg = q.matmul(&queue.t()?)?; // (B, K)
    Tensor::cat(&[&pos, &neg], 1)? / temperature
}

/// MoCo's InfoNCE loss: cross-entropy of [`moco_logits`] with target column 0,
/// `L = −log(exp(q·k⁺/τ) / (exp(q·k⁺/τ) + Σᵢ exp(q·kᵢ/τ)))` averaged over the
/// batch (He et al. 2019, arXiv:1911.05722, eq. 1). Only `q` receives a
/// gradient; `k` and `queue` are detached.
///
/// # Shapes
/// `q (B, D)`, `k (B, D)`, `queue (K, D)` → scalar.
///
/// # Errors
/// If the shapes do not match the above with `B, K, D > 0`, or the temperature
/// is not positive and finite.
pub fn moco(q: &Tensor, k: &Tensor, queue: &Tensor, temperature: f64) -> Result<Tensor> {
    let logits = moco_logits(q, k, queue, temperature)?;
    let targets = Tensor::zeros(logits.dim(0)?, DType::U32, logits.device())?;
    cross_entropy(&logits, &targets)
}

#[cfg(test)]
// golden values are pasted as Python printed them (8–9 significant digits)
#[allow(clippy::excessive_precision)]
mod tests {
    use super::super::test_util::{assert_close, assert_grad, assert_no_grad, scalar, wave, wave_var, zeros};
    use super::*;
    use candle_core::Device;

    /// Reference: MoCo's Algorithm 1 in PyTorch 2.15 (CPU, f32); lightly's
    /// NTXentLoss with a memory bank computes the same logits.
    ///
    /// ```python
    /// import torch, torch.nn.functional as F
    /// def wave(n, a, b, cos, shape):
    ///     k = torch.arange(n, dtype=torch.float32)
    ///     x = torch.cos(a * k + b) if cos else torch.sin(a * k + b)
    ///     return x.reshape(shape)
    /// q = wave(48, 0.37, 0.1, False, (6, 8)).requires_grad_()
    /// k = wave(48, 0.23, 0.0, True, (6, 8))
    /// queue = F.normalize(wave(80, 0.71, 0.5, False, (10, 8)), dim=1)
    /// qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    /// l_pos = torch.einsum("nc,nc->n", qn, kn).unsqueeze(-1)
    /// l_neg = torch.einsum("nc,kc->nk", qn, queue)
    /// logits = torch.cat([l_pos, l_neg], dim=1) / 0.2
    /// loss = F.cross_entropy(logits, torch.zeros(6, dtype=torch.long)); loss.backward()
    /// loss.item(), q.grad.flatten()[:6], q.grad.norm()
    /// ```
    #[test]
    fn moco_matches_torch_value_and_gradients_key_and_queue_get_none() {
        let q = wave_var(48, 0.37, 0.1, false, &[6, 8]);
        let k = wave_var(48, 0.23, 0.0, true, &[6, 8]);
        let queue = wave_var(80, 0.71, 0.5, false, &[10, 8]);
        let loss = moco(q.as_tensor(), k.as_tensor(), queue.as_tensor(), 0.2).unwrap();
        assert_close(&[scalar(&loss)], &[4.330_490_6], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &q, &[-0.16392583, -0.11530408, -0.046153657, 0.016486455, 0.049569897, 0.044628114], 0.746848822);
        assert_no_grad(&g, k.as_tensor());
        assert_no_grad(&g, queue.as_tensor());
    }

    #[test]
    fn moco_invariants_equals_info_nce_and_known_value() {
        let q = wave(48, 0.37, 0.1, false, &[6, 8]);
        let k = wave(48, 0.23, 0.0, true, &[6, 8]);
        let queue = wave(80, 0.71, 0.5, false, &[10, 8]);
        // the same negatives for every query: InfoNCE with the queue broadcast
        let negs = queue.unsqueeze(0).unwrap().broadcast_as((6, 10, 8)).unwrap().contiguous().unwrap();
        let a = scalar(&moco(&q, &k, &queue, 0.3).unwrap());
        let b = scalar(&super::super::info_nce(&q, &k, &negs, 0.3).unwrap());
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        // k = q = e₀, queue orthogonal to it: ln(1 + K e^{−1/τ})
        let dev = Device::Cpu;
        let e0 = Tensor::new(&[[1f32, 0., 0., 0.]], &dev).unwrap();
        let queue = Tensor::new(&[[0f32, 1., 0., 0.], [0., 0., 1., 0.], [0., 0., 0., 1.]], &dev).unwrap();
        let l = scalar(&moco(&e0, &e0, &queue, 0.5).unwrap());
        let want = (1.0 + 3.0 * (-2f32).exp()).ln();
        assert!((l - want).abs() < 1e-5, "{l} vs {want}");
        // a batch of one is fine: negatives come from the queue
        assert_eq!(moco_logits(&e0, &e0, &queue, 0.5).unwrap().dims(), &[1, 4]);
    }

    #[test]
    fn moco_errors_name_function_and_shapes() {
        let err = |a: &[usize], b: &[usize], c: &[usize], t: f64| {
            moco(&zeros(a), &zeros(b), &zeros(c), t).unwrap_err().to_string()
        };
        let e = err(&[4, 8], &[4, 8], &[10, 7], 0.2);
        assert!(e.contains("moco") && e.contains("[4, 8], [4, 8] and [10, 7]"), "{e}");
        let e = err(&[4, 8], &[3, 8], &[10, 8], 0.2);
        assert!(e.contains("[3, 8]"), "{e}");
        let e = err(&[4, 8], &[4, 8], &[0, 8], 0.2);
        assert!(e.contains("[0, 8]"), "{e}");
        let e = err(&[0, 8], &[0, 8], &[10, 8], 0.2);
        assert!(e.contains("[0, 8]"), "{e}");
        let e = err(&[4, 8], &[4, 8], &[2, 10, 8], 0.2);
        assert!(e.contains("[2, 10, 8]"), "{e}");
        let e = err(&[4, 8], &[4, 8], &[10, 8], 0.0);
        assert!(e.contains("moco") && e.contains("temperature"), "{e}");
    }
}
