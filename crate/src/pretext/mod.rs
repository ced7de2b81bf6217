//! Pretext tasks: transformations T: x → (x̃, y) that make a supervised
//! problem out of unlabelled data.
//!
//! * [`rotation_batch`] — predict which of four rotations was applied (RotNet).
//! * [`mask_patches`] — hide square patches of an image (the input of masked autoencoders).
//! * [`mask_tokens`] — BERT's masking of words: the model must restore them.

mod masking;
mod rotation;

pub use masking::{mask_patches, mask_tokens, MaskedImages, MaskedText};
pub use rotation::{flip, rotate90, rotation_batch};
