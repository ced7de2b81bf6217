//! Training: optimiser settings, a step-budgeted loop and its history.
//!
//! Every loop here takes a step budget, draws batches from the run's seeded
//! generator, checks each loss for NaN/inf (stopping with a message that names
//! the step) and returns a [`History`] that plots as a loss curve.

mod checkpoint;
mod history;
mod optim;
mod progress;
mod run;
mod schedule;

pub use checkpoint::{load_checkpoint, save_checkpoint, Checkpoint};
pub use history::History;
pub use optim::{Optim, OptimizerConfig, OptimizerKind};
pub use progress::{progress_detail, Progress, ProgressMode, MARK, MIN_INTERVAL};
pub use run::{Objective, Run, StepLoss};
pub use schedule::{cosine_momentum, Schedule};

use crate::data::{ImageDataset, LabelledData};
use crate::loss::{accuracy, cross_entropy};
use crate::nn::{Linear, Params, SmallCnn};
use crate::pretext::rotation_batch;
use crate::rng::SeededRng;
use candle_core::{Device, Module, ModuleT, Result, Tensor};
use serde::{Deserialize, Serialize};

/// Optimiser and budget of one training run (AdamW).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Examples per step (capped at the data set size).
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay (on weight matrices and kernels; never
    /// on biases and norm parameters).
    pub weight_decay: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { steps: 100, batch_size: 64, lr: 1e-3, weight_decay: 0.0 }
    }
}

impl TrainConfig {
    fn check(&self) -> Result<()> {
        if self.batch_size == 0 || !(self.lr.is_finite() && self.lr > 0.0) || self.weight_decay < 0.0 {
            candle_core::bail!(
                "TrainConfig needs batch_size > 0, lr > 0 and weight_decay >= 0, got {self:?}"
            );
        }
        Ok(())
    }

    /// An AdamW optimiser over `params` with these settings: the crate's
    /// own (per-parameter bias correction; no weight decay on biases and
    /// norm parameters, as lightly and solo-learn configure it).
    pub fn optimizer(&self, params: &Params) -> Result<Optim> {
        self.check()?;
        OptimizerConfig::adamw(self.lr, self.weight_decay).build(params.named_trainable_vars())
    }
}

/// Draws mini-batches of indices: a fresh random order every epoch.
pub struct BatchSampler {
    order: Vec<usize>,
    pos: usize,
    rng: SeededRng,
}

impl BatchSampler {
    /// A sampler over `0..n` driven by `rng`.
    pub fn new(n: usize, rng: SeededRng) -> Result<Self> {
        if n == 0 {
            candle_core::bail!("cannot sample batches from an empty data set");
        }
        // pos = n: the first call shuffles.
        Ok(Self { order: (0..n).collect(), pos: n, rng })
    }

    /// The next `batch` indices (at most `n`), reshuffling at each epoch end.
    pub fn next_batch(&mut self, batch: usize) -> Vec<usize> {
        let batch = batch.min(self.order.len());
        if self.pos + batch > self.order.len() {
            self.rng.shuffle(&mut self.order);
            self.pos = 0;
        }
        let out = self.order[self.pos..self.pos + batch].to_vec();
        self.pos += batch;
        out
    }
}

/// Stateless mini-batch order: the batch of step `k` depends only on the
/// seed, `k` and the batch size, so a run resumed from a checkpoint at step
/// `k` sees exactly the batches it would have seen.
///
/// Each epoch is a fresh permutation of `0..n` drawn from `(seed, epoch)`;
/// step `k` takes positions `k·B .. (k+1)·B` of the concatenated epochs.
#[derive(Clone, Debug)]
pub struct StepSampler {
    n: usize,
    seed: u64,
    cached: Option<(usize, Vec<usize>)>,
}

impl StepSampler {
    /// A sampler over `0..n`.
    pub fn new(n: usize, seed: u64) -> Result<Self> {
        if n == 0 {
            candle_core::bail!("StepSampler: cannot sample batches from an empty data set");
        }
        Ok(Self { n, seed, cached: None })
    }

    fn epoch(&mut self, e: usize) -> &[usize] {
        if self.cached.as_ref().map(|(k, _)| *k) != Some(e) {
            let perm = SeededRng::new(crate::rng::derive_seed(self.seed, &format!("epoch{e}"))).permutation(self.n);
            self.cached = Some((e, perm));
        }
        self.cached.as_ref().map(|(_, p)| p.as_slice()).unwrap_or(&[])
    }

    /// The indices of step `k` (from 0): `batch` of them, at most `n`.
    pub fn batch(&mut self, k: usize, batch: usize) -> Vec<usize> {
        let batch = batch.min(self.n);
        let start = k * batch;
        (start..start + batch)
            .map(|p| {
                let (e, i) = (p / self.n, p % self.n);
                self.epoch(e)[i]
            })
            .collect()
    }
}

/// Reads a scalar loss and stops with a clear message when it is NaN or infinite.
pub fn finite_loss(loss: &Tensor, step: usize, what: &str) -> Result<f64> {
    let v = f64::from(loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?);
    if !v.is_finite() {
        candle_core::bail!(
            "{what}: loss became {v} at step {step}; lower the learning rate or check the inputs"
        );
    }
    Ok(v)
}

/// Rotation-prediction pretraining (RotNet): `head(encoder(rot(x, k)))` predicts `k`.
///
/// Uses only the images of `data`, never its labels. Trains the parameters
/// in `params` (encoder and head) for `cfg.steps` steps of `cfg.batch_size`
/// images, each shown in all four rotations.
pub fn pretrain_rotation(
    encoder: &SmallCnn,
    head: &Linear,
    params: &Params,
    data: &ImageDataset,
    cfg: &TrainConfig,
    dev: &Device,
    rng: &SeededRng,
) -> Result<History> {
    let run = ClassifierRun { encoder, head, params, data, cfg, dev };
    run.train(rng.fork("rotation-batches"), History::new("rotation pretraining", "pretext accuracy"), |x, _| rotation_batch(&x))
}

/// Supervised training of `head(encoder(x))` on the labels of `data`.
pub fn train_supervised(
    encoder: &SmallCnn,
    head: &Linear,
    params: &Params,
    data: &ImageDataset,
    cfg: &TrainConfig,
    dev: &Device,
    rng: &SeededRng,
) -> Result<History> {
    let run = ClassifierRun { encoder, head, params, data, cfg, dev };
    run.train(rng.fork("supervised-batches"), History::new("supervised training", "train accuracy"), |x, y| Ok((x, y)))
}

/// `head(encoder(x))` trained with cross-entropy on `(input, target)` pairs
/// made from each batch of `data`.
struct ClassifierRun<'a> {
    encoder: &'a SmallCnn,
    head: &'a Linear,
    params: &'a Params,
    data: &'a ImageDataset,
    cfg: &'a TrainConfig,
    dev: &'a Device,
}

impl ClassifierRun<'_> {
    fn train(&self, rng: SeededRng, mut history: History, pairs: impl Fn(Tensor, Tensor) -> Result<(Tensor, Tensor)>) -> Result<History> {
        let mut opt = self.cfg.optimizer(self.params)?;
        let mut sampler = BatchSampler::new(self.data.len(), rng)?;
        let what = history.name.clone();
        for step in 1..=self.cfg.steps {
            let (x, y) = self.data.batch(&sampler.next_batch(self.cfg.batch_size), self.dev)?;
            let (x, y) = pairs(x, y)?;
            let logits = self.head.forward(&self.encoder.forward_t(&x, true)?)?;
            let loss = cross_entropy(&logits, &y)?;
            let l = finite_loss(&loss, step, &what)?;
            opt.backward_step(&loss)?;
            history.push(step, l, accuracy(&logits, &y)?);
        }
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{linear, CnnConfig};

    #[test]
    fn batch_sampler_covers_every_index_each_epoch() {
        let mut s = BatchSampler::new(10, SeededRng::new(0)).unwrap();
        let mut seen: Vec<usize> = (0..5).flat_map(|_| s.next_batch(2)).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(s.next_batch(50).len(), 10);
        assert!(BatchSampler::new(0, SeededRng::new(0)).is_err());
    }

    #[test]
    fn step_sampler_is_a_pure_function_of_the_step() {
        let mut a = StepSampler::new(10, 3).unwrap();
        let epoch: Vec<usize> = (0..5).flat_map(|k| a.batch(k, 2)).collect();
        let mut sorted = epoch.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        // a fresh sampler asked for step 7 directly (a resumed run) agrees
        let want = a.batch(7, 3);
        assert_eq!(StepSampler::new(10, 3).unwrap().batch(7, 3), want);
        assert_ne!(StepSampler::new(10, 4).unwrap().batch(7, 3), want);
        assert!(StepSampler::new(0, 0).is_err());
    }

    #[test]
    fn finite_loss_stops_on_nan() {
        let nan = Tensor::new(f32::NAN, &Device::Cpu).unwrap();
        let err = finite_loss(&nan, 7, "demo").unwrap_err().to_string();
        assert!(err.contains("step 7") && err.contains("NaN"), "{err}");
    }

    #[test]
    fn rotation_pretraining_learns_and_every_parameter_gets_gradient() {
        let dev = Device::Cpu;
        let data = crate::data::shapes(64, 0).unwrap();
        let params = Params::new(0);
        let vb = params.builder(&dev);
        let cfg_cnn = CnnConfig { in_channels: 1, widths: vec![8, 16], batch_norm: false };
        let enc = cfg_cnn.init(vb.pp("enc")).unwrap();
        let head = linear(enc.feature_dim(), 4, vb.pp("head")).unwrap();
        // gradient flow: every parameter receives a non-zero gradient
        let (x, _) = data.batch(&(0..8).collect::<Vec<_>>(), &dev).unwrap();
        let (xr, y) = rotation_batch(&x).unwrap();
        let loss = cross_entropy(&head.forward(&enc.forward(&xr).unwrap()).unwrap(), &y).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in params.named_vars() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let n = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(n > 0.0, "zero gradient for {name}");
        }
        let cfg = TrainConfig { steps: 150, batch_size: 16, lr: 3e-3, weight_decay: 0.0 };
        let h = pretrain_rotation(&enc, &head, &params, &data, &cfg, &dev, &SeededRng::new(0)).unwrap();
        assert_eq!(h.len(), 150);
        let first = h.loss[..5].iter().sum::<f64>() / 5.0;
        let last = h.loss[140..].iter().sum::<f64>() / 10.0;
        assert!(last < 0.8 * first, "rotation loss did not fall: {first} -> {last}");
    }
}
