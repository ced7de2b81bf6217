//! Run profiles: one variable scales every experiment.
//!
//! `SSLAB_PROFILE` selects how big each experiment is:
//!
//! | profile | for | budget |
//! |---|---|---|
//! | `smoke` | CI: proves every cell runs | well under a minute of compute per notebook |
//! | `cpu` (default) | a student's laptop | at most 3 minutes of compute per notebook on 2 cores |
//! | `gpu` | full-size runs on an NVIDIA GPU | minutes on one GPU |
//!
//! Notebooks never branch on the profile themselves: they ask for the
//! experiment's configuration (for example [`Profile::why_ssl`]) and print it.

pub use crate::profile::{Profile, PROFILE_VAR};
use serde::{Deserialize, Serialize};

impl Profile {
    /// The sizes of section 24.1's label-efficiency experiment in this profile.
    pub fn why_ssl(self) -> WhySslConfig {
        match self {
            Self::Smoke => WhySslConfig {
                profile: self,
                train_images: 600,
                test_images: 200,
                pretrain_steps: 6,
                pretrain_batch: 16,
                simclr_steps: 4,
                simclr_batch: 32,
                labels_per_class: vec![1, 5],
                repeats: 1,
                scratch_steps: 5,
                probe_steps: 30,
                seed: 0,
            },
            Self::Cpu => WhySslConfig {
                profile: self,
                train_images: 8000,
                test_images: 2000,
                pretrain_steps: 250,
                pretrain_batch: 32,
                simclr_steps: 280,
                simclr_batch: 256,
                labels_per_class: vec![1, 5, 10],
                repeats: 3,
                scratch_steps: crate::eval::ClassifierConfig::CONVERGED_STEPS,
                probe_steps: 300,
                seed: 0,
            },
            Self::Gpu => WhySslConfig {
                profile: self,
                train_images: 8000,
                test_images: 2000,
                pretrain_steps: 4000,
                pretrain_batch: 256,
                simclr_steps: 2000,
                simclr_batch: 512,
                labels_per_class: vec![1, 5, 10, 50, 100],
                repeats: 5,
                scratch_steps: crate::eval::ClassifierConfig::CONVERGED_STEPS,
                probe_steps: 500,
                seed: 0,
            },
        }
    }
}

/// Labelled subsets per comparison unless a profile says otherwise.
fn default_repetitions() -> usize {
    3
}

impl Profile {
    /// The sizes of section 24.2's image pretext-task comparison in this profile.
    pub fn image_pretext(self) -> ImagePretextConfig {
        let base = ImagePretextConfig {
            profile: self,
            train_images: 8000,
            test_images: 2000,
            rotation_steps: 150,
            jigsaw_steps: 200,
            context_steps: 600,
            colorization_steps: 150,
            mae_steps: 150,
            labels_per_class: 10,
            repetitions: 3,
            scratch_steps: crate::eval::ClassifierConfig::CONVERGED_STEPS,
            probe_steps: 300,
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
                scratch_steps: 5,
                probe_steps: 30,
                ..base
            },
            Self::Cpu => base,
            Self::Gpu => ImagePretextConfig {
                rotation_steps: 3000,
                jigsaw_steps: 3000,
                context_steps: 5000,
                colorization_steps: 3000,
                mae_steps: 3000,
                scratch_steps: 1000,
                probe_steps: 500,
                ..base
            },
        }
    }
}

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
            labels_per_class: 10,
            repetitions: 3,
            label_budgets: vec![1, 5, 10, 50],
            scratch_steps: crate::eval::ClassifierConfig::CONVERGED_STEPS,
            probe_steps: 300,
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
                label_budgets: vec![1, 5],
                scratch_steps: 5,
                probe_steps: 30,
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
                label_budgets: vec![1, 5, 10, 50, 100],
                scratch_steps: 1000,
                probe_steps: 500,
                encoder: Some(crate::method::EncoderConfig::ResNet(crate::nn::ResNetConfig::resnet18(1))),
                ..base
            },
        }
    }

    /// The sizes of section 24.4's sequence pretext tasks in this profile.
    pub fn sequence_pretext(self) -> SequencePretextConfig {
        let base = SequencePretextConfig {
            profile: self,
            data: "ucr:ucr/GunPoint".into(),
            steps: 200,
            batch_size: 32,
            labels_per_class: 2,
            repetitions: 5,
            scratch_steps: 200,
            probe_steps: 300,
            video_clips: 600,
            video_train: 400,
            video_frames: 8,
            video_size: 16,
            video_steps: 1000,
            video_labels_per_class: 10,
            seed: 0,
        };
        match self {
            Self::Smoke => SequencePretextConfig {
                steps: 3,
                scratch_steps: 3,
                probe_steps: 20,
                video_clips: 60,
                video_train: 40,
                video_steps: 3,
                video_labels_per_class: 2,
                ..base
            },
            Self::Cpu => base,
            Self::Gpu => SequencePretextConfig { steps: 2000, scratch_steps: 1000, video_clips: 4000, video_train: 3000, video_steps: 2000, ..base },
        }
    }
}

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
            labels_per_class: 10,
            repetitions: 3,
            scratch_steps: 150,
            probe_steps: 300,
            seed: 0,
        };
        match self {
            Self::Smoke => TextPretextConfig {
                word_steps: 5,
                lm_steps: 3,
                nsp_steps: 3,
                probe_windows: 800,
                probe_train: 200,
                labels_per_class: 2,
                scratch_steps: 3,
                probe_steps: 20,
                ..base
            },
            Self::Cpu => base,
            Self::Gpu => TextPretextConfig { word_steps: 20_000, lm_steps: 5000, nsp_steps: 2000, scratch_steps: 500, ..base },
        }
    }
}

impl Profile {
    /// The sizes of section 25.5 (CLIP on captioned shapes) in this profile.
    pub fn multimodal(self) -> MultimodalConfig {
        let base = MultimodalConfig {
            profile: self,
            train_pairs: 6000,
            test_pairs: 2000,
            steps: 300,
            batch_size: 128,
            short_steps: 100,
            held_out: [("triangle", "red"), ("circle", "blue"), ("square", "yellow"), ("cross", "green")]
                .iter()
                .map(|(s, c)| (s.to_string(), c.to_string()))
                .collect(),
            seed: 0,
        };
        match self {
            Self::Smoke => MultimodalConfig { train_pairs: 600, test_pairs: 300, steps: 5, batch_size: 32, short_steps: 2, ..base },
            Self::Cpu => base,
            Self::Gpu => MultimodalConfig { train_pairs: 60000, test_pairs: 10000, steps: 3000, batch_size: 512, short_steps: 1000, ..base },
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
    pub labels_per_class: Vec<usize>,
    /// Labelled subsets drawn per size (the repetitions every verdict rests on).
    pub repeats: usize,
    /// Optimiser steps for training the encoder from scratch on the labels
    /// (the converged default of [`crate::eval::ClassifierConfig`] outside `smoke`).
    pub scratch_steps: usize,
    /// Optimiser steps for the linear probe.
    pub probe_steps: usize,
    /// The seed behind initialisation, data order and subset draws.
    pub seed: u64,
}

impl WhySslConfig {
    /// The few-label protocol of repetition `repeat` at `labels_per_class`:
    /// its own labelled subset, probe and baseline initialisation, all from
    /// one seed derived from [`seed`](Self::seed), the budget and the repetition.
    pub fn protocol_at(&self, labels_per_class: usize, repeat: usize) -> crate::eval::FewLabelProtocol {
        let seed = crate::rng::derive_seed(self.seed, &format!("subset-{labels_per_class}-{repeat}"));
        let mut p = crate::eval::FewLabelProtocol::new(labels_per_class, seed);
        p.probe.steps = self.probe_steps;
        p.scratch.steps = self.scratch_steps;
        p
    }

    /// SimCLR's recommended settings with this profile's steps, batch and seed.
    pub fn simclr(&self) -> crate::method::PretrainConfig {
        let mut c = crate::method::PretrainConfig::for_method(crate::method::MethodName::SimClr);
        c.steps = self.simclr_steps;
        c.batch_size = self.simclr_batch;
        c.warmup_steps = c.warmup_steps.min(c.steps / 4);
        c.seed = self.seed;
        c
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
    /// Optimiser steps of the jigsaw puzzle.
    pub jigsaw_steps: usize,
    /// Optimiser steps of context prediction.
    pub context_steps: usize,
    /// Optimiser steps of colourisation.
    pub colorization_steps: usize,
    /// Optimiser steps of the masked autoencoder.
    pub mae_steps: usize,
    /// Labelled examples per class for the probes and the from-scratch baseline.
    pub labels_per_class: usize,
    /// Labelled subsets every comparison is repeated on (mean ± std and
    /// verdicts over them; [`crate::eval::FewLabelProtocol::repeated`]).
    #[serde(default = "default_repetitions")]
    pub repetitions: usize,
    /// Optimiser steps of the from-scratch baseline.
    pub scratch_steps: usize,
    /// Optimiser steps of each linear probe.
    pub probe_steps: usize,
    /// The seed behind initialisation, data order, augmentation and the labelled subset.
    pub seed: u64,
}

impl ImagePretextConfig {
    /// The method's recommended settings ([`crate::method::PretrainConfig::for_method`])
    /// with this profile's step budget and seed.
    pub fn pretrain(&self, method: crate::method::MethodName) -> crate::method::PretrainConfig {
        use crate::method::MethodName as M;
        let mut cfg = crate::method::PretrainConfig::for_method(method);
        cfg.steps = match method {
            M::Rotation => self.rotation_steps,
            M::Jigsaw => self.jigsaw_steps,
            M::Context => self.context_steps,
            M::Colorization => self.colorization_steps,
            M::Mae => self.mae_steps,
            _ => cfg.steps,
        };
        if method == M::Rotation {
            // every image is shown in 4 rotations: 32 images make a batch of 128
            cfg.batch_size = 32;
        }
        cfg.warmup_steps = cfg.warmup_steps.min(cfg.steps / 4);
        cfg.seed = self.seed;
        cfg
    }

    /// The few-label protocol every encoder of the section is measured with.
    pub fn protocol(&self) -> crate::eval::FewLabelProtocol {
        let mut p = crate::eval::FewLabelProtocol::new(self.labels_per_class, self.seed);
        p.probe.steps = self.probe_steps;
        p.scratch.steps = self.scratch_steps;
        p
    }

    /// [`protocol`](Self::protocol) on [`repetitions`](Self::repetitions)
    /// labelled subsets of `train`, each measured on all of `test`.
    pub fn repeated<L: crate::data::LabelledData + Clone>(&self, train: &L, test: &L) -> candle_core::Result<crate::eval::RepeatedProtocol<L>> {
        self.protocol().repeated(self.repetitions, train, test)
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
    /// Labelled examples per class for the probes and the from-scratch baseline.
    pub labels_per_class: usize,
    /// Labelled subsets every comparison is repeated on (mean ± std and
    /// verdicts over them; [`crate::eval::FewLabelProtocol::repeated`]).
    #[serde(default = "default_repetitions")]
    pub repetitions: usize,
    /// The budgets of the label-efficiency curve, in labels per class.
    pub label_budgets: Vec<usize>,
    /// Optimiser steps of the from-scratch baseline.
    pub scratch_steps: usize,
    /// Optimiser steps of each linear probe.
    pub probe_steps: usize,
    /// The seed behind initialisation, data order, augmentation and the labelled subsets.
    pub seed: u64,
    /// The encoder of every joint-embedding run, or `None` for each method's
    /// own default (the small CNN). The `gpu` profile uses ResNet-18.
    pub encoder: Option<crate::method::EncoderConfig>,
}

impl ContrastiveConfig {
    /// `method`'s recommended settings ([`crate::method::PretrainConfig::for_method`])
    /// with the main run's steps, batch size and seed.
    pub fn pretrain(&self, method: crate::method::MethodName) -> crate::method::PretrainConfig {
        let mut cfg = crate::method::PretrainConfig::for_method(method);
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
    pub fn pretrain_at(&self, method: crate::method::MethodName, batch_size: usize) -> crate::method::PretrainConfig {
        crate::method::PretrainConfig { batch_size, ..self.pretrain(method) }
    }

    /// The same for one run of an ablation or sweep.
    pub fn short(&self, method: crate::method::MethodName) -> crate::method::PretrainConfig {
        let mut cfg = self.pretrain(method);
        cfg.steps = self.short_steps;
        cfg.batch_size = self.short_batch_size;
        cfg.warmup_steps = cfg.warmup_steps.min(cfg.steps / 4);
        cfg
    }

    /// Section 25.6's benchmark: every method that trains on one-channel
    /// images, 3 seeds, the same step budget for all — 150 steps of 128
    /// images (`cpu`), 2 of 16 (`smoke`), 1,000 of 256 with ResNet-18 (`gpu`).
    pub fn benchmark(&self) -> crate::eval::BenchmarkConfig {
        let (steps, batch_size) = match self.profile {
            Profile::Smoke => (2, 16),
            Profile::Cpu => (120, 128),
            Profile::Gpu => (1000, 256),
        };
        crate::eval::BenchmarkConfig {
            methods: crate::eval::BenchmarkConfig::methods_for(1),
            seeds: vec![self.seed, self.seed + 1, self.seed + 2],
            steps,
            batch_size,
            encoder: self.encoder.clone(),
            labels_per_class: self.labels_per_class,
            probe_steps: self.probe_steps,
            scratch_steps: self.scratch_steps,
        }
    }

    /// The few-label protocol at [`labels_per_class`](Self::labels_per_class).
    pub fn protocol(&self) -> crate::eval::FewLabelProtocol {
        self.protocol_with(self.labels_per_class)
    }

    /// [`protocol`](Self::protocol) on [`repetitions`](Self::repetitions)
    /// labelled subsets of `train`, each measured on all of `test`.
    pub fn repeated<L: crate::data::LabelledData + Clone>(&self, train: &L, test: &L) -> candle_core::Result<crate::eval::RepeatedProtocol<L>> {
        self.protocol().repeated(self.repetitions, train, test)
    }

    /// The same protocol with `labels_per_class` labels per class.
    pub fn protocol_with(&self, labels_per_class: usize) -> crate::eval::FewLabelProtocol {
        let mut p = crate::eval::FewLabelProtocol::new(labels_per_class, self.seed);
        p.probe.steps = self.probe_steps;
        p.scratch.steps = self.scratch_steps;
        p
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
    /// Labelled series per class for the probes and the from-scratch baseline.
    pub labels_per_class: usize,
    /// Labelled subsets every comparison is repeated on (mean ± std and
    /// verdicts over them; [`crate::eval::FewLabelProtocol::repeated`]).
    #[serde(default = "default_repetitions")]
    pub repetitions: usize,
    /// Optimiser steps of the from-scratch baseline (and of fine-tuning).
    pub scratch_steps: usize,
    /// Optimiser steps of each linear probe.
    pub probe_steps: usize,
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
    /// Labelled clips per class.
    pub video_labels_per_class: usize,
    /// The seed behind initialisation, batches, pretext randomness and labelled subsets.
    pub seed: u64,
}

impl SequencePretextConfig {
    /// The task's recommended settings with this profile's budget and seed.
    pub fn pretrain(&self, task: crate::sequence::SeriesTask) -> crate::sequence::SeriesPretrainConfig {
        crate::sequence::SeriesPretrainConfig {
            steps: self.steps,
            batch_size: self.batch_size,
            seed: self.seed,
            ..crate::sequence::SeriesPretrainConfig::for_task(task)
        }
    }

    /// The few-label protocol of the time-series comparison.
    pub fn protocol(&self) -> crate::eval::FewLabelProtocol {
        let mut p = crate::eval::FewLabelProtocol::new(self.labels_per_class, self.seed);
        p.probe.steps = self.probe_steps;
        p.scratch.steps = self.scratch_steps;
        p.scratch.batch_size = 32;
        p
    }

    /// [`protocol`](Self::protocol) on [`repetitions`](Self::repetitions)
    /// labelled subsets of `train`, each measured on all of `test`.
    pub fn repeated<L: crate::data::LabelledData + Clone>(&self, train: &L, test: &L) -> candle_core::Result<crate::eval::RepeatedProtocol<L>> {
        self.protocol().repeated(self.repetitions, train, test)
    }

    /// Frame-order pretraining: 3-frame tuples, a 128 → 64 frame encoder, AdamW 3e-3.
    pub fn frame_order(&self) -> crate::sequence::FrameOrderConfig {
        crate::sequence::FrameOrderConfig { lr: 3e-3, seed: self.seed, ..Default::default() }
    }

    /// The few-label protocol of the video comparison.
    pub fn video_protocol(&self) -> crate::eval::FewLabelProtocol {
        let mut p = crate::eval::FewLabelProtocol::new(self.video_labels_per_class, self.seed);
        p.probe.steps = self.probe_steps;
        p.scratch.steps = self.scratch_steps;
        p.scratch.batch_size = 32;
        p
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
    /// Labelled windows per character class.
    pub labels_per_class: usize,
    /// Labelled subsets every comparison is repeated on (mean ± std and
    /// verdicts over them; [`crate::eval::FewLabelProtocol::repeated`]).
    #[serde(default = "default_repetitions")]
    pub repetitions: usize,
    /// Optimiser steps of the from-scratch baseline (and of fine-tuning).
    pub scratch_steps: usize,
    /// Optimiser steps of each linear probe.
    pub probe_steps: usize,
    /// The seed behind initialisation, batches, masks and the labelled subset.
    pub seed: u64,
}

impl TextPretextConfig {
    /// Word-vector settings of `model` with this profile's budget and seed.
    pub fn word2vec(&self, model: crate::language::WordModel) -> crate::language::Word2VecConfig {
        crate::language::Word2VecConfig { steps: self.word_steps, seed: self.seed, ..crate::language::Word2VecConfig::new(model) }
    }

    /// Language-model settings of `objective` with this profile's budget and seed.
    pub fn lm(&self, objective: crate::language::LmObjective) -> crate::language::LmConfig {
        crate::language::LmConfig { steps: self.lm_steps, seed: self.seed, ..crate::language::LmConfig::new(objective) }
    }

    /// The few-label protocol of the masked-character probe.
    pub fn protocol(&self) -> crate::eval::FewLabelProtocol {
        let mut p = crate::eval::FewLabelProtocol::new(self.labels_per_class, self.seed);
        p.probe.steps = self.probe_steps;
        p.scratch.steps = self.scratch_steps;
        p
    }

    /// [`protocol`](Self::protocol) on [`repetitions`](Self::repetitions)
    /// labelled subsets of `train`, each measured on all of `test`.
    pub fn repeated<L: crate::data::LabelledData + Clone>(&self, train: &L, test: &L) -> candle_core::Result<crate::eval::RepeatedProtocol<L>> {
        self.protocol().repeated(self.repetitions, train, test)
    }
}

/// Sizes of section 25.5: CLIP on generated image–caption pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultimodalConfig {
    /// The profile these sizes came from.
    pub profile: Profile,
    /// Generated training pairs (before the held-out combinations are removed).
    pub train_pairs: usize,
    /// Generated test pairs (seen and held-out combinations).
    pub test_pairs: usize,
    /// Optimiser steps of the main run.
    pub steps: usize,
    /// Pairs per step.
    pub batch_size: usize,
    /// Optimiser steps of a "Try it" run.
    pub short_steps: usize,
    /// (shape, colour) pairs never shown together in training.
    pub held_out: Vec<(String, String)>,
    /// The seed behind the data, initialisation and batch order.
    pub seed: u64,
}

impl MultimodalConfig {
    /// The model and training settings of the main run.
    pub fn clip(&self) -> crate::multimodal::ClipConfig {
        crate::multimodal::ClipConfig { steps: self.steps, batch_size: self.batch_size, seed: self.seed, ..Default::default() }
    }

    /// The held-out pairs as (shape, colour) indices.
    ///
    /// # Errors
    /// Naming a word that is not a shape or a colour.
    pub fn held_out_indices(&self) -> crate::Result<Vec<(usize, usize)>> {
        self.held_out.iter().map(|(s, c)| crate::data::shape_colour(s, c)).collect()
    }

    /// Training pairs without the held-out combinations, test pairs with
    /// them (from another seed), and the test pairs split into seen and
    /// held-out combinations: `(train, test_seen, test_held_out)`.
    pub fn data(&self) -> crate::Result<(crate::data::CaptionedImages, crate::data::CaptionedImages, crate::data::CaptionedImages)> {
        let held = self.held_out_indices()?;
        let is_held = |a: &crate::data::Attributes| held.contains(&(a.shape, a.colour));
        let train = crate::data::captioned_shapes(self.train_pairs, self.seed)?.filter(|a| !is_held(a))?;
        let test = crate::data::captioned_shapes(self.test_pairs, crate::rng::derive_seed(self.seed, "captions-test"))?;
        Ok((train, test.filter(|a| !is_held(a))?, test.filter(is_held)?))
    }
}

/// The sweep of section 24.1: [`WhySslConfig::protocol_at`] for every
/// budget and repetition.
impl From<&WhySslConfig> for crate::eval::LabelBudgets {
    fn from(c: &WhySslConfig) -> Self {
        crate::eval::LabelBudgets::new(&c.labels_per_class, c.repeats, c.seed, |k, r| c.protocol_at(k, r))
    }
}

/// The label curve of section 25.1: one subset per budget, drawn by
/// [`ContrastiveConfig::protocol_with`].
impl From<&ContrastiveConfig> for crate::eval::LabelBudgets {
    fn from(c: &ContrastiveConfig) -> Self {
        crate::eval::LabelBudgets::new(&c.label_budgets, 1, c.seed, |k, _| c.protocol_with(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Budgets grow with the profile; the held-out (shape, colour) pairs are
    /// in the held-out test split only, never in training.
    #[test]
    fn multimodal_sizes_and_held_out_split() {
        let (smoke, cpu, gpu) = (Profile::Smoke.multimodal(), Profile::Cpu.multimodal(), Profile::Gpu.multimodal());
        assert!(smoke.steps < cpu.steps && cpu.steps < gpu.steps && smoke.train_pairs < cpu.train_pairs);
        assert_eq!((cpu.clip().steps, cpu.clip().batch_size, cpu.clip().seed), (cpu.steps, cpu.batch_size, cpu.seed));
        let (train, seen, held) = smoke.data().unwrap();
        let pairs = smoke.held_out_indices().unwrap();
        assert_eq!(pairs.len(), 4);
        assert!(train.attributes.iter().all(|a| !pairs.contains(&(a.shape, a.colour))));
        assert!(seen.attributes.iter().all(|a| !pairs.contains(&(a.shape, a.colour))));
        assert!(!held.is_empty() && held.attributes.iter().all(|a| pairs.contains(&(a.shape, a.colour))));
        assert_eq!(seen.len() + held.len(), smoke.test_pairs);
        // 4 of the 16 (shape, colour) pairs held out: about a quarter of the pairs
        assert!(train.len() > smoke.train_pairs * 7 / 10 && train.len() < smoke.train_pairs * 8 / 10, "{}", train.len());
        let bad = MultimodalConfig { held_out: vec![("hexagon".into(), "red".into())], ..smoke };
        assert!(bad.data().unwrap_err().to_string().contains("\"hexagon\" is not a shape"));
    }

    #[test]
    fn contrastive_budgets_grow_with_the_profile_and_reach_the_methods() {
        use crate::method::MethodName;
        let (smoke, cpu, gpu) = (Profile::Smoke.contrastive(), Profile::Cpu.contrastive(), Profile::Gpu.contrastive());
        // full size on a GPU: ResNet-18 for every joint-embedding method, MAE keeps its ViT
        use crate::method::EncoderConfig;
        let resnet18 = EncoderConfig::ResNet(crate::nn::ResNetConfig::resnet18(1));
        assert_eq!(gpu.pretrain(MethodName::SimClr).encoder, resnet18);
        assert_eq!(gpu.short(MethodName::Moco).encoder, resnet18);
        assert!(matches!(gpu.pretrain(MethodName::Mae).encoder, EncoderConfig::Vit(_)));
        assert_eq!(gpu.pretrain(MethodName::Rotation).encoder, crate::method::PretrainConfig::for_method(MethodName::Rotation).encoder);
        assert_eq!(cpu.pretrain(MethodName::SimClr).encoder, crate::method::PretrainConfig::for_method(MethodName::SimClr).encoder);
        assert!(smoke.steps < cpu.steps && cpu.steps < gpu.steps);
        assert!(smoke.short_steps < cpu.short_steps && cpu.short_steps < cpu.steps);
        for p in [&smoke, &cpu, &gpu] {
            assert!(p.byol_steps >= 2 * p.steps, "BYOL gets about twice the main run's steps");
        }
        assert!(smoke.byol_steps < cpu.byol_steps && cpu.byol_steps < gpu.byol_steps);
        let (bs, bc, bg) = (smoke.benchmark(), cpu.benchmark(), gpu.benchmark());
        assert_eq!(bc.seeds.len(), 3);
        assert!(bs.steps < bc.steps && bc.steps < bg.steps && bc.methods.len() == 11);
        assert_eq!(bg.pretrain(MethodName::Byol, 0).encoder, resnet18);
        assert!(matches!(bg.pretrain(MethodName::Mae, 0).encoder, EncoderConfig::Vit(_)));
        assert_eq!(bc.pretrain(MethodName::Rotation, 2).encoder, crate::eval::BenchmarkConfig::shared_cnn());
        assert_eq!(bc.pretrain(MethodName::Moco, 2).encoder, crate::eval::BenchmarkConfig::shared_cnn());
        assert_eq!(bg.pretrain(MethodName::Jigsaw, 2).encoder, crate::eval::BenchmarkConfig::shared_cnn());
        let main = cpu.pretrain(MethodName::SimClr);
        assert_eq!((main.steps, main.batch_size, main.seed), (cpu.steps, cpu.batch_size, cpu.seed));
        let short = cpu.short(MethodName::Moco);
        assert_eq!((short.steps, short.batch_size, short.method), (cpu.short_steps, cpu.short_batch_size, MethodName::Moco));
        for c in [&smoke, &cpu, &gpu] {
            assert!(c.pretrain(MethodName::SimClr).check().is_ok() && c.short(MethodName::SimClr).check().is_ok(), "{:?}", c.profile);
        }
        assert_eq!(cpu.protocol_with(5).labels_per_class, 5);
        assert_eq!(cpu.protocol().probe.steps, cpu.probe_steps);
    }

    #[test]
    fn image_pretext_budgets_grow_with_the_profile_and_reach_the_methods() {
        use crate::method::MethodName;
        let (smoke, cpu) = (Profile::Smoke.image_pretext(), Profile::Cpu.image_pretext());
        assert!(smoke.mae_steps < cpu.mae_steps && cpu.mae_steps < Profile::Gpu.image_pretext().mae_steps);
        let c = cpu.pretrain(MethodName::Context);
        assert_eq!((c.steps, c.method, c.seed), (cpu.context_steps, MethodName::Context, cpu.seed));
        assert!(smoke.pretrain(MethodName::Mae).check().is_ok(), "warm-up must fit a 4-step smoke run");
        assert_eq!(cpu.protocol().scratch.steps, cpu.scratch_steps);
    }

    #[test]
    fn sequence_budgets_grow_with_the_profile_and_reach_the_tasks() {
        use crate::sequence::SeriesTask;
        let (smoke, cpu) = (Profile::Smoke.sequence_pretext(), Profile::Cpu.sequence_pretext());
        assert!(smoke.steps < cpu.steps && cpu.steps < Profile::Gpu.sequence_pretext().steps);
        let c = cpu.pretrain(SeriesTask::Cpc);
        assert_eq!((c.task, c.steps, c.seed), (SeriesTask::Cpc, cpu.steps, cpu.seed));
        assert!(smoke.video_train < smoke.video_clips && cpu.video_train < cpu.video_clips);
        assert_eq!(cpu.frame_order().seed, cpu.seed);
        assert_eq!(cpu.video_protocol().labels_per_class, cpu.video_labels_per_class);
    }

    #[test]
    fn text_budgets_grow_with_the_profile_and_reach_the_models() {
        use crate::language::{LmObjective, WordModel};
        let (smoke, cpu) = (Profile::Smoke.text_pretext(), Profile::Cpu.text_pretext());
        assert!(smoke.lm_steps < cpu.lm_steps && cpu.lm_steps < Profile::Gpu.text_pretext().lm_steps);
        assert_eq!(cpu.word2vec(WordModel::Cbow).steps, cpu.word_steps);
        assert_eq!(cpu.lm(LmObjective::Causal).objective, LmObjective::Causal);
        assert!(smoke.probe_train < smoke.probe_windows);
        assert_eq!(cpu.protocol().scratch.steps, cpu.scratch_steps);
    }

    #[test]
    fn profile_parse_accepts_names_and_rejects_others() {
        assert_eq!(Profile::parse("smoke").unwrap(), Profile::Smoke);
        assert_eq!(Profile::parse(" CPU ").unwrap(), Profile::Cpu);
        assert_eq!(Profile::parse("gpu").unwrap(), Profile::Gpu);
        let err = Profile::parse("fast").unwrap_err().to_string();
        assert!(err.contains("\"fast\"") && err.contains("smoke, cpu or gpu"), "{err}");
    }

    #[test]
    fn profile_sizes_grow_from_smoke_to_gpu() {
        let (s, c, g) = (Profile::Smoke.why_ssl(), Profile::Cpu.why_ssl(), Profile::Gpu.why_ssl());
        assert!(s.pretrain_steps < c.pretrain_steps && c.pretrain_steps < g.pretrain_steps);
        assert!(s.train_images < c.train_images);
        assert!(c.labels_per_class.contains(&10) && c.labels_per_class.contains(&1));
    }
}
