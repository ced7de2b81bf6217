//! CLIP's symmetric contrastive loss over matched image–text pairs.
//!
//! [0] A. Radford, J. W. Kim, C. Hallacy, A. Ramesh, G. Goh, S. Agarwal et al.,
//!     "Learning Transferable Visual Models From Natural Language
//!     Supervision", 2021, arXiv:2103.00020, Figure 3 (numpy-like pseudo-code).
//! [1] the pseudo-code of [0], Figure 3 (lightly 1.6.0 has no CLIP loss; with
//!     `B` pairs it is the symmetric InfoNCE of lightly's `NTXentLoss` without
//!     the same-modality negatives).
//!
//! With L2-normalised image embeddings `I` and text embeddings `T`, row `i` of
//! each forming a matched pair:
//!
//! ```text
//! S   = I Tᵀ / τ                                         (B × B)
//! L   = ½ [ CE(S, [0..B)) + CE(Sᵀ, [0..B)) ]
//!     = ½ (1/B) Σᵢ [ −log softmax(Sᵢ,·)ᵢ − log softmax(S·,ᵢ)ᵢ ]
//! ```
//!
//! The first cross-entropy classifies each image's caption among the batch's
//! texts, the second each text's image among the batch's images. CLIP learns
//! `τ` as a parameter (initialised to 0.07); here it is an argument.

use super::{check_pair, check_temperature, cross_entropy, l2_normalize};
use candle_core::{Result, Tensor};

/// The `(B, B)` CLIP logits `S = normalize(image) · normalize(text)ᵀ / τ`
/// (`logits_per_image`; its transpose is `logits_per_text`).
///
/// # Shapes
/// `image (B, D)`, `text (B, D)` → `(B, B)`.
///
/// # Errors
/// If `image`, `text` are not both `(B, D)` with `B ≥ 2` (one pair has no
/// negatives) and `D > 0`, or the temperature is not positive and finite.
pub fn clip_logits(image: &Tensor, text: &Tensor, temperature: f64) -> Result<Tensor> {
    check_pair("clip expects image and text", image, text, 2)?;
    check_temperature("clip", "temperature", temperature)?;
    l2_normalize(image)?.matmul(&l2_normalize(text)?.t()?)? / temperature
}

/// CLIP's symmetric cross-entropy `½ [CE(S, arange) + CE(Sᵀ, arange)]` over
/// the [`clip_logits`] `S = I·Tᵀ/τ` of L2-normalised embeddings (Radford et al.
/// 2021, arXiv:2103.00020, Fig. 3). Symmetric in `image`, `text`.
///
/// # Shapes
/// `image (B, D)`, `text (B, D)` → scalar.
///
/// # Errors
/// If `image`, `text` are not both `(B, D)` with `B ≥ 2` and `D > 0`, or the
/// temperature is not positive and finite.
pub fn clip(image: &Tensor, text: &Tensor, temperature: f64) -> Result<Tensor> {
    let s = clip_logits(image, text, temperature)?;
    let b = s.dim(0)?;
    let labels = Tensor::arange(0u32, b as u32, s.device())?;
    let per_image = cross_entropy(&s, &labels)?;
    let per_text = cross_entropy(&s.t()?.contiguous()?, &labels)?;
    (per_image + per_text)? * 0.5
}

/// CLIP's largest logit scale: `exp(s)` is clamped at 100 (Radford et al.
/// 2021, §2.5), a temperature of 0.01.
pub const CLIP_MAX_LOGIT_SCALE: f64 = 100.0;

/// [`clip`] with CLIP's learnable temperature: `S = min(exp(s), 100) · I·Tᵀ`
/// for a scalar parameter `s` (`logit_scale`, initialised to `ln(1/0.07)` in
/// CLIP). Differentiable in `s`; above the clamp its gradient is 0, as in
/// torch's `clamp(max=100)`.
///
/// # Shapes
/// `image (B, D)`, `text (B, D)`, `logit_scale` a scalar `()` or `(1,)` → scalar.
///
/// # Errors
/// As [`clip`], and if `logit_scale` holds more than one value.
pub fn clip_with_logit_scale(image: &Tensor, text: &Tensor, logit_scale: &Tensor) -> Result<Tensor> {
    check_pair("clip expects image and text", image, text, 2)?;
    if logit_scale.elem_count() != 1 {
        candle_core::bail!("clip: logit_scale must be a single value, got shape {:?}", logit_scale.dims());
    }
    let scale = logit_scale.flatten_all()?.exp()?.clamp(0.0, CLIP_MAX_LOGIT_SCALE)?;
    let s = l2_normalize(image)?.matmul(&l2_normalize(text)?.t()?)?.broadcast_mul(&scale.reshape((1, 1))?)?;
    let b = s.dim(0)?;
    let labels = Tensor::arange(0u32, b as u32, s.device())?;
    let per_image = cross_entropy(&s, &labels)?;
    let per_text = cross_entropy(&s.t()?.contiguous()?, &labels)?;
    (per_image + per_text)? * 0.5
}

#[cfg(test)]
// golden values are pasted as Python printed them (8–9 significant digits)
#[allow(clippy::excessive_precision)]
mod tests {
    use super::super::test_util::{assert_close, assert_grad, scalar, wave, wave_var, zeros};
    use super::*;
    use candle_core::{DType, Device};

    /// Reference: CLIP's pseudo-code in torch 2.15 (CPU, f32).
    ///
    /// ```python
    /// import torch, torch.nn.functional as F
    /// def wave(n, a, b, cos, shape):
    ///     k = torch.arange(n, dtype=torch.float32)
    ///     x = torch.cos(a * k + b) if cos else torch.sin(a * k + b)
    ///     return x.reshape(shape)
    /// img = wave(48, 0.37, 0.1, False, (6, 8)).requires_grad_()
    /// txt = wave(48, 0.23, 0.0, True, (6, 8)).requires_grad_()
    /// I_e, T_e = F.normalize(img, dim=1), F.normalize(txt, dim=1)
    /// logits = I_e @ T_e.T / 0.07
    /// labels = torch.arange(6)
    /// loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2; loss.backward()
    /// loss.item(), img.grad.flatten()[:6], img.grad.norm(), txt.grad.flatten()[:6], txt.grad.norm()
    /// ```
    #[test]
    fn clip_matches_torch_value_and_gradients() {
        let img = wave_var(48, 0.37, 0.1, false, &[6, 8]);
        let txt = wave_var(48, 0.23, 0.0, true, &[6, 8]);
        let loss = clip(img.as_tensor(), txt.as_tensor(), 0.07).unwrap();
        assert_close(&[scalar(&loss)], &[11.541_924], 1e-4);
        let g = loss.backward().unwrap();
        #[rustfmt::skip]
        assert_grad(&g, &img, &[-0.0095674954, -0.040962748, -0.059918359, -0.058811858, -0.033365667, 0.016540855], 2.19470954);
        #[rustfmt::skip]
        assert_grad(&g, &txt, &[0.1849784, 0.082280666, -0.014154583, -0.092662215, -0.1448468, -0.16660136], 2.04869533);
    }

    /// Reference: the same inputs with CLIP's learnable scale (torch 2.15, CPU, f32).
    ///
    /// ```python
    /// logit_scale = torch.tensor(math.log(1 / 0.07)).requires_grad_()
    /// logits = logit_scale.exp().clamp(max=100) * I_e @ T_e.T
    /// loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2; loss.backward()
    /// loss.item(), logit_scale.grad.item(), img.grad.norm()   # 11.5419235, 11.226037, 2.1947093
    /// ls2 = torch.tensor(math.log(200.0)).requires_grad_()      # above the clamp
    /// ...                                                       # 79.800987, grad 0.0
    /// ```
    #[test]
    fn clip_with_logit_scale_matches_torch_and_clamps() {
        let img = wave_var(48, 0.37, 0.1, false, &[6, 8]);
        let txt = wave_var(48, 0.23, 0.0, true, &[6, 8]);
        let s = candle_core::Var::new((1.0f32 / 0.07).ln(), &Device::Cpu).unwrap();
        let loss = clip_with_logit_scale(img.as_tensor(), txt.as_tensor(), s.as_tensor()).unwrap();
        assert_close(&[scalar(&loss)], &[11.541_924], 1e-4);
        let g = loss.backward().unwrap();
        assert_close(&[scalar(g.get(s.as_tensor()).unwrap())], &[11.226_037], 1e-4);
        assert_grad(&g, &img, &[-0.0095674954, -0.040962748, -0.059918359, -0.058811858, -0.033365667, 0.016540855], 2.19470954);
        let high = candle_core::Var::new(200f32.ln(), &Device::Cpu).unwrap();
        let loss = clip_with_logit_scale(img.as_tensor(), txt.as_tensor(), high.as_tensor()).unwrap();
        assert_close(&[scalar(&loss)], &[79.800_987], 1e-4);
        assert_eq!(scalar(loss.backward().unwrap().get(high.as_tensor()).unwrap()), 0.0);
        let two = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        assert!(clip_with_logit_scale(img.as_tensor(), txt.as_tensor(), &two).unwrap_err().to_string().contains("logit_scale"));
    }

    #[test]
    fn clip_invariants_symmetry_collapse_alignment() {
        let img = wave(48, 0.37, 0.1, false, &[6, 8]);
        let txt = wave(48, 0.23, 0.0, true, &[6, 8]);
        let a = scalar(&clip(&img, &txt, 0.1).unwrap());
        let b = scalar(&clip(&txt, &img, 0.1).unwrap());
        assert!((a - b).abs() < 1e-5 * a, "{a} vs {b}");
        // collapse: all embeddings equal → ln B
        let ones = Tensor::ones((5, 3), DType::F32, &Device::Cpu).unwrap();
        assert!((scalar(&clip(&ones, &ones, 0.07).unwrap()) - 5f32.ln()).abs() < 1e-5);
        // matched, mutually orthogonal pairs: ln(1 + (B − 1) e^{−1/τ})
        let eye = Tensor::eye(4, DType::F32, &Device::Cpu).unwrap();
        let l = scalar(&clip(&eye, &eye, 0.5).unwrap());
        assert!((l - (1.0 + 3.0 * (-2f32).exp()).ln()).abs() < 1e-5, "{l}");
        let s = clip_logits(&eye, &(&eye * 3.0).unwrap(), 0.5).unwrap().to_vec2::<f32>().unwrap();
        assert!((s[2][2] - 2.0).abs() < 1e-6 && s[2][1].abs() < 1e-6);
    }

    #[test]
    fn clip_errors_name_function_and_shapes() {
        let err = |a: &[usize], b: &[usize], t: f64| clip(&zeros(a), &zeros(b), t).unwrap_err().to_string();
        let e = err(&[6, 8], &[6, 4], 0.07);
        assert!(e.contains("clip") && e.contains("[6, 8]") && e.contains("[6, 4]"), "{e}");
        let e = err(&[1, 8], &[1, 8], 0.07);
        assert!(e.contains("B >= 2") && e.contains("[1, 8]"), "{e}");
        assert!(err(&[0, 8], &[0, 8], 0.07).contains("[0, 8]"));
        assert!(err(&[8], &[8], 0.07).contains("[8]"));
        for t in [0.0, -0.07] {
            let e = err(&[6, 8], &[6, 8], t);
            assert!(e.contains("clip") && e.contains("temperature"), "{e}");
        }
    }
}
