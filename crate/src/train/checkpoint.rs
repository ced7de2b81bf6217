//! Checkpoints: tensors as safetensors files plus the run's JSON config, in
//! one directory, written so that a crash never leaves a half-written
//! checkpoint behind.
//!
//! Layout of a checkpoint directory:
//!
//! ```text
//! DIR/config.json          the run's configuration, seed and progress (JSON)
//! DIR/<group>.safetensors  one file per tensor group: "model", "optimizer", "state", …
//! ```
//!
//! Saving writes everything into `DIR.partial`, then renames it to `DIR`
//! (the previous checkpoint, if any, is kept as `DIR.previous` until the
//! rename succeeded).

use super::Optim;
use crate::nn::Params;
use candle_core::{Device, Result, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// The directory it came from.
    pub dir: PathBuf,
    /// The contents of `config.json`.
    pub config: serde_json::Value,
    /// Tensor groups by name (file stem), each a map from tensor name to tensor.
    pub groups: BTreeMap<String, HashMap<String, Tensor>>,
}

impl Checkpoint {
    /// The tensors of `group`, or an error naming the checkpoint and the group.
    pub fn group(&self, group: &str) -> Result<&HashMap<String, Tensor>> {
        self.groups.get(group).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "checkpoint {}: no {group}.safetensors (has {:?})",
                self.dir.display(),
                self.groups.keys().collect::<Vec<_>>()
            ))
        })
    }

    /// Sets `params` from the tensors of `group` ([`Params::set_from`]: all
    /// checked before any is set); an error names the checkpoint's file and
    /// the parameter.
    pub fn restore_params(&self, params: &Params, group: &str) -> Result<()> {
        params.set_from(self.group(group)?, &format!("checkpoint {}: {group}.safetensors", self.dir.display()))
    }

    /// Restores `opt` from the group `optimizer` and `config.json`'s
    /// `"optimizer_steps"` (0 when absent), as a run's `save` writes them.
    pub fn restore_optimizer(&self, opt: &mut Optim) -> Result<()> {
        opt.load_state(self.group("optimizer")?.clone(), self.config["optimizer_steps"].as_u64().unwrap_or(0) as usize)
    }

    /// An error naming the checkpoint and what is wrong with its `config.json`.
    pub fn config_error(&self, what: &str) -> candle_core::Error {
        candle_core::Error::Msg(format!("checkpoint {}: {what} in config.json", self.dir.display()))
    }

    /// Checks that `config.json`'s `"format"` is `format`; otherwise an error
    /// saying the directory is not `kind` (e.g. "an sslab CLIP checkpoint").
    pub fn expect_format(&self, format: &str, kind: &str) -> Result<()> {
        if self.config["format"] == format {
            return Ok(());
        }
        Err(candle_core::Error::Msg(format!(
            "checkpoint {}: not {kind} (config.json has no format \"{format}\")",
            self.dir.display()
        )))
    }

    /// The entry `key` of `config.json`, deserialised, or an error naming the
    /// checkpoint and the entry.
    pub fn entry<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        if self.config.get(key).is_none() {
            return Err(self.config_error(&format!("no \"{key}\"")));
        }
        serde_json::from_value(self.config[key].clone()).map_err(|e| self.config_error(&format!("bad \"{key}\" ({e})")))
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("{what} {}: {e}", path.display()))
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Saves `config` and tensor `groups` into the directory `dir`, atomically.
///
/// Group names become file names (`model` → `model.safetensors`) and must be
/// plain words. Tensors are copied to the CPU first.
pub fn save_checkpoint(dir: impl AsRef<Path>, config: &serde_json::Value, groups: &[(&str, &HashMap<String, Tensor>)]) -> Result<()> {
    let dir = dir.as_ref();
    if dir.as_os_str().is_empty() {
        candle_core::bail!("save_checkpoint: empty output directory name");
    }
    for (g, _) in groups {
        if g.is_empty() || !g.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') || *g == "config" {
            candle_core::bail!("save_checkpoint: bad group name {g:?} (letters, digits, '_' and '-'; not \"config\")");
        }
    }
    let partial = with_suffix(dir, ".partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| io_err("cannot remove stale", &partial, e))?;
    }
    std::fs::create_dir_all(&partial).map_err(|e| io_err("cannot create checkpoint directory", &partial, e))?;
    let write = || -> Result<()> {
        let json = serde_json::to_string_pretty(config).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let cfg_path = partial.join("config.json");
        std::fs::write(&cfg_path, json).map_err(|e| io_err("cannot write", &cfg_path, e))?;
        for (g, tensors) in groups {
            let cpu: HashMap<String, Tensor> =
                tensors.iter().map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?))).collect::<Result<_>>()?;
            let path = partial.join(format!("{g}.safetensors"));
            candle_core::safetensors::save(&cpu, &path)
                .map_err(|e| candle_core::Error::Msg(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    let previous = with_suffix(dir, ".previous");
    if dir.exists() {
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(|e| io_err("cannot remove", &previous, e))?;
        }
        std::fs::rename(dir, &previous).map_err(|e| io_err("cannot move the old checkpoint aside:", dir, e))?;
    }
    std::fs::rename(&partial, dir).map_err(|e| io_err("cannot move the new checkpoint into place:", dir, e))?;
    if previous.exists() {
        let _ = std::fs::remove_dir_all(&previous);
    }
    Ok(())
}

/// Loads a checkpoint written by [`save_checkpoint`], tensors onto `dev`.
pub fn load_checkpoint(dir: impl AsRef<Path>, dev: &Device) -> Result<Checkpoint> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        candle_core::bail!("checkpoint {}: no such directory", dir.display());
    }
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| candle_core::Error::Msg(format!("checkpoint {}: cannot read config.json ({e}); is this a checkpoint directory?", dir.display())))?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| candle_core::Error::Msg(format!("{}: not valid JSON: {e}", cfg_path.display())))?;
    let mut groups = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_err("cannot list", dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| io_err("cannot list", dir, e))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let tensors = candle_core::safetensors::load(&path, dev)
            .map_err(|e| candle_core::Error::Msg(format!("{}: not a readable safetensors file: {e}", path.display())))?;
        groups.insert(stem, tensors);
    }
    Ok(Checkpoint { dir: dir.to_path_buf(), config, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sslab-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn checkpoint_round_trips_and_replaces_atomically() {
        let dev = Device::Cpu;
        let dir = scratch("rt");
        let t: HashMap<String, Tensor> = [("w".to_string(), Tensor::new(&[1f32, 2., 3.], &dev).unwrap())].into();
        let cfg = serde_json::json!({"method": "simclr", "step": 5});
        save_checkpoint(&dir, &cfg, &[("model", &t)]).unwrap();
        let ck = load_checkpoint(&dir, &dev).unwrap();
        assert_eq!(ck.config["step"], 5);
        assert_eq!(ck.group("model").unwrap()["w"].to_vec1::<f32>().unwrap(), vec![1., 2., 3.]);
        assert!(ck.group("optimizer").unwrap_err().to_string().contains("no optimizer.safetensors"));
        // overwrite: the new one replaces the old, no leftovers
        let cfg2 = serde_json::json!({"step": 9});
        save_checkpoint(&dir, &cfg2, &[("model", &t)]).unwrap();
        assert_eq!(load_checkpoint(&dir, &dev).unwrap().config["step"], 9);
        assert!(!with_suffix(&dir, ".partial").exists() && !with_suffix(&dir, ".previous").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_checkpoints_are_named() {
        let dev = Device::Cpu;
        let err = load_checkpoint("/nonexistent/ck", &dev).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ck") && err.contains("no such directory"), "{err}");
        let dir = scratch("bad");
        std::fs::create_dir_all(&dir).unwrap();
        let err = load_checkpoint(&dir, &dev).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("model.safetensors"), b"garbage").unwrap();
        let err = load_checkpoint(&dir, &dev).unwrap_err().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
        let err = save_checkpoint(&dir, &serde_json::json!({}), &[("../x", &HashMap::new())]).unwrap_err().to_string();
        assert!(err.contains("bad group name"), "{err}");
        // the failed save left the existing directory untouched
        assert!(dir.join("model.safetensors").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_entries_and_format_errors_name_the_checkpoint_and_the_entry() {
        let dev = Device::Cpu;
        let dir = scratch("entries");
        let cfg = serde_json::json!({"format": "sslab-test-v1", "step": 7, "shape": [1, 2, 3], "name": "x"});
        save_checkpoint(&dir, &cfg, &[]).unwrap();
        let ck = load_checkpoint(&dir, &dev).unwrap();
        ck.expect_format("sslab-test-v1", "a test checkpoint").unwrap();
        assert_eq!(ck.entry::<usize>("step").unwrap(), 7);
        assert_eq!(ck.entry::<Vec<usize>>("shape").unwrap(), vec![1, 2, 3]);
        let d = dir.display().to_string();
        let e = ck.expect_format("sslab-other-v1", "another checkpoint").unwrap_err().to_string();
        assert!(e.contains(&d) && e.contains("not another checkpoint") && e.contains("\"sslab-other-v1\""), "{e}");
        let e = ck.entry::<usize>("missing").unwrap_err().to_string();
        assert!(e.contains(&d) && e.contains("no \"missing\" in config.json"), "{e}");
        let e = ck.entry::<usize>("name").unwrap_err().to_string();
        assert!(e.contains(&d) && e.contains("bad \"name\"") && e.contains("config.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
