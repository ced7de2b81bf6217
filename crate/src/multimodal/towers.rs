//! CLIP's two towers: the image CNN (with coordinate channels) and the
//! text transformer, each with its projection into the shared space, and
//! the learnt logit scale.

use super::{ClipConfig, MAX_WORDS};
use crate::data::{Attributes, Tokenizer, TokenizerKind, PAD_ID};
use crate::eval::map_batches;
use crate::loss::l2_normalize;
use crate::method::{Encoder, EncoderConfig};
use crate::nn::{linear, CnnConfig, Linear, TextEncoder, TextEncoderConfig};
use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};

/// The image and text encoders with their projections, the caption
/// vocabulary and the logit scale: everything of a CLIP model but its
/// training state.
pub(super) struct Towers {
    image_encoder: Encoder,
    image_proj: Linear,
    text_encoder: TextEncoder,
    text_proj: Linear,
    pub(super) logit_scale: Tensor,
    pub(super) tokenizer: Tokenizer,
    device: Device,
}

impl Towers {
    /// The towers of `config` under `vb`: image encoder `img.*` and projection
    /// `img_proj.*`, text encoder `txt.*` and projection `txt_proj.*`, the
    /// logit scale `logit_scale`; the vocabulary is the words of the 128 captions.
    pub(super) fn new(config: &ClipConfig, vb: candle_nn::VarBuilder, dev: &Device) -> Result<Self> {
        let text = Attributes::all_captions().join(" ");
        let tokenizer = Tokenizer::fit(&text, TokenizerKind::Words, 64)?;
        let image_cfg = EncoderConfig::Cnn(CnnConfig { in_channels: 5, widths: config.image_widths.clone(), batch_norm: true });
        let image_encoder = image_cfg.init(vb.pp("img"))?;
        let image_proj = linear(image_encoder.feature_dim(), config.embed_dim, vb.pp("img_proj"))?;
        let text_cfg = TextEncoderConfig {
            vocab_size: tokenizer.vocab_size(),
            max_len: MAX_WORDS,
            dim: config.text_dim,
            depth: config.text_depth,
            heads: 4.min(config.text_dim).max(1),
            mlp_ratio: 2.0,
            causal: false,
        };
        let text_encoder = text_cfg.init(vb.pp("txt"))?;
        let text_proj = linear(config.text_dim, config.embed_dim, vb.pp("txt_proj"))?;
        let logit_scale = vb.get_with_hints(1, "logit_scale", candle_nn::Init::Const((1.0 / config.temperature).ln()))?;
        Ok(Self { image_encoder, image_proj, text_encoder, text_proj, logit_scale, tokenizer, device: dev.clone() })
    }

    /// The current temperature τ = 1 / min(e^s, 100).
    pub(super) fn temperature(&self) -> Result<f64> {
        let s = f64::from(self.logit_scale.flatten_all()?.to_vec1::<f32>()?[0]);
        Ok(1.0 / s.exp().min(crate::loss::CLIP_MAX_LOGIT_SCALE))
    }

    /// Images with two coordinate channels appended (x, y in [−1, 1]).
    pub(super) fn with_coordinates(&self, images: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = images.dims4()?;
        if c != 3 {
            candle_core::bail!("clip expects colour images (B, 3, H, W), got shape {:?}", images.dims());
        }
        let dev = images.device();
        let xs = Tensor::arange(0f32, w as f32, dev)?.affine(2.0 / (w.max(2) - 1) as f64, -1.0)?;
        let ys = Tensor::arange(0f32, h as f32, dev)?.affine(2.0 / (h.max(2) - 1) as f64, -1.0)?;
        let xx = xs.reshape((1, 1, 1, w))?.broadcast_as((b, 1, h, w))?;
        let yy = ys.reshape((1, 1, h, 1))?.broadcast_as((b, 1, h, w))?;
        Tensor::cat(&[images, &xx.contiguous()?, &yy.contiguous()?], 1)
    }

    pub(super) fn image_embed(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.with_coordinates(&images.to_device(&self.device)?.to_dtype(DType::F32)?)?;
        self.image_proj.forward(&self.image_encoder.forward_t(&x, train)?)
    }

    /// Token ids `(B, L)` and the padding mask of `captions`, padded to the longest.
    fn tokens(&self, captions: &[String]) -> Result<(Tensor, Tensor)> {
        let mut rows = Vec::with_capacity(captions.len());
        for c in captions {
            let words = TokenizerKind::Words.split(c);
            if words.is_empty() || words.len() > MAX_WORDS {
                candle_core::bail!("clip: caption {c:?} has {} words; 1 to {MAX_WORDS} are allowed", words.len());
            }
            let mut ids = Vec::with_capacity(words.len());
            for w in &words {
                match self.tokenizer.id(w) {
                    Some(id) => ids.push(id),
                    None => {
                        let specials = self.tokenizer.special_ids().len();
                        let known: Vec<&str> = self.tokenizer.vocab().iter().skip(specials).map(String::as_str).collect();
                        candle_core::bail!("clip: the word {w:?} in {c:?} is not in the captions' vocabulary ({})", known.join(", "))
                    }
                }
            }
            rows.push(ids);
        }
        let l = rows.iter().map(Vec::len).max().unwrap_or(1);
        let (mut ids, mut mask) = (Vec::with_capacity(rows.len() * l), Vec::with_capacity(rows.len() * l));
        for r in &rows {
            ids.extend(r.iter().copied().chain(std::iter::repeat_n(PAD_ID, l - r.len())));
            mask.extend((0..l).map(|i| if i < r.len() { 1f32 } else { 0.0 }));
        }
        let b = rows.len();
        Ok((Tensor::from_vec(ids, (b, l), &self.device)?, Tensor::from_vec(mask, (b, l), &self.device)?))
    }

    pub(super) fn text_embed(&self, captions: &[String]) -> Result<Tensor> {
        let (ids, mask) = self.tokens(captions)?;
        let h = self.text_encoder.pooled(&ids, Some(&mask), crate::nn::Pooling::Mean)?;
        self.text_proj.forward(&h)
    }

    /// L2-normalised image embeddings `(N, E)` on the CPU, in batches, in evaluation mode.
    pub(super) fn encode_images(&self, images: &Tensor) -> Result<Tensor> {
        map_batches(images, 256, "images", |x| l2_normalize(&self.image_embed(x, false)?))
    }

    /// L2-normalised text embeddings `(M, E)` on the CPU.
    ///
    /// # Errors
    /// Naming a word outside the captions' vocabulary.
    pub(super) fn encode_texts(&self, captions: &[String]) -> Result<Tensor> {
        if captions.is_empty() {
            candle_core::bail!("clip: no captions to encode");
        }
        let mut out = Vec::new();
        for chunk in captions.chunks(256) {
            out.push(l2_normalize(&self.text_embed(chunk)?)?.to_device(&Device::Cpu)?);
        }
        Tensor::cat(&out, 0)
    }

    /// Cosine similarities `(N, M)` of `images` and `captions`.
    pub(super) fn similarity(&self, images: &Tensor, captions: &[String]) -> Result<Tensor> {
        self.encode_images(images)?.matmul(&self.encode_texts(captions)?.t()?)
    }
}
