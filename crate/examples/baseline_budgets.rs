//! Are the from-scratch baselines of sections 24.3 and 24.4 trained to
//! convergence? Each at its profile budget and at four times that budget, on
//! the labelled subsets the notebooks use (a converged baseline gains at most
//! about a point from 4× the steps; `scratch_budget.rs` does the same for the
//! image baseline):
//!
//! * 24.4: the 1-D CNN + linear head on GunPoint, 2 labels per class, on the
//!   notebook's 5 labelled subsets;
//! * 24.3: the character transformer + linear head on masked-character
//!   windows of tinyshakespeare, 10 labels per class, on the notebook's 3
//!   labelled subsets and its class-balanced test windows.
//!
//! `SSLAB_DATA_DIR=… cargo run --release --example baseline_budgets`

use sslab::config::{FewLabelExperiment, Profile};
use sslab::data::{balanced_subset, LabelledData, TokenizerKind};
use sslab::language::{char_classifier, LmObjective, MaskedCharWindows};
use sslab::rng::SeededRng;
use sslab::sequence::{series_classifier, SeriesTask};

fn report(what: &str, steps: usize, pairs: &[(f64, f64)]) {
    let n = pairs.len() as f64;
    let base = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let long = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    println!(
        "{what}: {steps} steps {:.1} % on average over {} labelled subsets; 4× ({} steps) {:.1} %, gain {:+.1} points",
        100.0 * base,
        pairs.len(),
        4 * steps,
        100.0 * long,
        100.0 * (long - base)
    );
}

fn main() -> sslab::Result<()> {
    let dev = sslab::device::device()?.device;

    let cfg = Profile::Cpu.sequence_pretext();
    let (train, test) = sslab::data::load_series(&cfg.data, 0, 0, cfg.seed)?;
    let rep = cfg.repeated(&train, &test)?;
    let mut pairs = Vec::new();
    for (p, labelled) in rep.protocols.iter().zip(&rep.labelled) {
        let mut accs = Vec::new();
        for steps in [p.scratch.steps, 4 * p.scratch.steps] {
            let c = sslab::eval::ClassifierConfig { steps, ..p.scratch.clone() };
            accs.push(series_classifier(None, &cfg.pretrain(SeriesTask::Masked).encoder, labelled, &test, &c, &dev, p.seed)?);
        }
        println!("  GunPoint, seed {}: {:.1} % → {:.1} %", p.seed, 100.0 * accs[0], 100.0 * accs[1]);
        pairs.push((accs[0], accs[1]));
    }
    report("24.4 from scratch (GunPoint, 2 labels per class)", cfg.few_labels.scratch_steps, &pairs);

    let cfg = Profile::Cpu.text_pretext();
    let chars = sslab::data::load_corpus(&cfg.data, TokenizerKind::Chars, 256, 0, cfg.seed)?;
    let windows = MaskedCharWindows::sample(&chars.ids, &chars.tokenizer, 32, cfg.probe_windows, &mut SeededRng::new(cfg.seed))?;
    let (wtrain, wpool) = windows.split_at(cfg.probe_train)?;
    let wtest = balanced_subset(&wpool, &mut SeededRng::new(cfg.seed))?;
    let rep = cfg.repeated(&wtrain, &wtest)?;
    let lm = cfg.lm(LmObjective::Masked);
    let mut pairs = Vec::new();
    for (p, labelled) in rep.protocols.iter().zip(&rep.labelled) {
        let mut accs = Vec::new();
        for steps in [p.scratch.steps, 4 * p.scratch.steps] {
            let c = sslab::eval::ClassifierConfig { steps, ..p.scratch.clone() };
            accs.push(char_classifier(None, &lm, chars.tokenizer.vocab_size(), labelled, &wtest, &c, &dev, p.seed)?);
        }
        println!("  characters, seed {}: {:.1} % → {:.1} % ({} test windows)", p.seed, 100.0 * accs[0], 100.0 * accs[1], wtest.len());
        pairs.push((accs[0], accs[1]));
    }
    report("24.3 from scratch (masked characters, 10 labels per class, balanced test)", cfg.few_labels.scratch_steps, &pairs);
    Ok(())
}
