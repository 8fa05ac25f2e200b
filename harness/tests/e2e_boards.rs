//! Several emulated boards at once, and resuming an interrupted run, on the
//! real emulated board. `#[ignore]`d like tests/e2e.rs; run by scripts/test.

mod common;
use common::{assert_all_pass, records, repo, TestDir};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hilt_reports::{IterationRecord, Outcome};

/// The smoke plan with `edits`, placed in `tmp` beside links to the
/// repository's boards/ and workloads/.
fn smoke_with(tmp: &Path, edits: &[(&str, &str)]) -> PathBuf {
    for d in ["boards", "workloads"] {
        let _ = std::os::unix::fs::symlink(repo().join(d), tmp.join(d));
    }
    std::fs::create_dir_all(tmp.join("plans")).unwrap();
    let mut text = std::fs::read_to_string(repo().join("plans/smoke.yaml")).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    let p = tmp.join("plans/smoke.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn hilt(tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hilt"));
    c.current_dir(repo())
        .env("HILT_LEASES", tmp.join("leases"))
        .env("HILT_HISTORY", tmp.join("history.sqlite"));
    // The plan lives in `tmp`; its kernels and images are the checkout's.
    if std::env::var_os("HILT_CACHE").is_none() {
        c.env("HILT_CACHE", repo().join(".cache"));
    }
    c
}

fn slot(r: &IterationRecord) -> (String, u32, Option<String>) {
    (r.variant.clone(), r.iteration, r.control.clone())
}

fn ms(rfc3339: &str) -> i64 {
    // Seconds since midnight are enough to order one short run.
    let t = &rfc3339[11..23];
    let h: i64 = t[0..2].parse().unwrap();
    let m: i64 = t[3..5].parse().unwrap();
    let s: f64 = t[6..].parse().unwrap();
    (h * 3600 + m * 60) * 1000 + (s * 1000.0) as i64
}

#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn two_emulated_boards_share_the_queue() {
    let tmp = TestDir::new();
    let plan = smoke_with(
        tmp.path(),
        &[
            ("board: qemu-virt-a53", "board: qemu-virt-a53\ninstances: 2"),
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 20", "duration_s: 8"),
        ],
    );
    let out = tmp.path().join("run");
    let o = hilt(tmp.path())
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    // Plain lines, each naming its board.
    assert!(stderr.contains("qemu-virt-a53: [1/2]"), "{stderr}");
    assert!(stderr.contains("qemu-virt-a53-2: ["), "{stderr}");

    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    let slots: BTreeSet<_> = recs.iter().map(slot).collect();
    assert_eq!(slots.len(), 2, "every slot exactly once");
    assert_all_pass(&recs);
    let boards: BTreeSet<&str> = recs.iter().map(|r| r.board.as_str()).collect();
    assert_eq!(
        boards,
        BTreeSet::from(["qemu-virt-a53", "qemu-virt-a53-2"]),
        "both boards took slots"
    );
    // The boards ran at the same time: the first slot of each overlaps.
    let span = |b: &str| {
        let r = recs.iter().find(|r| r.board == b).unwrap();
        let s = ms(&r.started_at);
        (s, s + r.wall_ms as i64)
    };
    let (a, b) = (span("qemu-virt-a53"), span("qemu-virt-a53-2"));
    assert!(a.0 < b.1 && b.0 < a.1, "{a:?} {b:?}");

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["boards"].as_array().unwrap().len(), 2);
    assert!(summary["hilt_cpu_ms"].as_u64().unwrap() > 0);
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["boards"][1], "qemu-virt-a53-2");
    // The leases went with the run.
    let held: Vec<_> = std::fs::read_dir(tmp.path().join("leases"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "lease"))
        .collect();
    assert!(held.is_empty(), "{held:?}");
    assert!(out.join("report/index.html").exists());
}

#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn an_interrupted_run_resumes_without_repeating_iterations() {
    let tmp = TestDir::new();
    // Three slots: one done, one cut short by the SIGINT, one not started.
    let plan = smoke_with(
        tmp.path(),
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 20", "duration_s: 8"),
            (
                "  - name: patched\n",
                "  - name: patched2\n    kernel:\n      debian: linux-image-6.1.0-45-arm64=6.1.170-1\n  - name: patched\n",
            ),
        ],
    );
    let out = tmp.path().join("run");
    let mut child = hilt(tmp.path())
        .arg("run")
        .arg(&plan)
        .arg("--quiet")
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while records(&out).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first iteration finished"
        );
        assert!(t0.elapsed() < Duration::from_secs(400));
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let first = records(&out);
    let finished: Vec<_> = first
        .iter()
        .filter(|r| r.outcome != Outcome::NotRun)
        .cloned()
        .collect();
    assert!(!finished.is_empty() && finished.len() < 3, "{first:?}");

    let o = hilt(tmp.path())
        .arg("run")
        .arg("--resume")
        .arg(&out)
        .arg("--quiet")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 3, "{recs:?}");
    let slots: BTreeSet<_> = recs.iter().map(slot).collect();
    assert_eq!(slots.len(), 3, "every iteration appears exactly once");
    assert_all_pass(&recs);
    // What finished before was kept, not run again.
    for f in &finished {
        let r = recs.iter().find(|r| slot(r) == slot(f)).unwrap();
        assert_eq!(r.started_at, f.started_at);
    }
    assert!(stdout.contains("plan smoke: 3/3 iterations"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["finished_iterations"], 3);
    assert_eq!(summary["interrupted"], false);
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["resumed"].as_array().unwrap().len(), 1);
    // The cut-short iteration's evidence was kept aside, not overwritten.
    let aside = std::fs::read_dir(out.join("iterations"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".interrupted-1"))
        .count();
    assert_eq!(aside, 1);
    assert!(out.join("events.interrupted.jsonl").exists());
    let junit = std::fs::read_to_string(out.join("report/junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 3, "{junit}");
}
