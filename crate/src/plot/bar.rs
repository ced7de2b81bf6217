//! Grouped bar charts as SVG (hand-written: crisp, no fonts needed).

use super::{emit_or_report, html_escape, PALETTE};
use candle_core::Result;
use std::fmt::Write as _;
use std::path::Path;

/// A grouped bar chart: one group per category, one bar per series.
///
/// ```
/// let c = sslab::plot::BarChart::new("accuracy", &["rotation", "jigsaw"])
///     .series("linear probe", vec![0.8, 0.7])
///     .series("k-NN", vec![0.75, 0.6]);
/// let svg = c.to_svg()?;
/// assert_eq!(svg.matches("<rect class=\"bar\"").count(), 4);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BarChart {
    title: String,
    y_label: String,
    categories: Vec<String>,
    series: Vec<(String, Vec<f64>)>,
    y_max: Option<f64>,
    size: (u32, u32),
}

impl BarChart {
    /// An empty chart over `categories` (720×400).
    pub fn new<S: ToString>(title: &str, categories: &[S]) -> Self {
        Self {
            title: title.into(),
            categories: categories.iter().map(|c| c.to_string()).collect(),
            size: (720, 400),
            ..Default::default()
        }
    }

    /// Sets the y-axis label.
    pub fn y_label(mut self, s: &str) -> Self {
        self.y_label = s.into();
        self
    }

    /// Adds a series: one value per category (non-finite values draw no bar).
    pub fn series(mut self, name: &str, values: Vec<f64>) -> Self {
        self.series.push((name.into(), values));
        self
    }

    /// Fixes the top of the y axis (the bottom is 0).
    pub fn y_max(mut self, hi: f64) -> Self {
        self.y_max = Some(hi);
        self
    }

    /// Sets the size in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width.max(200), height.max(150));
        self
    }

    /// The chart as an SVG document; errors when a series does not have one
    /// value per category.
    pub fn to_svg(&self) -> Result<String> {
        for (name, v) in &self.series {
            if v.len() != self.categories.len() {
                candle_core::bail!(
                    "BarChart: series {name:?} has {} values for {} categories",
                    v.len(),
                    self.categories.len()
                );
            }
        }
        let (w, h) = (self.size.0 as f64, self.size.1 as f64);
        let (left, right, top) = (60.0, 20.0, 50.0);
        let pw = w - left - right;
        let groups = self.categories.len().max(1) as f64;
        // Category names wider than their group (about 6.5 px a character at
        // 12 px) are drawn at −30° and the plot leaves room below for them.
        let longest = self.categories.iter().map(|c| c.chars().count()).max().unwrap_or(0) as f64 * 6.5;
        let slanted = longest > pw / groups - 4.0;
        let bottom = if slanted { (56.0 + 0.5 * longest).clamp(70.0, h * 0.4) } else { 70.0 };
        let ph = h - top - bottom;
        let data_max = self.series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite()).fold(0.0, f64::max);
        let y_max = self.y_max.unwrap_or(if data_max > 0.0 { data_max * 1.1 } else { 1.0 });
        let y = |v: f64| top + ph * (1.0 - (v / y_max).clamp(0.0, 1.0));
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">"#
        );
        let _ = write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = write!(s, r#"<text x="{}" y="22" font-size="16" text-anchor="middle">{}</text>"#, w / 2.0, html_escape(&self.title));
        // grid and y ticks
        for i in 0..=5 {
            let v = y_max * i as f64 / 5.0;
            let yy = y(v);
            let _ = write!(s, r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/>"##, left + pw);
            let _ = write!(s, r#"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#, left - 6.0, yy + 4.0, fmt_tick(v));
        }
        let _ = write!(
            s,
            r#"<text transform="translate(16 {:.1}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"#,
            top + ph / 2.0,
            html_escape(&self.y_label)
        );
        let gw = pw / groups;
        let nb = self.series.len().max(1) as f64;
        let bw = gw * 0.8 / nb;
        for (ci, cat) in self.categories.iter().enumerate() {
            let gx = left + gw * ci as f64;
            for (si, (name, vals)) in self.series.iter().enumerate() {
                let v = vals[ci];
                if !v.is_finite() {
                    continue;
                }
                let (r, g, b) = PALETTE[si % PALETTE.len()];
                let x = gx + gw * 0.1 + bw * si as f64;
                let _ = write!(
                    s,
                    r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="rgb({r},{g},{b})"><title>{}: {}</title></rect>"#,
                    y(v),
                    bw * 0.92,
                    (top + ph - y(v)).max(0.0),
                    html_escape(name),
                    fmt_tick(v)
                );
                let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text>"#, x + bw * 0.46, y(v) - 3.0, fmt_value(v));
            }
            let (cx, cy) = (gx + gw / 2.0, top + ph + 18.0);
            if slanted {
                let _ = write!(
                    s,
                    r#"<text x="{cx:.1}" y="{:.1}" font-size="12" text-anchor="end" transform="rotate(-30 {cx:.1} {:.1})">{}</text>"#,
                    cy - 4.0,
                    cy - 4.0,
                    html_escape(cat)
                );
            } else {
                let _ = write!(s, r#"<text x="{cx:.1}" y="{cy:.1}" font-size="12" text-anchor="middle">{}</text>"#, html_escape(cat));
            }
        }
        let _ = write!(s, r#"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#, left + pw, top + ph, top + ph);
        // legend below the axis
        let mut lx = left;
        for (si, (name, _)) in self.series.iter().enumerate() {
            let (r, g, b) = PALETTE[si % PALETTE.len()];
            let ly = h - 22.0;
            let _ = write!(s, r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="rgb({r},{g},{b})"/>"#, ly - 10.0);
            let _ = write!(s, r#"<text x="{:.1}" y="{ly:.1}" font-size="12">{}</text>"#, lx + 16.0, html_escape(name));
            lx += 30.0 + 7.0 * name.chars().count() as f64;
        }
        s.push_str("</svg>");
        Ok(s)
    }

    /// Writes the SVG to `path` (`.svg`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        super::line::save_text(&self.to_svg()?, path.as_ref(), "svg")
    }

    /// Shows the chart in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        emit_or_report("image/svg+xml", self.to_svg());
    }
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Bar labels: fractions in [0, 1] as percentages, other values as they are.
fn fmt_value(v: f64) -> String {
    if (0.0..=1.0).contains(&v) {
        format!("{:.0}", 100.0 * v)
    } else {
        fmt_tick(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_heights_are_proportional_and_bad_series_are_named() {
        let c = BarChart::new("t", &["a", "b"]).series("s", vec![0.5, 1.0]).y_max(1.0);
        let svg = c.to_svg().unwrap();
        let heights: Vec<f64> = svg
            .split("<rect class=\"bar\"")
            .skip(1)
            .map(|r| {
                let h = r.split("height=\"").nth(1).unwrap();
                h[..h.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(heights.len(), 2);
        assert!((heights[1] / heights[0] - 2.0).abs() < 0.01, "{heights:?}");
        let nan = BarChart::new("t", &["a", "b"]).series("s", vec![f64::NAN, 1.0]).to_svg().unwrap();
        assert_eq!(nan.matches("<rect class=\"bar\"").count(), 1);
        let err = BarChart::new("t", &["a", "b"]).series("short", vec![1.0]).to_svg().unwrap_err().to_string();
        assert!(err.contains("short") && err.contains("1 values for 2 categories"), "{err}");
    }

    #[test]
    fn bar_category_names_too_wide_for_their_group_are_slanted() {
        let short = BarChart::new("t", &["a", "b", "c"]).series("s", vec![1.0, 2.0, 3.0]).to_svg().unwrap();
        assert!(!short.contains("rotate(-30"), "three one-letter names fit upright");
        let names: Vec<String> = (0..13).map(|i| format!("method number {i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let many = BarChart::new("t", &names).series("s", vec![1.0; 13]).to_svg().unwrap();
        assert_eq!(many.matches("rotate(-30").count(), 13);
        // the slanted names get room: the axis line sits higher than with upright names
        let axis_y = |svg: &str| -> f64 {
            let line = svg.rsplit("<line x1=\"60\"").next().unwrap();
            let y = line.split("y1=\"").nth(1).unwrap();
            y[..y.find('"').unwrap()].parse().unwrap()
        };
        assert!(axis_y(&many) < axis_y(&short) - 10.0, "{} vs {}", axis_y(&many), axis_y(&short));
    }
}
