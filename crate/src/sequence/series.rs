//! Time-series pretraining on a 1-D CNN: masked time steps, order verification, CPC and augmentation-contrastive, with the few-label baselines.

use crate::augment::{time_series, Transform};
use crate::data::{SeriesDataset, LabelledData};
use crate::eval::{map_batches, train_end_to_end, ClassifierConfig, ComparisonRow, FewLabelProtocol};
use crate::loss::{accuracy, cross_entropy, l2_normalize, nt_xent};
use crate::nn::{linear, Conv1dEncoder, Conv1dEncoderConfig, Linear, Params};
use crate::plot::LinePlot;
use crate::pretext::{cpc_windows, mask_time_steps, order_verification};
use crate::rng::{derive_seed, SeededRng};
use crate::train::{History, OptimizerConfig, Run, StepLoss, StepSampler};
use candle_core::{Device, Module, ModuleT, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The time-series pretext tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesTask {
    /// Reconstruct masked time steps (TST).
    Masked,
    /// Tell whether the segments are in temporal order (Shuffle and Learn).
    Order,
    /// Pick the true future among other series' futures (CPC).
    Cpc,
    /// Two augmented views of a series agree (SimCLR / TS-TCC style).
    Contrastive,
}

impl SeriesTask {
    /// Every task, in the section's order.
    pub const ALL: [SeriesTask; 4] = [SeriesTask::Masked, SeriesTask::Order, SeriesTask::Cpc, SeriesTask::Contrastive];

    /// The short name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Masked => "masked",
            Self::Order => "order",
            Self::Cpc => "cpc",
            Self::Contrastive => "contrastive",
        }
    }

    fn metric_name(&self) -> &'static str {
        match self {
            Self::Masked => "masked-step MSE",
            Self::Order => "order accuracy",
            Self::Cpc => "future accuracy",
            Self::Contrastive => "positive-pair accuracy",
        }
    }
}

impl fmt::Display for SeriesTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that defines a time-series pretraining run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPretrainConfig {
    /// The pretext task.
    pub task: SeriesTask,
    /// Optimiser steps.
    pub steps: usize,
    /// Series per step.
    pub batch_size: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// The one seed behind initialisation, batches and the pretext randomness.
    pub seed: u64,
    /// The encoder (its `in_channels` is set from the data).
    pub encoder: Conv1dEncoderConfig,
    /// Masked: fraction of time steps hidden (TST: 0.15).
    pub mask_ratio: f64,
    /// Masked: mean length of a masked run (TST: 3).
    pub mask_span: f64,
    /// Order: number of segments shuffled.
    pub segments: usize,
    /// CPC: context window, as a fraction of the series length.
    pub cpc_context: f64,
    /// CPC: future window, as a fraction of the series length.
    pub cpc_future: f64,
    /// Contrastive: crop length as a fraction of the series length.
    pub crop: f64,
    /// CPC and contrastive: softmax temperature.
    pub temperature: f64,
}

impl SeriesPretrainConfig {
    /// Recommended settings of `task` for short univariate series on a CPU.
    pub fn for_task(task: SeriesTask) -> Self {
        Self {
            task,
            steps: 300,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 1e-4,
            seed: 0,
            encoder: Conv1dEncoderConfig::default(),
            mask_ratio: 0.15,
            mask_span: 3.0,
            segments: 3,
            cpc_context: 0.5,
            cpc_future: 0.25,
            crop: 0.8,
            temperature: 0.2,
        }
    }

    fn check(&self, t: usize) -> Result<()> {
        if self.batch_size < 2 || !(self.lr > 0.0) {
            candle_core::bail!("series pretraining needs batch_size >= 2 and lr > 0, got {} and {}", self.batch_size, self.lr);
        }
        let len = |f: f64| (f * t as f64).round() as usize;
        match self.task {
            SeriesTask::Cpc if len(self.cpc_context) < 1 || len(self.cpc_future) < 1 || len(self.cpc_context) + len(self.cpc_future) > t => {
                candle_core::bail!(
                    "cpc: context {} + future {} (fractions of T = {t}) must be ≥ 1 step each and fit in the series",
                    self.cpc_context,
                    self.cpc_future
                )
            }
            SeriesTask::Contrastive if !(self.crop > 0.0 && self.crop <= 1.0) || len(self.crop) < 1 => {
                candle_core::bail!("contrastive: crop must be in (0, 1] of T = {t}, got {}", self.crop)
            }
            SeriesTask::Order if self.segments < 2 || self.segments > t => {
                candle_core::bail!("order: segments must be in 2..=T = {t}, got {}", self.segments)
            }
            _ => Ok(()),
        }
    }
}

/// The task-specific layers on top of the encoder.
enum SeriesHead {
    /// Per-step linear decoder `D → C`.
    Masked(Linear),
    /// `D → 2`.
    Order(Linear),
    /// Predictor `W: D → D`.
    Cpc(Linear),
    /// Projection `D → D → 64` with a ReLU.
    Contrastive(Linear, Linear),
}

/// A time-series pretraining run: encoder `enc.*`, head `head.*`, optimiser, history.
pub struct SeriesPretrainer {
    config: SeriesPretrainConfig,
    params: Params,
    encoder: Conv1dEncoder,
    head: SeriesHead,
    run: Run,
    device: Device,
    shape: (usize, usize),
}

impl SeriesPretrainer {
    /// Builds the run for series of `shape = (C, T)`.
    pub fn new(config: SeriesPretrainConfig, shape: (usize, usize), dev: &Device) -> Result<Self> {
        config.check(shape.1)?;
        let params = Params::new(derive_seed(config.seed, "init"));
        let vb = params.builder(dev);
        let enc_cfg = Conv1dEncoderConfig { in_channels: shape.0, ..config.encoder.clone() };
        let encoder = enc_cfg.init(vb.pp("enc"))?;
        let d = encoder.feature_dim();
        let hv = vb.pp("head");
        let head = match config.task {
            SeriesTask::Masked => SeriesHead::Masked(linear(d, shape.0, hv.pp("decoder"))?),
            SeriesTask::Order => SeriesHead::Order(linear(d, 2, hv.pp("classifier"))?),
            SeriesTask::Cpc => SeriesHead::Cpc(linear(d, d, hv.pp("predictor"))?),
            SeriesTask::Contrastive => SeriesHead::Contrastive(linear(d, d, hv.pp("fc1"))?, linear(d, 64, hv.pp("fc2"))?),
        };
        let opt = OptimizerConfig::adamw(config.lr, config.weight_decay).build(params.named_trainable_vars())?;
        let history = History::new(&format!("{} pretraining", config.task), config.task.metric_name());
        let run = Run::new(opt, history, config.seed, "series-step-");
        Ok(Self { config, params, encoder, head, run, device: dev.clone(), shape })
    }

    /// The settings.
    pub fn config(&self) -> &SeriesPretrainConfig {
        &self.config
    }

    /// Steps taken.
    pub fn step(&self) -> usize {
        self.run.step()
    }

    /// Loss and metric per step.
    pub fn history(&self) -> &History {
        self.run.history()
    }

    /// The parameters (encoder under `enc.`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Trains `steps` more steps on `data` (labels unused). Batch `k` and its
    /// pretext randomness depend only on the seed and `k`.
    pub fn train_for(&mut self, steps: usize, data: &SeriesDataset) -> Result<&History> {
        let (c, t) = data.series_shape()?;
        if (c, t) != self.shape {
            candle_core::bail!("series pretraining: the run was built for (C, T) = {:?}, the data {} is ({c}, {t})", self.shape, data.name);
        }
        let mut sampler = StepSampler::new(data.len(), derive_seed(self.config.seed, "series-batches"))?;
        let (config, encoder, head, dev) = (&self.config, &self.encoder, &self.head, &self.device);
        self.run.train_for(steps, &mut |k: usize, rng: &mut SeededRng| {
            let (x, _) = data.batch(&sampler.batch(k, config.batch_size.min(data.len())), dev)?;
            let (loss, metric) = series_loss(config, encoder, head, &x, rng)?;
            Ok(StepLoss::new(loss, metric))
        })
    }

    /// Saves the run (parameters, optimiser state, settings, progress and
    /// history) into the directory `dir`, atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let meta = serde_json::json!({ "config": self.config, "shape": [self.shape.0, self.shape.1] });
        self.run.save(dir, SERIES_FORMAT, meta, &self.params, &[])
    }

    /// Loads a run saved by [`SeriesPretrainer::save`], ready to continue
    /// training (the same batches as an uninterrupted run) or to compute features.
    pub fn load(dir: impl AsRef<Path>, dev: &Device) -> Result<Self> {
        let ck = Run::open(dir, SERIES_FORMAT, "an sslab series pretraining checkpoint", dev)?;
        let shape: (usize, usize) = ck.entry("shape")?;
        let mut run = Self::new(ck.entry("config")?, shape, dev)?;
        run.run.restore(&ck, &run.params)?;
        Ok(run)
    }

    /// Pooled representations `(N, D)` of `series (N, C, T)`, in evaluation mode, on the CPU.
    pub fn features(&self, series: &Tensor) -> Result<Tensor> {
        map_batches(series, 256, "examples", |x| self.encoder.forward_t(&x.to_device(&self.device)?, false))
    }

    /// The masked task's reconstruction of `series`: `(masked input, reconstruction, mask)`
    /// with the mask drawn from `seed`; errors for the other tasks.
    pub fn reconstruct(&self, series: &Tensor, seed: u64) -> Result<(Tensor, Tensor, Tensor)> {
        let SeriesHead::Masked(dec) = &self.head else {
            candle_core::bail!("reconstruct: only the masked task reconstructs, this run is {}", self.config.task);
        };
        let x = series.to_device(&self.device)?;
        let (masked, mask) = mask_time_steps(&x, self.config.mask_ratio, self.config.mask_span, &mut SeededRng::new(seed))?;
        let pred = dec.forward(&self.encoder.forward_steps_t(&masked, false)?.transpose(1, 2)?)?.transpose(1, 2)?;
        Ok((masked, pred.detach(), mask))
    }
}

/// The loss and metric of `config.task` on the series `x`.
fn series_loss(config: &SeriesPretrainConfig, encoder: &Conv1dEncoder, head: &SeriesHead, x: &Tensor, rng: &mut SeededRng) -> Result<(Tensor, f64)> {
    let t = x.dim(2)?;
    match head {
        SeriesHead::Masked(dec) => {
            let (masked, mask) = mask_time_steps(x, config.mask_ratio, config.mask_span, rng)?;
            let steps = encoder.forward_steps_t(&masked, true)?; // (B, D, T)
            let pred = dec.forward(&steps.transpose(1, 2)?)?.transpose(1, 2)?; // (B, C, T)
            let err = (pred - x)?.sqr()?;
            let n = mask.sum_all()?.to_scalar::<f32>()?.max(1.0);
            let loss = (err * &mask)?.sum_all()?.affine(1.0 / n as f64, 0.0)?;
            let v = loss.to_scalar::<f32>()? as f64;
            Ok((loss, v))
        }
        SeriesHead::Order(cls) => {
            let o = order_verification(x, config.segments, rng)?;
            let logits = cls.forward(&encoder.forward_t(&o.input, true)?)?;
            Ok((cross_entropy(&logits, &o.labels)?, accuracy(&logits, &o.labels)?))
        }
        SeriesHead::Cpc(pred) => {
            let len = |f: f64| (f * t as f64).round() as usize;
            let w = cpc_windows(x, len(config.cpc_context), len(config.cpc_future), rng)?;
            let c = l2_normalize(&pred.forward(&encoder.forward_t(&w.context, true)?)?)?;
            let z = l2_normalize(&encoder.forward_t(&w.future, true)?)?;
            let logits = (c.matmul(&z.t()?)? / config.temperature)?;
            let targets = Tensor::arange(0u32, x.dim(0)? as u32, x.device())?;
            Ok((cross_entropy(&logits, &targets)?, accuracy(&logits, &targets)?))
        }
        SeriesHead::Contrastive(fc1, fc2) => {
            let aug = time_series(((config.crop * t as f64).round() as usize).max(1));
            let b = x.dim(0)?;
            let views = Tensor::cat(&[aug.apply(x, rng)?, aug.apply(x, rng)?], 0)?;
            let h = fc2.forward(&fc1.forward(&encoder.forward_t(&views, true)?)?.relu()?)?;
            let (z1, z2) = (h.narrow(0, 0, b)?, h.narrow(0, b, b)?);
            let loss = nt_xent(&z1, &z2, config.temperature)?;
            // how often each view's nearest other view is its positive
            let s = l2_normalize(&z1)?.matmul(&l2_normalize(&z2)?.t()?)?;
            let targets = Tensor::arange(0u32, b as u32, x.device())?;
            Ok((loss, accuracy(&s, &targets)?))
        }
    }
}

/// The `format` of a series checkpoint's `config.json`.
const SERIES_FORMAT: &str = "sslab-series-v1";

/// Series `(N, C, T)` or `(N, T)` as a line plot, one line per row (first
/// channel), named by `names` (missing names are numbered).
pub fn series_plot<S: ToString>(title: &str, series: &Tensor, names: &[S]) -> Result<LinePlot> {
    let x = match series.rank() {
        3 => series.narrow(1, 0, 1)?.squeeze(1)?,
        2 => series.clone(),
        _ => candle_core::bail!("series_plot expects (N, C, T) or (N, T), got shape {:?}", series.dims()),
    };
    let rows: Vec<Vec<f32>> = x.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    let mut p = LinePlot::new(title).x_label("time step");
    for (i, r) in rows.iter().enumerate() {
        let name = names.get(i).map(|s| s.to_string()).unwrap_or_else(|| format!("series {i}"));
        p = p.series(&name, r.iter().enumerate().map(|(t, &v)| (t as f64, f64::from(v))).collect());
    }
    Ok(p)
}

/// The 1-D CNN trained end to end with a linear head on `labelled`, starting
/// from `init`'s encoder (fine-tuning; `init` is not changed) or from a random
/// initialisation (`None`: the from-scratch baseline). Returns the test accuracy.
pub fn series_classifier(
    init: Option<&SeriesPretrainer>,
    encoder: &Conv1dEncoderConfig,
    labelled: &SeriesDataset,
    test: &SeriesDataset,
    cfg: &ClassifierConfig,
    dev: &Device,
    seed: u64,
) -> Result<f64> {
    let (c, _) = labelled.series_shape()?;
    let params = Params::new(derive_seed(seed, "scratch"));
    let enc = Conv1dEncoderConfig { in_channels: c, ..encoder.clone() }.init(params.builder(dev).pp("enc"))?;
    train_end_to_end(&enc, enc.feature_dim(), &params, init.map(|r| r.params()), labelled, test, cfg, dev, seed)
}

/// The two baselines of a series comparison under `proto`: the encoder of
/// `cfg` trained from scratch on `labelled` (its accuracy in the fine-tuned
/// column), and the same encoder at its random initialisation (probes).
pub fn series_baselines(
    proto: &FewLabelProtocol,
    cfg: &SeriesPretrainConfig,
    labelled: &SeriesDataset,
    test: &SeriesDataset,
    dev: &Device,
) -> Result<[ComparisonRow; 2]> {
    let scratch_acc = series_classifier(None, &cfg.encoder, labelled, test, &proto.scratch, dev, proto.seed)?;
    let scratch = ComparisonRow {
        name: "from scratch".into(),
        linear: f64::NAN,
        knn: f64::NAN,
        finetune: scratch_acc,
        note: format!("supervised on the labels only, {} steps end to end", proto.scratch.steps),
    };
    let random = SeriesPretrainer::new(cfg.clone(), labelled.series_shape()?, dev)?;
    let mut rand = proto.evaluate("random init", &|x| random.features(x), labelled, test)?;
    rand.note = "the same encoder, untrained".into();
    Ok([scratch, rand])
}

/// A pretrained series encoder under `proto`: linear probe and k-NN on its
/// frozen features, and its accuracy when fine-tuned like the from-scratch baseline.
pub fn evaluate_series_run(
    proto: &FewLabelProtocol,
    name: &str,
    run: &SeriesPretrainer,
    labelled: &SeriesDataset,
    test: &SeriesDataset,
) -> Result<ComparisonRow> {
    let mut row = proto.evaluate(name, &|x| run.features(x), labelled, test)?;
    row.finetune = series_classifier(Some(run), &run.config.encoder, labelled, test, &proto.scratch, &run.device, proto.seed)?;
    row.note = run.history().note();
    Ok(row)
}
