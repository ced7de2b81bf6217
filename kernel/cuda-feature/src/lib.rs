//! Empty on purpose: depending on this crate turns on `sslab/cuda`.
