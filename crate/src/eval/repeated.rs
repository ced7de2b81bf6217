//! The few-label protocol repeated over several labelled subsets.
//!
//! One labelled subset of 10 digits per class is a noisy measurement: the
//! same frozen encoder moves by several points from one draw to the next.
//! [`FewLabelProtocol::repeated`] draws `n` subsets (repetition 0 is the
//! protocol's own), every row of a [`RepeatedComparison`] is measured on all
//! of them, the table shows mean ± std, and [`RepeatedComparison::verdict`]
//! pairs two rows subset by subset (see [`verdict`]).
//!
//! ```text
//! let rep = proto.repeated(3, &train, &test)?;
//! let mut cmp = rep.comparison()?;
//! cmp.push(rep.random_init(&cfg, &dev)?);
//! cmp.push(rep.evaluate_run("BYOL", &byol, false)?);
//! for v in cmp.verdicts("knn", "random init")? { println!("{v}"); }
//! cmp
//! ```

use super::{mean_std, trivial_rates, verdict, ComparisonRow, FewLabelProtocol, TrivialRates, Verdict};
use crate::data::{ImageDataset, LabelledData};
use crate::method::{EncoderConfig, PretrainConfig, Pretrainer};
use crate::plot::{BarChart, Table};
use crate::rng::derive_seed;
use candle_core::{bail, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// What one repetition is, in verdicts and captions.
pub const SUBSETS: &str = "labelled subsets";

impl FewLabelProtocol {
    /// Repetition `r` of this protocol: `r = 0` is the protocol itself, the
    /// others differ only in their seed (so in the labelled subset, the
    /// probe's initialisation and the baselines' initialisation).
    pub fn repetition(&self, r: usize) -> Self {
        let seed = if r == 0 { self.seed } else { derive_seed(self.seed, &format!("repetition-{r}")) };
        Self { seed, ..self.clone() }
    }

    /// The protocol on `n` labelled subsets of `train` (repetitions `0..n`),
    /// every one measured on all of `test`.
    pub fn repeated<L: LabelledData + Clone>(&self, n: usize, train: &L, test: &L) -> Result<RepeatedProtocol<L>> {
        if n == 0 {
            bail!("repeated: the number of labelled subsets must be at least 1, got 0");
        }
        let protocols: Vec<Self> = (0..n).map(|r| self.repetition(r)).collect();
        let labelled = protocols.iter().map(|p| p.labelled(train)).collect::<Result<Vec<_>>>()?;
        if test.is_empty() {
            bail!("repeated: the test split of {} is empty", test.name());
        }
        Ok(RepeatedProtocol { protocols, labelled, test: test.clone() })
    }
}

/// A few-label protocol on several labelled subsets and one test split.
#[derive(Clone, Debug)]
pub struct RepeatedProtocol<L> {
    /// One protocol per repetition ([`FewLabelProtocol::repetition`]).
    pub protocols: Vec<FewLabelProtocol>,
    /// Its labelled subset, one per repetition.
    pub labelled: Vec<L>,
    /// The test split every repetition is measured on.
    pub test: L,
}

impl<L: LabelledData> RepeatedProtocol<L> {
    /// Number of repetitions.
    pub fn len(&self) -> usize {
        self.protocols.len()
    }

    /// Always false: [`FewLabelProtocol::repeated`] refuses zero repetitions.
    pub fn is_empty(&self) -> bool {
        self.protocols.is_empty()
    }

    /// One line: the protocol of repetition 0 and how it is repeated.
    pub fn describe(&self) -> String {
        let seeds: Vec<String> = self.protocols.iter().map(|p| p.seed.to_string()).collect();
        format!(
            "{}; repeated on {} labelled subsets (seeds {}), mean ± std over them",
            self.protocols[0].describe(&self.labelled[0], &self.test),
            self.len(),
            seeds.join(", ")
        )
    }

    /// An empty comparison captioned with [`describe`](Self::describe) and
    /// the test split's trivial rates.
    pub fn comparison(&self) -> Result<RepeatedComparison> {
        let mut cmp = RepeatedComparison::new(&self.describe(), SUBSETS);
        cmp.trivial = Some(trivial_rates(self.test.labels(), LabelledData::num_classes(&self.test))?);
        Ok(cmp)
    }

    /// Runs a single-subset evaluation (any function of the few-label
    /// protocol returning one [`ComparisonRow`], such as a text or series
    /// probe) on every repetition and collects its rows under their names.
    pub fn each_rows(&self, mut f: impl FnMut(&FewLabelProtocol, &L, &L) -> Result<Vec<ComparisonRow>>) -> Result<Vec<RepeatedRow>> {
        let mut out: Vec<RepeatedRow> = Vec::new();
        for (i, (p, labelled)) in self.protocols.iter().zip(&self.labelled).enumerate() {
            let rows = f(p, labelled, &self.test)?;
            if i > 0 && rows.len() != out.len() {
                bail!("each_rows: repetition {i} gave {} rows, repetition 0 gave {}", rows.len(), out.len());
            }
            for (j, r) in rows.into_iter().enumerate() {
                if i == 0 {
                    out.push(RepeatedRow { note: r.note.clone(), ..RepeatedRow::named(&r.name) });
                } else if out[j].name != r.name {
                    bail!("each_rows: repetition {i} named row {j} {:?}, repetition 0 {:?}", r.name, out[j].name);
                }
                out[j].linear.push(r.linear);
                out[j].knn.push(r.knn);
                out[j].finetune.push(r.finetune);
            }
        }
        Ok(out)
    }

    /// [`each_rows`](Self::each_rows) for a function giving one row.
    pub fn each(&self, mut f: impl FnMut(&FewLabelProtocol, &L, &L) -> Result<ComparisonRow>) -> Result<RepeatedRow> {
        let mut rows = self.each_rows(|p, l, t| Ok(vec![f(p, l, t)?]))?;
        Ok(rows.remove(0))
    }

    /// Linear probe and k-NN accuracy of the frozen features `encode(x)` on
    /// every labelled subset (the test features are computed once).
    pub fn evaluate(&self, name: &str, encode: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<RepeatedRow> {
        let in_batches = |x: &Tensor| super::map_batches(x, 500, "examples", encode);
        let fte = in_batches(self.test.inputs())?;
        let mut row = RepeatedRow::named(name);
        for (p, labelled) in self.protocols.iter().zip(&self.labelled) {
            if labelled.is_empty() {
                bail!("{name}: the labelled subset of seed {} is empty", p.seed);
            }
            let (linear, knn) = p.score_features(&in_batches(labelled.inputs())?, labelled, &fte, &self.test)?;
            row.linear.push(linear);
            row.knn.push(knn);
            row.finetune.push(f64::NAN);
        }
        Ok(row)
    }
}

impl RepeatedProtocol<ImageDataset> {
    /// [`evaluate`](RepeatedProtocol::evaluate) on a pretraining run's
    /// encoder, plus a fine-tuned copy per subset when `finetune` is set
    /// ([`FewLabelProtocol::finetune_run`]); the note is the run's.
    pub fn evaluate_run(&self, name: &str, run: &Pretrainer, finetune: bool) -> Result<RepeatedRow> {
        let mut row = self.evaluate(name, &|x| run.features(x))?;
        if finetune {
            let mut progress = crate::train::Progress::start(&format!("{name}: fine-tuning on each labelled subset"), self.len());
            for (i, (p, labelled)) in self.protocols.iter().zip(&self.labelled).enumerate() {
                row.finetune[i] = p.finetune_run(run, labelled, &self.test, run.device())?;
                progress.tick(String::new);
            }
            progress.finish(&format!("{name}: fine-tuned on {} labelled subsets", self.len()));
        }
        row.note = run.history().note();
        Ok(row)
    }

    /// Pretrains `cfg` on `train` for its `steps` (one run) and evaluates its
    /// encoder on every subset, without fine-tuning: one row of an ablation
    /// or a sweep.
    pub fn pretrain_and_evaluate(&self, name: &str, cfg: PretrainConfig, train: &ImageDataset, dev: &Device) -> Result<RepeatedRow> {
        let steps = cfg.steps;
        let mut run = Pretrainer::new(cfg, train.image_shape()?, dev)?;
        run.train_for(steps, train)?;
        self.evaluate_run(name, &run, false)
    }

    /// The encoder of `cfg` at initialisation, never trained (one encoder,
    /// measured on every subset).
    pub fn random_init(&self, cfg: &PretrainConfig, dev: &Device) -> Result<RepeatedRow> {
        let run = Pretrainer::new(cfg.clone(), self.test.image_shape()?, dev)?;
        let mut row = self.evaluate("random init", &|x| run.features(x))?;
        row.note = "the same encoder, untrained".into();
        Ok(row)
    }

    /// `encoder` trained end to end on each labelled subset alone
    /// ([`FewLabelProtocol::from_scratch`]; initialised from each
    /// repetition's seed).
    pub fn from_scratch(&self, encoder: &EncoderConfig, dev: &Device) -> Result<RepeatedRow> {
        let mut progress = crate::train::Progress::start("from scratch on each labelled subset", self.len());
        let row = self.each(|p, labelled, test| {
            let r = p.from_scratch(encoder, labelled, test, dev);
            progress.tick(String::new);
            r
        })?;
        progress.finish(&format!("from scratch: trained on {} labelled subsets", self.len()));
        Ok(row)
    }
}

/// One representation's accuracies on every repetition (NaN where a column
/// is not measured).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepeatedRow {
    /// The representation.
    pub name: String,
    /// Linear-probe test accuracy, one per repetition.
    pub linear: Vec<f64>,
    /// k-NN test accuracy, one per repetition.
    pub knn: Vec<f64>,
    /// Fine-tuned (or, for "from scratch", end-to-end) test accuracy.
    pub finetune: Vec<f64>,
    /// What produced it (steps, pretext metric).
    pub note: String,
}

impl RepeatedRow {
    fn named(name: &str) -> Self {
        Self { name: name.into(), linear: vec![], knn: vec![], finetune: vec![], note: String::new() }
    }

    /// The values of `column`: "linear", "knn" or "finetune".
    pub fn column(&self, column: &str) -> Result<&[f64]> {
        match column {
            "linear" => Ok(&self.linear),
            "knn" => Ok(&self.knn),
            "finetune" => Ok(&self.finetune),
            other => bail!("no column {other:?}: the columns are \"linear\", \"knn\" and \"finetune\""),
        }
    }

    /// Mean of `column` over the repetitions (NaN when not measured).
    pub fn mean(&self, column: &str) -> Result<f64> {
        Ok(mean_std(self.column(column)?).map_or(f64::NAN, |(m, _)| m))
    }
}

/// Mean ± std of accuracies in percent ("—" when none was measured).
fn pct(xs: &[f64]) -> String {
    if xs.iter().any(|x| x.is_finite()) {
        super::benchmark::mean_pm(xs, 100.0, false) + " %"
    } else {
        "—".to_string()
    }
}

impl std::fmt::Display for RepeatedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: linear probe {}, k-NN {}, fine-tuned {} (mean ± std over {} repetitions; {})",
            self.name,
            pct(&self.linear),
            pct(&self.knn),
            pct(&self.finetune),
            self.linear.len(),
            self.note
        )
    }
}

fn column_label(column: &str) -> &'static str {
    match column {
        "linear" => "linear probe",
        "knn" => "k-NN",
        _ => "fine-tuned",
    }
}

/// Rows measured on the same repetitions: a table of mean ± std, a bar
/// chart of the means, and verdicts between rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RepeatedComparison {
    /// The rows, in the order added.
    pub rows: Vec<RepeatedRow>,
    /// How every number was obtained.
    pub protocol: String,
    /// What one repetition is, plural ("labelled subsets").
    pub unit: String,
    /// Uniform chance and the majority class of the test split.
    #[serde(default)]
    pub trivial: Option<TrivialRates>,
}

impl RepeatedComparison {
    /// An empty comparison under `protocol`, repeated over `unit`.
    pub fn new(protocol: &str, unit: &str) -> Self {
        Self { rows: Vec::new(), protocol: protocol.into(), unit: unit.into(), trivial: None }
    }

    /// The same comparison, its protocol line prefixed with `what` (the
    /// pretraining budget, say).
    pub fn describing(mut self, what: &str) -> Self {
        self.protocol = format!("{what}; {}", self.protocol);
        self
    }

    /// Adds (or replaces, by name) a row. Errors when its columns disagree in
    /// length, or with the rows already there.
    pub fn push(&mut self, row: RepeatedRow) -> Result<()> {
        let n = row.linear.len();
        if row.knn.len() != n || row.finetune.len() != n {
            bail!("{}: its columns have {}, {} and {} repetitions", row.name, n, row.knn.len(), row.finetune.len());
        }
        if let Some(first) = self.rows.iter().find(|r| r.name != row.name) {
            if first.linear.len() != n {
                bail!("{}: {n} repetitions, but {} has {}; rows must be measured on the same ones", row.name, first.name, first.linear.len());
            }
        }
        match self.rows.iter_mut().find(|r| r.name == row.name) {
            Some(r) => *r = row,
            None => self.rows.push(row),
        }
        Ok(())
    }

    /// The row called `name`.
    pub fn get(&self, name: &str) -> Option<&RepeatedRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    fn row(&self, name: &str) -> Result<&RepeatedRow> {
        match self.get(name) {
            Some(r) => Ok(r),
            None => {
                let names: Vec<&str> = self.rows.iter().map(|r| r.name.as_str()).collect();
                bail!("no row {name:?} in the comparison; its rows are {names:?}")
            }
        }
    }

    /// Number of repetitions (0 when empty).
    pub fn repetitions(&self) -> usize {
        self.rows.first().map_or(0, |r| r.linear.len())
    }

    /// Row `a` against row `b` in `column`, paired repetition by repetition.
    pub fn verdict(&self, a: &str, b: &str, column: &str) -> Result<Verdict> {
        let label = column_label(column);
        verdict(&format!("{a} ({label})"), self.row(a)?.column(column)?, &format!("{b} ({label})"), self.row(b)?.column(column)?, &self.unit)
    }

    /// Every other row measured in `column` against the row `against`.
    pub fn verdicts(&self, column: &str, against: &str) -> Result<Vec<Verdict>> {
        self.row(against)?;
        let mut out = Vec::new();
        for r in &self.rows {
            if r.name != against && r.column(column)?.iter().all(|v| v.is_finite()) {
                out.push(self.verdict(&r.name, against, column)?);
            }
        }
        Ok(out)
    }

    /// Mean ± std of every column, one row per representation ("—" where
    /// not measured).
    pub fn table(&self) -> Table {
        let caption = TrivialRates::caption(&self.protocol, self.trivial.as_ref());
        let mut t = Table::new(&["representation", "linear probe", "k-NN", "fine-tuned", "how"]).caption(&caption);
        for r in &self.rows {
            t.push(&[r.name.clone(), pct(&r.linear), pct(&r.knn), pct(&r.finetune), r.note.clone()]);
        }
        t
    }

    /// Mean linear-probe, k-NN and fine-tuned accuracy per representation.
    pub fn plot(&self) -> BarChart {
        let names: Vec<&str> = self.rows.iter().map(|r| r.name.as_str()).collect();
        let means = |c: &str| self.rows.iter().map(|r| r.mean(c).unwrap_or(f64::NAN)).collect();
        BarChart::new(&format!("Few-label accuracy (%), mean over {} {}", self.repetitions(), self.unit), &names)
            .y_label("test accuracy")
            .y_max(1.0)
            .series("linear probe", means("linear"))
            .series("k-NN", means("knn"))
            .series("fine-tuned", means("finetune"))
    }

    /// Shows the table in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        self.table().evcxr_display()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{ClassifierConfig, Outcome};
    use crate::method::MethodName;

    #[test]
    fn repetitions_draw_different_subsets_and_rows_pair_up() {
        let dev = Device::Cpu;
        let (train, test) = crate::data::load_images("shapes", 600, 0).unwrap();
        let proto = FewLabelProtocol { scratch: ClassifierConfig { steps: 20, ..Default::default() }, ..FewLabelProtocol::new(3, 7) };
        assert_eq!(proto.repetition(0), proto);
        assert_ne!(proto.repetition(1).seed, proto.repetition(2).seed);
        let rep = proto.repeated(3, &train, &test).unwrap();
        assert_eq!(rep.len(), 3);
        // repetition 0 is the single protocol's subset; the others differ
        assert_eq!(rep.labelled[0].labels, proto.labelled(&train).unwrap().labels);
        let firsts: Vec<Vec<f32>> = rep.labelled.iter().map(|l| l.images.get(0).unwrap().flatten_all().unwrap().to_vec1().unwrap()).collect();
        assert!(firsts[0] != firsts[1] || firsts[1] != firsts[2], "three draws gave the same subset");
        let cfg = PretrainConfig { steps: 2, warmup_steps: 0, ..PretrainConfig::for_method(MethodName::Rotation) };
        let mut cmp = rep.comparison().unwrap();
        let random = rep.random_init(&cfg, &dev).unwrap();
        // each repetition equals the single protocol run on that subset
        let single = rep.protocols[1].random_init(&cfg, &rep.labelled[1], &test, &dev).unwrap();
        assert!((random.linear[1] - single.linear).abs() < 1e-9 && (random.knn[1] - single.knn).abs() < 1e-9, "{random:?} vs {single:?}");
        cmp.push(random).unwrap();
        let mut run = Pretrainer::new(cfg.clone(), train.image_shape().unwrap(), &dev).unwrap();
        run.train_for(2, &train).unwrap();
        cmp.push(rep.evaluate_run("rotation", &run, true).unwrap()).unwrap();
        cmp.push(rep.from_scratch(&EncoderConfig::default(), &dev).unwrap()).unwrap();
        let scratch = cmp.get("from scratch").unwrap();
        assert!(scratch.linear.iter().all(|v| v.is_nan()) && scratch.finetune.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(cmp.get("rotation").unwrap().finetune.iter().all(|v| v.is_finite()));
        // verdicts: every row with that column, against the named one
        let v = cmp.verdicts("knn", "random init").unwrap();
        assert_eq!(v.iter().map(|v| v.a.as_str()).collect::<Vec<_>>(), ["rotation (k-NN)", "from scratch (k-NN)"]);
        assert!(v.iter().all(|v| v.repetitions() == 3 && v.unit == SUBSETS && v.outcome != Outcome::TooFewRepetitions));
        assert_eq!(cmp.verdicts("finetune", "from scratch").unwrap().len(), 1);
        let d = cmp.verdict("rotation", "random init", "linear").unwrap();
        let (a, b) = (&cmp.get("rotation").unwrap().linear, &cmp.get("random init").unwrap().linear);
        assert!((d.mean - 100.0 * (0..3).map(|i| a[i] - b[i]).sum::<f64>() / 3.0).abs() < 1e-9);
        // the table shows mean ± std and the caption the repetitions and trivial rates
        let html = cmp.table().to_html();
        assert!(html.contains(" ± ") && html.contains("repeated on 3 labelled subsets") && html.contains("trivial rates"), "{html}");
        assert_eq!(cmp.plot().to_svg().unwrap().matches("<rect class=\"bar\"").count(), 3 + 2 + 2);
        // a single-subset function run on every repetition gives the same numbers
        let each = rep.each(|p, l, t| p.random_init(&cfg, l, t, &dev)).unwrap();
        assert_eq!(each.knn, cmp.get("random init").unwrap().knn);
        let two = rep.each_rows(|p, l, t| Ok(vec![p.random_init(&cfg, l, t, &dev)?, p.evaluate("id", &|x| x.flatten_from(1), l, t)?])).unwrap();
        assert_eq!(two.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["random init", "id"]);
        assert!(two.iter().all(|r| r.linear.len() == 3));
        let sweep = rep.pretrain_and_evaluate("short", cfg.clone(), &train, &dev).unwrap();
        assert!(sweep.note.contains("2 steps") && sweep.finetune.iter().all(|v| v.is_nan()), "{sweep:?}");
        let line = cmp.get("from scratch").unwrap().to_string();
        assert!(line.starts_with("from scratch: linear probe —, k-NN ") && line.contains(" ± ") && line.contains("over 3 repetitions"), "{line}");
        assert!(cmp.clone().describing("2 steps").protocol.starts_with("2 steps; "));
        // errors name the problem
        let err = cmp.verdict("nope", "random init", "knn").unwrap_err().to_string();
        assert!(err.contains("no row \"nope\"") && err.contains("random init"), "{err}");
        assert!(cmp.verdict("rotation", "random init", "accuracy").unwrap_err().to_string().contains("no column \"accuracy\""));
        let short = RepeatedRow { name: "short".into(), linear: vec![0.5], knn: vec![0.5], finetune: vec![f64::NAN], note: String::new() };
        assert!(cmp.push(short).unwrap_err().to_string().contains("rows must be measured on the same ones"));
        assert!(proto.repeated(0, &train, &test).unwrap_err().to_string().contains("at least 1"));
    }
}
