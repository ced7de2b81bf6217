//! NT-Xent, the normalised-temperature cross-entropy of SimCLR.
//!
//! [0] T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for
//!     Contrastive Learning of Visual Representations", 2020,
//!     arXiv:2002.05709, eq. (1).
//! [1] lightly 1.6.0, `lightly/loss/ntx_ent_loss.py`, `NTXentLoss` with
//!     `memory_bank_size=0`.
//!
//! The two views `z1`, `z2` of a batch of `B` images give `2B` L2-normalised
//! embeddings `zₖ`. View `i`'s positive `j(i)` is the other view of the same
//! image; the remaining `2B − 2` embeddings are its negatives:
//!
//! ```text
//! sᵢₖ = zᵢ·zₖ / τ
//!
//!                       exp(sᵢ,ⱼ₍ᵢ₎)
//! ℓᵢ = − log  ─────────────────────────────
//!              Σ_{k ≠ i} exp(sᵢₖ)
//!
//! L = (1 / 2B) Σᵢ₌₁..₂B ℓᵢ
//! ```
//!
//! The self-similarity `sᵢᵢ` is removed from the denominator (lightly removes
//! the diagonals of the `z1·z1ᵀ` and `z2·z2ᵀ` blocks), so every row is a
//! cross-entropy over `2B − 1` candidates: identical embeddings everywhere give
//! `L = ln(2B − 1)`.

use super::{check_pair, check_temperature, cross_entropy, l2_normalize};
use candle_core::{Result, Tensor};

/// The `(2B, 2B − 1)` NT-Xent logits and their `(2B,)` u32 targets.
///
/// Row `r` holds `zᵣ·zₖ / τ` for every `k ≠ r` in increasing `k`, where
/// `z = [normalize(z1); normalize(z2)]`; the target is the column of the other
/// view of the same image (`r + B − 1` for `r < B`, `r − B` otherwise).
///
/// # Shapes
/// `z1 (B, D)`, `z2 (B, D)` → `((2B, 2B − 1), (2B,))`.
///
/// # Errors
/// If `z1`, `z2` are not both `(B, D)` with `B ≥ 2` (one image has no
/// negatives) and `D > 0`, or the temperature is not positive and finite.
pub fn nt_xent_logits(z1: &Tensor, z2: &Tensor, temperature: f64) -> Result<(Tensor, Tensor)> {
    let (b, _) = check_pair("nt_xent expects z1 and z2", z1, z2, 2)?;
    check_temperature("nt_xent", "temperature", temperature)?;
    let z = Tensor::cat(&[l2_normalize(z1)?, l2_normalize(z2)?], 0)?; // (2B, D)
    let sim = (z.matmul(&z.t()?)? / temperature)?.contiguous()?; // (2B, 2B)
    let n = 2 * b;
    let cols: Vec<u32> = (0..n).flat_map(|r| (0..n).filter(move |&c| c != r)).map(|c| c as u32).collect();
    let cols = Tensor::from_vec(cols, (n, n - 1), z.device())?;
    let logits = sim.gather(&cols, 1)?;
    let targets: Vec<u32> = (0..n).map(|r| (if r < b { r + b - 1 } else { r - b }) as u32).collect();
    let targets = Tensor::from_vec(targets, n, z.device())?;
    Ok((logits, targets))
}

/// SimCLR's NT-Xent loss of two views; equals lightly's
/// `NTXentLoss(temperature)(z1, z2)` (no memory bank). See [`nt_xent_logits`]
/// for the logits: `L` is their mean cross-entropy,
/// `ℓᵢ = −log(exp(sᵢ,ⱼ₍ᵢ₎) / Σ_{k≠i} exp(sᵢₖ))` with `sᵢₖ = zᵢ·zₖ / τ`
/// (Chen et al. 2020, arXiv:2002.05709, eq. 1). Symmetric in `z1`, `z2`;
/// inputs are L2-normalised inside.
///
/// # Shapes
/// `z1 (B, D)`, `z2 (B, D)` → scalar.
///
/// # Errors
/// If `z1`, `z2` are not both `(B, D)` with `B ≥ 2` and `D > 0`, or the
/// temperature is not positive and finite.
///
/// # Example
/// ```
/// # use sslab::{loss::nt_xent, rng::SeededRng};
/// # use candle_core::Device;
/// let mut rng = SeededRng::new(0);
/// let z1 = rng.randn(&[8, 32], 1.0, &Device::Cpu)?;
/// let z2 = rng.randn(&[8, 32], 1.0, &Device::Cpu)?;
/// let random = nt_xent(&z1, &z2, 0.5)?.to_scalar::<f32>()?;
/// let aligned = nt_xent(&z1, &z1, 0.5)?.to_scalar::<f32>()?;
/// assert!(aligned < random);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn nt_xent(z1: &Tensor, z2: &Tensor, temperature: f64) -> Result<Tensor> {
    let (logits, targets) = nt_xent_logits(z1, z2, temperature)?;
    cross_entropy(&logits, &targets)
}

/// NT-Xent taken apart on a small batch: the similarity matrix, each row's
/// positive, the probability the softmax gives it and its loss term, for the
/// step-by-step view of the chapter's notebook. Computed in `f64` straight
/// from the definition (not through [`nt_xent`], which a test compares it to).
#[derive(Clone, Debug, PartialEq)]
pub struct NtXentBreakdown {
    /// `zᵢ·zₖ` of the `2B` L2-normalised embeddings (view 1 of every image,
    /// then view 2), `2B` rows of `2B`.
    pub similarity: Vec<Vec<f64>>,
    /// The row of each row's positive: the other view of the same image.
    pub positive: Vec<usize>,
    /// The probability row `i`'s softmax over its `2B − 1` candidates
    /// `exp(sᵢₖ/τ)`, `k ≠ i`, gives the positive.
    pub positive_probability: Vec<f64>,
    /// `ℓᵢ = −log` of that probability.
    pub row_loss: Vec<f64>,
    /// The mean of the `ℓᵢ`: the loss.
    pub loss: f64,
    /// The temperature τ.
    pub temperature: f64,
}

/// See [`NtXentBreakdown`].
///
/// # Shapes
/// `z1 (B, D)`, `z2 (B, D)`, `B ≥ 2`.
pub fn nt_xent_breakdown(z1: &Tensor, z2: &Tensor, temperature: f64) -> Result<NtXentBreakdown> {
    let (b, _) = check_pair("nt_xent_breakdown expects z1 and z2", z1, z2, 2)?;
    check_temperature("nt_xent_breakdown", "temperature", temperature)?;
    let z = Tensor::cat(&[l2_normalize(z1)?, l2_normalize(z2)?], 0)?.to_dtype(candle_core::DType::F64)?;
    let similarity: Vec<Vec<f64>> = z.matmul(&z.t()?)?.to_vec2()?;
    let n = 2 * b;
    let positive: Vec<usize> = (0..n).map(|i| (i + b) % n).collect();
    let mut positive_probability = Vec::with_capacity(n);
    for (i, row) in similarity.iter().enumerate() {
        let max = row.iter().enumerate().filter(|&(k, _)| k != i).map(|(_, v)| v / temperature).fold(f64::NEG_INFINITY, f64::max);
        let denom: f64 = row.iter().enumerate().filter(|&(k, _)| k != i).map(|(_, v)| (v / temperature - max).exp()).sum();
        positive_probability.push((row[positive[i]] / temperature - max).exp() / denom);
    }
    let row_loss: Vec<f64> = positive_probability.iter().map(|p| -p.ln()).collect();
    let loss = row_loss.iter().sum::<f64>() / n as f64;
    Ok(NtXentBreakdown { similarity, positive, positive_probability, row_loss, loss, temperature })
}

impl NtXentBreakdown {
    /// Names of the `2B` views: `1a, 2a, …` (view 1), then `1b, 2b, …`.
    pub fn view_names(&self) -> Vec<String> {
        let b = self.similarity.len() / 2;
        (0..2 * b).map(|i| format!("{}{}", i % b + 1, if i < b { 'a' } else { 'b' })).collect()
    }
}

#[cfg(test)]
// golden values are pasted as Python printed them (8–9 significant digits)
#[allow(clippy::excessive_precision)]
mod tests {
    use super::super::test_util::{assert_close, assert_grad, scalar, wave, wave_var, zeros};
    use super::*;
    use candle_core::{DType, Device};

    /// The breakdown's mean equals the loss (lightly's value is checked
    /// below), its probabilities are in (0, 1), each positive is the other
    /// view, and the table and heatmap carry every view.
    #[test]
    fn breakdown_matches_the_loss() {
        let (z1, z2) = (wave(12, 0.37, 0.1, false, &[3, 4]), wave(12, 0.23, 0.4, true, &[3, 4]));
        for t in [0.1, 0.5, 2.0] {
            let parts = nt_xent_breakdown(&z1, &z2, t).unwrap();
            let want = f64::from(scalar(&nt_xent(&z1, &z2, t).unwrap()));
            assert!((parts.loss - want).abs() < 1e-5, "τ {t}: {} vs {want}", parts.loss);
            assert_eq!(parts.positive, vec![3, 4, 5, 0, 1, 2]);
            assert!(parts.positive_probability.iter().all(|p| *p > 0.0 && *p < 1.0));
            assert!((parts.similarity[0][0] - 1.0).abs() < 1e-6);
            assert_eq!(parts.table().to_html().matches("<tr>").count(), 7);
            let svg = parts.heatmap().unwrap().to_svg().unwrap();
            assert_eq!(svg.matches("class=\"outline\"").count(), 6);
            assert!(svg.contains(">2b<"));
        }
        assert!(nt_xent_breakdown(&z1, &wave(8, 0.2, 0.1, true, &[2, 4]), 0.5).is_err());
    }

    /// Reference: lightly 1.6.0, torch 2.15 (CPU, f32).
    ///
    /// ```python
    /// import torch
    /// from lightly.loss import NTXentLoss
    /// def wave(n, a, b, cos, shape):
    ///     k = torch.arange(n, dtype=torch.float32)
    ///     x = torch.cos(a * k + b) if cos else torch.sin(a * k + b)
    ///     return x.reshape(shape)
    /// z1 = wave(48, 0.37, 0.1, False, (6, 8)).requires_grad_()
    /// z2 = wave(48, 0.23, 0.0, True, (6, 8)).requires_grad_()
    /// loss = NTXentLoss(temperature=0.5)(z1, z2); loss.backward()
    /// loss.item(), z1.grad.flatten()[:6], z1.grad.norm(), z2.grad.flatten()[:6], z2.grad.norm()
    /// # then the same with NTXentLoss(temperature=0.1) and fresh grads
    /// ```
    #[test]
    fn nt_xent_matches_lightly_value_and_gradients() {
        let z1 = wave_var(48, 0.37, 0.1, false, &[6, 8]);
        let z2 = wave_var(48, 0.23, 0.0, true, &[6, 8]);
        let loss = nt_xent(z1.as_tensor(), z2.as_tensor(), 0.5).unwrap();
        assert_close(&[scalar(&loss)], &[3.026_999_7], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &z1, &[-0.069869943, -0.053860284, -0.034692809, -0.014370327, 0.0051344573, 0.022105005], 0.283414274);
        #[rustfmt::skip]
        assert_grad(&g, &z2, &[0.030808728, 0.012886597, -0.0034176465, -0.015994476, -0.023410831, -0.025089838], 0.321253836);

        let loss = nt_xent(z1.as_tensor(), z2.as_tensor(), 0.1).unwrap();
        assert_close(&[scalar(&loss)], &[9.275_458_3], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &z1, &[-0.31611818, -0.25118169, -0.16898459, -0.077095598, 0.016298391, 0.10327737], 1.3529315);
        #[rustfmt::skip]
        assert_grad(&g, &z2, &[0.1703603, 0.069129117, -0.022495568, -0.091259345, -0.12804562, -0.12909938], 1.86208034);
    }

    #[test]
    fn nt_xent_invariants_symmetry_collapse_and_alignment() {
        let z1 = wave(48, 0.37, 0.1, false, &[6, 8]);
        let z2 = wave(48, 0.23, 0.0, true, &[6, 8]);
        let a = scalar(&nt_xent(&z1, &z2, 0.3).unwrap());
        let b = scalar(&nt_xent(&z2, &z1, 0.3).unwrap());
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        // scale invariance (normalised inside)
        let c = scalar(&nt_xent(&(&z1 * 5.0).unwrap(), &z2, 0.3).unwrap());
        assert!((a - c).abs() < 1e-5, "{a} vs {c}");
        // collapse: every embedding identical → all 2B − 1 logits equal → ln(2B − 1)
        let same = Tensor::ones((5, 4), DType::F32, &Device::Cpu).unwrap();
        let l = scalar(&nt_xent(&same, &same, 0.2).unwrap());
        assert!((l - 9f32.ln()).abs() < 1e-5, "{l} vs ln 9");
        // perfectly aligned, mutually orthogonal rows: ln(1 + (2B − 2) e^{−1/τ})
        let eye = Tensor::eye(4, DType::F32, &Device::Cpu).unwrap();
        let l = scalar(&nt_xent(&eye, &eye, 0.5).unwrap());
        let want = (1.0 + 6.0 * (-2f32).exp()).ln();
        assert!((l - want).abs() < 1e-5, "{l} vs {want}");
        // logits layout: row 0's positive is column B − 1 = 3 and equals 1/τ
        let (logits, targets) = nt_xent_logits(&eye, &eye, 0.5).unwrap();
        assert_eq!(logits.dims(), &[8, 7]);
        assert_eq!(targets.to_vec1::<u32>().unwrap(), vec![3, 4, 5, 6, 0, 1, 2, 3]);
        assert!((logits.to_vec2::<f32>().unwrap()[0][3] - 2.0).abs() < 1e-6);
    }

    #[test]
    fn nt_xent_errors_name_function_and_shapes() {
        let err = |a: &[usize], b: &[usize], t: f64| nt_xent(&zeros(a), &zeros(b), t).unwrap_err().to_string();
        let e = err(&[4, 8], &[3, 8], 0.5);
        assert!(e.contains("nt_xent") && e.contains("[4, 8]") && e.contains("[3, 8]"), "{e}");
        let e = err(&[1, 8], &[1, 8], 0.5);
        assert!(e.contains("B >= 2") && e.contains("[1, 8]"), "{e}");
        let e = err(&[2, 4, 8], &[2, 4, 8], 0.5);
        assert!(e.contains("[2, 4, 8]"), "{e}");
        let e = err(&[0, 8], &[0, 8], 0.5);
        assert!(e.contains("[0, 8]"), "{e}");
        let e = err(&[4, 0], &[4, 0], 0.5);
        assert!(e.contains("[4, 0]"), "{e}");
        for t in [0.0, -0.5, f64::NAN, f64::INFINITY] {
            let e = err(&[4, 8], &[4, 8], t);
            assert!(e.contains("nt_xent") && e.contains("temperature"), "{e}");
        }
    }
}
