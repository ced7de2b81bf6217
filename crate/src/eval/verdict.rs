//! Verdicts from repeated runs, and the trivial rates every accuracy is read
//! against.
//!
//! A ranking rests on repetitions: two representations measured on the same
//! labelled subsets (or pretraining seeds) give one paired difference per
//! repetition. [`verdict`] turns them into the sentence a notebook prints:
//!
//! ```text
//! SimCLR + linear ahead of random init + linear by +13.1 ± 1.6 points
//! (mean ± std over 3 labelled subsets), on 3/3
//! ```
//!
//! The rule is deliberately plain, so a student can check it by eye: with at
//! least [`MIN_REPETITIONS`] repetitions, one side is *ahead* when it wins on
//! every repetition; otherwise there is *no clear difference*. Fewer
//! repetitions are *too few to rank*.

use candle_core::{bail, Result};
use serde::{Deserialize, Serialize};

/// Repetitions below which [`verdict`] declines to rank.
pub const MIN_REPETITIONS: usize = 3;

/// What the paired differences say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The first row wins on every repetition.
    Ahead,
    /// The first row loses on every repetition.
    Behind,
    /// Mixed wins and losses (or ties).
    NoClearDifference,
    /// Fewer than [`MIN_REPETITIONS`] repetitions.
    TooFewRepetitions,
}

/// The comparison of two rows of accuracies measured on the same repetitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The first row's name.
    pub a: String,
    /// The second row's name.
    pub b: String,
    /// What one repetition is, plural ("labelled subsets", "seeds").
    pub unit: String,
    /// `a − b` per repetition, in percentage points.
    pub differences: Vec<f64>,
    /// Mean of [`differences`](Self::differences), in points.
    pub mean: f64,
    /// Their sample standard deviation (n − 1), in points; 0 for one repetition.
    pub std: f64,
    /// Repetitions on which `a` is strictly ahead.
    pub wins: usize,
    /// Repetitions on which `a` is strictly behind.
    pub losses: usize,
    /// The verdict.
    pub outcome: Outcome,
}

/// Compares accuracies `a` and `b` (fractions in [0, 1]), measured pairwise on
/// the same repetitions (`a[i]` and `b[i]` on repetition `i`).
///
/// Errors when the rows differ in length, are empty, or hold a value that is
/// not a finite number (each named).
pub fn verdict(a_name: &str, a: &[f64], b_name: &str, b: &[f64], unit: &str) -> Result<Verdict> {
    if a.len() != b.len() {
        bail!("verdict: {a_name} has {} repetitions and {b_name} {}: they must be measured on the same ones", a.len(), b.len());
    }
    if a.is_empty() {
        bail!("verdict: no repetitions of {a_name} and {b_name}");
    }
    for (name, row) in [(a_name, a), (b_name, b)] {
        if let Some((i, v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            bail!("verdict: {name} has {v} on repetition {i}; every accuracy must be a finite number");
        }
    }
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| 100.0 * (x - y)).collect();
    let (mean, std) = super::mean_std(&differences).unwrap_or((0.0, 0.0));
    let wins = differences.iter().filter(|d| **d > 0.0).count();
    let losses = differences.iter().filter(|d| **d < 0.0).count();
    let n = differences.len();
    let outcome = if n < MIN_REPETITIONS {
        Outcome::TooFewRepetitions
    } else if wins == n {
        Outcome::Ahead
    } else if losses == n {
        Outcome::Behind
    } else {
        Outcome::NoClearDifference
    };
    Ok(Verdict { a: a_name.into(), b: b_name.into(), unit: unit.into(), differences, mean, std, wins, losses, outcome })
}

impl Verdict {
    /// Repetitions compared.
    pub fn repetitions(&self) -> usize {
        self.differences.len()
    }

    /// `a` is ahead on every one of at least [`MIN_REPETITIONS`] repetitions.
    pub fn is_ahead(&self) -> bool {
        self.outcome == Outcome::Ahead
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.repetitions();
        let spread = format!("{:+.1} ± {:.1} points (mean ± std over {n} {})", self.mean, self.std, self.unit);
        match self.outcome {
            Outcome::Ahead => write!(f, "{} ahead of {} by {spread}, on {n}/{n}", self.a, self.b),
            Outcome::Behind => write!(f, "{} behind {} by {spread}, on {n}/{n}", self.a, self.b),
            Outcome::NoClearDifference => write!(
                f,
                "no clear difference between {} and {}: {} ahead on {}/{n}, behind on {}/{n}, {spread}",
                self.a, self.b, self.a, self.wins, self.losses
            ),
            Outcome::TooFewRepetitions => write!(
                f,
                "{} vs {}: {n} {} are too few to rank (at least {MIN_REPETITIONS}); difference {:+.1} points",
                self.a, self.b, self.unit, self.mean
            ),
        }
    }
}

/// The rates an accuracy must beat to mean anything: uniform guessing, and
/// always answering the test split's most frequent class (they differ when
/// the test split keeps natural class frequencies).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrivialRates {
    /// Number of classes.
    pub classes: usize,
    /// Test examples counted.
    pub examples: usize,
    /// Accuracy of a uniform random guess, `1 / classes`.
    pub chance: f64,
    /// The most frequent class in the test labels (the lowest index on a tie).
    pub majority_class: u32,
    /// Accuracy of always answering [`majority_class`](Self::majority_class).
    pub majority: f64,
}

/// The trivial rates of `labels` (test labels, each below `classes`).
pub fn trivial_rates(labels: &[u32], classes: usize) -> Result<TrivialRates> {
    if labels.is_empty() || classes == 0 {
        bail!("trivial_rates needs test labels and at least one class, got {} labels and {classes} classes", labels.len());
    }
    let mut counts = vec![0usize; classes];
    for &y in labels {
        match counts.get_mut(y as usize) {
            Some(c) => *c += 1,
            None => bail!("trivial_rates: label {y} is not below the number of classes, {classes}"),
        }
    }
    let (majority_class, &top) = counts.iter().enumerate().rev().max_by_key(|(_, c)| **c).unwrap_or((0, &0));
    Ok(TrivialRates {
        classes,
        examples: labels.len(),
        chance: 1.0 / classes as f64,
        majority_class: majority_class as u32,
        majority: top as f64 / labels.len() as f64,
    })
}

impl TrivialRates {
    /// `caption` followed by the rates, when there are any: how a table names them.
    pub fn caption(caption: &str, rates: Option<&TrivialRates>) -> String {
        match rates {
            Some(r) => format!("{caption}; {r}"),
            None => caption.to_string(),
        }
    }
}

impl std::fmt::Display for TrivialRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trivial rates on the {} test examples: uniform chance {:.1} %, always the majority class ({}) {:.1} %",
            self.examples,
            100.0 * self.chance,
            self.majority_class,
            100.0 * self.majority
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_ahead_behind_mixed_and_too_few() {
        let v = verdict("SimCLR", &[0.80, 0.85, 0.90], "random init", &[0.70, 0.70, 0.75], "labelled subsets").unwrap();
        assert_eq!(v.outcome, Outcome::Ahead);
        assert!(v.is_ahead() && v.wins == 3 && v.losses == 0);
        // differences 10, 15, 15: mean 13.33, sample std sqrt(((3.33)^2 + 2 (1.67)^2) / 2) = 2.89
        assert!((v.mean - 13.333).abs() < 1e-3 && (v.std - 2.887).abs() < 1e-3, "{v:?}");
        assert_eq!(v.to_string(), "SimCLR ahead of random init by +13.3 ± 2.9 points (mean ± std over 3 labelled subsets), on 3/3");

        let w = verdict("a", &[0.5, 0.5, 0.5], "b", &[0.6, 0.7, 0.55], "seeds").unwrap();
        assert_eq!(w.outcome, Outcome::Behind);
        assert!(w.to_string().starts_with("a behind b by -11.7 ± "), "{w}");

        let m = verdict("a", &[0.5, 0.7, 0.6], "b", &[0.6, 0.6, 0.6], "seeds").unwrap();
        assert_eq!(m.outcome, Outcome::NoClearDifference);
        assert_eq!((m.wins, m.losses), (1, 1));
        assert!(m.to_string().starts_with("no clear difference between a and b: a ahead on 1/3, behind on 1/3, +0.0 ± 10.0 points"), "{m}");

        // a tie on one repetition is not a win
        assert_eq!(verdict("a", &[0.6, 0.7, 0.8], "b", &[0.6, 0.6, 0.6], "s").unwrap().outcome, Outcome::NoClearDifference);

        // two repetitions that agree are still too few; one run prints no ± at all
        let t = verdict("a", &[0.9, 0.9], "b", &[0.1, 0.1], "seeds").unwrap();
        assert_eq!(t.outcome, Outcome::TooFewRepetitions);
        assert!(!t.is_ahead());
        assert_eq!(t.to_string(), "a vs b: 2 seeds are too few to rank (at least 3); difference +80.0 points");
        assert!(!verdict("a", &[0.9], "b", &[0.1], "seeds").unwrap().to_string().contains('±'));
    }

    #[test]
    fn verdict_names_bad_rows() {
        let e = verdict("a", &[0.1, 0.2], "b", &[0.1], "seeds").unwrap_err().to_string();
        assert!(e.contains("a has 2 repetitions and b 1"), "{e}");
        let e = verdict("a", &[], "b", &[], "seeds").unwrap_err().to_string();
        assert!(e.contains("no repetitions of a and b"), "{e}");
        let e = verdict("a", &[0.1, 0.2], "b", &[0.1, f64::NAN], "seeds").unwrap_err().to_string();
        assert!(e.contains("b has NaN on repetition 1"), "{e}");
    }

    #[test]
    fn trivial_rates_of_an_imbalanced_split() {
        // 3 classes; class 2 is the majority (5 of 10)
        let y = [0, 1, 2, 2, 2, 2, 2, 1, 1, 0];
        let r = trivial_rates(&y, 3).unwrap();
        assert_eq!((r.majority_class, r.examples), (2, 10));
        assert!((r.majority - 0.5).abs() < 1e-12 && (r.chance - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.to_string(), "trivial rates on the 10 test examples: uniform chance 33.3 %, always the majority class (2) 50.0 %");
        // a tie goes to the lowest class index
        assert_eq!(trivial_rates(&[1, 0, 1, 0], 2).unwrap().majority_class, 0);
        // an absent class still counts for chance
        assert!((trivial_rates(&[0, 0], 4).unwrap().chance - 0.25).abs() < 1e-12);
        let e = trivial_rates(&[0, 5], 3).unwrap_err().to_string();
        assert!(e.contains("label 5 is not below the number of classes, 3"), "{e}");
        assert!(trivial_rates(&[], 3).is_err() && trivial_rates(&[0], 0).is_err());
    }
}
