//! [`LabelledData`]: the one abstraction over labelled examples held in
//! memory — images, series, video clips, text windows. A type supplies its
//! rows, labels, class names and name; selection, splits, few-label subsets
//! and batching are written once here.

use crate::rng::SeededRng;
use candle_core::{Device, IndexOp, Result, Tensor};

/// A labelled data set held in memory: `N` examples (the rows of
/// [`inputs`](Self::inputs)), each with a class index. The evaluation code
/// ([`crate::eval`]) takes any of them.
///
/// Implementors give the four parts and [`with_rows`](Self::with_rows);
/// everything else is provided.
pub trait LabelledData: Sized {
    /// The inputs `(N, …)`: images `(N, C, H, W)`, series `(N, C, T)`,
    /// clips `(N, F, C, H, W)`, token windows `(N, L)`.
    fn inputs(&self) -> &Tensor;
    /// Class index of each example.
    fn labels(&self) -> &[u32];
    /// Name of each class, in label order.
    fn class_names(&self) -> &[String];
    /// Where the data came from, for messages.
    fn name(&self) -> &str;
    /// What one example is called in messages ("images", "series", "clips", "windows").
    fn unit(&self) -> &'static str;
    /// A data set of the same classes and name with these rows.
    fn with_rows(&self, inputs: Tensor, labels: Vec<u32>) -> Self;

    /// Number of examples.
    fn len(&self) -> usize {
        self.labels().len()
    }
    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.labels().is_empty()
    }
    /// Number of classes (the length of the class-name list).
    fn num_classes(&self) -> usize {
        self.class_names().len()
    }
    /// Examples per class.
    fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in self.labels() {
            counts[l as usize] += 1;
        }
        counts
    }
    /// The examples at `indices` (in that order), as a new data set; an index
    /// past the end is an error naming the data set.
    fn select(&self, indices: &[usize]) -> Result<Self> {
        let (inputs, labels) = select_rows(self.inputs(), self.labels(), indices, self.unit(), self.name())?;
        Ok(self.with_rows(inputs, labels))
    }
    /// The first `n` examples (all of them when `n >= len`).
    fn take(&self, n: usize) -> Result<Self> {
        let n = n.min(self.len());
        Ok(self.with_rows(self.inputs().i(0..n)?, self.labels()[..n].to_vec()))
    }
    /// The first `n` examples as the training split, the rest as the test split.
    fn split_at(&self, n: usize) -> Result<(Self, Self)> {
        let len = self.len();
        if n == 0 || n >= len {
            candle_core::bail!("split_at: need 0 < n < {len} for {}, got {n}", self.name());
        }
        Ok((self.select(&(0..n).collect::<Vec<_>>())?, self.select(&(n..len).collect::<Vec<_>>())?))
    }
    /// Splits off the last `test_fraction` of the examples as the test split,
    /// deterministically: `(train, test)`.
    fn split_last(&self, test_fraction: f64) -> Result<(Self, Self)> {
        let (train, test) = split_last_indices(self.len(), test_fraction)?;
        Ok((self.select(&train)?, self.select(&test)?))
    }
    /// Indices of `k` random examples of every class, drawn without
    /// replacement with `rng`, shuffled. Errors when a class has fewer than
    /// `k`, naming the class.
    fn per_class_indices(&self, k: usize, rng: &mut SeededRng) -> Result<Vec<usize>> {
        per_class_indices(self.labels(), self.class_names(), k, rng, self.unit(), self.name())
    }
    /// `k` random examples of every class (see [`per_class_indices`](Self::per_class_indices)).
    fn per_class_subset(&self, k: usize, rng: &mut SeededRng) -> Result<Self> {
        self.select(&self.per_class_indices(k, rng)?)
    }
    /// Labels as a u32 tensor on `dev`.
    fn labels_tensor(&self, dev: &Device) -> Result<Tensor> {
        Tensor::from_slice(self.labels(), self.len(), dev)
    }
    /// A batch `(inputs, labels)` of the examples at `indices`, on `dev`.
    fn batch(&self, indices: &[usize], dev: &Device) -> Result<(Tensor, Tensor)> {
        let b = self.select(indices)?;
        Ok((b.inputs().to_device(dev)?, b.labels_tensor(dev)?))
    }
}

/// Checks that `data` has the rank of `layout` (e.g. `"(N, C, H, W)"`) with
/// one row per label and that every label names a class; the error names
/// the data set (`kind` `name`) and the shapes.
pub(crate) fn check_parts(
    data: &Tensor,
    layout: &str,
    labels: &[u32],
    class_names: &[String],
    kind: &str,
    what: &str,
    name: &str,
) -> Result<()> {
    let rank = layout.split(',').count();
    if data.rank() != rank || data.dim(0)? != labels.len() {
        candle_core::bail!("{kind} {name}: {what} must be {layout} with N = {} labels, got {:?}", labels.len(), data.dims());
    }
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
        candle_core::bail!("{kind} {name}: label {bad} but only {} classes", class_names.len());
    }
    Ok(())
}

/// The rows `indices` of `data` and their labels; an index past the end is
/// an error naming the data set and how many `what` it has.
pub(crate) fn select_rows(data: &Tensor, labels: &[u32], indices: &[usize], what: &str, name: &str) -> Result<(Tensor, Vec<u32>)> {
    if let Some(&bad) = indices.iter().find(|&&i| i >= labels.len()) {
        candle_core::bail!("index {bad} out of range for {name} ({} {what})", labels.len());
    }
    let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
    let idx = Tensor::from_vec(idx, indices.len(), data.device())?;
    Ok((data.contiguous()?.index_select(&idx, 0)?, indices.iter().map(|&i| labels[i]).collect()))
}

/// Indices `(0..n − m, n − m..n)` with `m = round(n · test_fraction)`: the
/// deterministic "last part is the test split" rule shared by every data set.
pub(crate) fn split_last_indices(n: usize, test_fraction: f64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&test_fraction) {
        candle_core::bail!("test_fraction must be in [0, 1), got {test_fraction}");
    }
    let n_train = n - ((n as f64) * test_fraction).round() as usize;
    Ok(((0..n_train).collect(), (n_train..n).collect()))
}

/// The largest class-balanced subset of `data`: as many examples of every
/// class as its rarest class has, drawn with `rng`. Plain accuracy on it is
/// the balanced accuracy of the whole split (in expectation), and always
/// answering one class scores exactly chance. Errors, naming the class, when
/// one class has no example.
pub fn balanced_subset<L: LabelledData>(data: &L, rng: &mut SeededRng) -> Result<L> {
    match data.class_counts().iter().enumerate().min_by_key(|(_, c)| **c) {
        None => candle_core::bail!("balanced_subset: {} has no classes", data.name()),
        Some((c, 0)) => candle_core::bail!("balanced_subset: class {c} has no example in {}, so no balanced subset exists", data.name()),
        Some((_, &k)) => data.per_class_subset(k, rng),
    }
}

/// `k` random indices of every class, drawn without replacement, shuffled;
/// an error naming the class (and `what` it has too few of) when one has fewer.
pub(crate) fn per_class_indices(
    labels: &[u32],
    class_names: &[String],
    k: usize,
    rng: &mut SeededRng,
    what: &str,
    name: &str,
) -> Result<Vec<usize>> {
    if k == 0 {
        candle_core::bail!("labels per class must be at least 1");
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); class_names.len()];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut chosen = Vec::with_capacity(k * class_names.len());
    for (c, members) in by_class.iter().enumerate() {
        if members.len() < k {
            candle_core::bail!(
                "{k} labels per class requested, but class {c} ({}) has only {} {what} in {name}",
                class_names[c],
                members.len()
            );
        }
        chosen.extend(rng.choose(members.len(), k)?.into_iter().map(|j| members[j]));
    }
    rng.shuffle(&mut chosen);
    Ok(chosen)
}

/// Declares a [`LabelledData`] type: the struct (its input field named
/// `$field`, then `labels`, `class_names`, `name`) and the trait's parts.
macro_rules! labelled_data {
    ($(#[$meta:meta])* $name:ident { $(#[$field_meta:meta])* $field:ident }, $unit:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        pub struct $name {
            $(#[$field_meta])*
            pub $field: candle_core::Tensor,
            /// Class index of each example.
            pub labels: Vec<u32>,
            /// Name of each class.
            pub class_names: Vec<String>,
            /// Where the data came from, for messages and captions.
            pub name: String,
        }

        impl $crate::data::LabelledData for $name {
            fn inputs(&self) -> &candle_core::Tensor {
                &self.$field
            }
            fn labels(&self) -> &[u32] {
                &self.labels
            }
            fn class_names(&self) -> &[String] {
                &self.class_names
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn unit(&self) -> &'static str {
                $unit
            }
            fn with_rows(&self, $field: candle_core::Tensor, labels: Vec<u32>) -> Self {
                Self { $field, labels, class_names: self.class_names.clone(), name: self.name.clone() }
            }
        }
    };
}
pub(crate) use labelled_data;
