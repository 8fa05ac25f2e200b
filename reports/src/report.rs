//! From loaded runs to a [`Report`]: every figure any output shows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::events::{read_timelines, Timeline};
use crate::load::{RunData, Slot};
use crate::stats::hypothesis::{fisher_two_sided, log_rank, mann_whitney, LogRank, MannWhitney};
use crate::stats::latency::{latency_stats, BootstrapOptions, Grouped, LatencyStats};
use crate::stats::rate::{sample_size, wilson, SampleSize};
use crate::stats::survival::{kaplan_meier, KmCurve};
use crate::text;
use crate::{Detector, IterationRecord, Outcome};

/// Bumped when report.json changes shape.
pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportOptions {
    /// The variant the others are compared with, by label or variant name;
    /// the first variant of the first run when None.
    pub baseline: Option<String>,
    pub alpha: f64,
    pub power: f64,
    /// Hang rates (baseline, other) to plan an experiment for, reported
    /// next to the sample size for the observed rates.
    pub planned_rates: Option<(f64, f64)>,
    pub bootstrap: BootstrapOptions,
    pub timelines: TimelineSelection,
    pub title: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            baseline: None,
            alpha: 0.05,
            power: 0.8,
            planned_rates: None,
            bootstrap: BootstrapOptions::default(),
            timelines: TimelineSelection::Auto { max_failures: 12 },
            title: None,
        }
    }
}

/// Which iterations get a pressure/swap timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineSelection {
    /// The first `max_failures` kernel failures, and the first passing
    /// iteration of each variant to compare them with.
    Auto {
        max_failures: usize,
    },
    All,
    None,
    /// (variant label, iteration) pairs.
    Only(Vec<(String, u32)>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub generator: String,
    pub title: String,
    pub verdict: Verdict,
    /// The plan's named signatures, each variant against the baseline: the
    /// question the run was for, and the first lines of the verdict.
    #[serde(default)]
    pub signature_verdicts: Vec<crate::verdict::SignatureVerdict>,
    pub baseline: Option<String>,
    pub runs: Vec<RunProvenance>,
    pub variants: Vec<VariantReport>,
    pub comparisons: Vec<Comparison>,
    pub signatures: Vec<SignatureRow>,
    pub boards: Vec<BoardRow>,
    pub iterations: Vec<IterationRow>,
    /// Positive controls: boots where a hang is injected on purpose, to
    /// prove the detectors work on that kernel. Kept out of every statistic.
    pub controls: Vec<ControlRow>,
    /// None without controls; false when a control that ran was not detected,
    /// in which case no hang count of the run can be trusted.
    pub valid: Option<bool>,
    pub timelines: Vec<Timeline>,
    pub options: ReportOptions,
    pub warnings: Vec<String>,
}

/// The answer, in sentences: the headline first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub headline: String,
    pub details: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProvenance {
    pub name: String,
    pub dir: PathBuf,
    pub plan: String,
    pub plan_path: String,
    pub plan_sha256: String,
    pub hilt_version: String,
    pub started_at: String,
    pub host: String,
    /// The board definition named by the plan.
    pub board: String,
    /// Boards named by the records.
    pub boards_seen: Vec<String>,
    pub erofs_sha256: String,
    pub verity_root_hash: Option<String>,
    pub planned_iterations: Option<u32>,
    pub finished_iterations: u32,
    pub interrupted: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Iterations with a kernel verdict: pass, hang, silent hang or crash.
    pub valid: u32,
    pub pass: u32,
    /// Hangs not classified as deadlock or stall (no deadlock window).
    pub hangs: u32,
    #[serde(default)]
    pub deadlocks: u32,
    #[serde(default)]
    pub stalls: u32,
    pub silent_hangs: u32,
    pub crashes: u32,
    pub infra_errors: u32,
    pub not_run: u32,
    /// Planned iterations of an interrupted run without any record.
    pub missing: u32,
}

impl Counts {
    /// Hangs that never recovered, of any kind: what the hang rate counts.
    /// Stalls are not among them.
    pub fn all_hangs(&self) -> u32 {
        self.hangs + self.deadlocks + self.silent_hangs
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// Unique within the report: the variant name, or "<run>/<variant>" when
    /// runs being compared share variant names.
    pub label: String,
    pub run: String,
    pub variant: String,
    pub kernel_package: String,
    pub kernel_release: String,
    pub kernel_image_sha256: String,
    /// Provenance of a kernel hilt built from source.
    #[serde(default)]
    pub kernel_build: Option<crate::load::KernelBuild>,
    /// Releases the boards reported booting (should be just kernel_release).
    pub releases_seen: Vec<String>,
    pub boards: Vec<String>,
    pub counts: Counts,
    pub hang_rate: Option<f64>,
    pub hang_ci: Option<(f64, f64)>,
    #[serde(default)]
    pub stall_rate: Option<f64>,
    #[serde(default)]
    pub stall_ci: Option<(f64, f64)>,
    pub read_latency: Option<LatencyStats>,
    pub decompress_latency: Option<LatencyStats>,
    /// The probed erofs functions, and how many calls ran in kworkers
    /// (deferred) or in any other context (direct, e.g. inside a bio
    /// completion, where the deadlock lives).
    pub decompress_funcs: Vec<String>,
    /// Valid iterations in which each of the plan's named stack signatures
    /// was seen (the record's `signatures`).
    pub stack_signatures: BTreeMap<String, u32>,
    pub decompress_calls_in_worker: u64,
    pub decompress_calls_elsewhere: u64,
    /// Why the decompression path could not be probed, with how many
    /// iterations said so.
    #[serde(default)]
    pub decompress_probe_errors: BTreeMap<String, u32>,
    pub time_to_hang: Option<KmCurve>,
    /// Medians over valid iterations of each iteration's maximum: whether
    /// variants were under the same pressure.
    pub median_max_psi_some: Option<f64>,
    pub median_max_psi_full: Option<f64>,
    pub median_max_swap_used_mib: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub baseline: String,
    pub variant: String,
    /// Two-sided Fisher exact test on hang counts.
    pub fisher_p: Option<f64>,
    /// Variant rate minus baseline rate.
    pub rate_difference: Option<f64>,
    pub significant: bool,
    /// Iterations per variant to detect the observed rates.
    pub sample_size_observed: Option<SampleSize>,
    pub sample_size_planned: Option<SampleSize>,
    pub time_to_hang: Option<LogRank>,
    pub read_latency: Option<LatencyComparison>,
    pub decompress_latency: Option<LatencyComparison>,
    /// The comparison in sentences.
    pub sentences: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyComparison {
    /// Variant over baseline.
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    /// Variant (first) against baseline (second), on every read.
    pub mann_whitney: Option<MannWhitney>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureRow {
    pub title: String,
    pub outcome: Outcome,
    /// Label → iterations with this signature.
    pub counts: BTreeMap<String, u32>,
    pub total: u32,
    /// The first iteration that showed it, as (label, iteration).
    pub first: (String, u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardRow {
    pub board: String,
    pub label: String,
    pub valid: u32,
    pub hangs: u32,
    pub crashes: u32,
    pub hang_rate: Option<f64>,
    pub hang_ci: Option<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationRow {
    pub label: String,
    pub run: String,
    pub variant: String,
    pub iteration: u32,
    /// False for a planned iteration that has no record (interrupted run).
    pub recorded: bool,
    pub board: String,
    pub outcome: Outcome,
    pub detail: String,
    pub signature: Option<String>,
    pub detector: Option<Detector>,
    pub started_at: String,
    pub wall_ms: u64,
    pub boot_ms: Option<u64>,
    /// Power-on to detection, for failures.
    pub failure_after_ms: Option<u64>,
    pub reads: u64,
    pub read_errors: u64,
    pub read_p99_us: Option<u64>,
    pub max_psi_some_avg10: f32,
    pub max_psi_full_avg10: f32,
    pub max_swap_used_kb: u64,
    pub kernel_release: Option<String>,
    /// Absolute path; outputs link to it relative to where they are written.
    pub console_log: Option<PathBuf>,
    /// Why the console log the record names is not read (outside the run
    /// directory, not a regular file); outputs say it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_refused: Option<String>,
    pub excerpt: String,
    /// Deadlock or stall: what the deadlock window saw, and who waited on what.
    #[serde(default)]
    pub hang: Option<crate::HangWatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlRow {
    pub label: String,
    pub run: String,
    pub variant: String,
    pub control: String,
    /// False when the run stopped before this control finished.
    pub recorded: bool,
    pub detected: bool,
    pub outcome: Outcome,
    pub detail: String,
    pub failure_after_ms: Option<u64>,
    pub wall_ms: u64,
    pub console_log: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_refused: Option<String>,
}

/// A positive control counts as detected only when the iteration ended as a
/// hang and the kernel's own hung-task report was seen: that is what proves
/// the detectors work end to end (the harness's rule for `summary.json`).
pub fn control_detected(r: &IterationRecord) -> bool {
    let hung = matches!(
        r.outcome,
        Outcome::Hang | Outcome::Deadlock | Outcome::Stall
    );
    if r.control.as_deref() == Some("bio_wait") {
        // khungtaskd never reports a bio wait: the agent's watcher must,
        // naming the waiter and the workloads' standstill.
        return hung
            && r.failure.as_ref().is_some_and(|f| {
                f.detector == Detector::Dstate
                    && f.title.ends_with("with no workload progress")
                    && f.frames.iter().any(|x| x == "submit_bio_wait")
            });
    }
    hung && r
        .kernel_events
        .iter()
        .any(|t| t.starts_with("INFO: task hung in") || t.contains("blocked for more than"))
}

/// One run gives `hilt report`; several give `hilt compare`, every variant of
/// every run compared with the baseline.
pub fn build_report(runs: &[RunData], opts: &ReportOptions) -> Result<Report> {
    if runs.is_empty() {
        bail!("no run to report on");
    }
    let labelled = label_variants(runs);
    if labelled.is_empty() {
        bail!("the runs name no variant");
    }
    let baseline = match &opts.baseline {
        None => Some(labelled[0].label.clone()),
        Some(b) => {
            let hits: Vec<&Labelled> = labelled
                .iter()
                .filter(|l| &l.label == b || &l.variant == b)
                .collect();
            match hits.as_slice() {
                [one] => Some(one.label.clone()),
                [] => bail!(
                    "baseline {b:?} is not a variant of these runs (variants: {})",
                    labels(&labelled)
                ),
                _ => bail!(
                    "baseline {b:?} is ambiguous: name it as one of {}",
                    labels(&labelled)
                ),
            }
        }
    };
    let mut variants = Vec::new();
    let mut iterations = Vec::new();
    let mut controls = Vec::new();
    let grid = hilt_protocol::histo::new_histogram();
    for l in &labelled {
        let run = &runs[l.run];
        let (ctrl, recs): (Vec<&IterationRecord>, Vec<&IterationRecord>) = run
            .records
            .iter()
            .filter(|r| r.variant == l.variant)
            .partition(|r| r.control.is_some());
        let missing: Vec<Slot> = run
            .missing_iterations()
            .into_iter()
            .filter(|m| m.variant == l.variant)
            .collect();
        let missing_plain: Vec<u32> = missing
            .iter()
            .filter(|m| m.control.is_none())
            .map(|m| m.iteration)
            .collect();
        variants.push(variant_report(
            l,
            run,
            &recs,
            missing_plain.len() as u32,
            opts,
        ));
        iterations.extend(recs.iter().map(|r| iteration_row(l, run, r, &grid)));
        iterations.extend(missing_plain.iter().map(|&i| missing_row(l, run, i)));
        controls.extend(ctrl.iter().map(|r| control_row(l, run, r)));
        controls.extend(missing.iter().filter_map(|m| {
            Some(ControlRow {
                label: l.label.clone(),
                run: run.name.clone(),
                variant: l.variant.clone(),
                control: m.control.clone()?,
                recorded: false,
                detected: false,
                outcome: Outcome::NotRun,
                detail: "no result: the run stopped before this control finished".into(),
                failure_after_ms: None,
                wall_ms: 0,
                console_log: None,
                console_refused: None,
            })
        }));
    }
    let ran: Vec<&ControlRow> = controls.iter().filter(|c| c.recorded).collect();
    let valid = (!ran.is_empty()).then(|| ran.iter().all(|c| c.detected));
    iterations.sort_by(|a, b| (&a.label, a.iteration).cmp(&(&b.label, b.iteration)));
    let by_label: BTreeMap<&str, &VariantReport> =
        variants.iter().map(|v| (v.label.as_str(), v)).collect();
    let comparisons: Vec<Comparison> = match &baseline {
        Some(b) => variants
            .iter()
            .filter(|v| &v.label != b)
            .map(|v| compare(by_label[b.as_str()], v, opts))
            .collect(),
        None => Vec::new(),
    };
    let signature_verdicts = match &baseline {
        Some(b) => signature_verdicts(runs, &labelled, b, opts.alpha),
        None => Vec::new(),
    };
    let mut verdict = verdict(
        &variants,
        &comparisons,
        baseline.as_deref(),
        &controls,
        valid,
    );
    lead_with_signatures(&mut verdict, &signature_verdicts, &variants);
    let timelines = timelines(runs, &labelled, &iterations, &opts.timelines)?;
    let mut warnings = Vec::new();
    for r in runs {
        let prefix = if runs.len() > 1 {
            format!("{}: ", r.name)
        } else {
            String::new()
        };
        warnings.extend(r.warnings.iter().map(|w| format!("{prefix}{w}")));
    }
    let title = opts.title.clone().unwrap_or_else(|| {
        if runs.len() == 1 {
            format!("hilt report: {}", runs[0].plan())
        } else {
            format!(
                "hilt compare: {}",
                runs.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" vs ")
            )
        }
    });
    Ok(Report {
        version: REPORT_VERSION,
        generator: format!("hilt-reports {}", env!("CARGO_PKG_VERSION")),
        title,
        verdict,
        signature_verdicts,
        baseline,
        runs: runs.iter().map(provenance).collect(),
        signatures: signatures(&iterations, &variants),
        controls,
        valid,
        boards: boards(&iterations, &variants),
        variants,
        comparisons,
        iterations,
        timelines,
        options: opts.clone(),
        warnings,
    })
}

struct Labelled {
    run: usize,
    variant: String,
    label: String,
}

fn labels(l: &[Labelled]) -> String {
    l.iter()
        .map(|l| l.label.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn label_variants(runs: &[RunData]) -> Vec<Labelled> {
    let mut seen = BTreeSet::new();
    let mut clash = false;
    for r in runs {
        for v in r.variants() {
            clash |= !seen.insert(v);
        }
    }
    // Two runs in directories of the same name still need distinct labels.
    let mut run_names: Vec<String> = Vec::new();
    for r in runs {
        let mut name = r.name.clone();
        let mut k = 2;
        while run_names.contains(&name) {
            name = format!("{}#{k}", r.name);
            k += 1;
        }
        run_names.push(name);
    }
    let mut out = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        for v in r.variants() {
            let label = if clash {
                format!("{}/{v}", run_names[i])
            } else {
                v.clone()
            };
            out.push(Labelled {
                run: i,
                variant: v,
                label,
            });
        }
    }
    out
}

fn provenance(r: &RunData) -> RunProvenance {
    let info = r.info.clone().unwrap_or_default();
    let media = info.media.clone().unwrap_or_default();
    let boards_seen: BTreeSet<String> = r.records.iter().map(|x| x.board.clone()).collect();
    RunProvenance {
        name: r.name.clone(),
        dir: r.dir.canonicalize().unwrap_or_else(|_| r.dir.clone()),
        plan: r.plan().to_string(),
        plan_path: info.plan_path,
        plan_sha256: info.plan_sha256,
        hilt_version: info.hilt_version,
        started_at: r.started_at().to_string(),
        host: info.host,
        board: info.board,
        boards_seen: boards_seen.into_iter().collect(),
        erofs_sha256: media.erofs_sha256,
        verity_root_hash: media.verity_root_hash,
        planned_iterations: r.planned_iterations(),
        finished_iterations: r.records.len() as u32,
        interrupted: r.interrupted(),
    }
}

/// Observations for the survival curve: hangs are events at the time they
/// were detected; every other valid iteration is censored when it ended.
/// A crash ends the iteration before any hang could show, so it is censored
/// too. Times in seconds since power-on.
pub fn survival_observations<'a>(
    recs: impl IntoIterator<Item = &'a IterationRecord>,
) -> Vec<(f64, bool)> {
    recs.into_iter()
        .filter(|r| r.outcome.is_valid())
        .map(|r| {
            if r.outcome.is_hang() {
                let t = r
                    .failure
                    .as_ref()
                    .map_or(r.wall_ms, |f| f.detected_after_ms);
                (t as f64 / 1000.0, true)
            } else {
                (r.wall_ms as f64 / 1000.0, false)
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn variant_report(
    l: &Labelled,
    run: &RunData,
    recs: &[&IterationRecord],
    missing: u32,
    opts: &ReportOptions,
) -> VariantReport {
    let mut c = Counts {
        missing,
        ..Default::default()
    };
    for r in recs {
        match r.outcome {
            Outcome::Pass => c.pass += 1,
            Outcome::Hang => c.hangs += 1,
            Outcome::Deadlock => c.deadlocks += 1,
            Outcome::Stall => c.stalls += 1,
            Outcome::SilentHang => c.silent_hangs += 1,
            Outcome::Crash => c.crashes += 1,
            Outcome::InfraError => c.infra_errors += 1,
            Outcome::NotRun => c.not_run += 1,
        }
        if r.outcome.is_valid() {
            c.valid += 1;
        }
    }
    let valid: Vec<&IterationRecord> = recs
        .iter()
        .copied()
        .filter(|r| r.outcome.is_valid())
        .collect();
    let info = run.variant_info(&l.variant).cloned().unwrap_or_default();
    let releases_seen: BTreeSet<String> = recs
        .iter()
        .filter_map(|r| r.kernel_release.clone())
        .collect();
    let boards: BTreeSet<String> = recs.iter().map(|r| r.board.clone()).collect();
    let obs = survival_observations(valid.iter().copied());
    VariantReport {
        label: l.label.clone(),
        run: run.name.clone(),
        variant: l.variant.clone(),
        kernel_package: info.kernel_package,
        kernel_release: info.kernel_release,
        kernel_image_sha256: info.kernel_image_sha256,
        kernel_build: info.kernel_build,
        releases_seen: releases_seen.into_iter().collect(),
        boards: boards.into_iter().collect(),
        hang_rate: (c.valid > 0).then(|| c.all_hangs() as f64 / c.valid as f64),
        hang_ci: wilson(c.all_hangs() as u64, c.valid as u64, 0.95),
        stall_rate: (c.valid > 0).then(|| c.stalls as f64 / c.valid as f64),
        stall_ci: wilson(c.stalls as u64, c.valid as u64, 0.95),
        counts: c,
        read_latency: latency_stats(valid.iter().map(|r| &r.read_latency_us), &opts.bootstrap),
        stack_signatures: valid.iter().flat_map(|r| r.signatures.iter()).fold(
            BTreeMap::new(),
            |mut m, s| {
                *m.entry(s.clone()).or_default() += 1;
                m
            },
        ),
        decompress_funcs: valid
            .iter()
            .filter_map(|r| r.decompress_func.clone())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect(),
        decompress_calls_in_worker: valid.iter().map(|r| r.decompress_calls_in_worker).sum(),
        decompress_calls_elsewhere: valid.iter().map(|r| r.decompress_calls_elsewhere).sum(),
        decompress_probe_errors: valid
            .iter()
            .filter_map(|r| r.decompress_probe_error.clone())
            .fold(BTreeMap::new(), |mut m, e| {
                *m.entry(e).or_default() += 1;
                m
            }),
        decompress_latency: latency_stats(
            valid.iter().map(|r| &r.decompress_latency_us),
            &opts.bootstrap,
        ),
        time_to_hang: (!obs.is_empty()).then(|| kaplan_meier(&obs, 0.95)),
        median_max_psi_some: median(valid.iter().map(|r| r.max_psi_some_avg10 as f64).collect()),
        median_max_psi_full: median(valid.iter().map(|r| r.max_psi_full_avg10 as f64).collect()),
        median_max_swap_used_mib: median(
            valid
                .iter()
                .map(|r| r.max_swap_used_kb as f64 / 1024.0)
                .collect(),
        ),
    }
}

fn iteration_row(
    l: &Labelled,
    run: &RunData,
    r: &IterationRecord,
    grid: &hdrhistogram::Histogram<u64>,
) -> IterationRow {
    let console = console_of(run, &r.console_log);
    IterationRow {
        label: l.label.clone(),
        run: run.name.clone(),
        variant: r.variant.clone(),
        iteration: r.iteration,
        recorded: true,
        board: r.board.clone(),
        outcome: r.outcome,
        detail: r.detail.clone(),
        signature: r.failure.as_ref().map(|f| f.title.clone()),
        detector: r.failure.as_ref().map(|f| f.detector),
        started_at: r.started_at.clone(),
        wall_ms: r.wall_ms,
        boot_ms: r.boot_ms,
        failure_after_ms: r.failure.as_ref().map(|f| f.detected_after_ms),
        reads: r.reads,
        read_errors: r.read_errors,
        read_p99_us: Grouped::from_histo(&r.read_latency_us, grid).quantile(0.99),
        max_psi_some_avg10: r.max_psi_some_avg10,
        max_psi_full_avg10: r.max_psi_full_avg10,
        max_swap_used_kb: r.max_swap_used_kb,
        kernel_release: r.kernel_release.clone(),
        console_log: console.0,
        console_refused: console.1,
        excerpt: r
            .failure
            .as_ref()
            .map(|f| f.excerpt.clone())
            .unwrap_or_default(),
        hang: r.hang.clone(),
    }
}

fn control_row(l: &Labelled, run: &RunData, r: &IterationRecord) -> ControlRow {
    let console = console_of(run, &r.console_log);
    ControlRow {
        label: l.label.clone(),
        run: run.name.clone(),
        variant: r.variant.clone(),
        control: r.control.clone().unwrap_or_default(),
        recorded: true,
        detected: control_detected(r),
        outcome: r.outcome,
        detail: r
            .failure
            .as_ref()
            .map_or_else(|| r.detail.clone(), |f| f.title.clone()),
        failure_after_ms: r.failure.as_ref().map(|f| f.detected_after_ms),
        wall_ms: r.wall_ms,
        console_log: console.0,
        console_refused: console.1,
    }
}

/// The console log a record names, if the report may read it: a file in
/// the run directory. results.jsonl is data, and a path in it such as
/// `../../secret.txt` or `/dev/zero` must not put a host file into a
/// report or read without end. Otherwise, why it is not read.
fn console_of(run: &RunData, recorded: &str) -> (Option<PathBuf>, Option<String>) {
    use std::path::Component;
    if recorded.is_empty() {
        return (None, None);
    }
    let refused = |why: &str| {
        (
            None,
            Some(format!("console log {recorded:?} {why}: not read")),
        )
    };
    let p = run.path_of(recorded);
    let Ok(dir) = run.dir.canonicalize() else {
        return refused("cannot be placed in the run directory");
    };
    match p.canonicalize() {
        Ok(real) if !real.starts_with(&dir) => refused("is outside the run directory"),
        Ok(real) if !real.metadata().is_ok_and(|m| m.is_file()) => refused("is not a regular file"),
        Ok(real) => (Some(real), None),
        // A log that is missing (not yet written, deleted) is linked all
        // the same, as long as its name stays inside the run directory.
        Err(_) => {
            let inside = Path::new(recorded)
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if inside {
                (Some(p), None)
            } else {
                refused("is outside the run directory")
            }
        }
    }
}

fn missing_row(l: &Labelled, run: &RunData, iteration: u32) -> IterationRow {
    IterationRow {
        label: l.label.clone(),
        run: run.name.clone(),
        variant: l.variant.clone(),
        iteration,
        recorded: false,
        board: String::new(),
        outcome: Outcome::NotRun,
        detail: "no result: the run stopped before this iteration finished".into(),
        signature: None,
        detector: None,
        started_at: String::new(),
        wall_ms: 0,
        boot_ms: None,
        failure_after_ms: None,
        reads: 0,
        read_errors: 0,
        read_p99_us: None,
        max_psi_some_avg10: 0.0,
        max_psi_full_avg10: 0.0,
        max_swap_used_kb: 0,
        kernel_release: None,
        console_log: None,
        console_refused: None,
        excerpt: String::new(),
        hang: None,
    }
}

fn latency_comparison(
    base: Option<&LatencyStats>,
    other: Option<&LatencyStats>,
) -> Option<LatencyComparison> {
    let (b, o) = (base?, other?);
    let ratio = |name: &str| {
        let (x, y) = (
            o.quantile(name)?.value_us as f64,
            b.quantile(name)?.value_us as f64,
        );
        (y > 0.0).then(|| x / y)
    };
    Some(LatencyComparison {
        p50_ratio: ratio("p50")?,
        p99_ratio: ratio("p99")?,
        mann_whitney: mann_whitney(&o.grouped(), &b.grouped()),
    })
}

fn counts_phrase(v: &VariantReport) -> String {
    let c = &v.counts;
    format!(
        "{}/{} hangs {}",
        c.all_hangs(),
        c.valid,
        text::interval(v.hang_ci)
    )
}

fn compare(base: &VariantReport, v: &VariantReport, opts: &ReportOptions) -> Comparison {
    let (bk, bn) = (base.counts.all_hangs() as u64, base.counts.valid as u64);
    let (vk, vn) = (v.counts.all_hangs() as u64, v.counts.valid as u64);
    let fisher_p = fisher_two_sided(vk, vn, bk, bn);
    let rate_difference = match (v.hang_rate, base.hang_rate) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let significant = fisher_p.is_some_and(|p| p <= opts.alpha);
    let sample_size_observed = match (base.hang_rate, v.hang_rate) {
        (Some(b), Some(a)) => sample_size(b, a, opts.alpha, opts.power),
        _ => None,
    };
    let sample_size_planned = opts
        .planned_rates
        .and_then(|(b, a)| sample_size(b, a, opts.alpha, opts.power));
    let time_to_hang = match (&base.time_to_hang, &v.time_to_hang) {
        (Some(_), Some(_)) => {
            let obs = |k: &KmCurve| -> Vec<(f64, bool)> {
                k.steps
                    .iter()
                    .flat_map(|s| {
                        std::iter::repeat_n((s.t, true), s.events as usize)
                            .chain(std::iter::repeat_n((s.t, false), s.censored as usize))
                    })
                    .collect()
            };
            log_rank(
                &obs(v.time_to_hang.as_ref().expect("matched")),
                &obs(base.time_to_hang.as_ref().expect("matched")),
            )
        }
        _ => None,
    };
    let read_latency = latency_comparison(base.read_latency.as_ref(), v.read_latency.as_ref());
    let decompress_latency = latency_comparison(
        base.decompress_latency.as_ref(),
        v.decompress_latency.as_ref(),
    );
    let mut c = Comparison {
        baseline: base.label.clone(),
        variant: v.label.clone(),
        fisher_p,
        rate_difference,
        significant,
        sample_size_observed,
        sample_size_planned,
        time_to_hang,
        read_latency,
        decompress_latency,
        sentences: Vec::new(),
    };
    c.sentences = comparison_sentences(base, v, &c, opts);
    c
}

fn comparison_sentences(
    base: &VariantReport,
    v: &VariantReport,
    c: &Comparison,
    opts: &ReportOptions,
) -> Vec<String> {
    let mut out = Vec::new();
    let p = c
        .fisher_p
        .map(text::p_value)
        .unwrap_or_else(|| "n/a".into());
    out.push(format!(
        "{}: {} vs {} {}, Fisher p = {p}",
        v.label,
        counts_phrase(v),
        base.label,
        counts_phrase(base)
    ));
    let (vh, bh) = (v.counts.all_hangs(), base.counts.all_hangs());
    let alpha = opts.alpha;
    if v.counts.valid == 0 || base.counts.valid == 0 {
        out.push("No comparison: a variant has no iteration with a kernel verdict.".into());
    } else if c.significant {
        let (rv, rb) = (v.hang_rate.unwrap_or(0.0), base.hang_rate.unwrap_or(0.0));
        let word = if rv < rb { "less" } else { "more" };
        out.push(format!(
            "{} hangs {word} than {} (significant at α = {alpha}).",
            v.label, base.label
        ));
    } else if vh == 0 && bh == 0 {
        let upper = |x: &VariantReport| x.hang_ci.map_or("n/a".into(), |c| text::percent(c.1));
        out.push(format!(
            "Neither variant hung: rates above {} ({}) and {} ({}) are ruled out at 95% confidence.",
            upper(v),
            v.label,
            upper(base),
            base.label
        ));
    } else {
        out.push(format!(
            "The difference in hang rate is not significant at α = {alpha}."
        ));
    }
    if let Some(s) = &c.sample_size_observed {
        let how = if s.exact.is_some() {
            "Fisher's exact test"
        } else {
            "the normal approximation"
        };
        out.push(format!(
            "Telling the observed rates apart ({} vs {}) with {:.0}% power takes {} iterations per variant ({how}); this run has {} and {}.",
            text::percent(s.p1),
            text::percent(s.p2),
            opts.power * 100.0,
            s.per_variant(),
            base.counts.valid,
            v.counts.valid
        ));
    }
    if let Some(s) = &c.sample_size_planned {
        out.push(format!(
            "Planned: telling {} from {} with {:.0}% power takes {} iterations per variant.",
            text::percent(s.p1),
            text::percent(s.p2),
            opts.power * 100.0,
            s.per_variant()
        ));
    }
    for (what, lc, vs, bs) in [
        ("Read", &c.read_latency, &v.read_latency, &base.read_latency),
        (
            "Decompression",
            &c.decompress_latency,
            &v.decompress_latency,
            &base.decompress_latency,
        ),
    ] {
        let (Some(lc), Some(vs), Some(bs)) = (lc, vs, bs) else {
            continue;
        };
        let ops = if what == "Read" {
            "reads"
        } else {
            "decompressions"
        };
        let q = |s: &LatencyStats, n: &str| s.quantile(n).map_or(0.0, |q| q.value_us as f64);
        let mut s = format!(
            "{what} latency p99: {} {} vs {} {} ({}); p50 {} vs {} ({})",
            v.label,
            text::micros(q(vs, "p99")),
            base.label,
            text::micros(q(bs, "p99")),
            text::change(lc.p99_ratio),
            text::micros(q(vs, "p50")),
            text::micros(q(bs, "p50")),
            text::change(lc.p50_ratio),
        );
        if let Some(m) = &lc.mann_whitney {
            let a = m.prob_first_larger;
            let shift = if m.p > alpha {
                "no significant shift".to_string()
            } else {
                let dir = if a > 0.5 { "slower" } else { "faster" };
                format!("{} {ops} are {dir}, {} effect", v.label, effect_size(a))
            };
            s.push_str(&format!(
                "; Mann–Whitney p = {}: {shift} (P({} slower than {}) = {a:.2})",
                text::p_value(m.p),
                v.label,
                base.label,
            ));
        }
        s.push('.');
        out.push(s);
    }
    out
}

/// Vargha and Delaney's bands for the probability of superiority A
/// (0.56 small, 0.64 medium, 0.71 large), symmetric around 0.5.
pub fn effect_size(a: f64) -> &'static str {
    match (a - 0.5).abs() {
        d if d < 0.06 => "negligible",
        d if d < 0.14 => "small",
        d if d < 0.21 => "medium",
        _ => "large",
    }
}

fn verdict(
    variants: &[VariantReport],
    comparisons: &[Comparison],
    baseline: Option<&str>,
    controls: &[ControlRow],
    valid: Option<bool>,
) -> Verdict {
    let mut v = verdict_on_counts(variants, comparisons, baseline);
    let ran: Vec<&ControlRow> = controls.iter().filter(|c| c.recorded).collect();
    let list = |rows: &[&ControlRow]| {
        rows.iter()
            .map(|c| format!("{} on {}", c.control, c.label))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match valid {
        Some(false) => {
            let missed: Vec<&ControlRow> = ran.iter().copied().filter(|c| !c.detected).collect();
            v.details.insert(0, std::mem::take(&mut v.headline));
            v.headline = format!(
                "RUN INVALID: positive control not detected ({}): no hang count of this run can be trusted.",
                list(&missed)
            );
        }
        Some(true) => v.details.push(format!(
            "Positive controls detected ({}): the hang detectors work on these kernels.",
            list(&ran)
        )),
        None => {}
    }
    v
}

/// The question the run was asked, from its run.json; for results written
/// before plans stated one, the named signatures the records carry.
fn question_of(runs: &[RunData], alpha: f64) -> crate::verdict::Question {
    if let Some(q) = runs.iter().find_map(|r| r.info.as_ref()?.question.clone()) {
        return q;
    }
    let names: BTreeSet<&String> = runs
        .iter()
        .flat_map(|r| r.records.iter().flat_map(|x| x.signatures.iter()))
        .collect();
    crate::verdict::Question {
        signatures: names
            .into_iter()
            .map(|n| crate::verdict::SignatureQuestion {
                name: n.clone(),
                absent_in: None,
            })
            .collect(),
        alpha,
        max_iterations: None,
    }
}

/// Every label's records, named by label, so that variants of several runs
/// can be compared like those of one.
fn signature_verdicts(
    runs: &[RunData],
    labelled: &[Labelled],
    baseline: &str,
    alpha: f64,
) -> Vec<crate::verdict::SignatureVerdict> {
    let question = question_of(runs, alpha);
    let mut records = Vec::new();
    for l in labelled {
        records.extend(
            runs[l.run]
                .records
                .iter()
                .filter(|r| r.variant == l.variant)
                .map(|r| IterationRecord {
                    variant: l.label.clone(),
                    ..r.clone()
                }),
        );
    }
    let mut order = vec![baseline.to_string()];
    order.extend(
        labelled
            .iter()
            .filter(|l| l.label != baseline)
            .map(|l| l.label.clone()),
    );
    crate::verdict::all_verdicts(&question, &order, &records)
}

/// The named signatures are the question, so their verdicts come first;
/// the hang-rate comparison follows, and a missing decompression probe is
/// said, not left as an empty figure.
fn lead_with_signatures(
    v: &mut Verdict,
    sigs: &[crate::verdict::SignatureVerdict],
    variants: &[VariantReport],
) {
    let mut lead: Vec<String> = sigs.iter().map(|s| s.sentence.clone()).collect();
    if !lead.is_empty() {
        let rest = std::mem::replace(&mut v.headline, lead.remove(0));
        v.details.splice(0..0, lead.into_iter().chain([rest]));
    }
    for var in variants {
        if let Some(line) = decompress_line(var) {
            v.details.push(line);
        }
    }
}

/// One line per variant on the decompression path: its latency, or why
/// there is none.
pub fn decompress_line(v: &VariantReport) -> Option<String> {
    if let Some(l) = &v.decompress_latency {
        let q = |n: &str| l.quantile(n).map_or(0.0, |q| q.value_us as f64);
        return Some(format!(
            "{}: decompression path ({}) p50 {}, p99 {}; {} calls in workers, {} elsewhere.",
            v.label,
            v.decompress_funcs.join(", "),
            text::micros(q("p50")),
            text::micros(q("p99")),
            v.decompress_calls_in_worker,
            v.decompress_calls_elsewhere
        ));
    }
    if v.counts.valid == 0 {
        return None;
    }
    let why = if v.decompress_probe_errors.is_empty() {
        "no probed call completed".to_string()
    } else {
        v.decompress_probe_errors
            .iter()
            .map(|(e, n)| format!("{e} ({n}×)"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Some(format!(
        "{}: NO decompression-path latency: {why}.",
        v.label
    ))
}

fn verdict_on_counts(
    variants: &[VariantReport],
    comparisons: &[Comparison],
    baseline: Option<&str>,
) -> Verdict {
    if variants.iter().all(|v| v.counts.valid == 0) {
        return Verdict {
            headline: "No iteration finished with a kernel verdict yet.".into(),
            details: variants
                .iter()
                .map(|v| {
                    format!(
                        "{}: {} infrastructure errors, {} not run, {} without a result.",
                        v.label, v.counts.infra_errors, v.counts.not_run, v.counts.missing
                    )
                })
                .collect(),
        };
    }
    if comparisons.is_empty() {
        let v = variants
            .iter()
            .find(|v| Some(v.label.as_str()) == baseline)
            .unwrap_or(&variants[0]);
        let mut details = Vec::new();
        if let Some(l) = &v.read_latency {
            let q = |n: &str| l.quantile(n).map_or(0.0, |q| q.value_us as f64);
            details.push(format!(
                "Read latency p50 {}, p99 {}.",
                text::micros(q("p50")),
                text::micros(q("p99"))
            ));
        }
        return Verdict {
            headline: format!("{}: {}", v.label, counts_phrase(v)),
            details,
        };
    }
    let headline = comparisons
        .iter()
        .map(|c| c.sentences[0].clone())
        .collect::<Vec<_>>()
        .join("; ");
    let details = comparisons
        .iter()
        .flat_map(|c| c.sentences[1..].iter().cloned())
        .collect();
    Verdict { headline, details }
}

fn signatures(rows: &[IterationRow], variants: &[VariantReport]) -> Vec<SignatureRow> {
    let mut map: BTreeMap<&str, SignatureRow> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.outcome.is_kernel_failure()) {
        let title = r.signature.as_deref().unwrap_or("(no signature)");
        let e = map.entry(title).or_insert_with(|| SignatureRow {
            title: title.to_string(),
            outcome: r.outcome,
            counts: variants.iter().map(|v| (v.label.clone(), 0)).collect(),
            total: 0,
            first: (r.label.clone(), r.iteration),
        });
        *e.counts.entry(r.label.clone()).or_default() += 1;
        e.total += 1;
    }
    let mut out: Vec<SignatureRow> = map.into_values().collect();
    out.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.title.cmp(&b.title)));
    out
}

fn boards(rows: &[IterationRow], variants: &[VariantReport]) -> Vec<BoardRow> {
    let mut map: BTreeMap<(String, usize), BoardRow> = BTreeMap::new();
    let order: BTreeMap<&str, usize> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| (v.label.as_str(), i))
        .collect();
    for r in rows.iter().filter(|r| r.outcome.is_valid()) {
        let e = map
            .entry((r.board.clone(), order[r.label.as_str()]))
            .or_insert_with(|| BoardRow {
                board: r.board.clone(),
                label: r.label.clone(),
                valid: 0,
                hangs: 0,
                crashes: 0,
                hang_rate: None,
                hang_ci: None,
            });
        e.valid += 1;
        e.hangs += r.outcome.is_hang() as u32;
        e.crashes += (r.outcome == Outcome::Crash) as u32;
    }
    map.into_values()
        .map(|mut b| {
            b.hang_rate = Some(b.hangs as f64 / b.valid as f64);
            b.hang_ci = wilson(b.hangs as u64, b.valid as u64, 0.95);
            b
        })
        .collect()
}

fn timelines(
    runs: &[RunData],
    labelled: &[Labelled],
    rows: &[IterationRow],
    sel: &TimelineSelection,
) -> Result<Vec<Timeline>> {
    let chosen: Vec<(&str, u32)> = match sel {
        TimelineSelection::None => Vec::new(),
        TimelineSelection::All => rows
            .iter()
            .filter(|r| r.recorded)
            .map(|r| (r.label.as_str(), r.iteration))
            .collect(),
        TimelineSelection::Only(list) => list.iter().map(|(l, i)| (l.as_str(), *i)).collect(),
        TimelineSelection::Auto { max_failures } => {
            let mut v: Vec<(&str, u32)> = rows
                .iter()
                .filter(|r| r.outcome.is_kernel_failure())
                .take(*max_failures)
                .map(|r| (r.label.as_str(), r.iteration))
                .collect();
            for l in labelled {
                if let Some(r) = rows
                    .iter()
                    .find(|r| r.label == l.label && r.outcome == Outcome::Pass)
                {
                    v.push((r.label.as_str(), r.iteration));
                }
            }
            v
        }
    };
    let mut out = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let mine: Vec<(&Labelled, u32)> = chosen
            .iter()
            .filter_map(|(label, it)| {
                labelled
                    .iter()
                    .find(|l| l.run == i && l.label == *label)
                    .map(|l| (l, *it))
            })
            .collect();
        let slot = |l: &Labelled, it: u32| Slot {
            variant: l.variant.clone(),
            iteration: it,
            control: None,
        };
        let wanted: Vec<Slot> = mine.iter().map(|(l, it)| slot(l, *it)).collect();
        let mut got = read_timelines(run, &wanted)?;
        for (l, it) in mine {
            if let Some(mut t) = got.remove(&slot(l, it)) {
                t.label = l.label.clone();
                out.push(t);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Failure;

    fn run_in(dir: &Path) -> RunData {
        RunData {
            dir: dir.to_path_buf(),
            name: "r".into(),
            info: None,
            summary: None,
            records: Vec::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn the_bio_wait_control_counts_only_the_watchers_evidence() {
        let mut r = IterationRecord::blank("v", 0, "b");
        r.control = Some("bio_wait".into());
        r.outcome = Outcome::Deadlock;
        let failure = |detector, title: &str, frame: &str| Failure {
            detector,
            title: title.into(),
            task: Some("hilt-zeroout:90".into()),
            frames: vec![frame.into(), "blkdev_issue_zeroout".into()],
            uptime_ms: None,
            detected_after_ms: 40_000,
            excerpt: String::new(),
            timing: None,
        };
        let watcher = "hang: hilt-zeroout stuck in submit_bio_wait with no workload progress";
        r.failure = Some(failure(Detector::Dstate, watcher, "submit_bio_wait"));
        assert!(control_detected(&r));
        // A hung-task report is what this control must do without.
        r.kernel_events = vec!["INFO: task hung in rq_qos_wait".into()];
        r.failure = Some(failure(
            Detector::AgentKmsg,
            "INFO: task hung in rq_qos_wait",
            "rq_qos_wait",
        ));
        assert!(!control_detected(&r));
        r.failure = Some(failure(Detector::Dstate, watcher, "folio_wait_bit_common"));
        assert!(!control_detected(&r), "not a bio wait");
        // The swap freeze keeps its own rule.
        r.control = Some("swap_freeze".into());
        assert!(control_detected(&r));
    }

    #[test]
    fn a_console_log_outside_the_run_directory_or_not_a_file_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let run_dir = d.path().join("runs/r");
        std::fs::create_dir_all(run_dir.join("iterations/a-000")).unwrap();
        std::fs::write(d.path().join("secret.txt"), "secret").unwrap();
        std::fs::write(run_dir.join("iterations/a-000/console.log"), "log").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret.txt"), run_dir.join("link.log")).unwrap();
        let run = run_in(&run_dir);

        let (path, refused) = console_of(&run, "iterations/a-000/console.log");
        assert_eq!(refused, None);
        assert_eq!(
            path.unwrap(),
            run_dir
                .join("iterations/a-000/console.log")
                .canonicalize()
                .unwrap()
        );
        for (recorded, why) in [
            ("../../secret.txt", "is outside the run directory"),
            ("link.log", "is outside the run directory"),
            ("/dev/zero", "is outside the run directory"),
            ("../../missing.log", "is outside the run directory"),
            ("iterations", "is not a regular file"),
        ] {
            let (path, refused) = console_of(&run, recorded);
            assert_eq!(path, None, "{recorded}");
            assert_eq!(
                refused.as_deref(),
                Some(format!("console log {recorded:?} {why}: not read").as_str())
            );
        }
        // Not written yet: linked, and read by nobody until it exists.
        let (path, refused) = console_of(&run, "iterations/a-001/console.log");
        assert_eq!(
            (path, refused),
            (Some(run_dir.join("iterations/a-001/console.log")), None)
        );
        assert_eq!(console_of(&run, ""), (None, None));
    }
}
