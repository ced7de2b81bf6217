//! The label-efficiency sweep of section 24.1: accuracy against the number
//! of labels per class, for a pretrained encoder and for training from scratch.

use super::{classifier_accuracy, features, linear_probe, ProbeConfig};
use crate::config::{ContrastiveConfig, WhySslConfig};
use crate::method::Pretrainer;
use crate::data::ImageDataset;
use crate::nn::{linear, CnnConfig, Params, SmallCnn};
use crate::plot::{LinePlot, Table};
use crate::rng::SeededRng;
use crate::train::{train_supervised, TrainConfig};
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
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, v.sqrt())
}

impl LabelEfficiency {
    /// Mean accuracy of `arm` at each label budget.
    pub fn means(&self, arm: &str) -> Option<Vec<f64>> {
        let (_, accs) = self.arms.iter().find(|(n, _)| n == arm)?;
        Some(accs.iter().map(|a| mean_std(a).0).collect())
    }

    /// Mean test accuracy ± std over repeats, one row per label budget (the
    /// accuracy alone when every budget has one labelled subset).
    pub fn table(&self) -> Table {
        let mut header = vec!["labels per class".to_string()];
        header.extend(self.arms.iter().map(|(n, _)| n.clone()));
        let single = self.arms.iter().all(|(_, accs)| accs.iter().all(|a| a.len() <= 1));
        let caption = if single { "test accuracy (one labelled subset per budget)" } else { "test accuracy (mean ± std over labelled subsets)" };
        let mut t = Table::new(&header).caption(caption);
        for (i, k) in self.labels_per_class.iter().enumerate() {
            let mut row = vec![k.to_string()];
            for (_, accs) in &self.arms {
                let (m, s) = mean_std(&accs[i]);
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
/// [`ContrastiveConfig::label_budgets`] labels per class, a linear probe and
/// k-NN on `run`'s frozen features (`"{name} + linear"`, `"{name} + kNN"`),
/// and the same encoder trained end to end on those labels alone
/// (`"from scratch"`), all on the labelled subset that
/// [`ContrastiveConfig::protocol_with`] draws and measured on `test`.
pub fn label_curve(name: &str, run: &Pretrainer, train: &ImageDataset, test: &ImageDataset, cfg: &ContrastiveConfig) -> Result<LabelEfficiency> {
    if cfg.label_budgets.is_empty() {
        candle_core::bail!("label_curve needs at least one label budget, got {:?}", cfg.label_budgets);
    }
    let names = [format!("{name} + linear"), format!("{name} + kNN"), "from scratch".to_string()];
    let mut arms: Vec<(String, Vec<Vec<f64>>)> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
    for &k in &cfg.label_budgets {
        let proto = cfg.protocol_with(k);
        let labelled = proto.labelled(train)?;
        let row = proto.evaluate_run(name, run, &labelled, test, false)?;
        let scratch = proto.from_scratch(&run.config().encoder, &labelled, test, run.device())?;
        for (arm, acc) in arms.iter_mut().zip([row.linear, row.knn, scratch.finetune]) {
            arm.1.push(vec![acc]);
        }
    }
    let protocol = format!(
        "{} unlabelled training images for pretraining, {} test images; at each budget one labelled subset per class; \
         linear probe ({} full-batch AdamW steps on frozen standardised features) and k-NN on the frozen encoder; \
         from scratch: the same encoder + linear head trained end to end on the labels only ({} steps); seed {}",
        train.len(),
        test.len(),
        cfg.probe_steps,
        cfg.scratch_steps,
        cfg.seed
    );
    Ok(LabelEfficiency { labels_per_class: cfg.label_budgets.clone(), arms, protocol })
}

/// Runs the sweep: for each label budget and repeat, a labelled subset of
/// `train` is drawn; on it
///
/// * `"rotation-pretrained + linear"`: a linear probe on the frozen `pretrained` encoder,
/// * `"random-init + linear"`: a linear probe on a frozen, untrained encoder of the same shape,
/// * `"from scratch"`: the same architecture trained end to end on the subset only,
///
/// all measured on `test`. Sizes come from `cfg`.
pub fn label_efficiency(
    pretrained: &SmallCnn,
    cnn: &CnnConfig,
    train: &ImageDataset,
    test: &ImageDataset,
    cfg: &WhySslConfig,
    dev: &Device,
) -> Result<LabelEfficiency> {
    if cfg.labels_per_class.is_empty() || cfg.repeats == 0 {
        candle_core::bail!("label_efficiency needs at least one label budget and one repeat, got {cfg:?}");
    }
    let rng = SeededRng::new(cfg.seed).fork("label-efficiency");
    let nc = train.num_classes();
    let pre_train = features(pretrained, &train.images, dev, 500)?;
    let pre_test = features(pretrained, &test.images, dev, 500)?;
    let random_params = Params::new(rng.fork("random-init").seed());
    let random = cnn.init(random_params.builder(dev).pp("enc"))?;
    let rnd_train = features(&random, &train.images, dev, 500)?;
    let rnd_test = features(&random, &test.images, dev, 500)?;
    let probe = ProbeConfig { steps: cfg.probe_steps, ..Default::default() };
    let mut arms: Vec<(String, Vec<Vec<f64>>)> = ["rotation-pretrained + linear", "random-init + linear", "from scratch"]
        .iter()
        .map(|n| (n.to_string(), vec![Vec::new(); cfg.labels_per_class.len()]))
        .collect();
    for (i, &k) in cfg.labels_per_class.iter().enumerate() {
        for r in 0..cfg.repeats {
            let mut draw = rng.fork(&format!("subset-{k}-{r}"));
            let idx = train.per_class_indices(k, &mut draw)?;
            let subset = train.select(&idx)?;
            let pick = |f: &Tensor| -> Result<Tensor> {
                let ids = Tensor::from_vec(idx.iter().map(|&j| j as u32).collect::<Vec<_>>(), idx.len(), f.device())?;
                f.index_select(&ids, 0)
            };
            let seed = draw.fork("probe").seed();
            let a = linear_probe(&pick(&pre_train)?, &subset.labels, &pre_test, &test.labels, nc, &probe, seed)?;
            arms[0].1[i].push(a.accuracy);
            let b = linear_probe(&pick(&rnd_train)?, &subset.labels, &rnd_test, &test.labels, nc, &probe, seed)?;
            arms[1].1[i].push(b.accuracy);
            let params = Params::new(draw.fork("scratch-init").seed());
            let vb = params.builder(dev);
            let enc = cnn.init(vb.pp("enc"))?;
            let head = linear(enc.feature_dim(), nc, vb.pp("head"))?;
            let tc = TrainConfig { steps: cfg.scratch_steps, batch_size: 64, lr: 1e-3, weight_decay: 0.0 };
            train_supervised(&enc, &head, &params, &subset, &tc, dev, &draw)?;
            arms[2].1[i].push(classifier_accuracy(&enc, &head, test, dev)?);
        }
    }
    let protocol = format!(
        "train split {} images (pretraining used them without labels), test split {} images; \
         for each budget {} labelled subset(s) drawn per class from the train split; \
         probes: linear on frozen standardised features, {} full-batch AdamW steps; \
         from scratch: same encoder + linear head, {} AdamW steps (lr 1e-3, batch ≤ 64); seed {}",
        train.len(),
        test.len(),
        cfg.repeats,
        cfg.probe_steps,
        cfg.scratch_steps,
        cfg.seed
    );
    Ok(LabelEfficiency { labels_per_class: cfg.labels_per_class.clone(), arms, protocol })
}
