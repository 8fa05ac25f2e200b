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
    plan: &str,
    planned: u32,
    interrupted: bool,
    records: &[IterationRecord],
) -> RunSummary {
    let controls: Vec<ControlResult> = records.iter().filter_map(control_result).collect();
    let plain: Vec<IterationRecord> = records
        .iter()
        .filter(|r| r.control.is_none())
        .cloned()
        .collect();
    RunSummary {
        valid: (!controls.is_empty()).then(|| controls.iter().all(|c| c.detected)),
        quarantined: Vec::new(),
        controls,
        version: hilt_reports::RESULTS_VERSION,
        plan: plan.to_string(),
        planned_iterations: planned,
        finished_iterations: records.len() as u32,
        interrupted,
        variants: summarize(&plain),
    }
}
