//! [`Clip`]: the two towers, their parameters and the training run.

use super::towers::Towers;
use super::ClipConfig;
use crate::data::{CaptionedImages, Tokenizer};
use crate::loss::{clip, clip_with_logit_scale, l2_normalize};
use crate::nn::Params;
use crate::rng::{derive_seed, SeededRng};
use crate::train::{History, Objective, OptimizerConfig, Run, Schedule, StepLoss, StepSampler};
use candle_core::{Device, Result, Tensor, D};
use std::path::Path;

/// The `format` of a CLIP checkpoint's `config.json`.
const CLIP_FORMAT: &str = "sslab-clip-v1";

/// A CLIP model: image encoder `img.*` and projection `img_proj.*`, text
/// encoder `txt.*` and projection `txt_proj.*`, the logit scale `logit_scale`.
pub struct Clip {
    config: ClipConfig,
    params: Params,
    pub(super) towers: Towers,
    run: Run,
}

/// One CLIP step on a batch of image–caption pairs.
struct ClipStep<'a> {
    towers: &'a Towers,
    config: &'a ClipConfig,
    data: &'a CaptionedImages,
    sampler: StepSampler,
}

impl Objective for ClipStep<'_> {
    fn step_loss(&mut self, k: usize, _rng: &mut SeededRng) -> Result<StepLoss> {
        let b = self.config.batch_size;
        let batch = self.data.select(&self.sampler.batch(k, b))?;
        let img = self.towers.image_embed(&batch.images, true)?;
        let txt = self.towers.text_embed(&batch.captions())?;
        let loss = if self.config.learn_temperature {
            clip_with_logit_scale(&img, &txt, &self.towers.logit_scale)?
        } else {
            clip(&img, &txt, self.config.temperature)?
        };
        // in-batch accuracy: the caption picked is the image's own text (duplicates count)
        let picked: Vec<u32> = l2_normalize(&img)?.matmul(&l2_normalize(&txt)?.t()?)?.argmax(D::Minus1)?.to_vec1()?;
        let correct = picked.iter().enumerate().filter(|(i, &j)| batch.attributes[*i] == batch.attributes[j as usize]).count();
        Ok(StepLoss::new(loss, correct as f64 / b as f64))
    }

    /// The temperature after the update.
    fn after_step(&mut self, _k: usize) -> Result<Vec<(&'static str, f64)>> {
        Ok(vec![("temperature", self.towers.temperature()?)])
    }
}

impl Clip {
    /// A model at initialisation; its vocabulary is the words of the 128 captions.
    ///
    /// # Errors
    /// If a setting is out of range ([`ClipConfig::check`]).
    pub fn new(config: ClipConfig, dev: &Device) -> Result<Self> {
        config.check()?;
        let params = Params::new(derive_seed(config.seed, "clip-init"));
        let towers = Towers::new(&config, params.builder(dev), dev)?;
        let opt = OptimizerConfig::adamw(config.lr, config.weight_decay).build(params.named_trainable_vars())?;
        let history = History::new("clip", "in-batch image→text accuracy");
        let run = Run::new(opt, history, config.seed, "clip-step-");
        Ok(Self { config, params, towers, run })
    }

    /// The settings.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// Training steps taken so far.
    pub fn steps_taken(&self) -> usize {
        self.run.step()
    }

    /// Saves the model (parameters, optimiser state, settings, progress and
    /// history) into the directory `dir`, atomically: `config.json`,
    /// `model.safetensors`, `optimizer.safetensors`.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.run.save(dir, CLIP_FORMAT, serde_json::json!({ "config": self.config }), &self.params, &[])
    }

    /// Loads a model saved by [`Clip::save`], ready to continue training
    /// (the same batches and schedule as an uninterrupted run) or to embed.
    ///
    /// # Errors
    /// If `dir` is not a CLIP checkpoint, or a parameter is missing or has
    /// another shape; the message names the directory and the parameter.
    pub fn load(dir: impl AsRef<Path>, dev: &Device) -> Result<Self> {
        let ck = Run::open(dir, CLIP_FORMAT, "an sslab CLIP checkpoint", dev)?;
        let mut m = Self::new(ck.entry("config")?, dev)?;
        m.run.restore(&ck, &m.params)?;
        Ok(m)
    }

    /// Loss and in-batch accuracy per step, and the temperature as the part "temperature".
    pub fn history(&self) -> &History {
        self.run.history()
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The caption vocabulary.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.towers.tokenizer
    }

    /// The current temperature τ = 1 / min(e^s, 100).
    pub fn temperature(&self) -> Result<f64> {
        self.towers.temperature()
    }

    /// Trains `steps` more steps on random batches of `data`'s pairs (one
    /// seed-driven order; warm-up and cosine decay over `config.steps`, or
    /// over all the steps asked for when that is more).
    ///
    /// # Errors
    /// If `data` has fewer pairs than a batch, or the loss is not finite.
    pub fn train_for(&mut self, steps: usize, data: &CaptionedImages) -> Result<&History> {
        let b = self.config.batch_size;
        if data.len() < b {
            candle_core::bail!("clip: {} has {} pairs, fewer than a batch of {b}", data.name, data.len());
        }
        let total_steps = self.config.steps.max(self.run.step() + steps);
        self.run.set_schedule(Schedule::WarmupCosine { peak: self.config.lr, end: 0.0, warmup_steps: total_steps / 10, total_steps });
        let sampler = StepSampler::new(data.len(), derive_seed(self.config.seed, "clip-batches"))?;
        let mut step = ClipStep { towers: &self.towers, config: &self.config, data, sampler };
        self.run.train_for(steps, &mut step)
    }

    /// L2-normalised image embeddings `(N, E)` on the CPU, in batches, in evaluation mode.
    pub fn encode_images(&self, images: &Tensor) -> Result<Tensor> {
        self.towers.encode_images(images)
    }

    /// L2-normalised text embeddings `(M, E)` on the CPU.
    ///
    /// # Errors
    /// Naming a word outside the captions' vocabulary.
    pub fn encode_texts(&self, captions: &[String]) -> Result<Tensor> {
        self.towers.encode_texts(captions)
    }

    /// Cosine similarities `(N, M)` of `images` and `captions`.
    pub fn similarity(&self, images: &Tensor, captions: &[String]) -> Result<Tensor> {
        self.towers.similarity(images, captions)
    }
}
