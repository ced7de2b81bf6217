//! The `sslab` command line: pretraining, probing and supervised baselines
//! for runs longer than a notebook cell, using the same code as the notebooks.
//!
//! ```text
//! sslab pretrain --method simclr --data idx:mnist --steps 300 --out runs/simclr
//! sslab probe --checkpoint runs/simclr --data idx:mnist --labels-per-class 10
//! sslab probe --random-init --method simclr --data idx:mnist --labels-per-class 10
//! sslab supervised --data idx:mnist --labels-per-class 10
//! ```
//!
//! `probe` and `supervised` print one JSON line last, e.g.
//! `{"accuracy":0.912,"protocol":{…}}`; `pretrain` prints progress on
//! stderr and a JSON summary last. Bad input ends with a one-line
//! `error: …` on stderr and exit code 1 (2 for bad command-line syntax).

use crate::data::{load_images, load_pretraining_images, write_example_folder, ImageDataset, LabelledData};
use crate::eval::{fit_classifier, knn_accuracy, linear_probe, ClassifierConfig, FewLabelProtocol, KnnConfig, ProbeConfig};
use crate::method::{EncoderConfig, MethodName, PretrainConfig, Pretrainer};
use crate::rng::{derive_seed, SeededRng};
use candle_core::{Result, Tensor};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Self-supervised pretraining, probing and supervised baselines.
#[derive(Parser, Debug)]
#[command(name = "sslab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pretrain an encoder with a self-supervised method and save a checkpoint.
    Pretrain(PretrainArgs),
    /// Evaluate a representation with few labels (linear probe, k-NN or fine-tuning).
    Probe(ProbeArgs),
    /// Train the same encoder from scratch on the labelled examples only.
    Supervised(SupervisedArgs),
    /// Time the reference training step (compare with bench/torch_reference.py).
    Bench(BenchArgs),
    /// Run every loss and layer on the GPU and on the CPU and compare them (needs a CUDA build).
    CheckDevice(CheckDeviceArgs),
    /// Write a small folder of colour images in class subfolders (a stand-in for your own photos).
    ExampleImages(ExampleImagesArgs),
}

#[derive(Parser, Debug)]
struct ExampleImagesArgs {
    /// The folder to write (`DIR/<class>/NNN.png`); it must be new, empty, or written by this command before.
    #[arg(long)]
    out: PathBuf,
    /// Images per class (four classes: circle, cross, square, triangle).
    #[arg(long, default_value_t = 100)]
    per_class: usize,
    /// Side of each square image in pixels.
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Seed of the glyphs and their colours.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Parser, Debug)]
struct CheckDeviceArgs {
    /// Seed of the inputs and parameters.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Parser, Debug)]
struct BenchArgs {
    /// cnn or vit.
    #[arg(long, value_enum, default_value_t = BenchModelArg::Cnn)]
    model: BenchModelArg,
    /// Images per view.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BenchModelArg {
    /// Three convolutions with max-pooling.
    Cnn,
    /// A tiny ViT.
    Vit,
}

#[derive(Parser, Debug)]
struct PretrainArgs {
    /// rotation, simclr, … (see `MethodName`)
    #[arg(long, value_parser = parse_method)]
    method: MethodName,
    /// Data spec: shapes, idx:DIR, …
    #[arg(long)]
    data: String,
    /// Optimiser steps (default: the method's recommended budget).
    #[arg(long)]
    steps: Option<usize>,
    /// Images per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Softmax temperature of the contrastive losses.
    #[arg(long)]
    temperature: Option<f64>,
    /// Channel widths of the CNN encoder, e.g. 16,32,64.
    #[arg(long, value_delimiter = ',')]
    widths: Option<Vec<usize>>,
    /// The one seed behind initialisation, data order and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint directory.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run saved in --out up to --steps.
    #[arg(long)]
    resume: bool,
    /// Print progress every N steps (and save a checkpoint every 4N).
    #[arg(long, default_value_t = 25)]
    log_every: usize,
    /// Number of embedded images for `shapes`.
    #[arg(long, default_value_t = 10_000)]
    examples: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Classifier {
    /// Logistic regression on frozen, standardised features.
    Linear,
    /// Weighted k-nearest neighbours (cosine, k = min(20, labels per class), T = 0.07) on frozen features.
    Knn,
    /// Encoder and linear head trained end to end.
    Finetune,
}

#[derive(Parser, Debug)]
struct ProbeArgs {
    /// A directory written by `sslab pretrain`.
    #[arg(long, conflicts_with = "random_init", required_unless_present = "random_init")]
    checkpoint: Option<PathBuf>,
    /// Probe a randomly initialised encoder of --method instead (a control).
    #[arg(long, requires = "method")]
    random_init: bool,
    /// The method whose (untrained) encoder --random-init builds.
    #[arg(long, value_parser = parse_method)]
    method: Option<MethodName>,
    /// Data spec: shapes, idx:DIR, …
    #[arg(long)]
    data: String,
    /// Labelled training examples per class.
    #[arg(long)]
    labels_per_class: usize,
    /// How to turn the representation into a classifier.
    #[arg(long, value_enum, default_value_t = Classifier::Linear)]
    classifier: Classifier,
    /// Seed of the labelled subset and of the classifier.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of embedded images for `shapes`.
    #[arg(long, default_value_t = 10_000)]
    examples: usize,
}

#[derive(Parser, Debug)]
struct SupervisedArgs {
    /// Data spec: shapes, idx:DIR, …
    #[arg(long)]
    data: String,
    /// Labelled training examples per class.
    #[arg(long)]
    labels_per_class: usize,
    /// Optimiser steps (default: the few-label protocol's converged budget, 1,000).
    #[arg(long, default_value_t = ClassifierConfig::CONVERGED_STEPS)]
    steps: usize,
    /// Seed of the labelled subset, initialisation and data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of embedded images for `shapes`.
    #[arg(long, default_value_t = 10_000)]
    examples: usize,
}

fn parse_method(s: &str) -> std::result::Result<MethodName, String> {
    s.parse::<MethodName>().map_err(|e| one_line(&e))
}

/// The first line of an error (Candle appends backtraces on later lines).
fn one_line(e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or_default().trim().to_string()
}

/// Runs the command line on the process arguments and returns the exit code.
pub fn main() -> i32 {
    // A panic would be a bug; still, never show a backtrace to the user.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error ({info}); please report it");
    }));
    crate::device::tune_allocator();
    run_args(std::env::args_os())
}

/// Runs the command line on `args` (the first is the program name) and
/// returns the exit code: 0 on success, 1 on a run-time error, 2 on bad syntax.
pub fn run_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let result = std::panic::catch_unwind(|| match cli.command {
        Command::Pretrain(a) => pretrain(a),
        Command::Probe(a) => probe(a),
        Command::Supervised(a) => supervised(a),
        Command::Bench(a) => bench(a),
        Command::CheckDevice(a) => check_device(a),
        Command::ExampleImages(a) => example_images(a),
    });
    match result {
        Ok(Ok(line)) => {
            println!("{line}");
            0
        }
        Ok(Err(e)) => {
            eprintln!("error: {}", one_line(&e));
            1
        }
        Err(_) => 1,
    }
}

fn load(spec: &str, examples: usize, seed: u64) -> Result<(ImageDataset, ImageDataset)> {
    load_images(spec, examples, seed)
}

fn example_images(a: ExampleImagesArgs) -> Result<String> {
    if a.per_class < 5 || a.size == 0 {
        candle_core::bail!("--per-class must be at least 5 (every fifth image is a test image) and --size positive");
    }
    let dir = write_example_folder(&a.out, a.per_class, a.size, a.seed)?;
    Ok(json!({"out": dir.display().to_string(), "classes": crate::data::Attribute::Shape.values(), "per_class": a.per_class, "size": a.size}).to_string())
}

fn pretrain(a: PretrainArgs) -> Result<String> {
    let dev = crate::device::device()?.device;
    let train = load_pretraining_images(&a.data, a.examples, a.seed)?;
    let exists = a.out.join("config.json").exists();
    let mut run = if a.resume {
        if !exists {
            candle_core::bail!("--resume: {} holds no checkpoint", a.out.display());
        }
        let run = Pretrainer::load(&a.out, &dev)?;
        if run.config().method != a.method {
            candle_core::bail!(
                "--resume: {} is a {} run, not {}",
                a.out.display(),
                run.config().method,
                a.method
            );
        }
        run
    } else {
        if exists {
            candle_core::bail!(
                "{} already holds a checkpoint; pass --resume to continue it or choose another --out",
                a.out.display()
            );
        }
        let mut cfg = PretrainConfig::for_method(a.method);
        cfg.seed = a.seed;
        cfg.data = a.data.clone();
        if let Some(s) = a.steps {
            cfg.steps = s;
            cfg.warmup_steps = cfg.warmup_steps.min(s);
        }
        if let Some(b) = a.batch_size {
            cfg.batch_size = b;
        }
        if let Some(lr) = a.lr {
            cfg.optimizer.lr = lr;
        }
        if let Some(t) = a.temperature {
            cfg.temperature = t;
        }
        if let Some(w) = a.widths.clone() {
            match &mut cfg.encoder {
                EncoderConfig::Cnn(c) => c.widths = w,
                other => candle_core::bail!("--widths applies to the CNN encoder; {} uses {other:?}", a.method),
            }
        }
        Pretrainer::new(cfg, train.image_shape()?, &dev)?
    };
    let target = a.steps.unwrap_or(run.config().steps);
    let start = Instant::now();
    eprintln!(
        "{} pretraining on {} ({} images), {} steps of {}, seed {} → {}",
        run.config().method,
        a.data,
        train.len(),
        target,
        run.config().batch_size,
        run.config().seed,
        a.out.display()
    );
    let every = a.log_every.max(1);
    let mut since_save = 0;
    // in a terminal one line redrawn in place; otherwise a log line every `every` steps
    let mut progress = crate::train::Progress::start(&format!("{} pretraining", run.config().method), target.saturating_sub(run.step()));
    let terminal = progress.mode() == crate::train::ProgressMode::Terminal;
    while run.step() < target {
        let n = every.min(target - run.step());
        let h = run.train_for(n, &train)?.clone();
        for _ in 0..n {
            progress.tick(|| crate::train::progress_detail(&h));
        }
        if !terminal {
            let tail = n.min(h.len());
            let loss = h.loss[h.len() - tail..].iter().sum::<f64>() / tail as f64;
            let metric = h.metric[h.len() - tail..].iter().sum::<f64>() / tail as f64;
            eprintln!(
                "step {:>5}/{target}  loss {loss:.4}  {} {metric:.3}  ({:.0} s)",
                h.len(),
                h.metric_name,
                start.elapsed().as_secs_f64()
            );
        }
        since_save += n;
        if since_save >= 4 * every {
            run.save(&a.out)?;
            since_save = 0;
        }
    }
    run.save(&a.out)?;
    progress.finish(&run.history().summary());
    let h = run.history();
    Ok(json!({
        "method": run.config().method,
        "steps": run.step(),
        "final_loss": h.loss.last(),
        "final_metric": h.metric.last(),
        "metric": h.metric_name,
        "seconds": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "out": a.out.display().to_string(),
    })
    .to_string())
}

fn probe(a: ProbeArgs) -> Result<String> {
    let dev = crate::device::device()?.device;
    let (train, test) = load(&a.data, a.examples, a.seed)?;
    let (run, representation) = match (&a.checkpoint, a.method) {
        (Some(dir), _) => {
            let run = Pretrainer::load(dir, &dev)?;
            let shape = train.image_shape()?;
            if run.image_shape() != shape {
                let (c, h, w) = run.image_shape();
                candle_core::bail!(
                    "{} was pretrained on images of shape (C, H, W) = ({c}, {h}, {w}) ({}), but {} gives {shape:?}; probe it on data of that shape{}",
                    dir.display(),
                    if run.config().data.is_empty() { "data not recorded" } else { run.config().data.as_str() },
                    a.data,
                    if c == shape.0 && h == w { format!(" (e.g. `?size={h}` after the data spec)") } else { String::new() }
                );
            }
            let what = format!("{} pretrained for {} steps ({})", run.config().method, run.step(), dir.display());
            (run, what)
        }
        (None, Some(m)) => {
            let mut cfg = PretrainConfig::for_method(m);
            cfg.seed = a.seed;
            let run = Pretrainer::new(cfg, train.image_shape()?, &dev)?;
            (run, format!("random initialisation of the {m} encoder (no training)"))
        }
        (None, None) => candle_core::bail!("probe needs --checkpoint DIR or --random-init --method M"),
    };
    if train.num_classes() < 2 {
        candle_core::bail!("{} has no labels (one class, {:?}); probing needs labelled data, e.g. a folder with one subfolder per class", a.data, train.class_names[0]);
    }
    let labelled = train.per_class_subset(a.labels_per_class, &mut SeededRng::new(derive_seed(a.seed, "labels")))?;
    let start = Instant::now();
    let (accuracy, details) = match a.classifier {
        Classifier::Linear => {
            let cfg = ProbeConfig::default();
            let r = linear_probe(
                &run.features(&labelled.images)?,
                &labelled.labels,
                &run.features(&test.images)?,
                &test.labels,
                train.num_classes(),
                &cfg,
                derive_seed(a.seed, "probe"),
            )?;
            (r.accuracy, json!({"steps": cfg.steps, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "description": r.protocol}))
        }
        Classifier::Knn => {
            // more neighbours than examples per class only adds votes from other classes
            let cfg = KnnConfig { k: KnnConfig::default().k.min(a.labels_per_class.max(1)), ..KnnConfig::default() };
            let r = knn_accuracy(
                &run.features(&labelled.images)?,
                &labelled.labels,
                &run.features(&test.images)?,
                &test.labels,
                train.num_classes(),
                &cfg,
            )?;
            (r.accuracy, serde_json::to_value(&r.protocol).map_err(|e| candle_core::Error::Msg(e.to_string()))?)
        }
        Classifier::Finetune => {
            let cfg = ClassifierConfig::default();
            let method = run.method();
            let encode = |x: &Tensor, t: bool| method.encode(x, t);
            let vars: Vec<_> =
                run.params().named_trainable_vars().into_iter().filter(|(n, _)| n.starts_with("enc.")).collect();
            let r = fit_classifier(&encode, vars, method.feature_dim(), &labelled, &test, &cfg, &dev, derive_seed(a.seed, "probe"))?;
            (r.accuracy, json!({"steps": cfg.steps, "lr": cfg.lr, "batch_size": cfg.batch_size, "description": r.protocol}))
        }
    };
    Ok(json!({
        "accuracy": accuracy,
        "protocol": {
            "representation": representation,
            "classifier": format!("{:?}", a.classifier).to_lowercase(),
            "labels_per_class": a.labels_per_class,
            "train_examples": labelled.len(),
            "train_split": format!("{} labelled per class from the training split of {}", a.labels_per_class, a.data),
            "test_examples": test.len(),
            "test_split": format!("held-out test split of {}", a.data),
            "seed": a.seed,
            "seconds": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            "classifier_settings": details,
        }
    })
    .to_string())
}

fn supervised(a: SupervisedArgs) -> Result<String> {
    let dev = crate::device::device()?.device;
    let (train, test) = load(&a.data, a.examples, a.seed)?;
    // the few-label protocol's from-scratch baseline (FewLabelProtocol::from_scratch): same training, same numbers
    let proto = FewLabelProtocol { scratch: ClassifierConfig { steps: a.steps, ..ClassifierConfig::default() }, ..FewLabelProtocol::new(a.labels_per_class, a.seed) };
    let labelled = proto.labelled(&train)?;
    let (c, _, _) = train.image_shape()?;
    let enc_cfg = EncoderConfig::default().with_in_channels(c);
    let cfg = proto.scratch.clone();
    let start = Instant::now();
    let (_, r) = proto.train_from_scratch(&enc_cfg, &labelled, &test, &dev)?;
    Ok(json!({
        "accuracy": r.accuracy,
        "protocol": {
            "representation": "encoder trained from scratch on the labelled examples only",
            "encoder": enc_cfg,
            "classifier": "linear head, trained end to end with the encoder",
            "labels_per_class": a.labels_per_class,
            "train_examples": labelled.len(),
            "train_accuracy": r.train_accuracy,
            "test_examples": test.len(),
            "test_split": format!("held-out test split of {}", a.data),
            "steps": cfg.steps,
            "batch_size": cfg.batch_size.min(labelled.len()),
            "lr": cfg.lr,
            "weight_decay": cfg.weight_decay,
            "seed": a.seed,
            "seconds": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        }
    })
    .to_string())
}

/// Prints the table on stderr; the JSON line lists the failures. Exits 1
/// when a case is over its tolerance or the device is the CPU.
fn check_device(a: CheckDeviceArgs) -> Result<String> {
    let choice = crate::device::device()?;
    if choice.device.is_cpu() {
        candle_core::bail!("check-device compares a GPU with the CPU, but the device is {choice}");
    }
    let check = crate::device_check::compare_devices(&candle_core::Device::Cpu, &choice.device, a.seed)?;
    eprintln!("{}", check.table());
    let failed: Vec<&str> = check.failures().iter().map(|r| r.name).collect();
    if !failed.is_empty() {
        candle_core::bail!("{} of {} cases differ between {} and {}: {}", failed.len(), check.rows.len(), check.other, check.reference, failed.join(", "));
    }
    let worst = check.rows.iter().map(|r| r.value_err.max(r.grad_err)).fold(0f64, f64::max);
    Ok(json!({"device": check.other, "cases": check.rows.len(), "failed": 0, "worst_error": worst}).to_string())
}

fn bench(a: BenchArgs) -> Result<String> {
    let dev = crate::device::device()?.device;
    let model = match a.model {
        BenchModelArg::Cnn => crate::bench::BenchModel::Cnn,
        BenchModelArg::Vit => crate::bench::BenchModel::Vit,
    };
    let cfg = crate::bench::BenchConfig { model, batch_size: a.batch_size, steps: a.steps, warmup: a.warmup, seed: 0 };
    let r = crate::bench::run_bench(&cfg, &dev)?;
    serde_json::to_string(&r).map_err(|e| candle_core::Error::Msg(e.to_string()))
}
