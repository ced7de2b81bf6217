//! Row normalisation and cosine similarities shared by the losses.
//!
//! ```text
//! normalize(x) = x / max(‖x‖₂, 1e-12)          (torch.nn.functional.normalize)
//! S[i, j]      = normalize(a)ᵢ · normalize(b)ⱼ  (cosine similarity matrix)
//! ```

use candle_core::{Result, Tensor, D};

pub use crate::nn::l2_normalize;
pub(crate) use crate::nn::normalize_eps;

/// Row-wise cosine similarity as `torch.nn.functional.cosine_similarity(a, b, dim=1)`:
/// `a·b / (max(‖a‖, 1e-8) · max(‖b‖, 1e-8))`. Shapes are checked by the caller.
///
/// `(B, D), (B, D)` → `(B,)`.
pub(crate) fn row_cosine(a: &Tensor, b: &Tensor, fname: &str) -> Result<Tensor> {
    let a = normalize_eps(a, 1e-8, fname)?;
    let b = normalize_eps(b, 1e-8, fname)?;
    (a * b)?.sum(D::Minus1)
}

/// Cosine similarity of every row of `a` with every row of `b`:
/// `S[i, j] = cos(aᵢ, bⱼ)`, rows normalised as in [`l2_normalize`].
///
/// # Shapes
/// `a (N, D)`, `b (M, D)` → `(N, M)`.
///
/// # Errors
/// If either input is not rank 2 or the feature dimensions differ.
pub fn cosine_similarity_matrix(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match (a.dims(), b.dims()) {
        (&[_, d], &[_, d2]) if d == d2 => {}
        (ad, bd) => candle_core::bail!(
            "cosine_similarity_matrix expects a (N, D) and b (M, D) with the same D, got {ad:?} and {bd:?}"
        ),
    }
    l2_normalize(a)?.matmul(&l2_normalize(b)?.t()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn l2_normalize_matches_torch_and_keeps_zero_rows() {
        // F.normalize(torch.tensor([[3., 4.], [0., 0.], [1e-13, 0.]]), dim=-1)
        // -> [[0.6, 0.8], [0., 0.], [0.1, 0.]]   (1e-13 / max(1e-13, 1e-12))
        let x = Tensor::new(&[[3f32, 4.], [0., 0.], [1e-13, 0.]], &Device::Cpu).unwrap();
        let y = l2_normalize(&x).unwrap().to_vec2::<f32>().unwrap();
        let want = [[0.6f32, 0.8], [0., 0.], [0.1, 0.]];
        for (r, w) in y.iter().zip(want) {
            for (a, b) in r.iter().zip(w) {
                assert!((a - b).abs() < 1e-6, "{y:?}");
            }
        }
        // rank 3 works along the last dim
        let z = l2_normalize(&Tensor::ones((2, 3, 4), DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert!((z.sum_all().unwrap().to_scalar::<f32>().unwrap() - 12.0).abs() < 1e-5);
        let err = l2_normalize(&Tensor::new(1f32, &Device::Cpu).unwrap()).unwrap_err().to_string();
        assert!(err.contains("l2_normalize") && err.contains("[]"), "{err}");
    }

    /// An all-zero row (a dead unit, an all-black image's embedding) has a
    /// finite loss and finite gradients, as in PyTorch, whose norm backward
    /// is 0 at a zero norm:
    /// ```python
    /// x = torch.tensor([[3., 4.], [0., 0.]], requires_grad=True)
    /// F.normalize(x, dim=-1).sum().backward()   # x.grad: [[0.032, -0.024], [1e12, 1e12]]
    /// ```
    #[test]
    fn zero_rows_have_finite_gradients() {
        let x = candle_core::Var::from_tensor(&Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu).unwrap()).unwrap();
        let grads = l2_normalize(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert!(g.iter().flatten().all(|v| v.is_finite()), "{g:?}");
        assert!((g[0][0] - 0.032).abs() < 1e-6 && (g[0][1] + 0.024).abs() < 1e-6, "{g:?}");
        assert!((g[1][0] / 1e12 - 1.0).abs() < 1e-3 && (g[1][1] / 1e12 - 1.0).abs() < 1e-3, "{g:?}");
        // through a contrastive loss (row_cosine's eps 1e-8 and l2_normalize's 1e-12)
        let z = candle_core::Var::from_tensor(&Tensor::new(&[[1f32, 0.], [0., 0.], [0.5, 0.5], [0., 1.]], &Device::Cpu).unwrap()).unwrap();
        let (a, b) = (z.as_tensor().narrow(0, 0, 2).unwrap(), z.as_tensor().narrow(0, 2, 2).unwrap());
        for loss in [crate::loss::nt_xent(&a, &b, 0.5).unwrap(), crate::loss::negative_cosine(&a, &b).unwrap()] {
            let g = loss.backward().unwrap().get(z.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(loss.to_scalar::<f32>().unwrap().is_finite() && g.iter().all(|v| v.is_finite()), "{g:?}");
        }
    }

    #[test]
    fn l2_normalize_cosine_similarity_matrix_values_and_errors() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1f32, 0.], [1., 1.]], &dev).unwrap();
        let b = Tensor::new(&[[2f32, 0.], [0., 3.], [-1., -1.]], &dev).unwrap();
        let s = cosine_similarity_matrix(&a, &b).unwrap().to_vec2::<f32>().unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let want = [[1.0, 0.0, -h], [h, h, -1.0]];
        for (r, w) in s.iter().zip(want) {
            for (x, y) in r.iter().zip(w) {
                assert!((x - y).abs() < 1e-6, "{s:?}");
            }
        }
        let err = cosine_similarity_matrix(&a, &Tensor::zeros((3, 4), DType::F32, &dev).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cosine_similarity_matrix") && err.contains("[2, 2]") && err.contains("[3, 4]"), "{err}");
    }
}
