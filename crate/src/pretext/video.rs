//! Frame-order prediction on videos `(B, F, C, H, W)`.
//!
//! [0] H.-Y. Lee, J.-B. Huang, M. Singh, M.-H. Yang, "Unsupervised
//!     Representation Learning by Sorting Sequences", ICCV 2017,
//!     arXiv:1708.01246, §3.1 (order prediction network).
//! [1] I. Misra, C. L. Zitnick, M. Hebert, "Shuffle and Learn: Unsupervised
//!     Learning using Temporal Order Verification", ECCV 2016, arXiv:1603.08561.
//!
//! A tuple of `n` frames is shuffled by one of the `n!` orders and the model
//! predicts which. An order and its reverse form one class, because many
//! actions look natural both forwards and backwards [0]: `n!/2` classes
//! (12 for `n = 4`, as in [0]).
//!
//! ```text
//! T(v) = ((v_{s+π(0)}, …, v_{s+π(n−1)}), y)   π ∈ {P_y, reverse(P_y)},  P = frame_order_permutations(n)
//! ```

use crate::rng::SeededRng;
use candle_core::{IndexOp, Result, Tensor};

/// The classes of frame-order prediction: the orders of `0..n` with
/// `p[0] < p[n−1]`, in lexicographic order. Each stands for itself and its
/// reverse, so there are `n!/2` of them. `n` must be in `3..=8`.
///
/// ```
/// let p = sslab::pretext::frame_order_permutations(3)?;
/// assert_eq!(p, vec![vec![0, 1, 2], vec![0, 2, 1], vec![1, 0, 2]]);
/// assert_eq!(sslab::pretext::frame_order_permutations(4)?.len(), 12);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn frame_order_permutations(n: usize) -> Result<Vec<Vec<usize>>> {
    if !(3..=8).contains(&n) {
        candle_core::bail!("frame_order_permutations: n must be in 3..=8 (n!/2 classes), got {n}");
    }
    let mut out = Vec::new();
    let mut p: Vec<usize> = (0..n).collect();
    loop {
        if p[0] < p[n - 1] {
            out.push(p.clone());
        }
        if !next_permutation(&mut p) {
            return Ok(out);
        }
    }
}

/// Steps `p` to the next permutation in lexicographic order; `false` after the last.
fn next_permutation(p: &mut [usize]) -> bool {
    let Some(i) = (1..p.len()).rev().find(|&i| p[i - 1] < p[i]) else {
        return false;
    };
    let j = (i..p.len()).rev().find(|&j| p[j] > p[i - 1]).unwrap_or(i);
    p.swap(i - 1, j);
    p[i..].reverse();
    true
}

/// Shuffled frame tuples and their order classes: see [`frame_order`].
#[derive(Clone, Debug)]
pub struct FrameOrder {
    /// The shuffled frames `(B, n, C, H, W)`.
    pub frames: Tensor,
    /// The order class of each tuple (an index into
    /// [`frame_order_permutations`]`(n)`), u32 `(B,)`.
    pub labels: Tensor,
    /// The first frame `s` of each tuple in the video.
    pub starts: Vec<usize>,
    /// The order applied: frame `j` of a tuple is frame `s + orders[b][j]` of the video
    /// (the class's permutation or its reverse).
    pub orders: Vec<Vec<usize>>,
}

/// Frame-order prediction \[0\]: from each video, `n_frames` consecutive
/// frames from a random start, put in the order of a uniformly drawn class of
/// [`frame_order_permutations`] — the class's permutation or, with
/// probability ½, its reverse.
///
/// # Shapes
/// `video (B, F, C, H, W)` → `frames (B, n_frames, C, H, W)`, `labels (B,)`.
pub fn frame_order(video: &Tensor, n_frames: usize, rng: &mut SeededRng) -> Result<FrameOrder> {
    crate::nn::expect_rank(video, 5, "frame_order", "(B, F, C, H, W)")?;
    let (b, f) = (video.dim(0)?, video.dim(1)?);
    if n_frames > f || b == 0 {
        candle_core::bail!(
            "frame_order: need B ≥ 1 videos of at least n_frames = {n_frames} frames, got shape {:?}",
            video.dims()
        );
    }
    let perms = frame_order_permutations(n_frames)?;
    let mut tuples = Vec::with_capacity(b);
    let mut labels = Vec::with_capacity(b);
    let mut starts = Vec::with_capacity(b);
    let mut orders = Vec::with_capacity(b);
    for i in 0..b {
        let s = rng.below(f - n_frames + 1);
        let class = rng.below(perms.len());
        let mut order = perms[class].clone();
        if rng.bernoulli(0.5) {
            order.reverse();
        }
        let idx: Vec<u32> = order.iter().map(|&j| (s + j) as u32).collect();
        let idx = Tensor::from_vec(idx, n_frames, video.device())?;
        tuples.push(video.i(i)?.contiguous()?.index_select(&idx, 0)?);
        labels.push(class as u32);
        starts.push(s);
        orders.push(order);
    }
    Ok(FrameOrder {
        frames: Tensor::stack(&tuples, 0)?,
        labels: Tensor::from_vec(labels, b, video.device())?,
        starts,
        orders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn frame_order_permutations_pair_each_order_with_its_reverse() {
        for n in 3..=5 {
            let p = frame_order_permutations(n).unwrap();
            let fact: usize = (1..=n).product();
            assert_eq!(p.len(), fact / 2);
            // every order of 0..n is a class or the reverse of exactly one class
            let mut all: Vec<Vec<usize>> = p.iter().flat_map(|q| [q.clone(), q.iter().rev().copied().collect()]).collect();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), fact);
        }
        assert!(frame_order_permutations(2).is_err() && frame_order_permutations(9).is_err());
    }

    #[test]
    fn frame_order_undoing_the_permutation_recovers_the_frames() {
        // frame f of video b is filled with the value 100 b + f
        let (b, f, h) = (64, 7, 3);
        let v: Vec<f32> = (0..b * f * h * h).map(|k| (100 * (k / (f * h * h)) + (k / (h * h)) % f) as f32).collect();
        let video = Tensor::from_vec(v, (b, f, 1, h, h), &Device::Cpu).unwrap();
        let mut rng = SeededRng::new(0);
        let out = frame_order(&video, 4, &mut rng).unwrap();
        assert_eq!(out.frames.dims(), &[b, 4, 1, h, h]);
        let perms = frame_order_permutations(4).unwrap();
        let labels = out.labels.to_vec1::<u32>().unwrap();
        let frames: Vec<f32> = out.frames.flatten_all().unwrap().to_vec1().unwrap();
        let mut reversed = 0;
        for i in 0..b {
            let order = &out.orders[i];
            let class = &perms[labels[i] as usize];
            let rev: Vec<usize> = class.iter().rev().copied().collect();
            assert!(order == class || *order == rev);
            reversed += usize::from(*order == rev);
            // shown frame j holds video frame s + order[j]; put it back at position order[j]
            let shown: Vec<f32> = (0..4).map(|j| frames[(i * 4 + j) * h * h]).collect();
            let mut restored = [0f32; 4];
            for (j, &o) in order.iter().enumerate() {
                restored[o] = shown[j];
            }
            let want: Vec<f32> = (0..4).map(|j| (100 * i + out.starts[i] + j) as f32).collect();
            assert_eq!(restored.to_vec(), want);
            assert!(out.starts[i] + 4 <= f);
        }
        assert!((16..=48).contains(&reversed), "{reversed}");
        assert!(labels.iter().any(|&l| l != labels[0]));
        assert!(frame_order(&video, 8, &mut rng).is_err());
        assert!(frame_order(&video.i(0).unwrap(), 4, &mut rng).unwrap_err().to_string().contains("(B, F, C, H, W)"));
    }
}
