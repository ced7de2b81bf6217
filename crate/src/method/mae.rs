//! MAE: mask most image patches and reconstruct them with a ViT encoder–decoder.
//!
//! \[0\] K. He, X. Chen, S. Xie, Y. Li, P. Dollár, R. Girshick, "Masked
//!     Autoencoders Are Scalable Vision Learners", 2021, arXiv:2111.06377.
//! \[1\] github.com/facebookresearch/mae (`models_mae.py`).
//!
//! ```text
//! x → N patches;  keep a random 1 − r (mask ratio r = cfg.mae.mask_ratio, 0.75), drop the rest
//! e = ViT(visible patches + their position embeddings)
//! x̂ = decoder(e, mask tokens at the dropped positions)      (B, N, p²C)
//! L = Σ_{b,i} m_{b,i} · mean_j (x̂_{b,i,j} − x_{b,i,j})² / Σ m   m = 1 on dropped patches
//! ```
//!
//! Choices: the target is the raw pixels (`norm_pix_loss = False` of \[1\]; \[0\]
//! reports per-patch-normalised targets give slightly better features), no
//! augmentation (\[0\] uses only crops and flips). The encoder must be a ViT
//! ([`EncoderConfig::Vit`]); [`PretrainConfig::for_method`] sets the default
//! [`crate::nn::VitConfig`] (28×28, patch 7, 16 patches, 4 kept). The decoder
//! has one block of the encoder's width and heads. Features for evaluation
//! are the encoder's pooled output on the whole, unmasked image. Logged
//! metric: the MSE on the visible patches (which the loss ignores).

use super::{Encoder, EncoderConfig, Method, PretextImages, PretrainConfig, StepOutput};
use crate::pretext::unpatchify;
use crate::nn::{masked_patches, patchify, random_keep, MaeDecoder, MaeDecoderConfig};
use crate::rng::SeededRng;
use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

/// MAE: ViT encoder `enc.*` and decoder `dec.*`.
pub struct Mae {
    encoder: Encoder,
    decoder: MaeDecoder,
    patch: usize,
    num_patches: usize,
    mask_ratio: f64,
}

impl Mae {
    /// Builds the ViT encoder and its decoder; errors unless `cfg.encoder` is
    /// a ViT whose `image_size` matches `shape`.
    pub fn new(cfg: &PretrainConfig, shape: (usize, usize, usize), vb: VarBuilder) -> Result<Self> {
        let vit_cfg = match EncoderConfig::with_in_channels(&cfg.encoder, shape.0) {
            EncoderConfig::Vit(v) => v,
            other => candle_core::bail!(
                "mae needs a ViT encoder (EncoderConfig::Vit, as PretrainConfig::for_method(Mae) sets), got {other:?}"
            ),
        };
        if shape.1 != vit_cfg.image_size || shape.2 != vit_cfg.image_size {
            candle_core::bail!("mae: the ViT takes {0}×{0} images, the data has shape {shape:?} (C, H, W)", vit_cfg.image_size);
        }
        let encoder = EncoderConfig::Vit(vit_cfg.clone()).init(vb.pp("enc"))?;
        let decoder = MaeDecoderConfig::for_encoder(&vit_cfg, vit_cfg.dim, cfg.mae.decoder_depth, vit_cfg.heads).init(vb.pp("dec"))?;
        Ok(Self { encoder, decoder, patch: vit_cfg.patch_size, num_patches: vit_cfg.num_patches(), mask_ratio: cfg.mae.mask_ratio })
    }

    /// The reconstruction of `images` from a random `1 − mask_ratio` of their patches and
    /// the mask (1 = dropped), both drawn from `rng`.
    ///
    /// # Shapes
    /// `images (B, C, H, W)` → `(B, N, p²C)` predictions, `(B, N)` mask.
    pub fn reconstruct(&self, images: &Tensor, rng: &mut SeededRng) -> Result<(Tensor, Tensor)> {
        let Encoder::Vit(vit) = &self.encoder else {
            candle_core::bail!("mae: the encoder is not a ViT");
        };
        let b = images.dim(0)?;
        let n = self.num_patches;
        let keep_n = (((1.0 - self.mask_ratio) * n as f64).round() as usize).clamp(1, n.saturating_sub(1).max(1));
        let keep = random_keep(rng, b, n, keep_n, images.device())?;
        let pred = self.decoder.forward(&vit.forward_visible(images, &keep)?, &keep)?;
        Ok((pred, masked_patches(&keep, n)?))
    }
}

impl Method for Mae {
    fn metric_name(&self) -> &'static str {
        "visible-patch MSE"
    }

    fn loss(&mut self, images: &Tensor, rng: &mut SeededRng) -> Result<StepOutput> {
        let (pred, mask) = self.reconstruct(images, rng)?;
        let target = patchify(images, self.patch)?;
        let per_patch = (pred - target)?.sqr()?.mean(D::Minus1)?; // (B, N)
        let masked = mask.sum_all()?;
        let loss = (&per_patch * &mask)?.sum_all()?.div(&masked)?;
        let visible = mask.affine(-1.0, 1.0)?;
        let vis_mse = ((per_patch.detach() * &visible)?.sum_all()?.to_scalar::<f32>()?
            / visible.sum_all()?.to_scalar::<f32>()?.max(1.0)) as f64;
        Ok(StepOutput { loss, metric: vis_mse })
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Input: the image with its dropped patches gray (0.5); output: the
    /// predicted patches with the visible ones pasted back.
    fn pretext_images(&self, images: &Tensor, rng: &mut SeededRng) -> Result<Option<PretextImages>> {
        let (_, _, h, w) = images.dims4()?;
        let (pred, mask) = self.reconstruct(images, rng)?;
        let target = patchify(images, self.patch)?;
        let m = mask.unsqueeze(2)?.broadcast_as(target.shape())?; // 1 = dropped
        let keep = m.affine(-1.0, 1.0)?;
        let input = ((&target * &keep)? + (&m * 0.5)?)?;
        let output = ((&target * &keep)? + (pred.detach() * &m)?)?;
        Ok(Some(PretextImages {
            input: unpatchify(&input, self.patch, (h, w))?,
            output: unpatchify(&output, self.patch, (h, w))?,
            target: images.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{first_last, train_tiny};
    use super::*;
    use crate::method::MethodName;

    #[test]
    fn mae_loss_falls_and_needs_a_vit() {
        let run = train_tiny(MethodName::Mae, 25, |c| c.optimizer = crate::train::OptimizerConfig::adamw(3e-3, 0.05));
        let (first, last) = first_last(&run, 5);
        assert!(last < 0.8 * first, "mae loss did not fall: {first} → {last}");
        assert_eq!(run.method().feature_dim(), 16);
        // the shown input hides the dropped patches; the output keeps the visible ones
        let x = crate::data::shapes(2, 3).unwrap().images;
        let shown = run.pretext_images(&x, 7).unwrap();
        assert_eq!(shown.input.dims(), x.dims());
        let visible = shown.input.ne(0.5f32).unwrap().to_dtype(candle_core::DType::F32).unwrap();
        let off = ((shown.output - &x).unwrap() * visible).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(off < 1e-6, "visible patches must be pasted back unchanged, off by {off}");
        assert!(matches!(PretrainConfig::for_method(MethodName::Mae).encoder, EncoderConfig::Vit(_)));
        let mut cfg = PretrainConfig::for_method(MethodName::Mae);
        cfg.encoder = EncoderConfig::default();
        let err = Mae::new(&cfg, (1, 28, 28), crate::nn::Params::new(0).builder(&candle_core::Device::Cpu))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ViT"), "{err}");
    }
}
