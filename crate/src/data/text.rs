//! Text: reading a corpus, character and word tokenizers, sentences.
//!
//! A [`Tokenizer`] maps text to integer ids and back. Ids `0..5` are always
//! the special tokens of BERT (Devlin et al., 2018, arXiv:1810.04805):
//!
//! ```text
//! id  0      1      2       3      4
//!     [PAD]  [UNK]  [MASK]  [CLS]  [SEP]
//! ```
//!
//! then the vocabulary, most frequent first (ties in byte order), so a
//! tokenizer fitted to the same text is always the same.
//!
//! * [`TokenizerKind::Chars`]: every character (spaces and newlines
//!   included) is a token; `decode(encode(s)) == s` for characters in the vocabulary.
//! * [`TokenizerKind::Words`]: lower-cased runs of letters, digits and inner
//!   apostrophes (`we'll`) are tokens, every other non-space character is a
//!   token on its own, white space only separates. `decode` joins tokens with spaces.

use candle_core::Result;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Id of `[PAD]` (padding).
pub const PAD_ID: u32 = 0;
/// Id of `[UNK]` (a token outside the vocabulary).
pub const UNK_ID: u32 = 1;
/// Id of `[MASK]` (a hidden token).
pub const MASK_ID: u32 = 2;
/// Id of `[CLS]` (start of a sequence; its output summarises the sequence).
pub const CLS_ID: u32 = 3;
/// Id of `[SEP]` (end of a segment).
pub const SEP_ID: u32 = 4;
/// The special tokens, at their ids.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[MASK]", "[CLS]", "[SEP]"];

/// Reads a UTF-8 text file; errors name the file.
pub fn load_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        candle_core::Error::Msg(format!(
            "cannot read text file {}: {e} (run `make data`, or check SSLAB_DATA_DIR)",
            path.display()
        ))
    })
}

/// How a [`Tokenizer`] cuts text into tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// One token per character.
    Chars,
    /// Lower-cased words; punctuation characters are tokens of their own.
    Words,
}

impl TokenizerKind {
    /// Cuts `text` into tokens (before any vocabulary lookup).
    pub fn split(self, text: &str) -> Vec<String> {
        match self {
            TokenizerKind::Chars => text.chars().map(String::from).collect(),
            TokenizerKind::Words => split_words(text),
        }
    }
}

fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        let inner_apostrophe = ch == '\''
            && !word.is_empty()
            && chars.get(i + 1).is_some_and(|c| c.is_alphanumeric());
        if ch.is_alphanumeric() || inner_apostrophe {
            word.extend(ch.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !ch.is_whitespace() {
            out.push(ch.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A fitted vocabulary: text ↔ ids.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    kind: TokenizerKind,
    vocab: Vec<String>,
    index: HashMap<String, u32>,
}

impl Tokenizer {
    /// Fits a vocabulary of at most `max_vocab` ids (the 5 special tokens
    /// included) to `text`: the most frequent tokens, ties in byte order.
    ///
    /// ```
    /// use sslab::data::{Tokenizer, TokenizerKind, UNK_ID};
    /// let tok = Tokenizer::fit("the cat saw the dog.", TokenizerKind::Words, 100)?;
    /// assert_eq!(tok.vocab_size(), 5 + 5); // [PAD]…[SEP], the, ., cat, dog, saw
    /// let ids = tok.encode("The bird saw the cat");
    /// assert_eq!(ids[1], UNK_ID);
    /// assert_eq!(tok.decode(&ids), "the [UNK] saw the cat");
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn fit(text: &str, kind: TokenizerKind, max_vocab: usize) -> Result<Self> {
        if max_vocab <= SPECIAL_TOKENS.len() {
            candle_core::bail!(
                "Tokenizer::fit: max_vocab must exceed the {} special tokens, got {max_vocab}",
                SPECIAL_TOKENS.len()
            );
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        for t in kind.split(text) {
            *counts.entry(t).or_insert(0) += 1;
        }
        for s in SPECIAL_TOKENS {
            counts.remove(s);
        }
        if counts.is_empty() {
            candle_core::bail!("Tokenizer::fit: the text has no tokens");
        }
        let mut by_freq: Vec<(String, usize)> = counts.into_iter().collect();
        by_freq.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        by_freq.truncate(max_vocab - SPECIAL_TOKENS.len());
        let vocab: Vec<String> =
            SPECIAL_TOKENS.iter().map(|s| s.to_string()).chain(by_freq.into_iter().map(|(t, _)| t)).collect();
        Ok(Self::from_vocab(kind, vocab))
    }

    fn from_vocab(kind: TokenizerKind, vocab: Vec<String>) -> Self {
        let index = vocab.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        Self { kind, vocab, index }
    }

    /// Characters or words.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// Number of ids (special tokens included).
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The tokens, at their ids.
    pub fn vocab(&self) -> &[String] {
        &self.vocab
    }

    /// The ids of the special tokens `[PAD] [UNK] [MASK] [CLS] [SEP]`: `[0, 1, 2, 3, 4]`.
    pub fn special_ids(&self) -> [u32; 5] {
        [PAD_ID, UNK_ID, MASK_ID, CLS_ID, SEP_ID]
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.index.get(token).copied()
    }

    /// The token of `id`, if the id is in range.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.vocab.get(id as usize).map(String::as_str)
    }

    /// Token ids of `text`; tokens outside the vocabulary become `[UNK]`.
    /// (Special-token strings in the text are not recognised: `"[MASK]"` is
    /// split like any other text.)
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.kind.split(text).iter().map(|t| self.id(t).unwrap_or(UNK_ID)).collect()
    }

    /// Text of `ids`: characters concatenated, words joined by spaces. Ids
    /// out of range are shown as `[UNK]`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let toks = ids.iter().map(|&i| self.token(i).unwrap_or(SPECIAL_TOKENS[UNK_ID as usize]));
        match self.kind {
            TokenizerKind::Chars => toks.collect(),
            TokenizerKind::Words => toks.collect::<Vec<_>>().join(" "),
        }
    }

    /// The ids of the sentence-ending tokens `.`, `!` and `?` that are in the vocabulary.
    pub fn sentence_end_ids(&self) -> Vec<u32> {
        [".", "!", "?"].iter().filter_map(|t| self.id(t)).collect()
    }
}

/// Splits text into sentences: a sentence ends after `.`, `!` or `?`
/// followed by white space (or the end), or at a blank line. Sentences are
/// trimmed and white space inside them collapsed; empty ones are dropped.
///
/// ```
/// let s = sslab::data::split_sentences("Hi there. How are\nyou?\n\nFine");
/// assert_eq!(s, vec!["Hi there.", "How are you?", "Fine"]);
/// ```
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let flush = |cur: &mut Vec<&str>, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(cur.join(" "));
            cur.clear();
        }
    };
    for para in text.split("\n\n") {
        for word in para.split_whitespace() {
            cur.push(word);
            if word.ends_with(['.', '!', '?']) {
                flush(&mut cur, &mut out);
            }
        }
        flush(&mut cur, &mut out);
    }
    out
}

/// A tokenized corpus: the token ids of a whole text and its tokenizer.
#[derive(Clone, Debug)]
pub struct TextCorpus {
    /// Token ids of the text, in order.
    pub ids: Vec<u32>,
    /// The tokenizer that produced them.
    pub tokenizer: Tokenizer,
    /// Where the text came from, for printing.
    pub name: String,
}

impl TextCorpus {
    /// Fits a tokenizer of at most `max_vocab` ids to `text` and encodes it.
    pub fn new(text: &str, kind: TokenizerKind, max_vocab: usize, name: &str) -> Result<Self> {
        let tokenizer = Tokenizer::fit(text, kind, max_vocab)?;
        let ids = tokenizer.encode(text);
        Ok(Self { ids, tokenizer, name: name.to_string() })
    }

    /// Reads `path` (see [`load_text`]) and tokenizes it.
    pub fn load(path: &Path, kind: TokenizerKind, max_vocab: usize) -> Result<Self> {
        let text = load_text(path)?;
        let name = path.file_name().map_or("text".into(), |s| s.to_string_lossy().to_string());
        Self::new(&text, kind, max_vocab, &name)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// `true` when the corpus has no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids cut into sentences after every sentence-ending token (`.`, `!`, `?`;
    /// see [`Tokenizer::sentence_end_ids`]), the ending token kept; with a
    /// character tokenizer a newline ends a sentence too. A trailing part
    /// without an ending is the last sentence; white space-only sentences of a
    /// character tokenizer are dropped.
    pub fn sentences(&self) -> Vec<Vec<u32>> {
        let mut ends = self.tokenizer.sentence_end_ids();
        let mut blank: Vec<u32> = Vec::new();
        if self.tokenizer.kind() == TokenizerKind::Chars {
            ends.extend(self.tokenizer.id("\n"));
            blank = [" ", "\n", "\t", "\r"].iter().filter_map(|t| self.tokenizer.id(t)).collect();
        }
        let mut out = Vec::new();
        let mut cur = Vec::new();
        let mut push = |cur: &mut Vec<u32>| {
            if cur.iter().any(|i| !blank.contains(i)) {
                out.push(std::mem::take(cur));
            } else {
                cur.clear();
            }
        };
        for &id in &self.ids {
            cur.push(id);
            if ends.contains(&id) {
                push(&mut cur);
            }
        }
        push(&mut cur);
        out
    }
}

impl fmt::Display for TextCorpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} tokens, {} ids ({:?})",
            self.name,
            self.ids.len(),
            self.tokenizer.vocab_size(),
            self.tokenizer.kind()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_chars_round_trip_and_special_ids_are_fixed() {
        let text = "To be, or not to be:\nthat is the question.";
        let tok = Tokenizer::fit(text, TokenizerKind::Chars, 1000).unwrap();
        let ids = tok.encode(text);
        assert_eq!(ids.len(), text.chars().count());
        assert_eq!(tok.decode(&ids), text);
        assert!(ids.iter().all(|&i| i >= 5));
        assert_eq!(tok.special_ids(), [0, 1, 2, 3, 4]);
        for (i, s) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(tok.id(s), Some(i as u32));
        }
        // the most frequent character (' ', 9 times) gets the first free id
        assert_eq!(tok.id(" "), Some(5));
        assert_eq!(tok.encode("Z"), vec![UNK_ID]);
        // a smaller vocabulary keeps the special ids and drops rare characters
        let small = Tokenizer::fit(text, TokenizerKind::Chars, 8).unwrap();
        assert_eq!(small.vocab_size(), 8);
        assert_eq!(small.id("[MASK]"), Some(MASK_ID));
        assert!(Tokenizer::fit(text, TokenizerKind::Chars, 5).is_err());
        assert!(Tokenizer::fit("", TokenizerKind::Words, 50).is_err());
    }

    #[test]
    fn text_words_lowercase_split_punctuation_and_unknowns() {
        assert_eq!(
            TokenizerKind::Words.split("We'll kill him, and we know't!  'Tis"),
            vec!["we'll", "kill", "him", ",", "and", "we", "know't", "!", "'", "tis"]
        );
        let tok = Tokenizer::fit("The cat. The dog!", TokenizerKind::Words, 100).unwrap();
        assert_eq!(tok.id("the"), Some(5));
        let ids = tok.encode("the fox, the CAT.");
        assert_eq!(tok.decode(&ids), "the [UNK] [UNK] the cat .");
        assert_eq!(ids[1], UNK_ID);
        assert_eq!(tok.decode(&[999]), "[UNK]");
        let same = Tokenizer::fit("The cat. The dog!", TokenizerKind::Words, 100).unwrap();
        assert_eq!(tok.vocab(), same.vocab());
    }

    #[test]
    fn text_sentences_of_a_corpus() {
        let c = TextCorpus::new("A b. C d e! F", TokenizerKind::Words, 100, "t").unwrap();
        let s: Vec<String> = c.sentences().iter().map(|s| c.tokenizer.decode(s)).collect();
        assert_eq!(s, vec!["a b .", "c d e !", "f"]);
        let c = TextCorpus::new("ab.\n\ncd\n", TokenizerKind::Chars, 100, "t").unwrap();
        let s: Vec<String> = c.sentences().iter().map(|s| c.tokenizer.decode(s)).collect();
        assert_eq!(s, vec!["ab.", "cd\n"]);
        assert!(c.to_string().contains("t: 8 tokens"));
    }

    #[test]
    fn text_tinyshakespeare_from_the_data_folder() {
        let Ok(root) = crate::data::data_dir() else { return };
        let path = root.join("tinyshakespeare").join("input.txt");
        if !path.is_file() {
            return;
        }
        let c = TextCorpus::load(&path, TokenizerKind::Chars, 1000).unwrap();
        assert_eq!(c.len(), 1_115_394);
        assert_eq!(c.tokenizer.vocab_size(), 5 + 65);
        assert_eq!(c.tokenizer.decode(&c.ids[..13]), "First Citizen");
        assert!(load_text(Path::new("/no/such.txt")).unwrap_err().to_string().contains("/no/such.txt"));
    }
}
