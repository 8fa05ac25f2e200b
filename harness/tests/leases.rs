//! Board leases between real hilt processes: a second run on a held board
//! fails naming the holder, `hilt boards` shows who holds what, and a run
//! killed with -9 holds nothing afterwards.
//!
//! The holder is a real `hilt run` of the smoke plan, killed while it
//! prepares its artifacts: it holds its board from before that, so no
//! emulated board needs to boot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn hilt(leases: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hilt"));
    c.current_dir(repo())
        .env("HILT_LEASES", leases)
        .env("HILT_HISTORY", leases.join("history.sqlite"));
    c
}

fn start_holder(leases: &Path, out: &Path) -> Child {
    let child = hilt(leases)
        .args([
            "run",
            "plans/smoke.yaml",
            "--quiet",
            "--no-history",
            "--out",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lease = leases.join("qemu-virt-a53.lease");
    let t0 = Instant::now();
    while !lease.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no lease taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn boards(leases: &Path) -> String {
    let o = hilt(leases).arg("boards").output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn line_of<'a>(text: &'a str, board: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{board} ")))
        .unwrap_or_else(|| panic!("no line for {board} in\n{text}"))
}

#[test]
fn a_held_board_refuses_a_second_run_until_its_holder_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = tmp.path().join("leases");
    let mut holder = start_holder(&leases, &tmp.path().join("run1"));
    let pid = holder.id();

    let listed = boards(&leases);
    let line = line_of(&listed, "qemu-virt-a53");
    assert!(
        line.contains("held by ") && line.contains(&format!("pid {pid}")),
        "{line}"
    );
    assert!(line.contains("plan smoke"), "{line}");

    let t0 = Instant::now();
    let second = hilt(&leases)
        .args(["run", "plans/smoke.yaml", "--quiet", "--no-history"])
        .args(["--lease-wait", "1", "--out"])
        .arg(tmp.path().join("run2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{err}");
    assert!(
        err.contains("board qemu-virt-a53 is leased to")
            && err.contains(&format!("pid {pid}"))
            && err.contains("--lease-wait"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    // Refused before anything was written.
    assert!(!tmp.path().join("run2").exists());

    holder.kill().unwrap(); // SIGKILL: no destructor, no release
    holder.wait().unwrap();
    let listed = boards(&leases);
    assert!(
        line_of(&listed, "qemu-virt-a53").contains("free (holder died"),
        "{listed}"
    );
}

#[test]
fn a_second_run_waits_for_the_board_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = tmp.path().join("leases");
    let mut holder = start_holder(&leases, &tmp.path().join("run1"));
    let mut second = hilt(&leases)
        .args(["run", "plans/smoke.yaml", "--no-history"])
        .args(["--lease-wait", "60", "--out"])
        .arg(tmp.path().join("run2"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The waiting message comes first; then the holder dies and the board
    // passes to the second run.
    let mut err = second.stderr.take().unwrap();
    let mut seen = String::new();
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    while !seen.contains("leased qemu-virt-a53") {
        use std::io::Read;
        let n = err.read(&mut buf).unwrap();
        assert!(n > 0, "second run ended early:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if seen.contains("waiting up to") && holder.try_wait().unwrap().is_none() {
            holder.kill().unwrap();
            holder.wait().unwrap();
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{seen}");
    }
    assert!(
        seen.contains("board qemu-virt-a53 is leased to") && seen.contains("waiting up to"),
        "{seen}"
    );
    let listed = boards(&leases);
    assert!(
        line_of(&listed, "qemu-virt-a53").contains(&format!("pid {}", second.id())),
        "{listed}"
    );
    second.kill().unwrap();
    second.wait().unwrap();
    let _ = holder.kill();
    holder.wait().unwrap();
}
