//! Published CIFAR-10 results of the methods in this crate, for section 25.6.
//!
//! Sources (numbers copied from the files named, not from memory):
//!
//! * solo-learn — `vturrisi/solo-learn`, `README.md` at commit
//!   5226562090876e7deb716027b8c282bd10d53837, "CIFAR-10" table: ResNet-18,
//!   1000 epochs, Acc@1 of a linear classifier on the frozen features (the
//!   README's earlier versions label these "online": a classifier trained
//!   alongside pretraining on a stop-gradient). Batch 256 in the BYOL config
//!   (`scripts/pretrain/cifar/byol.yaml`). The README warns that
//!   "hyperparameters may not be the best".
//! * lightly — `lightly-ai/lightly`, `docs/source/getting_started/benchmarks.rst`,
//!   "CIFAR-10" table: ResNet-18 (CIFAR variant), k-NN (k = 200) top-1 on the
//!   test set, the best over all epochs; batch 512 and 800 epochs, and batch
//!   128 and 200 epochs. No VICReg, MAE or pretext-task rows.

use crate::plot::Table;

/// One method's published numbers (percent; `None` where the source has no row).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PublishedCifar10 {
    /// The method as this crate names it.
    pub method: &'static str,
    /// The method's name in the sources.
    pub as_published: &'static str,
    /// solo-learn: linear Acc@1, ResNet-18, 1000 epochs.
    pub solo_learn_linear: Option<f64>,
    /// lightly: k-NN top-1, ResNet-18, batch 512, 800 epochs.
    pub lightly_knn_800: Option<f64>,
    /// lightly: k-NN top-1, ResNet-18, batch 128, 200 epochs.
    pub lightly_knn_200: Option<f64>,
}

/// The published rows for the joint-embedding methods of this crate.
pub const PUBLISHED_CIFAR10: [PublishedCifar10; 7] = [
    PublishedCifar10 { method: "simclr", as_published: "SimCLR", solo_learn_linear: Some(90.74), lightly_knn_800: Some(87.9), lightly_knn_200: Some(84.7) },
    PublishedCifar10 { method: "moco", as_published: "MoCo V2+ (solo-learn), MoCo (lightly)", solo_learn_linear: Some(92.94), lightly_knn_800: Some(89.9), lightly_knn_200: Some(83.8) },
    PublishedCifar10 { method: "byol", as_published: "BYOL", solo_learn_linear: Some(92.58), lightly_knn_800: Some(91.0), lightly_knn_200: Some(86.9) },
    PublishedCifar10 { method: "simsiam", as_published: "SimSiam", solo_learn_linear: Some(90.51), lightly_knn_800: Some(90.4), lightly_knn_200: Some(81.9) },
    PublishedCifar10 { method: "barlow", as_published: "Barlow Twins", solo_learn_linear: Some(92.10), lightly_knn_800: Some(85.9), lightly_knn_200: Some(84.2) },
    PublishedCifar10 { method: "vicreg", as_published: "VICReg", solo_learn_linear: Some(92.07), lightly_knn_800: None, lightly_knn_200: None },
    PublishedCifar10 { method: "dino", as_published: "DINO", solo_learn_linear: Some(89.52), lightly_knn_800: Some(84.8), lightly_knn_200: Some(84.0) },
];

/// [`PUBLISHED_CIFAR10`] as a table, with the scale of each source in the caption.
pub fn published_cifar10_table() -> Table {
    let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} %"));
    let mut t = Table::new(&[
        "method",
        "as published",
        "solo-learn: linear, 1000 epochs",
        "lightly: k-NN, batch 512, 800 epochs",
        "lightly: k-NN, batch 128, 200 epochs",
    ])
    .caption(
        "Published CIFAR-10 results — a different scale: 50,000 colour training images, ResNet-18 (11 M parameters), \
         200 to 1000 epochs on a GPU, and every training label for the classifier (solo-learn: github.com/vturrisi/solo-learn, \
         README; lightly: docs, Benchmarks, CIFAR-10; k-NN with k = 200, best epoch)",
    );
    for r in &PUBLISHED_CIFAR10 {
        t.push(&[r.method.to_string(), r.as_published.to_string(), pct(r.solo_learn_linear), pct(r.lightly_knn_800), pct(r.lightly_knn_200)]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::MethodName;

    /// Every row names a method of the crate; the values are percentages in
    /// range, and the table shows each one with its source's scale.
    #[test]
    fn published_rows_name_crate_methods_and_show_in_the_table() {
        let names: Vec<&str> = MethodName::ALL.iter().map(|m| m.as_str()).collect();
        for r in &PUBLISHED_CIFAR10 {
            assert!(names.contains(&r.method), "{}", r.method);
            for v in [r.solo_learn_linear, r.lightly_knn_800, r.lightly_knn_200].into_iter().flatten() {
                assert!((50.0..100.0).contains(&v), "{}: {v}", r.method);
            }
        }
        let t = published_cifar10_table().to_string();
        assert!(t.contains("92.6 %") && t.contains("91.0 %") && t.contains("a different scale"), "{t}");
        let vicreg = t.lines().find(|l| l.starts_with("vicreg")).unwrap();
        assert_eq!(vicreg.matches('—').count(), 2, "VICReg has no lightly rows: {vicreg}");
    }
}
