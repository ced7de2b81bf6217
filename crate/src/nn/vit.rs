//! A tiny Vision Transformer and the decoder of a masked autoencoder (MAE).
//!
//! \[0\] A. Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
//!     Image Recognition at Scale", 2020, arXiv:2010.11929, eq. (1)–(4).
//! \[1\] K. He, X. Chen, S. Xie, Y. Li, P. Dollár, R. Girshick, "Masked
//!     Autoencoders Are Scalable Vision Learners", 2021, arXiv:2111.06377;
//!     code <https://github.com/facebookresearch/mae> (`models_mae.py`).
//!
//! ```text
//! z₀ = [x_cls; x¹E; …; xᴺE] + E_pos           xⁱ: the i-th flattened p×p patch
//! z_ℓ = block(z_ℓ₋₁),  ℓ = 1..depth             (pre-norm, see block.rs)
//! h = LN(z_depth)[cls]   or   mean over the patch tokens of LN(z_depth)
//! ```
//!
//! MAE: the encoder sees only the kept patches (`forward_visible`, position
//! embeddings added *before* dropping the masked ones); the decoder appends a
//! shared learnable mask token for every dropped patch, restores the original
//! patch order, adds its own position embeddings and predicts each patch's
//! pixels. The loss (MSE on the masked patches) lives in `loss`.
//!
//! Patch layout follows \[1\]: `patchify` turns `(B, C, H, W)` into
//! `(B, N, p·p·C)` with patches in row-major order and the pixels of a patch
//! ordered `(row, column, channel)`.

use super::block::{transformer_block, TransformerBlock};
use super::ops::LayerNorm;
use super::{expect_rank, linear, Linear};
use crate::rng::SeededRng;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// Cuts images into non-overlapping `patch × patch` squares, as MAE's `patchify`.
///
/// # Shapes
/// `x (B, C, H, W)` with `H`, `W` multiples of `patch` → `(B, (H/p)(W/p), p²·C)`,
/// patches in row-major order, each flattened as `(row, column, channel)`.
pub fn patchify(x: &Tensor, patch: usize) -> Result<Tensor> {
    let &[b, c, h, w] = x.dims() else {
        candle_core::bail!("patchify expects images (B, C, H, W), got shape {:?}", x.dims());
    };
    if patch == 0 || h % patch != 0 || w % patch != 0 {
        candle_core::bail!(
            "patchify: patch size {patch} must be positive and divide the image size {h}×{w} (shape {:?})",
            x.dims()
        );
    }
    let (gh, gw) = (h / patch, w / patch);
    x.reshape(vec![b, c, gh, patch, gw, patch])?.permute(vec![0, 2, 4, 3, 5, 1])?.reshape((
        b,
        gh * gw,
        patch * patch * c,
    ))
}

/// Inverse of [`patchify`] for images of `size = (H, W)`.
///
/// # Shapes
/// `(B, N, p²·C)` → `(B, C, H, W)`, `N = (H/p)(W/p)`.
pub fn unpatchify(x: &Tensor, patch: usize, size: (usize, usize)) -> Result<Tensor> {
    let &[b, n, d] = x.dims() else {
        candle_core::bail!("unpatchify expects patches (B, N, p²·C), got shape {:?}", x.dims());
    };
    let (h, w) = size;
    let pp = patch * patch;
    if patch == 0 || h % patch != 0 || w % patch != 0 || n != (h / patch) * (w / patch) || d % pp.max(1) != 0 || d == 0
    {
        candle_core::bail!(
            "unpatchify: patches of shape {:?} do not tile a {h}×{w} image with patch size {patch}",
            x.dims()
        );
    }
    let (gh, gw, c) = (h / patch, w / patch, d / pp);
    x.reshape(vec![b, gh, gw, patch, patch, c])?.permute(vec![0, 5, 1, 3, 2, 4])?.reshape((b, c, h, w))
}

/// Hyperparameters of [`Vit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Side of the (square) input images.
    pub image_size: usize,
    /// Side of the square patches; must divide `image_size`.
    pub patch_size: usize,
    /// Channels of the input images.
    pub in_channels: usize,
    /// Token width `D`.
    pub dim: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads per block; must divide `dim`.
    pub heads: usize,
    /// MLP hidden width as a multiple of `dim`.
    pub mlp_ratio: f64,
    /// Prepend a learnable \[CLS\] token and pool with it (otherwise: mean of the patch tokens).
    pub cls_token: bool,
}

impl Default for VitConfig {
    fn default() -> Self {
        Self { image_size: 28, patch_size: 7, in_channels: 1, dim: 64, depth: 4, heads: 4, mlp_ratio: 2.0, cls_token: true }
    }
}

impl VitConfig {
    /// Builds the ViT with its parameters under `vb`.
    pub fn init(&self, vb: VarBuilder) -> Result<Vit> {
        vit(self, vb)
    }

    /// Number of patches `N = (image_size / patch_size)²`.
    pub fn num_patches(&self) -> usize {
        let g = self.image_size / self.patch_size.max(1);
        g * g
    }

    /// Length of a flattened patch, `patch_size² · in_channels`.
    pub fn patch_dim(&self) -> usize {
        self.patch_size * self.patch_size * self.in_channels
    }
}

/// A Vision Transformer: linear patch embedding, learnable position embedding,
/// optional \[CLS\] token, pre-norm blocks, final layer norm.
pub struct Vit {
    cfg: VitConfig,
    patch_embed: Linear,
    cls: Option<Tensor>,
    pos: Tensor,
    blocks: Vec<TransformerBlock>,
    norm: LayerNorm,
}

/// Bilinear interpolation weights `(out, in)` with PyTorch's
/// `align_corners = False`: output cell `i` samples the input at
/// `(i + ½)·in/out − ½`, clamped to the first and last cell.
fn bilinear_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let mut m = vec![0f32; n_out * n_in];
    let scale = n_in as f64 / n_out as f64;
    for i in 0..n_out {
        let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        let l = (src - i0 as f64) as f32;
        m[i * n_in + i0] += 1.0 - l;
        m[i * n_in + i1] += l;
    }
    m
}

/// Position embeddings `(1, g·g, D)` of a `g × g` patch grid, resized to a
/// `gh × gw` grid: `(1, gh·gw, D)`. Two matrix products, so the embeddings
/// keep their gradient.
fn resize_position_grid(pos: &Tensor, g: usize, gh: usize, gw: usize) -> Result<Tensor> {
    let d = pos.dim(2)?;
    let dev = pos.device();
    let mh = Tensor::from_vec(bilinear_matrix(g, gh), (gh, g), dev)?.to_dtype(pos.dtype())?;
    let mw = Tensor::from_vec(bilinear_matrix(g, gw), (gw, g), dev)?.to_dtype(pos.dtype())?;
    // rows: (g, g·D) → (gh, g·D); then columns: (gh·D, g) · (g, gw)
    let rows = mh.matmul(&pos.reshape((g, g * d))?)?.reshape((gh, g, d))?;
    let cols = rows.transpose(1, 2)?.contiguous()?.reshape((gh * d, g))?.matmul(&mw.t()?)?;
    cols.reshape((gh, d, gw))?.transpose(1, 2)?.contiguous()?.reshape((1, gh * gw, d))
}

/// Builds a [`Vit`] (parameters `patch_embed`, `cls_token`, `pos_embed`,
/// `blocks.{i}`, `norm` under `vb`; token and position embeddings ~ N(0, 0.02²)).
pub fn vit(cfg: &VitConfig, vb: VarBuilder) -> Result<Vit> {
    let ok = cfg.patch_size > 0
        && cfg.image_size >= cfg.patch_size
        && cfg.image_size.is_multiple_of(cfg.patch_size)
        && cfg.in_channels > 0
        && cfg.depth > 0;
    if !ok {
        candle_core::bail!("VitConfig needs patch_size dividing image_size, in_channels > 0, depth > 0, got {cfg:?}");
    }
    let n = cfg.num_patches();
    let extra = usize::from(cfg.cls_token);
    let init = Init::Randn { mean: 0.0, stdev: 0.02 };
    let cls = if cfg.cls_token { Some(vb.get_with_hints((1, 1, cfg.dim), "cls_token", init)?) } else { None };
    let pos = vb.get_with_hints((1, n + extra, cfg.dim), "pos_embed", init)?;
    let blocks = (0..cfg.depth)
        .map(|i| transformer_block(cfg.dim, cfg.heads, cfg.mlp_ratio, vb.pp(format!("blocks.{i}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(Vit {
        cfg: cfg.clone(),
        patch_embed: linear(cfg.patch_dim(), cfg.dim, vb.pp("patch_embed"))?,
        cls,
        pos,
        blocks,
        norm: LayerNorm::new(cfg.dim, 1e-6, vb.pp("norm"))?,
    })
}

impl Vit {
    /// The configuration.
    pub fn config(&self) -> &VitConfig {
        &self.cfg
    }

    /// Size of the pooled representation ([`Module::forward`]).
    pub fn feature_dim(&self) -> usize {
        self.cfg.dim
    }

    /// Number of patches per image.
    pub fn num_patches(&self) -> usize {
        self.cfg.num_patches()
    }

    /// Patch embeddings plus their position embeddings (no \[CLS\]).
    ///
    /// # Shapes
    /// `(B, C, H, W)` → `(B, N, D)`.
    ///
    /// Images of another size whose sides are multiples of the patch size
    /// (DINO's local crops) get the position embeddings resized to their grid
    /// of patches by bilinear interpolation (as DINO's
    /// `interpolate_pos_encoding`, with PyTorch's `align_corners = False`).
    pub fn embed_patches(&self, x: &Tensor) -> Result<Tensor> {
        expect_rank(x, 4, "Vit", "(B, C, H, W)")?;
        let (s, p) = (self.cfg.image_size, self.cfg.patch_size);
        let (_, c, h, w) = x.dims4()?;
        if c != self.cfg.in_channels || h == 0 || w == 0 || h % p != 0 || w % p != 0 {
            candle_core::bail!(
                "Vit expects (B, {}, H, W) with H and W multiples of the patch size {p} ({s} × {s} when trained), got shape {:?}",
                self.cfg.in_channels,
                x.dims()
            );
        }
        let t = self.patch_embed.forward(&patchify(x, p)?)?;
        let extra = usize::from(self.cls.is_some());
        let pos = self.pos.narrow(1, extra, self.num_patches())?;
        let pos = if h == s && w == s { pos } else { resize_position_grid(&pos, s / p, h / p, w / p)? };
        t.broadcast_add(&pos)
    }

    fn with_cls(&self, t: &Tensor) -> Result<Tensor> {
        match &self.cls {
            Some(cls) => {
                let b = t.dim(0)?;
                let c = (cls + self.pos.narrow(1, 0, 1)?)?.broadcast_as((b, 1, self.cfg.dim))?;
                Tensor::cat(&[&c, t], 1)
            }
            None => Ok(t.clone()),
        }
    }

    /// The blocks and the final norm (the fused attention on the CPU).
    fn run_blocks(&self, t: &Tensor) -> Result<Tensor> {
        let mut t = t.clone();
        for blk in &self.blocks {
            t = blk.forward_masked(&t, None)?;
        }
        self.norm.forward(&t)
    }

    /// The last block's attention weights (the composed attention, which keeps them).
    fn last_attention(&self, t: &Tensor) -> Result<Tensor> {
        let Some((last, rest)) = self.blocks.split_last() else { candle_core::bail!("Vit has no blocks") };
        let mut t = t.clone();
        for blk in rest {
            t = blk.forward_masked(&t, None)?;
        }
        Ok(last.forward_with_attention(&t, None)?.1)
    }

    /// All output tokens after the final layer norm (\[CLS\] first when configured).
    ///
    /// # Shapes
    /// `(B, C, H, W)` → `(B, N + cls, D)`.
    pub fn forward_tokens(&self, x: &Tensor) -> Result<Tensor> {
        let t = self.with_cls(&self.embed_patches(x)?)?;
        self.run_blocks(&t)
    }

    /// The attention weights of the last block, for plotting.
    ///
    /// # Shapes
    /// `(B, C, H, W)` → `(B, heads, N + cls, N + cls)`.
    pub fn attention_maps(&self, x: &Tensor) -> Result<Tensor> {
        let t = self.with_cls(&self.embed_patches(x)?)?;
        self.last_attention(&t)
    }

    /// The MAE encoder path: embeds all patches, adds position embeddings, keeps
    /// only the patches listed in `keep` (per sample, any order, distinct), prepends
    /// \[CLS\] and runs the blocks. The output tokens follow the order of `keep`.
    ///
    /// # Shapes
    /// `x (B, C, H, W)`, `keep (B, K)` (u32 patch indices) → `(B, K + cls, D)`.
    pub fn forward_visible(&self, x: &Tensor, keep: &Tensor) -> Result<Tensor> {
        let t = self.embed_patches(x)?;
        let (b, n, d) = t.dims3()?;
        check_keep(keep, b, n, "Vit::forward_visible")?;
        let k = keep.dim(1)?;
        let idx = keep.to_dtype(DType::U32)?.unsqueeze(2)?.broadcast_as((b, k, d))?.contiguous()?;
        let t = t.contiguous()?.gather(&idx, 1)?;
        self.run_blocks(&self.with_cls(&t)?)
    }

    /// Pools output tokens into one vector per image: the \[CLS\] token, or the mean
    /// of the patch tokens when there is none.
    ///
    /// # Shapes
    /// `(B, L, D)` → `(B, D)`.
    pub fn pool(&self, tokens: &Tensor) -> Result<Tensor> {
        if self.cls.is_some() {
            tokens.narrow(1, 0, 1)?.squeeze(1)
        } else {
            tokens.mean(1)
        }
    }
}

impl Module for Vit {
    /// The pooled representation (\[CLS\] token or mean of the patch tokens).
    ///
    /// # Shapes
    /// `(B, C, H, W)` → `(B, D)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.pool(&self.forward_tokens(x)?)
    }
}

/// Checks `keep (B, K)`: distinct indices `< n`, `0 < K <= n`; returns them on the host.
fn check_keep(keep: &Tensor, b: usize, n: usize, what: &str) -> Result<Vec<Vec<u32>>> {
    let ok = matches!(keep.dims(), &[kb, k] if kb == b && k > 0 && k <= n);
    if !ok {
        candle_core::bail!("{what}: keep must be (B, K) = ({b}, K) with 0 < K <= {n}, got {:?}", keep.dims());
    }
    let rows: Vec<Vec<u32>> = keep.to_dtype(DType::U32)?.to_vec2()?;
    for r in &rows {
        let mut seen = vec![false; n];
        for &i in r {
            let i = i as usize;
            if i >= n || seen[i] {
                candle_core::bail!("{what}: keep indices must be distinct and < {n}, got row {r:?}");
            }
            seen[i] = true;
        }
    }
    Ok(rows)
}

/// Draws, for each of `batch` images, `keep` distinct patch indices out of
/// `num_patches` uniformly at random (MAE's random masking keeps `(1 − ratio)·N`).
///
/// # Shapes
/// → `(batch, keep)` u32.
pub fn random_keep(rng: &mut SeededRng, batch: usize, num_patches: usize, keep: usize, dev: &Device) -> Result<Tensor> {
    if keep == 0 || keep > num_patches {
        candle_core::bail!("random_keep: need 0 < keep <= num_patches, got keep {keep}, num_patches {num_patches}");
    }
    let mut v = Vec::with_capacity(batch * keep);
    for _ in 0..batch {
        v.extend(rng.choose(num_patches, keep)?.into_iter().map(|i| i as u32));
    }
    Tensor::from_vec(v, (batch, keep), dev)
}

/// The binary mask `(B, N)` f32: 1 where a patch was dropped (not in `keep`), 0 where kept.
///
/// # Shapes
/// `keep (B, K)` → `(B, N)`.
pub fn masked_patches(keep: &Tensor, num_patches: usize) -> Result<Tensor> {
    let b = keep.dim(0)?;
    let rows = check_keep(keep, b, num_patches, "masked_patches")?;
    let mut m = vec![1f32; b * num_patches];
    for (bi, r) in rows.iter().enumerate() {
        for &i in r {
            m[bi * num_patches + i as usize] = 0.0;
        }
    }
    Tensor::from_vec(m, (b, num_patches), keep.device())
}

/// Hyperparameters of [`MaeDecoder`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaeDecoderConfig {
    /// Width of the encoder's tokens.
    pub encoder_dim: usize,
    /// Decoder width.
    pub dim: usize,
    /// Number of decoder blocks.
    pub depth: usize,
    /// Decoder attention heads.
    pub heads: usize,
    /// Decoder MLP ratio.
    pub mlp_ratio: f64,
    /// Number of patches `N` of the full image.
    pub num_patches: usize,
    /// Pixels per patch, `p·p·C` (the prediction size).
    pub patch_dim: usize,
    /// Whether the encoder output starts with a \[CLS\] token (dropped before predicting).
    pub cls_token: bool,
}

impl Default for MaeDecoderConfig {
    fn default() -> Self {
        Self { encoder_dim: 64, dim: 32, depth: 1, heads: 4, mlp_ratio: 2.0, num_patches: 16, patch_dim: 49, cls_token: true }
    }
}

impl MaeDecoderConfig {
    /// The decoder matching an encoder configuration, with decoder width `dim` and `depth` blocks.
    pub fn for_encoder(enc: &VitConfig, dim: usize, depth: usize, heads: usize) -> Self {
        Self {
            encoder_dim: enc.dim,
            dim,
            depth,
            heads,
            mlp_ratio: enc.mlp_ratio,
            num_patches: enc.num_patches(),
            patch_dim: enc.patch_dim(),
            cls_token: enc.cls_token,
        }
    }

    /// Builds the decoder with its parameters under `vb`.
    pub fn init(&self, vb: VarBuilder) -> Result<MaeDecoder> {
        mae_decoder(self, vb)
    }
}

/// The MAE decoder: embeds the visible encoder tokens, inserts a mask token at
/// every dropped position, and predicts each patch's pixels.
pub struct MaeDecoder {
    cfg: MaeDecoderConfig,
    embed: Linear,
    mask_token: Tensor,
    pos: Tensor,
    blocks: Vec<TransformerBlock>,
    norm: LayerNorm,
    pred: Linear,
}

/// Builds a [`MaeDecoder`] (parameters `embed`, `mask_token`, `pos_embed`, `blocks.{i}`, `norm`, `pred`).
pub fn mae_decoder(cfg: &MaeDecoderConfig, vb: VarBuilder) -> Result<MaeDecoder> {
    if cfg.num_patches == 0 || cfg.patch_dim == 0 || cfg.encoder_dim == 0 {
        candle_core::bail!("MaeDecoderConfig needs num_patches, patch_dim, encoder_dim > 0, got {cfg:?}");
    }
    let init = Init::Randn { mean: 0.0, stdev: 0.02 };
    let blocks = (0..cfg.depth)
        .map(|i| transformer_block(cfg.dim, cfg.heads, cfg.mlp_ratio, vb.pp(format!("blocks.{i}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(MaeDecoder {
        cfg: cfg.clone(),
        embed: linear(cfg.encoder_dim, cfg.dim, vb.pp("embed"))?,
        mask_token: vb.get_with_hints((1, 1, cfg.dim), "mask_token", init)?,
        pos: vb.get_with_hints((1, cfg.num_patches, cfg.dim), "pos_embed", init)?,
        blocks,
        norm: LayerNorm::new(cfg.dim, 1e-6, vb.pp("norm"))?,
        pred: linear(cfg.dim, cfg.patch_dim, vb.pp("pred"))?,
    })
}

impl MaeDecoder {
    /// Size of each prediction (pixels per patch).
    pub fn out_dim(&self) -> usize {
        self.cfg.patch_dim
    }

    /// Predicts the pixels of every patch (kept and masked) from the encoder's
    /// output on the kept patches ([`Vit::forward_visible`] with the same `keep`).
    ///
    /// # Shapes
    /// `encoded (B, K + cls, D_enc)`, `keep (B, K)` → `(B, N, patch_dim)`.
    pub fn forward(&self, encoded: &Tensor, keep: &Tensor) -> Result<Tensor> {
        let n = self.cfg.num_patches;
        let extra = usize::from(self.cfg.cls_token);
        let (b, l, de) = match encoded.dims() {
            &[b, l, de] => (b, l, de),
            dims => candle_core::bail!("MaeDecoder expects encoded (B, K + cls, D), got shape {dims:?}"),
        };
        let rows = check_keep(keep, b, n, "MaeDecoder")?;
        let k = keep.dim(1)?;
        if l != k + extra || de != self.cfg.encoder_dim {
            candle_core::bail!(
                "MaeDecoder expects encoded (B, {}, {}) for keep {:?}, got shape {:?}",
                k + extra,
                self.cfg.encoder_dim,
                keep.dims(),
                encoded.dims()
            );
        }
        // ids_restore as in [1]: position i of the image is slot restore[i] of [kept…, masked…].
        let mut restore = vec![0u32; b * n];
        for (bi, r) in rows.iter().enumerate() {
            let mut kept = vec![false; n];
            for (slot, &i) in r.iter().enumerate() {
                restore[bi * n + i as usize] = slot as u32;
                kept[i as usize] = true;
            }
            let mut slot = k;
            for (i, _) in kept.iter().enumerate().filter(|(_, &kk)| !kk) {
                restore[bi * n + i] = slot as u32;
                slot += 1;
            }
        }
        let d = self.cfg.dim;
        let vis = self.embed.forward(&encoded.narrow(1, extra, k)?)?;
        let full = if k < n {
            Tensor::cat(&[&vis, &self.mask_token.broadcast_as((b, n - k, d))?.contiguous()?], 1)?
        } else {
            vis
        };
        let idx = Tensor::from_vec(restore, (b, n, 1), encoded.device())?.broadcast_as((b, n, d))?.contiguous()?;
        let mut t = full.contiguous()?.gather(&idx, 1)?.broadcast_add(&self.pos)?;
        for blk in &self.blocks {
            t = blk.forward(&t)?;
        }
        self.pred.forward(&self.norm.forward(&t)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Params;

    fn tiny() -> VitConfig {
        VitConfig { image_size: 8, patch_size: 4, in_channels: 2, dim: 16, depth: 2, heads: 2, mlp_ratio: 2.0, cls_token: true }
    }

    /// Reference: torch 2.15,
    /// ```python
    /// import torch, torch.nn.functional as F
    /// g = torch.sin(torch.arange(32, dtype=torch.float32).reshape(1, 4, 4, 2).permute(0, 3, 1, 2) * 0.7)
    /// F.interpolate(g, size=(2, 3), mode='bilinear', align_corners=False).permute(0, 2, 3, 1).reshape(-1)
    /// ```
    #[test]
    fn position_grid_resizes_like_torch_bilinear() {
        let dev = Device::Cpu;
        let v: Vec<f32> = (0..32).map(|i| (i as f32 * 0.7).sin()).collect();
        let pos = Tensor::from_vec(v, (1, 16, 2), &dev).unwrap();
        let got: Vec<f32> = resize_position_grid(&pos, 4, 2, 3).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want = [
            -0.12615807f32, 0.42971116, 0.7080059, 0.45492333, -0.41672415, -0.77853566, -0.82541114, -0.6040687, 0.27534002,
            0.6396264, 0.6142869, 0.11361843,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?}");
        }
        // the same size is the identity
        let same = resize_position_grid(&pos, 4, 4, 4).unwrap();
        assert!((same - &pos).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-6);
    }

    #[test]
    fn a_vit_takes_smaller_crops_and_trains_their_position_embeddings() {
        let dev = Device::Cpu;
        let params = crate::nn::Params::new(0);
        let vit = VitConfig::default().init(params.builder(&dev)).unwrap();
        let small = crate::rng::SeededRng::new(1).randn((2, 1, 14, 14), 1.0, &dev).unwrap();
        let y = vit.forward(&small).unwrap();
        assert_eq!(y.dims(), &[2, 64]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let pos = params.named_trainable_vars().into_iter().find(|(n, _)| n == "pos_embed").unwrap().1;
        assert!(g.get(pos.as_tensor()).is_some());
        let err = vit.forward(&crate::rng::SeededRng::new(1).randn((2, 1, 15, 14), 1.0, &dev).unwrap()).unwrap_err().to_string();
        assert!(err.contains("multiples of the patch size 7") && err.contains("[2, 1, 15, 14]"), "{err}");
    }

    #[test]
    fn vit_patchify_roundtrip_and_layout() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 2. * 2. * 4. * 6., &dev).unwrap().reshape((2, 2, 4, 6)).unwrap();
        let p = patchify(&x, 2).unwrap();
        assert_eq!(p.dims(), &[2, 6, 8]);
        // first patch of image 0: pixels (0,0),(0,1),(1,0),(1,1), channels interleaved
        let first: Vec<f32> = p.get(0).unwrap().get(0).unwrap().to_vec1().unwrap();
        assert_eq!(first, vec![0., 24., 1., 25., 6., 30., 7., 31.]);
        let back = unpatchify(&p, 2, (4, 6)).unwrap();
        assert_eq!(back.flatten_all().unwrap().to_vec1::<f32>().unwrap(), x.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert!(patchify(&x, 4).is_err());
        assert!(unpatchify(&p, 2, (4, 4)).is_err());
    }

    #[test]
    fn vit_shapes_pooling_attention_and_visible_path() {
        let dev = Device::Cpu;
        let p = Params::new(0);
        let cfg = tiny();
        let v = cfg.init(p.builder(&dev).pp("vit")).unwrap();
        let mut rng = SeededRng::new(2);
        let x = rng.randn(&[3, 2, 8, 8], 1.0, &dev).unwrap();
        assert_eq!(v.forward(&x).unwrap().dims(), &[3, 16]);
        let toks = v.forward_tokens(&x).unwrap();
        assert_eq!(toks.dims(), &[3, 5, 16]);
        let a = v.attention_maps(&x).unwrap();
        assert_eq!(a.dims(), &[3, 2, 5, 5]);
        // keeping every patch in order reproduces forward_tokens
        let all = Tensor::new(&[[0u32, 1, 2, 3]; 3], &dev).unwrap();
        let vis = v.forward_visible(&x, &all).unwrap();
        let d = (vis - &toks).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "{d}");
        let keep = random_keep(&mut rng, 3, 4, 2, &dev).unwrap();
        let vis = v.forward_visible(&x, &keep).unwrap();
        assert_eq!(vis.dims(), &[3, 3, 16]);
        let m = masked_patches(&keep, 4).unwrap();
        assert_eq!(m.sum_all().unwrap().to_scalar::<f32>().unwrap(), 6.0);
        let dec = MaeDecoderConfig::for_encoder(&cfg, 8, 1, 2).init(p.builder(&dev).pp("dec")).unwrap();
        assert_eq!(dec.forward(&vis, &keep).unwrap().dims(), &[3, 4, 32]);
        // errors name the shapes
        let bad = Tensor::new(&[[0u32, 0]; 3], &dev).unwrap();
        assert!(v.forward_visible(&x, &bad).unwrap_err().to_string().contains("distinct"));
        assert!(v.forward(&rng.randn(&[3, 1, 8, 8], 1.0, &dev).unwrap()).unwrap_err().to_string().contains("[3, 1, 8, 8]"));
        assert!(dec.forward(&vis, &all).is_err());
        // without CLS: mean pooling
        let v2 = VitConfig { cls_token: false, ..cfg }.init(Params::new(0).builder(&dev)).unwrap();
        assert_eq!(v2.forward_tokens(&x).unwrap().dims(), &[3, 4, 16]);
        assert_eq!(v2.forward(&x).unwrap().dims(), &[3, 16]);
    }

    #[test]
    fn vit_mae_decoder_restores_patch_order() {
        // with a decoder whose blocks are absent, the prediction at a position depends only on
        // that position's token: visible tokens must land where `keep` says.
        let dev = Device::Cpu;
        let cfg = MaeDecoderConfig { encoder_dim: 4, dim: 4, depth: 0, heads: 1, mlp_ratio: 1.0, num_patches: 5, patch_dim: 3, cls_token: false };
        let dec = cfg.init(Params::new(1).builder(&dev)).unwrap();
        let enc = SeededRng::new(4).randn(&[1, 2, 4], 1.0, &dev).unwrap();
        let a = dec.forward(&enc, &Tensor::new(&[[3u32, 1]], &dev).unwrap()).unwrap();
        let b = dec.forward(&enc.flip_rows(), &Tensor::new(&[[1u32, 3]], &dev).unwrap()).unwrap();
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-6, "{d}");
    }

    trait FlipRows {
        fn flip_rows(&self) -> Tensor;
    }
    impl FlipRows for Tensor {
        fn flip_rows(&self) -> Tensor {
            let idx = Tensor::new(&[1u32, 0], self.device()).unwrap();
            self.index_select(&idx, 1).unwrap()
        }
    }
}
