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
//! On the CPU (f32) softmax over the last dimension, layer norm and GELU are
//! single fused ops with hand-written backward passes (checked against the
//! composed forms, the torch values below and finite differences); elsewhere
//! the composed forms run.
//!
//! Why not Candle's own: in Candle 0.11 `candle_nn::ops::softmax_last_dim`,
//! `candle_nn::ops::layer_norm`, `ops::rms_norm` and the fast path of
//! `candle_nn::LayerNorm::forward` are fused custom ops **without a backward
//! pass**: a model that uses them trains nothing below them, silently. The
//! functions here are built from elementary ops (`exp`, `sum_keepdim`,
//! `mean_keepdim`, `sqrt`, broadcasting arithmetic), all of which have
//! gradients. Candle's `gelu_erf` does have a backward (a dozen element-wise
//! passes), so [`gelu`] uses it off the CPU.

use candle_core::{CpuStorage, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::VarBuilder;
use super::kernels::{f32_slice, sum_in_order, REDUCE_ROWS};
use rayon::prelude::*;

/// Rows per parallel task in the fused row-wise ops.
pub(super) const ROWS_PER_TASK: usize = 64;

/// Softmax along `dim`, differentiable (the maximum subtracted for stability is detached,
/// which does not change the value or the gradient).
///
/// # Shapes
/// any shape → the same shape.
pub fn softmax<Dm: candle_core::shape::Dim>(x: &Tensor, dim: Dm) -> Result<Tensor> {
    super::check_input("softmax", &[x])?;
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


impl candle_core::CustomOp1 for FusedSoftmax {
    fn name(&self) -> &'static str {
        "sslab-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &candle_core::CpuStorage, l: &candle_core::Layout) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = f32_slice(s, l, "softmax")?;
        let n = l.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; x.len()];
        x.par_chunks(n).zip(out.par_chunks_mut(n)).with_min_len(ROWS_PER_TASK).for_each(|(row, dst)| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = (v - max).exp();
                sum += *d;
            }
            let inv = 1.0 / sum;
            dst.iter_mut().for_each(|d| *d *= inv);
        });
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
        let (y, g) = (f32_slice(s1, l1, "softmax backward")?, f32_slice(s2, l2, "softmax backward")?);
        if y.len() != g.len() {
            candle_core::bail!("fused softmax backward: gradient {:?} for output {:?}", l2.shape(), l1.shape());
        }
        let n = l1.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; y.len()];
        y.par_chunks(n).zip(g.par_chunks(n)).zip(out.par_chunks_mut(n)).with_min_len(ROWS_PER_TASK).for_each(|((yr, gr), dst)| {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((d, &yv), &gv) in dst.iter_mut().zip(yr).zip(gr) {
                *d = yv * (gv - dot);
            }
        });
        Ok((candle_core::CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Log-softmax along `dim`, differentiable.
///
/// # Shapes
/// any shape → the same shape.
pub fn log_softmax<Dm: candle_core::shape::Dim>(x: &Tensor, dim: Dm) -> Result<Tensor> {
    super::check_input("log_softmax", &[x])?;
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
    super::check_input("layer_norm", &[x, gamma, beta])?;
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
    if x.device().is_cpu() && [x, gamma, beta].iter().all(|t| t.dtype() == candle_core::DType::F32) && d > 0 {
        // one fused op with a one-pass backward (see `FusedLayerNorm`)
        return x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, FusedLayerNorm { eps: eps as f32 });
    }
    layer_norm_composed(x, gamma, beta, eps)
}

/// [`layer_norm`] from elementary differentiable ops (other devices and dtypes).
fn layer_norm_composed(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// Layer norm over the last dimension in one pass on the CPU (rows in
/// parallel). Its backward is one more pass, [`FusedLayerNormBackward`]:
///
/// ```text
/// x̂ = (x − μ)·r,  r = 1/sqrt(σ² + ε),  ĝ = g ⊙ γ   (g = ∂L/∂y, per row)
/// ∂L/∂x = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))
/// ∂L/∂γ = Σ_rows g ⊙ x̂        ∂L/∂β = Σ_rows g
/// ```
///
/// The composed form costs about ten element-wise ops and their backward
/// passes, and Candle sums the broadcast γ and β gradients over the rows
/// with a slow strided reduction: it was the largest item of the ViT step.
struct FusedLayerNorm {
    eps: f32,
}
/// `(x, γ, g)` ↦ `[∂L/∂x; ∂L/∂γ; ∂L/∂β]`, shape `(N + 2, D)`.
struct FusedLayerNormBackward {
    eps: f32,
}

/// `(mean, 1/sqrt(var + eps))` of one row (biased variance, two passes).
#[inline]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl candle_core::CustomOp3 for FusedLayerNorm {
    fn name(&self) -> &'static str {
        "sslab-layer-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, gamma, beta) = (f32_slice(s1, l1, "layer_norm")?, f32_slice(s2, l2, "layer_norm")?, f32_slice(s3, l3, "layer_norm")?);
        let d = gamma.len();
        if d == 0 || beta.len() != d || x.len() % d != 0 {
            candle_core::bail!("layer_norm: x {:?}, gamma {:?}, beta {:?} do not match", l1.shape(), l2.shape(), l3.shape());
        }
        let mut out = vec![0f32; x.len()];
        x.par_chunks(d).zip(out.par_chunks_mut(d)).with_min_len(ROWS_PER_TASK).for_each(|(row, dst)| {
            let (mean, r) = row_stats(row, self.eps);
            for (((o, &v), &gm), &bt) in dst.iter_mut().zip(row).zip(gamma).zip(beta) {
                *o = (v - mean) * r * gm + bt;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, gamma: &Tensor, _beta: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = gamma.elem_count();
        let n = x.elem_count() / d;
        let packed = x.apply_op3_no_bwd(gamma, &grad.contiguous()?, &FusedLayerNormBackward { eps: self.eps })?;
        let gx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let gg = packed.narrow(0, n, 1)?.reshape(d)?;
        let gb = packed.narrow(0, n + 1, 1)?.reshape(d)?;
        Ok((Some(gx), Some(gg), Some(gb)))
    }
}

impl candle_core::CustomOp3 for FusedLayerNormBackward {
    fn name(&self) -> &'static str {
        "sslab-layer-norm-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, gamma, g) = (f32_slice(s1, l1, "layer_norm backward")?, f32_slice(s2, l2, "layer_norm backward")?, f32_slice(s3, l3, "layer_norm backward")?);
        let d = gamma.len();
        if d == 0 || g.len() != x.len() || x.len() % d != 0 {
            candle_core::bail!("layer_norm backward: gradient {:?} for x {:?}", l3.shape(), l1.shape());
        }
        let rows = x.len() / d;
        let mut out = vec![0f32; x.len() + 2 * d];
        let (gx, params) = out.split_at_mut(x.len());
        // rows split into blocks of REDUCE_ROWS, each with its own γ, β sums
        let per = REDUCE_ROWS * d;
        let sums = gx
            .par_chunks_mut(per)
            .zip(x.par_chunks(per))
            .zip(g.par_chunks(per))
            .map(|((gx, x), g)| {
                let mut acc = vec![0f32; 2 * d];
                let mut gh = vec![0f32; d];
                for ((gxr, xr), gr) in gx.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
                    let (mean, r) = row_stats(xr, self.eps);
                    let (mut m1, mut m2) = (0f32, 0f32);
                    for (i, ((&gv, &xv), &gm)) in gr.iter().zip(xr).zip(gamma).enumerate() {
                        let xh = (xv - mean) * r;
                        gh[i] = gv * gm;
                        m1 += gh[i];
                        m2 += gh[i] * xh;
                        acc[i] += gv * xh;
                        acc[d + i] += gv;
                    }
                    let (m1, m2) = (m1 / d as f32, m2 / d as f32);
                    for ((o, &xv), &ghv) in gxr.iter_mut().zip(xr).zip(&gh) {
                        *o = r * (ghv - m1 - (xv - mean) * r * m2);
                    }
                }
                acc
            })
            .collect();
        params.copy_from_slice(&sum_in_order(sums, 2 * d));
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, d))))
    }
}

/// GELU with the exact (erf) form, `x · Φ(x)`.
///
/// On the CPU (f32) one fused op, split across threads, whose backward
/// `∂L/∂x = g · (Φ(x) + x·φ(x))` is one more pass;
/// elsewhere Candle's `gelu_erf`, whose backward is a dozen element-wise ops.
///
/// # Shapes
/// any shape → the same shape.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    super::check_input("gelu", &[x])?;
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        return x.contiguous()?.apply_op1(FusedGelu);
    }
    x.gelu_erf()
}

/// Elements per parallel task in the fused element-wise ops.
const ELEMS_PER_TASK: usize = 16 * 1024;

/// `eˣ` in f32 from plain arithmetic, so that loops over slices vectorise:
/// `x = n·ln 2 + r` with `n` rounded to nearest and `|r| ≤ ln 2 / 2` (ln 2
/// split in two parts, as in Cephes' `expf`), `eʳ` from Cephes' degree-7
/// polynomial (relative error about 1 ulp), `2ⁿ` written into the exponent
/// bits. `x` is clamped to `[−87.3, 88.3]`, where `2ⁿ` stays a normal
/// number: below, the result is about 1e-38 instead of 0. No fused
/// multiply-add is used, so every machine computes the same bits.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5e-1;
    let e = p * (r * r) + r + 1.0;
    // t's bits are those of 1.5·2²³ plus n (its last place is 1), so n + 127
    // comes out with integer arithmetic, which vectorises (a cast does not)
    e * f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23)
}

/// `(Φ(x), φ(x)·√(2π))` = (the standard normal CDF, `exp(−x²/2)`), sharing the
/// exponential. Φ comes from erf by Abramowitz & Stegun 7.1.26 (absolute error
/// below 1.5·10⁻⁷, about one f32 ulp near 1), computed on the side of the tail
/// so that Φ of a large negative `x` keeps its relative precision.
#[inline(always)]
pub(crate) fn normal_cdf_and_exp(x: f32) -> (f32, f32) {
    let u = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * u);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let e = exp_f32(-0.5 * x * x);
    let tail = 0.5 * poly * e; // Φ(−|x|)
    (if x < 0.0 { tail } else { 1.0 - tail }, e)
}

/// Runs `$body` (a slice loop of plain arithmetic) compiled for AVX2 when
/// the CPU has it (chosen at run time, the crate being built for baseline
/// x86-64), else as it is. Both give the same bits: no fused multiply-add.
macro_rules! simd_dispatch {
    ($avx2:ident, ($($arg:ident: $ty:ty),*), $body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            unsafe fn $avx2($($arg: $ty),*) {
                $body
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { $avx2($($arg),*) };
                return;
            }
        }
        $body
    }};
}

/// `dst = GELU(src)` element-wise.
pub(crate) fn gelu_slice(dst: &mut [f32], src: &[f32]) {
    simd_dispatch!(avx2, (dst: &mut [f32], src: &[f32]), {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v * normal_cdf_and_exp(v).0;
        }
    })
}

/// `dst = g ⊙ GELU′(x)`, `GELU′(x) = Φ(x) + x · exp(−x²/2) / √(2π)`.
pub(crate) fn gelu_grad_slice(dst: &mut [f32], x: &[f32], g: &[f32]) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    simd_dispatch!(avx2, (dst: &mut [f32], x: &[f32], g: &[f32]), {
        for ((d, &v), &gv) in dst.iter_mut().zip(x).zip(g) {
            let (cdf, e) = normal_cdf_and_exp(v);
            *d = gv * (cdf + v * e * INV_SQRT_2PI);
        }
    })
}

/// `x ← exp(x − max)` element-wise (a softmax row before normalising).
pub(crate) fn exp_shifted_in_place(x: &mut [f32], max: f32) {
    simd_dispatch!(avx2, (x: &mut [f32], max: f32), {
        for v in x.iter_mut() {
            *v = exp_f32(*v - max);
        }
    })
}

/// GELU in one pass on the CPU: `y = x · Φ(x)`.
struct FusedGelu;
/// The backward of [`FusedGelu`]: `(x, g) ↦ g · (Φ(x) + x · exp(−x²/2) / √(2π))`.
pub(crate) struct FusedGeluBackward;

impl candle_core::CustomOp1 for FusedGelu {
    fn name(&self) -> &'static str {
        "sslab-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "gelu")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(ELEMS_PER_TASK).zip(x.par_chunks(ELEMS_PER_TASK)).for_each(|(dst, src)| {
            gelu_slice(dst, src);
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &FusedGeluBackward)?))
    }
}

impl candle_core::CustomOp2 for FusedGeluBackward {
    fn name(&self) -> &'static str {
        "sslab-gelu-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (f32_slice(s1, l1, "gelu backward")?, f32_slice(s2, l2, "gelu backward")?);
        if x.len() != g.len() {
            candle_core::bail!("fused gelu backward: gradient {:?} for input {:?}", l2.shape(), l1.shape());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(ELEMS_PER_TASK)
            .zip(x.par_chunks(ELEMS_PER_TASK).zip(g.par_chunks(ELEMS_PER_TASK)))
            .for_each(|(dst, (xs, gs))| gelu_grad_slice(dst, xs, gs));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
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

/// L2-normalises `x` along its last dimension, as `torch.nn.functional.normalize(x, dim=-1)`:
/// `x / max(‖x‖₂, 1e-12)`, so an all-zero row stays zero instead of becoming NaN.
///
/// # Shapes
/// `x (..., D)` of rank ≥ 1 → same shape.
///
/// # Errors
/// If `x` is a scalar (rank 0).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    normalize_eps(x, 1e-12, "l2_normalize")
}

/// `x / max(‖x‖₂, eps)` along the last dimension.
pub(crate) fn normalize_eps(x: &Tensor, eps: f64, fname: &str) -> Result<Tensor> {
    super::check_float(fname, &[x])?;
    if x.rank() == 0 {
        candle_core::bail!("{fname} expects a tensor of rank >= 1 (..., D), got a scalar of shape {:?}", x.dims());
    }
    // max(‖x‖, eps) as sqrt(max(‖x‖², eps²)): the same value, but no sqrt
    // at 0, whose infinite derivative made a zero row's gradient NaN
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.clamp(eps * eps, f64::INFINITY)?.sqrt()?;
    x.broadcast_div(&norm)
}


#[cfg(test)]
mod fused_tests {
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::{Device, Var, D};

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// The fused layer norm equals the composed form in value and in all
    /// three gradients (the composed form is checked against torch below),
    /// on enough rows to split them across threads.
    #[test]
    fn fused_layer_norm_matches_the_composed_form() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(11);
        let x = Var::from_tensor(&(rng.randn((5, 70, 33), 2.0, &dev).unwrap() + 0.5).unwrap()).unwrap();
        let gm = Var::from_tensor(&rng.randn(33, 1.0, &dev).unwrap()).unwrap();
        let bt = Var::from_tensor(&rng.randn(33, 1.0, &dev).unwrap()).unwrap();
        let fused = layer_norm(x.as_tensor(), gm.as_tensor(), bt.as_tensor(), 1e-5).unwrap();
        let composed = layer_norm_composed(x.as_tensor(), gm.as_tensor(), bt.as_tensor(), 1e-5).unwrap();
        assert!(max_abs(&fused, &composed) < 1e-4, "{}", max_abs(&fused, &composed));
        let r = rng.randn((5, 70, 33), 1.0, &dev).unwrap();
        let g1 = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (composed * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (what, v) in [("x", &x), ("gamma", &gm), ("beta", &bt)] {
            let (a, b) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
            assert_eq!(a.dims(), b.dims(), "{what}");
            assert!(max_abs(a, b) < 1e-3, "{what} gradient differs by {}", max_abs(a, b));
        }
    }

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

    #[test]
    fn exp_f32_is_within_two_ulp_of_exp_and_the_vector_path_gives_the_same_bits() {
        let xs: Vec<f32> = (0..200_001).map(|i| -87.0 + 175.0 * i as f32 / 200_000.0).collect();
        for &x in &xs {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            assert!(((got - want) / want).abs() < 2.5e-7, "exp({x}): {got} vs {want}");
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1e9) < 1e-37 && exp_f32(-1e9) >= 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        // the slice version (AVX2 where the CPU has it) against the scalar one, bit for bit
        let mut v = xs.clone();
        exp_shifted_in_place(&mut v, 0.5);
        assert!(v.iter().zip(&xs).all(|(a, x)| a.to_bits() == exp_f32(x - 0.5).to_bits()));
        let mut g = vec![0f32; xs.len()];
        gelu_slice(&mut g, &xs);
        assert!(g.iter().zip(&xs).all(|(a, &x)| a.to_bits() == (x * normal_cdf_and_exp(x).0).to_bits()));
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

    /// The fused CPU GELU against Candle's `gelu_erf` (f64 erf) over the range
    /// where f32 GELU is not 0 or x, gradients against central differences.
    #[test]
    fn ops_fused_gelu_matches_candles_gelu_erf_and_finite_differences() {
        let dev = Device::Cpu;
        let n = 40_001; // more than two parallel tasks
        let xs: Vec<f32> = (0..n).map(|i| -12.0 + 24.0 * i as f32 / (n - 1) as f32).collect();
        let x = Var::from_tensor(&Tensor::from_vec(xs.clone(), (n,), &dev).unwrap()).unwrap();
        let ours = gelu(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        let (a, b) = (ours.to_vec1::<f32>().unwrap(), theirs.to_vec1::<f32>().unwrap());
        for ((&v, &p), &q) in xs.iter().zip(&a).zip(&b) {
            assert!((p - q).abs() <= 2e-6 * (1.0 + v.abs()), "gelu({v}) = {p}, candle {q}");
        }
        // gradient, weighted so that every element's is distinct
        let w = Tensor::from_vec((0..n).map(|i| 1.0 + (i % 7) as f32 / 7.0).collect::<Vec<f32>>(), (n,), &dev).unwrap();
        let g = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ours = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let g2 = (&theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_candle = g2.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let wv = w.to_vec1::<f32>().unwrap();
        for i in (0..n).step_by(97) {
            assert!((g_ours[i] - g_candle[i]).abs() <= 3e-6 * wv[i], "gelu'({}) = {}, candle {}", xs[i], g_ours[i], g_candle[i]);
            let v = xs[i] as f64;
            let h = 1e-4;
            let f = |z: f64| z * 0.5 * (1.0 + libm_erf(z / std::f64::consts::SQRT_2));
            let fd = (f(v + h) - f(v - h)) / (2.0 * h) * wv[i] as f64;
            assert!((g_ours[i] as f64 - fd).abs() <= 1e-5, "gelu'({v}): {} vs finite difference {fd}", g_ours[i]);
        }
        // a non-contiguous input and 2-D shapes go through the same op
        let m = Tensor::from_vec(xs[..12].to_vec(), (3, 4), &dev).unwrap().t().unwrap();
        let want = m.contiguous().unwrap().gelu_erf().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_close(&flat(&gelu(&m).unwrap()), &want, 1e-6);
    }

    /// erf in f64 to 1e-15 (W. J. Cody's rational approximations are overkill here:
    /// a series for |z| < 3 and an asymptotic tail above is enough for a test).
    fn libm_erf(z: f64) -> f64 {
        if z.abs() >= 3.0 {
            let t = 1.0 / (z * z);
            let tail = (-z * z).exp() / (z.abs() * std::f64::consts::PI.sqrt())
                * (1.0 - 0.5 * t + 0.75 * t * t - 1.875 * t * t * t + 6.5625 * t.powi(4));
            return z.signum() * (1.0 - tail);
        }
        // Maclaurin series: erf z = 2/√π Σ (−1)ⁿ z^(2n+1) / (n! (2n+1))
        let (mut term, mut sum, mut n) = (z, z, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -z * z / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
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
