//! Every run's figures in SQLite, for trends over nights and for flagging a
//! run that is worse than the ones before it.
//!
//! The database path is the caller's choice (the harness uses
//! `$HILT_HISTORY` or `~/.local/share/hilt/history.sqlite`). SQLite is
//! compiled in (rusqlite's `bundled`), so no system library is needed.
//!
//! Deadlocks and stalls are stored apart per variant, and each of the
//! plan's named signatures per run and variant (deadlocks and stalls that
//! carry it), so a night can be flagged for one signature coming back.
//!
//! The data (`db`) is kept apart from its rendering (`render`): the trend
//! figures read the data, and the rendering draws the figures.

pub(crate) mod db;
mod render;

pub use db::{
    named_signatures, run_key, run_valid, History, HistoryRun, HistoryVariant, Regression,
    RegressionCheck, RegressionKind, RegressionOptions, SignatureCount, TrendPoint, TrendRun,
    TrendSeries, Trends,
};
pub use render::{trends_markdown, write_trends};
