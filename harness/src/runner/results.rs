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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use hilt_reports::{summarize, IterationRecord, VariantSummary};
use serde::Serialize;

pub struct RunDir {
    pub path: PathBuf,
    events: Mutex<File>,
    results: Mutex<File>,
    /// The first write that failed (a full disk): the run stops on it.
    write_failure: Mutex<Option<String>>,
}

impl RunDir {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path.join("iterations"))
            .with_context(|| format!("creating {}", path.display()))?;
        let open = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path.join(name))
        };
        Ok(Self {
            path: path.to_path_buf(),
            events: Mutex::new(open("events.jsonl")?),
            results: Mutex::new(open("results.jsonl")?),
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
        let mut f = self.events.lock().unwrap_or_else(|p| p.into_inner());
        append_line(&mut f, &line).inspect_err(|e| self.write_failed(&format!("events.jsonl: {e}")))
    }

    pub fn record(&self, rec: &IterationRecord) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(rec)?;
        line.push(b'\n');
        let mut f = self.results.lock().unwrap_or_else(|p| p.into_inner());
        append_line(&mut f, &line)
            .and_then(|_| f.sync_data())
            .inspect_err(|e| self.write_failed(&format!("results.jsonl: {e}")))
            .with_context(|| format!("appending to {}", self.path.join("results.jsonl").display()))
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> anyhow::Result<()> {
        // Rename over the old file so a reader never sees half of it.
        let tmp = self.path.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
        std::fs::rename(&tmp, self.path.join(name))?;
        Ok(())
    }

    pub fn write_summary(&self, s: &RunSummary) -> anyhow::Result<()> {
        self.write_json("summary.json", s)
    }
}

/// Appends a whole line or nothing: a line cut off by a full disk is taken
/// back, so every reader of the file still finds only complete records.
fn append_line(f: &mut File, line: &[u8]) -> std::io::Result<()> {
    let len = f.metadata()?.len();
    f.write_all(line).inspect_err(|_| {
        let _ = f.set_len(len);
    })
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

/// The records in `dir/results.jsonl`; a torn last line (a run killed while
/// writing it) is skipped and counted.
pub fn read_records(dir: &Path) -> anyhow::Result<(Vec<IterationRecord>, usize)> {
    let path = dir.join("results.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((out, bad))
}

/// Replaces `dir/results.jsonl` with `keep`, atomically.
pub fn rewrite_records(dir: &Path, keep: &[IterationRecord]) -> anyhow::Result<()> {
    let mut text = Vec::new();
    for r in keep {
        serde_json::to_writer(&mut text, r)?;
        text.push(b'\n');
    }
    let tmp = dir.join(".results.jsonl.tmp");
    std::fs::write(&tmp, &text)?;
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join("results.jsonl"))?;
    Ok(())
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
        if moved { &mut aside } else { &mut keep }.extend_from_slice(line);
    }
    if aside.is_empty() {
        return Ok(0);
    }
    let lines = aside.iter().filter(|b| **b == b'\n').count();
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("events.interrupted.jsonl"))?
        .write_all(&aside)?;
    let tmp = dir.join(".events.jsonl.tmp");
    std::fs::write(&tmp, &keep)?;
    std::fs::rename(&tmp, &path)?;
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

    #[test]
    fn a_torn_last_record_is_counted_and_skipped() {
        let d = tempfile::tempdir().unwrap();
        let rd = RunDir::create(d.path()).unwrap();
        let slot = super::super::Slot {
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
        let (recs, torn) = read_records(d.path()).unwrap();
        assert_eq!((recs.len(), torn), (1, 1));
        rewrite_records(d.path(), &recs).unwrap();
        assert_eq!(read_records(d.path()).unwrap(), (recs, 0));
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
