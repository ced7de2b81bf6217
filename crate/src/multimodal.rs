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

use crate::data::{Attribute, Attributes, CaptionedImages, Tokenizer, TokenizerKind, PAD_ID};
use crate::eval::map_batches;
use crate::loss::{clip, clip_with_logit_scale, l2_normalize};
use crate::method::{Encoder, EncoderConfig};
use crate::nn::{linear, CnnConfig, Linear, Params, TextEncoder, TextEncoderConfig};
use crate::rng::derive_seed;
use crate::train::{finite_loss, load_checkpoint, save_checkpoint, History, Optim, OptimizerConfig, Schedule, StepSampler};
use candle_core::{DType, Device, Module, ModuleT, Result, Tensor, D};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The longest caption or prompt, in words (the text encoder's positions).
const MAX_WORDS: usize = 16;

/// Settings of a [`Clip`] model and its training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    /// Optimiser steps of a full run.
    pub steps: usize,
    /// Image–caption pairs per step.
    pub batch_size: usize,
    /// Width `E` of the shared embedding space.
    pub embed_dim: usize,
    /// Output channels of the image CNN's convolutions.
    pub image_widths: Vec<usize>,
    /// Width of the text transformer.
    pub text_dim: usize,
    /// Blocks of the text transformer.
    pub text_depth: usize,
    /// AdamW learning rate (cosine decay after a warm-up of `steps / 10`).
    pub lr: f64,
    /// AdamW weight decay (not on biases, norms and the logit scale).
    pub weight_decay: f64,
    /// The temperature τ at the start (CLIP: 0.07).
    pub temperature: f64,
    /// Learn the temperature (CLIP) or keep it at `temperature`.
    pub learn_temperature: bool,
    /// The seed behind initialisation and batch order.
    pub seed: u64,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            steps: 600,
            batch_size: 128,
            embed_dim: 64,
            image_widths: vec![32, 64, 128],
            text_dim: 64,
            text_depth: 2,
            lr: 2e-3,
            weight_decay: 0.05,
            temperature: 0.07,
            learn_temperature: true,
            seed: 0,
        }
    }
}

impl ClipConfig {
    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> Result<()> {
        if self.batch_size < 2 {
            candle_core::bail!("clip: batch_size must be at least 2 (one pair has no negatives), got {}", self.batch_size);
        }
        if self.embed_dim == 0 || self.text_dim == 0 || self.text_depth == 0 || self.image_widths.is_empty() {
            candle_core::bail!("clip: embed_dim, text_dim, text_depth and image_widths must be non-zero, got {self:?}");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            candle_core::bail!("clip: temperature must be positive, got {}", self.temperature);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            candle_core::bail!("clip: lr must be positive, got {}", self.lr);
        }
        Ok(())
    }
}

/// How [`Clip::zero_shot_accuracy`] turns the classes of an attribute into text.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompts {
    /// One caption per class with `{}` standing for the class's words, e.g.
    /// `"a small red {} on the left"` for the shape.
    Template(String),
    /// Each class is the mean embedding of every caption with that value of
    /// the attribute (CLIP's prompt ensembling, §3.1.4 of \[0\], over all
    /// the captions the other attributes allow).
    Ensemble,
}

/// Recall@k of image→text and text→image retrieval ([`Clip::retrieval`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieval {
    /// The `k` of each column.
    pub ks: Vec<usize>,
    /// Fraction of images whose caption is among the `k` captions ranked first.
    pub image_to_text: Vec<f64>,
    /// Fraction of captions with an image showing them among the `k` images ranked first.
    pub text_to_image: Vec<f64>,
    /// Distinct captions searched.
    pub captions: usize,
    /// Images searched.
    pub images: usize,
}

/// How well images are matched to their full caption among all 128
/// ([`Clip::caption_accuracy`]): exactly, and attribute by attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptionScores {
    /// Fraction of images whose best caption is exactly theirs.
    pub exact: f64,
    /// For each attribute of [`Attribute::ALL`], the fraction whose best caption has it right.
    pub per_attribute: Vec<(Attribute, f64)>,
    /// Images scored.
    pub images: usize,
}

/// A CLIP model: image encoder `img.*` and projection `img_proj.*`, text
/// encoder `txt.*` and projection `txt_proj.*`, the logit scale `logit_scale`.
pub struct Clip {
    config: ClipConfig,
    params: Params,
    image_encoder: Encoder,
    image_proj: Linear,
    text_encoder: TextEncoder,
    text_proj: Linear,
    logit_scale: Tensor,
    tokenizer: Tokenizer,
    opt: Optim,
    history: History,
    device: Device,
    step: usize,
}

impl Clip {
    /// A model at initialisation; its vocabulary is the words of the 128 captions.
    ///
    /// # Errors
    /// If a setting is out of range ([`ClipConfig::check`]).
    pub fn new(config: ClipConfig, dev: &Device) -> Result<Self> {
        config.check()?;
        let text = Attributes::all_captions().join(" ");
        let tokenizer = Tokenizer::fit(&text, TokenizerKind::Words, 64)?;
        let params = Params::new(derive_seed(config.seed, "clip-init"));
        let vb = params.builder(dev);
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
        let opt = OptimizerConfig::adamw(config.lr, config.weight_decay).build(params.named_trainable_vars())?;
        let history = History::new("clip", "in-batch image→text accuracy");
        Ok(Self { config, params, image_encoder, image_proj, text_encoder, text_proj, logit_scale, tokenizer, opt, history, device: dev.clone(), step: 0 })
    }

    /// The settings.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// Training steps taken so far.
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// Saves the model (parameters, optimiser state, settings, progress and
    /// history) into the directory `dir`, atomically: `config.json`,
    /// `model.safetensors`, `optimizer.safetensors`.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let model = self.params.named_tensors();
        let meta = serde_json::json!({
            "format": "sslab-clip-v1",
            "config": self.config,
            "step": self.step,
            "optimizer_steps": self.opt.steps_taken(),
            "history": self.history,
        });
        save_checkpoint(dir, &meta, &[("model", &model), ("optimizer", &self.opt.state())])
    }

    /// Loads a model saved by [`Clip::save`], ready to continue training
    /// (the same batches and schedule as an uninterrupted run) or to embed.
    ///
    /// # Errors
    /// If `dir` is not a CLIP checkpoint, or a parameter is missing or has
    /// another shape; the message names the directory and the parameter.
    pub fn load(dir: impl AsRef<Path>, dev: &Device) -> Result<Self> {
        let ck = load_checkpoint(dir, dev)?;
        ck.expect_format("sslab-clip-v1", "an sslab CLIP checkpoint")?;
        let mut m = Self::new(ck.entry("config")?, dev)?;
        ck.restore_params(&m.params, "model")?;
        ck.restore_optimizer(&mut m.opt)?;
        m.step = ck.entry("step")?;
        m.history = ck.entry("history")?;
        Ok(m)
    }

    /// Loss and in-batch accuracy per step, and the temperature as the part "temperature".
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The caption vocabulary.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The current temperature τ = 1 / min(e^s, 100).
    pub fn temperature(&self) -> Result<f64> {
        let s = f64::from(self.logit_scale.flatten_all()?.to_vec1::<f32>()?[0]);
        Ok(1.0 / s.exp().min(crate::loss::CLIP_MAX_LOGIT_SCALE))
    }

    /// Images with two coordinate channels appended (x, y in [−1, 1]).
    fn with_coordinates(&self, images: &Tensor) -> Result<Tensor> {
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

    fn image_embed(&self, images: &Tensor, train: bool) -> Result<Tensor> {
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

    fn text_embed(&self, captions: &[String]) -> Result<Tensor> {
        let (ids, mask) = self.tokens(captions)?;
        let h = self.text_encoder.pooled(&ids, Some(&mask), crate::nn::Pooling::Mean)?;
        self.text_proj.forward(&h)
    }

    /// Trains `steps` more steps on random batches of `data`'s pairs (one
    /// seed-driven order; warm-up and cosine decay over `config.steps`).
    ///
    /// # Errors
    /// If `data` has fewer pairs than a batch, or the loss is not finite.
    pub fn train_for(&mut self, steps: usize, data: &CaptionedImages) -> Result<&History> {
        let b = self.config.batch_size;
        if data.len() < b {
            candle_core::bail!("clip: {} has {} pairs, fewer than a batch of {b}", data.name, data.len());
        }
        let mut sampler = StepSampler::new(data.len(), derive_seed(self.config.seed, "clip-batches"))?;
        let total_steps = self.config.steps.max(self.step + steps);
        let schedule = Schedule::WarmupCosine { peak: self.config.lr, end: 0.0, warmup_steps: total_steps / 10, total_steps };
        let mut progress = crate::train::Progress::start(&self.history.name.clone(), steps);
        for _ in 0..steps {
            if progress.stopped() {
                break;
            }
            let k = self.step;
            self.opt.set_lr(schedule.at(k));
            let batch = data.select(&sampler.batch(k, b))?;
            let img = self.image_embed(&batch.images, true)?;
            let txt = self.text_embed(&batch.captions())?;
            let loss = if self.config.learn_temperature {
                clip_with_logit_scale(&img, &txt, &self.logit_scale)?
            } else {
                clip(&img, &txt, self.config.temperature)?
            };
            let lv = finite_loss(&loss, k + 1, "clip")?;
            // in-batch accuracy: the caption picked is the image's own text (duplicates count)
            let picked: Vec<u32> = l2_normalize(&img)?.matmul(&l2_normalize(&txt)?.t()?)?.argmax(D::Minus1)?.to_vec1()?;
            let correct = picked.iter().enumerate().filter(|(i, &j)| batch.attributes[*i] == batch.attributes[j as usize]).count();
            self.opt.backward_step(&loss)?;
            self.step += 1;
            self.history.push(self.step, lv, correct as f64 / b as f64);
            self.history.push_parts(&[("temperature", self.temperature()?)]);
            progress.tick_history(&self.history);
        }
        progress.finish(&self.history.summary());
        Ok(&self.history)
    }

    /// L2-normalised image embeddings `(N, E)` on the CPU, in batches, in evaluation mode.
    pub fn encode_images(&self, images: &Tensor) -> Result<Tensor> {
        map_batches(images, 256, "images", |x| l2_normalize(&self.image_embed(x, false)?))
    }

    /// L2-normalised text embeddings `(M, E)` on the CPU.
    ///
    /// # Errors
    /// Naming a word outside the captions' vocabulary.
    pub fn encode_texts(&self, captions: &[String]) -> Result<Tensor> {
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
    pub fn similarity(&self, images: &Tensor, captions: &[String]) -> Result<Tensor> {
        self.encode_images(images)?.matmul(&self.encode_texts(captions)?.t()?)
    }

    /// The cosine similarities of `pairs`' images (rows) and captions
    /// (columns) as an annotated heat map, numbered from 1, with the
    /// matching pairs outlined: CLIP's training target is its diagonal. The
    /// colours span the cosine's full scale [−1, 1], so heatmaps before and
    /// after training share one scale.
    pub fn similarity_heatmap(&self, pairs: &CaptionedImages, title: &str) -> Result<crate::plot::Heatmap> {
        let n = pairs.len();
        let numbers: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        Ok(crate::plot::Heatmap::new(&self.similarity(&pairs.images, &pairs.captions())?)?
            .title(title)
            .labels(&numbers, &numbers)
            .x_label("caption")
            .y_label("image")
            .outline((0..n).map(|i| (i, i)))
            .annotate(true)
            .range(-1.0, 1.0))
    }

    /// One embedding per value of `attribute`, `(values, E)`.
    fn class_embeddings(&self, attribute: Attribute, prompts: &Prompts) -> Result<Tensor> {
        let values = attribute.values();
        match prompts {
            Prompts::Template(t) => {
                if t.matches("{}").count() != 1 {
                    candle_core::bail!("clip: a prompt template needs exactly one {{}} for the {attribute}, got {t:?}");
                }
                self.encode_texts(&values.iter().map(|v| t.replace("{}", v)).collect::<Vec<_>>())
            }
            Prompts::Ensemble => {
                let all = Attributes::all();
                let mut rows = Vec::with_capacity(values.len());
                for v in 0..values.len() {
                    let captions: Vec<String> = all.iter().filter(|a| a.get(attribute) == v).map(Attributes::caption).collect();
                    rows.push(self.encode_texts(&captions)?.mean(0)?);
                }
                l2_normalize(&Tensor::stack(&rows, 0)?)
            }
        }
    }

    /// Zero-shot predictions of `attribute` for each image: the class whose
    /// prompt embedding is closest.
    pub fn zero_shot(&self, images: &Tensor, attribute: Attribute, prompts: &Prompts) -> Result<Vec<u32>> {
        self.zero_shot_embedded(&self.encode_images(images)?, attribute, prompts)
    }

    /// [`zero_shot`](Self::zero_shot) for images already embedded by [`encode_images`](Self::encode_images).
    fn zero_shot_embedded(&self, image_embeddings: &Tensor, attribute: Attribute, prompts: &Prompts) -> Result<Vec<u32>> {
        let classes = self.class_embeddings(attribute, prompts)?;
        image_embeddings.matmul(&classes.t()?)?.argmax(D::Minus1)?.to_vec1()
    }

    /// Zero-shot accuracy of `attribute` on `data`: no labelled example, only the prompts.
    pub fn zero_shot_accuracy(&self, data: &CaptionedImages, attribute: Attribute, prompts: &Prompts) -> Result<f64> {
        Ok(fraction_equal(&self.zero_shot(&data.images, attribute, prompts)?, &data.labels(attribute)))
    }

    /// The `k` best of all 128 captions for each image, with their cosine similarity.
    pub fn describe(&self, images: &Tensor, k: usize) -> Result<Vec<Vec<(String, f32)>>> {
        let captions = Attributes::all_captions();
        let sim = self.similarity(images, &captions)?.to_vec2::<f32>()?;
        Ok(sim.iter().map(|row| top_k(row, k).into_iter().map(|j| (captions[j].clone(), row[j])).collect()).collect())
    }

    /// Indices of the `k` images of `images` closest to `query`, best first.
    pub fn retrieve_images(&self, images: &Tensor, query: &str, k: usize) -> Result<Vec<usize>> {
        let sim = self.similarity(images, &[query.to_string()])?.squeeze(1)?.to_vec1::<f32>()?;
        Ok(top_k(&sim, k))
    }

    /// Each image against all 128 captions: how often the best is exactly its
    /// caption, and how often it has each attribute right.
    pub fn caption_accuracy(&self, data: &CaptionedImages) -> Result<CaptionScores> {
        let all = Attributes::all();
        let best: Vec<u32> = self.similarity(&data.images, &Attributes::all_captions())?.argmax(D::Minus1)?.to_vec1()?;
        let n = data.len().max(1) as f64;
        let exact = best.iter().zip(&data.attributes).filter(|(&b, a)| all[b as usize] == **a).count() as f64 / n;
        let per_attribute = Attribute::ALL
            .iter()
            .map(|&at| (at, best.iter().zip(&data.attributes).filter(|(&b, a)| all[b as usize].get(at) == a.get(at)).count() as f64 / n))
            .collect();
        Ok(CaptionScores { exact, per_attribute, images: data.len() })
    }

    /// Recall@k in both directions on `data`: image→text ranks the distinct
    /// captions of `data`; text→image ranks its images for each distinct
    /// caption. An image with the same caption counts as a hit (the data
    /// repeats captions).
    pub fn retrieval(&self, data: &CaptionedImages, ks: &[usize]) -> Result<Retrieval> {
        let mut distinct: Vec<Attributes> = data.attributes.clone();
        distinct.sort_by_key(|a| (a.shape, a.colour, a.size, a.position));
        distinct.dedup();
        let captions: Vec<String> = distinct.iter().map(Attributes::caption).collect();
        let sim = self.similarity(&data.images, &captions)?; // (N, C)
        let rows = sim.to_vec2::<f32>()?;
        let cols = sim.t()?.contiguous()?.to_vec2::<f32>()?;
        let kmax = ks.iter().copied().max().unwrap_or(1);
        let i2t_ranked: Vec<Vec<usize>> = rows.iter().map(|r| top_k(r, kmax)).collect();
        let t2i_ranked: Vec<Vec<usize>> = cols.iter().map(|c| top_k(c, kmax)).collect();
        let recall = |k: usize| -> (f64, f64) {
            let i2t = i2t_ranked.iter().zip(&data.attributes).filter(|(r, a)| r.iter().take(k).any(|&j| distinct[j] == **a)).count();
            let t2i = t2i_ranked.iter().zip(&distinct).filter(|(r, a)| r.iter().take(k).any(|&i| data.attributes[i] == **a)).count();
            (i2t as f64 / data.len().max(1) as f64, t2i as f64 / distinct.len().max(1) as f64)
        };
        let (image_to_text, text_to_image) = ks.iter().map(|&k| recall(k)).unzip();
        Ok(Retrieval { ks: ks.to_vec(), image_to_text, text_to_image, captions: distinct.len(), images: data.len() })
    }
}

impl Prompts {
    /// The single template of `attribute`: a full caption with the other
    /// three attributes fixed at their first values ("a small red {} on the
    /// left" for the shape).
    pub fn template(attribute: Attribute) -> Prompts {
        // "a small red circle on the left": each first value appears once in it
        let caption = Attributes { shape: 0, colour: 0, size: 0, position: 0 }.caption();
        Prompts::Template(caption.replacen(attribute.values()[0], "{}", 1))
    }
}

/// Zero-shot accuracy of each attribute on `data`, for each model, with the
/// single [`Prompts::template`] and with the [`Prompts::Ensemble`], beside
/// the chance level (one over the number of values).
pub fn zero_shot_table(models: &[(&str, &Clip)], data: &CaptionedImages) -> Result<crate::plot::Table> {
    let mut header = vec!["attribute".to_string(), "template".to_string(), "chance".to_string()];
    for (name, _) in models {
        header.push(format!("{name}: template"));
        header.push(format!("{name}: ensemble"));
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = crate::plot::Table::new(&header).caption(&format!("zero-shot accuracy on {} test images: no labelled example, only text", data.len()));
    // each model embeds the images once, for all attributes and prompts
    let embedded: Vec<Tensor> = models.iter().map(|(_, m)| m.encode_images(&data.images)).collect::<Result<_>>()?;
    for at in Attribute::ALL {
        let template = Prompts::template(at);
        let Prompts::Template(words) = &template else { unreachable!() };
        let labels = data.labels(at);
        let mut row = vec![at.to_string(), format!("\"{words}\""), format!("{:.1} %", 100.0 / at.values().len() as f64)];
        for ((_, m), images) in models.iter().zip(&embedded) {
            for prompts in [&template, &Prompts::Ensemble] {
                row.push(format!("{:.1} %", 100.0 * fraction_equal(&m.zero_shot_embedded(images, at, prompts)?, &labels)));
            }
        }
        t.push(&row);
    }
    Ok(t)
}

/// [`CaptionScores`] side by side: one row per set of images.
pub fn caption_table(rows: &[(&str, &CaptionScores)]) -> crate::plot::Table {
    let mut header = vec!["images".to_string(), "n".to_string(), "exact caption".to_string()];
    header.extend(Attribute::ALL.iter().map(|a| format!("{a} right")));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = crate::plot::Table::new(&header).caption("each image's best caption among all 128 (chance: exact 0.8 %; shape and colour 25 %, size 50 %, position 25 %)");
    for (name, s) in rows {
        let mut row = vec![name.to_string(), s.images.to_string(), format!("{:.1} %", 100.0 * s.exact)];
        row.extend(s.per_attribute.iter().map(|(_, v)| format!("{:.1} %", 100.0 * v)));
        t.push(&row);
    }
    t
}

/// The fraction of positions where `predicted` and `labels` agree.
fn fraction_equal(predicted: &[u32], labels: &[u32]) -> f64 {
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len().max(1) as f64
}

/// Indices of the `k` largest values, largest first.
fn top_k(xs: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&a, &b| xs[b].total_cmp(&xs[a]));
    idx.truncate(k);
    idx
}

impl Retrieval {
    /// The recalls as a table, with the chance levels.
    pub fn table(&self) -> crate::plot::Table {
        let mut t = crate::plot::Table::new(&["direction", "k", "recall@k", "chance"]).caption(&format!(
            "{} images, {} distinct captions; a retrieved item with the same caption counts as a hit",
            self.images, self.captions
        ));
        for (i, &k) in self.ks.iter().enumerate() {
            let chance_i2t = (k as f64 / self.captions.max(1) as f64).min(1.0);
            // at least one of the images of a caption (about N / C of them) among k drawn at random
            let per = self.images as f64 / self.captions.max(1) as f64;
            let chance_t2i = 1.0 - (1.0 - per / self.images.max(1) as f64).powi(k as i32);
            t.push(&["image → text".into(), k.to_string(), format!("{:.1} %", 100.0 * self.image_to_text[i]), format!("{:.1} %", 100.0 * chance_i2t)]);
            t.push(&["text → image".into(), k.to_string(), format!("{:.1} %", 100.0 * self.text_to_image[i]), format!("{:.1} %", 100.0 * chance_t2i)]);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::captioned_shapes;

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
        let c = m.with_coordinates(&x).unwrap();
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
