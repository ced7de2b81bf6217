//! A small convolutional encoder for 28×28 (or larger) images.

use super::expect_rank;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use serde::{Deserialize, Serialize};

/// Hyperparameters of [`SmallCnn`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    /// Channels of the input images (1 for MNIST and the embedded shapes).
    pub in_channels: usize,
    /// Output channels of each 3×3 convolution; all but the last are followed by 2×2 max-pooling.
    pub widths: Vec<usize>,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self { in_channels: 1, widths: vec![16, 32, 64] }
    }
}

impl CnnConfig {
    /// Builds the encoder with its parameters under `vb`.
    pub fn init(&self, vb: VarBuilder) -> Result<SmallCnn> {
        small_cnn(self, vb)
    }
}

/// A small CNN encoder: `[conv3×3 → ReLU → maxpool2]` × (n−1), conv3×3 → ReLU,
/// global average pooling. The output is the representation `h = f(x)`.
pub struct SmallCnn {
    convs: Vec<Conv2d>,
    in_channels: usize,
    feature_dim: usize,
}

/// Builds a [`SmallCnn`] (parameters `conv{i}.weight`, `conv{i}.bias` under `vb`).
pub fn small_cnn(cfg: &CnnConfig, vb: VarBuilder) -> Result<SmallCnn> {
    if cfg.widths.is_empty() || cfg.in_channels == 0 || cfg.widths.contains(&0) {
        candle_core::bail!("CnnConfig needs in_channels > 0 and at least one non-zero width, got {cfg:?}");
    }
    let conv_cfg = Conv2dConfig { padding: 1, ..Default::default() };
    let mut convs = Vec::with_capacity(cfg.widths.len());
    let mut c_in = cfg.in_channels;
    for (i, &c_out) in cfg.widths.iter().enumerate() {
        // PyTorch's Conv2d default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
        let fan_in = (c_in * 9) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let init = candle_nn::Init::Uniform { lo: -bound, up: bound };
        let vb = vb.pp(format!("conv{}", i + 1));
        let w = vb.get_with_hints((c_out, c_in, 3, 3), "weight", init)?;
        let b = vb.get_with_hints(c_out, "bias", init)?;
        convs.push(Conv2d::new(w, Some(b), conv_cfg));
        c_in = c_out;
    }
    Ok(SmallCnn { convs, in_channels: cfg.in_channels, feature_dim: c_in })
}

impl SmallCnn {
    /// Size of the representation this encoder outputs.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }
}

impl Module for SmallCnn {
    /// # Shapes
    /// `(B, C, H, W)` → `(B, feature_dim)`; `H`, `W` ≥ 2^(n−1) for n convolutions.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
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
        for (i, conv) in self.convs.iter().enumerate() {
            x = super::conv2d(&x, conv.weight(), conv.bias(), 1, 1)?.relu()?;
            if i < last {
                x = x.max_pool2d(2)?;
            }
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
        assert!(CnnConfig { in_channels: 1, widths: vec![] }.init(p.builder(&Device::Cpu)).is_err());
    }
}
