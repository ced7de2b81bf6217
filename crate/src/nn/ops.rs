//! Softmax, layer normalisation and GELU composed from differentiable Candle ops.
//!
//! \[0\] J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer Normalization", 2016, arXiv:1607.06450.
//! \[1\] D. Hendrycks, K. Gimpel, "Gaussian Error Linear Units (GELUs)", 2016, arXiv:1606.08415.
//!
//! ```text
//! softmax(x)ᵢ   = exp(xᵢ − max x) / Σⱼ exp(xⱼ − max x)
//! layer_norm(x) = γ ⊙ (x − μ) / sqrt(σ² + ε) + β,   μ, σ² over the last dim (σ² biased)
//! gelu(x)       = x · Φ(x) = x/2 · (1 + erf(x / √2))
//! ```
//!
//! Why not Candle's own: in Candle 0.11 `candle_nn::ops::softmax_last_dim`,
//! `candle_nn::ops::layer_norm`, `ops::rms_norm` and the fast path of
//! `candle_nn::LayerNorm::forward` are fused custom ops **without a backward
//! pass**: a model that uses them trains nothing below them, silently. The
//! functions here are built from elementary ops (`exp`, `sum_keepdim`,
//! `mean_keepdim`, `sqrt`, broadcasting arithmetic), all of which have
//! gradients. Candle's `gelu_erf` does have a backward, so [`gelu`] uses it.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// Softmax along `dim`, differentiable (the maximum subtracted for stability is detached,
/// which does not change the value or the gradient).
///
/// # Shapes
/// any shape → the same shape.
pub fn softmax<Dm: candle_core::shape::Dim>(x: &Tensor, dim: Dm) -> Result<Tensor> {
    let dim = dim.to_index(x.shape(), "softmax")?;
    if dim + 1 == x.rank() && x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.dim(dim)? > 0 {
        // one fused op with a one-pass backward (see `FusedSoftmax`)
        return x.contiguous()?.apply_op1(FusedSoftmax);
    }
    let max = x.max_keepdim(dim)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(dim)?;
    e.broadcast_div(&s)
}

/// Softmax over the last dimension in one pass on the CPU, with the backward
/// `∂L/∂x = y ⊙ (g − Σ_j g_j y_j)` (g = ∂L/∂y) in one more pass, instead of
/// the five element-wise ops (and their backward passes) of the composed form.
struct FusedSoftmax;
/// The backward of [`FusedSoftmax`]: `(y, g) ↦ y ⊙ (g − ⟨g, y⟩)` row by row.
struct FusedSoftmaxBackward;

fn cpu_f32<'a>(s: &'a candle_core::CpuStorage, l: &candle_core::Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (candle_core::CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("fused softmax: needs a contiguous f32 tensor"),
    }
}

impl candle_core::CustomOp1 for FusedSoftmax {
    fn name(&self) -> &'static str {
        "sslab-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &candle_core::CpuStorage, l: &candle_core::Layout) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = cpu_f32(s, l)?;
        let n = l.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; x.len()];
        for (row, dst) in x.chunks(n).zip(out.chunks_mut(n)) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = (v - max).exp();
                sum += *d;
            }
            let inv = 1.0 / sum;
            dst.iter_mut().for_each(|d| *d *= inv);
        }
        Ok((candle_core::CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &FusedSoftmaxBackward)?))
    }
}

impl candle_core::CustomOp2 for FusedSoftmaxBackward {
    fn name(&self) -> &'static str {
        "sslab-softmax-last-dim-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (y, g) = (cpu_f32(s1, l1)?, cpu_f32(s2, l2)?);
        if y.len() != g.len() {
            candle_core::bail!("fused softmax backward: gradient {:?} for output {:?}", l2.shape(), l1.shape());
        }
        let n = l1.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; y.len()];
        for ((yr, gr), dst) in y.chunks(n).zip(g.chunks(n)).zip(out.chunks_mut(n)) {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((d, &yv), &gv) in dst.iter_mut().zip(yr).zip(gr) {
                *d = yv * (gv - dot);
            }
        }
        Ok((candle_core::CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Log-softmax along `dim`, differentiable.
///
/// # Shapes
/// any shape → the same shape.
pub fn log_softmax<Dm: candle_core::shape::Dim>(x: &Tensor, dim: Dm) -> Result<Tensor> {
    let dim = dim.to_index(x.shape(), "log_softmax")?;
    let max = x.max_keepdim(dim)?.detach();
    let z = x.broadcast_sub(&max)?;
    let lse = z.exp()?.sum_keepdim(dim)?.log()?;
    z.broadcast_sub(&lse)
}

/// Layer normalisation over the last dimension with scale `gamma` and shift `beta`
/// (both `(D,)`), composed from differentiable ops (see the [module docs](self)).
///
/// # Shapes
/// `x (…, D)`, `gamma (D,)`, `beta (D,)` → `(…, D)`.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dims().last().copied().unwrap_or(0);
    if x.rank() == 0 || gamma.dims() != [d] || beta.dims() != [d] {
        candle_core::bail!(
            "layer_norm expects x (…, D), gamma (D,), beta (D,), got {:?}, {:?}, {:?}",
            x.dims(),
            gamma.dims(),
            beta.dims()
        );
    }
    if !(eps.is_finite() && eps >= 0.0) {
        candle_core::bail!("layer_norm: eps must be finite and >= 0, got {eps}");
    }
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// GELU with the exact (erf) form, `x · Φ(x)`; Candle's `gelu_erf` has a backward pass.
///
/// # Shapes
/// any shape → the same shape.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.gelu_erf()
}

/// A layer-normalisation layer (`weight` = γ initialised to 1, `bias` = β to 0)
/// that, unlike `candle_nn::LayerNorm`, passes gradients to its input.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// A layer norm over `dim` features with parameters `weight`, `bias` under `vb`
    /// (PyTorch's default `eps` is `1e-5`).
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        if dim == 0 || !(eps.is_finite() && eps >= 0.0) {
            candle_core::bail!("LayerNorm::new needs dim > 0 and finite eps >= 0, got dim {dim}, eps {eps}");
        }
        let weight = vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?;
        let bias = vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Self { weight, bias, eps })
    }

    /// Number of normalised features.
    pub fn dim(&self) -> usize {
        self.weight.elem_count()
    }
}

impl Module for LayerNorm {
    /// # Shapes
    /// `(…, D)` → `(…, D)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Row-wise L2 normalisation (the one implementation lives in [`crate::loss`]).
pub use crate::loss::l2_normalize;

#[cfg(test)]
mod fused_tests {
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::{Device, Var, D};

    /// The fused last-dimension softmax equals the composed one (value and
    /// gradient), which the torch golden test below checks.
    #[test]
    fn fused_softmax_matches_the_composed_form() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(9);
        let x = Var::from_tensor(&(rng.randn((3, 4, 7), 2.0, &dev).unwrap())).unwrap();
        let fused = softmax(x.as_tensor(), D::Minus1).unwrap();
        // the composed path, forced by a non-last dim on the transposed input
        let composed = softmax(&x.as_tensor().transpose(1, 2).unwrap(), 1).unwrap().transpose(1, 2).unwrap();
        let d: f32 = (&fused - &composed).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-6, "{d}");
        let r = rng.randn((3, 4, 7), 1.0, &dev).unwrap();
        let g1 = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (composed * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (g1.get(x.as_tensor()).unwrap(), g2.get(x.as_tensor()).unwrap());
        let d: f32 = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-5, "gradient differs by {d}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Params;
    use candle_core::{Device, Var};

    fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * w.abs().max(1.0), "element {i}: got {g}, want {w}");
        }
    }

    fn wave(n: usize, a: f64, b: f64, shape: &[usize]) -> Tensor {
        let k = Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap().affine(a, b).unwrap();
        k.sin().unwrap().affine(2.0, 0.0).unwrap().reshape(shape).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// ```python
    /// import torch, torch.nn.functional as F
    /// x = (2 * torch.sin(0.37 * torch.arange(12.) + 0.1)).reshape(3, 4).requires_grad_()
    /// w = torch.arange(12.).reshape(3, 4) / 10
    /// y = F.softmax(x, dim=-1); (y * w).sum().backward()
    /// y.flatten(), x.grad.flatten()
    /// ```
    #[test]
    fn ops_softmax_matches_torch_value_and_gradient() {
        let x = Var::from_tensor(&wave(12, 0.37, 0.1, &[3, 4])).unwrap();
        let w = (Tensor::arange(0f32, 12., &Device::Cpu).unwrap().reshape((3, 4)).unwrap() / 10.).unwrap();
        let y = softmax(x.as_tensor(), D::Minus1).unwrap();
        #[rustfmt::skip]
        let want_y = [0.083487, 0.169151, 0.303173, 0.444189, 0.360101, 0.312433, 0.210805, 0.116661,
                      0.530753, 0.2553, 0.132632, 0.081315];
        assert_close(&flat(&y), &want_y, 1e-5);
        let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
        #[rustfmt::skip]
        let want_g = [-0.0176, -0.018743, -0.003276, 0.039619, -0.039036, -0.002625, 0.019309, 0.022352,
                      -0.040577, 0.006012, 0.016387, 0.018178];
        assert_close(&flat(g.get(x.as_tensor()).unwrap()), &want_g, 1e-4);
        // log_softmax = log(softmax)
        let ls = log_softmax(x.as_tensor(), 1).unwrap();
        let want_ls: Vec<f32> = want_y.iter().map(|v| v.ln()).collect();
        assert_close(&flat(&ls), &want_ls, 1e-4);
    }

    /// ```python
    /// x = (2 * torch.sin(0.37 * torch.arange(12.) + 0.1)).reshape(3, 4).requires_grad_()
    /// g = torch.tensor([1., 0.5, -1., 2.], requires_grad=True)
    /// b = torch.tensor([0., 0.1, 0.2, 0.3], requires_grad=True)
    /// w = torch.arange(12.).reshape(3, 4) / 10
    /// y = F.layer_norm(x, (4,), g, b, 1e-5); (y * w).sum().backward()
    /// y.flatten(), x.grad.flatten(), g.grad, b.grad
    /// ```
    #[test]
    fn ops_layer_norm_matches_torch_value_and_gradients() {
        let x = Var::from_tensor(&wave(12, 0.37, 0.1, &[3, 4])).unwrap();
        let gm = Var::new(&[1f32, 0.5, -1., 2.], &Device::Cpu).unwrap();
        let bt = Var::new(&[0f32, 0.1, 0.2, 0.3], &Device::Cpu).unwrap();
        let w = (Tensor::arange(0f32, 12., &Device::Cpu).unwrap().reshape((3, 4)).unwrap() / 10.).unwrap();
        let y = layer_norm(x.as_tensor(), gm.as_tensor(), bt.as_tensor(), 1e-5).unwrap();
        #[rustfmt::skip]
        let want_y = [-1.452523, -0.066919, -0.390623, 2.691479, 1.032823, 0.453872, 0.393018, -2.795099,
                      1.416255, 0.289172, 0.750381, -2.188436];
        assert_close(&flat(&y), &want_y, 1e-4);
        let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
        #[rustfmt::skip]
        let want_gx = [0.156957, -0.021981, -0.631389, 0.496413, 0.949303, 0.33413, -2.364871, 1.081437,
                       0.709614, -0.111924, -2.459266, 1.861576];
        assert_close(&flat(g.get(x.as_tensor()).unwrap()), &want_gx, 1e-3);
        let want_gg = [1.546133, 0.660997, -0.548067, -2.093203];
        assert_close(&flat(g.get(gm.as_tensor()).unwrap()), &want_gg, 1e-4);
        assert_close(&flat(g.get(bt.as_tensor()).unwrap()), &[1.2, 1.5, 1.8, 2.1], 1e-5);
    }

    /// ```python
    /// x = (2 * torch.sin(0.37 * torch.arange(12.) + 0.1)).reshape(3, 4).requires_grad_()
    /// w = torch.arange(12.).reshape(3, 4) / 10
    /// y = F.gelu(x); (y * w).sum().backward()
    /// y.flatten(), x.grad.flatten()
    /// ```
    #[test]
    fn ops_gelu_matches_torch_value_and_gradient() {
        let x = Var::from_tensor(&wave(12, 0.37, 0.1, &[3, 4])).unwrap();
        let w = (Tensor::arange(0f32, 12., &Device::Cpu).unwrap().reshape((3, 4)).unwrap() / 10.).unwrap();
        let y = gelu(x.as_tensor()).unwrap();
        #[rustfmt::skip]
        let want_y = [0.115633, 0.740444, 1.387708, 1.813867, 1.954408, 1.799227, 1.359704, 0.705756,
                      0.092056, -0.161968, -0.135257, -0.074274];
        assert_close(&flat(&y), &want_y, 1e-4);
        let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
        #[rustfmt::skip]
        let want_g = [0.0, 0.105723, 0.225559, 0.329691, 0.434096, 0.550175, 0.677039, 0.732564,
                      0.503131, 0.082522, -0.120366, -0.125641];
        assert_close(&flat(g.get(x.as_tensor()).unwrap()), &want_g, 1e-4);
    }

    #[test]
    fn ops_layer_norm_layer_passes_gradient_to_its_input_unlike_candles_fast_path() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&wave(12, 0.37, 0.1, &[3, 4])).unwrap();
        let w = Tensor::arange(0f32, 12., &dev).unwrap().reshape((3, 4)).unwrap();
        let p = Params::new(0);
        let ln = LayerNorm::new(4, 1e-5, p.builder(&dev).pp("ln")).unwrap();
        let loss = (ln.forward(x.as_tensor()).unwrap() * &w).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let gx = g.get(x.as_tensor()).expect("our layer norm must give x a gradient");
        assert!(gx.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3);
        // candle's fused op stops the gradient (the pitfall this module exists for)
        let (gw, gb) = (Tensor::ones(4, candle_core::DType::F32, &dev).unwrap(), Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap());
        let fused = candle_nn::ops::layer_norm(x.as_tensor(), &gw, &gb, 1e-5).unwrap();
        let g = (fused * &w).unwrap().sum_all().unwrap().backward();
        let none = match g {
            Ok(g) => g.get(x.as_tensor()).is_none(),
            Err(_) => true,
        };
        assert!(none, "candle's fused layer_norm now has a backward: revisit the docs");
        assert!(layer_norm(x.as_tensor(), &gw, &Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap(), 1e-5).is_err());
        let n = l2_normalize(x.as_tensor()).unwrap().sqr().unwrap().sum(1).unwrap();
        assert_close(&n.to_vec1::<f32>().unwrap(), &[1.0, 1.0, 1.0], 1e-5);
    }
}
