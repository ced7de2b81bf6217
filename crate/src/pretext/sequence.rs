//! Pretext tasks on time series `(B, C, T)`: masked time steps, temporal
//! order verification and CPC context/future windows.
//!
//! [0] G. Zerveas, S. Jayaraman, D. Patel, A. Bhamidipaty, C. Eickhoff, "A
//!     Transformer-based Framework for Multivariate Time Series Representation
//!     Learning", KDD 2021, arXiv:2010.02803, §3.2 (masked time steps).
//! [1] I. Misra, C. L. Zitnick, M. Hebert, "Shuffle and Learn: Unsupervised
//!     Learning using Temporal Order Verification", ECCV 2016, arXiv:1603.08561.
//! [2] A. van den Oord, Y. Li, O. Vinyals, "Representation Learning with
//!     Contrastive Predictive Coding", 2018, arXiv:1807.03748, §2.
//! [3] gzerveas/mvts_transformer `datasets/dataset.py::geom_noise_mask_single`.
//!
//! ```text
//! masking      x̃ = x ⊙ (1 − m),  y = x at m = 1;  per channel, m alternates between
//!              masked runs ~ Geometric(mean ℓ) and kept runs ~ Geometric(mean ℓ(1 − r)/r),
//!              so a fraction r of the steps is masked in expectation
//! order        x̃ = segments of x in order (y = 1) or in a random non-identity order (y = 0)
//! CPC          context = x[:, :, s .. s+c],  future = x[:, :, s+c .. s+c+k],  s random
//! ```

use crate::rng::SeededRng;
use candle_core::{DType, Result, Tensor};

fn check_series(x: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    crate::nn::expect_rank(x, 3, what, "(B, C, T)")?;
    x.dims3()
}

/// Masks contiguous runs of time steps as in TST \[0, 3\]: for every series
/// and channel independently, a two-state Markov chain alternates between
/// masked runs of mean length `span` and kept runs of mean length
/// `span · (1 − ratio) / ratio`; the first step is masked with probability
/// `ratio`. Masked steps are set to 0.
///
/// Returns `(masked, mask)` with `mask` 1 where a step was hidden, 0 elsewhere (f32).
///
/// # Shapes
/// `x (B, C, T)` → `masked (B, C, T)`, `mask (B, C, T)`.
pub fn mask_time_steps(x: &Tensor, ratio: f64, span: f64, rng: &mut SeededRng) -> Result<(Tensor, Tensor)> {
    let (b, c, t) = check_series(x, "mask_time_steps")?;
    if !(0.0..1.0).contains(&ratio) {
        candle_core::bail!("mask_time_steps: ratio must be in [0, 1), got {ratio}");
    }
    if !(span.is_finite() && span >= 1.0) {
        candle_core::bail!("mask_time_steps: span (mean masked run length) must be ≥ 1, got {span}");
    }
    let p_end_masked = 1.0 / span;
    let p_end_kept = p_end_masked * ratio / (1.0 - ratio);
    let mut mask = vec![0f32; b * c * t];
    for row in mask.chunks_mut(t.max(1)) {
        let mut masked = rng.bernoulli(ratio);
        for m in row.iter_mut() {
            *m = if masked { 1.0 } else { 0.0 };
            let p_switch = if masked { p_end_masked } else { p_end_kept };
            if rng.bernoulli(p_switch) {
                masked = !masked;
            }
        }
    }
    let mask = Tensor::from_vec(mask, (b, c, t), x.device())?;
    let masked = x.mul(&(1.0 - &mask)?.to_dtype(x.dtype())?)?;
    Ok((masked, mask))
}

/// Series with their segments in order or shuffled: see [`order_verification`].
#[derive(Clone, Debug)]
pub struct OrderVerification {
    /// The input x̃ `(B, C, T)`.
    pub input: Tensor,
    /// 1 where the segments are in order, 0 where shuffled, u32 `(B,)`.
    pub labels: Tensor,
    /// The order applied to each series: segment `j` of x̃ is segment `orders[b][j]` of x.
    pub orders: Vec<Vec<usize>>,
}

/// Temporal order verification \[1\] applied to segments: each series is cut
/// into `n_segments` equal segments of `T / n_segments` steps (a remainder
/// at the end stays in place); with probability ½ they are kept in order
/// (label 1), otherwise put in a uniformly random order other than the
/// identity (label 0).
///
/// # Shapes
/// `x (B, C, T)` → `input (B, C, T)`, `labels (B,)`.
pub fn order_verification(x: &Tensor, n_segments: usize, rng: &mut SeededRng) -> Result<OrderVerification> {
    let (b, c, t) = check_series(x, "order_verification")?;
    if n_segments < 2 || n_segments > t {
        candle_core::bail!("order_verification: need 2 ≤ n_segments ≤ T = {t}, got {n_segments} for shape {:?}", x.dims());
    }
    let seg = t / n_segments;
    let v: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let mut out = v.clone();
    let mut labels = Vec::with_capacity(b);
    let mut orders = Vec::with_capacity(b);
    let identity: Vec<usize> = (0..n_segments).collect();
    for i in 0..b {
        let ordered = rng.bernoulli(0.5);
        let order = if ordered {
            identity.clone()
        } else {
            let mut p = rng.permutation(n_segments);
            while p == identity {
                p = rng.permutation(n_segments);
            }
            p
        };
        for ch in 0..c {
            let row = (i * c + ch) * t;
            for (j, &src) in order.iter().enumerate() {
                out[row + j * seg..row + (j + 1) * seg].copy_from_slice(&v[row + src * seg..row + (src + 1) * seg]);
            }
        }
        labels.push(u32::from(ordered));
        orders.push(order);
    }
    Ok(OrderVerification {
        input: Tensor::from_vec(out, (b, c, t), x.device())?.to_dtype(x.dtype())?,
        labels: Tensor::from_vec(labels, b, x.device())?,
        orders,
    })
}

/// Context and future windows for Contrastive Predictive Coding: see [`cpc_windows`].
#[derive(Clone, Debug)]
pub struct CpcWindows {
    /// `x[b, :, s_b .. s_b + context]`, `(B, C, context)`.
    pub context: Tensor,
    /// `x[b, :, s_b + context .. s_b + context + predict]`, `(B, C, predict)`.
    pub future: Tensor,
    /// The start `s_b` of each window.
    pub starts: Vec<usize>,
}

/// CPC windows \[2\]: for each series a start `s` uniform in
/// `0 ..= T − context − predict`, the `context` steps from `s` (what the
/// autoregressive model summarises into c_t) and the `predict` steps right
/// after (whose encodings z_{t+1} … z_{t+k} it must pick out). The negatives
/// of InfoNCE are usually the future windows of the other series in the batch.
///
/// # Shapes
/// `x (B, C, T)` → `context (B, C, context)`, `future (B, C, predict)`.
pub fn cpc_windows(x: &Tensor, context: usize, predict: usize, rng: &mut SeededRng) -> Result<CpcWindows> {
    let (b, _, t) = check_series(x, "cpc_windows")?;
    if context == 0 || predict == 0 || context + predict > t || b == 0 {
        candle_core::bail!(
            "cpc_windows: need B ≥ 1, context ≥ 1, predict ≥ 1 and context + predict ≤ T, got context {context}, \
             predict {predict} for shape {:?}",
            x.dims()
        );
    }
    let starts: Vec<usize> = (0..b).map(|_| rng.below(t - context - predict + 1)).collect();
    let mut ctx = Vec::with_capacity(b);
    let mut fut = Vec::with_capacity(b);
    for (i, &s) in starts.iter().enumerate() {
        let xi = x.narrow(0, i, 1)?;
        ctx.push(xi.narrow(2, s, context)?);
        fut.push(xi.narrow(2, s + context, predict)?);
    }
    Ok(CpcWindows { context: Tensor::cat(&ctx, 0)?, future: Tensor::cat(&fut, 0)?, starts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, IndexOp};

    fn ramp(b: usize, c: usize, t: usize) -> Tensor {
        // x[b, c, t] = 1000 b + 100 c + t + 1 (never 0)
        let v: Vec<f32> = (0..b * c * t).map(|k| (1000 * (k / (c * t)) + 100 * ((k / t) % c) + k % t + 1) as f32).collect();
        Tensor::from_vec(v, (b, c, t), &Device::Cpu).unwrap()
    }

    #[test]
    fn mask_time_steps_hits_the_rate_with_runs_of_the_span() {
        let x = ramp(8, 2, 2000);
        let mut rng = SeededRng::new(0);
        let (xm, m) = mask_time_steps(&x, 0.15, 3.0, &mut rng).unwrap();
        let mv: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        let rate = mv.iter().sum::<f32>() / mv.len() as f32;
        assert!((rate - 0.15).abs() < 0.015, "{rate}");
        // mean length of masked runs ≈ span
        let mut runs = Vec::new();
        for row in mv.chunks(2000) {
            let mut len = 0;
            for &v in row.iter().chain([0.0].iter()) {
                if v > 0.5 {
                    len += 1;
                } else if len > 0 {
                    runs.push(len as f32);
                    len = 0;
                }
            }
        }
        let mean_run = runs.iter().sum::<f32>() / runs.len() as f32;
        assert!((mean_run - 3.0).abs() < 0.25, "{mean_run}");
        // hidden steps are 0, the others untouched; channels get different masks
        let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let xmv: Vec<f32> = xm.flatten_all().unwrap().to_vec1().unwrap();
        assert!(xv.iter().zip(&xmv).zip(&mv).all(|((a, b), m)| if *m > 0.5 { *b == 0.0 } else { a == b }));
        assert_ne!(mv[..2000], mv[2000..4000]);
        assert!(mask_time_steps(&x, 1.0, 3.0, &mut rng).is_err());
        assert!(mask_time_steps(&x, 0.1, 0.5, &mut rng).is_err());
        assert!(mask_time_steps(&x.i(0).unwrap(), 0.1, 3.0, &mut rng).unwrap_err().to_string().contains("(B, C, T)"));
    }

    #[test]
    fn order_verification_labels_match_what_was_done() {
        let x = ramp(200, 2, 13); // 4 segments of 3, one step left over
        let mut rng = SeededRng::new(1);
        let o = order_verification(&x, 4, &mut rng).unwrap();
        let labels = o.labels.to_vec1::<u32>().unwrap();
        let n_ordered = labels.iter().filter(|&&l| l == 1).count();
        assert!((70..=130).contains(&n_ordered), "{n_ordered}");
        let xi: Vec<Vec<Vec<f32>>> = x.to_vec3().unwrap();
        let xo: Vec<Vec<Vec<f32>>> = o.input.to_vec3().unwrap();
        for b in 0..200 {
            let identity = o.orders[b] == vec![0, 1, 2, 3];
            assert_eq!(labels[b] == 1, identity);
            if labels[b] == 0 {
                assert_ne!(xo[b], xi[b]);
            }
            for c in 0..2 {
                // undoing the order restores x; the leftover step stays in place
                for (j, &src) in o.orders[b].iter().enumerate() {
                    assert_eq!(xo[b][c][j * 3..j * 3 + 3], xi[b][c][src * 3..src * 3 + 3]);
                }
                assert_eq!(xo[b][c][12], xi[b][c][12]);
            }
        }
        assert!(order_verification(&x, 1, &mut rng).is_err());
        assert!(order_verification(&x, 14, &mut rng).is_err());
    }

    #[test]
    fn cpc_windows_are_adjacent_slices_of_x() {
        let x = ramp(16, 3, 20);
        let mut rng = SeededRng::new(2);
        let w = cpc_windows(&x, 8, 4, &mut rng).unwrap();
        assert_eq!((w.context.dims(), w.future.dims()), (&[16, 3, 8][..], &[16, 3, 4][..]));
        let ctx: Vec<Vec<Vec<f32>>> = w.context.to_vec3().unwrap();
        let fut: Vec<Vec<Vec<f32>>> = w.future.to_vec3().unwrap();
        for (b, &s) in w.starts.iter().enumerate() {
            assert!(s + 12 <= 20);
            for c in 0..3 {
                let base = (1000 * b + 100 * c + 1) as f32;
                let want_ctx: Vec<f32> = (s..s + 8).map(|t| base + t as f32).collect();
                let want_fut: Vec<f32> = (s + 8..s + 12).map(|t| base + t as f32).collect();
                assert_eq!(ctx[b][c], want_ctx);
                assert_eq!(fut[b][c], want_fut);
            }
        }
        assert!(w.starts.iter().any(|&s| s != w.starts[0]));
        assert!(cpc_windows(&x, 10, 11, &mut rng).unwrap_err().to_string().contains("context + predict"));
    }
}
