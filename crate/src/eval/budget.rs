//! [`FewLabelBudget`]: the few-label evaluation budget of a chapter, as data
//! — how many labels, how many labelled subsets, how long the probe and the
//! from-scratch baseline train — and the one place it becomes a
//! [`FewLabelProtocol`].

use super::{ClassifierConfig, FewLabelProtocol, LabelBudgets, ProbeConfig, RepeatedProtocol};
use crate::data::LabelledData;
use crate::rng::derive_seed;
use candle_core::Result;
use serde::{Deserialize, Serialize};

/// The few-label budget every comparison of a chapter is measured with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FewLabelBudget {
    /// Labelled examples per class, drawn from the training split.
    pub labels_per_class: usize,
    /// Labelled subsets each comparison is repeated on (the repetitions every
    /// verdict rests on).
    pub repetitions: usize,
    /// Optimiser steps of the linear probe.
    pub probe_steps: usize,
    /// Optimiser steps of the from-scratch baseline (and of fine-tuning).
    pub scratch_steps: usize,
    /// Batch size of the from-scratch baseline (and of fine-tuning).
    pub scratch_batch_size: usize,
}

impl Default for FewLabelBudget {
    /// 10 labels per class on 3 subsets, the default probe and the converged
    /// from-scratch baseline ([`ClassifierConfig::default`]).
    fn default() -> Self {
        let scratch = ClassifierConfig::default();
        Self {
            labels_per_class: 10,
            repetitions: 3,
            probe_steps: ProbeConfig::default().steps,
            scratch_steps: scratch.steps,
            scratch_batch_size: scratch.batch_size,
        }
    }
}

impl FewLabelBudget {
    /// The protocol of this budget with its draws from `seed`.
    pub fn protocol(&self, seed: u64) -> FewLabelProtocol {
        let mut p = FewLabelProtocol::new(self.labels_per_class, seed);
        p.probe.steps = self.probe_steps;
        p.scratch.steps = self.scratch_steps;
        p.scratch.batch_size = self.scratch_batch_size;
        p
    }

    /// The same budget at `labels_per_class` labels per class.
    pub fn with_labels(&self, labels_per_class: usize) -> Self {
        Self { labels_per_class, ..self.clone() }
    }

    /// [`protocol`](Self::protocol) on [`repetitions`](Self::repetitions)
    /// labelled subsets of `train`, each measured on all of `test`.
    pub fn repeated<L: LabelledData + Clone>(&self, seed: u64, train: &L, test: &L) -> Result<RepeatedProtocol<L>> {
        self.protocol(seed).repeated(self.repetitions, train, test)
    }

    /// A label-efficiency sweep over `labels_per_class`: at each budget `k`,
    /// [`repetitions`](Self::repetitions) protocols, repetition `r` drawn
    /// from `derive_seed(seed, "subset-{k}-{r}")`.
    pub fn sweep(&self, labels_per_class: &[usize], seed: u64) -> LabelBudgets {
        LabelBudgets::new(labels_per_class, self.repetitions, seed, |k, r| {
            self.with_labels(k).protocol(derive_seed(seed, &format!("subset-{k}-{r}")))
        })
    }
}

/// A chapter's experiment settings that carry a [`FewLabelBudget`] and a
/// seed: its [`protocol`](Self::protocol) and [`repeated`](Self::repeated)
/// come from those two alone.
pub trait FewLabelExperiment {
    /// The budget of every comparison.
    fn few_labels(&self) -> &FewLabelBudget;
    /// The seed behind the labelled subsets, the probe and the baselines.
    fn experiment_seed(&self) -> u64;

    /// The few-label protocol every encoder of the experiment is measured with.
    fn protocol(&self) -> FewLabelProtocol {
        self.few_labels().protocol(self.experiment_seed())
    }

    /// [`protocol`](Self::protocol) on the budget's
    /// [`repetitions`](FewLabelBudget::repetitions) labelled subsets of
    /// `train`, each measured on all of `test`.
    fn repeated<L: LabelledData + Clone>(&self, train: &L, test: &L) -> Result<RepeatedProtocol<L>> {
        self.few_labels().repeated(self.experiment_seed(), train, test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol carries every number of the budget, and the sweep draws
    /// each subset from its own seed.
    #[test]
    fn a_budget_becomes_its_protocol_and_its_sweep() {
        let b = FewLabelBudget { labels_per_class: 4, repetitions: 2, probe_steps: 7, scratch_steps: 9, scratch_batch_size: 5 };
        let p = b.protocol(11);
        assert_eq!((p.labels_per_class, p.probe.steps, p.scratch.steps, p.scratch.batch_size, p.seed), (4, 7, 9, 5, 11));
        let s = b.sweep(&[1, 3], 11);
        assert_eq!(s.labels_per_class, vec![1, 3]);
        assert_eq!(s.protocols.len(), 2);
        assert!(s.protocols.iter().all(|ps| ps.len() == 2));
        assert_eq!(s.protocols[1][0].labels_per_class, 3);
        assert_eq!(s.protocols[1][1].seed, derive_seed(11, "subset-3-1"));
        assert_ne!(s.protocols[1][0].seed, s.protocols[1][1].seed);
        assert_eq!(s.protocols[0][0].scratch.batch_size, 5);
        let d = FewLabelBudget::default();
        assert_eq!((d.scratch_steps, d.scratch_batch_size, d.probe_steps), (ClassifierConfig::CONVERGED_STEPS, 64, 300));
    }
}
