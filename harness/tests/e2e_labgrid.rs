//! A board in a labgrid lab, end to end, on one machine: the real
//! labgrid-coordinator and labgrid-exporter on 127.0.0.1 (tests/common/lab.rs).
//! The emulated bench board's UART is a pseudo-terminal exported as a
//! `RawSerialPort`, so the console hilt gets is the exporter's own ser2net
//! speaking RFC 2217; its power switch is a small HTTP relay in the test,
//! exported as a `NetworkPowerPort` of the `simplerest` model. The board file
//! says only where the place is. labgrid's own `labgrid-client show` is asked
//! what it sees at each step. Slow, so `#[ignore]`d; scripts/test runs it.

mod common;
#[path = "common/lab.rs"]
mod lab;
#[path = "common/os_board.rs"]
mod os_board;
use common::{control_suspected_by_watcher, free_port, read_until, records, says, shared_cache};
use lab::{venv, Lab, OTHER, PLACE};

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hilt_reports::Outcome;

#[test]
#[ignore = "starts a labgrid lab and boots the emulated board: run by scripts/test"]
fn a_lab_board_runs_a_plan_through_its_place_and_gives_it_back() {
    let lab = Lab::start();
    let board = lab.board_file();
    assert_eq!(lab.holder(), None);

    // hilt doctor acquires the place, reaches the console through the
    // exporter's ser2net and asks the relay for the power state.
    let o = lab.doctor(&board);
    let doc = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", says(&o));
    assert!(doc.contains("ok    console ser2net 127.0.0.1:"), "{doc}");
    assert!(doc.contains("RFC 2217"), "{doc}");
    assert!(doc.contains("answers: off"), "{doc}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("acquired labgrid place {PLACE}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("released labgrid place {PLACE}")),
        "{stderr}"
    );
    assert_eq!(lab.holder(), None, "doctor gave the place back");

    // The smoke plan and a positive control, through the place.
    let plan = lab.plan("lab-bench", "lab", 1, 8, "controls:\n  - swap_freeze\n");
    let (mut child, out) = lab.spawn_run(&plan, "run");
    // While it runs, labgrid agrees that hilt holds the place, with
    // hilt's holder record on it.
    let me = lab::me();
    let t0 = Instant::now();
    let mut holder = None;
    while holder.is_none() {
        if child.try_wait().unwrap().is_some() {
            panic!(
                "hilt ended before acquiring: {}",
                says(&child.wait_with_output().unwrap())
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "hilt never acquired the place"
        );
        std::thread::sleep(Duration::from_millis(500));
        holder = lab.holder();
    }
    if holder.as_deref() != Some(me.as_str()) || lab.holder() != holder {
        let _ = child.kill();
        panic!(
            "holder {holder:?}, then {:?}: {}",
            lab.holder(),
            says(&child.wait_with_output().unwrap())
        );
    }
    let show = lab.ok(None, &["-p", PLACE, "show"]);
    assert!(
        show.contains(&format!(
            "hilt_holder=host:{}",
            me.split('/').next().unwrap()
        )),
        "{show}"
    );
    assert!(show.contains(&format!("pid:{}", child.id())), "{show}");
    // `hilt boards` lists the place beside the board file, with its holder.
    let o = lab.hilt().arg("boards").output().unwrap();
    let boards = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", says(&o));
    assert!(
        boards.contains(&format!("labgrid places at {}:", lab.addr)),
        "{boards}"
    );
    let line = boards
        .lines()
        .skip_while(|l| !l.starts_with("labgrid places at"))
        .find(|l| l.starts_with(PLACE))
        .unwrap_or_else(|| panic!("{boards}"));
    assert!(
        line.contains("board lab-bench")
            && line.contains(&format!("held by {me} (hilt pid {}", child.id())),
        "{line}"
    );

    // A second hilt meanwhile waits, then gives up naming the holder; it
    // never takes a live holder's place. On this host the board's lease
    // stops it first; with lease files of its own, as on another host,
    // the place does.
    let o = lab.doctor_waiting(&board, 2);
    assert!(!o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "board lab-bench is leased to {}@",
            me.split('/').nth(1).unwrap()
        )) && e.contains(&format!("pid {}, plan smoke-bench", child.id())),
        "{e}"
    );
    let o = lab
        .hilt()
        .env("HILT_LEASES", lab.tmp.path().join("other-host-leases"))
        .args(["doctor", board.to_str().unwrap(), "--lease-wait", "2"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!("acquired by {me}"))
            && e.contains(&format!("hilt pid {}", child.id()))
            && e.contains("waited 2 s"),
        "{e}"
    );
    assert_eq!(
        lab.holder().as_deref(),
        Some(me.as_str()),
        "the run kept its place"
    );

    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", says(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let recs = records(&out);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let run = recs.iter().find(|r| r.control.is_none()).unwrap();
    assert_eq!(run.outcome, Outcome::Pass, "{}", run.detail);
    assert_eq!(run.board, "lab-bench");
    assert!(run.boot_ms.is_some() && run.reads > 0, "{run:?}");
    assert!(
        stdout.contains("control swap_freeze on unpatched: detected"),
        "{stdout}"
    );
    control_suspected_by_watcher(&recs, "the UART through ser2net");
    // The board's power went through the relay, and its console through
    // labgrid's ser2net: U-Boot and Linux on it, in the run's console log.
    let reqs = lab.relay().requests();
    assert!(
        reqs.iter().filter(|r| *r == "/relay/0/1").count() >= 2,
        "{reqs:?}"
    );
    assert!(reqs.iter().any(|r| r == "/relay/0/0"), "{reqs:?}");
    let console = std::fs::read_to_string(out.join("iterations/unpatched-0/console.log"))
        .or_else(|_| {
            std::fs::read_dir(out.join("iterations"))
                .unwrap()
                .flatten()
                .find(|e| !e.file_name().to_string_lossy().contains("control"))
                .map(|e| std::fs::read_to_string(e.path().join("console.log")).unwrap())
                .ok_or(())
        })
        .unwrap();
    for seen in ["U-Boot", "Starting kernel", "hilt-init: starting agent"] {
        assert!(console.contains(seen), "{seen:?} not in\n{console}");
    }

    // Released at the end: labgrid says nobody holds it, and the holder
    // record went with it.
    assert_eq!(lab.holder(), None);
    lab.assert_no_record();
}

/// One lab for the ways a place is waited for, taken over and found by
/// labgrid's own rules, in phases: a coordinator and exporter start once.
#[test]
#[ignore = "starts a labgrid lab: run by scripts/test"]
fn a_live_holder_keeps_its_place_a_dead_one_loses_it_and_tags_reserve_one() {
    let lab = Lab::start();
    let board = lab.board_file();
    // A doctor that is to give up waits 2 s, not the default 10: what is
    // checked is that it waited and named the holder.
    let giving_up = || lab.doctor_waiting(&board, 2);
    let doctor = || lab.doctor(&board);
    let (host, boot) = (lab::hostname(), lab::boot_id());
    let far = 4_000_000_000u64;

    // Another runner holds the place, without a hilt record: never taken.
    lab.ok(Some(OTHER), &["-p", PLACE, "acquire"]);
    let holder = lab.holder().unwrap();
    assert!(holder.ends_with(&format!("/{OTHER}")), "{holder}");
    let o = giving_up();
    assert!(!o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!("acquired by {holder}")) && e.contains("waited 2 s"),
        "{e}"
    );
    assert_eq!(lab.holder().as_deref(), Some(holder.as_str()));

    // A hilt record of a live process (this test) on this boot: not taken.
    let live = format!(
        "hilt_holder=host:{},pid:{},boot:{boot},expires:{far}",
        host,
        std::process::id()
    );
    lab.ok(None, &["-p", PLACE, "set-tags", &live]);
    let o = giving_up();
    assert!(!o.status.success(), "{}", says(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("hilt pid {}", std::process::id()))
    );
    assert_eq!(lab.holder().as_deref(), Some(holder.as_str()));

    // The record of a hilt that was killed (its pid is gone): taken over,
    // with a release conditional on that holder, then given back.
    let mut killed = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = killed.id();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let dead = format!(
        "hilt_holder=host:{},pid:{pid},boot:{boot},expires:{far}",
        host.trim()
    );
    lab.ok(None, &["-p", PLACE, "set-tags", &dead]);
    let o = doctor();
    assert!(o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "taking it over from {holder} (its pid {pid} is dead)"
        )),
        "{e}"
    );
    assert_eq!(lab.holder(), None, "given back after the takeover");

    // An expired record of a holder on another host: taken over too.
    lab.ok(Some(OTHER), &["-p", PLACE, "acquire"]);
    lab.ok(
        None,
        &[
            "-p",
            PLACE,
            "set-tags",
            "hilt_holder=host:elsewhere,pid:1,boot:0,expires:1000",
        ],
    );
    let o = doctor();
    assert!(o.status.success(), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("its record expired"));
    assert_eq!(lab.holder(), None);

    // A second hilt waits for a place another runner holds, and gets it
    // once that runner releases it within the wait.
    lab.ok(Some(OTHER), &["-p", PLACE, "acquire"]);
    let mut waiting = lab
        .hilt()
        .args(["doctor", board.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = waiting.stderr.take().unwrap();
    let mut seen = String::new();
    read_until(&mut err, "waiting up to", &mut seen);
    assert_eq!(lab.holder().as_deref(), Some(holder.as_str()));
    lab.ok(Some(OTHER), &["-p", PLACE, "release"]);
    err.read_to_string(&mut seen).unwrap();
    let status = waiting.wait().unwrap();
    assert!(status.success(), "{seen}");
    assert!(
        seen.contains(&format!("acquired labgrid place {PLACE}"))
            && seen.contains(&format!("released labgrid place {PLACE}")),
        "{seen}"
    );
    assert_eq!(lab.holder(), None);

    // A board asking for tags rather than a place gets one through a
    // reservation.
    let text = std::fs::read_to_string(&board).unwrap();
    let place_line = format!("  place: {PLACE}\n");
    assert!(text.contains(&place_line));
    std::fs::write(
        &board,
        text.replace(&place_line, "  tags:\n    rig: bench_a\n"),
    )
    .unwrap();
    let reservations = || lab.ok(None, &["reservations"]);

    // No place has the tag yet: the reservation waits, then is cancelled.
    let o = lab.doctor_waiting(&board, 2);
    assert!(!o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no place with tags rig=bench_a was allocated within 2 s"),
        "{e}"
    );
    assert!(!reservations().contains("owner"), "{}", reservations());

    // Tagged, the place is allocated, acquired, checked, and given back
    // with the reservation cancelled.
    lab.ok(None, &["-p", PLACE, "set-tags", "rig=bench_a"]);
    let o = lab.doctor(&board);
    assert!(o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!("place {PLACE} allocated for tags rig=bench_a")),
        "{e}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("RFC 2217"));
    assert_eq!(lab.holder(), None);
    assert!(!reservations().contains("owner"), "{}", reservations());
}

/// One lab for the two ways a run stops at its first boot, in phases: a
/// coordinator and exporter start once.
#[test]
#[ignore = "starts a labgrid lab and boots the emulated board: run by scripts/test"]
fn an_interrupted_run_gives_the_place_back_and_a_place_taken_away_stops_the_board() {
    let lab = Lab::start();
    lab.board_file();
    let plan = lab.plan("lab-bench", "long", 1, 120, "");

    // Interrupted once it has powered the board on: the place goes back.
    let (child, _) = lab.spawn_run(&plan, "interrupted");
    lab.wait_powered_on(0);
    assert!(lab.holder().is_some());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", says(&o));
    assert_eq!(lab.holder(), None, "{}", says(&o));
    lab.assert_no_record();

    // Taken away mid-run: once the board is powered on for its iteration,
    // another runner kicks hilt out and takes the place.
    let before = lab.power_ons();
    let (child, out) = lab.spawn_run(&plan, "kicked");
    lab.wait_powered_on(before);
    std::thread::sleep(Duration::from_secs(5));
    lab.ok(Some(OTHER), &["-p", PLACE, "release", "--kick"]);
    lab.ok(Some(OTHER), &["-p", PLACE, "acquire"]);
    let kicked = Instant::now();
    let o = child.wait_with_output().unwrap();
    let took = kicked.elapsed();
    // The iteration had two minutes of workload left.
    assert!(
        took < Duration::from_secs(45),
        "hilt went on for {took:?}: {}",
        says(&o)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_ne!(recs[0].outcome, Outcome::Pass, "{:?}", recs[0]);
    assert!(
        recs[0]
            .detail
            .contains(&format!("labgrid place {PLACE} was taken by"))
            || recs[0].detail.contains("released by someone else"),
        "{}",
        recs[0].detail
    );
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(events.contains("\"kind\":\"lease_lost\""), "{events}");
    // hilt never releases a place that is no longer its own.
    let holder = lab.holder().unwrap();
    assert!(holder.ends_with(&format!("/{OTHER}")), "{holder}");
}

#[test]
#[ignore = "starts a labgrid lab and boots the emulated board: run by scripts/test"]
fn a_power_model_hilt_does_not_speak_goes_through_labgrid_client_as_hilt() {
    // shelly_gen1: plain HTTP, so the test's relay can be the switch, but
    // a model only labgrid's own driver speaks.
    let lab =
        Lab::start_with("model: shelly_gen1\n    host: 'http://127.0.0.1:{relay}'\n    index: '1'");
    lab.board_file();
    let plan = lab.plan("lab-bench", "shelly", 1, 8, "");
    let client = venv().join("bin/labgrid-client");
    let (o, out) = lab.run(&plan, "run", &[("LABGRID_CLIENT", client.as_os_str())]);
    assert!(o.status.success(), "{}", says(&o));
    let recs = records(&out);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].outcome, Outcome::Pass, "{}", recs[0].detail);
    assert!(recs[0].boot_ms.is_some(), "{:?}", recs[0]);
    // labgrid-client drove the switch, speaking as hilt: it refuses a
    // place acquired by another identity, so a request proves it.
    let reqs = lab.relay().requests();
    assert!(reqs.iter().any(|r| r == "/relay/1 turn=on"), "{reqs:?}");
    assert!(reqs.iter().any(|r| r == "/relay/1 turn=off"), "{reqs:?}");
    assert!(!reqs.iter().any(|r| r.starts_with("/relay/0")), "{reqs:?}");
    assert_eq!(lab.holder(), None, "the place was given back");
}

/// Waits (up to `limit`) until the run in `out` has `n` records.
fn wait_records(out: &std::path::Path, n: usize, limit: Duration) {
    let t0 = Instant::now();
    while records(out).len() < n {
        assert!(
            t0.elapsed() < limit,
            "{} records after {limit:?}",
            records(out).len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The run's board lease, in the lab home's lease directory.
fn lease_file(lab: &Lab) -> std::path::PathBuf {
    lab.tmp.path().join("leases/lab-bench.lease")
}

/// Two ways a run ends early, each giving the place and the board's lease
/// back, in phases on one lab (a coordinator and exporter start once).
///
/// Phase 1: A board loop that panics (a bug in hilt, injected at a failpoint right
/// after the first iteration is recorded) takes only that board out: the
/// record stays, the slot it would have run is recorded as not run with
/// the reason, the run ends with its report and an infrastructure exit,
/// and the place and the lease are given back.
///
/// Phase 2: A second Ctrl-C while the run is stopping exits at once, before the
/// run's own release: the place and the board's lease are given back all
/// the same, and the results so far stay on disk.
#[test]
#[ignore = "starts a labgrid lab and boots the emulated board: run by scripts/test"]
fn a_panicking_board_loop_or_a_second_interrupt_still_gives_the_place_and_lease_back() {
    let lab = Lab::start();
    lab.board_file();
    let plan = lab.plan("lab-bench", "twice", 2, 8, "");
    let (o, out) = lab.run(
        &plan,
        "panicked",
        &[("HILT_FAILPOINT", "board-loop-recorded".as_ref())],
    );
    assert_eq!(o.status.code(), Some(3), "{}", says(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "board lab-bench stopped: hilt's loop for it panicked (failpoint board-loop-recorded)"
        ),
        "{err}"
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0].outcome, Outcome::Pass, "{}", recs[0].detail);
    assert_eq!(recs[1].outcome, Outcome::NotRun, "{:?}", recs[1]);
    assert!(recs[1].detail.contains("panicked"), "{}", recs[1].detail);
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(events.contains("\"kind\":\"hilt_panic\""), "{events}");
    assert!(out.join("report/index.html").exists());
    assert_eq!(lab.holder(), None, "{}", says(&o));
    lab.assert_no_record();
    assert!(!lease_file(&lab).exists());

    // Phase 2: a second Ctrl-C while the run is stopping.
    let (mut child, out) = lab.spawn_run(&plan, "interrupted");
    wait_records(&out, 1, Duration::from_secs(400));
    assert!(lease_file(&lab).exists());
    assert_eq!(lab.holder().as_deref(), Some(lab::me().as_str()));

    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut err = child.stderr.take().unwrap();
    let mut seen = String::new();
    read_until(&mut err, "interrupt again to abort", &mut seen);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    err.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains("interrupted again: releasing the boards still held and exiting"),
        "{seen}"
    );
    // It exited before recording the iteration it stopped, which the run
    // does before its own release: the place and lease went back on the
    // second interrupt's path.
    let recs = records(&out);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].outcome, Outcome::Pass, "{}", recs[0].detail);
    assert_eq!(lab.holder(), None, "{seen}");
    lab.assert_no_record();
    assert!(!lease_file(&lab).exists(), "{seen}");
    assert!(out.join("run.json").exists());
}

/// A board whose SSH comes from its place: the exporter publishes the
/// emulated own-OS board's sshd as a `NetworkService` (address, port,
/// user), and the board file has no `ssh:` of its own, only the key and
/// known_hosts labgrid's resource lacks. Its console and power are its
/// own (a telnet port and scripts/os-board), as a lab's board may keep
/// them. The smoke plan runs with the agent over that SSH.
#[test]
#[ignore = "starts a labgrid lab and boots the emulated own-OS board: run by scripts/test"]
fn ssh_from_a_places_network_service_runs_the_plan() {
    let mut lab = Lab::coordinator();
    let state = lab.tmp.path().join("board");
    let (console, ssh) = (free_port(), free_port());
    os_board::build(
        &shared_cache(),
        &["linux-image-6.1.0-44-arm64=6.1.164-1"],
        &state,
        ssh,
        &os_board::LINUX,
    );
    lab.export(
        "dut",
        &format!(
            "dut:\n  NetworkService:\n    address: 127.0.0.1\n    port: {ssh}\n    username: root\n"
        ),
        &["exp1/dut/NetworkService"],
    );
    let text = std::fs::read_to_string(common::repo().join("boards/ssh-emulated.yaml")).unwrap();
    let a = text
        .find("\nssh:\n")
        .expect("ssh-emulated.yaml has an ssh: section")
        + 1;
    let b = a + text[a..].find("\nflash:").unwrap() + 1;
    let text = format!("{}{}", &text[..a], &text[b..])
        .replace("name: ssh-emulated", "name: os-lab")
        .replace("/tmp/hilt-ssh-emulated", state.to_str().unwrap())
        .replace("5570", &console.to_string())
        .replace("5522", &ssh.to_string())
        + &lab.labgrid_section()
        + &format!(
            "  ssh:\n    key: {0}/id_ed25519\n    known_hosts: {0}/known_hosts\n",
            state.display()
        );
    assert!(!text.contains("\nssh:"), "{text}");
    let board = lab.write_board("os-lab", &text);

    // doctor takes the address, port and user from the place: the board
    // is off, so its sshd does not answer there yet.
    let o = lab.doctor(&board);
    let doc = String::from_utf8_lossy(&o.stdout);
    assert!(
        doc.contains(&format!("FAIL  ssh root@127.0.0.1:{ssh}")),
        "{}",
        says(&o)
    );
    assert_eq!(lab.holder(), None);

    let plan = lab.plan("os-lab", "os", 1, 8, "");
    let (child, out) = lab.spawn_run(&plan, "run");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", says(&o));
    let recs = records(&out);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].outcome, Outcome::Pass, "{}", recs[0].detail);
    assert!(
        recs[0].boot_ms.is_some() && recs[0].reads > 0,
        "{:?}",
        recs[0]
    );
    assert_eq!(lab.holder(), None, "the place was given back");
    let _ = Command::new(common::repo().join("scripts/os-board"))
        .arg("off")
        .arg(&state)
        .status();
}
