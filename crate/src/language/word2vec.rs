//! Word vectors: skip-gram and CBOW with negative sampling (word2vec).

use super::N_SPECIAL;
use crate::data::TextCorpus;
use crate::loss::l2_normalize;
use crate::nn::Params;
use crate::pretext::skipgram_pairs;
use crate::rng::{derive_seed, SeededRng};
use crate::train::{finite_loss, History, OptimizerConfig, StepSampler};
use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

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

pub(super) fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    // log σ(x) = −softplus(−x) = −(max(−x, 0) + log(1 + exp(−|x|)))
    let relu = x.neg()?.relu()?;
    (relu + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?.neg()
}
