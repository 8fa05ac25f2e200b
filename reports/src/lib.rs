//! Results of a run and what is computed from them.
//!
//! The harness appends one [`IterationRecord`] per finished iteration to
//! `results.jsonl`; everything here reads those records, so a report can be
//! rebuilt from any results directory, complete or interrupted.

pub mod record;
pub mod summary;

pub use record::*;
pub use summary::*;
