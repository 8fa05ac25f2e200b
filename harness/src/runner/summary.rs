//! The summary printed at the end of `hilt run`: the plan's question
//! answered first, then the counts, then what could not be measured.

use std::path::Path;

use super::results::RunSummary;

pub fn print_summary(s: &RunSummary, out: &Path) {
    println!(
        "plan {}: {}/{} iterations{}",
        s.plan,
        s.finished_iterations,
        s.planned_iterations,
        if s.interrupted { " (interrupted)" } else { "" }
    );
    for v in &s.signature_verdicts {
        println!("{}", v.sentence);
    }
    if let Some(why) = &s.stopped {
        println!("{why}");
    }
    println!(
        "{:<14} {:>5} {:>8} {:>6} {:>6} {:>7} {:>6} {:>6} {:>9} {:>10} {:>10}",
        "variant",
        "iters",
        "deadlock",
        "stall",
        "hang",
        "silent",
        "crash",
        "infra",
        "hang rate",
        "read p50µs",
        "read p99µs",
    );
    for v in &s.variants {
        let rate = v
            .hang_rate
            .map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "-".into());
        let (p50, p99) = match v.latency_us {
            Some(p) => (p.p50.to_string(), p.p99.to_string()),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<14} {:>5} {:>8} {:>6} {:>6} {:>7} {:>6} {:>6} {:>9} {:>10} {:>10}",
            v.variant,
            v.iterations,
            v.deadlocks,
            v.stalls,
            v.hangs,
            v.silent_hangs,
            v.crashes,
            v.infra_errors,
            rate,
            p50,
            p99,
        );
    }
    for v in &s.variants {
        println!("{}", decompress_line(v));
        for (sig, n) in &v.signatures {
            println!("{:<14}   {n} × {sig}", v.variant);
        }
    }
    for c in &s.controls {
        let verdict = if c.detected {
            "detected"
        } else {
            "NOT DETECTED"
        };
        println!(
            "control {} on {}: {verdict} ({})",
            c.control, c.variant, c.detail
        );
    }
    for b in &s.quarantined {
        println!("QUARANTINED: board {b} failed to come back repeatedly; its remaining iterations did not run");
    }
    if s.valid == Some(false) {
        println!("RUN INVALID: a positive control was not detected, so no hang count of this run can be trusted");
    }
    println!("results: {}", out.display());
}

/// The decompression path's latency, or, loudly, why there is none: an
/// empty figure must never pass for a fast one.
pub fn decompress_line(v: &hilt_reports::VariantSummary) -> String {
    match (&v.decompress_latency_us, v.decompress_probe_errors.is_empty()) {
        (Some(p), _) => format!(
            "{}: decompression path ({}) p50 {} µs, p99 {} µs, max {} µs",
            v.variant,
            v.decompress_funcs.join(", "),
            p.p50,
            p.p99,
            p.max
        ),
        (None, false) => format!(
            "{}: NO decompression-path latency: {}",
            v.variant,
            v.decompress_probe_errors
                .iter()
                .map(|(e, n)| format!("{e} ({n} iterations)"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        (None, true) if v.decompress_funcs.is_empty() => format!(
            "{}: NO decompression-path latency: no probe reported (watch.decompress_probes off, or no iteration got that far)",
            v.variant
        ),
        (None, true) => format!(
            "{}: NO decompression-path latency: probes on {} saw no call complete",
            v.variant,
            v.decompress_funcs.join(", ")
        ),
    }
}
