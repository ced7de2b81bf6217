//! The presentation of loss breakdowns: [`NtXentBreakdown`] as a heatmap
//! and a table (the loss module computes, this one shows).

use super::{Heatmap, Table};
use crate::loss::NtXentBreakdown;
use candle_core::Result;

impl NtXentBreakdown {
    /// The similarity matrix with the positive pairs framed (the diagonal,
    /// each view with itself, is left out of the loss).
    pub fn heatmap(&self) -> Result<Heatmap> {
        let names = self.view_names();
        let rows = self.similarity.iter().map(|r| r.iter().map(|&v| v as f32).collect()).collect();
        Ok(Heatmap::from_rows(rows)?
            .title("cosine similarity zᵢ·zₖ (framed: positive pairs)")
            .labels(&names, &names)
            .range(-1.0, 1.0)
            .outline(self.positive.iter().copied().enumerate()))
    }

    /// One row per view: its positive, `sᵢ,ⱼ₍ᵢ₎`, the softmax probability of
    /// the positive and `ℓᵢ`; the caption gives the mean (the loss).
    pub fn table(&self) -> Table {
        let names = self.view_names();
        let mut t = Table::new(&["view i", "positive j(i)", "zᵢ·zⱼ₍ᵢ₎", "p(positive)", "ℓᵢ = −log p"]).caption(&format!(
            "τ = {}; a row's softmax runs over its {} other views; L = mean ℓᵢ = {:.4}",
            self.temperature,
            names.len() - 1,
            self.loss
        ));
        for i in 0..names.len() {
            t.push(&[
                names[i].clone(),
                names[self.positive[i]].clone(),
                format!("{:.3}", self.similarity[i][self.positive[i]]),
                format!("{:.3}", self.positive_probability[i]),
                format!("{:.3}", self.row_loss[i]),
            ]);
        }
        t
    }
}
