//! Property tests of the loaders behind `hilt report`: run.json,
//! summary.json, results.jsonl and events.jsonl, as a crash, a full disk or
//! a hand edit may leave them. The files of tests/data/run1 are damaged
//! (numbers set to extremes, fields dropped or retyped, lines cut,
//! duplicated or swapped) and then loaded, their timelines read and a
//! report built: the result is a report or an error, never a panic.
//! Records that are intact come back exactly.
//!
//! The loaders' sources (src/load.rs, src/record.rs, src/events.rs) are
//! edited by others; this file only reads them through the public API.
//!
//! 64 cases per property (each builds a report) unless PROPTEST_CASES is
//! set (docs/fuzzing.md).

use std::path::Path;

use hilt_reports::events::read_timelines;
use hilt_reports::load::{parse_records, Slot};
use hilt_reports::stats::latency::BootstrapOptions;
use hilt_reports::{build_report, load_run, IterationRecord, ReportOptions, TimelineSelection};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::Value;

fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = None;
    c
}

const FILES: [&str; 4] = ["run.json", "summary.json", "results.jsonl", "events.jsonl"];

fn original(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/run1")
            .join(name),
    )
    .unwrap()
}

/// Values that stress what reads them: integer extremes, negative and
/// non-integer numbers where counts belong, wrong types, long strings.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        select(vec![
            Value::from(u64::MAX),
            Value::from(u64::MAX / 2 + 1),
            Value::from(u32::MAX),
            Value::from(i64::MIN),
            Value::from(-1),
            Value::from(0),
            Value::from(1e308),
            Value::from(-1e-308),
            Value::from(0.5),
            Value::Null,
            Value::Bool(true),
            Value::from(""),
            Value::from("../../etc/passwd"),
            Value::Array(vec![]),
            Value::Object(Default::default()),
        ]),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::from),
        (1usize..5000).prop_map(|n| Value::from("x".repeat(n))),
    ]
}

#[derive(Debug, Clone)]
enum Damage {
    /// Set (or add) a field of an object anywhere in a line's JSON.
    Set {
        file: usize,
        line: Index,
        at: Index,
        value: Value,
    },
    /// Remove a field anywhere in a line's JSON.
    Drop {
        file: usize,
        line: Index,
        at: Index,
    },
    /// Cut a line at any character.
    Cut {
        file: usize,
        line: Index,
        at: Index,
    },
    Duplicate {
        file: usize,
        line: Index,
    },
    Swap {
        file: usize,
        a: Index,
        b: Index,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    let file = 0..FILES.len();
    prop_oneof![
        5 => (file.clone(), any::<Index>(), any::<Index>(), odd_value())
            .prop_map(|(file, line, at, value)| Damage::Set { file, line, at, value }),
        2 => (file.clone(), any::<Index>(), any::<Index>()).prop_map(|(file, line, at)| Damage::Drop { file, line, at }),
        1 => (file.clone(), any::<Index>(), any::<Index>()).prop_map(|(file, line, at)| Damage::Cut { file, line, at }),
        1 => (file.clone(), any::<Index>()).prop_map(|(file, line)| Damage::Duplicate { file, line }),
        1 => (file, any::<Index>(), any::<Index>()).prop_map(|(file, a, b)| Damage::Swap { file, a, b }),
    ]
}

/// Calls `f` on the `n`th object of `v`, depth first.
fn edit_nth(
    v: &mut Value,
    n: &mut usize,
    f: &mut dyn FnMut(&mut serde_json::Map<String, Value>),
) -> bool {
    match v {
        Value::Object(m) => {
            if *n == 0 {
                f(m);
                return true;
            }
            *n -= 1;
            m.values_mut().any(|c| edit_nth(c, n, f))
        }
        Value::Array(a) => a.iter_mut().any(|c| edit_nth(c, n, f)),
        _ => false,
    }
}

fn count_objects(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(count_objects).sum::<usize>(),
        Value::Array(a) => a.iter().map(count_objects).sum(),
        _ => 0,
    }
}

/// Sets (`Some`) or removes (`None`) a field of one object of a line.
fn edit_line(line: &str, at: Index, value: Option<&Value>) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(line) else {
        return line.to_string();
    };
    let total = count_objects(&v);
    if total == 0 {
        return line.to_string();
    }
    edit_nth(&mut v, &mut at.index(total), &mut |m| {
        let keys: Vec<String> = m.keys().cloned().collect();
        let key = if keys.is_empty() {
            "extra".to_string()
        } else {
            keys[at.index(keys.len())].clone()
        };
        match value {
            Some(v) => {
                m.insert(key, v.clone());
            }
            None => {
                m.remove(&key);
            }
        }
    });
    v.to_string()
}

fn apply(files: &mut [Vec<String>], d: &Damage) {
    let (Damage::Set { file, .. }
    | Damage::Drop { file, .. }
    | Damage::Cut { file, .. }
    | Damage::Duplicate { file, .. }
    | Damage::Swap { file, .. }) = d;
    let l = &mut files[*file];
    if l.is_empty() {
        return;
    }
    match d {
        Damage::Set {
            line, at, value, ..
        } => {
            let i = line.index(l.len());
            l[i] = edit_line(&l[i], *at, Some(value));
        }
        Damage::Drop { line, at, .. } => {
            let i = line.index(l.len());
            l[i] = edit_line(&l[i], *at, None);
        }
        Damage::Cut { line, at, .. } => {
            let i = line.index(l.len());
            let chars: Vec<char> = l[i].chars().collect();
            l[i] = chars[..at.index(chars.len() + 1)].iter().collect();
        }
        Damage::Duplicate { line, .. } => {
            let i = line.index(l.len());
            let copy = l[i].clone();
            l.insert(i, copy);
        }
        Damage::Swap { a, b, .. } => {
            let (a, b) = (a.index(l.len()), b.index(l.len()));
            l.swap(a, b);
        }
    }
}

/// The four files, one JSON document per line (run.json and summary.json
/// are one line each).
fn load_originals() -> Vec<Vec<String>> {
    FILES
        .iter()
        .map(|f| {
            let text = original(f);
            if f.ends_with(".json") {
                vec![serde_json::from_str::<Value>(&text).unwrap().to_string()]
            } else {
                text.lines().map(str::to_string).collect()
            }
        })
        .collect()
}

fn write_run(files: &[Vec<String>]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, lines) in FILES.iter().zip(files) {
        std::fs::write(dir.path().join(name), lines.join("\n") + "\n").unwrap();
    }
    dir
}

/// Every boot the run names: its records' and run.json's order.
fn all_slots(run: &hilt_reports::RunData) -> Vec<Slot> {
    let records = run.records.iter().map(|r| Slot {
        variant: r.variant.clone(),
        iteration: r.iteration,
        control: None,
    });
    records
        .chain(run.info.iter().flat_map(|i| i.order.iter().cloned()))
        .collect()
}

fn quick() -> ReportOptions {
    ReportOptions {
        bootstrap: BootstrapOptions {
            resamples: 20,
            ..Default::default()
        },
        timelines: TimelineSelection::All,
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Damaged result files load to a report or an error.
    #[test]
    fn damaged_results_load_or_fail_cleanly(damages in vec(damage(), 1..6)) {
        let mut files = load_originals();
        for d in &damages {
            apply(&mut files, d);
        }
        let dir = write_run(&files);
        let Ok(run) = load_run(dir.path()) else { return Ok(()) };
        let slots = all_slots(&run);
        if let Ok(timelines) = read_timelines(&run, &slots) {
            let events = files[3].len();
            for t in timelines.values() {
                prop_assert!(t.points.len() + t.marks.len() <= events, "{} points from {} lines", t.points.len(), events);
            }
        }
        if let Ok(report) = build_report(&[run], &quick()) {
            prop_assert!(serde_json::to_string(&report).is_ok());
        }
    }

    /// Records, with any variant name, iteration and board, come back from
    /// results.jsonl exactly, whatever blank lines lie between them; a torn
    /// last line is left out with a warning.
    #[test]
    fn records_round_trip(
        renames in vec(("[ -~]{0,20}", any::<u32>(), "[^\n]{0,12}"), 1..5),
        blank in vec(0..3usize, 1..5),
        torn in proptest::option::of(any::<Index>()),
    ) {
        let seeds: Vec<IterationRecord> = original("results.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let records: Vec<IterationRecord> = renames
            .iter()
            .enumerate()
            .map(|(i, (v, it, b))| {
                let mut r = seeds[i % seeds.len()].clone();
                r.variant = v.clone();
                r.iteration = *it;
                r.board = b.clone();
                r
            })
            .collect();
        let mut text = String::new();
        for (i, r) in records.iter().enumerate() {
            text.push_str(&serde_json::to_string(r).unwrap());
            text.push_str(&"\n".repeat(1 + blank[i % blank.len()]));
        }
        if let Some(at) = torn {
            let line: Vec<char> = serde_json::to_string(&seeds[0]).unwrap().chars().collect();
            text.extend(&line[..1 + at.index(line.len() - 2)]);
        }
        let mut warnings = Vec::new();
        let got = parse_records(&text, &mut warnings).unwrap();
        prop_assert_eq!(got, records);
        prop_assert_eq!(warnings.len(), usize::from(torn.is_some()));
    }
}

/// The overflow the campaign found in `read_timelines` (src/events.rs): an
/// events.jsonl whose clocks are 2^63 or more made `hilt report` panic.
#[test]
fn a_huge_clock_in_events_is_not_a_panic() {
    let mut files = load_originals();
    for line in &mut files[3] {
        let mut v: Value = serde_json::from_str(line).unwrap();
        v["t_ms"] = Value::from(u64::MAX / 2 + 1);
        *line = v.to_string();
    }
    let dir = write_run(&files);
    let run = load_run(dir.path()).unwrap();
    let slots = all_slots(&run);
    let _ = read_timelines(&run, &slots);
}
