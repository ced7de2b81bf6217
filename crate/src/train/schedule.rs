//! Learning-rate and momentum schedules: linear warm-up, then cosine decay.
//!
//! [0] I. Loshchilov, F. Hutter, "SGDR: Stochastic Gradient Descent with Warm
//!     Restarts", 2016, arXiv:1608.03983 (cosine annealing).
//! [1] P. Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in
//!     1 Hour", 2017, arXiv:1706.02677 (linear warm-up).
//! [2] J.-B. Grill et al., "Bootstrap Your Own Latent", 2020, arXiv:2006.07733
//!     (the EMA momentum schedule τ_k).
//!
//! ```text
//! warm-up  (k < W):  η_k = η · (k + 1) / W
//! cosine   (k ≥ W):  η_k = η_end + (η − η_end) · (1 + cos(π (k − W) / (K − W))) / 2
//! momentum:          τ_k = 1 − (1 − τ_base) · (1 + cos(π k / K)) / 2
//! ```
//! Steps `k` count from 0; `K` is the total number of steps.

use candle_core::Result;
use serde::{Deserialize, Serialize};

/// A per-step value: constant, or linear warm-up followed by cosine decay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The same value at every step.
    Constant {
        /// The value.
        value: f64,
    },
    /// Linear warm-up over `warmup_steps`, then cosine decay to `end` at `total_steps`.
    WarmupCosine {
        /// Peak value, reached at the end of the warm-up.
        peak: f64,
        /// Final value at step `total_steps` (and after).
        end: f64,
        /// Warm-up length W.
        warmup_steps: usize,
        /// Total steps K.
        total_steps: usize,
    },
}

impl Schedule {
    /// Linear warm-up then cosine decay from `peak` to 0.
    pub fn warmup_cosine(peak: f64, warmup_steps: usize, total_steps: usize) -> Result<Self> {
        if total_steps == 0 || warmup_steps > total_steps || !peak.is_finite() {
            candle_core::bail!(
                "Schedule::warmup_cosine: need 0 < total_steps and warmup_steps <= total_steps, got warmup {warmup_steps}, total {total_steps}, peak {peak}"
            );
        }
        Ok(Self::WarmupCosine { peak, end: 0.0, warmup_steps, total_steps })
    }

    /// The value at step `k` (from 0).
    pub fn at(&self, k: usize) -> f64 {
        match *self {
            Self::Constant { value } => value,
            Self::WarmupCosine { peak, end, warmup_steps, total_steps } => {
                if k < warmup_steps {
                    peak * (k + 1) as f64 / warmup_steps as f64
                } else if k >= total_steps || total_steps == warmup_steps {
                    end
                } else {
                    let t = (k - warmup_steps) as f64 / (total_steps - warmup_steps) as f64;
                    end + (peak - end) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
                }
            }
        }
    }
}

/// BYOL's EMA momentum at step `k` of `total`: rises from `base` to 1 along a cosine.
pub fn cosine_momentum(k: usize, total: usize, base: f64) -> f64 {
    if total == 0 {
        return base;
    }
    let t = (k.min(total)) as f64 / total as f64;
    1.0 - (1.0 - base) * ((std::f64::consts::PI * t).cos() + 1.0) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    // import torch, math
    // opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.4)
    // sched = torch.optim.lr_scheduler.SequentialLR(opt, [
    //     torch.optim.lr_scheduler.LinearLR(opt, start_factor=1/4, end_factor=1.0, total_iters=3),
    //     torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)], milestones=[4])
    // lrs = []
    // for _ in range(10): lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    // -> [0.1, 0.2, 0.3, 0.4, 0.4, 0.3732, 0.3, 0.2, 0.1, 0.0268]
    // (LinearLR reaches the peak one step later than our warm-up; the cosine part equals
    //  CosineAnnealingLR: η_k = 0.4 (1 + cos(π (k-4)/6)) / 2 for k ≥ 4.)
    #[test]
    fn warmup_cosine_values() {
        let s = Schedule::warmup_cosine(0.4, 4, 10).unwrap();
        let got: Vec<f64> = (0..11).map(|k| s.at(k)).collect();
        let want = [0.1, 0.2, 0.3, 0.4, 0.4, 0.373_205, 0.3, 0.2, 0.1, 0.026_795, 0.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
        assert!(Schedule::warmup_cosine(0.1, 5, 4).is_err());
        assert_eq!(Schedule::Constant { value: 0.3 }.at(99), 0.3);
    }

    #[test]
    fn momentum_rises_to_one() {
        assert!((cosine_momentum(0, 100, 0.99) - 0.99).abs() < 1e-12);
        assert!((cosine_momentum(50, 100, 0.99) - 0.995).abs() < 1e-12);
        assert!((cosine_momentum(100, 100, 0.99) - 1.0).abs() < 1e-12);
    }
}
