//! A small convolutional encoder for 28×28 (or larger) images.

use super::expect_rank;
use super::{batch_norm, BatchNorm};
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use serde::{Deserialize, Serialize};

/// Hyperparameters of [`SmallCnn`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    /// Channels of the input images (1 for MNIST and the embedded shapes).
    pub in_channels: usize,
    /// Output channels of each 3×3 convolution; all but the last are followed by 2×2 max-pooling.
    pub widths: Vec<usize>,
    /// Batch norm after every convolution (then the convolutions have no bias).
    /// Joint-embedding methods train much faster with it.
    #[serde(default)]
    pub batch_norm: bool,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self { in_channels: 1, widths: vec![16, 32, 64], batch_norm: false }
    }
}

impl CnnConfig {
    /// Builds the encoder with its parameters under `vb`.
    pub fn init(&self, vb: VarBuilder) -> Result<SmallCnn> {
        small_cnn(self, vb)
    }
}

/// A small CNN encoder: `[conv3×3 → (BN) → ReLU → maxpool2]` × (n−1),
/// conv3×3 → (BN) → ReLU, global average pooling. The output is the
/// representation `h = f(x)`.
///
/// It implements [`ModuleT`]: `forward_t(x, true)` while training (batch
/// statistics), `forward_t(x, false)` or [`SmallCnn::forward`] for inference.
pub struct SmallCnn {
    convs: Vec<Conv2d>,
    norms: Vec<Option<BatchNorm>>,
    in_channels: usize,
    feature_dim: usize,
}

/// Builds a [`SmallCnn`] (parameters `conv{i}.weight`, `conv{i}.bias` — or
/// `bn{i}.*` with batch norm — under `vb`).
pub fn small_cnn(cfg: &CnnConfig, vb: VarBuilder) -> Result<SmallCnn> {
    if cfg.widths.is_empty() || cfg.in_channels == 0 || cfg.widths.contains(&0) {
        candle_core::bail!("CnnConfig needs in_channels > 0 and at least one non-zero width, got {cfg:?}");
    }
    let conv_cfg = Conv2dConfig { padding: 1, ..Default::default() };
    let mut convs = Vec::with_capacity(cfg.widths.len());
    let mut norms = Vec::with_capacity(cfg.widths.len());
    let mut c_in = cfg.in_channels;
    for (i, &c_out) in cfg.widths.iter().enumerate() {
        // PyTorch's Conv2d default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
        let fan_in = (c_in * 9) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let init = candle_nn::Init::Uniform { lo: -bound, up: bound };
        let cvb = vb.pp(format!("conv{}", i + 1));
        let w = cvb.get_with_hints((c_out, c_in, 3, 3), "weight", init)?;
        if cfg.batch_norm {
            convs.push(Conv2d::new(w, None, conv_cfg));
            norms.push(Some(batch_norm(c_out, true, vb.pp(format!("bn{}", i + 1)))?));
        } else {
            let b = cvb.get_with_hints(c_out, "bias", init)?;
            convs.push(Conv2d::new(w, Some(b), conv_cfg));
            norms.push(None);
        }
        c_in = c_out;
    }
    Ok(SmallCnn { convs, norms, in_channels: cfg.in_channels, feature_dim: c_in })
}

impl SmallCnn {
    /// Size of the representation this encoder outputs.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }
}

impl SmallCnn {
    /// Inference-mode forward pass: `forward_t(x, false)`.
    ///
    /// # Shapes
    /// `(B, C, H, W)` → `(B, feature_dim)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

impl ModuleT for SmallCnn {
    /// # Shapes
    /// `(B, C, H, W)` → `(B, feature_dim)`; `H`, `W` ≥ 2^(n−1) for n convolutions.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        expect_rank(x, 4, "SmallCnn", "(B, C, H, W)")?;
        let (_, c, h, w) = x.dims4()?;
        let min = 1usize << (self.convs.len() - 1);
        if c != self.in_channels || h < min || w < min {
            candle_core::bail!(
                "SmallCnn expects (B, {}, H, W) with H, W >= {min}, got shape {:?}",
                self.in_channels,
                x.dims()
            );
        }
        let last = self.convs.len() - 1;
        let mut x = x.clone();
        for (i, (conv, norm)) in self.convs.iter().zip(&self.norms).enumerate() {
            if i < last && norm.is_none() {
                // convolution, ReLU and pooling in one op (the same values and gradients)
                x = super::conv2d_relu_max_pool2d(&x, conv.weight(), conv.bias(), 1, 1)?;
                continue;
            }
            x = super::conv2d(&x, conv.weight(), conv.bias(), 1, 1)?;
            if let Some(bn) = norm {
                x = bn.forward_t(&x, train)?;
            }
            x = if i < last { super::relu_max_pool2d(&x)? } else { x.relu()? };
        }
        x.mean((2, 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Params;
    use candle_core::{DType, Device};

    #[test]
    fn small_cnn_shapes_and_errors() {
        let p = Params::new(0);
        let enc = CnnConfig::default().init(p.builder(&Device::Cpu).pp("enc")).unwrap();
        let x = Tensor::zeros((3, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(enc.forward(&x).unwrap().dims(), &[3, 64]);
        let bad = Tensor::zeros((3, 3, 28, 28), DType::F32, &Device::Cpu).unwrap();
        let err = enc.forward(&bad).unwrap_err().to_string();
        assert!(err.contains("[3, 3, 28, 28]") && err.contains("(B, 1, H, W)"), "{err}");
        let flat = Tensor::zeros((3, 784), DType::F32, &Device::Cpu).unwrap();
        assert!(enc.forward(&flat).unwrap_err().to_string().contains("rank-4"));
        assert!(CnnConfig { in_channels: 1, widths: vec![], batch_norm: false }.init(p.builder(&Device::Cpu)).is_err());
    }
}
