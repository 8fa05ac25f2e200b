//! The bench board fetching its image, kernel and initramfs from hilt's own
//! TFTP server (boot.uboot_tftp.serve) instead of a lab's: QEMU's built-in
//! TFTP server serves nothing (scripts/bench-board ... host-tftp), and
//! U-Boot's requests go to this host's own address, which QEMU's user
//! network reaches through a host socket, and where only hilt listens.
//!
//! Not 10.0.2.2 (the host as QEMU's user network shows it): QEMU answers
//! UDP port 69 there itself, with "Access violation" when it has no TFTP
//! root. And port 69, because U-Boot in Debian's configuration for QEMU
//! (the bench board's, scripts/build-uboot) is built without
//! CONFIG_TFTP_PORT and so ignores `tftpdstp`; binding it needs root (or
//! CAP_NET_BIND_SERVICE), as scripts/test runs in CI. Slow, so `#[ignore]`d.

mod common;
use common::{assert_all_pass, hilt_run, json_lines, records, repo, TestDir};

use std::path::PathBuf;

/// This host's address on its default route: one the board can reach
/// through QEMU's user network and QEMU does not answer itself.
fn host_address() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    // No packet is sent: connecting a UDP socket only picks the route.
    s.connect("203.0.113.1:9")
        .expect("this test needs an IPv4 default route, to give the board an address of this host");
    s.local_addr().unwrap().ip()
}

struct Bench {
    tmp: TestDir,
    state: PathBuf,
}

impl Bench {
    fn new() -> Self {
        let tmp = TestDir::new();
        let state = tmp.path().join("board");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let original = std::fs::read_to_string(repo().join("boards/bench-emulated.yaml")).unwrap();
        let mut board = original
            .replace("name: bench-emulated", "name: bench-tftp")
            .replace("/tmp/hilt-bench-emulated", state.to_str().unwrap())
            .replace("5560", &port.to_string());
        let host = host_address();
        for (from, to) in [
            (
                &format!("\"{port}\"]"),
                format!("\"{port}\", host-tftp]"),
            ),
            // The U-Boot knobs a real UART and a vendor U-Boot need, on a
            // real U-Boot: typing paced, shorter lines, a load address of
            // the board file's, and a list of countdown texts.
            (
                &"  autoboot_text: \"Hit any key to stop autoboot\"\n".to_string(),
                "  autoboot_text: [\"Hit Enter or space or Ctrl+C key to stop autoboot\", \"Hit any key to stop autoboot\"]\n  char_delay_ms: 1\n  max_line: 160\n  addresses: {ramdisk_addr_r: \"0x48000000\"}\n".to_string(),
            ),
            (
                &format!("    root: {}/tftp\n", state.display()),
                format!(
                    "    root: {}/tftp\n    serverip: {host}\n    serve: {{port: 69, address: {host}}}\n",
                    state.display()
                ),
            ),
        ] {
            assert!(board.contains(from.as_str()), "bench-emulated.yaml lacks {from:?}");
            board = board.replacen(from.as_str(), &to, 1);
        }
        // And modules of its own in its initramfs: Debian's Amlogic MMC
        // driver and regulators, which load (and find no device) on QEMU's
        // virt machine, so that a real boot shows /init loading them.
        board.push_str("initramfs:\n  modules: [fixed, gpio-regulator, meson-gx-mmc]\n");
        std::fs::create_dir_all(tmp.path().join("boards")).unwrap();
        std::fs::write(tmp.path().join("boards/bench-tftp.yaml"), board).unwrap();
        for d in ["workloads", "scripts"] {
            std::os::unix::fs::symlink(repo().join(d), tmp.path().join(d)).unwrap();
        }
        Self { tmp, state }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("scripts/bench-board"))
            .arg("off")
            .arg(&self.state)
            .status();
    }
}

#[test]
#[ignore = "boots the emulated board and binds UDP port 69: run by scripts/test"]
fn uboot_fetches_image_kernel_and_initramfs_from_hilts_own_tftp_server() {
    // Nothing else may answer on port 69, or the test would prove nothing.
    let probe = std::net::UdpSocket::bind((host_address(), 69)).unwrap_or_else(|e| {
        panic!("this test needs UDP port 69 of this host free and bindable (root or CAP_NET_BIND_SERVICE): {e}")
    });
    drop(probe);
    let bench = Bench::new();
    let text = std::fs::read_to_string(repo().join("plans/smoke-bench.yaml"))
        .unwrap()
        .replace("board: bench-emulated", "board: bench-tftp")
        .replace("iterations: 2", "iterations: 1")
        .replace("duration_s: 15", "duration_s: 8");
    let plan = bench.tmp.path().join("plans/tftp.yaml");
    std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
    std::fs::write(&plan, text).unwrap();
    let out = bench.tmp.path().join("run");
    let o = hilt_run(&plan, &out)
        .env("HILT_LEASES", bench.tmp.path().join("leases"))
        .output()
        .unwrap();
    common::succeeded(&o);

    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_all_pass(&recs);
    let flashes = json_lines(&out.join("flash.jsonl"));
    assert_eq!(flashes.len(), 1);
    let image_bytes = flashes[0]["bytes"].as_u64().unwrap();

    // Every file U-Boot fetched came from hilt's server, whole: the image
    // on the first boot, then the kernel and initramfs.
    let served = json_lines(&out.join("tftp.jsonl"));
    // The kernel and initramfs stay in the root; the image file is removed
    // once written, and flash.jsonl has its size.
    let size = |name: &str| {
        std::fs::metadata(bench.state.join("tftp").join(name))
            .map(|m| m.len())
            .unwrap_or(image_bytes)
    };
    let files: Vec<&str> = served.iter().map(|t| t["file"].as_str().unwrap()).collect();
    assert!(files.contains(&"hilt-bench-tftp/Image"), "{files:?}");
    assert!(files.contains(&"hilt-bench-tftp/initrd"), "{files:?}");
    assert!(files.len() >= 3, "the image too: {files:?}");
    for t in &served {
        let file = t["file"].as_str().unwrap();
        assert_eq!(t["board"], "bench-tftp");
        assert_eq!(t["bytes"].as_u64(), Some(size(file)), "{t}");
    }
    let console = String::from_utf8_lossy(
        &std::fs::read(out.join("iterations/unpatched-000/console.log")).unwrap(),
    )
    .into_owned();
    // The board booted its own initramfs: the one it fetched holds the
    // board's modules, run.json lists them last, and /init loaded each.
    let unpacked = bench.tmp.path().join("initrd");
    std::fs::create_dir_all(&unpacked).unwrap();
    let cpio = std::process::Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames", "-F"])
        .arg(bench.state.join("tftp/hilt-bench-tftp/initrd"))
        .current_dir(&unpacked)
        .status()
        .expect("cpio");
    assert!(cpio.success());
    assert!(unpacked.join("lib/modules/meson-gx-mmc.ko").is_file());
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let own = &run["variants"][0]["board_initramfs"][0];
    assert_eq!(own["board"], "bench-tftp", "{run}");
    let loaded: Vec<&str> = own["modules_loaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        loaded[loaded.len() - 3..],
        ["fixed", "gpio_regulator", "meson_gx_mmc"],
        "{loaded:?}"
    );
    let from = format!("TFTP from server {}", host_address());
    for needle in [
        &from,
        "blocks written: OK",
        "setenv ramdisk_addr_r '0x48000000'",
        "Load address: 0x48000000",
        "hilt-init: starting agent",
    ] {
        assert!(console.contains(needle), "console lacks {needle:?}");
    }
    assert!(
        !console.contains("hilt-init: insmod"),
        "a module failed to load"
    );
}
