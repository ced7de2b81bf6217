//! Colourisation: predict an image's colours from its gray version.
//!
//! \[0\] R. Zhang, P. Isola, A. A. Efros, "Colorful Image Colorization", ECCV
//!     2016, arXiv:1603.08511.
//!
//! ```text
//! g = gray(x) = 0.2989 R + 0.587 G + 0.114 B           (B, 1, H, W)
//! x̂ = g + reshape(W f(g) + b, (3, H, W))             per-pixel regression from the pooled features
//! L = mean (x̂ − x)²
//! ```
//!
//! A deliberately simple version of \[0\] (which predicts quantised Lab
//! colours with a fully convolutional network and class rebalancing): RGB
//! regression of the colour *residual* `x − g` by one linear layer from the
//! encoder's pooled features to every pixel. The encoder sees only gray
//! images (1 input channel); [`Method::encode`] turns colour images gray
//! first. Not defined for 1-channel data: [`Colorization::new`] errors.
//! Logged metric: the fraction of the colour error removed, `1 − loss / MSE(gray, x)`
//! (0 = no better than leaving the image gray, 1 = perfect colours).

use super::{Encoder, Method, PretextImages, PretrainConfig, StepOutput};
use crate::augment::rgb_to_grayscale;
use crate::nn::{linear, Linear};
use crate::pretext::colorization_pair;
use crate::rng::SeededRng;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// Colourisation: gray-input encoder `enc.*` and per-pixel colour head `head.*`.
pub struct Colorization {
    encoder: Encoder,
    head: Linear,
    height: usize,
    width: usize,
}

impl Colorization {
    /// Builds the encoder (1 input channel) and the head `F → 3·H·W`; errors
    /// unless `shape = (3, H, W)`.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let (c, h, w) = shape;
        if c != 3 {
            candle_core::bail!(
                "colorization needs colour (3-channel RGB) images: there is no colour to predict in images of shape {shape:?} (C, H, W)"
            );
        }
        let encoder = cfg.encoder_for(c).init(vb.pp("enc"))?;
        let head = linear(encoder.feature_dim(), 3 * h * w, vb.pp("head"))?;
        Ok(Self { encoder, head, height: h, width: w })
    }
}

impl Method for Colorization {
    fn metric_name(&self) -> &'static str {
        "colour error removed"
    }

    fn loss(&mut self, images: &Tensor, _rng: &mut SeededRng) -> Result<StepOutput> {
        let (gray, target) = colorization_pair(images)?;
        let b = images.dim(0)?;
        let residual = self.head.forward(&self.encoder.forward_t(&gray, true)?)?.reshape((b, 3, self.height, self.width))?;
        let gray3 = gray.broadcast_as((b, 3, self.height, self.width))?;
        let loss = (gray3.broadcast_add(&residual)? - &target)?.sqr()?.mean_all()?;
        let base = (gray3 - &target)?.sqr()?.mean_all()?.to_scalar::<f32>()?;
        let metric = if base > 0.0 { f64::from(1.0 - loss.to_scalar::<f32>()? / base) } else { 0.0 };
        Ok(StepOutput { loss, metric })
    }

    /// Encodes the gray version of `images` (`(B, 3, H, W)` colour or `(B, 1, H, W)` gray).
    fn encode(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        let gray = if images.dims().get(1) == Some(&3) { rgb_to_grayscale(images)? } else { images.clone() };
        self.encoder.forward_t(&gray, train)
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Input: the gray image (as RGB); output: gray + the predicted colour residual.
    fn pretext_images(&self, images: &Tensor, _rng: &mut SeededRng) -> Result<Option<PretextImages>> {
        let (gray, target) = colorization_pair(images)?;
        let b = images.dim(0)?;
        let residual = self.head.forward(&self.encoder.forward_t(&gray, false)?)?.reshape((b, 3, self.height, self.width))?;
        let gray3 = gray.broadcast_as((b, 3, self.height, self.width))?.contiguous()?;
        let output = (&gray3 + residual.detach())?;
        Ok(Some(PretextImages { input: gray3, output, target }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::tiny;
    use super::super::Pretrainer;
    use super::*;
    use crate::data::ImageDataset;
    use crate::method::MethodName;
    use candle_core::Device;

    fn colour_shapes(n: usize) -> ImageDataset {
        crate::data::tint_by_class(&crate::data::shapes(n, 0).unwrap()).unwrap()
    }

    #[test]
    fn colorization_rejects_gray_and_learns_colours() {
        let vb = crate::nn::Params::new(0).builder(&Device::Cpu);
        let err = Colorization::new(&tiny(MethodName::Colorization), (1, 28, 28), vb).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("colour") && err.contains("3-channel") && err.contains("(1, 28, 28)"), "{err}");
        let data = colour_shapes(64);
        let mut cfg = tiny(MethodName::Colorization);
        cfg.steps = 30;
        let mut run = Pretrainer::new(cfg.clone(), (3, 28, 28), &Device::Cpu).unwrap();
        // the run's settings name the encoder it built: one (grey) input channel of the colour images
        assert_eq!(run.config().encoder, cfg.encoder.with_in_channels(1));
        run.train_for(30, &data).unwrap();
        let l = &run.history().loss;
        assert!(l.iter().all(|v| v.is_finite()));
        let (first, last) = (l[..5].iter().sum::<f64>() / 5.0, l[25..].iter().sum::<f64>() / 5.0);
        assert!(last < 0.9 * first, "colorization loss did not fall: {first} → {last}");
        assert_eq!(run.features(&data.images.narrow(0, 0, 4).unwrap()).unwrap().dims(), &[4, 8]);
        let shown = run.pretext_images(&data.images.narrow(0, 0, 3).unwrap(), 0).unwrap();
        assert_eq!(shown.input.dims(), &[3, 3, 28, 28]);
        assert_eq!(shown.output.dims(), shown.target.dims());
        assert_eq!(shown.stacked().unwrap().dims(), &[9, 3, 28, 28]);
    }
}
