//! What a trained CLIP model does without labels: zero-shot classification
//! from prompts, captioning by nearest caption, retrieval in both directions,
//! and their tables.

use super::Clip;
use crate::data::{Attribute, Attributes, CaptionedImages};
use crate::loss::l2_normalize;
use candle_core::{Result, Tensor, D};

/// How [`Clip::zero_shot_accuracy`] turns the classes of an attribute into text.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompts {
    /// One caption per class with `{}` standing for the class's words, e.g.
    /// `"a small red {} on the left"` for the shape.
    Template(String),
    /// Each class is the mean embedding of every caption with that value of
    /// the attribute (CLIP's prompt ensembling, §3.1.4 of \[0\], over all
    /// the captions the other attributes allow).
    Ensemble,
}

/// Recall@k of image→text and text→image retrieval ([`Clip::retrieval`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieval {
    /// The `k` of each column.
    pub ks: Vec<usize>,
    /// Fraction of images whose caption is among the `k` captions ranked first.
    pub image_to_text: Vec<f64>,
    /// Fraction of captions with an image showing them among the `k` images ranked first.
    pub text_to_image: Vec<f64>,
    /// Distinct captions searched.
    pub captions: usize,
    /// Images searched.
    pub images: usize,
}

/// How well images are matched to their full caption among all 128
/// ([`Clip::caption_accuracy`]): exactly, and attribute by attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptionScores {
    /// Fraction of images whose best caption is exactly theirs.
    pub exact: f64,
    /// For each attribute of [`Attribute::ALL`], the fraction whose best caption has it right.
    pub per_attribute: Vec<(Attribute, f64)>,
    /// Images scored.
    pub images: usize,
}

impl Clip {
    /// The cosine similarities of `pairs`' images (rows) and captions
    /// (columns) as an annotated heat map, numbered from 1, with the
    /// matching pairs outlined: CLIP's training target is its diagonal. The
    /// colours span the cosine's full scale [−1, 1], so heatmaps before and
    /// after training share one scale.
    pub fn similarity_heatmap(&self, pairs: &CaptionedImages, title: &str) -> Result<crate::plot::Heatmap> {
        let n = pairs.len();
        let numbers: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        Ok(crate::plot::Heatmap::new(&self.similarity(&pairs.images, &pairs.captions())?)?
            .title(title)
            .labels(&numbers, &numbers)
            .x_label("caption")
            .y_label("image")
            .outline((0..n).map(|i| (i, i)))
            .annotate(true)
            .range(-1.0, 1.0))
    }

    /// One embedding per value of `attribute`, `(values, E)`.
    fn class_embeddings(&self, attribute: Attribute, prompts: &Prompts) -> Result<Tensor> {
        let values = attribute.values();
        match prompts {
            Prompts::Template(t) => {
                if t.matches("{}").count() != 1 {
                    candle_core::bail!("clip: a prompt template needs exactly one {{}} for the {attribute}, got {t:?}");
                }
                self.encode_texts(&values.iter().map(|v| t.replace("{}", v)).collect::<Vec<_>>())
            }
            Prompts::Ensemble => {
                let all = Attributes::all();
                let mut rows = Vec::with_capacity(values.len());
                for v in 0..values.len() {
                    let captions: Vec<String> = all.iter().filter(|a| a.get(attribute) == v).map(Attributes::caption).collect();
                    rows.push(self.encode_texts(&captions)?.mean(0)?);
                }
                l2_normalize(&Tensor::stack(&rows, 0)?)
            }
        }
    }

    /// Zero-shot predictions of `attribute` for each image: the class whose
    /// prompt embedding is closest.
    pub fn zero_shot(&self, images: &Tensor, attribute: Attribute, prompts: &Prompts) -> Result<Vec<u32>> {
        self.zero_shot_embedded(&self.encode_images(images)?, attribute, prompts)
    }

    /// [`zero_shot`](Self::zero_shot) for images already embedded by [`encode_images`](Self::encode_images).
    fn zero_shot_embedded(&self, image_embeddings: &Tensor, attribute: Attribute, prompts: &Prompts) -> Result<Vec<u32>> {
        let classes = self.class_embeddings(attribute, prompts)?;
        image_embeddings.matmul(&classes.t()?)?.argmax(D::Minus1)?.to_vec1()
    }

    /// Zero-shot accuracy of `attribute` on `data`: no labelled example, only the prompts.
    pub fn zero_shot_accuracy(&self, data: &CaptionedImages, attribute: Attribute, prompts: &Prompts) -> Result<f64> {
        Ok(fraction_equal(&self.zero_shot(&data.images, attribute, prompts)?, &data.labels(attribute)))
    }

    /// The `k` best of all 128 captions for each image, with their cosine similarity.
    pub fn describe(&self, images: &Tensor, k: usize) -> Result<Vec<Vec<(String, f32)>>> {
        let captions = Attributes::all_captions();
        let sim = self.similarity(images, &captions)?.to_vec2::<f32>()?;
        Ok(sim.iter().map(|row| top_k(row, k).into_iter().map(|j| (captions[j].clone(), row[j])).collect()).collect())
    }

    /// Indices of the `k` images of `images` closest to `query`, best first.
    pub fn retrieve_images(&self, images: &Tensor, query: &str, k: usize) -> Result<Vec<usize>> {
        let sim = self.similarity(images, &[query.to_string()])?.squeeze(1)?.to_vec1::<f32>()?;
        Ok(top_k(&sim, k))
    }

    /// Each image against all 128 captions: how often the best is exactly its
    /// caption, and how often it has each attribute right.
    pub fn caption_accuracy(&self, data: &CaptionedImages) -> Result<CaptionScores> {
        let all = Attributes::all();
        let best: Vec<u32> = self.similarity(&data.images, &Attributes::all_captions())?.argmax(D::Minus1)?.to_vec1()?;
        let n = data.len().max(1) as f64;
        let exact = best.iter().zip(&data.attributes).filter(|(&b, a)| all[b as usize] == **a).count() as f64 / n;
        let per_attribute = Attribute::ALL
            .iter()
            .map(|&at| (at, best.iter().zip(&data.attributes).filter(|(&b, a)| all[b as usize].get(at) == a.get(at)).count() as f64 / n))
            .collect();
        Ok(CaptionScores { exact, per_attribute, images: data.len() })
    }

    /// Recall@k in both directions on `data`: image→text ranks the distinct
    /// captions of `data`; text→image ranks its images for each distinct
    /// caption. An image with the same caption counts as a hit (the data
    /// repeats captions).
    pub fn retrieval(&self, data: &CaptionedImages, ks: &[usize]) -> Result<Retrieval> {
        let mut distinct: Vec<Attributes> = data.attributes.clone();
        distinct.sort_by_key(|a| (a.shape, a.colour, a.size, a.position));
        distinct.dedup();
        let captions: Vec<String> = distinct.iter().map(Attributes::caption).collect();
        let sim = self.similarity(&data.images, &captions)?; // (N, C)
        let rows = sim.to_vec2::<f32>()?;
        let cols = sim.t()?.contiguous()?.to_vec2::<f32>()?;
        let kmax = ks.iter().copied().max().unwrap_or(1);
        let i2t_ranked: Vec<Vec<usize>> = rows.iter().map(|r| top_k(r, kmax)).collect();
        let t2i_ranked: Vec<Vec<usize>> = cols.iter().map(|c| top_k(c, kmax)).collect();
        let recall = |k: usize| -> (f64, f64) {
            let i2t = i2t_ranked.iter().zip(&data.attributes).filter(|(r, a)| r.iter().take(k).any(|&j| distinct[j] == **a)).count();
            let t2i = t2i_ranked.iter().zip(&distinct).filter(|(r, a)| r.iter().take(k).any(|&i| data.attributes[i] == **a)).count();
            (i2t as f64 / data.len().max(1) as f64, t2i as f64 / distinct.len().max(1) as f64)
        };
        let (image_to_text, text_to_image) = ks.iter().map(|&k| recall(k)).unzip();
        Ok(Retrieval { ks: ks.to_vec(), image_to_text, text_to_image, captions: distinct.len(), images: data.len() })
    }
}

impl Prompts {
    /// The single template of `attribute`: a full caption with the other
    /// three attributes fixed at their first values ("a small red {} on the
    /// left" for the shape).
    pub fn template(attribute: Attribute) -> Prompts {
        // "a small red circle on the left": each first value appears once in it
        let caption = Attributes { shape: 0, colour: 0, size: 0, position: 0 }.caption();
        Prompts::Template(caption.replacen(attribute.values()[0], "{}", 1))
    }
}

/// Zero-shot accuracy of each attribute on `data`, for each model, with the
/// single [`Prompts::template`] and with the [`Prompts::Ensemble`], beside
/// the chance level (one over the number of values).
pub fn zero_shot_table(models: &[(&str, &Clip)], data: &CaptionedImages) -> Result<crate::plot::Table> {
    let mut header = vec!["attribute".to_string(), "template".to_string(), "chance".to_string()];
    for (name, _) in models {
        header.push(format!("{name}: template"));
        header.push(format!("{name}: ensemble"));
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = crate::plot::Table::new(&header).caption(&format!("zero-shot accuracy on {} test images: no labelled example, only text", data.len()));
    // each model embeds the images once, for all attributes and prompts
    let embedded: Vec<Tensor> = models.iter().map(|(_, m)| m.encode_images(&data.images)).collect::<Result<_>>()?;
    for at in Attribute::ALL {
        let template = Prompts::template(at);
        let Prompts::Template(words) = &template else { unreachable!() };
        let labels = data.labels(at);
        let mut row = vec![at.to_string(), format!("\"{words}\""), format!("{:.1} %", 100.0 / at.values().len() as f64)];
        for ((_, m), images) in models.iter().zip(&embedded) {
            for prompts in [&template, &Prompts::Ensemble] {
                row.push(format!("{:.1} %", 100.0 * fraction_equal(&m.zero_shot_embedded(images, at, prompts)?, &labels)));
            }
        }
        t.push(&row);
    }
    Ok(t)
}

/// [`CaptionScores`] side by side: one row per set of images.
pub fn caption_table(rows: &[(&str, &CaptionScores)]) -> crate::plot::Table {
    let mut header = vec!["images".to_string(), "n".to_string(), "exact caption".to_string()];
    header.extend(Attribute::ALL.iter().map(|a| format!("{a} right")));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = crate::plot::Table::new(&header).caption("each image's best caption among all 128 (chance: exact 0.8 %; shape and colour 25 %, size 50 %, position 25 %)");
    for (name, s) in rows {
        let mut row = vec![name.to_string(), s.images.to_string(), format!("{:.1} %", 100.0 * s.exact)];
        row.extend(s.per_attribute.iter().map(|(_, v)| format!("{:.1} %", 100.0 * v)));
        t.push(&row);
    }
    t
}

/// The fraction of positions where `predicted` and `labels` agree.
fn fraction_equal(predicted: &[u32], labels: &[u32]) -> f64 {
    predicted.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len().max(1) as f64
}

/// Indices of the `k` largest values, largest first.
fn top_k(xs: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&a, &b| xs[b].total_cmp(&xs[a]));
    idx.truncate(k);
    idx
}

impl Retrieval {
    /// The recalls as a table, with the chance levels.
    pub fn table(&self) -> crate::plot::Table {
        let mut t = crate::plot::Table::new(&["direction", "k", "recall@k", "chance"]).caption(&format!(
            "{} images, {} distinct captions; a retrieved item with the same caption counts as a hit",
            self.images, self.captions
        ));
        for (i, &k) in self.ks.iter().enumerate() {
            let chance_i2t = (k as f64 / self.captions.max(1) as f64).min(1.0);
            // at least one of the images of a caption (about N / C of them) among k drawn at random
            let per = self.images as f64 / self.captions.max(1) as f64;
            let chance_t2i = 1.0 - (1.0 - per / self.images.max(1) as f64).powi(k as i32);
            t.push(&["image → text".into(), k.to_string(), format!("{:.1} %", 100.0 * self.image_to_text[i]), format!("{:.1} %", 100.0 * chance_i2t)]);
            t.push(&["text → image".into(), k.to_string(), format!("{:.1} %", 100.0 * self.text_to_image[i]), format!("{:.1} %", 100.0 * chance_t2i)]);
        }
        t
    }
}
