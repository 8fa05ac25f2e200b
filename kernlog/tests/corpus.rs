//! Proof on real logs: the syzkaller console-log corpus (shared/corpus, see its README).
//!
//! Measures crash/no-crash agreement, exact-title agreement on `TYPE: HANG` files and
//! exact-title agreement overall, checks them against targets, and fails on any file
//! that matched in `tests/corpus-baseline.txt` but no longer does.
//!
//! `HILT_CORPUS=dir` points at another copy of the corpus; `HILT_UPDATE_BASELINE=1`
//! rewrites the baseline with the files matching now; `HILT_CORPUS_VERBOSE=1` lists
//! every mismatch.

#[path = "support/corpus.rs"]
mod corpus;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use hilt_kernlog::{contains_crash, parse};

const CRASH_TARGET: f64 = 0.99;
const HANG_TARGET: f64 = 0.95;
const TITLE_TARGET: f64 = 0.85;

fn baseline_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus-baseline.txt")
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        1.0
    } else {
        n as f64 / d as f64
    }
}

#[test]
fn syzkaller_corpus() {
    let dir = corpus::dir().unwrap_or_else(|e| panic!("{e}"));
    let files = corpus::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let verbose = std::env::var_os("HILT_CORPUS_VERBOSE").is_some();

    let (mut crash_ok, mut hang_total, mut hang_ok, mut titled_total, mut titled_ok) =
        (0, 0, 0, 0, 0);
    let mut matched = BTreeSet::new();
    let mut inconsistent = Vec::new();
    let mut mismatches = String::new();
    for f in &files {
        let events = parse(&f.log);
        let first = events.iter().find(|e| e.is_crash());
        let has_crash = contains_crash(&f.log);
        if has_crash != first.is_some() {
            inconsistent.push(f.name.clone());
        }
        if has_crash == f.expects_crash() {
            crash_ok += 1;
        }
        let ok = match (f.expects_crash(), first) {
            (true, Some(ev)) => f.accepts(&ev.title),
            (false, None) => true,
            _ => false,
        };
        if ok {
            matched.insert(f.name.clone());
        } else {
            let got = first.map_or("<no crash>", |e| e.title.as_str());
            let want = f
                .title
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or("<no crash>");
            let _ = writeln!(
                mismatches,
                "  {:>4}: want {want:?}\n        got  {got:?}",
                f.name
            );
        }
        if f.expects_crash() {
            titled_total += 1;
            titled_ok += usize::from(ok);
        }
        if f.kind.as_deref() == Some("HANG") {
            hang_total += 1;
            hang_ok += usize::from(ok);
        }
    }

    let crash = ratio(crash_ok, files.len());
    let hang = ratio(hang_ok, hang_total);
    let overall = ratio(matched.len(), files.len());
    let titled = ratio(titled_ok, titled_total);
    println!("corpus: {} files in {}", files.len(), dir.display());
    println!(
        "  crash/no-crash agreement: {crash_ok}/{} = {:.1}% (target {:.0}%)",
        files.len(),
        crash * 100.0,
        CRASH_TARGET * 100.0
    );
    println!(
        "  HANG exact titles:        {hang_ok}/{hang_total} = {:.1}% (target {:.0}%)",
        hang * 100.0,
        HANG_TARGET * 100.0
    );
    println!(
        "  exact titles overall:     {}/{} = {:.1}% (no-crash files count when no crash is reported; \
         files with a TITLE only: {titled_ok}/{titled_total} = {:.1}%) (target {:.0}%)",
        matched.len(),
        files.len(),
        overall * 100.0,
        titled * 100.0,
        TITLE_TARGET * 100.0
    );
    if verbose {
        println!("mismatches:\n{mismatches}");
    }

    let path = baseline_path();
    if std::env::var_os("HILT_UPDATE_BASELINE").is_some() {
        let mut out = String::from(
            "# Corpus files whose first crash title matches (tests/corpus.rs).\n\
             # Regenerate with HILT_UPDATE_BASELINE=1 cargo test -p hilt-kernlog --test corpus\n",
        );
        for name in &matched {
            out.push_str(name);
            out.push('\n');
        }
        std::fs::write(&path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("baseline rewritten: {} files", matched.len());
    }
    let baseline_text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (HILT_UPDATE_BASELINE=1 creates it)",
            path.display()
        )
    });
    let baseline: BTreeSet<String> = baseline_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let regressions: Vec<&String> = baseline.difference(&matched).collect();
    let improvements: Vec<&String> = matched.difference(&baseline).collect();
    if !improvements.is_empty() {
        let shown: Vec<&String> = improvements.iter().copied().take(20).collect();
        println!(
            "  {} file(s) match that the baseline does not list (e.g. {shown:?}); \
             record them with HILT_UPDATE_BASELINE=1 cargo test -p hilt-kernlog --test corpus",
            improvements.len(),
        );
    }

    let mut failures = Vec::new();
    if !inconsistent.is_empty() {
        failures.push(format!(
            "contains_crash() disagrees with parse() on {inconsistent:?}"
        ));
    }
    if !regressions.is_empty() {
        failures.push(format!(
            "{} file(s) matched in the baseline but no longer do: {regressions:?}",
            regressions.len()
        ));
    }
    if crash < CRASH_TARGET {
        failures.push(format!(
            "crash/no-crash agreement {:.1}% is below target",
            crash * 100.0
        ));
    }
    if hang < HANG_TARGET {
        failures.push(format!(
            "HANG title agreement {:.1}% is below target",
            hang * 100.0
        ));
    }
    if overall < TITLE_TARGET || titled < TITLE_TARGET {
        failures.push(format!(
            "title agreement {:.1}% / {:.1}% is below target",
            overall * 100.0,
            titled * 100.0
        ));
    }
    assert!(
        failures.is_empty(),
        "{}\n(HILT_CORPUS_VERBOSE=1 lists every mismatch)\n{}",
        failures.join("\n"),
        if verbose { "" } else { mismatches.as_str() }
    );
}
