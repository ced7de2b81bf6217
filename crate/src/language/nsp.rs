//! Next-sentence prediction.

use super::{LmConfig, LmObjective};
use crate::data::{CLS_ID, PAD_ID, SEP_ID};
use crate::loss::{accuracy, cross_entropy};
use crate::nn::{linear, Linear, Params, TextEncoder};
use crate::pretext::{nsp_input, nsp_pairs};
use crate::rng::{derive_seed, SeededRng};
use crate::train::{History, OptimizerConfig, Run, StepLoss, StepSampler};
use candle_core::{Device, Module, Result, Tensor};
use std::path::Path;

/// The `format` of a next-sentence checkpoint's `config.json`.
const NSP_FORMAT: &str = "sslab-nsp-v1";

/// Is-next logits `(B, 2)` from the `[CLS]` state of `ids` under `padding`.
fn nsp_logits(encoder: &TextEncoder, head: &Linear, ids: &Tensor, padding: &Tensor) -> Result<Tensor> {
    head.forward(&encoder.pooled(ids, Some(padding), crate::nn::Pooling::Cls)?)
}

/// Next-sentence prediction on sentence pairs: the encoder of `lm`'s shape
/// (not causal) reads `[CLS] A [SEP] B [SEP]` (padded to `context`), a linear
/// head on the `[CLS]` state says whether B follows A.
pub struct NextSentence {
    params: Params,
    encoder: TextEncoder,
    head: Linear,
    run: Run,
    lm: LmConfig,
    vocab_size: usize,
    device: Device,
}

/// Sentence pairs as padded id rows `(N, L)`, padding masks and labels (1 = is next).
pub struct NspBatch {
    /// `[CLS] A [SEP] B [SEP] [PAD]…`, u32 `(N, L)`.
    pub ids: Tensor,
    /// 1 for tokens, 0 for padding, f32 `(N, L)`.
    pub padding: Tensor,
    /// u32 `(N,)`.
    pub labels: Tensor,
}

impl NspBatch {
    /// The first `fraction` of the pairs and the rest (e.g. 0.8: training and held-out pairs).
    pub fn split(&self, fraction: f64) -> Result<(NspBatch, NspBatch)> {
        let n = self.labels.dim(0)?;
        let k = (fraction * n as f64).round() as usize;
        if !(0.0..=1.0).contains(&fraction) || k == 0 || k >= n {
            candle_core::bail!("NspBatch::split: fraction {fraction} of {n} pairs leaves one side empty");
        }
        let part = |a: usize, len: usize| -> Result<NspBatch> {
            Ok(NspBatch { ids: self.ids.narrow(0, a, len)?, padding: self.padding.narrow(0, a, len)?, labels: self.labels.narrow(0, a, len)? })
        };
        Ok((part(0, k)?, part(k, n - k)?))
    }
}

/// NSP pairs from consecutive `sentences` (each truncated so that a pair fits
/// `context` tokens), drawn with `rng`.
pub fn nsp_batch(sentences: &[Vec<u32>], context: usize, rng: &mut SeededRng, dev: &Device) -> Result<NspBatch> {
    let half = context.saturating_sub(3) / 2;
    if half == 0 {
        candle_core::bail!("nsp_batch: context {context} is too short for [CLS] A [SEP] B [SEP]");
    }
    let cut: Vec<Vec<u32>> = sentences.iter().map(|s| s[..s.len().min(half)].to_vec()).collect();
    let pairs = nsp_pairs(&cut, rng)?;
    let (mut ids, mut pad, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (a, b, next) in &pairs {
        let (row, _) = nsp_input(a, b, CLS_ID, SEP_ID);
        let n = row.len();
        ids.extend(row.into_iter().chain(std::iter::repeat_n(PAD_ID, context - n)));
        pad.extend((0..context).map(|i| if i < n { 1f32 } else { 0.0 }));
        labels.push(u32::from(*next));
    }
    let n = labels.len();
    Ok(NspBatch {
        ids: Tensor::from_vec(ids, (n, context), dev)?,
        padding: Tensor::from_vec(pad, (n, context), dev)?,
        labels: Tensor::from_vec(labels, n, dev)?,
    })
}

impl NextSentence {
    /// A model with `lm`'s sizes (objective ignored: attention is bidirectional).
    pub fn new(lm: &LmConfig, vocab_size: usize, dev: &Device) -> Result<Self> {
        let params = Params::new(derive_seed(lm.seed, "nsp-init"));
        let vb = params.builder(dev);
        let cfg = LmConfig { objective: LmObjective::Masked, ..lm.clone() };
        let encoder = cfg.encoder(vocab_size).init(vb.pp("enc"))?;
        let head = linear(lm.dim, 2, vb.pp("head"))?;
        let opt = OptimizerConfig::adamw(lm.lr, 0.01).build(params.named_trainable_vars())?;
        let history = History::new("next-sentence prediction", "accuracy");
        let run = Run::new(opt, history, lm.seed, "nsp-step-");
        Ok(Self { params, encoder, head, run, lm: cfg, vocab_size, device: dev.clone() })
    }

    /// Loss and accuracy per step.
    pub fn history(&self) -> &History {
        self.run.history()
    }

    /// Steps taken.
    pub fn step(&self) -> usize {
        self.run.step()
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Trains `steps` more steps on minibatches of `pairs`.
    pub fn train_for(&mut self, steps: usize, pairs: &NspBatch) -> Result<&History> {
        let n = pairs.labels.dim(0)?;
        if pairs.ids.dim(1)? > self.lm.context {
            candle_core::bail!("next-sentence prediction: pairs of {} tokens, the model reads at most {}", pairs.ids.dim(1)?, self.lm.context);
        }
        let mut sampler = StepSampler::new(n, derive_seed(self.lm.seed, "nsp-batches"))?;
        let (encoder, head, batch, dev) = (&self.encoder, &self.head, self.lm.batch_size.min(n), &self.device);
        self.run.train_for(steps, &mut |k: usize, _rng: &mut SeededRng| {
            let idx: Vec<u32> = sampler.batch(k, batch).iter().map(|&i| i as u32).collect();
            let idx = Tensor::from_vec(idx, batch, dev)?;
            let logits = nsp_logits(encoder, head, &pairs.ids.index_select(&idx, 0)?, &pairs.padding.index_select(&idx, 0)?)?;
            let y = pairs.labels.index_select(&idx, 0)?;
            let acc = accuracy(&logits, &y)?;
            Ok(StepLoss::new(cross_entropy(&logits, &y)?, acc))
        })
    }

    /// Saves the model (parameters, optimiser state, settings, progress and
    /// history) into the directory `dir`, atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let meta = serde_json::json!({ "config": self.lm, "vocab_size": self.vocab_size });
        self.run.save(dir, NSP_FORMAT, meta, &self.params, &[])
    }

    /// Loads a model saved by [`NextSentence::save`], ready to continue training.
    pub fn load(dir: impl AsRef<Path>, dev: &Device) -> Result<Self> {
        let ck = Run::open(dir, NSP_FORMAT, "an sslab next-sentence checkpoint", dev)?;
        let lm: LmConfig = ck.entry("config")?;
        let mut m = Self::new(&lm, ck.entry("vocab_size")?, dev)?;
        m.run.restore(&ck, &m.params)?;
        Ok(m)
    }

    /// Accuracy on `pairs` (e.g. held-out ones).
    pub fn accuracy(&self, pairs: &NspBatch) -> Result<f64> {
        accuracy(&nsp_logits(&self.encoder, &self.head, &pairs.ids, &pairs.padding)?, &pairs.labels)
    }
}
