//! Writing a report directory.

use std::path::Path;

use anyhow::{Context, Result};

use crate::plots::report_figures;
use crate::report::Report;
use crate::{html, json, junit, kcidb, markdown};

/// Writes `out_dir/{index.html, summary.md, junit.xml, report.json,
/// kcidb.json, plots/*.svg, plots/*.png}`, creating `out_dir` if needed.
pub fn write_report(report: &Report, out_dir: &Path) -> Result<()> {
    let plots = out_dir.join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    let mut svgs = Vec::new();
    for f in report_figures(report) {
        let stem = f.stem();
        let svg = f.svg().with_context(|| format!("drawing {stem}"))?;
        std::fs::write(plots.join(format!("{stem}.svg")), &svg)?;
        f.png(&plots.join(format!("{stem}.png")))
            .with_context(|| format!("drawing {stem}.png"))?;
        svgs.push((stem, svg));
    }
    let write = |name: &str, body: &[u8]| -> Result<()> {
        let p = out_dir.join(name);
        std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))
    };
    write(
        "index.html",
        html::render(report, &svgs, out_dir).as_bytes(),
    )?;
    write("summary.md", markdown::render(report, out_dir).as_bytes())?;
    write("junit.xml", junit::render(report).as_bytes())?;
    write("report.json", json::render(report)?.as_bytes())?;
    write("kcidb.json", kcidb::render(report)?.as_bytes())?;
    Ok(())
}
