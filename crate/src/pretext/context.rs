//! Context prediction: where is this patch relative to that one?
//!
//! [0] C. Doersch, A. Gupta, A. A. Efros, "Unsupervised Visual Representation
//!     Learning by Context Prediction", ICCV 2015, arXiv:1505.05192, §3.
//!
//! ```text
//! a 3×3 grid of p×p patches with gaps g, placed at a random origin (oy, ox):
//!   patch (r, c) = x[:, oy + r(p+g) : … + p,  ox + c(p+g) : … + p]
//! T(x) = ((patch(1,1), patch(1 + dr_y, 1 + dc_y)), y),   y ~ U{0..7}
//!
//! labels (dr, dc):   0 (−1,−1)  1 (−1, 0)  2 (−1,+1)
//!                    3 ( 0,−1)             4 ( 0,+1)
//!                    5 (+1,−1)  6 (+1, 0)  7 (+1,+1)
//! ```
//!
//! The gap keeps the network from matching edges; [0] also jitters each patch
//! by up to 7 pixels and drops colour channels against chromatic aberration —
//! neither is done here.

use crate::rng::SeededRng;
use candle_core::{DType, Result, Tensor};

/// The `(row, column)` step of the neighbour for each label, in units of patch + gap.
pub const NEIGHBOUR_OFFSETS: [(isize, isize); 8] =
    [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)];

/// Cuts a centre patch and one of its 8 neighbours from each image.
///
/// Returns `(center, neighbour, labels)`; the neighbour lies at
/// [`NEIGHBOUR_OFFSETS`]`[label]` × `(patch + gap)` pixels from the centre patch;
/// labels are u32 in `0..8`, drawn uniformly.
///
/// # Shapes
/// `x (B, C, H, W)` with `H, W ≥ 3·patch + 2·gap` → `center (B, C, patch, patch)`,
/// `neighbour (B, C, patch, patch)`, `labels (B,)`.
pub fn relative_patch_pairs(
    x: &Tensor,
    patch: usize,
    gap: usize,
    rng: &mut SeededRng,
) -> Result<(Tensor, Tensor, Tensor)> {
    let &[b, c, h, w] = x.dims() else {
        candle_core::bail!("relative_patch_pairs expects images (B, C, H, W), got shape {:?}", x.dims());
    };
    let extent = 3 * patch + 2 * gap;
    if patch == 0 || h < extent || w < extent {
        candle_core::bail!(
            "relative_patch_pairs: a 3×3 grid of {patch}-pixel patches with gap {gap} needs images of at least \
             {extent}×{extent} (and patch > 0), got shape {:?}",
            x.dims()
        );
    }
    let data = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let n = c * patch * patch;
    let (mut center, mut neigh) = (vec![0f32; b * n], vec![0f32; b * n]);
    let mut labels = Vec::with_capacity(b);
    let step = patch + gap;
    let cut = |out: &mut [f32], i: usize, y0: usize, x0: usize| {
        for ch in 0..c {
            for r in 0..patch {
                let s = ((i * c + ch) * h + y0 + r) * w + x0;
                out[(ch * patch + r) * patch..][..patch].copy_from_slice(&data[s..s + patch]);
            }
        }
    };
    for i in 0..b {
        let (oy, ox) = (rng.below(h - extent + 1), rng.below(w - extent + 1));
        let y = rng.below(8);
        labels.push(y as u32);
        let (dr, dc) = NEIGHBOUR_OFFSETS[y];
        cut(&mut center[i * n..(i + 1) * n], i, oy + step, ox + step);
        let (ny, nx) =
            ((oy as isize + (1 + dr) * step as isize) as usize, (ox as isize + (1 + dc) * step as isize) as usize);
        cut(&mut neigh[i * n..(i + 1) * n], i, ny, nx);
    }
    let dev = x.device();
    Ok((
        Tensor::from_vec(center, (b, c, patch, patch), dev)?.to_dtype(x.dtype())?,
        Tensor::from_vec(neigh, (b, c, patch, patch), dev)?.to_dtype(x.dtype())?,
        Tensor::from_vec(labels, b, dev)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn context_neighbour_is_cut_where_the_label_says() {
        // every pixel holds its own position: x[b, c, y, x] = y·W + x
        let (b, c, h, w) = (400, 2, 20, 23);
        let v: Vec<f32> = (0..b * c * h * w).map(|i| (i % (h * w)) as f32).collect();
        let x = Tensor::from_vec(v, (b, c, h, w), &Device::Cpu).unwrap();
        let (patch, gap) = (4, 2);
        let (ce, ne, y) = relative_patch_pairs(&x, patch, gap, &mut SeededRng::new(0)).unwrap();
        assert_eq!(ce.dims(), &[400, 2, 4, 4]);
        let (cv, nv) =
            (ce.flatten_all().unwrap().to_vec1::<f32>().unwrap(), ne.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let ys = y.to_vec1::<u32>().unwrap();
        let mut counts = [0usize; 8];
        for i in 0..b {
            let (c0, n0) = (cv[i * 32] as isize, nv[i * 32] as isize);
            let (cy, cx, ny, nx) = (c0 / w as isize, c0 % w as isize, n0 / w as isize, n0 % w as isize);
            let step = (patch + gap) as isize;
            assert_eq!(((ny - cy) / step, (nx - cx) / step), NEIGHBOUR_OFFSETS[ys[i] as usize]);
            assert_eq!(((ny - cy) % step, (nx - cx) % step), (0, 0));
            // patches are contiguous squares, the same in both channels
            assert_eq!(nv[i * 32 + 5] as isize, n0 + w as isize + 1);
            assert_eq!(nv[i * 32 + 16..i * 32 + 32], nv[i * 32..i * 32 + 16]);
            counts[ys[i] as usize] += 1;
        }
        assert!(counts.iter().all(|&k| (25..=75).contains(&k)), "{counts:?}");
        let (_, _, y2) = relative_patch_pairs(&x, patch, gap, &mut SeededRng::new(0)).unwrap();
        assert_eq!(y2.to_vec1::<u32>().unwrap(), ys);
        let e = relative_patch_pairs(&x, 7, 2, &mut SeededRng::new(0)).unwrap_err().to_string();
        assert!(e.contains("25×25") && e.contains("[400, 2, 20, 23]"), "{e}");
    }
}
