//! Section 24.3: text.

use super::{FewLabelBudget, FewLabelExperiment, Profile};
use crate::language::{LmConfig, LmObjective, Word2VecConfig, WordModel};
use serde::{Deserialize, Serialize};

impl Profile {
    /// The sizes of section 24.3's text pretext tasks in this profile.
    pub fn text_pretext(self) -> TextPretextConfig {
        let base = TextPretextConfig {
            profile: self,
            data: "text:tinyshakespeare/input.txt".into(),
            max_words: 3000,
            word_steps: 1500,
            lm_steps: 300,
            nsp_steps: 50,
            probe_windows: 6000,
            probe_train: 2000,
            few_labels: FewLabelBudget { scratch_steps: 150, ..FewLabelBudget::default() },
            seed: 0,
        };
        match self {
            Self::Smoke => TextPretextConfig {
                word_steps: 5,
                lm_steps: 3,
                nsp_steps: 3,
                probe_windows: 800,
                probe_train: 200,
                few_labels: FewLabelBudget { labels_per_class: 2, scratch_steps: 3, probe_steps: 20, ..base.few_labels },
                ..base
            },
            Self::Cpu => base,
            Self::Gpu => TextPretextConfig {
                word_steps: 20_000,
                lm_steps: 5000,
                nsp_steps: 2000,
                few_labels: FewLabelBudget { scratch_steps: 500, ..base.few_labels },
                ..base
            },
        }
    }
}

/// Sizes of section 24.3: word vectors, masked and causal language models
/// and next-sentence prediction on a text corpus, and a few-label probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextPretextConfig {
    /// The profile these sizes came from.
    pub profile: Profile,
    /// The corpus (`text:FILE` or `synthetic-text`).
    pub data: String,
    /// Word vocabulary size (the rest become `[UNK]`).
    pub max_words: usize,
    /// Optimiser steps of skip-gram and of CBOW.
    pub word_steps: usize,
    /// Optimiser steps of each language model.
    pub lm_steps: usize,
    /// Optimiser steps of next-sentence prediction.
    pub nsp_steps: usize,
    /// Masked-character windows drawn for the probe.
    pub probe_windows: usize,
    /// Of which the training split (the rest are the test split).
    pub probe_train: usize,
    /// The few-label budget of the masked-character probe (labels per character class).
    pub few_labels: FewLabelBudget,
    /// The seed behind initialisation, batches, masks and the labelled subset.
    pub seed: u64,
}

impl FewLabelExperiment for TextPretextConfig {
    fn few_labels(&self) -> &FewLabelBudget {
        &self.few_labels
    }
    fn experiment_seed(&self) -> u64 {
        self.seed
    }
}

impl TextPretextConfig {
    /// Word-vector settings of `model` with this profile's budget and seed.
    pub fn word2vec(&self, model: WordModel) -> Word2VecConfig {
        Word2VecConfig { steps: self.word_steps, seed: self.seed, ..Word2VecConfig::new(model) }
    }

    /// Language-model settings of `objective` with this profile's budget and seed.
    pub fn lm(&self, objective: LmObjective) -> LmConfig {
        LmConfig { steps: self.lm_steps, seed: self.seed, ..LmConfig::new(objective) }
    }
}
