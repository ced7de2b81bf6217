//! InfoNCE, the contrastive objective of section 24.1.
//!
//! [0] A. van den Oord, Y. Li, O. Vinyals, "Representation Learning with
//!     Contrastive Predictive Coding", 2018, arXiv:1807.03748, eq. (4).
//!
//! For a query `q`, its positive key `k⁺` and `N` negative keys `k⁻ᵢ`, all
//! L2-normalised:
//!
//! ```text
//!                      exp(q·k⁺ / τ)
//! L = − log  ─────────────────────────────────────
//!             exp(q·k⁺ / τ) + Σᵢ₌₁..N exp(q·k⁻ᵢ / τ)
//! ```
//!
//! averaged over the batch. It is a cross-entropy over `N + 1` candidates
//! whose correct class is the positive, so random embeddings give a loss near
//! `log(N + 1)`, and `I(q; k⁺) ≥ log(N + 1) − L` (the bound of [0], with
//! `N + 1` candidates in total).

use super::l2_normalize;
use candle_core::{Result, Tensor, D};

/// The `(B, N + 1)` logits of InfoNCE: column 0 is the positive, columns
/// `1..=N` the negatives, all divided by the temperature.
///
/// # Shapes
/// `query (B, D)`, `positive (B, D)`, `negatives (B, N, D)` → `(B, N + 1)`.
///
/// # Errors
/// If the shapes do not match the above with `B, N, D > 0`, or the temperature
/// is not positive and finite.
pub fn info_nce_logits(query: &Tensor, positive: &Tensor, negatives: &Tensor, temperature: f64) -> Result<Tensor> {
    let (qd, pd, nd) = (query.dims(), positive.dims(), negatives.dims());
    let ok = matches!((qd, pd, nd), (&[b, d], &[b2, d2], &[b3, n, d3])
        if b > 0 && d > 0 && n > 0 && b == b2 && b == b3 && d == d2 && d == d3);
    if !ok {
        candle_core::bail!(
            "info_nce expects query (B, D), positive (B, D) and negatives (B, N, D) with B, N, D > 0, \
             got {qd:?}, {pd:?} and {nd:?}"
        );
    }
    super::check_float("info_nce", &[query, positive, negatives])?;
    if !(temperature.is_finite() && temperature > 0.0) {
        candle_core::bail!("info_nce: temperature must be positive and finite, got {temperature}");
    }
    let q = l2_normalize(query)?;
    let p = l2_normalize(positive)?;
    let n = l2_normalize(negatives)?;
    let pos = (&q * &p)?.sum_keepdim(D::Minus1)?; // (B, 1)
    let neg = n.matmul(&q.unsqueeze(2)?)?.squeeze(2)?; // (B, N)
    Tensor::cat(&[&pos, &neg], 1)? / temperature
}

/// InfoNCE loss with the chapter's arguments: `(query, positive_key, negative_keys, temperature)`.
///
/// Inputs are L2-normalised inside, as in the chapter's PyTorch code. With
/// `sᵢ = q·kᵢ / τ` for the positive `k₀ = k⁺` and the negatives `k₁..k_N`,
/// `L = −log(exp(s₀) / Σᵢ exp(sᵢ))`, averaged over the batch: the
/// cross-entropy of [`info_nce_logits`] with target column 0 (van den Oord et
/// al. 2018, arXiv:1807.03748, eq. 4).
///
/// # Shapes
/// `query (B, D)`, `positive (B, D)`, `negatives (B, N, D)` → scalar.
///
/// # Errors
/// As [`info_nce_logits`]: shape mismatch, an empty dimension, or a
/// temperature that is not positive and finite.
///
/// # Example
/// ```
/// # use sslab::prelude::*;
/// let dev = Device::Cpu;
/// let mut rng = SeededRng::new(0);
/// let q = rng.randn(&[64, 128], 1.0, &dev)?;
/// let negatives = rng.randn(&[64, 15, 128], 1.0, &dev)?;
/// // a random positive: loss near log(16)
/// let random = info_nce(&q, &rng.randn(&[64, 128], 1.0, &dev)?, &negatives, 1.0)?.to_scalar::<f32>()?;
/// assert!((random - 16f32.ln()).abs() < 0.1);
/// // the query itself as positive: much lower
/// let easy = info_nce(&q, &q, &negatives, 0.1)?.to_scalar::<f32>()?;
/// assert!(easy < 0.01);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn info_nce(query: &Tensor, positive: &Tensor, negatives: &Tensor, temperature: f64) -> Result<Tensor> {
    let logits = info_nce_logits(query, positive, negatives, temperature)?;
    let targets = Tensor::zeros(logits.dim(0)?, candle_core::DType::U32, logits.device())?;
    super::cross_entropy(&logits, &targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn assert_close(got: &[f32], want: &[f32], rel: f32) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= rel * w.abs().max(1e-2), "element {i}: got {g}, want {w}");
        }
    }

    fn wave(n: usize, a: f64, b: f64, cos: bool, shape: &[usize]) -> Tensor {
        let k = Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap().affine(a, b).unwrap();
        let k = if cos { k.cos() } else { k.sin() }.unwrap();
        k.reshape(shape).unwrap()
    }

    /// Reference: the chapter's PyTorch code (torch 2.15).
    ///
    /// ```python
    /// import torch, torch.nn.functional as F
    /// def info_nce_loss(query, positive_key, negative_keys, temperature=0.1):
    ///     query = F.normalize(query, dim=-1)
    ///     positive_key = F.normalize(positive_key, dim=-1)
    ///     negative_keys = F.normalize(negative_keys, dim=-1)
    ///     positive_logit = torch.sum(query * positive_key, dim=1, keepdim=True)
    ///     negative_logits = torch.bmm(negative_keys, query.unsqueeze(2)).squeeze(2)
    ///     logits = torch.cat([positive_logit, negative_logits], dim=1) / temperature
    ///     labels = torch.zeros(len(logits), dtype=torch.long)
    ///     return F.cross_entropy(logits, labels)
    /// k = torch.arange(15.)
    /// q = torch.sin(0.37 * k + 0.1).reshape(3, 5).requires_grad_()
    /// p = torch.cos(0.23 * k).reshape(3, 5).requires_grad_()
    /// n = torch.sin(0.71 * torch.arange(60.) + 0.5).reshape(3, 4, 5).requires_grad_()
    /// loss = info_nce_loss(q, p, n, 0.2); loss.backward()
    /// loss.item(), q.grad, p.grad, n.grad.flatten()[:10]
    /// ```
    #[test]
    fn info_nce_matches_torch_value_and_gradients() {
        let q = Var::from_tensor(&wave(15, 0.37, 0.1, false, &[3, 5])).unwrap();
        let p = Var::from_tensor(&wave(15, 0.23, 0.0, true, &[3, 5])).unwrap();
        let n = Var::from_tensor(&wave(60, 0.71, 0.5, false, &[3, 4, 5])).unwrap();
        let loss = info_nce(q.as_tensor(), p.as_tensor(), n.as_tensor(), 0.2).unwrap();
        assert_close(&[loss.to_scalar::<f32>().unwrap()], &[0.507_832_17], 1e-4);
        let g = loss.backward().unwrap();
        let grad = |v: &Var| g.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        #[rustfmt::skip]
        let want_q = [-0.16422, -0.048899, 0.025132, 0.034275, -0.012243, -0.199437, 0.148902, 0.352386,
                      0.41024, 0.390183, -0.019898, -0.060196, -0.045885, 0.01936, 0.106681];
        #[rustfmt::skip]
        let want_p = [0.103743, 0.037725, -0.023618, -0.072763, -0.104311, -0.447067, -0.520307, -0.503232,
                      -0.422159, -0.311849, -0.003547, 0.006167, 0.008431, 0.002057, -0.012582];
        let want_n = [-0.029995, -0.020425, 0.022288, 0.092494, 0.166077, -0.000212, 0.0005, 0.001343, 0.002147, 0.002681];
        // golden values are rounded to 6 decimals: compare to 1e-4 relative, 1e-6 absolute
        assert_close(&grad(&q), &want_q, 1e-4);
        assert_close(&grad(&p), &want_p, 1e-4);
        assert_close(&grad(&n)[..10], &want_n, 2e-3);
    }

    #[test]
    fn info_nce_invariants_random_easy_and_scale() {
        let dev = Device::Cpu;
        let mut rng = crate::rng::SeededRng::new(3);
        let q = rng.randn(&[256, 256], 1.0, &dev).unwrap();
        let neg = rng.randn(&[256, 31, 256], 1.0, &dev).unwrap();
        let rand_pos = rng.randn(&[256, 256], 1.0, &dev).unwrap();
        let l_rand = info_nce(&q, &rand_pos, &neg, 1.0).unwrap().to_scalar::<f32>().unwrap();
        assert!((l_rand - 32f32.ln()).abs() < 0.02, "{l_rand} vs ln 32");
        // closer positive → lower loss, monotonically
        let mut last = f32::INFINITY;
        for alpha in [0.0, 0.5, 1.0, 2.0, 8.0] {
            let pos = (&rand_pos + (&q * alpha).unwrap()).unwrap();
            let l = info_nce(&q, &pos, &neg, 0.1).unwrap().to_scalar::<f32>().unwrap();
            assert!(l < last, "alpha {alpha}: {l} !< {last}");
            last = l;
        }
        // scale invariance: inputs are normalised inside
        let l1 = info_nce(&q, &rand_pos, &neg, 0.5).unwrap().to_scalar::<f32>().unwrap();
        let l2 = info_nce(&(&q * 7.0).unwrap(), &rand_pos, &neg, 0.5).unwrap().to_scalar::<f32>().unwrap();
        assert!((l1 - l2).abs() < 1e-5);
    }

    #[test]
    fn info_nce_errors_name_the_shapes() {
        let dev = Device::Cpu;
        let z = |s: &[usize]| Tensor::zeros(s, candle_core::DType::F32, &dev).unwrap();
        let err = info_nce(&z(&[4, 8]), &z(&[4, 8]), &z(&[4, 8]), 0.1).unwrap_err().to_string();
        assert!(err.contains("[4, 8], [4, 8] and [4, 8]") && err.contains("(B, N, D)"), "{err}");
        let err = info_nce(&z(&[4, 8]), &z(&[3, 8]), &z(&[4, 2, 8]), 0.1).unwrap_err().to_string();
        assert!(err.contains("[3, 8]"), "{err}");
        assert!(info_nce(&z(&[0, 8]), &z(&[0, 8]), &z(&[0, 2, 8]), 0.1).is_err());
        let err = info_nce(&z(&[4, 8]), &z(&[4, 8]), &z(&[4, 2, 8]), 0.0).unwrap_err().to_string();
        assert!(err.contains("temperature"), "{err}");
    }
}
