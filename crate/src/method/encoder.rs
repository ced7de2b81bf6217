//! The backbone a method trains: a choice of image encoders behind one type.

use crate::nn::{CnnConfig, ResNet, ResNetConfig, SmallCnn, Vit, VitConfig};
use candle_core::Module;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Which image encoder to build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EncoderConfig {
    /// [`SmallCnn`]: three 3×3 convolutions with max-pooling.
    Cnn(CnnConfig),
    /// [`Vit`]: a small Vision Transformer; the features are its pooled output
    /// (\[CLS\] token or mean of the patch tokens). Needed by MAE.
    Vit(VitConfig),
    /// [`ResNet`]: BasicBlocks with batch norm, global average pooling
    /// (e.g. [`ResNetConfig::resnet18`] for the `gpu` profile).
    ResNet(ResNetConfig),
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig::Cnn(CnnConfig { in_channels: 1, widths: vec![16, 32, 64], batch_norm: false })
    }
}

impl EncoderConfig {
    /// The same encoder for images with `channels` input channels.
    pub fn with_in_channels(&self, channels: usize) -> Self {
        match self {
            EncoderConfig::Cnn(c) => EncoderConfig::Cnn(CnnConfig { in_channels: channels, ..c.clone() }),
            EncoderConfig::Vit(c) => EncoderConfig::Vit(VitConfig { in_channels: channels, ..c.clone() }),
            EncoderConfig::ResNet(c) => EncoderConfig::ResNet(ResNetConfig { in_channels: channels, ..c.clone() }),
        }
    }

    /// Builds the encoder (parameters under `vb`).
    pub fn init(&self, vb: VarBuilder) -> Result<Encoder> {
        Ok(match self {
            EncoderConfig::Cnn(c) => Encoder::Cnn(c.init(vb)?),
            EncoderConfig::Vit(c) => Encoder::Vit(c.init(vb)?),
            EncoderConfig::ResNet(c) => Encoder::ResNet(c.init(vb)?),
        })
    }
}

/// An image encoder `(B, C, H, W) → (B, F)`.
pub enum Encoder {
    /// A [`SmallCnn`].
    Cnn(SmallCnn),
    /// A [`Vit`] (pooled output).
    Vit(Vit),
    /// A [`ResNet`].
    ResNet(ResNet),
}

impl Encoder {
    /// The feature width F.
    pub fn feature_dim(&self) -> usize {
        match self {
            Encoder::Cnn(m) => m.feature_dim(),
            Encoder::Vit(m) => m.feature_dim(),
            Encoder::ResNet(m) => m.feature_dim(),
        }
    }
}

impl ModuleT for Encoder {
    /// # Shapes
    /// `(B, C, H, W)` → `(B, F)`; `train` selects batch statistics where the encoder has batch norm (the ViT has none).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Encoder::Cnn(m) => m.forward_t(x, train),
            Encoder::Vit(m) => m.forward(x),
            Encoder::ResNet(m) => m.forward_t(x, train),
        }
    }
}
