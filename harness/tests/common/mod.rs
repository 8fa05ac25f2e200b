//! What the emulated-board tests share: where the checkout is, and the
//! records a run wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use hilt_reports::{IterationRecord, Outcome};

/// A test's scratch directory (plans, board state, run directory). Removed
/// when the test passes; kept, and its path printed, when the test fails or
/// HILT_KEEP_TEST_DIRS is set, so a failed nightly run leaves its consoles,
/// events and records behind for a post-mortem.
#[allow(dead_code)] // tests/leases.rs keeps its own directories
pub struct TestDir(Option<tempfile::TempDir>);

#[allow(dead_code)]
impl TestDir {
    pub fn new() -> Self {
        Self(Some(
            tempfile::Builder::new()
                .prefix("hilt-test-")
                .tempdir()
                .unwrap(),
        ))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let keep = std::thread::panicking() || std::env::var_os("HILT_KEEP_TEST_DIRS").is_some();
        if let (true, Some(d)) = (keep, self.0.take()) {
            eprintln!("test directory kept: {}", d.keep().display());
        }
    }
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `results.jsonl` of a run directory; empty while the run has none yet.
#[allow(dead_code)]
pub fn records(dir: &Path) -> Vec<IterationRecord> {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every record passed; a failure names the iteration and why.
#[allow(dead_code)]
pub fn assert_all_pass(recs: &[IterationRecord]) {
    for r in recs {
        assert_eq!(
            r.outcome,
            Outcome::Pass,
            "{}#{}: {}",
            r.variant,
            r.iteration,
            r.detail
        );
    }
}

/// `hilt run` as a test runs it: quiet, its own history database (never
/// the user's), and the artifact cache scripts/setup filled, so a plan in a
/// temporary tree does not download and build its kernels again.
#[allow(dead_code)]
pub fn hilt_run(plan: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hilt"));
    c.arg("run")
        .arg(plan)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .current_dir(repo());
    c.env("HILT_HISTORY", out.with_file_name("history.sqlite"));
    c.env("HILT_CACHE", shared_cache());
    c
}

/// The standard output of a `hilt` run that must have succeeded; both
/// streams are shown when it did not.
#[allow(dead_code)]
pub fn succeeded(o: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "exit {:?}\n{stdout}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

#[allow(dead_code)]
pub fn shared_cache() -> PathBuf {
    std::env::var_os("HILT_CACHE")
        .map(PathBuf::from)
        .unwrap_or(repo().join(".cache"))
}

/// The positive control's record, which must be a kernel-reported hang
/// that never recovered: a deadlock, with swapoff among its waiters.
#[allow(dead_code)]
pub fn control_hang(recs: &[IterationRecord]) -> &IterationRecord {
    let c = recs
        .iter()
        .find(|r| r.control.as_deref() == Some("swap_freeze"))
        .expect("the swap_freeze control ran");
    assert_eq!(c.outcome, Outcome::Deadlock, "{}", c.detail);
    let w = c.hang.as_ref().expect("the deadlock window's record");
    assert!(w.window_ms >= 1_000, "the window ran: {w:?}");
    assert_eq!(w.resumed_after_ms, None, "{w:?}");
    assert!(
        w.waiters.iter().any(|x| x.task.starts_with("hilt-swapoff")),
        "swapoff is named as blocked: {w:?}"
    );
    assert!(c.detail.starts_with("deadlock: "), "{}", c.detail);
    assert!(
        c.kernel_events
            .iter()
            .any(|t| t.starts_with("INFO: task hung in")),
        "{:?}",
        c.kernel_events
    );
    c
}

/// The positive control's hang, which the agent's watcher must also have
/// suspected: its reports reached the host `over` the board's channel.
#[allow(dead_code)]
pub fn control_suspected_by_watcher<'a>(
    recs: &'a [IterationRecord],
    over: &str,
) -> &'a IterationRecord {
    let c = control_hang(recs);
    let t = c.failure.as_ref().unwrap().timing.expect("detection times");
    assert!(
        t.suspected_ms.is_some(),
        "the agent's watcher, heard over {over}, suspected the task: {:?}",
        c.failure
    );
    c
}

/// The lines of a run directory's JSON-lines file (flash.jsonl, deploy.jsonl).
#[allow(dead_code)]
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A TCP port nothing listens on now.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's real adb server on `port`, with a home of its own under
/// `dir` (its keys, never the user's); listening when this returns.
#[allow(dead_code)]
pub fn adb_server(dir: &Path, port: u16) -> std::process::Child {
    let home = dir.join("adb-home");
    std::fs::create_dir_all(&home).unwrap();
    let child = Command::new("adb")
        .args(["-P", &port.to_string(), "nodaemon", "server"])
        .env("HOME", &home)
        .env("ANDROID_USER_HOME", home.join(".android"))
        .env_remove("ANDROID_ADB_SERVER_PORT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("adb (Debian package adb; scripts/setup installs it)");
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed().as_secs() < 20, "the adb server did not listen");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child
}

/// Both streams and the status of a command that failed, for a message.
#[allow(dead_code)]
pub fn says(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// plans/smoke-bench.yaml on `board`, written as `dir/plans/<name>.yaml`
/// with each of `edits` made once and `extra` appended.
#[allow(dead_code)]
pub fn bench_plan(
    dir: &Path,
    board: &str,
    name: &str,
    edits: &[(&str, &str)],
    extra: &str,
) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("plans/smoke-bench.yaml"))
        .unwrap()
        .replace("board: bench-emulated", &format!("board: {board}"));
    for (from, to) in edits {
        assert!(text.contains(from), "smoke-bench.yaml lacks {from:?}");
        text = text.replacen(from, to, 1);
    }
    let plan = dir.join(format!("plans/{name}.yaml"));
    std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
    std::fs::write(&plan, text + extra).unwrap();
    plan
}

/// `hilt run` of a plan in the test home `dir`, its leases kept there
/// too; the results go to `dir/<name>`.
#[allow(dead_code)]
pub fn run_in(dir: &Path, plan: &Path, name: &str) -> (PathBuf, std::process::Output) {
    let out = dir.join(name);
    // The runs of one test are different plans under one name: the history
    // check would compare their read latencies, which move with the host's
    // load (two boards at once), and fail a run for it.
    let o = hilt_run(plan, &out)
        .arg("--no-history")
        .env("HILT_LEASES", dir.join("leases"))
        .output()
        .unwrap();
    (out, o)
}

/// The two-kernel plan's iterations (not its controls): one of each
/// variant, each passing, reading without errors, on its own kernel
/// (`releases`: unpatched's, then patched's).
#[allow(dead_code)]
pub fn each_variant_passed_on_its_kernel(recs: &[IterationRecord], releases: &[String]) {
    let runs: Vec<_> = recs.iter().filter(|r| r.control.is_none()).collect();
    assert_eq!(runs.len(), 2, "{recs:?}");
    for r in &runs {
        assert_eq!(r.outcome, Outcome::Pass, "{}: {}", r.variant, r.detail);
        let want = if r.variant == "unpatched" { 0 } else { 1 };
        assert_eq!(r.kernel_release.as_ref(), Some(&releases[want]));
        assert!(r.reads > 0 && r.read_errors == 0, "{r:?}");
    }
}

/// Reads `from` (a hilt's piped stderr) into `seen` until `want` appears;
/// fails if it ends first or takes over a minute.
#[allow(dead_code)]
pub fn read_until(from: &mut impl std::io::Read, want: &str, seen: &mut String) {
    let mut buf = [0u8; 4096];
    let t0 = std::time::Instant::now();
    while !seen.contains(want) {
        let n = from.read(&mut buf).unwrap();
        assert!(n > 0, "ended before {want:?}:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        assert!(
            t0.elapsed().as_secs() < 60,
            "no {want:?} in a minute:\n{seen}"
        );
    }
}
