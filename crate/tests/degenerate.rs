//! Degenerate sizes and wrong dtypes reaching a public op or loss are errors
//! that name the shape or the dtype, never a panic: an empty batch, zero
//! channels or features, a 0×0 kernel, an integer tensor.

use candle_core::{DType, Device, Result, Tensor};
use sslab::{loss, nn};

fn f32s(shape: &[usize]) -> Tensor {
    Tensor::ones(shape, DType::F32, &Device::Cpu).unwrap()
}

fn ints(shape: &[usize]) -> Tensor {
    Tensor::ones(shape, DType::U32, &Device::Cpu).unwrap()
}

/// `r` is an error whose message contains one of `needles` (the shape or
/// dtype it names), and calling it did not panic.
/// What is wrong with `r`, if anything (every case is checked, then all
/// failures are reported together).
fn named_error<T: std::fmt::Debug>(what: &str, r: std::thread::Result<Result<T>>, needles: &[&str]) -> Option<String> {
    match r {
        Err(_) => Some(format!("{what}: panicked")),
        Ok(Ok(v)) => Some(format!("{what}: no error, got {v:?}")),
        Ok(Err(e)) => {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or_default().to_string();
            (!needles.iter().any(|n| first.contains(n))).then(|| format!("{what}: the error does not name {needles:?}: {first}"))
        }
    }
}

macro_rules! check {
    ($fails:ident, $what:expr, $call:expr, $needles:expr) => {
        $fails.extend(named_error($what, std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $call)), $needles))
    };
}

#[test]
fn integer_tensors_are_errors_naming_the_dtype() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut fails: Vec<String> = Vec::new();
    let x = ints(&[2, 4]);
    let (g, b) = (f32s(&[4]), f32s(&[4]));
    check!(fails, "softmax", nn::softmax(&x, 1), &["U32", "dtype"]);
    check!(fails, "log_softmax", nn::log_softmax(&x, 1), &["U32", "dtype"]);
    check!(fails, "layer_norm", nn::layer_norm(&x, &g, &b, 1e-5), &["U32", "dtype"]);
    check!(fails, "gelu", nn::gelu(&x), &["U32", "dtype"]);
    check!(fails, "l2_normalize", nn::l2_normalize(&x), &["U32", "dtype"]);
    check!(fails, "add_bias", nn::add_bias(&x, &b), &["U32", "dtype"]);
    check!(fails, "batched_matmul", nn::batched_matmul(&ints(&[2, 3, 4]), &ints(&[2, 4, 3]), false), &["U32", "dtype"]);
    check!(fails, "conv2d", nn::conv2d(&ints(&[1, 1, 4, 4]), &f32s(&[2, 1, 3, 3]), None, 1, 1), &["U32", "dtype"]);
    check!(fails, "relu_max_pool2d", nn::relu_max_pool2d(&ints(&[1, 1, 4, 4])), &["U32", "dtype"]);
    check!(fails, "nt_xent", loss::nt_xent(&x, &x, 0.5), &["U32", "dtype"]);
    check!(fails, "barlow_twins", loss::barlow_twins(&x, &x, 0.005), &["U32", "dtype"]);
    check!(fails, "vicreg", loss::vicreg(&x, &x, 25.0, 25.0, 1.0), &["U32", "dtype"]);
    check!(fails, "byol", loss::byol(&x, &x), &["U32", "dtype"]);
    check!(fails, "negative_cosine", loss::negative_cosine(&x, &x), &["U32", "dtype"]);
    check!(fails, "clip", loss::clip(&x, &x, 0.07), &["U32", "dtype"]);
    check!(fails, "cross_entropy", loss::cross_entropy(&x, &ints(&[2])), &["U32", "dtype"]);
    let _ = std::panic::take_hook();
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn empty_batches_and_zero_sizes_are_errors_naming_the_shape() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut fails: Vec<String> = Vec::new();
    let (g, b) = (f32s(&[4]), f32s(&[4]));
    // empty batch
    check!(fails, "softmax, empty batch", nn::softmax(&f32s(&[0, 4]), 1), &["[0, 4]"]);
    check!(fails, "layer_norm, empty batch", nn::layer_norm(&f32s(&[0, 4]), &g, &b, 1e-5), &["[0, 4]"]);
    check!(fails, "gelu, empty", nn::gelu(&f32s(&[0, 4])), &["[0, 4]"]);
    check!(fails, "add_bias, empty batch", nn::add_bias(&f32s(&[0, 4]), &b), &["[0, 4]"]);
    check!(fails, "conv2d, empty batch", nn::conv2d(&f32s(&[0, 1, 4, 4]), &f32s(&[2, 1, 3, 3]), None, 1, 1), &["[0, 1, 4, 4]"]);
    check!(fails, "conv2d_relu_max_pool2d, empty batch", nn::conv2d_relu_max_pool2d(&f32s(&[0, 1, 4, 4]), &f32s(&[2, 1, 3, 3]), None, 1, 1), &["[0, 1, 4, 4]"]);
    check!(fails, "relu_max_pool2d, empty batch", nn::relu_max_pool2d(&f32s(&[0, 1, 4, 4])), &["[0, 1, 4, 4]"]);
    check!(fails, "nt_xent, empty batch", loss::nt_xent(&f32s(&[0, 4]), &f32s(&[0, 4]), 0.5), &["[0, 4]"]);
    check!(fails, "cross_entropy, empty batch", loss::cross_entropy(&f32s(&[0, 3]), &ints(&[0])), &["[0, 3]", "[0]"]);
    // zero features, channels, a 0×0 kernel
    check!(fails, "softmax, zero width", nn::softmax(&f32s(&[2, 0]), 1), &["[2, 0]"]);
    check!(fails, "layer_norm, zero width", nn::layer_norm(&f32s(&[2, 0]), &f32s(&[0]), &f32s(&[0]), 1e-5), &["[2, 0]"]);
    check!(fails, "conv2d, zero output channels", nn::conv2d(&f32s(&[1, 1, 4, 4]), &f32s(&[0, 1, 3, 3]), None, 1, 1), &["[0, 1, 3, 3]"]);
    check!(fails, "conv2d, zero input channels", nn::conv2d(&f32s(&[1, 0, 4, 4]), &f32s(&[2, 0, 3, 3]), None, 1, 1), &["[1, 0, 4, 4]", "[2, 0, 3, 3]"]);
    check!(fails, "conv2d, 0×0 kernel", nn::conv2d(&f32s(&[1, 1, 4, 4]), &f32s(&[2, 1, 0, 0]), None, 0, 1), &["[2, 1, 0, 0]"]);
    check!(fails, "conv2d, stride 0", nn::conv2d(&f32s(&[1, 1, 4, 4]), &f32s(&[2, 1, 3, 3]), None, 1, 0), &["stride"]);
    check!(fails, "conv2d_relu_max_pool2d, 0×0 kernel", nn::conv2d_relu_max_pool2d(&f32s(&[1, 1, 4, 4]), &f32s(&[2, 1, 0, 0]), None, 0, 1), &["[2, 1, 0, 0]"]);
    check!(fails, "barlow_twins, zero features", loss::barlow_twins(&f32s(&[4, 0]), &f32s(&[4, 0]), 0.005), &["[4, 0]"]);
    let _ = std::panic::take_hook();
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// A NaN in the input shows in the output of every op (divergence is never
/// hidden as a number), on the CPU's fused paths included.
#[test]
fn nan_propagates_through_every_op() {
    let nan_in = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        let mut v: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
        v[0] = f32::NAN;
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let has_nan = |t: Result<Tensor>| t.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().any(|v| v.is_nan());
    let x = nan_in(&[3, 8]);
    let (g, b) = (f32s(&[8]), f32s(&[8]));
    let mut fails = Vec::new();
    for (what, out) in [
        ("softmax", nn::softmax(&x, 1)),
        ("log_softmax", nn::log_softmax(&x, 1)),
        ("layer_norm", nn::layer_norm(&x, &g, &b, 1e-5)),
        ("gelu", nn::gelu(&x)),
        ("l2_normalize", nn::l2_normalize(&x)),
        ("add_bias", nn::add_bias(&x, &b)),
        ("batched_matmul", nn::batched_matmul(&nan_in(&[2, 3, 4]), &f32s(&[2, 4, 5]), false)),
        ("conv2d", nn::conv2d(&nan_in(&[2, 1, 6, 6]), &f32s(&[3, 1, 3, 3]), Some(&f32s(&[3])), 1, 1)),
        ("conv1d", nn::conv1d(&nan_in(&[2, 1, 8]), &f32s(&[3, 1, 3]), Some(&f32s(&[3])), 1, 1)),
        ("conv2d_relu_max_pool2d", nn::conv2d_relu_max_pool2d(&nan_in(&[2, 1, 6, 6]), &f32s(&[3, 1, 3, 3]), Some(&f32s(&[3])), 1, 1)),
        ("relu_max_pool2d", nn::relu_max_pool2d(&nan_in(&[2, 1, 6, 6]))),
        ("nt_xent", loss::nt_xent(&x, &f32s(&[3, 8]), 0.5)),
        ("cross_entropy", loss::cross_entropy(&x, &Tensor::new(&[0u32, 1, 2], &Device::Cpu).unwrap())),
    ] {
        if !has_nan(out) {
            fails.push(what);
        }
    }
    assert!(fails.is_empty(), "NaN lost by {fails:?}");
}
