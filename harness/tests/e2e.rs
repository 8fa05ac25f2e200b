//! End to end on the emulated board: real kernels, real erofs on dm-verity,
//! real swap. Slow (a minute or more each), so they are `#[ignore]`d in a
//! plain `cargo test` and run by scripts/test, which first runs
//! scripts/setup to provide QEMU, the kernels and the agent.

mod common;
use common::{assert_all_pass, control_hang, hilt_run, records, repo, shared_cache, TestDir};

use std::path::{Path, PathBuf};
use std::process::Command;

use hilt_reports::{Detector, Outcome};

fn run(plan: &Path, out: &Path, envs: &[(&str, &Path)]) -> std::process::Output {
    let mut c = hilt_run(plan, out);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// `hilt run` that must succeed; its standard output.
fn run_ok(plan: &Path, out: &Path) -> String {
    common::succeeded(&run(plan, out, &[]))
}

#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn smoke_plan_runs_both_kernels_end_to_end() {
    let tmp = TestDir::new();
    let out = tmp.path().join("run");
    let o = run(&repo().join("plans/smoke.yaml"), &out, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "exit {:?}\n{stdout}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );

    let recs = records(&out);
    assert_eq!(recs.len(), 4, "2 iterations × 2 variants");
    assert_all_pass(&recs);
    for r in &recs {
        let want = if r.variant == "unpatched" {
            "6.1.0-44-arm64"
        } else {
            "6.1.0-45-arm64"
        };
        assert_eq!(r.kernel_release.as_deref(), Some(want));
        assert!(r.boot_ms.unwrap() < 60_000);
        assert!(
            r.reads > 100 && r.read_latency_us.count() > 100,
            "{} reads",
            r.reads
        );
        assert_eq!(r.read_errors, 0);
        // The hog must have pushed the board into swap.
        assert!(
            r.max_swap_used_kb > 1024,
            "swap used: {} kB",
            r.max_swap_used_kb
        );
        let console = std::fs::read(out.join(&r.console_log)).unwrap();
        assert!(console
            .windows(25)
            .any(|w| w == b"hilt-init: starting agent"));
        let ts = std::fs::read_to_string(out.join(&r.console_log).with_extension("ts")).unwrap();
        let last: u64 = ts
            .lines()
            .last()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            last < console.len() as u64,
            "timestamps index the log's bytes"
        );
    }
    for v in ["unpatched", "patched"] {
        assert_eq!(recs.iter().filter(|r| r.variant == v).count(), 2);
    }
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(
        events.contains("dm-verity over"),
        "the mount stage reports dm-verity"
    );
    assert!(events.contains("\"type\":\"heartbeat\""));
    assert!(events.contains("\"type\":\"interval\""));
    assert!(events.contains("\"type\":\"kmsg\""));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["variants"].as_array().unwrap().len(), 2);
    assert_eq!(summary["finished_iterations"], 4);
    assert!(
        summary["variants"][0]["latency_us"]["p99"]
            .as_u64()
            .unwrap()
            > 0
    );
    let plan_copy = std::fs::read_to_string(out.join("plan.yaml")).unwrap();
    assert_eq!(
        plan_copy,
        std::fs::read_to_string(repo().join("plans/smoke.yaml")).unwrap()
    );
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        run_json["media"]["verity_root_hash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(
        stdout.contains("hang rate") && stdout.contains("unpatched") && stdout.contains("patched"),
        "{stdout}"
    );
    // The decompression path is measured on both kernels, and said so.
    for r in &recs {
        assert!(
            r.decompress_latency_us.count() > 0,
            "{} {}: no decompression-path latency ({:?}, error {:?})",
            r.variant,
            r.iteration,
            r.decompress_func,
            r.decompress_probe_error
        );
        assert_eq!(r.decompress_probe_error, None);
    }
    for v in ["unpatched", "patched"] {
        assert!(
            stdout.contains(&format!("{v}: decompression path (z_erofs_")),
            "{stdout}"
        );
    }

    // The run's report, from real data.
    for f in ["index.html", "summary.md", "junit.xml", "report.json"] {
        assert!(out.join("report").join(f).is_file(), "report/{f} missing");
    }
    let junit = std::fs::read_to_string(out.join("report/junit.xml")).unwrap();
    assert_eq!(
        junit.matches("<testcase").count(),
        4,
        "one test case per iteration and variant"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report/report.json")).unwrap()).unwrap();
    assert_eq!(report["version"], 1);
    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    assert!(html.contains("<svg"), "plots are inline");
    assert!(
        html.contains(run_json["variants"][0]["kernel_release"].as_str().unwrap()),
        "provenance names the kernel"
    );
    // And the run is in the history database, where `hilt history` finds it.
    let h = Command::new(env!("CARGO_BIN_EXE_hilt"))
        .args(["history", "--db"])
        .arg(out.with_file_name("history.sqlite"))
        .output()
        .unwrap();
    assert!(h.status.success(), "{}", String::from_utf8_lossy(&h.stderr));
    assert!(
        String::from_utf8_lossy(&h.stdout).contains("smoke"),
        "{}",
        String::from_utf8_lossy(&h.stdout)
    );
}

/// A flipped byte in the erofs image must make reads of that block fail with
/// EIO on the board: dm-verity is really verifying.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn corrupted_verity_data_block_fails_reads_with_eio() {
    let tmp = TestDir::new();
    // A private cache, so corrupting the image cannot touch the shared one;
    // the downloaded packages are shared through symlinks.
    let cache = tmp.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let shared = shared_cache();
    for d in ["debs", "extracted"] {
        std::os::unix::fs::symlink(shared.join(d), cache.join(d)).unwrap();
    }
    let plan = tmp.path().join("plans/verity.yaml");
    std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
    for d in ["boards", "workloads"] {
        std::os::unix::fs::symlink(repo().join(d), tmp.path().join(d)).unwrap();
    }
    let text = std::fs::read_to_string(repo().join("plans/smoke.yaml"))
        .unwrap()
        .replace("iterations: 2", "iterations: 1")
        .replace("duration_s: 20", "duration_s: 8")
        .replace(
            "  - name: patched\n    kernel:\n      debian: linux-image-6.1.0-45-arm64=6.1.170-1\n",
            "",
        )
        .replace("  - hog-80pct\n", "");
    std::fs::write(&plan, text).unwrap();
    let fetch = Command::new(env!("CARGO_BIN_EXE_hilt"))
        .arg("fetch")
        .arg(&plan)
        .env("HILT_CACHE", &cache)
        .output()
        .unwrap();
    assert!(
        fetch.status.success(),
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    let images: Vec<PathBuf> = std::fs::read_dir(cache.join("erofs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "img"))
        .collect();
    assert_eq!(images.len(), 1);
    let blocks = std::fs::metadata(&images[0]).unwrap().len() / 4096;
    // A block in the middle holds compressed file data, not metadata, so
    // the mount succeeds and only the reads that touch it fail.
    hilt_images::verity::corrupt_block(&images[0], blocks / 2, 4096).unwrap();

    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[("HILT_CACHE", &cache)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert!(r.read_errors > 0, "no read failed: {r:?}");
    assert_eq!(r.last_read_errno, Some(5), "EIO expected");
    let console =
        String::from_utf8_lossy(&std::fs::read(out.join(&r.console_log)).unwrap()).into_owned();
    assert!(
        console.contains("device-mapper: verity") && console.contains("is corrupted"),
        "{console}"
    );
}

/// The positive control must produce a genuine kernel hung-task report, seen
/// by the agent's watcher first, with every detection time recorded, and
/// come out as a deadlock; the same freeze let go after 30 s must come out
/// as a stall.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn swap_freeze_and_bio_wait_controls_are_deadlocks_and_swap_stall_a_stall() {
    let tmp = TestDir::new();
    for d in ["boards", "workloads"] {
        std::os::unix::fs::symlink(repo().join(d), tmp.path().join(d)).unwrap();
    }
    let plan = tmp.path().join("plans/control.yaml");
    std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(repo().join("plans/smoke.yaml"))
        .unwrap()
        .replace("iterations: 2", "iterations: 1")
        .replace("duration_s: 20", "duration_s: 10")
        .replace(
            "  - name: patched\n    kernel:\n      debian: linux-image-6.1.0-45-arm64=6.1.170-1\n",
            "",
        )
        + "controls:\n  - swap_freeze\n  - swap_stall\n  - bio_wait\n";
    std::fs::write(&plan, text).unwrap();
    let out = tmp.path().join("run");
    let stdout = run_ok(&plan, &out);
    assert!(
        stdout.contains("control swap_freeze on unpatched: detected"),
        "{stdout}"
    );

    let recs = records(&out);
    assert_eq!(recs.len(), 4, "three controls and one iteration");

    // bio_wait: a task waits in submit_bio_wait(), which wakes in slices so
    // that khungtaskd stays silent; the watcher must find it by the
    // readers' standstill, and nothing else may.
    let bio = recs
        .iter()
        .find(|r| r.control.as_deref() == Some("bio_wait"))
        .unwrap();
    assert_eq!(bio.outcome, Outcome::Deadlock, "{}", bio.detail);
    let f = bio.failure.as_ref().expect("the watcher's finding");
    assert_eq!(
        f.title,
        "hang: hilt-zeroout stuck in submit_bio_wait with no workload progress"
    );
    assert!(
        f.frames.iter().any(|x| x == "submit_bio_wait")
            && f.frames.iter().any(|x| x == "blkdev_issue_zeroout"),
        "{:?}",
        f.frames
    );
    assert!(
        !bio.kernel_events.iter().any(|t| t.contains("hung")),
        "khungtaskd reported something: {:?}",
        bio.kernel_events
    );
    assert!(
        stdout.contains("control bio_wait on unpatched: detected"),
        "{stdout}"
    );
    let stall = recs
        .iter()
        .find(|r| r.control.as_deref() == Some("swap_stall"))
        .unwrap();
    assert_eq!(stall.outcome, Outcome::Stall, "{}", stall.detail);
    let w = stall.hang.as_ref().expect("the window's record");
    let resumed = w.resumed_after_ms.expect("the stall resumed");
    assert!(resumed < 30_000, "resumed {resumed} ms into a 30 s window");
    assert!(
        w.progress.as_deref().is_some_and(|p| p.contains("left D")),
        "{w:?}"
    );
    assert!(stall.detail.starts_with("stall: "), "{}", stall.detail);
    assert!(
        stdout.contains("control swap_stall on unpatched: detected"),
        "{stdout}"
    );
    let c = control_hang(&recs);
    let f = c.failure.as_ref().unwrap();
    let t = f.timing.expect("detection times");
    let suspected = t
        .suspected_ms
        .expect("the D-state watcher suspected the task");
    let confirmed = t.confirmed_ms.expect("confirmed");
    let evidence = t.evidence_ms.expect("evidence captured");
    assert!(
        suspected >= t.stopped_ms + 9_000,
        "suspected {} ms after stopping, threshold 10 s",
        suspected - t.stopped_ms
    );
    assert!(
        suspected - t.stopped_ms < 15_000,
        "suspicion took {} ms",
        suspected - t.stopped_ms
    );
    assert!(evidence >= suspected && evidence - suspected < 5_000);
    // Confirmed by whichever came first, the watcher or khungtaskd's own
    // report, which under load can land a moment before the suspicion.
    assert!(
        confirmed >= t.stopped_ms + 9_000,
        "confirmed {} ms after stopping, threshold 10 s",
        confirmed - t.stopped_ms
    );
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(
        events.contains("\"type\":\"suspect\""),
        "the watcher reported a suspect"
    );
    assert!(
        events.contains("swap-freeze:"),
        "the control stage reported the freeze"
    );
    assert!(
        events.contains("waiting in D at submit_bio_wait")
            && events.contains("bio-wait: readers stopped: readers-seq-1"),
        "the bio-wait control's stages"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["valid"], true);
    // The control is kept out of the variant's hang rate.
    assert_eq!(summary["variants"][0]["iterations"], 1);
}

/// `machine: {boot: uboot_tftp}`: U-Boot is the firmware, hilt stops its
/// autoboot on the console, and the kernel and initrd come over TFTP, as on
/// a rack of real boards. The whole dialogue is in console.log.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn uboot_tftp_boot_reaches_the_agent() {
    let tmp = TestDir::new();
    let plan = plan_from_smoke(
        tmp.path(),
        "uboot",
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 20", "duration_s: 8"),
            ("machine:\n", "machine:\n  boot: uboot_tftp\n"),
        ],
        "",
    );
    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.outcome, Outcome::Pass, "{}", r.detail);
    assert!(r.reads > 0);
    let console =
        String::from_utf8_lossy(&std::fs::read(out.join(&r.console_log)).unwrap()).into_owned();
    let at = |needle: &str| {
        console
            .find(needle)
            .unwrap_or_else(|| panic!("console.log lacks {needle:?}"))
    };
    // In boot order: firmware, interrupted countdown, DHCP, both transfers,
    // booti, the kernel, the agent.
    let order = [
        at("U-Boot 20"),
        at("Hit any key to stop autoboot"),
        at("DHCP client bound to address"),
        at("Filename 'Image'"),
        at("Filename 'initrd'"),
        at("=> booti ${kernel_addr_r} ${ramdisk_addr_r}:"),
        at("Starting kernel ..."),
        at("hilt-init: starting agent"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    // Two transfers: a whole arm64 Image, then the initrd that booti was
    // given with exactly the size U-Boot received.
    let sizes: Vec<u64> = console
        .match_indices("Bytes transferred = ")
        .map(|(i, m)| {
            let rest = &console[i + m.len()..];
            rest[..rest.find(' ').unwrap()].parse().unwrap()
        })
        .collect();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(sizes[0] > 10 << 20, "kernel of {} bytes", sizes[0]);
    assert!(
        console.contains(&format!("${{ramdisk_addr_r}}:{:#x} ", sizes[1])),
        "booti names the initrd size"
    );
}

/// Writes a one-variant variant of the smoke plan with `extra` appended and
/// `edits` applied, in a temporary tree that links the real boards/ and
/// workloads/.
fn plan_from_smoke(tmp: &Path, name: &str, edits: &[(&str, &str)], extra: &str) -> PathBuf {
    for d in ["boards", "workloads"] {
        let link = tmp.join(d);
        if !link.exists() {
            std::os::unix::fs::symlink(repo().join(d), link).unwrap();
        }
    }
    let mut text = std::fs::read_to_string(repo().join("plans/smoke.yaml"))
        .unwrap()
        .replace(
            "  - name: patched\n    kernel:\n      debian: linux-image-6.1.0-45-arm64=6.1.170-1\n",
            "",
        );
    for (from, to) in edits {
        assert!(text.contains(from), "smoke.yaml lacks {from:?}");
        text = text.replacen(from, to, 1);
    }
    let plan = tmp.join(format!("plans/{name}.yaml"));
    std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
    std::fs::write(&plan, text + extra).unwrap();
    plan
}

/// Losing power and losing the agent are infrastructure errors, never kernel
/// hangs, and neither loses the results of the other iterations.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn power_loss_and_agent_exit_are_infrastructure_errors() {
    let tmp = TestDir::new();
    let plan = plan_from_smoke(
        tmp.path(),
        "faults",
        &[("iterations: 2", "iterations: 3"), ("duration_s: 20", "duration_s: 8")],
        "faults:\n  - { kind: power_loss, after_s: 4, iteration: 0 }\n  - { kind: agent_exit, after_s: 4, iteration: 1 }\n",
    );
    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = records(&out);
    let by_iter = |i: u32| recs.iter().find(|r| r.iteration == i).unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(
        by_iter(0).outcome,
        Outcome::InfraError,
        "{}",
        by_iter(0).detail
    );
    assert!(
        by_iter(0).detail.contains("QEMU exited"),
        "{}",
        by_iter(0).detail
    );
    assert!(
        by_iter(0).reads > 0,
        "what was gathered before the power loss is kept"
    );
    assert_eq!(
        by_iter(1).outcome,
        Outcome::InfraError,
        "{}",
        by_iter(1).detail
    );
    assert!(
        by_iter(1)
            .detail
            .contains("the board agent exited (status 3)"),
        "{}",
        by_iter(1).detail
    );
    assert_eq!(by_iter(2).outcome, Outcome::Pass, "{}", by_iter(2).detail);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["variants"][0]["infra_errors"], 2);
    assert_eq!(summary["variants"][0]["hangs"], 0);
    assert_eq!(
        summary["variants"][0]["iterations"], 1,
        "infra errors are not kernel iterations"
    );
}

/// A board that goes silent gets a serial BREAK + sysrq over its console,
/// then a forced crash whose dump, kept in ramoops across the power cycle,
/// is read by the next boot; a kernel panic is a crash.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn silent_board_gets_break_sysrq_and_its_dump_survives_the_power_cycle() {
    let tmp = TestDir::new();
    let plan = plan_from_smoke(
        tmp.path(),
        "silent",
        &[
            ("iterations: 2", "iterations: 3"),
            ("duration_s: 20", "duration_s: 12"),
            ("hung_task_timeout_secs: 10", "hung_task_timeout_secs: 10\n  printk_level: 4"),
            ("silent_after_s: 30", "silent_after_s: 8"),
        ],
        "faults:\n  - { kind: agent_mute, after_s: 3, iteration: 0 }\n  - { kind: kernel_panic, after_s: 3, iteration: 1 }\n",
    );
    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = records(&out);
    let by_iter = |i: u32| recs.iter().find(|r| r.iteration == i).unwrap();
    assert_eq!(
        by_iter(0).outcome,
        Outcome::SilentHang,
        "{}",
        by_iter(0).detail
    );
    let console0 =
        String::from_utf8_lossy(&std::fs::read(out.join(&by_iter(0).console_log)).unwrap())
            .into_owned();
    assert!(
        console0.contains("sysrq: Show Blocked State"),
        "the BREAK + w reached the kernel"
    );
    assert!(
        console0.contains("sysrq: Trigger a crash"),
        "the BREAK + c reached the kernel"
    );
    assert_eq!(by_iter(1).outcome, Outcome::Crash, "{}", by_iter(1).detail);
    assert_eq!(by_iter(2).outcome, Outcome::Pass, "{}", by_iter(2).detail);
    for i in [0, 1] {
        let dir = out.join(format!("iterations/unpatched-{i:03}/pstore"));
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .collect();
        assert!(!files.is_empty(), "iteration {i}: no pstore files");
        let all: String = files
            .into_iter()
            .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
            .collect();
        assert!(
            all.contains("sysrq: Trigger a crash"),
            "iteration {i}'s dump was read back by the next boot"
        );
    }
}

/// The agent's sampler blocking in the kernel (seen on the patched clean A/B
/// kernel: heartbeats went on, interval reports stopped, and the iteration
/// ended as an infrastructure error) is a hang: a stall when the sampler
/// reports again with the workloads having moved, a deadlock when it never
/// does. The agent may be stuck too, so the sysrq dumps go over the UART.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn a_sampler_that_stops_reporting_is_a_hang_and_a_stall_when_it_comes_back() {
    let tmp = TestDir::new();
    let plan = plan_from_smoke(
        tmp.path(),
        "sampler",
        &[("duration_s: 20", "duration_s: 45")],
        "faults:\n  - { kind: sampler_freeze, after_s: 3, for_s: 35, iteration: 0 }\n  - { kind: sampler_freeze, after_s: 3, iteration: 1 }\n",
    );
    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let recs = records(&out);
    let by_iter = |i: u32| recs.iter().find(|r| r.iteration == i).unwrap();
    let console = |i: u32| {
        String::from_utf8_lossy(&std::fs::read(out.join(&by_iter(i).console_log)).unwrap())
            .into_owned()
    };

    let stall = by_iter(0);
    assert_eq!(stall.outcome, Outcome::Stall, "{}\n{stdout}", stall.detail);
    let f = stall.failure.as_ref().unwrap();
    assert_eq!(f.detector, Detector::SamplerStall, "{f:?}");
    assert!(
        f.title.contains("sampler made no report for 20 s"),
        "{}",
        f.title
    );
    let w = stall.hang.as_ref().expect("the window's record");
    assert!(
        w.progress
            .as_deref()
            .is_some_and(|p| p.contains("sampler reported again")),
        "{w:?}"
    );
    assert!(w.resumed_after_ms.is_some_and(|ms| ms < 30_000), "{w:?}");
    assert!(
        console(0).contains("sysrq: Show Blocked State"),
        "sysrq w went over the UART"
    );

    let deadlock = by_iter(1);
    assert_eq!(deadlock.outcome, Outcome::Deadlock, "{}", deadlock.detail);
    assert_eq!(
        deadlock.failure.as_ref().unwrap().detector,
        Detector::SamplerStall
    );
    assert!(
        console(1).contains("sysrq: Show State"),
        "sysrq t at the window's end went over the UART"
    );
}

/// A board that keeps failing to come back is quarantined: the rest of its
/// iterations are recorded as not run, and the summary says so.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn a_board_that_keeps_failing_is_quarantined() {
    let tmp = TestDir::new();
    let plan = plan_from_smoke(
        tmp.path(),
        "quarantine",
        &[
            ("iterations: 2", "iterations: 4"),
            ("finish_s: 30", "finish_s: 30\n  quarantine_after: 2"),
        ],
        "faults:\n  - { kind: power_loss, after_s: 1 }\n",
    );
    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(3),
        "every iteration is an infrastructure problem\n{stdout}"
    );
    assert!(
        stdout.contains("QUARANTINED: board qemu-virt-a53"),
        "{stdout}"
    );
    let recs = records(&out);
    let outcomes: Vec<Outcome> = recs.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::InfraError,
            Outcome::InfraError,
            Outcome::NotRun,
            Outcome::NotRun
        ]
    );
    assert!(
        recs[3]
            .detail
            .contains("quarantined after 2 infrastructure errors in a row"),
        "{}",
        recs[3].detail
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["quarantined"][0], "qemu-virt-a53");
}

/// `hilt run` started in the background, for tests that act during the run.
fn spawn_run(plan: &Path, out: &Path, extra: &[&str]) -> std::process::Child {
    hilt_run(plan, out)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until results.jsonl holds `n` records (the run is then between
/// iterations or in the next one).
fn wait_for_records(out: &Path, n: usize, child: &mut std::process::Child) {
    let t = std::time::Instant::now();
    loop {
        let have = std::fs::read_to_string(out.join("results.jsonl"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if have >= n {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("hilt exited ({status}) before {n} records were written");
        }
        assert!(t.elapsed().as_secs() < 600, "no {n} records after 10 min");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A flood of random bytes on the console, a damaged agent channel and a
/// console that closes mid-iteration all leave the kernel's outcome alone
/// (both iterations pass) and keep what was gathered; the damage is
/// recorded. Meanwhile the plan file is edited: the run goes on with the
/// snapshot it took at the start, and warns. Its results go to CI through
/// --junit and `--json -`.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn console_and_channel_faults_and_a_plan_edited_mid_run() {
    let tmp = TestDir::new();
    let plan = plan_from_smoke(
        tmp.path(),
        "consolefaults",
        // No hog: memory pressure is not under test here, and it slows the
        // emulated UART that carries the flood.
        &[("duration_s: 20", "duration_s: 10"), ("  - hog-80pct\n", "")],
        "faults:\n  - { kind: channel_garbage, after_s: 2, iteration: 0 }\n  - { kind: console_flood, after_s: 0, iteration: 0, bytes: 32768 }\n  - { kind: console_close, after_s: 2, iteration: 1 }\n",
    );
    let original = std::fs::read_to_string(&plan).unwrap();
    let out = tmp.path().join("run");
    let junit = tmp.path().join("ci/junit.xml");
    std::fs::create_dir_all(junit.parent().unwrap()).unwrap();
    let mut child = spawn_run(
        &plan,
        &out,
        &["--junit", junit.to_str().unwrap(), "--json", "-"],
    );
    wait_for_records(&out, 1, &mut child);
    std::fs::write(
        &plan,
        original.replace("iterations: 2", "iterations: 9") + "# edited during the run\n",
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "exit {:?}\n{stderr}", o.status);

    // stdout is the JSON result and nothing else; the summary went to stderr.
    let result: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{stdout}"));
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["status"], "ok");
    assert_eq!(result["report"]["iterations"].as_array().unwrap().len(), 2);
    assert!(stderr.contains("hang rate"), "{stderr}");
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 2, "{junit}");
    assert!(!junit.contains("<failure") && !junit.contains("<error"));

    let recs = records(&out);
    assert_eq!(
        recs.len(),
        2,
        "the snapshot's 2 iterations, not the edit's 9"
    );
    for r in &recs {
        assert_eq!(r.outcome, Outcome::Pass, "#{}: {}", r.iteration, r.detail);
        assert!(
            r.reads > 0 && r.read_latency_us.count() > 0,
            "#{}",
            r.iteration
        );
    }
    // The decoder saw every kind of damage: two frames were damaged and two
    // never sent, so the next good frame is four numbers on.
    assert!(
        recs[0]
            .detail
            .contains("agent channel damaged: 4 frames lost, 2 corrupt lines"),
        "{}",
        recs[0].detail
    );
    assert!(!recs[1].detail.contains("damaged"), "{}", recs[1].detail);
    // The boot log is ASCII; about half of the flood's random bytes are not.
    // The emulated PL011 is slow and its speed follows the host's load (a
    // 10 s iteration carried from 5 kB to over 100 kB of flood here), so
    // the iteration may end, and power off, mid-flood: what came is asked
    // only to be recorded. (A fresh-clone CI run recorded 610 such bytes,
    // a quiet machine thousands; an unflooded boot log has none.)
    let high = |f: &[u8]| f.iter().filter(|&&b| b >= 0x80).count();
    let console0 = std::fs::read(out.join(&recs[0].console_log)).unwrap();
    assert!(
        high(&console0) > 256,
        "the flood is recorded: {} non-ASCII bytes",
        high(&console0)
    );
    let console1 = std::fs::read(out.join(&recs[1].console_log)).unwrap();
    assert!(high(&console1) < 100, "no flood in iteration 1");
    assert!(console1
        .windows(25)
        .any(|w| w == b"hilt-init: starting agent"));
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    for kind in [
        "\"channel_gap\"",
        "\"channel_corrupt\"",
        "\"channel_noise\"",
        "\"console_closed\"",
        "\"input_changed\"",
    ] {
        assert!(events.contains(kind), "no {kind} event");
    }

    assert!(
        stderr.contains("changed on disk since the run started")
            && stderr.contains("consolefaults.yaml"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("snapshot/plan-consolefaults.yaml")).unwrap(),
        original
    );
    let sources: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("snapshot/sources.json")).unwrap()).unwrap();
    let roles: Vec<&str> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["plan", "board", "workload"]);
    for s in sources.as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let kept = std::fs::read(out.join("snapshot").join(name)).unwrap();
        assert_eq!(
            s["sha256"].as_str().unwrap(),
            sha256_hex(&kept),
            "{name}: the snapshot holds the bytes its hash names"
        );
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A kernel that cannot reach init (no root, and panic=0 so it never
/// reboots): each iteration is an infrastructure error at boot_s, not a
/// crash of the kernel under test and not a hang of hilt, and the board is
/// quarantined.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn a_boot_that_never_reaches_the_agent_is_an_infrastructure_error() {
    let tmp = TestDir::new();
    let board = std::fs::read_to_string(repo().join("boards/qemu-virt-a53.yaml"))
        .unwrap()
        .replace("name: qemu-virt-a53", "name: stuck-at-boot")
        .replace("append: \"\"", "append: \"panic=0 rdinit=/nonexistent\"");
    assert!(board.contains("rdinit"));
    std::fs::write(tmp.path().join("stuck-at-boot.yaml"), board).unwrap();
    let plan = plan_from_smoke(
        tmp.path(),
        "stuck",
        &[
            ("board: qemu-virt-a53", "board: ../stuck-at-boot.yaml"),
            ("iterations: 2", "iterations: 3"),
            ("boot_s: 90", "boot_s: 10"),
            ("finish_s: 30", "finish_s: 30\n  quarantine_after: 2"),
        ],
        "",
    );
    let out = tmp.path().join("run");
    let t = std::time::Instant::now();
    let o = run(&plan, &out, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(t.elapsed().as_secs() < 120, "took {:?}", t.elapsed());
    let recs = records(&out);
    let outcomes: Vec<Outcome> = recs.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::InfraError, Outcome::InfraError, Outcome::NotRun]
    );
    for r in &recs[..2] {
        assert!(
            r.detail
                .starts_with("boot timeout: no agent hello within 10 s")
                && r.detail.contains("VFS: Unable to mount root fs"),
            "{}",
            r.detail
        );
        assert!(r.failure.is_none(), "not a kernel failure: {:?}", r.failure);
        assert!(
            (10_000..25_000).contains(&r.wall_ms),
            "ended by the boot deadline: {} ms",
            r.wall_ms
        );
    }
    assert!(
        stdout.contains("QUARANTINED: board stuck-at-boot"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["variants"][0]["crashes"], 0);
    assert_eq!(summary["variants"][0]["infra_errors"], 2);
}

/// Unmounts the test's tmpfs however the test ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = as_root(&["umount", "-l"]).arg(&self.0).status();
    }
}

/// `args` run as root: directly when the tests are, else through sudo
/// without a password prompt (scripts/setup relies on sudo the same way).
fn as_root(args: &[&str]) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").args(args);
        c
    }
}

/// The results disk fills up mid-run: hilt does not panic, keeps every
/// complete record written before and a whole summary.json, leaves no
/// temporary file, stops instead of running iterations it cannot record,
/// says so, and exits with the infrastructure code; the CI files (on
/// another disk) are still written.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn a_full_results_disk_stops_the_run_with_what_was_written_intact() {
    let tmp = TestDir::new();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let m = as_root(&["mount", "-t", "tmpfs", "-o"])
        .arg(format!("size=16m,uid={uid},gid={gid},mode=0700"))
        .arg("hilt-e2e-full")
        .arg(&disk)
        .status()
        .unwrap();
    assert!(
        m.success(),
        "mounting a 16 MiB tmpfs for the results failed: this test needs root or passwordless sudo"
    );
    let _mount = Mount(disk.clone());
    let plan = plan_from_smoke(
        tmp.path(),
        "diskfull",
        &[
            ("iterations: 2", "iterations: 3"),
            ("duration_s: 20", "duration_s: 8"),
        ],
        "",
    );
    let out = disk.join("run");
    let json = tmp.path().join("result.json");
    let junit = tmp.path().join("junit.xml");
    let mut child = spawn_run(
        &plan,
        &out,
        &[
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    wait_for_records(&out, 1, &mut child);
    // Fill the disk to the last byte.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(disk.join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..1]).is_ok() {}
    }
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("results could not be written")
            && stderr.contains("No space left on device")
            && stderr.contains("what was written before is intact"),
        "{stderr}"
    );
    // Every line of the results is a whole record; the first is untouched.
    let recs = records(&out);
    assert!(
        !recs.is_empty() && recs.len() <= 2,
        "{} records",
        recs.len()
    );
    assert_eq!(recs[0].outcome, Outcome::Pass, "{}", recs[0].detail);
    assert!(recs[0].reads > 0);
    assert!(
        !out.join("iterations/unpatched-002").exists(),
        "no iteration runs once results cannot be written"
    );
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    for line in events.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("events.jsonl has a broken line ({e}): {line}"));
    }
    // summary.json is a whole one: the one written after the last record
    // that fitted, or the one before it when the disk filled in between.
    let summary = std::fs::read(out.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&summary).unwrap_or_else(|e| {
        panic!(
            "summary.json is not whole ({e}): {}",
            String::from_utf8_lossy(&summary)
        )
    });
    let finished = summary["finished_iterations"].as_u64().unwrap() as usize;
    assert!(
        finished == recs.len() || finished + 1 == recs.len(),
        "summary.json counts {finished} iterations, results.jsonl holds {}",
        recs.len()
    );
    // No write that failed left its temporary file behind.
    let temps: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "left behind: {temps:?}");
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(result["exit_code"], 3);
    assert_eq!(result["status"], "results_not_written");
    assert!(result["results_write_failure"]
        .as_str()
        .unwrap()
        .contains("No space left on device"));
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<testcase"));
}

/// An agent built before a framing change speaks another magic. The host must say so
/// as soon as the first such frame arrives, naming the fix, instead of taking its
/// records for console noise until the boot timeout.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn a_stale_agent_fails_fast_naming_build_agent() {
    let tmp = TestDir::new();
    let plan = plan_from_smoke(
        tmp.path(),
        "stale-agent",
        &[("iterations: 2", "iterations: 1")],
        "",
    );
    // A version-1 hello, framed as the agents before the current framing did:
    // `@H1 <seq> <crc32 of the JSON> <json>`.
    let json = r#"{"type":"hello","protocol":1,"agent_version":"0.0.1"}"#;
    let frame = format!(
        "@H1 0 {:08x} {json}",
        hilt_protocol::frame::crc32(json.as_bytes())
    );
    // The board's busybox runs it in place of the agent, on the agent's own port.
    let agent = tmp.path().join("stale-agent.sh");
    std::fs::write(
        &agent,
        format!(
            "#!/bin/sh\n\
             while true; do\n\
             \x20 for p in /sys/class/virtio-ports/*; do\n\
             \x20   [ \"$(cat \"$p/name\" 2>/dev/null)\" = {port} ] && printf '%s\\n' '{frame}' > \"/dev/${{p##*/}}\"\n\
             \x20 done\n\
             \x20 sleep 1\n\
             done\n",
            port = hilt_protocol::AGENT_PORT_NAME,
        ),
    )
    .unwrap();
    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[("HILT_AGENT", &agent)]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "an infrastructure error only\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.outcome, Outcome::InfraError, "{}", r.detail);
    for what in ["@H1", "@H2", "scripts/build-agent"] {
        assert!(r.detail.contains(what), "{what} missing from: {}", r.detail);
    }
    // Well before the boot timeout: the first frame is enough.
    assert!(
        r.wall_ms < 60_000,
        "took {} ms, as if waiting for the boot timeout",
        r.wall_ms
    );
}

/// A plan with a stopping rule stops once its question is settled: here a
/// signature neither kernel shows, which no number of iterations left can
/// separate after one round. The slots it leaves out are recorded as
/// dropped, not missing, and `--resume` keeps them out.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn a_stopping_rule_ends_the_run_early_and_resume_keeps_it_stopped() {
    let tmp = TestDir::new();
    for d in ["boards", "workloads"] {
        std::os::unix::fs::symlink(repo().join(d), tmp.path().join(d)).unwrap();
    }
    let need = hilt_reports::stats::sequential::TwoSided::min_blocks(0.01);
    let plan = tmp.path().join("plans/stop.yaml");
    std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(repo().join("plans/smoke.yaml"))
        .unwrap()
        .replace("iterations: 2", &format!("iterations: {need}"))
        .replace("duration_s: 20", "duration_s: 10")
        + "stop:\n  alpha: 0.01\n"
        + "signatures:\n  - name: never\n    frames: [no_such_kernel_function]\n    absent_in: patched\n";
    std::fs::write(&plan, text).unwrap();
    let out = tmp.path().join("run");
    let stdout = run_ok(&plan, &out);
    let recs = records(&out);
    assert_eq!(recs.len(), 2, "one round, then the rule stopped the run");
    assert!(
        stdout.contains("stopped by the sequential rule (α = 0.01): never: not seen"),
        "{stdout}"
    );
    assert!(
        stdout.starts_with(&format!("plan smoke: 2/{} iterations\nnever: ", 2 * need)),
        "the verdict comes first: {stdout}"
    );
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let dropped = run_json["stopped"]["dropped"].as_array().unwrap();
    assert_eq!(dropped.len() as u32, 2 * need - 2);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report/report.json")).unwrap()).unwrap();
    assert_eq!(
        report["signature_verdicts"][0]["conclusion"], "not_seen",
        "{}",
        report["signature_verdicts"]
    );
    for v in report["variants"].as_array().unwrap() {
        assert_eq!(v["counts"]["missing"], 0, "dropped is not missing: {v}");
    }

    let o = Command::new(env!("CARGO_BIN_EXE_hilt"))
        .args(["run", "--quiet", "--resume"])
        .arg(&out)
        .env("HILT_HISTORY", tmp.path().join("history.sqlite"))
        .env("HILT_CACHE", common::shared_cache())
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(records(&out).len(), 2, "the resumed run ran nothing more");
}

/// A one-variant, readers-only copy of smoke.yaml with `verity: avb`, in
/// `dir`/plans beside the repository's boards and workloads.
fn avb_plan(dir: &Path) -> PathBuf {
    avb_plan_on(dir, "virtio")
}

fn avb_plan_on(dir: &Path, erofs_on: &str) -> PathBuf {
    let plan = dir.join("plans/avb.yaml");
    std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
    for d in ["boards", "workloads"] {
        std::os::unix::fs::symlink(repo().join(d), dir.join(d)).unwrap();
    }
    let smoke = std::fs::read_to_string(repo().join("plans/smoke.yaml")).unwrap();
    assert!(smoke.contains("  verity: true\n"), "smoke.yaml changed");
    let text = smoke
        .replace("iterations: 2", "iterations: 1")
        .replace("duration_s: 20", "duration_s: 8")
        .replace(
            "  - name: patched\n    kernel:\n      debian: linux-image-6.1.0-45-arm64=6.1.170-1\n",
            "",
        )
        .replace("  - hog-80pct\n", "")
        .replace("  verity: true\n", "  verity: avb\n")
        .replace("  erofs_on: virtio\n", &format!("  erofs_on: {erofs_on}\n"));
    std::fs::write(&plan, text).unwrap();
    plan
}

/// Every file under `dir`, as text, for finding what the agent reported.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out += &all_text(&p);
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out += &t;
        }
    }
    out
}

/// `verity: avb`: the erofs disk carries its own AVB hashtree footer, the
/// agent sets dm-verity up from the footer's descriptor (the host passes
/// only the partition name), and the image mounts and reads.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn avb_footer_sets_up_verity_on_the_board() {
    let tmp = TestDir::new();
    let plan = avb_plan(tmp.path());
    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("verity: avb: the image carries its own AVB hashtree footer"),
        "{stderr}"
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_all_pass(&recs);
    let r = &recs[0];
    assert!(r.reads > 10, "{} reads", r.reads);
    assert_eq!(r.read_errors, 0);

    // The agent's mount stage says where its verity parameters came from.
    let text = all_text(&out);
    assert!(
        text.contains("(dm-verity over ")
            && text.contains("from its AVB footer: partition \\\"erofs\\\""),
        "no AVB mount detail in the run directory"
    );
    // run.json records the footed image's sha256, and the vbmeta in the
    // run directory is the one in that image.
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let media = &run_json["media"];
    let sha = media["avb_image_sha256"]
        .as_str()
        .expect("avb_image_sha256");
    assert_eq!(sha.len(), 64);
    let root = media["verity_root_hash"].as_str().unwrap();
    let vbmeta = hilt_avb::Vbmeta::parse(&std::fs::read(out.join("vbmeta.img")).unwrap()).unwrap();
    let d = vbmeta.hashtree("erofs").expect("the erofs descriptor");
    assert_eq!(hex::encode(&d.root_digest), root);
    assert!(std::fs::read_to_string(out.join("vbmeta.txt"))
        .unwrap()
        .contains("vbmeta.img"));
}

/// On an SD card the partition is rounded up to the card's alignment; the
/// footed image is made that size, so its footer still ends the partition
/// the agent reads it from. The same card carries an f2fs data partition
/// (`storage.data`, loaded as Debian's module) with its own reader, whose
/// reads are counted apart from erofs'.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn avb_footer_ends_an_sd_card_partition_beside_an_f2fs_data_partition() {
    let tmp = TestDir::new();
    let plan = avb_plan_on(tmp.path(), "sdcard");
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace(
            "  erofs_on: sdcard\n",
            "  erofs_on: sdcard\n  data: {fs: f2fs, size_mb: 64, files: 2, file_mb: 2}\n",
        )
        .replace(
            "  - readers-seq-1\n",
            "  - readers-seq-1\n  - data-readers-seq-1\n",
        );
    assert!(text.contains("data-readers-seq-1") && text.contains("fs: f2fs"));
    std::fs::write(&plan, text).unwrap();
    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_all_pass(&recs);
    let r = &recs[0];
    assert!(r.reads > 10 && r.read_errors == 0, "{r:?}");
    assert!(
        r.data_reads > 0 && r.data_bytes >= r.data_reads,
        "the data reader read nothing: {r:?}"
    );
    let text = all_text(&out);
    assert!(
        text.contains("(dm-verity over /dev/mmcblk0p1 from its AVB footer"),
        "no AVB mount detail for the card's partition in the run directory"
    );
    assert!(
        text.contains("f2fs on /dev/mmcblk0p2 at /mnt/data, 2 files of 2048 KiB (2 written"),
        "no data stage detail in the run directory"
    );
}

/// A flipped data block in the footed image: dm-verity, set up from the
/// footer, fails the reads that touch it with EIO.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn avb_footer_verity_fails_reads_of_a_corrupted_block_with_eio() {
    let tmp = TestDir::new();
    // A cache of its own for the footed image and what is built from it
    // (avb/, sdcard/, ...), so corrupting it cannot touch the shared one;
    // what comes before the footer (dataset, erofs image, kernel, initramfs)
    // is shared, as building it again took two minutes.
    let cache = tmp.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let shared = shared_cache();
    for d in [
        "debs",
        "extracted",
        "datasets",
        "erofs",
        "initramfs",
        "modules",
        "prebuilt",
    ] {
        std::fs::create_dir_all(shared.join(d)).unwrap();
        std::os::unix::fs::symlink(shared.join(d), cache.join(d)).unwrap();
    }
    let plan = avb_plan(tmp.path());
    let fetch = Command::new(env!("CARGO_BIN_EXE_hilt"))
        .arg("fetch")
        .arg(&plan)
        .env("HILT_CACHE", &cache)
        .output()
        .unwrap();
    assert!(
        fetch.status.success(),
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    let footed: Vec<PathBuf> = std::fs::read_dir(cache.join("avb"))
        .unwrap()
        .map(|e| e.unwrap().path().join("partition.img"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(footed.len(), 1, "{footed:?}");
    let f = hilt_images::avb::read_footer(&footed[0], "erofs").unwrap();
    // A block in the middle of the erofs data holds compressed file data,
    // so the mount succeeds and only the reads that touch it fail.
    let blocks = f.footer.original_image_size / 4096;
    hilt_images::verity::corrupt_block(&footed[0], blocks / 2, 4096).unwrap();

    let out = tmp.path().join("run");
    let o = run(&plan, &out, &[("HILT_CACHE", &cache)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert!(r.read_errors > 0, "no read failed: {r:?}");
    assert_eq!(r.last_read_errno, Some(5), "EIO expected");
    let console =
        String::from_utf8_lossy(&std::fs::read(out.join(&r.console_log)).unwrap()).into_owned();
    assert!(
        console.contains("device-mapper: verity") && console.contains("is corrupted"),
        "{console}"
    );
}
