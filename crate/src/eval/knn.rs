//! Weighted k-nearest-neighbour classification of frozen features.
//!
//! [0] Z. Wu, Y. Xiong, S. X. Yu, D. Lin, "Unsupervised Feature Learning via
//!     Non-Parametric Instance Discrimination", 2018, arXiv:1805.01978, sec. 3.4.
//! [1] M. Caron et al., "Emerging Properties in Self-Supervised Vision
//!     Transformers" (DINO), 2021, arXiv:2104.14294; reference code
//!     `eval_knn.py::knn_classifier` in facebookresearch/dino.
//!
//! Features are L2-normalised, so the similarity is the cosine. A test point
//! `x` retrieves its `k` most similar training points `N_k(x)`; each votes for
//! its label with weight `exp(sᵢ / T)`:
//!
//! ```text
//! sᵢ    = x·fᵢ / (‖x‖ ‖fᵢ‖)
//! w_c   = Σ_{i ∈ N_k(x), yᵢ = c} exp(sᵢ / T)
//! ŷ(x)  = argmax_c w_c
//! ```
//!
//! The defaults `k = 20`, `T = 0.07` are those of [0] and [1]. Unlike a linear
//! probe, the k-NN classifier has no training and no hyperparameters to tune
//! on the test set beyond `k` and `T`, which makes it a cheap and honest
//! monitor of representation quality during pretraining.

use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Settings of the weighted k-NN classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnnConfig {
    /// Number of neighbours (default 20). When larger than the number of
    /// training examples `N`, all `N` are used (the protocol records the `k`
    /// actually used).
    pub k: usize,
    /// Temperature `T` of the vote weights `exp(s / T)` (default 0.07).
    pub temperature: f64,
    /// Test rows per similarity chunk (default 256): memory holds one
    /// `(batch, N)` similarity matrix at a time.
    pub batch: usize,
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self { k: 20, temperature: 0.07, batch: 256 }
    }
}

/// How a k-NN accuracy was obtained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnnProtocol {
    /// Neighbours actually used (`min(cfg.k, N)`).
    pub k: usize,
    /// Temperature of the vote weights.
    pub temperature: f64,
    /// Number of labelled training (memory bank) examples `N`.
    pub train_examples: usize,
    /// Number of evaluated examples `M`.
    pub test_examples: usize,
    /// Similarity measure: always `"cosine"`.
    pub metric: String,
}

impl fmt::Display for KnnProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "weighted {}-NN on frozen, L2-normalised features ({} similarity, votes exp(s/{})): \
             {} labelled training examples, accuracy on {} held-out examples",
            self.k, self.metric, self.temperature, self.train_examples, self.test_examples
        )
    }
}

/// A k-NN accuracy with its protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnnResult {
    /// Fraction of test examples whose predicted class equals the label.
    pub accuracy: f64,
    /// How the number was obtained.
    pub protocol: KnnProtocol,
}

impl fmt::Display for KnnResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "k-NN accuracy {:.4} ({})", self.accuracy, self.protocol)
    }
}

fn l2_normalize_rows(x: &Tensor) -> Result<Tensor> {
    // F.normalize(x, dim=1, eps=1e-12)
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}

/// Checks the arguments shared by the k-NN functions and returns `(N, M, k)`.
fn check(
    name: &str,
    train_feats: &Tensor,
    train_labels: &[u32],
    test_feats: &Tensor,
    num_classes: usize,
    cfg: &KnnConfig,
) -> Result<(usize, usize, usize)> {
    let (td, sd) = (train_feats.dims(), test_feats.dims());
    let ok = matches!((td, sd), (&[n, d], &[m, d2]) if n > 0 && m > 0 && d > 0 && d == d2);
    if !ok || td[0] != train_labels.len() {
        candle_core::bail!(
            "{name} expects train features (N, D) with N = {} labels and test features (M, D), \
             N, M, D > 0, got {td:?} and {sd:?}",
            train_labels.len()
        );
    }
    if num_classes == 0 {
        candle_core::bail!("{name}: num_classes must be positive");
    }
    if let Some((i, y)) = train_labels.iter().enumerate().find(|(_, &y)| y as usize >= num_classes) {
        candle_core::bail!("{name}: train label {y} at index {i}, but only {num_classes} classes");
    }
    if cfg.k == 0 {
        candle_core::bail!("{name}: k must be positive, got 0");
    }
    if !(cfg.temperature.is_finite() && cfg.temperature > 0.0) {
        candle_core::bail!("{name}: temperature must be positive and finite, got {}", cfg.temperature);
    }
    Ok((td[0], sd[0], cfg.k.min(td[0])))
}

/// The summed vote weights `w_c` of every test point for every class.
///
/// ```text
/// w_c = Σ_{i ∈ top-k cosine neighbours, yᵢ = c} exp(sᵢ / T)
/// ```
///
/// `k` larger than `N` uses all
/// `N` training points. The similarities are computed on the features'
/// device in chunks of `cfg.batch` test rows; the top-k selection runs on the
/// host. Non-finite features are an error.
///
/// # Shapes
/// `train_feats (N, D)`, `train_labels` N values `< num_classes`,
/// `test_feats (M, D)` → `(M, num_classes)` f32 on the CPU.
pub fn knn_votes(
    train_feats: &Tensor,
    train_labels: &[u32],
    test_feats: &Tensor,
    num_classes: usize,
    cfg: &KnnConfig,
) -> Result<Tensor> {
    let (n, m, k) = check("knn_votes", train_feats, train_labels, test_feats, num_classes, cfg)?;
    let train = l2_normalize_rows(&train_feats.detach().to_dtype(DType::F32)?)?.t()?.contiguous()?; // (D, N)
    let test = l2_normalize_rows(&test_feats.detach().to_dtype(DType::F32)?.to_device(train.device())?)?;
    let batch = cfg.batch.max(1);
    let mut votes = vec![0f32; m * num_classes];
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for start in (0..m).step_by(batch) {
        let len = batch.min(m - start);
        let sim: Vec<Vec<f32>> = test.narrow(0, start, len)?.matmul(&train)?.to_device(&Device::Cpu)?.to_vec2()?;
        for (r, row) in sim.iter().enumerate() {
            if let Some(j) = row.iter().position(|s| !s.is_finite()) {
                candle_core::bail!(
                    "knn_votes: non-finite similarity between test row {} and train row {j}: \
                     the features contain NaN or infinity",
                    start + r
                );
            }
            order.clear();
            order.extend(0..n);
            let desc = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]);
            if k < n {
                order.select_nth_unstable_by(k - 1, desc);
            }
            let w = &mut votes[(start + r) * num_classes..(start + r + 1) * num_classes];
            for &i in &order[..k] {
                w[train_labels[i] as usize] += (f64::from(row[i]) / cfg.temperature).exp() as f32;
            }
        }
    }
    Tensor::from_vec(votes, (m, num_classes), &Device::Cpu)
}

/// Predicted class of every test point: the class with the largest summed
/// vote weight (ties go to the smaller class index).
///
/// # Shapes
/// `train_feats (N, D)`, `test_feats (M, D)` → `M` labels.
///
/// # Example
/// ```
/// use sslab::eval::{knn_classify, KnnConfig};
/// # use candle_core::{Device, Tensor};
/// let train = Tensor::new(&[[1f32, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], &Device::Cpu)?;
/// let test = Tensor::new(&[[1f32, 0.2], [0.2, 1.0]], &Device::Cpu)?;
/// let pred = knn_classify(&train, &[0, 0, 1, 1], &test, 2, &KnnConfig { k: 2, ..Default::default() })?;
/// assert_eq!(pred, vec![0, 1]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn knn_classify(
    train_feats: &Tensor,
    train_labels: &[u32],
    test_feats: &Tensor,
    num_classes: usize,
    cfg: &KnnConfig,
) -> Result<Vec<u32>> {
    let votes: Vec<Vec<f32>> = knn_votes(train_feats, train_labels, test_feats, num_classes, cfg)?.to_vec2()?;
    Ok(votes
        .iter()
        .map(|w| {
            let mut best = 0;
            for (c, v) in w.iter().enumerate() {
                if *v > w[best] {
                    best = c;
                }
            }
            best as u32
        })
        .collect())
}

/// Accuracy of the weighted k-NN classifier on labelled test features, with
/// its protocol.
///
/// # Shapes
/// `train_feats (N, D)`, `test_feats (M, D)`, `test_labels` M values.
pub fn knn_accuracy(
    train_feats: &Tensor,
    train_labels: &[u32],
    test_feats: &Tensor,
    test_labels: &[u32],
    num_classes: usize,
    cfg: &KnnConfig,
) -> Result<KnnResult> {
    let (n, m, k) = check("knn_accuracy", train_feats, train_labels, test_feats, num_classes, cfg)?;
    if test_labels.len() != m {
        candle_core::bail!(
            "knn_accuracy: test features {:?} but {} test labels",
            test_feats.dims(),
            test_labels.len()
        );
    }
    let pred = knn_classify(train_feats, train_labels, test_feats, num_classes, cfg)?;
    let correct = pred.iter().zip(test_labels).filter(|(p, y)| p == y).count();
    Ok(KnnResult {
        accuracy: correct as f64 / m as f64,
        protocol: KnnProtocol {
            k,
            temperature: cfg.temperature,
            train_examples: n,
            test_examples: m,
            metric: "cosine".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    fn formula(len: usize, f: impl Fn(f32) -> f32, shape: (usize, usize)) -> Tensor {
        let v: Vec<f32> = (0..len).map(|i| f(i as f32)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Reference: DINO's `eval_knn.py::knn_classifier` (one chunk), torch 2.x.
    /// ```python
    /// import torch, torch.nn.functional as F
    /// N, M, D, C, k, T = 30, 8, 6, 4, 5, 0.07
    /// i = torch.arange(N * D, dtype=torch.float32)
    /// train = torch.sin(0.37 * i + 0.1).reshape(N, D) + 0.5 * torch.cos(1.3 * i).reshape(N, D)
    /// j = torch.arange(M * D, dtype=torch.float32)
    /// test = torch.cos(0.23 * j + 0.4).reshape(M, D)
    /// train_labels = torch.tensor([(n * n + n // 2) % C for n in range(N)])
    /// test_labels = torch.tensor([n % C for n in range(M)])
    /// train_features = F.normalize(train, dim=1, p=2)
    /// test_features = F.normalize(test, dim=1, p=2)
    /// train_features = train_features.t()
    /// similarity = torch.mm(test_features, train_features)
    /// distances, indices = similarity.topk(k, largest=True, sorted=True)
    /// candidates = train_labels.view(1, -1).expand(M, -1)
    /// retrieved_neighbors = torch.gather(candidates, 1, indices)
    /// retrieval_one_hot = torch.zeros(M * k, C)
    /// retrieval_one_hot.scatter_(1, retrieved_neighbors.view(-1, 1), 1)
    /// distances_transform = distances.clone().div_(T).exp_()
    /// probs = torch.sum(torch.mul(retrieval_one_hot.view(M, -1, C), distances_transform.view(M, -1, 1)), 1)
    /// _, predictions = probs.sort(1, True)
    /// correct = predictions.eq(test_labels.data.view(-1, 1))
    /// print(predictions[:, 0].tolist())                   # [1, 0, 1, 1, 2, 1, 2, 3]
    /// print(correct.narrow(1, 0, 1).sum().item() / M)     # 0.375
    /// print(probs[0].tolist())  # [0.0, 639296.875, 529929.0625, 324279.65625]
    /// print((probs / probs.sum(1, keepdim=True))[1].tolist())
    /// # [0.35214871168136597, 0.2778398096561432, 0.3440529406070709, 0.025958556681871414]
    /// ```
    #[test]
    fn knn_matches_dino_knn_classifier() {
        let (n, m, d, c) = (30, 8, 6, 4);
        let train = (formula(n * d, |i| (0.37 * i + 0.1).sin(), (n, d))
            + (formula(n * d, |i| (1.3 * i).cos(), (n, d)) * 0.5).unwrap())
        .unwrap();
        let test = formula(m * d, |j| (0.23 * j + 0.4).cos(), (m, d));
        let ytr: Vec<u32> = (0..n).map(|i| ((i * i + i / 2) % c) as u32).collect();
        let yte: Vec<u32> = (0..m).map(|i| (i % c) as u32).collect();
        // batch 3 so the chunks do not divide M
        let cfg = KnnConfig { k: 5, temperature: 0.07, batch: 3 };
        assert_eq!(knn_classify(&train, &ytr, &test, c, &cfg).unwrap(), vec![1, 0, 1, 1, 2, 1, 2, 3]);
        let r = knn_accuracy(&train, &ytr, &test, &yte, c, &cfg).unwrap();
        assert_eq!(r.accuracy, 0.375);
        let votes: Vec<Vec<f32>> = knn_votes(&train, &ytr, &test, c, &cfg).unwrap().to_vec2().unwrap();
        for (g, w) in votes[0].iter().zip([0.0, 639_296.9, 529929.06, 324279.66]) {
            assert!((g - w).abs() <= 1e-4 * w, "{g} vs {w}");
        }
        let total: f32 = votes[1].iter().sum();
        for (g, w) in votes[1].iter().zip([0.352_148_7, 0.277_839_8, 0.344_052_9, 0.025_958_557]) {
            assert!((g / total - w).abs() < 1e-5, "{} vs {w}", g / total);
        }
        // the protocol serialises and reads well
        assert_eq!(r.protocol.k, 5);
        let json = serde_json::to_string(&r.protocol).unwrap();
        assert!(json.contains("\"metric\":\"cosine\"") && json.contains("\"train_examples\":30"), "{json}");
        let text = r.to_string();
        assert!(text.contains("5-NN") && text.contains("30 labelled") && text.contains("8 held-out"), "{text}");
    }

    #[test]
    fn knn_separable_clusters_are_perfect_and_k_is_clamped() {
        let mut rng = SeededRng::new(0);
        // four clusters around orthogonal directions in 8-D
        let mk = |rng: &mut SeededRng, n: usize| -> (Tensor, Vec<u32>) {
            let y: Vec<u32> = (0..n).map(|i| (i % 4) as u32).collect();
            let x: Vec<f32> =
                y.iter().flat_map(|&c| (0..8).map(move |j| if j == 2 * c as usize { 5.0 } else { 0.0 })).collect();
            let noise = rng.randn(&[n, 8], 0.5, &Device::Cpu).unwrap();
            ((Tensor::from_vec(x, (n, 8), &Device::Cpu).unwrap() + noise).unwrap(), y)
        };
        let (xtr, ytr) = mk(&mut rng, 40);
        let (xte, yte) = mk(&mut rng, 100);
        let r = knn_accuracy(&xtr, &ytr, &xte, &yte, 4, &KnnConfig::default()).unwrap();
        assert_eq!(r.accuracy, 1.0, "{r}");
        assert_eq!(r.protocol.k, 20);
        // k > N: all N training points vote, recorded in the protocol
        let big = KnnConfig { k: 1000, ..Default::default() };
        let r = knn_accuracy(&xtr, &ytr, &xte, &yte, 4, &big).unwrap();
        assert_eq!(r.protocol.k, 40);
        assert!(r.accuracy > 0.9, "{r}");
    }

    #[test]
    fn knn_errors_name_the_shapes() {
        let z = |s: (usize, usize)| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
        let cfg = KnnConfig::default();
        let err = knn_classify(&z((4, 8)), &[0; 4], &z((3, 5)), 2, &cfg).unwrap_err().to_string();
        assert!(err.contains("[4, 8] and [3, 5]"), "{err}");
        let err = knn_classify(&z((4, 8)), &[0; 3], &z((3, 8)), 2, &cfg).unwrap_err().to_string();
        assert!(err.contains("N = 3 labels") && err.contains("[4, 8]"), "{err}");
        let err = knn_classify(&z((0, 8)), &[], &z((3, 8)), 2, &cfg).unwrap_err().to_string();
        assert!(err.contains("[0, 8]"), "{err}");
        assert!(knn_classify(&z((4, 8)), &[0; 4], &z((0, 8)), 2, &cfg).is_err());
        let err = knn_classify(&z((2, 8)), &[0, 5], &z((3, 8)), 2, &cfg).unwrap_err().to_string();
        assert!(err.contains("label 5"), "{err}");
        let err = knn_accuracy(&z((2, 8)), &[0, 1], &z((3, 8)), &[0], 2, &cfg).unwrap_err().to_string();
        assert!(err.contains("[3, 8]") && err.contains("1 test labels"), "{err}");
        assert!(knn_classify(&z((2, 8)), &[0, 1], &z((3, 8)), 2, &KnnConfig { k: 0, ..cfg.clone() }).is_err());
        let t0 = KnnConfig { temperature: 0.0, ..cfg };
        assert!(knn_classify(&z((2, 8)), &[0, 1], &z((3, 8)), 2, &t0).unwrap_err().to_string().contains("temperature"));
        let nan = Tensor::new(&[[f32::NAN, 1.0]], &Device::Cpu).unwrap();
        let err = knn_classify(&z((2, 2)), &[0, 1], &nan, 2, &KnnConfig::default()).unwrap_err().to_string();
        assert!(err.contains("test row 0"), "{err}");
    }
}
