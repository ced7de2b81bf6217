//! Convolution, ReLU and 2×2 max-pool as one op on the CPU: see
//! [`conv2d_relu_max_pool2d`].

use super::im2col::{col2im_image, conv2d, im2col_image, split_weight_bias, Geometry};
use super::kernels::{f32_slice, inner_parallelism, matmul, sum_in_order, Mat, REDUCE_IMAGES};
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// The sizes behind [`ConvReluPool`]: the convolution's output `(H', W')`
/// and the pooled `(H'/2, W'/2)` (odd sizes drop the last row/column).
fn pooled_hw(g: &Geometry) -> ((usize, usize), (usize, usize)) {
    let (ho, wo) = g.out_hw();
    ((ho, wo), (ho / 2, wo / 2))
}

/// One pooled window's record: which of its four positions held the first
/// maximum (bits 0–1, row-major) and whether the maximum was positive (bit 2).
const POSITIVE: u8 = 4;

/// `x`, `W_mat`, `bias` → `relu(max_pool_2×2(W ⋆ x + b))`, one image at a time:
/// the convolution's output stays in a per-thread buffer while it is pooled,
/// and never becomes a tensor. `saved` keeps each window's record for the
/// backward pass (gone after it; a second backward pass recomputes it).
struct ConvReluPool {
    g: Geometry,
    saved: Mutex<Option<Vec<u8>>>,
}

/// The backward of [`ConvReluPool`]: `(x, W_mat, ∂y)` ↦ `[∂x | ∂W_mat ∂b]`
/// flattened, the first `B·C·H·W` values `∂x`, the rest `(O, C·kh·kw + 1)`.
struct ConvReluPoolBackward {
    g: Geometry,
    record: Vec<u8>,
}

impl ConvReluPool {
    /// The records the forward pass kept, if still there (taking them).
    fn take_record(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.saved.lock().map_err(|_| candle_core::Error::Msg("conv2d_relu_max_pool2d: poisoned lock".into()))?.take())
    }

    /// The forward pass; also returns every window's record.
    fn run(&self, x: &[f32], w: &[f32], bias: &[f32]) -> Result<(Vec<f32>, Vec<u8>)> {
        let g = self.g;
        let (k, p, pix) = g.sizes();
        let o = bias.len();
        let ((_, wc), (ho, wo)) = pooled_hw(&g);
        if x.len() != g.b * pix || w.len() != o * k || ho == 0 || wo == 0 {
            candle_core::bail!("conv2d_relu_max_pool2d: input, weight {o}×{k} or output too small for {g:?}");
        }
        let q = ho * wo;
        let par = inner_parallelism(g.b);
        let mut out = vec![0f32; g.b * o * q];
        let mut record = vec![0u8; g.b * o * q];
        out.par_chunks_mut(o * q).zip(record.par_chunks_mut(o * q)).zip(x.par_chunks(pix)).for_each_init(
            || (vec![0f32; k * p], vec![0f32; o * p]),
            |(cols, yb), ((ob, rb), xb)| {
                for (plane, &bc) in yb.chunks_mut(p).zip(bias) {
                    plane.fill(bc);
                }
                im2col_image(&g, xb, cols);
                matmul(yb, p, true, Mat::new(w, o, k), Mat::new(cols, k, p), par);
                for ((plane, dst), rec) in yb.chunks(p).zip(ob.chunks_mut(q)).zip(rb.chunks_mut(q)) {
                    for i in 0..ho {
                        let r0 = &plane[2 * i * wc..2 * i * wc + 2 * wo];
                        let r1 = &plane[(2 * i + 1) * wc..(2 * i + 1) * wc + 2 * wo];
                        let (d, r) = (&mut dst[i * wo..(i + 1) * wo], &mut rec[i * wo..(i + 1) * wo]);
                        for (((d, r), a), b) in d.iter_mut().zip(r).zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                            let (at, m) = super::pool::window_max(a, b);
                            let passes = super::pool::relu_passes(m);
                            *d = if passes { m } else { 0.0 };
                            *r = at as u8 | if passes { POSITIVE } else { 0 };
                        }
                    }
                }
            },
        );
        Ok((out, record))
    }
}

impl candle_core::CustomOp3 for ConvReluPool {
    fn name(&self) -> &'static str {
        "sslab-conv-relu-maxpool2"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "conv2d_relu_max_pool2d")?;
        let w = f32_slice(s2, l2, "conv2d_relu_max_pool2d weight")?;
        let bias = f32_slice(s3, l3, "conv2d_relu_max_pool2d bias")?;
        let (out, record) = self.run(x, w, bias)?;
        *self.saved.lock().map_err(|_| candle_core::Error::Msg("conv2d_relu_max_pool2d: poisoned lock".into()))? = Some(record);
        let (_, (ho, wo)) = pooled_hw(&self.g);
        Ok((CpuStorage::F32(out), Shape::from((self.g.b, bias.len(), ho, wo))))
    }

    fn bwd(&self, x: &Tensor, wm: &Tensor, bias: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let record = match self.take_record()? {
            Some(r) => r,
            None => {
                // a second backward pass: the forward pass again, for the records
                let again = ConvReluPool { g: self.g, saved: Mutex::new(None) };
                x.apply_op3_no_bwd(wm, bias, &again)?;
                again.take_record()?.ok_or_else(|| candle_core::Error::Msg("conv2d_relu_max_pool2d: no records after the forward pass".into()))?
            }
        };
        let g = self.g;
        let (k, _, pix) = g.sizes();
        let o = wm.dim(0)?;
        let flat = x.apply_op3_no_bwd(wm, &grad.contiguous()?, &ConvReluPoolBackward { g, record })?;
        let gx = flat.narrow(0, 0, g.b * pix)?.reshape((g.b, g.c, g.h, g.w))?;
        let (gw, gb) = split_weight_bias(&flat.narrow(0, g.b * pix, o * (k + 1))?.reshape((o, k + 1))?)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

impl candle_core::CustomOp3 for ConvReluPoolBackward {
    fn name(&self) -> &'static str {
        "sslab-conv-relu-maxpool2-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.g;
        let x = f32_slice(s1, l1, "conv2d_relu_max_pool2d backward")?;
        let w = f32_slice(s2, l2, "conv2d_relu_max_pool2d backward weight")?;
        let gy = f32_slice(s3, l3, "conv2d_relu_max_pool2d backward")?;
        let (k, p, pix) = g.sizes();
        let o = w.len() / k.max(1);
        let ((_, wc), (ho, wo)) = pooled_hw(&g);
        let q = ho * wo;
        if x.len() != g.b * pix || gy.len() != g.b * o * q || self.record.len() != gy.len() {
            candle_core::bail!("conv2d_relu_max_pool2d backward: input {:?} or gradient {:?} does not match {g:?}", l1.shape(), l3.shape());
        }
        // partial sums over REDUCE_IMAGES images each, as in ConvParamGrad
        let per = REDUCE_IMAGES;
        let par = inner_parallelism(g.b.div_ceil(per));
        let mut gx = vec![0f32; g.b * pix + o * (k + 1)];
        let (gx_images, _) = gx.split_at_mut(g.b * pix);
        let acc = gx_images
            .par_chunks_mut(per * pix)
            .enumerate()
            .map(|(t, gx_share)| {
                let mut acc = vec![0f32; o * (k + 1)];
                let mut cols = vec![0f32; k * p];
                let mut gyc = vec![0f32; o * p];
                for (j, gxb) in gx_share.chunks_mut(pix).enumerate() {
                    let bi = t * per + j;
                    // ∂ of the convolution's output: each window's gradient to its first maximum, if positive
                    gyc.fill(0.0);
                    let (gpool, rec) = (&gy[bi * o * q..(bi + 1) * o * q], &self.record[bi * o * q..(bi + 1) * o * q]);
                    for ((plane, gp), rp) in gyc.chunks_mut(p).zip(gpool.chunks(q)).zip(rec.chunks(q)) {
                        for (idx, (&gv, &r)) in gp.iter().zip(rp).enumerate() {
                            if r & POSITIVE != 0 {
                                let (i, jj, at) = (idx / wo, idx % wo, usize::from(r & 3));
                                plane[(2 * i + at / 2) * wc + 2 * jj + at % 2] = gv;
                            }
                        }
                    }
                    matmul(&mut cols, p, false, Mat::new(w, o, k).t(), Mat::new(&gyc, o, p), par);
                    col2im_image(&g, &cols, gxb);
                    im2col_image(&g, &x[bi * pix..(bi + 1) * pix], &mut cols);
                    matmul(&mut acc, k + 1, true, Mat::new(&gyc, o, p), Mat::new(&cols, k, p).t(), par);
                    for (oc, plane) in gyc.chunks(p).enumerate() {
                        acc[oc * (k + 1) + k] += plane.iter().sum::<f32>();
                    }
                }
                acc
            })
            .collect();
        gx[g.b * pix..].copy_from_slice(&sum_in_order(acc, o * (k + 1)));
        let n = gx.len();
        Ok((CpuStorage::F32(gx), Shape::from(n)))
    }
}

/// `relu(max_pool2d(conv2d(x, weight, bias, padding, stride), 2))` — the
/// CNN encoders' layer — as one op on the CPU (f32): the convolution's
/// output is pooled while it is still in cache and is never stored, and the
/// backward pass builds its gradient one image at a time. Elsewhere, and
/// without a bias, [`conv2d`] then [`relu_max_pool2d`](super::relu_max_pool2d).
///
/// # Shapes
/// `x (B, C, H, W)`, `weight (O, C, k, k)`, `bias (O,)` → `(B, O, ⌊H'/2⌋, ⌊W'/2⌋)`
/// for the convolution's output `(H', W')`, which must be at least 2×2.
pub fn conv2d_relu_max_pool2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, padding: usize, stride: usize) -> Result<Tensor> {
    super::check_input("conv2d_relu_max_pool2d", &[x, weight])?;
    let fused = super::fused::cpu_f32(&[x, weight]) && bias.is_some_and(|b| super::fused::cpu_f32(&[b]));
    let (Some(bias), true) = (bias, fused) else {
        return super::relu_max_pool2d(&conv2d(x, weight, bias, padding, stride)?);
    };
    let (o, c, kh, kw) = weight.dims4()?;
    let (b, cx, h, w) = match x.dims() {
        &[b, c, h, w] => (b, c, h, w),
        d => candle_core::bail!("conv2d_relu_max_pool2d expects x (B, C, H, W), got shape {d:?}"),
    };
    if cx != c || c == 0 || kh != kw || stride == 0 || h + 2 * padding < kh || w + 2 * padding < kw || bias.dims() != [o] {
        candle_core::bail!(
            "conv2d_relu_max_pool2d: input {:?} does not fit weight {:?} and bias {:?} (square kernel, matching channels) with padding {padding}, stride {stride}",
            x.dims(),
            weight.dims(),
            bias.dims()
        );
    }
    let g = Geometry { b, c, h, w, kh, kw, stride, ph: padding, pw: padding };
    let (ho, wo) = g.out_hw();
    if ho < 2 || wo < 2 {
        candle_core::bail!("conv2d_relu_max_pool2d: the convolution's output {ho}×{wo} (input {:?}) is smaller than the 2×2 pool", x.dims());
    }
    let wm = weight.reshape((o, c * kh * kw))?.contiguous()?;
    x.contiguous()?.apply_op3(&wm, &bias.contiguous()?, ConvReluPool { g, saved: Mutex::new(None) })
}
