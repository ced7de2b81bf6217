//! Section 24.2: the image pretext tasks.

use super::{FewLabelBudget, FewLabelExperiment, Profile};
use crate::method::{MethodName, PretrainConfig};
use serde::{Deserialize, Serialize};

impl Profile {
    /// The sizes of section 24.2's image pretext-task comparison in this profile.
    pub fn image_pretext(self) -> ImagePretextConfig {
        let base = ImagePretextConfig {
            profile: self,
            train_images: 8000,
            test_images: 2000,
            rotation_steps: 150,
            rotation_batch_size: 32,
            jigsaw_steps: 200,
            context_steps: 600,
            colorization_steps: 150,
            mae_steps: 150,
            few_labels: FewLabelBudget::default(),
            seed: 0,
        };
        match self {
            Self::Smoke => ImagePretextConfig {
                train_images: 600,
                test_images: 200,
                rotation_steps: 4,
                jigsaw_steps: 4,
                context_steps: 4,
                colorization_steps: 4,
                mae_steps: 4,
                few_labels: FewLabelBudget { scratch_steps: 5, probe_steps: 30, ..base.few_labels },
                ..base
            },
            Self::Cpu => base,
            Self::Gpu => ImagePretextConfig {
                rotation_steps: 3000,
                jigsaw_steps: 3000,
                context_steps: 5000,
                colorization_steps: 3000,
                mae_steps: 3000,
                few_labels: FewLabelBudget { scratch_steps: 1000, probe_steps: 500, ..base.few_labels },
                ..base
            },
        }
    }
}

/// Sizes of section 24.2: each image pretext task pretrains the same CNN on
/// unlabelled MNIST, then every encoder is measured on one few-label protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImagePretextConfig {
    /// The profile these sizes came from.
    pub profile: Profile,
    /// Images in the training split (pretraining uses them without labels).
    pub train_images: usize,
    /// Images in the test split (accuracy is measured here).
    pub test_images: usize,
    /// Optimiser steps of rotation prediction.
    pub rotation_steps: usize,
    /// Images per rotation step; each is shown in all 4 rotations, so 32
    /// images make a batch of 128 (the other tasks' batch).
    pub rotation_batch_size: usize,
    /// Optimiser steps of the jigsaw puzzle.
    pub jigsaw_steps: usize,
    /// Optimiser steps of context prediction.
    pub context_steps: usize,
    /// Optimiser steps of colourisation.
    pub colorization_steps: usize,
    /// Optimiser steps of the masked autoencoder.
    pub mae_steps: usize,
    /// The few-label budget every encoder is measured with.
    pub few_labels: FewLabelBudget,
    /// The seed behind initialisation, data order, augmentation and the labelled subset.
    pub seed: u64,
}

impl FewLabelExperiment for ImagePretextConfig {
    fn few_labels(&self) -> &FewLabelBudget {
        &self.few_labels
    }
    fn experiment_seed(&self) -> u64 {
        self.seed
    }
}

impl ImagePretextConfig {
    /// The method's recommended settings ([`PretrainConfig::for_method`])
    /// with this profile's step budget (and batch, for rotation) and seed.
    pub fn pretrain(&self, method: MethodName) -> PretrainConfig {
        use MethodName as M;
        let mut cfg = PretrainConfig::for_method(method);
        cfg.steps = match method {
            M::Rotation => self.rotation_steps,
            M::Jigsaw => self.jigsaw_steps,
            M::Context => self.context_steps,
            M::Colorization => self.colorization_steps,
            M::Mae => self.mae_steps,
            _ => cfg.steps,
        };
        if method == M::Rotation {
            cfg.batch_size = self.rotation_batch_size;
        }
        cfg.warmup_steps = cfg.warmup_steps.min(cfg.steps / 4);
        cfg.seed = self.seed;
        cfg
    }
}
