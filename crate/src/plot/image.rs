//! Image grids: PNG tiles with captions, as HTML.

use super::{emit_or_report, html_escape};
use base64::Engine;
use candle_core::{DType, Result, Tensor};
use std::path::Path;

/// Encodes an 8-bit grayscale or RGB image as PNG.
pub(crate) fn encode_png(pixels: &[u8], width: usize, height: usize, rgb: bool) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(if rgb { png::ColorType::Rgb } else { png::ColorType::Grayscale });
        enc.set_depth(png::BitDepth::Eight);
        let err = |e: png::EncodingError| candle_core::Error::Msg(format!("PNG encoding failed: {e}"));
        let mut w = enc.write_header().map_err(err)?;
        w.write_image_data(pixels).map_err(err)?;
    }
    Ok(out)
}

/// A grid of images with optional captions.
///
/// Shown in Jupyter as HTML: each image a PNG tile (scaled up without
/// smoothing), its caption underneath.
///
/// ```
/// let d = sslab::data::shapes(4, 0)?;
/// let grid = sslab::plot::ImageGrid::new(&d.images)?.captions(d.labels.iter().map(|l| d.class_names[*l as usize].clone()));
/// assert!(grid.to_html()?.contains("data:image/png;base64,"));
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ImageGrid {
    /// `(N, C, H, W)` with C = 1 or 3, values in [0, 1] (clamped).
    images: Vec<Vec<u8>>,
    channels: usize,
    height: usize,
    width: usize,
    captions: Vec<String>,
    title: String,
    columns: usize,
    scale: usize,
}

impl ImageGrid {
    /// A grid of the images in `x`: `(N, C, H, W)` or `(N, H, W)`, C = 1 or 3, values in [0, 1].
    pub fn new(x: &Tensor) -> Result<Self> {
        let x = match x.rank() {
            3 => x.unsqueeze(1)?,
            4 => x.clone(),
            _ => candle_core::bail!("ImageGrid expects (N, C, H, W) or (N, H, W), got shape {:?}", x.dims()),
        };
        let (n, c, h, w) = x.dims4()?;
        if c != 1 && c != 3 {
            candle_core::bail!("ImageGrid expects 1 or 3 channels, got shape {:?}", x.dims());
        }
        // To (N, H, W, C) bytes.
        let bytes: Vec<u8> = x
            .to_device(&candle_core::Device::Cpu)?
            .to_dtype(DType::F32)?
            .permute((0, 2, 3, 1))?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        let per = c * h * w;
        let images = (0..n).map(|i| bytes[i * per..(i + 1) * per].to_vec()).collect();
        Ok(Self { images, channels: c, height: h, width: w, captions: vec![], title: String::new(), columns: 8, scale: 3 })
    }

    /// Sets one caption per image (missing ones stay empty).
    pub fn captions<S: ToString>(mut self, captions: impl IntoIterator<Item = S>) -> Self {
        self.captions = captions.into_iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets a title above the grid.
    pub fn title(mut self, title: &str) -> Self {
        self.title = title.into();
        self
    }

    /// Images per row (default 8).
    pub fn columns(mut self, columns: usize) -> Self {
        self.columns = columns.max(1);
        self
    }

    /// Upscaling factor of each tile (default 3).
    pub fn scale(mut self, scale: usize) -> Self {
        self.scale = scale.clamp(1, 16);
        self
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// `true` when the grid has no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    fn tile_png(&self, i: usize) -> Result<Vec<u8>> {
        let (s, c) = (self.scale, self.channels);
        let (h, w) = (self.height * s, self.width * s);
        let mut px = vec![0u8; h * w * c];
        for y in 0..h {
            for x in 0..w {
                let src = ((y / s) * self.width + x / s) * c;
                let dst = (y * w + x) * c;
                px[dst..dst + c].copy_from_slice(&self.images[i][src..src + c]);
            }
        }
        encode_png(&px, w, h, c == 3)
    }

    /// The grid as an HTML fragment with embedded PNG tiles.
    pub fn to_html(&self) -> Result<String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut s = String::from("<div class=\"sslab-grid\">");
        if !self.title.is_empty() {
            s += &format!("<div style=\"font-weight:bold;margin:4px 0\">{}</div>", html_escape(&self.title));
        }
        s += &format!(
            "<div style=\"display:grid;grid-template-columns:repeat({},max-content);gap:6px 8px;align-items:start\">",
            self.columns.min(self.len().max(1))
        );
        for i in 0..self.len() {
            let cap = self.captions.get(i).map_or(String::new(), |c| html_escape(c));
            s += &format!(
                "<figure style=\"margin:0;text-align:center\"><img alt=\"{cap}\" style=\"image-rendering:pixelated;border:1px solid #ccc\" \
                 width=\"{}\" height=\"{}\" src=\"data:image/png;base64,{}\"/><figcaption style=\"font-size:11px;max-width:{}px\">{cap}</figcaption></figure>",
                self.width * self.scale,
                self.height * self.scale,
                b64.encode(self.tile_png(i)?),
                self.width * self.scale + 20,
            );
        }
        Ok(s + "</div></div>")
    }

    /// The grid as one PNG (tiles separated by a 2-pixel white border, no captions).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let (s, c, gap) = (self.scale, self.channels, 2);
        let cols = self.columns.min(self.len().max(1));
        let rows = self.len().div_ceil(cols).max(1);
        let (th, tw) = (self.height * s, self.width * s);
        let (h, w) = (rows * (th + gap) + gap, cols * (tw + gap) + gap);
        let mut px = vec![255u8; h * w * c];
        for i in 0..self.len() {
            let (oy, ox) = (gap + (i / cols) * (th + gap), gap + (i % cols) * (tw + gap));
            for y in 0..th {
                for x in 0..tw {
                    let src = ((y / s) * self.width + x / s) * c;
                    let dst = ((oy + y) * w + ox + x) * c;
                    px[dst..dst + c].copy_from_slice(&self.images[i][src..src + c]);
                }
            }
        }
        encode_png(&px, w, h, c == 3)
    }

    /// Writes the grid to a `.png` file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if path.extension().is_none_or(|e| e != "png") {
            candle_core::bail!("{}: an image grid saves as .png", path.display());
        }
        let tmp = path.with_extension("png.tmp");
        std::fs::write(&tmp, self.to_png()?)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| candle_core::Error::Msg(format!("cannot write {}: {e}", path.display())))
    }

    /// Shows the grid in Jupyter (evcxr).
    pub fn evcxr_display(&self) {
        emit_or_report("text/html", self.to_html());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn image_grid_encodes_decodable_pngs() {
        let x = Tensor::arange(0f32, 2.0 * 3.0 * 4.0, &Device::Cpu).unwrap().reshape((2, 3, 4)).unwrap() / 24.0;
        let g = ImageGrid::new(&x.unwrap()).unwrap().scale(2).columns(1).captions(["a", "b<"]);
        let png_bytes = g.to_png().unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let reader = dec.read_info().unwrap();
        let info = reader.info();
        // 1 column, 2 rows of 3×4 tiles scaled ×2 with 2-pixel gaps
        assert_eq!((info.width, info.height), (2 + 8 + 2, 2 + 2 * (6 + 2)));
        let html = g.to_html().unwrap();
        assert_eq!(html.matches("data:image/png;base64,").count(), 2);
        assert!(html.contains("b&lt;"));
        let bad = Tensor::zeros((2, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(ImageGrid::new(&bad).unwrap_err().to_string().contains("1 or 3 channels"));
    }
}
