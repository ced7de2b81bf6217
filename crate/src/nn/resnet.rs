//! A small CIFAR-style ResNet encoder.
//!
//! \[0\] K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image
//!     Recognition", 2015, arXiv:1512.03385, §4.2 (the CIFAR-10 networks).
//!
//! ```text
//! stem:        x ← ReLU(BN(conv3×3(x)))
//! BasicBlock:  y = ReLU(BN₂(conv3×3(ReLU(BN₁(conv3×3_s(x))))) + shortcut(x))
//!              shortcut = identity, or BN(conv1×1_s(x)) when the width or stride changes
//! stages:      widths[i] channels, blocks[i] BasicBlocks, stride 1 for stage 0 and 2 after
//! h = global average pool → (B, widths.last())
//! ```
//!
//! Convolutions have no bias (batch norm follows) and Kaiming-normal
//! (fan-out, ReLU) weights, as torchvision's ResNet. The batch norm is
//! [`BatchNorm`]: use [`ModuleT::forward_t`] with
//! `train = true` while training.

use super::batch_norm::{batch_norm, BatchNorm};
use super::expect_rank;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{Conv2d, Conv2dConfig, Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// Hyperparameters of [`ResNet`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Channels of the input images.
    pub in_channels: usize,
    /// Channels of each stage (the stem has `widths\[0\]`).
    pub widths: Vec<usize>,
    /// BasicBlocks per stage (same length as `widths`).
    pub blocks: Vec<usize>,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self { in_channels: 3, widths: vec![16, 32, 64], blocks: vec![1, 1, 1] }
    }
}

impl ResNetConfig {
    /// ResNet-18's stages (He et al., 2016): widths 64, 128, 256, 512 with two
    /// BasicBlocks each, and a 3×3 stride-1 stem without max-pooling, as for
    /// CIFAR and MNIST-sized images (about 11.2 M parameters).
    pub fn resnet18(in_channels: usize) -> Self {
        Self { in_channels, widths: vec![64, 128, 256, 512], blocks: vec![2, 2, 2, 2] }
    }

    /// Builds the network with its parameters under `vb`.
    pub fn init(&self, vb: VarBuilder) -> Result<ResNet> {
        resnet(self, vb)
    }
}

/// Runs `c` through the crate's [`conv2d`](super::conv2d) (fast CPU backward;
/// Candle's own fails when height and width need different output padding).
fn conv_fwd(c: &Conv2d, x: &Tensor) -> Result<Tensor> {
    let cfg = c.config();
    super::conv2d(x, c.weight(), c.bias(), cfg.padding, cfg.stride)
}

fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let init = Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanOut, non_linearity: NonLinearity::ReLU };
    let w = vb.get_with_hints((c_out, c_in, k, k), "weight", init)?;
    Ok(Conv2d::new(w, None, Conv2dConfig { padding: k / 2, stride, ..Default::default() }))
}

/// The residual block of \[0\]: two 3×3 convolutions with batch norm.
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    /// A block from `c_in` to `c_out` channels with the given stride
    /// (parameters `conv1`, `bn1`, `conv2`, `bn2`, `shortcut.conv`, `shortcut.bn`).
    pub fn new(c_in: usize, c_out: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let shortcut = if stride != 1 || c_in != c_out {
            Some((conv(c_in, c_out, 1, stride, vb.pp("shortcut.conv"))?, batch_norm(c_out, true, vb.pp("shortcut.bn"))?))
        } else {
            None
        };
        Ok(Self {
            conv1: conv(c_in, c_out, 3, stride, vb.pp("conv1"))?,
            bn1: batch_norm(c_out, true, vb.pp("bn1"))?,
            conv2: conv(c_out, c_out, 3, 1, vb.pp("conv2"))?,
            bn2: batch_norm(c_out, true, vb.pp("bn2"))?,
            shortcut,
        })
    }
}

impl ModuleT for BasicBlock {
    /// # Shapes
    /// `(B, C_in, H, W)` → `(B, C_out, ⌈H/s⌉, ⌈W/s⌉)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_t(&conv_fwd(&self.conv1, x)?, train)?.relu()?;
        let y = self.bn2.forward_t(&conv_fwd(&self.conv2, &y)?, train)?;
        let s = match &self.shortcut {
            Some((c, bn)) => bn.forward_t(&conv_fwd(c, x)?, train)?,
            None => x.clone(),
        };
        (y + s)?.relu()
    }
}

/// A CIFAR-style ResNet encoder ending in global average pooling.
pub struct ResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    blocks: Vec<BasicBlock>,
    in_channels: usize,
    feature_dim: usize,
}

/// Builds a [`ResNet`] (parameters `stem`, `stem_bn`, `layer{s}.{b}` under `vb`).
pub fn resnet(cfg: &ResNetConfig, vb: VarBuilder) -> Result<ResNet> {
    if cfg.in_channels == 0 || cfg.widths.is_empty() || cfg.widths.len() != cfg.blocks.len() || cfg.widths.contains(&0) {
        candle_core::bail!("ResNetConfig needs in_channels > 0 and equally long non-empty widths/blocks with non-zero widths, got {cfg:?}");
    }
    let stem = conv(cfg.in_channels, cfg.widths[0], 3, 1, vb.pp("stem"))?;
    let stem_bn = batch_norm(cfg.widths[0], true, vb.pp("stem_bn"))?;
    let mut blocks = Vec::new();
    let mut c_in = cfg.widths[0];
    for (s, (&w, &n)) in cfg.widths.iter().zip(&cfg.blocks).enumerate() {
        for b in 0..n {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            blocks.push(BasicBlock::new(c_in, w, stride, vb.pp(format!("layer{}.{b}", s + 1)))?);
            c_in = w;
        }
    }
    Ok(ResNet { stem, stem_bn, blocks, in_channels: cfg.in_channels, feature_dim: c_in })
}

impl ResNet {
    /// Size of the representation.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }
}

impl ModuleT for ResNet {
    /// # Shapes
    /// `(B, C, H, W)` → `(B, feature_dim)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        expect_rank(x, 4, "ResNet", "(B, C, H, W)")?;
        if x.dim(1)? != self.in_channels {
            candle_core::bail!("ResNet expects (B, {}, H, W), got shape {:?}", self.in_channels, x.dims());
        }
        let mut y = self.stem_bn.forward_t(&conv_fwd(&self.stem, x)?, train)?.relu()?;
        for b in &self.blocks {
            y = b.forward_t(&y, train)?;
        }
        y.mean((2, 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Params;
    use crate::rng::SeededRng;
    use candle_core::Device;

    #[test]
    fn resnet18_has_resnet18s_stages_and_size() {
        let params = Params::new(0);
        let net = ResNetConfig::resnet18(1).init(params.builder(&candle_core::Device::Cpu)).unwrap();
        assert_eq!(net.feature_dim(), 512);
        assert_eq!(net.blocks.len(), 8);
        // torchvision's resnet18 has 11,689,512 parameters with its 7×7 RGB stem and
        // 1000-way classifier; the 3×3 one-channel stem and no classifier leave 11.17 M
        let n = crate::nn::count_params(&params);
        assert!((11_100_000..11_250_000).contains(&n), "{n}");
        let x = crate::rng::SeededRng::new(1).randn((2, 1, 28, 28), 1.0, &candle_core::Device::Cpu).unwrap();
        assert_eq!(net.forward_t(&x, true).unwrap().dims(), &[2, 512]);
    }

    #[test]
    fn resnet_shapes_modes_and_running_stats() {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let cfg = ResNetConfig { in_channels: 3, widths: vec![4, 8], blocks: vec![1, 2] };
        let net = cfg.init(p.builder(&dev).pp("r")).unwrap();
        assert_eq!(net.feature_dim(), 8);
        let x = SeededRng::new(1).randn(&[2, 3, 8, 8], 1.0, &dev).unwrap();
        let rm = || p.named_vars().into_iter().find(|(n, _)| n == "r.stem_bn.running_mean").unwrap().1;
        let before: Vec<f32> = rm().as_tensor().to_vec1().unwrap();
        let ye = net.forward_t(&x, false).unwrap();
        assert_eq!(before, rm().as_tensor().to_vec1::<f32>().unwrap(), "eval must not touch running stats");
        let yt = net.forward_t(&x, true).unwrap();
        assert_eq!(yt.dims(), &[2, 8]);
        assert_ne!(before, rm().as_tensor().to_vec1::<f32>().unwrap(), "train must update running stats");
        let d = (ye - yt).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d > 1e-4, "train and eval modes should differ");
        assert!(net.forward_t(&x.narrow(1, 0, 1).unwrap(), true).unwrap_err().to_string().contains("(B, 3, H, W)"));
        assert!(ResNetConfig { blocks: vec![1], ..cfg }.init(p.builder(&dev)).is_err());
        // 8 conv/BN pairs' worth of names, including the 1×1 shortcuts of the stride-2 stage
        assert!(p.named_vars().iter().any(|(n, _)| n == "r.layer2.0.shortcut.conv.weight"));
        assert!(!p.named_vars().iter().any(|(n, _)| n == "r.layer2.1.shortcut.conv.weight"));
    }
}
