//! Run profiles: one variable scales every experiment.
//!
//! `SSLAB_PROFILE` selects how big each experiment is:
//!
//! | profile | for | budget |
//! |---|---|---|
//! | `smoke` | CI: proves every cell runs | well under a minute of compute per notebook |
//! | `cpu` (default) | a student's laptop | at most 3 minutes of compute per notebook on 2 cores |
//! | `gpu` | full-size runs on an NVIDIA GPU | minutes on one GPU |
//!
//! Notebooks never branch on the profile themselves: they ask for the
//! experiment's configuration (for example [`Profile::why_ssl`]) and print it.
//!
//! Each chapter's sizes live in one file here, as data: every number a run
//! uses is a field (a cell changes it with struct-update syntax), and the
//! few-label evaluation of every chapter is one [`FewLabelBudget`], turned
//! into a protocol in one place ([`FewLabelExperiment::protocol`]).

pub use crate::eval::{FewLabelBudget, FewLabelExperiment};
pub use crate::profile::{Profile, PROFILE_VAR};

mod contrastive;
mod image_pretext;
mod multimodal;
mod sequence_pretext;
mod text_pretext;
mod why_ssl;

pub use contrastive::ContrastiveConfig;
pub use image_pretext::ImagePretextConfig;
pub use multimodal::MultimodalConfig;
pub use sequence_pretext::SequencePretextConfig;
pub use text_pretext::TextPretextConfig;
pub use why_ssl::WhySslConfig;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::FewLabelExperiment;

    /// Budgets grow with the profile; the held-out (shape, colour) pairs are
    /// in the held-out test split only, never in training.
    #[test]
    fn multimodal_sizes_and_held_out_split() {
        let (smoke, cpu, gpu) = (Profile::Smoke.multimodal(), Profile::Cpu.multimodal(), Profile::Gpu.multimodal());
        assert!(smoke.steps < cpu.steps && cpu.steps < gpu.steps && smoke.train_pairs < cpu.train_pairs);
        assert_eq!((cpu.clip().steps, cpu.clip().batch_size, cpu.clip().seed), (cpu.steps, cpu.batch_size, cpu.seed));
        let (train, seen, held) = smoke.data().unwrap();
        let pairs = smoke.held_out_indices().unwrap();
        assert_eq!(pairs.len(), 4);
        assert!(train.attributes.iter().all(|a| !pairs.contains(&(a.shape, a.colour))));
        assert!(seen.attributes.iter().all(|a| !pairs.contains(&(a.shape, a.colour))));
        assert!(!held.is_empty() && held.attributes.iter().all(|a| pairs.contains(&(a.shape, a.colour))));
        assert_eq!(seen.len() + held.len(), smoke.test_pairs);
        // 4 of the 16 (shape, colour) pairs held out: about a quarter of the pairs
        assert!(train.len() > smoke.train_pairs * 7 / 10 && train.len() < smoke.train_pairs * 8 / 10, "{}", train.len());
        let bad = MultimodalConfig { held_out: vec![("hexagon".into(), "red".into())], ..smoke };
        assert!(bad.data().unwrap_err().to_string().contains("\"hexagon\" is not a shape"));
    }

    #[test]
    fn contrastive_budgets_grow_with_the_profile_and_reach_the_methods() {
        use crate::method::MethodName;
        let (smoke, cpu, gpu) = (Profile::Smoke.contrastive(), Profile::Cpu.contrastive(), Profile::Gpu.contrastive());
        // full size on a GPU: ResNet-18 for every joint-embedding method, MAE keeps its ViT
        use crate::method::EncoderConfig;
        let resnet18 = EncoderConfig::ResNet(crate::nn::ResNetConfig::resnet18(1));
        assert_eq!(gpu.pretrain(MethodName::SimClr).encoder, resnet18);
        assert_eq!(gpu.short(MethodName::Moco).encoder, resnet18);
        assert!(matches!(gpu.pretrain(MethodName::Mae).encoder, EncoderConfig::Vit(_)));
        assert_eq!(gpu.pretrain(MethodName::Rotation).encoder, crate::method::PretrainConfig::for_method(MethodName::Rotation).encoder);
        assert_eq!(cpu.pretrain(MethodName::SimClr).encoder, crate::method::PretrainConfig::for_method(MethodName::SimClr).encoder);
        assert!(smoke.steps < cpu.steps && cpu.steps < gpu.steps);
        assert!(smoke.short_steps < cpu.short_steps && cpu.short_steps < cpu.steps);
        for p in [&smoke, &cpu, &gpu] {
            assert!(p.byol_steps >= 2 * p.steps, "BYOL gets about twice the main run's steps");
        }
        assert!(smoke.byol_steps < cpu.byol_steps && cpu.byol_steps < gpu.byol_steps);
        let (bs, bc, bg) = (smoke.benchmark(), cpu.benchmark(), gpu.benchmark());
        assert_eq!(bc.seeds.len(), 3);
        assert!(bs.steps < bc.steps && bc.steps < bg.steps && bc.methods.len() == 11);
        assert_eq!(bg.pretrain(MethodName::Byol, 0).encoder, resnet18);
        assert!(matches!(bg.pretrain(MethodName::Mae, 0).encoder, EncoderConfig::Vit(_)));
        assert_eq!(bc.pretrain(MethodName::Rotation, 2).encoder, crate::eval::BenchmarkConfig::shared_cnn());
        assert_eq!(bc.pretrain(MethodName::Moco, 2).encoder, crate::eval::BenchmarkConfig::shared_cnn());
        assert_eq!(bg.pretrain(MethodName::Jigsaw, 2).encoder, crate::eval::BenchmarkConfig::shared_cnn());
        let main = cpu.pretrain(MethodName::SimClr);
        assert_eq!((main.steps, main.batch_size, main.seed), (cpu.steps, cpu.batch_size, cpu.seed));
        let short = cpu.short(MethodName::Moco);
        assert_eq!((short.steps, short.batch_size, short.method), (cpu.short_steps, cpu.short_batch_size, MethodName::Moco));
        for c in [&smoke, &cpu, &gpu] {
            assert!(c.pretrain(MethodName::SimClr).check().is_ok() && c.short(MethodName::SimClr).check().is_ok(), "{:?}", c.profile);
        }
        assert_eq!(cpu.protocol_with(5).labels_per_class, 5);
        let b = ContrastiveConfig { benchmark_steps: 7, benchmark_batch_size: 9, ..cpu.clone() }.benchmark();
        assert_eq!((b.steps, b.batch_size, b.probe_steps), (7, 9, cpu.few_labels.probe_steps));
        assert_eq!(cpu.protocol().probe.steps, cpu.few_labels.probe_steps);
    }

    #[test]
    fn image_pretext_budgets_grow_with_the_profile_and_reach_the_methods() {
        use crate::method::MethodName;
        let (smoke, cpu) = (Profile::Smoke.image_pretext(), Profile::Cpu.image_pretext());
        assert!(smoke.mae_steps < cpu.mae_steps && cpu.mae_steps < Profile::Gpu.image_pretext().mae_steps);
        let c = cpu.pretrain(MethodName::Context);
        assert_eq!((c.steps, c.method, c.seed), (cpu.context_steps, MethodName::Context, cpu.seed));
        assert!(smoke.pretrain(MethodName::Mae).check().is_ok(), "warm-up must fit a 4-step smoke run");
        assert_eq!(ImagePretextConfig { rotation_batch_size: 8, ..cpu.clone() }.pretrain(MethodName::Rotation).batch_size, 8);
        assert_eq!(cpu.protocol().scratch.steps, cpu.few_labels.scratch_steps);
    }

    #[test]
    fn sequence_budgets_grow_with_the_profile_and_reach_the_tasks() {
        use crate::sequence::SeriesTask;
        let (smoke, cpu) = (Profile::Smoke.sequence_pretext(), Profile::Cpu.sequence_pretext());
        assert!(smoke.steps < cpu.steps && cpu.steps < Profile::Gpu.sequence_pretext().steps);
        let c = cpu.pretrain(SeriesTask::Cpc);
        assert_eq!((c.task, c.steps, c.seed), (SeriesTask::Cpc, cpu.steps, cpu.seed));
        assert!(smoke.video_train < smoke.video_clips && cpu.video_train < cpu.video_clips);
        assert_eq!(cpu.frame_order().seed, cpu.seed);
        assert_eq!(cpu.video_protocol().labels_per_class, cpu.video_labels_per_class);
        // the from-scratch batch and the frame-order learning rate are settings, not literals
        let s = SequencePretextConfig { few_labels: FewLabelBudget { scratch_batch_size: 8, ..cpu.few_labels.clone() }, video_lr: 0.5, ..cpu.clone() };
        assert_eq!((s.protocol().scratch.batch_size, s.video_protocol().scratch.batch_size, s.frame_order().lr), (8, 8, 0.5));
    }

    #[test]
    fn text_budgets_grow_with_the_profile_and_reach_the_models() {
        use crate::language::{LmObjective, WordModel};
        let (smoke, cpu) = (Profile::Smoke.text_pretext(), Profile::Cpu.text_pretext());
        assert!(smoke.lm_steps < cpu.lm_steps && cpu.lm_steps < Profile::Gpu.text_pretext().lm_steps);
        assert_eq!(cpu.word2vec(WordModel::Cbow).steps, cpu.word_steps);
        assert_eq!(cpu.lm(LmObjective::Causal).objective, LmObjective::Causal);
        assert!(smoke.probe_train < smoke.probe_windows);
        assert_eq!(cpu.protocol().scratch.steps, cpu.few_labels.scratch_steps);
    }

    #[test]
    fn profile_parse_accepts_names_and_rejects_others() {
        assert_eq!(Profile::parse("smoke").unwrap(), Profile::Smoke);
        assert_eq!(Profile::parse(" CPU ").unwrap(), Profile::Cpu);
        assert_eq!(Profile::parse("gpu").unwrap(), Profile::Gpu);
        let err = Profile::parse("fast").unwrap_err().to_string();
        assert!(err.contains("\"fast\"") && err.contains("smoke, cpu or gpu"), "{err}");
    }

    #[test]
    fn profile_sizes_grow_from_smoke_to_gpu() {
        let (s, c, g) = (Profile::Smoke.why_ssl(), Profile::Cpu.why_ssl(), Profile::Gpu.why_ssl());
        assert!(s.pretrain_steps < c.pretrain_steps && c.pretrain_steps < g.pretrain_steps);
        assert!(s.train_images < c.train_images);
        assert!(c.label_budgets.contains(&10) && c.label_budgets.contains(&1));
    }
}
