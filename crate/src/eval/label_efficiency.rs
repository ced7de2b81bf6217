//! The label-efficiency sweep of section 24.1: accuracy against the number
//! of labels per class, for a pretrained encoder and for training from scratch.

use super::{linear_probe, mean_std, trivial_rates, verdict, FewLabelProtocol, TrivialRates, Verdict};
use crate::data::{ImageDataset, LabelledData};
use crate::method::{EncoderConfig, Pretrainer};
use crate::plot::{LinePlot, Table};
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// Accuracies of several approaches at several label budgets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelEfficiency {
    /// The label budgets, in labels per class.
    pub labels_per_class: Vec<usize>,
    /// `(approach, accuracies[k][repeat])` for each approach.
    pub arms: Vec<(String, Vec<Vec<f64>>)>,
    /// How every number was obtained.
    pub protocol: String,
    /// Uniform chance and the majority class of the test split.
    #[serde(default)]
    pub trivial: Option<TrivialRates>,
}

/// The budgets of a label-efficiency sweep, as data: the labels per class
/// and, at each budget, the few-label protocol of every labelled subset
/// (`protocols[i][r]`: budget `i`, repetition `r`). The chapter configs
/// convert into it (`(&WhySslConfig).into()`, `(&ContrastiveConfig).into()`).
#[derive(Clone, Debug, PartialEq)]
pub struct LabelBudgets {
    /// The budgets, in labels per class.
    pub labels_per_class: Vec<usize>,
    /// The protocols, one list of repetitions per budget.
    pub protocols: Vec<Vec<FewLabelProtocol>>,
    /// The seed the protocols were derived from (named in the caption).
    pub seed: u64,
}

impl LabelBudgets {
    /// `repeats` protocols `protocol_at(k, r)` at each budget `k`.
    pub fn new(labels_per_class: &[usize], repeats: usize, seed: u64, protocol_at: impl Fn(usize, usize) -> FewLabelProtocol) -> Self {
        let protocols = labels_per_class.iter().map(|&k| (0..repeats).map(|r| protocol_at(k, r)).collect()).collect();
        Self { labels_per_class: labels_per_class.to_vec(), protocols, seed }
    }

    /// The repetitions per budget; an error naming `what` unless there is
    /// at least one budget and the same, positive number of protocols at each.
    fn repeats(&self, what: &str) -> Result<usize> {
        let repeats = self.protocols.first().map_or(0, Vec::len);
        if self.labels_per_class.is_empty() || repeats == 0 || self.protocols.len() != self.labels_per_class.len() || self.protocols.iter().any(|p| p.len() != repeats) {
            candle_core::bail!(
                "{what} needs at least one label budget and one labelled subset per budget, got budgets {:?} with {:?} subsets",
                self.labels_per_class,
                self.protocols.iter().map(Vec::len).collect::<Vec<_>>()
            );
        }
        Ok(repeats)
    }
}

fn mean_and_std(xs: &[f64]) -> (f64, f64) {
    mean_std(xs).unwrap_or((f64::NAN, f64::NAN))
}

impl LabelEfficiency {
    /// Mean accuracy of `arm` at each label budget.
    pub fn means(&self, arm: &str) -> Option<Vec<f64>> {
        let (_, accs) = self.arms.iter().find(|(n, _)| n == arm)?;
        Some(accs.iter().map(|a| mean_and_std(a).0).collect())
    }

    /// Row `a` against row `b` at every label budget, paired over the
    /// labelled subsets both were measured on (see [`verdict`]).
    pub fn verdicts(&self, a: &str, b: &str) -> Result<Vec<(usize, Verdict)>> {
        let row = |name: &str| match self.arms.iter().find(|(n, _)| n == name) {
            Some((_, accs)) => Ok(accs),
            None => {
                let names: Vec<&str> = self.arms.iter().map(|(n, _)| n.as_str()).collect();
                candle_core::bail!("no row {name:?} in the label-efficiency result; its rows are {names:?}")
            }
        };
        let (ra, rb) = (row(a)?, row(b)?);
        self.labels_per_class.iter().zip(ra.iter().zip(rb)).map(|(&k, (x, y))| Ok((k, verdict(a, x, b, y, "labelled subsets")?))).collect()
    }

    /// Mean test accuracy ± std over repeats, one row per label budget (the
    /// accuracy alone when every budget has one labelled subset).
    pub fn table(&self) -> Table {
        let mut header = vec!["labels per class".to_string()];
        header.extend(self.arms.iter().map(|(n, _)| n.clone()));
        let single = self.arms.iter().all(|(_, accs)| accs.iter().all(|a| a.len() <= 1));
        let caption = if single {
            "test accuracy (one labelled subset per budget)".to_string()
        } else {
            let n = self.arms.first().and_then(|(_, a)| a.first()).map_or(0, Vec::len);
            format!("test accuracy (mean ± std over {n} labelled subsets per budget)")
        };
        let mut t = Table::new(&header).caption(&TrivialRates::caption(&caption, self.trivial.as_ref()));
        for (i, k) in self.labels_per_class.iter().enumerate() {
            let mut row = vec![k.to_string()];
            for (_, accs) in &self.arms {
                let (m, s) = mean_and_std(&accs[i]);
                row.push(if single { format!("{:.1} %", 100.0 * m) } else { format!("{:.1} ± {:.1} %", 100.0 * m, 100.0 * s) });
            }
            t.push(&row);
        }
        t
    }

    /// Accuracy against labels per class (log axis), one line per approach.
    pub fn plot(&self) -> LinePlot {
        let mut p = LinePlot::new("Label efficiency").x_label("labels per class (log scale)").y_label("test accuracy").log_x();
        for (name, _) in &self.arms {
            let means = self.means(name).unwrap_or_default();
            let pts = self.labels_per_class.iter().zip(means).map(|(&k, m)| (k as f64, m)).collect();
            p = p.series(name, pts);
        }
        p
    }
}

/// The label-efficiency curve of a pretraining run (the UvA SimCLR
/// tutorial's table, on our data): at each budget of
/// `budgets` (e.g. `ContrastiveConfig::label_budgets`), a linear probe and
/// k-NN on `run`'s frozen features (`"{name} + linear"`, `"{name} + kNN"`),
/// the same encoder untrained with the same probe (`"random init + linear"`),
/// and the same encoder trained end to end on those labels alone
/// (`"from scratch"`), all on the labelled subset that
/// the budget's first protocol draws and measured on `test`.
pub fn label_curve(name: &str, run: &Pretrainer, train: &ImageDataset, test: &ImageDataset, budgets: impl Into<LabelBudgets>) -> Result<LabelEfficiency> {
    let cfg: LabelBudgets = budgets.into();
    cfg.repeats("label_curve")?;
    let names = [format!("{name} + linear"), format!("{name} + kNN"), "random init + linear".to_string(), "from scratch".to_string()];
    let mut arms: Vec<(String, Vec<Vec<f64>>)> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for protos in &cfg.protocols {
        let proto = &protos[0];
        let labelled = proto.labelled(train)?;
        let row = proto.evaluate_run(name, run, &labelled, test, false)?;
        let random = proto.random_init(run.config(), &labelled, test, run.device())?;
        let scratch = proto.from_scratch(&run.config().encoder, &labelled, test, run.device())?;
        for (arm, acc) in arms.iter_mut().zip([row.linear, row.knn, random.linear, scratch.finetune]) {
            arm.1.push(vec![acc]);
        }
    }
    let protocol = format!(
        "{} unlabelled training images for pretraining, {} test images; at each budget one labelled subset per class; \
         linear probe ({} full-batch AdamW steps on frozen standardised features) and k-NN on the frozen encoder, \
         the same probe on the untrained encoder; \
         from scratch: the same encoder + linear head trained end to end on the labels only ({} steps); seed {}",
        train.len(),
        test.len(),
        cfg.protocols[0][0].probe.steps,
        cfg.protocols[0][0].scratch.steps,
        cfg.seed
    );
    Ok(LabelEfficiency { labels_per_class: cfg.labels_per_class.clone(), arms, protocol, trivial: Some(trivial_rates(&test.labels, test.num_classes())?) })
}

/// A frozen representation in [`label_efficiency`]: its name and the
/// function that maps a batch of images `(B, C, H, W)` to features `(B, F)`.
pub type Representation<'a> = (&'a str, &'a dyn Fn(&Tensor) -> Result<Tensor>);

/// Runs the sweep: for each label budget `k` of `budgets` (e.g.
/// `WhySslConfig::labels_per_class`) and each of its repetitions, that
/// repetition's few-label protocol draws a
/// labelled subset of `train` (a new one per repetition, the same for every
/// row); on it
///
/// * `"{name} + linear"`: a linear probe on each frozen representation
///   (pass an untrained encoder as one of them: the random-init control),
/// * `"from scratch"`: the `scratch` encoder + a linear head trained end to
///   end on the subset only, at the protocol's converged budget
///   ([`ClassifierConfig`](super::ClassifierConfig)),
///
/// all measured on `test`, with its trivial rates. Compare two rows with
/// [`LabelEfficiency::verdicts`].
pub fn label_efficiency(
    representations: &[Representation],
    scratch: &EncoderConfig,
    train: &ImageDataset,
    test: &ImageDataset,
    budgets: impl Into<LabelBudgets>,
    dev: &Device,
) -> Result<LabelEfficiency> {
    let cfg: LabelBudgets = budgets.into();
    let repeats = cfg.repeats("label_efficiency")?;
    let nc = train.num_classes().max(test.num_classes());
    // every representation's features of both splits, once
    let mut feats = Vec::new();
    for (name, encode) in representations {
        let f = |x: &Tensor| encode(&x.to_device(dev)?);
        feats.push((name.to_string(), super::map_batches(&train.images, 500, "training images", f)?, super::map_batches(&test.images, 500, "test images", f)?));
    }
    let mut arms: Vec<(String, Vec<Vec<f64>>)> = feats
        .iter()
        .map(|(n, _, _)| format!("{n} + linear"))
        .chain(["from scratch".to_string()])
        .map(|n| (n, vec![Vec::new(); cfg.labels_per_class.len()]))
        .collect();
    let mut progress = crate::train::Progress::start("label efficiency (budgets × labelled subsets)", cfg.labels_per_class.len() * repeats);
    for (i, &k) in cfg.labels_per_class.iter().enumerate() {
        for r in 0..repeats {
            if progress.stopped() {
                return Err(progress.interrupted());
            }
            let proto = &cfg.protocols[i][r];
            let idx = train.per_class_indices(k, &mut proto.label_draw())?;
            let subset = train.select(&idx)?;
            let ids = Tensor::from_vec(idx.iter().map(|&j| j as u32).collect::<Vec<_>>(), idx.len(), &Device::Cpu)?;
            for (a, (_, ftr, fte)) in feats.iter().enumerate() {
                let probe = linear_probe(&ftr.index_select(&ids, 0)?, &subset.labels, fte, &test.labels, nc, &proto.probe, proto.probe_seed())?;
                arms[a].1[i].push(probe.accuracy);
            }
            let row = proto.from_scratch(scratch, &subset, test, dev)?;
            arms[feats.len()].1[i].push(row.finetune);
            progress.tick(|| format!("{k} labels per class, subset {} of {repeats}", r + 1));
        }
    }
    progress.finish(&format!("label efficiency: labels per class {:?}, {repeats} labelled subset(s) each", cfg.labels_per_class));
    let p = &cfg.protocols[0][0];
    let protocol = format!(
        "train split {} images (pretraining used them without labels), test split {} images; \
         at each budget {} labelled subset(s) per class drawn from the train split, the same for every row; \
         linear probe on frozen standardised features ({} full-batch AdamW steps); \
         from scratch: the same encoder + linear head trained end to end on the labels only ({} steps of batch ≤ {}, AdamW lr {}); seed {}",
        train.len(),
        test.len(),
        repeats,
        p.probe.steps,
        p.scratch.steps,
        p.scratch.batch_size,
        p.scratch.lr,
        cfg.seed
    );
    Ok(LabelEfficiency { labels_per_class: cfg.labels_per_class.clone(), arms, protocol, trivial: Some(trivial_rates(&test.labels, nc)?) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WhySslConfig;
    use crate::method::{MethodName, PretrainConfig};

    /// Every row is measured on the same labelled subsets (a new one per
    /// repetition), the table names its repetitions and trivial rates, and
    /// verdicts pair the rows per budget.
    #[test]
    fn sweep_rows_share_subsets_and_give_verdicts() {
        let dev = Device::Cpu;
        let (train, test) = crate::data::load_images("shapes", 400, 0).unwrap();
        let smoke = crate::config::Profile::Smoke.why_ssl();
        let few_labels = crate::eval::FewLabelBudget { repetitions: 3, scratch_steps: 5, probe_steps: 20, ..smoke.few_labels.clone() };
        let cfg = WhySslConfig { label_budgets: vec![1, 3], few_labels, ..smoke };
        // the subsets differ between repetitions and budgets
        let a = cfg.protocol_at(3, 0).labelled(&train).unwrap();
        let b = cfg.protocol_at(3, 1).labelled(&train).unwrap();
        assert_eq!(a.len(), 3 * train.num_classes());
        assert_ne!(a.labels.len(), 0);
        assert_ne!(a.images.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_ne!(cfg.protocol_at(3, 0).seed, cfg.protocol_at(3, 1).seed);
        assert_ne!(cfg.protocol_at(1, 0).seed, cfg.protocol_at(3, 0).seed);
        let run = Pretrainer::new(PretrainConfig::for_method(MethodName::SimClr), train.image_shape().unwrap(), &dev).unwrap();
        let flat = |x: &Tensor| x.flatten_from(1);
        let le = label_efficiency(&[("pixels", &flat), ("random init", &|x| run.features(x))], &EncoderConfig::default(), &train, &test, &cfg, &dev).unwrap();
        let names: Vec<&str> = le.arms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["pixels + linear", "random init + linear", "from scratch"]);
        assert!(le.arms.iter().all(|(_, accs)| accs.len() == 2 && accs.iter().all(|r| r.len() == 3 && r.iter().all(|v| (0.0..=1.0).contains(v)))));
        let html = le.table().to_html();
        assert!(html.contains("mean ± std over 3 labelled subsets per budget") && html.contains("uniform chance 10.0 %"), "{html}");
        let v = le.verdicts("pixels + linear", "from scratch").unwrap();
        assert_eq!(v.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1, 3]);
        assert!(v.iter().all(|(_, v)| v.repetitions() == 3 && v.outcome != crate::eval::Outcome::TooFewRepetitions));
        let err = le.verdicts("SimCLR + linear", "from scratch").unwrap_err().to_string();
        assert!(err.contains("no row \"SimCLR + linear\"") && err.contains("pixels + linear"), "{err}");
        assert!(le.protocol.contains("3 labelled subset(s) per class") && le.protocol.contains("5 steps"), "{}", le.protocol);
        assert!(label_efficiency(&[], &EncoderConfig::default(), &train, &test, &WhySslConfig { few_labels: crate::eval::FewLabelBudget { repetitions: 0, ..cfg.few_labels.clone() }, ..cfg }, &dev).is_err());
    }
}
