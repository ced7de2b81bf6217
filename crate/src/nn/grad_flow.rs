//! Gradient-flow check for every model and head of [`crate::nn`]: after one
//! forward and backward pass, every trainable parameter has a non-zero gradient.

use super::*;
use crate::rng::SeededRng;
use candle_core::{DType, Device, ModuleT, Tensor};

/// `Σ R ⊙ tanh(out)` with a fixed random `R`: non-linear, so batch-normalised outputs still pass gradient.
fn loss(out: &Tensor) -> Tensor {
    let r = SeededRng::new(99).randn(out.dims(), 1.0, out.device()).unwrap();
    (out.tanh().unwrap() * r).unwrap().sum_all().unwrap()
}

/// Names of trainable parameters whose gradient is missing or all zero.
fn dead(name: &str, p: &Params, out: &Tensor) -> Vec<String> {
    let g = loss(out).backward().unwrap();
    assert!(!p.named_trainable_vars().is_empty(), "{name}: no parameters");
    p.named_trainable_vars()
        .into_iter()
        .filter(|(_, v)| match g.get(v.as_tensor()) {
            Some(t) => t.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() == 0.0,
            None => true,
        })
        .map(|(n, _)| format!("{name}: {n}"))
        .collect()
}

#[test]
fn nn_grad_flow_every_model_and_head_trains_every_parameter() {
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(5);
    let img = rng.randn(&[4, 2, 8, 8], 1.0, &dev).unwrap();
    let series = rng.randn(&[4, 2, 12], 1.0, &dev).unwrap();
    let feats = rng.randn(&[4, 6], 1.0, &dev).unwrap();
    let mut bad = Vec::new();
    let mut run = |name: &str, f: &dyn Fn(&Params) -> Tensor| {
        let p = Params::new(1);
        let out = f(&p);
        bad.extend(dead(name, &p, &out));
    };
    run("small_cnn", &|p| {
        let m = CnnConfig { in_channels: 2, widths: vec![4, 8], batch_norm: false }.init(p.builder(&dev)).unwrap();
        m.forward(&img).unwrap()
    });
    run("small_cnn_bn", &|p| {
        let m = CnnConfig { in_channels: 2, widths: vec![4, 8], batch_norm: true }.init(p.builder(&dev)).unwrap();
        m.forward_t(&img, true).unwrap()
    });
    run("resnet", &|p| {
        let m = ResNetConfig { in_channels: 2, widths: vec![4, 8], blocks: vec![1, 1] }.init(p.builder(&dev)).unwrap();
        m.forward_t(&img, true).unwrap()
    });
    let vcfg = VitConfig { image_size: 8, patch_size: 4, in_channels: 2, dim: 8, depth: 2, heads: 2, mlp_ratio: 2.0, cls_token: true };
    run("vit_cls", &|p| vcfg.init(p.builder(&dev)).unwrap().forward(&img).unwrap());
    run("vit_mean", &|p| VitConfig { cls_token: false, ..vcfg.clone() }.init(p.builder(&dev)).unwrap().forward(&img).unwrap());
    run("vit_mae", &|p| {
        let enc = vcfg.init(p.builder(&dev).pp("enc")).unwrap();
        let dec = MaeDecoderConfig::for_encoder(&vcfg, 8, 1, 2).init(p.builder(&dev).pp("dec")).unwrap();
        let keep = random_keep(&mut SeededRng::new(3), 4, 4, 2, &dev).unwrap();
        dec.forward(&enc.forward_visible(&img, &keep).unwrap(), &keep).unwrap()
    });
    let tcfg = TextEncoderConfig { vocab_size: 7, max_len: 5, dim: 8, depth: 2, heads: 2, mlp_ratio: 2.0, causal: true };
    let ids = Tensor::new(&[[0u32, 1, 2, 3, 4], [5, 6, 0, 1, 2]], &dev).unwrap();
    run("text_tied_lm", &|p| {
        let enc = tcfg.init(p.builder(&dev).pp("enc")).unwrap();
        LmHead::tied(&enc, p.builder(&dev).pp("lm")).unwrap().forward(&enc.forward(&ids).unwrap()).unwrap()
    });
    run("text_untied_lm", &|p| {
        let enc = tcfg.init(p.builder(&dev).pp("enc")).unwrap();
        // every token id appears, so every embedding row is used
        let all = Tensor::new(&[[0u32, 1, 2, 3], [4, 5, 6, 0]], &dev).unwrap();
        LmHead::untied(8, 7, p.builder(&dev).pp("lm")).unwrap().forward(&enc.forward(&all).unwrap()).unwrap()
    });
    run("text_pooled", &|p| {
        let enc = TextEncoderConfig { causal: false, ..tcfg.clone() }.init(p.builder(&dev)).unwrap();
        let pad = Tensor::new(&[[1f32, 1., 1., 1., 0.], [1., 1., 1., 1., 1.]], &dev).unwrap();
        enc.pooled(&ids, Some(&pad), Pooling::Mean).unwrap()
    });
    for bn in [true, false] {
        run(if bn { "conv1d_bn" } else { "conv1d" }, &|p| {
            let m = Conv1dEncoderConfig { in_channels: 2, widths: vec![4, 6], kernel_size: 3, batch_norm: bn };
            m.init(p.builder(&dev)).unwrap().forward_t(&series, true).unwrap()
        });
    }
    run("seq_transformer", &|p| {
        let m = SeqTransformerConfig { in_channels: 2, max_len: 12, dim: 8, depth: 1, heads: 2, mlp_ratio: 2.0 };
        m.init(p.builder(&dev)).unwrap().forward(&series).unwrap()
    });
    type Ctor = fn(usize, usize, usize, candle_nn::VarBuilder) -> candle_core::Result<ProjectionHead>;
    let heads: [(&str, Ctor); 8] = [
        ("simclr", simclr_projection_head),
        ("byol_proj", byol_projection_head),
        ("byol_pred", byol_prediction_head),
        ("simsiam_proj", simsiam_projection_head),
        ("simsiam_pred", simsiam_prediction_head),
        ("barlow", barlow_twins_projection_head),
        ("vicreg", vicreg_projection_head),
        ("moco", moco_projection_head),
    ];
    for (name, ctor) in heads {
        run(name, &|p| ctor(6, 10, 4, p.builder(&dev)).unwrap().forward_t(&feats, true).unwrap());
    }
    run("dino", &|p| dino_head(6, 10, 4, 12, true, p.builder(&dev)).unwrap().forward_t(&feats, true).unwrap());
    run("layer_norm", &|p| LayerNorm::new(6, 1e-5, p.builder(&dev)).unwrap().forward(&feats).unwrap());
    assert!(bad.is_empty(), "parameters without gradient:\n{}", bad.join("\n"));
}

#[test]
fn nn_grad_flow_check_reports_unused_parameters() {
    // negative control: the check above must be able to fail
    let dev = Device::Cpu;
    let p = Params::new(0);
    let used = linear(3, 2, p.builder(&dev).pp("used")).unwrap();
    let _unused = linear(3, 2, p.builder(&dev).pp("unused")).unwrap();
    let out = used.forward(&Tensor::ones((2, 3), DType::F32, &dev).unwrap()).unwrap();
    assert_eq!(dead("control", &p, &out), vec!["control: unused.bias", "control: unused.weight"]);
}
