//! Board leases between real hilt processes: a second run on a held board
//! fails naming the holder, `hilt boards` shows who holds what, and a run
//! killed with -9 holds nothing afterwards.
//!
//! The holder is a real `hilt run` of the smoke plan, killed while it
//! prepares its artifacts: it holds its board from before that, so no
//! emulated board needs to boot.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{read_until, repo};

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

/// hilt `args` with `--lease-wait 1` on the board the run `pid` holds:
/// refused within seconds, naming that run, having done nothing (no
/// check passed). Its stderr.
fn refused(leases: &Path, args: &[&str], pid: u32) -> String {
    let t0 = Instant::now();
    let o = hilt(leases)
        .args(args)
        .args(["--lease-wait", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
    assert!(
        err.contains("board qemu-virt-a53 is leased to") && err.contains(&format!("pid {pid}")),
        "{args:?}: {err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(20), "{args:?}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("ok "),
        "{args:?}"
    );
    err
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

    let run2 = tmp.path().join("run2");
    let err = refused(
        &leases,
        &[
            "run",
            "plans/smoke.yaml",
            "--quiet",
            "--no-history",
            "--out",
            run2.to_str().unwrap(),
        ],
        pid,
    );
    assert!(err.contains("--lease-wait"), "{err}");
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

/// Runs hilt as a user other than root: root may write anywhere, so only
/// another uid shows what the host-wide directory's permissions allow.
/// `groups` are its supplementary groups. umask 077 shows that the files
/// it creates are still usable by the other users.
fn hilt_as(uid: u32, groups: &[u32], home: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"));
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        let g: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        c.arg(format!("--groups={}", g.join(",")));
    }
    c.arg("--").arg(env!("CARGO_BIN_EXE_hilt"));
    c.current_dir(repo())
        .env_remove("HILT_LEASES")
        .env("HOME", home)
        .env("USER", format!("u{uid}"))
        .env("HILT_HISTORY", home.join("history.sqlite"));
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    c
}

/// The gid of the group scripts/setup made for the host-wide directory,
/// checking the directory is as setup leaves it.
fn host_dir_group() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let dir = Path::new("/var/lib/hilt/leases");
    let meta = std::fs::metadata(dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup first", dir.display()));
    assert_eq!(
        meta.mode() & 0o7777,
        0o2775,
        "{} is not mode 2775",
        dir.display()
    );
    let g = Command::new("getent")
        .args(["group", "hilt"])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&g.stdout).into_owned();
    let gid: u32 = line
        .split(':')
        .nth(2)
        .unwrap_or("")
        .parse()
        .unwrap_or_else(|_| panic!("no group hilt ({line:?}): run scripts/setup first"));
    assert_eq!(meta.gid(), gid, "{} is not the group hilt's", dir.display());
    gid
}

#[test]
#[ignore = "needs root (to run as two other users) and scripts/setup's lease directory: run by scripts/test"]
fn two_users_share_the_host_wide_lease_directory() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "run as root: the test switches to other uids"
    );
    let gid = host_dir_group();
    // uids with no account: setpriv needs none, and the test leaves none.
    let (alice, bob, carol) = (64201u32, 64202u32, 64203u32);
    let board = "qemu-virt-a53";
    let dir = Path::new("/var/lib/hilt/leases");
    let (lease, lock) = (
        dir.join(format!("{board}.lease")),
        dir.join(format!("{board}.lock")),
    );
    assert!(
        !lease.exists(),
        "{} exists: a real run holds the board, try later",
        lease.display()
    );
    let _ = std::fs::remove_file(&lock);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let home = |uid: u32| {
        let h = tmp.path().join(format!("home-{uid}"));
        std::fs::create_dir_all(&h).unwrap();
        std::os::unix::fs::chown(&h, Some(uid), Some(uid)).unwrap();
        h
    };
    let (ha, hb, hc) = (home(alice), home(bob), home(carol));
    let run = |uid: u32, h: &Path, wait: &str| {
        let mut c = hilt_as(uid, &[gid], h);
        c.args(["run", "plans/smoke.yaml", "--no-history"])
            .args(["--lease-wait", wait, "--out"])
            .arg(h.join("run"));
        c
    };

    // Alice holds the board; her files are usable by the group despite
    // her umask.
    let mut holder = run(alice, &ha, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !lease.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no lease taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&lease).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (alice, gid, 0o664));
        let m = std::fs::metadata(&lock).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (alice, gid, 0o664));
    }

    // Bob sees it, and is refused naming Alice's run.
    let o = hilt_as(bob, &[gid], &hb).arg("boards").output().unwrap();
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        line_of(&listed, board).contains(&format!("pid {}", holder.id())),
        "{listed}"
    );
    let o = run(bob, &hb, "1").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("board {board} is leased to u{alice}@")),
        "{err}"
    );

    // Carol is not in the group: told what to do, before anything else.
    let o = hilt_as(carol, &[], &hc)
        .args([
            "run",
            "plans/smoke.yaml",
            "--no-history",
            "--lease-wait",
            "1",
            "--out",
        ])
        .arg(hc.join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("group hilt")
            && err.contains("usermod -aG hilt")
            && err.contains("HILT_LEASES"),
        "{err}"
    );

    // Alice dies (-9: no release); Bob takes her lease over, replacing
    // a file he does not own in a directory that is not sticky.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let mut second = run(bob, &hb, "10")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = second.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains(&format!("leased {board}")) {
        use std::io::Read;
        let n = err.read(&mut buf).unwrap();
        assert!(n > 0, "Bob's run ended without the board:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&lease).unwrap();
        assert_eq!((m.uid(), m.gid()), (bob, gid));
    }
    let text = std::fs::read_to_string(&lease).unwrap();
    assert!(
        text.contains(&format!("\"pid\": {}", second.id())),
        "{text}"
    );
    second.kill().unwrap();
    second.wait().unwrap();
    let _ = std::fs::remove_file(&lease);
    let _ = std::fs::remove_file(&lock);
}

/// `hilt doctor`, `flash` and `deploy` lease their board like a run: refused
/// past their wait naming the run that holds it, and waiting within it
/// until the holder is gone. The board is the emulated one, whose doctor
/// only asks QEMU for its version: no board boots.
#[test]
fn doctor_flash_and_deploy_wait_for_a_board_a_run_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = tmp.path().join("leases");
    let mut holder = start_holder(&leases, &tmp.path().join("run1"));
    let pid = holder.id();
    let image = tmp.path().join("image.img");
    std::fs::write(&image, vec![0u8; 4096]).unwrap();

    for args in [
        vec!["doctor", "qemu-virt-a53"],
        vec!["flash", "qemu-virt-a53", image.to_str().unwrap()],
        vec![
            "deploy",
            "plans/smoke.yaml",
            "--variant",
            "unpatched",
            "--board",
            "qemu-virt-a53",
            "--via",
            "ssh",
        ],
    ] {
        let err = refused(&leases, &args, pid);
        assert!(
            err.contains(&format!("pid {pid}, plan smoke")) && err.contains("waited 1 s"),
            "{args:?}: {err}"
        );
    }

    // Within its wait, doctor gets the board once the run is gone (killed
    // with -9: its lease names a dead pid), checks it, and gives it back.
    let mut doctor = hilt(&leases)
        .args(["doctor", "qemu-virt-a53", "--lease-wait", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = doctor.stderr.take().unwrap();
    let mut seen = String::new();
    read_until(&mut err, "waiting up to", &mut seen);
    assert!(seen.contains(&format!("pid {pid}")), "{seen}");
    assert!(leases.join("qemu-virt-a53.lease").exists());
    holder.kill().unwrap();
    holder.wait().unwrap();
    std::io::Read::read_to_string(&mut err, &mut seen).unwrap();
    let o = doctor.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{seen}");
    assert!(out.contains("ok    console (QEMU)"), "{out}");
    assert!(
        seen.contains("leased board qemu-virt-a53")
            && seen.contains("released the lease of board qemu-virt-a53"),
        "{seen}"
    );
    assert!(!leases.join("qemu-virt-a53.lease").exists());
}

/// A command holds its board for as long as it works on it: others see
/// who has it and are refused, and Ctrl-C gives it back at once. The
/// board's console is a TCP port that accepts and never answers, so doctor
/// is still checking it when interrupted.
#[test]
fn a_command_holds_its_board_until_ctrl_c_gives_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = tmp.path().join("leases");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join("boards")).unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for c in silent.incoming() {
            open.push(c);
        }
    });
    let board = std::fs::read_to_string(repo().join("boards/bench-emulated.yaml"))
        .unwrap()
        .replace("name: bench-emulated", "name: silent")
        .replace("port: 5560", &format!("port: {port}"))
        .replace("protocol: telnet", "protocol: rfc2217");
    std::fs::write(home.join("boards/silent.yaml"), board).unwrap();
    let in_home = |args: &[&str]| {
        let mut c = hilt(&leases);
        c.current_dir(&home).args(args);
        c
    };

    let mut doctor = in_home(&["doctor", "silent"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = doctor.stderr.take().unwrap();
    let mut seen = String::new();
    read_until(&mut err, "leased board silent", &mut seen);
    let o = in_home(&["boards"]).output().unwrap();
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        line_of(&listed, "silent").contains(&format!("pid {}, `hilt doctor`", doctor.id())),
        "{listed}"
    );
    let o = in_home(&["flash", "silent", "/dev/null", "--lease-wait", "1"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(
        e.contains(&format!("pid {}, `hilt doctor`", doctor.id())),
        "{e}"
    );

    let t0 = Instant::now();
    unsafe { libc::kill(doctor.id() as i32, libc::SIGINT) };
    std::io::Read::read_to_string(&mut err, &mut seen).unwrap();
    let status = doctor.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    // The console check had seconds left: doctor did not finish it.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(
        seen.contains("interrupted: giving the board back")
            && seen.contains("released the lease of board silent"),
        "{seen}"
    );
    assert!(!leases.join("silent.lease").exists());
    let o = in_home(&["boards"]).output().unwrap();
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(line_of(&listed, "silent").ends_with(" free"), "{listed}");
}
