//! Collapse diagnostics for a batch of embeddings.
//!
//! Self-supervised methods without negatives can *collapse*: every input maps
//! to the same point (complete collapse) or to a low-dimensional subspace
//! (dimensional collapse). These numbers detect both from one batch.
//!
//! [0] X. Chen, K. He, "Exploring Simple Siamese Representation Learning"
//!     (SimSiam), 2020, arXiv:2011.10566, sec. 4.1 (std of normalised output).
//! [1] Q. Garrido, R. Balestriero, L. Najman, Y. LeCun, "RankMe: Assessing the
//!     Downstream Performance of Pretrained Self-Supervised Representations by
//!     Their Rank", 2023, arXiv:2210.02885, eq. (1).
//! [2] T. Wang, P. Isola, "Understanding Contrastive Representation Learning
//!     through Alignment and Uniformity on the Hypersphere", 2020,
//!     arXiv:2005.10242, eqs. (4)–(5); reference code in
//!     ssnl/align_uniform (`align_loss`, `uniform_loss`).
//!
//! With `ẑᵢ = zᵢ / ‖zᵢ‖` and `σ₁ ≥ … ≥ σ_K` the singular values of `z (N, D)`:
//!
//! ```text
//! std(z)            = (1/D) Σ_d std_i(ẑ_{i,d})             (unbiased std; collapse → 0,
//!                                                             isotropic → ≈ 1/√D)
//! effective_rank(z) = exp(−Σ_k p_k log p_k),  p_k = σ_k / ‖σ‖₁ + 1e-7
//!                                                           (1 ≤ rank ≤ min(N, D))
//! alignment(z, z')  = mean_i ‖ẑᵢ − ẑ'ᵢ‖₂^α                   (α = 2; 0 = views agree)
//! uniformity(z)     = log mean_{i<j} exp(−t ‖ẑᵢ − ẑⱼ‖₂²)      (t = 2; 0 = collapsed,
//!                                                             lower = more uniform)
//! ```
//!
//! The singular values are the square roots of the eigenvalues of the
//! smaller Gram matrix (`zᵀz`, D×D, or `zzᵀ`, N×N), computed in f64 on the
//! host by a cyclic Jacobi eigen solver ([`symmetric_eigen`]); its cost grows
//! as `min(N, D)³`, so `min(N, D) ≤ 512` is required.

use crate::plot::Table;
pub use crate::metrics::{alignment, effective_rank, embedding_std, singular_values, symmetric_eigen, uniformity, MAX_EIGEN_DIM};
use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The collapse diagnostics of a pair of embedded views.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollapseReport {
    /// [`embedding_std`] of the first view.
    pub std: f64,
    /// [`effective_rank`] of the first view.
    pub effective_rank: f64,
    /// [`alignment`] of the two views (α = 2).
    pub alignment: f64,
    /// [`uniformity`] (t = 2), averaged over the two views as in Wang & Isola's loss.
    pub uniformity: f64,
    /// Embedding dimension `D`.
    pub dim: usize,
}

/// All four collapse diagnostics for two views `z1`, `z2` of the same `N`
/// inputs: std and effective rank of `z1`, alignment of `z1` with `z2`, and
/// uniformity averaged over `z1` and `z2`.
///
/// # Shapes
/// `z1 (N, D)`, `z2 (N, D)`, `N ≥ 2`, `min(N, D) ≤ 512`.
///
/// # Example
/// ```
/// use sslab::eval::collapse_report;
/// # use candle_core::{Device, Tensor};
/// let z = Tensor::new(&[[1f32, 2.0, 3.0]; 4], &Device::Cpu)?; // every row the same
/// let r = collapse_report(&z, &z)?;
/// assert!(r.std < 1e-6 && (r.effective_rank - 1.0).abs() < 1e-3 && r.uniformity.abs() < 1e-6);
/// println!("{r}");
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn collapse_report(z1: &Tensor, z2: &Tensor) -> Result<CollapseReport> {
    if z1.dims() != z2.dims() {
        candle_core::bail!(
            "collapse_report expects two views of the same shape (N, D), got {:?} and {:?}",
            z1.dims(),
            z2.dims()
        );
    }
    let (_, d) = z1.dims2()?;
    Ok(CollapseReport {
        std: embedding_std(z1)?,
        effective_rank: effective_rank(z1)?,
        alignment: alignment(z1, z2, 2.0)?,
        uniformity: (uniformity(z1, 2.0)? + uniformity(z2, 2.0)?) / 2.0,
        dim: d,
    })
}

impl CollapseReport {
    /// The report as a table: diagnostic, value, and what collapse and a
    /// healthy spread look like.
    pub fn to_table(&self) -> Table {
        let healthy_std = 1.0 / (self.dim as f64).sqrt();
        Table::new(&["diagnostic", "value", "collapsed", "spread out"])
            .caption(&format!("collapse diagnostics (D = {})", self.dim))
            .row(&["std of normalised z".into(), format!("{:.4}", self.std), "0".into(), format!("≈ 1/√D = {healthy_std:.4}")])
            .row(&[
                "effective rank (RankMe)".into(),
                format!("{:.2}", self.effective_rank),
                "1".into(),
                "min(N, D)".into(),
            ])
            .row(&["alignment (α = 2)".into(), format!("{:.4}", self.alignment), "0".into(), "small is good".into()])
            .row(&["uniformity (t = 2)".into(), format!("{:.4}", self.uniformity), "0".into(), "≥ −4, lower".into()])
    }

    /// Shows the report as a table in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        self.to_table().evcxr_display()
    }
}

impl From<&CollapseReport> for Table {
    fn from(r: &CollapseReport) -> Self {
        r.to_table()
    }
}

impl fmt::Display for CollapseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "std {:.4} (1/√D = {:.4}), effective rank {:.2} of D = {}, alignment {:.4}, uniformity {:.4}",
            self.std,
            1.0 / (self.dim as f64).sqrt(),
            self.effective_rank,
            self.dim,
            self.alignment,
            self.uniformity
        )
    }
}

/// The cross-correlation matrix of a run's embeddings of two augmented
/// views (what Barlow Twins drives to the identity), with its summary.
#[derive(Clone, Debug)]
pub struct CrossCorrelation {
    /// `C (D, D)`: [`crate::loss::cross_correlation`] of the two views.
    pub matrix: Tensor,
    /// Mean of the diagonal (1 when every dimension agrees between the views).
    pub mean_diagonal: f64,
    /// Mean absolute off-diagonal entry (0 when the dimensions are decorrelated).
    pub mean_abs_off_diagonal: f64,
}

impl CrossCorrelation {
    /// Of `run`'s embeddings of two views of `images` drawn from `seed`
    /// ([`crate::method::Pretrainer::two_view_embeddings`]).
    pub fn of(run: &crate::method::Pretrainer, images: &Tensor, seed: u64) -> Result<Self> {
        let (z1, z2) = run.two_view_embeddings(images, seed)?;
        let matrix = crate::loss::cross_correlation(&z1, &z2)?;
        let d = matrix.dim(0)?;
        let v: Vec<f64> = matrix.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let diag: f64 = (0..d).map(|i| v[i * d + i]).sum();
        let all: f64 = v.iter().map(|x| x.abs()).sum();
        let off = if d > 1 { (all - (0..d).map(|i| v[i * d + i].abs()).sum::<f64>()) / (d * d - d) as f64 } else { 0.0 };
        Ok(Self { matrix, mean_diagonal: diag / d as f64, mean_abs_off_diagonal: off })
    }

    /// The top-left `n × n` block as a heatmap (diverging colours, white at
    /// 0), always on the correlation's full scale [−1, 1], so that two
    /// heatmaps (before and after training) can be compared by colour.
    pub fn heatmap(&self, n: usize, title: &str) -> Result<crate::plot::Heatmap> {
        let n = n.min(self.matrix.dim(0)?);
        Ok(crate::plot::Heatmap::new(&self.matrix.narrow(0, 0, n)?.narrow(1, 0, n)?)?
            .title(title)
            .color_map(crate::plot::ColorMap::Diverging)
            .range(-1.0, 1.0))
    }
}

impl std::fmt::Display for CrossCorrelation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cross-correlation of D = {}: mean diagonal {:.3}, mean |off-diagonal| {:.3}",
            self.matrix.dim(0).unwrap_or(0),
            self.mean_diagonal,
            self.mean_abs_off_diagonal
        )
    }
}

/// A table of training runs that record the collapse diagnostics per step
/// (BYOL, SimSiam: the parts `embedding std` and `effective rank` of their
/// histories): each at the first step (mean of the first step) and at the
/// end (mean of the last [`History::END_WINDOW`](crate::train::History::END_WINDOW)
/// steps), and whether the run collapsed completely — effective rank below
/// 2 or std below a tenth of a healthy `1/√D`. (Dimensional collapse shows
/// as a rank well below the full method's, not as a yes here.)
pub fn collapse_table(runs: &[(&str, &crate::train::History)], dim: usize) -> Table {
    let healthy = 1.0 / (dim.max(1) as f64).sqrt();
    let mut t = Table::new(&["run", "std, step 1", "std, end", "effective rank, step 1", "effective rank, end", "complete collapse?"])
        .caption(&format!(
            "batch statistics of the projections (D = {dim}); a healthy spread has std ≈ 1/√D = {healthy:.3}; end = mean of the last {} steps",
            crate::train::History::END_WINDOW
        ));
    for (name, h) in runs {
        let part = |p: &str| h.smoothed_part(p, crate::train::History::END_WINDOW);
        let (std, rank) = (part("embedding std"), part("effective rank"));
        let first = |xs: &[(f64, f64)]| xs.first().map_or(f64::NAN, |v| v.1);
        let last = |xs: &[(f64, f64)]| xs.last().map_or(f64::NAN, |v| v.1);
        if rank.is_empty() {
            t.push(&[name.to_string(), "n/a".into(), "n/a".into(), "n/a".into(), "n/a".into(), "not recorded by this method".into()]);
            continue;
        }
        let collapsed = last(&rank) < 2.0 || last(&std) < 0.1 * healthy;
        t.push(&[
            name.to_string(),
            format!("{:.3}", first(&std)),
            format!("{:.3}", last(&std)),
            format!("{:.1}", first(&rank)),
            format!("{:.1}", last(&rank)),
            if collapsed { "yes".to_string() } else { "no".to_string() },
        ]);
    }
    t
}

/// DINO's two collapses (Caron et al. 2021, §5.3), read from each run's
/// history: one row per run with the entropy of the batch's mean teacher
/// distribution (the run's metric: how many prototypes the batch uses), each
/// image's teacher entropy at the first and the last steps, and the
/// teacher–student KL divergence at the end, the end values averaged over
/// the last [`History::END_WINDOW`](crate::train::History::END_WINDOW) steps, and
/// a verdict against `ln K` for `prototypes = K`:
///
/// * **uniform**: each image's teacher distribution is within 5 % of `ln K` —
///   the teacher says nothing about the image (too little sharpening);
/// * **few prototypes**: the batch's mean distribution has an entropy below
///   half of `ln K` — a handful of prototypes take every image (no centering);
/// * **no**: neither.
pub fn dino_collapse_table(runs: &[(&str, &crate::train::History)], prototypes: usize) -> Table {
    let ln_k = (prototypes.max(1) as f64).ln();
    let mut t = Table::new(&[
        "run",
        "teacher entropy of the batch mean, end",
        "teacher entropy per image, step 1",
        "per image, end",
        "KL(teacher ‖ student), end",
        "collapse?",
    ])
    .caption(&format!(
        "entropies in nats; K = {prototypes} prototypes, ln K = {ln_k:.2} (uniform); end = mean of the last {} steps",
        crate::train::History::END_WINDOW
    ));
    for (name, h) in runs {
        let w = crate::train::History::END_WINDOW;
        let per_image = h.smoothed_part("teacher entropy per image", w);
        let kl = h.smoothed_part("KL(teacher ‖ student)", w);
        let batch = h.smoothed_metric(w);
        let (Some(first), Some(end), Some(kl), Some(&(_, batch))) = (per_image.first(), per_image.last(), kl.last(), batch.last()) else {
            t.push(&[name.to_string(), "n/a".into(), "n/a".into(), "n/a".into(), "n/a".into(), "not recorded (not a dino run?)".into()]);
            continue;
        };
        let verdict = if end.1 > 0.95 * ln_k {
            "uniform"
        } else if batch < 0.5 * ln_k {
            "few prototypes"
        } else {
            "no"
        };
        t.push(&[name.to_string(), format!("{batch:.2}"), format!("{:.2}", first.1), format!("{:.2}", end.1), format!("{:.3}", kl.1), verdict.into()]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use crate::rng::SeededRng;

    fn close(got: f64, want: f64, tol: f64) {
        assert!((got - want).abs() <= tol * want.abs().max(1.0), "got {got}, want {want}");
    }

    fn views(n: usize, d: usize) -> (Tensor, Tensor) {
        let z1: Vec<f32> = (0..n * d).map(|i| i as f32).map(|i| (0.37 * i + 0.1).sin() + 0.3 * (2.1 * i).cos()).collect();
        let z2: Vec<f32> = z1.iter().enumerate().map(|(i, v)| v + 0.2 * (0.91 * i as f32 + 0.5).cos()).collect();
        (
            Tensor::from_vec(z1, (n, d), &Device::Cpu).unwrap(),
            Tensor::from_vec(z2, (n, d), &Device::Cpu).unwrap(),
        )
    }

    /// Reference (torch 2.x; rankme as in [1]'s paper, align/uniform from ssnl/align_uniform):
    /// ```python
    /// import torch, torch.nn.functional as F
    /// def rankme(z, eps=1e-7):
    ///     s = torch.linalg.svdvals(z)
    ///     p = s / s.sum() + eps
    ///     return torch.exp(-(p * torch.log(p)).sum())
    /// def align_loss(x, y, alpha=2):
    ///     return (x - y).norm(p=2, dim=1).pow(alpha).mean()
    /// def uniform_loss(x, t=2):
    ///     return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()
    /// def std_(z):
    ///     return F.normalize(z, dim=1).std(dim=0).mean()
    /// for (N, D) in [(10, 6), (5, 8)]:
    ///     i = torch.arange(N * D, dtype=torch.float32)
    ///     z1 = (torch.sin(0.37 * i + 0.1) + 0.3 * torch.cos(2.1 * i)).reshape(N, D)
    ///     z2 = z1 + 0.2 * torch.cos(0.91 * i + 0.5).reshape(N, D)
    ///     z1, z2 = z1.double(), z2.double()
    ///     x, y = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    ///     print(N, D, std_(z1).item(), rankme(z1).item(), torch.linalg.svdvals(z1).tolist(),
    ///           align_loss(x, y).item(), align_loss(x, y, 1).item(),
    ///           uniform_loss(x).item(), uniform_loss(y).item(), uniform_loss(x, 1).item())
    /// # 10 6 0.41096695305439385 2.941085310535887 [4.4730906371101655, 3.1830909358516286,
    /// #   1.4838618863176405, 0.1508192441903165, 1.06e-06, 6.42e-07] 0.028597291362800925
    /// #   0.166053426192942 -1.7355016911756478 -1.847559348908219 -1.2939692643769218
    /// # 5 8 0.36390497381935577 2.709980670583208 [4.391021059155361, 1.6219832478136993,
    /// #   0.780302157875802, 0.25591178388620145, 4.13e-07] 0.03262685967489126
    /// #   0.18035957511965128 -1.8279561070106143 -1.992937570211026 -1.3247015198444667
    /// ```
    /// The verdicts of [`dino_collapse_table`] on made-up histories: a run
    /// at ln K per image is uniform, one whose batch uses few prototypes is
    /// the other collapse, a run with neither is healthy, and a history
    /// without DINO's parts says so.
    #[test]
    fn dino_collapse_table_tells_the_two_collapses_apart() {
        let k = 64usize;
        let ln_k = (k as f64).ln();
        let run = |batch: f64, per_image: f64| {
            let mut h = crate::train::History::new("dino", "teacher entropy");
            for s in 0..20 {
                h.push(s, 1.0, batch);
                h.push_parts(&[("teacher entropy per image", if s == 0 { 2.0 } else { per_image }), ("KL(teacher ‖ student)", 0.25)]);
            }
            h
        };
        let (flat, few, ok) = (run(ln_k, 0.99 * ln_k), run(0.3 * ln_k, 0.2), run(0.9 * ln_k, 0.5 * ln_k));
        let empty = crate::train::History::new("simclr", "accuracy");
        let t = dino_collapse_table(&[("flat", &flat), ("few", &few), ("ok", &ok), ("simclr", &empty)], k).to_string();
        let verdict = |name: &str| t.lines().find(|l| l.starts_with(name)).unwrap().rsplit('|').next().unwrap().trim().to_string();
        assert_eq!(verdict("flat"), "uniform");
        assert_eq!(verdict("few"), "few prototypes");
        assert_eq!(verdict("ok"), "no");
        assert!(verdict("simclr").contains("not recorded"));
        assert!(t.contains("ln K = 4.16") && t.contains("0.250"), "{t}");
    }

    #[test]
    fn collapse_diagnostics_match_torch() {
        #[allow(clippy::type_complexity)]
        let cases: [((usize, usize), [f64; 8], [f64; 4]); 2] = [
            (
                (10, 6),
                [0.410_966_953, 2.941_085_31, 0.028_597_291_4, 0.166_053_426, -1.735_501_69, -1.847_559_35, -1.293_969_26, 0.0],
                [4.473_090_637, 3.183_090_936, 1.483_861_886, 0.150_819_244],
            ),
            (
                (5, 8),
                [0.363_904_974, 2.709_980_671, 0.032_626_859_7, 0.180_359_575, -1.827_956_11, -1.992_937_57, -1.324_701_52, 0.0],
                [4.391_021_059, 1.621_983_248, 0.780_302_158, 0.255_911_784],
            ),
        ];
        for ((n, d), w, sv) in cases {
            let (z1, z2) = views(n, d);
            close(embedding_std(&z1).unwrap(), w[0], 1e-6);
            close(effective_rank(&z1).unwrap(), w[1], 1e-5);
            close(alignment(&z1, &z2, 2.0).unwrap(), w[2], 1e-6);
            close(alignment(&z1, &z2, 1.0).unwrap(), w[3], 1e-6);
            close(uniformity(&z1, 2.0).unwrap(), w[4], 1e-5);
            close(uniformity(&z2, 2.0).unwrap(), w[5], 1e-5);
            close(uniformity(&z1, 1.0).unwrap(), w[6], 1e-5);
            let s = singular_values(&z1).unwrap();
            assert_eq!(s.len(), n.min(d));
            for (g, want) in s.iter().zip(sv) {
                close(*g, want, 1e-6);
            }
            assert!(s[4..].iter().all(|x| *x < 1e-4), "{s:?}");
            let r = collapse_report(&z1, &z2).unwrap();
            close(r.uniformity, (w[4] + w[5]) / 2.0, 1e-5);
            assert_eq!((r.dim, r.std, r.effective_rank), (d, embedding_std(&z1).unwrap(), effective_rank(&z1).unwrap()));
        }
    }

    #[test]
    fn collapse_known_cases_collapsed_and_isotropic() {
        // complete collapse: all rows equal
        let z = Tensor::new(&[[0.3f32, -1.0, 2.0, 0.5]; 6], &Device::Cpu).unwrap();
        let r = collapse_report(&z, &z).unwrap();
        assert!(r.std < 1e-7, "{r}");
        close(r.effective_rank, 1.0, 1e-4);
        assert!(r.alignment.abs() < 1e-12 && r.uniformity.abs() < 1e-6, "{r}");
        // isotropic Gaussian, N ≫ D: std ≈ 1/√D, rank ≈ D, uniformity near its minimum
        let d = 16;
        let g = SeededRng::new(0).randn(&[4000, d], 1.0, &Device::Cpu).unwrap();
        let std = embedding_std(&g).unwrap();
        close(std, 1.0 / (d as f64).sqrt(), 0.02);
        let rank = effective_rank(&g).unwrap();
        assert!(rank > 0.97 * d as f64 && rank <= d as f64, "{rank}");
        // dimensional collapse: the same Gaussian confined to 3 of 16 dims
        let low = g.narrow(1, 0, 3).unwrap().pad_with_zeros(1, 0, d - 3).unwrap();
        let r3 = effective_rank(&low).unwrap();
        assert!((r3 - 3.0).abs() < 0.1, "{r3}");
        // table and text
        let t = r.to_table();
        assert_eq!(t.len(), 4);
        assert!(t.to_string().contains("effective rank (RankMe)"));
        assert!(r.to_string().contains("effective rank 1.00 of D = 4"), "{r}");
    }

    #[test]
    fn cross_correlation_summary_matches_the_matrix() {
        let run = crate::method::Pretrainer::new(
            crate::method::PretrainConfig::for_method(crate::method::MethodName::Barlow),
            (1, 28, 28),
            &Device::Cpu,
        )
        .unwrap();
        let x = crate::data::shapes(32, 0).unwrap().images;
        let c = CrossCorrelation::of(&run, &x, 1).unwrap();
        let d = run.config().head_out;
        assert_eq!(c.matrix.dims(), &[d, d]);
        let v: Vec<Vec<f32>> = c.matrix.to_vec2().unwrap();
        let diag = (0..d).map(|i| f64::from(v[i][i])).sum::<f64>() / d as f64;
        assert!((c.mean_diagonal - diag).abs() < 1e-5);
        assert!(c.mean_abs_off_diagonal > 0.0 && c.mean_abs_off_diagonal <= 1.0 + 1e-6);
        assert!(c.to_string().contains(&format!("D = {d}")));
        // one colour scale for every heatmap, whatever the values
        assert_eq!(c.heatmap(8, "x").unwrap().value_range().unwrap(), (-1.0, 1.0));
    }

    #[test]
    fn collapse_table_reads_the_recorded_parts() {
        let mut healthy = crate::train::History::new("a", "m");
        let mut dead = crate::train::History::new("b", "m");
        // the dead run falls over 20 steps, then stays down for the 20 the end averages
        for k in 1..=40 {
            healthy.push(k, 1.0, 0.0);
            healthy.push_parts(&[("embedding std", 0.12), ("effective rank", 30.0)]);
            let j = k.min(20) as f64;
            dead.push(k, 1.0, 0.0);
            dead.push_parts(&[("embedding std", 0.12 / j), ("effective rank", 40.0 / j)]);
        }
        let t = collapse_table(&[("healthy", &healthy), ("dead", &dead)], 64).to_string();
        let rows: Vec<&str> = t.lines().filter(|l| l.starts_with("healthy") || l.starts_with("dead")).collect();
        assert!(rows[0].trim_end().ends_with("no") && rows[1].trim_end().ends_with("yes"), "{t}");
        assert!(rows[1].contains("40.0") && rows[1].contains("0.006"), "{t}");
        assert!(t.contains("end = mean of the last 20 steps"), "{t}");
    }

    #[test]
    fn collapse_errors_name_the_shapes() {
        let z = |s: (usize, usize)| Tensor::ones(s, DType::F32, &Device::Cpu).unwrap();
        let err = embedding_std(&z((1, 8))).unwrap_err().to_string();
        assert!(err.contains("N ≥ 2") && err.contains("[1, 8]"), "{err}");
        let err = collapse_report(&z((4, 8)), &z((4, 7))).unwrap_err().to_string();
        assert!(err.contains("[4, 8] and [4, 7]"), "{err}");
        assert!(alignment(&z((4, 8)), &z((5, 8)), 2.0).unwrap_err().to_string().contains("[5, 8]"));
        assert!(uniformity(&z((1, 3)), 2.0).is_err() && uniformity(&z((3, 3)), 0.0).is_err());
        let err = effective_rank(&z((600, 600))).unwrap_err().to_string();
        assert!(err.contains("512") && err.contains("[600, 600]"), "{err}");
        let nan = Tensor::new(&[[1f32, 2.0], [3.0, f32::NAN]], &Device::Cpu).unwrap();
        assert!(embedding_std(&nan).unwrap_err().to_string().contains("(1, 1)"));
        assert!(symmetric_eigen(&[1.0, 2.0, 0.0, 1.0], 2, false).unwrap_err().to_string().contains("symmetric"));
    }

    #[test]
    fn symmetric_eigen_reconstructs_the_matrix() {
        // A = V diag(λ) Vᵀ for a random symmetric 7×7
        let n = 7;
        let mut rng = SeededRng::new(3);
        let b: Vec<f64> = (0..n * n).map(|_| f64::from(rng.normal())).collect();
        let a: Vec<f64> = (0..n * n).map(|i| b[i] + b[(i % n) * n + i / n]).collect();
        let (vals, vecs) = symmetric_eigen(&a, n, true).unwrap();
        assert!(vals.windows(2).all(|w| w[0] >= w[1]));
        for i in 0..n {
            for j in 0..n {
                let rec: f64 = (0..n).map(|k| vecs[i * n + k] * vals[k] * vecs[j * n + k]).sum();
                assert!((rec - a[i * n + j]).abs() < 1e-10, "({i}, {j})");
            }
        }
        let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
        assert!((vals.iter().sum::<f64>() - trace).abs() < 1e-10);
    }
}
