//! The hyperparameters that belong to one method, each settable from a
//! notebook cell with struct-update syntax:
//!
//! ```
//! use sslab::method::{DinoOptions, MethodName, PretrainConfig};
//! let base = PretrainConfig::for_method(MethodName::Dino);
//! let cfg = PretrainConfig { dino: DinoOptions { teacher_temperature: 0.07, ..base.dino.clone() }, ..base };
//! assert!(cfg.check().is_ok());
//! println!("{cfg}"); // every value the run uses, this method's options included
//! ```
//!
//! Each [`PretrainConfig`](super::PretrainConfig) carries every group; a
//! group that differs from its default on another method is an error naming
//! it ([`PretrainConfig::check`](super::PretrainConfig::check)), never
//! silently ignored. Defaults are the papers' (or lightly's), except where a
//! field's doc says why a CPU-sized run differs.

use candle_core::Result;
use serde::{Deserialize, Serialize};

/// DINO (Caron et al. 2021, Algorithm 1 and §3.1; lightly's `DINOLoss`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DinoOptions {
    /// The student's softmax temperature τ_s (paper: 0.1).
    pub student_temperature: f64,
    /// The teacher's temperature τ_t after the warm-up (paper: 0.04 to 0.07).
    /// At τ_s or above the teacher no longer sharpens and the outputs
    /// collapse to uniform (§5.3).
    pub teacher_temperature: f64,
    /// The teacher's temperature at step 0, rising linearly to
    /// [`teacher_temperature`](Self::teacher_temperature) over
    /// [`teacher_warmup_steps`](Self::teacher_warmup_steps) (paper: 0.04).
    pub warmup_teacher_temperature: f64,
    /// Steps of the teacher-temperature warm-up (paper: 30 epochs; here 0,
    /// none, for runs of a few hundred steps).
    pub teacher_warmup_steps: usize,
    /// Momentum m of the center update `c ← m c + (1 − m) mean(t)` (paper: 0.9).
    pub center_momentum: f64,
    /// Subtract the running center from the teacher's outputs. `false` is the
    /// ablation that collapses onto one prototype (§5.3).
    pub centering: bool,
    /// Global crops, seen by the teacher and the student (paper: 2).
    pub global_crops: usize,
    /// Local crops of half the image size, seen by the student only (paper:
    /// 6 to 10; here 4). 0 trains on the global crops alone (table 5).
    pub local_crops: usize,
    /// Output width K of the head: the number of prototypes (paper: 65,536;
    /// here 256, four times the default bottleneck `head_out`).
    pub prototypes: usize,
}

impl Default for DinoOptions {
    fn default() -> Self {
        Self {
            student_temperature: 0.1,
            teacher_temperature: 0.04,
            warmup_teacher_temperature: 0.04,
            teacher_warmup_steps: 0,
            center_momentum: 0.9,
            centering: true,
            global_crops: 2,
            local_crops: 4,
            prototypes: 256,
        }
    }
}

impl DinoOptions {
    /// The teacher's temperature at step `k` (from 0): the linear warm-up,
    /// then constant.
    pub fn teacher_temperature_at(&self, k: usize) -> f64 {
        if k >= self.teacher_warmup_steps {
            self.teacher_temperature
        } else {
            let t = k as f64 / self.teacher_warmup_steps as f64;
            self.warmup_teacher_temperature + t * (self.teacher_temperature - self.warmup_teacher_temperature)
        }
    }

    fn check(&self) -> Result<()> {
        for (name, t) in [
            ("student_temperature", self.student_temperature),
            ("teacher_temperature", self.teacher_temperature),
            ("warmup_teacher_temperature", self.warmup_teacher_temperature),
        ] {
            if !(t.is_finite() && t > 0.0) {
                candle_core::bail!("dino.{name} must be positive, got {t}");
            }
        }
        if !(0.0..=1.0).contains(&self.center_momentum) {
            candle_core::bail!("dino.center_momentum must be in [0, 1], got {}", self.center_momentum);
        }
        if self.global_crops == 0 || self.global_crops + self.local_crops < 2 {
            candle_core::bail!(
                "dino needs at least one global crop and two crops in all, got global_crops {} and local_crops {}",
                self.global_crops,
                self.local_crops
            );
        }
        if self.prototypes < 2 {
            candle_core::bail!("dino.prototypes must be at least 2, got {}", self.prototypes);
        }
        Ok(())
    }
}

/// Barlow Twins (Zbontar et al. 2021, eq. 1; lightly's `BarlowTwinsLoss`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BarlowOptions {
    /// The weight λ of the off-diagonal (redundancy-reduction) term (paper: 5·10⁻³).
    pub lambda: f64,
}

impl Default for BarlowOptions {
    fn default() -> Self {
        Self { lambda: 5e-3 }
    }
}

/// VICReg (Bardes et al. 2022, eq. 6; lightly's `VICRegLoss`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VicRegOptions {
    /// λ, the weight of the invariance term (paper: 25).
    pub invariance: f64,
    /// μ, the weight of the variance term (paper: 25).
    pub variance: f64,
    /// ν, the weight of the covariance term (paper: 1).
    pub covariance: f64,
}

impl Default for VicRegOptions {
    fn default() -> Self {
        Self { invariance: 25.0, variance: 25.0, covariance: 1.0 }
    }
}

/// MAE (He et al. 2022).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MaeOptions {
    /// The fraction of patches hidden from the encoder (paper: 0.75). At
    /// least one patch stays visible and at least one is hidden.
    pub mask_ratio: f64,
    /// Transformer blocks in the decoder (paper: 8; here 1, the encoder's
    /// width and heads, for a tiny ViT).
    pub decoder_depth: usize,
}

impl Default for MaeOptions {
    fn default() -> Self {
        Self { mask_ratio: 0.75, decoder_depth: 1 }
    }
}

/// Jigsaw puzzles (Noroozi & Favaro 2016).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JigsawOptions {
    /// Tiles per side (paper: 3; here 2, for 28×28 images).
    pub grid: usize,
    /// The permutations to classify, chosen for large Hamming distances
    /// (paper: 100 of 9!; here all 24 of 4!).
    pub permutations: usize,
}

impl Default for JigsawOptions {
    fn default() -> Self {
        Self { grid: 2, permutations: 24 }
    }
}

/// Context prediction (Doersch et al. 2015).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContextOptions {
    /// Side of each patch in pixels (paper: 96 on ImageNet; here 8).
    pub patch: usize,
    /// Gap between neighbouring patches in pixels, so the task cannot be
    /// solved from edges that continue (paper: up to 48; here 2).
    pub gap: usize,
}

impl Default for ContextOptions {
    fn default() -> Self {
        Self { patch: 8, gap: 2 }
    }
}

pub(crate) fn check_all(dino: &DinoOptions, barlow: &BarlowOptions, vicreg: &VicRegOptions, mae: &MaeOptions, jigsaw: &JigsawOptions, context: &ContextOptions) -> Result<()> {
    dino.check()?;
    if !(barlow.lambda.is_finite() && barlow.lambda >= 0.0) {
        candle_core::bail!("barlow.lambda must be non-negative, got {}", barlow.lambda);
    }
    for (name, w) in [("invariance", vicreg.invariance), ("variance", vicreg.variance), ("covariance", vicreg.covariance)] {
        if !(w.is_finite() && w >= 0.0) {
            candle_core::bail!("vicreg.{name} must be non-negative, got {w}");
        }
    }
    if !(mae.mask_ratio > 0.0 && mae.mask_ratio < 1.0) {
        candle_core::bail!("mae.mask_ratio must be in (0, 1), got {}", mae.mask_ratio);
    }
    if mae.decoder_depth == 0 {
        candle_core::bail!("mae.decoder_depth must be at least 1");
    }
    if jigsaw.grid < 2 || jigsaw.permutations < 2 {
        candle_core::bail!("jigsaw needs grid >= 2 and permutations >= 2, got grid {} and permutations {}", jigsaw.grid, jigsaw.permutations);
    }
    if context.patch == 0 {
        candle_core::bail!("context.patch must be at least 1 pixel");
    }
    Ok(())
}
