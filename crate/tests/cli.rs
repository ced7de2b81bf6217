//! End-to-end tests of the `sslab` binary: happy paths print one JSON line
//! last; bad input prints a one-line `error:` and exits non-zero, never a
//! panic or a backtrace.

use std::path::PathBuf;
use std::process::Command;

fn sslab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sslab"))
        .args(args)
        .env("SSLAB_DEVICE", "cpu")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the sslab binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sslab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Exit code 1 and a single `error:` line naming `needle`.
fn assert_clean_error(args: &[&str], needle: &str) {
    let (code, _, err) = sslab(args);
    assert_eq!(code, 1, "{args:?}: exit code {code}, stderr {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(last.starts_with("error: ") && last.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace") && !err.contains("   0: "), "{args:?}: {err}");
}

#[test]
fn pretrain_probe_and_supervised_print_json_last() {
    let out = scratch("run");
    let o = out.to_str().unwrap();
    let common = ["--data", "shapes", "--examples", "80"];
    let (code, stdout, err) =
        sslab(&[&["pretrain", "--method", "rotation", "--steps", "2", "--batch-size", "8", "--out", o], &common[..]].concat());
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["steps"], 2);
    assert!(out.join("config.json").exists() && out.join("model.safetensors").exists());
    // an existing checkpoint is never overwritten silently
    assert_clean_error(&[&["pretrain", "--method", "rotation", "--steps", "2", "--out", o], &common[..]].concat(), "--resume");
    // … but can be resumed
    let (code, stdout, err) = sslab(
        &[&["pretrain", "--method", "rotation", "--steps", "3", "--batch-size", "8", "--resume", "--out", o], &common[..]].concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("\"steps\":3"), "{stdout}");
    for classifier in ["linear", "knn"] {
        let (code, stdout, err) = sslab(
            &[&["probe", "--checkpoint", o, "--labels-per-class", "2", "--classifier", classifier], &common[..]].concat(),
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        let acc = v["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{v}");
        assert_eq!(v["protocol"]["labels_per_class"], 2);
        assert_eq!(v["protocol"]["train_examples"], 20);
        assert_eq!(v["protocol"]["classifier"], classifier);
    }
    let (code, stdout, err) = sslab(&[&["supervised", "--labels-per-class", "2", "--steps", "2"], &common[..]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["protocol"]["steps"], 2);
    // the same number as the notebooks' few-label protocol (FewLabelProtocol::from_scratch)
    let (code, stdout, err) = sslab(&[&["supervised", "--labels-per-class", "2", "--steps", "3", "--seed", "1"], &common[..]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let (train, test) = sslab::data::load_images("shapes", 80, 1).unwrap();
    let proto = sslab::eval::FewLabelProtocol {
        scratch: sslab::eval::ClassifierConfig { steps: 3, ..Default::default() },
        ..sslab::eval::FewLabelProtocol::new(2, 1)
    };
    let labelled = proto.labelled(&train).unwrap();
    let row = proto.from_scratch(&sslab::method::EncoderConfig::default(), &labelled, &test, &candle_core::Device::Cpu).unwrap();
    assert_eq!(v["accuracy"].as_f64().unwrap(), row.finetune, "{v}");
    // the benchmark step, tiny
    let (code, stdout, err) = sslab(&["bench", "--model", "cnn", "--batch-size", "2", "--steps", "1", "--warmup", "0"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["framework"], "sslab");
    assert!(v["step_s_median"].as_f64().unwrap() > 0.0 && v["first_loss"].as_f64().unwrap().is_finite());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn bad_input_gets_a_one_line_error() {
    // unknown method: rejected while parsing the command line (exit 2)
    let (code, _, err) = sslab(&["pretrain", "--method", "simclear", "--data", "shapes", "--out", "/tmp/x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown method \"simclear\"") && err.contains("simclr") && !err.contains("panicked"), "{err}");
    // missing data directory
    assert_clean_error(
        &["probe", "--random-init", "--method", "simclr", "--data", "idx:/no/such/dir", "--labels-per-class", "1"],
        "/no/such/dir",
    );
    // unknown data spec
    assert_clean_error(&["supervised", "--data", "csv:foo", "--labels-per-class", "1"], "csv:foo");
    // more labels per class than the data has
    assert_clean_error(&["supervised", "--data", "shapes", "--examples", "30", "--labels-per-class", "50"], "has only");
    // corrupt IDX file
    let dir = scratch("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), b"not an idx file").unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), b"nor this").unwrap();
    let spec = format!("idx:{}", dir.display());
    assert_clean_error(&["supervised", "--data", &spec, "--labels-per-class", "1"], "t10k-images-idx3-ubyte");
    // a checkpoint directory that is not one
    assert_clean_error(&["probe", "--checkpoint", dir.to_str().unwrap(), "--data", "shapes", "--labels-per-class", "1"], "config.json");
    // --resume without a checkpoint
    let out = scratch("none");
    assert_clean_error(
        &["pretrain", "--method", "rotation", "--data", "shapes", "--examples", "40", "--resume", "--out", out.to_str().unwrap()],
        "holds no checkpoint",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Progress in a terminal: one line on stderr redrawn in place (`\r`), ending
/// as the run's summary line; when stderr is not a terminal (as here, unless
/// `SSLAB_PROGRESS=terminal` asks for it) a log line every `--log-every`
/// steps instead. stdout keeps its one JSON line.
#[test]
fn progress_goes_to_stderr_in_a_terminal_and_is_off_otherwise() {
    let run = |mode: Option<&str>, out: &PathBuf| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sslab"));
        cmd.args(["pretrain", "--method", "rotation", "--steps", "3", "--batch-size", "8", "--data", "shapes", "--examples", "80", "--out"])
            .arg(out)
            .env("SSLAB_DEVICE", "cpu")
            .env_remove("SSLAB_KERNEL")
            .env_remove("SSLAB_PROGRESS");
        if let Some(m) = mode {
            cmd.env("SSLAB_PROGRESS", m);
        }
        let o = cmd.output().expect("the sslab binary runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (stdout, stderr) = run(Some("terminal"), &scratch("progress-on"));
    assert!(stderr.contains("\r\x1b[2Krotation pretraining: 3 steps, loss "), "{stderr:?}");
    assert!(!stderr.contains("step     3/3"), "in a terminal the redrawn line replaces the log lines: {stderr:?}");
    assert!(serde_json::from_str::<serde_json::Value>(stdout.lines().last().unwrap()).is_ok(), "{stdout}");
    let (stdout, stderr) = run(None, &scratch("progress-off"));
    assert!(!stderr.contains('\r') && !stderr.contains("pretraining: 3 steps"), "no terminal, no progress line: {stderr:?}");
    assert!(stderr.contains("step     3/3  loss "), "the log lines stay when stderr is not a terminal: {stderr:?}");
    assert!(!stdout.contains("pretraining:") && serde_json::from_str::<serde_json::Value>(stdout.lines().last().unwrap()).is_ok(), "{stdout}");
}

/// The checkpoint of a short pretraining run on `threads` threads.
fn checkpoint_on(threads: usize, method: &str) -> Vec<u8> {
    let out = scratch(&format!("threads-{method}-{threads}"));
    let o = out.to_str().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_sslab"))
        .args(["pretrain", "--method", method, "--steps", "3", "--batch-size", "24", "--out", o])
        .args(["--data", "shapes", "--examples", "96", "--seed", "5"])
        .env("SSLAB_DEVICE", "cpu")
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .expect("the sslab binary runs");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    bytes
}

#[test]
fn the_same_seed_gives_bit_identical_weights_on_any_thread_count() {
    // SimCLR: convolutions, batch norm, linear layers; MAE: a ViT (layer norm, attention, GELU)
    for method in ["simclr", "mae"] {
        let one = checkpoint_on(1, method);
        for threads in [2, 3] {
            assert!(one == checkpoint_on(threads, method), "{method}: 1 and {threads} threads give different weights");
        }
    }
}

/// Your own images end to end: a folder of colour PNGs in class subfolders
/// (written by `sslab example-images`) pretrains and probes with one command
/// each; a checkpoint is refused on images of another size, and an
/// unlabelled folder cannot be probed.
#[test]
fn a_folder_of_images_pretrains_and_probes() {
    let images = scratch("images");
    let out = scratch("images-run");
    let (i, o) = (images.to_str().unwrap(), out.to_str().unwrap());
    let (code, stdout, err) = sslab(&["example-images", "--out", i, "--per-class", "10", "--size", "24"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("\"per_class\":10"), "{stdout}");
    assert!(images.join("triangle").join("000.png").is_file());
    let spec = format!("folder:{i}?size=16");
    let (code, stdout, err) = sslab(&["pretrain", "--method", "simclr", "--data", &spec, "--steps", "3", "--batch-size", "16", "--out", o]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("\"steps\":3"), "{stdout}");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["config"]["data"].as_str(), config["image_shape"].clone()), (Some(spec.as_str()), serde_json::json!([3, 16, 16])), "the checkpoint records the data spec and image size");
    let (code, stdout, err) = sslab(&["probe", "--checkpoint", o, "--data", &spec, "--labels-per-class", "2"]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!((0.0..=1.0).contains(&r["accuracy"].as_f64().unwrap()), "{stdout}");
    assert_clean_error(&["probe", "--checkpoint", o, "--data", &format!("folder:{i}?size=24"), "--labels-per-class", "2"], "?size=16");
    let flat = scratch("flat-images");
    std::fs::create_dir_all(&flat).unwrap();
    for (k, entry) in std::fs::read_dir(images.join("triangle")).unwrap().enumerate() {
        std::fs::copy(entry.unwrap().path(), flat.join(format!("{k}.png"))).unwrap();
    }
    let flat_spec = format!("folder:{}?size=16", flat.display());
    assert_clean_error(&["probe", "--checkpoint", o, "--data", &flat_spec, "--labels-per-class", "1"], "has no labels");
    assert_clean_error(&["pretrain", "--method", "simclr", "--data", &format!("folder:{i}/nope"), "--out", o], "does not exist");
    assert_clean_error(&["pretrain", "--method", "simclr", "--data", &format!("folder:{i}?size=big"), "--out", o], "size must be");
    for d in [images, out, flat] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
