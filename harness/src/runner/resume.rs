//! `hilt run --resume`: what an interrupted run already holds, and setting
//! aside what its cut-short iterations left, so that they run again from
//! a clean slate.

use std::collections::VecDeque;
use std::path::Path;

use anyhow::Context;
use hilt_reports::IterationRecord;

use super::progress::Progress;
use super::slots::Slot;
use super::{results, run_json};
use crate::durable;

/// What the run directory held when the run resumed.
#[derive(Default)]
pub struct Earlier {
    /// The records of finished iterations, kept.
    pub done: Vec<IterationRecord>,
    /// The order the run started with.
    pub order: Option<Vec<Slot>>,
    /// Slots an earlier stop left out: their answer was known.
    pub dropped: Vec<Slot>,
    /// Lines of results.jsonl moved to results.damaged.jsonl.
    pub set_aside: Vec<usize>,
}

impl Earlier {
    /// A resumed run keeps what finished; the slot that was cut short, and
    /// those never started, run now.
    pub fn load(out: &Path, progress: &Progress) -> anyhow::Result<Self> {
        let info = run_json::read(out)?;
        let order = serde_json::from_value(info["order"].clone()).ok();
        let dropped =
            serde_json::from_value(info["stopped"]["dropped"].clone()).unwrap_or_default();
        let gone = durable::remove_temps(out)
            .with_context(|| format!("removing temporary files from {}", out.display()))?;
        if !gone.is_empty() {
            progress.note(&format!(
                "resume: removed {} (temporary files of the interrupted run)",
                gone.join(", ")
            ));
        }
        let kept = results::resume_records(out)?;
        if let Some(line) = kept.torn {
            progress.note(&format!(
                "resume: results.jsonl line {line} was cut short by the interruption: dropped, its iteration runs again"
            ));
        }
        if !kept.set_aside.is_empty() {
            // Not the interruption's doing: said even with --quiet, and
            // kept in run.json for the report.
            eprintln!(
                "hilt: WARNING: results.jsonl had {} line(s) that were not usable records; \
                 they are moved, verbatim, to {}/{} and their iterations run again:",
                kept.set_aside.len(),
                out.display(),
                results::DAMAGED
            );
            for (line, why) in &kept.set_aside {
                eprintln!("hilt:   line {line}: {why}");
            }
        }
        Ok(Self {
            done: kept.done,
            order,
            dropped,
            set_aside: kept.set_aside.iter().map(|(l, _)| *l).collect(),
        })
    }

    /// The slots still to run, with their place in the order.
    pub fn todo(&self, order: &[Slot]) -> VecDeque<(usize, Slot)> {
        order
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, s)| !self.done.iter().any(|d| results::record_key(d) == s.key()))
            .filter(|(_, s)| !self.dropped.contains(s))
            .collect()
    }
}

/// Moves the events and the iteration directories of the slots that run
/// again out of their way, keeping them beside for a post-mortem.
pub fn set_aside_interrupted(out: &Path, todo: &VecDeque<(usize, Slot)>) -> anyhow::Result<usize> {
    let redo: Vec<results::SlotKey> = todo.iter().map(|(_, s)| s.key()).collect();
    let moved = results::set_aside_events(out, &redo)?;
    for (_, s) in todo {
        let d = out.join("iterations").join(s.dir_name());
        if d.exists() {
            let aside = (1..)
                .map(|i| {
                    out.join("iterations")
                        .join(format!("{}.interrupted-{i}", s.dir_name()))
                })
                .find(|p| !p.exists())
                .expect("some name is free");
            std::fs::rename(&d, &aside)?;
        }
    }
    Ok(moved)
}
