//! ReLU followed by 2×2 max-pooling, fused, with a one-pass backward.
//!
//! ```text
//! y[b, c, i, j] = max(0, max_{u,v ∈ {0,1}} x[b, c, 2i+u, 2j+v])
//! ∂L/∂x[b, c, 2i+u, 2j+v] = ∂L/∂y[b, c, i, j]  at the first arg-max (u, v) when y > 0, else 0
//! ```
//!
//! Candle's `relu` and `max_pool2d` backward passes are built from generic
//! ops (an up-sampling, an equality mask, an average pool and several
//! multiplications): about a dozen passes over the full-size activation per
//! layer. Worse, Candle 0.11's max-pool gradient is wrong: it multiplies the
//! gradient of the maximum by the fraction of maxima in the window, 1/4 for a
//! unique maximum, so every pooling layer silently shrinks the gradient of
//! the layers below it four-fold (tested below); on odd sizes its
//! up-sampling also misplaces the gradient. This op reads the input once
//! forward and once backward and gives the whole gradient to the first
//! maximum, as PyTorch does. Odd sizes drop the last row/column, like
//! `max_pool2d`.
//!
//! On other devices and dtypes [`relu_max_pool2d`] computes the same
//! function, gradient included, from Candle's reshapes and comparisons.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("{what}: only f32 is supported") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// First maximum of the window `[a0, a1; b0, b1]` (row-major order, as
/// PyTorch breaks ties) as (position 0..4, value). A NaN is the maximum, as
/// in PyTorch's `max_pool2d`, so that divergence shows in the output.
#[inline(always)]
pub(crate) fn window_max(a: &[f32], b: &[f32]) -> (usize, f32) {
    let (mut at, mut m) = (0, a[0]);
    if a[1] > m {
        (at, m) = (1, a[1]);
    }
    if b[0] > m {
        (at, m) = (2, b[0]);
    }
    if b[1] > m {
        (at, m) = (3, b[1]);
    }
    // rare: a NaN anywhere in the window wins (the first one)
    if m.is_nan() || (a[1] + b[0] + b[1]).is_nan() {
        let all = [a[0], a[1], b[0], b[1]];
        if let Some(i) = all.iter().position(|v| v.is_nan()) {
            return (i, f32::NAN);
        }
    }
    (at, m)
}

/// Whether ReLU passes `v` (and its gradient) through: positive, or NaN
/// (`relu(NaN) = NaN`, as in PyTorch).
#[inline(always)]
pub(crate) fn relu_passes(v: f32) -> bool {
    v > 0.0 || v.is_nan()
}

struct ReluMaxPool;
struct ReluMaxPoolBackward;

fn dims(l: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    match l.shape().dims() {
        &[b, c, h, w] if h >= 2 && w >= 2 => Ok((b * c, h, w)),
        d => candle_core::bail!("{what} expects (B, C, H, W) with H, W >= 2, got shape {d:?}"),
    }
}

impl CustomOp1 for ReluMaxPool {
    fn name(&self) -> &'static str {
        "sslab-relu-maxpool2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "relu_max_pool2d")?;
        let (planes, h, w) = dims(l, "relu_max_pool2d")?;
        let (ho, wo) = (h / 2, w / 2);
        let mut out = vec![0f32; planes * ho * wo];
        out.par_chunks_mut(ho * wo).zip(x.par_chunks(h * w)).for_each(|(dst, plane)| {
            for (i, d) in dst.chunks_exact_mut(wo).enumerate() {
                let r0 = &plane[2 * i * w..2 * i * w + 2 * wo];
                let r1 = &plane[(2 * i + 1) * w..(2 * i + 1) * w + 2 * wo];
                for ((d, a), b) in d.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    let m = window_max(a, b).1;
                    *d = if relu_passes(m) { m } else { 0.0 };
                }
            }
        });
        let d = l.shape().dims();
        Ok((CpuStorage::F32(out), Shape::from((d[0], d[1], ho, wo))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &ReluMaxPoolBackward)?))
    }
}

impl CustomOp2 for ReluMaxPoolBackward {
    fn name(&self) -> &'static str {
        "sslab-relu-maxpool2-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "relu_max_pool2d backward")?;
        let g = contiguous_f32(s2, l2, "relu_max_pool2d backward")?;
        let (planes, h, w) = dims(l1, "relu_max_pool2d backward")?;
        let (ho, wo) = (h / 2, w / 2);
        if g.len() != planes * ho * wo {
            candle_core::bail!("relu_max_pool2d backward: gradient {:?} for input {:?}", l2.shape(), l1.shape());
        }
        let mut out = vec![0f32; planes * h * w];
        out.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).zip(g.par_chunks(ho * wo)).for_each(|((dst, plane), gp)| {
            for (i, gr) in gp.chunks_exact(wo).enumerate() {
                let r0 = &plane[2 * i * w..2 * i * w + 2 * wo];
                let r1 = &plane[(2 * i + 1) * w..(2 * i + 1) * w + 2 * wo];
                for (j, ((&gv, a), b)) in gr.iter().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)).enumerate() {
                    let (at, v) = window_max(a, b);
                    if relu_passes(v) {
                        dst[(2 * i + at / 2) * w + 2 * j + at % 2] = gv;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `x.relu()?.max_pool2d(2)` in one op with a one-pass backward (CPU, f32);
/// on other devices the same function from Candle's reshapes and `max`.
///
/// Candle's own `max_pool2d` is not used anywhere: its backward pass gives a
/// unique maximum a quarter of its gradient (see the tests), which measurably
/// slows training and made the CUDA build disagree with the CPU one.
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, ⌊H/2⌋, ⌊W/2⌋)`.
pub fn relu_max_pool2d(x: &Tensor) -> Result<Tensor> {
    super::check_input("relu_max_pool2d", &[x])?;
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return relu_max_pool2d_composed(x);
    }
    x.contiguous()?.apply_op1(ReluMaxPool)
}

/// [`relu_max_pool2d`] for any device: the 2×2 windows become a last axis of
/// 4; a one-hot mask of each window's *first* maximum picks the value (so
/// the gradient goes there alone, as in the fused op — Candle's `max` would
/// give it to every tied maximum, and MNIST's blank background makes ties
/// common), and a mask of the positive results is the ReLU (Candle's `relu`
/// passes a gradient at exactly 0; the fused op does not).
fn relu_max_pool2d_composed(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = (h / 2, w / 2);
    if ho == 0 || wo == 0 {
        candle_core::bail!("relu_max_pool2d needs H, W >= 2, got shape {:?}", x.dims());
    }
    let x = x.narrow(2, 0, 2 * ho)?.narrow(3, 0, 2 * wo)?;
    let windows = x.reshape((b, c, ho, 2, wo, 2))?.permute((0, 1, 2, 4, 3, 5))?.reshape((b, c, ho, wo, 4))?;
    let is_max = windows.broadcast_eq(&windows.max_keepdim(D::Minus1)?)?.to_dtype(x.dtype())?;
    // first maximum: is_max[k] and not is_max[j] for any j < k
    let mut taken = is_max.narrow(4, 0, 1)?;
    let mut first = vec![taken.clone()];
    for k in 1..4 {
        let e = is_max.narrow(4, k, 1)?;
        first.push((&e * (1.0 - &taken)?)?);
        taken = taken.maximum(&e)?;
    }
    let y = (windows * Tensor::cat(&first, 4)?)?.sum(D::Minus1)?;
    let positive = y.gt(0.0)?.to_dtype(y.dtype())?;
    y * positive
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::{Device, Var};

    /// A NaN is not hidden as a 0 (so divergence is seen): PyTorch gives
    /// `F.max_pool2d(F.relu(x), 2)` = NaN for a window holding a NaN, even a
    /// negative window; the fused convolution + pool does the same.
    #[test]
    fn nan_propagates_through_relu_max_pool_and_the_fused_conv() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[[[-1f32, f32::NAN, 2., 3.], [-2., -3., 1., 0.]]]], &dev).unwrap();
        for y in [relu_max_pool2d(&x).unwrap(), relu_max_pool2d_composed(&x).unwrap()] {
            let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(y[0].is_nan() && y[1] == 3.0, "{y:?}");
        }
        let var = Var::from_tensor(&x).unwrap();
        let g = relu_max_pool2d(var.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        let g = g.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, [0., 1., 0., 1., 0., 0., 0., 0.]);
        let img = SeededRng::new(0).randn((1, 1, 6, 6), 1.0, &dev).unwrap();
        let mut v = img.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v[0] = f32::NAN;
        let img = Tensor::from_vec(v, (1, 1, 6, 6), &dev).unwrap();
        let w = SeededRng::new(1).randn((2, 1, 3, 3), 1.0, &dev).unwrap();
        let y = crate::nn::conv2d_relu_max_pool2d(&img, &w, None, 1, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // the NaN pixel reaches the 2×2 output positions around it in both channels: the first window of each
        assert!(y[0].is_nan() && y[9].is_nan(), "{y:?}");
        assert!(y.iter().filter(|v| v.is_nan()).count() < y.len(), "{y:?}");
    }

    // import torch, torch.nn.functional as F, math
    // x = torch.tensor([[[[math.sin(1.7*i+0.3)*2 for i in range(r*5, r*5+5)] for r in range(4)]]], requires_grad=True)
    // y = F.max_pool2d(F.relu(x), 2); r = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]])
    // (y*r).sum().backward(); y.flatten(), x.grad.flatten()
    // -> [1.818595, 1.944015, 1.39848, 1.922305]
    // -> [0, 1, 0, 0, 0,  0, 0, 0, -2, 0,  0, 0, 3, 0, 0,  0, 0.5, 0, 0, 0]
    #[test]
    fn fused_relu_max_pool_matches_torch_on_an_odd_width() {
        let dev = Device::Cpu;
        let v: Vec<f32> = (0..20).map(|i| ((1.7 * i as f64 + 0.3).sin() * 2.0) as f32).collect();
        let x = Var::from_tensor(&Tensor::from_vec(v, (1, 1, 4, 5), &dev).unwrap()).unwrap();
        let y = relu_max_pool2d(x.as_tensor()).unwrap();
        let got: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        for (g, w) in got.iter().zip([1.818_595f32, 1.944_015, 1.398_48, 1.922_305]) {
            assert!((g - w).abs() < 1e-5, "{got:?}");
        }
        let r = Tensor::new(&[[[[1f32, -2.], [0.5, 3.]]]], &dev).unwrap();
        let g = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
        let gx: Vec<f32> = g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want = [0., 1., 0., 0., 0., 0., 0., 0., -2., 0., 0., 0., 3., 0., 0., 0., 0.5, 0., 0., 0.];
        assert_eq!(gx, want);
    }

    /// Same forward as Candle's `relu` + `max_pool2d`; Candle's gradient is a
    /// quarter of the true one (a unique maximum in every window of random
    /// inputs), ours is the true one.
    #[test]
    fn candle_max_pool_gradient_is_a_quarter_of_ours() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(4);
        // (even sizes only: on odd sizes Candle's up-sampling also puts the gradient in the wrong places)
        for shape in [(2, 3, 6, 8), (1, 2, 4, 10)] {
            let x = Var::from_tensor(&rng.randn(shape, 1.0, &dev).unwrap()).unwrap();
            let ours = relu_max_pool2d(x.as_tensor()).unwrap();
            let theirs = x.as_tensor().relu().unwrap().max_pool2d(2).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            let d: f32 = (&ours - &theirs).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert_eq!(d, 0.0);
            let r = rng.randn(ours.dims(), 1.0, &dev).unwrap();
            let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let (a, b) = (g1.get(x.as_tensor()).unwrap(), g2.get(x.as_tensor()).unwrap());
            let d: f32 = (a - (b * 4.0).unwrap()).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(d < 1e-5, "ours != 4 × Candle's by {d} for {shape:?}");
        }
    }

    /// The path other devices take (CUDA) against the fused CPU op, value and
    /// gradient, odd sizes included.
    #[test]
    fn the_composed_path_matches_the_fused_op() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(9);
        let ties = Tensor::new(&[[[[2f32, 2., -1., -3., 0., 0.], [1., 2., -2., -4., 0., 0.]]]], &dev).unwrap();
        for shape in [(2, 3, 6, 8), (1, 2, 5, 7), (3, 1, 2, 2), (1, 1, 2, 6)] {
            // the last: tied maxima (2, 2, 2), all negative, all zero
            let t = if shape == (1, 1, 2, 6) { ties.clone() } else { rng.randn(shape, 1.0, &dev).unwrap() };
            let x = Var::from_tensor(&t).unwrap();
            let fused = relu_max_pool2d(x.as_tensor()).unwrap();
            let composed = relu_max_pool2d_composed(x.as_tensor()).unwrap();
            assert_eq!(fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(), composed.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            let r = rng.randn(fused.dims(), 1.0, &dev).unwrap();
            let g1 = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (composed * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let a: Vec<f32> = g1.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = g2.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(a, b, "{shape:?}");
        }
        let err = relu_max_pool2d_composed(&Tensor::zeros((1, 1, 1, 4), DType::F32, &dev).unwrap()).unwrap_err().to_string();
        assert!(err.contains("[1, 1, 1, 4]"), "{err}");
    }

    #[test]
    fn ties_give_the_gradient_to_the_first_maximum_and_negatives_none() {
        let dev = Device::Cpu;
        // window 1: a tie of 2s; window 2: all negative
        let x = Var::new(&[[[[2f32, 2., -1., -3.], [1., 0., -2., -4.]]]], &dev).unwrap();
        let y = relu_max_pool2d(x.as_tensor()).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![2., 0.]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let gx: Vec<f32> = g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(gx, vec![1., 0., 0., 0., 0., 0., 0., 0.]);
        let err = relu_max_pool2d(&Tensor::zeros((1, 1, 1, 4), DType::F32, &dev).unwrap()).unwrap_err().to_string();
        assert!(err.contains("[1, 1, 1, 4]"), "{err}");
    }
}
