//! Every loss and layer of the crate, run on two devices and compared: the
//! check that the GPU path computes what the CPU path does.
//!
//! On the CPU most layers take the crate's fused kernels (convolution,
//! batch and layer norm, softmax, bias add, batched products, pooling); on
//! CUDA they fall back to Candle's own ops (cuBLAS and Candle's kernels). So
//! [`compare_devices`] with the CPU and a GPU also checks the fused CPU
//! kernels against Candle's composed forms, forward and backward.
//!
//! Each case builds its inputs and parameters from one seed on the host
//! (the crate's initialisers draw on the CPU, whatever the device), so both
//! devices start from the same numbers. It computes `Σ w ⊙ f(inputs)` for a
//! fixed random `w` and back-propagates, then compares the outputs and every
//! gradient (inputs and parameters). The error of a tensor is
//! `max |a − b| / max(max |a|, 1e-6)`: relative to the tensor's scale, so a
//! near-zero element does not blow it up.
//!
//! `sslab check-device` prints the table; `kernel/gpu-check` runs it on a GPU
//! machine.

use crate::loss;
use crate::nn::{self, CnnConfig, Conv1dEncoderConfig, Params, ResNetConfig, SeqTransformerConfig, VitConfig};
use crate::plot::Table;
use crate::rng::SeededRng;
use candle_core::{DType, Device, Module, ModuleT, Result, Shape, Tensor, Var, D};
use candle_nn::VarBuilder;

/// The default tolerance on the scaled error (f32 on both sides; cuBLAS and
/// the fused CPU kernels sum in different orders).
pub const TOLERANCE: f64 = 1e-3;

type CaseFn = fn(&[Tensor], VarBuilder) -> Result<Tensor>;

/// One case: a name, the shapes of its random inputs, the function.
struct Case {
    name: &'static str,
    inputs: &'static [&'static [usize]],
    f: CaseFn,
}

/// The result of one case on two devices.
#[derive(Clone, Debug)]
pub struct CheckRow {
    /// The loss or layer.
    pub name: &'static str,
    /// Scaled error of the output.
    pub value_err: f64,
    /// Largest scaled error over the gradients of the inputs and parameters.
    pub grad_err: f64,
    /// How many gradients were compared.
    pub grads: usize,
    /// Which gradient had the largest error (`input 0`, a parameter name).
    pub worst_grad: String,
    /// The tolerance both errors must stay under.
    pub tolerance: f64,
}

impl CheckRow {
    /// Both errors are finite and under the tolerance.
    pub fn ok(&self) -> bool {
        self.value_err <= self.tolerance && self.grad_err <= self.tolerance
    }
}

/// All cases on two devices.
#[derive(Clone, Debug)]
pub struct DeviceCheck {
    /// The reference device, in words.
    pub reference: String,
    /// The device checked against it.
    pub other: String,
    /// One row per loss or layer.
    pub rows: Vec<CheckRow>,
}

impl DeviceCheck {
    /// Every row passed.
    pub fn all_ok(&self) -> bool {
        self.rows.iter().all(CheckRow::ok)
    }

    /// The rows that failed.
    pub fn failures(&self) -> Vec<&CheckRow> {
        self.rows.iter().filter(|r| !r.ok()).collect()
    }

    /// A table: case, output error, gradient error, gradients compared, verdict.
    pub fn table(&self) -> Table {
        let mut t = Table::new(&["case", "output error", "gradient error", "worst gradient", "gradients", "ok"])
            .caption(&format!("{} vs {} (scaled max error; tolerance {:.0e})", self.other, self.reference, TOLERANCE));
        for r in &self.rows {
            t.push(&[
                r.name.to_string(),
                format!("{:.1e}", r.value_err),
                format!("{:.1e}", r.grad_err),
                r.worst_grad.clone(),
                r.grads.to_string(),
                if r.ok() { "yes".into() } else { "NO".into() },
            ]);
        }
        t
    }
}

fn targets(n: usize, classes: usize, dev: &Device) -> Result<Tensor> {
    Tensor::from_vec((0..n).map(|i| ((i * 7 + 3) % classes) as u32).collect::<Vec<_>>(), n, dev)
}

fn param(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Tensor> {
    vb.get_with_hints(shape, name, candle_nn::init::DEFAULT_KAIMING_NORMAL)
}

const CASES: &[Case] = &[
    // losses
    Case { name: "loss: info_nce", inputs: &[&[8, 16], &[8, 16], &[8, 5, 16]], f: |x, _| loss::info_nce(&x[0], &x[1], &x[2], 0.1) },
    Case { name: "loss: nt_xent", inputs: &[&[8, 16], &[8, 16]], f: |x, _| loss::nt_xent(&x[0], &x[1], 0.5) },
    Case { name: "loss: moco", inputs: &[&[8, 16], &[8, 16], &[32, 16]], f: |x, _| loss::moco(&x[0], &x[1], &x[2], 0.2) },
    Case { name: "loss: negative_cosine", inputs: &[&[8, 16], &[8, 16]], f: |x, _| loss::negative_cosine(&x[0], &x[1]) },
    Case { name: "loss: byol", inputs: &[&[8, 16], &[8, 16]], f: |x, _| loss::byol(&x[0], &x[1]) },
    Case { name: "loss: barlow_twins", inputs: &[&[16, 8], &[16, 8]], f: |x, _| loss::barlow_twins(&x[0], &x[1], 5e-3) },
    Case { name: "loss: vicreg", inputs: &[&[16, 8], &[16, 8]], f: |x, _| loss::vicreg(&x[0], &x[1], 25.0, 25.0, 1.0) },
    Case { name: "loss: clip", inputs: &[&[8, 16], &[8, 16]], f: |x, _| loss::clip(&x[0], &x[1], 0.07) },
    Case {
        name: "loss: clip, learnt logit scale",
        inputs: &[&[8, 16], &[8, 16], &[1]],
        f: |x, _| loss::clip_with_logit_scale(&x[0], &x[1], &x[2]),
    },
    Case {
        name: "loss: dino",
        inputs: &[&[8, 10], &[8, 10], &[8, 10], &[8, 10], &[8, 10], &[1, 10]],
        f: |x, _| loss::dino(&x[..3], &x[3..5], &x[5], 0.1, 0.04),
    },
    Case { name: "loss: cross_entropy", inputs: &[&[8, 10]], f: |x, _| loss::cross_entropy(&x[0], &targets(8, 10, x[0].device())?) },
    // layers
    Case { name: "linear", inputs: &[&[4, 6, 32]], f: |x, vb| nn::linear(32, 16, vb)?.forward(&x[0]) },
    Case {
        name: "conv2d 3×3 pad 1",
        inputs: &[&[3, 4, 9, 9]],
        f: |x, vb| nn::conv2d(&x[0], &param(&vb, &[8, 4, 3, 3], "w")?, Some(&param(&vb, &[8], "b")?), 1, 1),
    },
    Case { name: "conv2d stride 2", inputs: &[&[3, 4, 9, 9]], f: |x, vb| nn::conv2d(&x[0], &param(&vb, &[8, 4, 3, 3], "w")?, None, 0, 2) },
    Case { name: "conv2d stride 2, 8×9", inputs: &[&[2, 4, 8, 9]], f: |x, vb| nn::conv2d(&x[0], &param(&vb, &[5, 4, 3, 3], "w")?, None, 1, 2) },
    Case {
        name: "conv1d",
        inputs: &[&[3, 2, 20]],
        f: |x, vb| nn::conv1d(&x[0], &param(&vb, &[6, 2, 5], "w")?, Some(&param(&vb, &[6], "b")?), 2, 1),
    },
    Case {
        name: "conv2d 5×5 pad 2, odd sizes",
        inputs: &[&[2, 3, 7, 9]],
        f: |x, vb| nn::conv2d(&x[0], &param(&vb, &[4, 3, 5, 5], "w")?, Some(&param(&vb, &[4], "b")?), 2, 1),
    },
    Case { name: "conv1d stride 2", inputs: &[&[3, 2, 21]], f: |x, vb| nn::conv1d(&x[0], &param(&vb, &[6, 2, 3], "w")?, None, 1, 2) },
    Case {
        name: "conv + relu + max-pool, odd sizes",
        inputs: &[&[3, 4, 9, 7]],
        f: |x, vb| nn::conv2d_relu_max_pool2d(&x[0], &param(&vb, &[6, 4, 3, 3], "w")?, Some(&param(&vb, &[6], "b")?), 1, 1),
    },
    Case { name: "relu + max-pool 2×2", inputs: &[&[3, 5, 8, 8]], f: |x, _| nn::relu_max_pool2d(&x[0]) },
    Case { name: "relu + max-pool, odd sizes", inputs: &[&[2, 3, 7, 5]], f: |x, _| nn::relu_max_pool2d(&x[0]) },
    // every 2×2 window holds four equal values (nearest up-sampling): ties
    Case { name: "relu + max-pool, tied maxima", inputs: &[&[2, 3, 4, 4]], f: |x, _| nn::relu_max_pool2d(&x[0].upsample_nearest2d(8, 8)?) },
    Case { name: "batch norm (train)", inputs: &[&[8, 6, 5, 5]], f: |x, vb| nn::batch_norm(6, true, vb)?.forward_t(&x[0], true) },
    Case { name: "batch norm (eval)", inputs: &[&[8, 6, 5, 5]], f: |x, vb| nn::batch_norm(6, true, vb)?.forward_t(&x[0], false) },
    Case { name: "layer norm", inputs: &[&[4, 7, 16]], f: |x, vb| nn::LayerNorm::new(16, 1e-5, vb)?.forward(&x[0]) },
    Case { name: "softmax", inputs: &[&[4, 7, 16]], f: |x, _| nn::softmax(&x[0], D::Minus1) },
    Case { name: "log_softmax", inputs: &[&[4, 7, 16]], f: |x, _| nn::log_softmax(&x[0], D::Minus1) },
    Case { name: "gelu", inputs: &[&[4, 16]], f: |x, _| nn::gelu(&x[0]) },
    Case { name: "batched_matmul", inputs: &[&[6, 5, 7], &[6, 7, 4]], f: |x, _| nn::batched_matmul(&x[0], &x[1], false) },
    Case { name: "batched_matmul (Bᵀ)", inputs: &[&[6, 5, 7], &[6, 4, 7]], f: |x, _| nn::batched_matmul(&x[0], &x[1], true) },
    Case { name: "add_bias", inputs: &[&[4, 5, 16], &[16]], f: |x, _| nn::add_bias(&x[0], &x[1]) },
    Case { name: "multi-head attention", inputs: &[&[2, 9, 32]], f: |x, vb| nn::multi_head_attention(32, 4, vb)?.forward(&x[0]) },
    Case { name: "transformer block", inputs: &[&[2, 9, 32]], f: |x, vb| nn::transformer_block(32, 4, 2.0, vb)?.forward(&x[0]) },
    Case {
        name: "masked attention (causal)",
        inputs: &[&[2, 9, 32]],
        f: |x, vb| nn::multi_head_attention(32, 4, vb)?.forward_masked(&x[0], nn::attention_bias(2, 9, true, None, x[0].device())?.as_ref()),
    },
    Case { name: "linear + GELU", inputs: &[&[4, 6, 32]], f: |x, vb| nn::linear(32, 48, vb)?.forward_gelu(&x[0]) },
    // encoders
    Case { name: "small CNN", inputs: &[&[4, 1, 28, 28]], f: |x, vb| CnnConfig::default().init(vb)?.forward(&x[0]) },
    Case {
        name: "small CNN + batch norm",
        inputs: &[&[4, 1, 28, 28]],
        f: |x, vb| CnnConfig { batch_norm: true, ..CnnConfig::default() }.init(vb)?.forward_t(&x[0], true),
    },
    Case { name: "ResNet", inputs: &[&[4, 3, 32, 32]], f: |x, vb| ResNetConfig::default().init(vb)?.forward_t(&x[0], true) },
    Case { name: "ViT", inputs: &[&[4, 1, 28, 28]], f: |x, vb| VitConfig::default().init(vb)?.forward(&x[0]) },
    Case { name: "1-D conv encoder", inputs: &[&[4, 1, 64]], f: |x, vb| Conv1dEncoderConfig::default().init(vb)?.forward_t(&x[0], true) },
    Case { name: "sequence transformer", inputs: &[&[4, 1, 64]], f: |x, vb| SeqTransformerConfig::default().init(vb)?.forward(&x[0]) },
];

/// The names of every case, in order.
pub fn case_names() -> Vec<&'static str> {
    CASES.iter().map(|c| c.name).collect()
}

/// Output and gradients (inputs first, then parameters by name) of one case.
fn run_case(case: &Case, dev: &Device, seed: u64) -> Result<(Tensor, Vec<(String, Tensor)>)> {
    let params = Params::new(seed);
    let mut rng = SeededRng::new(seed).fork(case.name);
    let inputs = case
        .inputs
        .iter()
        .map(|s| Var::from_tensor(&rng.randn(Shape::from(s.to_vec()), 1.0, dev)?))
        .collect::<Result<Vec<_>>>()?;
    let tensors: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let out = (case.f)(&tensors, params.builder(dev))?;
    let w = rng.randn(out.shape().clone(), 1.0, dev)?;
    let grads = out.to_dtype(DType::F32)?.mul(&w)?.sum_all()?.backward()?;
    let mut named = Vec::new();
    for (i, v) in inputs.iter().enumerate() {
        if let Some(g) = grads.get(v.as_tensor()) {
            named.push((format!("input {i}"), g.clone()));
        }
    }
    for (name, v) in params.named_trainable_vars() {
        if let Some(g) = grads.get(v.as_tensor()) {
            named.push((name, g.clone()));
        }
    }
    Ok((out, named))
}

/// `max |a − b| / max(max |a|, 1e-6)`, both brought to the CPU.
fn scaled_error(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.shape() != b.shape() {
        candle_core::bail!("shapes differ between devices: {:?} vs {:?}", a.shape(), b.shape());
    }
    let host = |t: &Tensor| t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>();
    let (a, b) = (host(a)?, host(b)?);
    let (mut diff, mut scale) = (0f64, 1e-6f64);
    for (x, y) in a.iter().zip(&b) {
        if !(x - y).is_finite() {
            return Ok(f64::INFINITY);
        }
        diff = diff.max((x - y).abs());
        scale = scale.max(x.abs());
    }
    Ok(diff / scale)
}

/// Runs every case on `reference` and on `other` and compares them.
///
/// # Errors
/// If a case fails to run on either device, or a gradient exists on one
/// device and not on the other; the error names the case.
pub fn compare_devices(reference: &Device, other: &Device, seed: u64) -> Result<DeviceCheck> {
    let mut rows = Vec::new();
    for case in CASES {
        let ctx = |dev: &Device, e: candle_core::Error| candle_core::Error::Msg(format!("{} on {dev:?}: {e}", case.name));
        let (ya, ga) = run_case(case, reference, seed).map_err(|e| ctx(reference, e))?;
        let (yb, gb) = run_case(case, other, seed).map_err(|e| ctx(other, e))?;
        let names = |g: &[(String, Tensor)]| g.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        if names(&ga) != names(&gb) {
            candle_core::bail!("{}: gradients differ between devices: {:?} vs {:?}", case.name, names(&ga), names(&gb));
        }
        let (mut grad_err, mut worst_grad) = (0f64, String::new());
        for ((name, a), (_, b)) in ga.iter().zip(&gb) {
            let e = scaled_error(a, b)?;
            if e > grad_err || worst_grad.is_empty() {
                (grad_err, worst_grad) = (e, name.clone());
            }
        }
        rows.push(CheckRow {
            name: case.name,
            value_err: scaled_error(&ya, &yb)?,
            grad_err,
            grads: ga.len(),
            worst_grad,
            tolerance: TOLERANCE,
        });
    }
    let name = |d: &Device| crate::device::device_name(d).to_string();
    Ok(DeviceCheck { reference: name(reference), other: name(other), rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_runs_and_has_gradients() {
        let check = compare_devices(&Device::Cpu, &Device::Cpu, 3).unwrap();
        assert_eq!(check.rows.len(), CASES.len());
        // the same device and seed: bit-identical
        for r in &check.rows {
            assert_eq!((r.value_err, r.grad_err), (0.0, 0.0), "{}", r.name);
            assert!(r.grads >= 1, "{} compared no gradient", r.name);
        }
        assert!(check.all_ok() && check.failures().is_empty());
        // parameters are compared too: the CNN has 3 weights and 3 biases plus its input
        let cnn = check.rows.iter().find(|r| r.name == "small CNN").unwrap();
        assert_eq!(cnn.grads, 7);
        let html = check.table().to_html();
        assert!(html.contains("transformer block") && html.contains("cpu vs cpu"), "{html}");
    }

    #[test]
    fn the_fused_cpu_kernels_match_candles_composed_ops() {
        // what the CUDA comparison checks, done on the CPU: each fused op
        // against the composed Candle ops it replaces
        let mut rng = SeededRng::new(5);
        let x = rng.randn((3, 4, 9, 9), 1.0, &Device::Cpu).unwrap();
        let w = rng.randn((8, 4, 3, 3), 1.0, &Device::Cpu).unwrap();
        let fused = nn::conv2d(&x, &w, None, 1, 2).unwrap();
        let candle = x.conv2d(&w, 1, 2, 1, 1).unwrap();
        assert!(scaled_error(&candle, &fused).unwrap() < 1e-5);
        let s = rng.randn((4, 7, 16), 3.0, &Device::Cpu).unwrap();
        let fused = nn::softmax(&s, D::Minus1).unwrap();
        let candle = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
        assert!(scaled_error(&candle, &fused).unwrap() < 1e-6);
    }

    #[test]
    fn scaled_error_sees_a_planted_difference() {
        let a = Tensor::new(&[1f32, -2.0, 4.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[1f32, -2.0, 4.01], &Device::Cpu).unwrap();
        let e = scaled_error(&a, &b).unwrap();
        assert!((e - 0.01 / 4.0).abs() < 1e-6, "{e}");
        let nan = Tensor::new(&[1f32, f32::NAN, 4.0], &Device::Cpu).unwrap();
        assert!(scaled_error(&a, &nan).unwrap().is_infinite());
        let short = Tensor::new(&[1f32], &Device::Cpu).unwrap();
        assert!(scaled_error(&a, &short).unwrap_err().to_string().contains("shapes differ"));
        let row = CheckRow { name: "x", value_err: 0.0, grad_err: 2e-3, grads: 1, worst_grad: "input 0".into(), tolerance: TOLERANCE };
        assert!(!row.ok());
    }
}
