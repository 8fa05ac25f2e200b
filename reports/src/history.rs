//! Every run's figures in SQLite, for trends over nights and for flagging a
//! run that is worse than the ones before it.
//!
//! The database path is the caller's choice (the harness uses
//! `$HILT_HISTORY` or `~/.local/share/hilt/history.sqlite`). SQLite is
//! compiled in (rusqlite's `bundled`), so no system library is needed.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::load::RunData;
use crate::plots::Figure;
use crate::stats::hypothesis::fisher_greater;
use crate::stats::rate::wilson;
use crate::{summarize, text, VariantSummary};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
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
    pub variants: Vec<HistoryVariant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryVariant {
    pub variant: String,
    pub kernel_package: String,
    pub kernel_release: String,
    pub kernel_image_sha256: String,
    pub valid: u32,
    pub hangs: u32,
    pub silent_hangs: u32,
    pub crashes: u32,
    pub infra_errors: u32,
    pub not_run: u32,
    pub reads: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
}

impl HistoryVariant {
    pub fn all_hangs(&self) -> u32 {
        self.hangs + self.silent_hangs
    }
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
    pub hangs: u32,
    pub hang_rate: Option<f64>,
    pub hang_ci: Option<(f64, f64)>,
    pub p99_us: Option<u64>,
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

    fn init(conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Several hilt processes may record at once (nightly jobs on a shared host).
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        match version {
            0 => {
                conn.execute_batch(SCHEMA)?;
                conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            SCHEMA_VERSION => {}
            v => bail!(
                "history schema version {v} is newer than this hilt understands ({SCHEMA_VERSION})"
            ),
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
            "INSERT INTO runs (run_key, name, plan, plan_sha256, started_at, hilt_version, dir, interrupted, valid)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
        let summaries = summarize(&plain_records(run));
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
                     silent_hangs, crashes, infra_errors, not_run, reads, p50_us, p99_us, p999_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
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
                ],
            )?;
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
            "SELECT id, run_key, name, plan, plan_sha256, started_at, hilt_version, dir, interrupted, valid FROM runs
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
                    variants: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        runs.reverse();
        let mut st = self.conn.prepare(
            "SELECT variant, kernel_package, kernel_release, kernel_image_sha256, valid, hangs, silent_hangs, crashes,
                    infra_errors, not_run, reads, p50_us, p99_us, p999_us
             FROM variants WHERE run_id = ?1 ORDER BY rowid",
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
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
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
                    p99_us: v.p99_us,
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
    /// regressed when it hangs significantly more than in those runs pooled
    /// (one-sided Fisher exact test), or when its p99 read latency exceeds
    /// their maximum by more than `p99_increase_pct`.
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
        let now: Vec<VariantSummary> = summarize(&plain_records(run));
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
            let hangs = s.hangs + s.silent_hangs;
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

/// A Markdown table of the trends, one row per run.
pub fn trends_markdown(t: &Trends) -> String {
    let mut s = format!(
        "# {}: history of {} runs\n\n| run | started |",
        t.plan,
        t.runs.len()
    );
    for v in &t.series {
        s.push_str(&format!(" {} hangs | {} p99 |", v.variant, v.variant));
    }
    s.push_str("\n|---|---|");
    s.push_str(&"---|---|".repeat(t.series.len()));
    s.push('\n');
    for (i, r) in t.runs.iter().enumerate() {
        s.push_str(&format!(
            "| {} | {} |",
            crate::markdown::cell(&r.name),
            r.started_at
        ));
        for v in &t.series {
            match v.points.iter().find(|p| p.run_index == i) {
                Some(p) => s.push_str(&format!(
                    " {}/{} {} | {} |",
                    p.hangs,
                    p.valid,
                    text::interval(p.hang_ci),
                    p.p99_us.map_or("–".into(), |u| text::micros(u as f64))
                )),
                None => s.push_str(" – | – |"),
            }
        }
        s.push('\n');
    }
    s
}

/// Writes `trends.md`, `trends.json` and the two trend figures (SVG and PNG) into `out_dir`.
pub fn write_trends(t: &Trends, out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    std::fs::write(out_dir.join("trends.md"), trends_markdown(t))?;
    std::fs::write(out_dir.join("trends.json"), serde_json::to_vec_pretty(t)?)?;
    for f in [Figure::HangRateTrend(t), Figure::P99Trend(t)] {
        std::fs::write(out_dir.join(format!("{}.svg", f.stem())), f.svg()?)?;
        f.png(&out_dir.join(format!("{}.png", f.stem())))?;
    }
    Ok(())
}
