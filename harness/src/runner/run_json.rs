//! run.json: what a run started with (plan, kernels, media, order, the
//! question it asks), and what happened to it since: each resume, and the
//! stop of its stopping rule. `--resume` and `hilt report` read it back.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::prepare::PreparedVariant;
use super::results::{self, RunDir};
use super::slots::Slot;
use crate::artifacts::{self, media::MediaProvenance};
use crate::plan::ResolvedPlan;

#[derive(Serialize)]
struct RunInfo<'a> {
    version: u32,
    hilt_version: &'static str,
    plan: &'a str,
    plan_path: String,
    /// Where a resumed run finds the plan's board and workload files.
    plan_path_abs: String,
    plan_sha256: &'a str,
    board: &'a str,
    /// The boards (instances) that take slots from the queue.
    boards: Vec<&'a str>,
    started_at: String,
    host: String,
    variants: Vec<VariantInfo<'a>>,
    media: &'a MediaProvenance,
    /// The order iterations ran in, controls first.
    order: &'a [Slot],
    /// The plan's named signatures, what it expects of them, and its
    /// stopping rule: what `hilt report` asks of the records.
    question: hilt_reports::verdict::Question,
}

#[derive(Serialize)]
struct VariantInfo<'a> {
    name: &'a str,
    kernel_package: &'a str,
    kernel_release: &'a str,
    kernel_image_sha256: &'a str,
    modules_loaded: &'a [String],
    modules_builtin: &'a [String],
    /// Boards whose files add initramfs modules boot their own initramfs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    board_initramfs: Vec<BoardInitramfsInfo<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_build: Option<&'a hilt_kernels::source::Provenance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_prebuilt: Option<&'a artifacts::kernel::PrebuiltRecord>,
}

#[derive(Serialize)]
struct BoardInitramfsInfo<'a> {
    board: &'a str,
    modules_asked: &'a [String],
    modules_loaded: &'a [String],
    modules_builtin: &'a [String],
}

/// A new run's run.json.
pub fn write_new(
    run_dir: &RunDir,
    plan: &ResolvedPlan,
    boards: &[String],
    variants: &[PreparedVariant],
    media: &MediaProvenance,
    order: &[Slot],
) -> anyhow::Result<()> {
    run_dir.write_json(
        "run.json",
        &RunInfo {
            version: hilt_reports::RESULTS_VERSION,
            hilt_version: env!("CARGO_PKG_VERSION"),
            plan: &plan.plan.name,
            plan_path: plan.path.display().to_string(),
            plan_path_abs: std::path::absolute(&plan.path)
                .unwrap_or_else(|_| plan.path.clone())
                .display()
                .to_string(),
            plan_sha256: &plan.sha256,
            board: &plan.board.name,
            boards: boards.iter().map(String::as_str).collect(),
            started_at: chrono::Utc::now().to_rfc3339(),
            host: hostname(),
            variants: variants
                .iter()
                .map(|v| VariantInfo {
                    name: &v.kernel.variant,
                    kernel_package: &v.kernel_package,
                    kernel_release: &v.kernel.release,
                    kernel_image_sha256: &v.kernel_image_sha256,
                    modules_loaded: &v.loaded_modules,
                    modules_builtin: &v.builtin_modules,
                    board_initramfs: v
                        .boards
                        .iter()
                        .map(|b| BoardInitramfsInfo {
                            board: &b.board,
                            modules_asked: &b.modules,
                            modules_loaded: &b.loaded_modules,
                            modules_builtin: &b.builtin_modules,
                        })
                        .collect(),
                    kernel_build: v.kernel_build.as_ref(),
                    kernel_prebuilt: v.kernel_prebuilt.as_ref(),
                })
                .collect(),
            media,
            order,
            question: plan.plan.question(),
        },
    )
}

/// Adds this resume to run.json: when, where, on which boards, after how
/// many finished iterations, and which damaged result lines it set aside.
pub fn record_resume(
    run_dir: &RunDir,
    boards: &[String],
    finished_before: usize,
    set_aside: &[usize],
) -> anyhow::Result<()> {
    let mut info = read(&run_dir.path)?;
    let mut entry = serde_json::json!({
        "at": chrono::Utc::now().to_rfc3339(),
        "host": hostname(),
        "boards": boards,
        "finished_before": finished_before,
    });
    if !set_aside.is_empty() {
        entry["results_set_aside"] = serde_json::json!({
            "file": results::DAMAGED,
            "lines": set_aside,
        });
    }
    match info["resumed"].as_array_mut() {
        Some(a) => a.push(entry),
        None => info["resumed"] = serde_json::json!([entry]),
    }
    run_dir.write_json("run.json", &info)
}

/// Adds the stop to run.json; slots already dropped by an earlier stop of
/// a resumed run stay dropped.
pub fn record_stop(
    run_dir: &RunDir,
    reason: &str,
    after: u32,
    dropped: &[Slot],
) -> anyhow::Result<()> {
    let mut info = read(&run_dir.path)?;
    let mut all: Vec<serde_json::Value> = info["stopped"]["dropped"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for s in dropped {
        all.push(serde_json::to_value(s)?);
    }
    info["stopped"] = serde_json::json!({
        "reason": reason,
        "after_iterations": after,
        "dropped": all,
    });
    run_dir.write_json("run.json", &info)
}

pub fn read(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let path = dir.join("run.json");
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "{} is not a run hilt can resume (no readable run.json): expected the --out directory of an earlier `hilt run`",
            dir.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// `hilt run --resume`: the plan exactly as the run started with it, its
/// board and workload files found where the original plan found them.
pub fn resume_plan(dir: &Path) -> anyhow::Result<ResolvedPlan> {
    let info = read(dir)?;
    let original = info["plan_path_abs"]
        .as_str()
        .or(info["plan_path"].as_str())
        .unwrap_or("plan.yaml");
    let plan = crate::plan::resolve_as(&dir.join("plan.yaml"), Path::new(original))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let want = info["plan_sha256"].as_str().unwrap_or_default();
    if plan.sha256 != want {
        anyhow::bail!(
            "{}/plan.yaml is not the plan this run started with (sha256 {} instead of {want}): restore it, or start a new run",
            dir.display(),
            plan.sha256
        );
    }
    Ok(plan)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
