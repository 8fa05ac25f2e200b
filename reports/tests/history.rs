//! History over synthetic nights: trends, regressions, re-recording.

use std::path::Path;

use hilt_reports::history::{write_trends, History, RegressionKind, RegressionOptions};
use hilt_reports::synth::{write_run, SynthRun, SynthVariant};
use hilt_reports::{load_run, RunData};

fn night(
    root: &Path,
    day: u32,
    unpatched_hangs: u32,
    patched_hangs: u32,
    patched_median_us: f64,
) -> RunData {
    let dir = root.join(format!("night-{day:02}"));
    let mut spec = SynthRun::new(
        "erofs-noio-ab",
        100 + day as u64,
        vec![
            SynthVariant::new("unpatched", 12).hangs(unpatched_hangs),
            SynthVariant::new("patched", 12)
                .hangs(patched_hangs)
                .read_median_us(patched_median_us),
        ],
    );
    spec.events = false;
    spec.reads_per_iteration = 800;
    spec.started_at = format!("2026-11-{day:02}T02:00:00+00:00");
    write_run(&dir, &spec).unwrap();
    load_run(&dir).unwrap()
}

#[test]
fn nights_build_trends_and_a_bad_night_is_flagged() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("state/history.sqlite");
    let mut h = History::open(&db).unwrap();
    let nights: Vec<RunData> = (1..=6)
        .map(|day| night(d.path(), day, 5 + day % 3, day % 2, 3000.0))
        .collect();
    for n in &nights {
        h.record_run(n).unwrap();
    }
    // Recording a run again replaces it instead of counting it twice.
    h.record_run(&nights[5]).unwrap();
    assert_eq!(h.runs(None, None).unwrap().len(), 6);
    assert_eq!(h.plans().unwrap(), ["erofs-noio-ab"]);

    let t = h.trends("erofs-noio-ab", None).unwrap();
    assert_eq!(t.runs.len(), 6);
    assert_eq!(t.runs[0].name, "night-01", "oldest first");
    let names: Vec<&str> = t.series.iter().map(|s| s.variant.as_str()).collect();
    assert_eq!(names, ["unpatched", "patched"]);
    assert_eq!(
        t.series[0]
            .points
            .iter()
            .map(|p| p.hangs)
            .collect::<Vec<_>>(),
        [6, 7, 5, 6, 7, 5]
    );
    assert!(t.series[1]
        .points
        .iter()
        .all(|p| p.valid == 12 && p.p99_us.is_some()));
    assert_eq!(
        h.trends("erofs-noio-ab", Some(3)).unwrap().runs[0].name,
        "night-04"
    );

    let out = d.path().join("trends");
    write_trends(&t, &out).unwrap();
    for f in [
        "trends.md",
        "trends.json",
        "hang_rate_trend.svg",
        "hang_rate_trend.png",
        "p99_trend.svg",
        "p99_trend.png",
    ] {
        assert!(out.join(f).metadata().unwrap().len() > 100, "{f}");
    }
    assert!(std::fs::read_to_string(out.join("trends.md"))
        .unwrap()
        .contains("| night-03 | 2026-11-03T02:00:00+00:00 | 5/12 [19–68%] |"));

    let opts = RegressionOptions::default();
    // An ordinary night: nothing to flag.
    let calm = night(d.path(), 7, 6, 1, 3000.0);
    let check = h.regressions(&calm, 5, &opts).unwrap();
    assert_eq!(check.compared_with.len(), 5);
    assert_eq!(
        check.compared_with[0], "night-06@2026-11-06T02:00:00+00:00",
        "newest first"
    );
    assert!(check.regressions.is_empty(), "{:?}", check.regressions);

    // The patched kernel hangs again and reads got three times slower.
    let bad = night(d.path(), 8, 6, 7, 9000.0);
    let check = h.regressions(&bad, 5, &opts).unwrap();
    let kinds: Vec<(&str, &RegressionKind)> = check
        .regressions
        .iter()
        .map(|r| (r.variant.as_str(), &r.kind))
        .collect();
    assert_eq!(kinds.len(), 2, "{:?}", check.regressions);
    match kinds[0] {
        (
            "patched",
            RegressionKind::HangRate {
                hangs: 7,
                valid: 12,
                previous_hangs,
                previous_valid: 60,
                p,
            },
        ) => {
            assert!(*previous_hangs <= 3 && *p < 0.001, "{:?}", kinds[0]);
        }
        other => panic!("expected a hang-rate regression of patched, got {other:?}"),
    }
    match kinds[1] {
        ("patched", RegressionKind::P99 { increase_pct, .. }) => assert!(*increase_pct > 100.0),
        other => panic!("expected a p99 regression of patched, got {other:?}"),
    }
    assert!(
        check.regressions[0].message.contains("7/12 hangs"),
        "{}",
        check.regressions[0].message
    );

    // A night whose positive control went undetected is no reference: a
    // later run is compared without it.
    let invalid_dir = d.path().join("night-09");
    let mut spec = SynthRun::new(
        "erofs-noio-ab",
        109,
        vec![
            SynthVariant::new("unpatched", 12).hangs(6).control(true),
            SynthVariant::new("patched", 12).control(false),
        ],
    );
    spec.events = false;
    spec.started_at = "2026-11-09T02:00:00+00:00".into();
    write_run(&invalid_dir, &spec).unwrap();
    let invalid = load_run(&invalid_dir).unwrap();
    assert_eq!(hilt_reports::history::run_valid(&invalid), Some(false));
    h.record_run(&invalid).unwrap();
    let later = night(d.path(), 10, 6, 1, 3000.0);
    let check = h.regressions(&later, 3, &opts).unwrap();
    assert!(
        !check
            .compared_with
            .iter()
            .any(|k| k.starts_with("night-09")),
        "{:?}",
        check.compared_with
    );
    assert_eq!(check.compared_with.len(), 3);
    let runs = h.runs(Some("erofs-noio-ab"), None).unwrap();
    assert_eq!(runs.last().unwrap().valid, Some(false));
    assert_eq!(
        runs.last().unwrap().variants[0].valid,
        12,
        "controls are not counted"
    );

    // The history survives reopening.
    drop(h);
    let h = History::open(&db).unwrap();
    assert_eq!(h.runs(Some("erofs-noio-ab"), None).unwrap().len(), 7);
    assert_eq!(
        h.latest("erofs-noio-ab").unwrap().as_deref(),
        Some("night-09@2026-11-09T02:00:00+00:00")
    );
}

#[test]
fn a_database_from_a_newer_hilt_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("h.sqlite");
    drop(History::open(&db).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = History::open(&db)
        .err()
        .expect("a newer schema is an error");
    assert!(format!("{err:#}").contains("newer"), "{err:#}");
}

const SEED: &str = "erofs_decompress_in_bio_completion";

/// A night of a plan that names the seed signature: the unpatched kernel
/// deadlocks with it, the patched one deadlocks `patched_deadlocks` times
/// (with it when `patched_seed`) and stalls `patched_stalls` times.
fn signature_night(
    root: &Path,
    day: u32,
    patched_deadlocks: u32,
    patched_stalls: u32,
    patched_seed: bool,
) -> RunData {
    let dir = root.join(format!("sig-night-{day:02}"));
    let mut patched = SynthVariant::new("patched", 12)
        .deadlocks(patched_deadlocks)
        .stalls(patched_stalls);
    if patched_seed {
        patched = patched.stack_signatures(&[SEED]);
    }
    let mut spec = SynthRun::new(
        "erofs-seed",
        200 + day as u64,
        vec![
            SynthVariant::new("unpatched", 12)
                .deadlocks(5)
                .stalls(1)
                .stack_signatures(&[SEED]),
            patched,
        ],
    );
    spec.events = false;
    spec.reads_per_iteration = 200;
    spec.started_at = format!("2026-12-{day:02}T02:00:00+00:00");
    spec.expect_absent(SEED, "patched");
    write_run(&dir, &spec).unwrap();
    load_run(&dir).unwrap()
}

#[test]
fn deadlocks_stalls_and_signatures_are_kept_apart_and_a_returning_signature_is_flagged() {
    let d = tempfile::tempdir().unwrap();
    let mut h = History::open(&d.path().join("h.sqlite")).unwrap();
    // Four nights: patched never deadlocks with the seed (one deadlock of
    // another kind, and stalls with the seed, which are not deadlocks).
    for day in 1..=4 {
        h.record_run(&signature_night(d.path(), day, day % 2, 2, day == 2))
            .unwrap();
    }
    let runs = h.runs(Some("erofs-seed"), None).unwrap();
    assert!(runs.iter().all(|r| r.signatures_recorded));
    let (un, pa) = (&runs[1].variants[0], &runs[1].variants[1]);
    assert_eq!((un.deadlocks, un.stalls, un.hangs), (5, 1, 0));
    assert_eq!((pa.deadlocks, pa.stalls), (0, 2));
    assert_eq!(un.all_hangs(), 5, "stalls are not hangs");
    let seed = |v: &hilt_reports::history::HistoryVariant| v.signature(SEED).cloned().unwrap();
    assert_eq!(
        (seed(un).deadlocks, seed(un).stalls, seed(un).valid),
        (5, 1, 12)
    );
    assert_eq!(
        (seed(pa).deadlocks, seed(pa).stalls),
        (0, 2),
        "night 2's stalls carry the seed"
    );
    assert_eq!(seed(&runs[0].variants[1]).deadlocks, 0);

    let t = h.trends("erofs-seed", None).unwrap();
    let p = &t.series[1].points[1];
    assert_eq!((p.deadlocks, p.stalls, p.hangs), (0, 2, 0));
    assert_eq!(p.signature_deadlocks[SEED], 0);
    assert_eq!(t.series[0].points[0].signature_deadlocks[SEED], 5);
    let md = hilt_reports::history::trends_markdown(&t);
    assert!(md.contains("(5 deadlocks, 1 stalls)"), "{md}");
    assert!(
        md.contains(&format!("| run | `{SEED}` unpatched | `{SEED}` patched |")),
        "{md}"
    );
    assert!(md.contains("| sig-night-02 | 5/12 | 0/12 |"), "{md}");
    let out = d.path().join("trends");
    write_trends(&t, &out).unwrap();
    assert!(std::fs::read_to_string(out.join("hang_rate_trend.svg"))
        .unwrap()
        .contains("patched stalls"));

    let opts = RegressionOptions::default();
    // Many stalls, no deadlock: nothing to flag (stalls are not hangs).
    let stalls = signature_night(d.path(), 5, 0, 9, true);
    let check = h.regressions(&stalls, 4, &opts).unwrap();
    assert!(check.regressions.is_empty(), "{:?}", check.regressions);
    // One deadlock of another kind: not the seed, and not enough for the hang rate.
    let other = signature_night(d.path(), 6, 1, 0, false);
    let check = h.regressions(&other, 4, &opts).unwrap();
    assert!(check.regressions.is_empty(), "{:?}", check.regressions);
    // One deadlock with the seed in patched: the signature is back.
    let back = signature_night(d.path(), 7, 1, 0, true);
    let check = h.regressions(&back, 4, &opts).unwrap();
    let sig: Vec<&RegressionKind> = check.regressions.iter().map(|r| &r.kind).collect();
    assert_eq!(
        sig,
        [&RegressionKind::Signature {
            signature: SEED.into(),
            deadlocks: 1,
            valid: 12,
            previous_runs: 4,
            previous_valid: 48,
        }],
        "only the signature regressed: 1/12 hangs is not significant against 2/48"
    );
    assert_eq!(check.regressions[0].variant, "patched");
    assert!(
        check.regressions[0]
            .message
            .contains("never did in the previous 4 runs (0/48)"),
        "{}",
        check.regressions[0].message
    );
    // The unpatched kernel deadlocks with it every night: no news.
    assert!(check.regressions.iter().all(|r| r.variant == "patched"));
}

/// The version 1 schema, as hilt released it, frozen here: a database
/// written by an older hilt must keep loading.
const SCHEMA_V1: &str = "
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    run_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    plan_sha256 TEXT NOT NULL,
    started_at TEXT NOT NULL,
    hilt_version TEXT NOT NULL,
    dir TEXT NOT NULL,
    interrupted INTEGER NOT NULL,
    valid INTEGER,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX runs_by_plan ON runs (plan, started_at);
CREATE TABLE variants (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    variant TEXT NOT NULL,
    kernel_package TEXT NOT NULL,
    kernel_release TEXT NOT NULL,
    kernel_image_sha256 TEXT NOT NULL,
    valid INTEGER NOT NULL,
    hangs INTEGER NOT NULL,
    silent_hangs INTEGER NOT NULL,
    crashes INTEGER NOT NULL,
    infra_errors INTEGER NOT NULL,
    not_run INTEGER NOT NULL,
    reads INTEGER NOT NULL,
    p50_us INTEGER,
    p99_us INTEGER,
    p999_us INTEGER,
    PRIMARY KEY (run_id, variant)
);
INSERT INTO runs (run_key, name, plan, plan_sha256, started_at, hilt_version, dir, interrupted, valid)
    VALUES ('old@2026-11-30T02:00:00+00:00', 'old', 'erofs-seed', '', '2026-11-30T02:00:00+00:00', '0.1.0', '/x', 0, NULL);
INSERT INTO variants VALUES (1, 'unpatched', 'p', 'r', 's', 12, 6, 1, 0, 0, 0, 1000, 3000, 40000, 90000);
INSERT INTO variants VALUES (1, 'patched', 'p', 'r', 's', 12, 0, 0, 0, 0, 0, 1000, 3000, 40000, 90000);
PRAGMA user_version = 1;
";

#[test]
fn a_version_1_database_is_migrated_and_its_runs_still_count() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("old.sqlite");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(SCHEMA_V1)
        .unwrap();
    let mut h = History::open(&db).unwrap();
    let old = &h.runs(None, None).unwrap()[0];
    assert!(!old.signatures_recorded, "unknown, not absent");
    let un = &old.variants[0];
    assert_eq!(
        (un.hangs, un.deadlocks, un.stalls, un.silent_hangs),
        (6, 0, 0, 1)
    );
    assert_eq!(un.all_hangs(), 7);
    assert!(un.signatures.is_empty());
    // New runs are recorded next to it...
    h.record_run(&signature_night(d.path(), 1, 0, 0, false))
        .unwrap();
    drop(h);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
    drop(conn);
    // ...and reopening migrates nothing twice.
    let h = History::open(&db).unwrap();
    let runs = h.runs(Some("erofs-seed"), None).unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs[1].signatures_recorded);
    // The old run counts for the hang rate, but says nothing about the
    // seed: only the night that recorded it does.
    let back = signature_night(d.path(), 2, 1, 0, true);
    let check = h
        .regressions(&back, 5, &RegressionOptions::default())
        .unwrap();
    assert_eq!(check.compared_with.len(), 2);
    match &check.regressions[..] {
        [r] => assert_eq!(
            r.kind,
            RegressionKind::Signature {
                signature: SEED.into(),
                deadlocks: 1,
                valid: 12,
                previous_runs: 1,
                previous_valid: 12,
            }
        ),
        other => panic!("expected one signature regression, got {other:?}"),
    }
}
