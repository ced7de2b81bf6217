//! Live progress of a long call, and its stop at a step boundary.
//!
//! Every `train_for`, the from-scratch and fine-tuning classifier, the
//! label-efficiency sweep and the benchmark run inside a [`Progress`]:
//!
//! * **In the course's Jupyter kernel** (`SSLAB_PROGRESS` unset or `lines`;
//!   the kernel's launcher marks the process with `SSLAB_KERNEL=1`) it prints a
//!   progress line every few seconds — step k/n, the loss and the method's
//!   metric averaged over the last [`History::END_WINDOW`] steps, steps per
//!   second, time left — each starting with [`MARK`], then one summary line
//!   when the call ends. evcxr forwards a cell's output line by line (each
//!   line ends its own message), so a line cannot be rewritten in place in
//!   JupyterLab: the updates are separate lines, at most one per
//!   [`MIN_INTERVAL`] and per tenth of the call. The notebook runner and the
//!   handouts drop the marked lines, so a saved notebook keeps one summary
//!   line per call.
//! * **In a terminal** (the `sslab` command line, stderr a terminal) one line
//!   on stderr is rewritten in place a few times a second and ends as the
//!   summary.
//! * **Otherwise** (tests, scripts, output piped; `SSLAB_PROGRESS=off`)
//!   nothing is printed.
//!
//! A call nested in another (the classifier inside the label-efficiency
//! sweep) prints nothing of its own. Every call watches for the stop button
//! ([`crate::interrupt`]): [`Progress::stopped`] tells the loop to return at
//! the next step boundary.

use super::History;
use crate::interrupt::Watch;
use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The first characters of every progress line (not of the summary line):
/// what the notebook runner and the handouts drop.
pub const MARK: &str = "⋯ ";

/// The shortest time between two progress lines in the kernel.
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// In the terminal, the line is rewritten at most this often.
const TERMINAL_INTERVAL: Duration = Duration::from_millis(250);

/// A progress line is printed at least this often in the kernel, however
/// slowly the steps go.
const MAX_INTERVAL: Duration = Duration::from_secs(15);

/// Where progress goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Marked lines on stdout, then a summary line (the Jupyter kernel).
    Lines,
    /// One line on stderr rewritten in place (a terminal).
    Terminal,
    /// Nothing.
    Off,
}

impl ProgressMode {
    /// The mode of this process: `SSLAB_PROGRESS` (`lines`, `terminal`,
    /// `off`) when set; else lines in the course kernel (`SSLAB_KERNEL=1`),
    /// the terminal when stderr is one, nothing otherwise.
    pub fn current() -> Self {
        match std::env::var("SSLAB_PROGRESS").unwrap_or_default().trim() {
            "lines" => Self::Lines,
            "terminal" => Self::Terminal,
            "off" | "0" => Self::Off,
            _ if std::env::var("SSLAB_KERNEL").is_ok_and(|v| v == "1") => Self::Lines,
            _ if std::io::stderr().is_terminal() => Self::Terminal,
            _ => Self::Off,
        }
    }
}

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// One long call's progress: lines in the course kernel, a redrawn line in a
/// terminal, nothing otherwise; it also watches for the stop button ([`crate::interrupt`]).
pub struct Progress {
    what: String,
    total: usize,
    done: usize,
    mode: ProgressMode,
    start: Instant,
    last: Instant,
    last_done: usize,
    watch: Watch,
    finished: bool,
}

impl Progress {
    /// Starts the progress of `what` (e.g. "simclr pretraining") over `total`
    /// steps, in this process's [`ProgressMode`].
    pub fn start(what: &str, total: usize) -> Self {
        Self::with_mode(what, total, ProgressMode::current())
    }

    /// [`start`](Self::start) in a given mode (quiet anyway when nested).
    pub fn with_mode(what: &str, total: usize, mode: ProgressMode) -> Self {
        let nested = DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get() > 1
        });
        let now = Instant::now();
        Self {
            what: what.into(),
            total,
            done: 0,
            mode: if nested { ProgressMode::Off } else { mode },
            start: now,
            last: now,
            last_done: 0,
            watch: Watch::start(),
            finished: false,
        }
    }

    /// Whether the stop button was pressed: the loop should return now,
    /// before its next step.
    pub fn stopped(&self) -> bool {
        self.watch.requested()
    }

    /// Where this call's progress goes (`Off` when nested in another call).
    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// Steps counted so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// One more step done; `detail` (called only when a line is printed)
    /// gives the loss and metric to show.
    pub fn tick(&mut self, detail: impl FnOnce() -> String) {
        self.done += 1;
        let now = Instant::now();
        let since = now - self.last;
        let due = match self.mode {
            ProgressMode::Off => false,
            ProgressMode::Terminal => since >= TERMINAL_INTERVAL,
            ProgressMode::Lines => {
                let tenth = (self.total / 10).max(1);
                since >= MIN_INTERVAL && (self.done - self.last_done >= tenth || since >= MAX_INTERVAL)
            }
        };
        if due && self.done < self.total {
            let line = self.line(&detail(), now);
            self.emit(&line, false);
            self.last = now;
            self.last_done = self.done;
        }
    }

    /// [`tick`](Self::tick) for a training loop: the detail is the loss and
    /// metric of `history`, averaged over its last [`History::END_WINDOW`] steps.
    pub fn tick_history(&mut self, history: &History) {
        self.tick(|| progress_detail(history));
    }

    fn line(&self, detail: &str, now: Instant) -> String {
        let secs = (now - self.start).as_secs_f64();
        let rate = self.done as f64 / secs.max(1e-9);
        let left = (self.total.saturating_sub(self.done)) as f64 / rate.max(1e-9);
        let pct = 100.0 * self.done as f64 / self.total.max(1) as f64;
        let detail = if detail.is_empty() { String::new() } else { format!(", {detail}") };
        format!("{}: step {}/{} ({pct:.0} %){detail}, {rate:.1} steps/s, {left:.0} s left", self.what, self.done, self.total)
    }

    fn emit(&self, line: &str, last: bool) {
        match self.mode {
            ProgressMode::Off => {}
            ProgressMode::Lines => {
                let mut out = std::io::stdout().lock();
                let _ = if last { writeln!(out, "{line}") } else { writeln!(out, "{MARK}{line}") };
                let _ = out.flush();
            }
            ProgressMode::Terminal => {
                let mut err = std::io::stderr().lock();
                // \x1b[2K clears the rest of a longer previous line
                let _ = if last { writeln!(err, "\r\x1b[2K{line}") } else { write!(err, "\r\x1b[2K{line}") };
                let _ = err.flush();
            }
        }
    }

    /// The error a call returns when the stop button ended it before it had
    /// a result to give (a classifier half trained, a sweep half done).
    pub fn interrupted(&self) -> candle_core::Error {
        candle_core::Error::Msg(format!(
            "{}: stopped by the interrupt after {} of {} steps, so it has no result; every variable of the session is kept",
            self.what, self.done, self.total
        ))
    }

    /// Ends the call: prints `summary` (with the time taken) as its one
    /// summary line, or, when the stop button ended it early, how far it got
    /// and how to go on. Returns the line (printed or not).
    pub fn finish(mut self, summary: &str) -> String {
        self.finished = true;
        let secs = self.start.elapsed().as_secs_f64();
        let line = if self.stopped() && self.done < self.total {
            format!(
                "stopped by the interrupt after {} of {} steps [{secs:.1} s]: {summary}. Every variable is kept; the same call again continues from here",
                self.done, self.total
            )
        } else {
            format!("{summary} [{secs:.1} s]")
        };
        self.emit(&line, true);
        line
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        if !self.finished && self.mode == ProgressMode::Terminal && self.done > 0 {
            // an error ended the call: leave the terminal on a fresh line
            eprintln!();
        }
    }
}

/// "loss 0.912, contrastive accuracy 0.874 (last 20 steps)".
pub fn progress_detail(history: &History) -> String {
    if history.is_empty() {
        return String::new();
    }
    let w = History::END_WINDOW.min(history.len());
    format!("loss {:.3}, {} {:.3} (last {w} steps)", History::end(&history.loss), history.metric_name, History::end(&history.metric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_mode_counts_steps_and_finishes_with_the_summary() {
        let mut h = History::new("toy pretraining", "acc");
        let mut p = Progress::with_mode("toy pretraining", 3, ProgressMode::Off);
        for k in 1..=3 {
            assert!(!p.stopped());
            h.push(k, 1.0 / k as f64, 0.5);
            p.tick_history(&h);
        }
        assert_eq!(p.done(), 3);
        let line = p.finish(&h.summary());
        assert!(line.starts_with("toy pretraining: 3 steps, loss 1.000 → ") && line.ends_with(" s]"), "{line}");
        assert_eq!(progress_detail(&h), "loss 0.611, acc 0.500 (last 3 steps)");
        assert_eq!(progress_detail(&History::new("x", "m")), "");
    }

    #[test]
    fn progress_lines_show_step_rate_and_time_left_and_nested_calls_are_quiet() {
        let p = Progress::with_mode("toy", 10, ProgressMode::Lines);
        let later = p.start + Duration::from_secs(4);
        let mut q = p;
        q.done = 4;
        let line = q.line("loss 1.000", later);
        assert_eq!(line, "toy: step 4/10 (40 %), loss 1.000, 1.0 steps/s, 6 s left");
        let inner = Progress::with_mode("inner", 5, ProgressMode::Lines);
        assert_eq!(inner.mode, ProgressMode::Off, "a call inside another prints nothing");
        drop(inner);
        drop(q);
        let again = Progress::with_mode("again", 5, ProgressMode::Lines);
        assert_eq!(again.mode, ProgressMode::Lines);
    }
}
