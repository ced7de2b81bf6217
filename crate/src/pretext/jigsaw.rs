//! Jigsaw puzzles: cut an image into a grid of tiles, shuffle them with one of
//! a fixed set of permutations, and ask which permutation it was.
//!
//! [0] M. Noroozi, P. Favaro, "Unsupervised Learning of Visual Representations
//!     by Solving Jigsaw Puzzles", ECCV 2016, arXiv:1603.09246, §3 and
//!     algorithm 1 (maximal-Hamming-distance permutation set).
//! [1] github.com/bbrattoli/JigsawPuzzlePytorch (`select_permutations.py`).
//!
//! ```text
//! tiles  t₀ … t_{g²−1} of x (row-major),   y ~ U{0..N−1},   π = P[y]
//! T(x) = ([t_{π(0)}, …, t_{π(g²−1)}], y)
//!
//! algorithm 1:  P ← {random permutation}
//!               repeat: add argmax_{q ∉ P} Σ_{p ∈ P} Hamming(p, q)   until |P| = N
//!               (ties to the first candidate in lexicographic order, as numpy argmax)
//! ```
//!
//! The paper uses 9 tiles (g = 3) and N = 100 to 1000 permutations, and a gap
//! between tiles (random 64-pixel crops of 75-pixel cells) so the network cannot
//! match edges; here tiles touch (crop them yourself for a gap). For g ≤ 3 the
//! candidates are all g²! permutations (9! = 362 880); for g ≥ 4 they are
//! 20 000 random permutations. Rows and columns beyond `g · ⌊H/g⌋` are dropped.

use crate::rng::SeededRng;
use candle_core::{Result, Tensor};

const RANDOM_CANDIDATES: usize = 20_000;

/// A jigsaw pretext task with a fixed permutation set.
#[derive(Clone, Debug)]
pub struct JigsawTask {
    grid: usize,
    permutations: Vec<Vec<usize>>,
    min_hamming: usize,
}

fn hamming(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| u32::from(x != y)).sum()
}

/// All permutations of `0..k` in lexicographic order (as Python's
/// `itertools.permutations(range(k))`), flattened.
fn all_permutations(k: usize) -> Vec<u8> {
    let mut a: Vec<u8> = (0..k as u8).collect();
    let mut out = a.clone();
    loop {
        // next permutation: rightmost ascent a[i] < a[i+1], swap with the rightmost larger, reverse the tail
        let Some(i) = (0..k.saturating_sub(1)).rev().find(|&i| a[i] < a[i + 1]) else {
            return out;
        };
        let j = (i + 1..k).rev().find(|&j| a[j] > a[i]).unwrap_or(i + 1);
        a.swap(i, j);
        a[i + 1..].reverse();
        out.extend_from_slice(&a);
    }
}

/// Algorithm 1 of \[0] on the flattened candidates `cands` (each of length
/// `k`), starting from candidate `first`: returns the chosen candidate indices.
fn greedy_max_hamming(cands: &[u8], k: usize, first: usize, n: usize) -> Vec<usize> {
    let n_cand = cands.len() / k;
    let cand = |i: usize| &cands[i * k..(i + 1) * k];
    let mut taken = vec![false; n_cand];
    let mut dist_sum = vec![0u32; n_cand]; // D̄ = 1ᵀD, kept up to date incrementally
    let mut chosen = Vec::with_capacity(n);
    let mut j = first;
    loop {
        taken[j] = true;
        chosen.push(j);
        if chosen.len() >= n {
            return chosen;
        }
        let pj = cand(j);
        let mut best = (0u32, usize::MAX);
        for q in 0..n_cand {
            if taken[q] {
                continue;
            }
            dist_sum[q] += hamming(pj, cand(q));
            if best.1 == usize::MAX || dist_sum[q] > best.0 {
                best = (dist_sum[q], q);
            }
        }
        j = best.1;
    }
}

impl JigsawTask {
    /// A `grid × grid` puzzle with `n_permutations` permutations chosen by the
    /// greedy maximal-Hamming-distance algorithm 1 of \[0] (first pick random,
    /// ties to the first candidate).
    pub fn new(grid: usize, n_permutations: usize, rng: &mut SeededRng) -> Result<Self> {
        if !(2..=15).contains(&grid) {
            candle_core::bail!("JigsawTask::new: grid must be in 2..=15, got {grid}");
        }
        let k = grid * grid;
        let cands: Vec<u8> = if grid <= 3 {
            all_permutations(k)
        } else {
            (0..RANDOM_CANDIDATES).flat_map(|_| rng.permutation(k).into_iter().map(|v| v as u8)).collect()
        };
        let n_cand = cands.len() / k;
        if n_permutations == 0 || n_permutations > n_cand {
            candle_core::bail!(
                "JigsawTask::new: n_permutations must be in 1..={n_cand} for a {grid}×{grid} grid, got {n_permutations}"
            );
        }
        let cand = |i: usize| &cands[i * k..(i + 1) * k];
        let chosen = greedy_max_hamming(&cands, k, rng.below(n_cand), n_permutations);
        let permutations: Vec<Vec<usize>> =
            chosen.iter().map(|&i| cand(i).iter().map(|&v| usize::from(v)).collect()).collect();
        let mut min_hamming = usize::MAX;
        for a in 0..chosen.len() {
            for b in a + 1..chosen.len() {
                min_hamming = min_hamming.min(hamming(cand(chosen[a]), cand(chosen[b])) as usize);
            }
        }
        if chosen.len() == 1 {
            min_hamming = k;
        }
        Ok(Self { grid, permutations, min_hamming })
    }

    /// Tiles per side.
    pub fn grid(&self) -> usize {
        self.grid
    }

    /// The permutation set: `permutations()[y][p]` is the original index of
    /// the tile shown at position `p` for label `y`.
    pub fn permutations(&self) -> &[Vec<usize>] {
        &self.permutations
    }

    /// The smallest Hamming distance between two permutations of the set
    /// (`grid²` for a set of one).
    pub fn min_hamming_distance(&self) -> usize {
        self.min_hamming
    }

    /// Cuts each image into tiles and shuffles them with a random permutation of the set.
    ///
    /// Returns `(tiles, labels)`: `tiles[b, p]` is original tile `π(p)` of image
    /// `b` with `π = permutations()[labels[b]]`; labels are u32.
    ///
    /// # Shapes
    /// `x (B, C, H, W)` → `tiles (B, g², C, ⌊H/g⌋, ⌊W/g⌋)`, `labels (B,)`.
    pub fn apply(&self, x: &Tensor, rng: &mut SeededRng) -> Result<(Tensor, Tensor)> {
        let &[b, c, h, w] = x.dims() else {
            candle_core::bail!("JigsawTask::apply expects images (B, C, H, W), got shape {:?}", x.dims());
        };
        let g = self.grid;
        let (th, tw) = (h / g, w / g);
        if th == 0 || tw == 0 || c == 0 {
            candle_core::bail!(
                "JigsawTask::apply: a {g}×{g} grid needs images of at least {g}×{g} pixels, got shape {:?}",
                x.dims()
            );
        }
        let data = x.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let k = g * g;
        let mut out = vec![0f32; b * k * c * th * tw];
        let mut labels = Vec::with_capacity(b);
        let tile = c * th * tw;
        for i in 0..b {
            let y = rng.below(self.permutations.len());
            labels.push(y as u32);
            for (p, &src) in self.permutations[y].iter().enumerate() {
                let (ty, tx) = (src / g, src % g);
                let dst = &mut out[(i * k + p) * tile..(i * k + p + 1) * tile];
                for ch in 0..c {
                    for r in 0..th {
                        let s = ((i * c + ch) * h + ty * th + r) * w + tx * tw;
                        dst[(ch * th + r) * tw..(ch * th + r + 1) * tw].copy_from_slice(&data[s..s + tw]);
                    }
                }
            }
        }
        let tiles = Tensor::from_vec(out, (b, k, c, th, tw), x.device())?.to_dtype(x.dtype())?;
        Ok((tiles, Tensor::from_vec(labels, b, x.device())?))
    }

    /// Puts tiles back in place, undoing the permutation of each image's label:
    /// `assemble(apply(x)) = x` (cropped to whole tiles).
    ///
    /// # Shapes
    /// `tiles (B, g², C, h, w)`, `labels (B,)` u32 → `(B, C, g·h, g·w)`.
    pub fn assemble(&self, tiles: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let ys = labels.to_vec1::<u32>()?;
        let orders = ys
            .iter()
            .map(|&y| {
                let perm = self.permutations.get(y as usize).ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "JigsawTask::assemble: label {y} is not below the {} permutations",
                        self.permutations.len()
                    ))
                })?;
                // position of original tile s is inv[s]
                let mut inv = vec![0; perm.len()];
                perm.iter().enumerate().for_each(|(p, &s)| inv[s] = p);
                Ok(inv)
            })
            .collect::<Result<Vec<_>>>()?;
        self.lay_out(tiles, &orders, "assemble")
    }

    /// Lays the tiles out in the order given, without unshuffling (the puzzle as
    /// the network sees it, for display).
    ///
    /// # Shapes
    /// `tiles (B, g², C, h, w)` → `(B, C, g·h, g·w)`.
    pub fn tile_grid(&self, tiles: &Tensor) -> Result<Tensor> {
        let b = tiles.dims().first().copied().unwrap_or(0);
        let id: Vec<usize> = (0..self.grid * self.grid).collect();
        self.lay_out(tiles, &vec![id; b], "tile_grid")
    }

    /// Output image cell `s` (row-major) takes tile `order[b][s]`.
    fn lay_out(&self, tiles: &Tensor, order: &[Vec<usize>], what: &str) -> Result<Tensor> {
        let g = self.grid;
        let k = g * g;
        let &[b, kk, c, th, tw] = tiles.dims() else {
            candle_core::bail!("JigsawTask::{what} expects tiles (B, {k}, C, h, w), got shape {:?}", tiles.dims());
        };
        if kk != k || b != order.len() {
            candle_core::bail!(
                "JigsawTask::{what} expects tiles (B, {k}, C, h, w) and B labels, got shape {:?} and {} labels",
                tiles.dims(),
                order.len()
            );
        }
        let data = tiles.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let (h, w) = (g * th, g * tw);
        let mut out = vec![0f32; b * c * h * w];
        let tile = c * th * tw;
        for i in 0..b {
            for s in 0..k {
                let (ty, tx) = (s / g, s % g);
                let src = &data[(i * k + order[i][s]) * tile..][..tile];
                for ch in 0..c {
                    for r in 0..th {
                        let d = ((i * c + ch) * h + ty * th + r) * w + tx * tw;
                        out[d..d + tw].copy_from_slice(&src[(ch * th + r) * tw..][..tw]);
                    }
                }
            }
        }
        Tensor::from_vec(out, (b, c, h, w), tiles.device())?.to_dtype(tiles.dtype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::test_util::{max_diff, pattern, values};

    #[test]
    fn jigsaw_assemble_undoes_the_shuffle() {
        let task = JigsawTask::new(3, 10, &mut SeededRng::new(0)).unwrap();
        let x = pattern(5, 3, 30, 31); // 31 columns: the last one is dropped
        let (tiles, y) = task.apply(&x, &mut SeededRng::new(1)).unwrap();
        assert_eq!(tiles.dims(), &[5, 9, 3, 10, 10]);
        let back = task.assemble(&tiles, &y).unwrap();
        assert_eq!(max_diff(&back, &x.narrow(3, 0, 30).unwrap()), 0.0);
        // the shuffled layout differs from the original unless the permutation is the identity
        let shown = task.tile_grid(&tiles).unwrap();
        assert!(max_diff(&shown, &back) > 0.0);
        // tile p of image b is original tile perm[p]
        let ys = y.to_vec1::<u32>().unwrap();
        let p0 = task.permutations()[ys[0] as usize][0];
        let (ty, tx) = (p0 / 3, p0 % 3);
        let want = x.narrow(0, 0, 1).unwrap().narrow(2, ty * 10, 10).unwrap().narrow(3, tx * 10, 10).unwrap();
        let got = tiles.narrow(0, 0, 1).unwrap().narrow(1, 0, 1).unwrap().squeeze(1).unwrap();
        assert_eq!(max_diff(&got, &want), 0.0);
        // same seed, same output
        let (t2, y2) = task.apply(&x, &mut SeededRng::new(1)).unwrap();
        assert_eq!((values(&t2), y2.to_vec1::<u32>().unwrap()), (values(&tiles), ys));
    }

    #[test]
    fn jigsaw_permutation_set_is_distinct_and_far_apart() {
        let task = JigsawTask::new(3, 30, &mut SeededRng::new(0)).unwrap();
        let ps = task.permutations();
        assert_eq!(ps.len(), 30);
        for p in ps {
            let mut s = p.clone();
            s.sort();
            assert_eq!(s, (0..9).collect::<Vec<_>>());
        }
        let set: std::collections::BTreeSet<_> = ps.iter().collect();
        assert_eq!(set.len(), 30);
        // Algorithm 1 maximises the *sum* of distances to the set, which does not
        // keep the minimum high: the set can hold near neighbours.
        let d = task.min_hamming_distance();
        println!("jigsaw 3×3, 30 permutations: min Hamming distance {d}");
        assert!((2..=9).contains(&d), "{d}");
        let mean = ps
            .iter()
            .enumerate()
            .flat_map(|(i, a)| ps[i + 1..].iter().map(move |b| a.iter().zip(b).filter(|(x, y)| x != y).count() as f64))
            .sum::<f64>()
            / (30.0 * 29.0 / 2.0);
        assert!(mean > 8.0, "mean pairwise distance {mean} should beat random permutations' 8");
        // a set of two: the second is a derangement of the first
        assert_eq!(JigsawTask::new(3, 2, &mut SeededRng::new(9)).unwrap().min_hamming_distance(), 9);
        // labels are uniform over the set
        let (_, y) = task.apply(&pattern(3000, 1, 3, 3), &mut SeededRng::new(2)).unwrap();
        let mut counts = [0usize; 30];
        y.to_vec1::<u32>().unwrap().iter().for_each(|&v| counts[v as usize] += 1);
        assert!(counts.iter().all(|&c| (60..=140).contains(&c)), "{counts:?}");
        // 2×2: all 24 permutations available
        assert_eq!(JigsawTask::new(2, 24, &mut SeededRng::new(0)).unwrap().permutations().len(), 24);
        let e = JigsawTask::new(2, 25, &mut SeededRng::new(0)).unwrap_err().to_string();
        assert!(e.contains("1..=24") && e.contains("25"), "{e}");
        let big = JigsawTask::new(4, 5, &mut SeededRng::new(0)).unwrap();
        assert!(big.min_hamming_distance() >= 12, "{}", big.min_hamming_distance());
    }

    #[test]
    fn jigsaw_greedy_matches_the_reference_algorithm() {
        // import itertools, numpy as np
        // P_hat = np.array(list(itertools.permutations(range(9))), dtype=np.int8)
        // alive = np.ones(len(P_hat), bool); dsum = np.zeros(len(P_hat), np.int64)
        // j = 0; chosen = []
        // for i in range(10):
        //     chosen.append(j); alive[j] = False
        //     dsum += (P_hat != P_hat[j]).sum(1)          # D̄ = 1ᵀD of algorithm 1
        //     j = int(np.where(alive, dsum, -1).argmax())
        // chosen -> [0, 41067, 90784, 131853, 184896, 225981, 276993, 321802, 356220, 1]
        // min pairwise Hamming distance of P_hat[chosen] -> 2
        let cands = all_permutations(9);
        assert_eq!(cands.len(), 362_880 * 9);
        assert_eq!(&cands[9..18], &[0, 1, 2, 3, 4, 5, 6, 8, 7]);
        let chosen = greedy_max_hamming(&cands, 9, 0, 10);
        assert_eq!(chosen, vec![0, 41067, 90784, 131853, 184896, 225981, 276993, 321802, 356220, 1]);
    }

    #[test]
    fn jigsaw_rejects_bad_shapes() {
        let task = JigsawTask::new(3, 4, &mut SeededRng::new(0)).unwrap();
        let e = task.apply(&pattern(1, 1, 2, 9), &mut SeededRng::new(0)).unwrap_err().to_string();
        assert!(e.contains("[1, 1, 2, 9]"), "{e}");
        let e = task.assemble(&pattern(1, 4, 2, 2), &Tensor::new(&[0u32], &candle_core::Device::Cpu).unwrap());
        assert!(e.unwrap_err().to_string().contains("[1, 4, 2, 2]"));
        assert!(JigsawTask::new(1, 1, &mut SeededRng::new(0)).is_err());
    }
}
