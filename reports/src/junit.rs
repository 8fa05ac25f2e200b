//! `junit.xml`: one test case per iteration, so CI systems show hangs as
//! failed tests. A deadlock, stall, hang, silent hang or crash is a
//! `<failure>` whose type is the outcome, carrying the signature and a log
//! excerpt (and for deadlocks and stalls the waiters); an infrastructure
//! error is an `<error>`; an iteration that did not run is `<skipped>`.
//! Each per-signature verdict is a test case of its own, failing when the
//! plan's expectation is not met.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::render_util::{console_tail, strip_terminal};
use crate::report::{ControlRow, IterationRow, Report};
use crate::text;
use crate::verdict::SignatureVerdict;
use crate::Outcome;

/// XML 1.0 cannot carry most control characters, even escaped; consoles
/// are full of them.
fn xml_text(s: &str) -> String {
    let clean: String = strip_terminal(s)
        .chars()
        .filter(|&c| matches!(c, '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..))
        .collect();
    escape(clean.as_str()).into_owned()
}

fn evidence(it: &IterationRow) -> String {
    let mut s = String::new();
    if !it.detail.is_empty() {
        s.push_str(&it.detail);
        s.push_str("\n\n");
    }
    if let Some(w) = &it.hang {
        match (it.outcome, w.resumed_after_ms) {
            (Outcome::Stall, Some(ms)) => {
                let _ = writeln!(
                    s,
                    "recovered after {}{}",
                    text::duration_ms(ms),
                    w.progress
                        .as_ref()
                        .map_or(String::new(), |p| format!(": {p}"))
                );
            }
            (Outcome::Deadlock, _) => {
                let _ = writeln!(
                    s,
                    "no progress for the whole {} deadlock window",
                    text::duration_ms(w.window_ms)
                );
            }
            _ => {}
        }
        for x in &w.waiters {
            let _ = writeln!(
                s,
                "waiter: {} in {}{}",
                x.task,
                x.waits_in,
                x.blocked_s
                    .map_or(String::new(), |b| format!(" (blocked {b} s)"))
            );
        }
        s.push('\n');
    }
    if !it.excerpt.trim().is_empty() {
        s.push_str(&it.excerpt);
    } else if let Some(tail) = it.console_log.as_ref().and_then(|p| console_tail(p, 60)) {
        s.push_str("console tail:\n");
        s.push_str(&tail);
    }
    if let Some(p) = &it.console_log {
        let _ = write!(s, "\n\nconsole log: {}", p.display());
    } else if let Some(why) = &it.console_refused {
        let _ = write!(s, "\n\n{why}");
    }
    s
}

/// The failure message: the signature, and for a stall that it recovered.
fn failure_message(it: &IterationRow) -> String {
    let title = it.signature.clone().unwrap_or_else(|| it.detail.clone());
    match (
        it.outcome,
        it.hang.as_ref().and_then(|w| w.resumed_after_ms),
    ) {
        (Outcome::Stall, Some(ms)) => {
            format!("stall, recovered after {}: {title}", text::duration_ms(ms))
        }
        (Outcome::Stall, None) => format!("stall, recovered: {title}"),
        (Outcome::Deadlock, _) => format!("deadlock: {title}"),
        _ => title,
    }
}

/// A signature verdict fails when the plan's expectation is not met.
fn sig_fail(v: &SignatureVerdict) -> bool {
    v.met == Some(false)
}

pub fn render(r: &Report) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let count = |pred: &dyn Fn(&IterationRow) -> bool, label: Option<&str>| {
        r.iterations
            .iter()
            .filter(|i| label.is_none_or(|l| i.label == l) && pred(i))
            .count()
    };
    let fail = |i: &IterationRow| i.outcome.is_kernel_failure();
    let err = |i: &IterationRow| i.outcome == Outcome::InfraError;
    let skip = |i: &IterationRow| i.outcome == Outcome::NotRun;
    let secs = |label: Option<&str>| -> f64 {
        r.iterations
            .iter()
            .filter(|i| label.is_none_or(|l| i.label == l))
            .map(|i| i.wall_ms as f64 / 1000.0)
            .sum()
    };
    // A positive control passes when its injected hang is detected.
    let c_fail = |c: &&ControlRow| c.recorded && !c.detected && c.outcome != Outcome::InfraError;
    let c_err = |c: &&ControlRow| c.recorded && c.outcome == Outcome::InfraError;
    let c_skip = |c: &&ControlRow| !c.recorded;
    let cn = |f: &dyn Fn(&&ControlRow) -> bool| r.controls.iter().filter(f).count();
    let c_secs: f64 = r.controls.iter().map(|c| c.wall_ms as f64 / 1000.0).sum();
    let sv = &r.signature_verdicts;
    let sv_fail = sv.iter().filter(|v| sig_fail(v)).count();
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        xml_text(&r.title),
        r.iterations.len() + r.controls.len() + sv.len(),
        count(&fail, None) + cn(&c_fail) + sv_fail,
        count(&err, None) + cn(&c_err),
        count(&skip, None) + cn(&c_skip),
        secs(None) + c_secs
    );
    if !sv.is_empty() {
        let _ = writeln!(
            x,
            "  <testsuite name=\"signature verdicts\" tests=\"{}\" failures=\"{sv_fail}\" errors=\"0\" skipped=\"0\" time=\"0.000\">",
            sv.len()
        );
        for v in sv {
            let _ = write!(
                x,
                "    <testcase classname=\"signature verdicts\" name=\"{}: {} vs {}\" time=\"0.000\">\n      ",
                xml_text(&v.signature),
                xml_text(&v.variant),
                xml_text(&v.baseline)
            );
            if sig_fail(v) {
                let _ = write!(
                    x,
                    "<failure message=\"{}\" type=\"signature_expectation\">{}</failure>",
                    xml_text(&v.sentence),
                    xml_text(&format!(
                        "expected absent in {}; deadlocks with the signature: {} {}/{}, {} {}/{}",
                        v.expected.as_deref().unwrap_or(""),
                        v.baseline,
                        v.baseline_deadlocks,
                        v.baseline_valid,
                        v.variant,
                        v.variant_deadlocks,
                        v.variant_valid
                    ))
                );
            } else {
                let _ = write!(x, "<system-out>{}</system-out>", xml_text(&v.sentence));
            }
            let _ = writeln!(x, "\n    </testcase>");
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    if !r.controls.is_empty() {
        let _ = writeln!(
            x,
            "  <testsuite name=\"positive controls\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{c_secs:.3}\">",
            r.controls.len(),
            cn(&c_fail),
            cn(&c_err),
            cn(&c_skip)
        );
        for c in &r.controls {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"control-{}\" time=\"{:.3}\"",
                xml_text(&c.label),
                xml_text(&c.control),
                c.wall_ms as f64 / 1000.0
            );
            let body = match () {
                _ if c_skip(&c) => format!("<skipped message=\"{}\"/>", xml_text(&c.detail)),
                _ if c_err(&c) => format!("<error message=\"{}\" type=\"infra_error\"/>", xml_text(&c.detail)),
                _ if c_fail(&c) => format!(
                    "<failure message=\"positive control not detected: no hang count of this run can be trusted\" type=\"control\">{}</failure>",
                    xml_text(&format!("{}: {}", c.outcome.as_str(), c.detail))
                ),
                _ => String::new(),
            };
            if body.is_empty() {
                x.push_str("/>\n");
            } else {
                let _ = writeln!(x, ">\n      {body}\n    </testcase>");
            }
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    for v in &r.variants {
        let l = Some(v.label.as_str());
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            xml_text(&v.label),
            count(&|_| true, l),
            count(&fail, l),
            count(&err, l),
            count(&skip, l),
            secs(l)
        );
        let _ = writeln!(x, "    <properties>");
        for (k, val) in [
            ("kernel_package", v.kernel_package.as_str()),
            ("kernel_release", v.kernel_release.as_str()),
            ("kernel_image_sha256", v.kernel_image_sha256.as_str()),
            ("run", v.run.as_str()),
        ] {
            let _ = writeln!(
                x,
                "      <property name=\"{k}\" value=\"{}\"/>",
                xml_text(val)
            );
        }
        let _ = writeln!(x, "    </properties>");
        for it in r.iterations.iter().filter(|i| i.label == v.label) {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"iteration-{}\" time=\"{:.3}\"",
                xml_text(&v.label),
                it.iteration,
                it.wall_ms as f64 / 1000.0
            );
            match it.outcome {
                Outcome::Pass => x.push_str("/>\n"),
                o if o.is_kernel_failure() => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                        xml_text(&failure_message(it)),
                        o.as_str(),
                        xml_text(&evidence(it))
                    );
                }
                Outcome::InfraError => {
                    let _ = writeln!(
                        x,
                        ">\n      <error message=\"{}\" type=\"infra_error\">{}</error>\n    </testcase>",
                        xml_text(&it.detail),
                        xml_text(&evidence(it))
                    );
                }
                _ => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml_text(&it.detail)
                    );
                }
            }
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    x.push_str("</testsuites>\n");
    x
}
