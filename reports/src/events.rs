//! Per-iteration timelines from `events.jsonl`: memory pressure, swap and
//! the moments things went wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::load::{RunData, Slot};
use crate::IterationRecord;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Host seconds since this iteration's power-on.
    pub t_s: f64,
    pub psi_some_avg10: f64,
    pub psi_full_avg10: f64,
    pub swap_used_mib: f64,
    pub mem_available_mib: f64,
    /// Pages swapped out during the interval.
    pub pswpout: u64,
    pub allocstall: u64,
    pub reads: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineMark {
    pub t_s: f64,
    pub label: String,
    /// Marks that are the iteration's failure (as opposed to other events).
    pub failure: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The variant's label in the report.
    pub label: String,
    pub variant: String,
    pub iteration: u32,
    /// Set for a positive control's boot.
    pub control: Option<String>,
    pub outcome: crate::Outcome,
    pub points: Vec<TimelinePoint>,
    pub marks: Vec<TimelineMark>,
}

// Only the fields a timeline needs; serde skips the rest of each line.
#[derive(Deserialize)]
struct Head {
    variant: String,
    iteration: u32,
    #[serde(rename = "type")]
    ty: Option<String>,
    kind: Option<String>,
    phase: Option<String>,
    control: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Line {
    t_ms: u64,
    uptime_ms: Option<u64>,
    reads: u64,
    psi: Option<Psi>,
    mem: Mem,
    vmstat: Vmstat,
    reader: Option<u32>,
    stalled_ms: Option<u64>,
    event: Option<KernelEvent>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Psi {
    some_avg10: f64,
    full_avg10: f64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Mem {
    available_kb: u64,
    swap_total_kb: u64,
    swap_free_kb: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Vmstat {
    pswpout: u64,
    allocstall: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KernelEvent {
    title: String,
}

/// Reads the timelines of the wanted boots in one pass over
/// `events.jsonl`. Lines of other kinds are recognised by a substring
/// before any JSON parsing, since kmsg lines dominate the file.
///
/// Event lines name a variant and an iteration; a positive control and
/// iteration 0 share both, so a line without a `control` field belongs to
/// the k-th boot of its (variant, iteration) in run.json's order, k counted
/// by the host's `power_on` events.
pub fn read_timelines(run: &RunData, wanted: &[Slot]) -> Result<BTreeMap<Slot, Timeline>> {
    let path = run.dir.join("events.jsonl");
    let mut out = BTreeMap::new();
    if wanted.is_empty() || !path.exists() {
        return Ok(out);
    }
    let wanted: BTreeSet<&Slot> = wanted.iter().collect();
    let mut boots_of: BTreeMap<(String, u32), Vec<Slot>> = BTreeMap::new();
    for s in run.info.iter().flat_map(|i| i.order.iter()) {
        boots_of
            .entry((s.variant.clone(), s.iteration))
            .or_default()
            .push(s.clone());
    }
    let mut boots_seen: BTreeMap<(String, u32), usize> = BTreeMap::new();
    // Runs that list their boards tag every line of a control's boot, so
    // an untagged line is the plain iteration whatever order several
    // boards ran the slots in.
    let tagged = run.info.as_ref().is_some_and(|i| !i.boards.is_empty());
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut acc: BTreeMap<Slot, Acc> = BTreeMap::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        let interesting = [
            "\"type\":\"interval\"",
            "\"type\":\"heartbeat\"",
            "\"type\":\"reader_stall\"",
            "\"type\":\"kernel\"",
            "\"kind\":\"kernel\"",
            "\"phase\":\"power_on\"",
        ];
        if !interesting.iter().any(|s| text.contains(s)) {
            continue;
        }
        // A torn last line, or a record this version does not know: skip it.
        let Ok(head) = serde_json::from_str::<Head>(text) else {
            continue;
        };
        let key = (head.variant, head.iteration);
        if head.phase.as_deref() == Some("power_on") {
            *boots_seen.entry(key).or_default() += 1;
            continue;
        }
        let slot = match head.control {
            Some(c) => Slot {
                variant: key.0,
                iteration: key.1,
                control: Some(c),
            },
            None if tagged => Slot {
                variant: key.0,
                iteration: key.1,
                control: None,
            },
            None => {
                let k = boots_seen.get(&key).copied().unwrap_or(1).saturating_sub(1);
                match boots_of.get(&key).and_then(|b| b.get(k)) {
                    Some(s) => s.clone(),
                    None => Slot {
                        variant: key.0,
                        iteration: key.1,
                        control: None,
                    },
                }
            }
        };
        if !wanted.contains(&slot) {
            continue;
        }
        let Ok(l) = serde_json::from_str::<Line>(text) else {
            continue;
        };
        let a = acc.entry(slot).or_default();
        let t_s = l.t_ms as f64 / 1000.0;
        // A clock no board can have (past i64) says nothing about the offset.
        if let Some(off) = l.uptime_ms.and_then(|up| {
            i64::try_from(l.t_ms)
                .ok()?
                .checked_sub(i64::try_from(up).ok()?)
        }) {
            a.clock_offsets.push(off);
        }
        match (head.ty.as_deref(), head.kind.as_deref()) {
            (Some("interval"), _) => a.points.push(TimelinePoint {
                t_s,
                psi_some_avg10: l.psi.as_ref().map_or(0.0, |p| p.some_avg10),
                psi_full_avg10: l.psi.as_ref().map_or(0.0, |p| p.full_avg10),
                swap_used_mib: l.mem.swap_total_kb.saturating_sub(l.mem.swap_free_kb) as f64
                    / 1024.0,
                mem_available_mib: l.mem.available_kb as f64 / 1024.0,
                pswpout: l.vmstat.pswpout,
                allocstall: l.vmstat.allocstall,
                reads: l.reads,
            }),
            (Some("reader_stall"), _) => a.marks.push(TimelineMark {
                t_s,
                label: format!(
                    "reader {} stalled {:.0} s",
                    l.reader.unwrap_or(0),
                    l.stalled_ms.unwrap_or(0) as f64 / 1000.0
                ),
                failure: false,
            }),
            (Some("kernel"), _) | (_, Some("kernel")) => {
                let title = l.event.map(|e| e.title).unwrap_or_default();
                if !a.marks.iter().any(|m| m.label == title) {
                    a.marks.push(TimelineMark {
                        t_s,
                        label: title,
                        failure: false,
                    });
                }
            }
            _ => {}
        }
    }
    let records: BTreeMap<(&str, u32, Option<&str>), &IterationRecord> = run
        .records
        .iter()
        .map(|r| ((r.variant.as_str(), r.iteration, r.control.as_deref()), r))
        .collect();
    for (slot, mut a) in acc {
        let Some(&rec) = records.get(&(
            slot.variant.as_str(),
            slot.iteration,
            slot.control.as_deref(),
        )) else {
            continue;
        };
        if let Some(f) = &rec.failure {
            a.marks.push(TimelineMark {
                t_s: f.detected_after_ms as f64 / 1000.0,
                label: format!("{} detected", rec.outcome.as_str()),
                failure: true,
            });
            // The board's clock dates the kernel's own report; map it onto
            // host time with the median offset seen in agent records.
            let offset = median(&mut a.clock_offsets);
            if let (Some(up), Some(off)) = (f.uptime_ms, offset) {
                a.marks.push(TimelineMark {
                    t_s: (up as i64 + off) as f64 / 1000.0,
                    label: f.title.clone(),
                    failure: true,
                });
            }
            // When the culprit last made progress, as the D-state watcher saw it.
            if let (Some(t), Some(off)) = (&f.timing, offset) {
                a.marks.push(TimelineMark {
                    t_s: (t.stopped_ms as i64 + off) as f64 / 1000.0,
                    label: "last progress".into(),
                    failure: true,
                });
            }
        }
        a.marks.sort_by(|x, y| x.t_s.total_cmp(&y.t_s));
        let timeline = Timeline {
            label: slot.variant.clone(),
            variant: slot.variant.clone(),
            iteration: slot.iteration,
            control: slot.control.clone(),
            outcome: rec.outcome,
            points: a.points,
            marks: a.marks,
        };
        out.insert(slot, timeline);
    }
    Ok(out)
}

#[derive(Default)]
struct Acc {
    points: Vec<TimelinePoint>,
    marks: Vec<TimelineMark>,
    clock_offsets: Vec<i64>,
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}
