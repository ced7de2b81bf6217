//! Chapter material that is data, not logic: tables, timelines and
//! knowledge checks, kept here so the notebooks stay thin and the facts are
//! in one reviewed place.

pub mod published;
pub mod why_ssl;

mod quiz;

pub use quiz::{Question, Quiz, QuizResult};
