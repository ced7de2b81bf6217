//! Models and their parameters.
//!
//! Parameters live in a [`Params`] store that initialises every tensor from
//! the run's seed (Candle's own initialisers are not reproducible on the CPU).
//! Layers follow Candle's style: a plain struct implementing
//! [`candle_core::Module`] (or [`candle_core::ModuleT`] when it has batch
//! norm, so train and eval modes are explicit), built from a
//! [`candle_nn::VarBuilder`] by an `XConfig::init(vb)` or a free constructor.
//! Everything is re-exported here; each file holds one concept:
//!
//! | module | what it holds |
//! |---|---|
//! | [`params`] | [`Params`], the seeded parameter store; [`count_params`], [`is_buffer`] |
//! | [`ops`] | differentiable [`softmax`], [`layer_norm`] / [`LayerNorm`], [`gelu`], [`l2_normalize`] (Candle's fused ones have no backward) |
//! | [`batch_norm`](mod@batch_norm) | [`BatchNorm`] with train/eval modes and live running statistics |
//! | [`block`] | [`MultiHeadAttention`] (causal / padding masks), pre-norm [`TransformerBlock`] |
//! | [`cnn`] | [`SmallCnn`], the chapter's small image encoder |
//! | [`im2col`] | [`conv2d`] and [`conv1d`] as im2col + matrix product, with a fast CPU backward; [`conv2d_relu_max_pool2d`], the CNN layer as one op |
//! | [`pool`] | [`relu_max_pool2d`]: ReLU + 2×2 max-pool fused, one-pass backward |
//! | [`resnet`](mod@resnet) | a CIFAR-style [`ResNet`] of [`BasicBlock`]s |
//! | [`vit`](mod@vit) | a tiny [`Vit`] (attention maps, MAE visible path) and the [`MaeDecoder`] |
//! | [`transformer`] | the text [`TextEncoder`] and its [`LmHead`] |
//! | [`seq`] | time-series encoders [`Conv1dEncoder`] and [`SeqTransformer`] |
//! | [`heads`] | [`ProjectionHead`] and the SimCLR, BYOL, SimSiam, Barlow Twins, VICReg, MoCo, DINO heads |
//! | [`ema`] | [`EmaTeacher`], the gradient-free momentum teacher, and [`cosine_momentum`] |
//! | [`queue`] | [`MocoQueue`], MoCo's FIFO dictionary of detached keys |
//!
//! Plus the [`Linear`] layer and [`linear`] constructor defined here.

pub mod batch_norm;
pub mod block;
pub mod cnn;
pub mod ema;
pub(crate) mod fused;
mod conv_pool;
pub(crate) mod kernels;
#[cfg(test)]
mod grad_flow;
pub mod heads;
pub mod im2col;
pub mod matmul;
pub mod ops;
pub mod params;
pub mod pool;
pub mod queue;
pub mod resnet;
pub mod seq;
pub mod transformer;
pub mod vit;

pub use batch_norm::{batch_norm, BatchNorm, BN_EPS, BN_MOMENTUM};
pub use block::{attention_bias, multi_head_attention, transformer_block, MultiHeadAttention, TransformerBlock, MASK_VALUE};
pub use cnn::{small_cnn, CnnConfig, SmallCnn};
pub use matmul::{add_bias, batched_matmul};
pub use ops::{gelu, l2_normalize, layer_norm, log_softmax, softmax, LayerNorm};
pub(crate) use ops::normalize_eps;
pub use ema::{cosine_momentum, EmaTeacher};
pub use heads::{
    barlow_twins_projection_head, byol_prediction_head, byol_projection_head, dino_head, moco_projection_head,
    projection_head, simclr_projection_head, simsiam_prediction_head, simsiam_projection_head, vicreg_projection_head,
    Activation, DinoHead, ProjectionHead, ProjectionLayer,
};
pub use conv_pool::conv2d_relu_max_pool2d;
pub use im2col::{conv1d, conv2d};
pub use pool::relu_max_pool2d;
pub use params::Params;
pub use queue::MocoQueue;
pub use resnet::{resnet, BasicBlock, ResNet, ResNetConfig};
pub use seq::{conv1d_encoder, seq_transformer, Conv1dEncoder, Conv1dEncoderConfig, SeqTransformer, SeqTransformerConfig};
pub use transformer::{text_encoder, LmHead, Pooling, TextEncoder, TextEncoderConfig};
pub use vit::{
    mae_decoder, masked_patches, patchify, random_keep, unpatchify, vit, MaeDecoder, MaeDecoderConfig, Vit, VitConfig,
};

/// Whether a parameter name is a buffer (a batch-norm running statistic,
/// `….running_mean` / `….running_var`) rather than a trainable parameter.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Number of trainable scalar parameters in `params` (batch-norm running
/// statistics excluded, as PyTorch's `sum(p.numel() for p in model.parameters())`).
pub fn count_params(params: &Params) -> usize {
    params.named_trainable_vars().iter().map(|(_, v)| v.elem_count()).sum()
}

use candle_core::{Module, Result, Tensor};
#[cfg(test)]
use candle_core::Var;
use candle_nn::VarBuilder;

/// A linear layer `y = x Wᵀ + b`.
///
/// A thin wrapper around `candle_nn::Linear`, so that notebooks, which depend
/// on `sslab` only, can name the type of a variable holding one.
#[derive(Clone, Debug)]
pub struct Linear(candle_nn::Linear);

impl Linear {
    /// The weight `(out_dim, in_dim)`.
    pub fn weight(&self) -> &Tensor {
        self.0.weight()
    }

    /// `GELU(self.forward(x))`; on the CPU (f32) one op whose backward pass
    /// applies GELU's derivative to the kept pre-activation (the transformer
    /// MLP's first layer).
    ///
    /// # Shapes
    /// `(…, in_dim)` → `(…, out_dim)`.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.0.weight();
        if let Some(b) = self.0.bias() {
            if fused::cpu_f32(&[x, w, b]) && x.dims().last() == Some(&w.dim(1)?) {
                return fused::linear_gelu(x, w, b);
            }
        }
        ops::gelu(&self.forward(x)?)
    }
}

impl Module for Linear {
    /// # Shapes
    /// `(B, in_dim)` → `(B, out_dim)`, or `(B, T, in_dim)` → `(B, T, out_dim)`.
    ///
    /// The input is made contiguous first: Candle 0.11's batched matmul
    /// computes a wrong weight gradient for a transposed (non-contiguous)
    /// 3-D input (test `linear_weight_gradient_is_right_for_transposed_inputs`).
    ///
    /// Any leading dimensions are flattened into one 2-D matrix product:
    /// `candle_nn::Linear` multiplies a 3-D input by a broadcast weight, whose
    /// gradient Candle then sums over the batch with a slow strided reduction,
    /// as it does for the bias. On the CPU (f32), for inputs of rank 3 or more
    /// (a transformer's tokens), product and bias are one op with a
    /// hand-written backward pass (one autodiff node instead of four);
    /// otherwise the bias is added by [`matmul::add_bias`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.0.weight();
        let (out_dim, in_dim) = w.dims2()?;
        let dims = x.dims().to_vec();
        match dims.last() {
            Some(&d) if d == in_dim => {}
            _ => candle_core::bail!("Linear({in_dim} → {out_dim}) expects input (…, {in_dim}), got shape {dims:?}"),
        }
        if let Some(b) = self.0.bias() {
            if x.rank() >= 3 && fused::cpu_f32(&[x, w, b]) {
                return fused::linear(x, w, b);
            }
        }
        let rows = x.elem_count() / in_dim.max(1);
        let y = x.contiguous()?.reshape((rows, in_dim))?.matmul(&w.t()?)?;
        let y = match self.0.bias() {
            Some(b) => matmul::add_bias(&y, b)?,
            None => y,
        };
        let mut out = dims;
        *out.last_mut().expect("rank checked above") = out_dim;
        y.reshape(out)
    }
}

/// A linear layer initialised like PyTorch's `nn.Linear`.
///
/// # Shapes
/// `(B, in_dim)` → `(B, out_dim)`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    // PyTorch: kaiming_uniform_(a=sqrt(5)) for the weight = U(-1/sqrt(in), 1/sqrt(in)), same for the bias.
    let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
    let init = candle_nn::Init::Uniform { lo: -bound, up: bound };
    let w = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let b = vb.get_with_hints(out_dim, "bias", init)?;
    Ok(Linear(candle_nn::Linear::new(w, Some(b))))
}

/// Checks that every tensor has a floating-point dtype (Candle's unary ops
/// such as `sqrt` and `exp` panic on integer tensors).
pub(crate) fn check_float(what: &str, ts: &[&Tensor]) -> Result<()> {
    if let Some(t) = ts.iter().find(|t| !t.dtype().is_float()) {
        candle_core::bail!("{what}: expected floating-point tensors, got dtype {:?} for shape {:?}", t.dtype(), t.dims());
    }
    Ok(())
}

/// Checks that every tensor is floating-point and has no zero-sized
/// dimension (an empty batch, zero channels or features, a 0×0 kernel),
/// naming `what` and the offending dtype or shape in the error.
pub(crate) fn check_input(what: &str, ts: &[&Tensor]) -> Result<()> {
    check_float(what, ts)?;
    if let Some(t) = ts.iter().find(|t| t.dims().contains(&0)) {
        candle_core::bail!("{what}: got an empty tensor of shape {:?} (an empty batch or a zero-sized dimension)", t.dims());
    }
    Ok(())
}

/// Checks that `x` has rank `rank`, naming `what` in the error.
pub(crate) fn expect_rank(x: &Tensor, rank: usize, what: &str, layout: &str) -> Result<()> {
    if x.rank() != rank {
        candle_core::bail!("{what} expects a rank-{rank} tensor {layout}, got shape {:?}", x.dims());
    }
    Ok(())
}

#[cfg(test)]
mod linear_tests {
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::Device;

    /// d/dw of sum(r ⊙ f(x)) for the weight entry `i`, by central differences.
    fn fd(w: &Tensor, i: usize, f: impl Fn(&Tensor) -> f32) -> f32 {
        let v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        let eps = 1e-2;
        let (mut a, mut b) = (v.clone(), v.clone());
        a[i] += eps;
        b[i] -= eps;
        let (ta, tb) = (Tensor::from_vec(a, w.shape(), w.device()).unwrap(), Tensor::from_vec(b, w.shape(), w.device()).unwrap());
        (f(&ta) - f(&tb)) / (2.0 * eps)
    }

    #[test]
    fn linear_weight_gradient_is_right_for_transposed_inputs() {
        let dev = Device::Cpu;
        let params = Params::new(0);
        let lin = linear(4, 3, params.builder(&dev)).unwrap();
        let w = params.named_vars().into_iter().find(|(n, _)| n == "weight").unwrap().1;
        let mut rng = SeededRng::new(1);
        // (B, D, T) features read per time step: a transposed, non-contiguous (B, T, D) input
        let steps = rng.randn((2, 4, 5), 1.0, &dev).unwrap();
        let x = steps.transpose(1, 2).unwrap();
        let r = rng.randn((2, 5, 3), 1.0, &dev).unwrap();
        let loss = |wt: &Tensor, raw: bool| -> f32 {
            let y = if raw { candle_nn::Linear::new(wt.clone(), None).forward(&x).unwrap() } else { x.contiguous().unwrap().broadcast_matmul(&wt.t().unwrap()).unwrap() };
            (y * &r).unwrap().sum_all().unwrap().to_scalar().unwrap()
        };
        let ours = (lin.forward(&x).unwrap() * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = ours.get(w.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for i in 0..12 {
            let want = fd(w.as_tensor(), i, |wt| loss(wt, false));
            assert!((g[i] - want).abs() < 1e-2 * (1.0 + want.abs()), "weight gradient {i}: {} vs finite difference {want}", g[i]);
        }
        // Candle's own Linear on the same transposed input: its weight gradient is wrong
        let raw_w = Var::from_tensor(w.as_tensor()).unwrap();
        let raw = (candle_nn::Linear::new(raw_w.as_tensor().clone(), None).forward(&x).unwrap() * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let rg: Vec<f32> = raw.get(raw_w.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let worst = (0..12).map(|i| (rg[i] - fd(w.as_tensor(), i, |wt| loss(wt, true))).abs()).fold(0f32, f32::max);
        assert!(worst > 1e-2, "Candle's Linear now gets the gradient right for transposed inputs (off by {worst}): the copy may go");
    }
}
