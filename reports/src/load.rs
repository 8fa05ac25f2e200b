//! Reading a results directory, complete or interrupted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{IterationRecord, VariantSummary};

/// `run.json`, the run's provenance. Every field defaults so that a
/// run.json from an older or newer hilt still loads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunInfo {
    pub version: u32,
    pub hilt_version: String,
    pub plan: String,
    pub plan_path: String,
    pub plan_sha256: String,
    pub board: String,
    pub started_at: String,
    pub host: String,
    pub variants: Vec<VariantInfo>,
    pub media: Option<MediaInfo>,
    /// The order boots ran in, positive controls first.
    pub order: Vec<Slot>,
    /// The boards that ran the slots (absent before parallel boards).
    pub boards: Vec<String>,
    /// The plan's named signatures, what it expects of them, and its
    /// stopping rule (absent before per-signature verdicts).
    pub question: Option<crate::verdict::Question>,
    /// Set when the stopping rule ended the run before its last planned boot.
    pub stopped: Option<StopRecord>,
}

/// Why a run stopped early, and the planned boots it left out on purpose
/// (they are not missing: the answer was known without them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StopRecord {
    pub reason: String,
    /// Kernel-verdict iterations recorded when the rule stopped the run.
    pub after_iterations: u32,
    pub dropped: Vec<Slot>,
}

/// One planned boot: an iteration of a variant, or its positive control.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "SlotRepr")]
pub struct Slot {
    pub variant: String,
    pub iteration: u32,
    /// The control's name (e.g. `swap_freeze`) for a positive control.
    pub control: Option<String>,
}

// Before positive controls, run.json wrote the order as [variant, iteration] pairs.
#[derive(Deserialize)]
#[serde(untagged)]
enum SlotRepr {
    Pair(String, u32),
    Full {
        variant: String,
        iteration: u32,
        #[serde(default)]
        control: Option<String>,
    },
}

impl From<SlotRepr> for Slot {
    fn from(r: SlotRepr) -> Self {
        match r {
            SlotRepr::Pair(variant, iteration) => Slot {
                variant,
                iteration,
                control: None,
            },
            SlotRepr::Full {
                variant,
                iteration,
                control,
            } => Slot {
                variant,
                iteration,
                control,
            },
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VariantInfo {
    pub name: String,
    pub kernel_package: String,
    pub kernel_release: String,
    pub kernel_image_sha256: String,
    pub modules_loaded: Vec<String>,
    pub modules_builtin: Vec<String>,
    /// Set for kernels hilt built from source.
    pub kernel_build: Option<KernelBuild>,
}

/// Where a source-built kernel came from: what hilt-kernels records in
/// the build's provenance.json, as run.json carries it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KernelBuild {
    pub key: String,
    pub tree: KernelTree,
    pub release: String,
    pub config_base: String,
    pub fragments: Vec<KernelFile>,
    pub patches: Vec<KernelPatch>,
    pub config_diff: Vec<String>,
    pub config_sha256: String,
    pub build_id: String,
    pub image_sha256: String,
    pub compiler: String,
    pub build_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KernelTree {
    pub kind: String,
    pub origin: String,
    pub identity: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KernelFile {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KernelPatch {
    pub path: String,
    pub sha256: String,
    pub action: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaInfo {
    pub dataset_bytes: u64,
    pub dataset_files: u32,
    pub erofs_bytes: u64,
    pub erofs_sha256: String,
    pub verity_root_hash: Option<String>,
    pub verity_salt: Option<String>,
}

/// `summary.json` as the harness writes it after every iteration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SummaryFile {
    pub version: u32,
    pub plan: String,
    pub planned_iterations: u32,
    pub finished_iterations: u32,
    pub interrupted: bool,
    pub variants: Vec<VariantSummary>,
}

/// One results directory in memory. `events.jsonl` is not loaded here: it
/// can be large and only timelines need it (see [`RunData::timelines`]).
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    /// The directory's name, which names the run in comparisons.
    pub name: String,
    pub info: Option<RunInfo>,
    pub summary: Option<SummaryFile>,
    pub records: Vec<IterationRecord>,
    /// What was missing or damaged and has been worked around.
    pub warnings: Vec<String>,
}

impl RunData {
    pub fn plan(&self) -> &str {
        match (&self.info, &self.summary) {
            (Some(i), _) if !i.plan.is_empty() => &i.plan,
            (_, Some(s)) if !s.plan.is_empty() => &s.plan,
            _ => &self.name,
        }
    }

    pub fn started_at(&self) -> &str {
        self.info
            .as_ref()
            .map(|i| i.started_at.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                self.records
                    .iter()
                    .map(|r| r.started_at.as_str())
                    .min()
                    .unwrap_or("")
            })
    }

    /// Variants in plan order, then any that only the records name.
    pub fn variants(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .info
            .iter()
            .flat_map(|i| i.variants.iter().map(|v| v.name.clone()))
            .collect();
        for r in &self.records {
            if !out.contains(&r.variant) {
                out.push(r.variant.clone());
            }
        }
        out
    }

    pub fn variant_info(&self, variant: &str) -> Option<&VariantInfo> {
        self.info
            .as_ref()?
            .variants
            .iter()
            .find(|v| v.name == variant)
    }

    pub fn planned_iterations(&self) -> Option<u32> {
        match (&self.info, &self.summary) {
            (Some(i), _) if !i.order.is_empty() => Some(i.order.len() as u32),
            (_, Some(s)) if s.planned_iterations > 0 => Some(s.planned_iterations),
            _ => None,
        }
    }

    /// Planned boots without a record: the run was interrupted (or is
    /// still going) before they finished.
    pub fn missing_iterations(&self) -> Vec<Slot> {
        let done: BTreeSet<(&str, u32, Option<&str>)> = self
            .records
            .iter()
            .map(|r| (r.variant.as_str(), r.iteration, r.control.as_deref()))
            .collect();
        let dropped: &[Slot] = self
            .info
            .as_ref()
            .and_then(|i| i.stopped.as_ref())
            .map_or(&[], |s| &s.dropped);
        self.info
            .iter()
            .flat_map(|i| i.order.iter())
            .filter(|s| !done.contains(&(s.variant.as_str(), s.iteration, s.control.as_deref())))
            .filter(|s| !dropped.contains(s))
            .cloned()
            .collect()
    }

    pub fn interrupted(&self) -> bool {
        self.summary.as_ref().is_some_and(|s| s.interrupted)
            || !self.missing_iterations().is_empty()
    }

    /// Absolute path of a file named relative to the results directory.
    pub fn path_of(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
}

/// Loads `dir`: `results.jsonl` (a torn last line, as a power cut leaves,
/// is skipped with a warning), `run.json` and `summary.json` (either may be
/// missing, also with a warning). Fails when there is nothing to report on.
pub fn load_run(dir: &Path) -> Result<RunData> {
    if !dir.is_dir() {
        bail!("{} is not a results directory", dir.display());
    }
    let mut warnings = Vec::new();
    let info: Option<RunInfo> = read_json(&dir.join("run.json"), &mut warnings)?;
    let summary: Option<SummaryFile> = read_json(&dir.join("summary.json"), &mut warnings)?;
    let results = dir.join("results.jsonl");
    let records = if results.exists() {
        let text =
            std::fs::read(&results).with_context(|| format!("reading {}", results.display()))?;
        parse_records(&String::from_utf8_lossy(&text), &mut warnings)
            .with_context(|| format!("in {}", results.display()))?
    } else if info.is_some() {
        warnings.push("results.jsonl is missing: no iteration finished".to_string());
        Vec::new()
    } else {
        bail!("{} holds neither run.json nor results.jsonl", dir.display());
    };
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    let run = RunData {
        dir: dir.to_path_buf(),
        name,
        info,
        summary,
        records,
        warnings,
    };
    let mut warnings = Vec::new();
    if let Some(n) = damaged_lines(dir) {
        warnings.push(format!(
            "{DAMAGED}: {n} line(s) of results.jsonl were not usable records when the run was \
             resumed; they are kept there, verbatim, and their iterations were run again"
        ));
    }
    let missing = run.missing_iterations().len();
    if missing > 0 {
        warnings.push(format!(
            "interrupted run: {} of {} planned iterations have no result",
            missing,
            run.planned_iterations().unwrap_or(0)
        ));
    }
    for r in &run.records {
        let (Some(seen), Some(v)) = (&r.kernel_release, run.variant_info(&r.variant)) else {
            continue;
        };
        if !v.kernel_release.is_empty() && seen != &v.kernel_release {
            warnings.push(format!(
                "{} iteration {}: the board ran kernel {seen}, run.json names {}",
                r.variant, r.iteration, v.kernel_release
            ));
        }
    }
    Ok(RunData {
        warnings: [run.warnings.clone(), warnings].concat(),
        ..run
    })
}

/// Where `hilt run --resume` keeps the lines of results.jsonl it could not
/// use.
pub const DAMAGED: &str = "results.damaged.jsonl";

/// How many lines `dir`'s results.damaged.jsonl holds, if it holds any:
/// counted as it streams by, whatever its size.
fn damaged_lines(dir: &Path) -> Option<usize> {
    use std::io::BufRead;
    let f = std::fs::File::open(dir.join(DAMAGED)).ok()?;
    let mut r = std::io::BufReader::new(f);
    let mut n = 0;
    loop {
        let buf = r.fill_buf().ok()?;
        if buf.is_empty() {
            break;
        }
        n += buf.iter().filter(|b| **b == b'\n').count();
        let len = buf.len();
        r.consume(len);
    }
    (n > 0).then_some(n)
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<T>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                warnings.push(format!("{name} is unreadable ({e}): ignored"));
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            warnings.push(format!("{name} is missing"));
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Parses `results.jsonl`. Only the last line may be damaged: the harness
/// syncs each record, so damage elsewhere is real corruption and an error.
pub fn parse_records(text: &str, warnings: &mut Vec<String>) -> Result<Vec<IterationRecord>> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut out = Vec::with_capacity(lines.len());
    for (k, (i, line)) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(e) if k + 1 == lines.len() => warnings.push(format!(
                "results.jsonl: torn last line {} ignored ({e})",
                i + 1
            )),
            Err(e) => bail!("line {}: {e}", i + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines a resume set aside stay visible in every report of the run.
    #[test]
    fn lines_set_aside_by_a_resume_are_warned_about() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("results.jsonl"), "").unwrap();
        std::fs::write(d.path().join("run.json"), "{}").unwrap();
        let run = load_run(d.path()).unwrap();
        assert!(!run.warnings.iter().any(|w| w.contains(DAMAGED)));
        std::fs::write(
            d.path().join(DAMAGED),
            "{\"line\":2,\"text\":\"x\"}\n{\"line\":5,\"text\":\"y\"}\n",
        )
        .unwrap();
        let run = load_run(d.path()).unwrap();
        assert!(
            run.warnings
                .iter()
                .any(|w| w.starts_with("results.damaged.jsonl: 2 line(s)")),
            "{:?}",
            run.warnings
        );
    }
}
