//! Figures and tables that display inline in Jupyter and save to files.
//!
//! evcxr shows a value rich when its type has an `evcxr_display` method that
//! prints `EVCXR_BEGIN_CONTENT <mime>`, the content, and `EVCXR_END_CONTENT`.
//! Line plots are SVG (crisp in handouts), image grids PNG inside HTML (with
//! captions), tables HTML. Only one output per MIME type survives in a cell,
//! so show one figure per cell.
//!
//! - [`LinePlot`], [`Timeline`]: SVG.
//! - [`ScatterPlot`]: 2-D points coloured by class (SVG); [`pca_2d`] maps embeddings to 2-D.
//! - [`Heatmap`]: similarity, cross-correlation and attention matrices (SVG or PNG);
//!   [`attention_overlay`] draws a \[CLS\] token's attention on its image.
//! - [`BarChart`]: grouped bars (SVG), e.g. accuracy per method.
//! - [`ImageGrid`]: PNG tiles in HTML. [`Table`]: HTML and text.

mod attention;
mod bar;
mod breakdown;
mod heatmap;
mod image;
mod line;
mod scatter;
mod table;

pub use bar::BarChart;
pub use attention::{attention_grid, attention_overlay};
pub use heatmap::{diverging_color, sequential_color, ColorMap, Heatmap};
pub use image::ImageGrid;
pub use line::{LinePlot, Timeline};
pub use scatter::{pca_2d, ScatterPlot};
pub use table::Table;

/// Prints `content` as evcxr rich output of type `mime` (one per MIME type per cell survives).
pub fn emit(mime: &str, content: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT");
}

/// Shows a rendering in Jupyter, or prints why it could not be made.
pub(crate) fn emit_or_report(mime: &str, rendered: candle_core::Result<String>) {
    match rendered {
        Ok(content) => emit(mime, &content),
        Err(e) => eprintln!("{e}"),
    }
}

/// An axis tick label that reads like a book's: `100` not `100.0`, `0.25`
/// not `0.25000000000000006`, `1e9` not `1000000000.0`.
///
/// Whole numbers below 100,000 print without decimals, other numbers from
/// 0.001 to 100,000 with at most three (trailing zeros dropped), and the rest
/// as a mantissa with up to three significant digits and a power of ten.
///
/// ```
/// use sslab::plot::tick_label;
/// assert_eq!(tick_label(2000.0), "2000");
/// assert_eq!(tick_label(0.1 + 0.2), "0.3");
/// assert_eq!(tick_label(1e9), "1e9");
/// assert_eq!(tick_label(3.5e-5), "3.5e-5");
/// ```
pub fn tick_label(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return if s == "-0" { "0".into() } else { s.to_string() };
    }
    let s = format!("{v:.2e}"); // "3.50e9"
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
        None => s,
    }
}

/// Escapes `&`, `<`, `>` and `"` for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The colours of the series, in order (matplotlib's tab10).
pub(crate) const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
];

#[cfg(test)]
mod tick_tests {
    use super::tick_label;

    #[test]
    fn tick_labels_are_short_and_exact() {
        let cases = [
            (0.0, "0"),
            (-0.0001, "-1e-4"),
            (1998.0, "1998"),
            (100.0, "100"),
            (0.5, "0.5"),
            (0.1 + 0.2, "0.3"),
            (-2.25, "-2.25"),
            (0.0005, "5e-4"),
            (99_999.0, "99999"),
            (100_000.0, "1e5"),
            (3.5e9, "3.5e9"),
            (1.234_567e13, "1.23e13"),
            (-4e6, "-4e6"),
        ];
        for (v, want) in cases {
            assert_eq!(tick_label(v), want, "tick_label({v})");
        }
        assert_eq!(tick_label(f64::NAN), "NaN");
    }
}
