//! BYOL's k-NN gain over a random encoder against its step budget, over
//! several seeds: the measurement behind `ContrastiveConfig::byol_steps`.
//!
//! `SSLAB_DATA_DIR=… cargo run --release --example byol_steps -- [STEPS…]`
//! (default 280 600; five seeds each, section 25.3's data, batch and
//! protocol in the `cpu` profile, about 20–45 s per run on 2 cores).

use sslab::method::MethodName;
use sslab::prelude::*;

fn main() -> sslab::Result<()> {
    let cfg = Profile::Cpu.contrastive();
    let dev = sslab::device::device()?;
    let (train, test) = sslab::data::load_images("idx:mnist", cfg.train_images + cfg.test_images, cfg.seed)?;
    let (train, test) = (train.take(cfg.train_images)?, test.take(cfg.test_images)?);
    let (shape, proto) = (train.image_shape()?, cfg.protocol());
    let labelled = proto.labelled(&train)?;
    let budgets: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    for steps in if budgets.is_empty() { vec![280, 600] } else { budgets } {
        let mut gains = Vec::new();
        for seed in 0..5 {
            let run_cfg = PretrainConfig { steps, seed, ..cfg.pretrain_at(MethodName::Byol, cfg.short_batch_size) };
            let mut run = Pretrainer::new(run_cfg.clone(), shape, &dev.device)?;
            run.train_for(steps, &train)?;
            let random = proto.random_init(&run_cfg, &labelled, &test, &dev.device)?;
            let byol = proto.evaluate_run("BYOL", &run, &labelled, &test, false)?;
            let gain = 100.0 * (byol.knn - random.knn);
            println!("{steps} steps, seed {seed}: k-NN {:.1} % (random init {:.1} %, {gain:+.1} points)", 100.0 * byol.knn, 100.0 * random.knn);
            gains.push(gain);
        }
        let mean = gains.iter().sum::<f64>() / gains.len() as f64;
        let (lo, hi) = gains.iter().fold((f64::MAX, f64::MIN), |(a, b), &g| (a.min(g), b.max(g)));
        println!("{steps} steps: k-NN gain {mean:+.1} points on average ({lo:+.1} to {hi:+.1})");
    }
    Ok(())
}
