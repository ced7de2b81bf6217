//! Pretext tasks: transformations T: x → (x̃, y) that make a supervised
//! problem out of unlabelled data.
//!
//! * [`rotation_batch`] — predict which of four rotations was applied (RotNet).
//! * [`JigsawTask`] — predict which permutation shuffled a grid of tiles (Noroozi & Favaro).
//! * [`colorization_pair`] — predict the colours of a gray image (Zhang et al.).
//! * [`relative_patch_pairs`] — predict where a patch lies relative to another (Doersch et al.).
//! * [`patchify`], [`random_masking`] — MAE's patches and per-image random masking (He et al.).
//! * [`mask_patches`] — hide square patches of an image (the input of masked autoencoders).
//! * [`mask_tokens`] — BERT's masking of words: the model must restore them.
//! * [`mask_token_ids`], [`next_token_pairs`], [`nsp_pairs`], [`skipgram_pairs`], [`cbow_windows`] — text tasks on token ids (BERT, GPT, word2vec).
//! * [`mask_time_steps`], [`order_verification`], [`cpc_windows`] — time-series tasks (TST, Shuffle and Learn, CPC).
//! * [`frame_order`] — predict the order of shuffled video frames (Lee et al. 2017).

mod colorization;
mod context;
mod jigsaw;
mod mae;
mod masking;
mod rotation;
mod sequence;
mod text;
mod video;

pub use colorization::colorization_pair;
pub use context::{relative_patch_pairs, NEIGHBOUR_OFFSETS};
pub use jigsaw::JigsawTask;
pub use mae::{patchify, random_masking, unpatchify, MaeMask};
pub use masking::{mask_patches, mask_tokens, MaskedImages, MaskedText};
pub use rotation::{flip, rotate90, rotation_batch};
pub use sequence::{cpc_windows, mask_time_steps, order_verification, CpcWindows, OrderVerification};
pub use text::{
    cbow_windows, mask_token_ids, next_token_pairs, noise_distribution, nsp_input, NoiseSampler, nsp_pairs, skipgram_pairs,
    MaskedIds, SkipGramPairs,
};
pub use video::{frame_order, frame_order_permutations, FrameOrder};
