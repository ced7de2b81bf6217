//! The transformer's heaviest pieces as single CPU ops with hand-written
//! backward passes: a linear layer over any number of leading dimensions
//! (optionally followed by GELU, the MLP's first layer), and the attention
//! core from the fused `qkv` projection to the merged heads.
//!
//! ```text
//! linear:     y = x Wᵀ + b                      ∂x = ∂y W,   ∂W = ∂yᵀ x,   ∂b = Σ_rows ∂y
//! with GELU:  y = GELU(h),  h = x Wᵀ + b         ∂h = ∂y ⊙ GELU′(h), then as above with ∂h
//! attention:  per batch entry and head,  S = Q Kᵀ / √d_h + M,  P = softmax_rows(S),  O = P V
//!             ∂V = Pᵀ ∂O,   ∂P = ∂O Vᵀ,   ∂S = P ⊙ (∂P − rowsum(∂P ⊙ P)),
//!             ∂Q = ∂S K / √d_h,   ∂K = ∂Sᵀ Q / √d_h
//! ```
//!
//! Why: Candle 0.11's autodiff creates every gradient it stores as a zero
//! tensor and then adds the incoming gradient to it, so each node of the graph
//! costs two extra passes over a buffer of its input's size. Composed from
//! elementary ops, a linear layer over `(B, L, D)` is four nodes (reshape,
//! product, bias, reshape) and multi-head attention about twenty (split of
//! `qkv` into heads, scaling, mask, softmax, two batched products, merge);
//! the scores `(B, heads, L, L)` are the largest tensors of a small ViT. Here
//! each is one node. The attention op keeps the probabilities `P` of its
//! forward pass for the backward pass (as the composed form does), and
//! recomputes them one head at a time if a second backward pass through the
//! same graph finds them gone.
//!
//! Work is split across threads by rows (linear) or by batch entry
//! (attention, each entry's heads one after another with single-threaded
//! products that stay in cache). Off the CPU, or for other dtypes, the
//! callers use the composed forms, which these ops are tested against.

use super::kernels::{f32_slice, matmul, Mat};
use super::matmul::ColumnSum;
use super::ops::{exp_shifted_in_place, gelu_slice, FusedGeluBackward};
use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;
use std::sync::Mutex;

/// Whether every tensor is an f32 tensor on the CPU (where the fused ops run).
pub(crate) fn cpu_f32(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// `x Wᵀ + b` over the last dimension of `x` as one op (CPU, f32).
///
/// # Shapes
/// `x (…, in)`, `w (out, in)`, `b (out,)` → `(…, out)`.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, FusedLinear { gelu: None })
}

/// `GELU(x Wᵀ + b)` as one op (CPU, f32): the transformer MLP's first layer.
/// The pre-activation is kept for the backward pass, which applies GELU's
/// derivative and then runs the linear layer's backward.
///
/// # Shapes
/// `x (…, in)`, `w (out, in)`, `b (out,)` → `(…, out)`.
pub(crate) fn linear_gelu(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, FusedLinear { gelu: Some(Mutex::new(None)) })
}

/// Multi-head attention from the fused projection `qkv` (per token the
/// queries, keys and values of all heads, `[q₀ … q_h | k₀ … k_h | v₀ … v_h]`)
/// to the heads' outputs side by side, with an optional additive mask
/// (CPU, f32).
///
/// # Shapes
/// `qkv (B, L, 3·D)`, `mask (B, 1, L, L)` → `(B, L, D)`.
pub(crate) fn attention(qkv: &Tensor, heads: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    let op = FusedAttention { heads, saved: Mutex::new(None) };
    match mask {
        None => qkv.contiguous()?.apply_op1(op),
        Some(m) => qkv.contiguous()?.apply_op2(&m.contiguous()?, op),
    }
}

/// Rows of `(…, in)` per task of the linear layers: a fixed number, not a
/// share per thread, so each row's product is the same computation (the
/// same `gemm` blocking) on any number of cores.
const LINEAR_ROWS: usize = 128;

/// `(leading rows, last dim)` of a contiguous layout.
fn rows_and_width(l: &Layout) -> (usize, usize) {
    let dims = l.shape().dims();
    match dims.split_last() {
        Some((&w, lead)) => (lead.iter().product(), w),
        None => (1, 1),
    }
}

/// Rows per block of the linear + GELU forward pass: the block's
/// pre-activation is still in cache when GELU reads it.
const GELU_BLOCK_ROWS: usize = 32;

/// See [`linear`] and [`linear_gelu`]; `gelu` holds the pre-activation
/// `x Wᵀ + b` between the passes (with its shape), when GELU follows.
struct FusedLinear {
    gelu: Option<Mutex<Option<Kept>>>,
}

/// A pre-activation kept between the passes, with its shape.
type Kept = (Vec<f32>, Shape);
/// `(∂y (…, out), W (out, in))` ↦ `∂x = ∂y W (…, in)`.
struct LinearInputGrad;
/// `(∂y (…, out), x (…, in))` ↦ `∂W = ∂yᵀ x (out, in)`.
struct LinearWeightGrad;

impl candle_core::CustomOp3 for FusedLinear {
    fn name(&self) -> &'static str {
        if self.gelu.is_some() { "sslab-linear-gelu" } else { "sslab-linear" }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (f32_slice(s1, l1, "linear")?, f32_slice(s2, l2, "linear weight")?, f32_slice(s3, l3, "linear bias")?);
        let (o, i) = l2.shape().dims2()?;
        let (rows, width) = rows_and_width(l1);
        if l1.shape().rank() == 0 || width != i || b.len() != o {
            candle_core::bail!("linear: input {:?}, weight {:?} and bias {:?} do not fit (…, in) · (out, in)ᵀ + (out,)", l1.shape(), l2.shape(), l3.shape());
        }
        let mut out = vec![0f32; rows * o];
        let mut pre = vec![0f32; if self.gelu.is_some() { rows * o } else { 0 }];
        if rows * o > 0 {
            let per = LINEAR_ROWS;
            let product = |c: usize, dst: &mut [f32]| {
                let r = dst.len() / o;
                for row in dst.chunks_mut(o) {
                    row.copy_from_slice(b);
                }
                if i > 0 {
                    let xs = &x[c * i..(c + r) * i];
                    matmul(dst, o, true, Mat::new(xs, r, i), Mat::new(w, o, i).t(), Parallelism::None);
                }
            };
            if self.gelu.is_some() {
                out.par_chunks_mut(per * o).zip(pre.par_chunks_mut(per * o)).enumerate().for_each(|(c, (dst, keep))| {
                    for (k, (d, h)) in dst.chunks_mut(GELU_BLOCK_ROWS * o).zip(keep.chunks_mut(GELU_BLOCK_ROWS * o)).enumerate() {
                        product(c * per + k * GELU_BLOCK_ROWS, d);
                        h.copy_from_slice(d);
                        gelu_slice(d, h);
                    }
                });
            } else {
                out.par_chunks_mut(per * o).enumerate().for_each(|(c, dst)| product(c * per, dst));
            }
        }
        let mut dims = l1.shape().dims().to_vec();
        *dims.last_mut().expect("rank checked above") = o;
        let shape = Shape::from(dims);
        if let Some(Ok(mut keep)) = self.gelu.as_ref().map(|m| m.lock()) {
            *keep = Some((pre, shape.clone()));
        }
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut g = grad.contiguous()?;
        if let Some(keep) = &self.gelu {
            // ∂(x Wᵀ + b) = ∂y ⊙ GELU′(x Wᵀ + b); the pre-activation is
            // recomputed if a second backward pass finds it gone
            let pre = match keep.lock().ok().and_then(|mut k| k.take()) {
                Some((v, shape)) => Tensor::from_vec(v, shape, x.device())?,
                None => x.apply_op3_no_bwd(w, b, &FusedLinear { gelu: None })?,
            };
            g = pre.apply_op2_no_bwd(&g, &FusedGeluBackward)?;
        }
        let gx = g.apply_op2_no_bwd(w, &LinearInputGrad)?;
        let gw = g.apply_op2_no_bwd(x, &LinearWeightGrad)?;
        let gb = g.apply_op1_no_bwd(&ColumnSum)?.reshape(b.shape())?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

impl candle_core::CustomOp2 for LinearInputGrad {
    fn name(&self) -> &'static str {
        "sslab-linear-input-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, w) = (f32_slice(s1, l1, "linear backward")?, f32_slice(s2, l2, "linear backward")?);
        let (o, i) = l2.shape().dims2()?;
        let (rows, width) = rows_and_width(l1);
        if width != o {
            candle_core::bail!("linear backward: gradient {:?} for weight {:?}", l1.shape(), l2.shape());
        }
        let mut out = vec![0f32; rows * i];
        if rows * i > 0 && o > 0 {
            let per = LINEAR_ROWS;
            out.par_chunks_mut(per * i).enumerate().for_each(|(c, dst)| {
                let r = dst.len() / i;
                let gs = &g[c * per * o..(c * per + r) * o];
                matmul(dst, i, false, Mat::new(gs, r, o), Mat::new(w, o, i), Parallelism::None);
            });
        }
        let mut dims = l1.shape().dims().to_vec();
        *dims.last_mut().expect("the gradient has the output's rank") = i;
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

impl candle_core::CustomOp2 for LinearWeightGrad {
    fn name(&self) -> &'static str {
        "sslab-linear-weight-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, x) = (f32_slice(s1, l1, "linear backward")?, f32_slice(s2, l2, "linear backward")?);
        let ((rows, o), (rows_x, i)) = (rows_and_width(l1), rows_and_width(l2));
        if rows != rows_x {
            candle_core::bail!("linear backward: gradient {:?} for input {:?}", l1.shape(), l2.shape());
        }
        let mut out = vec![0f32; o * i];
        if rows > 0 && o * i > 0 {
            // ∂W = ∂yᵀ x summed over all rows: one product with a long inner
            // dimension, which gemm splits across threads itself.
            matmul(&mut out, i, false, Mat::new(g, rows, o).t(), Mat::new(x, rows, i), Parallelism::Rayon(0));
        }
        Ok((CpuStorage::F32(out), Shape::from((o, i))))
    }
}

/// See [`attention`]. The forward pass keeps the probabilities `P` of every
/// head for the backward pass, which takes them (and recomputes them if they
/// are gone, for a second backward pass through the same graph).
struct FusedAttention {
    heads: usize,
    saved: Mutex<Option<Vec<f32>>>,
}
/// The backward of [`FusedAttention`]: `(qkv, ∂out[, mask])` ↦ `∂qkv`, with
/// the forward pass's probabilities `(B, heads, L, L)` when it has them.
struct FusedAttentionBackward {
    heads: usize,
    probs: Option<Vec<f32>>,
}

/// The sizes of one attention call.
#[derive(Clone, Copy, Debug)]
struct AttnGeometry {
    b: usize,
    l: usize,
    d: usize,
    heads: usize,
}

impl AttnGeometry {
    fn of(qkv: &Layout, heads: usize, mask: Option<&Layout>) -> Result<Self> {
        let (b, l, d3) = qkv.shape().dims3().map_err(|_| candle_core::Error::Msg(format!("attention expects qkv (B, L, 3·D), got shape {:?}", qkv.shape())))?;
        let d = d3 / 3;
        if d3 % 3 != 0 || heads == 0 || d % heads != 0 || d == 0 {
            candle_core::bail!("attention: qkv {:?} does not split into 3 × {heads} heads", qkv.shape());
        }
        if let Some(m) = mask {
            if m.shape().dims() != [b, 1, l, l] {
                candle_core::bail!("attention: mask must be (B, 1, L, L) = ({b}, 1, {l}, {l}), got {:?}", m.shape());
            }
        }
        Ok(Self { b, l, d, heads })
    }

    fn dh(&self) -> usize {
        self.d / self.heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.dh() as f32).sqrt()
    }

    /// Query, key and value of head `h` in one batch entry's `(L, 3·D)` block.
    fn qkv<'a>(&self, src: &'a [f32], h: usize) -> (Mat<'a>, Mat<'a>, Mat<'a>) {
        let (l, d, dh) = (self.l, self.d, self.dh());
        let at = |part: usize| Mat::strided(&src[part * d + h * dh..], l, dh, 3 * d);
        (at(0), at(1), at(2))
    }

    /// The attention probabilities `P (L, L)` of head `h` into `p`.
    fn probabilities(&self, p: &mut [f32], src: &[f32], mask: Option<&[f32]>, h: usize) {
        let l = self.l;
        let (q, k, _) = self.qkv(src, h);
        matmul(p, l, false, q, k.t(), Parallelism::None);
        let scale = self.scale();
        for (i, row) in p.chunks_mut(l).enumerate() {
            match mask {
                Some(m) => row.iter_mut().zip(&m[i * l..(i + 1) * l]).for_each(|(s, m)| *s = *s * scale + m),
                None => row.iter_mut().for_each(|s| *s *= scale),
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            exp_shifted_in_place(row, max);
            let inv = 1.0 / row.iter().sum::<f32>();
            row.iter_mut().for_each(|s| *s *= inv);
        }
    }

    /// The merged heads `(B, L, D)` and the probabilities `(B, heads, L, L)`.
    fn forward(&self, qkv: &[f32], mask: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
        let (l, d, dh, heads) = (self.l, self.d, self.dh(), self.heads);
        let mut out = vec![0f32; self.b * l * d];
        let mut probs = vec![0f32; self.b * heads * l * l];
        out.par_chunks_mut(l * d).zip(probs.par_chunks_mut(heads * l * l)).enumerate().for_each(|(bi, (dst, pb))| {
            let src = &qkv[bi * l * 3 * d..(bi + 1) * l * 3 * d];
            let m = mask.map(|m| &m[bi * l * l..(bi + 1) * l * l]);
            for (h, p) in pb.chunks_mut(l * l).enumerate() {
                self.probabilities(p, src, m, h);
                let (_, _, v) = self.qkv(src, h);
                matmul(&mut dst[h * dh..], d, false, Mat::new(p, l, l), v, Parallelism::None);
            }
        });
        (out, probs)
    }

    /// `∂qkv`; `probs` are the forward pass's probabilities, recomputed when absent.
    fn backward(&self, qkv: &[f32], grad: &[f32], mask: Option<&[f32]>, probs: Option<&[f32]>) -> Vec<f32> {
        let (l, d, dh) = (self.l, self.d, self.dh());
        let scale = self.scale();
        let probs = probs.filter(|p| p.len() == self.b * self.heads * l * l);
        let mut out = vec![0f32; self.b * l * 3 * d];
        out.par_chunks_mut(l * 3 * d).enumerate().for_each_init(
            || (vec![0f32; l * l], vec![0f32; l * l]),
            |(pbuf, dp), (bi, dst)| {
                let src = &qkv[bi * l * 3 * d..(bi + 1) * l * 3 * d];
                let gb = &grad[bi * l * d..(bi + 1) * l * d];
                let m = mask.map(|m| &m[bi * l * l..(bi + 1) * l * l]);
                for h in 0..self.heads {
                    let p: &[f32] = match probs {
                        Some(all) => &all[(bi * self.heads + h) * l * l..][..l * l],
                        None => {
                            self.probabilities(pbuf, src, m, h);
                            pbuf
                        }
                    };
                    let (q, k, v) = self.qkv(src, h);
                    let go = Mat::strided(&gb[h * dh..], l, dh, d);
                    let pm = Mat::new(p, l, l);
                    matmul(&mut dst[2 * d + h * dh..], 3 * d, false, pm.t(), go, Parallelism::None); // ∂V = Pᵀ ∂O
                    matmul(dp, l, false, go, v.t(), Parallelism::None); // ∂P = ∂O Vᵀ
                    for (prow, grow) in p.chunks(l).zip(dp.chunks_mut(l)) {
                        let dot: f32 = prow.iter().zip(grow.iter()).map(|(a, b)| a * b).sum();
                        grow.iter_mut().zip(prow).for_each(|(g, p)| *g = p * (*g - dot) * scale); // ∂S / √d_h
                    }
                    let ds = Mat::new(dp, l, l);
                    matmul(&mut dst[h * dh..], 3 * d, false, ds, k, Parallelism::None); // ∂Q
                    matmul(&mut dst[d + h * dh..], 3 * d, false, ds.t(), q, Parallelism::None); // ∂K
                }
            },
        );
        out
    }
}

impl candle_core::CustomOp1 for FusedAttention {
    fn name(&self) -> &'static str {
        "sslab-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = AttnGeometry::of(l, self.heads, None)?;
        let (out, probs) = g.forward(f32_slice(s, l, "attention")?, None);
        self.keep(probs);
        Ok((CpuStorage::F32(out), Shape::from((g.b, g.l, g.d))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(qkv.apply_op2_no_bwd(&grad.contiguous()?, &self.backward_op())?))
    }
}

impl candle_core::CustomOp2 for FusedAttention {
    fn name(&self) -> &'static str {
        "sslab-attention-masked"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = AttnGeometry::of(l1, self.heads, Some(l2))?;
        let (out, probs) = g.forward(f32_slice(s1, l1, "attention")?, Some(f32_slice(s2, l2, "attention mask")?));
        self.keep(probs);
        Ok((CpuStorage::F32(out), Shape::from((g.b, g.l, g.d))))
    }

    fn bwd(&self, qkv: &Tensor, mask: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gq = qkv.apply_op3_no_bwd(&grad.contiguous()?, mask, &self.backward_op())?;
        Ok((Some(gq), None))
    }
}

impl FusedAttention {
    fn keep(&self, probs: Vec<f32>) {
        if let Ok(mut saved) = self.saved.lock() {
            *saved = Some(probs);
        }
    }

    fn backward_op(&self) -> FusedAttentionBackward {
        let probs = self.saved.lock().ok().and_then(|mut s| s.take());
        FusedAttentionBackward { heads: self.heads, probs }
    }
}

impl FusedAttentionBackward {
    fn run(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, mask: Option<(&CpuStorage, &Layout)>) -> Result<(CpuStorage, Shape)> {
        let g = AttnGeometry::of(l1, self.heads, mask.map(|(_, l)| l))?;
        if l2.shape().dims() != [g.b, g.l, g.d] {
            candle_core::bail!("attention backward: gradient {:?} for qkv {:?}", l2.shape(), l1.shape());
        }
        let m = match mask {
            Some((s, l)) => Some(f32_slice(s, l, "attention mask")?),
            None => None,
        };
        let out = g.backward(f32_slice(s1, l1, "attention backward")?, f32_slice(s2, l2, "attention backward")?, m, self.probs.as_deref());
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

impl candle_core::CustomOp2 for FusedAttentionBackward {
    fn name(&self) -> &'static str {
        "sslab-attention-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(s1, l1, s2, l2, None)
    }
}

impl candle_core::CustomOp3 for FusedAttentionBackward {
    fn name(&self) -> &'static str {
        "sslab-attention-masked-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(s1, l1, s2, l2, Some((s3, l3)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::block::{attention_bias, attention_composed, MASK_VALUE};
    use crate::rng::SeededRng;
    use candle_core::{Device, Var};

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn wave(n: usize, a: f64, b: f64, shape: &[usize], sin: bool) -> Tensor {
        let k = Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap().affine(a, b).unwrap();
        let k = if sin { k.sin() } else { k.cos() };
        k.unwrap().reshape(shape).unwrap()
    }

    fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}, element {i}: got {g}, want {w}");
        }
    }

    /// `Σ out ⊙ w` with `w = arange / 10` shaped like `out`, a loss whose
    /// gradient differs for every output element.
    fn weighted_sum(out: &Tensor) -> Tensor {
        let w = (Tensor::arange(0f32, out.elem_count() as f32, out.device()).unwrap() / 10.0).unwrap();
        (out * w.reshape(out.shape()).unwrap()).unwrap().sum_all().unwrap()
    }

    /// ```python
    /// import torch, torch.nn.functional as F
    /// qkv = (2 * torch.sin(0.37 * torch.arange(72.) + 0.1)).reshape(2, 3, 12).requires_grad_()
    /// B, L, D, H = 2, 3, 4, 2
    /// q, k, v = qkv.reshape(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4)
    /// mask = torch.tensor([[True, True, False], [True, True, True]])[:, None, None, :]
    /// o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(B, L, D)
    /// w = torch.arange(24.).reshape(2, 3, 4) / 10
    /// (o * w).sum().backward()
    /// o.flatten(), qkv.grad.flatten()
    /// ```
    #[test]
    fn fused_attention_matches_torch_value_and_gradient() {
        let dev = Device::Cpu;
        let qkv = Var::from_tensor(&(wave(72, 0.37, 0.1, &[2, 3, 12], true) * 2.0).unwrap()).unwrap();
        let pad = Tensor::new(&[[1f32, 1., 0.], [1., 1., 1.]], &dev).unwrap();
        let mask = attention_bias(2, 3, false, Some(&pad), &dev).unwrap().unwrap();
        let out = attention(qkv.as_tensor(), 2, Some(&mask)).unwrap();
        let grads = weighted_sum(&out).backward().unwrap();
        #[rustfmt::skip]
        let want_out = [0.499365, -0.064486, 0.507459, 0.069737, 1.870788, 1.991928, 0.413084, -0.027446, 0.425981, -0.174524, 0.06965, -0.381101, 0.567081, 0.13021, 0.828228, 0.117275, 0.254209, 0.949083, 0.339088, 0.339101, 0.244045, 0.897817, 0.842118, 1.138773];
        #[rustfmt::skip]
        let want_grad = [-0.072232, -0.047139, -0.148901, 0.170421, -0.288552, -0.068231, 1.458556, 1.732423, 0.678402, 0.843718, 0.94785, 1.096337, -0.010646, -0.006948, -0.391011, 0.447521, 0.288552, 0.068231, -1.458556, -1.732423, 0.521598, 0.656281, 0.85215, 1.003663, -0.852714, -0.556479, -0.617893, 0.707192, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.675361, 0.89436, 0.020495, 0.033164, -1.913251, -2.326045, 4.020289, 3.18285, 0.546911, 0.590816, 0.956097, 1.004942, -0.02157, -0.010029, -1.999186, 0.407242, 1.978943, 2.449366, -0.014074, 0.045586, 0.740762, 0.801318, 1.837813, 1.962047, -0.342707, -0.201081, -2.364348, 0.207182, -0.065691, -0.123321, -4.006215, -3.228435, 3.512328, 3.707866, 2.60609, 2.73301];
        assert_close("attention output", &flat(&out), &want_out, 1e-5);
        assert_close("∂qkv", &flat(grads.get(qkv.as_tensor()).unwrap()), &want_grad, 1e-4);
    }

    /// The fused op against the composed one (elementary Candle ops and the
    /// batched product and softmax tested in `nn::ops`) on odd shapes: one
    /// token, one head, a batch of one, causal and padding masks.
    #[test]
    fn fused_attention_matches_the_composed_form() {
        let dev = Device::Cpu;
        for (seed, (b, l, d, heads, causal, padded)) in
            [(1, 1, 4, 1, false, false), (2, 5, 6, 3, false, false), (3, 7, 8, 2, true, false), (1, 6, 4, 2, true, true), (4, 9, 12, 4, false, true)].into_iter().enumerate()
        {
            let x = SeededRng::new(30 + seed as u64).randn(&[b, l, 3 * d][..], 1.5, &dev).unwrap();
            let pad = padded.then(|| {
                let keep: Vec<f32> = (0..b * l).map(|i| if i % l == 0 || (i * 7 + seed) % 3 != 0 { 1.0 } else { 0.0 }).collect();
                Tensor::from_vec(keep, (b, l), &dev).unwrap()
            });
            let mask = attention_bias(b, l, causal, pad.as_ref(), &dev).unwrap();
            let what = format!("B {b}, L {l}, D {d}, {heads} heads, causal {causal}, padded {padded}");
            let v1 = Var::from_tensor(&x).unwrap();
            let fused = attention(v1.as_tensor(), heads, mask.as_ref()).unwrap();
            let g1 = weighted_sum(&fused).backward().unwrap();
            let v2 = Var::from_tensor(&x).unwrap();
            let (composed, _) = attention_composed(v2.as_tensor(), (b, l, d), heads, mask.as_ref()).unwrap();
            let g2 = weighted_sum(&composed).backward().unwrap();
            assert_eq!(fused.dims(), &[b, l, d], "{what}");
            assert_close(&format!("output, {what}"), &flat(&fused), &flat(&composed), 1e-5);
            assert_close(&format!("∂qkv, {what}"), &flat(g1.get(v1.as_tensor()).unwrap()), &flat(g2.get(v2.as_tensor()).unwrap()), 1e-4);
        }
    }

    /// Central finite differences of the fused op's own forward pass.
    #[test]
    fn fused_attention_gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let x: Vec<f32> = flat(&SeededRng::new(11).randn((2, 4, 6), 1.0, &dev).unwrap());
        let mask = attention_bias(2, 4, true, None, &dev).unwrap();
        let loss = |v: &[f32]| -> f32 {
            let t = Tensor::from_slice(v, (2, 4, 6), &dev).unwrap();
            weighted_sum(&attention(&t, 2, mask.as_ref()).unwrap()).to_scalar::<f32>().unwrap()
        };
        let var = Var::from_slice(&x, (2, 4, 6), &dev).unwrap();
        let g = flat(weighted_sum(&attention(var.as_tensor(), 2, mask.as_ref()).unwrap()).backward().unwrap().get(var.as_tensor()).unwrap());
        let eps = 1e-2;
        for i in 0..x.len() {
            let (mut a, mut b) = (x.clone(), x.clone());
            a[i] += eps;
            b[i] -= eps;
            let want = (loss(&a) - loss(&b)) / (2.0 * eps);
            assert!((g[i] - want).abs() < 2e-2 * (1.0 + want.abs()), "∂qkv[{i}]: {} vs finite difference {want}", g[i]);
        }
    }

    /// The first backward pass uses the kept probabilities, a second one
    /// through the same graph recomputes them: both give the same gradient.
    #[test]
    fn fused_attention_second_backward_recomputes_the_probabilities() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&SeededRng::new(12).randn((3, 5, 12), 1.0, &dev).unwrap()).unwrap();
        let mask = attention_bias(3, 5, true, None, &dev).unwrap();
        let loss = weighted_sum(&attention(x.as_tensor(), 2, mask.as_ref()).unwrap());
        let first = flat(loss.backward().unwrap().get(x.as_tensor()).unwrap());
        let second = flat(loss.backward().unwrap().get(x.as_tensor()).unwrap());
        assert!(first.iter().any(|v| v.abs() > 1e-3));
        assert_close("second backward", &second, &first, 1e-6);
    }

    /// Linear + GELU against Candle's composed product, bias and `gelu_erf`,
    /// twice through the same graph (the second backward pass recomputes the
    /// pre-activation).
    #[test]
    fn fused_linear_gelu_matches_the_composed_form() {
        let dev = Device::Cpu;
        for (seed, (lead, i, o)) in [(vec![1], 3, 2), (vec![2, 37], 5, 7), (vec![70], 8, 16)].into_iter().enumerate() {
            let mut r = SeededRng::new(70 + seed as u64);
            let mut xs = lead.clone();
            xs.push(i);
            let (x, w, b) = (r.randn(xs.clone(), 1.5, &dev).unwrap(), r.randn((o, i), 1.0, &dev).unwrap(), r.randn(o, 1.0, &dev).unwrap());
            let (x1, w1, b1) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
            let loss1 = weighted_sum(&linear_gelu(x1.as_tensor(), w1.as_tensor(), b1.as_tensor()).unwrap());
            let g1 = loss1.backward().unwrap();
            let again = loss1.backward().unwrap();
            let (x2, w2, b2) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
            let rows = x.elem_count() / i;
            let h = x2.as_tensor().reshape((rows, i)).unwrap().matmul(&w2.as_tensor().t().unwrap()).unwrap().broadcast_add(b2.as_tensor()).unwrap();
            let loss2 = weighted_sum(&h.gelu_erf().unwrap());
            let g2 = loss2.backward().unwrap();
            let what = format!("input {xs:?}, {o} outputs");
            assert_close(&format!("loss, {what}"), &[loss1.to_scalar::<f32>().unwrap()], &[loss2.to_scalar::<f32>().unwrap()], 1e-5);
            for ((v1, v2), name) in [(&x1, &x2), (&w1, &w2), (&b1, &b2)].into_iter().zip(["∂x", "∂W", "∂b"]) {
                let got = flat(g1.get(v1.as_tensor()).unwrap());
                assert_close(&format!("{name}, {what}"), &got, &flat(g2.get(v2.as_tensor()).unwrap()), 1e-4);
                // recomputed in other blocks of rows: equal up to rounding, relative to the largest entry
                let scale = got.iter().fold(1f32, |m, v| m.max(v.abs()));
                let worst = flat(again.get(v1.as_tensor()).unwrap()).iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst <= 1e-6 * scale, "{name} again, {what}: off by {worst} (largest entry {scale})");
            }
        }
    }

    #[test]
    fn fused_attention_rejects_bad_shapes_with_a_message() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3, 12), DType::F32, &dev).unwrap();
        let e = attention(&Tensor::zeros((2, 3, 10), DType::F32, &dev).unwrap(), 2, None).unwrap_err().to_string();
        assert!(e.contains("does not split into 3 × 2 heads"), "{e}");
        let e = attention(&x, 3, None).unwrap_err().to_string();
        assert!(e.contains("3 heads"), "{e}");
        let m = Tensor::full(MASK_VALUE as f32, (2, 1, 3, 4), &dev).unwrap();
        let e = attention(&x, 2, Some(&m)).unwrap_err().to_string();
        assert!(e.contains("mask must be (B, 1, L, L) = (2, 1, 3, 3)"), "{e}");
        let e = attention(&Tensor::zeros((3, 12), DType::F32, &dev).unwrap(), 2, None).unwrap_err().to_string();
        assert!(e.contains("qkv (B, L, 3·D)"), "{e}");
    }

    /// ```python
    /// import torch, torch.nn.functional as F
    /// x = torch.cos(0.23 * torch.arange(30.)).reshape(2, 3, 5).requires_grad_()
    /// W = torch.sin(0.11 * torch.arange(20.) + 0.3).reshape(4, 5).requires_grad_()
    /// b = torch.tensor([0.1, -0.2, 0.3, -0.4], requires_grad=True)
    /// y = F.linear(x, W, b)
    /// (y * (torch.arange(24.).reshape(2, 3, 4) / 10)).sum().backward()
    /// y.flatten(), x.grad.flatten(), W.grad.flatten(), b.grad
    /// ```
    #[test]
    fn fused_linear_matches_torch_value_and_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&wave(30, 0.23, 0.0, &[2, 3, 5], false)).unwrap();
        let w = Var::from_tensor(&wave(20, 0.11, 0.3, &[4, 5], true)).unwrap();
        let b = Var::new(&[0.1f32, -0.2, 0.3, -0.4], &dev).unwrap();
        let y = linear(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
        assert_eq!(y.dims(), &[2, 3, 4]);
        let g = weighted_sum(&y).backward().unwrap();
        #[rustfmt::skip]
        let want_y = [2.091736, 3.430109, 4.497778, 3.127309, -0.202656, -0.478029, 0.128604, -0.414211, -2.138999, -4.057252, -4.037805, -3.938919, -1.42655, -3.073249, -3.072481, -3.276997, 1.091846, 1.309879, 1.882572, 0.788484, 2.436863, 3.906783, 4.965404, 3.447958];
        #[rustfmt::skip]
        let want_gx = [0.550906, 0.546362, 0.535213, 0.517596, 0.493721, 1.73539, 1.785826, 1.814676, 1.82159, 1.806485, 2.919874, 3.02529, 3.094138, 3.125584, 3.119248, 4.104358, 4.264755, 4.3736, 4.429578, 4.432013, 5.288842, 5.504219, 5.653062, 5.733572, 5.744776, 6.473326, 6.743683, 6.932524, 7.037567, 7.05754];
        #[rustfmt::skip]
        let want_gw = [0.029933, 0.487162, 0.918733, 1.301917, 1.616532, 0.083776, 0.542939, 0.973507, 1.352803, 1.66085, 0.137619, 0.598717, 1.028281, 1.403689, 1.705169, 0.191463, 0.654495, 1.083056, 1.454575, 1.749486];
        assert_close("y", &flat(&y), &want_y, 1e-5);
        assert_close("∂x", &flat(g.get(x.as_tensor()).unwrap()), &want_gx, 1e-5);
        assert_close("∂W", &flat(g.get(w.as_tensor()).unwrap()), &want_gw, 1e-5);
        assert_close("∂b", &flat(g.get(b.as_tensor()).unwrap()), &[6.0, 6.6, 7.2, 7.8], 1e-5);
    }

    /// Against the composed product (Candle's `matmul` and `broadcast_add`)
    /// for 1-, 2- and 4-D inputs, one row, and more rows than threads.
    #[test]
    fn fused_linear_matches_the_composed_form() {
        let dev = Device::Cpu;
        for (seed, (lead, i, o)) in [(vec![], 3, 2), (vec![1], 1, 5), (vec![7], 6, 3), (vec![2, 3, 5], 4, 9), (vec![301], 17, 33)].into_iter().enumerate() {
            let mut xs = lead.clone();
            xs.push(i);
            let mut r = SeededRng::new(50 + seed as u64);
            let (x, w, b) = (r.randn(xs.clone(), 1.0, &dev).unwrap(), r.randn((o, i), 1.0, &dev).unwrap(), r.randn(o, 1.0, &dev).unwrap());
            let (x1, w1, b1) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
            let y1 = linear(x1.as_tensor(), w1.as_tensor(), b1.as_tensor()).unwrap();
            let g1 = weighted_sum(&y1).backward().unwrap();
            let (x2, w2, b2) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
            let rows = x.elem_count() / i;
            let y2 = x2.as_tensor().reshape((rows, i)).unwrap().matmul(&w2.as_tensor().t().unwrap()).unwrap().broadcast_add(b2.as_tensor()).unwrap();
            let g2 = weighted_sum(&y2).backward().unwrap();
            let mut ys = lead.clone();
            ys.push(o);
            assert_eq!(y1.dims(), &ys[..]);
            let what = format!("input {xs:?}, {o} outputs");
            assert_close(&format!("y, {what}"), &flat(&y1), &flat(&y2), 1e-5);
            for ((v1, v2), name) in [(&x1, &x2), (&w1, &w2), (&b1, &b2)].into_iter().zip(["∂x", "∂W", "∂b"]) {
                assert_close(&format!("{name}, {what}"), &flat(g1.get(v1.as_tensor()).unwrap()), &flat(g2.get(v2.as_tensor()).unwrap()), 1e-4);
            }
        }
        let e = linear(&Tensor::zeros((2, 4), DType::F32, &dev).unwrap(), &Tensor::zeros((3, 5), DType::F32, &dev).unwrap(), &Tensor::zeros(3, DType::F32, &dev).unwrap());
        assert!(e.unwrap_err().to_string().contains("do not fit"));
    }
}
