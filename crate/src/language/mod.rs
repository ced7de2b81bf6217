//! Self-supervised learning on text: word vectors (skip-gram and CBOW with
//! word2vec's objectives), masked and causal language models on a tiny
//! transformer, next-sentence prediction, and a few-label probe of what the
//! representations learned.
//!
//! ```text
//! skip-gram  L = −log σ(u_o · v_c) − Σ_{n ~ P^0.75} log σ(−u_n · v_c)                  [0]
//! CBOW       h = mean_{j≠0} v_{t+j};  L = −log σ(u_t · h) − Σ_n log σ(−u_n · h)          [0]
//! masked LM  L = CE(head(f(x̃))_t, x_t) over the masked positions t (15 %, 80/10/10)      [1]
//! causal LM  L = Σ_t CE(head(f(x_{<t+1}))_t, x_{t+1})                                       [2]
//! NSP        L = CE(W f([CLS] A [SEP] B [SEP])_CLS, is_next)                               [1]
//! ```
//!
//! \[0\] T. Mikolov, I. Sutskever, K. Chen, G. Corrado, J. Dean, "Distributed
//!     Representations of Words and Phrases and their Compositionality",
//!     NeurIPS 2013, arXiv:1310.4546.
//! \[1\] J. Devlin, M.-W. Chang, K. Lee, K. Toutanova, "BERT", NAACL 2019, arXiv:1810.04805.
//! \[2\] A. Radford, K. Narasimhan, T. Salimans, I. Sutskever, "Improving Language
//!     Understanding by Generative Pre-Training", 2018 (GPT).
//!
//! Choices: both word models use negative sampling (5 noise words from the
//! unigram distribution ^ 0.75); learning rates are constant; the window is
//! not shrunk at random and frequent words are not subsampled.
mod lm;
mod nsp;
mod probe;
mod word2vec;

pub use lm::*;
pub use nsp::*;
pub use probe::*;
pub use word2vec::*;


/// Number of special ids at the start of every vocabulary (`[PAD]` … `[SEP]`).
pub(crate) const N_SPECIAL: u32 = 5;

#[cfg(test)]
mod tests {
    use crate::data::LabelledData;
    use super::*;
    use super::word2vec::log_sigmoid;
    use crate::data::{TextCorpus, CLS_ID, MASK_ID, SEP_ID};
    use crate::eval::{ClassifierConfig, FewLabelProtocol};
    use crate::rng::SeededRng;
    use candle_core::{Device, Tensor};
    use crate::data::TokenizerKind;

    fn words() -> TextCorpus {
        TextCorpus::new(&crate::data::synthetic_text(400, 0).unwrap(), TokenizerKind::Words, 500, "synthetic").unwrap()
    }

    fn chars() -> TextCorpus {
        TextCorpus::new(&crate::data::synthetic_text(300, 1).unwrap(), TokenizerKind::Chars, 100, "synthetic").unwrap()
    }

    fn tiny(objective: LmObjective) -> LmConfig {
        LmConfig { context: 16, dim: 16, depth: 1, heads: 2, batch_size: 16, lr: 3e-3, ..LmConfig::new(objective) }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn log_sigmoid_matches_the_definition_and_is_stable() {
        let x = Tensor::new(&[-50f32, -1.0, 0.0, 2.0, 50.0], &Device::Cpu).unwrap();
        let got: Vec<f32> = log_sigmoid(&x).unwrap().to_vec1().unwrap();
        for (g, v) in got.iter().zip([-50f32, -1.0, 0.0, 2.0, 50.0]) {
            let want = -(1.0 + (-f64::from(v)).exp()).ln();
            assert!((f64::from(*g) - want).abs() < 1e-5, "log σ({v}) = {g}, want {want}");
        }
    }

    #[test]
    fn word_vectors_learn_and_answer_queries() {
        let corpus = words();
        for model in [WordModel::SkipGram, WordModel::Cbow] {
            let cfg = Word2VecConfig { steps: 150, batch_size: 256, dim: 16, lr: 1e-2, ..Word2VecConfig::new(model) };
            let (wv, h) = train_word2vec(&cfg, &corpus, &Device::Cpu).unwrap();
            let (first, last) = (mean(&h.loss[..10]), mean(&h.loss[140..]));
            assert!(last < first, "{model}: loss did not fall: {first} → {last}");
            let w = corpus.tokenizer.token(N_SPECIAL).unwrap().to_string();
            let near = wv.nearest(&w, 3).unwrap();
            assert_eq!(near.len(), 3);
            assert!(near.iter().all(|(n, s)| *n != w && s.is_finite() && *s <= 1.0 + 1e-5));
            assert!((wv.similarity(&w, &w).unwrap() - 1.0).abs() < 1e-4);
            assert!(wv.nearest("zzzz-not-a-word", 3).unwrap_err().to_string().contains("not in the vocabulary"));
            let a = corpus.tokenizer.token(N_SPECIAL + 1).unwrap().to_string();
            let b = corpus.tokenizer.token(N_SPECIAL + 2).unwrap().to_string();
            let an = wv.analogy(&w, &a, &b, 2).unwrap();
            assert!(an.iter().all(|(n, _)| *n != w && *n != a && *n != b));
        }
    }

    #[test]
    fn language_models_learn_fill_masks_and_generate() {
        let corpus = chars();
        let v = corpus.tokenizer.vocab_size();
        for objective in [LmObjective::Masked, LmObjective::Causal] {
            let mut lm = LanguageModel::new(tiny(objective), v, &Device::Cpu).unwrap();
            lm.train_for(60, &corpus.ids).unwrap();
            let h = lm.history();
            let (first, last) = (mean(&h.loss[..5]), mean(&h.loss[55..]));
            assert!(last < first - 0.3, "{objective}: loss did not fall enough: {first} → {last}");
            assert!((first - (v as f64).ln()).abs() < 1.0, "{objective}: initial loss {first} should be near ln V");
        }
        let masked = {
            let mut lm = LanguageModel::new(tiny(LmObjective::Masked), v, &Device::Cpu).unwrap();
            lm.train_for(2, &corpus.ids).unwrap();
            lm
        };
        let mut ids = corpus.ids[..10].to_vec();
        ids[3] = MASK_ID;
        ids[7] = MASK_ID;
        let fills = masked.fill_masks(&ids, 3).unwrap();
        assert_eq!(fills.iter().map(|f| f.0).collect::<Vec<_>>(), vec![3, 7]);
        assert!(fills.iter().all(|(_, top)| top.len() == 3 && top.iter().all(|(id, p)| *id >= N_SPECIAL && (0.0..=1.0).contains(p))));
        assert!(masked.generate(&ids, 3, 1.0, &mut SeededRng::new(0)).unwrap_err().to_string().contains("only a causal"));
        let causal = LanguageModel::new(tiny(LmObjective::Causal), v, &Device::Cpu).unwrap();
        let g1 = causal.generate(&corpus.ids[..5], 20, 0.8, &mut SeededRng::new(3)).unwrap();
        let g2 = causal.generate(&corpus.ids[..5], 20, 0.8, &mut SeededRng::new(3)).unwrap();
        assert_eq!(g1.len(), 20);
        assert_eq!(g1, g2, "same seed, same sample");
        assert!(g1.iter().all(|&i| i >= N_SPECIAL && (i as usize) < v));
        let err = LanguageModel::new(tiny(LmObjective::Causal), 8, &Device::Cpu).unwrap().train_for(1, &corpus.ids).unwrap_err();
        assert!(err.to_string().contains("outside its vocabulary of 8"), "{err}");
    }

    #[test]
    fn next_sentence_pairs_are_well_formed_and_learnable() {
        let corpus = words();
        let sentences: Vec<Vec<u32>> = crate::data::split_sentences(&crate::data::synthetic_text(400, 0).unwrap())
            .iter()
            .map(|s| corpus.tokenizer.encode(s))
            .collect();
        let pairs = nsp_batch(&sentences, 24, &mut SeededRng::new(0), &Device::Cpu).unwrap();
        let (n, l) = pairs.ids.dims2().unwrap();
        assert_eq!((n, l), (sentences.len() - 1, 24));
        let first: Vec<u32> = pairs.ids.get(0).unwrap().to_vec1().unwrap();
        assert_eq!(first[0], CLS_ID);
        assert_eq!(first.iter().filter(|&&t| t == SEP_ID).count(), 2);
        let mut nsp = NextSentence::new(&LmConfig { context: 24, ..tiny(LmObjective::Masked) }, corpus.tokenizer.vocab_size(), &Device::Cpu).unwrap();
        let (tr, te) = pairs.split(0.8).unwrap();
        assert_eq!(tr.labels.dim(0).unwrap() + te.labels.dim(0).unwrap(), n);
        assert!(pairs.split(0.0).is_err());
        nsp.train_for(40, &tr).unwrap();
        let acc = nsp.accuracy(&te).unwrap();
        assert!((0.0..=1.0).contains(&acc));
        assert!(nsp_batch(&sentences, 4, &mut SeededRng::new(0), &Device::Cpu).is_err());
    }

    #[test]
    fn masked_char_windows_hide_the_middle_and_probe() {
        let text = "The Quick brown Fox, jumps over the lazy Dog; Then It Sleeps.\n".repeat(40);
        let corpus = TextCorpus::new(&text, TokenizerKind::Chars, 100, "fox").unwrap();
        let w = MaskedCharWindows::sample(&corpus.ids, &corpus.tokenizer, 9, 200, &mut SeededRng::new(0)).unwrap();
        let ids: Vec<Vec<u32>> = w.ids.to_vec2().unwrap();
        assert!(ids.iter().all(|r| r[4] == MASK_ID && r.len() == 9));
        assert!(w.labels.iter().all(|&c| c < 5));
        assert_eq!(char_class('e'), 0);
        assert_eq!(char_class('k'), 1);
        assert_eq!(char_class('K'), 2);
        assert_eq!(char_class('\n'), 3);
        assert_eq!(char_class(','), 4);
        let (train, test) = w.split_at(150).unwrap();
        assert_eq!((train.labels.len(), test.labels.len()), (150, 50));
        assert!(w.split_at(200).is_err());
        let proto = FewLabelProtocol { scratch: ClassifierConfig { steps: 10, ..Default::default() }, ..FewLabelProtocol::new(2, 0) };
        let labelled = proto.labelled(&train).unwrap();
        let lm_cfg = LmConfig { context: 9, ..tiny(LmObjective::Masked) };
        let mut lm = LanguageModel::new(lm_cfg.clone(), corpus.tokenizer.vocab_size(), &Device::Cpu).unwrap();
        lm.train_for(5, &corpus.ids).unwrap();
        let before = lm.params().named_vars()[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let rows = char_probe_baselines(&proto, &lm_cfg, corpus.tokenizer.vocab_size(), &labelled, &test, &Device::Cpu).unwrap();
        assert_eq!(rows[0].name, "from scratch");
        let r = evaluate_char_probe(&proto, "masked LM", &lm, &labelled, &test).unwrap();
        assert!((0.0..=1.0).contains(&r.linear) && (0.0..=1.0).contains(&r.finetune), "{r:?}");
        let after = lm.params().named_vars()[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(before, after, "fine-tuning must leave the language model alone");
    }
}
