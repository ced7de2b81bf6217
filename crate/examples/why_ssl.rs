//! Section 24.1's experiment from the command line: SimCLR and rotation
//! pretraining, then accuracy against labels per class with the random-init
//! and from-scratch baselines, and the verdicts over the labelled subsets.
//!
//! `cargo run --release --example why_ssl -- [SPEC]` with SPEC `idx:mnist` (default) or `shapes`;
//! `SSLAB_PROFILE` picks the sizes.

use sslab::config::Profile;
use sslab::data::{load_images, LabelledData};
use sslab::eval::label_efficiency;
use sslab::method::{EncoderConfig, Pretrainer};
use sslab::nn::{linear, CnnConfig, Params};
use sslab::rng::SeededRng;
use sslab::train::{pretrain_rotation, TrainConfig};
use candle_core::ModuleT;
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
    let shape = train.image_shape()?;
    let mut simclr = Pretrainer::new(cfg.simclr(), shape, &dev.device)?;
    println!("{} [{:.1} s]", simclr.train_for(cfg.simclr_steps, &train)?.summary(), t.elapsed().as_secs_f64());
    let random = Pretrainer::new(cfg.simclr(), shape, &dev.device)?;
    let t = Instant::now();
    let le = label_efficiency(
        &[("SimCLR", &|x| simclr.features(x)), ("rotation", &|x| enc.forward_t(x, false)), ("random init", &|x| random.features(x))],
        &EncoderConfig::default(),
        &train,
        &test,
        &cfg,
        &dev.device,
    )?;
    println!("{}[{:.1} s]\n{}", le.table(), t.elapsed().as_secs_f64(), le.protocol);
    for b in ["random init + linear", "from scratch"] {
        for (k, v) in le.verdicts("SimCLR + linear", b)? {
            println!("{k:>3} labels per class: {v}");
        }
    }
    Ok(())
}
