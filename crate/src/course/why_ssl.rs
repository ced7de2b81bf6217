//! Material of section 24.1, "Why self-supervised learning?".

use super::{Question, Quiz};
use crate::loss::info_nce;
use crate::plot::{LinePlot, Table, Timeline};
use crate::rng::SeededRng;
use candle_core::{Device, Result, Tensor};
use std::fmt;

/// What it took to label some well-known data sets (published figures, rounded).
pub fn labeling_effort() -> Table {
    Table::new(&["data set", "year", "labelled items", "labelling effort (as published)"])
        .caption("The labelling problem: what supervision has cost")
        .row(&["MNIST", "1998", "70,000 digits", "written by ~500 writers on forms, then segmented and checked"])
        .row(&["ImageNet", "2009", "14.2 M images, 21,841 classes", "~49,000 Mechanical Turk workers from 167 countries, ~2.5 years"])
        .row(&["MS COCO", "2014", "2.5 M instance masks on 328 k images", "> 70,000 crowd-worker hours"])
        .row(&["Cityscapes", "2016", "5,000 finely annotated frames", "~1.5 hours per image"])
        .row(&["CheXpert", "2019", "224,316 chest X-rays", "labels mined from radiology reports: expert labels cost a radiologist's time"])
}

/// Sizes of labelled vs unlabelled (or weakly labelled) training sets over
/// the years, in items (images, image–text pairs or tokens), for a log plot.
pub fn data_growth() -> LinePlot {
    LinePlot::new("Labelled vs unlabelled training data")
        .x_label("year")
        .y_label("items (log scale)")
        .log_y()
        .series("labelled images", vec![(1998.0, 7e4), (2009.0, 6e4), (2012.0, 1.28e6), (2014.0, 3.28e5), (2017.0, 1.4e7)])
        .series(
            "unlabelled / web images",
            vec![(2016.0, 1e8), (2017.0, 3e8), (2018.0, 3.5e9), (2021.0, 4e8), (2022.0, 5.85e9)],
        )
        .series("text tokens for LMs", vec![(2018.0, 3.3e9), (2019.0, 4e10), (2020.0, 3e11), (2023.0, 2e12), (2024.0, 1.5e13)])
}

/// The back-of-envelope cost of labelling video, with editable parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelingCost {
    /// Hours of new video per day (YouTube: about 500 hours a minute = 720,000 a day).
    pub hours_per_day: f64,
    /// Dollars paid per minute of video labelled.
    pub dollars_per_minute: f64,
}

impl Default for LabelingCost {
    fn default() -> Self {
        Self { hours_per_day: 720_000.0, dollars_per_minute: 1.0 }
    }
}

impl LabelingCost {
    /// Dollars per day at the given rate.
    pub fn per_day(&self) -> f64 {
        self.hours_per_day * 60.0 * self.dollars_per_minute
    }

    /// Dollars per year (365 days).
    pub fn per_year(&self) -> f64 {
        self.per_day() * 365.0
    }
}

fn money(x: f64) -> String {
    match x.abs() {
        v if v >= 1e12 => format!("${:.2} trillion", x / 1e12),
        v if v >= 1e9 => format!("${:.2} billion", x / 1e9),
        v if v >= 1e6 => format!("${:.1} million", x / 1e6),
        _ => format!("${x:.0}"),
    }
}

impl fmt::Display for LabelingCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let minutes = self.hours_per_day * 60.0;
        writeln!(
            f,
            "{:.0} hours/day × 60 = {:.1} million minutes/day × ${}/minute = {} per day, {} per year",
            self.hours_per_day,
            minutes / 1e6,
            self.dollars_per_minute,
            money(self.per_day()),
            money(self.per_year())
        )?;
        write!(
            f,
            "(at ${} per *second* it would be {} per day — that is the $2.6 billion the chapter prints)",
            self.dollars_per_minute,
            money(self.per_day() * 60.0)
        )
    }
}

/// Milestones of self-supervised learning, 2013–2024.
pub fn milestones() -> Timeline {
    Timeline::new("Self-supervised learning, 2013–2024")
        .event(2013.0, "text", "Word2Vec")
        .event(2015.0, "vision: pretext", "Context prediction")
        .event(2016.0, "vision: pretext", "Colorization, Jigsaw")
        .event(2018.0, "vision: pretext", "RotNet")
        .event(2018.0, "text", "GPT, BERT")
        .event(2018.0, "contrastive", "CPC (InfoNCE)")
        .event(2019.0, "contrastive", "MoCo")
        .event(2020.0, "contrastive", "SimCLR")
        .event(2020.0, "no negatives", "BYOL")
        .event(2020.0, "text", "GPT-3")
        .event(2021.0, "contrastive", "CLIP")
        .event(2021.0, "no negatives", "DINO, Barlow Twins")
        .event(2021.0, "masked modelling", "MAE, BEiT")
        .event(2022.0, "no negatives", "VICReg")
        .event(2022.0, "masked modelling", "data2vec")
        .event(2023.0, "no negatives", "DINOv2, I-JEPA")
        .event(2024.0, "masked modelling", "V-JEPA")
}

/// InfoNCE loss against the positive's cosine similarity, one curve per
/// temperature, with `negatives` random negatives in `dim` dimensions.
pub fn temperature_sweep(temperatures: &[f64], dim: usize, negatives: usize, seed: u64) -> Result<LinePlot> {
    if dim < 2 || negatives == 0 || temperatures.is_empty() {
        candle_core::bail!("temperature_sweep needs dim >= 2, negatives >= 1 and a temperature, got {dim}, {negatives}, {temperatures:?}");
    }
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(seed);
    let b = 64;
    let q = rng.randn(&[b, dim], 1.0, &dev)?;
    let neg = rng.randn(&[b, negatives, dim], 1.0, &dev)?;
    // a direction orthogonal to q: its random part, minus its projection on q
    let r = rng.randn(&[b, dim], 1.0, &dev)?;
    let qn = q.broadcast_div(&q.sqr()?.sum_keepdim(1)?.sqrt()?)?;
    let r = (&r - qn.broadcast_mul(&(&r * &qn)?.sum_keepdim(1)?)?)?;
    let rn = r.broadcast_div(&r.sqr()?.sum_keepdim(1)?.sqrt()?)?;
    let mut plot = LinePlot::new(&format!("InfoNCE vs similarity of the positive ({negatives} random negatives, d = {dim})"))
        .x_label("cos(query, positive)")
        .y_label("loss");
    for &t in temperatures {
        let mut pts = Vec::new();
        for i in 0..=20 {
            let c = -1.0 + 0.1 * f64::from(i);
            let pos: Tensor = ((&qn * c)? + (&rn * (1.0 - c * c).max(0.0).sqrt())?)?;
            pts.push((c, f64::from(info_nce(&q, &pos, &neg, t)?.to_scalar::<f32>()?)));
        }
        plot = plot.series(&format!("τ = {t}"), pts);
    }
    Ok(plot)
}

/// The InfoNCE lower bound on mutual information, `I ≥ log(N) − L`, with `N`
/// the number of candidates (the positive and the negatives).
pub fn mi_lower_bound(candidates: usize, loss: f64) -> f64 {
    (candidates.max(1) as f64).ln() - loss
}

/// The eight-question knowledge check of section 24.1.
pub fn quiz() -> Quiz {
    Quiz {
        questions: vec![
            Question {
                prompt: "What supervises a self-supervised model?",
                options: &["Human labels", "Targets derived from the data itself by a pretext task", "A teacher model trained with labels", "Nothing: it is clustering"],
                answer: 1,
                explanation: "A pretext task T: x → (x̃, y) makes the target y out of x itself.",
            },
            Question {
                prompt: "In rotation prediction, what is the label y?",
                options: &["The image class", "The rotation angle that was applied (0°, 90°, 180°, 270°)", "The rotated image", "The original image"],
                answer: 1,
                explanation: "x̃ is the rotated image, y the index of its rotation.",
            },
            Question {
                prompt: "BERT masks 15% of tokens. Of the selected tokens, what happens?",
                options: &["All become [MASK]", "80% [MASK], 10% random token, 10% unchanged", "50% [MASK], 50% deleted", "They are removed from the sequence"],
                answer: 1,
                explanation: "The 10%/10% split keeps the model from relying on seeing [MASK] at test time.",
            },
            Question {
                prompt: "With random embeddings and N negatives, InfoNCE is close to…",
                options: &["0", "1", "log(N + 1)", "N"],
                answer: 2,
                explanation: "All N + 1 candidates are equally likely: −log(1/(N + 1)).",
            },
            Question {
                prompt: "Lowering the InfoNCE temperature τ…",
                options: &["makes the softmax flatter", "makes the loss focus on the hardest negatives", "has no effect after normalisation", "removes the need for negatives"],
                answer: 1,
                explanation: "Small τ sharpens the softmax, so the most similar negatives dominate the gradient.",
            },
            Question {
                prompt: "Which objective is generative rather than contrastive?",
                options: &["SimCLR's NT-Xent", "MoCo", "Masked autoencoding (MAE)", "CLIP"],
                answer: 2,
                explanation: "MAE reconstructs the hidden patches; the others compare embeddings.",
            },
            Question {
                prompt: "The InfoNCE bound says I(x; y) ≥ log(N) − L. What does it imply?",
                options: &["More candidates allow a higher bound", "The loss can be negative", "Mutual information is at most log N", "Temperature sets the bound"],
                answer: 0,
                explanation: "The bound can never exceed log N, so larger batches / queues allow tighter estimates.",
            },
            Question {
                prompt: "When does SSL pretraining help most in the two-stage pipeline?",
                options: &["When labels are plentiful", "When few labels are available and unlabelled data is plentiful", "Only for text", "Only when the pretext task equals the downstream task"],
                answer: 1,
                explanation: "In 24.1's sweep SimCLR's lead over the network trained from scratch is widest at 1 label per class and shrinks as labels grow.",
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labeling_cost_is_43_million_a_day_not_2_6_billion() {
        let c = LabelingCost::default();
        assert_eq!(c.per_day(), 43_200_000.0);
        let s = c.to_string();
        assert!(s.contains("$43.2 million per day") && s.contains("$2.59 billion per day"), "{s}");
    }

    #[test]
    fn quiz_scores_letters_and_blanks() {
        let q = quiz();
        assert_eq!(q.questions.len(), 8);
        assert!(q.questions.iter().all(|x| x.answer < x.options.len()));
        let all_right: Vec<char> = q.questions.iter().map(|x| (b'a' + x.answer as u8) as char).collect();
        assert_eq!(q.score(&all_right).correct, 8);
        let r = q.score(&['B', 'a', '?']);
        assert_eq!((r.correct, r.total), (1, 8));
        assert!(r.to_string().contains("not answered"));
        // the key and the explanation only for the two answered questions
        let text = r.to_string();
        assert!(text.contains(q.questions[0].explanation) && text.contains(q.questions[1].explanation), "{text}");
        assert!(q.questions[2..].iter().all(|x| !text.contains(x.explanation)), "{text}");
        // an empty attempt reveals nothing
        let blank = q.score(&['?'; 8]).to_string();
        assert!(q.questions.iter().all(|x| !blank.contains(x.explanation)) && blank.matches("answer it to see").count() == 8, "{blank}");
        let key = q.answer_key();
        assert_eq!(key.lines().count(), 8);
        assert!(key.starts_with(&format!("1. b — {}", q.questions[0].explanation)), "{key}");
    }

    #[test]
    fn temperature_sweep_loss_falls_with_similarity_and_sharpens_with_low_tau() {
        let p = temperature_sweep(&[0.1, 1.0], 64, 15, 0).unwrap();
        assert_eq!(p.series_len(), 2);
        assert!(mi_lower_bound(16, 16f64.ln()).abs() < 1e-12);
        assert!(temperature_sweep(&[], 64, 15, 0).is_err());
        let svg = p.to_svg().unwrap();
        assert!(svg.contains("τ = 0.1"));
    }

    #[test]
    fn milestones_and_tables_cover_the_chapter() {
        assert!(milestones().to_svg().unwrap().contains("SimCLR"));
        assert_eq!(labeling_effort().len(), 5);
        assert_eq!(data_growth().series_len(), 3);
    }
}
