//! `index.html`: one self-contained page (inline CSS and SVG, no scripts,
//! no external assets) whose first screen answers "does the patched kernel
//! hang less, with what confidence, at what latency cost?": the verdict on
//! each of the plan's named signatures first, as a table, then deadlock and
//! stall rates side by side. Deadlocks (no progress for the whole deadlock
//! window) and stalls (recovered within it) are counted apart everywhere.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::plots::{color, hex};
use crate::render_util::{
    conclusion_words, console_tail, details_beside_table, link, outcome_tally, p_words,
    strip_terminal,
};
use crate::report::{Comparison, IterationRow, Report, VariantReport};
use crate::stats::latency::LatencyStats;
use crate::text;
use crate::verdict::{Conclusion, SignatureVerdict};
use crate::Outcome;

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; margin: 0; color: #1d1d1f; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 14px 24px 48px; }
h1 { font-size: 1.45em; margin: 6px 0 2px; }
h2 { font-size: 1.2em; margin: 34px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.02em; margin: 18px 0 6px; }
.sub { color: #555; font-size: 0.9em; margin-bottom: 10px; }
.verdict { border-left: 6px solid #1f77b4; background: #f3f7fb; padding: 10px 16px; margin: 8px 0 10px; }
.verdict.good { border-color: #2ca02c; background: #f2faf2; }
.verdict.bad { border-color: #d62728; background: #fdf3f3; }
.verdict .headline { font-size: 1.22em; font-weight: bold; line-height: 1.35; }
.verdict ul { margin: 6px 0 0; padding-left: 20px; }
.verdict li { margin: 3px 0; line-height: 1.35; }
.fig svg { max-width: 100%; height: auto; display: block; }
.fig { margin: 4px 0 8px; }
.top { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.top .fig { flex: 0 1 auto; }
.top .key { flex: 1 1 360px; font-size: 0.95em; }
.top .key p { margin: 6px 0; font-size: 0.9em; }
.top .key td { white-space: nowrap; word-break: normal; }
.fig .png { font-size: 0.8em; color: #666; }
table { border-collapse: collapse; font-size: 0.88em; margin: 6px 0; display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
.swatch { display: inline-block; width: 11px; height: 11px; margin-right: 5px; vertical-align: -1px; }
.pass { color: #2a7d2a; } .hang, .deadlock, .silent_hang, .crash { color: #c0392b; font-weight: bold; } .stall { color: #b35900; font-weight: bold; } .infra_error, .not_run { color: #8a6d00; }
.verdict table.sigs { margin: 8px 0 4px; font-size: 0.9em; background: #fff; }
tr.unmet td { background: #fde2e2; }
td.unmet { color: #b00000; font-weight: bold; text-transform: uppercase; }
td.met { color: #2a7d2a; font-weight: bold; }
.waiters { font-size: 0.85em; color: #444; margin-top: 3px; }
.waiters code { word-break: normal; }
p.nodecomp { color: #b00000; font-weight: bold; }
code, .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 0.92em; word-break: break-all; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 6px; max-height: 320px; overflow: auto; font-size: 0.82em; white-space: pre-wrap; }
.warn { background: #fff8e1; border: 1px solid #f0d68a; padding: 6px 10px; margin: 8px 0; }
nav { font-size: 0.85em; color: #555; }
nav a { margin-right: 10px; }
"#;

/// The page. `svgs` are (stem, SVG text) from [`crate::plots::report_figures`];
/// `out_dir` is where the page will live, for relative links.
pub fn render(r: &Report, svgs: &[(String, String)], out_dir: &Path) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let svg = |stem: &str| svgs.iter().find(|s| s.0 == stem).map(|s| s.1.as_str());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body><main>\n",
        esc(&r.title)
    );
    let _ = write!(
        h,
        "<h1>{}</h1>\n<div class=\"sub\">{}</div>\n",
        esc(&r.title),
        esc(&subtitle(r))
    );
    verdict(&mut h, r);
    let _ = writeln!(h, "<div class=\"top\">");
    if let Some(s) = svg("hang_rate") {
        figure(&mut h, "hang_rate", s);
    }
    key_figures(&mut h, r);
    let _ = writeln!(h, "</div>");
    if let Some(s) = svg("signature_deadlocks") {
        let _ = writeln!(
            h,
            "<h2 id=\"named-signatures\">Named signatures</h2><p>Deadlocks that carry each of the plan's named stack \
             signatures, per variant: the question the run was for. Stalls with the signature are stacked lightly above; \
             they are counted, not tested.</p>"
        );
        figure(&mut h, "signature_deadlocks", s);
    }
    let _ = writeln!(
        h,
        "<nav><a href=\"#verdict\">verdict</a><a href=\"#variants\">variants</a><a href=\"#latency\">latency</a><a href=\"#survival\">time to hang</a>\
         <a href=\"#signatures\">signatures</a><a href=\"#boards\">boards</a><a href=\"#timelines\">timelines</a>\
         <a href=\"#iterations\">iterations</a><a href=\"#provenance\">provenance</a><a href=\"#methods\">methods</a></nav>"
    );
    for w in &r.warnings {
        let _ = writeln!(h, "<div class=\"warn\">⚠ {}</div>", esc(w));
    }
    variants(&mut h, r);
    controls(&mut h, r, out_dir);
    comparisons(&mut h, r);
    latency(&mut h, r, svg("read_latency"), svg("decompress_latency"));
    survival(&mut h, r, svg("time_to_hang"));
    signatures(&mut h, r, out_dir);
    stack_signatures(&mut h, r);
    boards(&mut h, r);
    iterations(&mut h, r, out_dir);
    timelines(&mut h, r, svgs);
    provenance(&mut h, r, out_dir);
    methods(&mut h, r);
    let _ = writeln!(
        h,
        "<p class=\"sub\">Generated by {}, report format version {}.</p></main></body></html>",
        esc(&r.generator),
        r.version
    );
    h
}

fn subtitle(r: &Report) -> String {
    let runs: Vec<String> = r
        .runs
        .iter()
        .map(|x| {
            let done = match x.planned_iterations {
                Some(p) => format!("{}/{p} iterations", x.finished_iterations),
                None => format!("{} iterations", x.finished_iterations),
            };
            let stop = if x.interrupted { ", interrupted" } else { "" };
            format!(
                "run {} (plan {}, started {}, {done}{stop})",
                x.name, x.plan, x.started_at
            )
        })
        .collect();
    runs.join("; ")
}

fn verdict(h: &mut String, r: &Report) {
    // Green when every variant that differs significantly hangs less than
    // the baseline, red when one hangs more.
    let better = r
        .comparisons
        .iter()
        .any(|c| c.significant && c.rate_difference.unwrap_or(0.0) < 0.0);
    let worse = r
        .comparisons
        .iter()
        .any(|c| c.significant && c.rate_difference.unwrap_or(0.0) > 0.0);
    // The named signatures are the question: a failed expectation, or a
    // deadlock a variant brought, is red whatever the hang rates say.
    let sig_bad = r.signature_verdicts.iter().any(|v| {
        v.met == Some(false)
            || matches!(v.conclusion, Conclusion::Introduced | Conclusion::Increased)
    });
    let sig_good = r.signature_verdicts.iter().any(|v| {
        v.met == Some(true) || matches!(v.conclusion, Conclusion::Removed | Conclusion::Reduced)
    });
    let class = match (better, worse) {
        _ if r.valid == Some(false) => "verdict bad",
        (_, true) => "verdict bad",
        _ if sig_bad => "verdict bad",
        _ if sig_good => "verdict good",
        (true, false) => "verdict good",
        _ => "verdict",
    };
    let _ = write!(
        h,
        "<section class=\"{class}\" id=\"verdict\"><div class=\"headline\">{}</div>",
        esc(&r.verdict.headline)
    );
    signature_verdicts(h, r);
    let _ = write!(h, "<ul>");
    for d in details_beside_table(r) {
        let _ = write!(h, "<li>{}</li>", esc(d));
    }
    let _ = writeln!(h, "</ul></section>");
}

/// The per-signature verdicts, one row per signature and variant: the
/// counts each side, the anytime-valid p, and whether the plan's
/// expectation holds (a row that breaks it is flagged in red).
fn signature_verdicts(h: &mut String, r: &Report) {
    if r.signature_verdicts.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<table class=\"sigs\"><tr><th>signature</th><th>variant vs baseline</th><th>baseline deadlocks</th>\
         <th>variant deadlocks</th><th>stalls (baseline / variant)</th><th>anytime-valid p</th><th>conclusion</th><th>expectation</th></tr>"
    );
    for v in &r.signature_verdicts {
        let _ = write!(
            h,
            "<tr{}><td class=\"mono\">{}</td><td>{} vs {}</td><td class=\"num\">{}/{}</td><td class=\"num\">{}/{}</td>\
             <td class=\"num\">{} / {}</td><td class=\"num\">{}</td><td>{}</td>{}</tr>",
            if v.met == Some(false) { " class=\"unmet\"" } else { "" },
            esc(&v.signature),
            swatch(r, &v.variant),
            swatch(r, &v.baseline),
            v.baseline_deadlocks,
            v.baseline_valid,
            v.variant_deadlocks,
            v.variant_valid,
            v.baseline_stalls,
            v.variant_stalls,
            p_words(v),
            esc(&conclusion_words(v)),
            expectation_cell(v),
        );
    }
    let _ = writeln!(h, "</table>");
}

fn expectation_cell(v: &SignatureVerdict) -> String {
    match (&v.expected, v.met) {
        (Some(e), Some(true)) => format!("<td class=\"met\">met: absent in {}</td>", esc(e)),
        (Some(e), Some(false)) => format!(
            "<td class=\"unmet\">✗ NOT MET: expected absent in {}</td>",
            esc(e)
        ),
        (Some(e), None) => format!("<td>expected absent in {}: not shown yet</td>", esc(e)),
        (None, _) => "<td>–</td>".into(),
    }
}

fn figure(h: &mut String, stem: &str, svg: &str) {
    // The XML declaration plotters may emit is not allowed inside HTML.
    let body = svg
        .trim_start()
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .unwrap_or(svg);
    let _ = writeln!(
        h,
        "<div class=\"fig\" id=\"fig-{stem}\">{body}<div class=\"png\"><a href=\"plots/{stem}.png\">PNG</a> · <a href=\"plots/{stem}.svg\">SVG</a></div></div>"
    );
}

/// Next to the hang-rate figure: the numbers behind it and the latency cost.
fn key_figures(h: &mut String, r: &Report) {
    let _ = writeln!(
        h,
        "<div class=\"key\"><table><tr><th>variant</th><th>hangs</th><th>stalls</th><th>hang rate [95%]</th><th>read p50</th><th>read p99</th></tr>"
    );
    for v in &r.variants {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}/{}</td><td class=\"num\">{}/{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            swatch(r, &v.label),
            v.counts.all_hangs(),
            v.counts.valid,
            v.counts.stalls,
            v.counts.valid,
            v.hang_rate.map_or("–".into(), |x| format!("{} {}", text::percent(x), text::interval(v.hang_ci))),
            q(v.read_latency.as_ref(), "p50"),
            q(v.read_latency.as_ref(), "p99"),
        );
    }
    let _ = writeln!(h, "</table>");
    for c in &r.comparisons {
        let ss = c.sample_size_observed.map_or(String::new(), |s| {
            format!(
                "; {} iterations per variant give {:.0}% power for the observed rates",
                s.per_variant(),
                r.options.power * 100.0
            )
        });
        let _ = writeln!(
            h,
            "<p>{} vs {}: Fisher p = {}{}.</p>",
            esc(&c.variant),
            esc(&c.baseline),
            c.fisher_p.map_or("n/a".into(), text::p_value),
            esc(&ss)
        );
    }
    if !r.controls.is_empty() {
        let list: Vec<String> = r
            .controls
            .iter()
            .map(|c| {
                let state = match (c.recorded, c.detected) {
                    (false, _) => "not run",
                    (true, true) => "detected",
                    (true, false) => "NOT DETECTED",
                };
                format!("{} on {}: {state}", c.control, c.label)
            })
            .collect();
        let _ = writeln!(h, "<p>Positive controls: {}.</p>", esc(&list.join("; ")));
    }
    let _ = writeln!(h, "</div>");
}

fn controls(h: &mut String, r: &Report, out_dir: &Path) {
    if r.controls.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h3 id=\"controls\">Positive controls</h3><p>A hang injected on purpose before the iterations: it must be \
         detected on every kernel, or the run's hang counts cannot be trusted. Controls count in no statistic.</p>\
         <table><tr><th>variant</th><th>control</th><th>outcome</th><th>detected</th><th>detail</th><th>detected after</th><th>console</th></tr>"
    );
    for c in &r.controls {
        let console = match (&c.console_log, &c.console_refused) {
            (Some(p), _) => format!("<a href=\"{}\">console.log</a>", esc(&link(out_dir, p))),
            (None, Some(why)) => esc(why),
            (None, None) => "–".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"{o}\">{o}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{console}</td></tr>",
            swatch(r, &c.label),
            esc(&c.control),
            match (c.recorded, c.detected) {
                (false, _) => "not run",
                (true, true) => "<span class=\"pass\">yes</span>",
                (true, false) => "<span class=\"hang\">NO</span>",
            },
            esc(&c.detail),
            c.failure_after_ms.map_or("–".into(), text::duration_ms),
            o = c.outcome.as_str(),
        );
    }
    let _ = writeln!(h, "</table>");
}

fn swatch(r: &Report, label: &str) -> String {
    let i = r
        .variants
        .iter()
        .position(|v| v.label == label)
        .unwrap_or(0);
    format!(
        "<span class=\"swatch\" style=\"background:{}\"></span>{}",
        hex(color(i)),
        esc(label)
    )
}

fn q(s: Option<&LatencyStats>, name: &str) -> String {
    s.and_then(|s| s.quantile(name))
        .map_or("–".into(), |q| text::micros(q.value_us as f64))
}

fn variants(h: &mut String, r: &Report) {
    let _ = writeln!(
        h,
        "<h2 id=\"variants\">Variants</h2><table><tr><th>variant</th><th>kernel</th><th>valid</th><th>deadlocks</th><th>stalls</th>\
         <th>unclassified hangs</th><th>silent hangs</th><th>crashes</th><th>infra errors</th><th>not run</th><th>hang rate [95%]</th>\
         <th>stall rate [95%]</th><th>read p50</th><th>read p99</th><th>median max PSI some/full</th><th>median max swap</th></tr>"
    );
    for v in &r.variants {
        let c = &v.counts;
        let rate = v.hang_rate.map_or("–".into(), |x| {
            format!("{} {}", text::percent(x), text::interval(v.hang_ci))
        });
        let stall_rate = v.stall_rate.map_or("–".into(), |x| {
            format!("{} {}", text::percent(x), text::interval(v.stall_ci))
        });
        let psi = match (v.median_max_psi_some, v.median_max_psi_full) {
            (Some(s), Some(f)) => format!("{s:.0}% / {f:.0}%"),
            _ => "–".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{stall_rate}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{psi}</td><td class=\"num\">{}</td></tr>",
            swatch(r, &v.label),
            esc(&v.kernel_release),
            c.valid,
            c.deadlocks,
            c.stalls,
            c.hangs,
            c.silent_hangs,
            c.crashes,
            c.infra_errors,
            c.not_run + c.missing,
            rate,
            q(v.read_latency.as_ref(), "p50"),
            q(v.read_latency.as_ref(), "p99"),
            v.median_max_swap_used_mib.map_or("–".into(), |m| format!("{m:.0} MiB")),
        );
    }
    let _ = writeln!(h, "</table>");
}

fn comparisons(h: &mut String, r: &Report) {
    if r.comparisons.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h3>Against the baseline</h3><table><tr><th>variant vs baseline</th><th>hang rate difference</th><th>Fisher p</th>\
         <th>iterations per variant for 80% power</th><th>log-rank p (time to hang)</th><th>read p50 / p99 change</th><th>Mann–Whitney p</th></tr>"
    );
    for c in &r.comparisons {
        let ss = c
            .sample_size_observed
            .map_or("– (same rates)".into(), |s| s.per_variant().to_string());
        let lr = c.time_to_hang.map_or("–".into(), |l| text::p_value(l.p));
        let (ratio, mw) = match &c.read_latency {
            Some(l) => (
                format!(
                    "{} / {}",
                    text::change(l.p50_ratio),
                    text::change(l.p99_ratio)
                ),
                l.mann_whitney.map_or("–".into(), |m| text::p_value(m.p)),
            ),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            h,
            "<tr><td>{} vs {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{ss}</td><td class=\"num\">{lr}</td>\
             <td class=\"num\">{ratio}</td><td class=\"num\">{mw}</td></tr>",
            swatch(r, &c.variant),
            swatch(r, &c.baseline),
            c.rate_difference.map_or("–".into(), |d| format!("{:+.1} points", d * 100.0)),
            c.fisher_p.map_or("–".into(), text::p_value),
        );
    }
    let _ = writeln!(h, "</table>");
    let planned: Vec<&Comparison> = r
        .comparisons
        .iter()
        .filter(|c| c.sample_size_planned.is_some())
        .collect();
    for c in planned {
        if let Some(s) = c.sample_size_planned {
            let _ = writeln!(
                h,
                "<p>Planning: telling {} from {} takes {} iterations per variant (exact Fisher: {}, normal approximation: {}).</p>",
                text::percent(s.p1),
                text::percent(s.p2),
                s.per_variant(),
                s.exact.map_or("not computed".into(), |n| n.to_string()),
                s.approx
            );
            break;
        }
    }
}

fn latency_table(
    h: &mut String,
    r: &Report,
    pick: impl Fn(&VariantReport) -> Option<&LatencyStats>,
) {
    let _ = writeln!(
        h,
        "<table><tr><th>variant</th><th>samples</th><th>iterations</th><th>mean</th><th>p50 [95%]</th><th>p90 [95%]</th><th>p99 [95%]</th><th>p99.9 [95%]</th><th>max</th></tr>"
    );
    for v in &r.variants {
        let Some(s) = pick(v) else { continue };
        let cells: Vec<String> = s
            .quantiles
            .iter()
            .map(|q| match q.ci_us {
                Some((lo, hi)) => text::micros_ci(q.value_us as f64, lo as f64, hi as f64),
                None => text::micros(q.value_us as f64),
            })
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            swatch(r, &v.label),
            s.samples,
            s.iterations,
            text::micros(s.mean_us)
        );
        for c in cells {
            let _ = write!(h, "<td class=\"num\">{c}</td>");
        }
        let _ = writeln!(
            h,
            "<td class=\"num\">{}</td></tr>",
            text::micros(s.max_us as f64)
        );
    }
    let _ = writeln!(h, "</table>");
}

fn latency(h: &mut String, r: &Report, read: Option<&str>, decompress: Option<&str>) {
    let _ = writeln!(h, "<h2 id=\"latency\">Read latency</h2>");
    if r.variants.iter().all(|v| v.read_latency.is_none()) {
        let _ = writeln!(h, "<p>No read completed.</p>");
    } else {
        latency_table(h, r, |v| v.read_latency.as_ref());
        for c in &r.comparisons {
            if let Some(m) = c.read_latency.as_ref().and_then(|l| l.mann_whitney) {
                let _ = writeln!(
                    h,
                    "<p>{} vs {}: Mann–Whitney U = {:.0} on {} and {} reads, p = {} ({}); P({} read slower than {} read) = {:.3}, a {} effect.</p>",
                    esc(&c.variant),
                    esc(&c.baseline),
                    m.u,
                    m.n1,
                    m.n2,
                    text::p_value(m.p),
                    m.method.as_str(),
                    esc(&c.variant),
                    esc(&c.baseline),
                    m.prob_first_larger,
                    crate::report::effect_size(m.prob_first_larger)
                );
            }
        }
    }
    if let Some(s) = read {
        figure(h, "read_latency", s);
    }
    // One line per variant, present or not: a probe that failed is said.
    let lines: Vec<(bool, String)> = r
        .variants
        .iter()
        .filter_map(|v| {
            Some((
                v.decompress_latency.is_some(),
                crate::report::decompress_line(v)?,
            ))
        })
        .collect();
    if !lines.is_empty() {
        let _ = writeln!(
            h,
            "<h3 id=\"decompression\">Decompression-path latency</h3>"
        );
        for (present, line) in &lines {
            let class = if *present { "decomp" } else { "nodecomp" };
            let _ = writeln!(h, "<p class=\"{class}\">{}</p>", esc(line));
        }
    }
    if r.variants.iter().any(|v| v.decompress_latency.is_some()) {
        latency_table(h, r, |v| v.decompress_latency.as_ref());
        let _ = writeln!(
            h,
            "<table><tr><th>variant</th><th>probed function</th><th>calls in kworkers</th><th>calls elsewhere (direct, e.g. in a bio completion)</th><th>direct share</th></tr>"
        );
        for v in r.variants.iter().filter(|v| v.decompress_latency.is_some()) {
            let total = v.decompress_calls_in_worker + v.decompress_calls_elsewhere;
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                swatch(r, &v.label),
                esc(&v.decompress_funcs.join(", ")),
                v.decompress_calls_in_worker,
                v.decompress_calls_elsewhere,
                if total > 0 { text::percent(v.decompress_calls_elsewhere as f64 / total as f64) } else { "–".into() }
            );
        }
        let _ = writeln!(h, "</table>");
        if let Some(s) = decompress {
            figure(h, "decompress_latency", s);
        }
    }
}

fn survival(h: &mut String, r: &Report, svg: Option<&str>) {
    let _ = writeln!(h, "<h2 id=\"survival\">Time to hang</h2>");
    let _ = writeln!(h, "<table><tr><th>variant</th><th>iterations</th><th>hung</th><th>median time to hang</th><th>not hung after the last hang</th></tr>");
    for v in &r.variants {
        let Some(k) = &v.time_to_hang else { continue };
        let last_hang = k.steps.iter().rev().find(|s| s.events > 0);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            swatch(r, &v.label),
            k.n,
            k.events,
            k.median.map_or("not reached".into(), |m| text::duration_ms((m * 1000.0) as u64)),
            last_hang.map_or("–".into(), |s| text::percent(s.survival))
        );
    }
    let _ = writeln!(h, "</table>");
    for c in &r.comparisons {
        if let Some(l) = &c.time_to_hang {
            let _ = writeln!(
                h,
                "<p>{} vs {}: log-rank χ² = {:.2}, p = {} ({:.1} hangs observed where {:.1} were expected).</p>",
                esc(&c.variant),
                esc(&c.baseline),
                l.chi2,
                text::p_value(l.p),
                l.observed_first,
                l.expected_first
            );
        }
    }
    if let Some(s) = svg {
        figure(h, "time_to_hang", s);
    }
}

fn timelines(h: &mut String, r: &Report, svgs: &[(String, String)]) {
    let _ = writeln!(h, "<h2 id=\"timelines\">Timelines</h2>");
    let figs: Vec<&(String, String)> = svgs
        .iter()
        .filter(|s| s.0.starts_with("timeline_"))
        .collect();
    if figs.is_empty() {
        let _ = writeln!(
            h,
            "<p>No timeline: events.jsonl is missing or no iteration was selected.</p>"
        );
        return;
    }
    // Many failures make a long page: fold them away beyond a few.
    let open = if figs.len() <= 4 { " open" } else { "" };
    let names: Vec<String> = r
        .timelines
        .iter()
        .map(|t| format!("{} #{} ({})", t.label, t.iteration, t.outcome.as_str()))
        .collect();
    let _ = writeln!(
        h,
        "<details{open}><summary>Memory pressure and swap over time: {}</summary>",
        esc(&names.join(", "))
    );
    for (stem, s) in figs {
        figure(h, stem, s);
    }
    let _ = writeln!(h, "</details>");
}

fn row_anchor(label: &str, iteration: u32) -> String {
    let safe: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("it-{safe}-{iteration}")
}

fn signatures(h: &mut String, r: &Report, _out_dir: &Path) {
    let _ = writeln!(h, "<h2 id=\"signatures\">Failure signatures</h2>");
    if r.signatures.is_empty() {
        let _ = writeln!(h, "<p>No kernel failure.</p>");
        return;
    }
    let _ = write!(h, "<table><tr><th>signature</th><th>outcome</th>");
    for v in &r.variants {
        let _ = write!(h, "<th>{}</th>", swatch(r, &v.label));
    }
    let _ = writeln!(h, "<th>first seen</th></tr>");
    for s in &r.signatures {
        let _ = write!(
            h,
            "<tr><td class=\"mono\">{}</td><td>{}</td>",
            esc(&s.title),
            outcome_tally(r, &s.title)
                .iter()
                .map(|(o, n)| format!("<span class=\"{o}\">{o}</span> {n}", o = o.as_str()))
                .collect::<Vec<_>>()
                .join(" · ")
        );
        for v in &r.variants {
            let _ = write!(
                h,
                "<td class=\"num\">{}</td>",
                s.counts.get(&v.label).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            h,
            "<td><a href=\"#{}\">{} #{}</a></td></tr>",
            row_anchor(&s.first.0, s.first.1),
            esc(&s.first.0),
            s.first.1
        );
    }
    let _ = writeln!(h, "</table>");
}

fn stack_signatures(h: &mut String, r: &Report) {
    let names: BTreeSet<&String> = r
        .variants
        .iter()
        .flat_map(|v| v.stack_signatures.keys())
        .collect();
    if names.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h3>Stack signatures named by the plan: iterations that showed each, any outcome</h3><table><tr><th>signature</th>"
    );
    for v in &r.variants {
        let _ = write!(h, "<th>{}</th>", swatch(r, &v.label));
    }
    let _ = writeln!(h, "</tr>");
    for name in names {
        let _ = write!(h, "<tr><td class=\"mono\">{}</td>", esc(name));
        for v in &r.variants {
            let k = v.stack_signatures.get(name).copied().unwrap_or(0);
            let _ = write!(h, "<td class=\"num\">{k}/{}</td>", v.counts.valid);
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</table>");
}

fn boards(h: &mut String, r: &Report) {
    let _ = writeln!(h, "<h2 id=\"boards\">Boards</h2><table><tr><th>board</th><th>variant</th><th>valid</th><th>hangs</th><th>of which deadlocks</th><th>stalls</th><th>crashes</th><th>hang rate [95%]</th></tr>");
    for b in &r.boards {
        let count = |o: Outcome| {
            r.iterations
                .iter()
                .filter(|i| i.board == b.board && i.label == b.label && i.outcome == o)
                .count()
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} {}</td></tr>",
            esc(&b.board),
            swatch(r, &b.label),
            b.valid,
            b.hangs,
            count(Outcome::Deadlock),
            count(Outcome::Stall),
            b.crashes,
            b.hang_rate.map_or("–".into(), text::percent),
            text::interval(b.hang_ci)
        );
    }
    let _ = writeln!(h, "</table>");
}

fn iterations(h: &mut String, r: &Report, out_dir: &Path) {
    let _ = writeln!(
        h,
        "<h2 id=\"iterations\">Iterations</h2><table><tr><th>variant</th><th>#</th><th>board</th><th>outcome</th><th>detail</th>\
         <th>wall</th><th>failure after</th><th>reads</th><th>read p99</th><th>max PSI some/full</th><th>max swap</th><th>console</th></tr>"
    );
    for it in &r.iterations {
        let console = match (&it.console_log, &it.console_refused) {
            (Some(p), _) => format!("<a href=\"{}\">console.log</a>", esc(&link(out_dir, p))),
            (None, Some(why)) => esc(why),
            (None, None) => "–".into(),
        };
        let _ = writeln!(
            h,
            "<tr id=\"{}\"><td>{}</td><td class=\"num\">{}</td><td class=\"mono\">{}</td><td class=\"{o}\">{o}</td><td>{}{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{console}</td></tr>",
            row_anchor(&it.label, it.iteration),
            swatch(r, &it.label),
            it.iteration,
            esc(&it.board),
            esc(&detail_cell(it)),
            hang_watch_html(it),
            if it.recorded { text::duration_ms(it.wall_ms) } else { "–".into() },
            it.failure_after_ms.map_or("–".into(), text::duration_ms),
            it.reads,
            it.read_p99_us.map_or("–".into(), |u| text::micros(u as f64)),
            if it.recorded { format!("{:.0}% / {:.0}%", it.max_psi_some_avg10, it.max_psi_full_avg10) } else { "–".into() },
            if it.recorded { format!("{:.0} MiB", it.max_swap_used_kb as f64 / 1024.0) } else { "–".into() },
            o = it.outcome.as_str(),
        );
        if it.outcome.is_kernel_failure() {
            let excerpt = if it.excerpt.trim().is_empty() {
                it.console_log
                    .as_ref()
                    .and_then(|p| console_tail(p, 40))
                    .unwrap_or_default()
            } else {
                it.excerpt.clone()
            };
            if !excerpt.is_empty() {
                let _ = writeln!(
                    h,
                    "<tr><td></td><td colspan=\"11\"><details><summary>evidence</summary><pre>{}</pre></details></td></tr>",
                    esc(&strip_terminal(&excerpt))
                );
            }
        }
    }
    let _ = writeln!(h, "</table>");
}

/// For a deadlock or a stall: who waited on what, and when a stall resumed.
fn hang_watch_html(it: &IterationRow) -> String {
    let Some(w) = &it.hang else {
        return String::new();
    };
    if !matches!(it.outcome, Outcome::Deadlock | Outcome::Stall) {
        return String::new();
    }
    let mut parts = Vec::new();
    match (it.outcome, w.resumed_after_ms) {
        (Outcome::Stall, Some(ms)) => parts.push(format!(
            "<b>resumed after {}</b>{}",
            esc(&text::duration_ms(ms)),
            w.progress
                .as_ref()
                .map_or(String::new(), |p| format!(" ({})", esc(p)))
        )),
        (Outcome::Deadlock, _) => parts.push(format!(
            "<b>no progress for the whole {} window</b>",
            esc(&text::duration_ms(w.window_ms))
        )),
        _ => {}
    }
    if !w.waiters.is_empty() {
        let list: Vec<String> = w
            .waiters
            .iter()
            .map(|x| {
                format!(
                    "<code>{}</code> in <code>{}</code>{}",
                    esc(&x.task),
                    esc(&x.waits_in),
                    x.blocked_s.map_or(String::new(), |b| format!(" ({b} s)"))
                )
            })
            .collect();
        parts.push(format!("waiters: {}", list.join(", ")));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!("<div class=\"waiters\">{}</div>", parts.join("; "))
}

fn detail_cell(it: &IterationRow) -> String {
    match (&it.signature, it.outcome) {
        (Some(s), o) if o != Outcome::Pass => s.clone(),
        _ => it.detail.clone(),
    }
}

fn provenance(h: &mut String, r: &Report, out_dir: &Path) {
    let _ = writeln!(h, "<h2 id=\"provenance\">Provenance</h2>");
    for run in &r.runs {
        let rows = [
            ("run", run.name.clone()),
            ("results directory", link(out_dir, &run.dir)),
            ("plan", format!("{} ({})", run.plan, run.plan_path)),
            ("plan sha256", run.plan_sha256.clone()),
            ("hilt version", run.hilt_version.clone()),
            ("started", run.started_at.clone()),
            ("host", run.host.clone()),
            ("board definition", run.board.clone()),
            ("boards used", run.boards_seen.join(", ")),
            ("erofs image sha256", run.erofs_sha256.clone()),
            (
                "dm-verity root hash",
                run.verity_root_hash
                    .clone()
                    .unwrap_or_else(|| "(no verity)".into()),
            ),
        ];
        let _ = writeln!(h, "<table>");
        for (k, v) in rows {
            let _ = writeln!(
                h,
                "<tr><th>{k}</th><td class=\"mono\">{}</td></tr>",
                esc(if v.is_empty() { "(unknown)" } else { &v })
            );
        }
        let _ = writeln!(h, "</table>");
    }
    let _ = writeln!(h, "<table><tr><th>variant</th><th>kernel package</th><th>kernel release</th><th>kernel image sha256</th><th>releases booted</th></tr>");
    for v in &r.variants {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            swatch(r, &v.label),
            esc(&v.kernel_package),
            esc(&v.kernel_release),
            esc(&v.kernel_image_sha256),
            esc(&v.releases_seen.join(", "))
        );
    }
    let _ = writeln!(h, "</table>");
    for v in &r.variants {
        if let Some(b) = &v.kernel_build {
            kernel_build(h, r, &v.label, b);
        }
    }
}

/// A source-built kernel's provenance: enough to rebuild it, and to see
/// at a glance that two variants differ only where they should.
fn kernel_build(h: &mut String, r: &Report, label: &str, b: &crate::load::KernelBuild) {
    let patches = if b.patches.is_empty() {
        "(none)".to_string()
    } else {
        b.patches
            .iter()
            .map(|p| format!("{} {} (sha256 {})", p.action, p.path, p.sha256))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let fragments = b
        .fragments
        .iter()
        .map(|f| format!("{} (sha256 {})", f.path, f.sha256))
        .collect::<Vec<_>>()
        .join("\n");
    let rows = [
        (
            "source tree",
            format!("{} ({})", b.tree.origin, b.tree.identity),
        ),
        ("config", b.config_base.clone()),
        (
            "fragments",
            if fragments.is_empty() {
                "(none)".into()
            } else {
                fragments
            },
        ),
        ("patches", patches),
        (
            "config changed by fragments",
            if b.config_diff.is_empty() {
                "(nothing)".into()
            } else {
                b.config_diff.join("\n")
            },
        ),
        ("build key", b.key.clone()),
        ("vmlinux build id", b.build_id.clone()),
        ("compiler", b.compiler.clone()),
    ];
    let _ = writeln!(h, "<h3>Kernel build of {}</h3><table>", swatch(r, label));
    for (k, v) in rows {
        let _ = writeln!(
            h,
            "<tr><th>{k}</th><td class=\"mono\" style=\"white-space: pre-wrap\">{}</td></tr>",
            esc(&v)
        );
    }
    let _ = writeln!(h, "</table>");
}

fn methods(h: &mut String, r: &Report) {
    let o = &r.options;
    let _ = writeln!(
        h,
        "<h2 id=\"methods\">Methods</h2><ul>\
         <li>A deadlock is a hang that made no progress for the whole deadlock window; a stall is one that recovered within it \
         (a finding, not a pass, and not a hang); an unclassified hang is one not watched for a window (window 0, or an older record).</li>\
         <li>Hang rate = (deadlocks + unclassified hangs + silent hangs) / iterations with a kernel verdict (pass, deadlock, stall, \
         hang, silent hang, crash); stall rate = stalls / the same iterations. Infrastructure errors and iterations that did not run \
         are excluded. Intervals are 95% Wilson score intervals.</li>\
         <li>Named signatures: deadlocks (and unclassified or silent hangs) that carry the signature, variant against baseline, \
         by an anytime-valid sequential test on paired iterations: its p stays valid however often the run was looked at. \
         Stalls with the signature are counted, not tested.</li>\
         <li>Each variant is compared with the baseline ({}) by a two-sided Fisher exact test, at α = {}.</li>\
         <li>Iterations needed: the smallest n per variant at which Fisher's exact test reaches {:.0}% power for the given rates, \
         by exact enumeration up to 1000 per variant, otherwise Fleiss' continuity-corrected normal approximation.</li>\
         <li>Time to hang: Kaplan–Meier, a hang being an event at its detection time (host time since power-on); other valid \
         iterations (passes, crashes) are censored when they end. Bands are 95% log(−log) Greenwood intervals; variants are compared with the log-rank test.</li>\
         <li>Latency percentiles come from the iterations' HDR histograms merged (3 significant digits). Their 95% intervals \
         are percentile bootstraps over iterations ({} resamples, seed {}), since reads within one boot are not independent.</li>\
         <li>Mann–Whitney U compares every read of two variants, ranked per histogram bucket (reads in one bucket are ties, \
         with the tie correction), two-sided, normal approximation with continuity correction (exact when a variant has at most 8 reads and no ties). \
         Reads of hung iterations count up to the hang; reads that never completed are not in any histogram.</li></ul>",
        esc(r.baseline.as_deref().unwrap_or("none")),
        o.alpha,
        o.power * 100.0,
        o.bootstrap.resamples,
        o.bootstrap.seed
    );
}
