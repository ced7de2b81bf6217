//! Masked-autoencoder (MAE) patches and random masking.
//!
//! [0] K. He, X. Chen, S. Xie, Y. Li, P. Dollár, R. Girshick, "Masked
//!     Autoencoders Are Scalable Vision Learners", 2021, arXiv:2111.06377, §3.
//! [1] github.com/facebookresearch/mae (`models_mae.py`: `patchify`,
//!     `unpatchify`, `random_masking`).
//!
//! ```text
//! patchify:  (B, C, H, W) → (B, N, p²·C),  N = (H/p)(W/p), each patch flattened as (p, p, C)
//! masking:   noise ~ U[0, 1)^{B×N};  shuffle = argsort(noise);  restore = argsort(shuffle)
//!            keep = shuffle[:, :n_keep],  n_keep = ⌊N (1 − ratio)⌋
//!            mask[b, restore[b, i]] = 1[i ≥ n_keep]      (1 = masked; i.e. mask = gather(m, restore))
//! ```
//!
//! The encoder sees only the kept patches; the decoder gets mask tokens in the
//! other places (un-shuffled with `restore`), and the loss is taken on masked
//! patches only.

use crate::rng::SeededRng;
use candle_core::{DType, Device, Result, Tensor};

pub use crate::nn::{patchify, unpatchify};

/// The random masking of one batch (see the header of `pretext/mae.rs`).
#[derive(Clone, Debug)]
pub struct MaeMask {
    /// Indices of the visible patches, in shuffled order, u32 `(B, n_keep)`.
    pub keep: Tensor,
    /// 1 where a patch is masked, 0 where visible, f32 `(B, N)`.
    pub mask: Tensor,
    /// The inverse of the shuffle, u32 `(B, N)`: position of patch `j` in the shuffled order.
    pub restore: Tensor,
    /// The shuffle itself (`argsort(noise)`), u32 `(B, N)`; `keep` is its first `n_keep` columns.
    pub shuffle: Tensor,
    /// Visible patches per image.
    pub n_keep: usize,
}

impl MaeMask {
    /// The visible tokens of `x`, in the order of `keep` (MAE's `x_masked`).
    ///
    /// # Shapes
    /// `x (B, N, D)` → `(B, n_keep, D)`.
    pub fn keep_tokens(&self, x: &Tensor) -> Result<Tensor> {
        let (kb, _) = self.keep.dims2()?;
        let (_, n) = self.mask.dims2()?;
        let &[b, xn, d] = x.dims() else {
            candle_core::bail!("MaeMask::keep_tokens expects tokens (B, N, D), got shape {:?}", x.dims());
        };
        if b != kb || xn != n {
            candle_core::bail!(
                "MaeMask::keep_tokens: tokens of shape {:?} do not match a mask of shape ({kb}, {n})",
                x.dims()
            );
        }
        let idx = self.keep.unsqueeze(2)?.broadcast_as((b, self.n_keep, d))?.contiguous()?;
        x.contiguous()?.gather(&idx, 1)
    }
}

/// MAE's per-sample random masking of `n` patches for `b` images: exactly
/// `n − n_keep` patches per image are masked, `n_keep = ⌊n (1 − ratio)⌋`
/// (with a 1e-9 tolerance, so that 0.3 of 10 keeps 7 despite rounding).
pub fn random_masking(b: usize, n: usize, ratio: f64, dev: &Device, rng: &mut SeededRng) -> Result<MaeMask> {
    if !(0.0..1.0).contains(&ratio) {
        candle_core::bail!("random_masking: ratio must be in [0, 1), got {ratio}");
    }
    if n == 0 {
        candle_core::bail!("random_masking: need at least one patch, got n = 0 (b = {b})");
    }
    let n_keep = ((n as f64) * (1.0 - ratio) + 1e-9).floor().max(1.0) as usize;
    let (mut keep, mut mask, mut restore, mut shuffle) =
        (Vec::with_capacity(b * n_keep), vec![0f32; b * n], vec![0u32; b * n], Vec::with_capacity(b * n));
    for i in 0..b {
        let noise: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
        let mut ids: Vec<u32> = (0..n as u32).collect();
        ids.sort_by(|&a, &c| noise[a as usize].total_cmp(&noise[c as usize]));
        for (pos, &j) in ids.iter().enumerate() {
            restore[i * n + j as usize] = pos as u32;
            if pos >= n_keep {
                mask[i * n + j as usize] = 1.0;
            }
        }
        keep.extend_from_slice(&ids[..n_keep]);
        shuffle.extend_from_slice(&ids);
    }
    Ok(MaeMask {
        keep: Tensor::from_vec(keep, (b, n_keep), dev)?,
        mask: Tensor::from_vec(mask, (b, n), dev)?.to_dtype(DType::F32)?,
        restore: Tensor::from_vec(restore, (b, n), dev)?,
        shuffle: Tensor::from_vec(shuffle, (b, n), dev)?,
        n_keep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::test_util::{max_diff, pattern, values};

    #[test]
    fn mae_patchify_layout_and_round_trip() {
        // import torch
        // x = torch.arange(8.).reshape(1, 2, 2, 2); p = 2; h = w = 1
        // x.reshape(1, 2, h, p, w, p); torch.einsum('nchpwq->nhwpqc', _).reshape(1, 1, 8)
        // -> [[[0., 4., 1., 5., 2., 6., 3., 7.]]]
        let x = Tensor::arange(0f32, 8.0, &Device::Cpu).unwrap().reshape((1, 2, 2, 2)).unwrap();
        assert_eq!(values(&patchify(&x, 2).unwrap()), vec![0., 4., 1., 5., 2., 6., 3., 7.]);
        let x = pattern(3, 3, 8, 12);
        let p = patchify(&x, 4).unwrap();
        assert_eq!(p.dims(), &[3, 6, 48]);
        // patch 1 (row 0, column 1) starts with x[0, :, 0, 4]
        let first: Vec<f32> = values(&p.narrow(0, 0, 1).unwrap().narrow(1, 1, 1).unwrap().narrow(2, 0, 3).unwrap());
        let want: Vec<f32> = (0..3).map(|c| values(&x.narrow(0, 0, 1).unwrap())[c * 96 + 4]).collect();
        assert_eq!(first, want);
        assert_eq!(max_diff(&unpatchify(&p, 4, (8, 12)).unwrap(), &x), 0.0);
        assert!(patchify(&x, 5).unwrap_err().to_string().contains("8×12"));
        assert!(unpatchify(&p, 4, (8, 8)).unwrap_err().to_string().contains("[3, 6, 48]"));
    }

    #[test]
    fn mae_random_masking_exact_ratio_partition_and_restore() {
        let (b, n) = (16, 49);
        let m = random_masking(b, n, 0.75, &Device::Cpu, &mut SeededRng::new(0)).unwrap();
        assert_eq!(m.n_keep, 12);
        assert_eq!(m.keep.dims(), &[16, 12]);
        let mask = m.mask.to_vec2::<f32>().unwrap();
        let keep = m.keep.to_vec2::<u32>().unwrap();
        let restore = m.restore.to_vec2::<u32>().unwrap();
        let shuffle = m.shuffle.to_vec2::<u32>().unwrap();
        for i in 0..b {
            assert_eq!(mask[i].iter().sum::<f32>(), 37.0, "exactly N − n_keep masked");
            // kept patches are exactly the unmasked ones: keep ∪ masked = all, disjoint
            let mut seen = vec![false; n];
            for &k in &keep[i] {
                assert_eq!(mask[i][k as usize], 0.0);
                seen[k as usize] = true;
            }
            for j in 0..n {
                assert_eq!(seen[j], mask[i][j] == 0.0);
                // restore inverts the shuffle
                assert_eq!(shuffle[i][restore[i][j] as usize], j as u32);
            }
        }
        // gathering the kept tokens
        let x = Tensor::arange(0f32, (b * n) as f32, &Device::Cpu).unwrap().reshape((b, n, 1)).unwrap();
        let kept = m.keep_tokens(&x.broadcast_as((b, n, 3)).unwrap().contiguous().unwrap()).unwrap();
        assert_eq!(kept.dims(), &[16, 12, 3]);
        assert_eq!(
            kept.get(2).unwrap().get(5).unwrap().to_vec1::<f32>().unwrap(),
            vec![(2 * n + keep[2][5] as usize) as f32; 3]
        );
        // same seed, same mask; ratios that round badly still give the exact count
        let m2 = random_masking(b, n, 0.75, &Device::Cpu, &mut SeededRng::new(0)).unwrap();
        assert_eq!(m2.keep.to_vec2::<u32>().unwrap(), keep);
        assert_eq!(random_masking(1, 10, 0.3, &Device::Cpu, &mut SeededRng::new(0)).unwrap().n_keep, 7);
        assert_eq!(random_masking(1, 100, 0.71, &Device::Cpu, &mut SeededRng::new(0)).unwrap().n_keep, 29);
        assert!(random_masking(1, 10, 1.0, &Device::Cpu, &mut SeededRng::new(0))
            .unwrap_err()
            .to_string()
            .contains("1"));
    }

    #[test]
    fn mae_masked_positions_are_uniform_over_a_large_batch() {
        let m = random_masking(4000, 16, 0.5, &Device::Cpu, &mut SeededRng::new(3)).unwrap();
        let rate = m.mask.mean(0).unwrap().to_vec1::<f32>().unwrap();
        assert!(rate.iter().all(|r| (r - 0.5).abs() < 0.04), "{rate:?}");
    }
}
