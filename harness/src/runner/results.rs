//! The results directory, written as the run goes so that a crash, a dead
//! transport or Ctrl-C never loses what was already gathered.
//!
//! ```text
//! plan.yaml        copy of the plan as run
//! snapshot/        the plan, board and workload files as run, sources.json their sha256
//! run.json         provenance: hilt version, plan hash, kernels, images, order
//! events.jsonl     every record from agents, consoles and the host, as it came
//! results.jsonl    one IterationRecord per finished iteration
//! summary.json     per-variant summary, rewritten after every iteration
//! iterations/<variant>-<n>/console.log, console.ts, qemu.log
//! ```
//!
//! A resumed run keeps the records of finished iterations and moves what
//! the interrupted ones left (their directories, their events) aside.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use hilt_reports::{summarize, IterationRecord, VariantSummary};
use serde::Serialize;

use crate::durable::{self, Journal};

/// How long an event line may wait for its sync. Syncing each line costs
/// 1 to 6 ms on this project's hosts against 1 us for the write, and a
/// board sends tens of lines a second (hundreds in a sysrq dump); once a
/// second bounds what a host crash can lose for a sync or less a second.
/// Each record also syncs the events before it, so a record on disk
/// always has its events there too.
const EVENTS_SYNC_EVERY: Duration = Duration::from_secs(1);

pub struct RunDir {
    pub path: PathBuf,
    events: Mutex<Journal>,
    results: Mutex<Journal>,
    /// The first write that failed (a full disk): the run stops on it.
    write_failure: Mutex<Option<String>>,
}

impl RunDir {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path.join("iterations"))
            .with_context(|| format!("creating {}", path.display()))?;
        let open = |name: &str, every| {
            Journal::open(&path.join(name), every)
                .with_context(|| format!("opening {}", path.join(name).display()))
        };
        Ok(Self {
            path: path.to_path_buf(),
            events: Mutex::new(open("events.jsonl", EVENTS_SYNC_EVERY)?),
            results: Mutex::new(open("results.jsonl", Duration::ZERO)?),
            write_failure: Mutex::new(None),
        })
    }

    pub fn iteration_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.path.join("iterations").join(name);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(d)
    }

    /// Notes a failed write of any result file; the first one is kept.
    pub fn write_failed(&self, what: &str) {
        self.write_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| what.to_string());
    }

    pub fn write_failure(&self) -> Option<String> {
        self.write_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Appends one event line. Errors (a full disk) are returned so the
    /// caller can report them once; they never stop the run.
    pub fn event<T: Serialize>(&self, ev: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(ev)?;
        line.push(b'\n');
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&line)
            .inspect_err(|e| self.write_failed(&format!("events.jsonl: {e}")))
    }

    /// Appends the record of a finished iteration, synced, after syncing
    /// the events that led to it.
    pub fn record(&self, rec: &IterationRecord) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(rec)?;
        line.push(b'\n');
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sync()
            .inspect_err(|e| self.write_failed(&format!("events.jsonl: {e}")))
            .with_context(|| format!("syncing {}", self.path.join("events.jsonl").display()))?;
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&line)
            .inspect_err(|e| self.write_failed(&format!("results.jsonl: {e}")))
            .with_context(|| format!("appending to {}", self.path.join("results.jsonl").display()))
    }

    /// Replaces `name`: a reader, or the run after a crash, finds the old
    /// file or the new one, whole.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> anyhow::Result<()> {
        let path = self.path.join(name);
        durable::write_atomic(&path, &serde_json::to_vec_pretty(value)?)
            .inspect_err(|e| self.write_failed(&format!("{name}: {e}")))
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn write_summary(&self, s: &RunSummary) -> anyhow::Result<()> {
        self.write_json("summary.json", s)
    }
}

impl Drop for RunDir {
    /// The events after the last record (an interrupted iteration's, the
    /// power-off) reach the disk too.
    fn drop(&mut self) {
        let _ = self
            .events
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .sync();
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunSummary {
    pub version: u32,
    pub plan: String,
    pub planned_iterations: u32,
    pub finished_iterations: u32,
    pub interrupted: bool,
    pub variants: Vec<VariantSummary>,
    #[serde(default)]
    pub controls: Vec<ControlResult>,
    /// None without controls; false when any control went undetected.
    #[serde(default)]
    pub valid: Option<bool>,
    /// Boards taken out of the run after repeated infrastructure errors.
    #[serde(default)]
    pub quarantined: Vec<String>,
    #[serde(default)]
    pub boards: Vec<BoardStat>,
    /// Wall time of the iterations (preparing artifacts excluded), and the
    /// CPU time hilt itself used in it: the harness's overhead.
    #[serde(default)]
    pub iterations_wall_ms: u64,
    #[serde(default)]
    pub hilt_cpu_ms: u64,
    /// The plan's named signatures, each variant against the first: the
    /// answer the run is for, printed first.
    #[serde(default)]
    pub signature_verdicts: Vec<hilt_reports::verdict::SignatureVerdict>,
    /// Why the stopping rule ended the run early, when it did.
    #[serde(default)]
    pub stopped: Option<String>,
}

/// What one board did in the run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BoardStat {
    pub board: String,
    pub iterations: u32,
    pub infra_errors: u32,
    /// Sum of its iterations' wall times.
    pub busy_ms: u64,
    pub mean_boot_ms: Option<u64>,
}

fn board_stats(records: &[IterationRecord]) -> Vec<BoardStat> {
    let mut out: Vec<BoardStat> = Vec::new();
    let mut boots: Vec<Vec<u64>> = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.outcome != hilt_reports::Outcome::NotRun)
    {
        let i = match out.iter().position(|b| b.board == r.board) {
            Some(i) => i,
            None => {
                out.push(BoardStat {
                    board: r.board.clone(),
                    iterations: 0,
                    infra_errors: 0,
                    busy_ms: 0,
                    mean_boot_ms: None,
                });
                boots.push(Vec::new());
                out.len() - 1
            }
        };
        out[i].iterations += 1;
        out[i].infra_errors += (r.outcome == hilt_reports::Outcome::InfraError) as u32;
        out[i].busy_ms += r.wall_ms;
        boots[i].extend(r.boot_ms);
    }
    for (b, v) in out.iter_mut().zip(&boots) {
        b.mean_boot_ms = (!v.is_empty()).then(|| v.iter().sum::<u64>() / v.len() as u64);
    }
    out.sort_by(|a, b| a.board.cmp(&b.board));
    out
}

/// Holds `dir/.hilt.lock` for as long as the file lives: a run and a
/// resume of it (or two resumes) never write one directory at once.
pub fn lock_run_dir(dir: &Path) -> anyhow::Result<File> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".hilt.lock"))
        .with_context(|| format!("opening {}/.hilt.lock", dir.display()))?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        anyhow::bail!(
            "{} is in use by another hilt process: wait for it to end, or stop it first",
            dir.display()
        );
    }
    Ok(f)
}

/// A line of `results.jsonl` that is not a record this hilt can read.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    /// Counted from 1.
    pub line: usize,
    /// As it was in the file, without its newline.
    pub bytes: Vec<u8>,
    pub why: String,
}

/// What `results.jsonl` holds.
#[derive(Debug, Default)]
pub struct Records {
    /// Each with its line number and its bytes.
    pub records: Vec<(usize, Vec<u8>, IterationRecord)>,
    /// The last line when no newline ends it and it is not a record: a
    /// record being written when hilt or the host went down. A record is
    /// written with its newline in one append, so only the interruption
    /// can leave this.
    pub torn: Option<BadLine>,
    /// Every other line that is not a record: whatever did this (a bad
    /// disk, an edit, a record from a newer hilt) was not an interruption.
    pub damaged: Vec<BadLine>,
}

/// Reads `dir/results.jsonl`, if there is one.
pub fn read_records(dir: &Path) -> anyhow::Result<Records> {
    let path = dir.join("results.jsonl");
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Records::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = Records::default();
    let mut lines = text.split(|b| *b == b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        // Only the piece after the last newline is unterminated.
        let last = lines.peek().is_none();
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(r) => out.records.push((i + 1, line.to_vec(), r)),
            Err(e) => {
                let bad = BadLine {
                    line: i + 1,
                    bytes: line.to_vec(),
                    why: e.to_string(),
                };
                match last {
                    true => out.torn = Some(bad),
                    false => out.damaged.push(bad),
                }
            }
        }
    }
    Ok(out)
}

/// What a resume did with `results.jsonl`.
#[derive(Debug)]
pub struct Resumed {
    /// The record of each finished iteration: now the whole file.
    pub done: Vec<IterationRecord>,
    /// The line number of a torn last line, dropped: its iteration runs
    /// again.
    pub torn: Option<usize>,
    /// The lines moved to `results.damaged.jsonl`, and why.
    pub set_aside: Vec<(usize, String)>,
}

pub use hilt_reports::load::DAMAGED;

/// Takes stock of `dir/results.jsonl` for a resume and rewrites it with
/// the record of each finished iteration. A torn last line is dropped.
/// Every other line that is not a usable record (unreadable, or a second
/// record of one iteration) is appended verbatim to `results.damaged.jsonl`
/// with its line number and why, and synced there before results.jsonl
/// loses it: nothing a run wrote is ever deleted. Their iterations run
/// again. Records of iterations that did not run are dropped: those
/// iterations run now.
pub fn resume_records(dir: &Path) -> anyhow::Result<Resumed> {
    let stock = read_records(dir)?;
    let mut done: Vec<(usize, IterationRecord)> = Vec::new();
    let mut aside = stock.damaged;
    for (line, bytes, r) in stock.records {
        if r.outcome == hilt_reports::Outcome::NotRun {
            continue;
        }
        match done.iter().find(|(_, d)| record_key(d) == record_key(&r)) {
            Some((first, _)) => aside.push(BadLine {
                line,
                bytes,
                why: format!(
                    "a second record of {} iteration {} (the first is line {first})",
                    r.variant, r.iteration
                ),
            }),
            None => done.push((line, r)),
        }
    }
    aside.sort_by_key(|b| b.line);
    if !aside.is_empty() {
        let at = chrono::Utc::now().to_rfc3339();
        let mut text = Vec::new();
        for b in &aside {
            let mut entry = serde_json::json!({
                "line": b.line,
                "why": b.why,
                "set_aside_at": at,
            });
            // Verbatim: bytes that are not UTF-8 cannot be a JSON string.
            match std::str::from_utf8(&b.bytes) {
                Ok(t) => entry["text"] = t.into(),
                Err(_) => entry["hex"] = hex::encode(&b.bytes).into(),
            }
            serde_json::to_writer(&mut text, &entry)?;
            text.push(b'\n');
        }
        let path = dir.join(DAMAGED);
        Journal::open(&path, Duration::ZERO)
            .and_then(|mut j| j.append(&text))
            .and_then(|_| durable::sync_dir(dir))
            .with_context(|| format!("setting damaged lines aside in {}", path.display()))?;
    }
    let done: Vec<IterationRecord> = done.into_iter().map(|(_, r)| r).collect();
    rewrite_records(dir, &done)?;
    Ok(Resumed {
        done,
        torn: stock.torn.map(|b| b.line),
        set_aside: aside.into_iter().map(|b| (b.line, b.why)).collect(),
    })
}

pub fn record_key(r: &IterationRecord) -> SlotKey {
    (r.variant.clone(), r.iteration, r.control.clone())
}

/// Replaces `dir/results.jsonl` with `keep`, atomically.
pub fn rewrite_records(dir: &Path, keep: &[IterationRecord]) -> anyhow::Result<()> {
    let mut text = Vec::new();
    for r in keep {
        serde_json::to_writer(&mut text, r)?;
        text.push(b'\n');
    }
    let path = dir.join("results.jsonl");
    durable::write_atomic(&path, &text).with_context(|| format!("rewriting {}", path.display()))
}

/// Identifies a slot in records and event lines.
pub type SlotKey = (String, u32, Option<String>);

/// Moves the event lines of slots about to be redone to
/// events.interrupted.jsonl, so that each slot's timeline in the report is
/// that of its one complete boot. Returns how many lines moved.
pub fn set_aside_events(dir: &Path, redo: &[SlotKey]) -> anyhow::Result<usize> {
    #[derive(serde::Deserialize)]
    struct Head {
        variant: Option<String>,
        iteration: Option<u32>,
        control: Option<String>,
    }
    let path = dir.join("events.jsonl");
    let Ok(text) = std::fs::read(&path) else {
        return Ok(0);
    };
    let (mut keep, mut aside) = (Vec::new(), Vec::new());
    for line in text.split_inclusive(|b| *b == b'\n') {
        let moved = serde_json::from_slice::<Head>(line.trim_ascii_end())
            .ok()
            .and_then(|h| Some((h.variant?, h.iteration?, h.control)))
            .is_some_and(|k| redo.contains(&k));
        let to = if moved { &mut aside } else { &mut keep };
        to.extend_from_slice(line);
        if moved && !line.ends_with(b"\n") {
            to.push(b'\n');
        }
    }
    if aside.is_empty() {
        return Ok(0);
    }
    let lines = aside.iter().filter(|b| **b == b'\n').count();
    // Synced before events.jsonl loses them: a crash in between leaves
    // lines in both files, never in neither.
    Journal::open(&dir.join("events.interrupted.jsonl"), Duration::ZERO)?.append(&aside)?;
    durable::write_atomic(&path, &keep)?;
    Ok(lines)
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ControlResult {
    pub variant: String,
    pub control: String,
    /// The kernel itself reported the injected hang.
    pub detected: bool,
    pub detail: String,
}

/// A control counts as detected only when the kernel's own hung-task
/// report was seen: that is what proves the detectors work end to end.
fn control_result(r: &IterationRecord) -> Option<ControlResult> {
    let control = r.control.clone()?;
    let reported = r
        .kernel_events
        .iter()
        .find(|t| t.starts_with("INFO: task hung in") || t.contains("blocked for more than"));
    let detected = hilt_reports::report::control_detected(r);
    let detail = match (reported, &r.failure) {
        (Some(t), Some(f)) => format!(
            "{t}; first seen by {:?} after {:.1} s",
            f.detector,
            f.detected_after_ms as f64 / 1000.0
        ),
        (Some(t), None) => t.clone(),
        // The bio-wait control's evidence is the watcher's, never khungtaskd's.
        (None, Some(f)) if detected => format!(
            "{}; seen by {:?} after {:.1} s",
            f.title,
            f.detector,
            f.detected_after_ms as f64 / 1000.0
        ),
        (None, _) => format!("{}: {}", r.outcome.as_str(), r.detail),
    };
    Some(ControlResult {
        variant: r.variant.clone(),
        control,
        detected,
        detail,
    })
}

pub fn summary_of(
    plan: &crate::plan::Plan,
    planned: u32,
    interrupted: bool,
    records: &[IterationRecord],
) -> RunSummary {
    let variants: Vec<String> = plan.variants.iter().map(|v| v.name.clone()).collect();
    let controls: Vec<ControlResult> = records.iter().filter_map(control_result).collect();
    let plain: Vec<IterationRecord> = records
        .iter()
        .filter(|r| r.control.is_none())
        .cloned()
        .collect();
    RunSummary {
        boards: board_stats(records),
        iterations_wall_ms: 0,
        hilt_cpu_ms: 0,
        valid: (!controls.is_empty()).then(|| controls.iter().all(|c| c.detected)),
        quarantined: Vec::new(),
        controls,
        version: hilt_reports::RESULTS_VERSION,
        plan: plan.name.clone(),
        signature_verdicts: hilt_reports::verdict::all_verdicts(
            &plan.question(),
            &variants,
            records,
        ),
        stopped: None,
        planned_iterations: planned,
        finished_iterations: records.len() as u32,
        interrupted,
        variants: summarize(&plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_torn_last_record_is_counted_and_skipped() {
        let d = tempfile::tempdir().unwrap();
        let rd = RunDir::create(d.path()).unwrap();
        let slot = super::super::slots::Slot {
            variant: "a".into(),
            iteration: 0,
            control: None,
        };
        let mut r = super::super::iteration::not_run("b", &slot, "test");
        r.outcome = hilt_reports::Outcome::Pass;
        rd.record(&r).unwrap();
        r.iteration = 1;
        let mut line = serde_json::to_vec(&r).unwrap();
        line.truncate(line.len() / 2);
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join("results.jsonl"))
            .unwrap()
            .write_all(&line)
            .unwrap();
        let stock = read_records(d.path()).unwrap();
        assert_eq!(stock.records.len(), 1);
        assert_eq!(stock.torn.map(|b| (b.line, b.bytes)), Some((2, line)));
        assert!(stock.damaged.is_empty());
        let recs: Vec<IterationRecord> = stock.records.into_iter().map(|(_, _, r)| r).collect();
        rewrite_records(d.path(), &recs).unwrap();
        let again = read_records(d.path()).unwrap();
        assert!(again.torn.is_none() && again.damaged.is_empty());
        assert_eq!(again.records.len(), 1);
    }

    fn record(iteration: u32) -> IterationRecord {
        let slot = super::super::slots::Slot {
            variant: "a".into(),
            iteration,
            control: None,
        };
        let mut r = super::super::iteration::not_run("b", &slot, "test");
        r.outcome = hilt_reports::Outcome::Pass;
        r
    }

    fn line(r: &IterationRecord) -> String {
        serde_json::to_string(r).unwrap() + "\n"
    }

    /// Only the last line, cut short, is the interruption's. Any other
    /// line hilt cannot read (disk damage, an edit, a newer hilt's record)
    /// is kept verbatim in results.damaged.jsonl, never deleted.
    #[test]
    fn resume_sets_damaged_lines_aside_and_drops_only_a_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let (r0, r2) = (record(0), record(2));
        let mut again = r0.clone();
        again.detail = "run twice".into();
        let torn = line(&record(3));
        let garbage = "{\"variant\":\"a\",\"iteration\":1,\"outc";
        let text = [
            line(&r0),
            format!("{garbage}\n"),
            line(&r2),
            line(&again),
            torn[..torn.len() / 2].to_string(),
        ]
        .concat();
        std::fs::write(d.path().join("results.jsonl"), &text).unwrap();
        let kept = resume_records(d.path()).unwrap();
        let iterations: Vec<u32> = kept.done.iter().map(|r| r.iteration).collect();
        assert_eq!(iterations, [0, 2]);
        assert_eq!(kept.torn, Some(5));
        let lines: Vec<usize> = kept.set_aside.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 4]);
        assert_eq!(
            std::fs::read_to_string(d.path().join("results.jsonl")).unwrap(),
            line(&r0) + &line(&r2)
        );
        let aside = std::fs::read_to_string(d.path().join(DAMAGED)).unwrap();
        let aside: Vec<serde_json::Value> = aside
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(aside.len(), 2, "{aside:?}");
        assert_eq!(aside[0]["line"], 2);
        assert_eq!(aside[0]["text"], garbage);
        assert_eq!(aside[1]["line"], 4);
        assert_eq!(aside[1]["text"].as_str().unwrap(), line(&again).trim_end());
        assert!(aside[1]["why"]
            .as_str()
            .unwrap()
            .contains("the first is line 1"));
        // Bytes that are not UTF-8 are kept too, as hex.
        std::fs::write(d.path().join("results.jsonl"), b"\xff\xfe\n").unwrap();
        let kept = resume_records(d.path()).unwrap();
        assert_eq!(kept.set_aside.len(), 1);
        let aside = std::fs::read_to_string(d.path().join(DAMAGED)).unwrap();
        let last: serde_json::Value = serde_json::from_str(aside.lines().last().unwrap()).unwrap();
        assert_eq!((&last["line"], &last["hex"]), (&1.into(), &"fffe".into()));
    }

    /// A resume after `kill -9` mid-event: the torn event line must not
    /// swallow the first event the resumed run writes.
    #[test]
    fn a_torn_event_line_does_not_swallow_the_next_event() {
        let d = tempfile::tempdir().unwrap();
        let first = r#"{"t_ms":1,"variant":"a","iteration":0,"source":"host"}"#;
        std::fs::write(
            d.path().join("events.jsonl"),
            format!("{first}\n{{\"t_ms\":2,\"vari"),
        )
        .unwrap();
        set_aside_events(d.path(), &[]).unwrap();
        let rd = RunDir::create(d.path()).unwrap();
        rd.event(&serde_json::json!({"t_ms": 3, "variant": "a", "iteration": 1}))
            .unwrap();
        drop(rd);
        let text = std::fs::read_to_string(d.path().join("events.jsonl")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], first);
        assert_eq!(lines[1], r#"{"t_ms":2,"vari"#, "kept as it was");
        assert_eq!(lines[2], r#"{"iteration":1,"t_ms":3,"variant":"a"}"#);
    }

    /// The disk fills while a record, an event and the summary are
    /// written: results.jsonl and events.jsonl keep whole lines,
    /// summary.json stays the last complete one, and no temporary file is
    /// left behind.
    #[test]
    fn a_full_disk_keeps_whole_lines_and_a_whole_summary() {
        let d = tempfile::tempdir().unwrap();
        let name = "runner::results::tests::a_full_disk_keeps_whole_lines_and_a_whole_summary";
        let summary = |finished: u32, stopped: usize| RunSummary {
            version: hilt_reports::RESULTS_VERSION,
            plan: "p".into(),
            planned_iterations: 2,
            finished_iterations: finished,
            interrupted: false,
            variants: Vec::new(),
            controls: Vec::new(),
            valid: None,
            quarantined: Vec::new(),
            boards: Vec::new(),
            iterations_wall_ms: 0,
            hilt_cpu_ms: 0,
            signature_verdicts: Vec::new(),
            stopped: Some("x".repeat(stopped)),
        };
        let limit = 64 * 1024;
        if let Some(dir) = crate::durable::small_disk(name, limit, d.path()) {
            let rd = RunDir::create(&dir).unwrap();
            rd.event(&serde_json::json!({"t_ms": 1})).unwrap();
            rd.record(&record(0)).unwrap();
            rd.write_summary(&summary(1, 1)).unwrap();
            let mut big = record(1);
            big.detail = "x".repeat(limit as usize);
            rd.event(&big).unwrap_err();
            rd.record(&big).unwrap_err();
            rd.write_summary(&summary(2, limit as usize)).unwrap_err();
            assert!(rd.write_failure().is_some());
            return;
        }
        let results = std::fs::read_to_string(d.path().join("results.jsonl")).unwrap();
        let stock = read_records(d.path()).unwrap();
        assert_eq!(stock.records.len(), 1, "{results}");
        assert!(
            stock.torn.is_none() && stock.damaged.is_empty(),
            "{results}"
        );
        assert!(results.ends_with('\n'));
        let events = std::fs::read_to_string(d.path().join("events.jsonl")).unwrap();
        assert_eq!(events, "{\"t_ms\":1}\n");
        let s: RunSummary =
            serde_json::from_slice(&std::fs::read(d.path().join("summary.json")).unwrap()).unwrap();
        assert_eq!(s.finished_iterations, 1);
        assert_eq!(crate::durable::temps_in(d.path()), Vec::<String>::new());
    }

    #[test]
    fn events_of_redone_slots_are_moved_aside() {
        let d = tempfile::tempdir().unwrap();
        let lines = [
            r#"{"t_ms":1,"variant":"a","iteration":0,"control":"swap_freeze","source":"host"}"#,
            r#"{"t_ms":2,"variant":"a","iteration":0,"source":"host"}"#,
            r#"{"t_ms":3,"variant":"a","iteration":1,"source":"agent"}"#,
            r#"{"t_ms":4,"variant":"a","iteration":0,"source":"agent"}"#,
        ];
        std::fs::write(d.path().join("events.jsonl"), lines.join("\n") + "\n").unwrap();
        let moved = set_aside_events(d.path(), &[("a".into(), 0, None)]).unwrap();
        assert_eq!(moved, 2);
        let kept = std::fs::read_to_string(d.path().join("events.jsonl")).unwrap();
        assert_eq!(kept, format!("{}\n{}\n", lines[0], lines[2]));
        let aside = std::fs::read_to_string(d.path().join("events.interrupted.jsonl")).unwrap();
        assert_eq!(aside, format!("{}\n{}\n", lines[1], lines[3]));
    }

    #[test]
    fn a_run_dir_in_use_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let _held = lock_run_dir(d.path()).unwrap();
        let err = lock_run_dir(d.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another hilt process"), "{err}");
    }
}
