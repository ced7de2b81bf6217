//! Times one rotation-pretraining step of the default encoder (forward, backward, AdamW).
//!
//! `cargo run --release --example step_time -- [BATCH]`

use candle_core::{Device, Module};
use sslab::loss::cross_entropy;
use sslab::nn::{linear, CnnConfig, Params};
use sslab::pretext::rotation_batch;
use std::time::Instant;

fn main() -> sslab::Result<()> {
    let b: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let dev = Device::Cpu;
    let data = sslab::data::shapes(b, 0)?;
    let params = Params::new(0);
    let vb = params.builder(&dev);
    let enc = CnnConfig::default().init(vb.pp("enc"))?;
    let head = linear(enc.feature_dim(), 4, vb.pp("head"))?;
    let (x, y) = rotation_batch(&data.images)?;
    for _ in 0..3 {
        let t = Instant::now();
        let f = enc.forward(&x)?;
        let t_fwd = t.elapsed().as_secs_f64();
        let loss = cross_entropy(&head.forward(&f)?, &y)?;
        let _g = loss.backward()?;
        println!("batch {} (x4 rotations): forward {:.3} s, forward+backward {:.3} s", b, t_fwd, t.elapsed().as_secs_f64());
    }
    Ok(())
}
