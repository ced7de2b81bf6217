//! Masked and causal language models on a tiny transformer.

use super::N_SPECIAL;
use crate::data::MASK_ID;
use crate::loss::{accuracy, cross_entropy};
use crate::nn::{LmHead, Params, TextEncoder, TextEncoderConfig};
use crate::pretext::mask_token_ids;
use crate::rng::{derive_seed, SeededRng};
use crate::train::{History, OptimizerConfig, Run, StepLoss};
use candle_core::{Device, Module, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The `format` of a language-model checkpoint's `config.json`.
const LM_FORMAT: &str = "sslab-lm-v1";

/// What a [`LanguageModel`] learns to predict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LmObjective {
    /// BERT: 15 % of the tokens masked (80 % `[MASK]`, 10 % random, 10 % kept), predict them.
    Masked,
    /// GPT: predict every next token, with causal attention.
    Causal,
}

impl fmt::Display for LmObjective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LmObjective::Masked => "masked LM",
            LmObjective::Causal => "causal LM",
        })
    }
}

/// Settings of a language model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LmConfig {
    /// Masked or causal.
    pub objective: LmObjective,
    /// Tokens per training window (≤ the encoder's `max_len`).
    pub context: usize,
    /// Hidden width.
    pub dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Windows per step.
    pub batch_size: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// Masked: fraction of tokens picked.
    pub mask_ratio: f64,
    /// The seed behind initialisation, windows and masks.
    pub seed: u64,
}

impl LmConfig {
    /// A tiny model (64 wide, 2 blocks, 4 heads, windows of 64 tokens).
    pub fn new(objective: LmObjective) -> Self {
        Self { objective, context: 64, dim: 64, depth: 2, heads: 4, steps: 300, batch_size: 32, lr: 2e-3, mask_ratio: 0.15, seed: 0 }
    }

    pub(super) fn encoder(&self, vocab_size: usize) -> TextEncoderConfig {
        TextEncoderConfig {
            vocab_size,
            max_len: self.context,
            dim: self.dim,
            depth: self.depth,
            heads: self.heads,
            mlp_ratio: 2.0,
            causal: self.objective == LmObjective::Causal,
        }
    }
}

/// A transformer language model (`enc.*`, tied output head `head.*`) and its training state.
pub struct LanguageModel {
    pub(super) config: LmConfig,
    pub(super) params: Params,
    pub(super) encoder: TextEncoder,
    pub(super) head: LmHead,
    pub(super) run: Run,
    pub(super) device: Device,
    pub(super) vocab_size: usize,
}

/// `n` random windows of `len` tokens of `ids` (starts drawn from `rng`).
fn windows(ids: &[u32], len: usize, n: usize, rng: &mut SeededRng) -> Result<Vec<Vec<u32>>> {
    if ids.len() < len + 1 {
        candle_core::bail!("the corpus has {} tokens, fewer than a window of {} + 1", ids.len(), len);
    }
    Ok((0..n).map(|_| {
        let s = rng.below(ids.len() - len);
        ids[s..s + len + 1].to_vec()
    }).collect())
}

/// Rows of token ids as a `(B, L)` u32 tensor on `dev`.
fn ids_tensor(rows: &[Vec<u32>], dev: &Device) -> Result<Tensor> {
    let (b, l) = (rows.len(), rows.first().map_or(0, |r| r.len()));
    Tensor::from_vec(rows.concat(), (b, l), dev)
}

/// One training batch of `config.objective` from random windows of `ids`:
/// the logits of the predicted positions and their target ids.
fn lm_batch(
    config: &LmConfig,
    encoder: &TextEncoder,
    head: &LmHead,
    ids: &[u32],
    vocab_size: usize,
    rng: &mut SeededRng,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let (l, b) = (config.context, config.batch_size);
    let win = windows(ids, l, b, rng)?;
    match config.objective {
        LmObjective::Causal => {
            let x = ids_tensor(&win.iter().map(|w| w[..l].to_vec()).collect::<Vec<_>>(), dev)?;
            let y = ids_tensor(&win.iter().map(|w| w[1..].to_vec()).collect::<Vec<_>>(), dev)?;
            let logits = head.forward(&encoder.forward(&x)?)?;
            Ok((logits.reshape((b * l, vocab_size))?, y.flatten_all()?))
        }
        LmObjective::Masked => {
            let specials: Vec<u32> = (0..N_SPECIAL).collect();
            let mut inputs = Vec::with_capacity(b);
            let (mut pos, mut tgt) = (Vec::new(), Vec::new());
            for (i, w) in win.iter().enumerate() {
                let m = mask_token_ids(&w[..l], config.mask_ratio, MASK_ID, vocab_size, &specials, rng)?;
                for p in m.positions() {
                    pos.push((i * l + p) as u32);
                    tgt.push(w[p]);
                }
                inputs.push(m.input);
            }
            if pos.is_empty() {
                // nothing masked in the whole batch (tiny batches only): predict the first token
                pos.push(0);
                tgt.push(win[0][0]);
            }
            let h = encoder.forward(&ids_tensor(&inputs, dev)?)?.reshape((b * l, config.dim))?;
            let n = pos.len();
            let h = h.index_select(&Tensor::from_vec(pos, n, dev)?, 0)?;
            Ok((head.forward(&h)?, Tensor::from_vec(tgt, n, dev)?))
        }
    }
}

impl LanguageModel {
    /// A model for a vocabulary of `vocab_size` ids.
    pub fn new(config: LmConfig, vocab_size: usize, dev: &Device) -> Result<Self> {
        if config.batch_size == 0 || config.context < 2 || !(0.0..1.0).contains(&config.mask_ratio) {
            candle_core::bail!("language model needs batch_size > 0, context >= 2 and mask_ratio in [0, 1), got {config:?}");
        }
        let params = Params::new(derive_seed(config.seed, "lm-init"));
        let vb = params.builder(dev);
        let encoder = config.encoder(vocab_size).init(vb.pp("enc"))?;
        let head = LmHead::tied(&encoder, vb.pp("head"))?;
        let opt = OptimizerConfig::adamw(config.lr, 0.01).build(params.named_trainable_vars())?;
        let history = History::new(&config.objective.to_string(), "token accuracy");
        let run = Run::new(opt, history, config.seed, "lm-step-");
        Ok(Self { config, params, encoder, head, run, device: dev.clone(), vocab_size })
    }

    /// The settings.
    pub fn config(&self) -> &LmConfig {
        &self.config
    }

    /// Loss and metric per step.
    pub fn history(&self) -> &History {
        self.run.history()
    }

    /// Steps taken.
    pub fn step(&self) -> usize {
        self.run.step()
    }

    /// The size of the vocabulary it reads and predicts.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The parameters (encoder under `enc.`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The transformer.
    pub fn encoder(&self) -> &TextEncoder {
        &self.encoder
    }

    /// Trains `steps` more steps on random windows of `ids`.
    pub fn train_for(&mut self, steps: usize, ids: &[u32]) -> Result<&History> {
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.vocab_size) {
            candle_core::bail!("language model: token id {bad} is outside its vocabulary of {}", self.vocab_size);
        }
        let (config, encoder, head, dev, vocab) = (&self.config, &self.encoder, &self.head, &self.device, self.vocab_size);
        self.run.train_for(steps, &mut |_k: usize, rng: &mut SeededRng| {
            let (logits, targets) = lm_batch(config, encoder, head, ids, vocab, rng, dev)?;
            let acc = accuracy(&logits, &targets)?;
            Ok(StepLoss::new(cross_entropy(&logits, &targets)?, acc))
        })
    }

    /// Saves the model (parameters, optimiser state, settings, progress and
    /// history) into the directory `dir`, atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let meta = serde_json::json!({ "config": self.config, "vocab_size": self.vocab_size });
        self.run.save(dir, LM_FORMAT, meta, &self.params, &[])
    }

    /// Loads a model saved by [`LanguageModel::save`], ready to continue
    /// training (the same windows as an uninterrupted run) or to fill masks.
    pub fn load(dir: impl AsRef<Path>, dev: &Device) -> Result<Self> {
        let ck = Run::open(dir, LM_FORMAT, "an sslab language-model checkpoint", dev)?;
        let mut m = Self::new(ck.entry("config")?, ck.entry("vocab_size")?, dev)?;
        m.run.restore(&ck, &m.params)?;
        Ok(m)
    }

    /// The `k` most probable tokens (id, probability) at every `[MASK]` of `ids`
    /// (at most `context` tokens), in order of position.
    pub fn fill_masks(&self, ids: &[u32], k: usize) -> Result<Vec<(usize, Vec<(u32, f32)>)>> {
        if ids.is_empty() || ids.len() > self.config.context {
            candle_core::bail!("fill_masks: need 1 to {} tokens, got {}", self.config.context, ids.len());
        }
        let x = ids_tensor(&[ids.to_vec()], &self.device)?;
        let probs = candle_nn::ops::softmax_last_dim(&self.head.forward(&self.encoder.forward(&x)?)?.squeeze(0)?)?;
        let mut out = Vec::new();
        for (p, _) in ids.iter().enumerate().filter(|(_, &t)| t == MASK_ID) {
            let row: Vec<f32> = probs.get(p)?.to_vec1()?;
            let mut order: Vec<usize> = (N_SPECIAL as usize..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            out.push((p, order.into_iter().take(k).map(|i| (i as u32, row[i])).collect()));
        }
        Ok(out)
    }

    /// Continues `prompt` by `n` tokens, sampling from `softmax(logits / temperature)`
    /// with `rng` (causal models only; the context slides over the last `context` tokens).
    pub fn generate(&self, prompt: &[u32], n: usize, temperature: f64, rng: &mut SeededRng) -> Result<Vec<u32>> {
        if self.config.objective != LmObjective::Causal {
            candle_core::bail!("generate: only a causal language model generates text, this one is a {}", self.config.objective);
        }
        if prompt.is_empty() || !(temperature > 0.0) {
            candle_core::bail!("generate: need a non-empty prompt and temperature > 0, got {} tokens, temperature {temperature}", prompt.len());
        }
        let mut ids = prompt.to_vec();
        for _ in 0..n {
            let start = ids.len().saturating_sub(self.config.context);
            let x = ids_tensor(&[ids[start..].to_vec()], &self.device)?;
            let logits = self.head.forward(&self.encoder.forward(&x)?)?.squeeze(0)?;
            let last: Vec<f32> = (logits.get(logits.dim(0)? - 1)? / temperature)?.to_vec1()?;
            let m = last.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let w: Vec<f64> = last.iter().enumerate().map(|(i, &v)| if i < N_SPECIAL as usize { 0.0 } else { f64::from((v - m).exp()) }).collect();
            let total: f64 = w.iter().sum();
            let mut u = f64::from(rng.uniform()) * total;
            let mut pick = w.len() - 1;
            for (i, wi) in w.iter().enumerate() {
                if u < *wi {
                    pick = i;
                    break;
                }
                u -= wi;
            }
            ids.push(pick as u32);
        }
        Ok(ids[prompt.len()..].to_vec())
    }
}
