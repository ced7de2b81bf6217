//! Scatter plots of 2-D points coloured by class, and the PCA that maps
//! embeddings to 2-D for them.
//!
//! [0] K. Pearson, "On Lines and Planes of Closest Fit to Systems of Points
//!     in Space", 1901 (principal component analysis).
//!
//! For rows `xᵢ ∈ R^D` with mean `μ`, the first two principal axes `v₁, v₂`
//! are the top eigenvectors of the covariance, and each point maps to its
//! coordinates along them:
//!
//! ```text
//! C  = (1 / (N − 1)) Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ,   C v_k = λ_k v_k,   λ₁ ≥ λ₂
//! yᵢ = ((xᵢ − μ)·v₁, (xᵢ − μ)·v₂)
//! ```
//!
//! Eigenvectors have no intrinsic sign; each axis is flipped so that its
//! largest-magnitude entry is positive, which makes the picture deterministic.

use super::line::save_text;
use super::{emit_or_report, PALETTE};
use crate::metrics::{symmetric_eigen, MAX_EIGEN_DIM};
use candle_core::{DType, Device, Result, Tensor};
use plotters::prelude::*;
use std::path::Path;

fn plot_err<E: std::fmt::Debug>(e: E) -> candle_core::Error {
    candle_core::Error::Msg(format!("drawing the scatter plot failed: {e:?}"))
}

/// The class colours: matplotlib's tab10 (the crate palette plus two), cycled.
fn class_color(c: usize) -> RGBColor {
    const EXTRA: [(u8, u8, u8); 2] = [(188, 189, 34), (23, 190, 207)];
    let k = c % (PALETTE.len() + EXTRA.len());
    let (r, g, b) = if k < PALETTE.len() { PALETTE[k] } else { EXTRA[k - PALETTE.len()] };
    RGBColor(r, g, b)
}

/// PCA to 2-D on the host: the `N` projected points and the fraction of the
/// variance each of the two axes explains.
pub(crate) fn pca_2d_host(x: &Tensor) -> Result<(Vec<(f64, f64)>, [f64; 2])> {
    let ok = matches!(x.dims(), &[n, d] if n >= 2 && d >= 1);
    if !ok {
        candle_core::bail!("pca_2d expects points (N, D) with N ≥ 2 and D ≥ 1, got {:?}", x.dims());
    }
    let (n, d) = x.dims2()?;
    if n.min(d) > MAX_EIGEN_DIM {
        candle_core::bail!(
            "pca_2d: min(N, D) must be ≤ {MAX_EIGEN_DIM} for the host eigen solver, got {:?}; use fewer points",
            x.dims()
        );
    }
    let mut v: Vec<f64> = x.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        candle_core::bail!("pca_2d: non-finite value at ({}, {}) of {:?}", i / d, i % d, x.dims());
    }
    for j in 0..d {
        let mean = (0..n).map(|i| v[i * d + j]).sum::<f64>() / n as f64;
        (0..n).for_each(|i| v[i * d + j] -= mean);
    }
    // Principal axes (unit vectors in R^D) from the smaller of XᵀX and XXᵀ.
    let (vals, axes): (Vec<f64>, Vec<Vec<f64>>) = if d <= n {
        let mut c = vec![0f64; d * d];
        for row in v.chunks(d) {
            for a in 0..d {
                for b in a..d {
                    c[a * d + b] += row[a] * row[b];
                }
            }
        }
        for a in 0..d {
            for b in 0..a {
                c[a * d + b] = c[b * d + a];
            }
        }
        let (vals, vecs) = symmetric_eigen(&c, d, true)?;
        let axes = (0..d.min(2)).map(|k| (0..d).map(|j| vecs[j * d + k]).collect()).collect();
        (vals, axes)
    } else {
        let mut g = vec![0f64; n * n];
        for a in 0..n {
            for b in a..n {
                let s: f64 = (0..d).map(|j| v[a * d + j] * v[b * d + j]).sum();
                g[a * n + b] = s;
                g[b * n + a] = s;
            }
        }
        let (vals, vecs) = symmetric_eigen(&g, n, true)?;
        // v_k = Xᵀ u_k / ‖Xᵀ u_k‖
        let axes = (0..2)
            .map(|k| {
                let mut ax: Vec<f64> = (0..d).map(|j| (0..n).map(|i| v[i * d + j] * vecs[i * n + k]).sum()).collect();
                let norm = ax.iter().map(|a| a * a).sum::<f64>().sqrt();
                ax.iter_mut().for_each(|a| *a = if norm > 1e-300 { *a / norm } else { 0.0 });
                ax
            })
            .collect();
        (vals, axes)
    };
    let axes: Vec<Vec<f64>> = axes
        .into_iter()
        .map(|mut ax| {
            let big = ax.iter().copied().fold(0f64, |m, a| if a.abs() > m.abs() { a } else { m });
            if big < 0.0 {
                ax.iter_mut().for_each(|a| *a = -*a);
            }
            ax
        })
        .collect();
    let proj = |row: &[f64], k: usize| axes.get(k).map_or(0.0, |ax| row.iter().zip(ax).map(|(a, b)| a * b).sum());
    let pts = v.chunks(d).map(|row| (proj(row, 0), proj(row, 1))).collect();
    let total: f64 = vals.iter().map(|l| l.max(0.0)).sum();
    let ratio = |k: usize| if total > 0.0 { vals.get(k).map_or(0.0, |l| l.max(0.0) / total) } else { 0.0 };
    Ok((pts, [ratio(0), ratio(1)]))
}

/// Projects points onto their first two principal components: each point
/// maps to `((x − μ)·v₁, (x − μ)·v₂)`, with `μ` the mean and `v₁, v₂` the top
/// two eigenvectors of the covariance, each flipped so that its
/// largest-magnitude entry is positive (deterministic signs).
///
/// With `D = 1` the second column is zero. The eigen-decomposition runs in
/// f64 on the host on the smaller of the `D×D` and `N×N` Gram matrices, so
/// `min(N, D) ≤ 512` is required.
///
/// # Shapes
/// `x (N, D)`, `N ≥ 2` → `(N, 2)` f32 on the CPU.
pub fn pca_2d(x: &Tensor) -> Result<Tensor> {
    let (pts, _) = pca_2d_host(x)?;
    let flat: Vec<f32> = pts.iter().flat_map(|&(a, b)| [a as f32, b as f32]).collect();
    Tensor::from_vec(flat, (pts.len(), 2), &Device::Cpu)
}

/// A scatter plot of 2-D points, one colour per class, with a legend; SVG.
///
/// ```
/// use sslab::plot::ScatterPlot;
/// let p = ScatterPlot::new("two classes").points(&[(0.0, 0.0), (1.0, 1.0), (0.0, 1.0)], &[0, 1, 1])?
///     .class_names(&["cat", "dog"]);
/// let svg = p.to_svg()?;
/// assert_eq!(svg.matches("<circle").count(), 3);
/// assert!(svg.contains("dog"));
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScatterPlot {
    title: String,
    x_label: String,
    y_label: String,
    points: Vec<(f64, f64)>,
    labels: Vec<u32>,
    class_names: Vec<String>,
    size: (u32, u32),
    radius: u32,
}

impl ScatterPlot {
    /// An empty plot with a title (560×480).
    pub fn new(title: &str) -> Self {
        Self { title: title.into(), size: (560, 480), radius: 3, ..Default::default() }
    }

    /// Sets the points and their class labels (replacing earlier points).
    /// Errors when the lengths differ or a coordinate is not finite.
    pub fn points(mut self, xy: &[(f64, f64)], labels: &[u32]) -> Result<Self> {
        if xy.len() != labels.len() {
            candle_core::bail!("ScatterPlot::points: {} points but {} labels", xy.len(), labels.len());
        }
        if let Some(i) = xy.iter().position(|(x, y)| !(x.is_finite() && y.is_finite())) {
            candle_core::bail!("ScatterPlot::points: point {i} is not finite: {:?}", xy[i]);
        }
        self.points = xy.to_vec();
        self.labels = labels.to_vec();
        Ok(self)
    }

    /// A PCA scatter of embeddings: [`pca_2d`] of `z`, coloured by `labels`,
    /// the legend naming `class_names` (an empty slice names them
    /// "class 0", "class 1", …), the axes showing the explained variance.
    ///
    /// # Shapes
    /// `z (N, D)`, `N` labels.
    pub fn from_embeddings<S: ToString>(z: &Tensor, labels: &[u32], class_names: &[S]) -> Result<Self> {
        if z.rank() != 2 || z.dim(0)? != labels.len() {
            candle_core::bail!("ScatterPlot::from_embeddings: embeddings {:?} but {} labels", z.dims(), labels.len());
        }
        let (pts, ratio) = pca_2d_host(z)?;
        Ok(Self::new("PCA of the embeddings")
            .points(&pts, labels)?
            .class_names(class_names)
            .x_label(&format!("PC1 ({:.1}% of variance)", 100.0 * ratio[0]))
            .y_label(&format!("PC2 ({:.1}% of variance)", 100.0 * ratio[1])))
    }

    /// Sets the title.
    pub fn title(mut self, title: &str) -> Self {
        self.title = title.into();
        self
    }

    /// Names the classes in the legend (class `c` is `names[c]`; missing
    /// names read "class c").
    pub fn class_names<S: ToString>(mut self, names: &[S]) -> Self {
        self.class_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets the x-axis label.
    pub fn x_label(mut self, s: &str) -> Self {
        self.x_label = s.into();
        self
    }

    /// Sets the y-axis label.
    pub fn y_label(mut self, s: &str) -> Self {
        self.y_label = s.into();
        self
    }

    /// Sets the size in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width.max(100), height.max(100));
        self
    }

    /// Sets the marker radius in pixels (default 3).
    pub fn radius(mut self, r: u32) -> Self {
        self.radius = r.clamp(1, 20);
        self
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// `true` without points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    fn class_name(&self, c: u32) -> String {
        self.class_names.get(c as usize).cloned().unwrap_or_else(|| format!("class {c}"))
    }

    fn bounds(vals: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
        let lo = vals.clone().fold(f64::INFINITY, f64::min);
        let hi = vals.fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return (-1.0, 1.0);
        }
        let pad = ((hi - lo) * 0.06).max(1e-6 * hi.abs().max(1.0));
        (lo - pad, hi + pad)
    }

    /// The plot as an SVG document: one `<circle>` per point, a legend entry
    /// (coloured square and name) per class present.
    pub fn to_svg(&self) -> Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let (x0, x1) = Self::bounds(self.points.iter().map(|p| p.0));
            let (y0, y1) = Self::bounds(self.points.iter().map(|p| p.1));
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(self.x_label.as_str())
                .y_desc(self.y_label.as_str())
                .x_label_formatter(&|v| super::tick_label(*v))
                .y_label_formatter(&|v| super::tick_label(*v))
                .light_line_style(RGBColor(240, 240, 240))
                .draw()
                .map_err(plot_err)?;
            let mut classes: Vec<u32> = self.labels.clone();
            classes.sort_unstable();
            classes.dedup();
            for &c in &classes {
                let color = class_color(c as usize);
                let r = self.radius;
                let pts = self.points.iter().zip(&self.labels).filter(|(_, l)| **l == c).map(|(p, _)| *p);
                chart
                    .draw_series(pts.map(|p| Circle::new(p, r, color.mix(0.8).filled())))
                    .map_err(plot_err)?
                    .label(self.class_name(c))
                    .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 8, y + 4)], color.filled()));
            }
            if !classes.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(plot_err)?;
            }
            root.present().map_err(plot_err)?;
        }
        Ok(svg)
    }

    /// Writes the plot to an `.svg` file (the only format it saves as).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_text(&self.to_svg()?, path.as_ref(), "svg")
    }

    /// Shows the plot in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        emit_or_report("image/svg+xml", self.to_svg());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_points(n: usize) -> (Tensor, Vec<f64>) {
        // xᵢ = o + tᵢ·dir in D = 5, tᵢ = 0.5 i − 3
        let dir = [0.2f32, -0.5, 1.0, 0.3, 0.0];
        let o = [1.0f32, 2.0, -1.0, 0.5, 3.0];
        let t: Vec<f64> = (0..n).map(|i| 0.5 * i as f64 - 3.0).collect();
        let v: Vec<f32> = t.iter().flat_map(|&t| (0..5).map(move |j| o[j] + t as f32 * dir[j])).collect();
        (Tensor::from_vec(v, (n, 5), &Device::Cpu).unwrap(), t)
    }

    #[test]
    fn pca_of_a_line_is_the_position_along_it() {
        let norm = (0.04f64 + 0.25 + 1.0 + 0.09).sqrt();
        // n = 20 uses the 5×5 covariance, n = 4 the 4×4 Gram matrix
        for n in [20, 4] {
            let (x, t) = line_points(n);
            let y: Vec<Vec<f32>> = pca_2d(&x).unwrap().to_vec2().unwrap();
            let mean_t = t.iter().sum::<f64>() / n as f64;
            for (row, ti) in y.iter().zip(&t) {
                // the largest entry of dir (1.0) is positive, so PC1 = +(t − mean)·‖dir‖
                assert!((f64::from(row[0]) - (ti - mean_t) * norm).abs() < 1e-4, "n {n}: {row:?} vs t {ti}");
                assert!(row[1].abs() < 1e-4, "n {n}: {row:?}");
            }
        }
        let (x, _) = line_points(20);
        let (_, ratio) = pca_2d_host(&x).unwrap();
        assert!((ratio[0] - 1.0).abs() < 1e-9 && ratio[1] < 1e-9);
        // errors
        let one = Tensor::zeros((1, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(pca_2d(&one).unwrap_err().to_string().contains("[1, 5]"));
        let nan = Tensor::new(&[[1f32, 2.0], [f32::NAN, 0.0]], &Device::Cpu).unwrap();
        assert!(pca_2d(&nan).unwrap_err().to_string().contains("(1, 0)"));
        // D = 1: second component zero
        let d1 = Tensor::new(&[[1f32], [2.0], [4.0]], &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = pca_2d(&d1).unwrap().to_vec2().unwrap();
        assert_eq!(y.iter().map(|r| r[1]).collect::<Vec<_>>(), vec![0.0; 3]);
    }

    #[test]
    fn scatter_svg_has_a_circle_per_point_and_the_legend() {
        let (x, _) = line_points(12);
        let labels: Vec<u32> = (0..12).map(|i| (i % 3) as u32).collect();
        let p = ScatterPlot::from_embeddings(&x, &labels, &["circle", "square"]).unwrap();
        let svg = p.to_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 12);
        for text in ["circle", "square", "class 2", "PC1 (100.0% of variance)", "PCA of the embeddings"] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert_eq!(p.len(), 12);
        let err = ScatterPlot::new("t").points(&[(0.0, 0.0)], &[0, 1]).unwrap_err().to_string();
        assert!(err.contains("1 points but 2 labels"), "{err}");
        assert!(ScatterPlot::new("t").points(&[(f64::NAN, 0.0)], &[0]).is_err());
        assert!(ScatterPlot::from_embeddings(&x, &labels[..3], &[] as &[&str]).unwrap_err().to_string().contains("[12, 5]"));
        let dir = std::env::temp_dir().join(format!("sslab-scatter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        p.save(dir.join("s.svg")).unwrap();
        assert!(std::fs::read_to_string(dir.join("s.svg")).unwrap().contains("square"));
        assert!(p.save(dir.join("s.png")).unwrap_err().to_string().contains(".svg"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
