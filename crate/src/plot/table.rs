//! Tables as HTML (in Jupyter) and aligned text (in a terminal).

use super::{emit, html_escape};
use std::fmt;

/// A table with a header row, shown as HTML in Jupyter and as text by `{}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    caption: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new<S: ToString>(header: &[S]) -> Self {
        Self { header: header.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    /// Sets the caption shown above the table.
    pub fn caption(mut self, caption: &str) -> Self {
        self.caption = caption.to_string();
        self
    }

    /// Appends a row (shorter rows are padded with empty cells).
    pub fn row<S: ToString>(mut self, cells: &[S]) -> Self {
        self.push(cells);
        self
    }

    /// Appends a row in place.
    pub fn push<S: ToString>(&mut self, cells: &[S]) {
        let mut r: Vec<String> = cells.iter().map(|s| s.to_string()).collect();
        r.resize(self.header.len().max(r.len()), String::new());
        self.rows.push(r);
    }

    /// Number of rows (without the header).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// `true` when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as an HTML fragment.
    pub fn to_html(&self) -> String {
        let mut s = String::from("<table class=\"sslab-table\">");
        if !self.caption.is_empty() {
            s += &format!("<caption>{}</caption>", html_escape(&self.caption));
        }
        s += "<thead><tr>";
        for h in &self.header {
            s += &format!("<th>{}</th>", html_escape(h));
        }
        s += "</tr></thead><tbody>";
        for r in &self.rows {
            s += "<tr>";
            for c in r {
                s += &format!("<td>{}</td>", html_escape(c));
            }
            s += "</tr>";
        }
        s + "</tbody></table>"
    }

    /// Shows the table in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        emit("text/html", &self.to_html());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ncol = self.rows.iter().map(Vec::len).chain([self.header.len()]).max().unwrap_or(0);
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .chain(self.header.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..ncol).map(width).collect();
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = (0..ncol)
                .map(|i| format!("{:<w$}", cells.get(i).map_or("", |s| s.as_str()), w = widths[i]))
                .collect();
            parts.join(" | ").trim_end().to_string()
        };
        if !self.caption.is_empty() {
            writeln!(f, "{}", self.caption)?;
        }
        writeln!(f, "{}", line(&self.header))?;
        writeln!(f, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"))?;
        for r in &self.rows {
            writeln!(f, "{}", line(r))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_renders_html_and_text() {
        let t = Table::new(&["method", "acc"]).caption("a <b>").row(&["rotation", "0.91"]).row(&["x"]);
        let h = t.to_html();
        assert!(h.contains("<caption>a &lt;b&gt;</caption>") && h.contains("<td>rotation</td><td>0.91</td>"));
        assert!(h.contains("<td>x</td><td></td>"));
        let s = t.to_string();
        assert!(s.contains("method   | acc\n") && s.contains("rotation | 0.91\n"), "{s}");
        assert_eq!(t.len(), 2);
    }
}
