//! Line plots and timelines as SVG, drawn with plotters.

use super::{emit_or_report, tick_label, PALETTE};
use candle_core::Result;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

fn plot_err<E: std::fmt::Debug>(e: E) -> candle_core::Error {
    candle_core::Error::Msg(format!("drawing the figure failed: {e:?}"))
}

/// Writes `svg` to `path` (which must end in `.svg`), without leaving a partial file.
pub(crate) fn save_text(svg: &str, path: &Path, ext: &str) -> Result<()> {
    if path.extension().is_none_or(|e| e != ext) {
        candle_core::bail!("{}: this figure saves as .{ext}", path.display());
    }
    let tmp = path.with_extension(format!("{ext}.tmp"));
    std::fs::write(&tmp, svg)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| candle_core::Error::Msg(format!("cannot write {}: {e}", path.display())))
}

/// A line plot with one or more named series, as SVG.
///
/// ```
/// let p = sslab::plot::LinePlot::new("loss").x_label("step").series("train", vec![(1.0, 2.0), (2.0, 1.0)]);
/// assert!(p.to_svg()?.starts_with("<svg"));
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinePlot {
    title: String,
    x_label: String,
    y_label: String,
    series: Vec<(String, Vec<(f64, f64)>)>,
    log_x: bool,
    log_y: bool,
    y_range: Option<(f64, f64)>,
    size: (u32, u32),
}

impl LinePlot {
    /// An empty plot with a title (640×400).
    pub fn new(title: &str) -> Self {
        Self { title: title.into(), size: (640, 400), ..Default::default() }
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

    /// Adds a named series of `(x, y)` points (non-finite points are skipped).
    pub fn series(mut self, name: &str, points: Vec<(f64, f64)>) -> Self {
        let pts = points.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        self.series.push((name.into(), pts));
        self
    }

    /// Uses a logarithmic x axis.
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }

    /// Uses a logarithmic y axis.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// Fixes the y range instead of fitting it to the data.
    pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }

    /// Sets the size in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width.max(100), height.max(100));
        self
    }

    /// Number of series.
    pub fn series_len(&self) -> usize {
        self.series.len()
    }

    fn bounds(&self, pick: impl Fn(&(f64, f64)) -> f64, log: bool) -> (f64, f64) {
        let vals: Vec<f64> =
            self.series.iter().flat_map(|(_, p)| p.iter().map(&pick)).filter(|v| !log || *v > 0.0).collect();
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return (if log { 0.1 } else { 0.0 }, 1.0);
        }
        if log {
            (lo / 1.5, hi * 1.5)
        } else {
            let pad = ((hi - lo) * 0.05).max(1e-9);
            (lo - pad, hi + pad)
        }
    }

    /// The plot as an SVG document.
    pub fn to_svg(&self) -> Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let (x0, x1) = self.bounds(|p| p.0, self.log_x);
            let (y0, y1) = self.y_range.unwrap_or_else(|| self.bounds(|p| p.1, self.log_y));
            match (self.log_x, self.log_y) {
                (false, false) => self.draw(&root, x0..x1, y0..y1)?,
                (true, false) => self.draw(&root, (x0..x1).log_scale(), y0..y1)?,
                (false, true) => self.draw(&root, x0..x1, (y0..y1).log_scale())?,
                (true, true) => self.draw(&root, (x0..x1).log_scale(), (y0..y1).log_scale())?,
            }
            root.present().map_err(plot_err)?;
        }
        Ok(svg)
    }

    fn draw<X, Y>(&self, root: &DrawingArea<SVGBackend, Shift>, x: X, y: Y) -> Result<()>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x, y)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(plot_err)?;
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            let color = RGBColor(r, g, b);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            if pts.len() <= 30 {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(plot_err)?;
            }
        }
        if self.series.len() > 1 || self.series.first().is_some_and(|s| !s.0.is_empty()) {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(plot_err)?;
        }
        Ok(())
    }

    /// Writes the plot to an `.svg` file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_text(&self.to_svg()?, path.as_ref(), "svg")
    }

    /// Shows the plot in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        emit_or_report("image/svg+xml", self.to_svg());
    }
}

/// Events on a time axis, one row (lane) per category, as SVG.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    title: String,
    lanes: Vec<String>,
    events: Vec<(f64, usize, String)>,
}

impl Timeline {
    /// An empty timeline.
    pub fn new(title: &str) -> Self {
        Self { title: title.into(), ..Default::default() }
    }

    /// Adds an event at `year` in lane `lane` (created on first use).
    pub fn event(mut self, year: f64, lane: &str, label: &str) -> Self {
        let idx = match self.lanes.iter().position(|l| l == lane) {
            Some(i) => i,
            None => {
                self.lanes.push(lane.into());
                self.lanes.len() - 1
            }
        };
        self.events.push((year, idx, label.into()));
        self
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// `true` without events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The timeline as an SVG document.
    pub fn to_svg(&self) -> Result<String> {
        let mut svg = String::new();
        {
            let n = self.lanes.len().max(1);
            let root = SVGBackend::with_string(&mut svg, (900, 120 + 110 * n as u32)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let y0 = self.events.iter().map(|e| e.0).fold(f64::INFINITY, f64::min);
            let y1 = self.events.iter().map(|e| e.0).fold(f64::NEG_INFINITY, f64::max);
            let (y0, y1) = if y0.is_finite() { (y0.floor() - 0.5, y1.ceil() + 1.5) } else { (0.0, 1.0) };
            let lanes = self.lanes.clone();
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(110)
                .build_cartesian_2d(y0..y1, -0.5..(n as f64 - 0.5))
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n)
                .y_label_formatter(&|v| {
                    let i = v.round();
                    if (v - i).abs() < 1e-6 && i >= 0.0 {
                        lanes.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .x_labels(((y1 - y0) as usize).max(2))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .draw()
                .map_err(plot_err)?;
            // Stagger labels of events that share a lane and a year.
            let mut seen: Vec<(i64, usize, usize)> = Vec::new();
            for (year, lane, label) in &self.events {
                let key = (year.round() as i64, *lane);
                let k = seen.iter().filter(|s| (s.0, s.1) == key).count();
                seen.push((key.0, key.1, k));
                let (r, g, b) = PALETTE[lane % PALETTE.len()];
                let color = RGBColor(r, g, b);
                let y = *lane as f64 - 0.28 + 0.2 * k as f64;
                chart.draw_series([Circle::new((*year, y), 5, color.filled())]).map_err(plot_err)?;
                chart
                    .draw_series([Text::new(label.clone(), (*year + 0.1, y + 0.05), ("sans-serif", 13))])
                    .map_err(plot_err)?;
            }
            root.present().map_err(plot_err)?;
        }
        Ok(svg)
    }

    /// Writes the timeline to an `.svg` file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_text(&self.to_svg()?, path.as_ref(), "svg")
    }

    /// Shows the timeline in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        emit_or_report("image/svg+xml", self.to_svg());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_plot_svg_has_series_labels_and_log_axes() {
        let p = LinePlot::new("accuracy vs labels")
            .x_label("labels per class")
            .series("pretrained", vec![(1.0, 0.5), (10.0, 0.8), (50.0, 0.9)])
            .series("scratch", vec![(1.0, 0.2), (10.0, 0.6), (f64::NAN, 1.0)])
            .log_x();
        let svg = p.to_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for text in ["accuracy vs labels", "labels per class", "pretrained", "scratch"] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert_eq!(svg.matches("<circle").count(), 5 + 2 /* legend has none */ - 2);
        // Tick labels without float noise: a log axis over years labelled 1e9, not 1000000000.0.
        let big = LinePlot::new("growth").series("tokens", vec![(1998.0, 7e4), (2024.0, 1.5e13)]).log_y().to_svg().unwrap();
        assert!(big.contains(">\n1e9\n<") && big.contains(">\n2000\n<"), "tick labels: {big}");
        assert!(!big.contains("1000000000") && !big.contains("2000.0"));
        let dir = std::env::temp_dir().join(format!("sslab-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        p.save(dir.join("a.svg")).unwrap();
        assert!(std::fs::read_to_string(dir.join("a.svg")).unwrap().contains("scratch"));
        assert!(p.save(dir.join("a.png")).unwrap_err().to_string().contains(".svg"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn timeline_svg_names_every_event() {
        let t = Timeline::new("milestones").event(2013.0, "text", "Word2Vec").event(2020.0, "vision", "SimCLR");
        let svg = t.to_svg().unwrap();
        assert!(svg.contains("Word2Vec") && svg.contains("SimCLR") && svg.contains("vision"));
        assert_eq!(t.len(), 2);
    }
}
