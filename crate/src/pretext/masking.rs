//! Masking: hide part of the input and ask for it back.
//!
//! [0] J. Devlin et al., "BERT: Pre-training of Deep Bidirectional
//!     Transformers for Language Understanding", 2018, arXiv:1810.04805, §3.1.
//! [1] K. He et al., "Masked Autoencoders Are Scalable Vision Learners", 2021,
//!     arXiv:2111.06377.
//!
//! ```text
//! T(x) = (x ⊙ (1 − m) + fill · m,  x ⊙ m)     m = a random mask
//! ```
//!
//! For text, BERT picks each token with probability `ratio`; of the picked
//! tokens 80% become `[MASK]`, 10% a random word and 10% stay unchanged, and
//! the model must predict all of them.

use crate::rng::SeededRng;
use candle_core::{Result, Tensor};
use std::fmt;

/// Images with square patches hidden, and the mask.
#[derive(Clone, Debug)]
pub struct MaskedImages {
    /// The input x̃: masked patches replaced by the fill value, `(B, C, H, W)`.
    pub images: Tensor,
    /// 1 where a pixel was hidden, 0 elsewhere, `(B, 1, H, W)`.
    pub mask: Tensor,
    /// Patches hidden per image (the same for every image).
    pub masked_per_image: usize,
    /// Patches per image.
    pub patches_per_image: usize,
}

/// Hides `round(ratio × patches)` random `patch × patch` squares of each image,
/// filling them with `fill`.
///
/// # Shapes
/// `(B, C, H, W)` with `H`, `W` multiples of `patch`.
pub fn mask_patches(x: &Tensor, ratio: f64, patch: usize, fill: f32, rng: &mut SeededRng) -> Result<MaskedImages> {
    crate::nn::expect_rank(x, 4, "mask_patches", "(B, C, H, W)")?;
    let (b, _, h, w) = x.dims4()?;
    if patch == 0 || h % patch != 0 || w % patch != 0 {
        candle_core::bail!("mask_patches: patch size {patch} must divide the image size {h}×{w}");
    }
    if !(0.0..=1.0).contains(&ratio) {
        candle_core::bail!("mask_patches: ratio must be in [0, 1], got {ratio}");
    }
    let (ph, pw) = (h / patch, w / patch);
    let n = ph * pw;
    let k = (ratio * n as f64).round() as usize;
    let mut mask = vec![0f32; b * h * w];
    for i in 0..b {
        for p in rng.choose(n, k)? {
            let (py, px) = (p / pw, p % pw);
            for y in py * patch..(py + 1) * patch {
                let row = i * h * w + y * w;
                mask[row + px * patch..row + (px + 1) * patch].fill(1.0);
            }
        }
    }
    let mask = Tensor::from_vec(mask, (b, 1, h, w), x.device())?;
    let keep = (1.0 - &mask)?;
    let images = (x.broadcast_mul(&keep)? + (mask.clone() * f64::from(fill))?.broadcast_as(x.shape())?)?;
    Ok(MaskedImages { images, mask, masked_per_image: k, patches_per_image: n })
}

/// A sentence after BERT masking.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskedText {
    /// The input x̃, token by token (`[MASK]`, a random word, or the original).
    pub input: Vec<String>,
    /// The label y: the original token where the model must predict it, `None` elsewhere.
    pub targets: Vec<Option<String>>,
}

impl fmt::Display for MaskedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "x̃ = {}", self.input.join(" "))?;
        let ys: Vec<String> = self
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| format!("{i}:{t}")))
            .collect();
        write!(f, "y = {{{}}}", ys.join(", "))
    }
}

/// BERT masking of whitespace-separated `text`: each token is picked with
/// probability `ratio`; a picked token becomes `[MASK]` (80%), a random word
/// of `vocabulary` (10%), or stays (10%). At least one token is picked.
pub fn mask_tokens(text: &str, ratio: f64, vocabulary: &[&str], rng: &mut SeededRng) -> Result<MaskedText> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.is_empty() {
        candle_core::bail!("mask_tokens: the text is empty");
    }
    if !(0.0..=1.0).contains(&ratio) {
        candle_core::bail!("mask_tokens: ratio must be in [0, 1], got {ratio}");
    }
    let mut picked: Vec<bool> = tokens.iter().map(|_| rng.bernoulli(ratio)).collect();
    if ratio > 0.0 && !picked.contains(&true) {
        let i = rng.below(tokens.len());
        picked[i] = true;
    }
    let mut input = Vec::with_capacity(tokens.len());
    let mut targets = Vec::with_capacity(tokens.len());
    for (tok, pick) in tokens.iter().zip(picked) {
        if !pick {
            input.push(tok.to_string());
            targets.push(None);
            continue;
        }
        let u = rng.uniform();
        let shown = if u < 0.8 || vocabulary.is_empty() {
            "[MASK]".to_string()
        } else if u < 0.9 {
            vocabulary[rng.below(vocabulary.len())].to_string()
        } else {
            tok.to_string()
        };
        input.push(shown);
        targets.push(Some(tok.to_string()));
    }
    Ok(MaskedText { input, targets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn mask_patches_hides_exactly_the_ratio() {
        let x = Tensor::ones((4, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        let mut rng = SeededRng::new(0);
        let m = mask_patches(&x, 0.3, 7, 0.5, &mut rng).unwrap();
        assert_eq!((m.patches_per_image, m.masked_per_image), (16, 5));
        let hidden = m.mask.sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(hidden, (4 * 5 * 49) as f32);
        // hidden pixels hold the fill value, the rest the original
        let v: Vec<f32> = m.images.flatten_all().unwrap().to_vec1().unwrap();
        let mk: Vec<f32> = m.mask.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().zip(&mk).all(|(x, m)| if *m > 0.5 { *x == 0.5 } else { *x == 1.0 }));
        assert!(mask_patches(&x, 0.3, 5, 0.0, &mut rng).unwrap_err().to_string().contains("divide"));
    }

    #[test]
    fn mask_tokens_follows_80_10_10_on_a_large_text() {
        let text = vec!["w"; 20_000].join(" ");
        let mut rng = SeededRng::new(1);
        let m = mask_tokens(&text, 0.15, &["r"], &mut rng).unwrap();
        let picked = m.targets.iter().filter(|t| t.is_some()).count() as f64;
        let n = m.input.len() as f64;
        assert!((picked / n - 0.15).abs() < 0.01, "{}", picked / n);
        let masked = m.input.iter().filter(|t| *t == "[MASK]").count() as f64;
        let random = m.input.iter().filter(|t| *t == "r").count() as f64;
        assert!((masked / picked - 0.8).abs() < 0.03 && (random / picked - 0.1).abs() < 0.02);
        // unpicked tokens are untouched
        assert!(m.input.iter().zip(&m.targets).all(|(i, t)| t.is_some() || i == "w"));
        assert!(mask_tokens("  ", 0.1, &[], &mut rng).is_err());
    }
}
