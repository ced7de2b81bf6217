//! The step-budgeted [`Pretrainer`]: it owns the parameters, the optimiser
//! and the schedule of a run, trains it for any number of steps, saves it and
//! resumes it exactly.

use super::{build_method, Encoder, Method, PretextImages, PretrainConfig};
use crate::data::{ImageDataset, LabelledData};
use crate::nn::Params;
use crate::rng::{derive_seed, SeededRng};
use crate::train::{History, Objective, Run, Schedule, StepLoss, StepSampler};
use candle_core::{Device, Result, Tensor};
use std::path::Path;

/// A pretraining run: parameters, method, and the [`Run`] (optimiser,
/// schedule, history).
pub struct Pretrainer {
    config: PretrainConfig,
    image_shape: (usize, usize, usize),
    params: Params,
    method: Box<dyn Method>,
    run: Run,
    sampler_seed: u64,
    device: Device,
}

/// One step of a method on a batch of images.
struct MethodStep<'a> {
    method: &'a mut dyn Method,
    data: &'a ImageDataset,
    sampler: StepSampler,
    batch_size: usize,
    total_steps: usize,
    device: &'a Device,
}

impl Objective for MethodStep<'_> {
    fn step_loss(&mut self, k: usize, rng: &mut SeededRng) -> Result<StepLoss> {
        let (x, _) = self.data.batch(&self.sampler.batch(k, self.batch_size), self.device)?;
        let out = self.method.loss(&x, rng)?;
        Ok(StepLoss::new(out.loss, out.metric))
    }

    fn after_step(&mut self, k: usize) -> Result<Vec<(&'static str, f64)>> {
        self.method.after_step(k, self.total_steps)?;
        Ok(self.method.parts())
    }
}

impl Pretrainer {
    /// A fresh run of `config` on images of `image_shape = (C, H, W)`.
    pub fn new(config: PretrainConfig, image_shape: (usize, usize, usize), dev: &Device) -> Result<Self> {
        config.check()?;
        // the settings as run: the encoder's input channels are the data's
        let config = PretrainConfig { encoder: config.encoder_for(image_shape.0), ..config };
        let params = Params::new(derive_seed(config.seed, "init"));
        let method = build_method(&config, image_shape, &params, dev)?;
        let opt = config.optimizer.build(params.named_trainable_vars())?;
        let schedule = Schedule::WarmupCosine {
            peak: config.optimizer.lr,
            end: config.final_lr_fraction * config.optimizer.lr,
            warmup_steps: config.warmup_steps,
            total_steps: config.steps.max(1),
        };
        let history = History::new(&format!("{} pretraining", config.method), method.metric_name());
        Ok(Self {
            sampler_seed: derive_seed(config.seed, "data-order"),
            run: Run::new(opt, history, config.seed, "step").with_schedule(schedule),
            config,
            image_shape,
            params,
            method,
            device: dev.clone(),
        })
    }

    /// The run's settings, as it uses them (the encoder's input channels
    /// are those of its images).
    pub fn config(&self) -> &PretrainConfig {
        &self.config
    }

    /// The `(C, H, W)` of the images the run trains on.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        self.image_shape
    }

    /// Steps done so far.
    pub fn step(&self) -> usize {
        self.run.step()
    }

    /// Loss and metric of every step so far.
    pub fn history(&self) -> &History {
        self.run.history()
    }

    /// The trainable parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The method (for its features and state).
    pub fn method(&self) -> &dyn Method {
        self.method.as_ref()
    }

    /// Trains `steps` more steps on the images of `data` (labels unused) and
    /// returns the history. Call again to continue where it stopped; past the
    /// planned `config.steps` the learning rate stays at its final value
    /// (`final_lr_fraction` of the peak).
    ///
    /// Stops with an error naming the step if the loss becomes NaN or infinite.
    pub fn train_for(&mut self, steps: usize, data: &ImageDataset) -> Result<&History> {
        let shape = data.image_shape()?;
        if shape != self.image_shape {
            candle_core::bail!(
                "this run was built for images {:?} (C, H, W) but the data set {:?} has {shape:?}",
                self.image_shape,
                data.name
            );
        }
        let mut step = MethodStep {
            method: self.method.as_mut(),
            data,
            sampler: StepSampler::new(data.len(), self.sampler_seed)?,
            batch_size: self.config.batch_size,
            total_steps: self.config.steps,
            device: &self.device,
        };
        self.run.train_for(steps, &mut step)
    }

    /// The device the run trains on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The method's pretext input, prediction and target for `images` (MAE,
    /// colourisation), with random choices (the MAE mask) drawn from `seed`;
    /// errors for methods whose pretext output is not an image.
    pub fn pretext_images(&self, images: &Tensor, seed: u64) -> Result<PretextImages> {
        let x = images.to_device(&self.device)?;
        match self.method.pretext_images(&x, &mut SeededRng::new(seed))? {
            Some(p) => Ok(p),
            None => candle_core::bail!(
                "pretext_images: {} does not predict images (only mae and colorization do)",
                self.config.method
            ),
        }
    }

    /// Representations of `images (N, C, H, W)`, computed in batches of 256
    /// without gradients and returned on the CPU.
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        crate::data::map_batches(images, 256, "images", |x| self.method.encode(&x.to_device(&self.device)?, false))
    }

    /// Where the \[CLS\] token of a ViT encoder's last block attends: for
    /// each image, its attention weights over the patches, averaged over the
    /// heads (row-major patch order), on the CPU — the maps of DINO's figure 1,
    /// for [`crate::plot::attention_grid`]. An error naming the encoder when
    /// it is not a ViT with a \[CLS\] token.
    ///
    /// # Shapes
    /// `images (B, C, H, W)` → `(B, H/p · W/p)` for patch size `p`.
    pub fn cls_attention(&self, images: &Tensor) -> Result<Tensor> {
        let vit = match self.method.encoder() {
            Encoder::Vit(v) if v.config().cls_token => v,
            Encoder::Vit(_) => candle_core::bail!("cls_attention: this ViT has no [CLS] token (cls_token = false)"),
            Encoder::Cnn(_) => candle_core::bail!("cls_attention needs a ViT encoder, this {} run has the small CNN", self.config.method),
            Encoder::ResNet(_) => candle_core::bail!("cls_attention needs a ViT encoder, this {} run has a ResNet", self.config.method),
        };
        crate::data::map_batches(images, 256, "images", |x| {
            let a = vit.attention_maps(&x.to_device(&self.device)?)?; // (B, heads, L, L)
            let l = a.dim(3)?;
            a.narrow(2, 0, 1)?.narrow(3, 1, l - 1)?.mean(1)?.squeeze(1)
        })
    }

    /// The embeddings the method's loss compares (SimCLR's projections
    /// `z = g(f(x))`), in evaluation mode, in batches; an error naming the
    /// method when it has none.
    ///
    /// # Shapes
    /// `images (B, C, H, W)` → `(B, head_out)`.
    pub fn embeddings(&self, images: &Tensor) -> Result<Tensor> {
        let name = self.config.method;
        crate::data::map_batches(images, 256, "images", |x| match self.method.embed(&x.to_device(&self.device)?)? {
            Some(z) => Ok(z),
            None => candle_core::bail!("{name} has no embedding of its own to compare (use `features` for the encoder's output)"),
        })
    }

    /// The embeddings of two augmented views of `images` (the two-view
    /// methods' pipeline, [`PretrainConfig::augmentation`], drawn from
    /// `seed`): what the loss compares, in evaluation mode.
    ///
    /// # Shapes
    /// `images (B, C, H, W)` → two `(B, head_out)`.
    pub fn two_view_embeddings(&self, images: &Tensor, seed: u64) -> Result<(Tensor, Tensor)> {
        let augment = self.config.augmentation(self.image_shape);
        let mut rng = SeededRng::new(seed);
        use crate::augment::Transform;
        let (v1, v2) = (augment.apply(images, &mut rng)?, augment.apply(images, &mut rng)?);
        Ok((self.embeddings(&v1)?, self.embeddings(&v2)?))
    }

    /// Saves the run (parameters, optimiser state, method state, config,
    /// progress and history) into the directory `dir`, atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let meta = serde_json::json!({
            "config": self.config,
            "image_shape": [self.image_shape.0, self.image_shape.1, self.image_shape.2],
        });
        self.run.save(dir, FORMAT, meta, &self.params, &[("state", &self.method.state())])
    }

    /// Loads a run saved by [`Pretrainer::save`], ready to continue training
    /// or to compute features.
    pub fn load(dir: impl AsRef<Path>, dev: &Device) -> Result<Self> {
        let ck = Run::open(dir, FORMAT, "an sslab pretraining checkpoint", dev)?;
        let shape: Vec<usize> = ck.entry("image_shape")?;
        let &[c, h, w] = shape.as_slice() else { return Err(ck.config_error("\"image_shape\" must have 3 entries")) };
        let mut run = Self::new(ck.entry("config")?, (c, h, w), dev)?;
        run.run.restore(&ck, &run.params)?;
        run.method.load_state(ck.group("state")?)?;
        Ok(run)
    }
}

/// The `format` of a pretraining checkpoint's `config.json`.
const FORMAT: &str = "sslab-pretrain-v1";
