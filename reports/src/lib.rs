//! Results of a run and what is computed from them.
//!
//! The harness appends one [`IterationRecord`] per finished iteration to
//! `results.jsonl`; everything here reads those records, so a report can be
//! rebuilt from any results directory, complete or interrupted.
//!
//! `hilt report` and `hilt compare` are [`load_run`], [`build_report`] and
//! [`write_report`]; `hilt history` is [`history::History`].

pub mod events;
pub mod history;
pub mod html;
pub mod json;
pub mod junit;
pub mod kcidb;
pub mod load;
pub mod markdown;
mod output;
pub mod plots;
pub mod record;
mod render_util;
pub mod report;
pub mod stats;
pub mod summary;
pub mod synth;
pub mod text;
pub mod verdict;

pub use load::{load_run, RunData, RunInfo};
pub use output::write_report;
pub use record::*;
pub use report::{build_report, Report, ReportOptions, TimelineSelection};
pub use summary::*;
