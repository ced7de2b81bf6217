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

mod bar;
mod heatmap;
mod image;
mod line;
mod scatter;
mod table;

pub use bar::BarChart;
pub use heatmap::{attention_grid, attention_overlay, diverging_color, sequential_color, ColorMap, Heatmap};
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
