//! The CPU training-step benchmark: the same step as the course's PyTorch
//! reference (`bench/torch_reference.py`), so that the two can be timed side
//! by side on one machine (`make bench`).
//!
//! One SimCLR-style step: two views of `B` random 3×32×32 images through a
//! model, NT-Xent (τ = 0.5), backward, AdamW (lr 1e-3, weight decay 0.01 on
//! every tensor, as `torch.optim.AdamW`'s defaults).
//!
//! ```text
//! cnn: [conv3×3 → ReLU → maxpool2] × 3 (32, 64, 128 channels) → global mean → linear 128 → ReLU → linear 64
//! vit: patch 4 (64 tokens) → linear 128 + position → 4 pre-norm blocks (4 heads, MLP 256) → LayerNorm → mean → linear 64
//! ```
//!
//! The reference's ViT blocks use ReLU in the MLP (PyTorch's
//! `TransformerEncoderLayer` default); ours use GELU, which costs the same
//! order of time.

use crate::loss::nt_xent;
use crate::nn::{conv2d_relu_max_pool2d, linear, Linear, Params, Vit, VitConfig};
use crate::rng::SeededRng;
use crate::train::OptimizerConfig;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Which model the step trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchModel {
    /// Three 3×3 convolutions with max-pooling and an MLP head.
    Cnn,
    /// A tiny ViT: 64 tokens of width 128, 4 blocks.
    Vit,
}

/// Settings of a benchmark run (the reference's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// The model.
    pub model: BenchModel,
    /// Images per view.
    pub batch_size: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Seed of the weights and the inputs.
    pub seed: u64,
}

impl BenchConfig {
    /// The reference's settings for `model`: batch 256, 10 timed steps after 3 warm-up steps.
    pub fn new(model: BenchModel) -> Self {
        Self { model, batch_size: 256, steps: 10, warmup: 3, seed: 0 }
    }
}

/// What a run measured (the same keys as the reference's JSON line, plus ours).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResult {
    /// `"sslab"`.
    pub framework: String,
    /// The device kind ([`crate::device::device_name`]).
    pub device: String,
    /// The model.
    pub model: BenchModel,
    /// Images per view.
    pub batch_size: usize,
    /// Median seconds of a whole step (forward, loss, backward, optimiser).
    pub step_s_median: f64,
    /// Median seconds of the forward passes and the loss.
    pub forward_s_median: f64,
    /// Loss of the very first step (at initialisation).
    pub first_loss: f64,
    /// Loss of the last step.
    pub final_loss: f64,
    /// Floating-point operations of one step (forward + backward ≈ 3 × forward), in GFLOP.
    pub gflop_per_step: f64,
    /// `gflop_per_step / step_s_median`.
    pub gflops: f64,
}

/// The reference CNN.
struct Cnn {
    convs: Vec<(Tensor, Tensor)>,
    fc: Linear,
    proj: Linear,
}

impl Cnn {
    fn new(vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::new();
        let mut c_in = 3;
        for (i, c_out) in [32usize, 64, 128].into_iter().enumerate() {
            // PyTorch's Conv2d default: U(±1/sqrt(fan_in)) for weight and bias
            let bound = 1.0 / ((c_in * 9) as f64).sqrt();
            let init = Init::Uniform { lo: -bound, up: bound };
            let vb = vb.pp(format!("conv{}", i + 1));
            convs.push((vb.get_with_hints((c_out, c_in, 3, 3), "weight", init)?, vb.get_with_hints(c_out, "bias", init)?));
            c_in = c_out;
        }
        Ok(Self { convs, fc: linear(128, 128, vb.pp("fc"))?, proj: linear(128, 64, vb.pp("proj"))? })
    }
}

impl Module for Cnn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (w, b) in &self.convs {
            x = conv2d_relu_max_pool2d(&x, w, Some(b), 1, 1)?;
        }
        self.proj.forward(&self.fc.forward(&x.mean((2, 3))?)?.relu()?)
    }
}

/// The reference ViT: our [`Vit`] (mean-pooled) and a linear projection.
struct VitNet {
    vit: Vit,
    proj: Linear,
}

impl Module for VitNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj.forward(&self.vit.forward(x)?)
    }
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Forward FLOPs of one image (multiply-adds × 2).
fn forward_flop_per_image(model: BenchModel) -> f64 {
    let mac = match model {
        // conv layers at 32², 16², 8²: H·W·(C_in·9)·C_out
        BenchModel::Cnn => (32 * 32 * 27 * 32 + 16 * 16 * 288 * 64 + 8 * 8 * 576 * 128 + 128 * 128 + 128 * 64) as f64,
        BenchModel::Vit => {
            let (n, d, h) = (64.0, 128.0, 256.0);
            let block = n * d * 3.0 * d + 2.0 * n * n * d + n * d * d + 2.0 * n * d * h;
            n * 48.0 * d + 4.0 * block + d * 64.0
        }
    };
    2.0 * mac
}

/// Runs the benchmark on `dev`.
pub fn run_bench(cfg: &BenchConfig, dev: &Device) -> Result<BenchResult> {
    if cfg.batch_size < 2 || cfg.steps == 0 {
        candle_core::bail!("bench needs batch_size >= 2 and steps >= 1, got {cfg:?}");
    }
    let params = Params::new(cfg.seed);
    let vb = params.builder(dev);
    let net: Box<dyn Module> = match cfg.model {
        BenchModel::Cnn => Box::new(Cnn::new(vb.pp("cnn"))?),
        BenchModel::Vit => {
            let vcfg = VitConfig {
                image_size: 32,
                patch_size: 4,
                in_channels: 3,
                dim: 128,
                depth: 4,
                heads: 4,
                mlp_ratio: 2.0,
                cls_token: false,
            };
            Box::new(VitNet { vit: vcfg.init(vb.pp("vit"))?, proj: linear(128, 64, vb.pp("proj"))? })
        }
    };
    let mut opt_cfg = OptimizerConfig::adamw(1e-3, 0.01);
    opt_cfg.decay_1d = true;
    let mut opt = opt_cfg.build(params.named_trainable_vars())?;
    let mut rng = SeededRng::new(cfg.seed).fork("bench-inputs");
    let x1 = rng.randn((cfg.batch_size, 3, 32, 32), 1.0, dev)?;
    let x2 = rng.randn((cfg.batch_size, 3, 32, 32), 1.0, dev)?;
    let (mut steps, mut fwds) = (Vec::new(), Vec::new());
    let (mut first, mut last) = (f64::NAN, f64::NAN);
    for i in 0..cfg.warmup + cfg.steps {
        let t0 = Instant::now();
        let loss = nt_xent(&net.forward(&x1)?, &net.forward(&x2)?, 0.5)?;
        let l = f64::from(loss.to_scalar::<f32>()?);
        let t1 = t0.elapsed().as_secs_f64();
        opt.backward_step(&loss)?;
        // a GPU runs the step asynchronously: wait for it before reading the clock
        dev.synchronize()?;
        let t2 = t0.elapsed().as_secs_f64();
        if i == 0 {
            first = l;
        }
        last = l;
        if i >= cfg.warmup {
            steps.push(t2);
            fwds.push(t1);
        }
    }
    let step = median(&mut steps);
    let gflop = 3.0 * forward_flop_per_image(cfg.model) * 2.0 * cfg.batch_size as f64 / 1e9;
    Ok(BenchResult {
        framework: "sslab".into(),
        device: crate::device::device_name(dev).into(),
        model: cfg.model,
        batch_size: cfg.batch_size,
        step_s_median: step,
        forward_s_median: median(&mut fwds),
        first_loss: first,
        final_loss: last,
        gflop_per_step: (gflop * 10.0).round() / 10.0,
        gflops: (gflop / step * 10.0).round() / 10.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny run of each model: finite losses near ln(2B − 1) at
    /// initialisation (random embeddings), and the FLOP count of the CNN step
    /// the reference quotes (about 32 GFLOP at batch 256).
    #[test]
    fn bench_runs_both_models() {
        for model in [BenchModel::Cnn, BenchModel::Vit] {
            let cfg = BenchConfig { model, batch_size: 4, steps: 1, warmup: 1, seed: 0 };
            let r = run_bench(&cfg, &Device::Cpu).unwrap();
            assert!(r.first_loss.is_finite() && r.final_loss.is_finite(), "{r:?}");
            assert!((r.first_loss - (7f64).ln()).abs() < 0.5, "{r:?}");
            assert!(r.step_s_median >= r.forward_s_median);
        }
        let gflop = 3.0 * forward_flop_per_image(BenchModel::Cnn) * 512.0 / 1e9;
        assert!((gflop - 32.0).abs() < 1.0, "{gflop}");
        let bad = BenchConfig { batch_size: 1, ..BenchConfig::new(BenchModel::Cnn) };
        assert!(run_bench(&bad, &Device::Cpu).unwrap_err().to_string().contains("batch_size"));
    }
}
