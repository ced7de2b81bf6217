//! Rotation prediction.
//!
//! [0] S. Gidaris, P. Singh, N. Komodakis, "Unsupervised Representation
//!     Learning by Predicting Image Rotations", ICLR 2018, arXiv:1803.07728.
//!
//! ```text
//! T(x) = (rot(x, 90°·y), y),  y ∈ {0, 1, 2, 3}
//! ```
//!
//! To tell an upright digit from an upside-down one, a network has to know
//! what digits look like: the label costs nothing, the knowledge does.

use candle_core::{DType, Result, Tensor};

/// Reverses a tensor along `dim` (`torch.flip(x, [dim])`).
pub fn flip(x: &Tensor, dim: usize) -> Result<Tensor> {
    let n = x.dim(dim)?;
    let idx: Vec<u32> = (0..n as u32).rev().collect();
    let idx = Tensor::from_vec(idx, n, x.device())?;
    x.contiguous()?.index_select(&idx, dim)
}

/// Rotates images by `k` × 90° counter-clockwise, as `torch.rot90(x, k, dims=(2, 3))`.
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C, W, H)` for odd `k`, `(B, C, H, W)` for even `k`.
pub fn rotate90(x: &Tensor, k: usize) -> Result<Tensor> {
    crate::nn::expect_rank(x, 4, "rotate90", "(B, C, H, W)")?;
    match k % 4 {
        0 => Ok(x.clone()),
        1 => flip(&x.transpose(2, 3)?, 2),
        2 => flip(&flip(x, 2)?, 3),
        _ => flip(&x.transpose(2, 3)?, 3),
    }
}

/// The rotation pretext batch: every image in all four rotations.
///
/// Returns `(x̃, y)` with `x̃ = [rot(x, 0°); rot(x, 90°); rot(x, 180°); rot(x, 270°)]`
/// and `y = [0…0, 1…1, 2…2, 3…3]` (u32).
///
/// # Shapes
/// `(B, C, S, S)` → `x̃ (4B, C, S, S)`, `y (4B,)`. Images must be square.
pub fn rotation_batch(x: &Tensor) -> Result<(Tensor, Tensor)> {
    crate::nn::expect_rank(x, 4, "rotation_batch", "(B, C, H, W)")?;
    let (b, _, h, w) = x.dims4()?;
    if h != w {
        candle_core::bail!("rotation_batch needs square images, got shape {:?}", x.dims());
    }
    let views = (0..4).map(|k| rotate90(x, k)).collect::<Result<Vec<_>>>()?;
    let xs = Tensor::cat(&views, 0)?;
    let y: Vec<u32> = (0..4u32).flat_map(|k| std::iter::repeat_n(k, b)).collect();
    let y = Tensor::from_vec(y, 4 * b, x.device())?;
    debug_assert_eq!(y.dtype(), DType::U32);
    Ok((xs, y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rotate90_matches_torch_rot90() {
        // torch.rot90(torch.arange(6.).reshape(1, 1, 2, 3), 1, dims=(2, 3))
        // -> [[[[2., 5.], [1., 4.], [0., 3.]]]]
        let x = Tensor::arange(0f32, 6.0, &Device::Cpu).unwrap().reshape((1, 1, 2, 3)).unwrap();
        let r1: Vec<Vec<f32>> = rotate90(&x, 1).unwrap().squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(r1, vec![vec![2., 5.], vec![1., 4.], vec![0., 3.]]);
        // torch.rot90(x, 2, dims=(2, 3)) -> [[[[5., 4., 3.], [2., 1., 0.]]]]
        let r2: Vec<Vec<f32>> = rotate90(&x, 2).unwrap().squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(r2, vec![vec![5., 4., 3.], vec![2., 1., 0.]]);
        // torch.rot90(x, 3, dims=(2, 3)) -> [[[[3., 0.], [4., 1.], [5., 2.]]]]
        let r3: Vec<Vec<f32>> = rotate90(&x, 3).unwrap().squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(r3, vec![vec![3., 0.], vec![4., 1.], vec![5., 2.]]);
    }

    #[test]
    fn rotation_batch_labels_and_rotating_back_restores_the_image() {
        let x = crate::data::shapes(3, 0).unwrap().images;
        let (xs, y) = rotation_batch(&x).unwrap();
        assert_eq!(xs.dims(), &[12, 1, 28, 28]);
        assert_eq!(y.to_vec1::<u32>().unwrap(), vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
        for k in 0..4 {
            let back = rotate90(&xs.narrow(0, 3 * k, 3).unwrap(), (4 - k) % 4).unwrap();
            let diff = (back - &x).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(diff, 0.0, "rotation {k}");
        }
        let rect = Tensor::zeros((1, 1, 2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(rotation_batch(&rect).unwrap_err().to_string().contains("square"));
    }
}
