//! # sslab — self-supervised learning primitives for the course notebooks
//!
//! `sslab` is the single source of logic behind the chapter notebooks on
//! self-supervised learning (chapter 24) and contrastive learning (chapter 25).
//! The notebooks call it, show results and explain; everything reusable lives
//! here, tested.
//!
//! Module map (one concept per module):
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | the run profile (`SSLAB_PROFILE=smoke|cpu|gpu`) and each experiment's sizes |
//! | [`device`] | CPU/CUDA selection |
//! | [`rng`] | the seeded random generator behind initialisation, data order and augmentation |
//! | [`data`] | embedded synthetic images, MNIST-format IDX files, the data folder |
//! | [`augment`] | seeded augmentations and multi-view pipelines |
//! | [`pretext`] | pretext tasks T: x → (x̃, y): rotation, masking |
//! | [`nn`] | seeded parameters, the small CNN encoder, linear heads |
//! | [`loss`] | InfoNCE and cross-entropy |
//! | [`train`] | optimiser settings, step-budgeted training loops, loss history |
//! | [`eval`] | linear probe, label-efficiency sweep |
//! | [`method`] | pretraining methods (RotNet … DINO) and the resumable [`method::Pretrainer`] |
//! | [`plot`] | figures and tables that display inline in Jupyter (evcxr) |
//! | [`course`] | chapter material: tables, timelines and knowledge checks |
//!
//! The `sslab` binary ([`cli`]) runs the same code from the command line.
//!
//! Errors are [`candle_core::Error`] values with a message naming the problem;
//! nothing a user passes makes the crate panic.
//!
//! ```
//! use sslab::prelude::*;
//! let dev = Device::Cpu;
//! let mut rng = SeededRng::new(0);
//! let q = rng.randn(&[4, 16], 1.0, &dev)?;
//! let p = rng.randn(&[4, 16], 1.0, &dev)?;
//! let n = rng.randn(&[4, 8, 16], 1.0, &dev)?;
//! let loss = info_nce(&q, &p, &n, 0.1)?.to_scalar::<f32>()?;
//! assert!(loss.is_finite());
//! # Ok::<(), candle_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod augment;
pub mod cli;
pub mod config;
pub mod course;
pub mod data;
pub mod device;
pub mod eval;
pub mod method;
pub mod loss;
pub mod nn;
pub mod plot;
pub mod pretext;
pub mod rng;
pub mod train;

pub use candle_core::{Error, Result};

/// Everything a notebook's setup cell needs, in one `use sslab::prelude::*;`.
pub mod prelude {
    pub use crate::config::{Profile, WhySslConfig};
    pub use crate::data::{data_dir, ImageDataset};
    pub use crate::device::{device, DeviceChoice};
    pub use crate::loss::info_nce;
    pub use crate::nn::{Params, SmallCnn};
    pub use crate::plot::{ImageGrid, LinePlot, Table};
    pub use crate::rng::SeededRng;
    pub use candle_core::{DType, Device, Module, Tensor, D};
}
