//! Chapter 25's contrastive and joint-embedding notebooks (25.1–25.4, 25.6).

use super::{FewLabelBudget, FewLabelExperiment, Profile};
use crate::eval::{BenchmarkConfig, FewLabelProtocol, LabelBudgets};
use crate::method::{EncoderConfig, MethodName, PretrainConfig};
use serde::{Deserialize, Serialize};

impl Profile {
    /// The sizes of chapter 25's contrastive notebooks in this profile.
    pub fn contrastive(self) -> ContrastiveConfig {
        let base = ContrastiveConfig {
            profile: self,
            train_images: 8000,
            test_images: 2000,
            steps: 280,
            byol_steps: 600,
            batch_size: 256,
            short_steps: 100,
            short_batch_size: 128,
            benchmark_steps: 120,
            benchmark_batch_size: 128,
            label_budgets: vec![1, 5, 10, 50],
            few_labels: FewLabelBudget::default(),
            seed: 0,
            encoder: None,
        };
        match self {
            Self::Smoke => ContrastiveConfig {
                train_images: 600,
                test_images: 200,
                steps: 4,
                byol_steps: 8,
                batch_size: 32,
                short_steps: 2,
                short_batch_size: 16,
                benchmark_steps: 2,
                benchmark_batch_size: 16,
                label_budgets: vec![1, 5],
                few_labels: FewLabelBudget { scratch_steps: 5, probe_steps: 30, ..base.few_labels },
                ..base
            },
            Self::Cpu => base,
            Self::Gpu => ContrastiveConfig {
                train_images: 60000,
                test_images: 10000,
                steps: 5000,
                byol_steps: 10000,
                batch_size: 512,
                short_steps: 1000,
                short_batch_size: 256,
                benchmark_steps: 1000,
                benchmark_batch_size: 256,
                label_budgets: vec![1, 5, 10, 50, 100],
                few_labels: FewLabelBudget { scratch_steps: 1000, probe_steps: 500, ..base.few_labels },
                encoder: Some(EncoderConfig::ResNet(crate::nn::ResNetConfig::resnet18(1))),
                ..base
            },
        }
    }
}

/// Sizes of chapter 25's contrastive notebooks (SimCLR, MoCo): one main run,
/// shorter runs for the ablations and sweeps, and the few-label protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContrastiveConfig {
    /// The profile these sizes came from.
    pub profile: Profile,
    /// Images in the training split (pretraining uses them without labels).
    pub train_images: usize,
    /// Images in the test split (accuracy is measured here).
    pub test_images: usize,
    /// Optimiser steps of the main run.
    pub steps: usize,
    /// Optimiser steps of BYOL's main run in section 25.3, about twice
    /// [`steps`](Self::steps). BYOL's targets come from a teacher that starts
    /// as untrained as the student, and it learns slowly at first: on MNIST
    /// (8,000 digits, batches of 128, five seeds) its k-NN accuracy rose
    /// above a random encoder's by 6.6 points on average after 280 steps
    /// (−4.7 to +14.0) and by 17.3 after 600 (+9.6 to +32.8).
    pub byol_steps: usize,
    /// Images per step of the main run.
    pub batch_size: usize,
    /// Optimiser steps of each run in an ablation or sweep.
    pub short_steps: usize,
    /// Images per step of those runs (unless the sweep varies it).
    pub short_batch_size: usize,
    /// Optimiser steps of every method in section 25.6's benchmark.
    pub benchmark_steps: usize,
    /// Images per step of every method in the benchmark.
    pub benchmark_batch_size: usize,
    /// The budgets of the label-efficiency curve, in labels per class.
    pub label_budgets: Vec<usize>,
    /// The few-label budget every comparison is measured with.
    pub few_labels: FewLabelBudget,
    /// The seed behind initialisation, data order, augmentation and the labelled subsets.
    pub seed: u64,
    /// The encoder of every joint-embedding run, or `None` for each method's
    /// own default (the small CNN). The `gpu` profile uses ResNet-18.
    pub encoder: Option<EncoderConfig>,
}

impl FewLabelExperiment for ContrastiveConfig {
    fn few_labels(&self) -> &FewLabelBudget {
        &self.few_labels
    }
    fn experiment_seed(&self) -> u64 {
        self.seed
    }
}

impl ContrastiveConfig {
    /// `method`'s recommended settings ([`PretrainConfig::for_method`])
    /// with the main run's steps, batch size and seed.
    pub fn pretrain(&self, method: MethodName) -> PretrainConfig {
        let mut cfg = PretrainConfig::for_method(method);
        if let (Some(encoder), true) = (&self.encoder, method.is_joint_embedding()) {
            cfg.encoder = encoder.clone();
        }
        cfg.steps = self.steps;
        cfg.batch_size = self.batch_size;
        cfg.warmup_steps = cfg.warmup_steps.min(cfg.steps / 4);
        cfg.seed = self.seed;
        cfg
    }

    /// The main run's settings for `method` at another batch size (section
    /// 25.3 trains four methods and six ablations at `short_batch_size`).
    pub fn pretrain_at(&self, method: MethodName, batch_size: usize) -> PretrainConfig {
        PretrainConfig { batch_size, ..self.pretrain(method) }
    }

    /// The same for one run of an ablation or sweep.
    pub fn short(&self, method: MethodName) -> PretrainConfig {
        let mut cfg = self.pretrain(method);
        cfg.steps = self.short_steps;
        cfg.batch_size = self.short_batch_size;
        cfg.warmup_steps = cfg.warmup_steps.min(cfg.steps / 4);
        cfg
    }

    /// Section 25.6's benchmark: every method that trains on one-channel
    /// images, 3 seeds, the same budget for all
    /// ([`benchmark_steps`](Self::benchmark_steps) of
    /// [`benchmark_batch_size`](Self::benchmark_batch_size) images).
    pub fn benchmark(&self) -> BenchmarkConfig {
        BenchmarkConfig {
            methods: BenchmarkConfig::methods_for(1),
            seeds: vec![self.seed, self.seed + 1, self.seed + 2],
            steps: self.benchmark_steps,
            batch_size: self.benchmark_batch_size,
            encoder: self.encoder.clone(),
            labels_per_class: self.few_labels.labels_per_class,
            probe_steps: self.few_labels.probe_steps,
            scratch_steps: self.few_labels.scratch_steps,
        }
    }

    /// The few-label protocol with `labels_per_class` labels per class.
    pub fn protocol_with(&self, labels_per_class: usize) -> FewLabelProtocol {
        self.few_labels.with_labels(labels_per_class).protocol(self.seed)
    }
}

/// The label curve of section 25.1: one subset per budget, drawn by
/// [`ContrastiveConfig::protocol_with`].
impl From<&ContrastiveConfig> for LabelBudgets {
    fn from(c: &ContrastiveConfig) -> Self {
        LabelBudgets::new(&c.label_budgets, 1, c.seed, |k, _| c.protocol_with(k))
    }
}
