//! 2-D convolution as im2col + one matrix product, with a fast backward pass
//! on the CPU.
//!
//! Candle's CPU `conv2d` backward goes through a nested-loop transposed
//! convolution, about 5–10× slower than its forward pass. Written as
//!
//! ```text
//! cols = im2col(x)                 (B·H'·W', C·k·k)   one row per output position
//! y    = cols · W_matᵀ + b         (B·H'·W', O)       W_mat = W reshaped to (O, C·k·k)
//! ```
//!
//! every step has a cheap backward: the matrix product's is two more matrix
//! products, and im2col's is its adjoint col2im (scatter-add of the rows back
//! onto the image). Both are custom ops whose backward is the other, so
//! autodiff works through them to any order.
//!
//! \[0\] K. Chellapilla, S. Puri, P. Simard, "High Performance Convolutional
//!     Neural Networks for Document Processing", 2006 (the im2col lowering).
//!
//! (Candle's own backward also fails with a shape error for stride 2 on
//! even-sized inputs; this one does not.)
//!
//! On other devices and dtypes, [`conv2d`] calls Candle's own convolution.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Geometry shared by [`Im2Col`] and [`Col2Im`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    /// Kernel height and width.
    kh: usize,
    kw: usize,
    stride: usize,
    /// Zero padding above/below and left/right.
    ph: usize,
    pw: usize,
}

impl Geometry {
    fn out_hw(&self) -> (usize, usize) {
        ((self.h + 2 * self.ph - self.kh) / self.stride + 1, (self.w + 2 * self.pw - self.kw) / self.stride + 1)
    }

    /// Calls `f(col, pixel, len)` for every run of `len` consecutive
    /// columns of image `bi`'s block of the im2col matrix that read `len`
    /// consecutive pixels inside the image (one kernel row, clipped at the
    /// border); both indices are relative to that image (its `H'·W'` rows,
    /// its `C·H·W` pixels). Columns not covered read padding (zero).
    #[inline(always)]
    fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (ho, wo) = self.out_hw();
        let (kh, kw, s, ph, pw, h, w) = (self.kh, self.kw, self.stride, self.ph, self.pw, self.h, self.w);
        let ck = self.c * kh * kw;
        for oy in 0..ho {
            for ox in 0..wo {
                let row = (oy * wo + ox) * ck;
                // kernel columns kx with 0 <= ox·s + kx − p < w
                let x0 = ox * s;
                let kx0 = pw.saturating_sub(x0);
                let kx1 = kw.min((w + pw).saturating_sub(x0));
                if kx1 <= kx0 {
                    continue;
                }
                for ci in 0..self.c {
                    let img = ci * h * w;
                    for ky in 0..kh {
                        let y = oy * s + ky;
                        if y < ph || y - ph >= h {
                            continue;
                        }
                        let col = row + (ci * kh + ky) * kw + kx0;
                        f(col, img + (y - ph) * w + x0 + kx0 - pw, kx1 - kx0);
                    }
                }
            }
        }
    }

    /// Sizes of one image's block: (im2col elements, pixels).
    fn per_image(&self) -> (usize, usize) {
        let (ho, wo) = self.out_hw();
        (ho * wo * self.c * self.kh * self.kw, self.c * self.h * self.w)
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("{what}: only f32 is supported") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// The im2col matrix of `x`, `(B·H'·W', C·k·k)` row-major.
fn im2col(g: &Geometry, x: &[f32]) -> Vec<f32> {
    let (cols_n, pix_n) = g.per_image();
    let mut out = vec![0f32; g.b * cols_n];
    // images are independent: one task per image, on the shared thread pool
    out.par_chunks_mut(cols_n).zip(x.par_chunks(pix_n)).for_each(|(dst, src)| {
        g.for_each_run(|col, img, n| dst[col..col + n].copy_from_slice(&src[img..img + n]));
    });
    out
}

/// `(B, C, H, W)` → `(B·H'·W', C·k·k)`.
struct Im2Col(Geometry);

/// `x (B, C, H, W)`, `W_mat (O, C·k·k)` → `im2col(x) · W_matᵀ`, `(B·H'·W', O)`,
/// as one op: the im2col matrix lives only inside the forward pass (and is
/// rebuilt in the backward pass), so autodiff never allocates, zero-fills and
/// accumulates a gradient of that size (150 MB for the bench's second layer).
struct ConvRows(Geometry);
/// `(B·H'·W', C·k·k)` → `(B, C, H, W)`, summing overlapping contributions.
struct Col2Im(Geometry);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "sslab-im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "im2col")?;
        let g = self.0;
        let (ho, wo) = g.out_hw();
        Ok((CpuStorage::F32(im2col(&g, x)), Shape::from((g.b * ho * wo, g.c * g.kh * g.kw))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im(self.0))?))
    }
}

impl candle_core::CustomOp2 for ConvRows {
    fn name(&self) -> &'static str {
        "sslab-conv-rows"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let g = self.0;
        let x = f32_slice(s1, l1, "conv2d")?;
        f32_slice(s2, l2, "conv2d weight")?;
        let (ho, wo) = g.out_hw();
        let (m, k) = (g.b * ho * wo, g.c * g.kh * g.kw);
        let o = l2.shape().dims()[0];
        let cols = CpuStorage::F32(im2col(&g, x));
        // W_matᵀ as a (C·k·k, O) view of the row-major (O, C·k·k) weight
        let wt = Layout::new(Shape::from((k, o)), vec![1, k], l2.start_offset());
        let y = cols.matmul(s2, (1, m, o, k), &Layout::contiguous((m, k)), &wt)?;
        Ok((y, Shape::from((m, o))))
    }

    fn bwd(&self, x: &Tensor, wm: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let cols = x.contiguous()?.apply_op1_no_bwd(&Im2Col(self.0))?;
        let gw = grad.t()?.matmul(&cols)?;
        drop(cols);
        let gx = grad.matmul(wm)?.apply_op1_no_bwd(&Col2Im(self.0))?;
        Ok((Some(gx), Some(gw)))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "sslab-col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let cols = f32_slice(s, l, "col2im")?;
        let g = self.0;
        let mut out = vec![0f32; g.b * g.c * g.h * g.w];
        let (cols_n, pix_n) = g.per_image();
        out.par_chunks_mut(pix_n).zip(cols.par_chunks(cols_n)).for_each(|(dst, src)| {
            g.for_each_run(|col, img, n| {
                for (d, v) in dst[img..img + n].iter_mut().zip(&src[col..col + n]) {
                    *d += v;
                }
            });
        });
        Ok((CpuStorage::F32(out), Shape::from((g.b, g.c, g.h, g.w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col(self.0))?))
    }
}

/// `(B·P, O)` rows plus a bias `(O,)` → `(B, O, P)` channel planes: the
/// matrix product's output moved to NCHW with the bias added, in one pass.
struct RowsToPlanes {
    b: usize,
    p: usize,
    o: usize,
}
/// The adjoint: `(B, O, P)` planes → `(B·P, O)` rows.
struct PlanesToRows {
    b: usize,
    p: usize,
    o: usize,
}
/// `(B, O, P)` → `(O,)`: the sum of every channel plane (the bias gradient).
struct ChannelSum {
    b: usize,
    p: usize,
    o: usize,
}

/// Rows of 64 output positions at a time: reads stay in cache while each
/// channel's 64 values are written contiguously.
const TILE: usize = 64;

impl candle_core::CustomOp2 for RowsToPlanes {
    fn name(&self) -> &'static str {
        "sslab-rows-to-planes"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = f32_slice(s1, l1, "conv2d bias")?;
        let bias = f32_slice(s2, l2, "conv2d bias")?;
        let (p, o) = (self.p, self.o);
        let mut out = vec![0f32; self.b * o * p];
        out.par_chunks_mut(o * p).zip(y.par_chunks(p * o)).for_each(|(dst, src)| {
            for t0 in (0..p).step_by(TILE) {
                let t1 = (t0 + TILE).min(p);
                for (ci, &bc) in bias.iter().enumerate() {
                    let plane = &mut dst[ci * p + t0..ci * p + t1];
                    for (i, d) in plane.iter_mut().enumerate() {
                        *d = src[(t0 + i) * o + ci] + bc;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((self.b, o, p))))
    }

    fn bwd(&self, _y: &Tensor, _bias: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, p, o) = (self.b, self.p, self.o);
        let grad = grad.contiguous()?;
        let gy = grad.apply_op1(PlanesToRows { b, p, o })?;
        let gb = grad.apply_op1_no_bwd(&ChannelSum { b, p, o })?;
        Ok((Some(gy), Some(gb)))
    }
}

impl CustomOp1 for PlanesToRows {
    fn name(&self) -> &'static str {
        "sslab-planes-to-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s, l, "conv2d backward")?;
        let (p, o) = (self.p, self.o);
        let mut out = vec![0f32; self.b * p * o];
        out.par_chunks_mut(p * o).zip(g.par_chunks(o * p)).for_each(|(dst, src)| {
            for t0 in (0..p).step_by(TILE) {
                let t1 = (t0 + TILE).min(p);
                for ci in 0..o {
                    for (i, &v) in src[ci * p + t0..ci * p + t1].iter().enumerate() {
                        dst[(t0 + i) * o + ci] = v;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((self.b * p, o))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let zero = Tensor::zeros(self.o, grad.dtype(), grad.device())?;
        Ok(Some(grad.contiguous()?.apply_op2(&zero, RowsToPlanes { b: self.b, p: self.p, o: self.o })?))
    }
}

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "sslab-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s, l, "conv2d bias backward")?;
        let (p, o) = (self.p, self.o);
        if g.len() != self.b * o * p {
            candle_core::bail!("conv2d bias backward: gradient {:?} is not ({}, {o}, {p})", l.shape(), self.b);
        }
        let mut out = vec![0f32; o];
        for img in g.chunks(o * p) {
            for (ci, acc) in out.iter_mut().enumerate() {
                *acc += img[ci * p..(ci + 1) * p].iter().sum::<f32>();
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(o)))
    }
}

/// A square-kernel 2-D convolution `y = W ⋆ x + b`, as im2col + matrix product
/// on the CPU (fast backward), Candle's `conv2d` elsewhere.
///
/// # Shapes
/// `x (B, C, H, W)`, `weight (O, C, k, k)`, `bias (O,)` →
/// `(B, O, (H + 2p − k)/s + 1, (W + 2p − k)/s + 1)`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, padding: usize, stride: usize) -> Result<Tensor> {
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
        return add_bias(x.conv2d(weight, padding, stride, 1, 1)?);
    }
    let g = Geometry { b, c, h, w, kh, kw, stride, ph: padding, pw: padding };
    conv_cpu(x, weight, bias, g)
}

/// The CPU path of [`conv2d`] and [`conv1d`]: im2col + matmul as one op, then
/// bias and the move to `(B, O, H', W')` as another.
fn conv_cpu(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, g: Geometry) -> Result<Tensor> {
    let (b, c, kh, kw) = (g.b, g.c, g.kh, g.kw);
    let o = weight.dim(0)?;
    let (ho, wo) = g.out_hw();
    let wm = weight.reshape((o, c * kh * kw))?.contiguous()?;
    let y = x.contiguous()?.apply_op2(&wm, ConvRows(g))?;
    match bias {
        // bias and the move to NCHW in one pass, with a one-pass backward
        Some(bias) => y.apply_op2(&bias.contiguous()?, RowsToPlanes { b, p: ho * wo, o })?.reshape((b, o, ho, wo)),
        None => y.reshape((b, ho, wo, o))?.permute((0, 3, 1, 2))?.contiguous(),
    }
}

/// A 1-D convolution `y = W ⋆ x + b` over the last axis, on the CPU through
/// the same im2col + matrix product as [`conv2d`] (a series is an image one
/// pixel high), Candle's `conv1d` elsewhere. Candle's CPU `conv1d` backward
/// is a nested-loop transposed convolution: this one is several times faster.
///
/// # Shapes
/// `x (B, C, T)`, `weight (O, C, k)`, `bias (O,)` → `(B, O, (T + 2p − k)/s + 1)`.
pub fn conv1d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, padding: usize, stride: usize) -> Result<Tensor> {
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
        let y = x.conv1d(weight, padding, stride, 1, 1)?;
        return match bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, o, 1))?),
            None => Ok(y),
        };
    }
    let g = Geometry { b, c, h: 1, w: t, kh: 1, kw: k, stride, ph: 0, pw: padding };
    let y = conv_cpu(&x.reshape((b, c, 1, t))?, &weight.reshape((o, c, 1, k))?, bias, g)?;
    let to = y.dim(3)?;
    y.reshape((b, o, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    #[test]
    fn im2col_conv_matches_candle_conv_in_value_and_gradient() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(1);
        // 9×9 at stride 1 gives 81 output positions: more than one tile of the bias/layout op
        for (padding, stride, size) in [(1, 1, 7), (0, 1, 7), (1, 2, 7), (1, 1, 9), (0, 2, 8)] {
            let x = Var::from_tensor(&rng.randn((2, 3, size, size), 1.0, &dev).unwrap()).unwrap();
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
