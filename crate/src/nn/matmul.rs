//! The batched matrix product of attention and the bias add of every linear
//! layer, each with a CPU fast path whose backward is one parallel pass.

use super::kernels::{f32_slice, sum_in_order, REDUCE_ROWS};
use super::ops::ROWS_PER_TASK;
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// The batched matrix product `a · b`, or `a · bᵀ` with `transpose_b`, over
/// equal leading dimensions (attention's `Q Kᵀ` and `A V`).
///
/// On the CPU (f32) the batch is split across threads, each entry one
/// single-threaded matrix product, forward and backward. Candle 0.11 runs a
/// batched product as a loop of small products one after the other, each
/// split across threads: for attention's thousands of 65×32 matrices that
/// synchronises the threads thousands of times per layer.
///
/// # Shapes
/// `a (…, M, K)`, `b (…, K, N)` (or `(…, N, K)` with `transpose_b`) → `(…, M, N)`.
pub fn batched_matmul(a: &Tensor, b: &Tensor, transpose_b: bool) -> Result<Tensor> {
    super::check_input("batched_matmul", &[a, b])?;
    let (ad, bd) = (a.dims(), b.dims());
    let r = ad.len();
    let fits = r >= 2 && bd.len() == r && ad[..r - 2] == bd[..r - 2] && ad[r - 1] == if transpose_b { bd[r - 1] } else { bd[r - 2] };
    if !fits {
        candle_core::bail!("batched_matmul: a {ad:?} and b {bd:?} (transpose_b = {transpose_b}) do not fit (…, M, K) · (…, K, N)");
    }
    let cpu = a.device().is_cpu() && a.dtype() == candle_core::DType::F32 && b.dtype() == candle_core::DType::F32;
    if !cpu || a.elem_count() == 0 || b.elem_count() == 0 {
        return if transpose_b { a.matmul(&b.t()?) } else { a.matmul(b) };
    }
    let batch: usize = ad[..r - 2].iter().product();
    let a3 = a.contiguous()?.reshape((batch, ad[r - 2], ad[r - 1]))?;
    let b3 = b.contiguous()?.reshape((batch, bd[r - 2], bd[r - 1]))?;
    let y = a3.apply_op2(&b3, BatchMatmul { ta: false, tb: transpose_b })?;
    let mut out = ad.to_vec();
    out[r - 1] = if transpose_b { bd[r - 2] } else { bd[r - 1] };
    y.reshape(out)
}

/// `op(a) · op(b)` per batch entry of contiguous `(batch, rows, cols)`
/// tensors, where `op` transposes when its flag is set.
struct BatchMatmul {
    ta: bool,
    tb: bool,
}

impl candle_core::CustomOp2 for BatchMatmul {
    fn name(&self) -> &'static str {
        "sslab-batched-matmul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        use super::kernels::{inner_parallelism, matmul, Mat};
        let (a, b) = (f32_slice(s1, l1, "batched_matmul")?, f32_slice(s2, l2, "batched_matmul")?);
        let (Ok((batch, ra, ca)), Ok((bb, rb, cb))) = (l1.shape().dims3(), l2.shape().dims3()) else {
            candle_core::bail!("batched_matmul: expects (batch, rows, cols) tensors, got {:?} and {:?}", l1.shape(), l2.shape());
        };
        let ((m, k), (k2, n)) = (if self.ta { (ca, ra) } else { (ra, ca) }, if self.tb { (cb, rb) } else { (rb, cb) });
        if bb != batch || k2 != k {
            candle_core::bail!("batched_matmul: {:?} and {:?} do not fit", l1.shape(), l2.shape());
        }
        let mut out = vec![0f32; batch * m * n];
        if m * n > 0 {
            let par = inner_parallelism(batch);
            out.par_chunks_mut(m * n).enumerate().for_each(|(i, dst)| {
                let (ai, bi) = (&a[i * m * k..(i + 1) * m * k], &b[i * k * n..(i + 1) * k * n]);
                let am = if self.ta { Mat::new(ai, k, m).t() } else { Mat::new(ai, m, k) };
                let bm = if self.tb { Mat::new(bi, n, k).t() } else { Mat::new(bi, k, n) };
                if k == 0 {
                    dst.fill(0.0);
                } else {
                    matmul(dst, n, false, am, bm, par);
                }
            });
        }
        Ok((CpuStorage::F32(out), Shape::from((batch, m, n))))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let (ta, tb) = (self.ta, self.tb);
        // C = op(A)·op(B):  ∂op(A) = ∂C·op(B)ᵀ,  ∂op(B) = op(A)ᵀ·∂C, stored transposed where flagged
        let ga = if ta { b.apply_op2_no_bwd(&g, &BatchMatmul { ta: tb, tb: true })? } else { g.apply_op2_no_bwd(b, &BatchMatmul { ta: false, tb: !tb })? };
        let gb = if tb { g.apply_op2_no_bwd(a, &BatchMatmul { ta: true, tb: ta })? } else { a.apply_op2_no_bwd(&g, &BatchMatmul { ta: !ta, tb: false })? };
        Ok((Some(ga), Some(gb)))
    }
}

/// `y + b` for rows `y (…, D)` and a bias `b (D,)`, with the bias gradient
/// (the column sums of `∂L/∂y`) in one parallel pass: the backward of
/// Candle's `broadcast_add` sums over the rows with a slow strided reduction.
///
/// # Shapes
/// `y (…, D)`, `b (D,)` → `(…, D)`.
pub fn add_bias(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    super::check_input("add_bias", &[y, b])?;
    let d = y.dims().last().copied().unwrap_or(0);
    if y.rank() == 0 || b.dims() != [d] {
        candle_core::bail!("add_bias expects y (…, D) and b (D,), got {:?} and {:?}", y.dims(), b.dims());
    }
    if y.device().is_cpu() && y.dtype() == candle_core::DType::F32 && b.dtype() == candle_core::DType::F32 && d > 0 {
        return y.contiguous()?.apply_op2(&b.contiguous()?, BiasAdd);
    }
    y.broadcast_add(b)
}

/// See [`add_bias`].
struct BiasAdd;
/// `∂L/∂y (…, D)` ↦ its column sums `(D,)`.
pub(crate) struct ColumnSum;

impl candle_core::CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "sslab-bias-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, b) = (f32_slice(s1, l1, "add_bias")?, f32_slice(s2, l2, "add_bias")?);
        let d = b.len();
        let mut out = y.to_vec();
        out.par_chunks_mut(d).with_min_len(ROWS_PER_TASK).for_each(|row| row.iter_mut().zip(b).for_each(|(o, b)| *o += b));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, _y: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gb = grad.contiguous()?.apply_op1_no_bwd(&ColumnSum)?.reshape(b.shape())?;
        Ok((Some(grad.clone()), Some(gb)))
    }
}

impl candle_core::CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "sslab-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s, l, "add_bias backward")?;
        let d = l.shape().dims().last().copied().unwrap_or(1).max(1);
        let parts = g
            .par_chunks(REDUCE_ROWS * d)
            .map(|block| {
                let mut acc = vec![0f32; d];
                for row in block.chunks(d) {
                    acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                }
                acc
            })
            .collect();
        let sum = sum_in_order(parts, d);
        Ok((CpuStorage::F32(sum), Shape::from(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::{Device, Var};

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// `batched_matmul` equals Candle's matmul in value and in both
    /// gradients, with and without the transposed right-hand side, for a
    /// batch larger than the thread count and for a batch of one.
    #[test]
    fn batched_matmul_matches_candle() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(13);
        for (lead, transpose_b) in [(vec![2, 3], false), (vec![2, 3], true), (vec![1], true), (vec![5], false)] {
            let (m, k, n) = (7, 5, 6);
            let dims = |r: usize, c: usize| [lead.clone(), vec![r, c]].concat();
            let a = Var::from_tensor(&rng.randn(dims(m, k), 1.0, &dev).unwrap()).unwrap();
            let b = Var::from_tensor(&rng.randn(if transpose_b { dims(n, k) } else { dims(k, n) }, 1.0, &dev).unwrap()).unwrap();
            let ours = batched_matmul(a.as_tensor(), b.as_tensor(), transpose_b).unwrap();
            let bt = if transpose_b { b.as_tensor().t().unwrap().contiguous().unwrap() } else { b.as_tensor().clone() };
            let theirs = a.as_tensor().matmul(&bt).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_abs(&ours, &theirs) < 1e-5);
            let r = rng.randn(ours.dims(), 1.0, &dev).unwrap();
            let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&a, &b] {
                let (x, y) = (g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap());
                assert_eq!(x.dims(), y.dims());
                assert!(max_abs(x, y) < 1e-4, "gradient differs by {} (transpose_b {transpose_b})", max_abs(x, y));
            }
        }
        let a = Tensor::zeros((2, 3, 4), candle_core::DType::F32, &dev).unwrap();
        let err = batched_matmul(&a, &a, false).unwrap_err().to_string();
        assert!(err.contains("[2, 3, 4]"), "{err}");
    }

    /// `add_bias` equals `broadcast_add` in value and gradients, and names
    /// the shapes when the bias does not fit.
    #[test]
    fn add_bias_matches_broadcast_add() {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(12);
        let y = Var::from_tensor(&rng.randn((6, 90, 5), 1.0, &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&rng.randn(5, 1.0, &dev).unwrap()).unwrap();
        let ours = add_bias(y.as_tensor(), b.as_tensor()).unwrap();
        let theirs = y.as_tensor().broadcast_add(b.as_tensor()).unwrap();
        assert!(max_abs(&ours, &theirs) < 1e-6);
        let r = rng.randn((6, 90, 5), 1.0, &dev).unwrap();
        let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&y, &b] {
            assert!(max_abs(g1.get(v.as_tensor()).unwrap(), g2.get(v.as_tensor()).unwrap()) < 1e-4);
        }
        let err = add_bias(y.as_tensor(), &Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap()).unwrap_err().to_string();
        assert!(err.contains("[6, 90, 5]") && err.contains("[4]"), "{err}");
    }
}
