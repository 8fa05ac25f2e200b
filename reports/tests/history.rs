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
