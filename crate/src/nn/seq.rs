//! Encoders for multichannel time series `(B, C, T) → (B, D)`.
//!
//! \[0\] Z. Wang, W. Yan, T. Oates, "Time Series Classification from Scratch with
//!     Deep Neural Networks: A Strong Baseline", 2016, arXiv:1611.06455 (the FCN:
//!     conv1d + batch norm + ReLU blocks, global average pooling).
//! \[1\] G. Zerveas et al., "A Transformer-based Framework for Multivariate Time
//!     Series Representation Learning", 2020, arXiv:2010.02803 (a linear
//!     projection of each time step + a transformer encoder).
//!
//! ```text
//! Conv1dEncoder:  h = mean_t ReLU(BN(conv1d_k(…ReLU(BN(conv1d_k(x)))…)))
//! SeqTransformer: z₀[t] = W x[:, t] + b + E_pos[t];  z = blocks(z₀);  h = mean_t LN(z)[t]
//! ```

use super::batch_norm::{batch_norm, BatchNorm};
use super::block::{transformer_block, TransformerBlock};
use super::ops::LayerNorm;
use super::{expect_rank, linear, Linear};
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// Hyperparameters of [`Conv1dEncoder`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv1dEncoderConfig {
    /// Input channels `C`.
    pub in_channels: usize,
    /// Output channels of each convolution.
    pub widths: Vec<usize>,
    /// Kernel size (odd: "same" padding).
    pub kernel_size: usize,
    /// Batch norm after each convolution.
    pub batch_norm: bool,
}

impl Default for Conv1dEncoderConfig {
    fn default() -> Self {
        Self { in_channels: 1, widths: vec![32, 64, 64], kernel_size: 5, batch_norm: true }
    }
}

impl Conv1dEncoderConfig {
    /// Builds the encoder with its parameters under `vb`.
    pub fn init(&self, vb: VarBuilder) -> Result<Conv1dEncoder> {
        conv1d_encoder(self, vb)
    }
}

/// A 1-D convolutional encoder: `[conv1d → BN? → ReLU] × n`, global average pool over time.
pub struct Conv1dEncoder {
    /// `(weight (O, C, k), bias, batch norm)` per layer.
    layers: Vec<(Tensor, Option<Tensor>, Option<BatchNorm>)>,
    padding: usize,
    in_channels: usize,
    feature_dim: usize,
}

/// Builds a [`Conv1dEncoder`] (parameters `conv{i}`, `bn{i}` under `vb`).
pub fn conv1d_encoder(cfg: &Conv1dEncoderConfig, vb: VarBuilder) -> Result<Conv1dEncoder> {
    if cfg.in_channels == 0 || cfg.widths.is_empty() || cfg.widths.contains(&0) || cfg.kernel_size.is_multiple_of(2) {
        candle_core::bail!("Conv1dEncoderConfig needs in_channels > 0, non-zero widths and an odd kernel_size, got {cfg:?}");
    }
    let k = cfg.kernel_size;
    let mut layers = Vec::new();
    let mut c_in = cfg.in_channels;
    for (i, &c_out) in cfg.widths.iter().enumerate() {
        let bound = 1.0 / ((c_in * k) as f64).sqrt();
        let init = Init::Uniform { lo: -bound, up: bound };
        let cvb = vb.pp(format!("conv{}", i + 1));
        let w = cvb.get_with_hints((c_out, c_in, k), "weight", init)?;
        let b = if cfg.batch_norm { None } else { Some(cvb.get_with_hints(c_out, "bias", init)?) };
        let bn = if cfg.batch_norm { Some(batch_norm(c_out, true, vb.pp(format!("bn{}", i + 1)))?) } else { None };
        layers.push((w, b, bn));
        c_in = c_out;
    }
    Ok(Conv1dEncoder { layers, padding: k / 2, in_channels: cfg.in_channels, feature_dim: c_in })
}

impl Conv1dEncoder {
    /// Size of the representation.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// The features of every time step, before the pooling ("same" padding
    /// keeps the length).
    ///
    /// # Shapes
    /// `(B, C, T)` → `(B, feature_dim, T)`.
    pub fn forward_steps_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        expect_rank(x, 3, "Conv1dEncoder", "(B, C, T)")?;
        if x.dim(1)? != self.in_channels || x.dim(2)? == 0 {
            candle_core::bail!("Conv1dEncoder expects (B, {}, T), got shape {:?}", self.in_channels, x.dims());
        }
        let mut y = x.clone();
        for (w, b, bn) in &self.layers {
            // our conv1d: Candle's CPU conv1d has a wrong weight gradient (nn::im2col tests)
            y = super::conv1d(&y, w, b.as_ref(), self.padding, 1)?;
            if let Some(bn) = bn {
                y = bn.forward_t(&y, train)?;
            }
            y = y.relu()?;
        }
        Ok(y)
    }
}

impl ModuleT for Conv1dEncoder {
    /// # Shapes
    /// `(B, C, T)` → `(B, feature_dim)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_steps_t(x, train)?.mean(2)
    }
}

/// Hyperparameters of [`SeqTransformer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeqTransformerConfig {
    /// Input channels `C`.
    pub in_channels: usize,
    /// Longest series (number of position embeddings).
    pub max_len: usize,
    /// Token width `D`.
    pub dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads; must divide `dim`.
    pub heads: usize,
    /// MLP hidden width as a multiple of `dim`.
    pub mlp_ratio: f64,
}

impl Default for SeqTransformerConfig {
    fn default() -> Self {
        Self { in_channels: 1, max_len: 128, dim: 32, depth: 2, heads: 4, mlp_ratio: 2.0 }
    }
}

impl SeqTransformerConfig {
    /// Builds the encoder with its parameters under `vb`.
    pub fn init(&self, vb: VarBuilder) -> Result<SeqTransformer> {
        seq_transformer(self, vb)
    }
}

/// A transformer over time steps: per-step linear embedding, position embedding,
/// pre-norm blocks, layer norm, mean over time.
pub struct SeqTransformer {
    cfg: SeqTransformerConfig,
    embed: Linear,
    pos: Tensor,
    blocks: Vec<TransformerBlock>,
    norm: LayerNorm,
}

/// Builds a [`SeqTransformer`] (parameters `embed`, `pos_embed`, `blocks.{i}`, `norm` under `vb`).
pub fn seq_transformer(cfg: &SeqTransformerConfig, vb: VarBuilder) -> Result<SeqTransformer> {
    if cfg.in_channels == 0 || cfg.max_len == 0 {
        candle_core::bail!("SeqTransformerConfig needs in_channels, max_len > 0, got {cfg:?}");
    }
    let blocks = (0..cfg.depth)
        .map(|i| transformer_block(cfg.dim, cfg.heads, cfg.mlp_ratio, vb.pp(format!("blocks.{i}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(SeqTransformer {
        cfg: cfg.clone(),
        embed: linear(cfg.in_channels, cfg.dim, vb.pp("embed"))?,
        pos: vb.get_with_hints((cfg.max_len, cfg.dim), "pos_embed", Init::Randn { mean: 0.0, stdev: 0.02 })?,
        blocks,
        norm: LayerNorm::new(cfg.dim, 1e-6, vb.pp("norm"))?,
    })
}

impl SeqTransformer {
    /// Size of the representation.
    pub fn feature_dim(&self) -> usize {
        self.cfg.dim
    }

    /// Hidden states of every time step.
    ///
    /// # Shapes
    /// `(B, C, T)` → `(B, T, D)`.
    pub fn forward_tokens(&self, x: &Tensor) -> Result<Tensor> {
        expect_rank(x, 3, "SeqTransformer", "(B, C, T)")?;
        let (_, c, t) = x.dims3()?;
        if c != self.cfg.in_channels || t == 0 || t > self.cfg.max_len {
            candle_core::bail!(
                "SeqTransformer expects (B, {}, T) with 0 < T <= {}, got shape {:?}",
                self.cfg.in_channels,
                self.cfg.max_len,
                x.dims()
            );
        }
        let mut h = self.embed.forward(&x.transpose(1, 2)?.contiguous()?)?.broadcast_add(&self.pos.narrow(0, 0, t)?)?;
        for b in &self.blocks {
            h = b.forward(&h)?;
        }
        self.norm.forward(&h)
    }
}

impl Module for SeqTransformer {
    /// # Shapes
    /// `(B, C, T)` → `(B, D)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_tokens(x)?.mean(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Params;
    use crate::rng::SeededRng;
    use candle_core::Device;

    #[test]
    fn seq_encoders_shapes_and_errors() {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let x = SeededRng::new(1).randn(&[3, 2, 10], 1.0, &dev).unwrap();
        let cnn = Conv1dEncoderConfig { in_channels: 2, widths: vec![4, 6], kernel_size: 3, batch_norm: true }
            .init(p.builder(&dev).pp("c"))
            .unwrap();
        assert_eq!(cnn.forward_t(&x, true).unwrap().dims(), &[3, 6]);
        assert_eq!(cnn.forward_t(&x, false).unwrap().dims(), &[3, 6]);
        let plain = Conv1dEncoderConfig { in_channels: 2, widths: vec![4], kernel_size: 3, batch_norm: false }
            .init(p.builder(&dev).pp("p"))
            .unwrap();
        assert_eq!(plain.forward_t(&x, true).unwrap().dims(), &[3, 4]);
        assert!(cnn.forward_t(&x.narrow(1, 0, 1).unwrap(), true).unwrap_err().to_string().contains("(B, 2, T)"));
        let tr = SeqTransformerConfig { in_channels: 2, max_len: 10, dim: 8, depth: 1, heads: 2, mlp_ratio: 2.0 }
            .init(p.builder(&dev).pp("t"))
            .unwrap();
        assert_eq!(tr.forward(&x).unwrap().dims(), &[3, 8]);
        assert_eq!(tr.forward_tokens(&x).unwrap().dims(), &[3, 10, 8]);
        let long = SeededRng::new(1).randn(&[1, 2, 11], 1.0, &dev).unwrap();
        assert!(tr.forward(&long).is_err());
    }
}
