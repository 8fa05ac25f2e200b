//! The real binary, driven by Debian's real `fastboot` host tool as the
//! board's supervisor runs it: partitions in a file and in a region of a
//! disk image, bytes checked on disk, exit statuses checked.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hilt-fastbootd");
/// Where the boot partition sits in the disk image.
const REGION: std::ops::Range<usize> = 256 * 1024..384 * 1024;

/// Fails (never skips) without the real host tool.
fn fastboot_tool() -> PathBuf {
    let p = PathBuf::from("/usr/bin/fastboot");
    assert!(
        p.exists(),
        "/usr/bin/fastboot is missing: this test drives the bootloader with Debian's real fastboot; run scripts/setup (it installs the `fastboot` package)"
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Deterministic bytes that differ from one offset to the next.
fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

/// The running binary; killed if a test fails before it exits.
struct Bootloader {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Bootloader {
    fn start(args: &[String]) -> Bootloader {
        let port = free_port();
        let mut child = Command::new(BIN)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            lines
                .map_while(Result::ok)
                .for_each(|l| sink.lock().unwrap().push(l))
        });
        let b = Bootloader {
            child,
            port,
            stderr,
        };
        let t0 = Instant::now();
        while !b.printed("listening on") {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the bootloader did not start: {:?}",
                b.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn printed(&self, what: &str) -> bool {
        self.stderr().iter().any(|l| l.contains(what))
    }

    /// `fastboot -s tcp:127.0.0.1:PORT args...`
    fn fastboot(&self, args: &[&str], dir: &Path) -> Output {
        Command::new(fastboot_tool())
            .args(["-s", &format!("tcp:127.0.0.1:{}", self.port)])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
    }

    fn exit_code(mut self) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().expect("exited, not killed");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the bootloader did not exit: {:?}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bootloader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "fastboot failed: {text}");
    text
}

/// A board: a 64 KiB misc partition file of 0x55 and a 1 MiB disk image
/// whose boot partition is [`REGION`].
fn board(dir: &Path) -> (PathBuf, PathBuf, Vec<String>) {
    let (misc, disk) = (dir.join("misc.img"), dir.join("disk.img"));
    std::fs::write(&misc, vec![0x55; 64 * 1024]).unwrap();
    std::fs::write(&disk, pattern(1 << 20, 0)).unwrap();
    let args = vec![
        "--product".into(),
        "hilt-emu".into(),
        "--partition".into(),
        format!("misc={}", misc.display()),
        "--partition".into(),
        format!("boot={}@{}+{}", disk.display(), REGION.start, REGION.len()),
    ];
    (misc, disk, args)
}

#[test]
fn debians_fastboot_flashes_a_region_erases_a_file_and_reboots_the_os() {
    let dir = tempfile::tempdir().unwrap();
    let (misc, disk, args) = board(dir.path());
    let b = Bootloader::start(&args);

    // fastboot prints variables on stderr.
    let text = ok(&b.fastboot(&["getvar", "product"], dir.path()));
    assert!(text.contains("product: hilt-emu"), "{text}");

    let image = pattern(100_000, 7);
    std::fs::write(dir.path().join("boot.img"), &image).unwrap();
    ok(&b.fastboot(&["flash", "boot", "boot.img"], dir.path()));
    let mut want = pattern(1 << 20, 0);
    want[REGION.start..REGION.start + image.len()].copy_from_slice(&image);
    assert!(
        std::fs::read(&disk).unwrap() == want,
        "the image at the region's start, every other byte of the disk as it was"
    );

    // One byte more than the region: refused, nothing written.
    std::fs::write(dir.path().join("big.img"), pattern(REGION.len() + 1, 3)).unwrap();
    let out = b.fastboot(&["flash", "boot", "big.img"], dir.path());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("does not fit the partition's 131072 bytes"),
        "{text}"
    );
    assert!(
        std::fs::read(&disk).unwrap() == want,
        "a refused image wrote bytes"
    );

    ok(&b.fastboot(&["erase", "misc"], dir.path()));
    assert!(std::fs::read(&misc).unwrap().iter().all(|&x| x == 0xff));
    assert!(
        std::fs::read(&disk).unwrap() == want,
        "erasing misc touched the disk"
    );

    ok(&b.fastboot(&["reboot"], dir.path()));
    let log = b.stderr();
    assert_eq!(b.exit_code(), 0, "reboot boots the OS");
    for line in [
        "cmd getvar:product",
        "cmd flash:boot",
        "cmd erase:misc",
        "cmd reboot",
    ] {
        assert!(log.iter().any(|l| l.ends_with(line)), "{line}: {log:?}");
    }
}

#[test]
fn reboot_bootloader_stays_and_boot_is_refused_without_boot_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, args) = board(dir.path());
    let b = Bootloader::start(&args);
    std::fs::write(dir.path().join("kernel"), pattern(4096, 1)).unwrap();
    let out = b.fastboot(&["boot", "kernel"], dir.path());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("--boot-once"),
        "{text}"
    );
    ok(&b.fastboot(&["reboot-bootloader"], dir.path()));
    assert_eq!(b.exit_code(), 10);
}

#[test]
fn boot_hands_the_downloaded_image_over_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_, disk, mut args) = board(dir.path());
    let once = dir.path().join("once.img");
    args.extend(["--boot-once".into(), once.display().to_string()]);
    let b = Bootloader::start(&args);
    let kernel = pattern(4096, 1);
    std::fs::write(dir.path().join("kernel"), &kernel).unwrap();
    ok(&b.fastboot(&["boot", "kernel"], dir.path()));
    assert_eq!(b.exit_code(), 11);
    // The host wraps a bare kernel in an Android boot image: a header page,
    // then the kernel.
    let img = std::fs::read(&once).unwrap();
    assert!(img.starts_with(b"ANDROID!"), "{:?}", &img[..16]);
    assert_eq!(&img[2048..2048 + kernel.len()], &kernel[..]);
    assert!(
        std::fs::read(&disk).unwrap() == pattern(1 << 20, 0),
        "boot flashed"
    );
}

/// Runs the binary to its end with `args`; its status and stderr.
fn run(args: &[String]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap(), text)
}

#[test]
fn bad_arguments_exit_2_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let (_, disk, args) = board(dir.path());
    let listen = ["--listen".to_string(), "127.0.0.1:0".into()];
    let with = |extra: &[String]| -> Vec<String> {
        listen.iter().chain(&args).chain(extra).cloned().collect()
    };
    let missing = dir.path().join("nosuch.img");
    let other = dir.path().join("other.img");
    std::fs::write(&other, [0u8; 16]).unwrap();
    let cases = [
        (
            with(&["--partition".into(), format!("data={}", missing.display())]),
            vec!["--partition data=", "does not exist"],
        ),
        (
            with(&[
                "--partition".into(),
                format!("data={}@{}+2", disk.display(), (1 << 20) - 1),
            ]),
            vec!["past the file's end at 1048576"],
        ),
        (
            with(&[
                "--partition".into(),
                format!("data={}@{}+4096", disk.display(), REGION.end - 1),
            ]),
            vec!["share bytes of one file"],
        ),
        (
            with(&["--partition".into(), format!("misc={}", other.display())]),
            vec!["declared twice"],
        ),
        (
            with(&["--partition".into(), "data".into()]),
            vec!["--partition", "expected NAME=FILE"],
        ),
        (
            with(&["--max-download".into(), "0".into()]),
            vec!["--max-download", "from 1 to 4294967295"],
        ),
        (
            // Inside the test's own directory: a path like /nonexistent
            // can exist on a machine where tests run as root.
            with(&[
                "--boot-once".into(),
                dir.path().join("missing/once.img").display().to_string(),
            ]),
            vec!["--boot-once", "directory does not exist"],
        ),
        (args.clone(), vec!["--listen"]),
        (
            ["--listen".into(), "localhost".into()]
                .into_iter()
                .chain(args.clone())
                .collect(),
            vec!["--listen", "expected IP:PORT"],
        ),
    ];
    for (argv, says) in cases {
        let (code, text) = run(&argv);
        assert_eq!(code, 2, "{argv:?}: {text}");
        for s in says {
            assert!(text.contains(s), "{argv:?}: {s:?} not in {text}");
        }
    }
}

#[test]
fn a_port_in_use_is_an_io_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, args) = board(dir.path());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let argv: Vec<String> = ["--listen".into(), addr.clone()]
        .into_iter()
        .chain(args)
        .collect();
    let (code, text) = run(&argv);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("cannot listen on {addr}")), "{text}");
}
