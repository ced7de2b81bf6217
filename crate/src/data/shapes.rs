//! The embedded image data set: ten upright line-drawn glyphs, generated in code.
//!
//! Every class has a canonical "up" (an arrow, a house, the letters T, L, F,
//! P, Y, U, J and a triangle), so rotation prediction is a meaningful pretext
//! task. Each image is drawn with a random scale, small tilt, shift, stroke
//! width, per-vertex wobble and pixel noise, all from the seed.

use super::LabelledData;
use super::ImageDataset;
use crate::rng::SeededRng;
use candle_core::{Device, Result, Tensor};

/// Class names of the embedded shapes, in label order.
pub const SHAPE_CLASSES: [&str; 10] = ["arrow", "T", "L", "triangle", "house", "F", "P", "Y", "U", "J"];

type Stroke = &'static [(f32, f32)];

/// Polylines of each glyph in a unit box (x right, y down).
fn glyph(class: usize) -> &'static [Stroke] {
    const ARROW: &[Stroke] = &[&[(0.5, 0.9), (0.5, 0.12)], &[(0.25, 0.4), (0.5, 0.1), (0.75, 0.4)]];
    const T: &[Stroke] = &[&[(0.15, 0.15), (0.85, 0.15)], &[(0.5, 0.15), (0.5, 0.9)]];
    const L: &[Stroke] = &[&[(0.3, 0.1), (0.3, 0.85), (0.8, 0.85)]];
    const TRIANGLE: &[Stroke] = &[&[(0.5, 0.12), (0.15, 0.85), (0.85, 0.85), (0.5, 0.12)]];
    const HOUSE: &[Stroke] = &[
        &[(0.22, 0.48), (0.22, 0.9), (0.78, 0.9), (0.78, 0.48)],
        &[(0.1, 0.52), (0.5, 0.12), (0.9, 0.52)],
    ];
    const F: &[Stroke] = &[&[(0.8, 0.1), (0.3, 0.1), (0.3, 0.9)], &[(0.3, 0.48), (0.68, 0.48)]];
    const P: &[Stroke] = &[&[(0.3, 0.9), (0.3, 0.1), (0.68, 0.1), (0.78, 0.3), (0.68, 0.5), (0.3, 0.5)]];
    const Y: &[Stroke] = &[&[(0.18, 0.1), (0.5, 0.48), (0.82, 0.1)], &[(0.5, 0.48), (0.5, 0.9)]];
    const U: &[Stroke] = &[&[(0.25, 0.1), (0.25, 0.72), (0.5, 0.9), (0.75, 0.72), (0.75, 0.1)]];
    const J: &[Stroke] = &[&[(0.4, 0.1), (0.85, 0.1)], &[(0.68, 0.1), (0.68, 0.75), (0.48, 0.9), (0.25, 0.75)]];
    const ALL: [&[Stroke]; 10] = [ARROW, T, L, TRIANGLE, HOUSE, F, P, Y, U, J];
    ALL[class % 10]
}

fn dist_to_segment(px: f32, py: f32, (ax, ay): (f32, f32), (bx, by): (f32, f32)) -> f32 {
    let (dx, dy) = (bx - ax, by - ay);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let (cx, cy) = (ax + t * dx, ay + t * dy);
    ((px - cx).powi(2) + (py - cy).powi(2)).sqrt()
}

/// Draws one glyph of `class` into a `size × size` image with values in `[0, 1]`.
pub(crate) fn draw(class: usize, size: usize, rng: &mut SeededRng) -> Vec<f32> {
    let s = size as f32;
    let scale = rng.uniform_in(0.62, 0.88) * s;
    let angle = rng.uniform_in(-0.2, 0.2); // about ±11°
    let (sin, cos) = angle.sin_cos();
    let cx = s / 2.0 + rng.uniform_in(-0.08, 0.08) * s;
    let cy = s / 2.0 + rng.uniform_in(-0.08, 0.08) * s;
    let width = rng.uniform_in(0.045, 0.09) * s;
    let mut segments = Vec::new();
    for stroke in glyph(class) {
        let pts: Vec<(f32, f32)> = stroke
            .iter()
            .map(|&(x, y)| {
                let (x, y) = (x - 0.5 + rng.uniform_in(-0.03, 0.03), y - 0.5 + rng.uniform_in(-0.03, 0.03));
                (cx + scale * (cos * x - sin * y), cy + scale * (sin * x + cos * y))
            })
            .collect();
        segments.extend(pts.windows(2).map(|w| (w[0], w[1])));
    }
    let mut img = vec![0f32; size * size];
    for (yi, row) in img.chunks_mut(size).enumerate() {
        for (xi, px) in row.iter_mut().enumerate() {
            let (x, y) = (xi as f32 + 0.5, yi as f32 + 0.5);
            let d = segments.iter().map(|&(a, b)| dist_to_segment(x, y, a, b)).fold(f32::MAX, f32::min);
            let ink = (width / 2.0 + 0.5 - d).clamp(0.0, 1.0);
            *px = (ink + 0.04 * rng.normal()).clamp(0.0, 1.0);
        }
    }
    img
}

/// `n` images `(n, 1, 28, 28)` of the ten glyph classes, balanced and shuffled, from `seed`.
///
/// ```
/// use sslab::data::LabelledData;
/// let d = sslab::data::shapes(20, 0)?;
/// assert_eq!(d.images.dims(), &[20, 1, 28, 28]);
/// assert_eq!(d.class_counts(), vec![2; 10]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn shapes(n: usize, seed: u64) -> Result<ImageDataset> {
    const SIZE: usize = 28;
    if n == 0 {
        candle_core::bail!("shapes: need at least one image");
    }
    let mut rng = SeededRng::new(seed).fork("shapes");
    let mut labels: Vec<u32> = (0..n).map(|i| (i % SHAPE_CLASSES.len()) as u32).collect();
    rng.shuffle(&mut labels);
    let mut pixels = Vec::with_capacity(n * SIZE * SIZE);
    for &l in &labels {
        pixels.extend(draw(l as usize, SIZE, &mut rng));
    }
    let images = Tensor::from_vec(pixels, (n, 1, SIZE, SIZE), &Device::Cpu)?;
    ImageDataset::new(images, labels, SHAPE_CLASSES.iter().map(|s| s.to_string()).collect(), "shapes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_deterministic_balanced_and_inked() {
        let a = shapes(30, 5).unwrap();
        let b = shapes(30, 5).unwrap();
        let c = shapes(30, 6).unwrap();
        let va: Vec<f32> = a.images.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(va, b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_ne!(va, c.images.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a.class_counts(), vec![3; 10]);
        assert!(va.iter().all(|x| (0.0..=1.0).contains(x)));
        // every image has a stroke: at least 5% of pixels well inked
        for img in va.chunks(28 * 28) {
            let inked = img.iter().filter(|&&x| x > 0.5).count();
            assert!(inked > 40 && inked < 400, "{inked}");
        }
        assert!(shapes(0, 0).is_err());
    }

    #[test]
    fn shapes_glyphs_are_not_rotation_symmetric() {
        // Each glyph differs from its 180° rotation: rotation prediction is learnable.
        let mut rng = SeededRng::new(0);
        for class in 0..10 {
            let img = draw(class, 28, &mut rng);
            let rot: Vec<f32> = img.iter().rev().copied().collect();
            let diff: f32 = img.iter().zip(&rot).map(|(a, b)| (a - b).abs()).sum();
            assert!(diff > 20.0, "class {class} looks the same upside down ({diff})");
        }
    }
}

/// The colour of class `k` of `n` for [`tint_by_class`]: hue `k/n`, luma 0.5.
///
/// `t = 0.5 + s·(rgb(hue) − luma(rgb(hue)))`, so `luma(t) = 0.5` for every
/// class (the luma weights sum to 1) and `s = 0.56` keeps every channel in
/// `[0, 1]` for every hue.
pub fn class_tint(k: usize, n: usize) -> [f32; 3] {
    let h = 6.0 * k as f32 / n.max(1) as f32;
    let x = 1.0 - ((h % 2.0) - 1.0).abs();
    let rgb = match h as usize {
        0 => [1.0, x, 0.0],
        1 => [x, 1.0, 0.0],
        2 => [0.0, 1.0, x],
        3 => [0.0, x, 1.0],
        4 => [x, 0.0, 1.0],
        _ => [1.0, 0.0, x],
    };
    let luma = 0.2989 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
    rgb.map(|c| (0.5 + 0.56 * (c - luma)).clamp(0.0, 1.0))
}

/// Gray images `(N, 1, H, W)` coloured by their class: pixel × [`class_tint`]
/// of its label, giving `(N, 3, H, W)`. Every tint has the same luma, so the
/// gray version of a tinted image is the original × 0.5 whatever its class:
/// colour can be predicted from shape (what colourisation learns), not from
/// brightness.
pub fn tint_by_class(data: &ImageDataset) -> Result<ImageDataset> {
    let (c, _, _) = data.image_shape()?;
    if c != 1 {
        candle_core::bail!("tint_by_class: needs gray (1-channel) images, {} has {c} channels", data.name);
    }
    let n_classes = data.num_classes();
    let t: Vec<f32> = data.labels.iter().flat_map(|&y| class_tint(y as usize, n_classes)).collect();
    let t = Tensor::from_vec(t, (data.len(), 3, 1, 1), data.images.device())?;
    let x = data.images.broadcast_mul(&t)?;
    ImageDataset::new(x, data.labels.clone(), data.class_names.clone(), &format!("{} (tinted by class)", data.name))
}

#[cfg(test)]
mod tint_tests {
    use super::*;

    #[test]
    fn tints_share_one_luma_and_gray_data_is_required() {
        for k in 0..10 {
            let t = class_tint(k, 10);
            let luma = 0.2989 * t[0] + 0.587 * t[1] + 0.114 * t[2];
            assert!((luma - 0.5).abs() < 1e-3, "class {k}: luma {luma}");
            assert!(t.iter().all(|c| (0.0..=1.0).contains(c)));
        }
        assert_ne!(class_tint(0, 10), class_tint(5, 10));
        let d = shapes(12, 0).unwrap();
        let tinted = tint_by_class(&d).unwrap();
        assert_eq!(tinted.image_shape().unwrap(), (3, 28, 28));
        let gray = crate::augment::rgb_to_grayscale(&tinted.images).unwrap();
        let diff = (gray - (d.images.clone() * 0.5).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-3, "gray of the tinted images should be half the original, off by {diff}");
        let err = tint_by_class(&tinted).unwrap_err().to_string();
        assert!(err.contains("1-channel") && err.contains("3 channels"), "{err}");
    }
}
