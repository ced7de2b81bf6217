//! Masked and causal language models on a tiny transformer.

use super::N_SPECIAL;
use crate::data::MASK_ID;
use crate::loss::{accuracy, cross_entropy};
use crate::nn::{LmHead, Params, TextEncoder, TextEncoderConfig};
use crate::pretext::mask_token_ids;
use crate::rng::{derive_seed, SeededRng};
use crate::train::{finite_loss, History, Optim, OptimizerConfig};
use candle_core::{Device, Module, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

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
    pub(super) opt: Optim,
    pub(super) history: History,
    pub(super) device: Device,
    pub(super) vocab_size: usize,
    pub(super) step: usize,
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
        Ok(Self { config, params, encoder, head, opt, history, device: dev.clone(), vocab_size, step: 0 })
    }

    /// The settings.
    pub fn config(&self) -> &LmConfig {
        &self.config
    }

    /// Loss and metric per step.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The parameters (encoder under `enc.`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The transformer.
    pub fn encoder(&self) -> &TextEncoder {
        &self.encoder
    }

    fn ids_tensor(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let (b, l) = (rows.len(), rows.first().map_or(0, |r| r.len()));
        Tensor::from_vec(rows.concat(), (b, l), &self.device)
    }

    /// Trains `steps` more steps on random windows of `ids`.
    pub fn train_for(&mut self, steps: usize, ids: &[u32]) -> Result<&History> {
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.vocab_size) {
            candle_core::bail!("language model: token id {bad} is outside its vocabulary of {}", self.vocab_size);
        }
        let (l, b) = (self.config.context, self.config.batch_size);
        let mut progress = crate::train::Progress::start(&self.history.name.clone(), steps);
        for _ in 0..steps {
            if progress.stopped() {
                break;
            }
            let k = self.step;
            let mut rng = SeededRng::new(derive_seed(self.config.seed, &format!("lm-step-{k}")));
            let win = windows(ids, l, b, &mut rng)?;
            let (logits, targets) = match self.config.objective {
                LmObjective::Causal => {
                    let x = self.ids_tensor(&win.iter().map(|w| w[..l].to_vec()).collect::<Vec<_>>())?;
                    let y = self.ids_tensor(&win.iter().map(|w| w[1..].to_vec()).collect::<Vec<_>>())?;
                    let logits = self.head.forward(&self.encoder.forward(&x)?)?;
                    (logits.reshape((b * l, self.vocab_size))?, y.flatten_all()?)
                }
                LmObjective::Masked => {
                    let specials: Vec<u32> = (0..N_SPECIAL).collect();
                    let mut inputs = Vec::with_capacity(b);
                    let (mut pos, mut tgt) = (Vec::new(), Vec::new());
                    for (i, w) in win.iter().enumerate() {
                        let m = mask_token_ids(&w[..l], self.config.mask_ratio, MASK_ID, self.vocab_size, &specials, &mut rng)?;
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
                    let h = self.encoder.forward(&self.ids_tensor(&inputs)?)?.reshape((b * l, self.config.dim))?;
                    let n = pos.len();
                    let h = h.index_select(&Tensor::from_vec(pos, n, &self.device)?, 0)?;
                    (self.head.forward(&h)?, Tensor::from_vec(tgt, n, &self.device)?)
                }
            };
            let loss = cross_entropy(&logits, &targets)?;
            let lv = finite_loss(&loss, k + 1, &self.config.objective.to_string())?;
            let acc = accuracy(&logits, &targets)?;
            self.opt.backward_step(&loss)?;
            self.step += 1;
            self.history.push(self.step, lv, acc);
            progress.tick_history(&self.history);
        }
        progress.finish(&self.history.summary());
        Ok(&self.history)
    }

    /// The `k` most probable tokens (id, probability) at every `[MASK]` of `ids`
    /// (at most `context` tokens), in order of position.
    pub fn fill_masks(&self, ids: &[u32], k: usize) -> Result<Vec<(usize, Vec<(u32, f32)>)>> {
        if ids.is_empty() || ids.len() > self.config.context {
            candle_core::bail!("fill_masks: need 1 to {} tokens, got {}", self.config.context, ids.len());
        }
        let x = self.ids_tensor(&[ids.to_vec()])?;
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
            let x = self.ids_tensor(&[ids[start..].to_vec()])?;
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
