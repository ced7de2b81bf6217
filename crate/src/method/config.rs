//! What defines a pretraining run: the method's name and [`PretrainConfig`],
//! with the augmentation choices of the two-view methods. Saved as JSON next
//! to every checkpoint.

use super::{BarlowOptions, ContextOptions, DinoOptions, EncoderConfig, JigsawOptions, MaeOptions, VicRegOptions};
use crate::train::OptimizerConfig;
use candle_core::Result;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The pretraining methods, by their command-line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    /// Predict which of four rotations was applied (Gidaris et al. 2018).
    Rotation,
    /// Contrast two augmented views against the batch (Chen et al. 2020).
    SimClr,
    /// Contrast a query against a momentum-encoded key and a queue of old keys (He et al. 2019, v2: Chen et al. 2020).
    Moco,
    /// Predict a momentum teacher's projection of another view (Grill et al. 2020).
    Byol,
    /// Predict the stop-gradient projection of another view (Chen & He 2020).
    SimSiam,
    /// Drive the cross-correlation of two views' embeddings to the identity (Zbontar et al. 2021).
    Barlow,
    /// Invariance, variance and covariance terms on two views (Bardes et al. 2021).
    VicReg,
    /// Self-distillation from a momentum teacher over multi-crop views (Caron et al. 2021).
    Dino,
    /// Reconstruct masked image patches with a ViT (He et al. 2021).
    Mae,
    /// Predict which permutation shuffled the image's tiles (Noroozi & Favaro 2016).
    Jigsaw,
    /// Predict an image's colours from its gray version (Zhang et al. 2016).
    Colorization,
    /// Predict where a patch lies relative to the centre patch (Doersch et al. 2015).
    Context,
}

impl MethodName {
    /// Every method, in the chapter's order.
    pub const ALL: [MethodName; 12] = [
        MethodName::Rotation,
        MethodName::Jigsaw,
        MethodName::Context,
        MethodName::Colorization,
        MethodName::Mae,
        MethodName::SimClr,
        MethodName::Moco,
        MethodName::Byol,
        MethodName::SimSiam,
        MethodName::Barlow,
        MethodName::VicReg,
        MethodName::Dino,
    ];

    /// Whether the method compares embeddings of views (SimCLR, MoCo, BYOL,
    /// SimSiam, Barlow Twins, VICReg, DINO) rather than solving a pretext
    /// task: these take any image encoder, ResNet-18 included.
    pub fn is_joint_embedding(&self) -> bool {
        use MethodName as M;
        matches!(self, M::SimClr | M::Moco | M::Byol | M::SimSiam | M::Barlow | M::VicReg | M::Dino)
    }

    /// The command-line name.
    pub fn as_str(&self) -> &'static str {
        match self {
            MethodName::Rotation => "rotation",
            MethodName::SimClr => "simclr",
            MethodName::Moco => "moco",
            MethodName::Byol => "byol",
            MethodName::SimSiam => "simsiam",
            MethodName::Barlow => "barlow",
            MethodName::VicReg => "vicreg",
            MethodName::Dino => "dino",
            MethodName::Mae => "mae",
            MethodName::Jigsaw => "jigsaw",
            MethodName::Colorization => "colorization",
            MethodName::Context => "context",
        }
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MethodName {
    type Err = candle_core::Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        Self::ALL.iter().copied().find(|m| m.as_str() == lower).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|m| m.as_str()).collect();
            candle_core::Error::Msg(format!("unknown method {s:?}; expected one of {}", names.join(", ")))
        })
    }
}

/// Everything that defines a pretraining run (saved as JSON next to its checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// The method.
    pub method: MethodName,
    /// Planned optimiser steps (the learning-rate schedule spans them).
    pub steps: usize,
    /// Images per step (each method may make several views of each).
    pub batch_size: usize,
    /// The one seed behind initialisation, data order and augmentation.
    pub seed: u64,
    /// Optimiser and peak learning rate.
    pub optimizer: OptimizerConfig,
    /// Linear warm-up steps before the cosine decay.
    pub warmup_steps: usize,
    /// The backbone. Its input channels come from the data when a run is
    /// built ([`Pretrainer::config`](super::Pretrainer::config) shows the
    /// value it uses; see [`PretrainConfig::encoder_for`]).
    pub encoder: EncoderConfig,
    /// Hidden width of projection/prediction heads.
    pub head_hidden: usize,
    /// Output width of projection heads.
    pub head_out: usize,
    /// Softmax temperature of contrastive losses.
    pub temperature: f64,
    /// Where the data came from (informational; a data spec such as `idx:DIR`).
    pub data: String,
    /// EMA decay τ of momentum teachers: MoCo's constant momentum, the base
    /// of BYOL's and DINO's cosine schedule (which rises to 1). The papers use
    /// 0.999 (MoCo) and 0.996 (BYOL, DINO) over long runs; 0.99 suits runs of
    /// a few hundred CPU steps. Absent in old checkpoints: 0.99.
    #[serde(default = "default_ema_momentum")]
    pub ema_momentum: f64,
    /// MoCo's queue length K (number of negative keys); 0 means 16 × `batch_size`.
    #[serde(default)]
    pub queue_size: usize,
    /// MoCo's shuffling batch norm on one device: each view's batch is cut
    /// into this many sub-batches with their own batch-norm statistics (as on
    /// that many GPUs, §3.3 of He et al. 2020), taken in order for the
    /// queries and in a random order for the keys, so a query and its key are
    /// not normalised together. MoCo v2 ran 8 GPUs of 32 images; the default
    /// 4 gives 32 per sub-batch at MoCo's batch of 128. 1 turns it off.
    /// Absent in old checkpoints: 1.
    #[serde(default = "one")]
    pub shuffle_bn_splits: usize,
    /// The augmentations of the two-view methods (SimCLR, MoCo, SimSiam,
    /// Barlow Twins, VICReg). Absent in old checkpoints: `auto`.
    #[serde(default)]
    pub augment: AugmentPreset,
    /// Steps left out of the two-view methods' pipeline (an ablation: SimCLR
    /// without cropping, without colour jitter, …). Absent in old
    /// checkpoints: none.
    #[serde(default)]
    pub augment_without: Vec<AugmentStep>,
    /// BYOL and SimSiam: the predictor head on the online branch. `false` is
    /// the ablation that collapses (Chen & He 2021, table 1). Absent in old
    /// checkpoints: `true`.
    #[serde(default = "yes")]
    pub predictor: bool,
    /// BYOL and SimSiam: no gradient through the target branch (BYOL's EMA
    /// teacher, SimSiam's `stopgrad(z)`). `false` — BYOL then predicts the
    /// online network's own projection — is the ablation that collapses.
    /// Absent in old checkpoints: `true`.
    #[serde(default = "yes")]
    pub stop_gradient: bool,
    /// The learning rate at the end of the cosine decay, as a fraction of
    /// the peak (lightly's and solo-learn's CPU-sized examples decay to a
    /// few per cent; 0 decays to zero). Absent in old checkpoints: 0.05.
    #[serde(default = "default_final_lr_fraction")]
    pub final_lr_fraction: f64,
    /// DINO's own hyperparameters (temperatures, center, crops, prototypes).
    #[serde(default)]
    pub dino: DinoOptions,
    /// Barlow Twins' λ.
    #[serde(default)]
    pub barlow: BarlowOptions,
    /// VICReg's three weights.
    #[serde(default)]
    pub vicreg: VicRegOptions,
    /// MAE's mask ratio and decoder depth.
    #[serde(default)]
    pub mae: MaeOptions,
    /// The jigsaw grid and permutation count.
    #[serde(default)]
    pub jigsaw: JigsawOptions,
    /// Context prediction's patch size and gap.
    #[serde(default)]
    pub context: ContextOptions,
}

fn default_final_lr_fraction() -> f64 {
    0.05
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

/// One step of an augmentation pipeline, for [`PretrainConfig::augment_without`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AugmentStep {
    /// Random resized crop.
    Crop,
    /// Horizontal flip.
    Flip,
    /// Colour jitter (brightness, contrast, saturation, hue).
    Color,
    /// Random grayscale.
    Grayscale,
    /// Gaussian blur.
    Blur,
}

impl AugmentStep {
    /// Every step, in pipeline order.
    pub const ALL: [AugmentStep; 5] = [Self::Crop, Self::Flip, Self::Color, Self::Grayscale, Self::Blur];

    /// The transform's type name in a [`crate::augment::Compose`].
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Crop => "RandomResizedCrop",
            Self::Flip => "HorizontalFlip",
            Self::Color => "ColorJitter",
            Self::Grayscale => "Grayscale",
            Self::Blur => "GaussianBlur",
        }
    }
}

impl fmt::Display for AugmentStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Crop => "crop",
            Self::Flip => "flip",
            Self::Color => "colour jitter",
            Self::Grayscale => "grayscale",
            Self::Blur => "blur",
        })
    }
}

/// The augmentation family of the two-view methods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AugmentPreset {
    /// [`Digits`](AugmentPreset::Digits) for one-channel images, [`SimClr`](AugmentPreset::SimClr) otherwise.
    #[default]
    Auto,
    /// [`crate::augment::simclr`]: crop, flip, colour jitter, grayscale, blur.
    SimClr,
    /// [`crate::augment::digits`]: crop, brightness/contrast, blur; no flip.
    Digits,
}

impl AugmentPreset {
    /// Whether images with `channels` channels get the digits recipe.
    pub fn is_digits(&self, channels: usize) -> bool {
        match self {
            AugmentPreset::Auto => channels == 1,
            AugmentPreset::Digits => true,
            AugmentPreset::SimClr => false,
        }
    }

    /// The pipeline for images of `shape = (C, H, W)`.
    pub fn pipeline(&self, shape: (usize, usize, usize)) -> crate::augment::Compose {
        let size = shape.1.min(shape.2);
        if self.is_digits(shape.0) {
            crate::augment::digits(size)
        } else {
            crate::augment::simclr(size)
        }
    }
}

fn default_ema_momentum() -> f64 {
    0.99
}

impl PretrainConfig {
    /// The recommended settings of `method` for 28×28 grey-scale images on a CPU.
    pub fn for_method(method: MethodName) -> Self {
        let base = Self {
            method,
            steps: 200,
            batch_size: 128,
            seed: 0,
            optimizer: OptimizerConfig::adamw(1e-3, 1e-4),
            warmup_steps: 10,
            encoder: EncoderConfig::default(),
            head_hidden: 128,
            head_out: 64,
            temperature: 0.2,
            data: String::new(),
            ema_momentum: default_ema_momentum(),
            queue_size: 0,
            shuffle_bn_splits: 4,
            augment: AugmentPreset::Auto,
            augment_without: Vec::new(),
            predictor: true,
            stop_gradient: true,
            final_lr_fraction: default_final_lr_fraction(),
            dino: DinoOptions::default(),
            barlow: BarlowOptions::default(),
            vicreg: VicRegOptions::default(),
            mae: MaeOptions::default(),
            jigsaw: JigsawOptions::default(),
            context: ContextOptions::default(),
        };
        let adamw2 = OptimizerConfig::adamw(2e-3, 1e-4);
        match method {
            MethodName::Rotation => Self { batch_size: 64, optimizer: adamw2, ..base },
            MethodName::SimClr => Self { steps: 450, batch_size: 256, temperature: 0.2, optimizer: adamw2, ..base },
            // batch norm in the encoder: without it every random-init key points the same way
            // (cosine ≈ 0.99) and a key encoder that only moves by EMA never spreads them
            // in a CPU-sized run (see the `moco` module docs)
            MethodName::Moco => Self {
                temperature: 0.2,
                queue_size: 4096,
                optimizer: adamw2,
                encoder: EncoderConfig::Cnn(crate::nn::CnnConfig { batch_norm: true, ..Default::default() }),
                ..base
            },
            // τ = 0.9 and a higher rate: with 0.99 and 2e-3, 300 steps of 128 digits left
            // BYOL's k-NN accuracy below a random encoder's; these gave +7 points
            // (a handful of settings tried on one seed)
            MethodName::Byol => Self { optimizer: OptimizerConfig::adamw(5e-3, 1e-4), ema_momentum: 0.9, ..base },
            MethodName::SimSiam => Self { optimizer: adamw2, ..base },
            MethodName::Barlow | MethodName::VicReg => Self { head_hidden: 256, head_out: 128, optimizer: adamw2, ..base },
            MethodName::Dino => Self { batch_size: 64, optimizer: adamw2, ..base },
            MethodName::Mae => Self {
                encoder: EncoderConfig::Vit(crate::nn::VitConfig::default()),
                optimizer: OptimizerConfig::adamw(1e-3, 0.05),
                warmup_steps: 20,
                ..base
            },
            MethodName::Jigsaw => Self { batch_size: 64, optimizer: adamw2, ..base },
            MethodName::Colorization => Self { batch_size: 64, ..base },
            MethodName::Context => Self { batch_size: 128, optimizer: adamw2, ..base },
        }
    }

    /// The two-view methods' augmentation for images of `shape = (C, H, W)`:
    /// [`augment`](Self::augment)'s pipeline without the steps in
    /// [`augment_without`](Self::augment_without).
    pub fn augmentation(&self, shape: (usize, usize, usize)) -> crate::augment::Compose {
        let drop: Vec<&str> = self.augment_without.iter().map(AugmentStep::type_name).collect();
        self.augment.pipeline(shape).without(&drop)
    }

    /// The encoder a run on images with `image_channels` channels builds:
    /// `encoder` with the data's channels (colorization's encoder sees the
    /// grey image: 1 channel).
    pub fn encoder_for(&self, image_channels: usize) -> EncoderConfig {
        let channels = if self.method == MethodName::Colorization { 1 } else { image_channels };
        self.encoder.with_in_channels(channels)
    }

    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> Result<()> {
        self.optimizer.check()?;
        if self.batch_size < 2 {
            candle_core::bail!("pretraining needs batch_size >= 2, got {}", self.batch_size);
        }
        if self.warmup_steps > self.steps.max(1) {
            candle_core::bail!("warmup_steps {} is larger than steps {}", self.warmup_steps, self.steps);
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            candle_core::bail!("temperature must be positive, got {}", self.temperature);
        }
        if !(0.0..=1.0).contains(&self.ema_momentum) {
            candle_core::bail!("ema_momentum must be in [0, 1], got {}", self.ema_momentum);
        }
        if self.shuffle_bn_splits == 0 {
            candle_core::bail!("shuffle_bn_splits must be at least 1 (1: no split), got 0");
        }
        if !(0.0..=1.0).contains(&self.final_lr_fraction) {
            candle_core::bail!("final_lr_fraction must be in [0, 1], got {}", self.final_lr_fraction);
        }
        super::options::check_all(&self.dino, &self.barlow, &self.vicreg, &self.mae, &self.jigsaw, &self.context)?;
        let unused = self.unused_settings();
        if let Some(first) = unused.first() {
            candle_core::bail!("{first} does not apply to {} (it is used by {})", self.method, Self::users(first).join(", "));
        }
        Ok(())
    }

    /// The methods a setting applies to (every method for the common ones).
    pub(crate) fn users(setting: &str) -> Vec<&'static str> {
        use MethodName as M;
        let users: &[MethodName] = match setting {
            "temperature" => &[M::SimClr, M::Moco],
            "queue_size" | "shuffle_bn_splits" => &[M::Moco],
            "ema_momentum" => &[M::Moco, M::Byol, M::Dino],
            "predictor" | "stop_gradient" => &[M::Byol, M::SimSiam],
            "augment" => &[M::SimClr, M::Moco, M::Byol, M::SimSiam, M::Barlow, M::VicReg, M::Dino],
            "augment_without" => &[M::SimClr, M::Moco, M::Byol, M::SimSiam, M::Barlow, M::VicReg],
            "head_hidden" | "head_out" => &[M::SimClr, M::Moco, M::Byol, M::SimSiam, M::Barlow, M::VicReg, M::Dino],
            "dino" => &[M::Dino],
            "barlow" => &[M::Barlow],
            "vicreg" => &[M::VicReg],
            "mae" => &[M::Mae],
            "jigsaw" => &[M::Jigsaw],
            "context" => &[M::Context],
            _ => &M::ALL,
        };
        users.iter().map(|m| m.as_str()).collect()
    }

    /// The settings changed from [`for_method`](Self::for_method)'s values
    /// that `method` does not use (each would be silently ignored).
    pub fn unused_settings(&self) -> Vec<&'static str> {
        let d = Self::for_method(self.method);
        let changed = [
            ("temperature", self.temperature != d.temperature),
            ("queue_size", self.queue_size != d.queue_size),
            ("shuffle_bn_splits", self.shuffle_bn_splits != d.shuffle_bn_splits),
            ("ema_momentum", self.ema_momentum != d.ema_momentum),
            ("predictor", self.predictor != d.predictor),
            ("stop_gradient", self.stop_gradient != d.stop_gradient),
            ("augment", self.augment != d.augment),
            ("augment_without", self.augment_without != d.augment_without),
            ("head_hidden", self.head_hidden != d.head_hidden),
            ("head_out", self.head_out != d.head_out),
            ("dino", self.dino != d.dino),
            ("barlow", self.barlow != d.barlow),
            ("vicreg", self.vicreg != d.vicreg),
            ("mae", self.mae != d.mae),
            ("jigsaw", self.jigsaw != d.jigsaw),
            ("context", self.context != d.context),
        ];
        let name = self.method.as_str();
        changed.into_iter().filter(|&(s, c)| c && !Self::users(s).contains(&name)).map(|(s, _)| s).collect()
    }

    /// The settings `method` uses, as `name = value` pairs in the order of
    /// the struct (what [`Display`](fmt::Display) prints).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut all: Vec<(&'static str, String)> = vec![
            ("method", self.method.to_string()),
            ("steps", self.steps.to_string()),
            ("batch_size", self.batch_size.to_string()),
            ("seed", self.seed.to_string()),
            ("optimizer", format!("{:?}", self.optimizer)),
            ("warmup_steps", self.warmup_steps.to_string()),
            ("final_lr_fraction", self.final_lr_fraction.to_string()),
            ("encoder", format!("{:?}", self.encoder)),
            ("head_hidden", self.head_hidden.to_string()),
            ("head_out", self.head_out.to_string()),
            ("temperature", self.temperature.to_string()),
            ("ema_momentum", self.ema_momentum.to_string()),
            ("queue_size", self.queue_size.to_string()),
            ("shuffle_bn_splits", self.shuffle_bn_splits.to_string()),
            ("augment", format!("{:?}", self.augment)),
            ("augment_without", format!("{:?}", self.augment_without)),
            ("predictor", self.predictor.to_string()),
            ("stop_gradient", self.stop_gradient.to_string()),
            ("dino", format!("{:?}", self.dino)),
            ("barlow", format!("{:?}", self.barlow)),
            ("vicreg", format!("{:?}", self.vicreg)),
            ("mae", format!("{:?}", self.mae)),
            ("jigsaw", format!("{:?}", self.jigsaw)),
            ("context", format!("{:?}", self.context)),
        ];
        if !self.data.is_empty() {
            all.push(("data", self.data.clone()));
        }
        let name = self.method.as_str();
        all.retain(|(s, _)| Self::users(s).contains(&name) || *s == "data");
        all
    }
}

/// Every setting the run uses, one per line (settings of other methods left out).
impl fmt::Display for PretrainConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in self.settings() {
            writeln!(f, "{k} = {v}")?;
        }
        Ok(())
    }
}
