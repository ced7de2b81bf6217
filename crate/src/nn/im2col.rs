//! 2-D convolution as im2col + matrix products, one image at a time, with a
//! fast backward pass on the CPU.
//!
//! Candle's CPU `conv2d` backward goes through a nested-loop transposed
//! convolution, about 5–10× slower than its forward pass. Here, per image `b`,
//!
//! ```text
//! cols_b = im2col(x_b)             (C·k·k, H'·W')   row (c, ky, kx): what that kernel tap reads at every output position
//! y_b    = W_mat · cols_b + b      (O, H'·W')       W_mat = W reshaped to (O, C·k·k); already y's NCHW layout
//! ```
//!
//! and the backward pass is two more matrix products per image:
//!
//! ```text
//! ∂W_mat = Σ_b ∂y_b · cols_bᵀ      ∂b = Σ_b ∂y_b · 1      ∂x_b = col2im(W_matᵀ · ∂y_b)
//! ```
//!
//! where col2im, the adjoint of im2col, adds each column back onto the pixel
//! it was read from. Working one image at a time keeps each `cols_b` buffer
//! small enough to stay in cache (73 KB to 300 KB for the bench's layers,
//! where the whole batch's im2col matrix was 150 MB, zero-filled and written
//! to memory in every pass), writes the output directly in NCHW order with
//! the bias, and splits the batch across threads, each running its own
//! single-threaded matrix product (the `gemm` crate, which Candle's own
//! matmul uses). The gradient ops have no backward of their own: no model in
//! the crate differentiates twice.
//!
//! [`conv2d_relu_max_pool2d`](super::conv2d_relu_max_pool2d) goes one step further for the CNN encoders'
//! layer: it pools each image's convolution output while that is still in
//! cache, so the full-size output is never stored, and its backward pass
//! scatters the pooled gradient into a per-image buffer and runs both
//! products from there. Candle's autodiff never sees the full-size tensor,
//! and so never zero-fills and adds into a gradient buffer for it.
//!
//! \[0\] K. Chellapilla, S. Puri, P. Simard, "High Performance Convolutional
//!     Neural Networks for Document Processing", 2006 (the im2col lowering).
//!
//! (Candle's own backward fails with a shape error when the height and the
//! width need different output padding, e.g. stride 2 on an 8×9 input; this
//! one does not.)
//!
//! On other devices and dtypes, [`conv2d`] calls Candle's own convolution,
//! padding explicitly in that case.

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};
use super::kernels::{f32_slice, inner_parallelism, matmul, sum_in_order, Mat, REDUCE_IMAGES};
use rayon::prelude::*;

/// The geometry of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Geometry {
    pub(super) b: usize,
    pub(super) c: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    /// Kernel height and width.
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) stride: usize,
    /// Zero padding above/below and left/right.
    pub(super) ph: usize,
    pub(super) pw: usize,
}

impl Geometry {
    pub(super) fn out_hw(&self) -> (usize, usize) {
        ((self.h + 2 * self.ph - self.kh) / self.stride + 1, (self.w + 2 * self.pw - self.kw) / self.stride + 1)
    }

    /// `(K, P, pixels)`: rows `C·kh·kw` and columns `H'·W'` of one image's
    /// im2col matrix, and the `C·H·W` pixels of one image.
    pub(super) fn sizes(&self) -> (usize, usize, usize) {
        let (ho, wo) = self.out_hw();
        (self.c * self.kh * self.kw, ho * wo, self.c * self.h * self.w)
    }

    /// Calls `f(row, oy, src, ox0, ox1)` for every kernel tap (`row` = its
    /// im2col row) and output row `oy`: output columns `ox0..ox1` read
    /// input pixels `src + ox·stride` (relative to the image); the other
    /// columns, and every column when `src` is `None`, read padding.
    #[inline(always)]
    fn for_each_segment(&self, mut f: impl FnMut(usize, usize, Option<usize>, usize, usize)) {
        let (ho, wo) = self.out_hw();
        let (s, ph, pw, h, w) = (self.stride, self.ph, self.pw, self.h, self.w);
        for ci in 0..self.c {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = (ci * self.kh + ky) * self.kw + kx;
                    // output columns ox with 0 <= ox·s + kx − pw < w
                    let ox0 = if pw > kx { (pw - kx).div_ceil(s) } else { 0 };
                    let ox1 = if w + pw > kx { (w + pw - kx).div_ceil(s).min(wo) } else { 0 };
                    let ox1 = ox1.max(ox0);
                    for oy in 0..ho {
                        let y = oy * s + ky;
                        let src = (y >= ph && y - ph < h && ox1 > ox0).then(|| ci * h * w + (y - ph) * w + ox0 * s + kx - pw);
                        f(row, oy, src, ox0, ox1);
                    }
                }
            }
        }
    }
}

/// One image's im2col matrix, `(C·kh·kw, H'·W')` row-major, into `cols`.
pub(super) fn im2col_image(g: &Geometry, x: &[f32], cols: &mut [f32]) {
    let (_, p, _) = g.sizes();
    let wo = g.out_hw().1;
    let s = g.stride;
    g.for_each_segment(|row, oy, src, ox0, ox1| {
        let seg = &mut cols[row * p + oy * wo..row * p + (oy + 1) * wo];
        match src {
            None => seg.fill(0.0),
            Some(src) => {
                seg[..ox0].fill(0.0);
                seg[ox1..].fill(0.0);
                let n = ox1 - ox0;
                if s == 1 {
                    seg[ox0..ox1].copy_from_slice(&x[src..src + n]);
                } else {
                    for (i, d) in seg[ox0..ox1].iter_mut().enumerate() {
                        *d = x[src + i * s];
                    }
                }
            }
        }
    });
}

/// The adjoint of [`im2col_image`]: adds every column of `cols` onto the
/// pixel of `dx` it was read from.
pub(super) fn col2im_image(g: &Geometry, cols: &[f32], dx: &mut [f32]) {
    let (_, p, _) = g.sizes();
    let wo = g.out_hw().1;
    let s = g.stride;
    g.for_each_segment(|row, oy, src, ox0, ox1| {
        if let Some(src) = src {
            let seg = &cols[row * p + oy * wo + ox0..row * p + oy * wo + ox1];
            if s == 1 {
                for (d, v) in dx[src..src + seg.len()].iter_mut().zip(seg) {
                    *d += v;
                }
            } else {
                for (i, v) in seg.iter().enumerate() {
                    dx[src + i * s] += v;
                }
            }
        }
    });
}


/// `x (B, C, H, W)`, `W_mat (O, C·kh·kw)`, `bias (O,)` → `y (B, O, H', W')`.
struct Conv(Geometry);
/// `∂y (B, O, H', W')`, `W_mat` → `∂x (B, C, H, W)`.
struct ConvInputGrad(Geometry);
/// `x`, `∂y` → `[∂W_mat | ∂b]`, `(O, C·kh·kw + 1)`.
struct ConvParamGrad(Geometry);

impl candle_core::CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "sslab-conv"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let x = f32_slice(s1, l1, "conv2d")?;
        let w = f32_slice(s2, l2, "conv2d weight")?;
        let bias = f32_slice(s3, l3, "conv2d bias")?;
        let (k, p, pix) = g.sizes();
        let o = bias.len();
        if x.len() != g.b * pix || w.len() != o * k {
            candle_core::bail!("conv2d: input {:?} or weight {:?} does not match {g:?}", l1.shape(), l2.shape());
        }
        let par = inner_parallelism(g.b);
        let mut y = vec![0f32; g.b * o * p];
        y.par_chunks_mut(o * p).zip(x.par_chunks(pix)).for_each_init(
            || vec![0f32; k * p],
            |cols, (yb, xb)| {
                for (plane, &bc) in yb.chunks_mut(p).zip(bias) {
                    plane.fill(bc);
                }
                im2col_image(&g, xb, cols);
                matmul(yb, p, true, Mat::new(w, o, k), Mat::new(cols, k, p), par);
            },
        );
        let (ho, wo) = g.out_hw();
        Ok((CpuStorage::F32(y), Shape::from((g.b, o, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, wm: &Tensor, _bias: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let gx = grad.apply_op2_no_bwd(wm, &ConvInputGrad(self.0))?;
        let gwb = x.apply_op2_no_bwd(&grad, &ConvParamGrad(self.0))?;
        let (gw, gb) = split_weight_bias(&gwb)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

/// `[∂W_mat | ∂b]` `(O, K + 1)` → `(∂W_mat (O, K), ∂b (O,))`.
pub(super) fn split_weight_bias(gwb: &Tensor) -> Result<(Tensor, Tensor)> {
    let k = gwb.dim(1)? - 1;
    Ok((gwb.narrow(1, 0, k)?.contiguous()?, gwb.narrow(1, k, 1)?.squeeze(1)?.contiguous()?))
}

impl candle_core::CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "sslab-conv-input-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let gy = f32_slice(s1, l1, "conv2d backward")?;
        let w = f32_slice(s2, l2, "conv2d backward weight")?;
        let (k, p, pix) = g.sizes();
        let o = w.len() / k;
        if gy.len() != g.b * o * p {
            candle_core::bail!("conv2d backward: gradient {:?} does not match {g:?}", l1.shape());
        }
        let par = inner_parallelism(g.b);
        let mut gx = vec![0f32; g.b * pix];
        gx.par_chunks_mut(pix).zip(gy.par_chunks(o * p)).for_each_init(
            || vec![0f32; k * p],
            |cols, (gxb, gyb)| {
                matmul(cols, p, false, Mat::new(w, o, k).t(), Mat::new(gyb, o, p), par);
                col2im_image(&g, cols, gxb);
            },
        );
        Ok((CpuStorage::F32(gx), Shape::from((g.b, g.c, g.h, g.w))))
    }
}

impl candle_core::CustomOp2 for ConvParamGrad {
    fn name(&self) -> &'static str {
        "sslab-conv-param-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let x = f32_slice(s1, l1, "conv2d backward")?;
        let gy = f32_slice(s2, l2, "conv2d backward")?;
        let (k, p, pix) = g.sizes();
        let o = gy.len() / (g.b * p).max(1);
        if x.len() != g.b * pix || gy.len() != g.b * o * p {
            candle_core::bail!("conv2d backward: input {:?} or gradient {:?} does not match {g:?}", l1.shape(), l2.shape());
        }
        // one accumulator per REDUCE_IMAGES images, added in index order
        let per = REDUCE_IMAGES;
        let blocks = g.b.div_ceil(per);
        let par = inner_parallelism(blocks);
        let partial = |t: usize| {
            let mut acc = vec![0f32; o * (k + 1)];
            let mut cols = vec![0f32; k * p];
            for bi in t * per..((t + 1) * per).min(g.b) {
                let gyb = &gy[bi * o * p..(bi + 1) * o * p];
                im2col_image(&g, &x[bi * pix..(bi + 1) * pix], &mut cols);
                matmul(&mut acc, k + 1, true, Mat::new(gyb, o, p), Mat::new(&cols, k, p).t(), par);
                for (oc, plane) in gyb.chunks(p).enumerate() {
                    acc[oc * (k + 1) + k] += plane.iter().sum::<f32>();
                }
            }
            acc
        };
        let acc = sum_in_order((0..blocks).into_par_iter().map(partial).collect(), o * (k + 1));
        Ok((CpuStorage::F32(acc), Shape::from((o, k + 1))))
    }
}


/// A square-kernel 2-D convolution `y = W ⋆ x + b`, as im2col + matrix product
/// on the CPU (fast backward), Candle's `conv2d` elsewhere.
///
/// # Shapes
/// `x (B, C, H, W)`, `weight (O, C, k, k)`, `bias (O,)` →
/// `(B, O, (H + 2p − k)/s + 1, (W + 2p − k)/s + 1)`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, padding: usize, stride: usize) -> Result<Tensor> {
    super::check_input("conv2d", &[x, weight])?;
    let (o, c, kh, kw) = weight.dims4()?;
    let (b, cx, h, w) = match x.dims() {
        &[b, c, h, w] => (b, c, h, w),
        d => candle_core::bail!("conv2d expects x (B, C, H, W), got shape {d:?}"),
    };
    if cx != c || c == 0 || kh != kw || stride == 0 || h + 2 * padding < kh || w + 2 * padding < kw {
        candle_core::bail!(
            "conv2d: input {:?} does not fit weight {:?} (square kernel, matching channels) with padding {padding}, stride {stride}",
            x.dims(),
            weight.dims()
        );
    }
    let add_bias = |y: Tensor| match bias {
        Some(bias) => y.broadcast_add(&bias.reshape((1, o, 1, 1))?),
        None => Ok(y),
    };
    if !x.device().is_cpu() || x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        // On a GPU Candle's conv2d (im2col + cuBLAS forward) is the faster
        // one: the same product built from shifted views and one cuBLAS
        // matrix product made the bench's CNN step 35 % slower on an H200.
        // Its backward pass takes the height's output padding for the width
        // too, and fails when they differ: then pad here and drop the
        // trailing rows and columns of the padded input that no window
        // reaches (their gradient is zero either way).
        let (rh, rw) = ((h + 2 * padding - kh) % stride, (w + 2 * padding - kw) % stride);
        if rh != rw {
            let (hp, wp) = (h + 2 * padding, w + 2 * padding);
            let xp = x.pad_with_zeros(2, padding, padding)?.pad_with_zeros(3, padding, padding)?;
            let xp = xp.narrow(2, 0, hp - rh)?.narrow(3, 0, wp - rw)?;
            return add_bias(xp.conv2d(weight, 0, stride, 1, 1)?);
        }
        return add_bias(x.conv2d(weight, padding, stride, 1, 1)?);
    }
    let g = Geometry { b, c, h, w, kh, kw, stride, ph: padding, pw: padding };
    conv_cpu(x, weight, bias, g)
}

/// The CPU path of [`conv2d`] and [`conv1d`]: one [`Conv`] op (a zero bias
/// when there is none).
fn conv_cpu(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, g: Geometry) -> Result<Tensor> {
    let o = weight.dim(0)?;
    let wm = weight.reshape((o, g.c * g.kh * g.kw))?.contiguous()?;
    let bias = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(o, DType::F32, x.device())?,
    };
    x.contiguous()?.apply_op3(&wm, &bias, Conv(g))
}

/// A 1-D convolution `y = W ⋆ x + b` over the last axis, on the CPU through
/// the same im2col + matrix product as [`conv2d`] (a series is an image one
/// pixel high), Candle's `conv2d` elsewhere. Candle's CPU `conv1d` backward
/// is a nested-loop transposed convolution: this one is several times faster.
/// Candle's `conv1d` is not used on other devices either: its weight
/// gradient is wrong with padding (see the tests), which `sslab
/// check-device` also showed on a GPU.
///
/// # Shapes
/// `x (B, C, T)`, `weight (O, C, k)`, `bias (O,)` → `(B, O, (T + 2p − k)/s + 1)`.
pub fn conv1d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, padding: usize, stride: usize) -> Result<Tensor> {
    super::check_input("conv1d", &[x, weight])?;
    let (o, c, k) = weight.dims3()?;
    let (b, cx, t) = match x.dims() {
        &[b, c, t] => (b, c, t),
        d => candle_core::bail!("conv1d expects x (B, C, T), got shape {d:?}"),
    };
    if cx != c || c == 0 || k == 0 || stride == 0 || t + 2 * padding < k {
        candle_core::bail!(
            "conv1d: input {:?} does not fit weight {:?} (matching channels) with padding {padding}, stride {stride}",
            x.dims(),
            weight.dims()
        );
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return conv1d_as_conv2d(x, weight, bias, padding, stride);
    }
    let g = Geometry { b, c, h: 1, w: t, kh: 1, kw: k, stride, ph: 0, pw: padding };
    let y = conv_cpu(&x.reshape((b, c, 1, t))?, &weight.reshape((o, c, 1, k))?, bias, g)?;
    let to = y.dim(3)?;
    y.reshape((b, o, to))
}

/// [`conv1d`] for any device: Candle's `conv2d` on a one-pixel-high image,
/// padded along time first (Candle pads both axes alike). A stride above 1
/// convolves at stride 1 and keeps every `stride`-th output: Candle's
/// `conv2d` backward takes the output padding of the height for the width
/// too, which breaks when only the width needs one.
fn conv1d_as_conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, padding: usize, stride: usize) -> Result<Tensor> {
    let (o, c, k) = weight.dims3()?;
    let x = if padding > 0 { x.pad_with_zeros(2, padding, padding)? } else { x.clone() };
    let mut y = x.unsqueeze(2)?.conv2d(&weight.reshape((o, c, 1, k))?, 0, 1, 1, 1)?.squeeze(2)?;
    if stride > 1 {
        let (b, _, full) = y.dims3()?;
        let kept = (full - 1) / stride + 1;
        y = y.pad_with_zeros(2, 0, kept * stride - full)?.reshape((b, o, kept, stride))?.narrow(3, 0, 1)?.squeeze(3)?;
    }
    match bias {
        Some(bias) => y.broadcast_add(&bias.reshape((1, o, 1))?),
        None => Ok(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::conv2d_relu_max_pool2d;
    use crate::rng::SeededRng;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    #[test]
    fn im2col_conv_matches_candle_conv_in_value_and_gradient() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(1);
        // batch 1 (each matrix product split across threads) and batches larger
        // than the thread count (images split across threads); odd, even and
        // non-square sizes
        for (padding, stride, (h, w), batch) in
            [(1, 1, (7, 7), 2), (0, 1, (7, 5), 1), (1, 2, (7, 7), 5), (1, 1, (9, 6), 3), (0, 2, (8, 8), 2), (1, 2, (7, 9), 1)]
        {
            let x = Var::from_tensor(&rng.randn((batch, 3, h, w), 1.0, &dev).unwrap()).unwrap();
            let w = Var::from_tensor(&rng.randn((4, 3, 3, 3), 0.5, &dev).unwrap()).unwrap();
            let bias = Var::from_tensor(&rng.randn(4, 0.5, &dev).unwrap()).unwrap();
            let ours = conv2d(x.as_tensor(), w.as_tensor(), Some(bias.as_tensor()), padding, stride).unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(w.as_tensor(), padding, stride, 1, 1)
                .unwrap()
                .broadcast_add(&bias.as_tensor().reshape((1, 4, 1, 1)).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_diff(&ours, &theirs) < 1e-5);
            // gradients of a weighted sum, so that every output position matters differently
            let r = rng.randn(ours.dims(), 1.0, &dev).unwrap();
            let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w, &bias] {
                let (a, b) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
                assert!(max_diff(a, b) < 1e-4, "gradient mismatch (padding {padding}, stride {stride})");
            }
        }
    }

    #[test]
    fn fused_conv_relu_pool_equals_the_composed_ops_bit_for_bit() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(11);
        // batch 1 (products split across threads), batches above the thread
        // count, odd sizes (the last row/column dropped), stride 2, padding 0/1,
        // and an input that is mostly zero with a zero bias (ties at 0 in
        // every window, as on MNIST's blank background)
        for (padding, stride, (h, w), batch, sparse) in [
            (1, 1, (8, 8), 2, false),
            (1, 1, (7, 9), 1, false),
            (0, 1, (9, 7), 5, false),
            (1, 2, (9, 9), 3, false),
            (0, 2, (10, 11), 1, false),
            (1, 1, (6, 6), 4, true),
        ] {
            let mut x = rng.randn((batch, 3, h, w), 1.0, &dev).unwrap();
            let mut bias = rng.randn(5, 0.5, &dev).unwrap();
            if sparse {
                x = x.relu().unwrap().broadcast_mul(&rng.randn((1, 1, h, w), 1.0, &dev).unwrap().gt(1.0).unwrap().to_dtype(DType::F32).unwrap()).unwrap();
                bias = bias.zeros_like().unwrap();
            }
            let x = Var::from_tensor(&x).unwrap();
            let w = Var::from_tensor(&rng.randn((5, 3, 3, 3), 0.5, &dev).unwrap()).unwrap();
            let bias = Var::from_tensor(&bias).unwrap();
            let fused = conv2d_relu_max_pool2d(x.as_tensor(), w.as_tensor(), Some(bias.as_tensor()), padding, stride).unwrap();
            let composed = crate::nn::relu_max_pool2d(&conv2d(x.as_tensor(), w.as_tensor(), Some(bias.as_tensor()), padding, stride).unwrap()).unwrap();
            assert_eq!(fused.dims(), composed.dims());
            assert_eq!(max_diff(&fused, &composed), 0.0, "forward (padding {padding}, stride {stride}, {h}×{w})");
            let r = rng.randn(fused.dims(), 1.0, &dev).unwrap();
            let loss = (&fused * &r).unwrap().sum_all().unwrap();
            let g1 = loss.backward().unwrap();
            let g2 = (composed * &r).unwrap().sum_all().unwrap().backward().unwrap();
            // a second backward pass through the same graph recomputes the windows' records
            let g3 = loss.backward().unwrap();
            for v in [&x, &w, &bias] {
                let (a, b, c) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap(), g3.get(v.as_tensor()).unwrap());
                assert_eq!(a.dims(), v.dims());
                assert_eq!(max_diff(a, b), 0.0, "gradient (padding {padding}, stride {stride}, {h}×{w}, batch {batch})");
                assert_eq!(max_diff(a, c), 0.0, "second backward pass");
            }
            if sparse {
                // the ties really happened: some pooled outputs are exactly 0
                assert!(fused.eq(0.0).unwrap().to_dtype(DType::F32).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
            }
        }
        // no bias, or another dtype: the composed ops
        let x = rng.randn((2, 3, 6, 6), 1.0, &dev).unwrap();
        let w = rng.randn((4, 3, 3, 3), 0.5, &dev).unwrap();
        let a = conv2d_relu_max_pool2d(&x, &w, None, 1, 1).unwrap();
        let b = crate::nn::relu_max_pool2d(&conv2d(&x, &w, None, 1, 1).unwrap()).unwrap();
        assert_eq!(max_diff(&a, &b), 0.0);
        let a = conv2d_relu_max_pool2d(&x.to_dtype(DType::F64).unwrap(), &w.to_dtype(DType::F64).unwrap(), None, 1, 1).unwrap();
        assert_eq!(a.dims(), &[2, 4, 3, 3]);
    }

    #[test]
    fn fused_conv_relu_pool_rejects_bad_shapes_by_name() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3, 3, 3), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 3, 3, 3), DType::F32, &dev).unwrap();
        let b = Tensor::zeros(4, DType::F32, &dev).unwrap();
        // a 1×1 convolution output cannot be pooled
        let e = conv2d_relu_max_pool2d(&x, &w, Some(&b), 0, 1).unwrap_err().to_string();
        assert!(e.contains("1×1") && e.contains("2×2 pool"), "{e}");
        let e = conv2d_relu_max_pool2d(&x, &w.narrow(1, 0, 2).unwrap(), Some(&b), 1, 1).unwrap_err().to_string();
        assert!(e.contains("[2, 3, 3, 3]") && e.contains("[4, 2, 3, 3]"), "{e}");
        let e = conv2d_relu_max_pool2d(&x, &w, Some(&b.narrow(0, 0, 3).unwrap()), 1, 1).unwrap_err().to_string();
        assert!(e.contains("bias [3]"), "{e}");
        let e = conv2d_relu_max_pool2d(&x.flatten_all().unwrap(), &w, Some(&b), 1, 1).unwrap_err().to_string();
        assert!(e.contains("(B, C, H, W)") && e.contains("[54]"), "{e}");
    }

    /// Central finite differences of `f` at every element of `w` (f64 sums of an f32 model).
    fn finite_differences(w: &Tensor, f: impl Fn(&Tensor) -> f64) -> Vec<f64> {
        let v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        let eps = 1e-2f32;
        (0..v.len())
            .map(|i| {
                let (mut a, mut b) = (v.clone(), v.clone());
                a[i] += eps;
                b[i] -= eps;
                let ta = Tensor::from_vec(a, w.shape(), w.device()).unwrap();
                let tb = Tensor::from_vec(b, w.shape(), w.device()).unwrap();
                (f(&ta) - f(&tb)) / (2.0 * f64::from(eps))
            })
            .collect()
    }

    #[test]
    fn conv1d_matches_candle_forward_and_finite_differences_backward() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(4);
        for (padding, stride, t, k) in [(2, 1, 11, 5), (0, 1, 9, 3), (1, 2, 10, 3), (2, 1, 70, 5)] {
            let x = Var::from_tensor(&rng.randn((2, 3, t), 1.0, &dev).unwrap()).unwrap();
            let w = Var::from_tensor(&rng.randn((4, 3, k), 0.5, &dev).unwrap()).unwrap();
            let bias = Var::from_tensor(&rng.randn(4, 0.5, &dev).unwrap()).unwrap();
            let ours = conv1d(x.as_tensor(), w.as_tensor(), Some(bias.as_tensor()), padding, stride).unwrap();
            let theirs = x
                .as_tensor()
                .conv1d(w.as_tensor(), padding, stride, 1, 1)
                .unwrap()
                .broadcast_add(&bias.as_tensor().reshape((1, 4, 1)).unwrap())
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_diff(&ours, &theirs) < 1e-5);
            let r = rng.randn(ours.dims(), 1.0, &dev).unwrap();
            let g = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            // every gradient against central finite differences (Candle's own are wrong, below)
            let loss = |xt: &Tensor, wt: &Tensor, bt: &Tensor| -> f64 {
                let y = conv1d(xt, wt, Some(bt), padding, stride).unwrap();
                f64::from((y * &r).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap())
            };
            let (xt, wt, bt) = (x.as_tensor(), w.as_tensor(), bias.as_tensor());
            let checks = [
                ("input", xt, finite_differences(xt, |v| loss(v, wt, bt))),
                ("weight", wt, finite_differences(wt, |v| loss(xt, v, bt))),
                ("bias", bt, finite_differences(bt, |v| loss(xt, wt, v))),
            ];
            for (what, v, fd) in checks {
                let ours: Vec<f32> = g.get(v).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                for (i, (a, b)) in ours.iter().zip(&fd).enumerate() {
                    assert!(
                        (f64::from(*a) - b).abs() < 2e-2 * (1.0 + b.abs()),
                        "{what} gradient {i} (padding {padding}, stride {stride}, T {t}): {a} vs finite difference {b}"
                    );
                }
            }
        }
        let err = conv1d(&Tensor::zeros((1, 2, 5), DType::F32, &dev).unwrap(), &Tensor::zeros((4, 3, 3), DType::F32, &dev).unwrap(), None, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[1, 2, 5]") && err.contains("[4, 3, 3]"), "{err}");
    }

    /// The path other devices take (Candle's conv2d), run on the CPU in f64:
    /// same values and gradients as the fused f32 op, including strides whose
    /// last rows or columns no window reaches (where Candle's own backward
    /// pass fails on a shape mismatch).
    #[test]
    fn conv2d_on_other_devices_matches_the_cpu_path() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(8);
        for (padding, stride, h, w) in [(1, 1, 9, 9), (1, 2, 8, 9), (0, 2, 9, 8), (1, 2, 7, 10), (0, 3, 10, 11)] {
            let x = Var::from_tensor(&rng.randn((2, 3, h, w), 1.0, &dev).unwrap()).unwrap();
            let wt = Var::from_tensor(&rng.randn((4, 3, 3, 3), 0.5, &dev).unwrap()).unwrap();
            let x64 = Var::from_tensor(&x.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
            let w64 = Var::from_tensor(&wt.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
            let a = conv2d(x.as_tensor(), wt.as_tensor(), None, padding, stride).unwrap();
            let b = conv2d(x64.as_tensor(), w64.as_tensor(), None, padding, stride).unwrap();
            assert_eq!(a.dims(), b.dims(), "padding {padding}, stride {stride}, {h}×{w}");
            let b = b.to_dtype(DType::F32).unwrap();
            let d = max_diff(&a, &b);
            assert!(d < 1e-5, "value differs by {d} (padding {padding}, stride {stride}, {h}×{w})");
            let r = rng.randn(a.dims(), 1.0, &dev).unwrap();
            let ga = (a * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (v, v64) in [(&x, &x64), (&wt, &w64)] {
                let g64 = gb.get(v64.as_tensor()).unwrap().to_dtype(DType::F32).unwrap();
                let d = max_diff(ga.get(v.as_tensor()).unwrap(), &g64);
                assert!(d < 1e-4, "gradient differs by {d} (padding {padding}, stride {stride}, {h}×{w})");
            }
        }
    }

    /// The path other devices take (CUDA), run on the CPU: value and every
    /// gradient equal to the fused op's.
    #[test]
    fn conv1d_on_other_devices_matches_the_cpu_path() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(6);
        for (padding, stride, t, k) in [(2, 1, 11, 5), (0, 1, 9, 3), (1, 2, 10, 3)] {
            let x = Var::from_tensor(&rng.randn((2, 3, t), 1.0, &dev).unwrap()).unwrap();
            let w = Var::from_tensor(&rng.randn((4, 3, k), 0.5, &dev).unwrap()).unwrap();
            let bias = Var::from_tensor(&rng.randn(4, 0.5, &dev).unwrap()).unwrap();
            let a = conv1d(x.as_tensor(), w.as_tensor(), Some(bias.as_tensor()), padding, stride).unwrap();
            let b = conv1d_as_conv2d(x.as_tensor(), w.as_tensor(), Some(bias.as_tensor()), padding, stride).unwrap();
            assert_eq!(a.dims(), b.dims());
            assert!(max_diff(&a, &b) < 1e-5);
            let r = rng.randn(a.dims(), 1.0, &dev).unwrap();
            let ga = (a * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (b * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w, &bias] {
                let d = max_diff(ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
                assert!(d < 1e-4, "gradient differs by {d} (padding {padding}, stride {stride})");
            }
        }
    }

    /// Candle 0.11's CPU `conv1d` computes a wrong weight gradient (shown
    /// here with padding 2): this is why every 1-D convolution in the crate
    /// goes through [`conv1d`]. If this test fails after a Candle upgrade,
    /// the bug is fixed upstream.
    #[test]
    fn candle_conv1d_weight_gradient_is_wrong_with_padding() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(4);
        let x = rng.randn((2, 3, 11), 1.0, &dev).unwrap();
        let w = Var::from_tensor(&rng.randn((4, 3, 5), 0.5, &dev).unwrap()).unwrap();
        let r = rng.randn((2, 4, 11), 1.0, &dev).unwrap();
        let g = (x.conv1d(w.as_tensor(), 2, 1, 1, 1).unwrap() * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let candle: Vec<f32> = g.get(w.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let fd = finite_differences(w.as_tensor(), |wt| {
            f64::from((x.conv1d(wt, 2, 1, 1, 1).unwrap() * &r).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap())
        });
        let worst = candle.iter().zip(&fd).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
        assert!(worst > 1.0, "Candle's conv1d weight gradient now matches finite differences (off by {worst}): the workaround may go");
    }

    #[test]
    fn strided_conv_on_even_sizes_has_a_gradient_of_the_input_shape() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&SeededRng::new(2).randn((1, 2, 6, 6), 1.0, &dev).unwrap()).unwrap();
        let w = SeededRng::new(3).randn((3, 2, 3, 3), 1.0, &dev).unwrap();
        let y = conv2d(x.as_tensor(), &w, None, 1, 2).unwrap();
        assert_eq!(y.dims(), &[1, 3, 3, 3]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(x.as_tensor()).unwrap().dims(), &[1, 2, 6, 6]);
    }

    #[test]
    fn conv2d_rejects_mismatched_shapes() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 2, 5, 5), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 3, 3, 3), DType::F32, &dev).unwrap();
        let err = conv2d(&x, &w, None, 1, 1).unwrap_err().to_string();
        assert!(err.contains("[1, 2, 5, 5]") && err.contains("[4, 3, 3, 3]"), "{err}");
    }
}
