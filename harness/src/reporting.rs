//! `hilt report`, `hilt compare`, `hilt history`: the reports crate, wired
//! to results directories and the history database.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hilt_reports::history::{History, Regression, RegressionOptions};
use hilt_reports::{build_report, load_run, write_report, Report, ReportOptions};
use serde::Serialize;

/// `$HILT_HISTORY`, else `~/.local/share/hilt/history.sqlite`.
pub fn default_history() -> PathBuf {
    if let Some(p) = std::env::var_os("HILT_HISTORY") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/hilt/history.sqlite")
}

/// Writes `RUN_DIR/report/` for the runs, the first being where it goes.
pub fn report(runs: &[PathBuf], baseline: Option<String>) -> anyhow::Result<PathBuf> {
    let data = runs
        .iter()
        .map(|d| load_run(d).with_context(|| format!("reading {}", d.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = ReportOptions {
        baseline,
        ..Default::default()
    };
    let report = build_report(&data, &opts)?;
    let out = runs[0].join("report");
    write_report(&report, &out)?;
    println!("{}", report.verdict.headline);
    for d in &report.verdict.details {
        println!("  {d}");
    }
    Ok(out.join("index.html"))
}

/// What a run published: its report, and what the history said of it.
#[derive(Default)]
pub struct Published {
    /// None when the report could not be built from the results directory.
    pub report: Option<Report>,
    pub regressions: Vec<Regression>,
}

/// After a run: its report, and its entry in the history with a check
/// against the last nights. Each step that fails is a warning: the steps
/// after it (and the CI files of [`export`]) still get their chance.
pub fn report_and_record(run: &Path, history: Option<&Path>) -> Published {
    let warn = |what: &str, e: anyhow::Error| eprintln!("hilt: warning: {what}: {e:#}");
    let mut out = Published::default();
    let data = match load_run(run) {
        Ok(d) => d,
        Err(e) => {
            warn("no report written", e);
            return out;
        }
    };
    match build_report(std::slice::from_ref(&data), &ReportOptions::default()) {
        Ok(r) => {
            let dir = run.join("report");
            match write_report(&r, &dir) {
                Ok(()) => {
                    println!("{}", r.verdict.headline);
                    for d in &r.verdict.details {
                        println!("  {d}");
                    }
                    println!("report: {}", dir.join("index.html").display());
                }
                Err(e) => warn("report not written", e),
            }
            out.report = Some(r);
        }
        Err(e) => warn("no report built", e),
    }
    if let Some(db) = history {
        let check = History::open(db).and_then(|mut h| {
            h.record_run(&data)?;
            h.regressions(&data, 7, &RegressionOptions::default())
        });
        match check {
            Ok(check) => {
                for r in &check.regressions {
                    println!(
                        "REGRESSION against the last {} runs: {}",
                        check.compared_with.len(),
                        r.message
                    );
                }
                out.regressions = check.regressions;
            }
            Err(e) => warn(&format!("history {} not updated", db.display()), e),
        }
    }
    out
}

/// Where `hilt run --junit/--json` put the run's results for CI.
#[derive(Default, Clone)]
pub struct Exports {
    pub junit: Option<PathBuf>,
    pub json: Option<JsonTarget>,
}

#[derive(Clone)]
pub enum JsonTarget {
    Path(PathBuf),
    /// `--json -`: the process's real stdout, kept aside while everything
    /// else printed goes to stderr (see cli.rs).
    Stdout(std::sync::Arc<std::sync::Mutex<std::fs::File>>),
}

/// `--json`: the run's status for a CI step to branch on, and its report.
#[derive(Serialize)]
struct CiResult<'a> {
    version: u32,
    exit_code: i32,
    status: &'a str,
    run_dir: String,
    regressions: &'a [Regression],
    /// Set when results could not be written (a full disk): the results
    /// directory holds what was gathered before.
    results_write_failure: Option<&'a str>,
    /// Why the run ended before it could report (artifacts not prepared...).
    error: Option<&'a str>,
    report: Option<&'a Report>,
}

/// Writes the files CI asked for. Failing to is an infrastructure failure:
/// a nightly job that uploads nothing must not pass.
pub fn export(
    x: &Exports,
    run: &Path,
    published: &Published,
    exit_code: i32,
    status: &str,
    write_failure: Option<&str>,
    error: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(path) = &x.junit {
        let r = published
            .report
            .as_ref()
            .context("no report could be built from the results, so no JUnit file")?;
        std::fs::write(path, hilt_reports::junit::render(r))
            .with_context(|| format!("writing the JUnit file {}", path.display()))?;
    }
    if let Some(target) = &x.json {
        let mut body = serde_json::to_vec_pretty(&CiResult {
            version: 1,
            exit_code,
            status,
            run_dir: run.display().to_string(),
            regressions: &published.regressions,
            results_write_failure: write_failure,
            error,
            report: published.report.as_ref(),
        })?;
        body.push(b'\n');
        match target {
            JsonTarget::Path(p) => std::fs::write(p, &body)
                .with_context(|| format!("writing the JSON file {}", p.display()))?,
            JsonTarget::Stdout(f) => {
                use std::io::Write;
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                f.write_all(&body)
                    .and_then(|_| f.flush())
                    .context("writing the JSON result to stdout")?;
            }
        }
    }
    Ok(())
}

/// `hilt history [--plan P] [--last N] [--out DIR]`: trends per plan, with plots.
pub fn history(
    db: &Path,
    plan: Option<String>,
    last: Option<usize>,
    out: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let h = History::open(db)?;
    let plans = match plan {
        Some(p) => vec![p],
        None => h.plans()?,
    };
    if plans.is_empty() {
        println!("no runs recorded in {}", db.display());
        return Ok(0);
    }
    for p in plans {
        let t = h.trends(&p, last)?;
        print!("{}", hilt_reports::history::trends_markdown(&t));
        if let Some(dir) = &out {
            let d = dir.join(&p);
            hilt_reports::history::write_trends(&t, &d)?;
            println!("plots: {}", d.display());
        }
    }
    Ok(0)
}
