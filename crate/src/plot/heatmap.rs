//! Heatmaps of matrices (similarities, cross-correlations, attention) as SVG
//! or PNG, and attention overlays on images.
//!
//! Typical matrices in the chapters:
//! - the `2B × 2B` cosine-similarity matrix of SimCLR's NT-Xent loss
//!   (T. Chen et al., 2020, arXiv:2002.05709), values in [−1, 1];
//! - the `D × D` cross-correlation matrix of Barlow Twins
//!   (J. Zbontar et al., 2021, arXiv:2103.03230), whose target is the identity;
//! - `N × N` attention weights `softmax(QKᵀ/√d)` of a ViT, rows summing to 1,
//!   and the [CLS] token's attention over patches drawn on the image as in
//!   DINO (M. Caron et al., 2021, arXiv:2104.14294, fig. 1).
//!
//! A value `v` maps to a colour through its position in the value range
//! `[lo, hi]`:
//!
//! ```text
//! t = (v − lo) / (hi − lo)  clamped to [0, 1]
//! sequential (viridis):  t = 0 dark purple … t = 1 yellow
//! diverging (RdBu_r):    t = 0 dark blue, t = ½ (v = 0) white, t = 1 dark red,
//!                        with [lo, hi] = [−m, m], m = max |v|
//! ```
//!
//! [`ColorMap::Auto`] picks the diverging map when the data has both signs.
//!
//! Formats: [`Heatmap::to_svg`] (title, labels, colour bar, annotations),
//! [`Heatmap::to_png`] (cells only, no text); [`Heatmap::save`] writes `.svg`
//! or `.png`. [`attention_overlay`] returns an [`ImageGrid`] (HTML, `.png`).

use super::image::encode_png;
use super::{emit_or_report, html_escape};
use base64::Engine;
use candle_core::{DType, Device, Result, Tensor};
use std::fmt::Write as _;
use std::path::Path;

/// matplotlib's viridis at t = 0, 1/8, …, 1.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 45, 123),
    (59, 82, 139),
    (44, 114, 142),
    (33, 145, 140),
    (40, 174, 128),
    (94, 201, 98),
    (173, 220, 48),
    (253, 231, 37),
];

/// matplotlib's RdBu_r at t = 0, 1/10, …, 1.
const RDBU_R: [(u8, u8, u8); 11] = [
    (5, 48, 97),
    (33, 102, 172),
    (67, 147, 195),
    (146, 197, 222),
    (209, 229, 240),
    (247, 247, 247),
    (253, 219, 199),
    (244, 165, 130),
    (214, 96, 77),
    (178, 24, 43),
    (103, 0, 31),
];

fn interpolate(anchors: &[(u8, u8, u8)], t: f64) -> (u8, u8, u8) {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (anchors.len() - 1) as f64;
    let i = (x.floor() as usize).min(anchors.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (anchors[i], anchors[i + 1]);
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The sequential colour (viridis) at `t ∈ [0, 1]` (clamped).
pub fn sequential_color(t: f64) -> (u8, u8, u8) {
    interpolate(&VIRIDIS, t)
}

/// The diverging colour (RdBu_r: blue, white at ½, red) at `t ∈ [0, 1]` (clamped).
pub fn diverging_color(t: f64) -> (u8, u8, u8) {
    interpolate(&RDBU_R, t)
}

fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// How values map to colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorMap {
    /// Diverging when the values have both signs, sequential otherwise.
    #[default]
    Auto,
    /// viridis over `[lo, hi]` (magnitudes, probabilities).
    Sequential,
    /// RdBu_r over `[−m, m]`, white at 0 (similarities, correlations).
    Diverging,
}

/// A heatmap of an `R × C` matrix.
///
/// ```
/// use sslab::plot::Heatmap;
/// let h = Heatmap::from_rows(vec![vec![1.0, -0.5], vec![-0.5, 1.0]])?.title("similarity").labels(&["a", "b"], &["a", "b"]);
/// let svg = h.to_svg()?;
/// assert_eq!(svg.matches("class=\"cell\"").count(), 4);
/// assert_eq!(h.color_of(1.0)?, (103, 0, 31)); // diverging: both signs present
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    title: String,
    values: Vec<f32>,
    rows: usize,
    cols: usize,
    row_labels: Vec<String>,
    col_labels: Vec<String>,
    x_label: String,
    y_label: String,
    cmap: ColorMap,
    range: Option<(f64, f64)>,
    annotate: Option<bool>,
    cell: Option<u32>,
    outlined: Vec<(usize, usize)>,
}

impl Heatmap {
    fn from_values(values: Vec<f32>, rows: usize, cols: usize) -> Result<Self> {
        if rows == 0 || cols == 0 {
            candle_core::bail!("Heatmap: the matrix is empty ({rows} × {cols})");
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            candle_core::bail!("Heatmap: non-finite value {} at row {}, column {}", values[i], i / cols, i % cols);
        }
        Ok(Self {
            title: String::new(),
            values,
            rows,
            cols,
            row_labels: vec![],
            col_labels: vec![],
            x_label: String::new(),
            y_label: String::new(),
            cmap: ColorMap::Auto,
            range: None,
            annotate: None,
            cell: None,
            outlined: Vec::new(),
        })
    }

    /// A heatmap of a matrix tensor (any float dtype, any device).
    /// Errors on non-finite values, naming the first one's position.
    ///
    /// # Shapes
    /// `matrix (R, C)`, `R, C > 0`.
    pub fn new(matrix: &Tensor) -> Result<Self> {
        let (r, c) = match matrix.dims() {
            &[r, c] => (r, c),
            d => candle_core::bail!("Heatmap expects a matrix (R, C), got shape {d:?}"),
        };
        let v = if r * c == 0 {
            vec![]
        } else {
            matrix.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?
        };
        Self::from_values(v, r, c)
    }

    /// A heatmap of rows of values (all rows the same length).
    pub fn from_rows(rows: Vec<Vec<f32>>) -> Result<Self> {
        let c = rows.first().map_or(0, Vec::len);
        if let Some(i) = rows.iter().position(|r| r.len() != c) {
            candle_core::bail!("Heatmap::from_rows: row 0 has {c} values but row {i} has {}", rows[i].len());
        }
        let r = rows.len();
        Self::from_values(rows.into_iter().flatten().collect(), r, c)
    }

    /// A heatmap of attention weights (rows: queries, columns: keys), with
    /// the sequential map over `[0, max]`. Errors on negative weights.
    ///
    /// # Shapes
    /// `weights (N, N)` (or any `(Q, K)`).
    pub fn attention(weights: &Tensor) -> Result<Self> {
        let h = Self::new(weights)?;
        if let Some(i) = h.values.iter().position(|v| *v < 0.0) {
            candle_core::bail!(
                "Heatmap::attention: negative weight {} at row {}, column {}; pass softmax outputs",
                h.values[i],
                i / h.cols,
                i % h.cols
            );
        }
        let max = h.values.iter().copied().fold(0f32, f32::max);
        Ok(h.title("attention weights")
            .x_label("key")
            .y_label("query")
            .color_map(ColorMap::Sequential)
            .range(0.0, f64::from(max).max(1e-12)))
    }

    /// Sets the title.
    pub fn title(mut self, title: &str) -> Self {
        self.title = title.into();
        self
    }

    /// Names the rows and the columns (missing names are left blank; pass an
    /// empty slice to keep one side unnamed).
    pub fn labels<S: ToString>(mut self, rows: &[S], cols: &[S]) -> Self {
        self.row_labels = rows.iter().map(|s| s.to_string()).collect();
        self.col_labels = cols.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets the label under the columns.
    pub fn x_label(mut self, s: &str) -> Self {
        self.x_label = s.into();
        self
    }

    /// Sets the label beside the rows.
    pub fn y_label(mut self, s: &str) -> Self {
        self.y_label = s.into();
        self
    }

    /// Chooses the colour map (default [`ColorMap::Auto`]).
    pub fn color_map(mut self, cmap: ColorMap) -> Self {
        self.cmap = cmap;
        self
    }

    /// Fixes the value range `[lo, hi]` instead of fitting it to the data
    /// (values outside get the end colours). Checked when drawing: needs
    /// finite `lo < hi`.
    pub fn range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }

    /// Draws a black frame around each `(row, column)` cell, e.g. the
    /// positive pairs of a similarity matrix (cells outside the matrix are
    /// ignored).
    pub fn outline(mut self, cells: impl IntoIterator<Item = (usize, usize)>) -> Self {
        self.outlined = cells.into_iter().filter(|&(r, c)| r < self.rows && c < self.cols).collect();
        self
    }

    /// Writes each value in its cell (default: when both sides are ≤ 16).
    pub fn annotate(mut self, on: bool) -> Self {
        self.annotate = Some(on);
        self
    }

    /// Side of a cell in pixels (default: about 480 / max(R, C), 1 to 48).
    pub fn cell_size(mut self, px: u32) -> Self {
        self.cell = Some(px.clamp(1, 200));
        self
    }

    /// `(rows, columns)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The value at `(row, col)`, if inside.
    pub fn value(&self, row: usize, col: usize) -> Option<f32> {
        (row < self.rows && col < self.cols).then(|| self.values[row * self.cols + col])
    }

    fn diverging(&self) -> bool {
        match self.cmap {
            ColorMap::Diverging => true,
            ColorMap::Sequential => false,
            ColorMap::Auto => {
                self.values.iter().any(|v| *v < 0.0) && self.values.iter().any(|v| *v > 0.0)
            }
        }
    }

    /// The value range the colours span: the fixed [`range`](Self::range),
    /// else `[−m, m]` (diverging) or `[min, max]` (sequential) of the data.
    pub fn value_range(&self) -> Result<(f64, f64)> {
        if let Some((lo, hi)) = self.range {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                candle_core::bail!("Heatmap: range needs finite lo < hi, got [{lo}, {hi}]");
            }
            return Ok((lo, hi));
        }
        let lo = f64::from(self.values.iter().copied().fold(f32::INFINITY, f32::min));
        let hi = f64::from(self.values.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        Ok(if self.diverging() {
            let m = lo.abs().max(hi.abs());
            (-m, m)
        } else {
            (lo, hi)
        })
    }

    /// The colour of value `v` under this heatmap's map and range (a constant
    /// matrix maps to the middle colour).
    pub fn color_of(&self, v: f64) -> Result<(u8, u8, u8)> {
        Ok(self.colorer()?(v))
    }

    /// The value → colour function, with the range and map resolved once.
    fn colorer(&self) -> Result<impl Fn(f64) -> (u8, u8, u8)> {
        let (lo, hi) = self.value_range()?;
        let div = self.diverging();
        Ok(move |v: f64| {
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
            if div {
                diverging_color(t)
            } else {
                sequential_color(t)
            }
        })
    }

    fn cell_px(&self) -> u32 {
        self.cell.unwrap_or_else(|| (480 / self.rows.max(self.cols) as u32).clamp(1, 48))
    }

    fn annotated(&self) -> bool {
        self.annotate.unwrap_or(self.rows <= 16 && self.cols <= 16) && self.cell_px() >= 16
    }

    /// The heatmap as an SVG document: title, one `<rect class="cell">` per
    /// matrix entry, row/column labels (when cells are at least 8 px),
    /// axis labels, a colour bar with its range, and the values in the cells
    /// when annotated.
    pub fn to_svg(&self) -> Result<String> {
        let (lo, hi) = self.value_range()?;
        let color_of = self.colorer()?;
        let s = self.cell_px() as usize;
        let (gw, gh) = (self.cols * s, self.rows * s);
        let show_labels = s >= 8;
        let maxlen = |v: &[String]| v.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let row_w = if show_labels { 7 * maxlen(&self.row_labels).min(24) } else { 0 };
        let col_h = if show_labels { 7 * maxlen(&self.col_labels).min(24) } else { 0 };
        let left = 12 + row_w + if self.y_label.is_empty() { 0 } else { 22 };
        let top = if self.title.is_empty() { 12 } else { 40 };
        let bottom = 12 + col_h + if self.x_label.is_empty() { 0 } else { 22 };
        let bar_x = left + gw + 16;
        let width = bar_x + 16 + 60;
        let height = (top + gh + bottom).max(top + 120);
        let mut o = String::new();
        let w = |o: &mut String, s: String| o.push_str(&s);
        w(&mut o, format!(
            "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\" \
             font-family=\"sans-serif\">\n<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n"
        ));
        if !self.title.is_empty() {
            w(&mut o, format!(
                "<text x=\"{}\" y=\"26\" font-size=\"18\" text-anchor=\"middle\">{}</text>\n",
                width / 2,
                html_escape(&self.title)
            ));
        }
        let tooltips = self.rows * self.cols <= 4096;
        let annotate = self.annotated();
        for r in 0..self.rows {
            for c in 0..self.cols {
                let v = self.values[r * self.cols + c];
                let col = color_of(f64::from(v));
                let (x, y) = (left + c * s, top + r * s);
                if tooltips {
                    w(&mut o, format!(
                        "<rect class=\"cell\" x=\"{x}\" y=\"{y}\" width=\"{s}\" height=\"{s}\" fill=\"{}\"><title>({r}, {c}): {v}</title></rect>\n",
                        hex(col)
                    ));
                } else {
                    let _ = writeln!(o, "<rect class=\"cell\" x=\"{x}\" y=\"{y}\" width=\"{s}\" height=\"{s}\" fill=\"{}\"/>", hex(col));
                }
                if annotate {
                    let lum = 0.299 * f64::from(col.0) + 0.587 * f64::from(col.1) + 0.114 * f64::from(col.2);
                    let fg = if lum < 128.0 { "#ffffff" } else { "#000000" };
                    w(&mut o, format!(
                        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"middle\" dominant-baseline=\"central\" fill=\"{fg}\">{}</text>\n",
                        x + s / 2,
                        y + s / 2,
                        (s / 3).clamp(8, 13),
                        format_value(v)
                    ));
                }
            }
        }
        for &(r, c) in &self.outlined {
            let _ = writeln!(
                o,
                "<rect class=\"outline\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#000000\" stroke-width=\"2.5\"/>",
                left + c * s + 1,
                top + r * s + 1,
                s.saturating_sub(2),
                s.saturating_sub(2)
            );
        }
        if show_labels {
            for (r, l) in self.row_labels.iter().enumerate().take(self.rows) {
                w(&mut o, format!(
                    "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" dominant-baseline=\"central\">{}</text>\n",
                    left - 4,
                    top + r * s + s / 2,
                    html_escape(l)
                ));
            }
            for (c, l) in self.col_labels.iter().enumerate().take(self.cols) {
                let (x, y) = (left + c * s + s / 2, top + gh + 6);
                w(&mut o, format!(
                    "<text x=\"{x}\" y=\"{y}\" font-size=\"11\" text-anchor=\"end\" dominant-baseline=\"central\" \
                     transform=\"rotate(-60 {x} {y})\">{}</text>\n",
                    html_escape(l)
                ));
            }
        }
        if !self.x_label.is_empty() {
            w(&mut o, format!(
                "<text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\">{}</text>\n",
                left + gw / 2,
                top + gh + col_h + 26,
                html_escape(&self.x_label)
            ));
        }
        if !self.y_label.is_empty() {
            let (x, y) = (16, top + gh / 2);
            w(&mut o, format!(
                "<text x=\"{x}\" y=\"{y}\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 {x} {y})\">{}</text>\n",
                html_escape(&self.y_label)
            ));
        }
        // colour bar: top = hi, bottom = lo
        let bar_h = gh.max(100);
        let stops = if self.diverging() { &RDBU_R[..] } else { &VIRIDIS[..] };
        w(&mut o, "<defs><linearGradient id=\"sslab-cbar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">".into());
        for (i, c) in stops.iter().enumerate() {
            w(&mut o, format!(
                "<stop offset=\"{:.3}\" stop-color=\"{}\"/>",
                i as f64 / (stops.len() - 1) as f64,
                hex(*c)
            ));
        }
        w(&mut o, "</linearGradient></defs>\n".into());
        w(&mut o, format!(
            "<rect class=\"colorbar\" x=\"{bar_x}\" y=\"{top}\" width=\"16\" height=\"{bar_h}\" fill=\"url(#sslab-cbar)\" stroke=\"#999999\"/>\n"
        ));
        for (val, y) in [(hi, top + 4), ((lo + hi) / 2.0, top + bar_h / 2), (lo, top + bar_h - 4)] {
            w(&mut o, format!(
                "<text x=\"{}\" y=\"{y}\" font-size=\"11\" dominant-baseline=\"central\">{}</text>\n",
                bar_x + 20,
                format_value(val as f32)
            ));
        }
        o.push_str("</svg>\n");
        Ok(o)
    }

    /// The cells alone as an RGB PNG, each cell a square of
    /// [`cell_size`](Self::cell_size) pixels: `(C·s) × (R·s)`, no text.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let s = self.cell_px() as usize;
        let (w, h) = (self.cols * s, self.rows * s);
        let color_of = self.colorer()?;
        let colors: Vec<(u8, u8, u8)> = self.values.iter().map(|v| color_of(f64::from(*v))).collect();
        let mut px = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let (r, g, b) = colors[(y / s) * self.cols + x / s];
                px[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[r, g, b]);
            }
        }
        encode_png(&px, w, h, true)
    }

    /// An HTML fragment: the SVG when the matrix has at most 16,384 cells,
    /// otherwise the title, the PNG and the value range (a large SVG would
    /// weigh megabytes).
    pub fn to_html(&self) -> Result<String> {
        if self.rows * self.cols <= 16_384 {
            return self.to_svg();
        }
        let (lo, hi) = self.value_range()?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.to_png()?);
        Ok(format!(
            "<div class=\"sslab-heatmap\"><div style=\"font-weight:bold;margin:4px 0\">{}</div>\
             <img style=\"image-rendering:pixelated\" src=\"data:image/png;base64,{b64}\"/>\
             <div style=\"font-size:11px\">{} × {}, {} map over [{}, {}]</div></div>",
            html_escape(&self.title),
            self.rows,
            self.cols,
            if self.diverging() { "diverging (RdBu_r)" } else { "sequential (viridis)" },
            format_value(lo as f32),
            format_value(hi as f32),
        ))
    }

    /// Writes the heatmap as `.svg` ([`to_svg`](Self::to_svg)) or `.png`
    /// ([`to_png`](Self::to_png)), chosen by the extension; other extensions
    /// are an error naming them.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let bytes = match ext {
            "svg" => self.to_svg()?.into_bytes(),
            "png" => self.to_png()?,
            other => candle_core::bail!(
                "{}: a heatmap saves as .svg or .png, not {:?}",
                path.display(),
                if other.is_empty() { "(no extension)".to_string() } else { format!(".{other}") }
            ),
        };
        let tmp = path.with_extension(format!("{ext}.tmp"));
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| candle_core::Error::Msg(format!("cannot write {}: {e}", path.display())))
    }

    /// Shows the heatmap in Jupyter (evcxr): SVG when small, PNG in HTML
    /// when large (see [`to_html`](Self::to_html)).
    pub fn evcxr_display(&self) {
        if self.rows * self.cols <= 16_384 {
            emit_or_report("image/svg+xml", self.to_svg());
        } else {
            emit_or_report("text/html", self.to_html());
        }
    }
}

fn format_value(v: f32) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 || v.abs() < 0.01 {
        format!("{v:.1e}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::attention::{attention_grid, attention_overlay};

    #[test]
    fn heatmap_colors_at_min_max_mid() {
        // sequential: all values ≥ 0
        let h = Heatmap::from_rows(vec![vec![0.0, 1.0], vec![2.0, 4.0]]).unwrap();
        assert_eq!(h.value_range().unwrap(), (0.0, 4.0));
        assert_eq!(h.color_of(0.0).unwrap(), (68, 1, 84));
        assert_eq!(h.color_of(4.0).unwrap(), (253, 231, 37));
        assert_eq!(h.color_of(2.0).unwrap(), (33, 145, 140));
        assert_eq!(h.color_of(-10.0).unwrap(), (68, 1, 84)); // clamped
        // diverging: both signs, symmetric range, white at 0
        let d = Heatmap::from_rows(vec![vec![-0.5, 1.0]]).unwrap();
        assert_eq!(d.value_range().unwrap(), (-1.0, 1.0));
        assert_eq!(d.color_of(0.0).unwrap(), (247, 247, 247));
        assert_eq!(d.color_of(-1.0).unwrap(), (5, 48, 97));
        assert_eq!(d.color_of(1.0).unwrap(), (103, 0, 31));
        // forced map and range
        let f = h.clone().color_map(ColorMap::Diverging).range(0.0, 4.0);
        assert_eq!(f.color_of(2.0).unwrap(), (247, 247, 247));
        assert!(h.clone().range(1.0, 1.0).to_svg().unwrap_err().to_string().contains("lo < hi"));
        // interpolation halfway between two anchors
        assert_eq!(sequential_color(1.0 / 16.0), (70, 23, 104));
    }

    #[test]
    fn heatmap_svg_and_png_have_every_cell() {
        let m = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((3, 4)).unwrap();
        let h = Heatmap::new(&m).unwrap().title("t<1>").labels(&["r0", "r1", "r2"], &["c0", "c1", "c2", "c3"]).cell_size(20);
        let svg = h.to_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"cell\"").count(), 12);
        assert!(svg.contains("t&lt;1&gt;") && svg.contains(">r2<") && svg.contains(">c3<"));
        assert!(svg.contains(">11.00</text>"), "annotated");
        // cell colours: min and max
        assert!(svg.contains("fill=\"#440154\"><title>(0, 0): 0</title>"));
        assert!(svg.contains("fill=\"#fde725\"><title>(2, 3): 11</title>"));
        let png_bytes = h.to_png().unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4 * 20, 3 * 20));
        assert_eq!(&buf[..3], &[68, 1, 84]);
        let last = (info.width * info.height * 3) as usize;
        assert_eq!(&buf[last - 3..last], &[253, 231, 37]);
        // a large matrix: no annotations, HTML falls back to PNG
        let big = Heatmap::new(&Tensor::ones((200, 200), DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert!(!big.to_svg().unwrap().contains("dominant-baseline=\"central\" fill="));
        assert!(big.to_html().unwrap().contains("data:image/png;base64,"));
        // save by extension
        let dir = std::env::temp_dir().join(format!("sslab-heatmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        h.save(dir.join("h.svg")).unwrap();
        h.save(dir.join("h.png")).unwrap();
        assert!(std::fs::read(dir.join("h.png")).unwrap().starts_with(b"\x89PNG"));
        let err = h.save(dir.join("h.jpg")).unwrap_err().to_string();
        assert!(err.contains(".jpg") && err.contains(".svg or .png"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn heatmap_errors_name_the_position() {
        let err = Heatmap::from_rows(vec![vec![0.0, 1.0], vec![2.0, f32::NAN]]).unwrap_err().to_string();
        assert!(err.contains("row 1, column 1"), "{err}");
        let inf = Tensor::new(&[[0f32, f32::INFINITY, 0.0]], &Device::Cpu).unwrap();
        assert!(Heatmap::new(&inf).unwrap_err().to_string().contains("row 0, column 1"));
        assert!(Heatmap::from_rows(vec![vec![0.0], vec![]]).unwrap_err().to_string().contains("row 1 has 0"));
        assert!(Heatmap::from_rows(vec![]).is_err());
        let v = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        assert!(Heatmap::new(&v).unwrap_err().to_string().contains("[3]"));
        let neg = Tensor::new(&[[0.5f32, 0.5], [1.2, -0.2]], &Device::Cpu).unwrap();
        assert!(Heatmap::attention(&neg).unwrap_err().to_string().contains("row 1, column 1"));
    }

    #[test]
    fn attention_heatmap_and_overlay() {
        let w = candle_nn::ops::softmax(&Tensor::arange(0f32, 9.0, &Device::Cpu).unwrap().reshape((3, 3)).unwrap(), 1)
            .unwrap();
        let h = Heatmap::attention(&w).unwrap();
        assert_eq!(h.shape(), (3, 3));
        let svg = h.to_svg().unwrap();
        assert!(svg.contains(">query<") && svg.contains(">key<"));
        assert_eq!(h.value_range().unwrap().0, 0.0);
        // 8×8 gray image, 4×4 patches: all attention on patch 1 (top right)
        let img = Tensor::full(0.2f32, (1, 8, 8), &Device::Cpu).unwrap();
        let attn = Tensor::new(&[0f32, 1.0, 0.0, 0.0], &Device::Cpu).unwrap();
        let grid = attention_overlay(&img, &attn, 4).unwrap().scale(1);
        assert_eq!(grid.len(), 3);
        let mut reader = png::Decoder::new(std::io::Cursor::new(grid.to_png().unwrap())).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let px = |tile: usize, y: usize, x: usize| {
            let (py, pxx) = (2 + y, 2 + tile * (8 + 2) + x);
            let i = (py * info.width as usize + pxx) * 3;
            [buf[i], buf[i + 1], buf[i + 2]]
        };
        assert_eq!(px(0, 0, 6), [51, 51, 51]); // the image, gray → RGB
        assert_eq!(px(1, 0, 6), [253, 231, 37]); // attended patch: top of viridis
        assert_eq!(px(1, 6, 1), [68, 1, 84]); // others: bottom
        assert_eq!(px(2, 0, 6), [152, 141, 44]); // overlay: half and half
        assert!(grid.to_html().unwrap().contains("overlay"));
        let err = attention_overlay(&img, &Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap(), 4).unwrap_err();
        assert!(err.to_string().contains("= 4 patches") && err.to_string().contains("[5]"), "{err}");
        assert!(attention_overlay(&img, &attn, 3).unwrap_err().to_string().contains("3 × 3"));
        let nan = Tensor::new(&[0f32, f32::NAN, 0.0, 0.0], &Device::Cpu).unwrap();
        assert!(attention_overlay(&img, &nan, 4).unwrap_err().to_string().contains("patch 1 (row 0, column 1)"));
    }

    /// Two images, one column each: images in row 0, heat maps in row 1,
    /// overlays in row 2; one image is [`attention_overlay`] laid out in a column.
    #[test]
    fn attention_grid_puts_each_image_in_a_column() {
        let dev = Device::Cpu;
        let imgs = Tensor::cat(&[Tensor::full(0.2f32, (1, 1, 8, 8), &dev).unwrap(), Tensor::full(0.6f32, (1, 1, 8, 8), &dev).unwrap()], 0).unwrap();
        let attn = Tensor::new(&[[0f32, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], &dev).unwrap();
        let grid = attention_grid(&imgs, &attn, 4).unwrap().scale(1);
        assert_eq!(grid.len(), 6);
        let mut reader = png::Decoder::new(std::io::Cursor::new(grid.to_png().unwrap())).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let px = |row: usize, col: usize, y: usize, x: usize| {
            let (py, pxx) = (2 + row * (8 + 2) + y, 2 + col * (8 + 2) + x);
            let i = (py * info.width as usize + pxx) * 3;
            [buf[i], buf[i + 1], buf[i + 2]]
        };
        assert_eq!(px(0, 0, 0, 0), [51, 51, 51]);
        assert_eq!(px(0, 1, 0, 0), [153, 153, 153]);
        assert_eq!(px(1, 0, 0, 6), [253, 231, 37]); // image 0 attends to its top right patch
        assert_eq!(px(1, 1, 6, 1), [253, 231, 37]); // image 1 to its bottom left one
        assert_eq!(px(1, 1, 0, 6), [68, 1, 84]);
        assert_eq!(px(2, 0, 0, 6), [152, 141, 44]);
        let one = attention_grid(&imgs.narrow(0, 0, 1).unwrap(), &attn.narrow(0, 0, 1).unwrap(), 4).unwrap().columns(3);
        let img0 = imgs.get(0).unwrap();
        assert_eq!(one.to_png().unwrap(), attention_overlay(&img0, &attn.get(0).unwrap(), 4).unwrap().to_png().unwrap());
        assert!(attention_grid(&imgs, &attn.narrow(0, 0, 1).unwrap(), 4).unwrap_err().to_string().contains("(2, patches)"));
        assert!(attention_grid(&img0, &attn, 4).unwrap_err().to_string().contains("(B, C, H, W)"));
    }
}
