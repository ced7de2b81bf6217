//! Optimisers: SGD with momentum, LARS and AdamW, with state that can be
//! checkpointed.
//!
//! Candle's own `SGD` has no momentum and its `AdamW` keeps its moments
//! private (so a run cannot be resumed exactly) and decays every parameter.
//! These three follow PyTorch's update rules step for step:
//!
//! ```text
//! SGD (torch.optim.SGD):   d = g + λ θ;  b ← μ b + d (b₀ = d);  d = nesterov ? d + μ b : b;  θ ← θ − η d
//! LARS (You et al. 2017):  for decayed tensors  d = (g + λ θ) · ξ ‖θ‖ / (‖g‖ + λ ‖θ‖ + ε), then SGD momentum
//! AdamW (torch.optim.AdamW): θ ← θ(1 − ηλ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;
//!                          θ ← θ − η m̂ / (√v̂ + ε),  m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)
//! ```
//!
//! [0] Y. You, I. Gitman, B. Ginsburg, "Large Batch Training of Convolutional
//!     Networks", 2017, arXiv:1708.03888 (LARS).
//! [1] I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization",
//!     2017, arXiv:1711.05101 (AdamW).
//! [2] lightly's `lightly/utils/lars.py` (the LARS variant used by SimCLR and
//!     BYOL recipes: tensors without weight decay skip the layer adaptation).
//!
//! Weight decay is applied only to tensors of rank ≥ 2 (weights), never to
//! biases and normalisation parameters, as in the SimCLR/BYOL recipes; set
//! [`OptimizerConfig::decay_1d`] to decay them too.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Which optimiser, with its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with (optionally Nesterov) momentum.
    Sgd {
        /// Momentum μ (0 disables it).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// LARS: SGD with momentum and a per-tensor trust ratio.
    Lars {
        /// Momentum μ.
        momentum: f64,
        /// Trust coefficient ξ (lightly's default 0.001).
        trust_coefficient: f64,
    },
    /// AdamW.
    AdamW {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
    },
}

/// An optimiser and its hyper-parameters (serialised next to checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The algorithm.
    pub kind: OptimizerKind,
    /// Peak learning rate η (a schedule may scale it per step).
    pub lr: f64,
    /// Weight decay λ.
    pub weight_decay: f64,
    /// Also decay rank-0/1 tensors (biases, norm scales). Default `false`.
    pub decay_1d: bool,
}

impl OptimizerConfig {
    /// SGD with momentum 0.9.
    pub fn sgd(lr: f64, weight_decay: f64) -> Self {
        Self { kind: OptimizerKind::Sgd { momentum: 0.9, nesterov: false }, lr, weight_decay, decay_1d: false }
    }

    /// LARS with momentum 0.9 and trust coefficient 0.001.
    pub fn lars(lr: f64, weight_decay: f64) -> Self {
        Self {
            kind: OptimizerKind::Lars { momentum: 0.9, trust_coefficient: 1e-3 },
            lr,
            weight_decay,
            decay_1d: false,
        }
    }

    /// AdamW with β = (0.9, 0.999), ε = 1e-8.
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        Self { kind: OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }, lr, weight_decay, decay_1d: false }
    }

    /// Checks the hyper-parameters.
    pub fn check(&self) -> Result<()> {
        let ok_lr = self.lr.is_finite() && self.lr > 0.0;
        let ok_wd = self.weight_decay.is_finite() && self.weight_decay >= 0.0;
        let ok_kind = match &self.kind {
            OptimizerKind::Sgd { momentum, .. } => (0.0..1.0).contains(momentum),
            OptimizerKind::Lars { momentum, trust_coefficient } => {
                (0.0..1.0).contains(momentum) && *trust_coefficient > 0.0
            }
            OptimizerKind::AdamW { beta1, beta2, eps } => {
                (0.0..1.0).contains(beta1) && (0.0..1.0).contains(beta2) && *eps > 0.0
            }
        };
        if !(ok_lr && ok_wd && ok_kind) {
            candle_core::bail!("optimizer: invalid settings {self:?} (need lr > 0, weight_decay >= 0, momentum and betas in [0, 1))");
        }
        Ok(())
    }

    /// An optimiser over the named variables.
    pub fn build(&self, vars: Vec<(String, Var)>) -> Result<Optim> {
        self.check()?;
        Ok(Optim { cfg: self.clone(), vars, lr: self.lr, t: 0, state: HashMap::new(), updates: HashMap::new() })
    }
}

/// A running optimiser: the variables it updates and its per-variable state.
pub struct Optim {
    cfg: OptimizerConfig,
    vars: Vec<(String, Var)>,
    lr: f64,
    t: usize,
    /// `"<var>/<slot>"` → buffer (momentum, Adam's m and v).
    state: HashMap<String, Tensor>,
    /// Updates each variable has received (AdamW's bias correction counts
    /// these, as torch's `state['step']`: a variable without a gradient in
    /// some steps is not corrected as if it had been updated).
    updates: HashMap<String, usize>,
}

impl Optim {
    /// The learning rate used by the next step.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate (schedules call this before each step).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Steps taken.
    pub fn steps_taken(&self) -> usize {
        self.t
    }

    /// The settings.
    pub fn config(&self) -> &OptimizerConfig {
        &self.cfg
    }

    /// Errors naming the first parameter whose gradient holds a NaN or an
    /// infinity (one reduction over all gradients, then one per parameter
    /// only when that is not finite).
    fn check_finite(&self, grads: &GradStore) -> Result<()> {
        let present: Vec<(&String, &Tensor)> = self.vars.iter().filter_map(|(n, v)| grads.get(v.as_tensor()).map(|g| (n, g))).collect();
        if present.is_empty() {
            return Ok(());
        }
        let finite = |t: &Tensor| -> Result<bool> { Ok(t.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?.is_finite()) };
        let sums = present.iter().map(|(_, g)| g.sum_all()?.to_dtype(candle_core::DType::F32)).collect::<Result<Vec<_>>>()?;
        if finite(&Tensor::stack(&sums, 0)?.sum_all()?)? {
            return Ok(());
        }
        for ((name, g), s) in present.iter().zip(&sums) {
            // a finite sum can still hide an infinity cancelled by another: look at |g|
            if !finite(s)? || !finite(&g.abs()?.max_all()?)? {
                candle_core::bail!(
                    "the gradient of {name} holds NaN or infinite values at step {}; nothing was updated. Lower the learning rate or check the inputs",
                    self.t + 1
                );
            }
        }
        Ok(())
    }

    /// Back-propagates `loss` and applies one update.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// Applies one update from already computed gradients. Variables without
    /// a gradient are left untouched.
    ///
    /// # Errors
    /// A NaN or infinite gradient stops the run before anything is updated,
    /// naming the first such parameter.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.check_finite(grads)?;
        self.t += 1;
        let lr = self.lr;
        for (name, var) in &self.vars {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let t = {
                let n = self.updates.entry(name.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let p = var.as_tensor().detach();
            let wd = if p.rank() >= 2 || self.cfg.decay_1d { self.cfg.weight_decay } else { 0.0 };
            let new = match self.cfg.kind {
                OptimizerKind::Sgd { momentum, nesterov } => {
                    let d = if wd > 0.0 { (g + (&p * wd)?)? } else { g.clone() };
                    let d = momentum_step(&mut self.state, name, d, momentum, nesterov)?;
                    (p - (d * lr)?)?
                }
                OptimizerKind::Lars { momentum, trust_coefficient } => {
                    let mut d = g.clone();
                    if wd > 0.0 {
                        let pn = f64::from(p.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?);
                        let gn = f64::from(g.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?);
                        if pn > 0.0 && gn > 0.0 {
                            let trust = trust_coefficient * pn / (gn + pn * wd + 1e-8);
                            d = ((g + (&p * wd)?)? * trust)?;
                        }
                    }
                    let d = momentum_step(&mut self.state, name, d, momentum, false)?;
                    (p - (d * lr)?)?
                }
                OptimizerKind::AdamW { beta1, beta2, eps } => {
                    let p = if wd > 0.0 { (p * (1.0 - lr * wd))? } else { p };
                    let m = match self.state.get(&format!("{name}/m")) {
                        Some(m) => ((m * beta1)? + (g * (1.0 - beta1))?)?,
                        None => (g * (1.0 - beta1))?,
                    };
                    let v = match self.state.get(&format!("{name}/v")) {
                        Some(v) => ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?,
                        None => (g.sqr()? * (1.0 - beta2))?,
                    };
                    let mhat = (&m / (1.0 - beta1.powi(t as i32)))?;
                    let vhat = (&v / (1.0 - beta2.powi(t as i32)))?;
                    let upd = (mhat / (vhat.sqrt()? + eps)?)?;
                    self.state.insert(format!("{name}/m"), m);
                    self.state.insert(format!("{name}/v"), v);
                    (p - (upd * lr)?)?
                }
            };
            var.set(&new)?;
        }
        Ok(())
    }

    /// The optimiser's buffers by name (`"<var>/momentum"`, `"<var>/m"`,
    /// `"<var>/v"`) and each variable's update count (`"<var>/updates"`, one
    /// f32, exact below 2²⁴), for checkpoints.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut s = self.state.clone();
        let dev = self.vars.first().map(|(_, v)| v.device().clone()).unwrap_or(candle_core::Device::Cpu);
        for (name, &n) in &self.updates {
            if let Ok(t) = Tensor::new(&[n as f32], &dev) {
                s.insert(format!("{name}/{UPDATES}"), t);
            }
        }
        s
    }

    /// Restores buffers saved by [`Optim::state`] and the step count.
    /// Buffers whose variable is unknown or whose shape differs are an error.
    pub fn load_state(&mut self, state: HashMap<String, Tensor>, steps_taken: usize) -> Result<()> {
        let shapes: HashMap<&str, &Var> = self.vars.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let mut updates = HashMap::new();
        for (key, t) in &state {
            let (name, slot) = key.rsplit_once('/').unwrap_or((key.as_str(), ""));
            let var = shapes.get(name);
            match var {
                Some(_) if slot == UPDATES && t.elem_count() == 1 => {
                    updates.insert(name.to_string(), t.to_dtype(candle_core::DType::F32)?.flatten_all()?.get(0)?.to_scalar::<f32>()? as usize);
                }
                Some(v) if v.dims() == t.dims() => {}
                Some(v) => candle_core::bail!(
                    "optimizer state {key}: shape {:?} does not match the parameter's {:?}",
                    t.dims(),
                    v.dims()
                ),
                None => candle_core::bail!("optimizer state {key}: no such parameter in the model"),
            }
        }
        // checkpoints from before per-variable counts: every variable with a
        // buffer had been updated at every step
        if updates.is_empty() {
            for key in state.keys() {
                if let Some((name, _)) = key.rsplit_once('/') {
                    updates.insert(name.to_string(), steps_taken);
                }
            }
        }
        let state: HashMap<String, Tensor> = state.into_iter().filter(|(k, _)| !k.ends_with(&format!("/{UPDATES}"))).collect();
        self.updates = updates;
        let dev = self.vars.first().map(|(_, v)| v.device().clone());
        self.state = match dev {
            Some(dev) => state.into_iter().map(|(k, t)| Ok((k, t.to_device(&dev)?))).collect::<Result<_>>()?,
            None => state,
        };
        self.t = steps_taken;
        Ok(())
    }
}

/// The slot of a variable's update count in [`Optim::state`].
const UPDATES: &str = "updates";

/// torch's momentum buffer update; returns the direction to step along.
fn momentum_step(state: &mut HashMap<String, Tensor>, name: &str, d: Tensor, momentum: f64, nesterov: bool) -> Result<Tensor> {
    if momentum == 0.0 {
        return Ok(d);
    }
    let key = format!("{name}/momentum");
    let buf = match state.get(&key) {
        Some(b) => ((b * momentum)? + &d)?,
        None => d.clone(),
    };
    state.insert(key, buf.clone());
    if nesterov {
        d + (buf * momentum)?
    } else {
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Runs three steps of `cfg` on θ₀ = [[1, -2], [0.5, 3]], b = [0.1, -0.2] with
    /// loss = sum(θ² · c) + sum(b · θ.sum(0)) and returns θ, b after the steps.
    fn three_steps(cfg: OptimizerConfig) -> (Vec<Vec<f32>>, Vec<f32>) {
        let dev = Device::Cpu;
        let w = Var::new(&[[1f32, -2.], [0.5, 3.]], &dev).unwrap();
        let b = Var::new(&[0.1f32, -0.2], &dev).unwrap();
        let c = Tensor::new(&[[0.3f32, 1.0], [2.0, 0.1]], &dev).unwrap();
        let mut opt = cfg.build(vec![("w".into(), w.clone()), ("b".into(), b.clone())]).unwrap();
        for _ in 0..3 {
            let loss = (w.as_tensor().sqr().unwrap() * &c).unwrap().sum_all().unwrap();
            let loss = (loss + (b.as_tensor() * w.as_tensor().sum(0).unwrap()).unwrap().sum_all().unwrap()).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        (w.as_tensor().to_vec2().unwrap(), b.as_tensor().to_vec1().unwrap())
    }

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{a:?} vs {b:?}");
        }
    }

    // import torch
    // from lightly.utils.lars import LARS
    // def run(make):
    //     w = torch.tensor([[1., -2.], [.5, 3.]], requires_grad=True)
    //     b = torch.tensor([.1, -.2], requires_grad=True)
    //     c = torch.tensor([[.3, 1.], [2., .1]])
    //     opt = make([{"params": [w]}, {"params": [b], "weight_decay": 0.0}])
    //     for _ in range(3):
    //         opt.zero_grad()
    //         loss = (w**2 * c).sum() + (b * w.sum(0)).sum()
    //         loss.backward(); opt.step()
    //     return w.tolist(), b.tolist()
    // run(lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, weight_decay=0.01))
    // run(lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01))
    // run(lambda g: LARS(g, lr=0.5, momentum=0.9, weight_decay=0.01, trust_coefficient=0.001))
    // run(lambda g: torch.optim.AdamW(g, lr=0.1, weight_decay=0.01))
    // (printed values rounded to 7 decimals)
    #[test]
    fn optimizers_match_torch_and_lightly() {
        let (w, b) = three_steps(OptimizerConfig::sgd(0.1, 0.01));
        close(&w.concat(), &[0.690_484_6, 0.027_103_5, -0.246_413_2, 2.814_665_6]);
        close(&b, &[-0.618_254_2, -0.936_528_1]);
        let mut nesterov = OptimizerConfig::sgd(0.1, 0.01);
        nesterov.kind = OptimizerKind::Sgd { momentum: 0.9, nesterov: true };
        let (w, b) = three_steps(nesterov);
        close(&w.concat(), &[0.669_980_3, 0.485_203_2, -0.104_445_8, 2.829_957]);
        close(&b, &[-0.797_284_5, -1.488_171_1]);
        let (w, b) = three_steps(OptimizerConfig::lars(0.5, 0.01));
        close(&w.concat(), &[0.999_736_2, -1.990_281_3, 0.496_798_5, 2.999_915_8]);
        close(&b, &[-4.105_146_4, -3.008_747]);
        let (w, b) = three_steps(OptimizerConfig::adamw(0.1, 0.01));
        close(&w.concat(), &[0.703_597_7, -1.694_576_5, 0.205_588_8, 2.702_238_6]);
        close(&b, &[-0.197_528_7, -0.499_998_8]);
    }

    /// A NaN or infinite gradient (a finite loss can have one) stops the
    /// step with the parameter's name, before any parameter or state moves.
    #[test]
    fn a_non_finite_gradient_names_the_parameter_and_updates_nothing() {
        let dev = Device::Cpu;
        let w = Var::new(&[1f32, 2.], &dev).unwrap();
        let b = Var::new(&[0f32, 4.], &dev).unwrap();
        let mut opt = OptimizerConfig::adamw(0.1, 0.0).build(vec![("enc.w".into(), w.clone()), ("enc.b".into(), b.clone())]).unwrap();
        // d sqrt(b)/db at b = 0 is +inf; d/dw is finite
        let loss = (w.as_tensor().sum_all().unwrap() + b.as_tensor().sqrt().unwrap().sum_all().unwrap()).unwrap();
        let err = opt.backward_step(&loss).unwrap_err().to_string();
        assert!(err.starts_with("the gradient of enc.b holds NaN or infinite values at step 1"), "{err}");
        assert_eq!((w.as_tensor().to_vec1::<f32>().unwrap(), opt.steps_taken()), (vec![1., 2.], 0));
        assert!(opt.state.is_empty());
        // a finite step still goes through
        opt.backward_step(&w.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        assert_eq!(opt.steps_taken(), 1);
    }

    /// AdamW's bias correction counts each parameter's own updates, as
    /// torch does (`state['step']` per parameter):
    /// ```python
    /// w = torch.tensor([1., 2.], requires_grad=True); b = torch.tensor([3.], requires_grad=True)
    /// opt = torch.optim.AdamW([w, b], lr=0.1, weight_decay=0.0)
    /// (w**2).sum().backward(); opt.step(); opt.zero_grad()      # b has no gradient
    /// ((w**2).sum() + (b**2).sum()).backward(); opt.step()
    /// b   # tensor([2.9000]): b's first update, lr · g/|g| (with one global step count: 2.9256)
    /// ```
    #[test]
    fn adamw_counts_steps_per_parameter() {
        let dev = Device::Cpu;
        let w = Var::new(&[1f32, 2.], &dev).unwrap();
        let b = Var::new(&[3f32], &dev).unwrap();
        let vars = vec![("w".to_string(), w.clone()), ("b".to_string(), b.clone())];
        let mut opt = OptimizerConfig::adamw(0.1, 0.0).build(vars.clone()).unwrap();
        opt.backward_step(&w.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        let both = (w.as_tensor().sqr().unwrap().sum_all().unwrap() + b.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        // the counts survive a checkpoint
        let mut resumed = OptimizerConfig::adamw(0.1, 0.0).build(vars).unwrap();
        resumed.load_state(opt.state(), opt.steps_taken()).unwrap();
        resumed.backward_step(&both).unwrap();
        let got = b.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((got - 2.9).abs() < 1e-6, "{got}");
        assert_eq!((resumed.updates["w"], resumed.updates["b"]), (2, 1));
    }

    #[test]
    fn state_round_trips_and_bad_settings_are_rejected() {
        let dev = Device::Cpu;
        let w = Var::new(&[1f32, 2.], &dev).unwrap();
        let mut opt = OptimizerConfig::adamw(0.1, 0.0).build(vec![("w".into(), w.clone())]).unwrap();
        opt.backward_step(&w.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        let st = opt.state();
        assert_eq!(st.len(), 3); // m, v and the update count
        let mut other = OptimizerConfig::adamw(0.1, 0.0).build(vec![("w".into(), w.clone())]).unwrap();
        other.load_state(st, 1).unwrap();
        assert_eq!(other.steps_taken(), 1);
        let bad: HashMap<String, Tensor> = [("w/m".to_string(), Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap())].into();
        let err = other.load_state(bad, 1).unwrap_err().to_string();
        assert!(err.contains("[3]") && err.contains("[2]"), "{err}");
        let err = OptimizerConfig::sgd(-1.0, 0.0).check().unwrap_err().to_string();
        assert!(err.contains("lr"), "{err}");
    }
}
