//! The masked-character probe: what do the representations know about the hidden character?

use super::{LanguageModel, LmConfig, LmObjective};
use crate::data::{Tokenizer, MASK_ID};
use crate::eval::{train_end_to_end, ClassifierConfig, ComparisonRow, FewLabelProtocol};
use crate::nn::{Params, TextEncoder};
use crate::rng::{derive_seed, SeededRng};
use candle_core::{Device, Module, Result, Tensor};

/// Classes of [`char_class`], in label order.
pub const CHAR_CLASSES: [&str; 5] = ["vowel", "consonant", "capital", "space", "punctuation"];

/// The class of a character: 0 lower-case vowel, 1 other lower-case letter,
/// 2 capital letter, 3 white space, 4 anything else (punctuation, digits).
pub fn char_class(c: char) -> u32 {
    match c {
        'a' | 'e' | 'i' | 'o' | 'u' => 0,
        c if c.is_lowercase() => 1,
        c if c.is_uppercase() => 2,
        c if c.is_whitespace() => 3,
        _ => 4,
    }
}

crate::data::labelled_data! {
    /// A labelled probing set: windows of character ids whose middle character
    /// is replaced by `[MASK]`, labelled by that character's [`char_class`]
    /// (classes: [`CHAR_CLASSES`]). A representation that knows what is missing
    /// from the context alone can tell the class; the input never shows it.
    MaskedCharWindows {
        /// Token ids `(N, L)`, u32, `[MASK]` at position `L / 2`.
        ids
    },
    "windows"
}

impl MaskedCharWindows {
    /// `n` windows of `len` characters from random positions of a
    /// character-tokenized `ids`, drawn with `rng`.
    pub fn sample(ids: &[u32], tokenizer: &Tokenizer, len: usize, n: usize, rng: &mut SeededRng) -> Result<Self> {
        if len < 3 || ids.len() <= len {
            candle_core::bail!("MaskedCharWindows: need windows of at least 3 tokens from a longer text, got len {len}, {} tokens", ids.len());
        }
        let mid = len / 2;
        let (mut rows, mut labels) = (Vec::with_capacity(n * len), Vec::with_capacity(n));
        for _ in 0..n {
            let s = rng.below(ids.len() - len);
            let mut w = ids[s..s + len].to_vec();
            let c = tokenizer.token(w[mid]).and_then(|t| t.chars().next()).unwrap_or('?');
            labels.push(char_class(c));
            w[mid] = MASK_ID;
            rows.extend(w);
        }
        Ok(Self {
            ids: Tensor::from_vec(rows, (n, len), &Device::Cpu)?,
            labels,
            class_names: CHAR_CLASSES.iter().map(|s| s.to_string()).collect(),
            name: "masked characters".into(),
        })
    }
}

/// The hidden state at the middle position of every window: `(B, L) → (B, D)`.
fn middle_state(encoder: &TextEncoder, ids: &Tensor) -> Result<Tensor> {
    let l = ids.dim(1)?;
    encoder.forward(ids)?.narrow(1, l / 2, 1)?.squeeze(1)
}

/// [`middle_state`] as a module, for end-to-end training.
struct MiddleState<'a>(&'a TextEncoder);

impl candle_core::ModuleT for MiddleState<'_> {
    fn forward_t(&self, ids: &Tensor, _train: bool) -> Result<Tensor> {
        middle_state(self.0, ids)
    }
}

/// Few-label comparison on masked-character windows: "from scratch" (a fresh
/// encoder of `lm`'s shape trained end to end on the labels) and "random
/// init" rows. The encoder is the bidirectional one (a causal encoder's
/// middle state cannot see the right-hand context).
pub fn char_probe_baselines(
    proto: &FewLabelProtocol,
    lm: &LmConfig,
    vocab_size: usize,
    labelled: &MaskedCharWindows,
    test: &MaskedCharWindows,
    dev: &Device,
) -> Result<[ComparisonRow; 2]> {
    let scratch = char_classifier(None, lm, vocab_size, labelled, test, &proto.scratch, dev, proto.seed)?;
    let random = LanguageModel::new(LmConfig { objective: LmObjective::Masked, ..lm.clone() }, vocab_size, dev)?;
    let mut rand = proto.evaluate("random init", &|x| middle_state(random.encoder(), &x.to_device(dev)?), labelled, test)?;
    rand.note = "the same transformer, untrained".into();
    Ok([
        ComparisonRow {
            name: "from scratch".into(),
            linear: f64::NAN,
            knn: f64::NAN,
            finetune: scratch,
            note: format!("supervised on the labels only, {} steps end to end", proto.scratch.steps),
        },
        rand,
    ])
}

/// A trained language model's middle states under `proto` (probes), and the
/// model fine-tuned like the from-scratch baseline.
pub fn evaluate_char_probe(
    proto: &FewLabelProtocol,
    name: &str,
    model: &LanguageModel,
    labelled: &MaskedCharWindows,
    test: &MaskedCharWindows,
) -> Result<ComparisonRow> {
    let dev = model.device.clone();
    let mut row = proto.evaluate(name, &|x| middle_state(model.encoder(), &x.to_device(&dev)?), labelled, test)?;
    row.finetune = char_classifier(Some(model), &model.config, model.vocab_size, labelled, test, &proto.scratch, &dev, proto.seed)?;
    row.note = model.history().note();
    Ok(row)
}

/// The transformer of `lm`'s shape (attention as in `init`, or bidirectional
/// from scratch) trained end to end with a linear head on the middle state
/// of the labelled windows; from `init`'s weights when given (`init` is not
/// changed). Returns the test accuracy.
#[allow(clippy::too_many_arguments)]
pub fn char_classifier(
    init: Option<&LanguageModel>,
    lm: &LmConfig,
    vocab_size: usize,
    labelled: &MaskedCharWindows,
    test: &MaskedCharWindows,
    cfg: &ClassifierConfig,
    dev: &Device,
    seed: u64,
) -> Result<f64> {
    let params = Params::new(derive_seed(seed, "scratch"));
    let objective = init.map_or(LmObjective::Masked, |m| m.config.objective);
    let enc = LmConfig { objective, ..lm.clone() }.encoder(vocab_size).init(params.builder(dev).pp("enc"))?;
    train_end_to_end(&MiddleState(&enc), lm.dim, &params, init.map(|m| m.params()), labelled, test, cfg, dev, seed)
}
