//! Pretext tasks on token ids: masked and causal language modelling,
//! next-sentence prediction, skip-gram and CBOW.
//!
//! [0] J. Devlin, M.-W. Chang, K. Lee, K. Toutanova, "BERT: Pre-training of
//!     Deep Bidirectional Transformers for Language Understanding", 2018,
//!     arXiv:1810.04805, §3.1 (masked LM, next-sentence prediction).
//! [1] T. Mikolov, K. Chen, G. Corrado, J. Dean, "Efficient Estimation of Word
//!     Representations in Vector Space", 2013, arXiv:1301.3781 (CBOW, skip-gram).
//! [2] T. Mikolov, I. Sutskever, K. Chen, G. Corrado, J. Dean, "Distributed
//!     Representations of Words and Phrases and their Compositionality", 2013,
//!     arXiv:1310.4546, eq. (4) (negative sampling).
//! [3] A. Radford et al., "Improving Language Understanding by Generative
//!     Pre-Training", 2018 (causal language modelling).
//! [4] google-research/bert `create_pretraining_data.py`; tmikolov/word2vec `word2vec.c`.
//!
//! Each task is a transformation T: x → (x̃, y) of a token sequence x:
//!
//! ```text
//! masked LM        x̃ᵢ = [MASK] (80%) | random token (10%) | xᵢ (10%)   for picked i (prob. ratio)
//!                  yᵢ = xᵢ for picked i, ignored elsewhere
//! causal LM        x̃ = x[s .. s+c],  y = x[s+1 .. s+c+1]
//! next sentence    x̃ = (A, B),  y = 1 if B follows A, 0 if B is a random other sentence (50/50)
//! skip-gram        x̃ = x_t,  y = x_{t+j}  for 1 ≤ |j| ≤ w;  k negatives ~ P_n(w) ∝ count(w)^0.75
//! CBOW             x̃ = (x_{t−w} … x_{t−1}, x_{t+1} … x_{t+w}),  y = x_t
//! ```
//!
//! Skip-gram with negative sampling maximises, for a pair (c, o) and
//! negatives n₁ … n_k,
//!
//! ```text
//! log σ(v'_o · v_c) + Σᵢ log σ(−v'_{nᵢ} · v_c)
//! ```

use crate::rng::SeededRng;
use candle_core::{Device, Result, Tensor};

/// Token ids after BERT masking.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskedIds {
    /// The input x̃: `[MASK]`, a random token, or the original id.
    pub input: Vec<u32>,
    /// The label y: the original id where the model must predict it, `None` elsewhere.
    pub targets: Vec<Option<u32>>,
}

impl MaskedIds {
    /// Positions the model must predict.
    pub fn positions(&self) -> Vec<usize> {
        self.targets.iter().enumerate().filter_map(|(i, t)| t.map(|_| i)).collect()
    }

    /// Targets as a label vector, `ignore` where nothing is to be predicted
    /// (PyTorch's `ignore_index` convention, usually `-100`).
    pub fn labels(&self, ignore: i64) -> Vec<i64> {
        self.targets.iter().map(|t| t.map_or(ignore, i64::from)).collect()
    }
}

/// BERT masking of token ids.
///
/// Every token whose id is not in `special_ids` is picked independently with
/// probability `ratio` (as Hugging Face's `DataCollatorForLanguageModeling`;
/// BERT's script picks exactly `round(ratio · n)`). A picked token becomes
/// `mask_id` (80%), a uniformly random non-special id below `vocab_size`
/// (10%), or stays (10%); its target is the original id. Special tokens
/// (`[CLS]`, `[SEP]`, `[PAD]`…) are never picked.
///
/// ```
/// use sslab::{pretext::mask_token_ids, rng::SeededRng};
/// let ids: Vec<u32> = (5..105).collect();
/// let m = mask_token_ids(&ids, 0.15, 2, 200, &[0, 1, 2, 3, 4], &mut SeededRng::new(0))?;
/// assert_eq!(m.input.len(), 100);
/// assert!(m.positions().iter().all(|&i| m.targets[i] == Some(ids[i])));
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn mask_token_ids(
    ids: &[u32],
    ratio: f64,
    mask_id: u32,
    vocab_size: usize,
    special_ids: &[u32],
    rng: &mut SeededRng,
) -> Result<MaskedIds> {
    if !(0.0..=1.0).contains(&ratio) {
        candle_core::bail!("mask_token_ids: ratio must be in [0, 1], got {ratio}");
    }
    if mask_id as usize >= vocab_size {
        candle_core::bail!("mask_token_ids: mask id {mask_id} is outside the vocabulary of {vocab_size} ids");
    }
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab_size) {
        candle_core::bail!("mask_token_ids: token id {bad} is outside the vocabulary of {vocab_size} ids");
    }
    let normal: Vec<u32> = (0..vocab_size as u32).filter(|i| !special_ids.contains(i)).collect();
    if normal.is_empty() {
        candle_core::bail!("mask_token_ids: every one of the {vocab_size} ids is special; nothing to draw from");
    }
    let mut input = Vec::with_capacity(ids.len());
    let mut targets = Vec::with_capacity(ids.len());
    for &id in ids {
        if special_ids.contains(&id) || !rng.bernoulli(ratio) {
            input.push(id);
            targets.push(None);
            continue;
        }
        let u = rng.uniform();
        let shown = if u < 0.8 {
            mask_id
        } else if u < 0.9 {
            normal[rng.below(normal.len())]
        } else {
            id
        };
        input.push(shown);
        targets.push(Some(id));
    }
    Ok(MaskedIds { input, targets })
}

/// Causal language-modelling pairs: non-overlapping windows of `context`
/// tokens and the same windows shifted by one.
///
/// Window `i` starts at `i · context`: `inputs[i] = ids[i·c .. i·c + c]`,
/// `targets[i] = ids[i·c + 1 .. i·c + c + 1]`, for every window whose
/// target fits (`N = (len − 1) / c`).
///
/// # Shapes
/// `ids (L,)` → `inputs (N, context)`, `targets (N, context)`, both u32 on `dev`.
pub fn next_token_pairs(ids: &[u32], context: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    if context == 0 || ids.len() < context + 1 {
        candle_core::bail!(
            "next_token_pairs: need context ≥ 1 and at least context + 1 tokens, got context {context} and {} tokens",
            ids.len()
        );
    }
    let n = (ids.len() - 1) / context;
    let mut inputs = Vec::with_capacity(n * context);
    let mut targets = Vec::with_capacity(n * context);
    for i in 0..n {
        inputs.extend_from_slice(&ids[i * context..(i + 1) * context]);
        targets.extend_from_slice(&ids[i * context + 1..(i + 1) * context + 1]);
    }
    Ok((Tensor::from_vec(inputs, (n, context), dev)?, Tensor::from_vec(targets, (n, context), dev)?))
}

/// Next-sentence-prediction pairs `(A, B, is_next)`: one per sentence that
/// has a successor. With probability ½, `B` is the sentence after `A`
/// (`is_next = true`); otherwise it is a uniformly random sentence other
/// than `A` and its successor (`false`). Needs at least 3 sentences.
pub fn nsp_pairs(sentences: &[Vec<u32>], rng: &mut SeededRng) -> Result<Vec<(Vec<u32>, Vec<u32>, bool)>> {
    let n = sentences.len();
    if n < 3 {
        candle_core::bail!("nsp_pairs: need at least 3 sentences (to draw a random non-next one), got {n}");
    }
    let mut out = Vec::with_capacity(n - 1);
    for i in 0..n - 1 {
        let (j, is_next) = if rng.bernoulli(0.5) {
            (i + 1, true)
        } else {
            // uniform over 0..n without i and i + 1
            let mut j = rng.below(n - 2);
            if j >= i {
                j += 2;
            }
            (j, false)
        };
        out.push((sentences[i].clone(), sentences[j].clone(), is_next));
    }
    Ok(out)
}

/// BERT's input for a sentence pair: `[CLS] A [SEP] B [SEP]` and the segment
/// ids (0 for `[CLS]`, A and the first `[SEP]`; 1 for B and the last `[SEP]`).
pub fn nsp_input(a: &[u32], b: &[u32], cls_id: u32, sep_id: u32) -> (Vec<u32>, Vec<u32>) {
    let mut ids = Vec::with_capacity(a.len() + b.len() + 3);
    ids.push(cls_id);
    ids.extend_from_slice(a);
    ids.push(sep_id);
    let first = ids.len();
    ids.extend_from_slice(b);
    ids.push(sep_id);
    let segments = (0..ids.len()).map(|i| u32::from(i >= first)).collect();
    (ids, segments)
}

/// The negative-sampling distribution of word2vec: `P(w) ∝ count(w)^power`
/// over ids `0..=max(ids)` (`power = 0.75` in \[2\]).
pub fn noise_distribution(ids: &[u32], power: f64) -> Result<Vec<f64>> {
    let Some(&max) = ids.iter().max() else {
        candle_core::bail!("noise_distribution: no token ids");
    };
    if !(power.is_finite() && power >= 0.0) {
        candle_core::bail!("noise_distribution: power must be finite and ≥ 0, got {power}");
    }
    let mut counts = vec![0usize; max as usize + 1];
    for &i in ids {
        counts[i as usize] += 1;
    }
    let w: Vec<f64> = counts.iter().map(|&c| if c == 0 { 0.0 } else { (c as f64).powf(power) }).collect();
    let z: f64 = w.iter().sum();
    Ok(w.into_iter().map(|x| x / z).collect())
}

/// Skip-gram training pairs with negatives: see [`skipgram_pairs`].
#[derive(Clone, Debug, PartialEq)]
pub struct SkipGramPairs {
    /// Centre word of each pair.
    pub centers: Vec<u32>,
    /// Context word of each pair (a word within the window of the centre).
    pub contexts: Vec<u32>,
    /// `n_negative` noise words per pair, pair-major: `negatives[p·k .. (p+1)·k]`.
    pub negatives: Vec<u32>,
    /// Negatives per pair.
    pub n_negative: usize,
}

impl SkipGramPairs {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.centers.len()
    }

    /// `true` when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.centers.is_empty()
    }

    /// The pairs as tensors on `dev`: `centers (P,)`, `contexts (P,)`, `negatives (P, k)`, all u32.
    pub fn to_tensors(&self, dev: &Device) -> Result<(Tensor, Tensor, Tensor)> {
        let p = self.len();
        Ok((
            Tensor::from_slice(&self.centers, p, dev)?,
            Tensor::from_slice(&self.contexts, p, dev)?,
            Tensor::from_slice(&self.negatives, (p, self.n_negative), dev)?,
        ))
    }
}

/// Draws noise words from [`noise_distribution`] (inverse-CDF sampling):
/// the negatives of skip-gram and CBOW.
#[derive(Clone, Debug)]
pub struct NoiseSampler {
    cdf: Vec<f64>,
}

impl NoiseSampler {
    /// The sampler of `noise_distribution(ids, power)`.
    pub fn new(ids: &[u32], power: f64) -> Result<Self> {
        let mut acc = 0.0;
        let cdf = noise_distribution(ids, power)?
            .into_iter()
            .map(|p| {
                acc += p;
                acc
            })
            .collect();
        Ok(Self { cdf })
    }

    /// One noise id, using one uniform draw of `rng`.
    pub fn draw(&self, rng: &mut SeededRng) -> u32 {
        let total = self.cdf.last().copied().unwrap_or(0.0);
        let u = f64::from(rng.uniform()) * total;
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1) as u32
    }
}

/// Skip-gram pairs with negative sampling \[1, 2\].
///
/// For every position `t` and offset `1 ≤ |j| ≤ window` inside the text, one
/// pair `(ids[t], ids[t + j])` (the full window every time; word2vec's
/// random window shrinking and frequent-word subsampling are left out), and
/// `n_negative` noise words drawn independently from
/// [`noise_distribution`]`(ids, unigram_power)`. As in word2vec, a
/// negative may (rarely) equal the context word.
pub fn skipgram_pairs(
    ids: &[u32],
    window: usize,
    n_negative: usize,
    unigram_power: f64,
    rng: &mut SeededRng,
) -> Result<SkipGramPairs> {
    if window == 0 || ids.len() < 2 {
        candle_core::bail!("skipgram_pairs: need window ≥ 1 and at least 2 tokens, got window {window} and {} tokens", ids.len());
    }
    let noise = NoiseSampler::new(ids, unigram_power)?;
    let mut out = SkipGramPairs { centers: Vec::new(), contexts: Vec::new(), negatives: Vec::new(), n_negative };
    for t in 0..ids.len() {
        let lo = t.saturating_sub(window);
        let hi = (t + window).min(ids.len() - 1);
        for c in lo..=hi {
            if c == t {
                continue;
            }
            out.centers.push(ids[t]);
            out.contexts.push(ids[c]);
            for _ in 0..n_negative {
                out.negatives.push(noise.draw(rng));
            }
        }
    }
    Ok(out)
}

/// CBOW windows \[1\]: for every position `t` with `window` tokens on both
/// sides, the `2·window` neighbours (left then right, in order) and the centre.
///
/// # Shapes
/// `ids (L,)` → `contexts (N, 2·window)`, `centers (N,)`, u32 on `dev`, `N = L − 2·window`.
pub fn cbow_windows(ids: &[u32], window: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    if window == 0 || ids.len() < 2 * window + 1 {
        candle_core::bail!(
            "cbow_windows: need window ≥ 1 and at least 2·window + 1 tokens, got window {window} and {} tokens",
            ids.len()
        );
    }
    let n = ids.len() - 2 * window;
    let mut contexts = Vec::with_capacity(n * 2 * window);
    let mut centers = Vec::with_capacity(n);
    for t in window..ids.len() - window {
        contexts.extend_from_slice(&ids[t - window..t]);
        contexts.extend_from_slice(&ids[t + 1..=t + window]);
        centers.push(ids[t]);
    }
    Ok((Tensor::from_vec(contexts, (n, 2 * window), dev)?, Tensor::from_vec(centers, n, dev)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECIAL: [u32; 5] = [0, 1, 2, 3, 4];

    #[test]
    fn mask_token_ids_picks_15_percent_split_80_10_10() {
        // a long corpus with [CLS]/[SEP] every 10 tokens
        let ids: Vec<u32> = (0..50_000).map(|i| if i % 10 == 0 { 3 } else if i % 10 == 9 { 4 } else { 5 + (i % 7) as u32 }).collect();
        let mut rng = SeededRng::new(0);
        let m = mask_token_ids(&ids, 0.15, 2, 100, &SPECIAL, &mut rng).unwrap();
        let normal = ids.iter().filter(|i| !SPECIAL.contains(i)).count() as f64;
        let pos = m.positions();
        let picked = pos.len() as f64;
        assert!((picked / normal - 0.15).abs() < 0.01, "{}", picked / normal);
        let masked = pos.iter().filter(|&&i| m.input[i] == 2).count() as f64;
        let kept = pos.iter().filter(|&&i| m.input[i] == ids[i]).count() as f64;
        let random = picked - masked - kept;
        assert!((masked / picked - 0.8).abs() < 0.02, "{}", masked / picked);
        // a random draw can hit the original id (1 in 95): 10% random → 9.9% changed, 10.1% unchanged
        assert!((random / picked - 0.1).abs() < 0.015 && (kept / picked - 0.1).abs() < 0.015, "{random} {kept}");
        for (i, (&x, t)) in m.input.iter().zip(&m.targets).enumerate() {
            match t {
                Some(y) => assert_eq!(*y, ids[i]),
                None => assert_eq!(x, ids[i]), // unpicked tokens untouched
            }
            if SPECIAL.contains(&ids[i]) {
                assert!(t.is_none(), "special token at {i} was picked");
            }
            // random replacements are never special tokens other than [MASK]
            assert!(!SPECIAL.contains(&x) || x == 2 || x == ids[i]);
        }
        assert_eq!(m.labels(-100)[0], -100);
        assert!(mask_token_ids(&ids, 1.5, 2, 100, &SPECIAL, &mut rng).is_err());
        assert!(mask_token_ids(&[200], 0.1, 2, 100, &SPECIAL, &mut rng).unwrap_err().to_string().contains("200"));
        assert!(mask_token_ids(&ids, 0.1, 100, 100, &SPECIAL, &mut rng).is_err());
    }

    #[test]
    fn next_token_pairs_are_shifted_by_one() {
        let ids: Vec<u32> = (10..21).collect(); // 11 tokens
        let (x, y) = next_token_pairs(&ids, 4, &Device::Cpu).unwrap();
        assert_eq!(x.to_vec2::<u32>().unwrap(), vec![vec![10, 11, 12, 13], vec![14, 15, 16, 17]]);
        assert_eq!(y.to_vec2::<u32>().unwrap(), vec![vec![11, 12, 13, 14], vec![15, 16, 17, 18]]);
        assert!(next_token_pairs(&ids, 11, &Device::Cpu).is_err());
        assert!(next_token_pairs(&ids, 0, &Device::Cpu).is_err());
    }

    #[test]
    fn nsp_pairs_next_is_really_next_and_half_are_random() {
        let sentences: Vec<Vec<u32>> = (0..2001u32).map(|i| vec![i, i + 10_000]).collect();
        let mut rng = SeededRng::new(3);
        let pairs = nsp_pairs(&sentences, &mut rng).unwrap();
        assert_eq!(pairs.len(), 2000);
        let mut n_true = 0;
        for (a, b, is_next) in &pairs {
            assert_eq!(b[1], b[0] + 10_000); // B is a whole sentence
            if *is_next {
                n_true += 1;
                assert_eq!(b[0], a[0] + 1);
            } else {
                assert!(b[0] != a[0] + 1 && b[0] != a[0]);
            }
        }
        assert!((n_true as f64 / 2000.0 - 0.5).abs() < 0.04, "{n_true}");
        assert!(nsp_pairs(&sentences[..2], &mut rng).is_err());
        let (ids, seg) = nsp_input(&[7, 8], &[9], 3, 4);
        assert_eq!(ids, vec![3, 7, 8, 4, 9, 4]);
        assert_eq!(seg, vec![0, 0, 0, 0, 1, 1]);
    }

    #[test]
    fn skipgram_contexts_lie_in_the_window_and_negatives_follow_unigram_075() {
        // position-coded ids: id = position, so the window is checkable
        let ids: Vec<u32> = (0..50).collect();
        let mut rng = SeededRng::new(0);
        let sg = skipgram_pairs(&ids, 2, 3, 0.75, &mut rng).unwrap();
        // 50 positions × 4 neighbours, minus the missing ones at both ends (2 + 1 each side)
        assert_eq!(sg.len(), 50 * 4 - 6);
        assert_eq!(sg.negatives.len(), sg.len() * 3);
        for (&c, &o) in sg.centers.iter().zip(&sg.contexts) {
            let d = (i64::from(c) - i64::from(o)).abs();
            assert!((1..=2).contains(&d), "{c} {o}");
        }
        let (c, o, n) = sg.to_tensors(&Device::Cpu).unwrap();
        assert_eq!((c.dims(), o.dims(), n.dims()), (&[194][..], &[194][..], &[194, 3][..]));

        // Zipf-like counts: id k appears (k + 1)² times
        let ids: Vec<u32> = (0..6u32).flat_map(|k| std::iter::repeat_n(k, ((k + 1) * (k + 1)) as usize)).collect();
        let p = noise_distribution(&ids, 0.75).unwrap();
        // numpy: c = (np.arange(6) + 1.0) ** 2; w = c ** 0.75; w / w.sum()
        // -> np.round(.., 5) = [0.02331 0.06593 0.12112 0.18647 0.2606  0.34257]
        let want = [0.02331, 0.06593, 0.12112, 0.18647, 0.2606, 0.34257];
        assert!(p.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-4), "{p:?}");
        let sg = skipgram_pairs(&ids, 1, 200, 0.75, &mut rng).unwrap();
        let mut hist = [0f64; 6];
        sg.negatives.iter().for_each(|&w| hist[w as usize] += 1.0);
        let total = sg.negatives.len() as f64;
        for k in 0..6 {
            assert!((hist[k] / total - want[k]).abs() < 0.01, "{k}: {} vs {}", hist[k] / total, want[k]);
        }
        assert!(skipgram_pairs(&ids, 0, 1, 0.75, &mut rng).is_err());
    }

    #[test]
    fn cbow_windows_surround_their_centre() {
        let ids: Vec<u32> = (100..107).collect();
        let (ctx, ctr) = cbow_windows(&ids, 2, &Device::Cpu).unwrap();
        assert_eq!(ctr.to_vec1::<u32>().unwrap(), vec![102, 103, 104]);
        assert_eq!(
            ctx.to_vec2::<u32>().unwrap(),
            vec![vec![100, 101, 103, 104], vec![101, 102, 104, 105], vec![102, 103, 105, 106]]
        );
        assert!(cbow_windows(&ids, 4, &Device::Cpu).is_err());
    }
}
