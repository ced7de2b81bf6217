//! CLIP: contrastive image–text pretraining on captioned shapes (section 25.5).
//!
//! \[0\] A. Radford, J. W. Kim, C. Hallacy, A. Ramesh, G. Goh, S. Agarwal et al.,
//!     "Learning Transferable Visual Models From Natural Language
//!     Supervision", ICML 2021, arXiv:2103.00020.
//! \[1\] R. Liu, J. Lehman, P. Molino et al., "An Intriguing Failing of
//!     Convolutional Neural Networks and the CoordConv Solution", NeurIPS
//!     2018, arXiv:1807.03247.
//!
//! ```text
//! image  x ─ f_img (CNN) ─ W_i ─ normalise ─ I        (B, E)
//! text   t ─ f_txt (transformer, mean over tokens) ─ W_t ─ normalise ─ T   (B, E)
//! L = ½ [CE(e^s · I Tᵀ, arange) + CE(e^s · T Iᵀ, arange)]     s learnt, e^s ≤ 100      [0] Fig. 3
//! ```
//!
//! Choices: the image encoder is [`crate::nn::SmallCnn`] with batch norm on
//! the image plus two coordinate channels (x and y, from −1 to 1; CoordConv
//! \[1\]): a CNN that pools globally cannot otherwise tell "on the left" from
//! "on the right". The text encoder is a 2-block transformer whose
//! vocabulary is the 18 words of the captions plus the special tokens, with
//! the mean over the tokens as its output (CLIP takes the `[EOS]` token's
//! state). The temperature is learnt (`e^s`, initialised to 1/0.07, clamped
//! at 100) unless [`ClipConfig::learn_temperature`] is off; `s` has no weight
//! decay. No augmentation: a crop or a flip would change the caption's
//! "left" or "top".

mod clip;
mod config;
mod towers;
mod zero_shot;

pub use clip::Clip;
pub use config::ClipConfig;
use config::MAX_WORDS;
pub use zero_shot::{caption_table, zero_shot_table, CaptionScores, Prompts, Retrieval};

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};
    use crate::data::{captioned_shapes, Attribute};

    fn tiny() -> ClipConfig {
        ClipConfig { steps: 40, batch_size: 32, embed_dim: 16, image_widths: vec![8, 16], text_dim: 16, text_depth: 1, ..ClipConfig::default() }
    }

    #[test]
    fn clip_config_is_checked_and_words_are_named() {
        let dev = Device::Cpu;
        for (bad, word) in [
            (ClipConfig { batch_size: 1, ..tiny() }, "batch_size"),
            (ClipConfig { temperature: 0.0, ..tiny() }, "temperature"),
            (ClipConfig { embed_dim: 0, ..tiny() }, "embed_dim"),
            (ClipConfig { lr: -1.0, ..tiny() }, "lr"),
        ] {
            let e = Clip::new(bad, &dev).err().unwrap().to_string();
            assert!(e.contains(word), "{e}");
        }
        let m = Clip::new(tiny(), &dev).unwrap();
        assert_eq!(m.tokenizer().vocab_size(), 5 + 18); // a, 2 sizes, 4 colours, 4 shapes, on, at, the, 4 sides
        let e = m.encode_texts(&["a small purple circle".into()]).unwrap_err().to_string();
        assert!(e.contains("\"purple\"") && e.contains("triangle"), "{e}");
        assert!((m.temperature().unwrap() - 0.07).abs() < 1e-6);
        let grey = Tensor::zeros((2, 1, 28, 28), DType::F32, &dev).unwrap();
        assert!(m.encode_images(&grey).unwrap_err().to_string().contains("(B, 3, H, W)"));
        let few = captioned_shapes(8, 0).unwrap();
        let mut m = m;
        assert!(m.train_for(1, &few).unwrap_err().to_string().contains("fewer than a batch of 32"));
        let e = m.zero_shot(&few.images, Attribute::Shape, &Prompts::Template("a small red circle".into())).unwrap_err().to_string();
        assert!(e.contains("exactly one {}"), "{e}");
    }

    /// Three steps, save, load, three more: the same losses and parameters
    /// as six steps straight; a directory that is not a CLIP checkpoint is named.
    #[test]
    fn clip_resumes_exactly_and_names_a_bad_checkpoint() {
        let dev = Device::Cpu;
        let data = captioned_shapes(96, 0).unwrap();
        let mut straight = Clip::new(tiny(), &dev).unwrap();
        straight.train_for(6, &data).unwrap();
        let mut first = Clip::new(tiny(), &dev).unwrap();
        first.train_for(3, &data).unwrap();
        let dir = std::env::temp_dir().join(format!("sslab-clip-resume-{}", std::process::id()));
        first.save(&dir).unwrap();
        let mut resumed = Clip::load(&dir, &dev).unwrap();
        resumed.train_for(3, &data).unwrap();
        assert_eq!(resumed.steps_taken(), 6);
        for (a, b) in resumed.history().loss.iter().zip(&straight.history().loss) {
            assert!((a - b).abs() < 1e-9, "losses differ after resume: {a} vs {b}");
        }
        assert_eq!(resumed.history().loss.len(), 6);
        for ((n, a), (_, b)) in straight.params().named_vars().iter().zip(resumed.params().named_vars()) {
            let d: f32 = (a.as_tensor() - b.as_tensor()).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(d < 1e-6, "parameter {n} differs after resume by {d}");
        }
        assert!((resumed.temperature().unwrap() - straight.temperature().unwrap()).abs() < 1e-9);
        // a pretraining checkpoint is not a CLIP one
        let cfg = crate::method::PretrainConfig { batch_size: 4, ..crate::method::PretrainConfig::for_method(crate::method::MethodName::Rotation) };
        let p = crate::method::Pretrainer::new(cfg, (1, 28, 28), &dev).unwrap();
        let other = std::env::temp_dir().join(format!("sslab-clip-other-{}", std::process::id()));
        p.save(&other).unwrap();
        let e = Clip::load(&other, &dev).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("not an sslab CLIP checkpoint") && e.contains(&other.display().to_string()), "{e}");
        let e = Clip::load("/nonexistent/clip", &dev).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("/nonexistent/clip"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
    }

    /// Padding does not change a caption's embedding: the same prompt alone
    /// and next to a longer one; coordinates give the CNN the position.
    #[test]
    fn clip_text_padding_and_coordinates() {
        let m = Clip::new(tiny(), &Device::Cpu).unwrap();
        let alone = m.encode_texts(&["a red circle".into()]).unwrap();
        let padded = m.encode_texts(&["a red circle".into(), "a small red circle on the left".into()]).unwrap();
        let d = (alone.get(0).unwrap() - padded.get(0).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "{d}");
        let x = Tensor::zeros((1, 3, 4, 5), DType::F32, &Device::Cpu).unwrap();
        let c = m.towers.with_coordinates(&x).unwrap();
        assert_eq!(c.dims(), &[1, 5, 4, 5]);
        assert_eq!(c.get(0).unwrap().get(3).unwrap().get(2).unwrap().to_vec1::<f32>().unwrap(), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(c.get(0).unwrap().get(4).unwrap().get(3).unwrap().to_vec1::<f32>().unwrap(), vec![1.0; 5]);
    }

    /// A short run learns: the loss falls, in-batch accuracy rises well
    /// above chance, zero-shot colour and retrieval beat chance, the
    /// temperature is learnt; the same seed gives the same run.
    #[test]
    fn clip_trains_and_beats_chance_zero_shot() {
        let data = captioned_shapes(640, 0).unwrap();
        let test = captioned_shapes(256, 1).unwrap();
        let mut m = Clip::new(tiny(), &Device::Cpu).unwrap();
        m.train_for(40, &data).unwrap();
        let h = m.history();
        let (first, last) = (h.loss[..5].iter().sum::<f64>() / 5.0, h.loss[35..].iter().sum::<f64>() / 5.0);
        assert!(last < first - 0.5, "loss {first} → {last}");
        assert!(h.metric[35..].iter().sum::<f64>() / 5.0 > 0.1, "{:?}", &h.metric[35..]);
        assert!((m.temperature().unwrap() - 0.07).abs() > 1e-4);
        assert_eq!(h.parts[0].0, "temperature");
        let colour = m.zero_shot_accuracy(&test, Attribute::Colour, &Prompts::Ensemble).unwrap();
        assert!(colour > 0.5, "zero-shot colour {colour} (chance 0.25)");
        let r = m.retrieval(&test, &[1, 5]).unwrap();
        assert!(r.image_to_text[1] > 5.0 / r.captions as f64 && r.image_to_text[1] >= r.image_to_text[0]);
        let scores = m.caption_accuracy(&test).unwrap();
        assert_eq!(scores.per_attribute.len(), 4);
        assert!(scores.per_attribute.iter().all(|(_, a)| *a >= scores.exact));
        assert!(r.table().to_string().contains("image → text"));
        let untrained = Clip::new(tiny(), &Device::Cpu).unwrap();
        let t = zero_shot_table(&[("untrained", &untrained), ("trained", &m)], &test).unwrap().to_string();
        assert!(t.contains("\"a small {} circle on the left\"") && t.contains("\"a small red circle {}\"") && t.contains("trained: ensemble"), "{t}");
        let c = caption_table(&[("seen", &scores)]).to_string();
        assert!(c.contains("shape right") && c.contains(&format!("{:.1} %", 100.0 * scores.exact)), "{c}");
        let mut again = Clip::new(tiny(), &Device::Cpu).unwrap();
        again.train_for(3, &data).unwrap();
        assert_eq!(&again.history().loss[..], &m.history().loss[..3]);
        let h = m.similarity_heatmap(&test.take(5).unwrap(), "s").unwrap();
        assert_eq!(h.shape(), (5, 5));
        assert_eq!(h.value_range().unwrap(), (-1.0, 1.0));
        let sim = m.similarity(&test.take(5).unwrap().images, &test.take(5).unwrap().captions()).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(h.value(2, 3), Some(sim[2][3]));
        let top = m.describe(&test.images.narrow(0, 0, 2).unwrap(), 3).unwrap();
        assert_eq!((top.len(), top[0].len()), (2, 3));
        assert!(top[0][0].1 >= top[0][1].1);
        assert_eq!(m.retrieve_images(&test.images, "a large blue square at the top", 4).unwrap().len(), 4);
    }
}
