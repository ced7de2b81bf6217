//! The run profile: one variable, `SSLAB_PROFILE`, scales every experiment
//! (`smoke`, `cpu`, `gpu`). The sizes each profile gives a chapter live with
//! the chapter's configuration in [`crate::config`].

use candle_core::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The name of the environment variable that selects the profile.
pub const PROFILE_VAR: &str = "SSLAB_PROFILE";

/// How large the experiments of a run are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Tiny sizes for CI: every cell runs, results are not meaningful.
    Smoke,
    /// The default: meaningful results within minutes on a laptop CPU.
    Cpu,
    /// Full-size experiments for a GPU.
    Gpu,
}

impl Profile {
    /// Parses a profile name (`smoke`, `cpu` or `gpu`, any case).
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "smoke" => Ok(Self::Smoke),
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            other => bail!("unknown profile {other:?} in {PROFILE_VAR}: expected smoke, cpu or gpu"),
        }
    }

    /// The profile named by `SSLAB_PROFILE`, or [`Profile::Cpu`] when it is unset or empty.
    pub fn current() -> Result<Self> {
        match std::env::var(PROFILE_VAR) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v),
            _ => Ok(Self::Cpu),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Smoke => "smoke",
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        })
    }
}
