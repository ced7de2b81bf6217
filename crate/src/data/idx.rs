//! The IDX format of MNIST (and Fashion-MNIST, KMNIST…), gzipped or raw.
//!
//! An IDX file is a big-endian header — two zero bytes, a type code (`0x08`
//! for unsigned bytes), the number of dimensions — then one u32 per
//! dimension, then the data. See Y. LeCun et al., "The MNIST database".

use super::{ImageDataset, LabelledData};
use candle_core::{Device, Result, Tensor};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The contents of an IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    /// Size of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Parses IDX bytes (already decompressed); `what` names the source in errors.
pub fn parse_idx(bytes: &[u8], what: &str) -> Result<Idx> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        candle_core::bail!("{what} is not an IDX file (bad magic number)");
    }
    if bytes[2] != 0x08 {
        candle_core::bail!("{what}: IDX type code {:#04x} is not supported (only unsigned bytes, 0x08)", bytes[2]);
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        candle_core::bail!("{what}: truncated IDX header ({} bytes, rank {rank})", bytes.len());
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes([bytes[4 + 4 * i], bytes[5 + 4 * i], bytes[6 + 4 * i], bytes[7 + 4 * i]]) as usize)
        .collect();
    let n: usize = dims.iter().product();
    let body = &bytes[header..];
    if body.len() != n {
        candle_core::bail!(
            "{what}: header says {dims:?} = {n} values but the file holds {} (truncated or corrupt)",
            body.len()
        );
    }
    Ok(Idx { dims, data: body.to_vec() })
}

/// Reads an IDX file; a name ending in `.gz` is decompressed.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let raw = std::fs::read(path)
        .map_err(|e| candle_core::Error::Msg(format!("cannot read {}: {e}", path.display())))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| candle_core::Error::Msg(format!("{} is not valid gzip: {e}", path.display())))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes, &path.display().to_string())
}

/// `DIR/NAME.gz` or `DIR/NAME`, whichever exists.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)].into_iter().find(|p| p.is_file())
}

/// Loads `PREFIX-images-idx3-ubyte` and `PREFIX-labels-idx1-ubyte` (each
/// gzipped or raw) from `dir` as a data set of `(N, 1, H, W)` images in `[0, 1]`.
pub fn load_idx_images(dir: &Path, prefix: &str) -> Result<ImageDataset> {
    let img_name = format!("{prefix}-images-idx3-ubyte");
    let lab_name = format!("{prefix}-labels-idx1-ubyte");
    let missing = |name: &str| {
        candle_core::Error::Msg(format!(
            "{}/{name}(.gz) not found: run `make data`, or point SSLAB_DATA_DIR at a folder with mnist/",
            dir.display()
        ))
    };
    let img_path = find(dir, &img_name).ok_or_else(|| missing(&img_name))?;
    let lab_path = find(dir, &lab_name).ok_or_else(|| missing(&lab_name))?;
    let images = read_idx(&img_path)?;
    let labels = read_idx(&lab_path)?;
    let (n, h, w) = match images.dims[..] {
        [n, h, w] => (n, h, w),
        ref d => candle_core::bail!("{}: expected 3 dimensions (N, H, W), got {d:?}", img_path.display()),
    };
    if labels.dims != [n] {
        candle_core::bail!(
            "{} holds {:?} labels for {n} images in {}",
            lab_path.display(),
            labels.dims,
            img_path.display()
        );
    }
    let num_classes = labels.data.iter().copied().max().map_or(0, |m| m as usize + 1).max(10);
    let pixels: Vec<f32> = images.data.iter().map(|&b| f32::from(b) / 255.0).collect();
    let t = Tensor::from_vec(pixels, (n, 1, h, w), &Device::Cpu)?;
    let names = (0..num_classes).map(|c| c.to_string()).collect();
    let name = format!("{} {prefix}", dir.file_name().map_or("idx".into(), |s| s.to_string_lossy().to_string()));
    ImageDataset::new(t, labels.data.iter().map(|&l| u32::from(l)).collect(), names, &name)
}

/// Loads an IDX folder as `(train, test)`: `train-*` and `t10k-*` when both
/// exist, otherwise the one split present, its last 20% held out as test.
pub fn load_idx_dir(dir: &Path) -> Result<(ImageDataset, ImageDataset)> {
    if !dir.is_dir() {
        candle_core::bail!("IDX folder {} does not exist: run `make data` or check SSLAB_DATA_DIR", dir.display());
    }
    let has = |p: &str| find(dir, &format!("{p}-images-idx3-ubyte")).is_some();
    match (has("train"), has("t10k")) {
        (true, true) => Ok((load_idx_images(dir, "train")?, load_idx_images(dir, "t10k")?)),
        (true, false) => load_idx_images(dir, "train")?.split_last(0.2),
        (false, true) => load_idx_images(dir, "t10k")?.split_last(0.2),
        (false, false) => candle_core::bail!(
            "{} holds no train-images-idx3-ubyte or t10k-images-idx3-ubyte (gzipped or raw)",
            dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn idx_parses_and_rejects_corrupt_files() {
        let ok = parse_idx(&idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]), "x").unwrap();
        assert_eq!(ok.dims, vec![2, 3]);
        assert_eq!(ok.data, vec![1, 2, 3, 4, 5, 6]);
        let err = parse_idx(&idx_bytes(&[2, 3], &[1, 2]), "f.idx").unwrap_err().to_string();
        assert!(err.contains("f.idx") && err.contains("truncated"), "{err}");
        assert!(parse_idx(b"PK\x03\x04", "z").unwrap_err().to_string().contains("magic"));
        assert!(parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 0], "f").unwrap_err().to_string().contains("0x0d"));
    }

    #[test]
    fn idx_folder_loads_gz_and_raw_and_names_missing_files() {
        let dir = std::env::temp_dir().join(format!("sslab-idx-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let imgs: Vec<u8> = (0..5 * 4).map(|i| (i * 10) as u8).collect();
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&idx_bytes(&[5, 2, 2], &imgs)).unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
        let err = load_idx_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("t10k-labels-idx1-ubyte"), "{err}");
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(&[5], &[0, 1, 2, 3, 9])).unwrap();
        let (train, test) = load_idx_dir(&dir).unwrap();
        assert_eq!((train.len(), test.len()), (4, 1));
        assert_eq!(test.labels, vec![9]);
        assert_eq!(train.image_shape().unwrap(), (1, 2, 2));
        let px: Vec<f32> = train.images.flatten_all().unwrap().to_vec1().unwrap();
        assert!((px[1] - 10.0 / 255.0).abs() < 1e-6);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sslab-idx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_split(dir: &Path, prefix: &str, n: usize, first_label: u8) {
        let imgs: Vec<u8> = (0..n * 4).map(|i| i as u8).collect();
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), idx_bytes(&[n as u32, 2, 2], &imgs)).unwrap();
        let labels: Vec<u8> = (0..n).map(|i| first_label + (i % 3) as u8).collect();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx_bytes(&[n as u32], &labels)).unwrap();
    }

    #[test]
    fn idx_one_split_holds_out_its_last_20_percent() {
        let dir = temp_dir("train-only");
        write_split(&dir, "train", 10, 0);
        let (train, test) = load_idx_dir(&dir).unwrap();
        assert_eq!((train.len(), test.len()), (8, 2));
        // the test split is the last two images, in file order (deterministic)
        let px: Vec<f32> = test.images.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(px[0], 32.0 / 255.0);
        assert_eq!(test.labels, vec![2, 0]);
        assert_eq!(train.name, format!("{} train", dir.file_name().unwrap().to_string_lossy()));
        let again = load_idx_dir(&dir).unwrap().1;
        assert_eq!(again.labels, test.labels);
        // with both splits present, each file is one split
        write_split(&dir, "t10k", 5, 1);
        let (train, test) = load_idx_dir(&dir).unwrap();
        assert_eq!((train.len(), test.len()), (10, 5));
        assert_eq!(test.labels, vec![1, 2, 3, 1, 2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn idx_truncated_or_mismatched_files_name_the_file() {
        let dir = temp_dir("corrupt");
        write_split(&dir, "t10k", 5, 0);
        // a truncated body
        let img = dir.join("t10k-images-idx3-ubyte");
        let bytes = std::fs::read(&img).unwrap();
        std::fs::write(&img, &bytes[..bytes.len() - 3]).unwrap();
        let err = load_idx_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("t10k-images-idx3-ubyte") && err.contains("truncated"), "{err}");
        // a truncated gzip stream
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes).unwrap();
        let gz = gz.finish().unwrap();
        std::fs::remove_file(&img).unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), &gz[..gz.len() / 2]).unwrap();
        let err = load_idx_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("t10k-images-idx3-ubyte.gz"), "{err}");
        // labels that do not match the images
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&bytes).unwrap();
            e.finish().unwrap()
        })
        .unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(&[4], &[0, 1, 2, 3])).unwrap();
        let err = load_idx_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("t10k-labels-idx1-ubyte") && err.contains("5 images"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = load_idx_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
