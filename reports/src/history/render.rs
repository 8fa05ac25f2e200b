//! The trends of a plan as `hilt history` writes them: a Markdown table,
//! the JSON and the two trend figures.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};

use super::db::Trends;
use crate::plots::Figure;
use crate::text;

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
            crate::render_util::cell(&r.name),
            r.started_at
        ));
        for v in &t.series {
            match v.points.iter().find(|p| p.run_index == i) {
                Some(p) => s.push_str(&format!(
                    " {}/{} {}{} | {} |",
                    p.hangs,
                    p.valid,
                    text::interval(p.hang_ci),
                    if p.stalls > 0 || p.deadlocks > 0 {
                        format!(" ({} deadlocks, {} stalls)", p.deadlocks, p.stalls)
                    } else {
                        String::new()
                    },
                    p.p99_us.map_or("–".into(), |u| text::micros(u as f64))
                )),
                None => s.push_str(" – | – |"),
            }
        }
        s.push('\n');
    }
    // The named signatures: deadlocks per run and variant.
    let names: BTreeSet<&String> = t
        .series
        .iter()
        .flat_map(|v| v.points.iter().flat_map(|p| p.signature_deadlocks.keys()))
        .collect();
    if !names.is_empty() {
        s.push_str("\n## Named signatures: deadlocks / valid iterations\n\n| run |");
        let mut cols = Vec::new();
        for name in &names {
            for v in &t.series {
                s.push_str(&format!(
                    " `{}` {} |",
                    crate::render_util::cell(name),
                    v.variant
                ));
                cols.push((*name, v));
            }
        }
        s.push_str("\n|---|");
        s.push_str(&"--:|".repeat(cols.len()));
        s.push('\n');
        for (i, r) in t.runs.iter().enumerate() {
            s.push_str(&format!("| {} |", crate::render_util::cell(&r.name)));
            for (name, v) in &cols {
                let cell = v
                    .points
                    .iter()
                    .find(|p| p.run_index == i)
                    .and_then(|p| Some((p.signature_deadlocks.get(*name)?, p.valid)))
                    .map_or("–".into(), |(k, n)| format!("{k}/{n}"));
                s.push_str(&format!(" {cell} |"));
            }
            s.push('\n');
        }
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
