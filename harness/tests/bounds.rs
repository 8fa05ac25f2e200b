//! Hostile inputs against the release binary, each under a memory and a
//! time limit: what one file can make `hilt check`, `hilt parse` and
//! `hilt report` cost (README, "Input bounds").
//!
//! The memory limit is RLIMIT_AS, set in the child before exec: an input
//! that makes hilt allocate past it aborts the process (no exit code), and
//! the test fails on that as on a timeout or a wrong exit code.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address space for one `hilt` process: the binary, its libraries and
/// stacks take about 30 MiB of it; the rest is what an input may cost.
const MEMORY: u64 = 256 << 20;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `hilt args...` in `cwd` with at most `MEMORY` of address space,
/// killing it after `limit`.
fn hilt_limited(cwd: &Path, args: &[&str], limit: Duration) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hilt"));
    cmd.args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the
    // parent.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEMORY,
                rlim_max: MEMORY,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t0 = Instant::now();
    let mut child = cmd.spawn().unwrap();
    // Pipes are drained on threads: a child blocked on a full pipe would
    // look like one that takes too long.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut s).ok();
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hilt {args:?} took more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        took: t0.elapsed(),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A tree with plans/, and boards/ and workloads/ copied from the
/// repository, so that any of its files can be replaced.
fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for sub in ["boards", "workloads"] {
        std::fs::create_dir(d.path().join(sub)).unwrap();
        for f in std::fs::read_dir(repo().join(sub)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, d.path().join(sub).join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir(d.path().join("plans")).unwrap();
    let smoke = std::fs::read_to_string(repo().join("plans/smoke.yaml")).unwrap();
    std::fs::write(d.path().join("plans/smoke.yaml"), smoke).unwrap();
    d
}

fn smoke() -> String {
    std::fs::read_to_string(repo().join("plans/smoke.yaml")).unwrap()
}

/// smoke.yaml with its description anchored to `size` bytes of text, and
/// a signature whose frames alias it `n` times (valid frame names: the
/// plan is otherwise fine, so nothing stops before the expansion).
fn alias_bomb(size: usize, n: usize) -> String {
    let plan = smoke();
    let from = "description: Short end-to-end run of both kernels on the emulated board";
    assert!(plan.contains(from));
    let mut plan = plan.replacen(from, &format!("description: &a {}", "x".repeat(size)), 1);
    plan.push_str(&format!(
        "signatures:\n  - name: s\n    frames: [{}]\n",
        vec!["*a"; n].join(", ")
    ));
    plan
}

#[track_caller]
fn assert_refused(o: &Outcome, what: &str) {
    assert_eq!(
        o.code,
        Some(2),
        "exit code (None: killed, e.g. out of memory): {}",
        o.stderr
    );
    assert!(
        o.stderr.contains(what),
        "{:?} does not say {what:?}",
        o.stderr
    );
    assert_eq!(o.stderr.lines().count(), 1, "{:?}", o.stderr);
}

#[test]
fn the_reviews_alias_bomb_is_refused_by_its_size() {
    // The finding: 1 MB aliased 10,000 times, 9.8 GB and 39 s before.
    let d = tree();
    let plan = alias_bomb(1 << 20, 10_000);
    assert!(plan.len() > 1_000_000);
    std::fs::write(d.path().join("plans/bomb.yaml"), plan).unwrap();
    let o = hilt_limited(
        d.path(),
        &["check", "plans/bomb.yaml"],
        Duration::from_secs(10),
    );
    assert_refused(
        &o,
        "plans/bomb.yaml:1:1: the file is larger than 256 KiB: expected a plan, board or workload file of at most 256 KiB",
    );
    assert!(o.took < Duration::from_secs(2), "{:?}", o.took);
}

#[test]
fn an_alias_bomb_under_the_size_limit_is_refused_at_the_alias() {
    // 64 KiB aliased 4,000 times: an 80 KiB file that expanded to 256 MB.
    let d = tree();
    let plan = alias_bomb(64 << 10, 4000);
    assert!(plan.len() < 100 << 10);
    std::fs::write(d.path().join("plans/bomb.yaml"), &plan).unwrap();
    let o = hilt_limited(
        d.path(),
        &["check", "plans/bomb.yaml"],
        Duration::from_secs(10),
    );
    let line = plan.lines().position(|l| l.contains("frames: [")).unwrap() + 1;
    // Each alias repeats 64 KiB + 8: the fourth crosses 256 KiB.
    let column = "    frames: [".len() + 1 + 3 * "*a, ".len();
    assert_refused(
        &o,
        &format!("plans/bomb.yaml:{line}:{column}: key `signatures[0].frames[3]`: with this alias, aliases repeat more than 256 KiB"),
    );
    assert!(o.took < Duration::from_secs(2), "{:?}", o.took);
}

#[test]
fn board_and_workload_files_are_bounded_by_the_same_loader() {
    let d = tree();
    let bomb = |file: &str, key: &str| {
        let text = std::fs::read_to_string(d.path().join(file)).unwrap();
        let mut text = text.replacen(
            &format!("\n{key}:"),
            &format!("\nx-anchor: &a {}\n{key}:", "y".repeat(64 << 10)),
            1,
        );
        text.push_str(&format!("x-bomb: [{}]\n", vec!["*a"; 4000].join(", ")));
        std::fs::write(d.path().join(file), text).unwrap();
    };
    bomb("boards/qemu-virt-a53.yaml", "arch");
    let o = hilt_limited(
        d.path(),
        &["check", "plans/smoke.yaml"],
        Duration::from_secs(10),
    );
    assert_refused(&o, "boards/qemu-virt-a53.yaml:");
    assert_refused(&o, "key `x-bomb[3]`: with this alias");

    let d = tree();
    let board = std::fs::read(repo().join("boards/qemu-virt-a53.yaml")).unwrap();
    std::fs::write(d.path().join("boards/qemu-virt-a53.yaml"), board).unwrap();
    let wl = "workloads/hog-80pct.yaml";
    let text = std::fs::read_to_string(d.path().join(wl)).unwrap();
    assert!(text.contains("\nhog:"), "{text}");
    let mut text = text.replacen(
        "\nhog:",
        &format!("\nx-anchor: &a {}\nhog:", "y".repeat(64 << 10)),
        1,
    );
    text.push_str(&format!("x-bomb: [{}]\n", vec!["*a"; 4000].join(", ")));
    std::fs::write(d.path().join(wl), text).unwrap();
    let o = hilt_limited(
        d.path(),
        &["check", "plans/smoke.yaml"],
        Duration::from_secs(10),
    );
    assert_refused(&o, "workloads/hog-80pct.yaml:");
    assert_refused(&o, "key `x-bomb[3]`: with this alias");
}

#[test]
fn deeply_nested_flow_collections_are_refused_at_once() {
    // The finding: 100,000 levels in 200 KB took 24 s.
    let d = tree();
    let mut plan = smoke();
    let line = plan.lines().count() + 1;
    plan.push_str(&format!(
        "faults: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    ));
    std::fs::write(d.path().join("plans/deep.yaml"), &plan).unwrap();
    let o = hilt_limited(
        d.path(),
        &["check", "plans/deep.yaml"],
        Duration::from_secs(10),
    );
    assert_refused(
        &o,
        "key `faults`: lists and mappings nest more than 32 deep here: expected at most 32 levels",
    );
    assert!(
        o.stderr.contains(&format!("plans/deep.yaml:{line}:")),
        "{}",
        o.stderr
    );
    assert!(o.took < Duration::from_secs(2), "{:?}", o.took);

    // Block nesting, one level a line, is caught at the level too deep.
    let d = tree();
    let mut plan = smoke();
    let first = plan.lines().count() + 1;
    plan.push_str("faults:\n");
    for i in 0..100 {
        plan.push_str(&format!("{}- ", " ".repeat(2 * i)));
        plan.push('\n');
    }
    std::fs::write(d.path().join("plans/deep.yaml"), &plan).unwrap();
    let o = hilt_limited(
        d.path(),
        &["check", "plans/deep.yaml"],
        Duration::from_secs(10),
    );
    assert_refused(
        &o,
        "key `faults`: lists and mappings nest more than 32 deep",
    );
    // The root mapping is a level, and the k-th `- ` line opens level k + 1.
    assert!(
        o.stderr
            .contains(&format!("plans/deep.yaml:{}:{}:", first + 32, 2 * 31 + 1)),
        "{}",
        o.stderr
    );
}

#[test]
fn a_plan_that_never_ends_is_refused_after_its_limit() {
    let d = tree();
    let o = hilt_limited(d.path(), &["check", "/dev/zero"], Duration::from_secs(10));
    assert_refused(&o, "/dev/zero:1:1: the file is larger than 256 KiB");
}

#[test]
fn hilt_parse_refuses_a_device_and_streams_a_huge_file() {
    let d = tempfile::tempdir().unwrap();
    let o = hilt_limited(d.path(), &["parse", "/dev/zero"], Duration::from_secs(10));
    assert_refused(
        &o,
        "/dev/zero: not a saved log: expected a regular file or a pipe",
    );

    // 2 GiB of NULs without a newline (sparse: no disk used): read whole
    // before, which the memory limit stops.
    let big = d.path().join("nul.log");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let o = hilt_limited(
        d.path(),
        &["parse", big.to_str().unwrap()],
        Duration::from_secs(120),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(o.stdout, "no kernel reports found\n");
}

/// Reports that end in another order than they start, interleaved by
/// printk caller id, with a line far longer than any the parser reads.
fn tangled_log() -> Vec<u8> {
    let mut log = Vec::new();
    let mut line = |s: &str| {
        log.extend_from_slice(s.as_bytes());
        log.push(b'\n');
    };
    for round in 0..3 {
        let t = 100 + round * 10;
        line(&format!(
            "[{t}.000000][  T101] INFO: task kworker/0:1:101 blocked for more than 10 seconds."
        ));
        line(&format!("[{t}.000001][  T202] WARNING: CPU: 1 PID: 202 at fs/erofs/zdata.c:{round}00 z_erofs_decompress_queue+0x10/0x20"));
        line(&format!("[{t}.000002][  T101] Call trace:"));
        line(&format!("[{t}.000003][  T202] Call trace:"));
        line(&format!("[{t}.000004][  T101]  __switch_to+0xf0/0x170"));
        line(&format!(
            "[{t}.000005][  T202]  z_erofs_decompress_queue+0x10/0x20"
        ));
        line(&format!(
            "[{t}.000006][  T202] ---[ end trace 0000000000000000 ]---"
        ));
        line(&format!("[{t}.000007][  T101]  mmc_blk_rw_wait+0x8c/0x140"));
        line(&format!("[{t}.000008][  T303] {}", "x".repeat(200_000)));
        line(&format!("[{t}.000009][  T101]  kthread+0x10/0x20"));
    }
    log
}

#[test]
fn hilt_parse_streams_the_same_events_as_the_whole_log_parser() {
    let d = tempfile::tempdir().unwrap();
    for (name, log) in [
        ("tangled.log", tangled_log()),
        ("no-final-newline.log", {
            let mut l = tangled_log();
            l.pop();
            l
        }),
        ("empty.log", Vec::new()),
    ] {
        let p = d.path().join(name);
        std::fs::write(&p, &log).unwrap();
        let want: String = hilt_kernlog::parse(&log)
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        if name == "tangled.log" {
            assert!(want.lines().count() >= 6, "{want}");
        }
        let o = hilt_limited(
            d.path(),
            &["parse", "--json", p.to_str().unwrap()],
            Duration::from_secs(30),
        );
        assert_eq!(o.code, Some(0), "{}", o.stderr);
        assert_eq!(o.stdout, want, "{name}");
    }
}

/// A synthetic run whose every failure carries no excerpt (so JUnit shows
/// the console's tail) and names `console` as its console log.
fn run_with_console(dir: &Path, console: &str) {
    use hilt_reports::synth::{write_run, SynthRun, SynthVariant};
    let spec = SynthRun::new(
        "p",
        3,
        vec![
            SynthVariant::new("a", 2).deadlocks(2),
            SynthVariant::new("b", 2),
        ],
    );
    write_run(dir, &spec).unwrap();
    let results = dir.join("results.jsonl");
    let text = std::fs::read_to_string(&results).unwrap();
    let mut out = String::new();
    for l in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["console_log"] = console.into();
        if let Some(f) = v["failure"].as_object_mut() {
            f.insert("excerpt".into(), "".into());
        }
        out.push_str(&serde_json::to_string(&v).unwrap());
        out.push('\n');
    }
    std::fs::write(results, out).unwrap();
}

#[test]
fn hilt_report_reads_no_console_log_outside_the_run_directory() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("secret.txt"), "SECRET-HOST-FILE\n").unwrap();
    let run = d.path().join("runs/r");
    std::fs::create_dir_all(&run).unwrap();
    let mkfifo = |p: &Path| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    };
    for (console, says) in [
        (
            "../../secret.txt",
            "console log \"../../secret.txt\" is outside the run directory: not read",
        ),
        (
            "/dev/zero",
            "console log \"/dev/zero\" is outside the run directory: not read",
        ),
        (
            "zero.log",
            "console log \"zero.log\" is outside the run directory: not read",
        ),
        (
            "fifo.log",
            "console log \"fifo.log\" is not a regular file: not read",
        ),
    ] {
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run).unwrap();
        std::os::unix::fs::symlink("/dev/zero", run.join("zero.log")).unwrap();
        mkfifo(&run.join("fifo.log"));
        run_with_console(&run, console);
        let o = hilt_limited(
            d.path(),
            &["report", run.to_str().unwrap()],
            Duration::from_secs(120),
        );
        assert_eq!(o.code, Some(0), "{console}: {}", o.stderr);
        let junit = std::fs::read_to_string(run.join("report/junit.xml")).unwrap();
        let html = std::fs::read_to_string(run.join("report/index.html")).unwrap();
        assert!(
            !junit.contains("SECRET") && !html.contains("SECRET"),
            "{console}"
        );
        let escaped = says.replace('"', "&quot;");
        assert!(
            junit.contains(&escaped) || junit.contains(says),
            "{console}: {junit}"
        );
        assert!(html.contains(&escaped) || html.contains(says), "{console}");
    }

    // A log inside the run directory is still read, and only its tail.
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(run.join("iterations")).unwrap();
    let mut log: String = (0..100_000).map(|i| format!("early line {i}\n")).collect();
    log.push_str("the last line of the console\n");
    std::fs::write(run.join("iterations/console.log"), log).unwrap();
    run_with_console(&run, "iterations/console.log");
    let o = hilt_limited(
        d.path(),
        &["report", run.to_str().unwrap()],
        Duration::from_secs(120),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let junit = std::fs::read_to_string(run.join("report/junit.xml")).unwrap();
    assert!(junit.contains("the last line of the console"));
    assert!(!junit.contains("early line 1\n") && !junit.contains("early line 50000\n"));
}
