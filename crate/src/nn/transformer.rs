//! A tiny text transformer encoder and its language-model head.
//!
//! \[0\] A. Vaswani et al., "Attention Is All You Need", 2017, arXiv:1706.03762.
//! \[1\] J. Devlin, M.-W. Chang, K. Lee, K. Toutanova, "BERT: Pre-training of Deep
//!     Bidirectional Transformers for Language Understanding", 2018, arXiv:1810.04805
//!     (masked LM, \[CLS\] pooling).
//! \[2\] A. Radford et al., "Improving Language Understanding by Generative
//!     Pre-Training", 2018 (causal LM, tied input/output embeddings as in \[0\] §3.4).
//!
//! ```text
//! h₀ = E_tok[ids] + E_pos[0..L]
//! h_ℓ = block(h_ℓ₋₁; mask),  ℓ = 1..depth,    H = LN(h_depth)            (B, L, D)
//! logits = H Wᵀ + b,   W = E_tok (tied) or a separate (V, D) matrix
//! ```
//!
//! The mask combines an optional causal mask (for next-token prediction) and
//! an optional padding mask `(B, L)` (1 = token, 0 = padding).

use super::block::{attention_bias, transformer_block, TransformerBlock};
use super::ops::LayerNorm;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// How [`TextEncoder::pooled`] turns token states into one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pooling {
    /// Mean over the non-padding tokens.
    Mean,
    /// The state of the first token (a \[CLS\] token the caller puts at position 0).
    Cls,
}

/// Hyperparameters of [`TextEncoder`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextEncoderConfig {
    /// Vocabulary size `V`.
    pub vocab_size: usize,
    /// Longest sequence (number of position embeddings).
    pub max_len: usize,
    /// Hidden width `D`.
    pub dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads; must divide `dim`.
    pub heads: usize,
    /// MLP hidden width as a multiple of `dim`.
    pub mlp_ratio: f64,
    /// Causal self-attention (each token sees only itself and earlier tokens).
    pub causal: bool,
}

impl Default for TextEncoderConfig {
    fn default() -> Self {
        Self { vocab_size: 128, max_len: 64, dim: 64, depth: 2, heads: 4, mlp_ratio: 2.0, causal: false }
    }
}

impl TextEncoderConfig {
    /// Builds the encoder with its parameters under `vb`.
    pub fn init(&self, vb: VarBuilder) -> Result<TextEncoder> {
        text_encoder(self, vb)
    }
}

/// Token + position embeddings, pre-norm transformer blocks, final layer norm.
pub struct TextEncoder {
    cfg: TextEncoderConfig,
    tok: Tensor,
    pos: Tensor,
    blocks: Vec<TransformerBlock>,
    norm: LayerNorm,
}

/// Builds a [`TextEncoder`] (parameters `tok_embed (V, D)`, `pos_embed (max_len, D)`,
/// both ~ N(0, 0.02²), `blocks.{i}`, `norm` under `vb`).
pub fn text_encoder(cfg: &TextEncoderConfig, vb: VarBuilder) -> Result<TextEncoder> {
    if cfg.vocab_size == 0 || cfg.max_len == 0 || cfg.dim == 0 {
        candle_core::bail!("TextEncoderConfig needs vocab_size, max_len, dim > 0, got {cfg:?}");
    }
    let init = Init::Randn { mean: 0.0, stdev: 0.02 };
    let blocks = (0..cfg.depth)
        .map(|i| transformer_block(cfg.dim, cfg.heads, cfg.mlp_ratio, vb.pp(format!("blocks.{i}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(TextEncoder {
        cfg: cfg.clone(),
        tok: vb.get_with_hints((cfg.vocab_size, cfg.dim), "tok_embed", init)?,
        pos: vb.get_with_hints((cfg.max_len, cfg.dim), "pos_embed", init)?,
        blocks,
        norm: LayerNorm::new(cfg.dim, 1e-6, vb.pp("norm"))?,
    })
}

impl TextEncoder {
    /// The configuration.
    pub fn config(&self) -> &TextEncoderConfig {
        &self.cfg
    }

    /// Hidden width `D`.
    pub fn feature_dim(&self) -> usize {
        self.cfg.dim
    }

    /// The token embedding matrix `(V, D)` (shared by a tied [`LmHead`]).
    pub fn token_embeddings(&self) -> &Tensor {
        &self.tok
    }

    /// Hidden states of every token; `padding` is `(B, L)` with 1 for tokens, 0 for padding.
    ///
    /// # Shapes
    /// `ids (B, L)` (u32 or i64), `padding (B, L)` → `(B, L, D)`.
    pub fn forward_masked(&self, ids: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let (b, l) = match ids.dims() {
            &[b, l] if l > 0 && l <= self.cfg.max_len => (b, l),
            dims => candle_core::bail!("TextEncoder expects ids (B, L) with 0 < L <= {}, got shape {dims:?}", self.cfg.max_len),
        };
        let ids = ids.to_dtype(DType::U32)?;
        let max = ids.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
        if max >= self.cfg.vocab_size {
            candle_core::bail!("TextEncoder: token id {max} is out of the vocabulary of {}", self.cfg.vocab_size);
        }
        let h = self.tok.index_select(&ids.flatten_all()?, 0)?.reshape((b, l, self.cfg.dim))?;
        let mut h = h.broadcast_add(&self.pos.narrow(0, 0, l)?)?;
        let bias = attention_bias(b, l, self.cfg.causal, padding, ids.device())?;
        for blk in &self.blocks {
            h = blk.forward_masked(&h, bias.as_ref())?;
        }
        self.norm.forward(&h)
    }

    /// One vector per sequence: mean over non-padding tokens, or the first token.
    ///
    /// # Shapes
    /// `ids (B, L)`, `padding (B, L)` → `(B, D)`.
    pub fn pooled(&self, ids: &Tensor, padding: Option<&Tensor>, pooling: Pooling) -> Result<Tensor> {
        let h = self.forward_masked(ids, padding)?;
        match (pooling, padding) {
            (Pooling::Cls, _) => h.narrow(1, 0, 1)?.squeeze(1),
            (Pooling::Mean, None) => h.mean(1),
            (Pooling::Mean, Some(p)) => {
                let m = p.to_dtype(h.dtype())?.unsqueeze(2)?; // (B, L, 1)
                let n = m.sum(1)?.clamp(1.0, f64::MAX)?; // (B, 1)
                h.broadcast_mul(&m)?.sum(1)?.broadcast_div(&n)
            }
        }
    }
}

impl Module for TextEncoder {
    /// Hidden states without padding.
    ///
    /// # Shapes
    /// `ids (B, L)` → `(B, L, D)`.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_masked(ids, None)
    }
}

/// A language-model head: hidden states → vocabulary logits.
pub struct LmHead {
    weight: Tensor,
    bias: Tensor,
}

impl LmHead {
    /// A head whose weight is the encoder's token embedding (weight tying); only
    /// the bias `bias (V,)` is new, under `vb`.
    pub fn tied(encoder: &TextEncoder, vb: VarBuilder) -> Result<Self> {
        let bias = vb.get_with_hints(encoder.cfg.vocab_size, "bias", Init::Const(0.0))?;
        Ok(Self { weight: encoder.tok.clone(), bias })
    }

    /// A head with its own `weight (V, D)` and `bias (V,)` under `vb`.
    pub fn untied(dim: usize, vocab_size: usize, vb: VarBuilder) -> Result<Self> {
        if dim == 0 || vocab_size == 0 {
            candle_core::bail!("LmHead::untied needs dim, vocab_size > 0, got {dim}, {vocab_size}");
        }
        let bound = 1.0 / (dim as f64).sqrt();
        let weight = vb.get_with_hints((vocab_size, dim), "weight", Init::Uniform { lo: -bound, up: bound })?;
        let bias = vb.get_with_hints(vocab_size, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias })
    }

    /// Vocabulary size `V`.
    pub fn out_dim(&self) -> usize {
        self.bias.elem_count()
    }
}

impl Module for LmHead {
    /// # Shapes
    /// `(B, L, D)` → `(B, L, V)`, or `(B, D)` → `(B, V)`.
    fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let d = self.weight.dim(1)?;
        if h.dims().last() != Some(&d) || !(2..=3).contains(&h.rank()) {
            candle_core::bail!("LmHead expects (B, L, {d}) or (B, {d}), got shape {:?}", h.dims());
        }
        let w = self.weight.t()?;
        let y = if h.rank() == 3 { h.broadcast_matmul(&w)? } else { h.matmul(&w)? };
        y.broadcast_add(&self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Params;
    use candle_core::Device;

    fn cfg(causal: bool) -> TextEncoderConfig {
        TextEncoderConfig { vocab_size: 11, max_len: 6, dim: 8, depth: 2, heads: 2, mlp_ratio: 2.0, causal }
    }

    #[test]
    fn transformer_shapes_causality_padding_and_heads() {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let enc = cfg(true).init(p.builder(&dev).pp("enc")).unwrap();
        let ids = Tensor::new(&[[1u32, 2, 3, 4, 5], [5, 4, 3, 2, 1]], &dev).unwrap();
        let h = enc.forward(&ids).unwrap();
        assert_eq!(h.dims(), &[2, 5, 8]);
        // causal: changing the last token leaves earlier states unchanged
        let ids2 = Tensor::new(&[[1u32, 2, 3, 4, 9], [5, 4, 3, 2, 1]], &dev).unwrap();
        let h2 = enc.forward(&ids2).unwrap();
        let d = (h.narrow(1, 0, 4).unwrap() - h2.narrow(1, 0, 4).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        // padding: with a bidirectional encoder, padded tokens do not affect the mean-pooled vector
        let bi = cfg(false).init(p.builder(&dev).pp("bi")).unwrap();
        let pad = Tensor::new(&[[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]], &dev).unwrap();
        let a = bi.pooled(&ids, Some(&pad), Pooling::Mean).unwrap();
        let b = bi.pooled(&ids2, Some(&pad), Pooling::Mean).unwrap();
        let d = (a.get(0).unwrap() - b.get(0).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        assert_eq!(bi.pooled(&ids, None, Pooling::Cls).unwrap().dims(), &[2, 8]);
        // heads
        let tied = LmHead::tied(&enc, p.builder(&dev).pp("lm")).unwrap();
        assert_eq!(tied.forward(&h).unwrap().dims(), &[2, 5, 11]);
        let untied = LmHead::untied(8, 11, p.builder(&dev).pp("lm2")).unwrap();
        assert_eq!(untied.forward(&h.mean(1).unwrap()).unwrap().dims(), &[2, 11]);
        // tied head adds only a bias
        assert!(p.named_vars().iter().any(|(n, _)| n == "lm.bias"));
        assert!(!p.named_vars().iter().any(|(n, _)| n == "lm.weight"));
        // errors
        assert!(enc.forward(&Tensor::new(&[[11u32]], &dev).unwrap()).unwrap_err().to_string().contains("11"));
        assert!(enc.forward(&Tensor::zeros((1, 7), DType::U32, &dev).unwrap()).is_err());
        assert!(tied.forward(&Tensor::zeros((1, 3), DType::F32, &dev).unwrap()).is_err());
    }
}
