//! [`Run`]: the one training loop every model of the crate uses — images,
//! series, video, text and captions. It owns what is the same for all of
//! them (optimiser, learning-rate schedule, step count, history, the NaN
//! check, the stop button, checkpoints); an [`Objective`] supplies the loss
//! of step `k`.

use super::{finite_loss, load_checkpoint, save_checkpoint, Checkpoint, History, Optim, Progress, Schedule};
use crate::nn::Params;
use crate::rng::{derive_seed, SeededRng};
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The loss of one step and the metric the history records with it (named
/// parts, such as "embedding std" or "temperature", come from
/// [`Objective::after_step`]).
pub struct StepLoss {
    /// The scalar loss to back-propagate.
    pub loss: Tensor,
    /// The run's metric for this step (its [`History::metric_name`]).
    pub metric: f64,
}

impl StepLoss {
    /// A loss and its metric.
    pub fn new(loss: Tensor, metric: f64) -> Self {
        Self { loss, metric }
    }
}

/// What a [`Run`] trains: the loss of step `k`, from the step's own random
/// generator (so that a resumed run draws exactly what an uninterrupted one
/// would have drawn).
///
/// A closure `FnMut(usize, &mut SeededRng) -> Result<StepLoss>` is an objective.
pub trait Objective {
    /// The loss of step `k` (from 0).
    fn step_loss(&mut self, k: usize, rng: &mut SeededRng) -> Result<StepLoss>;

    /// Called after the update of step `k` (EMA teachers, DINO's centre, …);
    /// returns the parts to record for the step.
    fn after_step(&mut self, _k: usize) -> Result<Vec<(&'static str, f64)>> {
        Ok(Vec::new())
    }
}

impl<F: FnMut(usize, &mut SeededRng) -> Result<StepLoss>> Objective for F {
    fn step_loss(&mut self, k: usize, rng: &mut SeededRng) -> Result<StepLoss> {
        self(k, rng)
    }
}

/// A training run's state apart from the model: optimiser, schedule, steps
/// taken and history.
///
/// Step `k`'s random generator is seeded from `(seed, tag, k)` alone, and
/// batches should be drawn with a [`super::StepSampler`], so that training
/// `a + b` steps in one call or in two (or across a save and a load) gives
/// the same parameters bit for bit.
pub struct Run {
    opt: Optim,
    schedule: Option<Schedule>,
    history: History,
    step: usize,
    seed: u64,
    tag: &'static str,
}

impl Run {
    /// A run at step 0 that updates with `opt` and records into `history`;
    /// step `k` draws from the stream `derive_seed(seed, "{tag}{k}")`.
    pub fn new(opt: Optim, history: History, seed: u64, tag: &'static str) -> Self {
        Self { opt, schedule: None, history, step: 0, seed, tag }
    }

    /// The same run with the learning rate of step `k` taken from `schedule`
    /// (without one, the optimiser's learning rate stays as built).
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// Replaces the schedule (e.g. when a longer run is asked for).
    pub fn set_schedule(&mut self, schedule: Schedule) {
        self.schedule = Some(schedule);
    }

    /// Steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Loss, metric and parts of every step so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The optimiser (its settings and state).
    pub fn optimizer(&self) -> &Optim {
        &self.opt
    }

    /// The random generator of step `k`.
    pub fn step_rng(&self, k: usize) -> SeededRng {
        SeededRng::new(derive_seed(self.seed, &format!("{}{k}", self.tag)))
    }

    /// Trains `steps` more steps of `objective` and returns the history.
    ///
    /// Each step: the scheduled learning rate, the objective's loss, a stop
    /// with an error naming the step if the loss is NaN or infinite (or
    /// naming the parameter if a gradient is), one update, the history.
    /// The notebook's stop button (or Ctrl-C) ends the loop after the
    /// current step and keeps everything trained so far.
    pub fn train_for(&mut self, steps: usize, objective: &mut impl Objective) -> Result<&History> {
        let what = self.history.name.clone();
        let mut progress = Progress::start(&what, steps);
        for _ in 0..steps {
            if progress.stopped() {
                break;
            }
            let k = self.step;
            if let Some(s) = &self.schedule {
                self.opt.set_lr(s.at(k));
            }
            let out = objective.step_loss(k, &mut self.step_rng(k))?;
            let l = finite_loss(&out.loss, k + 1, &what)?;
            self.opt.backward_step(&out.loss)?;
            let after = objective.after_step(k)?;
            self.step += 1;
            self.history.push(self.step, l, out.metric);
            self.history.push_parts(&after);
            progress.tick_history(&self.history);
        }
        progress.finish(&self.history.summary());
        Ok(&self.history)
    }

    /// Saves `params`, the optimiser state, the steps taken, the history and
    /// `meta` (a JSON object: the model's `"config"` and whatever else its
    /// `load` needs) into the directory `dir`, atomically, as `format`.
    /// `extra` are more tensor groups (e.g. a method's `"state"`).
    pub fn save(
        &self,
        dir: impl AsRef<Path>,
        format: &str,
        meta: serde_json::Value,
        params: &Params,
        extra: &[(&str, &HashMap<String, Tensor>)],
    ) -> Result<()> {
        let serde_json::Value::Object(mut m) = meta else {
            candle_core::bail!("Run::save: the metadata of {format} must be a JSON object");
        };
        m.insert("format".into(), format.into());
        m.insert("step".into(), self.step.into());
        m.insert("optimizer_steps".into(), self.opt.steps_taken().into());
        m.insert("history".into(), serde_json::to_value(&self.history).map_err(|e| candle_core::Error::Msg(e.to_string()))?);
        let model = params.named_tensors();
        let opt = self.opt.state();
        let mut groups: Vec<(&str, &HashMap<String, Tensor>)> = vec![("model", &model), ("optimizer", &opt)];
        groups.extend_from_slice(extra);
        save_checkpoint(dir, &serde_json::Value::Object(m), &groups)
    }

    /// Opens the checkpoint `dir` and checks that it is `format` (`kind` names
    /// it in the error, e.g. "an sslab CLIP checkpoint").
    pub fn open(dir: impl AsRef<Path>, format: &str, kind: &str, dev: &Device) -> Result<Checkpoint> {
        let ck = load_checkpoint(dir, dev)?;
        ck.expect_format(format, kind)?;
        Ok(ck)
    }

    /// Restores `params`, the optimiser state, the steps taken and the history
    /// from a checkpoint written by [`Run::save`] into this freshly built run.
    pub fn restore(&mut self, ck: &Checkpoint, params: &Params) -> Result<()> {
        ck.restore_params(params, "model")?;
        ck.restore_optimizer(&mut self.opt)?;
        self.step = ck.entry("step")?;
        self.history = ck.entry("history")?;
        Ok(())
    }
}
