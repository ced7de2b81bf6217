//! Shared test helpers: deterministic inputs written identically in Python,
//! tolerant comparison and gradient extraction.

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};

/// `sin(a·k + b)` (or `cos`) for `k = 0..n`, reshaped; in Python:
/// `torch.sin(a * torch.arange(n, dtype=torch.float32) + b).reshape(shape)`.
pub(crate) fn wave(n: usize, a: f64, b: f64, cos: bool, shape: &[usize]) -> Tensor {
    let k = Tensor::arange(0f32, n as f32, &Device::Cpu).unwrap().affine(a, b).unwrap();
    let k = if cos { k.cos() } else { k.sin() }.unwrap();
    k.reshape(shape).unwrap()
}

/// A `Var` holding [`wave`].
pub(crate) fn wave_var(n: usize, a: f64, b: f64, cos: bool, shape: &[usize]) -> Var {
    Var::from_tensor(&wave(n, a, b, cos, shape)).unwrap()
}

/// Every `got[i]` within `rel · max(|want[i]|, 1e-2)` of `want[i]`.
pub(crate) fn assert_close(got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * w.abs().max(1e-2), "element {i}: got {g}, want {w} (all: {got:?})");
    }
}

/// The scalar value of a loss.
pub(crate) fn scalar(t: &Tensor) -> f32 {
    t.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap()
}

/// Checks a gradient against golden values: its first entries and its L2 norm.
pub(crate) fn assert_grad(grads: &GradStore, v: &Var, first: &[f32], norm: f32) {
    let g = grads.get(v.as_tensor()).expect("gradient missing");
    let flat = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_close(&flat[..first.len()], first, 1e-4);
    let n = flat.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert_close(&[n], &[norm], 1e-4);
}

/// Asserts a tensor got no gradient (absent, or identically zero).
pub(crate) fn assert_no_grad(grads: &GradStore, t: &Tensor) {
    if let Some(g) = grads.get(t) {
        let m = g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(m, 0.0, "expected no gradient, got max |g| = {m}");
    }
}

/// Zeros of the given shape (f32).
pub(crate) fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()
}
