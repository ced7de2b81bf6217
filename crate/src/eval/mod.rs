//! Evaluation of representations: linear probe and the label-efficiency sweep.
//!
//! Every number comes with its protocol: which split trained the classifier,
//! how many labels, how many steps, which split measured the accuracy.
//!
//! - [`linear_probe`], [`label_efficiency`]: trained linear classifiers on frozen features.
//! - [`FewLabelProtocol`], [`Comparison`]: several representations on one labelled subset
//!   (linear probe, k-NN, random-init and from-scratch baselines), as a table and a bar chart;
//!   [`FewLabelProtocol::repeated`], [`RepeatedComparison`]: the same on several labelled
//!   subsets, mean ± std, with verdicts between rows.
//! - [`fit_classifier`]: end-to-end training (supervised baseline, fine-tuning).
//! - [`knn_accuracy`], [`knn_classify`]: the weighted k-NN classifier (InstDisc, DINO), no training.
//! - [`benchmark`]: every method on one protocol over several seeds, mean ± std.
//! - [`verdict`]: two rows measured on the same repetitions as one sentence (ahead, behind,
//!   no clear difference); [`trivial_rates`]: uniform chance and the majority class.
//! - [`collapse_report`], [`embedding_std`], [`effective_rank`], [`alignment`], [`uniformity`]:
//!   collapse diagnostics of a batch of embeddings.

mod benchmark;
mod budget;
mod collapse;
mod compare;
mod finetune;
mod knn;
mod label_efficiency;
mod repeated;
mod verdict;

pub use budget::{FewLabelBudget, FewLabelExperiment};
pub use benchmark::{benchmark, mean_std, Benchmark, BenchmarkConfig, BenchmarkRow, RANDOM_INIT, RANDOM_INIT_VIT};
pub use collapse::{
    alignment, collapse_report, collapse_table, dino_collapse_table, effective_rank, embedding_std, singular_values, symmetric_eigen, uniformity,
    CollapseReport, CrossCorrelation, MAX_EIGEN_DIM,
};
pub use compare::{train_end_to_end, Comparison, ComparisonRow, FewLabelProtocol};
pub use finetune::{fit_classifier, ClassifierConfig, ClassifierResult};
pub use knn::{knn_accuracy, knn_classify, knn_votes, KnnConfig, KnnProtocol, KnnResult};
pub use label_efficiency::{label_curve, label_efficiency, LabelBudgets, LabelEfficiency};
pub use repeated::{RepeatedComparison, RepeatedProtocol, RepeatedRow, SUBSETS};
pub use verdict::{trivial_rates, verdict, Outcome, TrivialRates, Verdict, MIN_REPETITIONS};

use crate::data::{ImageDataset, LabelledData};
use crate::loss::{accuracy, cross_entropy};
use crate::nn::{linear, Params};
use crate::train::{finite_loss, TrainConfig};
use candle_core::{Device, Module, ModuleT, Result, Tensor, D};
use serde::{Deserialize, Serialize};

pub(crate) use crate::data::map_batches;

/// Representations `f(x)` of every image, computed in batches without
/// gradients, returned on the CPU.
///
/// # Shapes
/// images `(N, C, H, W)` → `(N, F)`.
pub fn features<M: ModuleT>(encoder: &M, images: &Tensor, dev: &Device, batch: usize) -> Result<Tensor> {
    map_batches(images, batch, "images", |x| encoder.forward_t(&x.to_device(dev)?, false))
}

/// Settings of a linear probe: full-batch AdamW on standardised features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self { steps: 300, lr: 1e-2, weight_decay: 1e-3 }
    }
}

/// Result of a linear probe, with its protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Accuracy on the evaluation features.
    pub accuracy: f64,
    /// Accuracy on the features the probe was trained on.
    pub train_accuracy: f64,
    /// How the number was obtained.
    pub protocol: String,
}

/// Trains a linear classifier on frozen features and measures it on others.
///
/// Features are standardised with the mean and standard deviation of the
/// training features; the classifier is trained full-batch with AdamW.
///
/// # Shapes
/// `train_x (N, F)`, `test_x (M, F)`; labels `< num_classes`.
pub fn linear_probe(
    train_x: &Tensor,
    train_y: &[u32],
    test_x: &Tensor,
    test_y: &[u32],
    num_classes: usize,
    cfg: &ProbeConfig,
    seed: u64,
) -> Result<ProbeResult> {
    let (n, f) = train_x.dims2()?;
    let (m, f2) = test_x.dims2()?;
    if n != train_y.len() || m != test_y.len() || f != f2 || n == 0 || m == 0 {
        candle_core::bail!(
            "linear_probe: features {:?} / {:?} do not match {} / {} labels",
            train_x.dims(),
            test_x.dims(),
            train_y.len(),
            test_y.len()
        );
    }
    if let Some(bad) = train_y.iter().chain(test_y).find(|&&y| y as usize >= num_classes) {
        candle_core::bail!("linear_probe: label {bad} but only {num_classes} classes");
    }
    let dev = Device::Cpu;
    let train_x = train_x.to_device(&dev)?.detach();
    let test_x = test_x.to_device(&dev)?.detach();
    let mean = train_x.mean_keepdim(0)?;
    let std = if n > 1 { (train_x.var_keepdim(0)? + 1e-6)?.sqrt()? } else { mean.ones_like()? };
    let norm = |x: &Tensor| x.broadcast_sub(&mean)?.broadcast_div(&std);
    let (xtr, xte) = (norm(&train_x)?, norm(&test_x)?);
    let ytr = Tensor::from_slice(train_y, n, &dev)?;
    let yte = Tensor::from_slice(test_y, m, &dev)?;
    let params = Params::new(seed);
    let head = linear(f, num_classes, params.builder(&dev).pp("probe"))?;
    let tc = TrainConfig { steps: cfg.steps, batch_size: n, lr: cfg.lr, weight_decay: cfg.weight_decay };
    let mut opt = tc.optimizer(&params)?;
    for step in 1..=cfg.steps {
        let loss = cross_entropy(&head.forward(&xtr)?, &ytr)?;
        finite_loss(&loss, step, "linear probe")?;
        opt.backward_step(&loss)?;
    }
    Ok(ProbeResult {
        accuracy: accuracy(&head.forward(&xte)?, &yte)?,
        train_accuracy: accuracy(&head.forward(&xtr)?, &ytr)?,
        protocol: format!(
            "linear probe on frozen, standardised features: trained on {n} labelled examples \
             (full batch, AdamW lr {}, wd {}, {} steps), accuracy on {m} held-out examples",
            cfg.lr, cfg.weight_decay, cfg.steps
        ),
    })
}

/// Accuracy of `head(encoder(x))` on a data set, in batches of 500.
pub fn classifier_accuracy<E: ModuleT, H: Module>(encoder: &E, head: &H, data: &ImageDataset, dev: &Device) -> Result<f64> {
    let feats = features(encoder, &data.images, dev, 500)?.to_device(dev)?;
    let logits = head.forward(&feats)?;
    let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
    Ok(pred.iter().zip(&data.labels).filter(|(p, y)| p == y).count() as f64 / data.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    #[test]
    fn linear_probe_separates_separable_features_and_checks_shapes() {
        // two Gaussian blobs in 8-D, well apart
        let mut rng = SeededRng::new(0);
        let mk = |rng: &mut SeededRng, n: usize| -> (Tensor, Vec<u32>) {
            let y: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
            let x: Vec<f32> = y.iter().flat_map(|&c| (0..8).map(move |_| c as f32 * 3.0)).collect();
            let noise = rng.randn(&[n, 8], 1.0, &Device::Cpu).unwrap();
            ((Tensor::from_vec(x, (n, 8), &Device::Cpu).unwrap() + noise).unwrap(), y)
        };
        let (xtr, ytr) = mk(&mut rng, 40);
        let (xte, yte) = mk(&mut rng, 200);
        let r = linear_probe(&xtr, &ytr, &xte, &yte, 2, &ProbeConfig::default(), 0).unwrap();
        assert!(r.accuracy > 0.95, "{r:?}");
        assert!(r.protocol.contains("40 labelled") && r.protocol.contains("200 held-out"));
        let err = linear_probe(&xtr, &ytr[..3], &xte, &yte, 2, &ProbeConfig::default(), 0).unwrap_err();
        assert!(err.to_string().contains("[40, 8]"), "{err}");
        assert!(linear_probe(&xtr, &ytr, &xte, &yte, 1, &ProbeConfig::default(), 0).is_err());
    }
}
