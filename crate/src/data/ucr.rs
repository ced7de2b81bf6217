//! Time series in the `.ts` format of the UCR/UEA classification archive.
//!
//! [0] H. A. Dau et al., "The UCR Time Series Archive", 2018, arXiv:1810.07758.
//! [1] A. Bagnall et al., "The UEA multivariate time series classification
//!     archive, 2018", 2018, arXiv:1811.00075 (defines the `.ts` format, as
//!     written by `sktime`).
//!
//! A `.ts` file is a header of `@key value` lines, then `@data` and one series
//! per line; `#` lines are comments:
//!
//! ```text
//! @problemName GunPoint
//! @univariate true            (or @dimensions C)
//! @equalLength true
//! @seriesLength 150
//! @classLabel true 1 2        (the class names, in label order)
//! @data
//! -0.64,-0.64,…,-0.65:1       (univariate: values, then ":label")
//! 0.1,0.2,0.3:1.0,1.1,1.2:2   (multivariate: one block per dimension, ':'-separated)
//! ```
//!
//! Missing values (`?`, or `NaN`) are read as `f32::NAN`: they are kept, not
//! guessed. [`SeriesDataset::missing_count`] counts them, [`SeriesDataset::z_normalize`]
//! ignores them in its statistics, and [`SeriesDataset::fill_missing`] replaces
//! them. Unequal lengths, time stamps and unlabelled (regression) files are
//! refused with an error naming the file and line.

use candle_core::{DType, Device, Result, Tensor};
use std::path::Path;

super::labelled::labelled_data! {
    /// A labelled set of equal-length time series held in memory (`"GunPoint TRAIN"`, `"synthetic-series"`…).
    SeriesDataset {
        /// Series `(N, C, T)`, f32 (missing values are NaN), on the CPU.
        series
    },
    "series"
}

impl SeriesDataset {
    /// Checks the parts agree and builds the data set.
    pub fn new(series: Tensor, labels: Vec<u32>, class_names: Vec<String>, name: &str) -> Result<Self> {
        super::check_parts(&series, "(N, C, T)", &labels, &class_names, "SeriesDataset", "series", name)?;
        Ok(Self { series: series.to_dtype(DType::F32)?, labels, class_names, name: name.to_string() })
    }

    /// `(C, T)`: channels (dimensions) and length of one series.
    pub fn series_shape(&self) -> Result<(usize, usize)> {
        let (_, c, t) = self.series.dims3()?;
        Ok((c, t))
    }

    /// Number of missing (NaN) values.
    pub fn missing_count(&self) -> Result<usize> {
        let v: Vec<f32> = self.series.flatten_all()?.to_vec1()?;
        Ok(v.iter().filter(|x| x.is_nan()).count())
    }

    /// The data set with every missing (NaN) value replaced by `value`.
    pub fn fill_missing(&self, value: f32) -> Result<Self> {
        let v: Vec<f32> = self.series.flatten_all()?.to_vec1()?;
        let v: Vec<f32> = v.into_iter().map(|x| if x.is_nan() { value } else { x }).collect();
        let series = Tensor::from_vec(v, self.series.shape(), self.series.device())?;
        Ok(Self { series, ..self.clone() })
    }

    /// Z-normalises every series and channel on its own:
    /// `x ← (x − mean) / max(std, 1e-8)` over time, as is usual for the UCR
    /// archive. Missing values stay NaN and are left out of mean and std.
    pub fn z_normalize(&self) -> Result<Self> {
        let (_, _, t) = self.series.dims3()?;
        let mut v: Vec<f32> = self.series.flatten_all()?.to_vec1()?;
        if t > 0 {
            for row in v.chunks_mut(t) {
                z_normalize_slice(row);
            }
        }
        let series = Tensor::from_vec(v, self.series.shape(), self.series.device())?;
        Ok(Self { series, ..self.clone() })
    }
}

/// Z-normalises `xs` in place, ignoring NaN in the statistics (population std, floor 1e-8).
pub fn z_normalize_slice(xs: &mut [f32]) {
    let finite: Vec<f64> = xs.iter().filter(|x| !x.is_nan()).map(|&x| f64::from(x)).collect();
    if finite.is_empty() {
        return;
    }
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let std = (finite.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt().max(1e-8);
    for x in xs.iter_mut() {
        *x = ((f64::from(*x) - mean) / std) as f32;
    }
}

/// The header of a `.ts` file.
#[derive(Clone, Debug, Default, PartialEq)]
struct Header {
    problem: Option<String>,
    dimensions: Option<usize>,
    series_length: Option<usize>,
    class_names: Vec<String>,
}

fn parse_bool(v: &str, key: &str, what: &str, line: usize) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => candle_core::bail!("{what}, line {line}: {key} must be true or false, got {v:?}"),
    }
}

fn parse_value(tok: &str, what: &str, line: usize) -> Result<f32> {
    let tok = tok.trim();
    if tok == "?" || tok.eq_ignore_ascii_case("nan") {
        return Ok(f32::NAN);
    }
    tok.parse::<f32>()
        .map_err(|_| candle_core::Error::Msg(format!("{what}, line {line}: {tok:?} is not a number")))
}

/// Parses the text of a `.ts` file; `what` names the source in errors (a
/// file name, usually), and every error names it and the line.
///
/// Returns the series `(N, C, T)` with labels indexing the `@classLabel` list.
///
/// ```
/// let ts = "@problemName toy\n@univariate true\n@classLabel true a b\n@data\n1,2,3:b\n4,5,6:a\n";
/// let d = sslab::data::parse_ts(ts, "toy.ts")?;
/// assert_eq!(d.series.dims(), &[2, 1, 3]);
/// assert_eq!(d.labels, vec![1, 0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn parse_ts(text: &str, what: &str) -> Result<SeriesDataset> {
    let mut header = Header::default();
    let mut univariate: Option<bool> = None;
    let mut has_labels = false;
    let mut in_data = false;
    let mut values: Vec<f32> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut shape: Option<(usize, usize)> = None; // (C, T) fixed by the first row
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if !in_data {
            if !l.starts_with('@') {
                candle_core::bail!("{what}, line {line}: expected a @key line or @data before the series, got {l:?}");
            }
            let mut parts = l.split_whitespace();
            let key = parts.next().unwrap_or("").to_ascii_lowercase();
            let rest: Vec<&str> = parts.collect();
            let first = rest.first().copied().unwrap_or("");
            match key.as_str() {
                "@problemname" => header.problem = Some(rest.join(" ")),
                "@timestamps" => {
                    if parse_bool(first, "@timeStamps", what, line)? {
                        candle_core::bail!("{what}, line {line}: series with time stamps are not supported");
                    }
                }
                "@missing" => {
                    parse_bool(first, "@missing", what, line)?;
                }
                "@univariate" => univariate = Some(parse_bool(first, "@univariate", what, line)?),
                "@dimensions" | "@dimension" => {
                    let d = first.parse::<usize>().ok().filter(|&d| d > 0);
                    header.dimensions = Some(d.ok_or_else(|| {
                        candle_core::Error::Msg(format!("{what}, line {line}: @dimensions must be a positive integer, got {first:?}"))
                    })?);
                }
                "@equallength" => {
                    if !parse_bool(first, "@equalLength", what, line)? {
                        candle_core::bail!(
                            "{what}, line {line}: unequal-length series (@equalLength false) are not supported; \
                             pad or resample them first"
                        );
                    }
                }
                "@serieslength" => {
                    let n = first.parse::<usize>().ok().filter(|&n| n > 0);
                    header.series_length = Some(n.ok_or_else(|| {
                        candle_core::Error::Msg(format!("{what}, line {line}: @seriesLength must be a positive integer, got {first:?}"))
                    })?);
                }
                "@classlabel" => {
                    if !parse_bool(first, "@classLabel", what, line)? {
                        candle_core::bail!("{what}, line {line}: unlabelled (@classLabel false) files are not supported");
                    }
                    header.class_names = rest[1..].iter().map(|s| s.to_string()).collect();
                    if header.class_names.is_empty() {
                        candle_core::bail!("{what}, line {line}: @classLabel true lists no class names");
                    }
                    has_labels = true;
                }
                "@targetlabel" => {
                    candle_core::bail!("{what}, line {line}: regression files (@targetLabel) are not supported")
                }
                "@data" => {
                    if !has_labels {
                        candle_core::bail!("{what}, line {line}: @data before any `@classLabel true <names…>` line");
                    }
                    match (univariate, header.dimensions) {
                        (Some(true), Some(d)) if d != 1 => candle_core::bail!(
                            "{what}, line {line}: @univariate true contradicts @dimensions {d}"
                        ),
                        (Some(true), _) => header.dimensions = Some(1),
                        _ => {}
                    }
                    in_data = true;
                }
                _ => {} // other keys are informational
            }
            continue;
        }
        // A data row: dimension blocks separated by ':', the label last.
        let blocks: Vec<&str> = l.split(':').collect();
        if blocks.len() < 2 {
            candle_core::bail!("{what}, line {line}: a series needs values and a label separated by ':', got {l:?}");
        }
        let label = blocks[blocks.len() - 1].trim();
        let Some(class) = header.class_names.iter().position(|c| c == label) else {
            candle_core::bail!(
                "{what}, line {line}: label {label:?} is not one of the @classLabel names {:?}",
                header.class_names
            );
        };
        let dims = &blocks[..blocks.len() - 1];
        if let Some(d) = header.dimensions {
            if dims.len() != d {
                candle_core::bail!("{what}, line {line}: {} dimensions but the header says {d}", dims.len());
            }
        }
        let mut row_len = None;
        for (c, block) in dims.iter().enumerate() {
            let vals = block.split(',').map(|t| parse_value(t, what, line)).collect::<Result<Vec<_>>>()?;
            match row_len {
                None => row_len = Some(vals.len()),
                Some(t) if t != vals.len() => candle_core::bail!(
                    "{what}, line {line}: dimension {c} has {} values but dimension 0 has {t} (ragged series are not supported)",
                    vals.len()
                ),
                _ => {}
            }
            values.extend(vals);
        }
        let t = row_len.unwrap_or(0);
        if let Some(len) = header.series_length {
            if t != len {
                candle_core::bail!("{what}, line {line}: series of length {t} but @seriesLength is {len}");
            }
        }
        match shape {
            None => shape = Some((dims.len(), t)),
            Some((c0, t0)) if (c0, t0) != (dims.len(), t) => candle_core::bail!(
                "{what}, line {line}: series of {} dimension(s) × length {t}, but earlier series are {c0} × {t0} \
                 (ragged series are not supported)",
                dims.len()
            ),
            _ => {}
        }
        labels.push(class as u32);
    }
    if !in_data {
        candle_core::bail!("{what}: no @data line (is this a .ts file?)");
    }
    let Some((c, t)) = shape else {
        candle_core::bail!("{what}: no series after @data");
    };
    let series = Tensor::from_vec(values, (labels.len(), c, t), &Device::Cpu)?;
    let name = header.problem.unwrap_or_else(|| what.to_string());
    SeriesDataset::new(series, labels, header.class_names, &name)
}

/// Reads and parses one `.ts` file (see [`parse_ts`]); errors name the file.
pub fn read_ts(path: &Path) -> Result<SeriesDataset> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| candle_core::Error::Msg(format!("cannot read {}: {e}", path.display())))?;
    parse_ts(&text, &path.display().to_string())
}

/// Loads `DIR/NAME_TRAIN.ts` and `DIR/NAME_TEST.ts` as `(train, test)`.
///
/// Both files must list the same class names, so labels mean the same in both.
pub fn load_ucr(dir: &Path, name: &str) -> Result<(SeriesDataset, SeriesDataset)> {
    let path = |split: &str| dir.join(format!("{name}_{split}.ts"));
    for split in ["TRAIN", "TEST"] {
        if !path(split).is_file() {
            candle_core::bail!(
                "{} not found: run `make data`, or point SSLAB_DATA_DIR at a folder with ucr/{name}/",
                path(split).display()
            );
        }
    }
    let mut train = read_ts(&path("TRAIN"))?;
    let mut test = read_ts(&path("TEST"))?;
    if train.class_names != test.class_names {
        candle_core::bail!(
            "{name}: TRAIN lists classes {:?} but TEST lists {:?}",
            train.class_names,
            test.class_names
        );
    }
    if train.series_shape()?.0 != test.series_shape()?.0 {
        candle_core::bail!(
            "{name}: TRAIN has {:?} (C, T) but TEST has {:?}",
            train.series_shape()?,
            test.series_shape()?
        );
    }
    train.name = format!("{name} TRAIN");
    test.name = format!("{name} TEST");
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use crate::data::LabelledData;
    use crate::rng::SeededRng;
    use super::*;

    const UNI: &str = "# a comment\n@problemName Toy\n@timeStamps false\n@missing true\n@univariate true\n\
        @equalLength true\n@seriesLength 4\n@classLabel true 1 2 3\n@data\n\
        1,2,3,4:2\n0.5,?,1.5,2:1\n\n-1,-2,-3,-4:3\n";

    #[test]
    fn ucr_parses_univariate_with_missing_values() {
        let d = parse_ts(UNI, "toy.ts").unwrap();
        assert_eq!(d.series.dims(), &[3, 1, 4]);
        assert_eq!(d.labels, vec![1, 0, 2]);
        assert_eq!(d.class_names, vec!["1", "2", "3"]);
        assert_eq!(d.name, "Toy");
        assert_eq!(d.missing_count().unwrap(), 1);
        let v: Vec<f32> = d.fill_missing(0.0).unwrap().series.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&v[..8], &[1., 2., 3., 4., 0.5, 0., 1.5, 2.]);
        // z-normalisation: each row mean 0, std 1; NaN stays NaN
        let z = d.z_normalize().unwrap();
        let v: Vec<f32> = z.series.flatten_all().unwrap().to_vec1().unwrap();
        let row: Vec<f32> = v[..4].to_vec();
        let mean = row.iter().sum::<f32>() / 4.0;
        let var = row.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
        assert!(v[5].is_nan() && v[4].is_finite());
        // numpy: x = np.array([0.5, 1.5, 2.0]); (x - x.mean()) / x.std() -> [-1.33630621, 0.26726124, 1.06904497]
        assert!((v[4] + 1.336_306_2).abs() < 1e-5 && (v[6] - 0.267_261_24).abs() < 1e-5);
    }

    #[test]
    fn ucr_parses_multivariate() {
        let ts = "@problemName M\n@univariate false\n@dimensions 2\n@classLabel true up down\n@data\n\
                  1,2,3:10,20,30:down\n4,5,6:40,50,60:up\n";
        let d = parse_ts(ts, "m.ts").unwrap();
        assert_eq!(d.series.dims(), &[2, 2, 3]);
        assert_eq!(d.labels, vec![1, 0]);
        let v: Vec<f32> = d.series.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![1., 2., 3., 10., 20., 30., 4., 5., 6., 40., 50., 60.]);
        // without @dimensions the first row decides
        let d = parse_ts(&ts.replace("@dimensions 2\n", ""), "m.ts").unwrap();
        assert_eq!(d.series_shape().unwrap(), (2, 3));
    }

    #[test]
    fn ucr_errors_name_file_and_line() {
        let bad_label = UNI.replace("-1,-2,-3,-4:3", "-1,-2,-3,-4:7");
        let err = parse_ts(&bad_label, "toy.ts").unwrap_err().to_string();
        assert!(err.contains("toy.ts, line 13") && err.contains("\"7\""), "{err}");
        let ragged = UNI.replace("-1,-2,-3,-4:3", "-1,-2,-3:3");
        let err = parse_ts(&ragged, "toy.ts").unwrap_err().to_string();
        assert!(err.contains("toy.ts, line 13") && err.contains("length 3"), "{err}");
        let ragged = UNI.replace("@seriesLength 4\n", "").replace("-1,-2,-3,-4:3", "-1,-2,-3:3");
        let err = parse_ts(&ragged, "toy.ts").unwrap_err().to_string();
        assert!(err.contains("toy.ts, line 12") && err.contains("ragged"), "{err}");
        let ragged_dims = "@dimensions 2\n@classLabel true a\n@data\n1,2:3:a\n";
        let err = parse_ts(ragged_dims, "r.ts").unwrap_err().to_string();
        assert!(err.contains("r.ts, line 4") && err.contains("ragged"), "{err}");
        let err = parse_ts(&UNI.replace("0.5,?", "0.5,x"), "toy.ts").unwrap_err().to_string();
        assert!(err.contains("line 11") && err.contains("\"x\""), "{err}");
        assert!(parse_ts("@classLabel true a\n", "e.ts").unwrap_err().to_string().contains("no @data"));
        assert!(parse_ts("@data\n1:a\n", "e.ts").unwrap_err().to_string().contains("@classLabel"));
        assert!(parse_ts(&UNI.replace("@equalLength true", "@equalLength false"), "u.ts").is_err());
        let err = load_ucr(Path::new("/no/such/dir"), "X").unwrap_err().to_string();
        assert!(err.contains("/no/such/dir/X_TRAIN.ts"), "{err}");
    }

    #[test]
    fn ucr_dataset_select_and_subset() {
        let d = parse_ts(UNI, "toy.ts").unwrap();
        let s = d.select(&[2, 0]).unwrap();
        assert_eq!(s.labels, vec![2, 1]);
        let (x, y) = s.batch(&[1], &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[1, 1, 4]);
        assert_eq!(y.to_vec1::<u32>().unwrap(), vec![1]);
        let mut rng = SeededRng::new(0);
        assert_eq!(d.per_class_subset(1, &mut rng).unwrap().class_counts(), vec![1, 1, 1]);
        assert!(d.per_class_subset(2, &mut rng).unwrap_err().to_string().contains("has only 1"));
        assert!(d.select(&[3]).is_err());
        assert_eq!(d.take(2).unwrap().len(), 2);
    }

    #[test]
    fn ucr_gunpoint_from_the_data_folder() {
        let Ok(root) = crate::data::data_dir() else { return };
        let dir = root.join("ucr").join("GunPoint");
        if !dir.join("GunPoint_TRAIN.ts").is_file() {
            return;
        }
        let (train, test) = load_ucr(&dir, "GunPoint").unwrap();
        assert_eq!((train.len(), test.len()), (50, 150));
        assert_eq!(train.series_shape().unwrap(), (1, 150));
        assert_eq!(test.num_classes(), 2);
        assert_eq!(train.class_counts(), vec![24, 26]);
        assert_eq!(train.missing_count().unwrap(), 0);
    }
}
