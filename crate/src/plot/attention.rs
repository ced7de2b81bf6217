//! Attention maps over the images they look at: a ViT's [CLS] attention as
//! a colour overlay per patch.

use super::heatmap::sequential_color;
use super::ImageGrid;
use candle_core::{DType, Device, Result, Tensor};

/// Where a \[CLS\] token attends: the image, its attention over patches as a
/// heat map (viridis, min–max normalised), and the two blended, as a
/// three-tile [`ImageGrid`] captioned "image", "attention", "overlay".
///
/// `attn` holds one weight per patch in row-major patch order (drop the
/// \[CLS\]-to-\[CLS\] entry first); each weight fills its `patch × patch` square.
///
/// # Shapes
/// `image (C, H, W)`, C = 1 or 3, values in [0, 1], `H` and `W` multiples of
/// `patch`; `attn (H/patch · W/patch,)`.
pub fn attention_overlay(image: &Tensor, attn: &Tensor, patch: usize) -> Result<ImageGrid> {
    let tiles = overlay_tiles(image, attn, patch)?;
    Ok(ImageGrid::new(&tiles)?.captions(["image", "attention", "overlay"]).columns(3))
}

/// [`attention_overlay`] for a batch: one column per image, with the images
/// in the first row, their attention heat maps in the second and the blend
/// in the third (each heat map min–max normalised on its own).
///
/// # Shapes
/// `images (B, C, H, W)`, `attn (B, H/patch · W/patch)` (e.g. from
/// [`crate::method::Pretrainer::cls_attention`]).
pub fn attention_grid(images: &Tensor, attn: &Tensor, patch: usize) -> Result<ImageGrid> {
    let b = match images.dims() {
        &[b, _, _, _] if b > 0 => b,
        d => candle_core::bail!("attention_grid expects images (B, C, H, W) with B > 0, got {d:?}"),
    };
    if attn.rank() != 2 || attn.dim(0)? != b {
        candle_core::bail!("attention_grid: {b} images need attention of shape ({b}, patches), got {:?}", attn.dims());
    }
    let tiles: Vec<Tensor> = (0..b).map(|i| overlay_tiles(&images.get(i)?, &attn.get(i)?, patch)).collect::<Result<_>>()?;
    // (B, 3, C, H, W) → (3, B, C, H, W): row k holds tile k of every image
    let grid = Tensor::stack(&tiles, 0)?.transpose(0, 1)?.contiguous()?.flatten_to(1)?;
    let captions = (0..3 * b).map(|i| if i % b == 0 { ["image", "attention", "overlay"][i / b] } else { "" });
    Ok(ImageGrid::new(&grid)?.captions(captions).columns(b))
}

/// The image, its heat map and their blend, `(3, 3, H, W)`.
fn overlay_tiles(image: &Tensor, attn: &Tensor, patch: usize) -> Result<Tensor> {
    let (c, h, w) = match image.dims() {
        &[c, h, w] if (c == 1 || c == 3) && h > 0 && w > 0 => (c, h, w),
        d => candle_core::bail!("attention_overlay expects an image (C, H, W) with C = 1 or 3, got {d:?}"),
    };
    if patch == 0 || h % patch != 0 || w % patch != 0 {
        candle_core::bail!("attention_overlay: image {:?} is not divisible into {patch} × {patch} patches", image.dims());
    }
    let (ph, pw) = (h / patch, w / patch);
    if attn.dims() != [ph * pw] {
        candle_core::bail!(
            "attention_overlay: image {:?} with patch {patch} has {ph} × {pw} = {} patches, but attn has shape {:?} \
             (pass the [CLS] row without its [CLS] column)",
            image.dims(),
            ph * pw,
            attn.dims()
        );
    }
    let a: Vec<f32> = attn.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.to_vec1()?;
    if let Some(i) = a.iter().position(|v| !v.is_finite()) {
        candle_core::bail!("attention_overlay: non-finite weight {} at patch {i} (row {}, column {})", a[i], i / pw, i % pw);
    }
    let lo = a.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let img = image.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.clamp(0f32, 1f32)?;
    let img = if c == 1 { img.repeat((3, 1, 1))? } else { img };
    let heat: Vec<f32> = {
        let mut v = vec![0f32; 3 * h * w];
        for y in 0..h {
            for x in 0..w {
                let val = a[(y / patch) * pw + x / patch];
                let t = if hi > lo { f64::from((val - lo) / (hi - lo)) } else { 0.5 };
                let (r, g, b) = sequential_color(t);
                for (k, ch) in [r, g, b].into_iter().enumerate() {
                    v[k * h * w + y * w + x] = f32::from(ch) / 255.0;
                }
            }
        }
        v
    };
    let heat = Tensor::from_vec(heat, (3, h, w), &Device::Cpu)?;
    let overlay = ((&img * 0.5)? + (&heat * 0.5)?)?;
    Tensor::stack(&[&img, &heat, &overlay], 0)
}
