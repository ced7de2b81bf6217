//! Section 24.1's experiment from the command line: rotation pretraining, then
//! accuracy against labels per class.
//!
//! `cargo run --release --example why_ssl -- [SPEC]` with SPEC `idx:mnist` (default) or `shapes`;
//! `SSLAB_PROFILE` picks the sizes.

use sslab::config::Profile;
use sslab::data::load_images;
use sslab::eval::label_efficiency;
use sslab::nn::{linear, CnnConfig, Params};
use sslab::rng::SeededRng;
use sslab::train::{pretrain_rotation, TrainConfig};
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> sslab::Result<()> {
    let spec = std::env::args().nth(1).unwrap_or_else(|| "idx:mnist".into());
    let cfg = Profile::current()?.why_ssl();
    let dev = sslab::device::device()?;
    println!("device: {dev}\nconfig: {cfg:?}");
    let (train, test) = load_images(&spec, cfg.train_images + cfg.test_images, cfg.seed)?;
    let (train, test) = (train.take(cfg.train_images)?, test.take(cfg.test_images)?);
    let cnn = CnnConfig::default();
    let params = Params::new(cfg.seed);
    let vb = params.builder(&dev.device);
    let enc = cnn.init(vb.pp("enc"))?;
    let head = linear(enc.feature_dim(), 4, vb.pp("rot_head"))?;
    let t = Instant::now();
    let tc = TrainConfig { steps: cfg.pretrain_steps, batch_size: cfg.pretrain_batch, lr: 1e-3, weight_decay: 0.0 };
    let h = pretrain_rotation(&enc, &head, &params, &train, &tc, &dev.device, &SeededRng::new(cfg.seed))?;
    println!("{} [{:.1} s]", h.summary(), t.elapsed().as_secs_f64());
    let t = Instant::now();
    let le = label_efficiency(&enc, &cnn, &train, &test, &cfg, &dev.device)?;
    println!("{}[{:.1} s]\n{}", le.table(), t.elapsed().as_secs_f64(), le.protocol);
    Ok(())
}
