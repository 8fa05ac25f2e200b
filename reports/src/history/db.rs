//! The history database: what is recorded of each run, and the trends
//! and regressions computed from it. Nothing here renders, so the trend
//! figures can take their data from here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::load::RunData;
use crate::stats::hypothesis::fisher_greater;
use crate::stats::rate::wilson;
use crate::{summarize, text, IterationRecord, Outcome, VariantSummary};

const SCHEMA_VERSION: i64 = 2;

/// Version 1, as first released; a new database is created as version 1
/// and migrated, so old and new databases end up with the same schema.
const SCHEMA_V1: &str = "
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    run_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    plan_sha256 TEXT NOT NULL,
    started_at TEXT NOT NULL,
    hilt_version TEXT NOT NULL,
    dir TEXT NOT NULL,
    interrupted INTEGER NOT NULL,
    -- NULL without positive controls, 0 when one went undetected.
    valid INTEGER,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX runs_by_plan ON runs (plan, started_at);
CREATE TABLE variants (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    variant TEXT NOT NULL,
    kernel_package TEXT NOT NULL,
    kernel_release TEXT NOT NULL,
    kernel_image_sha256 TEXT NOT NULL,
    valid INTEGER NOT NULL,
    hangs INTEGER NOT NULL,
    silent_hangs INTEGER NOT NULL,
    crashes INTEGER NOT NULL,
    infra_errors INTEGER NOT NULL,
    not_run INTEGER NOT NULL,
    reads INTEGER NOT NULL,
    p50_us INTEGER,
    p99_us INTEGER,
    p999_us INTEGER,
    PRIMARY KEY (run_id, variant)
);
";

/// Version 2: deadlocks and stalls apart from unclassified hangs (whose
/// `hangs` column keeps its meaning: in a version 1 database every hang
/// was unclassified), and per-signature counts per run and variant.
const MIGRATE_V2: &str = "
ALTER TABLE variants ADD COLUMN deadlocks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE variants ADD COLUMN stalls INTEGER NOT NULL DEFAULT 0;
-- 1 when the run's named signatures were recorded (0 for runs recorded
-- by a version 1 hilt, whose signatures are unknown, not absent).
ALTER TABLE runs ADD COLUMN signatures_recorded INTEGER NOT NULL DEFAULT 0;
CREATE TABLE signatures (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    variant TEXT NOT NULL,
    signature TEXT NOT NULL,
    valid INTEGER NOT NULL,
    deadlocks INTEGER NOT NULL,
    stalls INTEGER NOT NULL,
    PRIMARY KEY (run_id, variant, signature)
);
";

pub struct History {
    conn: Connection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRun {
    pub id: i64,
    pub run_key: String,
    pub name: String,
    pub plan: String,
    pub plan_sha256: String,
    pub started_at: String,
    pub hilt_version: String,
    pub dir: String,
    pub interrupted: bool,
    /// None without positive controls; false when one went undetected.
    pub valid: Option<bool>,
    /// False for runs recorded before named signatures were: their
    /// signature counts are unknown, not zero.
    #[serde(default)]
    pub signatures_recorded: bool,
    pub variants: Vec<HistoryVariant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryVariant {
    pub variant: String,
    pub kernel_package: String,
    pub kernel_release: String,
    pub kernel_image_sha256: String,
    pub valid: u32,
    /// Hangs not classified as deadlock or stall.
    pub hangs: u32,
    #[serde(default)]
    pub deadlocks: u32,
    #[serde(default)]
    pub stalls: u32,
    pub silent_hangs: u32,
    pub crashes: u32,
    pub infra_errors: u32,
    pub not_run: u32,
    pub reads: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    /// The plan's named signatures in this run (empty when not recorded).
    #[serde(default)]
    pub signatures: Vec<SignatureCount>,
}

impl HistoryVariant {
    /// Hangs that never recovered: what the hang rate counts (not stalls).
    pub fn all_hangs(&self) -> u32 {
        self.hangs + self.deadlocks + self.silent_hangs
    }

    /// Deadlocks with the signature; None when this run did not name it.
    pub fn signature(&self, name: &str) -> Option<&SignatureCount> {
        self.signatures.iter().find(|s| s.signature == name)
    }
}

/// One named signature in one variant of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureCount {
    pub signature: String,
    /// Iterations with a kernel verdict.
    pub valid: u32,
    /// Hangs that never recovered and carry the signature.
    pub deadlocks: u32,
    /// Stalls that carry it.
    pub stalls: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trends {
    pub plan: String,
    /// Oldest first.
    pub runs: Vec<TrendRun>,
    pub series: Vec<TrendSeries>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendRun {
    pub run_key: String,
    pub name: String,
    pub started_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendSeries {
    pub variant: String,
    pub points: Vec<TrendPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// Index into `Trends::runs`.
    pub run_index: usize,
    pub kernel_release: String,
    pub valid: u32,
    /// Hangs that never recovered: deadlocks, unclassified and silent hangs.
    pub hangs: u32,
    pub hang_rate: Option<f64>,
    pub hang_ci: Option<(f64, f64)>,
    #[serde(default)]
    pub deadlocks: u32,
    #[serde(default)]
    pub stalls: u32,
    #[serde(default)]
    pub stall_rate: Option<f64>,
    #[serde(default)]
    pub stall_ci: Option<(f64, f64)>,
    pub p99_us: Option<u64>,
    /// Deadlocks per named signature (runs that recorded them).
    #[serde(default)]
    pub signature_deadlocks: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionOptions {
    /// One-sided Fisher test level for "hangs more than before".
    pub alpha: f64,
    /// p99 read latency above the previous runs' maximum by more than this
    /// percentage is a regression.
    pub p99_increase_pct: f64,
}

impl Default for RegressionOptions {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            p99_increase_pct: 20.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionCheck {
    pub run_key: String,
    /// Keys of the earlier runs of the same plan compared against, newest first.
    pub compared_with: Vec<String>,
    pub regressions: Vec<Regression>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    pub variant: String,
    pub kind: RegressionKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum RegressionKind {
    /// Hangs (of `valid`) in this run against the pooled earlier runs.
    HangRate {
        hangs: u32,
        valid: u32,
        previous_hangs: u32,
        previous_valid: u32,
        p: f64,
    },
    P99 {
        p99_us: u64,
        previous_max_us: u64,
        increase_pct: f64,
    },
    /// A named signature that never deadlocked in this variant over the
    /// earlier runs (that recorded signatures) deadlocks now.
    Signature {
        signature: String,
        deadlocks: u32,
        valid: u32,
        previous_runs: u32,
        previous_valid: u32,
    },
}

/// The run's iterations without its positive controls, which never count.
fn plain_records(run: &RunData) -> Vec<crate::IterationRecord> {
    run.records
        .iter()
        .filter(|r| r.control.is_none())
        .cloned()
        .collect()
}

/// None without positive controls; false when one that ran went undetected.
pub fn run_valid(run: &RunData) -> Option<bool> {
    let controls: Vec<bool> = run
        .records
        .iter()
        .filter(|r| r.control.is_some())
        .map(crate::report::control_detected)
        .collect();
    (!controls.is_empty()).then(|| controls.iter().all(|&d| d))
}

/// The run's named signatures: its plan's question when run.json states
/// one, otherwise those its records name (as `hilt report` asks them).
pub fn named_signatures(run: &RunData) -> Vec<String> {
    if let Some(q) = run.info.as_ref().and_then(|i| i.question.as_ref()) {
        return q.signatures.iter().map(|s| s.name.clone()).collect();
    }
    run.records
        .iter()
        .flat_map(|r| r.signatures.iter().cloned())
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect()
}

/// Deadlocks and stalls with each named signature, per variant.
fn signature_counts(
    recs: &[IterationRecord],
    variant: &str,
    names: &[String],
) -> Vec<SignatureCount> {
    let valid: Vec<&IterationRecord> = recs
        .iter()
        .filter(|r| r.variant == variant && r.outcome.is_valid())
        .collect();
    names
        .iter()
        .map(|name| SignatureCount {
            signature: name.clone(),
            valid: valid.len() as u32,
            deadlocks: valid
                .iter()
                .filter(|r| crate::verdict::is_signature_deadlock(r, name))
                .count() as u32,
            stalls: valid
                .iter()
                .filter(|r| r.outcome == Outcome::Stall && r.signatures.iter().any(|s| s == name))
                .count() as u32,
        })
        .collect()
}

/// Identifies a run across re-recording: the same directory reported again
/// after more iterations finished replaces its earlier figures.
pub fn run_key(run: &RunData) -> String {
    format!("{}@{}", run.name, run.started_at())
}

impl History {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        Self::init(conn).with_context(|| format!("in {}", path.display()))
    }

    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Several hilt processes may record at once (nightly jobs on a shared host).
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            bail!("history schema version {version} is newer than this hilt understands ({SCHEMA_VERSION})");
        }
        if version < SCHEMA_VERSION {
            // Under a write lock, reading the version again: another
            // process may have migrated in between.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version == 0 {
                tx.execute_batch(SCHEMA_V1)?;
            }
            if version < 2 {
                tx.execute_batch(MIGRATE_V2)
                    .context("migrating the history to version 2")?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        }
        Ok(Self { conn })
    }

    /// Records `run` (replacing an earlier record of the same run) and returns its id.
    pub fn record_run(&mut self, run: &RunData) -> Result<i64> {
        let key = run_key(run);
        let info = run.info.clone().unwrap_or_default();
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM runs WHERE run_key = ?1", params![key])?;
        tx.execute(
            "INSERT INTO runs (run_key, name, plan, plan_sha256, started_at, hilt_version, dir, interrupted, valid,
                 signatures_recorded)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)",
            params![
                key,
                run.name,
                run.plan(),
                info.plan_sha256,
                run.started_at(),
                info.hilt_version,
                run.dir.canonicalize().unwrap_or_else(|_| run.dir.clone()).display().to_string(),
                run.interrupted(),
                run_valid(run),
            ],
        )?;
        let id = tx.last_insert_rowid();
        let plain = plain_records(run);
        let summaries = summarize(&plain);
        let names = named_signatures(run);
        for name in run.variants() {
            let s = summaries
                .iter()
                .find(|s| s.variant == name)
                .cloned()
                .unwrap_or_else(|| crate::summarize_variant(&name, std::iter::empty()));
            let v = run.variant_info(&name).cloned().unwrap_or_default();
            let lat = s.latency_us;
            tx.execute(
                "INSERT INTO variants (run_id, variant, kernel_package, kernel_release, kernel_image_sha256, valid, hangs,
                     silent_hangs, crashes, infra_errors, not_run, reads, p50_us, p99_us, p999_us, deadlocks, stalls)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                params![
                    id,
                    name,
                    v.kernel_package,
                    v.kernel_release,
                    v.kernel_image_sha256,
                    s.iterations,
                    s.hangs,
                    s.silent_hangs,
                    s.crashes,
                    s.infra_errors,
                    s.not_run,
                    s.reads as i64,
                    lat.map(|l| l.p50 as i64),
                    lat.map(|l| l.p99 as i64),
                    lat.map(|l| l.p999 as i64),
                    s.deadlocks,
                    s.stalls,
                ],
            )?;
            for c in signature_counts(&plain, &name, &names) {
                tx.execute(
                    "INSERT INTO signatures (run_id, variant, signature, valid, deadlocks, stalls)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, name, c.signature, c.valid, c.deadlocks, c.stalls],
                )?;
            }
        }
        tx.commit()?;
        Ok(id)
    }

    /// Plans with recorded runs.
    pub fn plans(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT plan FROM runs ORDER BY plan")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Recorded runs, oldest first; the `last_n` most recent when given.
    pub fn runs(&self, plan: Option<&str>, last_n: Option<usize>) -> Result<Vec<HistoryRun>> {
        let mut st = self.conn.prepare(
            "SELECT id, run_key, name, plan, plan_sha256, started_at, hilt_version, dir, interrupted, valid,
                    signatures_recorded FROM runs
             WHERE ?1 IS NULL OR plan = ?1 ORDER BY started_at DESC, id DESC LIMIT ?2",
        )?;
        let limit = last_n.map_or(-1, |n| n as i64);
        let mut runs: Vec<HistoryRun> = st
            .query_map(params![plan, limit], |r| {
                Ok(HistoryRun {
                    id: r.get(0)?,
                    run_key: r.get(1)?,
                    name: r.get(2)?,
                    plan: r.get(3)?,
                    plan_sha256: r.get(4)?,
                    started_at: r.get(5)?,
                    hilt_version: r.get(6)?,
                    dir: r.get(7)?,
                    interrupted: r.get(8)?,
                    valid: r.get(9)?,
                    signatures_recorded: r.get(10)?,
                    variants: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        runs.reverse();
        let mut st = self.conn.prepare(
            "SELECT variant, kernel_package, kernel_release, kernel_image_sha256, valid, hangs, silent_hangs, crashes,
                    infra_errors, not_run, reads, p50_us, p99_us, p999_us, deadlocks, stalls
             FROM variants WHERE run_id = ?1 ORDER BY rowid",
        )?;
        let mut sig = self.conn.prepare(
            "SELECT signature, valid, deadlocks, stalls FROM signatures
             WHERE run_id = ?1 AND variant = ?2 ORDER BY signature",
        )?;
        for run in &mut runs {
            run.variants = st
                .query_map(params![run.id], |r| {
                    let opt = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(|v| v as u64));
                    Ok(HistoryVariant {
                        variant: r.get(0)?,
                        kernel_package: r.get(1)?,
                        kernel_release: r.get(2)?,
                        kernel_image_sha256: r.get(3)?,
                        valid: r.get(4)?,
                        hangs: r.get(5)?,
                        silent_hangs: r.get(6)?,
                        crashes: r.get(7)?,
                        infra_errors: r.get(8)?,
                        not_run: r.get(9)?,
                        reads: r.get::<_, i64>(10)? as u64,
                        p50_us: opt(11)?,
                        p99_us: opt(12)?,
                        p999_us: opt(13)?,
                        deadlocks: r.get(14)?,
                        stalls: r.get(15)?,
                        signatures: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            for v in &mut run.variants {
                v.signatures = sig
                    .query_map(params![run.id, v.variant], |r| {
                        Ok(SignatureCount {
                            signature: r.get(0)?,
                            valid: r.get(1)?,
                            deadlocks: r.get(2)?,
                            stalls: r.get(3)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
            }
        }
        Ok(runs)
    }

    /// Hang rate and p99 per variant over the plan's runs (the `last_n`
    /// most recent when given).
    pub fn trends(&self, plan: &str, last_n: Option<usize>) -> Result<Trends> {
        let runs = self.runs(Some(plan), last_n)?;
        let mut series: Vec<TrendSeries> = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            for v in &run.variants {
                let idx = match series.iter().position(|s| s.variant == v.variant) {
                    Some(k) => k,
                    None => {
                        series.push(TrendSeries {
                            variant: v.variant.clone(),
                            points: Vec::new(),
                        });
                        series.len() - 1
                    }
                };
                series[idx].points.push(TrendPoint {
                    run_index: i,
                    kernel_release: v.kernel_release.clone(),
                    valid: v.valid,
                    hangs: v.all_hangs(),
                    hang_rate: (v.valid > 0).then(|| v.all_hangs() as f64 / v.valid as f64),
                    hang_ci: wilson(v.all_hangs() as u64, v.valid as u64, 0.95),
                    deadlocks: v.deadlocks,
                    stalls: v.stalls,
                    stall_rate: (v.valid > 0).then(|| v.stalls as f64 / v.valid as f64),
                    stall_ci: wilson(v.stalls as u64, v.valid as u64, 0.95),
                    p99_us: v.p99_us,
                    signature_deadlocks: v
                        .signatures
                        .iter()
                        .map(|s| (s.signature.clone(), s.deadlocks))
                        .collect(),
                });
            }
        }
        Ok(Trends {
            plan: plan.to_string(),
            runs: runs
                .iter()
                .map(|r| TrendRun {
                    run_key: r.run_key.clone(),
                    name: r.name.clone(),
                    started_at: r.started_at.clone(),
                })
                .collect(),
            series,
        })
    }

    /// Compares `run` with the `last_n` earlier runs of its plan: a variant
    /// regressed when it hangs (deadlocks, unclassified and silent hangs;
    /// not stalls) significantly more than in those runs pooled (one-sided
    /// Fisher exact test), when one of the plan's named signatures that
    /// never deadlocked in it over those runs deadlocks now, or when its p99
    /// read latency exceeds their maximum by more than `p99_increase_pct`.
    pub fn regressions(
        &self,
        run: &RunData,
        last_n: usize,
        opts: &RegressionOptions,
    ) -> Result<RegressionCheck> {
        let key = run_key(run);
        let earlier: Vec<HistoryRun> = self
            .runs(Some(run.plan()), None)?
            .into_iter()
            .rev()
            // A run whose positive control went undetected has untrustworthy counts.
            .filter(|r| {
                r.run_key != key
                    && r.started_at.as_str() < run.started_at()
                    && r.valid != Some(false)
            })
            .take(last_n)
            .collect();
        let plain = plain_records(run);
        let now: Vec<VariantSummary> = summarize(&plain);
        let names = named_signatures(run);
        let mut regressions = Vec::new();
        for s in &now {
            let prev: Vec<&HistoryVariant> = earlier
                .iter()
                .flat_map(|r| r.variants.iter())
                .filter(|v| v.variant == s.variant)
                .collect();
            if prev.is_empty() {
                continue;
            }
            let hangs = s.hangs + s.deadlocks + s.silent_hangs;
            let (ph, pv) = prev
                .iter()
                .fold((0, 0), |a, v| (a.0 + v.all_hangs(), a.1 + v.valid));
            if let Some(p) = fisher_greater(hangs as u64, s.iterations as u64, ph as u64, pv as u64)
                .filter(|p| *p <= opts.alpha)
            {
                regressions.push(Regression {
                    variant: s.variant.clone(),
                    message: format!(
                        "{}: {hangs}/{} hangs against {ph}/{pv} in the previous {} runs (one-sided Fisher p = {})",
                        s.variant,
                        s.iterations,
                        earlier.len(),
                        text::p_value(p)
                    ),
                    kind: RegressionKind::HangRate { hangs, valid: s.iterations, previous_hangs: ph, previous_valid: pv, p },
                });
            }
            regressions.extend(signature_regressions(
                &s.variant,
                &signature_counts(&plain, &s.variant, &names),
                &earlier,
            ));
            let prev_max = prev.iter().filter_map(|v| v.p99_us).max();
            if let (Some(now99), Some(max)) = (s.latency_us.map(|l| l.p99), prev_max) {
                let increase_pct = (now99 as f64 / max.max(1) as f64 - 1.0) * 100.0;
                if increase_pct > opts.p99_increase_pct {
                    regressions.push(Regression {
                        variant: s.variant.clone(),
                        message: format!(
                            "{}: p99 read latency {} is {increase_pct:.0}% above the previous maximum {} (threshold {}%)",
                            s.variant,
                            text::micros(now99 as f64),
                            text::micros(max as f64),
                            opts.p99_increase_pct
                        ),
                        kind: RegressionKind::P99 { p99_us: now99, previous_max_us: max, increase_pct },
                    });
                }
            }
        }
        Ok(RegressionCheck {
            run_key: key,
            compared_with: earlier.iter().map(|r| r.run_key.clone()).collect(),
            regressions,
        })
    }

    /// The run key of the most recent run of `plan`, if any.
    pub fn latest(&self, plan: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT run_key FROM runs WHERE plan = ?1 ORDER BY started_at DESC, id DESC LIMIT 1", params![plan], |r| {
                r.get(0)
            })
            .optional()?)
    }
}

/// Named signatures that deadlock in `variant` now and never did in the
/// earlier runs that recorded signatures and ran the variant. In such a
/// run, a signature without a row was not seen: it counts as absent.
fn signature_regressions(
    variant: &str,
    now: &[SignatureCount],
    earlier: &[HistoryRun],
) -> Vec<Regression> {
    let prev: Vec<&HistoryVariant> = earlier
        .iter()
        .filter(|r| r.signatures_recorded)
        .flat_map(|r| r.variants.iter().filter(|v| v.variant == variant))
        .collect();
    let mut out = Vec::new();
    for c in now.iter().filter(|c| c.deadlocks > 0) {
        let (prev_deadlocks, prev_valid) = prev.iter().fold((0, 0), |a, v| {
            let k = v.signature(&c.signature).map_or(0, |s| s.deadlocks);
            (a.0 + k, a.1 + v.valid)
        });
        if prev.is_empty() || prev_valid == 0 || prev_deadlocks > 0 {
            continue;
        }
        out.push(Regression {
            variant: variant.to_string(),
            message: format!(
                "{variant}: signature {} deadlocked in {}/{} iterations; it never did in the previous {} runs (0/{prev_valid})",
                c.signature,
                c.deadlocks,
                c.valid,
                prev.len()
            ),
            kind: RegressionKind::Signature {
                signature: c.signature.clone(),
                deadlocks: c.deadlocks,
                valid: c.valid,
                previous_runs: prev.len() as u32,
                previous_valid: prev_valid,
            },
        });
    }
    out
}
