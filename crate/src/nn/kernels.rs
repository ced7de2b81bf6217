//! What the hand-written CPU kernels share: the f32 view of a Candle
//! storage, a borrowed matrix view and the `gemm` call behind every matrix
//! product, and the fixed-block reductions that make a sum the same on any
//! number of cores.

use candle_core::{CpuStorage, Layout, Result};
use gemm::Parallelism;
use std::marker::PhantomData;

/// The contiguous f32 values behind a CPU tensor, or an error naming `what`
/// (shared by the crate's custom CPU ops).
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("{what}: only f32 is supported") };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// A row-major `(rows, cols)` matrix (or its transpose) for [`matmul`]: a
/// view of a borrowed slice, which it cannot outlive.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    ptr: *const f32,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
    data: PhantomData<&'a [f32]>,
}

impl<'a> Mat<'a> {
    pub(crate) fn new(v: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(v.len() >= rows * cols, "matrix of {rows}×{cols} over {} values", v.len());
        Self { ptr: v.as_ptr(), rows, cols, row_stride: cols, col_stride: 1, data: PhantomData }
    }

    /// A `(rows, cols)` matrix whose rows start `row_stride` values apart
    /// (one head's columns of a `(L, 3·D)` row-major block, say).
    pub(crate) fn strided(v: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(rows == 0 || v.len() >= (rows - 1) * row_stride + cols, "strided matrix of {rows}×{cols}, row stride {row_stride}, over {} values", v.len());
        Self { ptr: v.as_ptr(), rows, cols, row_stride, col_stride: 1, data: PhantomData }
    }

    pub(crate) fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// The longest inner dimension handed to one `gemm` call.
///
/// `gemm` cuts the inner dimension into blocks whose length depends on the
/// machine's caches and on the product's shape, and the block boundaries
/// change the floating-point sums. Every inner dimension of at most 512 is
/// one block on any machine, so [`matmul`] cuts longer ones itself, always
/// at the same places, and adds the pieces in order.
const MAX_DEPTH: usize = 512;

/// `dst (m, n, row stride dst_rs) (+)= a · b` with the `gemm` crate, the
/// inner dimension in pieces of [`MAX_DEPTH`].
pub(crate) fn matmul(dst: &mut [f32], dst_rs: usize, accumulate: bool, a: Mat, b: Mat, par: Parallelism) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && m > 0 && n > 0 && dst.len() >= (m - 1) * dst_rs + n, "conv matmul shapes");
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_rs.max(1)).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    for start in (0..k).step_by(MAX_DEPTH) {
        let depth = MAX_DEPTH.min(k - start);
        // SAFETY: the bounds of `dst` are checked above and those of `a` and
        // `b` by their constructor (the pieces lie inside them); the three do
        // not overlap (dst is a &mut), and `a`, `b` borrow their slices.
        unsafe {
            gemm::gemm(
                m,
                n,
                depth,
                dst.as_mut_ptr(),
                1,
                dst_rs as isize,
                accumulate || start > 0,
                a.ptr.add(start * a.col_stride),
                a.col_stride as isize,
                a.row_stride as isize,
                b.ptr.add(start * b.row_stride),
                b.col_stride as isize,
                b.row_stride as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        }
    }
}

/// With fewer images (or batch entries) than threads, each matrix product is
/// split across threads instead. (`gemm` splits a product's output, never its
/// inner dimension, so this changes the speed and not the bits.)
pub(crate) fn inner_parallelism(images: usize) -> Parallelism {
    if images < rayon::current_num_threads() { Parallelism::Rayon(0) } else { Parallelism::None }
}

/// Rows summed into one partial sum by the hand-written reductions (layer
/// norm's γ/β gradients, a bias's column sums).
///
/// Reductions are split into blocks of a fixed size, never one block per
/// thread, and their partial sums are added in index order by
/// [`sum_in_order`]: the floating-point sums, and so a whole run, come out
/// bit-identical on any number of cores.
pub(crate) const REDUCE_ROWS: usize = 64;

/// Images whose convolution weight gradients form one partial sum (see
/// [`REDUCE_ROWS`]).
pub(crate) const REDUCE_IMAGES: usize = 16;

/// Adds partial sums of length `len` in index order (all zeros for none).
pub(crate) fn sum_in_order(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![0f32; len]);
    for p in parts {
        total.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    total
}
