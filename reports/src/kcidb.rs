//! `kcidb.json`: the report in KernelCI's KCIDB I/O format (schema v5.3 of
//! kcidb-io): each variant's kernel is a build (with a checkout naming the
//! Debian package), each iteration a test of it.
//!
//! Statuses: pass → PASS; deadlock, stall, hang, silent hang, crash →
//! FAIL (the test's `misc` says which kind of hang, and for deadlocks and
//! stalls who waited on what and when a stall resumed); infra_error →
//! ERROR (the test did not complete, the kernel's status is unknown);
//! not_run → SKIP; a planned iteration with no record at all (the run was
//! interrupted) → MISS. A positive control is a test of its own (path
//! `hilt.<plan>.control_<name>`) that passes when its injected hang is detected.

use anyhow::Result;
use serde_json::{json, Value};

use crate::report::{IterationRow, Report};
use crate::Outcome;

pub const ORIGIN: &str = "hilt";
pub const SCHEMA_MAJOR: u32 = 5;
pub const SCHEMA_MINOR: u32 = 3;
/// kcidb-io caps every log_excerpt at this many characters.
const EXCERPT_MAX: usize = 16384;

/// A path component: KCIDB test paths are dot-separated.
fn component(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

pub fn status(it: &IterationRow) -> &'static str {
    match it.outcome {
        Outcome::Pass => "PASS",
        Outcome::Hang
        | Outcome::Deadlock
        | Outcome::Stall
        | Outcome::SilentHang
        | Outcome::Crash => "FAIL",
        Outcome::InfraError => "ERROR",
        Outcome::NotRun if !it.recorded => "MISS",
        Outcome::NotRun => "SKIP",
    }
}

/// Which kind of hang an iteration ended in; None when it did not hang.
pub fn hang_kind(o: Outcome) -> Option<&'static str> {
    match o {
        Outcome::Deadlock => Some("deadlock"),
        Outcome::Stall => Some("stall"),
        Outcome::Hang => Some("unclassified"),
        Outcome::SilentHang => Some("silent"),
        _ => None,
    }
}

/// Hang kind, deadlock window and waiters, added to a test's `misc`.
fn hang_misc(it: &IterationRow, misc: &mut Value) {
    let Some(kind) = hang_kind(it.outcome) else {
        return;
    };
    misc["hang_kind"] = json!(kind);
    let Some(w) = &it.hang else {
        return;
    };
    misc["deadlock_window_ms"] = json!(w.window_ms);
    if let Some(ms) = w.resumed_after_ms {
        misc["resumed_after_ms"] = json!(ms);
    }
    if let Some(p) = &w.progress {
        misc["progress"] = json!(p);
    }
    if let Some(s) = w.longest_blocked_s {
        misc["longest_blocked_s"] = json!(s);
    }
    misc["waiters"] = Value::Array(
        w.waiters
            .iter()
            .map(|x| {
                let mut o = json!({"task": x.task, "waits_in": x.waits_in, "frames": x.frames});
                if let Some(b) = x.blocked_s {
                    o["blocked_s"] = json!(b);
                }
                o
            })
            .collect(),
    );
}

fn excerpt(s: &str) -> String {
    let clean: String = s.chars().filter(|&c| c != '\0').collect();
    if clean.chars().count() <= EXCERPT_MAX {
        clean
    } else {
        clean.chars().take(EXCERPT_MAX).collect()
    }
}

pub fn to_value(r: &Report) -> Value {
    let mut checkouts = Vec::new();
    let mut builds = Vec::new();
    for v in &r.variants {
        // A kernel image digest identifies the build across runs; without
        // run.json fall back to the run and variant names.
        let build_key = if v.kernel_image_sha256.is_empty() {
            format!("{}-{}", component(&v.run), component(&v.variant))
        } else {
            v.kernel_image_sha256.clone()
        };
        let checkout_id = format!(
            "{ORIGIN}:{}",
            component(&v.kernel_package.replace('=', "_"))
        );
        if !checkouts
            .iter()
            .any(|c: &Value| c["id"] == json!(checkout_id))
        {
            checkouts.push(json!({
                "id": checkout_id,
                "origin": ORIGIN,
                "comment": format!("Debian package {}", v.kernel_package),
                "misc": {"kernel_package": v.kernel_package},
            }));
        }
        builds.push(json!({
            "id": format!("{ORIGIN}:{build_key}"),
            "checkout_id": checkout_id,
            "origin": ORIGIN,
            "architecture": "arm64",
            "comment": format!("{} ({})", v.kernel_release, v.label),
            "config_name": "debian",
            "misc": {
                "variant": v.label,
                "kernel_release": v.kernel_release,
                "kernel_image_sha256": v.kernel_image_sha256,
            },
        }));
    }
    let mut tests = Vec::new();
    for it in &r.iterations {
        let Some(v) = r.variants.iter().find(|v| v.label == it.label) else {
            continue;
        };
        let build = builds
            .iter()
            .find(|b| b["misc"]["variant"] == json!(v.label))
            .expect("every variant has a build");
        let run = r.runs.iter().find(|x| x.name == it.run);
        let mut t = json!({
            "id": format!("{ORIGIN}:{}:{}:{}", component(&it.run), component(&it.variant), it.iteration),
            "build_id": build["id"],
            "origin": ORIGIN,
            "path": format!("hilt.{}", component(run.map_or("", |x| x.plan.as_str()))),
            "status": status(it),
            "comment": format!("{} iteration {}: {}", it.label, it.iteration, if it.detail.is_empty() { it.outcome.as_str() } else { &it.detail }),
            "environment": {"comment": it.board, "misc": {"board": it.board}},
            "misc": {
                "outcome": it.outcome.as_str(),
                "iteration": it.iteration,
                "signature": it.signature,
                "failure_after_ms": it.failure_after_ms,
                "reads": it.reads,
                "read_p99_us": it.read_p99_us,
                "console_log": it.console_log,
                "plan_sha256": run.map(|x| x.plan_sha256.clone()),
                "erofs_sha256": run.map(|x| x.erofs_sha256.clone()),
                "verity_root_hash": run.and_then(|x| x.verity_root_hash.clone()),
            },
        });
        hang_misc(it, &mut t["misc"]);
        if it.recorded {
            t["duration"] = json!(it.wall_ms as f64 / 1000.0);
            if !it.started_at.is_empty() {
                t["start_time"] = json!(it.started_at);
            }
        }
        if !it.excerpt.is_empty() {
            t["log_excerpt"] = json!(excerpt(&it.excerpt));
        }
        tests.push(t);
    }
    // A positive control passes when its injected hang is detected.
    for c in &r.controls {
        let Some(build) = builds
            .iter()
            .find(|b| b["misc"]["variant"] == json!(c.label))
        else {
            continue;
        };
        let run = r.runs.iter().find(|x| x.name == c.run);
        let status = match (c.recorded, c.detected, c.outcome) {
            (false, _, _) => "MISS",
            (true, _, Outcome::InfraError) => "ERROR",
            (true, true, _) => "PASS",
            (true, false, _) => "FAIL",
        };
        let mut t = json!({
            "id": format!("{ORIGIN}:{}:{}:control-{}", component(&c.run), component(&c.variant), component(&c.control)),
            "build_id": build["id"],
            "origin": ORIGIN,
            "path": format!("hilt.{}.control_{}", component(run.map_or("", |x| x.plan.as_str())), component(&c.control)),
            "status": status,
            "comment": format!("positive control {} on {}: {}", c.control, c.label, c.detail),
            "misc": {"control": c.control, "detected": c.detected, "outcome": c.outcome.as_str()},
        });
        if c.recorded {
            t["duration"] = json!(c.wall_ms as f64 / 1000.0);
        }
        tests.push(t);
    }
    json!({
        "version": {"major": SCHEMA_MAJOR, "minor": SCHEMA_MINOR},
        "checkouts": checkouts,
        "builds": builds,
        "tests": tests,
    })
}

pub fn render(r: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(&to_value(r))?)
}
