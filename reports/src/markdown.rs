//! `summary.md`: the verdict and the key tables, for CI job pages.

use std::fmt::Write as _;
use std::path::Path;

use crate::output::link;
use crate::report::Report;
use crate::text;

/// Escapes a table cell: pipes would end it, newlines would end the row.
pub fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

pub fn render(r: &Report, out_dir: &Path) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# {}\n", r.title);
    let _ = writeln!(m, "**{}**\n", r.verdict.headline);
    for d in &r.verdict.details {
        let _ = writeln!(m, "- {d}");
    }
    for w in &r.warnings {
        let _ = writeln!(m, "- ⚠ {w}");
    }
    let _ = writeln!(
        m,
        "\n| variant | kernel | valid | hangs | silent | crashes | infra errors | hang rate [95%] | read p50 | read p99 |\n|---|---|--:|--:|--:|--:|--:|---|--:|--:|"
    );
    for v in &r.variants {
        let c = &v.counts;
        let q = |n: &str| {
            v.read_latency
                .as_ref()
                .and_then(|l| l.quantile(n))
                .map_or("–".into(), |q| text::micros(q.value_us as f64))
        };
        let _ = writeln!(
            m,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.label),
            cell(&v.kernel_release),
            c.valid,
            c.hangs,
            c.silent_hangs,
            c.crashes,
            c.infra_errors,
            v.hang_rate.map_or("–".into(), |x| format!(
                "{} {}",
                text::percent(x),
                text::interval(v.hang_ci)
            )),
            q("p50"),
            q("p99"),
        );
    }
    if !r.comparisons.is_empty() {
        let _ = writeln!(m, "\n| comparison | Fisher p | iterations per variant for {:.0}% power | read p99 change | Mann–Whitney p |\n|---|--:|--:|--:|--:|", r.options.power * 100.0);
        for c in &r.comparisons {
            let lat = c.read_latency.as_ref();
            let _ = writeln!(
                m,
                "| {} vs {} | {} | {} | {} | {} |",
                cell(&c.variant),
                cell(&c.baseline),
                c.fisher_p.map_or("–".into(), text::p_value),
                c.sample_size_observed
                    .map_or("–".into(), |s| s.per_variant().to_string()),
                lat.map_or("–".into(), |l| text::change(l.p99_ratio)),
                lat.and_then(|l| l.mann_whitney)
                    .map_or("–".into(), |x| text::p_value(x.p)),
            );
        }
    }
    let named: std::collections::BTreeSet<&String> = r
        .variants
        .iter()
        .flat_map(|v| v.stack_signatures.keys())
        .collect();
    if !named.is_empty() {
        let _ = write!(m, "\n| plan stack signature |");
        for v in &r.variants {
            let _ = write!(m, " {} |", cell(&v.label));
        }
        let _ = writeln!(m, "\n|---|{}", "--:|".repeat(r.variants.len()));
        for name in named {
            let _ = write!(m, "| `{}` |", cell(name));
            for v in &r.variants {
                let _ = write!(
                    m,
                    " {}/{} |",
                    v.stack_signatures.get(name).copied().unwrap_or(0),
                    v.counts.valid
                );
            }
            m.push('\n');
        }
    }
    if !r.controls.is_empty() {
        let _ = writeln!(
            m,
            "\n| positive control | variant | detected | detail |\n|---|---|---|---|"
        );
        for c in &r.controls {
            let state = match (c.recorded, c.detected) {
                (false, _) => "not run",
                (true, true) => "yes",
                (true, false) => "**NO**",
            };
            let _ = writeln!(
                m,
                "| {} | {} | {state} | {} |",
                cell(&c.control),
                cell(&c.label),
                cell(&c.detail)
            );
        }
    }
    if !r.signatures.is_empty() {
        let _ = writeln!(m, "\n| signature | outcome | count |\n|---|---|--:|");
        for s in r.signatures.iter().take(10) {
            let per: Vec<String> = s
                .counts
                .iter()
                .filter(|c| *c.1 > 0)
                .map(|(l, n)| format!("{l}: {n}"))
                .collect();
            let _ = writeln!(
                m,
                "| `{}` | {} | {} ({}) |",
                cell(&s.title),
                s.outcome.as_str(),
                s.total,
                cell(&per.join(", "))
            );
        }
    }
    let _ = writeln!(m, "\n<details><summary>Provenance</summary>\n");
    for run in &r.runs {
        let _ = writeln!(
            m,
            "- run `{}`: plan `{}` sha256 `{}`, hilt {}, started {}, boards {}, erofs sha256 `{}`, verity root `{}`",
            run.name,
            run.plan,
            run.plan_sha256,
            run.hilt_version,
            run.started_at,
            run.boards_seen.join(", "),
            run.erofs_sha256,
            run.verity_root_hash.as_deref().unwrap_or("none")
        );
    }
    for v in &r.variants {
        let _ = writeln!(
            m,
            "- {}: `{}` release `{}` image sha256 `{}`",
            v.label, v.kernel_package, v.kernel_release, v.kernel_image_sha256
        );
        if let Some(b) = &v.kernel_build {
            let patches: Vec<String> = b
                .patches
                .iter()
                .map(|p| format!("{} `{}` (sha256 `{}`)", p.action, p.path, p.sha256))
                .collect();
            let _ =
                writeln!(
                m,
                "  - built from {} (`{}`), config {}, patches: {}, build key `{}`, build id `{}`",
                b.tree.origin,
                b.tree.identity,
                b.config_base,
                if patches.is_empty() { "none".into() } else { patches.join(", ") },
                b.key,
                b.build_id
            );
        }
    }
    let _ = writeln!(
        m,
        "\n</details>\n\nFull report: [index.html]({})",
        link(out_dir, &out_dir.join("index.html"))
    );
    m
}
