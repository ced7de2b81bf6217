//! Self-supervised pretraining on sequences: four pretext tasks for time
//! series on one 1-D CNN, and frame-order prediction for video.
//!
//! ```text
//! masked      x̃ = x ⊙ (1 − m);  L = Σ m ⊙ (g(f_t(x̃)) − x)² / Σ m            TST [0]
//! order       x̃ = segments in order (y = 1) or shuffled (y = 0);  L = CE(W f(x̃), y)   [1]
//! CPC         c = f(x[s .. s+c]),  z = f(x[s+c .. s+c+k]);
//!             L = InfoNCE(norm(W c), norm(z), other series' futures as negatives) / τ   [2]
//! contrastive two views of crop + scaling + jitter;  L = NT-Xent(h(f(v₁)), h(f(v₂)))    [3]
//! video       n frames in a shuffled order;  L = CE(W [f(frame₁); …; f(frame_n)], order)  [4]
//! ```
//!
//! \[0\] G. Zerveas et al., "A Transformer-based Framework for Multivariate Time
//!     Series Representation Learning", KDD 2021, arXiv:2010.02803.
//! \[1\] I. Misra, C. L. Zitnick, M. Hebert, "Shuffle and Learn", ECCV 2016, arXiv:1603.08561.
//! \[2\] A. van den Oord, Y. Li, O. Vinyals, "Representation Learning with
//!     Contrastive Predictive Coding", 2018, arXiv:1807.03748.
//! \[3\] E. Eldele et al., "Time-Series Representation Learning via Temporal and
//!     Contextual Contrasting" (TS-TCC), IJCAI 2021, arXiv:2106.14112; T. Chen et
//!     al., SimCLR, 2020, arXiv:2002.05709.
//! \[4\] B. Fernando et al., "Self-Supervised Video Representation Learning With
//!     Odd-One-Out Networks", CVPR 2017, arXiv:1611.06646; H.-Y. Lee et al.,
//!     "Unsupervised Representation Learning by Sorting Sequences", ICCV 2017,
//!     arXiv:1708.01246.
//!
//! Simplifications (each named where it is made): CPC summarises the context
//! and the future window with the same pooled encoder and predicts one future
//! summary (not one encoding per future step through a GRU); the learning
//! rate is constant (no schedule) — these runs are a few hundred steps.
mod series;
mod video;

pub use series::*;
pub use video::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{LabelledData, SeriesDataset};
    use crate::eval::ClassifierConfig;
    use crate::nn::Conv1dEncoderConfig;
    use crate::rng::SeededRng;
    use candle_core::Device;

    fn series(n: usize) -> SeriesDataset {
        crate::data::synthetic_series(n, 64, 0).unwrap()
    }

    fn tiny(task: SeriesTask) -> SeriesPretrainConfig {
        SeriesPretrainConfig {
            encoder: Conv1dEncoderConfig { widths: vec![8, 16], ..Default::default() },
            batch_size: 16,
            lr: 3e-3,
            ..SeriesPretrainConfig::for_task(task)
        }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn every_series_task_learns_and_is_reproducible() {
        let data = series(128);
        for task in SeriesTask::ALL {
            let mut run = SeriesPretrainer::new(tiny(task), (1, 64), &Device::Cpu).unwrap();
            run.train_for(40, &data).unwrap();
            let h = run.history();
            assert!(h.loss.iter().all(|l| l.is_finite()), "{task}: {:?}", h.loss);
            let (first, last) = (mean(&h.loss[..8]), mean(&h.loss[32..]));
            assert!(last < first, "{task}: loss did not fall: {first} → {last}");
            // same seed, same run
            let mut again = SeriesPretrainer::new(tiny(task), (1, 64), &Device::Cpu).unwrap();
            again.train_for(3, &data).unwrap();
            assert_eq!(&again.history().loss[..3], &h.loss[..3], "{task}: not reproducible");
            assert_eq!(run.features(&data.series.narrow(0, 0, 5).unwrap()).unwrap().dims(), &[5, 16]);
        }
    }

    #[test]
    fn masked_reconstruction_hides_steps_and_other_tasks_refuse() {
        let data = series(16);
        let run = SeriesPretrainer::new(tiny(SeriesTask::Masked), (1, 64), &Device::Cpu).unwrap();
        let (masked, pred, mask) = run.reconstruct(&data.series.narrow(0, 0, 4).unwrap(), 1).unwrap();
        assert_eq!(masked.dims(), &[4, 1, 64]);
        assert_eq!(pred.dims(), masked.dims());
        let hidden = (masked.abs().unwrap() * &mask).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(hidden, 0.0, "masked steps must be zero in the input");
        let order = SeriesPretrainer::new(tiny(SeriesTask::Order), (1, 64), &Device::Cpu).unwrap();
        let err = order.reconstruct(&data.series, 0).unwrap_err().to_string();
        assert!(err.contains("only the masked task"), "{err}");
        let err = SeriesPretrainer::new(SeriesPretrainConfig { segments: 1, ..tiny(SeriesTask::Order) }, (1, 64), &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("segments"), "{err}");
        let mut run = run;
        let other = crate::data::synthetic_series(8, 32, 0).unwrap();
        let err = run.train_for(1, &other).unwrap_err().to_string();
        assert!(err.contains("(1, 64)") && err.contains("(1, 32)"), "{err}");
    }

    #[test]
    fn fine_tuning_copies_the_encoder_and_leaves_the_run_alone() {
        let data = series(96);
        let (train, test) = data.split_last(0.5).unwrap();
        let mut run = SeriesPretrainer::new(tiny(SeriesTask::Contrastive), (1, 64), &Device::Cpu).unwrap();
        run.train_for(5, &train).unwrap();
        let before = run.features(&test.series).unwrap().to_vec2::<f32>().unwrap();
        let labelled = train.per_class_subset(5, &mut SeededRng::new(0)).unwrap();
        let cfg = ClassifierConfig { steps: 200, ..Default::default() };
        let enc = tiny(SeriesTask::Contrastive).encoder;
        let tuned = series_classifier(Some(&run), &enc, &labelled, &test, &cfg, &Device::Cpu, 0).unwrap();
        let scratch = series_classifier(None, &enc, &labelled, &test, &cfg, &Device::Cpu, 0).unwrap();
        assert!(tuned > 0.3 && scratch > 0.3, "4 classes: both should beat chance (0.25), got {tuned} / {scratch}");
        assert_eq!(run.features(&test.series).unwrap().to_vec2::<f32>().unwrap(), before);
    }

    #[test]
    fn series_plot_has_one_line_per_row() {
        let data = series(3);
        let p = series_plot("s", &data.series, &["a", "b"]).unwrap();
        assert_eq!(p.series_len(), 3);
        assert!(series_plot("s", &data.series.unsqueeze(0).unwrap(), &["a"]).is_err());
    }

    #[test]
    fn frame_order_learns_above_chance_and_clips_classify() {
        let videos = VideoDataset::moving_squares(96, 8, 12, 0).unwrap();
        let (train, test) = videos.split_at(64).unwrap();
        let fo = FrameOrderConfig { hidden: 32, dim: 16, lr: 3e-3, ..Default::default() };
        let mut run = FrameOrderPretrainer::new(&fo, (1, 12, 12), &Device::Cpu).unwrap();
        assert_eq!(run.num_orders(), 3);
        run.train_for(400, &train).unwrap();
        let acc = mean(&run.history().metric[350..]);
        assert!(acc > 0.45, "frame order should beat chance (1/3), got {acc}");
        assert_eq!(run.features(&test.videos).unwrap().dims(), &[32, 3 * 16]);
        let labelled = LabelledData::per_class_subset(&train, 2, &mut SeededRng::new(0)).unwrap();
        assert_eq!(labelled.labels.len(), 8);
        let cfg = ClassifierConfig { steps: 20, ..Default::default() };
        let a = clip_classifier(Some(&run), &fo, &labelled, &test, &cfg, &Device::Cpu, 0).unwrap();
        assert!((0.0..=1.0).contains(&a));
        assert!(videos.split_at(0).is_err());
    }
}
