//! Frame-order pretraining on short videos, with its few-label evaluation.

use crate::data::LabelledData;
use crate::eval::{map_batches, train_end_to_end, ClassifierConfig, ComparisonRow, FewLabelProtocol};
use crate::loss::{accuracy, cross_entropy};
use crate::nn::{linear, Linear, Params};
use crate::pretext::{frame_order, frame_order_permutations};
use crate::rng::{derive_seed, SeededRng};
use crate::train::{History, OptimizerConfig, Run, StepLoss, StepSampler};
use candle_core::{Device, Module, ModuleT, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `format` of a frame-order checkpoint's `config.json`.
const VIDEO_FORMAT: &str = "sslab-frame-order-v1";

crate::data::labelled_data! {
    /// Labelled videos `(N, F, C, H, W)` held in memory.
    VideoDataset {
        /// The clips, f32 on the CPU.
        videos
    },
    "clips"
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
    run: Run,
    frame_shape: (usize, usize, usize),
    device: Device,
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
        let run = Run::new(opt, history, config.seed, "video-step-");
        Ok(Self { config: config.clone(), params, encoder, head, run, frame_shape, device: dev.clone() })
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
        self.run.history()
    }

    /// Steps taken.
    pub fn step(&self) -> usize {
        self.run.step()
    }

    /// The parameters (frame CNN under `enc.`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Trains `steps` more steps on the clips of `data` (labels unused).
    pub fn train_for(&mut self, steps: usize, data: &VideoDataset) -> Result<&History> {
        let (_, _, c, h, w) = data.videos.dims5()?;
        let pixels = self.frame_shape.0 * self.frame_shape.1 * self.frame_shape.2;
        if c * h * w != pixels {
            candle_core::bail!("frame-order pretraining: the run was built for frames of {pixels} values, {} has {:?}", data.name, (c, h, w));
        }
        let (cfg, encoder, head, dev) = (&self.config, &self.encoder, &self.head, &self.device);
        let mut sampler = StepSampler::new(data.labels.len(), derive_seed(cfg.seed, "video-batches"))?;
        self.run.train_for(steps, &mut |k: usize, rng: &mut SeededRng| {
            let (x, _) = data.batch(&sampler.batch(k, cfg.batch_size.min(data.labels.len())), dev)?;
            let o = frame_order(&x, cfg.frames, rng)?;
            let f = encoder.frame_features(&o.frames)?.flatten_from(1)?;
            let logits = head.1.forward(&head.0.forward(&f)?.relu()?)?;
            let acc = accuracy(&logits, &o.labels)?;
            Ok(StepLoss::new(cross_entropy(&logits, &o.labels)?, acc))
        })
    }

    /// Saves the run (parameters, optimiser state, settings, progress and
    /// history) into the directory `dir`, atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let (c, h, w) = self.frame_shape;
        self.run.save(dir, VIDEO_FORMAT, serde_json::json!({ "config": self.config, "frame_shape": [c, h, w] }), &self.params, &[])
    }

    /// Loads a run saved by [`FrameOrderPretrainer::save`], ready to continue
    /// training or to compute features.
    pub fn load(dir: impl AsRef<Path>, dev: &Device) -> Result<Self> {
        let ck = Run::open(dir, VIDEO_FORMAT, "an sslab frame-order checkpoint", dev)?;
        let frame_shape: (usize, usize, usize) = ck.entry("frame_shape")?;
        let mut run = Self::new(&ck.entry("config")?, frame_shape, dev)?;
        run.run.restore(&ck, &run.params)?;
        Ok(run)
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
