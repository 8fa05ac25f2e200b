//! A board that boots its own Linux, end to end, with the agent over SSH or
//! adb. The emulated board runs a stock Debian kernel and an OS of its own
//! (busybox, Debian's dropbear, and hilt-adbd standing in for an Android
//! device's adbd), and scripts/os-board wires it up as a lab wires such a
//! board: power by command hooks, the UART on a telnet serial port, sshd and
//! adbd behind host ports. hilt sees none of QEMU: it drives it through
//! boards/ssh-emulated.yaml or boards/adb-emulated.yaml (through Debian's
//! real adb server), writes the plan's image with dd and reads it back,
//! pushes the agent, and runs it with its stdin and stdout as the channel.
//! Slow, so `#[ignore]`d; scripts/test runs it.

mod common;
#[path = "common/os_board.rs"]
mod os_board;

use common::{
    assert_all_pass, control_suspected_by_watcher, each_variant_passed_on_its_kernel, free_port,
    json_lines, records, repo, says, shared_cache, TestDir,
};

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use hilt_reports::Outcome;
use sha2::{Digest, Sha256};

/// The kernels whose modules the board has installed; the first (the smoke
/// plan's) is the one it boots until hilt installs another in its /boot.
const KERNELS: [&str; 2] = [
    "linux-image-6.1.0-44-arm64=6.1.164-1",
    "linux-image-6.1.0-45-arm64=6.1.170-1",
];

/// A plan's `variants:` block: each name with its kernel from KERNELS.
fn variants(which: &[(&str, usize)]) -> String {
    let mut v = String::from("variants:\n");
    for (name, k) in which {
        v += &format!(
            "  - name: {name}\n    kernel:\n      debian: {}\n",
            KERNELS[*k]
        );
    }
    v
}

/// How hilt reaches the board's OS: which board file it is.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Ssh,
    Adb,
}

/// A temporary home with an OS board of its own (state directory, console,
/// SSH and adb ports, and for adb an adb server of its own), powered off
/// when dropped.
struct OsBench {
    tmp: TestDir,
    state: PathBuf,
    /// The releases of KERNELS.
    releases: Vec<String>,
    adb_server: Option<std::process::Child>,
}

impl OsBench {
    fn new(via: Via) -> Self {
        let tmp = TestDir::new();
        let state = tmp.path().join("board");
        let (console, ssh) = (free_port(), free_port());
        let releases = os_board::build(&shared_cache(), &KERNELS, &state, ssh, &os_board::LINUX);
        let (file, ports) = match via {
            Via::Ssh => ("ssh-emulated", vec![("5570", console), ("5522", ssh)]),
            Via::Adb => (
                "adb-emulated",
                vec![
                    ("5571", console),
                    ("5523", ssh),
                    ("5640", free_port()),
                    ("5037", free_port()),
                ],
            ),
        };
        let mut board = std::fs::read_to_string(repo().join(format!("boards/{file}.yaml")))
            .unwrap()
            .replace(&format!("name: {file}"), "name: os-test")
            .replace(&format!("/tmp/hilt-{file}"), state.to_str().unwrap());
        for (from, to) in &ports {
            assert!(board.contains(from), "{file}.yaml lacks port {from}");
            board = board.replace(from, &to.to_string());
        }
        std::fs::create_dir_all(tmp.path().join("boards")).unwrap();
        std::fs::write(tmp.path().join("boards/os-test.yaml"), board).unwrap();
        for d in ["workloads", "scripts"] {
            std::os::unix::fs::symlink(repo().join(d), tmp.path().join(d)).unwrap();
        }
        let adb_server = (via == Via::Adb).then(|| common::adb_server(tmp.path(), ports[3].1));
        Self {
            tmp,
            state,
            releases,
            adb_server,
        }
    }

    /// plans/smoke-bench.yaml on this board, with `edits` applied.
    fn plan(&self, edits: &[(&str, &str)], extra: &str) -> PathBuf {
        common::bench_plan(self.tmp.path(), "os-test", "os", edits, extra)
    }

    fn run(&self, plan: &Path, name: &str) -> (PathBuf, std::process::Output) {
        common::run_in(self.tmp.path(), plan, name)
    }
}

impl Drop for OsBench {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("scripts/os-board"))
            .arg("off")
            .arg(&self.state)
            .status();
        if let Some(mut c) = self.adb_server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Two runs on one board with its own OS reached over SSH, in phases (the
/// board is built once).
///
/// Phase 1: a real hang: the kernel's report from the UART, and the
/// agent's watcher, stacks and sysrq over SSH.
///
/// Phase 2: the A/B plan's shape on a board with its own OS: each variant's kernel
/// is installed where the board's bootloader loads it, and the board is
/// power cycled into it; the plan's image is written once with dd over SSH
/// and read back; the agent's frames travel over SSH, never on the UART. A
/// board file that does not say where the kernel goes gets an
/// infrastructure error naming both kernels, never a result.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn os_board_detects_the_control_hang_and_gets_each_variants_kernel_installed_over_ssh() {
    let bench = OsBench::new(Via::Ssh);
    let plan = bench.plan(
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 8"),
            ("evidence_s: 5", "evidence_s: 10"),
        ],
        "controls:\n  - swap_freeze\n",
    );
    let (out, o) = bench.run(&plan, "control");
    assert!(o.status.success(), "{}", says(&o));
    let recs = records(&out);
    control_suspected_by_watcher(&recs, "SSH");
    assert!(
        std::fs::read_to_string(out.join("events.jsonl"))
            .unwrap()
            .lines()
            .any(|l| l.contains("\"source\":\"agent\"") && l.contains("sysrq: Show Blocked State")),
        "the agent's sysrq dump, relayed over SSH"
    );

    // Phase 2. The control's run left the board on its own kernel, the
    // first of KERNELS, as it was built: the A/B run starts from there.
    let board_file = bench.tmp.path().join("boards/os-test.yaml");
    let with_path = std::fs::read_to_string(&board_file).unwrap();
    std::fs::write(
        &board_file,
        with_path.replace("kernel_path: /boot/Image\n", ""),
    )
    .unwrap();
    let smoke_variants = variants(&[("unpatched", 0)]);
    let other_kernel = variants(&[("patched", 1)]);
    let both = variants(&[("unpatched", 0), ("patched", 1)]);
    let plan = bench.plan(
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 8"),
            (&smoke_variants, &other_kernel),
        ],
        "",
    );
    let (out, o) = bench.run(&plan, "no-kernel-path");
    assert!(!o.status.success(), "{}", says(&o));
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].outcome, Outcome::InfraError);
    for needle in [
        "6.1.0-44-arm64",
        "6.1.0-45-arm64",
        "set `kernel_path` in board os-test",
    ] {
        assert!(
            recs[0].detail.contains(needle),
            "{needle}: {}",
            recs[0].detail
        );
    }

    std::fs::write(&board_file, &with_path).unwrap();
    let plan = bench.plan(
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 8"),
            (&smoke_variants, &both),
        ],
        "",
    );
    let (out, o) = bench.run(&plan, "ab");
    assert!(o.status.success(), "{}", says(&o));
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    assert_all_pass(&recs);
    for r in &recs {
        let want = if r.variant == "unpatched" { 0 } else { 1 };
        assert_eq!(
            r.kernel_release.as_ref(),
            Some(&bench.releases[want]),
            "{r:?}"
        );
    }
    let installs = json_lines(&out.join("deploy.jsonl"));
    assert!(
        installs.iter().any(|i| i["variant"] == "patched"),
        "the patched kernel was installed: {installs:?}"
    );
    for i in &installs {
        assert_eq!(i["file"]["name"], "/boot/Image");
        assert_ne!(i["banner"], i["replaced"]);
        assert!(i["banner"]
            .as_str()
            .unwrap()
            .contains(i["kernel_release"].as_str().unwrap()));
    }
    for r in &recs {
        assert_eq!(r.board, "os-test");
        assert!(r.reads > 0 && r.read_errors == 0, "{r:?}");
        assert!(!r.detail.contains("damaged"), "{}", r.detail);
    }

    // dd over SSH, once, read back by sha256 on the board.
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let media = &run["media"];
    let flashes = json_lines(&out.join("flash.jsonl"));
    assert_eq!(flashes.len(), 1, "flashed on the first boot only");
    let f = &flashes[0];
    assert_eq!(f["method"], "ssh_dd");
    assert_eq!(f["verity_root_hash"], media["verity_root_hash"]);
    assert_eq!(
        f["readback"].as_str().unwrap(),
        format!("sha256:{}", f["sha256"].as_str().unwrap()),
        "{f}"
    );
    let erofs_bytes = media["erofs_bytes"].as_u64().unwrap();
    let mut disk = std::fs::File::open(bench.state.join("disk.img")).unwrap();
    disk.seek(SeekFrom::Start(2048 * 512)).unwrap();
    let mut erofs = vec![0u8; erofs_bytes as usize];
    disk.read_exact(&mut erofs).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&erofs)),
        media["erofs_sha256"].as_str().unwrap()
    );

    // The kernel's console came from the UART, each boot of the iteration
    // in it; the agent's records came over SSH.
    for it in ["unpatched-000", "patched-000"] {
        let dir = out.join("iterations").join(it);
        let console =
            String::from_utf8_lossy(&std::fs::read(dir.join("console.log")).unwrap()).into_owned();
        assert!(console.contains("os-board: sshd on port 22"), "{it}");
        assert!(console.contains("erofs: (device dm-0): mounted"), "{it}");
        assert!(!console.contains("@H2 "), "{it}: agent frames on the UART");
        assert!(dir.join("agent-stderr.log").exists(), "{it}");
    }
    let patched = std::fs::read_to_string(out.join("iterations/patched-000/console.log")).unwrap();
    assert_eq!(
        patched.matches("os-board: sshd on port 22").count(),
        2,
        "the patched iteration's console holds the boot that installed its kernel, and the boot into it"
    );

    // The last install is what the board's bootloader has now.
    let last = installs.last().unwrap();
    let on_board = std::fs::read(bench.state.join("boot/Image")).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&on_board)),
        last["file"]["sha256"].as_str().unwrap()
    );
}

/// An Android-style board over adb, the plan unchanged: through Debian's
/// real adb server (which connects to the board over TCP again after each
/// power cycle), the variant's kernel is installed with adb push and
/// booted, the image is written with dd over adb and read back, and the
/// agent runs from /data/local/tmp with its stdio over shell v2, where its
/// watcher reports the positive control's hang.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn adb_board_runs_the_ab_plan_and_the_control_with_the_agent_over_adb() {
    let bench = OsBench::new(Via::Adb);
    let smoke_variants = variants(&[("unpatched", 0)]);
    let both = variants(&[("unpatched", 0), ("patched", 1)]);
    let plan = bench.plan(
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 8"),
            ("evidence_s: 5", "evidence_s: 10"),
            (&smoke_variants, &both),
        ],
        "controls:\n  - swap_freeze\n",
    );
    let (out, o) = bench.run(&plan, "adb");
    assert!(o.status.success(), "{}", says(&o));
    let recs = records(&out);
    control_suspected_by_watcher(&recs, "adb");
    each_variant_passed_on_its_kernel(&recs, &bench.releases);
    let installs = json_lines(&out.join("deploy.jsonl"));
    assert!(
        installs.iter().any(|i| i["variant"] == "patched"),
        "the patched kernel was installed with adb push: {installs:?}"
    );
    let flashes = json_lines(&out.join("flash.jsonl"));
    assert_eq!(flashes.len(), 1, "flashed on the first boot only");
    assert_eq!(flashes[0]["method"], "adb_dd");
    assert_eq!(
        flashes[0]["readback"].as_str().unwrap(),
        format!("sha256:{}", flashes[0]["sha256"].as_str().unwrap())
    );
    for it in ["unpatched-000", "patched-000"] {
        let dir = out.join("iterations").join(it);
        let console =
            String::from_utf8_lossy(&std::fs::read(dir.join("console.log")).unwrap()).into_owned();
        assert!(console.contains("os-board: adbd on port 5555"), "{it}");
        assert!(!console.contains("@H2 "), "{it}: agent frames on the UART");
    }
}
