//! The MoCo dictionary: a FIFO queue of encoded keys used as negatives.
//!
//! \[0\] K. He, H. Fan, Y. Wu, S. Xie, R. Girshick, "Momentum Contrast for
//!     Unsupervised Visual Representation Learning", 2019, arXiv:1911.05722,
//!     Algorithm 1; code <https://github.com/facebookresearch/moco> (`_dequeue_and_enqueue`).
//!
//! ```text
//! queue ∈ ℝ^{K×D}, rows unit-norm, initially random
//! enqueue(k):  queue[ptr : ptr + B] ← normalize(k).detach();  ptr ← (ptr + B) mod K
//! ```
//!
//! Keys are detached on the way in, so a loss on the queue never sends
//! gradient back to the key encoder that produced them. Unlike \[0\], which
//! requires `K` to be a multiple of the batch size, a batch that crosses the
//! end wraps around to the start.

use super::ops::l2_normalize;
use crate::rng::SeededRng;
use candle_core::{Device, Result, Tensor};

/// A ring buffer of `capacity` L2-normalised, detached `dim`-dimensional keys.
pub struct MocoQueue {
    buf: Tensor,
    ptr: usize,
    len: usize,
    capacity: usize,
    dim: usize,
}

impl MocoQueue {
    /// A queue filled with random unit vectors drawn from `rng` (as MoCo's initialisation).
    pub fn new(capacity: usize, dim: usize, rng: &mut SeededRng, dev: &Device) -> Result<Self> {
        if capacity == 0 || dim == 0 {
            candle_core::bail!("MocoQueue::new needs capacity > 0 and dim > 0, got capacity {capacity}, dim {dim}");
        }
        let buf = l2_normalize(&rng.randn(&[capacity, dim], 1.0, dev)?)?;
        Ok(Self { buf, ptr: 0, len: 0, capacity, dim })
    }

    /// Normalises, detaches and stores `keys`, overwriting the oldest rows.
    ///
    /// # Shapes
    /// `keys (B, dim)` with `1 <= B <= capacity`.
    pub fn enqueue(&mut self, keys: &Tensor) -> Result<()> {
        let b = match keys.dims() {
            &[b, d] if d == self.dim && b > 0 && b <= self.capacity => b,
            dims => candle_core::bail!(
                "MocoQueue::enqueue expects keys (B, {}) with 1 <= B <= capacity {}, got shape {dims:?}",
                self.dim,
                self.capacity
            ),
        };
        let k = l2_normalize(&keys.detach())?.to_dtype(self.buf.dtype())?.to_device(self.buf.device())?.detach();
        let (p, cap) = (self.ptr, self.capacity);
        let first = b.min(cap - p);
        let mut parts: Vec<Tensor> = Vec::with_capacity(4);
        if first == b {
            // [0, p) old | [p, p + b) new | [p + b, cap) old
            if p > 0 {
                parts.push(self.buf.narrow(0, 0, p)?);
            }
            parts.push(k);
            if p + b < cap {
                parts.push(self.buf.narrow(0, p + b, cap - p - b)?);
            }
        } else {
            // wrap: [0, rest) new tail | [rest, p) old | [p, cap) new head
            let rest = b - first;
            parts.push(k.narrow(0, first, rest)?);
            if p > rest {
                parts.push(self.buf.narrow(0, rest, p - rest)?);
            }
            parts.push(k.narrow(0, 0, first)?);
        }
        self.buf = Tensor::cat(&parts, 0)?.detach();
        self.ptr = (p + b) % cap;
        self.len = (self.len + b).min(cap);
        Ok(())
    }

    /// All `capacity` rows (enqueued keys and, until the queue is full, the
    /// random initial rows), in storage order; detached.
    ///
    /// # Shapes
    /// → `(capacity, dim)`.
    pub fn tensor(&self) -> Tensor {
        self.buf.clone()
    }

    /// Number of keys enqueued so far, at most `capacity`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key has been enqueued yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every row holds an enqueued key (no random initial rows remain).
    pub fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Number of rows `K`.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Key dimension `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The row the next key will be written to.
    pub fn position(&self) -> usize {
        self.ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn keys(vals: &[f32]) -> Tensor {
        // key i = [v_i, 0] normalises to [sign(v_i), 0]; use [v, 1] to make rows distinguishable
        let rows: Vec<f32> = vals.iter().flat_map(|&v| [v, 1.0]).collect();
        Tensor::from_vec(rows, (vals.len(), 2), &Device::Cpu).unwrap()
    }

    fn first_col_ratio(q: &MocoQueue) -> Vec<f32> {
        // recovers v from the normalised [v, 1] rows
        q.tensor().to_vec2::<f32>().unwrap().iter().map(|r| (r[0] / r[1] * 100.0).round() / 100.0).collect()
    }

    #[test]
    fn queue_fifo_wraps_around_and_stores_unit_rows() {
        let dev = Device::Cpu;
        let mut q = MocoQueue::new(5, 2, &mut SeededRng::new(0), &dev).unwrap();
        assert!(q.is_empty() && !q.is_full());
        q.enqueue(&keys(&[1., 2.])).unwrap();
        q.enqueue(&keys(&[3., 4.])).unwrap();
        assert_eq!(&first_col_ratio(&q)[..4], &[1., 2., 3., 4.]);
        assert_eq!((q.len(), q.position()), (4, 4));
        // 5, 6, 7 wrap: row 4 ← 5, rows 0, 1 ← 6, 7 (1 and 2 were the oldest)
        q.enqueue(&keys(&[5., 6., 7.])).unwrap();
        assert_eq!(first_col_ratio(&q), vec![6., 7., 3., 4., 5.]);
        assert!(q.is_full() && q.position() == 2);
        q.enqueue(&keys(&[8., 9., 10., 11., 12.])).unwrap();
        assert_eq!(first_col_ratio(&q), vec![11., 12., 8., 9., 10.]);
        let norms: Vec<f32> = q.tensor().sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
        let fresh = MocoQueue::new(4, 3, &mut SeededRng::new(1), &dev).unwrap();
        let norms: Vec<f32> = fresh.tensor().sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
        // errors name the shapes
        assert!(q.enqueue(&keys(&[1.; 6])).unwrap_err().to_string().contains("[6, 2]"));
        assert!(q.enqueue(&Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap()).unwrap_err().to_string().contains("[2, 3]"));
        assert!(MocoQueue::new(0, 2, &mut SeededRng::new(0), &dev).is_err());
    }

    #[test]
    fn queue_keys_carry_no_gradient() {
        let dev = Device::Cpu;
        let w = Var::new(&[[1f32, 2.], [3., 4.]], &dev).unwrap();
        let mut q = MocoQueue::new(4, 2, &mut SeededRng::new(0), &dev).unwrap();
        let k = (w.as_tensor() * 2.0).unwrap();
        q.enqueue(&k).unwrap();
        let loss = (q.tensor().sum_all().unwrap() + w.as_tensor().sum_all().unwrap() * 0.0).unwrap();
        let g = loss.backward().unwrap();
        let gw = g.get(w.as_tensor()).map(|t| t.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()).unwrap_or(0.0);
        assert_eq!(gw, 0.0, "a loss on the queue must not reach the key encoder");
        let only_queue = q.tensor().sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(only_queue.get(w.as_tensor()).is_none());
    }
}
