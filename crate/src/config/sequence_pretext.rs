//! Section 24.4: time series and video.

use super::{FewLabelBudget, FewLabelExperiment, Profile};
use crate::eval::FewLabelProtocol;
use crate::sequence::{FrameOrderConfig, SeriesPretrainConfig, SeriesTask};
use serde::{Deserialize, Serialize};

impl Profile {
    /// The sizes of section 24.4's sequence pretext tasks in this profile.
    pub fn sequence_pretext(self) -> SequencePretextConfig {
        let base = SequencePretextConfig {
            profile: self,
            data: "ucr:ucr/GunPoint".into(),
            steps: 200,
            batch_size: 32,
            few_labels: FewLabelBudget { labels_per_class: 2, repetitions: 5, scratch_steps: 200, scratch_batch_size: 32, ..FewLabelBudget::default() },
            video_clips: 600,
            video_train: 400,
            video_frames: 8,
            video_size: 16,
            video_steps: 1000,
            video_lr: 3e-3,
            video_labels_per_class: 10,
            seed: 0,
        };
        match self {
            Self::Smoke => SequencePretextConfig {
                steps: 3,
                few_labels: FewLabelBudget { scratch_steps: 3, probe_steps: 20, ..base.few_labels },
                video_clips: 60,
                video_train: 40,
                video_steps: 3,
                video_labels_per_class: 2,
                ..base
            },
            Self::Cpu => base,
            Self::Gpu => SequencePretextConfig {
                steps: 2000,
                few_labels: FewLabelBudget { scratch_steps: 1000, ..base.few_labels },
                video_clips: 4000,
                video_train: 3000,
                video_steps: 2000,
                ..base
            },
        }
    }
}

/// Sizes of section 24.4: four pretext tasks on a UCR time-series problem
/// and frame-order prediction on synthetic video, each measured with few labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequencePretextConfig {
    /// The profile these sizes came from.
    pub profile: Profile,
    /// The time-series data spec (`ucr:DIR/NAME` or `synthetic-series`).
    pub data: String,
    /// Optimiser steps of each time-series pretext task.
    pub steps: usize,
    /// Series per pretraining step.
    pub batch_size: usize,
    /// The few-label budget of the time-series comparison (and, with
    /// [`video_labels_per_class`](Self::video_labels_per_class), of the video one).
    pub few_labels: FewLabelBudget,
    /// Synthetic clips in all.
    pub video_clips: usize,
    /// Clips in the training split (the rest are the test split).
    pub video_train: usize,
    /// Frames per clip.
    pub video_frames: usize,
    /// Frame side in pixels.
    pub video_size: usize,
    /// Optimiser steps of frame-order pretraining.
    pub video_steps: usize,
    /// AdamW learning rate of frame-order pretraining (constant).
    pub video_lr: f64,
    /// Labelled clips per class.
    pub video_labels_per_class: usize,
    /// The seed behind initialisation, batches, pretext randomness and labelled subsets.
    pub seed: u64,
}

impl FewLabelExperiment for SequencePretextConfig {
    fn few_labels(&self) -> &FewLabelBudget {
        &self.few_labels
    }
    fn experiment_seed(&self) -> u64 {
        self.seed
    }
}

impl SequencePretextConfig {
    /// The task's recommended settings with this profile's budget and seed.
    pub fn pretrain(&self, task: SeriesTask) -> SeriesPretrainConfig {
        SeriesPretrainConfig { steps: self.steps, batch_size: self.batch_size, seed: self.seed, ..SeriesPretrainConfig::for_task(task) }
    }

    /// Frame-order pretraining: 3-frame tuples, a 128 → 64 frame encoder,
    /// AdamW at [`video_lr`](Self::video_lr).
    pub fn frame_order(&self) -> FrameOrderConfig {
        FrameOrderConfig { lr: self.video_lr, seed: self.seed, ..Default::default() }
    }

    /// The few-label protocol of the video comparison.
    pub fn video_protocol(&self) -> FewLabelProtocol {
        self.few_labels.with_labels(self.video_labels_per_class).protocol(self.seed)
    }
}
