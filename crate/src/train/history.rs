//! Loss and metric history of a training run.

use crate::plot::LinePlot;
use serde::{Deserialize, Serialize};

/// Per-step loss and metric of one training run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// What was trained (the plot title).
    pub name: String,
    /// What `metric` measures (e.g. `"pretext accuracy"`).
    pub metric_name: String,
    /// Step numbers, from 1.
    pub steps: Vec<usize>,
    /// Training loss at each step.
    pub loss: Vec<f64>,
    /// The metric at each step.
    pub metric: Vec<f64>,
    /// The named parts of the loss at each step, for methods that report
    /// them (VICReg's weighted invariance, variance and covariance terms).
    /// Absent in old checkpoints: none.
    #[serde(default)]
    pub parts: Vec<(String, Vec<f64>)>,
}

impl History {
    /// An empty history.
    pub fn new(name: &str, metric_name: &str) -> Self {
        Self { name: name.into(), metric_name: metric_name.into(), ..Default::default() }
    }

    /// Records one step.
    pub fn push(&mut self, step: usize, loss: f64, metric: f64) {
        self.steps.push(step);
        self.loss.push(loss);
        self.metric.push(metric);
    }

    /// Steps recorded.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// `true` before the first step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The one averaging window of every "value at the end of training" the
    /// crate reports: [`summary`](Self::summary), [`note`](Self::note), the
    /// collapse tables and [`end`](Self::end) average the last 20 steps.
    pub const END_WINDOW: usize = 20;

    /// Mean of the last [`END_WINDOW`](Self::END_WINDOW) values of `xs`
    /// (all of them when fewer; NaN when empty): a value at the end of training.
    pub fn end(xs: &[f64]) -> f64 {
        Self::tail_mean(xs, Self::END_WINDOW)
    }

    /// Mean of the last `n` values of `xs` (all of them when fewer).
    fn tail_mean(xs: &[f64], n: usize) -> f64 {
        let t = &xs[xs.len().saturating_sub(n.max(1))..];
        if t.is_empty() {
            f64::NAN
        } else {
            t.iter().sum::<f64>() / t.len() as f64
        }
    }

    /// One line: steps, final loss and metric (each averaged over the last
    /// [`END_WINDOW`](Self::END_WINDOW) steps, as the line says).
    pub fn summary(&self) -> String {
        format!(
            "{}: {} steps, loss {:.3} → {:.3}, {} {:.3} (mean of the last {} steps)",
            self.name,
            self.len(),
            self.loss.first().copied().unwrap_or(f64::NAN),
            Self::end(&self.loss),
            self.metric_name,
            Self::end(&self.metric),
            Self::END_WINDOW.min(self.len().max(1))
        )
    }

    /// A short note for a results table: `"N steps, <metric> m (last 20)"`
    /// with the metric averaged over the last [`END_WINDOW`](Self::END_WINDOW)
    /// steps, or `"not trained"`.
    pub fn note(&self) -> String {
        if self.is_empty() {
            return "not trained".into();
        }
        format!("{} steps, {} {:.3} (last {})", self.len(), self.metric_name, Self::end(&self.metric), Self::END_WINDOW.min(self.len()))
    }

    /// `(step, mean of the last `window` values up to that step)` for `xs`.
    fn smooth(&self, xs: &[f64], window: usize) -> Vec<(f64, f64)> {
        (0..xs.len().min(self.steps.len())).map(|i| (self.steps[i] as f64, Self::tail_mean(&xs[..=i], window))).collect()
    }

    /// The loss curve smoothed over `window` steps, as `(step, loss)` points
    /// (for overlaying several runs in one [`LinePlot`]).
    pub fn smoothed_loss(&self, window: usize) -> Vec<(f64, f64)> {
        self.smooth(&self.loss, window)
    }

    /// The metric curve smoothed over `window` steps, as `(step, metric)` points.
    pub fn smoothed_metric(&self, window: usize) -> Vec<(f64, f64)> {
        self.smooth(&self.metric, window)
    }

    /// Records the loss's parts for the step last pushed (a part first
    /// seen now starts here; steps before it have none).
    pub fn push_parts(&mut self, parts: &[(&str, f64)]) {
        for (name, v) in parts {
            match self.parts.iter_mut().find(|(n, _)| n == name) {
                Some((_, xs)) => xs.push(*v),
                None => self.parts.push((name.to_string(), vec![*v])),
            }
        }
    }

    /// One part of the loss smoothed over `window` steps, as `(step, value)`
    /// points; empty if the method reported no such part.
    pub fn smoothed_part(&self, name: &str, window: usize) -> Vec<(f64, f64)> {
        let Some((_, xs)) = self.parts.iter().find(|(n, _)| n == name) else { return Vec::new() };
        // a part first reported at a later step aligns with the last steps
        let offset = self.steps.len().saturating_sub(xs.len());
        self.steps[offset..].iter().enumerate().map(|(i, &s)| (s as f64, Self::tail_mean(&xs[..=i], window))).collect()
    }

    /// Every part of the loss on one plot, with the total, smoothed over
    /// `window` steps.
    pub fn parts_plot(&self, window: usize) -> LinePlot {
        let mut p = LinePlot::new(&format!("{}: the parts of the loss", self.name))
            .x_label("step")
            .y_label("weighted term")
            .series("loss", self.smoothed_loss(window));
        for (name, _) in &self.parts {
            p = p.series(name, self.smoothed_part(name, window));
        }
        p
    }

    /// The loss and metric curves, smoothed over `window` steps.
    pub fn plot(&self, window: usize) -> LinePlot {
        LinePlot::new(&self.name)
            .x_label("step")
            .y_label("value")
            .series("loss", self.smoothed_loss(window))
            .series(&self.metric_name, self.smoothed_metric(window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_summary_uses_the_tail() {
        let mut h = History::new("t", "acc");
        for s in 1..=40 {
            h.push(s, if s > 20 { 1.0 } else { 3.0 }, 0.5);
        }
        let curve = h.smoothed_loss(10);
        assert_eq!(curve.len(), 40);
        assert_eq!(curve[0], (1.0, 3.0));
        assert_eq!(curve[24], (25.0, 2.0)); // steps 16–25: five 3s and five 1s
        assert_eq!(h.smoothed_metric(5)[39], (40.0, 0.5));
        let s = h.summary();
        assert!(s.contains("40 steps") && s.contains("3.000 → 1.000") && s.contains("acc 0.500"), "{s}");
        assert_eq!(h.plot(5).series_len(), 2);
        assert_eq!(History::new("t", "acc").note(), "not trained");
        h.push(41, 1.0, 1.5);
        // the note averages the metric over the last 20 steps, as the summary does: (19 · 0.5 + 1.5) / 20
        assert_eq!(h.note(), "41 steps, acc 0.550 (last 20)");
        assert!(h.summary().contains("acc 0.550 (mean of the last 20 steps)"), "{}", h.summary());
        assert_eq!(History::end(&[1.0, 3.0]), 2.0);
    }
}
