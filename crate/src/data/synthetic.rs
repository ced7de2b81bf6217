//! Synthetic text, time series and videos, generated in code from a seed.
//!
//! They stand in for real data when a notebook must run in seconds, and they
//! are built so that the pretext tasks of [`crate::pretext`] are learnable:
//!
//! * [`synthetic_text`]: subject–verb–object sentences from a tiny grammar.
//!   Every paragraph keeps to one topic (animals, kitchen, space, sport,
//!   music), and each topic has its own nouns, verbs and adjectives, so a
//!   masked word can be guessed from the others and the next sentence is
//!   (usually) told apart from a random one by its topic.
//! * [`synthetic_series`]: sine, square, sawtooth and chirp waves with random
//!   phase, frequency, amplitude, offset and noise.
//! * [`synthetic_video`]: a square bouncing around a frame; the class is the
//!   direction it starts moving in.
//!
//! ```text
//! sine      a·sin(2π f t/T + φ)          square   a·sign(sin(2π f t/T + φ))
//! sawtooth  a·(2·frac(f t/T + φ/2π) − 1)  chirp    a·sin(2π f (t/T)(1 + t/T) + φ)
//! ```

use super::SeriesDataset;
use crate::rng::SeededRng;
use candle_core::{Device, Result, Tensor};
use std::f32::consts::PI;

struct Topic {
    subjects: &'static [&'static str],
    verbs: &'static [&'static str],
    objects: &'static [&'static str],
    adjectives: &'static [&'static str],
}

const TOPICS: [Topic; 5] = [
    Topic {
        subjects: &["the cat", "the dog", "the fox", "the owl", "the horse", "a rabbit"],
        verbs: &["chases", "hunts", "sniffs", "watches", "bites"],
        objects: &["mouse", "bird", "rabbit", "squirrel", "frog", "worm"],
        adjectives: &["small", "furry", "wild", "sleepy"],
    },
    Topic {
        subjects: &["the cook", "the baker", "the chef", "my aunt", "the waiter"],
        verbs: &["bakes", "slices", "boils", "serves", "tastes"],
        objects: &["bread", "soup", "cake", "onion", "pie", "pasta"],
        adjectives: &["hot", "sweet", "fresh", "salty"],
    },
    Topic {
        subjects: &["the astronaut", "the pilot", "the robot", "the captain", "the crew"],
        verbs: &["launches", "orbits", "repairs", "lands", "steers"],
        objects: &["rocket", "satellite", "station", "probe", "shuttle", "comet"],
        adjectives: &["distant", "silver", "orbital", "lunar"],
    },
    Topic {
        subjects: &["the striker", "the coach", "the goalie", "the team", "the referee"],
        verbs: &["kicks", "throws", "catches", "passes", "blocks"],
        objects: &["ball", "goal", "penalty", "trophy", "match", "pass"],
        adjectives: &["fast", "final", "winning", "long"],
    },
    Topic {
        subjects: &["the singer", "the drummer", "the band", "the pianist", "the choir"],
        verbs: &["plays", "sings", "tunes", "records", "hums"],
        objects: &["song", "melody", "guitar", "piano", "chord", "drum"],
        adjectives: &["loud", "soft", "slow", "catchy"],
    },
];

/// Number of topics of [`synthetic_text`].
pub const SYNTHETIC_TEXT_TOPICS: usize = TOPICS.len();

fn pick<'a>(xs: &[&'a str], rng: &mut SeededRng) -> &'a str {
    xs[rng.below(xs.len())]
}

/// `n_sentences` sentences from a tiny topic grammar, one per line, in
/// paragraphs of 3–6 sentences on one topic separated by blank lines.
///
/// ```text
/// sentence = subject verb ["the" | "a"] [adjective] object "."
/// ```
///
/// Subject, verb, adjective and object all come from the paragraph's topic.
///
/// ```
/// let t = sslab::data::synthetic_text(4, 0)?;
/// assert_eq!(sslab::data::split_sentences(&t).len(), 4);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn synthetic_text(n_sentences: usize, seed: u64) -> Result<String> {
    if n_sentences == 0 {
        candle_core::bail!("synthetic_text: need at least one sentence");
    }
    let mut rng = SeededRng::new(seed).fork("synthetic-text");
    let mut out = String::new();
    let mut left_in_paragraph = 0;
    let mut topic = &TOPICS[0];
    for i in 0..n_sentences {
        if left_in_paragraph == 0 {
            if i > 0 {
                out.push('\n');
            }
            topic = &TOPICS[rng.below(TOPICS.len())];
            left_in_paragraph = 3 + rng.below(4);
        }
        left_in_paragraph -= 1;
        let det = if rng.bernoulli(0.5) { "the" } else { "a" };
        let adj = if rng.bernoulli(0.5) { format!("{} ", pick(topic.adjectives, &mut rng)) } else { String::new() };
        let (s, v, o) = (pick(topic.subjects, &mut rng), pick(topic.verbs, &mut rng), pick(topic.objects, &mut rng));
        out.push_str(&format!("{s} {v} {det} {adj}{o} .\n"));
    }
    Ok(out)
}

/// Class names of [`synthetic_series`], in label order.
pub const SERIES_CLASSES: [&str; 4] = ["sine", "square", "sawtooth", "chirp"];

/// `n` univariate series `(n, 1, length)` of the four [`SERIES_CLASSES`],
/// balanced and shuffled, from `seed`.
///
/// Each series has a random phase φ ∈ [0, 2π), frequency f ∈ [2, 5) cycles
/// per series, amplitude a ∈ [0.5, 1.5), offset ∈ [−0.5, 0.5) and Gaussian
/// noise of standard deviation 0.1:
///
/// ```text
/// sine      a·sin(2π f t/T + φ)           square   a·sign(sin(2π f t/T + φ))
/// sawtooth  a·(2·frac(f t/T + φ/2π) − 1)  chirp    a·sin(2π f (t/T)(1 + t/T) + φ)
/// ```
pub fn synthetic_series(n: usize, length: usize, seed: u64) -> Result<SeriesDataset> {
    if n == 0 || length < 8 {
        candle_core::bail!("synthetic_series: need n ≥ 1 series of length ≥ 8, got n = {n}, length = {length}");
    }
    let mut rng = SeededRng::new(seed).fork("synthetic-series");
    let mut labels: Vec<u32> = (0..n).map(|i| (i % SERIES_CLASSES.len()) as u32).collect();
    rng.shuffle(&mut labels);
    let mut values = Vec::with_capacity(n * length);
    for &l in &labels {
        let phase = rng.uniform_in(0.0, 2.0 * PI);
        let f = rng.uniform_in(2.0, 5.0);
        let a = rng.uniform_in(0.5, 1.5);
        let offset = rng.uniform_in(-0.5, 0.5);
        for t in 0..length {
            let u = t as f32 / length as f32;
            let clean = match l {
                0 => (2.0 * PI * f * u + phase).sin(),
                1 => (2.0 * PI * f * u + phase).sin().signum(),
                2 => 2.0 * (f * u + phase / (2.0 * PI)).fract() - 1.0,
                _ => (2.0 * PI * f * u * (1.0 + u) + phase).sin(),
            };
            values.push(offset + a * clean + 0.1 * rng.normal());
        }
    }
    let series = Tensor::from_vec(values, (n, 1, length), &Device::Cpu)?;
    SeriesDataset::new(series, labels, SERIES_CLASSES.iter().map(|s| s.to_string()).collect(), "synthetic-series")
}

/// Class names of [`synthetic_video`] (the starting direction of motion), in label order.
pub const VIDEO_CLASSES: [&str; 4] = ["right", "left", "down", "up"];

/// `n` videos `(n, frames, 1, size, size)` of a bright square moving at 1–2
/// pixels per frame and bouncing off the borders, with labels: the
/// direction it starts moving in ([`VIDEO_CLASSES`]), balanced and shuffled.
///
/// The square's side is `max(2, size / 5)`, its start position random (but
/// not touching the border it moves towards, so frames 0 → 1 show the direction); pixel
/// values are in `[0, 1]` (background 0, square 1, plus uniform noise up to 0.1).
pub fn synthetic_video(n: usize, frames: usize, size: usize, seed: u64) -> Result<(Tensor, Vec<u32>)> {
    if n == 0 || frames == 0 || size < 6 {
        candle_core::bail!(
            "synthetic_video: need n ≥ 1, frames ≥ 1 and size ≥ 6, got n = {n}, frames = {frames}, size = {size}"
        );
    }
    let mut rng = SeededRng::new(seed).fork("synthetic-video");
    let mut labels: Vec<u32> = (0..n).map(|i| (i % VIDEO_CLASSES.len()) as u32).collect();
    rng.shuffle(&mut labels);
    let side = (size / 5).max(2) as i64;
    let max_pos = size as i64 - side;
    let mut pixels = vec![0f32; n * frames * size * size];
    for (i, &l) in labels.iter().enumerate() {
        let speed = 1 + rng.below(2) as i64;
        let (mut vx, mut vy) = match l {
            0 => (speed, 0),
            1 => (-speed, 0),
            2 => (0, speed),
            _ => (0, -speed),
        };
        // start where the first step does not hit a border, so frames 0 → 1 show the label's direction
        let mut start = |v: i64| {
            let lo = if v < 0 { -v } else { 0 };
            let hi = if v > 0 { max_pos - v } else { max_pos };
            lo + rng.below((hi - lo + 1) as usize) as i64
        };
        let mut x = start(vx);
        let mut y = start(vy);
        for f in 0..frames {
            let frame = &mut pixels[(i * frames + f) * size * size..(i * frames + f + 1) * size * size];
            for p in frame.iter_mut() {
                *p = 0.1 * rng.uniform();
            }
            for yy in y..y + side {
                for xx in x..x + side {
                    frame[yy as usize * size + xx as usize] = 1.0;
                }
            }
            // move, reflecting off the borders
            x += vx;
            y += vy;
            if x < 0 || x > max_pos {
                vx = -vx;
                x = if x < 0 { -x } else { 2 * max_pos - x };
            }
            if y < 0 || y > max_pos {
                vy = -vy;
                y = if y < 0 { -y } else { 2 * max_pos - y };
            }
        }
    }
    let video = Tensor::from_vec(pixels, (n, frames, 1, size, size), &Device::Cpu)?;
    Ok((video, labels))
}

#[cfg(test)]
mod tests {
    use crate::data::LabelledData;
    use super::*;
    use crate::data::{split_sentences, TextCorpus, TokenizerKind};

    #[test]
    fn synthetic_text_is_deterministic_and_topical() {
        let a = synthetic_text(200, 3).unwrap();
        assert_eq!(a, synthetic_text(200, 3).unwrap());
        assert_ne!(a, synthetic_text(200, 4).unwrap());
        let sentences = split_sentences(&a);
        assert_eq!(sentences.len(), 200);
        // every sentence uses one topic's words only
        for s in &sentences {
            let topic = TOPICS.iter().position(|t| t.verbs.iter().any(|v| s.contains(&format!(" {v} "))));
            let t = &TOPICS[topic.unwrap()];
            assert!(t.subjects.iter().any(|x| s.starts_with(x)), "{s}");
            assert!(t.objects.iter().any(|o| s.ends_with(&format!("{o} ."))), "{s}");
        }
        let c = TextCorpus::new(&a, TokenizerKind::Words, 1000, "synthetic").unwrap();
        assert_eq!(c.sentences().len(), 200);
        assert!(c.tokenizer.vocab_size() > 80);
        assert!(synthetic_text(0, 0).is_err());
    }

    #[test]
    fn synthetic_series_is_deterministic_balanced_and_finite() {
        let a = synthetic_series(40, 64, 1).unwrap();
        let va: Vec<f32> = a.series.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = synthetic_series(40, 64, 1).unwrap().series.flatten_all().unwrap().to_vec1().unwrap();
        let c: Vec<f32> = synthetic_series(40, 64, 2).unwrap().series.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(va, b);
        assert_ne!(va, c);
        assert_eq!(a.series.dims(), &[40, 1, 64]);
        assert_eq!(a.class_counts(), vec![10; 4]);
        assert!(va.iter().all(|x| x.is_finite() && x.abs() < 3.0));
        // square waves sit near ±a + offset: few values near their middle
        let i = a.labels.iter().position(|&l| l == 1).unwrap();
        let row = &va[i * 64..(i + 1) * 64];
        let mid = row.iter().sum::<f32>() / 64.0;
        let near_mid = row.iter().filter(|x| (*x - mid).abs() < 0.15).count();
        assert!(near_mid < 16, "{near_mid}");
        assert!(synthetic_series(4, 4, 0).is_err());
    }

    #[test]
    fn synthetic_video_is_deterministic_balanced_and_moves_as_labelled() {
        let (v, labels) = synthetic_video(40, 3, 20, 0).unwrap();
        assert_eq!(v.dims(), &[40, 3, 1, 20, 20]);
        let (v2, l2) = synthetic_video(40, 3, 20, 0).unwrap();
        let px: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(px, v2.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(labels, l2);
        let mut counts = [0; 4];
        labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [10; 4]);
        assert!(px.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)));
        // the square's centre moves in the labelled direction between frames 0 and 1
        let centre = |i: usize, f: usize| {
            let fr = &px[(i * 3 + f) * 400..(i * 3 + f + 1) * 400];
            let (mut sx, mut sy, mut m) = (0f32, 0f32, 0f32);
            for (k, &p) in fr.iter().enumerate() {
                if p > 0.5 {
                    sx += (k % 20) as f32;
                    sy += (k / 20) as f32;
                    m += 1.0;
                }
            }
            (sx / m, sy / m)
        };
        for (i, &l) in labels.iter().enumerate() {
            let ((x0, y0), (x1, y1)) = (centre(i, 0), centre(i, 1));
            let (dx, dy) = (x1 - x0, y1 - y0);
            let ok = match l {
                0 => dy == 0.0 && dx > 0.0,
                1 => dy == 0.0 && dx < 0.0,
                2 => dx == 0.0 && dy > 0.0,
                _ => dx == 0.0 && dy < 0.0,
            };
            assert!(ok, "video {i} label {l}: moved ({dx}, {dy})");
        }
        assert!(synthetic_video(1, 1, 4, 0).is_err());
    }
}
