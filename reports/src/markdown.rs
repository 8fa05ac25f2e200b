//! `summary.md`: the verdict and the key tables, for CI job pages: the
//! per-signature verdicts first, then deadlocks and stalls counted apart.

use std::fmt::Write as _;
use std::path::Path;

use crate::render_util::{
    cell, conclusion_words, details_beside_table, link, outcome_tally, p_words,
};
use crate::report::Report;
use crate::text;
use crate::Outcome;

pub fn render(r: &Report, out_dir: &Path) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# {}\n", r.title);
    let _ = writeln!(m, "**{}**\n", r.verdict.headline);
    if !r.signature_verdicts.is_empty() {
        let _ = writeln!(
            m,
            "| signature | variant vs baseline | baseline deadlocks | variant deadlocks | stalls (baseline / variant) | anytime-valid p | conclusion | expectation |\n|---|---|--:|--:|--:|--:|---|---|"
        );
        for v in &r.signature_verdicts {
            let expectation = match (&v.expected, v.met) {
                (Some(e), Some(true)) => format!("met (absent in {e})"),
                (Some(e), Some(false)) => format!("**✗ NOT MET: expected absent in {e}**"),
                (Some(e), None) => format!("expected absent in {e}: not shown yet"),
                (None, _) => "–".into(),
            };
            let _ = writeln!(
                m,
                "| `{}` | {} vs {} | {}/{} | {}/{} | {} / {} | {} | {} | {} |",
                cell(&v.signature),
                cell(&v.variant),
                cell(&v.baseline),
                v.baseline_deadlocks,
                v.baseline_valid,
                v.variant_deadlocks,
                v.variant_valid,
                v.baseline_stalls,
                v.variant_stalls,
                p_words(v),
                cell(&conclusion_words(v)),
                cell(&expectation),
            );
        }
        m.push('\n');
    }
    for d in details_beside_table(r) {
        let _ = writeln!(m, "- {d}");
    }
    for w in &r.warnings {
        let _ = writeln!(m, "- ⚠ {w}");
    }
    let _ = writeln!(
        m,
        "\n| variant | kernel | valid | deadlocks | stalls | unclassified hangs | silent hangs | crashes | infra errors | hang rate [95%] | stall rate [95%] | read p50 | read p99 |\n|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|--:|--:|"
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
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.label),
            cell(&v.kernel_release),
            c.valid,
            c.deadlocks,
            c.stalls,
            c.hangs,
            c.silent_hangs,
            c.crashes,
            c.infra_errors,
            v.hang_rate.map_or("–".into(), |x| format!(
                "{} {}",
                text::percent(x),
                text::interval(v.hang_ci)
            )),
            v.stall_rate.map_or("–".into(), |x| format!(
                "{} {}",
                text::percent(x),
                text::interval(v.stall_ci)
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
    deadlocks_and_stalls(&mut m, r);
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
                outcome_tally(r, &s.title)
                    .iter()
                    .map(|(o, n)| format!("{} {n}", o.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
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

/// The first deadlocks and stalls, with who waited on what and, for a
/// stall, when it resumed.
fn deadlocks_and_stalls(m: &mut String, r: &Report) {
    const MAX: usize = 10;
    let rows: Vec<&crate::report::IterationRow> = r
        .iterations
        .iter()
        .filter(|i| matches!(i.outcome, Outcome::Deadlock | Outcome::Stall))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        m,
        "\n| iteration | outcome | signature | waiters | resumed after |\n|---|---|---|---|--:|"
    );
    for it in rows.iter().take(MAX) {
        let w = it.hang.as_ref();
        let waiters: Vec<String> = w
            .map(|w| {
                w.waiters
                    .iter()
                    .map(|x| format!("{} in {}", x.task, x.waits_in))
                    .collect()
            })
            .unwrap_or_default();
        let resumed = match (it.outcome, w.and_then(|w| w.resumed_after_ms)) {
            (Outcome::Stall, Some(ms)) => text::duration_ms(ms),
            (Outcome::Deadlock, _) => {
                format!(
                    "never ({} window)",
                    text::duration_ms(w.map_or(0, |w| w.window_ms))
                )
            }
            _ => "–".into(),
        };
        let _ = writeln!(
            m,
            "| {} #{} | {} | `{}` | {} | {} |",
            cell(&it.label),
            it.iteration,
            it.outcome.as_str(),
            cell(it.signature.as_deref().unwrap_or(&it.detail)),
            cell(&if waiters.is_empty() {
                "–".to_string()
            } else {
                waiters.join(", ")
            }),
            resumed
        );
    }
    if rows.len() > MAX {
        let _ = writeln!(
            m,
            "\n{} more deadlocks and stalls in index.html.",
            rows.len() - MAX
        );
    }
}
