//! Self-supervised pretraining on sequences: four pretext tasks for time
//! series on one 1-D CNN, and frame-order prediction for video.
//!
//! ```text
//! masked      x̃ = x ⊙ (1 − m);  L = Σ m ⊙ (g(f_t(x̃)) − x)² / Σ m            TST [0]
//! order       x̃ = segments in order (y = 1) or shuffled (y = 0);  L = CE(W f(x̃), y)   [1]
//! CPC         c = f(x[s .. s+c]),  z = f(x[s+c .. s+c+k]);
//!             L = InfoNCE(norm(W c), norm(z), other series' futures as negatives) / τ   [2]
//! contrastive two views of crop + scaling + jitter;  L = NT-Xent(h(f(v₁)), h(f(v₂)))    [3]
//! video       n frames in a shuffled order;  L = CE(W [f(frame₁); …; f(frame_n)], order)  [4]
//! ```
//!
//! \[0\] G. Zerveas et al., "A Transformer-based Framework for Multivariate Time
//!     Series Representation Learning", KDD 2021, arXiv:2010.02803.
//! \[1\] I. Misra, C. L. Zitnick, M. Hebert, "Shuffle and Learn", ECCV 2016, arXiv:1603.08561.
//! \[2\] A. van den Oord, Y. Li, O. Vinyals, "Representation Learning with
//!     Contrastive Predictive Coding", 2018, arXiv:1807.03748.
//! \[3\] E. Eldele et al., "Time-Series Representation Learning via Temporal and
//!     Contextual Contrasting" (TS-TCC), IJCAI 2021, arXiv:2106.14112; T. Chen et
//!     al., SimCLR, 2020, arXiv:2002.05709.
//! \[4\] B. Fernando et al., "Self-Supervised Video Representation Learning With
//!     Odd-One-Out Networks", CVPR 2017, arXiv:1611.06646; H.-Y. Lee et al.,
//!     "Unsupervised Representation Learning by Sorting Sequences", ICCV 2017,
//!     arXiv:1708.01246.
//!
//! Simplifications (each named where it is made): CPC summarises the context
//! and the future window with the same pooled encoder and predicts one future
//! summary (not one encoding per future step through a GRU); the learning
//! rate is constant (no schedule) — these runs are a few hundred steps.

use crate::augment::{time_series, Transform};
use crate::data::{LabelledData, SeriesDataset};
use crate::eval::{map_batches, train_end_to_end, ClassifierConfig, ComparisonRow, FewLabelProtocol};
use crate::loss::{accuracy, cross_entropy, l2_normalize, nt_xent};
use crate::nn::{linear, Conv1dEncoder, Conv1dEncoderConfig, Linear, Params};
use crate::plot::LinePlot;
use crate::pretext::{cpc_windows, frame_order, frame_order_permutations, mask_time_steps, order_verification};
use crate::rng::{derive_seed, SeededRng};
use crate::train::{finite_loss, History, Optim, OptimizerConfig, StepSampler};
use candle_core::{Device, Module, ModuleT, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

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
    opt: Optim,
    history: History,
    device: Device,
    shape: (usize, usize),
    step: usize,
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
        Ok(Self { config, params, encoder, head, opt, history, device: dev.clone(), shape, step: 0 })
    }

    /// The settings.
    pub fn config(&self) -> &SeriesPretrainConfig {
        &self.config
    }

    /// Steps taken.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Loss and metric per step.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The parameters (encoder under `enc.`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    fn loss(&self, x: &Tensor, rng: &mut SeededRng) -> Result<(Tensor, f64)> {
        let t = x.dim(2)?;
        match &self.head {
            SeriesHead::Masked(dec) => {
                let (masked, mask) = mask_time_steps(x, self.config.mask_ratio, self.config.mask_span, rng)?;
                let steps = self.encoder.forward_steps_t(&masked, true)?; // (B, D, T)
                let pred = dec.forward(&steps.transpose(1, 2)?)?.transpose(1, 2)?; // (B, C, T)
                let err = (pred - x)?.sqr()?;
                let n = mask.sum_all()?.to_scalar::<f32>()?.max(1.0);
                let loss = (err * &mask)?.sum_all()?.affine(1.0 / n as f64, 0.0)?;
                let v = loss.to_scalar::<f32>()? as f64;
                Ok((loss, v))
            }
            SeriesHead::Order(cls) => {
                let o = order_verification(x, self.config.segments, rng)?;
                let logits = cls.forward(&self.encoder.forward_t(&o.input, true)?)?;
                Ok((cross_entropy(&logits, &o.labels)?, accuracy(&logits, &o.labels)?))
            }
            SeriesHead::Cpc(pred) => {
                let len = |f: f64| (f * t as f64).round() as usize;
                let w = cpc_windows(x, len(self.config.cpc_context), len(self.config.cpc_future), rng)?;
                let c = l2_normalize(&pred.forward(&self.encoder.forward_t(&w.context, true)?)?)?;
                let z = l2_normalize(&self.encoder.forward_t(&w.future, true)?)?;
                let logits = (c.matmul(&z.t()?)? / self.config.temperature)?;
                let targets = Tensor::arange(0u32, x.dim(0)? as u32, x.device())?;
                Ok((cross_entropy(&logits, &targets)?, accuracy(&logits, &targets)?))
            }
            SeriesHead::Contrastive(fc1, fc2) => {
                let aug = time_series(((self.config.crop * t as f64).round() as usize).max(1));
                let b = x.dim(0)?;
                let views = Tensor::cat(&[aug.apply(x, rng)?, aug.apply(x, rng)?], 0)?;
                let h = fc2.forward(&fc1.forward(&self.encoder.forward_t(&views, true)?)?.relu()?)?;
                let (z1, z2) = (h.narrow(0, 0, b)?, h.narrow(0, b, b)?);
                let loss = nt_xent(&z1, &z2, self.config.temperature)?;
                // how often each view's nearest other view is its positive
                let s = l2_normalize(&z1)?.matmul(&l2_normalize(&z2)?.t()?)?;
                let targets = Tensor::arange(0u32, b as u32, x.device())?;
                Ok((loss, accuracy(&s, &targets)?))
            }
        }
    }

    /// Trains `steps` more steps on `data` (labels unused). Batch `k` and its
    /// pretext randomness depend only on the seed and `k`.
    pub fn train_for(&mut self, steps: usize, data: &SeriesDataset) -> Result<&History> {
        let (c, t) = data.series_shape()?;
        if (c, t) != self.shape {
            candle_core::bail!("series pretraining: the run was built for (C, T) = {:?}, the data {} is ({c}, {t})", self.shape, data.name);
        }
        let mut sampler = StepSampler::new(data.len(), derive_seed(self.config.seed, "series-batches"))?;
        let mut progress = crate::train::Progress::start(&self.history.name.clone(), steps);
        for _ in 0..steps {
            if progress.stopped() {
                break;
            }
            let k = self.step;
            let (x, _) = data.batch(&sampler.batch(k, self.config.batch_size.min(data.len())), &self.device)?;
            let mut rng = SeededRng::new(derive_seed(self.config.seed, &format!("series-step-{k}")));
            let (loss, metric) = self.loss(&x, &mut rng)?;
            let l = finite_loss(&loss, k + 1, &format!("{} pretraining", self.config.task))?;
            self.opt.backward_step(&loss)?;
            self.step += 1;
            self.history.push(self.step, l, metric);
            progress.tick_history(&self.history);
        }
        progress.finish(&self.history.summary());
        Ok(&self.history)
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

/// Labelled videos `(N, F, C, H, W)` held in memory.
#[derive(Clone, Debug)]
pub struct VideoDataset {
    /// The clips, f32 on the CPU.
    pub videos: Tensor,
    /// Class index of each clip.
    pub labels: Vec<u32>,
    /// Name of each class.
    pub class_names: Vec<String>,
    /// Where the clips came from.
    pub name: String,
}

impl VideoDataset {
    /// `n` clips of a square moving in one of four directions
    /// ([`crate::data::synthetic_video`]), labelled by direction.
    pub fn moving_squares(n: usize, frames: usize, size: usize, seed: u64) -> Result<Self> {
        let (videos, labels) = crate::data::synthetic_video(n, frames, size, seed)?;
        Ok(Self {
            videos,
            labels,
            class_names: crate::data::VIDEO_CLASSES.iter().map(|s| s.to_string()).collect(),
            name: "moving squares".into(),
        })
    }

    /// The clips at `indices`.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let (videos, labels) = crate::data::select_rows(&self.videos, &self.labels, indices, "clips", &self.name)?;
        Ok(Self { videos, labels, ..self.clone() })
    }

    /// The first `n` clips as the training split, the rest as the test split.
    pub fn split_at(&self, n: usize) -> Result<(Self, Self)> {
        let len = self.labels.len();
        if n == 0 || n >= len {
            candle_core::bail!("VideoDataset::split_at: need 0 < n < {len}, got {n}");
        }
        Ok((self.select(&(0..n).collect::<Vec<_>>())?, self.select(&(n..len).collect::<Vec<_>>())?))
    }
}

impl LabelledData for VideoDataset {
    fn inputs(&self) -> &Tensor {
        &self.videos
    }
    fn labels(&self) -> &[u32] {
        &self.labels
    }
    fn num_classes(&self) -> usize {
        self.class_names.len()
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn per_class_subset(&self, k: usize, rng: &mut SeededRng) -> Result<Self> {
        let idx = crate::data::per_class_indices(&self.labels, &self.class_names, k, rng, "clips", &self.name)?;
        self.select(&idx)
    }
    fn batch(&self, indices: &[usize], dev: &Device) -> Result<(Tensor, Tensor)> {
        let b = self.select(indices)?;
        Ok((b.videos.to_device(dev)?, Tensor::from_slice(&b.labels, b.labels.len(), dev)?))
    }
}

/// Settings of frame-order pretraining and of its clip encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameOrderConfig {
    /// Frames per tuple (the first `frames` frames of a clip for evaluation).
    pub frames: usize,
    /// Hidden width of the frame encoder.
    pub hidden: usize,
    /// Output width of the frame encoder.
    pub dim: usize,
    /// Clips per step.
    pub batch_size: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// The seed behind initialisation, batches and the shuffles.
    pub seed: u64,
}

impl Default for FrameOrderConfig {
    fn default() -> Self {
        Self { frames: 3, hidden: 128, dim: 64, batch_size: 32, lr: 1e-3, seed: 0 }
    }
}

/// A clip encoder: the same frame encoder (a two-layer MLP on the pixels,
/// which keeps *where* things are — a CNN with global pooling would average
/// the position away) on each of the first `frames` frames, features
/// concatenated in time order: `(B, F, C, H, W) → (B, frames·dim)`.
pub struct ClipEncoder {
    fc1: Linear,
    fc2: Linear,
    frames: usize,
    dim: usize,
}

impl ClipEncoder {
    /// Builds the frame encoder (`fc1`, `fc2` under `vb`) for frames of `pixels = C·H·W` values.
    pub fn new(cfg: &FrameOrderConfig, pixels: usize, vb: candle_nn::VarBuilder) -> Result<Self> {
        if cfg.frames < 2 || cfg.hidden == 0 || cfg.dim == 0 || pixels == 0 {
            candle_core::bail!("ClipEncoder needs frames >= 2 and non-zero widths, got {cfg:?} for {pixels} pixels");
        }
        Ok(Self { fc1: linear(pixels, cfg.hidden, vb.pp("fc1"))?, fc2: linear(cfg.hidden, cfg.dim, vb.pp("fc2"))?, frames: cfg.frames, dim: cfg.dim })
    }

    /// Width of a clip's features.
    pub fn feature_dim(&self) -> usize {
        self.frames * self.dim
    }

    /// Per-frame features `(B, n, dim)` of `frames (B, n, C, H, W)`.
    pub fn frame_features(&self, frames: &Tensor) -> Result<Tensor> {
        let (b, n, c, h, w) = frames.dims5()?;
        let x = frames.reshape((b * n, c * h * w))?;
        self.fc2.forward(&self.fc1.forward(&x)?.relu()?)?.relu()?.reshape((b, n, self.dim))
    }
}

impl ModuleT for ClipEncoder {
    fn forward_t(&self, clips: &Tensor, _train: bool) -> Result<Tensor> {
        crate::nn::expect_rank(clips, 5, "ClipEncoder", "(B, F, C, H, W)")?;
        if clips.dim(1)? < self.frames {
            candle_core::bail!("ClipEncoder uses the first {} frames, got clips of shape {:?}", self.frames, clips.dims());
        }
        self.frame_features(&clips.narrow(1, 0, self.frames)?.contiguous()?)?.flatten_from(1)
    }
}

/// Frame-order pretraining: `frames` consecutive frames from a random start in
/// one of `frames!/2` orders (a permutation or its reverse form one class);
/// a linear classifier on the concatenated frame features names the order.
pub struct FrameOrderPretrainer {
    config: FrameOrderConfig,
    params: Params,
    encoder: ClipEncoder,
    head: (Linear, Linear),
    opt: Optim,
    history: History,
    pixels: usize,
    device: Device,
    step: usize,
}

impl FrameOrderPretrainer {
    /// A run for frames of `frame_shape = (C, H, W)`.
    pub fn new(config: &FrameOrderConfig, frame_shape: (usize, usize, usize), dev: &Device) -> Result<Self> {
        let classes = frame_order_permutations(config.frames)?.len();
        let pixels = frame_shape.0 * frame_shape.1 * frame_shape.2;
        let params = Params::new(derive_seed(config.seed, "init"));
        let vb = params.builder(dev);
        let encoder = ClipEncoder::new(config, pixels, vb.pp("enc"))?;
        // "which frame lies between the others" is not linear in the frame
        // features: the order head has a hidden layer (as in Shuffle and Learn)
        let head = (linear(encoder.feature_dim(), config.hidden, vb.pp("head.fc1"))?, linear(config.hidden, classes, vb.pp("head.fc2"))?);
        let opt = OptimizerConfig::adamw(config.lr, 1e-4).build(params.named_trainable_vars())?;
        let history = History::new("frame-order pretraining", "order accuracy");
        Ok(Self { config: config.clone(), params, encoder, head, opt, history, pixels, device: dev.clone(), step: 0 })
    }

    /// The settings.
    pub fn config(&self) -> &FrameOrderConfig {
        &self.config
    }

    /// Number of order classes (`frames!/2`).
    pub fn num_orders(&self) -> usize {
        self.head.1.weight().dim(0).unwrap_or(0)
    }

    /// Loss and metric per step.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The parameters (frame CNN under `enc.`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Trains `steps` more steps on the clips of `data` (labels unused).
    pub fn train_for(&mut self, steps: usize, data: &VideoDataset) -> Result<&History> {
        let (_, _, c, h, w) = data.videos.dims5()?;
        if c * h * w != self.pixels {
            candle_core::bail!("frame-order pretraining: the run was built for frames of {} values, {} has {:?}", self.pixels, data.name, (c, h, w));
        }
        let cfg = &self.config;
        let mut sampler = StepSampler::new(data.labels.len(), derive_seed(cfg.seed, "video-batches"))?;
        let mut progress = crate::train::Progress::start(&self.history.name.clone(), steps);
        for _ in 0..steps {
            if progress.stopped() {
                break;
            }
            let k = self.step;
            let (x, _) = data.batch(&sampler.batch(k, cfg.batch_size.min(data.labels.len())), &self.device)?;
            let mut rng = SeededRng::new(derive_seed(cfg.seed, &format!("video-step-{k}")));
            let o = frame_order(&x, cfg.frames, &mut rng)?;
            let f = self.encoder.frame_features(&o.frames)?.flatten_from(1)?;
            let logits = self.head.1.forward(&self.head.0.forward(&f)?.relu()?)?;
            let loss = cross_entropy(&logits, &o.labels)?;
            let l = finite_loss(&loss, k + 1, "frame-order pretraining")?;
            let acc = accuracy(&logits, &o.labels)?;
            self.opt.backward_step(&loss)?;
            self.step += 1;
            self.history.push(self.step, l, acc);
            progress.tick_history(&self.history);
        }
        progress.finish(&self.history.summary());
        Ok(&self.history)
    }

    /// Clip features `(N, frames·D)` of `clips`, on the CPU.
    pub fn features(&self, clips: &Tensor) -> Result<Tensor> {
        map_batches(clips, 128, "examples", |x| self.encoder.forward_t(&x.to_device(&self.device)?, false))
    }
}

/// Clip baselines and the frame-order encoder under `proto`: rows
/// "from scratch" (end to end on the labelled clips), "random init" and
/// "frame order" (probes and fine-tuning).
pub fn evaluate_frame_order(
    proto: &FewLabelProtocol,
    run: &FrameOrderPretrainer,
    labelled: &VideoDataset,
    test: &VideoDataset,
) -> Result<Vec<ComparisonRow>> {
    let dev = run.device.clone();
    let scratch = clip_classifier(None, &run.config, labelled, test, &proto.scratch, &dev, proto.seed)?;
    let (_, _, c, h, w) = labelled.videos.dims5()?;
    let random = FrameOrderPretrainer::new(&run.config, (c, h, w), &dev)?;
    let mut rand = proto.evaluate("random init", &|x| random.features(x), labelled, test)?;
    rand.note = "the same clip encoder, untrained".into();
    let mut pre = proto.evaluate("frame order", &|x| run.features(x), labelled, test)?;
    pre.finetune = clip_classifier(Some(run), &run.config, labelled, test, &proto.scratch, &dev, proto.seed)?;
    pre.note = run.history().note();
    let scratch_row = ComparisonRow {
        name: "from scratch".into(),
        linear: f64::NAN,
        knn: f64::NAN,
        finetune: scratch,
        note: format!("supervised on the labels only, {} steps end to end", proto.scratch.steps),
    };
    Ok(vec![scratch_row, rand, pre])
}

/// The clip encoder trained end to end on `labelled` clips, from `init`'s
/// frame CNN (fine-tuning; `init` is not changed) or from scratch (`None`).
/// Returns the test accuracy.
pub fn clip_classifier(
    init: Option<&FrameOrderPretrainer>,
    encoder: &FrameOrderConfig,
    labelled: &VideoDataset,
    test: &VideoDataset,
    cfg: &ClassifierConfig,
    dev: &Device,
    seed: u64,
) -> Result<f64> {
    let (_, _, c, h, w) = labelled.videos.dims5()?;
    let params = Params::new(derive_seed(seed, "scratch"));
    let enc = ClipEncoder::new(encoder, c * h * w, params.builder(dev).pp("enc"))?;
    train_end_to_end(&enc, enc.feature_dim(), &params, init.map(|r| r.params()), labelled, test, cfg, dev, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize) -> SeriesDataset {
        crate::data::synthetic_series(n, 64, 0).unwrap()
    }

    fn tiny(task: SeriesTask) -> SeriesPretrainConfig {
        SeriesPretrainConfig {
            encoder: Conv1dEncoderConfig { widths: vec![8, 16], ..Default::default() },
            batch_size: 16,
            lr: 3e-3,
            ..SeriesPretrainConfig::for_task(task)
        }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn every_series_task_learns_and_is_reproducible() {
        let data = series(128);
        for task in SeriesTask::ALL {
            let mut run = SeriesPretrainer::new(tiny(task), (1, 64), &Device::Cpu).unwrap();
            run.train_for(40, &data).unwrap();
            let h = run.history();
            assert!(h.loss.iter().all(|l| l.is_finite()), "{task}: {:?}", h.loss);
            let (first, last) = (mean(&h.loss[..8]), mean(&h.loss[32..]));
            assert!(last < first, "{task}: loss did not fall: {first} → {last}");
            // same seed, same run
            let mut again = SeriesPretrainer::new(tiny(task), (1, 64), &Device::Cpu).unwrap();
            again.train_for(3, &data).unwrap();
            assert_eq!(&again.history().loss[..3], &h.loss[..3], "{task}: not reproducible");
            assert_eq!(run.features(&data.series.narrow(0, 0, 5).unwrap()).unwrap().dims(), &[5, 16]);
        }
    }

    #[test]
    fn masked_reconstruction_hides_steps_and_other_tasks_refuse() {
        let data = series(16);
        let run = SeriesPretrainer::new(tiny(SeriesTask::Masked), (1, 64), &Device::Cpu).unwrap();
        let (masked, pred, mask) = run.reconstruct(&data.series.narrow(0, 0, 4).unwrap(), 1).unwrap();
        assert_eq!(masked.dims(), &[4, 1, 64]);
        assert_eq!(pred.dims(), masked.dims());
        let hidden = (masked.abs().unwrap() * &mask).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(hidden, 0.0, "masked steps must be zero in the input");
        let order = SeriesPretrainer::new(tiny(SeriesTask::Order), (1, 64), &Device::Cpu).unwrap();
        let err = order.reconstruct(&data.series, 0).unwrap_err().to_string();
        assert!(err.contains("only the masked task"), "{err}");
        let err = SeriesPretrainer::new(SeriesPretrainConfig { segments: 1, ..tiny(SeriesTask::Order) }, (1, 64), &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("segments"), "{err}");
        let mut run = run;
        let other = crate::data::synthetic_series(8, 32, 0).unwrap();
        let err = run.train_for(1, &other).unwrap_err().to_string();
        assert!(err.contains("(1, 64)") && err.contains("(1, 32)"), "{err}");
    }

    #[test]
    fn fine_tuning_copies_the_encoder_and_leaves_the_run_alone() {
        let data = series(96);
        let (train, test) = data.split_last(0.5).unwrap();
        let mut run = SeriesPretrainer::new(tiny(SeriesTask::Contrastive), (1, 64), &Device::Cpu).unwrap();
        run.train_for(5, &train).unwrap();
        let before = run.features(&test.series).unwrap().to_vec2::<f32>().unwrap();
        let labelled = train.per_class_subset(5, &mut SeededRng::new(0)).unwrap();
        let cfg = ClassifierConfig { steps: 200, ..Default::default() };
        let enc = tiny(SeriesTask::Contrastive).encoder;
        let tuned = series_classifier(Some(&run), &enc, &labelled, &test, &cfg, &Device::Cpu, 0).unwrap();
        let scratch = series_classifier(None, &enc, &labelled, &test, &cfg, &Device::Cpu, 0).unwrap();
        assert!(tuned > 0.3 && scratch > 0.3, "4 classes: both should beat chance (0.25), got {tuned} / {scratch}");
        assert_eq!(run.features(&test.series).unwrap().to_vec2::<f32>().unwrap(), before);
    }

    #[test]
    fn series_plot_has_one_line_per_row() {
        let data = series(3);
        let p = series_plot("s", &data.series, &["a", "b"]).unwrap();
        assert_eq!(p.series_len(), 3);
        assert!(series_plot("s", &data.series.unsqueeze(0).unwrap(), &["a"]).is_err());
    }

    #[test]
    fn frame_order_learns_above_chance_and_clips_classify() {
        let videos = VideoDataset::moving_squares(96, 8, 12, 0).unwrap();
        let (train, test) = videos.split_at(64).unwrap();
        let fo = FrameOrderConfig { hidden: 32, dim: 16, lr: 3e-3, ..Default::default() };
        let mut run = FrameOrderPretrainer::new(&fo, (1, 12, 12), &Device::Cpu).unwrap();
        assert_eq!(run.num_orders(), 3);
        run.train_for(400, &train).unwrap();
        let acc = mean(&run.history().metric[350..]);
        assert!(acc > 0.45, "frame order should beat chance (1/3), got {acc}");
        assert_eq!(run.features(&test.videos).unwrap().dims(), &[32, 3 * 16]);
        let labelled = LabelledData::per_class_subset(&train, 2, &mut SeededRng::new(0)).unwrap();
        assert_eq!(labelled.labels.len(), 8);
        let cfg = ClassifierConfig { steps: 20, ..Default::default() };
        let a = clip_classifier(Some(&run), &fo, &labelled, &test, &cfg, &Device::Cpu, 0).unwrap();
        assert!((0.0..=1.0).contains(&a));
        assert!(videos.split_at(0).is_err());
    }
}
