//! Multi-head self-attention and the pre-norm transformer block shared by
//! [`Vit`](super::Vit), [`TextEncoder`](super::TextEncoder) and
//! [`SeqTransformer`](super::SeqTransformer).
//!
//! \[0\] A. Vaswani et al., "Attention Is All You Need", 2017, arXiv:1706.03762, eq. (1).
//! \[1\] R. Xiong et al., "On Layer Normalization in the Transformer Architecture", 2020,
//!     arXiv:2002.04745 (the pre-norm block).
//!
//! ```text
//! Attention(Q, K, V) = softmax(Q Kᵀ / √d_h + M) V        per head, d_h = D / heads
//! M[i, j] = −1e9 where key j is padding or (causal) j > i, else 0
//! block(x):  x ← x + MHA(LN₁(x));   x ← x + W₂ GELU(W₁ LN₂(x))
//! ```
//!
//! Softmax and layer norm are the differentiable ones of [`ops`](super::ops).
//! There is no dropout (the course's models are small and trained briefly).

use super::fused;
use super::matmul::batched_matmul;
use super::ops::{softmax, LayerNorm};
use super::{linear, Linear};
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// The additive value that masks an attention logit.
pub const MASK_VALUE: f64 = -1e9;

/// The additive attention mask `(B, 1, L, L)` (0 where attending is allowed,
/// [`MASK_VALUE`] where not), or `None` when nothing is masked.
///
/// `padding` is `(B, L)` with 1 for real tokens and 0 for padding (any dtype);
/// padded positions are masked as keys. `causal` masks keys after the query.
///
/// # Shapes
/// `padding (B, L)` → `(B, 1, L, L)`.
pub fn attention_bias(
    batch: usize,
    len: usize,
    causal: bool,
    padding: Option<&Tensor>,
    dev: &Device,
) -> Result<Option<Tensor>> {
    if !causal && padding.is_none() {
        return Ok(None);
    }
    let keep_pad: Vec<f32> = match padding {
        Some(p) => {
            if p.dims() != [batch, len] {
                candle_core::bail!("attention_bias: padding mask must be (B, L) = ({batch}, {len}), got {:?}", p.dims());
            }
            p.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?
        }
        None => vec![1.0; batch * len],
    };
    let mut m = vec![0f32; batch * len * len];
    for b in 0..batch {
        for i in 0..len {
            for j in 0..len {
                if keep_pad[b * len + j] == 0.0 || (causal && j > i) {
                    m[(b * len + i) * len + j] = MASK_VALUE as f32;
                }
            }
        }
    }
    Ok(Some(Tensor::from_vec(m, (batch, 1, len, len), dev)?))
}

/// Multi-head self-attention with a fused `qkv` projection and an output `proj`.
#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
    dim: usize,
}

/// Builds a [`MultiHeadAttention`] (`qkv (3D, D)`, `proj (D, D)` under `vb`); `dim` must divide by `heads`.
pub fn multi_head_attention(dim: usize, heads: usize, vb: VarBuilder) -> Result<MultiHeadAttention> {
    if dim == 0 || heads == 0 || !dim.is_multiple_of(heads) {
        candle_core::bail!("multi_head_attention needs dim > 0 divisible by heads > 0, got dim {dim}, heads {heads}");
    }
    Ok(MultiHeadAttention { qkv: linear(dim, 3 * dim, vb.pp("qkv"))?, proj: linear(dim, dim, vb.pp("proj"))?, heads, dim })
}

impl MultiHeadAttention {
    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Model width `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Checks `x (B, L, D)` and the mask `(B, 1, L, L)`; returns `(B, L, D)`.
    fn check(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<(usize, usize, usize)> {
        let (b, l, d) = match x.dims() {
            &[b, l, d] if d == self.dim && l > 0 => (b, l, d),
            dims => candle_core::bail!("MultiHeadAttention expects (B, L, {}), got shape {dims:?}", self.dim),
        };
        if let Some(bias) = bias {
            if bias.dims() != [b, 1, l, l] {
                candle_core::bail!("MultiHeadAttention: mask must be (B, 1, L, L) = ({b}, 1, {l}, {l}), got {:?}", bias.dims());
            }
        }
        Ok((b, l, d))
    }

    /// Attention output and the attention weights, with an optional additive mask
    /// from [`attention_bias`].
    ///
    /// This is the composed form (every step an elementary differentiable op),
    /// which keeps the weights; [`forward_masked`](Self::forward_masked) runs
    /// a fused op on the CPU.
    ///
    /// # Shapes
    /// `x (B, L, D)`, `bias (B, 1, L, L)` → `((B, L, D), (B, heads, L, L))`.
    pub fn forward_with_attention(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (b, l, d) = self.check(x, bias)?;
        let (out, attn) = attention_composed(&self.qkv.forward(x)?, (b, l, d), self.heads, bias)?;
        Ok((self.proj.forward(&out)?, attn))
    }

    /// Attention output with an optional additive mask.
    ///
    /// On the CPU (f32) the attention core, from the `qkv` projection to the
    /// merged heads, is one op with a hand-written backward pass;
    /// elsewhere the composed form runs. Both give the same values and gradients (tests in
    /// `nn::fused`).
    ///
    /// # Shapes
    /// `x (B, L, D)`, `bias (B, 1, L, L)` → `(B, L, D)`.
    pub fn forward_masked(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let (b, l, d) = self.check(x, bias)?;
        let qkv = self.qkv.forward(x)?;
        let out = if fused::cpu_f32(&[&qkv]) && bias.is_none_or(|m| fused::cpu_f32(&[m])) {
            fused::attention(&qkv, self.heads, bias)?
        } else {
            attention_composed(&qkv, (b, l, d), self.heads, bias)?.0
        };
        self.proj.forward(&out)
    }
}

/// The attention core from elementary ops: `qkv (B, L, 3·D)` → the merged
/// heads `(B, L, D)` and the weights `(B, heads, L, L)`.
pub(crate) fn attention_composed(qkv: &Tensor, (b, l, d): (usize, usize, usize), heads: usize, bias: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
    let dh = d / heads;
    let qkv = qkv.reshape((b, l, 3, heads, dh))?.permute([2, 0, 3, 1, 4])?;
    let q = qkv.get(0)?.contiguous()?;
    let k = qkv.get(1)?.contiguous()?;
    let v = qkv.get(2)?.contiguous()?;
    let mut scores = (batched_matmul(&q, &k, true)? / (dh as f64).sqrt())?;
    if let Some(bias) = bias {
        scores = scores.broadcast_add(bias)?;
    }
    let attn = softmax(&scores, D::Minus1)?;
    let out = batched_matmul(&attn, &v, false)?.transpose(1, 2)?.reshape((b, l, d))?;
    Ok((out, attn))
}

impl Module for MultiHeadAttention {
    /// # Shapes
    /// `(B, L, D)` → `(B, L, D)` (no mask).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_masked(x, None)
    }
}

/// A pre-norm transformer block: attention and a GELU MLP, each with a residual.
#[derive(Clone, Debug)]
pub struct TransformerBlock {
    norm1: LayerNorm,
    attn: MultiHeadAttention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// Builds a [`TransformerBlock`] of width `dim` with `heads` heads and an MLP of
/// hidden width `round(dim · mlp_ratio)` (parameters `norm1`, `attn`, `norm2`,
/// `mlp.fc1`, `mlp.fc2` under `vb`).
pub fn transformer_block(dim: usize, heads: usize, mlp_ratio: f64, vb: VarBuilder) -> Result<TransformerBlock> {
    if !(mlp_ratio.is_finite() && mlp_ratio > 0.0) {
        candle_core::bail!("transformer_block: mlp_ratio must be positive, got {mlp_ratio}");
    }
    let hidden = ((dim as f64 * mlp_ratio).round() as usize).max(1);
    Ok(TransformerBlock {
        norm1: LayerNorm::new(dim, 1e-6, vb.pp("norm1"))?,
        attn: multi_head_attention(dim, heads, vb.pp("attn"))?,
        norm2: LayerNorm::new(dim, 1e-6, vb.pp("norm2"))?,
        fc1: linear(dim, hidden, vb.pp("mlp.fc1"))?,
        fc2: linear(hidden, dim, vb.pp("mlp.fc2"))?,
    })
}

impl TransformerBlock {
    /// The block's output and its attention weights.
    ///
    /// # Shapes
    /// `x (B, L, D)`, `bias (B, 1, L, L)` → `((B, L, D), (B, heads, L, L))`.
    pub fn forward_with_attention(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (a, attn) = self.attn.forward_with_attention(&self.norm1.forward(x)?, bias)?;
        Ok((self.mlp_residual(&(x + a)?)?, attn))
    }

    /// The block's output with an optional additive mask from [`attention_bias`].
    ///
    /// # Shapes
    /// `x (B, L, D)`, `bias (B, 1, L, L)` → `(B, L, D)`.
    pub fn forward_masked(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.mlp_residual(&(x + self.attn.forward_masked(&self.norm1.forward(x)?, bias)?)?)
    }

    /// `x + W₂ GELU(W₁ LN₂(x))`, the block's second half.
    fn mlp_residual(&self, x: &Tensor) -> Result<Tensor> {
        x + self.fc2.forward(&self.fc1.forward_gelu(&self.norm2.forward(x)?)?)?
    }

    /// The attention layer.
    pub fn attention(&self) -> &MultiHeadAttention {
        &self.attn
    }
}

impl Module for TransformerBlock {
    /// # Shapes
    /// `(B, L, D)` → `(B, L, D)` (no mask).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_masked(x, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Params;
    use crate::rng::SeededRng;

    #[test]
    fn block_attention_rows_sum_to_one_and_causal_mask_hides_the_future() {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let blk = transformer_block(8, 2, 2.0, p.builder(&dev).pp("b")).unwrap();
        let x = SeededRng::new(1).randn(&[2, 5, 8], 1.0, &dev).unwrap();
        let bias = attention_bias(2, 5, true, None, &dev).unwrap();
        let (y, a) = blk.forward_with_attention(&x, bias.as_ref()).unwrap();
        assert_eq!(y.dims(), &[2, 5, 8]);
        assert_eq!(a.dims(), &[2, 2, 5, 5]);
        let rows: Vec<f32> = a.sum(D::Minus1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!(rows.iter().all(|r| (r - 1.0).abs() < 1e-5));
        let a: Vec<Vec<f32>> = a.get(0).unwrap().get(1).unwrap().to_vec2().unwrap();
        assert!(a[1][2] < 1e-12 && a[0][0] > 0.999, "{a:?}");
        // causal: output at position 0 does not change when later tokens change
        let x2 = x.slice_assign(&[0..2, 3..5, 0..8], &Tensor::zeros((2, 2, 8), DType::F32, &dev).unwrap()).unwrap();
        let y2 = blk.forward_masked(&x2, bias.as_ref()).unwrap();
        let d = (y.narrow(1, 0, 3).unwrap() - y2.narrow(1, 0, 3).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        // padding: a padded key gets no attention
        let pad = Tensor::new(&[[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]], &dev).unwrap();
        let bias = attention_bias(2, 5, false, Some(&pad), &dev).unwrap();
        let (_, a) = blk.forward_with_attention(&x, bias.as_ref()).unwrap();
        let a0: Vec<Vec<f32>> = a.get(0).unwrap().get(0).unwrap().to_vec2().unwrap();
        assert!(a0.iter().all(|r| r[3] < 1e-12 && r[4] < 1e-12));
        assert!(attention_bias(2, 4, false, Some(&pad), &dev).is_err());
        assert!(blk.forward(&x.narrow(2, 0, 4).unwrap()).is_err());
        assert!(multi_head_attention(10, 3, p.builder(&dev).pp("m")).is_err());
    }
}
