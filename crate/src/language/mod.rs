//! Self-supervised learning on text: word vectors (skip-gram and CBOW with
//! word2vec's objectives), masked and causal language models on a tiny
//! transformer, next-sentence prediction, and a few-label probe of what the
//! representations learned.
//!
//! ```text
//! skip-gram  L = −log σ(u_o · v_c) − Σ_{n ~ P^0.75} log σ(−u_n · v_c)                  [0]
//! CBOW       h = mean_{j≠0} v_{t+j};  L = −log σ(u_t · h) − Σ_n log σ(−u_n · h)          [0]
//! masked LM  L = CE(head(f(x̃))_t, x_t) over the masked positions t (15 %, 80/10/10)      [1]
//! causal LM  L = Σ_t CE(head(f(x_{<t+1}))_t, x_{t+1})                                       [2]
//! NSP        L = CE(W f([CLS] A [SEP] B [SEP])_CLS, is_next)                               [1]
//! ```
//!
//! \[0\] T. Mikolov, I. Sutskever, K. Chen, G. Corrado, J. Dean, "Distributed
//!     Representations of Words and Phrases and their Compositionality",
//!     NeurIPS 2013, arXiv:1310.4546.
//! \[1\] J. Devlin, M.-W. Chang, K. Lee, K. Toutanova, "BERT", NAACL 2019, arXiv:1810.04805.
//! \[2\] A. Radford, K. Narasimhan, T. Salimans, I. Sutskever, "Improving Language
//!     Understanding by Generative Pre-Training", 2018 (GPT).
//!
//! Choices: both word models use negative sampling (5 noise words from the
//! unigram distribution ^ 0.75); learning rates are constant; the window is
//! not shrunk at random and frequent words are not subsampled.

use crate::data::{LabelledData, TextCorpus, Tokenizer, CLS_ID, MASK_ID, PAD_ID, SEP_ID};
use crate::eval::{train_end_to_end, ClassifierConfig, ComparisonRow, FewLabelProtocol};
use crate::loss::{accuracy, cross_entropy, l2_normalize};
use crate::nn::{linear, LmHead, Linear, Params, TextEncoder, TextEncoderConfig};
use crate::pretext::{mask_token_ids, nsp_input, nsp_pairs, skipgram_pairs};
use crate::rng::{derive_seed, SeededRng};
use crate::train::{finite_loss, History, Optim, OptimizerConfig, StepSampler};
use candle_core::{DType, Device, Module, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Number of special ids at the start of every vocabulary (`[PAD]` … `[SEP]`).
const N_SPECIAL: u32 = 5;

// ---------------------------------------------------------------- word vectors

/// Which word2vec model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordModel {
    /// Predict each context word from the centre word, with negative sampling.
    SkipGram,
    /// Predict the centre word from the mean of its context words.
    Cbow,
}

impl fmt::Display for WordModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WordModel::SkipGram => "skip-gram",
            WordModel::Cbow => "CBOW",
        })
    }
}

/// Settings of word-vector training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Word2VecConfig {
    /// Skip-gram or CBOW.
    pub model: WordModel,
    /// Vector width.
    pub dim: usize,
    /// Context words on each side.
    pub window: usize,
    /// Noise words per example (drawn from the unigram distribution ^ 0.75).
    pub negatives: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Pairs (skip-gram) or windows (CBOW) per step.
    pub batch_size: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// The seed behind initialisation, negatives and batches.
    pub seed: u64,
}

impl Word2VecConfig {
    /// Defaults for a corpus of about 10⁵ words on a CPU.
    pub fn new(model: WordModel) -> Self {
        Self { model, dim: 64, window: 2, negatives: 5, steps: 1500, batch_size: 1024, lr: 5e-3, seed: 0 }
    }
}

/// Trained word vectors, unit length, with their words.
#[derive(Clone, Debug)]
pub struct WordVectors {
    words: Vec<String>,
    vectors: Tensor,
}

impl WordVectors {
    /// Vectors `(V, D)` (unit rows) for `words` (one per row).
    pub fn new(words: Vec<String>, vectors: &Tensor) -> Result<Self> {
        if vectors.dim(0)? != words.len() {
            candle_core::bail!("WordVectors: {} words but vectors of shape {:?}", words.len(), vectors.dims());
        }
        Ok(Self { words, vectors: l2_normalize(&vectors.to_device(&Device::Cpu)?.detach())? })
    }

    fn index(&self, word: &str) -> Result<usize> {
        self.words.iter().position(|w| w == word).ok_or_else(|| {
            candle_core::Error::Msg(format!("word {word:?} is not in the vocabulary of {} words", self.words.len()))
        })
    }

    fn ranked(&self, query: &Tensor, exclude: &[usize], k: usize) -> Result<Vec<(String, f32)>> {
        let sims: Vec<f32> = self.vectors.matmul(&l2_normalize(&query.unsqueeze(1)?.t()?)?.t()?)?.squeeze(1)?.to_vec1()?;
        let mut order: Vec<usize> = (N_SPECIAL as usize..sims.len()).filter(|i| !exclude.contains(i)).collect();
        order.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]));
        Ok(order.into_iter().take(k).map(|i| (self.words[i].clone(), sims[i])).collect())
    }

    /// The `k` words most similar (cosine) to `word`, without itself.
    pub fn nearest(&self, word: &str, k: usize) -> Result<Vec<(String, f32)>> {
        let i = self.index(word)?;
        self.ranked(&self.vectors.get(i)?, &[i], k)
    }

    /// `a : b :: c : ?` — the `k` words nearest to `b − a + c`, without the three.
    pub fn analogy(&self, a: &str, b: &str, c: &str, k: usize) -> Result<Vec<(String, f32)>> {
        let (ia, ib, ic) = (self.index(a)?, self.index(b)?, self.index(c)?);
        let q = ((self.vectors.get(ib)? - self.vectors.get(ia)?)? + self.vectors.get(ic)?)?;
        self.ranked(&q, &[ia, ib, ic], k)
    }

    /// Cosine similarity of two words.
    pub fn similarity(&self, a: &str, b: &str) -> Result<f32> {
        let (ia, ib) = (self.index(a)?, self.index(b)?);
        (self.vectors.get(ia)? * self.vectors.get(ib)?)?.sum_all()?.to_scalar()
    }
}

/// Trains word vectors on `corpus` (a word-tokenized corpus); returns the
/// input vectors of every vocabulary word and the loss history.
pub fn train_word2vec(cfg: &Word2VecConfig, corpus: &TextCorpus, dev: &Device) -> Result<(WordVectors, History)> {
    let v = corpus.tokenizer.vocab_size();
    if cfg.dim == 0 || cfg.window == 0 || cfg.batch_size == 0 {
        candle_core::bail!("word2vec needs dim, window and batch_size > 0, got {cfg:?}");
    }
    let params = Params::new(derive_seed(cfg.seed, "word2vec"));
    let vb = params.builder(dev);
    let bound = 0.5 / cfg.dim as f64;
    let input = vb.get_with_hints((v, cfg.dim), "input", candle_nn::Init::Uniform { lo: -bound, up: bound })?;
    let output = vb.get_with_hints((v, cfg.dim), "output", candle_nn::Init::Uniform { lo: -bound, up: bound })?;
    let mut opt = OptimizerConfig::adamw(cfg.lr, 0.0).build(params.named_vars())?;
    let mut rng = SeededRng::new(derive_seed(cfg.seed, "word2vec-data"));
    let mut history = History::new(&format!("{} word vectors", cfg.model), "positive beats negatives");
    match cfg.model {
        WordModel::SkipGram => {
            let pairs = skipgram_pairs(&corpus.ids, cfg.window, cfg.negatives, 0.75, &mut rng)?;
            let (centers, contexts, negatives) = pairs.to_tensors(&Device::Cpu)?;
            let mut sampler = StepSampler::new(pairs.len(), derive_seed(cfg.seed, "word2vec-batches"))?;
            for k in 0..cfg.steps {
                let idx = Tensor::from_vec(sampler.batch(k, cfg.batch_size).iter().map(|&i| i as u32).collect::<Vec<_>>(), cfg.batch_size.min(pairs.len()), &Device::Cpu)?;
                let c = centers.index_select(&idx, 0)?.to_device(dev)?;
                let o = contexts.index_select(&idx, 0)?.to_device(dev)?;
                let n = negatives.index_select(&idx, 0)?.to_device(dev)?; // (B, K)
                let vc = input.embedding(&c)?; // (B, D)
                let uo = output.embedding(&o)?;
                let (b, kneg) = n.dims2()?;
                let un = output.embedding(&n.flatten_all()?)?.reshape((b, kneg, cfg.dim))?;
                let pos = (&vc * &uo)?.sum(1)?; // (B,)
                let neg = un.matmul(&vc.unsqueeze(2)?)?.squeeze(2)?; // (B, K)
                let loss = (log_sigmoid(&pos)?.neg()?.mean_all()? - log_sigmoid(&neg.neg()?)?.sum(1)?.mean_all()?)?;
                let l = finite_loss(&loss, k + 1, "skip-gram")?;
                let wins = pos.unsqueeze(1)?.broadcast_gt(&neg)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()?;
                opt.backward_step(&loss)?;
                history.push(k + 1, l, f64::from(wins));
            }
        }
        WordModel::Cbow => {
            // negative sampling as for skip-gram, with the mean context vector in place of v_c
            let (ctx, centre) = crate::pretext::cbow_windows(&corpus.ids, cfg.window, &Device::Cpu)?;
            let noise = crate::pretext::NoiseSampler::new(&corpus.ids, 0.75)?;
            let n = centre.dim(0)?;
            let mut sampler = StepSampler::new(n, derive_seed(cfg.seed, "word2vec-batches"))?;
            for k in 0..cfg.steps {
                let idx = Tensor::from_vec(sampler.batch(k, cfg.batch_size).iter().map(|&i| i as u32).collect::<Vec<_>>(), cfg.batch_size.min(n), &Device::Cpu)?;
                let cx = ctx.index_select(&idx, 0)?.to_device(dev)?; // (B, 2w)
                let o = centre.index_select(&idx, 0)?.to_device(dev)?;
                let (b, w2) = cx.dims2()?;
                let negs: Vec<u32> = (0..b * cfg.negatives).map(|_| noise.draw(&mut rng)).collect();
                let un = output.embedding(&Tensor::from_vec(negs, b * cfg.negatives, dev)?)?.reshape((b, cfg.negatives, cfg.dim))?;
                let h = input.embedding(&cx.flatten_all()?)?.reshape((b, w2, cfg.dim))?.mean(1)?;
                let pos = (&h * output.embedding(&o)?)?.sum(1)?;
                let neg = un.matmul(&h.unsqueeze(2)?)?.squeeze(2)?;
                let loss = (log_sigmoid(&pos)?.neg()?.mean_all()? - log_sigmoid(&neg.neg()?)?.sum(1)?.mean_all()?)?;
                let l = finite_loss(&loss, k + 1, "CBOW")?;
                let wins = pos.unsqueeze(1)?.broadcast_gt(&neg)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()?;
                opt.backward_step(&loss)?;
                history.push(k + 1, l, f64::from(wins));
            }
        }
    }
    Ok((WordVectors::new(corpus.tokenizer.vocab().to_vec(), &input)?, history))
}

fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    // log σ(x) = −softplus(−x) = −(max(−x, 0) + log(1 + exp(−|x|)))
    let relu = x.neg()?.relu()?;
    (relu + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?.neg()
}

// ------------------------------------------------------------ language models

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

    fn encoder(&self, vocab_size: usize) -> TextEncoderConfig {
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
    config: LmConfig,
    params: Params,
    encoder: TextEncoder,
    head: LmHead,
    opt: Optim,
    history: History,
    device: Device,
    vocab_size: usize,
    step: usize,
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

// --------------------------------------------------------- next sentence

/// Next-sentence prediction on sentence pairs: the encoder of `lm`'s shape
/// (not causal) reads `[CLS] A [SEP] B [SEP]` (padded to `context`), a linear
/// head on the `[CLS]` state says whether B follows A.
pub struct NextSentence {
    params: Params,
    encoder: TextEncoder,
    head: Linear,
    opt: Optim,
    history: History,
    context: usize,
    batch_size: usize,
    seed: u64,
    device: Device,
    step: usize,
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
        Ok(Self { params, encoder, head, opt, history, context: lm.context, batch_size: lm.batch_size, seed: lm.seed, device: dev.clone(), step: 0 })
    }

    /// Loss and accuracy per step.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    fn logits(&self, ids: &Tensor, padding: &Tensor) -> Result<Tensor> {
        let h = self.encoder.pooled(ids, Some(padding), crate::nn::Pooling::Cls)?;
        self.head.forward(&h)
    }

    /// Trains `steps` more steps on minibatches of `pairs`.
    pub fn train_for(&mut self, steps: usize, pairs: &NspBatch) -> Result<&History> {
        let n = pairs.labels.dim(0)?;
        if pairs.ids.dim(1)? > self.context {
            candle_core::bail!("next-sentence prediction: pairs of {} tokens, the model reads at most {}", pairs.ids.dim(1)?, self.context);
        }
        let mut sampler = StepSampler::new(n, derive_seed(self.seed, "nsp-batches"))?;
        let mut progress = crate::train::Progress::start(&self.history.name.clone(), steps);
        for _ in 0..steps {
            if progress.stopped() {
                break;
            }
            let k = self.step;
            let idx: Vec<u32> = sampler.batch(k, self.batch_size.min(n)).iter().map(|&i| i as u32).collect();
            let idx = Tensor::from_vec(idx.clone(), idx.len(), &self.device)?;
            let logits = self.logits(&pairs.ids.index_select(&idx, 0)?, &pairs.padding.index_select(&idx, 0)?)?;
            let y = pairs.labels.index_select(&idx, 0)?;
            let loss = cross_entropy(&logits, &y)?;
            let lv = finite_loss(&loss, k + 1, "next-sentence prediction")?;
            let acc = accuracy(&logits, &y)?;
            self.opt.backward_step(&loss)?;
            self.step += 1;
            self.history.push(self.step, lv, acc);
            progress.tick_history(&self.history);
        }
        progress.finish(&self.history.summary());
        Ok(&self.history)
    }

    /// Accuracy on `pairs` (e.g. held-out ones).
    pub fn accuracy(&self, pairs: &NspBatch) -> Result<f64> {
        accuracy(&self.logits(&pairs.ids, &pairs.padding)?, &pairs.labels)
    }
}

// ----------------------------------------------- probing: what is the hidden character?

/// Classes of [`char_class`], in label order.
pub const CHAR_CLASSES: [&str; 5] = ["vowel", "consonant", "capital", "space", "punctuation"];

/// The class of a character: 0 lower-case vowel, 1 other lower-case letter,
/// 2 capital letter, 3 white space, 4 anything else (punctuation, digits).
pub fn char_class(c: char) -> u32 {
    match c {
        'a' | 'e' | 'i' | 'o' | 'u' => 0,
        c if c.is_lowercase() => 1,
        c if c.is_uppercase() => 2,
        c if c.is_whitespace() => 3,
        _ => 4,
    }
}

/// A labelled probing set: windows of character ids whose middle character
/// is replaced by `[MASK]`, labelled by that character's [`char_class`].
/// A representation that knows what is missing from the context alone can
/// tell the class; the input never shows it.
#[derive(Clone, Debug)]
pub struct MaskedCharWindows {
    /// Token ids `(N, L)`, u32, `[MASK]` at position `L / 2`.
    pub ids: Tensor,
    /// The class of each hidden character.
    pub labels: Vec<u32>,
    /// [`CHAR_CLASSES`].
    pub class_names: Vec<String>,
    /// Where the windows came from.
    pub name: String,
}

impl MaskedCharWindows {
    /// `n` windows of `len` characters from random positions of a
    /// character-tokenized `ids`, drawn with `rng`.
    pub fn sample(ids: &[u32], tokenizer: &Tokenizer, len: usize, n: usize, rng: &mut SeededRng) -> Result<Self> {
        if len < 3 || ids.len() <= len {
            candle_core::bail!("MaskedCharWindows: need windows of at least 3 tokens from a longer text, got len {len}, {} tokens", ids.len());
        }
        let mid = len / 2;
        let (mut rows, mut labels) = (Vec::with_capacity(n * len), Vec::with_capacity(n));
        for _ in 0..n {
            let s = rng.below(ids.len() - len);
            let mut w = ids[s..s + len].to_vec();
            let c = tokenizer.token(w[mid]).and_then(|t| t.chars().next()).unwrap_or('?');
            labels.push(char_class(c));
            w[mid] = MASK_ID;
            rows.extend(w);
        }
        Ok(Self {
            ids: Tensor::from_vec(rows, (n, len), &Device::Cpu)?,
            labels,
            class_names: CHAR_CLASSES.iter().map(|s| s.to_string()).collect(),
            name: "masked characters".into(),
        })
    }

    fn select(&self, idx: &[usize]) -> Result<Self> {
        let (ids, labels) = crate::data::select_rows(&self.ids, &self.labels, idx, "windows", &self.name)?;
        Ok(Self { ids, labels, ..self.clone() })
    }

    /// The first `n` windows as the training split, the rest as the test split.
    pub fn split_at(&self, n: usize) -> Result<(Self, Self)> {
        let len = self.labels.len();
        if n == 0 || n >= len {
            candle_core::bail!("MaskedCharWindows::split_at: need 0 < n < {len}, got {n}");
        }
        Ok((self.select(&(0..n).collect::<Vec<_>>())?, self.select(&(n..len).collect::<Vec<_>>())?))
    }
}

impl LabelledData for MaskedCharWindows {
    fn inputs(&self) -> &Tensor {
        &self.ids
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
        let idx = crate::data::per_class_indices(&self.labels, &self.class_names, k, rng, "windows", &self.name)?;
        self.select(&idx)
    }
    fn batch(&self, indices: &[usize], dev: &Device) -> Result<(Tensor, Tensor)> {
        let b = self.select(indices)?;
        Ok((b.ids.to_device(dev)?, Tensor::from_slice(&b.labels, b.labels.len(), dev)?))
    }
}

/// The hidden state at the middle position of every window: `(B, L) → (B, D)`.
fn middle_state(encoder: &TextEncoder, ids: &Tensor) -> Result<Tensor> {
    let l = ids.dim(1)?;
    encoder.forward(ids)?.narrow(1, l / 2, 1)?.squeeze(1)
}

/// [`middle_state`] as a module, for end-to-end training.
struct MiddleState<'a>(&'a TextEncoder);

impl candle_core::ModuleT for MiddleState<'_> {
    fn forward_t(&self, ids: &Tensor, _train: bool) -> Result<Tensor> {
        middle_state(self.0, ids)
    }
}

/// Few-label comparison on masked-character windows: "from scratch" (a fresh
/// encoder of `lm`'s shape trained end to end on the labels) and "random
/// init" rows. The encoder is the bidirectional one (a causal encoder's
/// middle state cannot see the right-hand context).
pub fn char_probe_baselines(
    proto: &FewLabelProtocol,
    lm: &LmConfig,
    vocab_size: usize,
    labelled: &MaskedCharWindows,
    test: &MaskedCharWindows,
    dev: &Device,
) -> Result<[ComparisonRow; 2]> {
    let scratch = char_classifier(None, lm, vocab_size, labelled, test, &proto.scratch, dev, proto.seed)?;
    let random = LanguageModel::new(LmConfig { objective: LmObjective::Masked, ..lm.clone() }, vocab_size, dev)?;
    let mut rand = proto.evaluate("random init", &|x| middle_state(random.encoder(), &x.to_device(dev)?), labelled, test)?;
    rand.note = "the same transformer, untrained".into();
    Ok([
        ComparisonRow {
            name: "from scratch".into(),
            linear: f64::NAN,
            knn: f64::NAN,
            finetune: scratch,
            note: format!("supervised on the labels only, {} steps end to end", proto.scratch.steps),
        },
        rand,
    ])
}

/// A trained language model's middle states under `proto` (probes), and the
/// model fine-tuned like the from-scratch baseline.
pub fn evaluate_char_probe(
    proto: &FewLabelProtocol,
    name: &str,
    model: &LanguageModel,
    labelled: &MaskedCharWindows,
    test: &MaskedCharWindows,
) -> Result<ComparisonRow> {
    let dev = model.device.clone();
    let mut row = proto.evaluate(name, &|x| middle_state(model.encoder(), &x.to_device(&dev)?), labelled, test)?;
    row.finetune = char_classifier(Some(model), &model.config, model.vocab_size, labelled, test, &proto.scratch, &dev, proto.seed)?;
    row.note = model.history().note();
    Ok(row)
}

/// The transformer of `lm`'s shape (attention as in `init`, or bidirectional
/// from scratch) trained end to end with a linear head on the middle state
/// of the labelled windows; from `init`'s weights when given (`init` is not
/// changed). Returns the test accuracy.
#[allow(clippy::too_many_arguments)]
pub fn char_classifier(
    init: Option<&LanguageModel>,
    lm: &LmConfig,
    vocab_size: usize,
    labelled: &MaskedCharWindows,
    test: &MaskedCharWindows,
    cfg: &ClassifierConfig,
    dev: &Device,
    seed: u64,
) -> Result<f64> {
    let params = Params::new(derive_seed(seed, "scratch"));
    let objective = init.map_or(LmObjective::Masked, |m| m.config.objective);
    let enc = LmConfig { objective, ..lm.clone() }.encoder(vocab_size).init(params.builder(dev).pp("enc"))?;
    train_end_to_end(&MiddleState(&enc), lm.dim, &params, init.map(|m| m.params()), labelled, test, cfg, dev, seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TokenizerKind;

    fn words() -> TextCorpus {
        TextCorpus::new(&crate::data::synthetic_text(400, 0).unwrap(), TokenizerKind::Words, 500, "synthetic").unwrap()
    }

    fn chars() -> TextCorpus {
        TextCorpus::new(&crate::data::synthetic_text(300, 1).unwrap(), TokenizerKind::Chars, 100, "synthetic").unwrap()
    }

    fn tiny(objective: LmObjective) -> LmConfig {
        LmConfig { context: 16, dim: 16, depth: 1, heads: 2, batch_size: 16, lr: 3e-3, ..LmConfig::new(objective) }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn log_sigmoid_matches_the_definition_and_is_stable() {
        let x = Tensor::new(&[-50f32, -1.0, 0.0, 2.0, 50.0], &Device::Cpu).unwrap();
        let got: Vec<f32> = log_sigmoid(&x).unwrap().to_vec1().unwrap();
        for (g, v) in got.iter().zip([-50f32, -1.0, 0.0, 2.0, 50.0]) {
            let want = -(1.0 + (-f64::from(v)).exp()).ln();
            assert!((f64::from(*g) - want).abs() < 1e-5, "log σ({v}) = {g}, want {want}");
        }
    }

    #[test]
    fn word_vectors_learn_and_answer_queries() {
        let corpus = words();
        for model in [WordModel::SkipGram, WordModel::Cbow] {
            let cfg = Word2VecConfig { steps: 150, batch_size: 256, dim: 16, lr: 1e-2, ..Word2VecConfig::new(model) };
            let (wv, h) = train_word2vec(&cfg, &corpus, &Device::Cpu).unwrap();
            let (first, last) = (mean(&h.loss[..10]), mean(&h.loss[140..]));
            assert!(last < first, "{model}: loss did not fall: {first} → {last}");
            let w = corpus.tokenizer.token(N_SPECIAL).unwrap().to_string();
            let near = wv.nearest(&w, 3).unwrap();
            assert_eq!(near.len(), 3);
            assert!(near.iter().all(|(n, s)| *n != w && s.is_finite() && *s <= 1.0 + 1e-5));
            assert!((wv.similarity(&w, &w).unwrap() - 1.0).abs() < 1e-4);
            assert!(wv.nearest("zzzz-not-a-word", 3).unwrap_err().to_string().contains("not in the vocabulary"));
            let a = corpus.tokenizer.token(N_SPECIAL + 1).unwrap().to_string();
            let b = corpus.tokenizer.token(N_SPECIAL + 2).unwrap().to_string();
            let an = wv.analogy(&w, &a, &b, 2).unwrap();
            assert!(an.iter().all(|(n, _)| *n != w && *n != a && *n != b));
        }
    }

    #[test]
    fn language_models_learn_fill_masks_and_generate() {
        let corpus = chars();
        let v = corpus.tokenizer.vocab_size();
        for objective in [LmObjective::Masked, LmObjective::Causal] {
            let mut lm = LanguageModel::new(tiny(objective), v, &Device::Cpu).unwrap();
            lm.train_for(60, &corpus.ids).unwrap();
            let h = lm.history();
            let (first, last) = (mean(&h.loss[..5]), mean(&h.loss[55..]));
            assert!(last < first - 0.3, "{objective}: loss did not fall enough: {first} → {last}");
            assert!((first - (v as f64).ln()).abs() < 1.0, "{objective}: initial loss {first} should be near ln V");
        }
        let masked = {
            let mut lm = LanguageModel::new(tiny(LmObjective::Masked), v, &Device::Cpu).unwrap();
            lm.train_for(2, &corpus.ids).unwrap();
            lm
        };
        let mut ids = corpus.ids[..10].to_vec();
        ids[3] = MASK_ID;
        ids[7] = MASK_ID;
        let fills = masked.fill_masks(&ids, 3).unwrap();
        assert_eq!(fills.iter().map(|f| f.0).collect::<Vec<_>>(), vec![3, 7]);
        assert!(fills.iter().all(|(_, top)| top.len() == 3 && top.iter().all(|(id, p)| *id >= N_SPECIAL && (0.0..=1.0).contains(p))));
        assert!(masked.generate(&ids, 3, 1.0, &mut SeededRng::new(0)).unwrap_err().to_string().contains("only a causal"));
        let causal = LanguageModel::new(tiny(LmObjective::Causal), v, &Device::Cpu).unwrap();
        let g1 = causal.generate(&corpus.ids[..5], 20, 0.8, &mut SeededRng::new(3)).unwrap();
        let g2 = causal.generate(&corpus.ids[..5], 20, 0.8, &mut SeededRng::new(3)).unwrap();
        assert_eq!(g1.len(), 20);
        assert_eq!(g1, g2, "same seed, same sample");
        assert!(g1.iter().all(|&i| i >= N_SPECIAL && (i as usize) < v));
        let err = LanguageModel::new(tiny(LmObjective::Causal), 8, &Device::Cpu).unwrap().train_for(1, &corpus.ids).unwrap_err();
        assert!(err.to_string().contains("outside its vocabulary of 8"), "{err}");
    }

    #[test]
    fn next_sentence_pairs_are_well_formed_and_learnable() {
        let corpus = words();
        let sentences: Vec<Vec<u32>> = crate::data::split_sentences(&crate::data::synthetic_text(400, 0).unwrap())
            .iter()
            .map(|s| corpus.tokenizer.encode(s))
            .collect();
        let pairs = nsp_batch(&sentences, 24, &mut SeededRng::new(0), &Device::Cpu).unwrap();
        let (n, l) = pairs.ids.dims2().unwrap();
        assert_eq!((n, l), (sentences.len() - 1, 24));
        let first: Vec<u32> = pairs.ids.get(0).unwrap().to_vec1().unwrap();
        assert_eq!(first[0], CLS_ID);
        assert_eq!(first.iter().filter(|&&t| t == SEP_ID).count(), 2);
        let mut nsp = NextSentence::new(&LmConfig { context: 24, ..tiny(LmObjective::Masked) }, corpus.tokenizer.vocab_size(), &Device::Cpu).unwrap();
        let (tr, te) = pairs.split(0.8).unwrap();
        assert_eq!(tr.labels.dim(0).unwrap() + te.labels.dim(0).unwrap(), n);
        assert!(pairs.split(0.0).is_err());
        nsp.train_for(40, &tr).unwrap();
        let acc = nsp.accuracy(&te).unwrap();
        assert!((0.0..=1.0).contains(&acc));
        assert!(nsp_batch(&sentences, 4, &mut SeededRng::new(0), &Device::Cpu).is_err());
    }

    #[test]
    fn masked_char_windows_hide_the_middle_and_probe() {
        let text = "The Quick brown Fox, jumps over the lazy Dog; Then It Sleeps.\n".repeat(40);
        let corpus = TextCorpus::new(&text, TokenizerKind::Chars, 100, "fox").unwrap();
        let w = MaskedCharWindows::sample(&corpus.ids, &corpus.tokenizer, 9, 200, &mut SeededRng::new(0)).unwrap();
        let ids: Vec<Vec<u32>> = w.ids.to_vec2().unwrap();
        assert!(ids.iter().all(|r| r[4] == MASK_ID && r.len() == 9));
        assert!(w.labels.iter().all(|&c| c < 5));
        assert_eq!(char_class('e'), 0);
        assert_eq!(char_class('k'), 1);
        assert_eq!(char_class('K'), 2);
        assert_eq!(char_class('\n'), 3);
        assert_eq!(char_class(','), 4);
        let (train, test) = w.split_at(150).unwrap();
        assert_eq!((train.labels.len(), test.labels.len()), (150, 50));
        assert!(w.split_at(200).is_err());
        let proto = FewLabelProtocol { scratch: ClassifierConfig { steps: 10, ..Default::default() }, ..FewLabelProtocol::new(2, 0) };
        let labelled = proto.labelled(&train).unwrap();
        let lm_cfg = LmConfig { context: 9, ..tiny(LmObjective::Masked) };
        let mut lm = LanguageModel::new(lm_cfg.clone(), corpus.tokenizer.vocab_size(), &Device::Cpu).unwrap();
        lm.train_for(5, &corpus.ids).unwrap();
        let before = lm.params().named_vars()[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let rows = char_probe_baselines(&proto, &lm_cfg, corpus.tokenizer.vocab_size(), &labelled, &test, &Device::Cpu).unwrap();
        assert_eq!(rows[0].name, "from scratch");
        let r = evaluate_char_probe(&proto, "masked LM", &lm, &labelled, &test).unwrap();
        assert!((0.0..=1.0).contains(&r.linear) && (0.0..=1.0).contains(&r.finetune), "{r:?}");
        let after = lm.params().named_vars()[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(before, after, "fine-tuning must leave the language model alone");
    }
}
