//! `hilt report`, `hilt compare`, `hilt history`: the reports crate, wired
//! to results directories and the history database.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hilt_reports::history::{History, RegressionOptions};
use hilt_reports::{build_report, load_run, write_report, ReportOptions};

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

/// After a run: its report, and its entry in the history with a check
/// against the last nights.
pub fn report_and_record(run: &Path, history: Option<&Path>) -> anyhow::Result<PathBuf> {
    let index = report(&[run.to_path_buf()], None)?;
    if let Some(db) = history {
        let data = load_run(run)?;
        let mut h = History::open(db)?;
        h.record_run(&data)?;
        let check = h.regressions(&data, 7, &RegressionOptions::default())?;
        for r in &check.regressions {
            println!(
                "REGRESSION against the last {} runs: {}",
                check.compared_with.len(),
                r.message
            );
        }
    }
    Ok(index)
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
