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
//! | [`data`] | data specs (`shapes`, `idx:DIR`, `ucr:DIR/NAME`, `text:FILE`, synthetic text/series/video), IDX, UCR `.ts` and text loaders, tokenizers |
//! | [`augment`] | seeded augmentations and multi-view pipelines |
//! | [`language`] | pretraining on text: word vectors (skip-gram, CBOW), masked and causal language models, next-sentence prediction, a masked-character probe |
//! | [`sequence`] | pretraining on time series (masked steps, order, CPC, contrastive) and video (frame order), with few-label evaluation |
//! | [`pretext`] | pretext tasks T: x → (x̃, y) for images (rotation, jigsaw, colorization, context, MAE masking), text (BERT masking, causal LM, NSP, skip-gram, CBOW), sequences (masked steps, order verification, CPC) and video (frame order) |
//! | [`nn`] | seeded parameters; small CNN, ResNet, ViT (+ MAE decoder), text and sequence transformers, 1-D CNN; projection/prediction heads; EMA teacher; MoCo queue; differentiable softmax/layer norm; fast im2col convolution |
//! | [`loss`] | contrastive (InfoNCE, NT-Xent, MoCo, CLIP), distillation (SimSiam, BYOL, DINO) and redundancy-reduction (Barlow Twins, VICReg) losses, cross-entropy |
//! | [`train`] | SGD/LARS/AdamW with checkpointable state, warm-up + cosine schedules, step samplers, atomic checkpoints, loss history |
//! | [`metrics`] | numbers of a batch of embeddings: std, singular values, effective rank, alignment, uniformity; the host eigen solver |
//! | [`eval`] | linear probe, weighted k-NN, fine-tuning, label-efficiency sweep, collapse tables and verdicts |
//! | [`method`] | pretraining methods (RotNet … DINO) and the resumable [`method::Pretrainer`] |
//! | [`plot`] | loss curves, image grids, PCA scatter, heatmaps and attention maps, tables: inline in Jupyter (evcxr), saved as SVG/PNG |
//! | [`bench`](mod@bench) | the CPU training-step benchmark, the same step as the PyTorch reference |
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
pub mod bench;
pub mod cli;
pub mod config;
pub mod course;
pub mod data;
pub mod device;
pub mod device_check;
pub mod eval;
pub mod interrupt;
pub mod method;
pub mod multimodal;
pub mod language;
pub mod metrics;
pub mod loss;
pub mod nn;
pub mod plot;
pub mod profile;
pub mod pretext;
pub mod rng;
pub mod sequence;
pub mod train;

pub use candle_core::{Error, Result};

/// The message of an error without the backtrace Candle attaches when
/// `RUST_BACKTRACE` is set (as it is inside the Jupyter kernel): for showing
/// an expected error in a notebook.
///
/// ```
/// let e = candle_core::Error::Msg("bad shape".into()).bt();
/// assert_eq!(sslab::message(&e), "bad shape");
/// ```
pub fn message(e: &Error) -> String {
    match e {
        Error::WithBacktrace { inner, .. } => message(inner),
        e => e.to_string(),
    }
}

/// Everything a notebook's setup cell needs, in one `use sslab::prelude::*;`.
pub mod prelude {
    pub use crate::augment::{Compose, Transform, TwoViews};
    pub use crate::config::{
        ContrastiveConfig, FewLabelBudget, FewLabelExperiment, ImagePretextConfig, MultimodalConfig, Profile, SequencePretextConfig, TextPretextConfig, WhySslConfig,
    };
    pub use crate::data::{data_dir, DataSpec, ImageDataset, LabelledData, SeriesDataset, TextCorpus, Tokenizer, TokenizerKind};
    pub use crate::device::{device, DeviceChoice};
    pub use crate::eval::{collapse_report, knn_accuracy, linear_probe, Comparison, FewLabelProtocol, RepeatedComparison, KnnConfig, ProbeConfig};
    pub use crate::loss::{barlow_twins, byol, clip, dino, info_nce, moco, negative_cosine, nt_xent, vicreg};
    pub use crate::method::{
        AugmentStep, BarlowOptions, ContextOptions, DinoOptions, JigsawOptions, MaeOptions, MethodName, PretrainConfig, Pretrainer, VicRegOptions,
    };
    pub use crate::nn::{EmaTeacher, MocoQueue, Params, ResNetConfig, SmallCnn, VitConfig};
    pub use crate::plot::{BarChart, Heatmap, ImageGrid, LinePlot, ScatterPlot, Table};
    pub use crate::rng::SeededRng;
    pub use candle_core::{DType, Device, Module, ModuleT, Tensor, D};
}
