//! Projection and prediction heads, named after their papers, all built on one
//! generic [`ProjectionHead`] (lightly's design).
//!
//! \[0\] T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for
//!     Contrastive Learning of Visual Representations" (SimCLR), 2020, arXiv:2002.05709.
//! \[1\] J.-B. Grill et al., "Bootstrap Your Own Latent" (BYOL), 2020, arXiv:2006.07733.
//! \[2\] X. Chen, K. He, "Exploring Simple Siamese Representation Learning" (SimSiam), 2020,
//!     arXiv:2011.10566.
//! \[3\] J. Zbontar, L. Jing, I. Misra, Y. LeCun, S. Deny, "Barlow Twins", 2021, arXiv:2103.03230.
//! \[4\] A. Bardes, J. Ponce, Y. LeCun, "VICReg", 2021, arXiv:2105.04906.
//! \[5\] X. Chen, H. Fan, R. Girshick, K. He, "Improved Baselines with Momentum
//!     Contrastive Learning" (MoCo v2), 2020, arXiv:2003.04297.
//! \[6\] M. Caron et al., "Emerging Properties in Self-Supervised Vision
//!     Transformers" (DINO), 2021, arXiv:2104.14294.
//! \[7\] lightly 1.6, `lightly/models/modules/heads.py` (the layer lists below).
//!
//! ```text
//! ProjectionHead: for each layer (in, out, bn, act):  x ← act(BN?(W x (+ b if no BN)))
//! SimCLR:        in→hidden BN ReLU, hidden→out BN                    (lightly's v1 default)
//! BYOL proj/pred, SimSiam pred:  in→hidden BN ReLU, hidden→out
//! SimSiam proj:  in→hidden BN ReLU, hidden→hidden BN ReLU, hidden→out BN(no affine)
//! Barlow Twins = VICReg:  in→hidden BN ReLU, hidden→hidden BN ReLU, hidden→out
//! MoCo v2:       in→hidden ReLU, hidden→out
//! DINO:          in→hidden GELU, hidden→hidden GELU, hidden→bottleneck,
//!                z = V̂ · x/‖x‖,  V̂ = V / ‖V‖ row-wise   (weight norm, g fixed to 1)
//! ```
//!
//! Heads with batch norm behave differently in training and evaluation, so
//! they implement only [`ModuleT`]: call `forward_t(x, true)` while training
//! (batch statistics; needs a batch of at least 2) and `forward_t(x, false)`
//! to evaluate. As in lightly, a linear layer followed by batch norm has no
//! bias. Weights use PyTorch's `nn.Linear` initialisation everywhere (lightly's
//! DINO head uses a truncated normal with σ = 0.02 instead).

use super::batch_norm::{batch_norm, BatchNorm};
use super::ops::{gelu, l2_normalize};
use super::{linear, Linear};
use candle_core::{Module, ModuleT, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// The non-linearity after a layer of a [`ProjectionHead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// None.
    Identity,
    /// ReLU.
    Relu,
    /// GELU (exact, erf form).
    Gelu,
}

/// One layer of a [`ProjectionHead`]: linear `in_dim → out_dim`, optional batch
/// norm, activation (lightly's `(in, out, BatchNorm1d or None, act or None)`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectionLayer {
    /// Input width.
    pub in_dim: usize,
    /// Output width.
    pub out_dim: usize,
    /// Batch norm after the linear map (the linear map then has no bias).
    pub batch_norm: bool,
    /// Whether that batch norm has a learnable scale and shift.
    pub affine: bool,
    /// Activation after the (normalised) linear map.
    pub activation: Activation,
}

impl ProjectionLayer {
    /// A layer with an affine batch norm if `batch_norm` and a ReLU if `relu`.
    pub fn new(in_dim: usize, out_dim: usize, batch_norm: bool, relu: bool) -> Self {
        let activation = if relu { Activation::Relu } else { Activation::Identity };
        Self { in_dim, out_dim, batch_norm, affine: true, activation }
    }
}

/// A stack of [`ProjectionLayer`]s.
pub struct ProjectionHead {
    layers: Vec<(Linear, Option<BatchNorm>, Activation)>,
    in_dim: usize,
    out_dim: usize,
}

/// Builds a [`ProjectionHead`] (parameters `layers.{i}.linear`, `layers.{i}.bn` under `vb`);
/// consecutive layers must chain (`out_dim` of one = `in_dim` of the next).
pub fn projection_head(layers: &[ProjectionLayer], vb: VarBuilder) -> Result<ProjectionHead> {
    let (first, last) = match (layers.first(), layers.last()) {
        (Some(f), Some(l)) => (f.in_dim, l.out_dim),
        _ => candle_core::bail!("projection_head needs at least one layer"),
    };
    let mut out = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        if l.in_dim == 0 || l.out_dim == 0 || (i > 0 && layers[i - 1].out_dim != l.in_dim) {
            candle_core::bail!("projection_head: layers must have non-zero widths and chain, got {layers:?}");
        }
        let vb = vb.pp(format!("layers.{i}"));
        let lin = if l.batch_norm {
            let bound = 1.0 / (l.in_dim as f64).sqrt();
            let w = vb.pp("linear").get_with_hints((l.out_dim, l.in_dim), "weight", Init::Uniform { lo: -bound, up: bound })?;
            Linear(candle_nn::Linear::new(w, None))
        } else {
            linear(l.in_dim, l.out_dim, vb.pp("linear"))?
        };
        let bn = if l.batch_norm { Some(batch_norm(l.out_dim, l.affine, vb.pp("bn"))?) } else { None };
        out.push((lin, bn, l.activation));
    }
    Ok(ProjectionHead { layers: out, in_dim: first, out_dim: last })
}

impl ProjectionHead {
    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
}

impl ModuleT for ProjectionHead {
    /// # Shapes
    /// `(B, in_dim)` → `(B, out_dim)`; `B >= 2` in train mode when a layer has batch norm.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if x.rank() != 2 || x.dim(1)? != self.in_dim {
            candle_core::bail!("ProjectionHead expects (B, {}), got shape {:?}", self.in_dim, x.dims());
        }
        let mut y = x.clone();
        for (lin, bn, act) in &self.layers {
            y = lin.forward(&y)?;
            if let Some(bn) = bn {
                y = bn.forward_t(&y, train)?;
            }
            y = match act {
                Activation::Identity => y,
                Activation::Relu => y.relu()?,
                Activation::Gelu => gelu(&y)?,
            };
        }
        Ok(y)
    }
}

/// SimCLR v1 projection head as lightly's default [0, 7]: Linear–BN–ReLU–Linear–BN.
pub fn simclr_projection_head(in_dim: usize, hidden: usize, out: usize, vb: VarBuilder) -> Result<ProjectionHead> {
    projection_head(&[ProjectionLayer::new(in_dim, hidden, true, true), ProjectionLayer::new(hidden, out, true, false)], vb)
}

/// BYOL projection head \[1\]: Linear–BN–ReLU–Linear (paper: 4096 hidden, 256 out).
pub fn byol_projection_head(in_dim: usize, hidden: usize, out: usize, vb: VarBuilder) -> Result<ProjectionHead> {
    projection_head(&[ProjectionLayer::new(in_dim, hidden, true, true), ProjectionLayer::new(hidden, out, false, false)], vb)
}

/// BYOL prediction head \[1\]: the same shape as the projection head (paper: 256 → 4096 → 256).
pub fn byol_prediction_head(in_dim: usize, hidden: usize, out: usize, vb: VarBuilder) -> Result<ProjectionHead> {
    byol_projection_head(in_dim, hidden, out, vb)
}

/// SimSiam projection head \[2\]: 3 layers, BN on every output, the last BN without affine.
pub fn simsiam_projection_head(in_dim: usize, hidden: usize, out: usize, vb: VarBuilder) -> Result<ProjectionHead> {
    let mut last = ProjectionLayer::new(hidden, out, true, false);
    last.affine = false;
    projection_head(
        &[ProjectionLayer::new(in_dim, hidden, true, true), ProjectionLayer::new(hidden, hidden, true, true), last],
        vb,
    )
}

/// SimSiam prediction head \[2\]: Linear–BN–ReLU–Linear (bottleneck: paper 2048 → 512 → 2048).
pub fn simsiam_prediction_head(in_dim: usize, hidden: usize, out: usize, vb: VarBuilder) -> Result<ProjectionHead> {
    byol_projection_head(in_dim, hidden, out, vb)
}

/// Barlow Twins projector \[3\]: (Linear–BN–ReLU) × 2, Linear.
pub fn barlow_twins_projection_head(in_dim: usize, hidden: usize, out: usize, vb: VarBuilder) -> Result<ProjectionHead> {
    projection_head(
        &[
            ProjectionLayer::new(in_dim, hidden, true, true),
            ProjectionLayer::new(hidden, hidden, true, true),
            ProjectionLayer::new(hidden, out, false, false),
        ],
        vb,
    )
}

/// VICReg expander \[4\]: the same architecture as Barlow Twins' projector.
pub fn vicreg_projection_head(in_dim: usize, hidden: usize, out: usize, vb: VarBuilder) -> Result<ProjectionHead> {
    barlow_twins_projection_head(in_dim, hidden, out, vb)
}

/// MoCo v2 projection head \[5\]: Linear–ReLU–Linear, no batch norm.
pub fn moco_projection_head(in_dim: usize, hidden: usize, out: usize, vb: VarBuilder) -> Result<ProjectionHead> {
    projection_head(&[ProjectionLayer::new(in_dim, hidden, false, true), ProjectionLayer::new(hidden, out, false, false)], vb)
}

/// DINO head \[6\]: a GELU MLP to a bottleneck, L2 normalisation, and a
/// weight-normalised linear layer without bias whose norm is fixed to 1
/// (lightly's `norm_last_layer=True`): only the direction `V` (`last_layer.weight_v`) is learnt.
/// Optionally with batch norm after the MLP's two hidden layers (lightly's
/// `DINOProjectionHead(batch_norm=True)`, DINO's `--use_bn_in_head`).
pub struct DinoHead {
    mlp: ProjectionHead,
    v: Tensor,
}

/// Builds a [`DinoHead`] (parameters `mlp.layers.{i}`, `last_layer.weight_v (out, bottleneck)` under `vb`),
/// with affine batch norm in the two hidden layers if `batch_norm`.
pub fn dino_head(in_dim: usize, hidden: usize, bottleneck: usize, out: usize, batch_norm: bool, vb: VarBuilder) -> Result<DinoHead> {
    let gelu_layer = |i, o| ProjectionLayer { in_dim: i, out_dim: o, batch_norm, affine: true, activation: Activation::Gelu };
    let mlp = projection_head(
        &[gelu_layer(in_dim, hidden), gelu_layer(hidden, hidden), ProjectionLayer::new(hidden, bottleneck, false, false)],
        vb.pp("mlp"),
    )?;
    if out == 0 {
        candle_core::bail!("dino_head needs out > 0");
    }
    let bound = 1.0 / (bottleneck as f64).sqrt();
    let v = vb.pp("last_layer").get_with_hints((out, bottleneck), "weight_v", Init::Uniform { lo: -bound, up: bound })?;
    Ok(DinoHead { mlp, v })
}

impl DinoHead {
    /// Output width (number of prototypes).
    pub fn out_dim(&self) -> usize {
        self.v.dims()[0]
    }
}

impl ModuleT for DinoHead {
    /// # Shapes
    /// `(B, in_dim)` → `(B, out)`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let z = l2_normalize(&self.mlp.forward_t(x, train)?)?;
        // weight norm computed at every call, so a model sharing storage with an EMA teacher stays live
        let norm = self.v.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let w = self.v.broadcast_div(&norm)?;
        z.matmul(&w.t()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{count_params, Params};
    use crate::rng::SeededRng;
    use candle_core::Device;

    #[test]
    fn heads_shapes_parameter_counts_and_layouts_match_lightly() {
        let dev = Device::Cpu;
        let x = SeededRng::new(0).randn(&[4, 8], 1.0, &dev).unwrap();
        // trainable parameter counts from lightly 1.6.0:
        // ```python
        // from lightly.models.modules import heads as H
        // n = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)
        // [n(H.SimCLRProjectionHead(8,16,4)), n(H.BYOLProjectionHead(8,16,4)), n(H.SimSiamProjectionHead(8,16,4)),
        //  n(H.BarlowTwinsProjectionHead(8,16,4)), n(H.MoCoProjectionHead(8,16,4)), n(H.DINOProjectionHead(8,16,6,10)),
        //  n(H.SimSiamPredictionHead(8,16,4))]   # -> [232, 228, 512, 516, 212, 578, 228]
        // ```
        // SimCLRProjectionHead(8, 16, 4) = 8*16 + 2*16 + 16*4 + 2*4 = 232
        // BYOLProjectionHead(8, 16, 4) = 8*16 + 2*16 + 16*4 + 4 = 228
        // SimSiamProjectionHead(8, 16, 4) = 128 + 32 + 256 + 32 + 64 = 512
        // BarlowTwinsProjectionHead(8, 16, 4) = 128 + 32 + 256 + 32 + 64 + 4 = 516
        // MoCoProjectionHead(8, 16, 4) = 128 + 16 + 64 + 4 = 212
        // DINOProjectionHead(8, 16, 6, 10) minus the frozen weight_g = 144 + 272 + 102 + 60 = 578
        type Ctor = fn(usize, usize, usize, VarBuilder) -> Result<ProjectionHead>;
        let cases: [(&str, Ctor, usize); 7] = [
            ("simclr", simclr_projection_head, 232),
            ("byol", byol_projection_head, 228),
            ("byol_pred", byol_prediction_head, 228),
            ("simsiam", simsiam_projection_head, 512),
            ("simsiam_pred", simsiam_prediction_head, 228),
            ("barlow", barlow_twins_projection_head, 516),
            ("moco", moco_projection_head, 212),
        ];
        for (name, ctor, want) in cases {
            let p = Params::new(0);
            let h = ctor(8, 16, 4, p.builder(&dev).pp(name)).unwrap();
            assert_eq!(count_params(&p), want, "{name}");
            assert_eq!(h.forward_t(&x, true).unwrap().dims(), &[4, 4], "{name}");
            assert_eq!(h.forward_t(&x, false).unwrap().dims(), &[4, 4], "{name}");
            assert_eq!(h.out_dim(), 4);
        }
        let p = Params::new(0);
        let d = dino_head(8, 16, 6, 10, false, p.builder(&dev).pp("dino")).unwrap();
        assert_eq!(count_params(&p), 578);
        // with batch norm: the hidden biases (2 × 16) become γ and β (2 × 2 × 16)
        let pb = Params::new(0);
        let db = dino_head(8, 16, 6, 10, true, pb.builder(&dev).pp("dino")).unwrap();
        assert_eq!(count_params(&pb), 578 + 32);
        // the batch norm removes what every image shares: a common offset added
        // to all inputs changes nothing in train mode (without it, it does)
        let shifted = x.broadcast_add(&Tensor::ones((1, 8), x.dtype(), &dev).unwrap().affine(3.0, 0.0).unwrap()).unwrap();
        let gap = |h: &DinoHead| (h.forward_t(&x, true).unwrap() - h.forward_t(&shifted, true).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(gap(&db) < 1e-3, "{}", gap(&db));
        assert!(gap(&d) > 1e-2, "{}", gap(&d));
        assert_eq!(d.forward_t(&x, true).unwrap().dims(), &[4, 10]);
        // DINO logits are cosines: |z·ŵ| <= 1
        let m = d.forward_t(&x, true).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(m <= 1.0 + 1e-5, "{m}");
        // errors
        let h = simclr_projection_head(8, 16, 4, Params::new(0).builder(&dev)).unwrap();
        assert!(h.forward_t(&x.narrow(1, 0, 7).unwrap(), true).unwrap_err().to_string().contains("[4, 7]"));
        assert!(h.forward_t(&x.narrow(0, 0, 1).unwrap(), true).is_err(), "batch norm needs B >= 2 in train mode");
        let bad = [ProjectionLayer::new(8, 16, false, true), ProjectionLayer::new(15, 4, false, false)];
        assert!(projection_head(&bad, Params::new(0).builder(&dev)).is_err());
        assert!(projection_head(&[], Params::new(0).builder(&dev)).is_err());
    }

    #[test]
    fn heads_simsiam_last_batch_norm_standardises_without_affine() {
        let dev = Device::Cpu;
        let x = SeededRng::new(1).randn(&[16, 8], 1.0, &dev).unwrap();
        let h = simsiam_projection_head(8, 16, 4, Params::new(0).builder(&dev)).unwrap();
        let y = h.forward_t(&x, true).unwrap();
        let mean = y.mean(0).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let var: Vec<f32> = y.var(0).unwrap().to_vec1().unwrap();
        assert!(mean < 1e-5);
        // unbiased variance of a standardised column: n/(n-1)
        assert!(var.iter().all(|v| (v - 16.0 / 15.0).abs() < 1e-3), "{var:?}");
    }
}
