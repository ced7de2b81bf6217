//! Every model of the crate trains through the one run type (`train::Run`),
//! so every one can be saved and resumed: `a + b` steps straight and `a`
//! steps, save, load, `b` steps give bit-identical losses and parameters.
//! A checkpoint of another kind is refused with its directory named.

use candle_core::{Device, Result};
use sslab::data::{synthetic_series, synthetic_text, split_sentences, TextCorpus, TokenizerKind};
use sslab::language::{nsp_batch, LanguageModel, LmConfig, LmObjective, NextSentence};
use sslab::nn::{Conv1dEncoderConfig, Params};
use sslab::rng::SeededRng;
use sslab::sequence::{FrameOrderConfig, FrameOrderPretrainer, SeriesPretrainConfig, SeriesPretrainer, SeriesTask, VideoDataset};
use sslab::train::History;
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sslab-resume-{name}-{}", std::process::id()))
}

/// The bits of every parameter, by name.
fn bits(p: &Params) -> Vec<(String, Vec<u32>)> {
    p.named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// Trains `straight` 4 steps, `first` 2 steps, saves `first`, loads it and
/// trains 2 more; requires the same history and parameters, bit for bit.
fn check_resume<M>(
    what: &str,
    mut straight: M,
    mut first: M,
    train: impl Fn(&mut M, usize) -> Result<()>,
    save: impl Fn(&M, &PathBuf) -> Result<()>,
    load: impl Fn(&PathBuf) -> Result<M>,
    view: impl Fn(&M) -> (&Params, &History),
) {
    train(&mut straight, 4).unwrap();
    train(&mut first, 2).unwrap();
    let d = dir(what);
    save(&first, &d).unwrap();
    let mut resumed = load(&d).unwrap();
    train(&mut resumed, 2).unwrap();
    let ((ps, hs), (pr, hr)) = (view(&straight), view(&resumed));
    assert_eq!(hr.loss.len(), 4, "{what}: the resumed history has every step");
    assert_eq!(hs.loss, hr.loss, "{what}: losses differ after resume");
    assert_eq!(hs.metric, hr.metric, "{what}: metrics differ after resume");
    assert!(bits(ps) == bits(pr), "{what}: parameters differ after resume");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn series_runs_resume_exactly() {
    let data = synthetic_series(64, 32, 0).unwrap();
    for task in SeriesTask::ALL {
        let cfg = SeriesPretrainConfig {
            encoder: Conv1dEncoderConfig { widths: vec![4, 8], ..Default::default() },
            batch_size: 8,
            ..SeriesPretrainConfig::for_task(task)
        };
        let new = || SeriesPretrainer::new(cfg.clone(), (1, 32), &Device::Cpu).unwrap();
        check_resume(
            &format!("series-{task}"),
            new(),
            new(),
            |m, k| m.train_for(k, &data).map(|_| ()),
            |m, d| m.save(d),
            |d| SeriesPretrainer::load(d, &Device::Cpu),
            |m| (m.params(), m.history()),
        );
    }
}

#[test]
fn frame_order_runs_resume_exactly() {
    let data = VideoDataset::moving_squares(32, 6, 8, 0).unwrap();
    let cfg = FrameOrderConfig { hidden: 8, dim: 4, batch_size: 8, ..Default::default() };
    let new = || FrameOrderPretrainer::new(&cfg, (1, 8, 8), &Device::Cpu).unwrap();
    check_resume(
        "frame-order",
        new(),
        new(),
        |m, k| m.train_for(k, &data).map(|_| ()),
        |m, d| m.save(d),
        |d| FrameOrderPretrainer::load(d, &Device::Cpu),
        |m| (m.params(), m.history()),
    );
}

fn tiny_lm(objective: LmObjective) -> LmConfig {
    LmConfig { context: 12, dim: 8, depth: 1, heads: 2, batch_size: 4, ..LmConfig::new(objective) }
}

#[test]
fn language_models_resume_exactly() {
    let corpus = TextCorpus::new(&synthetic_text(100, 0).unwrap(), TokenizerKind::Chars, 100, "synthetic").unwrap();
    let v = corpus.tokenizer.vocab_size();
    for objective in [LmObjective::Masked, LmObjective::Causal] {
        let new = || LanguageModel::new(tiny_lm(objective), v, &Device::Cpu).unwrap();
        check_resume(
            &format!("lm-{objective}"),
            new(),
            new(),
            |m, k| m.train_for(k, &corpus.ids).map(|_| ()),
            |m, d| m.save(d),
            |d| LanguageModel::load(d, &Device::Cpu),
            |m| (m.params(), m.history()),
        );
    }
}

#[test]
fn next_sentence_resumes_exactly_and_a_wrong_checkpoint_is_named() {
    let corpus = TextCorpus::new(&synthetic_text(200, 0).unwrap(), TokenizerKind::Words, 500, "synthetic").unwrap();
    let sentences: Vec<Vec<u32>> = split_sentences(&synthetic_text(200, 0).unwrap()).iter().map(|s| corpus.tokenizer.encode(s)).collect();
    let pairs = nsp_batch(&sentences, 16, &mut SeededRng::new(0), &Device::Cpu).unwrap();
    let lm = LmConfig { context: 16, ..tiny_lm(LmObjective::Masked) };
    let v = corpus.tokenizer.vocab_size();
    let new = || NextSentence::new(&lm, v, &Device::Cpu).unwrap();
    check_resume(
        "nsp",
        new(),
        new(),
        |m, k| m.train_for(k, &pairs).map(|_| ()),
        |m, d| m.save(d),
        |d| NextSentence::load(d, &Device::Cpu),
        |m| (m.params(), m.history()),
    );
    // a language-model checkpoint is not a next-sentence one, nor a series one
    let d = dir("wrong-kind");
    LanguageModel::new(tiny_lm(LmObjective::Causal), v, &Device::Cpu).unwrap().save(&d).unwrap();
    let e = NextSentence::load(&d, &Device::Cpu).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("not an sslab next-sentence checkpoint") && e.contains(&d.display().to_string()), "{e}");
    let e = SeriesPretrainer::load(&d, &Device::Cpu).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("not an sslab series pretraining checkpoint"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
