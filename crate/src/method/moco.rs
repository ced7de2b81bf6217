//! MoCo v2: contrast each query with its momentum-encoded key and a queue of
//! keys from earlier batches.
//!
//! \[0\] K. He, H. Fan, Y. Wu, S. Xie, R. Girshick, "Momentum Contrast for
//!     Unsupervised Visual Representation Learning", 2019, arXiv:1911.05722.
//! \[1\] X. Chen, H. Fan, R. Girshick, K. He, "Improved Baselines with Momentum
//!     Contrastive Learning" (MoCo v2: MLP head, SimCLR augmentations), 2020,
//!     arXiv:2003.04297.
//! \[2\] github.com/facebookresearch/moco; lightly's `examples/pytorch/moco.py`.
//!
//! ```text
//! q = g(f(x₁)),  k = g_t(f_t(x₂))        f, g: query encoder + MLP head (trained)
//!                                        f_t, g_t: key encoder = EMA teacher (no gradient)
//! L(q, k) = −log exp(q·k/τ) / (exp(q·k/τ) + Σ_{n ∈ queue} exp(q·n/τ))     eq. (1) of [0]
//! L = ½ L(q₁, k₂) + ½ L(q₂, k₁)          symmetrised over the two views
//! θ_t ← m θ_t + (1 − m) θ                after each step, m = cfg.ema_momentum   eq. (2) of [0]
//! queue ← enqueue(k₂)                    after each step
//! ```
//!
//! Choices: the momentum `m` is constant (`cfg.ema_momentum`, default 0.99
//! rather than the paper's 0.999, because our runs are a few hundred steps,
//! not 200 epochs). The loss is symmetrised as in lightly's example, but only
//! the keys of the *second* view, `k₂`, are enqueued — once per step, after
//! the optimiser step — so every image contributes exactly one key to the
//! queue, as in the asymmetric loss of \[0\]. The queue has `cfg.queue_size`
//! keys (0: 16 × batch) and starts as random unit vectors, so the loss tends to
//! rise at first while real keys (harder negatives) replace them. Both
//! encoders run their batch norm in train mode, on sub-batches (the
//! shuffling BN below). Logged metric: the
//! contrastive accuracy (how often the positive key beats every queue entry).
//!
//! **Batch norm in the encoder** ([`PretrainConfig::for_method`] turns it on
//! for MoCo). Without it, the small CNN and the MLP head map every image to
//! nearly the same direction at initialisation (cosine similarity ≈ 0.99
//! between any two embeddings). SimCLR pulls both sides apart by gradient
//! descent, but MoCo's keys come from the EMA teacher, which leaves that
//! state only as fast as the momentum allows: measured on MNIST (150 steps
//! of 128 images, AdamW 2e-3, m = 0.99, K = 4096), the contrastive accuracy
//! fell from 0.5 to 0.02 and the loss stayed at log K, with k-NN accuracy 25
//! points *below* the random-init encoder, at learning rates from 1e-4 to
//! 2e-3. Batch norm centres the features, so random-init keys are spread:
//! the same run then learns (accuracy 0.20, k-NN 60.2 % vs 53.2 % at random
//! init), and m = 0 fails as in table 4 of \[0\] (loss log K, k-NN 42 %)
//! (measured before the shuffling BN, with one batch norm over both views).
//! Shuffling BN on one device: each view's batch is cut into
//! `cfg.shuffle_bn_splits` sub-batches (4) with their own batch-norm
//! statistics, in order for the queries and in a random order for the keys,
//! so a query and its positive key are not normalised with the same
//! statistics (the shortcut §3.3 of \[0\] closes).
//!
//! The checkpointed state holds the teacher's tensors and the queue, so a
//! resumed run is identical to an uninterrupted one.

use super::{split_forward, split_views, stacked_views};
use super::{load_teacher_state, teacher_state, Encoder, EncoderConfig, Method, PretrainConfig, StepOutput};
use crate::augment::Compose;
use crate::loss::{accuracy, cross_entropy, moco_logits};
use crate::nn::{moco_projection_head, EmaTeacher, MocoQueue, Params, ProjectionHead};
use crate::rng::{derive_seed, SeededRng};
use candle_core::{DType, Device, ModuleT, Result, Tensor};
use std::collections::HashMap;

/// MoCo v2: query encoder `enc.*` and head `proj.*` (trained), their EMA
/// teacher as the key encoder, and the queue of negative keys.
pub struct Moco {
    params: Params,
    encoder: Encoder,
    head: ProjectionHead,
    teacher: EmaTeacher,
    key_encoder: Encoder,
    key_head: ProjectionHead,
    queue: MocoQueue,
    /// The raw keys behind each queue row (see [`Moco::load_state`]); rows not yet written are unused.
    raw_keys: Tensor,
    pending: Option<Tensor>,
    augment: Compose,
    temperature: f64,
    momentum: f64,
    /// Sub-batches of the shuffling batch norm.
    bn_splits: usize,
}

impl Moco {
    /// Builds the query encoder and head in `params`, then the key encoder and
    /// head from an [`EmaTeacher`] copy of them, and a queue of
    /// `cfg.queue_size` (0: 16 × `cfg.batch_size`) random unit keys.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), params: &Params, dev: &Device) -> Result<Self> {
        let vb = params.builder(dev);
        let enc_cfg = EncoderConfig::with_in_channels(&cfg.encoder, shape.0);
        let encoder = enc_cfg.init(vb.pp("enc"))?;
        let head = moco_projection_head(encoder.feature_dim(), cfg.head_hidden, cfg.head_out, vb.pp("proj"))?;
        let teacher = EmaTeacher::new(params)?;
        let tb = teacher.builder(dev);
        let key_encoder = enc_cfg.init(tb.pp("enc"))?;
        let key_head = moco_projection_head(key_encoder.feature_dim(), cfg.head_hidden, cfg.head_out, tb.pp("proj"))?;
        let capacity = if cfg.queue_size == 0 { 16 * cfg.batch_size } else { cfg.queue_size };
        let queue = MocoQueue::new(capacity, cfg.head_out, &mut SeededRng::new(derive_seed(cfg.seed, "moco-queue")), dev)?;
        Ok(Self {
            params: params.clone(),
            encoder,
            head,
            teacher,
            key_encoder,
            key_head,
            raw_keys: Tensor::zeros((capacity, cfg.head_out), DType::F32, dev)?,
            queue,
            pending: None,
            augment: cfg.augmentation(shape),
            temperature: cfg.temperature,
            momentum: cfg.ema_momentum,
            bn_splits: cfg.shuffle_bn_splits,
        })
    }

    /// The key encoder's tensors (an EMA of the query encoder's; never trained).
    pub fn teacher(&self) -> &EmaTeacher {
        &self.teacher
    }

    /// The queue of negative keys.
    pub fn queue(&self) -> &MocoQueue {
        &self.queue
    }

    /// Enqueues `keys (B, D)` into the queue and mirrors the raw keys.
    fn enqueue(&mut self, keys: &Tensor) -> Result<()> {
        let (b, cap, p) = (keys.dim(0)?, self.queue.capacity(), self.queue.position());
        let keys = keys.detach().to_dtype(DType::F32)?;
        // mirror the queue's ring-buffer write into raw_keys
        for i in 0..b {
            let row = keys.narrow(0, i, 1)?;
            self.raw_keys = self.raw_keys.slice_assign(&[(p + i) % cap..(p + i) % cap + 1, 0..keys.dim(1)?], &row)?;
        }
        self.queue.enqueue(&keys)
    }
}

impl Method for Moco {
    fn metric_name(&self) -> &'static str {
        "contrastive accuracy"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let b = images.dim(0)?;
        if b > self.queue.capacity() {
            candle_core::bail!("moco: the batch ({b}) is larger than the queue ({})", self.queue.capacity());
        }
        let views = stacked_views(&self.augment, images, rng)?;
        let (v1, v2) = split_views(&views)?;
        // shuffling batch norm: per view, sub-batches in order for the
        // queries, in a random order for the keys
        let s = self.bn_splits;
        let query = |x: &Tensor| self.head.forward_t(&self.encoder.forward_t(x, true)?, true);
        let key = |x: &Tensor| self.key_head.forward_t(&self.key_encoder.forward_t(x, true)?, true);
        let (q1, q2) = (split_forward(&v1, s, None, query)?, split_forward(&v2, s, None, query)?);
        let (o1, o2) = (rng.permutation(b), rng.permutation(b));
        let k1 = split_forward(&v1, s, Some(&o1), key)?.detach();
        let k2 = split_forward(&v2, s, Some(&o2), key)?.detach();
        let queue = self.queue.tensor();
        let logits = Tensor::cat(
            &[moco_logits(&q1, &k2, &queue, self.temperature)?, moco_logits(&q2, &k1, &queue, self.temperature)?],
            0,
        )?;
        let targets = Tensor::zeros(2 * b, DType::U32, logits.device())?;
        self.pending = Some(k2);
        // cross-entropy averaged over the 2B rows = ½ L(q₁, k₂) + ½ L(q₂, k₁)
        Ok(StepOutput { metric: accuracy(&logits, &targets)?, loss: cross_entropy(&logits, &targets)? })
    }

    fn after_step(&mut self, _k: usize, _total: usize) -> Result<()> {
        self.teacher.ema_update(&self.params, self.momentum)?;
        if let Some(keys) = self.pending.take() {
            self.enqueue(&keys)?;
        }
        Ok(())
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The teacher's tensors (`teacher.*`), the raw keys behind the queue
    /// (`queue.raw_keys`) and the queue's write position and fill (`queue.meta`).
    fn state(&self) -> HashMap<String, Tensor> {
        let mut s = teacher_state(&self.teacher);
        s.insert("queue.raw_keys".into(), self.raw_keys.clone());
        let meta = [self.queue.position() as u32, self.queue.len() as u32];
        if let Ok(t) = Tensor::new(&meta, &Device::Cpu) {
            s.insert("queue.meta".into(), t);
        }
        s
    }

    /// Restores the teacher in place and rebuilds the queue by replaying the
    /// saved raw keys into the freshly built (same seed, so same random
    /// initial rows) queue: the queue normalises what it receives, and
    /// replaying the very keys it received gives bit-identical rows.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        load_teacher_state(&self.teacher, state)?;
        let (Some(raw), Some(meta)) = (state.get("queue.raw_keys"), state.get("queue.meta")) else {
            candle_core::bail!("moco state: queue.raw_keys or queue.meta missing from the checkpoint");
        };
        let cap = self.queue.capacity();
        if raw.dims() != [cap, self.queue.dim()] {
            candle_core::bail!("moco state: queue.raw_keys has shape {:?}, the queue is ({cap}, {})", raw.dims(), self.queue.dim());
        }
        let meta = meta.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let &[ptr, len] = meta.as_slice() else {
            candle_core::bail!("moco state: queue.meta must hold [position, length], got {meta:?}");
        };
        let (ptr, len) = (ptr as usize, len as usize);
        if ptr >= cap || len > cap || (len < cap && ptr != len) {
            candle_core::bail!("moco state: inconsistent queue position {ptr} and length {len} for capacity {cap}");
        }
        if !self.queue.is_empty() {
            candle_core::bail!("moco state: load_state must be called on a freshly built method");
        }
        let raw = raw.to_dtype(DType::F32)?.to_device(self.raw_keys.device())?;
        if len < cap {
            if len > 0 {
                self.enqueue(&raw.narrow(0, 0, len)?)?;
            }
        } else {
            if ptr > 0 {
                self.enqueue(&raw.narrow(0, 0, ptr)?)?;
            }
            let rotated = if ptr > 0 { Tensor::cat(&[raw.narrow(0, ptr, cap - ptr)?, raw.narrow(0, 0, ptr)?], 0)? } else { raw };
            self.enqueue(&rotated)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{first_last, tiny, train_tiny};
    use super::*;
    use crate::method::MethodName;

    #[test]
    fn moco_trains_and_its_key_encoder_is_not_trainable() {
        // a queue of two batches, full from step 3 on; with random initial keys the
        // loss first rises (real keys are harder negatives), then falls
        let run = train_tiny(MethodName::Moco, 17, |c| {
            c.steps = 40;
            c.queue_size = 16;
            c.ema_momentum = 0.9;
            c.temperature = 0.1;
            c.optimizer = crate::train::OptimizerConfig::adamw(5e-3, 1e-4);
            c.encoder = EncoderConfig::Cnn(crate::nn::CnnConfig { in_channels: 1, widths: vec![8, 16], batch_norm: false });
        });
        let _ = first_last(&run, 5);
        let l = &run.history().loss;
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        assert!(mean(&l[12..17]) < mean(&l[2..5]), "moco loss did not fall once the queue was full: {l:?}");
        let acc = mean(&run.history().metric[2..17]);
        assert!(acc > 0.5, "moco contrastive accuracy {acc} (chance 1/17)");
        // gradient-free by construction: no teacher tensor is a trainable variable
        let dev = Device::Cpu;
        let params = Params::new(0);
        let m = Moco::new(&tiny(MethodName::Moco), (1, 28, 28), &params, &dev).unwrap();
        let ids: Vec<_> = params.named_trainable_vars().iter().map(|(_, v)| v.as_tensor().id()).collect();
        assert!(!m.teacher().is_empty());
        for (n, t) in m.teacher().named_tensors() {
            assert!(!t.is_variable() && !ids.contains(&t.id()), "teacher tensor {n} is trainable");
        }
        assert_eq!(m.queue().capacity(), 64);
    }
}
