//! Natural images from files: your own folders of JPEG/PNG (`folder:DIR`),
//! CIFAR-10 (`cifar10:DIR`) and STL-10 (`stl10:DIR`) in their original
//! binary formats. Every image becomes RGB `(3, S, S)` in `[0, 1]`; an
//! image of another size is resized to fill `S × S` and centre-cropped
//! (the shorter side becomes `S`), with a triangle (bilinear) filter.
//!
//! | spec | layout read | default size |
//! |---|---|---|
//! | `folder:DIR` | `DIR/<class>/*.{jpg,jpeg,png}` (torchvision's `ImageFolder`), `DIR/train/<class>/…` with `DIR/test/<class>/…`, or images directly in `DIR` (unlabelled) | 64 |
//! | `cifar10:DIR` | `data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin` (in `DIR` or `DIR/cifar-10-batches-bin`) | 32 |
//! | `stl10:DIR` | `train_X.bin`/`train_y.bin`, `test_X.bin`/`test_y.bin`, `unlabeled_X.bin` (in `DIR` or `DIR/stl10_binary`) | 96 |
//!
//! Options follow a `?`: `size=N` (the side `S`) and, for folders,
//! `skip_bad` (skip files that are not readable JPEG/PNG images instead of
//! stopping at the first, which the error names), e.g.
//! `folder:photos?size=32&skip_bad`.
//!
//! A folder without a `train`/`test` pair is split deterministically and
//! per class: every fifth image (in file-name order) is a test image. The
//! split does not depend on the seed, so runs with different seeds are
//! measured on the same test images.
//!
//! STL-10's 100,000 unlabelled images (8 GB as floats) are never loaded at
//! once: [`load_stl10_unlabelled`] reads the `n` records it draws straight
//! from the file.

use super::ImageDataset;
use crate::rng::{derive_seed, SeededRng};
use candle_core::{Device, Result, Tensor};
use image::{imageops::FilterType, DynamicImage, RgbImage};
use rayon::prelude::*;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The file endings `folder:` reads (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The side of a `folder:` image unless `?size=` says otherwise.
pub const DEFAULT_FOLDER_SIZE: usize = 64;

/// The ten CIFAR-10 classes, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// The ten STL-10 classes, in label order (labels 1–10 in the files).
pub const STL10_CLASSES: [&str; 10] = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"];

/// The class of every image of an unlabelled source.
pub const UNLABELLED: &str = "unlabelled";

/// Options of an image spec, after its `?`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// The side `S` of the square images (`size=N`); `None`: the source's default.
    pub size: Option<usize>,
    /// Skip files that are not readable images (`skip_bad`) instead of stopping.
    pub skip_bad: bool,
}

impl ImageOptions {
    /// Parses `size=N&skip_bad`; errors name the spec and the option.
    pub fn parse(query: &str, spec: &str) -> Result<Self> {
        let mut o = Self::default();
        for part in query.split('&').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("size", v)) => match v.trim().parse::<usize>() {
                    Ok(s) if (1..=1024).contains(&s) => o.size = Some(s),
                    _ => candle_core::bail!("data spec {spec:?}: size must be a whole number from 1 to 1024, got {v:?}"),
                },
                None if part == "skip_bad" => o.skip_bad = true,
                _ => candle_core::bail!("data spec {spec:?}: unknown option {part:?} (options: size=N, skip_bad)"),
            }
        }
        Ok(o)
    }

    /// The options as they are written after the `?` (empty when none).
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.size {
            parts.push(format!("size={s}"));
        }
        if self.skip_bad {
            parts.push("skip_bad".into());
        }
        if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
    }
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{what} {}: {e}", path.display()))
}

/// `img` resized to fill `size × size` and centre-cropped.
fn fill_square(img: DynamicImage, size: usize) -> RgbImage {
    let s = size as u32;
    if img.width() == s && img.height() == s {
        return img.into_rgb8();
    }
    img.resize_to_fill(s, s, FilterType::Triangle).into_rgb8()
}

/// The planes of `img` (R, G, B) in `[0, 1]`, written into `out` (`3·H·W` values).
fn write_planes(out: &mut [f32], img: &RgbImage) {
    let hw = (img.width() * img.height()) as usize;
    for (c, plane) in out.chunks_mut(hw).enumerate() {
        for (o, p) in plane.iter_mut().zip(img.pixels()) {
            *o = f32::from(p.0[c]) / 255.0;
        }
    }
}

/// Decodes the JPEG or PNG file `path` (by its content, whatever its name)
/// as RGB, resized to fill `size × size`; the error names the file.
pub fn read_image(path: &Path, size: usize) -> Result<RgbImage> {
    let img = image::ImageReader::open(path)
        .map_err(|e| io_error("cannot open", path, e))?
        .with_guessed_format()
        .map_err(|e| io_error("cannot read", path, e))?
        .decode()
        .map_err(|e| io_error("not a readable JPEG or PNG image:", path, e))?;
    Ok(fill_square(img, size))
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

fn has_image_extension(p: &Path) -> bool {
    p.extension().is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
}

/// The entries of `dir` (hidden ones left out), sorted by name: `(files, folders)`.
fn entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_error("cannot read the folder", dir, e))?;
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| !is_hidden(p)).collect();
    paths.sort();
    Ok(paths.into_iter().partition(|p| !p.is_dir()))
}

/// The image files among `files`. Another file is an error naming it, or
/// skipped (and counted) with `skip_bad`.
fn keep_images(files: Vec<PathBuf>, skip_bad: bool, skipped: &mut usize) -> Result<Vec<PathBuf>> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        if has_image_extension(&f) {
            out.push(f);
        } else if skip_bad {
            *skipped += 1;
        } else {
            candle_core::bail!(
                "{} is not a JPEG or PNG image (folder: reads {}); remove it, or add `skip_bad` to the spec (`folder:DIR?skip_bad`) to skip such files",
                f.display(),
                IMAGE_EXTENSIONS.join(", ")
            );
        }
    }
    Ok(out)
}

/// Every image file under `dir` (recursively, in name order); other files
/// as [`keep_images`] says.
fn image_files(dir: &Path, skip_bad: bool, skipped: &mut usize) -> Result<Vec<PathBuf>> {
    let (files, folders) = entries(dir)?;
    let mut out = keep_images(files, skip_bad, skipped)?;
    for sub in folders {
        out.extend(image_files(&sub, skip_bad, skipped)?);
    }
    Ok(out)
}

/// Decodes `files` (in parallel, in order) into `(N, 3, size, size)`; with
/// `skip_bad` an unreadable file is dropped (and counted), otherwise the
/// error names it. Returns the tensor and the indices kept.
fn decode_all(files: &[PathBuf], size: usize, skip_bad: bool, skipped: &mut usize) -> Result<(Tensor, Vec<usize>)> {
    // each image is decoded straight into its place in the one output buffer
    let per = 3 * size * size;
    let mut pixels = vec![0f32; files.len() * per];
    let decoded: Vec<Result<()>> = pixels
        .par_chunks_mut(per)
        .zip(files.par_iter())
        .map(|(out, f)| read_image(f, size).map(|img| write_planes(out, &img)))
        .collect();
    let mut kept = Vec::with_capacity(files.len());
    for (i, d) in decoded.into_iter().enumerate() {
        match d {
            Ok(()) => {
                // close the gaps an unreadable file left
                if kept.len() != i {
                    pixels.copy_within(i * per..(i + 1) * per, kept.len() * per);
                }
                kept.push(i);
            }
            Err(_) if skip_bad => *skipped += 1,
            Err(e) => return Err(e),
        }
    }
    pixels.truncate(kept.len() * per);
    Ok((Tensor::from_vec(pixels, (kept.len(), 3, size, size), &Device::Cpu)?, kept))
}

/// The class `folders`, each with its image files.
fn class_folders(folders: Vec<PathBuf>, skip_bad: bool, skipped: &mut usize) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut classes = Vec::new();
    for f in folders {
        let name = f.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let files = image_files(&f, skip_bad, skipped)?;
        if files.is_empty() {
            candle_core::bail!("class folder {} holds no JPEG or PNG image", f.display());
        }
        classes.push((name, files));
    }
    Ok(classes)
}

/// Builds a data set from `(file, label)` pairs.
fn dataset(items: &[(PathBuf, u32)], class_names: &[String], size: usize, skip_bad: bool, skipped: &mut usize, name: &str) -> Result<ImageDataset> {
    let files: Vec<PathBuf> = items.iter().map(|(f, _)| f.clone()).collect();
    let (images, kept) = decode_all(&files, size, skip_bad, skipped)?;
    if kept.is_empty() {
        candle_core::bail!("{name}: none of its {} files is a readable image", files.len());
    }
    ImageDataset::new(images, kept.iter().map(|&i| items[i].1).collect(), class_names.to_vec(), name)
}

/// Loads a folder of images (see the [module docs](self)) as `(train, test)`
/// of `(N, 3, S, S)` images.
///
/// # Errors
/// Naming the folder or file: a missing or empty folder, a folder that
/// mixes images and class folders, one class folder only, a class folder
/// without images, a file that is not a JPEG/PNG image (unless
/// `skip_bad`), a test class that training does not have.
pub fn load_folder(dir: &Path, options: &ImageOptions) -> Result<(ImageDataset, ImageDataset)> {
    if !dir.is_dir() {
        candle_core::bail!("image folder {} does not exist", dir.display());
    }
    let size = options.size.unwrap_or(DEFAULT_FOLDER_SIZE);
    let skip = options.skip_bad;
    let mut skipped = 0;
    let base = dir.file_name().map_or_else(|| dir.display().to_string(), |s| s.to_string_lossy().to_string());
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    let (train_items, test_items, class_names): (Vec<(PathBuf, u32)>, Vec<(PathBuf, u32)>, Vec<String>) =
        if train_dir.is_dir() && test_dir.is_dir() {
            let train = class_folders(entries(&train_dir)?.1, skip, &mut skipped)?;
            if train.len() < 2 {
                candle_core::bail!("{} has {} class folder(s); a labelled folder needs at least two classes", train_dir.display(), train.len());
            }
            let names: Vec<String> = train.iter().map(|(n, _)| n.clone()).collect();
            let mut test_items = Vec::new();
            for (n, files) in class_folders(entries(&test_dir)?.1, skip, &mut skipped)? {
                let Some(label) = names.iter().position(|m| *m == n) else {
                    candle_core::bail!("{} has a class folder {n:?} that {} does not have (its classes: {})", test_dir.display(), train_dir.display(), names.join(", "));
                };
                test_items.extend(files.into_iter().map(|f| (f, label as u32)));
            }
            let train_items = train.into_iter().enumerate().flat_map(|(l, (_, files))| files.into_iter().map(move |f| (f, l as u32))).collect();
            (train_items, test_items, names)
        } else {
            let (files, folders) = entries(dir)?;
            let has_images = files.iter().any(|f| has_image_extension(f));
            match (folders.is_empty(), !has_images) {
                (true, true) if files.is_empty() => candle_core::bail!("image folder {} is empty", dir.display()),
                (false, false) => candle_core::bail!(
                    "{} holds both image files and folders; put the images in one folder per class (labelled) or all directly in it (unlabelled)",
                    dir.display()
                ),
                (true, _) => {
                    // unlabelled: every image of the folder, one class
                    let files = keep_images(files, skip, &mut skipped)?;
                    if files.is_empty() {
                        candle_core::bail!("image folder {} holds no JPEG or PNG image", dir.display());
                    }
                    let (train, test) = every_fifth(files.into_iter().map(|f| (f, 0)).collect());
                    (train, test, vec![UNLABELLED.to_string()])
                }
                (false, true) => {
                    if let Some(f) = files.first() {
                        if !skip {
                            candle_core::bail!("{} is not a class folder or an image; remove it, or add `skip_bad` to the spec", f.display());
                        }
                        skipped += files.len();
                    }
                    let classes = class_folders(folders, skip, &mut skipped)?;
                    if classes.len() < 2 {
                        candle_core::bail!(
                            "{} has one class folder; a labelled folder needs at least two classes (for unlabelled pretraining put the images directly in it)",
                            dir.display()
                        );
                    }
                    let names = classes.iter().map(|(n, _)| n.clone()).collect();
                    let (mut train, mut test) = (Vec::new(), Vec::new());
                    for (l, (_, files)) in classes.into_iter().enumerate() {
                        let (a, b) = every_fifth(files.into_iter().map(|f| (f, l as u32)).collect());
                        train.extend(a);
                        test.extend(b);
                    }
                    (train, test, names)
                }
            }
        };
    if test_items.is_empty() {
        candle_core::bail!("{}: too few images for a test split (every fifth image of each class is a test image)", dir.display());
    }
    let train = dataset(&train_items, &class_names, size, skip, &mut skipped, &format!("{base} train"))?;
    let test = dataset(&test_items, &class_names, size, skip, &mut skipped, &format!("{base} test"))?;
    let note = if skipped > 0 { format!(" ({skipped} files skipped)") } else { String::new() };
    Ok((ImageDataset { name: format!("{}{note}", train.name), ..train }, ImageDataset { name: format!("{}{note}", test.name), ..test }))
}

/// Every fifth item (indices 4, 9, …) as the test split, the rest as training.
fn every_fifth<T>(items: Vec<T>) -> (Vec<T>, Vec<T>) {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, x) in items.into_iter().enumerate() {
        if i % 5 == 4 { test.push(x) } else { train.push(x) }
    }
    (train, test)
}

/// `dir/sub` when it is a folder (the name the archive unpacks to), else `dir`.
fn inside(dir: &Path, sub: &str) -> PathBuf {
    let d = dir.join(sub);
    if d.is_dir() { d } else { dir.to_path_buf() }
}

/// An error naming `path` and saying how to get it (`hint`) unless it is a file.
fn require_file(path: &Path, hint: &str) -> Result<()> {
    if !path.is_file() {
        candle_core::bail!("{} not found: {hint}", path.display());
    }
    Ok(())
}

fn read_file(path: &Path, hint: &str) -> Result<Vec<u8>> {
    require_file(path, hint)?;
    std::fs::read(path).map_err(|e| io_error("cannot read", path, e))
}

/// Images from raw `(N, 3, side, side)` bytes, resized to `size` when it differs.
fn from_planes(bytes: &[u8], side: usize, size: usize) -> Result<Tensor> {
    let per = 3 * side * side;
    let n = bytes.len() / per;
    if size == side {
        let pixels: Vec<f32> = bytes.par_iter().map(|&b| f32::from(b) / 255.0).collect();
        return Tensor::from_vec(pixels, (n, 3, side, side), &Device::Cpu);
    }
    let mut out = vec![0f32; n * 3 * size * size];
    out.par_chunks_mut(3 * size * size).zip(bytes.par_chunks(per)).for_each(|(o, rec)| {
        let img = RgbImage::from_fn(side as u32, side as u32, |x, y| {
            let at = |c: usize| rec[c * side * side + y as usize * side + x as usize];
            image::Rgb([at(0), at(1), at(2)])
        });
        write_planes(o, &fill_square(DynamicImage::ImageRgb8(img), size));
    });
    Tensor::from_vec(out, (n, 3, size, size), &Device::Cpu)
}

const CIFAR_SIDE: usize = 32;
const CIFAR_RECORD: usize = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE;
const CIFAR_HINT: &str = "CIFAR-10's binary version (cifar-10-binary.tar.gz) unpacks to cifar-10-batches-bin/; `make data` explains how to get it";

/// Splits CIFAR-10 binary records (a label byte, then the red, green and
/// blue 32×32 planes, row-major) into `(pixels, labels)`; `what` names the
/// file in errors.
pub fn parse_cifar10(bytes: &[u8], what: &str) -> Result<(Vec<u8>, Vec<u32>)> {
    if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
        candle_core::bail!("{what}: {} bytes is not a whole number of CIFAR-10 records of {CIFAR_RECORD} bytes (truncated or not CIFAR-10)", bytes.len());
    }
    let mut pixels = Vec::with_capacity(bytes.len());
    let mut labels = Vec::with_capacity(bytes.len() / CIFAR_RECORD);
    for (i, rec) in bytes.chunks(CIFAR_RECORD).enumerate() {
        if rec[0] >= 10 {
            candle_core::bail!("{what}: record {i} has label {}, CIFAR-10 has 10 classes", rec[0]);
        }
        labels.push(u32::from(rec[0]));
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((pixels, labels))
}

/// The class names listed in `file` (one a line, as the archives ship them)
/// when it names as many as `known`, else `known`.
fn class_names(file: &Path, known: &[&str]) -> Vec<String> {
    let names: Vec<String> = std::fs::read_to_string(file)
        .map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    if names.len() == known.len() { names } else { known.iter().map(|s| s.to_string()).collect() }
}

/// Loads CIFAR-10's binary batches from `dir` (or `dir/cifar-10-batches-bin`)
/// as `(train, test)`: 50,000 and 10,000 images `(N, 3, S, S)`.
pub fn load_cifar10(dir: &Path, options: &ImageOptions) -> Result<(ImageDataset, ImageDataset)> {
    let dir = inside(dir, "cifar-10-batches-bin");
    let size = options.size.unwrap_or(CIFAR_SIDE);
    let classes = class_names(&dir.join("batches.meta.txt"), &CIFAR10_CLASSES);
    let load = |files: &[String], name: &str| -> Result<ImageDataset> {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for f in files {
            let path = dir.join(f);
            let (p, l) = parse_cifar10(&read_file(&path, CIFAR_HINT)?, &path.display().to_string())?;
            pixels.extend(p);
            labels.extend(l);
        }
        ImageDataset::new(from_planes(&pixels, CIFAR_SIDE, size)?, labels, classes.clone(), name)
    };
    let train: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    Ok((load(&train, "CIFAR-10 train")?, load(&["test_batch.bin".into()], "CIFAR-10 test")?))
}

const STL_SIDE: usize = 96;
const STL_IMAGE: usize = 3 * STL_SIDE * STL_SIDE;
const STL_HINT: &str = "STL-10's binary version (stl10_binary.tar.gz) unpacks to stl10_binary/; `make data` explains how to get it";

/// STL-10 stores each channel column by column: the planes row-major instead.
fn stl_to_row_major(rec: &[u8], out: &mut [u8]) {
    let s = STL_SIDE;
    for c in 0..3 {
        for col in 0..s {
            for row in 0..s {
                out[c * s * s + row * s + col] = rec[c * s * s + col * s + row];
            }
        }
    }
}

/// The number of STL-10 images in `len` bytes of `what`; an error unless whole.
fn stl_count(len: usize, what: &str) -> Result<usize> {
    if len == 0 || len % STL_IMAGE != 0 {
        candle_core::bail!("{what}: {len} bytes is not a whole number of STL-10 images of {STL_IMAGE} bytes (truncated or not STL-10)");
    }
    Ok(len / STL_IMAGE)
}

fn stl_images(bytes: &[u8], what: &str, size: usize) -> Result<Tensor> {
    stl_count(bytes.len(), what)?;
    let mut rows = vec![0u8; bytes.len()];
    rows.par_chunks_mut(STL_IMAGE).zip(bytes.par_chunks(STL_IMAGE)).for_each(|(o, r)| stl_to_row_major(r, o));
    from_planes(&rows, STL_SIDE, size)
}

/// Loads STL-10's labelled splits from `dir` (or `dir/stl10_binary`) as
/// `(train, test)`: 5,000 and 8,000 images `(N, 3, S, S)`, labels 0–9.
pub fn load_stl10(dir: &Path, options: &ImageOptions) -> Result<(ImageDataset, ImageDataset)> {
    let dir = inside(dir, "stl10_binary");
    let size = options.size.unwrap_or(STL_SIDE);
    let classes = class_names(&dir.join("class_names.txt"), &STL10_CLASSES);
    let load = |split: &str, name: &str| -> Result<ImageDataset> {
        let (xp, yp) = (dir.join(format!("{split}_X.bin")), dir.join(format!("{split}_y.bin")));
        let images = stl_images(&read_file(&xp, STL_HINT)?, &xp.display().to_string(), size)?;
        let labels: Vec<u32> = read_file(&yp, STL_HINT)?.iter().map(|&b| u32::from(b)).collect();
        if labels.len() != images.dim(0)? || labels.iter().any(|&l| !(1..=10).contains(&l)) {
            candle_core::bail!("{}: {} labels (each 1 to 10) expected for the {} images of {}", yp.display(), images.dim(0)?, images.dim(0)?, xp.display());
        }
        ImageDataset::new(images, labels.iter().map(|l| l - 1).collect(), classes.clone(), name)
    };
    Ok((load("train", "STL-10 train")?, load("test", "STL-10 test")?))
}

/// `n` images drawn without replacement (with `seed`) from STL-10's
/// unlabelled split `unlabeled_X.bin`, read record by record from the file
/// (the split is never loaded whole); one class, [`UNLABELLED`].
pub fn load_stl10_unlabelled(dir: &Path, n: usize, seed: u64, options: &ImageOptions) -> Result<ImageDataset> {
    let dir = inside(dir, "stl10_binary");
    let path = dir.join("unlabeled_X.bin");
    require_file(&path, STL_HINT)?;
    let mut file = std::fs::File::open(&path).map_err(|e| io_error("cannot open", &path, e))?;
    let len = file.metadata().map_err(|e| io_error("cannot read", &path, e))?.len() as usize;
    let total = stl_count(len, &path.display().to_string())?;
    if n == 0 || n > total {
        candle_core::bail!("{}: asked for {n} unlabelled images, it holds {total}", path.display());
    }
    let mut idx = SeededRng::new(derive_seed(seed, "stl10-unlabelled")).choose(total, n)?;
    idx.sort_unstable();
    let mut bytes = vec![0u8; n * STL_IMAGE];
    for (k, &i) in idx.iter().enumerate() {
        file.seek(SeekFrom::Start((i * STL_IMAGE) as u64)).map_err(|e| io_error("cannot read", &path, e))?;
        file.read_exact(&mut bytes[k * STL_IMAGE..(k + 1) * STL_IMAGE]).map_err(|e| io_error("cannot read", &path, e))?;
    }
    let images = stl_images(&bytes, &path.display().to_string(), options.size.unwrap_or(STL_SIDE))?;
    ImageDataset::new(images, vec![0; n], vec![UNLABELLED.to_string()], "STL-10 unlabelled")
}

/// Writes a small folder of colour images in class subfolders — the four
/// shapes of the captioned-shapes data ([`super::captioned_shapes`]: circle,
/// square, triangle, cross), each drawn in one of four colours, two sizes and
/// four positions — as `DIR/<shape>/NNN.png` (`per_class` per shape,
/// `size × size` pixels, from `seed`): a stand-in for your own photos, in
/// the layout `folder:DIR` reads, where colour, size and position are the
/// nuisances and the shape is the class. Returns `dir`.
///
/// A folder this function wrote before (it leaves a hidden marker file) is
/// replaced; any other folder that is not empty is an error, never overwritten.
pub fn write_example_folder(dir: &Path, per_class: usize, size: usize, seed: u64) -> Result<PathBuf> {
    if per_class == 0 || size == 0 {
        candle_core::bail!("write_example_folder: per_class and size must be positive, got {per_class} and {size}");
    }
    let marker = dir.join(".sslab-example-folder");
    if dir.exists() {
        let has_entries = std::fs::read_dir(dir).map_err(|e| io_error("cannot read the folder", dir, e))?.next().is_some();
        if has_entries && !marker.is_file() {
            candle_core::bail!("{} is not empty and was not written by write_example_folder; choose an empty or new folder", dir.display());
        }
        std::fs::remove_dir_all(dir).map_err(|e| io_error("cannot replace", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    std::fs::write(&marker, b"written by sslab::data::write_example_folder\n").map_err(|e| io_error("cannot write", &marker, e))?;
    let shapes = super::Attribute::Shape.values();
    // 128 combinations in shuffled cycles: enough draws for `per_class` of every shape
    let drawn = super::captioned_shapes(per_class * shapes.len() + 128, seed)?;
    let (_, _, h, w) = drawn.images.dims4()?;
    let pixels: Vec<f32> = drawn.images.flatten_all()?.to_vec1()?;
    let mut counts = vec![0usize; shapes.len()];
    for (i, a) in drawn.attributes.iter().enumerate() {
        if counts[a.shape] == per_class {
            continue;
        }
        let folder = dir.join(shapes[a.shape]);
        std::fs::create_dir_all(&folder).map_err(|e| io_error("cannot create", &folder, e))?;
        let plane = |c: usize, x: u32, y: u32| pixels[((i * 3 + c) * h + y as usize) * w + x as usize];
        let img = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgb([0, 1, 2].map(|c| (plane(c, x, y) * 255.0).round().clamp(0.0, 255.0) as u8))
        });
        let img = fill_square(DynamicImage::ImageRgb8(img), size);
        let path = folder.join(format!("{:03}.png", counts[a.shape]));
        counts[a.shape] += 1;
        img.save(&path).map_err(|e| io_error("cannot write", &path, e))?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use crate::data::LabelledData;
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sslab-images-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A `w × h` image of one colour, saved as PNG or JPEG by its name.
    fn solid(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_pixel(w, h, image::Rgb(rgb)).save(path).unwrap();
    }

    fn mean_planes(t: &Tensor, i: usize) -> [f32; 3] {
        let m: Vec<f32> = t.get(i).unwrap().mean((1, 2)).unwrap().to_vec1().unwrap();
        [m[0], m[1], m[2]]
    }

    /// Class folders of PNG and JPEG files of several sizes: classes in name
    /// order, RGB planes in R, G, B order, every fifth file of a class a test image.
    #[test]
    fn class_folders_load_as_rgb_with_a_fixed_split() {
        let d = tmp("classes");
        for i in 0..5 {
            solid(&d.join("red").join(format!("{i}.png")), 40, 30, [255, 0, 0]);
            solid(&d.join("blue").join(format!("{i}.jpg")), 20, 50, [0, 0, 255]);
        }
        std::fs::write(d.join(".DS_Store"), b"hidden files are left out").unwrap();
        let opts = ImageOptions::parse("size=16", "folder:x?size=16").unwrap();
        let (train, test) = load_folder(&d, &opts).unwrap();
        assert_eq!(train.images.dims(), &[8, 3, 16, 16]);
        assert_eq!(test.images.dims(), &[2, 3, 16, 16]);
        assert_eq!(train.class_names, ["blue", "red"]);
        assert_eq!(train.class_counts(), [4, 4]);
        assert_eq!(test.labels, [0, 1]);
        let blue = mean_planes(&train.images, 0);
        let red = mean_planes(&train.images, 4);
        assert!(blue[2] > 0.9 && blue[0] < 0.1 && blue[1] < 0.1, "{blue:?}");
        assert!((red[0] - 1.0).abs() < 1e-6 && red[1] == 0.0 && red[2] == 0.0, "{red:?}");
        // the same split whatever the seed: it depends on the file names only
        let (again, _) = load_folder(&d, &opts).unwrap();
        assert_eq!(again.labels, train.labels);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// `train/` and `test/` folders, an unlabelled flat folder, and the
    /// default size.
    #[test]
    fn train_test_folders_and_unlabelled_folders() {
        let d = tmp("split");
        for (split, n) in [("train", 3), ("test", 2)] {
            for c in ["cat", "dog"] {
                for i in 0..n {
                    solid(&d.join(split).join(c).join(format!("{i}.png")), 8, 8, [10, 20, 30]);
                }
            }
        }
        let (train, test) = load_folder(&d, &ImageOptions::default()).unwrap();
        assert_eq!((train.len(), test.len()), (6, 4));
        assert_eq!(train.images.dims()[1..], [3, DEFAULT_FOLDER_SIZE, DEFAULT_FOLDER_SIZE]);
        solid(&d.join("test").join("horse").join("0.png"), 8, 8, [0, 0, 0]);
        let e = load_folder(&d, &ImageOptions::default()).unwrap_err().to_string();
        assert!(e.contains("\"horse\"") && e.contains("cat, dog"), "{e}");
        let flat = tmp("flat");
        for i in 0..10 {
            solid(&flat.join(format!("{i:02}.png")), 12, 12, [0, 255, 0]);
        }
        let (u, ut) = load_folder(&flat, &ImageOptions { size: Some(4), skip_bad: false }).unwrap();
        assert_eq!((u.len(), ut.len(), u.class_names.clone()), (8, 2, vec![UNLABELLED.to_string()]));
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::remove_dir_all(&flat).unwrap();
    }

    /// Bad folders and files give one-line errors naming them; `skip_bad`
    /// skips files that are not images and says how many.
    #[test]
    fn bad_folders_and_files_are_named() {
        let opts = ImageOptions { size: Some(8), skip_bad: false };
        let empty = tmp("empty");
        assert!(load_folder(&empty, &opts).unwrap_err().to_string().contains("is empty"));
        assert!(load_folder(&empty.join("nope"), &opts).unwrap_err().to_string().contains("does not exist"));
        let one = tmp("one");
        solid(&one.join("only").join("a.png"), 4, 4, [1, 2, 3]);
        assert!(load_folder(&one, &opts).unwrap_err().to_string().contains("one class folder"));
        let d = tmp("bad");
        for i in 0..5 {
            solid(&d.join("a").join(format!("{i}.png")), 4, 4, [1, 2, 3]);
            solid(&d.join("b").join(format!("{i}.png")), 4, 4, [3, 2, 1]);
        }
        std::fs::write(d.join("a").join("notes.txt"), b"not an image").unwrap();
        let e = load_folder(&d, &opts).unwrap_err().to_string();
        assert!(e.contains("notes.txt") && e.contains("skip_bad"), "{e}");
        std::fs::write(d.join("b").join("broken.png"), b"\x89PNG but nothing else").unwrap();
        std::fs::remove_file(d.join("a").join("notes.txt")).unwrap();
        let e = load_folder(&d, &opts).unwrap_err().to_string();
        assert!(e.contains("broken.png") && e.contains("not a readable JPEG or PNG image"), "{e}");
        std::fs::write(d.join("a").join("notes.txt"), b"not an image").unwrap();
        let (train, test) = load_folder(&d, &ImageOptions { skip_bad: true, ..opts.clone() }).unwrap();
        assert_eq!(train.len() + test.len(), 10);
        assert!(train.name.contains("2 files skipped"), "{}", train.name);
        // an unreadable file in the middle of a split: the images after it move up, each with its label
        std::fs::write(d.join("a").join("0b.png"), b"not a png either").unwrap();
        let (train, test) = load_folder(&d, &ImageOptions { skip_bad: true, ..opts.clone() }).unwrap();
        assert_eq!(train.len() + test.len(), 10);
        assert!(train.name.contains("3 files skipped"), "{}", train.name);
        for i in 0..train.len() {
            let red = mean_planes(&train.images, i)[0];
            let want = if train.labels[i] == 0 { 1.0 } else { 3.0 } / 255.0;
            assert!((red - want).abs() < 1e-6, "image {i} (class {}): red {red}", train.labels[i]);
        }
        let mixed = tmp("mixed");
        solid(&mixed.join("a.png"), 4, 4, [0, 0, 0]);
        solid(&mixed.join("cls").join("b.png"), 4, 4, [0, 0, 0]);
        assert!(load_folder(&mixed, &opts).unwrap_err().to_string().contains("both image files and folders"));
        for p in [empty, one, d, mixed] {
            std::fs::remove_dir_all(p).unwrap();
        }
        assert!(ImageOptions::parse("size=0", "s").is_err());
        assert!(ImageOptions::parse("colour=1", "s").unwrap_err().to_string().contains("unknown option \"colour=1\""));
        assert_eq!(ImageOptions::parse("size=32&skip_bad", "s").unwrap().query(), "?size=32&skip_bad");
    }

    /// CIFAR-10 records written byte for byte: label, then the R, G and B
    /// planes row-major; 5 training batches and a test batch.
    #[test]
    fn cifar10_binary_batches() {
        let d = tmp("cifar").join("cifar-10-batches-bin");
        std::fs::create_dir_all(&d).unwrap();
        let record = |label: u8, mark: u8| {
            let mut r = vec![0u8; CIFAR_RECORD];
            r[0] = label;
            r[1 + 1] = mark; // R plane, row 0, column 1
            r[1 + 1024 + 32 * 2] = 7; // G plane, row 2, column 0
            r[1 + 2048 + 1023] = 255; // B plane, last pixel
            r
        };
        for b in 1..=5u8 {
            let bytes = [record(b, 100 + b), record(9, 1)].concat();
            std::fs::write(d.join(format!("data_batch_{b}.bin")), bytes).unwrap();
        }
        std::fs::write(d.join("test_batch.bin"), record(3, 50)).unwrap();
        let (train, test) = load_cifar10(d.parent().unwrap(), &ImageOptions::default()).unwrap();
        assert_eq!((train.images.dims(), test.images.dims()), (&[10, 3, 32, 32][..], &[1, 3, 32, 32][..]));
        assert_eq!(train.labels, [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
        assert_eq!(train.class_names[3], "cat");
        let px = |t: &Tensor, i: usize, c: usize, y: usize, x: usize| -> f32 { t.get(i).unwrap().get(c).unwrap().get(y).unwrap().get(x).unwrap().to_scalar().unwrap() };
        assert_eq!(px(&train.images, 2, 0, 0, 1), 102.0 / 255.0);
        assert_eq!(px(&train.images, 2, 1, 2, 0), 7.0 / 255.0);
        assert_eq!(px(&train.images, 2, 2, 31, 31), 1.0);
        let (small, _) = load_cifar10(&d, &ImageOptions { size: Some(16), skip_bad: false }).unwrap();
        assert_eq!(small.images.dims(), &[10, 3, 16, 16]);
        // the archive's batches.meta.txt names the classes when it lists ten
        std::fs::write(d.join("batches.meta.txt"), (0..10).map(|i| format!("c{i}\n")).collect::<String>()).unwrap();
        assert_eq!(load_cifar10(&d, &ImageOptions::default()).unwrap().0.class_names[3], "c3");
        std::fs::write(d.join("test_batch.bin"), &record(3, 50)[..100]).unwrap();
        let e = load_cifar10(&d, &ImageOptions::default()).unwrap_err().to_string();
        assert!(e.contains("test_batch.bin") && e.contains("not a whole number"), "{e}");
        std::fs::remove_file(d.join("data_batch_4.bin")).unwrap();
        let e = load_cifar10(&d, &ImageOptions::default()).unwrap_err().to_string();
        assert!(e.contains("data_batch_4.bin not found") && e.contains("make data"), "{e}");
        assert!(parse_cifar10(&record(10, 0), "x").unwrap_err().to_string().contains("label 10"));
        std::fs::remove_dir_all(d.parent().unwrap()).unwrap();
    }

    /// STL-10 files written byte for byte: each channel column by column,
    /// labels 1–10; the unlabelled split is sampled record by record.
    #[test]
    fn stl10_binary_files() {
        let d = tmp("stl").join("stl10_binary");
        std::fs::create_dir_all(&d).unwrap();
        let image = |mark: u8| {
            let mut x = vec![0u8; STL_IMAGE];
            x[9216 + 5 * 96 + 2] = mark; // G plane, column 5, row 2
            x
        };
        std::fs::write(d.join("train_X.bin"), [image(77), image(78)].concat()).unwrap();
        std::fs::write(d.join("train_y.bin"), [1u8, 10]).unwrap();
        std::fs::write(d.join("test_X.bin"), image(79)).unwrap();
        std::fs::write(d.join("test_y.bin"), [4u8]).unwrap();
        std::fs::write(d.join("unlabeled_X.bin"), (0..5).flat_map(|i| image(i)).collect::<Vec<u8>>()).unwrap();
        let (train, test) = load_stl10(d.parent().unwrap(), &ImageOptions::default()).unwrap();
        assert_eq!(train.images.dims(), &[2, 3, 96, 96]);
        assert_eq!((train.labels.clone(), test.labels.clone()), (vec![0, 9], vec![3]));
        let v: f32 = train.images.get(1).unwrap().get(1).unwrap().get(2).unwrap().get(5).unwrap().to_scalar().unwrap();
        assert_eq!(v, 78.0 / 255.0);
        assert_eq!(train.class_names[7], "monkey");
        let u = load_stl10_unlabelled(&d, 3, 0, &ImageOptions { size: Some(32), skip_bad: false }).unwrap();
        assert_eq!((u.images.dims(), u.class_names.clone()), (&[3, 3, 32, 32][..], vec![UNLABELLED.to_string()]));
        let again = load_stl10_unlabelled(&d, 3, 0, &ImageOptions { size: Some(32), skip_bad: false }).unwrap();
        assert_eq!(u.images.flatten_all().unwrap().to_vec1::<f32>().unwrap(), again.images.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert!(load_stl10_unlabelled(&d, 6, 0, &ImageOptions::default()).unwrap_err().to_string().contains("holds 5"));
        std::fs::write(d.join("test_y.bin"), [11u8]).unwrap();
        assert!(load_stl10(&d, &ImageOptions::default()).unwrap_err().to_string().contains("test_y.bin"));
        std::fs::remove_dir_all(d.parent().unwrap()).unwrap();
    }

    /// The example folder is a labelled folder of colour PNGs.
    #[test]
    fn example_folder_round_trips() {
        let d = tmp("example");
        write_example_folder(&d, 5, 20, 0).unwrap();
        let (train, test) = load_folder(&d, &ImageOptions { size: Some(20), skip_bad: false }).unwrap();
        assert_eq!((train.len(), test.len(), train.class_names.clone()), (16, 4, vec!["circle".to_string(), "cross".into(), "square".into(), "triangle".into()]));
        assert_eq!(train.class_counts(), [4, 4, 4, 4]);
        let var: f32 = train.images.flatten_all().unwrap().var(0).unwrap().to_scalar().unwrap();
        assert!(var > 0.01, "colours vary: {var}");
        // written again (fewer per class): replaced, not mixed with the old files
        write_example_folder(&d, 10, 20, 1).unwrap();
        let (train, test) = load_folder(&d, &ImageOptions { size: Some(20), skip_bad: false }).unwrap();
        assert_eq!(train.len() + test.len(), 40);
        let other = tmp("not-ours");
        std::fs::write(other.join("keep.txt"), b"mine").unwrap();
        assert!(write_example_folder(&other, 1, 8, 0).unwrap_err().to_string().contains("not empty"));
        assert!(other.join("keep.txt").is_file());
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
    }
}
