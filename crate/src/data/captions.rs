//! Paired images and captions, generated in code, for CLIP (section 25.5).
//!
//! Each 28×28 colour image shows one shape with four attributes — its kind,
//! colour, size and position — and its caption names all four: "a small red
//! triangle on the left". 4 × 4 × 2 × 4 = 128 distinct captions. Every image
//! is drawn with a jittered position, size and colour and a little pixel
//! noise, all from the seed, so two images with the same caption differ.

use crate::rng::SeededRng;
use candle_core::{Device, Result, Tensor};
use std::fmt;

/// The kinds of shape, in label order.
pub const CAPTION_SHAPES: [&str; 4] = ["circle", "square", "triangle", "cross"];
/// The colours, in label order.
pub const CAPTION_COLOURS: [&str; 4] = ["red", "green", "blue", "yellow"];
/// The sizes, in label order.
pub const CAPTION_SIZES: [&str; 2] = ["small", "large"];
/// The positions as the caption words them, in label order.
pub const CAPTION_POSITIONS: [&str; 4] = ["on the left", "on the right", "at the top", "at the bottom"];

const RGB: [[f32; 3]; 4] = [[0.9, 0.15, 0.1], [0.15, 0.8, 0.2], [0.15, 0.35, 0.95], [0.95, 0.85, 0.1]];

/// One of the four attributes a caption names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// circle, square, triangle, cross.
    Shape,
    /// red, green, blue, yellow.
    Colour,
    /// small, large.
    Size,
    /// left, right, top, bottom.
    Position,
}

impl Attribute {
    /// All four, in caption order of importance (shape first).
    pub const ALL: [Attribute; 4] = [Attribute::Shape, Attribute::Colour, Attribute::Size, Attribute::Position];

    /// The values' words, in label order.
    pub fn values(self) -> &'static [&'static str] {
        match self {
            Attribute::Shape => &CAPTION_SHAPES,
            Attribute::Colour => &CAPTION_COLOURS,
            Attribute::Size => &CAPTION_SIZES,
            Attribute::Position => &CAPTION_POSITIONS,
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Attribute::Shape => "shape",
            Attribute::Colour => "colour",
            Attribute::Size => "size",
            Attribute::Position => "position",
        })
    }
}

/// What one image shows, as indices into the attribute tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// Index into [`CAPTION_SHAPES`].
    pub shape: usize,
    /// Index into [`CAPTION_COLOURS`].
    pub colour: usize,
    /// Index into [`CAPTION_SIZES`].
    pub size: usize,
    /// Index into [`CAPTION_POSITIONS`].
    pub position: usize,
}

impl Attributes {
    /// Every combination (128), shape slowest, position fastest.
    pub fn all() -> Vec<Attributes> {
        let mut v = Vec::with_capacity(128);
        for shape in 0..4 {
            for colour in 0..4 {
                for size in 0..2 {
                    for position in 0..4 {
                        v.push(Attributes { shape, colour, size, position });
                    }
                }
            }
        }
        v
    }

    /// The captions of [`all`](Self::all), in the same order.
    pub fn all_captions() -> Vec<String> {
        Self::all().iter().map(Attributes::caption).collect()
    }

    /// The value of one attribute.
    pub fn get(&self, a: Attribute) -> usize {
        match a {
            Attribute::Shape => self.shape,
            Attribute::Colour => self.colour,
            Attribute::Size => self.size,
            Attribute::Position => self.position,
        }
    }

    /// The same attributes with one changed.
    pub fn with(mut self, a: Attribute, value: usize) -> Self {
        match a {
            Attribute::Shape => self.shape = value,
            Attribute::Colour => self.colour = value,
            Attribute::Size => self.size = value,
            Attribute::Position => self.position = value,
        }
        self
    }

    /// "a small red triangle on the left".
    pub fn caption(&self) -> String {
        format!(
            "a {} {} {} {}",
            CAPTION_SIZES[self.size], CAPTION_COLOURS[self.colour], CAPTION_SHAPES[self.shape], CAPTION_POSITIONS[self.position]
        )
    }

    /// Parses a caption of the form [`caption`](Self::caption) writes.
    ///
    /// # Errors
    /// Naming the caption and the first word that does not fit.
    pub fn parse(caption: &str) -> Result<Self> {
        let words: Vec<&str> = caption.split_whitespace().collect();
        let find = |table: &[&str], w: &str, what: &str| {
            table.iter().position(|t| *t == w).ok_or_else(|| {
                candle_core::Error::Msg(format!("caption {caption:?}: {w:?} is not a {what} (one of {})", table.join(", ")))
            })
        };
        if words.len() != 7 || words[0] != "a" {
            candle_core::bail!("caption {caption:?}: expected \"a SIZE COLOUR SHAPE on/at the POSITION\" (7 words)");
        }
        let position = find(&CAPTION_POSITIONS, &words[4..].join(" "), "position")?;
        Ok(Self { size: find(&CAPTION_SIZES, words[1], "size")?, colour: find(&CAPTION_COLOURS, words[2], "colour")?, shape: find(&CAPTION_SHAPES, words[3], "shape")?, position })
    }
}

/// Images `(N, 3, 28, 28)` in `[0, 1]` on the CPU with what each shows.
#[derive(Clone, Debug)]
pub struct CaptionedImages {
    /// The images.
    pub images: Tensor,
    /// What image `i` shows; its caption is `attributes[i].caption()`.
    pub attributes: Vec<Attributes>,
    /// Where the images came from.
    pub name: String,
}

impl CaptionedImages {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.attributes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    /// The caption of every image.
    pub fn captions(&self) -> Vec<String> {
        self.attributes.iter().map(Attributes::caption).collect()
    }

    /// The value of `attribute` for every image (a class label).
    pub fn labels(&self, attribute: Attribute) -> Vec<u32> {
        self.attributes.iter().map(|a| a.get(attribute) as u32).collect()
    }

    /// The pairs at `indices`, in that order.
    ///
    /// # Errors
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            candle_core::bail!("{}: index {bad} is out of range for {} captioned images", self.name, self.len());
        }
        let idx = Tensor::from_vec(indices.iter().map(|&i| i as u32).collect::<Vec<_>>(), indices.len(), &Device::Cpu)?;
        Ok(Self {
            images: self.images.index_select(&idx, 0)?,
            attributes: indices.iter().map(|&i| self.attributes[i]).collect(),
            name: self.name.clone(),
        })
    }

    /// The pairs for which `keep` is true, in order.
    pub fn filter(&self, keep: impl Fn(&Attributes) -> bool) -> Result<Self> {
        let idx: Vec<usize> = (0..self.len()).filter(|&i| keep(&self.attributes[i])).collect();
        self.select(&idx)
    }

    /// The first `n` pairs.
    pub fn take(&self, n: usize) -> Result<Self> {
        self.select(&(0..n.min(self.len())).collect::<Vec<_>>())
    }
}

/// A (shape, colour) pair by name, e.g. `("triangle", "red")`, as indices.
///
/// # Errors
/// Naming a word that is not a shape or a colour.
pub fn shape_colour(shape: &str, colour: &str) -> Result<(usize, usize)> {
    let s = CAPTION_SHAPES.iter().position(|x| *x == shape);
    let c = CAPTION_COLOURS.iter().position(|x| *x == colour);
    match (s, c) {
        (Some(s), Some(c)) => Ok((s, c)),
        (None, _) => candle_core::bail!("{shape:?} is not a shape (one of {})", CAPTION_SHAPES.join(", ")),
        (_, None) => candle_core::bail!("{colour:?} is not a colour (one of {})", CAPTION_COLOURS.join(", ")),
    }
}

/// `n` captioned images with attributes drawn uniformly (each caption about
/// equally often), from `seed`.
///
/// ```
/// let d = sslab::data::captioned_shapes(4, 0)?;
/// assert_eq!(d.images.dims(), &[4, 3, 28, 28]);
/// assert!(d.captions()[0].starts_with("a "));
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// # Errors
/// If `n` is 0.
pub fn captioned_shapes(n: usize, seed: u64) -> Result<CaptionedImages> {
    if n == 0 {
        candle_core::bail!("captioned_shapes: need at least one image");
    }
    let mut rng = SeededRng::new(seed).fork("captioned-shapes");
    let all = Attributes::all();
    // each combination about n/128 times: a shuffled cycle through all of them
    let mut order: Vec<Attributes> = Vec::with_capacity(n);
    while order.len() < n {
        let mut cycle = all.clone();
        rng.shuffle(&mut cycle);
        order.extend(cycle.into_iter().take(n - order.len()));
    }
    let mut pixels = Vec::with_capacity(n * 3 * 28 * 28);
    for a in &order {
        pixels.extend(draw(a, &mut rng));
    }
    Ok(CaptionedImages { images: Tensor::from_vec(pixels, (n, 3, 28, 28), &Device::Cpu)?, attributes: order, name: "captioned shapes".into() })
}

/// Whether the pixel centre `(x, y)` lies inside the shape centred at
/// `(cx, cy)` with half-width `r`.
fn inside(shape: usize, x: f32, y: f32, cx: f32, cy: f32, r: f32) -> bool {
    let (dx, dy) = (x - cx, y - cy);
    match shape {
        0 => dx * dx + dy * dy <= r * r,
        1 => dx.abs() <= 0.85 * r && dy.abs() <= 0.85 * r,
        2 => {
            // apex up, base at the bottom: the width shrinks linearly towards the apex
            let t = (dy + r) / (2.0 * r);
            (0.0..=1.0).contains(&t) && dx.abs() <= r * t
        }
        _ => (dx.abs() <= 0.3 * r && dy.abs() <= r) || (dy.abs() <= 0.3 * r && dx.abs() <= r),
    }
}

/// One image `(3, 28, 28)`, channel-major.
fn draw(a: &Attributes, rng: &mut SeededRng) -> Vec<f32> {
    const S: usize = 28;
    let r = if a.size == 0 { rng.uniform_in(3.2, 4.2) } else { rng.uniform_in(6.5, 7.5) };
    let along = 14.0 + rng.uniform_in(-3.0, 3.0);
    let off = if a.size == 0 { 7.0 } else { 8.5 } + rng.uniform_in(-1.0, 1.0);
    let (cx, cy) = match a.position {
        0 => (off, along),
        1 => (S as f32 - off, along),
        2 => (along, off),
        _ => (along, S as f32 - off),
    };
    let rgb: Vec<f32> = RGB[a.colour].iter().map(|c| (c + rng.uniform_in(-0.08, 0.08)).clamp(0.0, 1.0)).collect();
    let mut img = vec![0f32; 3 * S * S];
    for y in 0..S {
        for x in 0..S {
            // 2×2 supersampling for soft edges
            let mut cover = 0.0;
            for (sx, sy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                if inside(a.shape, x as f32 + sx, y as f32 + sy, cx, cy, r) {
                    cover += 0.25;
                }
            }
            for c in 0..3 {
                img[c * S * S + y * S + x] = (cover * rgb[c] + 0.03 * rng.normal()).clamp(0.0, 1.0);
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_round_trip_and_name_bad_words() {
        let all = Attributes::all();
        assert_eq!(all.len(), 128);
        let captions: std::collections::HashSet<String> = Attributes::all_captions().into_iter().collect();
        assert_eq!(captions.len(), 128);
        for a in &all {
            assert_eq!(Attributes::parse(&a.caption()).unwrap(), *a);
        }
        assert_eq!(all[0].caption(), "a small red circle on the left");
        assert_eq!(all[0].with(Attribute::Shape, 2).with(Attribute::Position, 3).caption(), "a small red triangle at the bottom");
        let e = Attributes::parse("a small purple circle on the left").unwrap_err().to_string();
        assert!(e.contains("\"purple\" is not a colour"), "{e}");
        assert!(Attributes::parse("a circle").unwrap_err().to_string().contains("7 words"));
        assert_eq!(shape_colour("triangle", "red").unwrap(), (2, 0));
        assert!(shape_colour("hexagon", "red").unwrap_err().to_string().contains("not a shape"));
    }

    /// Deterministic; every combination about equally often; the colour is in
    /// the right channels, the shape on the named side, a large shape has
    /// more ink than a small one.
    #[test]
    fn captioned_shapes_draw_what_the_caption_says() {
        let d = captioned_shapes(256, 3).unwrap();
        let again = captioned_shapes(256, 3).unwrap();
        let px: Vec<f32> = d.images.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(px, again.images.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_ne!(d.attributes, captioned_shapes(256, 4).unwrap().attributes);
        let mut counts = std::collections::HashMap::new();
        for a in &d.attributes {
            *counts.entry(*a).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 128);
        assert!(counts.values().all(|&c| c == 2));
        let (mut ink_small, mut ink_large) = (0.0, 0.0);
        for (i, a) in d.attributes.iter().enumerate() {
            let img = &px[i * 3 * 784..(i + 1) * 3 * 784];
            let ch = |c: usize| -> f32 { img[c * 784..(c + 1) * 784].iter().sum() };
            let (r, g, b) = (ch(0), ch(1), ch(2));
            let strongest = match a.colour {
                0 => r > g && r > b,
                1 => g > r && g > b,
                2 => b > r && b > g,
                _ => r > b && g > b,
            };
            assert!(strongest, "{}: rgb sums {r} {g} {b}", a.caption());
            // centre of mass of the ink on the side the caption names
            let lum: Vec<f32> = (0..784).map(|p| img[p] + img[784 + p] + img[2 * 784 + p]).collect();
            let total: f32 = lum.iter().sum();
            let mx: f32 = lum.iter().enumerate().map(|(p, v)| (p % 28) as f32 * v).sum::<f32>() / total;
            let my: f32 = lum.iter().enumerate().map(|(p, v)| (p / 28) as f32 * v).sum::<f32>() / total;
            let ok = match a.position {
                0 => mx < 12.0,
                1 => mx > 15.0,
                2 => my < 12.0,
                _ => my > 15.0,
            };
            assert!(ok, "{}: centre of mass ({mx}, {my})", a.caption());
            if a.size == 0 { ink_small += total } else { ink_large += total }
        }
        assert!(ink_large > 2.5 * ink_small, "{ink_large} vs {ink_small}");
        assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(captioned_shapes(0, 0).is_err());
    }

    #[test]
    fn captioned_images_select_filter_and_labels() {
        let d = captioned_shapes(40, 0).unwrap();
        let (tri, red) = shape_colour("triangle", "red").unwrap();
        let no_red_triangles = d.filter(|a| !(a.shape == tri && a.colour == red)).unwrap();
        assert!(no_red_triangles.len() < d.len());
        assert!(no_red_triangles.attributes.iter().all(|a| !(a.shape == tri && a.colour == red)));
        let s = d.select(&[3, 1]).unwrap();
        assert_eq!(s.attributes, vec![d.attributes[3], d.attributes[1]]);
        assert_eq!(s.images.get(0).unwrap().to_vec3::<f32>().unwrap(), d.images.get(3).unwrap().to_vec3::<f32>().unwrap());
        assert_eq!(d.labels(Attribute::Colour)[3], d.attributes[3].colour as u32);
        assert_eq!(d.take(5).unwrap().len(), 5);
        assert!(d.select(&[40]).unwrap_err().to_string().contains("index 40 is out of range for 40"));
    }
}
