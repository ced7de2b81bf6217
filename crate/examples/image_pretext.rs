//! Section 24.2's comparison outside Jupyter: every image pretext task on
//! MNIST, then one few-label protocol (`SSLAB_PROFILE` sets the sizes).
//!
//! `cargo run --release --example image_pretext`
use sslab::method::MethodName;
use sslab::prelude::*;
use std::time::Instant;

fn main() -> sslab::Result<()> {
    let cfg = Profile::current()?.image_pretext();
    let dev = sslab::device::device()?.device;
    let (train, test) = sslab::data::load_images("idx:mnist", cfg.train_images + cfg.test_images, cfg.seed)?;
    let (train, test) = (train.take(cfg.train_images)?, test.take(cfg.test_images)?);
    let proto = cfg.protocol();
    let labelled = proto.labelled(&train)?;
    let mut cmp = Comparison::new(&proto.describe(&labelled, &test));
    let t = Instant::now();
    cmp.push(proto.from_scratch(&PretrainConfig::for_method(MethodName::Rotation).encoder, &labelled, &test, &dev)?);
    println!("scratch {:.1}s", t.elapsed().as_secs_f64());
    cmp.push(proto.random_init(&cfg.pretrain(MethodName::Rotation), &labelled, &test, &dev)?);
    for m in [MethodName::Rotation, MethodName::Jigsaw, MethodName::Context, MethodName::Mae] {
        let t = Instant::now();
        let mut run = Pretrainer::new(cfg.pretrain(m), train.image_shape()?, &dev)?;
        run.train_for(run.config().steps, &train)?;
        cmp.push(proto.evaluate_run(m.as_str(), &run, &labelled, &test, true)?);
        println!("{m} {:.1}s", t.elapsed().as_secs_f64());
    }
    let tinted = (sslab::data::tint_by_class(&train)?, sslab::data::tint_by_class(&test)?);
    let t = Instant::now();
    let mut run = Pretrainer::new(cfg.pretrain(MethodName::Colorization), tinted.0.image_shape()?, &dev)?;
    run.train_for(run.config().steps, &tinted.0)?;
    let tl = proto.labelled(&tinted.0)?;
    cmp.push(proto.evaluate_run("colorization", &run, &tl, &tinted.1, false)?);
    println!("colorization {:.1}s", t.elapsed().as_secs_f64());
    println!("{}", cmp.table());
    Ok(())
}
