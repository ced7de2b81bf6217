//! One few-label protocol for comparing representations side by side: the
//! same labelled subset, the same test split, a linear probe and a k-NN
//! classifier on frozen features, plus the two baselines every comparison
//! needs (a random-init encoder and the same encoder trained from scratch on
//! the labels alone).

use super::{features, fit_classifier, knn_accuracy, linear_probe, trivial_rates, ClassifierConfig, KnnConfig, ProbeConfig, TrivialRates};
use crate::data::{ImageDataset, LabelledData};
use crate::method::{EncoderConfig, PretrainConfig, Pretrainer};
use crate::nn::Params;
use crate::plot::{BarChart, Table};
use crate::rng::{derive_seed, SeededRng};
use candle_core::{Device, ModuleT, Result, Tensor};
use serde::{Deserialize, Serialize};

/// The protocol: how many labels, and how the classifiers are trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FewLabelProtocol {
    /// Labelled examples per class, drawn from the training split.
    pub labels_per_class: usize,
    /// The linear probe's settings.
    pub probe: ProbeConfig,
    /// The k-NN classifier's settings (`k` is capped at `labels_per_class`).
    pub knn: KnnConfig,
    /// End-to-end training of the from-scratch baseline.
    pub scratch: ClassifierConfig,
    /// Seed of the labelled subset, the probe and the baselines' initialisation.
    pub seed: u64,
}

impl FewLabelProtocol {
    /// `labels_per_class` labels, default classifiers, seed `seed`.
    pub fn new(labels_per_class: usize, seed: u64) -> Self {
        Self {
            labels_per_class,
            probe: ProbeConfig::default(),
            knn: KnnConfig::default(),
            scratch: ClassifierConfig::default(),
            seed,
        }
    }

    /// The labelled subset of `train` that every row of a comparison uses.
    pub fn labelled<L: LabelledData>(&self, train: &L) -> Result<L> {
        LabelledData::per_class_subset(train, self.labels_per_class, &mut self.label_draw())
    }

    /// The generator that draws the labelled subset ([`labelled`](Self::labelled));
    /// with [`ImageDataset::per_class_indices`] it gives the subset's indices.
    pub fn label_draw(&self) -> SeededRng {
        SeededRng::new(derive_seed(self.seed, "labels"))
    }

    /// The seed of the linear probe's head.
    pub fn probe_seed(&self) -> u64 {
        derive_seed(self.seed, "probe")
    }

    fn knn_config(&self) -> KnnConfig {
        KnnConfig { k: self.knn.k.min(self.labels_per_class.max(1)), ..self.knn.clone() }
    }

    /// Linear probe and k-NN accuracy of the frozen features `encode(x)`
    /// (images or series).
    pub fn evaluate<L: LabelledData>(
        &self,
        name: &str,
        encode: &dyn Fn(&Tensor) -> Result<Tensor>,
        labelled: &L,
        test: &L,
    ) -> Result<ComparisonRow> {
        if labelled.is_empty() || test.is_empty() {
            candle_core::bail!("{name}: the comparison needs labelled and test examples, got {} and {}", labelled.len(), test.len());
        }
        let in_batches = |x: &Tensor| super::map_batches(x, 500, "examples", encode);
        let (ftr, fte) = (in_batches(labelled.inputs())?, in_batches(test.inputs())?);
        let (linear, knn) = self.score_features(&ftr, labelled, &fte, test)?;
        Ok(ComparisonRow { name: name.into(), linear, knn, finetune: f64::NAN, note: String::new() })
    }

    /// Linear-probe and k-NN accuracy of features already computed:
    /// `ftr` of `labelled`, `fte` of `test`.
    pub(crate) fn score_features<L: LabelledData>(&self, ftr: &Tensor, labelled: &L, fte: &Tensor, test: &L) -> Result<(f64, f64)> {
        let classes = LabelledData::num_classes(labelled).max(LabelledData::num_classes(test));
        let (ytr, yte) = (labelled.labels(), test.labels());
        let probe = linear_probe(ftr, ytr, fte, yte, classes, &self.probe, self.probe_seed())?;
        let knn = knn_accuracy(ftr, ytr, fte, yte, classes, &self.knn_config())?;
        Ok((probe.accuracy, knn.accuracy))
    }

    /// [`evaluate`](Self::evaluate) on a pretraining run's encoder, plus
    /// [`finetune_run`](Self::finetune_run) when `finetune` is set; the note
    /// gives the steps and the pretext metric (mean of the last
    /// [`History::END_WINDOW`](crate::train::History::END_WINDOW) steps).
    pub fn evaluate_run(
        &self,
        name: &str,
        run: &Pretrainer,
        labelled: &ImageDataset,
        test: &ImageDataset,
        finetune: bool,
    ) -> Result<ComparisonRow> {
        let mut row = self.evaluate(name, &|x| run.features(x), labelled, test)?;
        if finetune {
            row.finetune = self.finetune_run(run, labelled, test, run.device())?;
        }
        row.note = run.history().note();
        Ok(row)
    }

    /// Pretrains `cfg` on `train` for its `steps` and evaluates the encoder
    /// like [`evaluate_run`](Self::evaluate_run) without fine-tuning: one row
    /// of an ablation or a sweep.
    pub fn pretrain_and_evaluate(
        &self,
        name: &str,
        cfg: PretrainConfig,
        train: &ImageDataset,
        labelled: &ImageDataset,
        test: &ImageDataset,
        dev: &Device,
    ) -> Result<ComparisonRow> {
        let steps = cfg.steps;
        let mut run = Pretrainer::new(cfg, train.image_shape()?, dev)?;
        run.train_for(steps, train)?;
        self.evaluate_run(name, &run, labelled, test, false)
    }

    /// A copy of `run`'s encoder fine-tuned end to end on the labelled subset
    /// with a fresh linear head: the from-scratch baseline's training
    /// (same steps, head, data order), only the initialisation differs. The
    /// run itself is not changed. Returns the test accuracy.
    pub fn finetune_run(&self, run: &Pretrainer, labelled: &ImageDataset, test: &ImageDataset, dev: &Device) -> Result<f64> {
        let (c, _, _) = labelled.image_shape()?;
        let params = Params::new(derive_seed(self.seed, "scratch"));
        let enc = run.config().encoder.with_in_channels(c).init(params.builder(dev).pp("enc"))?;
        train_end_to_end(&enc, enc.feature_dim(), &params, Some(run.params()), labelled, test, &self.scratch, dev, self.seed)
    }

    /// The encoder of `cfg` at initialisation, never trained.
    pub fn random_init(&self, cfg: &PretrainConfig, labelled: &ImageDataset, test: &ImageDataset, dev: &Device) -> Result<ComparisonRow> {
        let run = Pretrainer::new(cfg.clone(), labelled.image_shape()?, dev)?;
        let mut row = self.evaluate("random init", &|x| run.features(x), labelled, test)?;
        row.note = "the same encoder, untrained".into();
        Ok(row)
    }

    /// `encoder` trained end to end on the labelled subset only (the
    /// supervised baseline). Its accuracy goes in the `finetune` column (the
    /// same training the pretrained encoders get there), `knn` is k-NN on its
    /// trained features, `linear` is not measured (NaN).
    pub fn from_scratch(&self, encoder: &EncoderConfig, labelled: &ImageDataset, test: &ImageDataset, dev: &Device) -> Result<ComparisonRow> {
        let (enc, result) = self.train_from_scratch(encoder, labelled, test, dev)?;
        let accuracy = result.accuracy;
        let ftr = features(&enc, &labelled.images, dev, 500)?;
        let fte = features(&enc, &test.images, dev, 500)?;
        let classes = labelled.num_classes().max(test.num_classes());
        let knn = knn_accuracy(&ftr, &labelled.labels, &fte, &test.labels, classes, &self.knn_config())?;
        Ok(ComparisonRow {
            name: "from scratch".into(),
            linear: f64::NAN,
            knn: knn.accuracy,
            finetune: accuracy,
            note: format!("supervised on the labels only, {} steps end to end", self.scratch.steps),
        })
    }

    /// The from-scratch baseline's training itself: `encoder` (its input
    /// channels set from `labelled`) initialised from this protocol's seed
    /// and trained end to end with a linear head on `labelled` alone. Returns
    /// the trained encoder and the classifier's result (test and training
    /// accuracy). [`from_scratch`](Self::from_scratch) and `sslab supervised`
    /// both train through this, so they give the same numbers.
    pub fn train_from_scratch(
        &self,
        encoder: &EncoderConfig,
        labelled: &ImageDataset,
        test: &ImageDataset,
        dev: &Device,
    ) -> Result<(crate::method::Encoder, super::ClassifierResult)> {
        let (c, _, _) = labelled.image_shape()?;
        let params = Params::new(derive_seed(self.seed, "scratch"));
        let enc = encoder.with_in_channels(c).init(params.builder(dev).pp("enc"))?;
        let encode = |x: &Tensor, t: bool| enc.forward_t(x, t);
        let result =
            super::fit_classifier(&encode, params.named_trainable_vars(), enc.feature_dim(), labelled, test, &self.scratch, dev, derive_seed(self.seed, "scratch-head"))?;
        Ok((enc, result))
    }

    /// One line describing the protocol.
    pub fn describe<L: LabelledData>(&self, labelled: &L, test: &L) -> String {
        format!(
            "{} labels per class ({} labelled examples) from the training split, accuracy on {} held-out test examples; \
             linear probe: AdamW lr {}, {} full-batch steps on standardised frozen features; k-NN: k = {}, T = {}; \
             from scratch: {} steps of batch {}, lr {}; seed {}",
            self.labels_per_class,
            labelled.len(),
            test.len(),
            self.probe.lr,
            self.probe.steps,
            self.knn_config().k,
            self.knn.temperature,
            self.scratch.steps,
            self.scratch.batch_size,
            self.scratch.lr,
            self.seed
        )
    }
}

/// Trains `encoder` (whose parameters are in `params` under `enc.`) end
/// to end with a fresh linear head on `labelled` and returns its accuracy on
/// `test`: from `init`'s `enc.*` values when given (fine-tuning a copy;
/// `init` is not changed), from `params`' own initialisation otherwise (the
/// from-scratch baseline). The head and batch order come from `seed`, so the
/// two differ only in the initialisation. Every few-label protocol of the
/// crate (images, series, clips, text windows) trains through this.
#[allow(clippy::too_many_arguments)]
pub fn train_end_to_end<E: ModuleT, L: LabelledData>(
    encoder: &E,
    feature_dim: usize,
    params: &Params,
    init: Option<&Params>,
    labelled: &L,
    test: &L,
    cfg: &ClassifierConfig,
    dev: &Device,
    seed: u64,
) -> Result<f64> {
    if let Some(src) = init {
        params.load_from(src, "enc.")?;
    }
    let encode = |x: &Tensor, t: bool| encoder.forward_t(x, t);
    let r = fit_classifier(&encode, params.named_trainable_vars(), feature_dim, labelled, test, cfg, dev, derive_seed(seed, "scratch-head"))?;
    Ok(r.accuracy)
}

/// One representation's accuracies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// The representation.
    pub name: String,
    /// Linear-probe test accuracy (for "from scratch": its own head's).
    pub linear: f64,
    /// k-NN test accuracy.
    pub knn: f64,
    /// Test accuracy after fine-tuning the whole encoder on the labels
    /// ([`FewLabelProtocol::finetune_run`]); for "from scratch" the same
    /// training from a random initialisation; NaN when not measured.
    #[serde(default = "nan")]
    pub finetune: f64,
    /// What produced it (steps, pretext metric).
    pub note: String,
}

impl std::fmt::Display for ComparisonRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |v: f64| if v.is_nan() { "—".to_string() } else { format!("{:.1} %", 100.0 * v) };
        write!(f, "{}: linear probe {}, k-NN {}, fine-tuned {} ({})", self.name, pct(self.linear), pct(self.knn), pct(self.finetune), self.note)
    }
}

fn nan() -> f64 {
    f64::NAN
}

/// Rows of one protocol, shown as a table and a bar chart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The rows, in the order added.
    pub rows: Vec<ComparisonRow>,
    /// How every number was obtained.
    pub protocol: String,
    /// Uniform chance and the majority class of the test split, shown with the table.
    #[serde(default)]
    pub trivial: Option<TrivialRates>,
}

impl Comparison {
    /// An empty comparison under `protocol`.
    pub fn new(protocol: &str) -> Self {
        Self { rows: Vec::new(), protocol: protocol.into(), trivial: None }
    }

    /// The same comparison, its table captioned with `test`'s trivial rates
    /// (uniform chance and always answering its most frequent class): the
    /// numbers every accuracy in it must beat to mean anything.
    pub fn with_trivial_rates<L: LabelledData>(mut self, test: &L) -> Result<Self> {
        self.trivial = Some(trivial_rates(test.labels(), LabelledData::num_classes(test))?);
        Ok(self)
    }

    /// Adds (or replaces, by name) a row.
    pub fn push(&mut self, row: ComparisonRow) {
        match self.rows.iter_mut().find(|r| r.name == row.name) {
            Some(r) => *r = row,
            None => self.rows.push(row),
        }
    }

    /// The row called `name`.
    pub fn get(&self, name: &str) -> Option<&ComparisonRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The row with the best value of `column` ("linear", "knn" or
    /// "finetune") among those not named in `exclude` (NaN counts as lowest).
    pub fn best(&self, column: &str, exclude: &[&str]) -> Option<&ComparisonRow> {
        let key = |r: &ComparisonRow| {
            let v = match column {
                "knn" => r.knn,
                "finetune" => r.finetune,
                _ => r.linear,
            };
            if v.is_nan() { f64::NEG_INFINITY } else { v }
        };
        self.rows.iter().filter(|r| !exclude.contains(&r.name.as_str())).max_by(|a, b| key(a).total_cmp(&key(b)))
    }

    /// Test accuracies, one row per representation ("—" where not measured).
    pub fn table(&self) -> Table {
        let pct = |v: f64| if v.is_nan() { "—".to_string() } else { format!("{:.1} %", 100.0 * v) };
        let caption = TrivialRates::caption(&self.protocol, self.trivial.as_ref());
        let mut t = Table::new(&["representation", "linear probe", "k-NN", "fine-tuned", "how"]).caption(&caption);
        for r in &self.rows {
            t.push(&[r.name.clone(), pct(r.linear), pct(r.knn), pct(r.finetune), r.note.clone()]);
        }
        t
    }

    /// Linear-probe and k-NN accuracy per representation.
    pub fn plot(&self) -> BarChart {
        let names: Vec<&str> = self.rows.iter().map(|r| r.name.as_str()).collect();
        BarChart::new("Few-label accuracy (%)", &names)
            .y_label("test accuracy")
            .y_max(1.0)
            .series("linear probe", self.rows.iter().map(|r| r.linear).collect())
            .series("k-NN", self.rows.iter().map(|r| r.knn).collect())
            .series("fine-tuned", self.rows.iter().map(|r| r.finetune).collect())
    }

    /// Shows the table in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        self.table().evcxr_display()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::MethodName;

    #[test]
    fn rotation_pretraining_beats_random_init_under_the_protocol_and_rows_are_named() {
        let dev = Device::Cpu;
        let (train, test) = crate::data::load_images("shapes", 900, 0).unwrap();
        let proto = FewLabelProtocol { scratch: ClassifierConfig { steps: 40, ..Default::default() }, ..FewLabelProtocol::new(5, 0) };
        let labelled = proto.labelled(&train).unwrap();
        assert_eq!(labelled.len(), 5 * train.num_classes());
        let mut cfg = PretrainConfig::for_method(MethodName::Rotation);
        cfg.steps = 60;
        let mut cmp = Comparison::new(&proto.describe(&labelled, &test));
        cmp.push(proto.random_init(&cfg, &labelled, &test, &dev).unwrap());
        let mut run = Pretrainer::new(cfg, train.image_shape().unwrap(), &dev).unwrap();
        run.train_for(60, &train).unwrap();
        cmp.push(proto.evaluate_run("rotation", &run, &labelled, &test, true).unwrap());
        // fine-tuning works on a copy: the run's own parameters are unchanged
        let before = run.features(&test.images.narrow(0, 0, 4).unwrap()).unwrap();
        proto.finetune_run(&run, &labelled, &test, &dev).unwrap();
        let after = run.features(&test.images.narrow(0, 0, 4).unwrap()).unwrap();
        assert_eq!(before.to_vec2::<f32>().unwrap(), after.to_vec2::<f32>().unwrap());
        cmp.push(proto.from_scratch(&EncoderConfig::default(), &labelled, &test, &dev).unwrap());
        let chance = 1.0 / train.num_classes() as f64;
        for r in &cmp.rows {
            for v in [r.linear, r.knn, r.finetune] {
                assert!(v.is_nan() || (0.0..=1.0).contains(&v), "{r:?}");
            }
        }
        let (rot, rand) = (cmp.get("rotation").unwrap(), cmp.get("random init").unwrap());
        assert!(rot.linear > chance + 0.1, "rotation features should beat chance: {rot:?}");
        assert!(rot.note.contains("60 steps, rotation accuracy"), "{}", rot.note);
        assert!(rand.note.contains("untrained"));
        assert!(rand.to_string().starts_with("random init: linear probe ") && rand.to_string().contains("fine-tuned —"));
        assert!(rot.finetune.is_finite() && rand.finetune.is_nan());
        let scratch = cmp.get("from scratch").unwrap();
        assert!(scratch.linear.is_nan() && (0.0..=1.0).contains(&scratch.finetune), "{scratch:?}");
        assert_eq!(cmp.best("linear", &[]).unwrap().name, if rot.linear >= rand.linear { "rotation" } else { "random init" });
        // bars: linear 2 (scratch has none), k-NN 3, fine-tuned 2 (random init has none)
        assert_eq!(cmp.plot().to_svg().unwrap().matches("<rect class=\"bar\"").count(), 7);
        assert!(cmp.table().to_html().contains("k-NN") && !cmp.table().to_html().contains("trivial rates"));
        let cmp = cmp.with_trivial_rates(&test).unwrap();
        assert!(cmp.table().to_html().contains("; trivial rates on the"), "{}", cmp.table().to_html());
        let mut cmp = cmp;
        // replacing a row by name keeps one row
        cmp.push(ComparisonRow { name: "rotation".into(), linear: 0.5, knn: 0.5, finetune: f64::NAN, note: String::new() });
        assert_eq!(cmp.rows.len(), 3);
        // empty inputs are named
        let err = proto.evaluate("x", &|x| Ok(x.clone()), &labelled.take(0).unwrap(), &test).unwrap_err().to_string();
        assert!(err.contains("x: the comparison needs labelled and test examples"), "{err}");
    }

    /// A short SimCLR run evaluated in one call, an ablation run without
    /// cropping (its pipeline has no crop step), and the label curve's arms
    /// and budgets.
    #[test]
    fn pretrain_and_evaluate_ablation_and_label_curve() {
        let dev = Device::Cpu;
        let (train, test) = crate::data::load_images("shapes", 500, 0).unwrap();
        let mut cfg = crate::config::Profile::Smoke.contrastive();
        cfg.label_budgets = vec![1, 3];
        let proto = cfg.protocol_with(3);
        let labelled = proto.labelled(&train).unwrap();
        let mut short = cfg.short(MethodName::SimClr);
        short.steps = 3;
        let row = proto.pretrain_and_evaluate("simclr", short.clone(), &train, &labelled, &test, &dev).unwrap();
        assert!((0.0..=1.0).contains(&row.knn) && (0.0..=1.0).contains(&row.linear) && row.note.contains("3 steps"), "{row:?}");
        let no_crop = PretrainConfig { augment_without: vec![crate::method::AugmentStep::Crop], ..short.clone() };
        let shape = train.image_shape().unwrap();
        assert!(short.augmentation(shape).step_names().contains(&"RandomResizedCrop"));
        assert!(!no_crop.augmentation(shape).step_names().contains(&"RandomResizedCrop"));
        assert_eq!(no_crop.augmentation(shape).len() + 1, short.augmentation(shape).len());
        let mut run = Pretrainer::new(short, shape, &dev).unwrap();
        run.train_for(2, &train).unwrap();
        let curve = crate::eval::label_curve("SimCLR", &run, &train, &test, &cfg).unwrap();
        assert_eq!(curve.labels_per_class, vec![1, 3]);
        let names: Vec<&str> = curve.arms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["SimCLR + linear", "SimCLR + kNN", "random init + linear", "from scratch"]);
        assert!(curve.arms.iter().all(|(_, a)| a.len() == 2 && a.iter().all(|r| r.len() == 1 && (0.0..=1.0).contains(&r[0]))));
        let html = curve.table().to_html();
        assert!(html.contains("one labelled subset per budget") && !html.contains("±"), "{html}");
        assert!(crate::eval::label_curve("x", &run, &train, &test, &crate::config::ContrastiveConfig { label_budgets: vec![], ..cfg }).is_err());
    }
}
