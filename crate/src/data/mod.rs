//! Data sets: images, time series and text, real or generated in code.
//!
//! Real data is found through one variable, `SSLAB_DATA_DIR` (the Makefile
//! sets it); without it, the `data/` folder of the checkout (where
//! `make data` downloads to) is used. Nothing here downloads anything.
//!
//! A *data spec* string ([`DataSpec`]) names a source everywhere:
//!
//! | spec | what | loader |
//! |---|---|---|
//! | `shapes` | embedded line-drawn glyphs (images) | [`load_images`], [`shapes`] |
//! | `idx:DIR` | MNIST-format IDX files in `DIR` (images) | [`load_images`], [`load_idx_images`] |
//! | `ucr:DIR/NAME` | `NAME_TRAIN.ts` and `NAME_TEST.ts` in `DIR/NAME` (series) | [`load_series`], [`load_ucr`] |
//! | `text:FILE` | a UTF-8 text file | [`load_corpus`], [`load_text`] |
//! | `synthetic-text` | sentences from a tiny topic grammar | [`load_corpus`], [`synthetic_text`] |
//! | `synthetic-series` | sine / square / sawtooth / chirp waves | [`load_series`], [`synthetic_series`] |
//! | `folder:DIR` | your own JPEG/PNG images, one subfolder per class (or unlabelled) | [`load_images`], [`load_folder`] |
//! | `cifar10:DIR` | CIFAR-10's binary batches | [`load_images`], [`load_cifar10`] |
//! | `stl10:DIR` | STL-10's binary files; its unlabelled split for pretraining | [`load_images`], [`load_pretraining_images`], [`load_stl10`] |
//!
//! The image specs take options after a `?`: `size=N` (images become RGB
//! `N × N`) and, for folders, `skip_bad` — see [`images`].
//!
//! A relative `DIR` or `FILE` is read under the data folder unless it exists
//! as given (see [`resolve`]), e.g. `idx:mnist`, `ucr:ucr/GunPoint`,
//! `text:tinyshakespeare/input.txt`. Synthetic videos ([`synthetic_video`])
//! have no spec: they are only generated in code.

mod captions;
mod idx;
pub mod images;
mod labelled;
mod shapes;
mod synthetic;
mod text;
mod ucr;

pub use captions::{
    captioned_shapes, shape_colour, Attribute, Attributes, CaptionedImages, CAPTION_COLOURS, CAPTION_POSITIONS, CAPTION_SHAPES, CAPTION_SIZES,
};
pub use idx::{load_idx_images, read_idx, Idx};
pub use images::{
    load_cifar10, load_folder, load_stl10, load_stl10_unlabelled, parse_cifar10, read_image, write_example_folder, ImageOptions,
    CIFAR10_CLASSES, DEFAULT_FOLDER_SIZE, IMAGE_EXTENSIONS, STL10_CLASSES, UNLABELLED,
};
pub use labelled::{balanced_subset, LabelledData};
pub(crate) use labelled::{check_parts, labelled_data};
pub use shapes::{class_tint, shapes, tint_by_class, SHAPE_CLASSES};
pub use synthetic::{
    synthetic_series, synthetic_text, synthetic_video, SERIES_CLASSES, SYNTHETIC_TEXT_TOPICS, VIDEO_CLASSES,
};
pub use text::{
    load_text, split_sentences, TextCorpus, Tokenizer, TokenizerKind, CLS_ID, MASK_ID, PAD_ID, SEP_ID,
    SPECIAL_TOKENS, UNK_ID,
};
pub use ucr::{load_ucr, parse_ts, read_ts, z_normalize_slice, SeriesDataset};

use candle_core::{DType, Device, Result, Tensor};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The environment variable that points at the data folder.
pub const DATA_DIR_VAR: &str = "SSLAB_DATA_DIR";

/// The data folder: `$SSLAB_DATA_DIR`, else `data/` in the checkout.
///
/// Errors name the folder that is missing and how to get the data.
pub fn data_dir() -> Result<PathBuf> {
    data_dir_from(std::env::var(DATA_DIR_VAR).ok())
}

fn data_dir_from(var: Option<String>) -> Result<PathBuf> {
    let (dir, source) = match var {
        Some(v) if !v.trim().is_empty() => (PathBuf::from(v.trim()), DATA_DIR_VAR.to_string()),
        _ => (Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("data"), "the default".to_string()),
    };
    if !dir.is_dir() {
        candle_core::bail!(
            "data folder {} (from {source}) does not exist: run `make data` on a machine with internet, \
             or set {DATA_DIR_VAR} to a folder holding mnist/, tinyshakespeare/ and ucr/",
            dir.display()
        );
    }
    Ok(dir)
}

/// Resolves `path` under the data folder unless it is absolute or exists as given.
pub fn resolve(path: &str) -> Result<PathBuf> {
    let p = PathBuf::from(path);
    if p.is_absolute() || p.exists() {
        return Ok(p);
    }
    Ok(data_dir()?.join(p))
}

labelled::labelled_data! {
    /// A labelled image data set held in memory (`"MNIST t10k"`, `"shapes"`…).
    ImageDataset {
        /// Images `(N, C, H, W)`, f32 in `[0, 1]`, on the CPU.
        images
    },
    "images"
}

impl ImageDataset {
    /// Checks the parts agree and builds the data set.
    pub fn new(images: Tensor, labels: Vec<u32>, class_names: Vec<String>, name: &str) -> Result<Self> {
        check_parts(&images, "(N, C, H, W)", &labels, &class_names, "ImageDataset", "images", name)?;
        Ok(Self { images: images.to_dtype(DType::F32)?, labels, class_names, name: name.to_string() })
    }

    /// `(C, H, W)` of one image.
    pub fn image_shape(&self) -> Result<(usize, usize, usize)> {
        let (_, c, h, w) = self.images.dims4()?;
        Ok((c, h, w))
    }
}

/// A parsed data spec string: which source to load (see the [module docs](self)).
///
/// ```
/// use sslab::data::DataSpec;
/// let spec: DataSpec = "ucr:ucr/GunPoint".parse()?;
/// assert_eq!(spec, DataSpec::Ucr("ucr/GunPoint".into()));
/// assert_eq!(spec.to_string(), "ucr:ucr/GunPoint");
/// assert!("csv:x".parse::<DataSpec>().is_err());
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// `shapes`: the embedded glyph images.
    Shapes,
    /// `idx:DIR`: MNIST-format IDX files in `DIR`.
    Idx(String),
    /// `ucr:DIR/NAME`: a UCR/UEA archive folder; its last component is the
    /// problem name (`ucr/GunPoint` → `ucr/GunPoint/GunPoint_TRAIN.ts`).
    Ucr(String),
    /// `text:FILE`: a UTF-8 text file.
    Text(String),
    /// `synthetic-text`: sentences from the topic grammar of [`synthetic_text`].
    SyntheticText,
    /// `synthetic-series`: the waves of [`synthetic_series`].
    SyntheticSeries,
    /// `folder:DIR[?size=N&skip_bad]`: JPEG/PNG files, one subfolder per class.
    Folder(String, ImageOptions),
    /// `cifar10:DIR[?size=N]`: CIFAR-10's binary batches.
    Cifar10(String, ImageOptions),
    /// `stl10:DIR[?size=N]`: STL-10's binary files.
    Stl10(String, ImageOptions),
}

/// The accepted spec forms, for error messages.
const SPEC_FORMS: &str =
    "`shapes`, `idx:DIR`, `folder:DIR`, `cifar10:DIR`, `stl10:DIR`, `ucr:DIR/NAME`, `text:FILE`, `synthetic-text` or `synthetic-series`";

impl DataSpec {
    /// Parses a spec string; errors name the string and list the accepted forms.
    pub fn parse(spec: &str) -> Result<Self> {
        let s = spec.trim();
        let parsed = match s.split_once(':') {
            None => match s {
                "shapes" => Some(Self::Shapes),
                "synthetic-text" => Some(Self::SyntheticText),
                "synthetic-series" => Some(Self::SyntheticSeries),
                _ => None,
            },
            Some((kind, arg)) => {
                let arg = arg.trim();
                if arg.is_empty() && matches!(kind, "idx" | "ucr" | "text" | "folder" | "cifar10" | "stl10") {
                    candle_core::bail!("data spec {spec:?} names no path after `{kind}:`; expected {SPEC_FORMS}");
                }
                let (path, query) = arg.split_once('?').unwrap_or((arg, ""));
                let image = |make: fn(String, ImageOptions) -> Self| -> Result<Option<Self>> {
                    if path.trim().is_empty() {
                        candle_core::bail!("data spec {spec:?} names no path after `{kind}:`; expected {SPEC_FORMS}");
                    }
                    let options = ImageOptions::parse(query, spec)?;
                    if options.skip_bad && kind != "folder" {
                        candle_core::bail!("data spec {spec:?}: skip_bad applies to `folder:` only");
                    }
                    Ok(Some(make(path.trim().to_string(), options)))
                };
                match kind {
                    "folder" => image(Self::Folder)?,
                    "cifar10" => image(Self::Cifar10)?,
                    "stl10" => image(Self::Stl10)?,
                    "idx" => Some(Self::Idx(arg.to_string())),
                    "ucr" => Some(Self::Ucr(arg.trim_end_matches('/').to_string())),
                    "text" => Some(Self::Text(arg.to_string())),
                    _ => None,
                }
            }
        };
        parsed.ok_or_else(|| candle_core::Error::Msg(format!("unknown data spec {spec:?}: expected {SPEC_FORMS}")))
    }

    /// `true` for sources of images (`shapes`, `idx:`, `folder:`, `cifar10:`, `stl10:`).
    pub fn is_images(&self) -> bool {
        matches!(self, Self::Shapes | Self::Idx(_) | Self::Folder(..) | Self::Cifar10(..) | Self::Stl10(..))
    }

    /// `true` for sources of time series (`ucr:`, `synthetic-series`).
    pub fn is_series(&self) -> bool {
        matches!(self, Self::Ucr(_) | Self::SyntheticSeries)
    }

    /// `true` for sources of text (`text:`, `synthetic-text`).
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_) | Self::SyntheticText)
    }
}

impl FromStr for DataSpec {
    type Err = candle_core::Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shapes => write!(f, "shapes"),
            Self::Idx(d) => write!(f, "idx:{d}"),
            Self::Ucr(d) => write!(f, "ucr:{d}"),
            Self::Text(p) => write!(f, "text:{p}"),
            Self::SyntheticText => write!(f, "synthetic-text"),
            Self::SyntheticSeries => write!(f, "synthetic-series"),
            Self::Folder(d, o) => write!(f, "folder:{d}{}", o.query()),
            Self::Cifar10(d, o) => write!(f, "cifar10:{d}{}", o.query()),
            Self::Stl10(d, o) => write!(f, "stl10:{d}{}", o.query()),
        }
    }
}

fn wrong_kind(spec: &DataSpec, what: &str, forms: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("data spec `{spec}` is not a source of {what}: expected {forms}"))
}

/// The image specs, for error messages.
const IMAGE_FORMS: &str = "`shapes`, `idx:DIR`, `folder:DIR`, `cifar10:DIR` or `stl10:DIR`";

/// Loads an image data set from a data spec: `shapes` (embedded; `n`
/// images from `seed`), `idx:DIR` (MNIST-format files), `folder:DIR`,
/// `cifar10:DIR` or `stl10:DIR` (see [`load_folder`], [`load_cifar10`],
/// [`load_stl10`]); `n` only sizes `shapes`.
///
/// Returns `(train, test)`. IDX folders with both `train-*` and `t10k-*`
/// files give those splits; a folder with only one split gives its first
/// 80% as train and the last 20% as test. `shapes` is split the same way.
/// STL-10 gives its labelled splits; its unlabelled images come from
/// [`load_pretraining_images`].
pub fn load_images(spec: &str, n: usize, seed: u64) -> Result<(ImageDataset, ImageDataset)> {
    match DataSpec::parse(spec)? {
        DataSpec::Shapes => shapes(n, seed)?.split_last(0.2),
        DataSpec::Idx(dir) => idx::load_idx_dir(&resolve(&dir)?),
        DataSpec::Folder(dir, o) => load_folder(&resolve(&dir)?, &o),
        DataSpec::Cifar10(dir, o) => load_cifar10(&resolve(&dir)?, &o),
        DataSpec::Stl10(dir, o) => load_stl10(&resolve(&dir)?, &o),
        other => Err(wrong_kind(&other, "images", IMAGE_FORMS)),
    }
}

/// The images to pretrain on: STL-10's unlabelled split for `stl10:DIR`
/// (`n` of its 100,000 images, drawn with `seed` and read from the file one
/// by one), otherwise the training split of [`load_images`].
pub fn load_pretraining_images(spec: &str, n: usize, seed: u64) -> Result<ImageDataset> {
    match DataSpec::parse(spec)? {
        DataSpec::Stl10(dir, o) => load_stl10_unlabelled(&resolve(&dir)?, n, seed, &o),
        _ => Ok(load_images(spec, n, seed)?.0),
    }
}

/// Loads a time-series data set from a data spec: `ucr:DIR/NAME` (the
/// archive's TRAIN and TEST files; `n`, `length` and `seed` are ignored) or
/// `synthetic-series` (`n` series of `length` steps from `seed`, the last
/// 20% as test).
///
/// Returns `(train, test)`, not normalised (see [`SeriesDataset::z_normalize`]).
pub fn load_series(spec: &str, n: usize, length: usize, seed: u64) -> Result<(SeriesDataset, SeriesDataset)> {
    match DataSpec::parse(spec)? {
        DataSpec::SyntheticSeries => synthetic_series(n, length, seed)?.split_last(0.2),
        DataSpec::Ucr(path) => {
            let dir = resolve(&path)?;
            let name = dir.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            if name.is_empty() {
                candle_core::bail!("data spec `ucr:{path}` must end in the problem name, e.g. `ucr:ucr/GunPoint`");
            }
            load_ucr(&dir, &name)
        }
        other => Err(wrong_kind(&other, "time series", "`ucr:DIR/NAME` or `synthetic-series`")),
    }
}

/// Loads a tokenized corpus from a data spec: `text:FILE` or
/// `synthetic-text` (`n_sentences` sentences from `seed`; ignored for files),
/// with a tokenizer of `kind` and at most `max_vocab` ids.
pub fn load_corpus(
    spec: &str,
    kind: TokenizerKind,
    max_vocab: usize,
    n_sentences: usize,
    seed: u64,
) -> Result<TextCorpus> {
    match DataSpec::parse(spec)? {
        DataSpec::Text(path) => TextCorpus::load(&resolve(&path)?, kind, max_vocab),
        DataSpec::SyntheticText => {
            TextCorpus::new(&synthetic_text(n_sentences, seed)?, kind, max_vocab, "synthetic-text")
        }
        other => Err(wrong_kind(&other, "text", "`text:FILE` or `synthetic-text`")),
    }
}

/// `f` applied to `x` in slices of `batch` rows along the first axis,
/// detached and gathered on the CPU: the batched feature extraction behind
/// every `features` of the crate. `what` names the inputs in the error for
/// an empty `x`.
pub(crate) fn map_batches(x: &Tensor, batch: usize, what: &str, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let n = x.dim(0)?;
    if n == 0 {
        candle_core::bail!("features: no {what}");
    }
    let batch = batch.max(1);
    let mut out = Vec::new();
    for start in (0..n).step_by(batch) {
        out.push(f(&x.narrow(0, start, batch.min(n - start))?)?.detach().to_device(&Device::Cpu)?);
    }
    Tensor::cat(&out, 0)
}

#[cfg(test)]
mod tests {
    use crate::rng::SeededRng;
    use super::*;

    fn toy() -> ImageDataset {
        let images = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((6, 1, 1, 2)).unwrap();
        ImageDataset::new(images, vec![0, 1, 0, 1, 0, 1], vec!["a".into(), "b".into()], "toy").unwrap()
    }

    #[test]
    fn balanced_subset_keeps_as_many_of_each_class_as_the_rarest_has() {
        // class 0: 4 images, class 1: 2, class 2: 1 → one of each
        let images = Tensor::arange(0f32, 7.0, &Device::Cpu).unwrap().reshape((7, 1, 1, 1)).unwrap();
        let names = vec!["a".to_string(), "b".into(), "c".into()];
        let d = ImageDataset::new(images.clone(), vec![0, 0, 1, 0, 1, 2, 0], names.clone(), "skewed").unwrap();
        let b = balanced_subset(&d, &mut SeededRng::new(0)).unwrap();
        let mut labels = b.labels.clone();
        labels.sort();
        assert_eq!(labels, [0, 1, 2]);
        // the majority class of the balanced subset scores exactly chance
        let rates = crate::eval::trivial_rates(&b.labels, 3).unwrap();
        assert!((rates.majority - rates.chance).abs() < 1e-12, "{rates:?}");
        let none = ImageDataset::new(images, vec![0, 0, 1, 0, 1, 1, 0], names, "no c").unwrap();
        let err = balanced_subset(&none, &mut SeededRng::new(0)).unwrap_err().to_string();
        assert!(err.contains("class 2 has no example in no c"), "{err}");
    }

    #[test]
    fn dataset_split_subset_and_errors() {
        let d = toy();
        let (tr, te) = d.split_last(1.0 / 3.0).unwrap();
        assert_eq!((tr.len(), te.len()), (4, 2));
        assert_eq!(te.labels, vec![0, 1]);
        assert_eq!(te.images.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![8., 9., 10., 11.]);
        let mut rng = SeededRng::new(0);
        let s = d.per_class_subset(2, &mut rng).unwrap();
        assert_eq!(s.class_counts(), vec![2, 2]);
        let err = d.per_class_subset(4, &mut rng).unwrap_err().to_string();
        assert!(err.contains("class 0 (a) has only 3"), "{err}");
        assert!(d.select(&[6]).is_err());
        assert!(ImageDataset::new(d.images.clone(), vec![0, 5, 0, 0, 0, 0], d.class_names.clone(), "x").is_err());
        assert!(load_images("csv:foo", 10, 0).unwrap_err().to_string().contains("unknown data spec"));
    }

    #[test]
    fn data_spec_parses_displays_and_names_bad_strings() {
        let cases = [
            ("shapes", DataSpec::Shapes),
            ("idx:mnist", DataSpec::Idx("mnist".into())),
            ("ucr:ucr/GunPoint/", DataSpec::Ucr("ucr/GunPoint".into())),
            ("text:tinyshakespeare/input.txt", DataSpec::Text("tinyshakespeare/input.txt".into())),
            ("synthetic-text", DataSpec::SyntheticText),
            (" synthetic-series ", DataSpec::SyntheticSeries),
            ("folder:photos", DataSpec::Folder("photos".into(), ImageOptions::default())),
            ("folder:my photos?size=32&skip_bad", DataSpec::Folder("my photos".into(), ImageOptions { size: Some(32), skip_bad: true })),
            ("cifar10:cifar-10-batches-bin?size=16", DataSpec::Cifar10("cifar-10-batches-bin".into(), ImageOptions { size: Some(16), skip_bad: false })),
            ("stl10:stl10_binary", DataSpec::Stl10("stl10_binary".into(), ImageOptions::default())),
        ];
        for (s, want) in cases {
            let got: DataSpec = s.parse().unwrap();
            assert_eq!(got, want);
            assert_eq!(DataSpec::parse(&got.to_string()).unwrap(), want);
        }
        for bad in ["csv:foo", "mnist", "idx:", "", "text: "] {
            let err = DataSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")) && err.contains("ucr:DIR/NAME"), "{err}");
        }
        assert!(DataSpec::Shapes.is_images() && DataSpec::SyntheticSeries.is_series() && DataSpec::SyntheticText.is_text());
        assert!(DataSpec::parse("folder:x").unwrap().is_images() && DataSpec::parse("stl10:x").unwrap().is_images());
        for (bad, says) in [("folder:", "names no path"), ("folder:?size=3", "names no path"), ("folder:x?size=big", "size must be"),
                            ("cifar10:x?skip_bad", "skip_bad applies to `folder:` only"), ("folder:x?colour", "unknown option")] {
            let err = DataSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        let err = load_images("synthetic-series", 8, 0).unwrap_err().to_string();
        assert!(err.contains("`synthetic-series` is not a source of images"), "{err}");
        assert!(load_series("shapes", 8, 32, 0).is_err() && load_corpus("shapes", TokenizerKind::Chars, 50, 1, 0).is_err());
    }

    #[test]
    fn data_spec_loads_synthetic_series_and_text() {
        let (tr, te) = load_series("synthetic-series", 20, 32, 0).unwrap();
        assert_eq!((tr.len(), te.len()), (16, 4));
        assert_eq!(tr.series_shape().unwrap(), (1, 32));
        let c = load_corpus("synthetic-text", TokenizerKind::Words, 500, 30, 0).unwrap();
        assert_eq!(c.sentences().len(), 30);
        assert_eq!(c.name, "synthetic-text");
    }

    #[test]
    fn data_spec_loads_real_files_when_present() {
        let Ok(root) = data_dir() else { return };
        if root.join("ucr/ItalyPowerDemand/ItalyPowerDemand_TRAIN.ts").is_file() {
            let (tr, te) = load_series("ucr:ucr/ItalyPowerDemand", 0, 0, 0).unwrap();
            assert_eq!((tr.len(), te.len()), (67, 1029));
            assert_eq!(tr.series_shape().unwrap(), (1, 24));
            assert_eq!(tr.name, "ItalyPowerDemand TRAIN");
        }
        if root.join("mnist/t10k-images-idx3-ubyte.gz").is_file() {
            // only the t10k split exists: its last 20% is the test split
            let (tr, te) = load_images("idx:mnist", 0, 0).unwrap();
            assert_eq!((tr.len(), te.len()), (8000, 2000));
        }
    }

    #[test]
    fn data_dir_error_names_the_folder_and_the_fix() {
        let err = data_dir_from(Some("/definitely/not/here".into())).unwrap_err().to_string();
        assert!(err.contains("/definitely/not/here") && err.contains(DATA_DIR_VAR) && err.contains("make data"), "{err}");
        let tmp = std::env::temp_dir();
        assert_eq!(data_dir_from(Some(tmp.display().to_string())).unwrap(), tmp);
    }
}
