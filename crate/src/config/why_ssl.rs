//! Section 24.1: the label-efficiency experiment.

use super::{FewLabelBudget, FewLabelExperiment, Profile};
use crate::eval::{ClassifierConfig, FewLabelProtocol, LabelBudgets};
use crate::method::{MethodName, PretrainConfig};
use crate::rng::derive_seed;
use serde::{Deserialize, Serialize};

impl Profile {
    /// The sizes of section 24.1's label-efficiency experiment in this profile.
    pub fn why_ssl(self) -> WhySslConfig {
        let base = WhySslConfig {
            profile: self,
            train_images: 8000,
            test_images: 2000,
            pretrain_steps: 250,
            pretrain_batch: 32,
            simclr_steps: 280,
            simclr_batch: 256,
            label_budgets: vec![1, 5, 10],
            few_labels: FewLabelBudget { labels_per_class: 10, repetitions: 3, probe_steps: 300, ..FewLabelBudget::default() },
            seed: 0,
        };
        match self {
            Self::Smoke => WhySslConfig {
                train_images: 600,
                test_images: 200,
                pretrain_steps: 6,
                pretrain_batch: 16,
                simclr_steps: 4,
                simclr_batch: 32,
                label_budgets: vec![1, 5],
                few_labels: FewLabelBudget { labels_per_class: 5, repetitions: 1, scratch_steps: 5, probe_steps: 30, ..base.few_labels },
                ..base
            },
            Self::Cpu => base,
            Self::Gpu => WhySslConfig {
                pretrain_steps: 4000,
                pretrain_batch: 256,
                simclr_steps: 2000,
                simclr_batch: 512,
                label_budgets: vec![1, 5, 10, 50, 100],
                few_labels: FewLabelBudget { repetitions: 5, probe_steps: 500, scratch_steps: ClassifierConfig::CONVERGED_STEPS, ..base.few_labels },
                ..base
            },
        }
    }
}

/// Sizes of the label-efficiency experiment of section 24.1: SimCLR and
/// rotation pretraining on unlabelled images, then a linear probe on few
/// labels, against a random-init encoder and the same encoder trained from
/// scratch on those labels, over several labelled subsets per budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WhySslConfig {
    /// The profile these sizes came from.
    pub profile: Profile,
    /// Images in the training split (used without labels for pretraining).
    pub train_images: usize,
    /// Images in the test split (accuracy is measured here).
    pub test_images: usize,
    /// Optimiser steps of rotation pretraining.
    pub pretrain_steps: usize,
    /// Images per rotation-pretraining batch (each is shown in all 4 rotations).
    pub pretrain_batch: usize,
    /// Optimiser steps of SimCLR pretraining.
    pub simclr_steps: usize,
    /// Images per SimCLR batch (two views each).
    pub simclr_batch: usize,
    /// The labelled-subset sizes to sweep, in labels per class.
    pub label_budgets: Vec<usize>,
    /// The few-label budget: [`repetitions`](FewLabelBudget::repetitions)
    /// subsets at every size of the sweep, the probe's and the from-scratch
    /// baseline's steps; its `labels_per_class` is the size of a single comparison.
    pub few_labels: FewLabelBudget,
    /// The seed behind initialisation, data order and subset draws.
    pub seed: u64,
}

impl FewLabelExperiment for WhySslConfig {
    fn few_labels(&self) -> &FewLabelBudget {
        &self.few_labels
    }
    fn experiment_seed(&self) -> u64 {
        self.seed
    }
}

impl WhySslConfig {
    /// The few-label protocol of repetition `repeat` at `labels_per_class`:
    /// its own labelled subset, probe and baseline initialisation, all from
    /// one seed derived from [`seed`](Self::seed), the budget and the repetition.
    pub fn protocol_at(&self, labels_per_class: usize, repeat: usize) -> FewLabelProtocol {
        self.few_labels.with_labels(labels_per_class).protocol(derive_seed(self.seed, &format!("subset-{labels_per_class}-{repeat}")))
    }

    /// SimCLR's recommended settings with this profile's steps, batch and seed.
    pub fn simclr(&self) -> PretrainConfig {
        let mut c = PretrainConfig::for_method(MethodName::SimClr);
        c.steps = self.simclr_steps;
        c.batch_size = self.simclr_batch;
        c.warmup_steps = c.warmup_steps.min(c.steps / 4);
        c.seed = self.seed;
        c
    }
}

/// The sweep of section 24.1: [`WhySslConfig::protocol_at`] for every
/// budget and repetition.
impl From<&WhySslConfig> for LabelBudgets {
    fn from(c: &WhySslConfig) -> Self {
        c.few_labels.sweep(&c.label_budgets, c.seed)
    }
}
