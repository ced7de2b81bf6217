//! Is the from-scratch baseline trained to convergence? Its test accuracy at
//! a step budget and at four times that budget, over three seeds (each a new
//! labelled subset, initialisation and data order): the measurement behind
//! `ClassifierConfig::CONVERGED_STEPS`. A converged baseline gains at most
//! about a point from 4× the steps.
//!
//! `SSLAB_DATA_DIR=… cargo run --release --example scratch_budget -- [DATA] [LABELS_PER_CLASS] [STEPS…]`
//! (default `idx:mnist 10` and the default budget; the few-label protocol of
//! the notebooks: the same CNN + linear head trained end to end on the labels
//! only, 8,000 training / 2,000 test images).

use sslab::data::LabelledData;
use sslab::eval::{ClassifierConfig, FewLabelProtocol};
use sslab::method::EncoderConfig;

fn main() -> sslab::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = args.first().map_or("idx:mnist", String::as_str);
    let lpc: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut budgets: Vec<usize> = args.iter().skip(2).filter_map(|a| a.parse().ok()).collect();
    if budgets.is_empty() {
        budgets.push(ClassifierConfig::CONVERGED_STEPS);
    }
    let dev = sslab::device::device()?;
    let (train, test) = sslab::data::load_images(data, 10_000, 0)?;
    let (train, test) = (train.take(8000)?, test.take(2000)?);
    println!("{data}: {} train / {} test images, {lpc} labels per class", train.len(), test.len());
    for steps in budgets {
        let mut pairs = Vec::new();
        for seed in 0..3 {
            let mut accs = Vec::new();
            for s in [steps, 4 * steps] {
                let proto = FewLabelProtocol { scratch: ClassifierConfig { steps: s, ..ClassifierConfig::default() }, ..FewLabelProtocol::new(lpc, seed) };
                let labelled = proto.labelled(&train)?;
                let t = std::time::Instant::now();
                let row = proto.from_scratch(&EncoderConfig::default(), &labelled, &test, &dev.device)?;
                println!("  seed {seed}, {s} steps: {:.1} % ({:.1} s)", 100.0 * row.finetune, t.elapsed().as_secs_f64());
                accs.push(row.finetune);
            }
            pairs.push((accs[0], accs[1]));
        }
        let n = pairs.len() as f64;
        let base = pairs.iter().map(|p| p.0).sum::<f64>() / n;
        let long = pairs.iter().map(|p| p.1).sum::<f64>() / n;
        println!("{steps} steps: {:.1} % on average; 4× ({} steps): {:.1} %, gain {:+.1} points", 100.0 * base, 4 * steps, 100.0 * long, 100.0 * (long - base));
    }
    Ok(())
}
