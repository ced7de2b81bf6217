//! Every method on one protocol, over several seeds (section 25.6).
//!
//! One encoder, one data set, one step budget and batch size for every
//! method; for each seed a fresh initialisation, data order, augmentation
//! and labelled subset; a linear probe and k-NN on the frozen features;
//! mean ± sample standard deviation over the seeds. The baselines — the
//! encoder untrained, and trained from scratch on the labels only — are
//! measured on the same seeds.

use super::{ComparisonRow, FewLabelProtocol};
use crate::data::ImageDataset;
use crate::method::{EncoderConfig, MethodName, PretrainConfig, Pretrainer};
use crate::plot::{BarChart, Table};
use candle_core::{Device, Result};
use std::time::Instant;

/// What [`benchmark`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkConfig {
    /// The methods, in table order.
    pub methods: Vec<MethodName>,
    /// One full repetition per seed.
    pub seeds: Vec<u64>,
    /// Pretraining steps of every method.
    pub steps: usize,
    /// Images per step of every method.
    pub batch_size: usize,
    /// The encoder of every method (`None`: [`BenchmarkConfig::shared_cnn`],
    /// the small CNN with batch norm), except MAE, which keeps the ViT it
    /// needs. A `Some` encoder (ResNet-18 in the `gpu` profile) goes to the
    /// joint-embedding methods only; the pretext tasks keep the shared CNN,
    /// which takes their small tiles and patches.
    pub encoder: Option<EncoderConfig>,
    /// Labelled examples per class for the probes and the from-scratch baseline.
    pub labels_per_class: usize,
    /// Steps of each linear probe.
    pub probe_steps: usize,
    /// Steps of the from-scratch baseline.
    pub scratch_steps: usize,
}

impl BenchmarkConfig {
    /// The encoder every method gets by default: [`EncoderConfig::default`]'s
    /// small CNN with batch norm after each convolution. MoCo needs the batch
    /// norm (without it its random-init keys all point the same way and a
    /// short run never leaves `L ≈ ln K`: notebook 25.2), and every other
    /// method trains with it.
    pub fn shared_cnn() -> EncoderConfig {
        EncoderConfig::Cnn(crate::nn::CnnConfig { batch_norm: true, ..Default::default() })
    }

    /// Every method of the crate that can train on images of `channels`
    /// channels (colorization needs colour), with the other settings given.
    pub fn methods_for(channels: usize) -> Vec<MethodName> {
        MethodName::ALL.iter().copied().filter(|&m| channels == 3 || m != MethodName::Colorization).collect()
    }

    /// The settings of `method` in this benchmark (recommended settings of
    /// [`PretrainConfig::for_method`] with the shared budget, encoder and `seed`).
    pub fn pretrain(&self, method: MethodName, seed: u64) -> PretrainConfig {
        let mut cfg = PretrainConfig::for_method(method);
        cfg.steps = self.steps;
        cfg.batch_size = self.batch_size;
        cfg.warmup_steps = cfg.warmup_steps.min(self.steps / 4);
        cfg.seed = seed;
        match (&self.encoder, method) {
            (_, MethodName::Mae) => {}
            (Some(e), _) if method.is_joint_embedding() => cfg.encoder = e.clone(),
            _ => cfg.encoder = Self::shared_cnn(),
        }
        cfg
    }

    fn protocol(&self, seed: u64) -> FewLabelProtocol {
        let mut p = FewLabelProtocol::new(self.labels_per_class, seed);
        p.probe.steps = self.probe_steps;
        p.scratch.steps = self.scratch_steps;
        p
    }
}

/// One row of a [`Benchmark`]: the accuracy of each seed.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkRow {
    /// The method or baseline.
    pub name: String,
    /// Linear-probe test accuracy per seed (NaN where not measured).
    pub linear: Vec<f64>,
    /// k-NN test accuracy per seed.
    pub knn: Vec<f64>,
    /// Test accuracy after end-to-end training per seed (the from-scratch baseline only).
    pub end_to_end: Vec<f64>,
    /// Wall-clock seconds of pretraining per seed.
    pub seconds: Vec<f64>,
    /// The encoder, when it is not the shared one.
    pub note: String,
}

/// The name of the untrained shared encoder's row.
pub const RANDOM_INIT: &str = "random init";
/// The name of the untrained ViT's row (when MAE is benchmarked).
pub const RANDOM_INIT_VIT: &str = "random init (ViT)";

/// Mean and sample standard deviation (n − 1; 0 for one value), NaN-free
/// values only; `None` when there are none.
pub fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    let v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    Some((mean, var.sqrt()))
}

/// Mean ± standard deviation of the values that are not NaN, times
/// `scale`, with a sign when `signed`; the mean alone for one run (no
/// "± 0.0"), "—" for none.
pub(crate) fn mean_pm(xs: &[f64], scale: f64, signed: bool) -> String {
    let mean = |m: f64| if signed { format!("{:+.1}", scale * m) } else { format!("{:.1}", scale * m) };
    match mean_std(xs) {
        Some((m, _)) if xs.iter().filter(|x| !x.is_nan()).count() == 1 => mean(m),
        Some((m, s)) => format!("{} ± {:.1}", mean(m), scale * s),
        None => "—".into(),
    }
}

fn pct(xs: &[f64]) -> String {
    mean_pm(xs, 100.0, false)
}

/// The results of [`benchmark`].
#[derive(Clone, Debug, PartialEq)]
pub struct Benchmark {
    /// The settings.
    pub config: BenchmarkConfig,
    /// Baselines first, then the methods in the configured order.
    pub rows: Vec<BenchmarkRow>,
    /// How every number was obtained.
    pub protocol: String,
}

impl Benchmark {
    /// The row called `name`.
    pub fn get(&self, name: &str) -> Option<&BenchmarkRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The rows of the methods (not the baselines), in the configured order.
    pub fn method_rows(&self) -> impl Iterator<Item = &BenchmarkRow> {
        let names: Vec<&str> = self.config.methods.iter().map(|m| m.as_str()).collect();
        self.rows.iter().filter(move |r| names.contains(&r.name.as_str()))
    }

    /// The untrained encoder a method's row is compared with: MAE's ViT
    /// for MAE, the shared encoder for the others.
    pub fn baseline_for(&self, method: &str) -> Option<&BenchmarkRow> {
        self.get(if method == MethodName::Mae.as_str() { RANDOM_INIT_VIT } else { RANDOM_INIT })
    }

    /// Each method's gain over its untrained encoder ([`baseline_for`](Self::baseline_for)),
    /// seed by seed (the same labelled subset within a seed), as mean ±
    /// standard deviation in points, with the number of seeds that gained.
    pub fn gains_table(&self) -> Table {
        let mut t = Table::new(&["method", "k-NN gain (points)", "linear-probe gain (points)", "seeds with a k-NN gain", "seeds with a linear gain"])
            .caption("each method minus its encoder untrained, on the same seed; mean ± standard deviation over the seeds");
        let fmt = |xs: &[f64]| mean_pm(xs, 1.0, true);
        for row in self.method_rows() {
            let Some(base) = self.baseline_for(&row.name) else { continue };
            let diff = |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| 100.0 * (x - y)).collect() };
            let (knn, lin) = (diff(&row.knn, &base.knn), diff(&row.linear, &base.linear));
            let wins = |xs: &[f64]| format!("{} of {}", xs.iter().filter(|g| **g > 0.0).count(), xs.len());
            t.push(&[row.name.clone(), fmt(&knn), fmt(&lin), wins(&knn), wins(&lin)]);
        }
        t
    }

    /// Mean ± standard deviation over the seeds, in percent.
    pub fn table(&self) -> Table {
        let mut t = Table::new(&["representation", "linear probe", "k-NN", "end to end", "pretraining (s per run)", "note"]).caption(&self.protocol);
        for r in &self.rows {
            let secs = mean_std(&r.seconds).map_or("—".to_string(), |(m, _)| format!("{m:.1}"));
            t.push(&[r.name.clone(), pct(&r.linear), pct(&r.knn), pct(&r.end_to_end), secs, r.note.clone()]);
        }
        t
    }

    /// Mean linear-probe and k-NN accuracy per row.
    pub fn plot(&self) -> BarChart {
        let names: Vec<&str> = self.rows.iter().map(|r| r.name.as_str()).collect();
        let mean = |xs: &[f64]| mean_std(xs).map_or(f64::NAN, |(m, _)| m);
        BarChart::new(&format!("mean test accuracy over {} seeds", self.config.seeds.len()), &names)
            .y_label("test accuracy")
            .y_max(1.0)
            .series("linear probe", self.rows.iter().map(|r| mean(&r.linear)).collect())
            .series("k-NN", self.rows.iter().map(|r| mean(&r.knn)).collect())
    }

    /// Shows the table in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        self.table().evcxr_display()
    }
}

/// Runs every method of `cfg` once per seed on `train` (without labels),
/// evaluates each on the seed's labelled subset of `train` and on `test`,
/// and adds the baselines "random init" and "from scratch".
///
/// # Errors
/// If there are no seeds or no methods, or a method cannot train on these
/// images (e.g. colorization on grey ones: see [`BenchmarkConfig::methods_for`]).
pub fn benchmark(cfg: &BenchmarkConfig, train: &ImageDataset, test: &ImageDataset, dev: &Device) -> Result<Benchmark> {
    if cfg.seeds.is_empty() || cfg.methods.is_empty() {
        candle_core::bail!("benchmark: needs at least one seed and one method, got {:?} and {:?}", cfg.seeds, cfg.methods);
    }
    let shape = train.image_shape()?;
    for &m in &cfg.methods {
        cfg.pretrain(m, cfg.seeds[0]).check()?;
        if m == MethodName::Colorization && shape.0 != 3 {
            candle_core::bail!("benchmark: colorization needs colour images, {} has shape {shape:?}", train.name);
        }
    }
    let empty = |name: &str, note: &str| BenchmarkRow {
        name: name.into(),
        linear: Vec::new(),
        knn: Vec::new(),
        end_to_end: Vec::new(),
        seconds: Vec::new(),
        note: note.into(),
    };
    let with_vit = cfg.methods.contains(&MethodName::Mae);
    let mut rows = vec![empty(RANDOM_INIT, "the encoder, untrained")];
    if with_vit {
        rows.push(empty(RANDOM_INIT_VIT, "MAE's ViT, untrained"));
    }
    rows.push(empty("from scratch", "supervised on the labelled examples only"));
    let first_method = rows.len();
    for &m in &cfg.methods {
        let note = if m == MethodName::Mae { "its own ViT encoder" } else { "" };
        rows.push(empty(m.as_str(), note));
    }
    let add = |row: &mut BenchmarkRow, r: &ComparisonRow, secs: f64| {
        row.linear.push(r.linear);
        row.knn.push(r.knn);
        row.end_to_end.push(r.finetune);
        row.seconds.push(secs);
    };
    let mut progress = crate::train::Progress::start("benchmark (seeds × methods)", cfg.seeds.len() * cfg.methods.len());
    for &seed in &cfg.seeds {
        let proto = cfg.protocol(seed);
        let labelled = proto.labelled(train)?;
        let base = cfg.pretrain(MethodName::SimClr, seed);
        let r = proto.random_init(&base, &labelled, test, dev)?;
        add(&mut rows[0], &r, f64::NAN);
        if with_vit {
            let r = proto.random_init(&cfg.pretrain(MethodName::Mae, seed), &labelled, test, dev)?;
            add(&mut rows[1], &r, f64::NAN);
        }
        let r = proto.from_scratch(&base.encoder, &labelled, test, dev)?;
        add(&mut rows[first_method - 1], &r, f64::NAN);
        for (i, &m) in cfg.methods.iter().enumerate() {
            let pc = cfg.pretrain(m, seed);
            let start = Instant::now();
            let mut run = Pretrainer::new(pc, shape, dev)?;
            run.train_for(cfg.steps, train)?;
            if progress.stopped() {
                return Err(progress.interrupted());
            }
            let secs = start.elapsed().as_secs_f64();
            let r = proto.evaluate_run(m.as_str(), &run, &labelled, test, false)?;
            add(&mut rows[first_method + i], &r, secs);
            progress.tick(|| format!("seed {seed}, {m} done"));
        }
    }
    progress.finish(&format!("benchmark: {} method(s), seeds {:?}", cfg.methods.len(), cfg.seeds));
    let first = cfg.protocol(cfg.seeds[0]);
    let protocol = format!(
        "{} steps of {} images for every method, seeds {:?}; per seed: {}",
        cfg.steps,
        cfg.batch_size,
        cfg.seeds,
        first.describe(&first.labelled(train)?, test)
    );
    Ok(Benchmark { config: cfg.clone(), rows, protocol })
}

#[cfg(test)]
mod tests {
    use crate::data::LabelledData;
    use super::*;

    /// Reference: `statistics.stdev` (Python), the sample standard deviation.
    /// ```python
    /// import statistics; statistics.mean([0.5, 0.6, 0.8]), statistics.stdev([0.5, 0.6, 0.8])
    /// # (0.6333333333333333, 0.15275252316519466)
    /// ```
    #[test]
    fn mean_std_is_the_sample_standard_deviation() {
        let (m, s) = mean_std(&[0.5, 0.6, 0.8]).unwrap();
        assert!((m - 0.633_333_333_333_333_3).abs() < 1e-12 && (s - 0.152_752_523_165_194_66).abs() < 1e-12);
        assert_eq!(mean_std(&[0.7]), Some((0.7, 0.0)));
        assert_eq!(mean_std(&[f64::NAN, 0.5, f64::NAN, 0.7]).map(|(m, _)| (m * 10.0).round()), Some(6.0));
        assert_eq!(mean_std(&[f64::NAN]), None);
        assert_eq!(pct(&[0.5, 0.6, 0.8]), "63.3 ± 15.3");
        // one run is not a spread: no "± 0.0"
        assert_eq!(pct(&[0.7, f64::NAN]), "70.0");
        assert_eq!(pct(&[]), "—");
        assert_eq!(mean_pm(&[1.5, 2.5], 1.0, true), "+2.0 ± 0.7");
        assert_eq!(mean_pm(&[-1.25], 1.0, true), "-1.2");
    }

    fn simclr_gain(b: &Benchmark) -> Vec<f64> {
        let (s, r) = (b.get("simclr").unwrap(), b.get(RANDOM_INIT).unwrap());
        s.knn.iter().zip(&r.knn).map(|(x, y)| 100.0 * (x - y)).collect()
    }

    /// Two methods, two seeds, on the embedded shapes: every row has one
    /// value per seed, the seeds differ, the same call repeats exactly, and
    /// colorization on grey images is refused by name.
    #[test]
    fn benchmark_runs_each_method_per_seed_and_repeats() {
        let data = crate::data::shapes(300, 0).unwrap();
        let (train, test) = (data.take(200).unwrap(), data.select(&(200..300).collect::<Vec<_>>()).unwrap());
        let cfg = BenchmarkConfig {
            methods: vec![MethodName::SimClr, MethodName::Rotation],
            seeds: vec![0, 1],
            steps: 3,
            batch_size: 16,
            encoder: Some(EncoderConfig::Cnn(crate::nn::CnnConfig { in_channels: 1, widths: vec![4, 8], batch_norm: false })),
            labels_per_class: 3,
            probe_steps: 20,
            scratch_steps: 5,
        };
        let b = benchmark(&cfg, &train, &test, &Device::Cpu).unwrap();
        let names: Vec<&str> = b.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["random init", "from scratch", "simclr", "rotation"]);
        assert_eq!(b.method_rows().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["simclr", "rotation"]);
        // gains: the method's accuracy minus the untrained encoder's, seed by seed
        let g = b.gains_table().to_string();
        let want: Vec<f64> = simclr_gain(&b);
        assert!(g.contains(&format!("{:+.1} ± {:.1}", mean_std(&want).unwrap().0, mean_std(&want).unwrap().1)), "{g}");
        for r in &b.rows {
            assert_eq!((r.linear.len(), r.knn.len(), r.seconds.len()), (2, 2, 2), "{}", r.name);
        }
        let simclr = b.get("simclr").unwrap();
        assert_ne!(simclr.knn[0], simclr.knn[1], "the seeds should differ");
        assert!(simclr.seconds.iter().all(|s| *s > 0.0));
        assert!(b.get("from scratch").unwrap().end_to_end.iter().all(|a| (0.0..=1.0).contains(a)));
        assert!(b.get("random init").unwrap().end_to_end.iter().all(|a| a.is_nan()));
        let again = benchmark(&cfg, &train, &test, &Device::Cpu).unwrap();
        assert_eq!(again.rows.iter().map(|r| r.knn.clone()).collect::<Vec<_>>(), b.rows.iter().map(|r| r.knn.clone()).collect::<Vec<_>>());
        let t = b.table().to_string();
        assert!(t.contains(&pct(&simclr.linear)) && t.contains("seeds [0, 1]"), "{t}");
        assert!(BenchmarkConfig::methods_for(1).len() == 11 && !BenchmarkConfig::methods_for(1).contains(&MethodName::Colorization));
        assert_eq!(BenchmarkConfig::methods_for(3).len(), 12);
        // MAE brings the untrained ViT as its own baseline
        let mae = BenchmarkConfig { methods: vec![MethodName::Mae], seeds: vec![0], steps: 2, ..cfg.clone() };
        let m = benchmark(&mae, &train, &test, &Device::Cpu).unwrap();
        assert_eq!(m.rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["random init", "random init (ViT)", "from scratch", "mae"]);
        assert_eq!(m.baseline_for("mae").unwrap().name, RANDOM_INIT_VIT);
        assert_ne!(m.rows[0].knn, m.rows[1].knn);
        let colour = BenchmarkConfig { methods: vec![MethodName::Colorization], ..cfg.clone() };
        assert!(benchmark(&colour, &train, &test, &Device::Cpu).unwrap_err().to_string().contains("colorization needs colour"));
        assert!(benchmark(&BenchmarkConfig { seeds: vec![], ..cfg }, &train, &test, &Device::Cpu).is_err());
    }
}
