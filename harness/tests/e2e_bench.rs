//! A board on the bench, end to end. The emulated board is wired up the way
//! a lab wires a physical one (scripts/bench-board): power by command hooks,
//! the UART on a telnet serial port, U-Boot as firmware, a TFTP root, one
//! disk with data and swap partitions. hilt sees none of QEMU: it drives the
//! board through the same board-file path as le-potato.yaml, writes the
//! plan's image from U-Boot, boots over TFTP, and talks to its agent on the
//! shared UART. Slow, so `#[ignore]`d; scripts/test runs it.

mod common;
use common::{
    assert_all_pass, control_suspected_by_watcher, hilt_run, json_lines, records, repo, TestDir,
};

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A temporary home with a bench board of its own (state directory and
/// console port), so a test never meets another run's board. Powered off
/// when dropped, whatever the test did.
struct Bench {
    tmp: TestDir,
    state: PathBuf,
    /// The board's console port, in its power-on command too.
    port: u16,
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
        let board = std::fs::read_to_string(repo().join("boards/bench-emulated.yaml"))
            .unwrap()
            .replace("name: bench-emulated", "name: bench-test")
            .replace("/tmp/hilt-bench-emulated", state.to_str().unwrap())
            .replace("5560", &port.to_string());
        std::fs::create_dir_all(tmp.path().join("boards")).unwrap();
        std::fs::write(tmp.path().join("boards/bench-test.yaml"), board).unwrap();
        for d in ["workloads", "scripts"] {
            std::os::unix::fs::symlink(repo().join(d), tmp.path().join(d)).unwrap();
        }
        Self { tmp, state, port }
    }

    /// Edits this bench's board file: each `from` must be in it, once
    /// replaced by its `to`.
    fn edit_board(&self, edits: &[(&str, &str)]) {
        let board = self.tmp.path().join("boards/bench-test.yaml");
        let mut text = std::fs::read_to_string(&board).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "bench-emulated.yaml lacks {from:?}");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(&board, text).unwrap();
    }

    /// The board with its SD cards (`cards`: scripts/bench-board's `sd` or
    /// `sd2`), U-Boot writing the image to mmc 0 and the run reading it from
    /// Linux's `data` partition; and the smoke plan cut to one short
    /// iteration.
    fn sd_card_plan(&self, cards: &str, data: &str) -> PathBuf {
        let port = self.port;
        self.edit_board(&[
            (&format!("\"{port}\"]"), &format!("\"{port}\", {cards}]")),
            (
                "  uboot_block:\n    interface: virtio\n    dev: 0\n",
                "  uboot_mmc:\n    mmc_dev: 0\n",
            ),
            ("data: /dev/vda1", &format!("data: {data}")),
        ]);
        self.plan(
            &[
                ("iterations: 2", "iterations: 1"),
                ("duration_s: 15", "duration_s: 5"),
            ],
            "",
        )
    }

    /// plans/smoke-bench.yaml on this board, with `edits` applied.
    fn plan(&self, edits: &[(&str, &str)], extra: &str) -> PathBuf {
        let mut text = std::fs::read_to_string(repo().join("plans/smoke-bench.yaml"))
            .unwrap()
            .replace("board: bench-emulated", "board: bench-test");
        for (from, to) in edits {
            assert!(text.contains(from), "smoke-bench.yaml lacks {from:?}");
            text = text.replacen(from, to, 1);
        }
        let plan = self.tmp.path().join("plans/bench.yaml");
        std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
        std::fs::write(&plan, text + extra).unwrap();
        plan
    }

    fn run(&self, plan: &Path) -> (PathBuf, String) {
        let out = self.tmp.path().join("run");
        let o = hilt_run(plan, &out)
            .env("HILT_LEASES", self.tmp.path().join("leases"))
            .output()
            .unwrap();
        (out, common::succeeded(&o))
    }

    /// `hilt flash BOARD IMAGE [ARGS]` from the bench's directory.
    fn flash(&self, board: &str, image: &Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_hilt"))
            .args(["flash", board])
            .arg(image)
            .args(args)
            .current_dir(self.tmp.path())
            .output()
            .unwrap()
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

/// Whether a line of events.jsonl that came from the agent contains `text`.
fn agent_said(out: &Path, text: &str) -> bool {
    std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .any(|l| l.contains("\"source\":\"agent\"") && l.contains(text))
}

fn console(out: &Path, iteration: &str) -> String {
    String::from_utf8_lossy(
        &std::fs::read(out.join("iterations").join(iteration).join("console.log")).unwrap(),
    )
    .into_owned()
}

/// The smoke plan with the positive control, in one run: the board is
/// flashed from U-Boot on the run's first boot (the control's: controls
/// run first) and never again, and the plan's iterations pass with the
/// agent on the board's UART. The control is a real hang, detected on a
/// board whose only channel is its UART: the kernel's report from the
/// console, the agent's watcher and its stack dumps from its frames.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn bench_board_is_flashed_from_uboot_runs_a_plan_and_detects_the_control_hang_over_its_uart() {
    let bench = Bench::new();
    // Under load the kernel can report the task first; the watcher's own
    // suspicion then reaches the host behind the sysrq dumps on the UART, 3 s
    // later in a run with a CPU hog beside it. The default evidence window
    // leaves it room.
    let plan = bench.plan(
        &[
            ("duration_s: 15", "duration_s: 8"),
            ("evidence_s: 5", "evidence_s: 10"),
        ],
        "controls:\n  - swap_freeze\n",
    );
    let (out, stdout) = bench.run(&plan);

    let all = records(&out);
    let recs: Vec<_> = all
        .iter()
        .filter(|r| r.control.is_none())
        .cloned()
        .collect();
    assert_eq!(recs.len(), 2, "{all:?}");
    assert_eq!(all.len(), 3, "{all:?}");
    assert_all_pass(&recs);
    for r in &recs {
        assert_eq!(r.board, "bench-test");
        assert!(r.boot_ms.is_some(), "no agent hello: {}", r.detail);
        assert!(r.reads > 0 && r.read_errors == 0, "{r:?}");
        // Frames damaged by printk on the shared UART would be named here.
        assert!(!r.detail.contains("damaged"), "{}", r.detail);
    }

    // The image was written once, read back, and is the run's own.
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let media = &run["media"];
    let flashes = json_lines(&out.join("flash.jsonl"));
    assert_eq!(flashes.len(), 1, "flashed on the first boot only");
    let f = &flashes[0];
    assert_eq!(f["method"], "uboot_virtio");
    assert_eq!(f["verity_root_hash"], media["verity_root_hash"]);
    assert!(f["readback"].as_str().unwrap().starts_with("crc32:"), "{f}");
    let erofs_bytes = media["erofs_bytes"].as_u64().unwrap();
    assert!(
        f["bytes"].as_u64().unwrap() > erofs_bytes,
        "hash tree appended"
    );

    // And it is on the board's data partition (sector 2048 of its disk).
    let mut disk = std::fs::File::open(bench.state.join("disk.img")).unwrap();
    disk.seek(SeekFrom::Start(2048 * 512)).unwrap();
    let mut erofs = vec![0u8; erofs_bytes as usize];
    disk.read_exact(&mut erofs).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&erofs)),
        media["erofs_sha256"].as_str().unwrap()
    );

    // The run's first boot, the control's, wrote the image; the plan's
    // iterations booted from it without writing it again.
    let control = console(&out, "unpatched-control-swap_freeze");
    let first = console(&out, "unpatched-000");
    let second = console(&out, "unpatched-001");
    for needle in [
        "Hit any key to stop autoboot",
        "blocks written: OK",
        "booti ",
    ] {
        assert!(
            control.contains(needle),
            "first boot's console lacks {needle:?}"
        );
    }
    for needle in [
        "Hit any key to stop autoboot",
        "booti ",
        "hilt-init: starting agent",
        "erofs: (device dm-0): mounted",
    ] {
        assert!(
            first.contains(needle),
            "the first iteration's console lacks {needle:?}"
        );
    }
    for log in [&first, &second] {
        assert!(!log.contains("blocks written"), "flashed twice");
    }
    assert!(second.contains("booti "));
    // The agent's frames travel on the UART, but belong to the agent: the
    // console log keeps the kernel's words only.
    for log in [&control, &first, &second] {
        assert!(
            !log.contains("@H2 "),
            "agent frames leaked into console.log"
        );
    }
    assert!(
        agent_said(&out, "\"hello\""),
        "no agent hello in events.jsonl"
    );

    // The control: the kernel's report on the console, the watcher's
    // suspicion and sysrq dump in the agent's frames.
    assert!(
        stdout.contains("control swap_freeze on unpatched: detected"),
        "{stdout}"
    );
    control_suspected_by_watcher(&all, "the UART");
    assert!(
        agent_said(&out, "sysrq: Show Blocked State"),
        "the agent's sysrq dump, relayed in its frames"
    );
    assert!(control.contains("task:hilt-swapoff"));
}

/// `hilt flash` on a U-Boot board: power cycle, stop autoboot, TFTP, block
/// write, read back, power off; the bytes are found on the board's disk.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn hilt_flash_writes_an_image_from_uboot() {
    let bench = Bench::new();
    let mut image = vec![0u8; 3 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in image.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let path = bench.tmp.path().join("data.img");
    std::fs::write(&path, &image).unwrap();
    let root_hash = "ab".repeat(32);
    let o = bench.flash("bench-test", &path, &["--root-hash", &root_hash]);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec["method"], "uboot_virtio");
    assert_eq!(rec["sha256"], hex::encode(Sha256::digest(&image)));
    assert_eq!(rec["verity_root_hash"], root_hash);
    assert!(rec["readback"].as_str().unwrap().starts_with("crc32:"));
    let mut disk = std::fs::File::open(bench.state.join("disk.img")).unwrap();
    disk.seek(SeekFrom::Start(2048 * 512)).unwrap();
    let mut back = vec![0u8; image.len()];
    disk.read_exact(&mut back).unwrap();
    assert!(back == image, "the partition does not hold the image");
    // Powered off afterwards: nothing listens on the console port.
    assert!(!bench.state.join("qemu.pid").exists());

    // A start_block one block off the partition U-Boot sees: refused
    // before anything is written.
    let boards = bench.tmp.path().join("boards");
    let off = std::fs::read_to_string(boards.join("bench-test.yaml"))
        .unwrap()
        .replace("name: bench-test", "name: bench-off")
        .replace("start_block: 2048", "start_block: 2049");
    std::fs::write(boards.join("bench-off.yaml"), off).unwrap();
    let before = std::fs::read(bench.state.join("disk.img")).unwrap();
    let o = bench.flash("bench-off", &path, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("partition 1 of virtio 0 starts at block 2048, but the board file says start_block 2049"),
        "{stderr}"
    );
    assert!(
        std::fs::read(bench.state.join("disk.img")).unwrap() == before,
        "nothing was written"
    );
    assert!(!bench.state.join("qemu.pid").exists());
}

/// `verity: avb` on a board on the bench: U-Boot writes the AVB-footed
/// image, sized to the data partition, and the agent sets dm-verity up from
/// the footer at the partition's end, whose descriptor names the partition.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn bench_board_gets_an_avb_footed_partition_and_the_agent_verifies_from_its_footer() {
    let bench = Bench::new();
    // scripts/bench-board's data partition: 196608 sectors.
    const DATA_BYTES: u64 = 196_608 * 512;
    bench.edit_board(&[(
        "  swap: swap\n",
        &format!("  swap: swap\n  image_bytes: {DATA_BYTES}\n"),
    )]);
    let plan = bench.plan(
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 8"),
            ("verity: true", "verity: avb"),
        ],
        "",
    );
    let out = bench.tmp.path().join("run");
    let o = hilt_run(&plan, &out)
        .env("HILT_LEASES", bench.tmp.path().join("leases"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    common::succeeded(&o);
    assert!(
        stderr
            .contains("verity: avb: the image for bench-test carries its own AVB hashtree footer")
            && stderr.contains("--disable-verification"),
        "{stderr}"
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_all_pass(&recs);
    assert!(
        recs[0].reads > 0 && recs[0].read_errors == 0,
        "{:?}",
        recs[0]
    );
    assert!(
        agent_said(&out, "from its AVB footer: partition \\\"data\\\""),
        "the agent did not set verity up from the footer"
    );

    // What was written is the whole partition, recorded with its sha256,
    // and the partition on the disk ends with the footer of that image.
    let flashes = json_lines(&out.join("flash.jsonl"));
    assert_eq!(flashes.len(), 1);
    let f = &flashes[0];
    assert_eq!(f["bytes"].as_u64(), Some(DATA_BYTES));
    let mut disk = std::fs::File::open(bench.state.join("disk.img")).unwrap();
    disk.seek(SeekFrom::Start(2048 * 512)).unwrap();
    let mut part = vec![0u8; DATA_BYTES as usize];
    disk.read_exact(&mut part).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&part)),
        f["sha256"].as_str().unwrap()
    );
    let footed = hilt_avb::read_footed(&mut std::io::Cursor::new(&part), "data").unwrap();
    assert_eq!(
        hex::encode(&footed.descriptor.root_digest),
        f["verity_root_hash"].as_str().unwrap()
    );
    // The vbmeta handed to the user is the one on the partition.
    assert_eq!(
        std::fs::read(out.join("vbmeta.img")).unwrap(),
        footed.vbmeta
    );
}

/// ramoops on a board on the bench: the board file gives a region, hilt
/// reserves it in the kernel's device tree from U-Boot and passes it to
/// ramoops on the command line. A kernel panic leaves the board on; the
/// kernel's own panic= delay resets it warm (QEMU's system reset keeps RAM),
/// the next boot meets U-Boot without a power cycle, and its agent reads the
/// panic's log from pstore into the panicked iteration's directory.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn bench_board_keeps_a_panics_log_in_ramoops_across_its_own_warm_reset() {
    let bench = Bench::new();
    let board = bench.tmp.path().join("boards/bench-test.yaml");
    let text = std::fs::read_to_string(&board).unwrap();
    let autoboot = "  autoboot_text: \"Hit any key to stop autoboot\"\n";
    assert!(text.contains(autoboot), "bench-emulated.yaml changed");
    // Below U-Boot's own memory (its stack at 0x4edaada0 up, from
    // `bdinfo`) and above the initramfs at ramdisk_addr_r (0x44000000); the
    // kernel's tree is edited at 0x40000000, where QEMU put its own.
    let text = text.replacen(
        autoboot,
        &format!("{autoboot}  addresses: {{fdt_addr_r: \"0x40000000\"}}\n"),
        1,
    ) + "ramoops:\n  address: \"0x4d000000\"\n  size: \"0x100000\"\n";
    std::fs::write(&board, text).unwrap();
    let plan = bench.plan(
        &[("duration_s: 15", "duration_s: 10")],
        "faults:\n  - { kind: kernel_panic, after_s: 3, iteration: 0 }\n",
    );
    let (out, stdout) = bench.run(&plan);

    let recs = records(&out);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let by_iter = |i: u32| recs.iter().find(|r| r.iteration == i).unwrap();
    assert_eq!(
        by_iter(0).outcome,
        hilt_reports::Outcome::Crash,
        "{}\n{stdout}",
        by_iter(0).detail
    );
    assert_all_pass(&[by_iter(1).clone()]);

    // The panic's log, as the second boot read it from pstore.
    let dir = out.join("iterations/unpatched-000/pstore");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| f.unwrap().path())
        .collect();
    assert!(!files.is_empty(), "no pstore files");
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for needle in [
        "sysrq: Trigger a crash",
        "Kernel panic - not syncing: sysrq triggered crash",
    ] {
        assert!(all.contains(needle), "pstore lacks {needle:?}: {files:?}");
    }
    assert!(
        !out.join("iterations/unpatched-001/pstore").exists(),
        "the second boot left nothing in ramoops"
    );

    // The board reset itself: one power on in the whole run, and the
    // second boot met U-Boot on a board that was never switched off.
    let power = std::fs::read_to_string(bench.state.join("power.log")).unwrap();
    assert_eq!(
        power.lines().filter(|l| *l == "on").count(),
        1,
        "power-cycled instead of a warm reset:\n{power}"
    );
    let warm = json_lines(&out.join("warm_reset.jsonl"));
    assert_eq!(warm.len(), 1, "{warm:?}");
    assert_eq!(warm[0]["met_uboot"], true, "{}", warm[0]);
    let second = console(&out, "unpatched-001");
    assert!(second.contains("Hit any key to stop autoboot"), "{second}");
    assert!(
        second.contains("hilt-ramoops@4d000000"),
        "U-Boot's fdt commands are in the second boot's console"
    );
    // The board is off once the run is over.
    assert!(!bench.state.join("qemu.pid").exists());
}

/// The SD/eMMC pairing check refusing a wrong pair, on a real U-Boot and a
/// real kernel: the bench board with two SD cards (64 MiB on the first
/// controller, 128 MiB on the second; QEMU gives both the same CID), and a
/// board file that pairs U-Boot's mmc 0 with Linux's mmcblk1. The
/// identification boot sees two different cards and the run stops before
/// anything is written to either, naming the disk to use instead.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn bench_board_refuses_to_write_when_u_boot_and_linux_name_different_cards() {
    let bench = Bench::new();
    let plan = bench.sd_card_plan("sd2", "/dev/mmcblk1p1");
    let out = bench.tmp.path().join("run");
    let o = hilt_run(&plan, &out)
        .env("HILT_LEASES", bench.tmp.path().join("leases"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{said}");
    assert!(!o.status.success(), "{said}");

    let ids = json_lines(&out.join("mmc_identity.jsonl"));
    assert_eq!(ids.len(), 1, "one identification boot: {ids:?}");
    assert_eq!(ids[0]["uboot"]["capacity"], "64 MiB", "{}", ids[0]);
    let linux = ids[0]["linux"].as_array().unwrap();
    let sectors: Vec<(&str, u64)> = linux
        .iter()
        .map(|c| (c["disk"].as_str().unwrap(), c["sectors"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        sectors,
        [("mmcblk0", 131072), ("mmcblk1", 262144)],
        "{}",
        ids[0]
    );
    let detail = records(&out)
        .iter()
        .map(|r| r.detail.clone())
        .collect::<Vec<_>>()
        .join("\n");
    let shown = format!("{said}\n{detail}");
    for needle in [
        "pairs U-Boot's mmc 0 (flash.uboot_mmc.mmc_dev: 0) with Linux's mmcblk1 (partitions.data: /dev/mmcblk1p1), and they are different cards",
        "Nothing was written",
        "Linux's mmcblk0 is U-Boot's mmc 0",
    ] {
        assert!(shown.contains(needle), "{needle:?} not in:\n{shown}");
    }
    // Neither card was written.
    assert!(!out.join("flash.jsonl").exists());
    for card in ["sd.img", "sd2.img"] {
        let mut f = std::fs::File::open(bench.state.join(card)).unwrap();
        f.seek(SeekFrom::Start(2048 * 512)).unwrap();
        let mut head = vec![0u8; 1 << 20];
        f.read_exact(&mut head).unwrap();
        assert!(head.iter().all(|b| *b == 0), "{card} was written");
    }
}

/// The SD/eMMC pairing check against a real U-Boot and a real kernel, then
/// the write it guards: the emulated bench board with an SD card (QEMU's
/// sd-card behind sdhci-pci, one partition from block 2048) and its
/// firmware built with an MMC driver (scripts/build-uboot). The board file
/// says U-Boot's mmc 0 is Linux's mmcblk0: one identification boot compares
/// U-Boot's `mmc info` with the agent's report from sysfs, then U-Boot
/// writes the image to the card (`flash: uboot_mmc`) and Linux mounts erofs
/// from mmcblk0p1.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn bench_board_checks_its_sd_card_is_one_card_to_u_boot_and_linux_then_writes_it() {
    let bench = Bench::new();
    let plan = bench.sd_card_plan("sd", "/dev/mmcblk0p1");
    let (out, _) = bench.run(&plan);
    assert_all_pass(&records(&out));

    // Both sides of one card, as each reported it, and agreeing.
    let qemu_card = serde_json::json!({
        "disk": "mmcblk0",
        "kind": "SD",
        "manfid": 0xaa,
        "oemid": 0x5859,
        "name": "QEMU!",
        "sectors": 131072,
    });
    let ids = json_lines(&out.join("mmc_identity.jsonl"));
    assert_eq!(ids.len(), 1, "one identification boot: {ids:?}");
    let id = &ids[0];
    assert_eq!(id["mmc_dev"], 0, "{id}");
    assert_eq!(id["linux"], serde_json::json!([qemu_card]), "{id}");
    let uboot = &id["uboot"];
    assert_eq!(uboot["manfid"], 0xaa, "U-Boot's mmc info, parsed: {id}");
    assert_eq!(uboot["oem"], 0x5859, "{id}");
    assert_eq!(uboot["capacity"], "64 MiB", "{id}");
    assert_eq!(uboot["name"], "QEMU!", "{id}");
    assert_eq!(uboot["kind"], "SD", "{id}");
    let hello: serde_json::Value = std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"source\":\"agent\"") && l.contains("\"kernel_release\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .next()
        .expect("no hello in events.jsonl");
    assert_eq!(hello["mmc"], serde_json::json!([qemu_card]), "{hello}");

    // The write it guarded: U-Boot's mmc write, on the card Linux read.
    let flashes = json_lines(&out.join("flash.jsonl"));
    assert_eq!(flashes.len(), 1, "{flashes:?}");
    assert_eq!(flashes[0]["method"], "uboot_mmc", "{}", flashes[0]);
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let erofs_bytes = run["media"]["erofs_bytes"].as_u64().unwrap();
    let mut card = std::fs::File::open(bench.state.join("sd.img")).unwrap();
    card.seek(SeekFrom::Start(2048 * 512)).unwrap();
    let mut erofs = vec![0u8; erofs_bytes as usize];
    card.read_exact(&mut erofs).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&erofs)),
        run["media"]["erofs_sha256"].as_str().unwrap()
    );
    let first = console(&out, "unpatched-000");
    assert!(first.contains("pci_mmc: 0"), "U-Boot's mmc list");
    assert!(first.contains("blocks written: OK"), "{first}");
}
