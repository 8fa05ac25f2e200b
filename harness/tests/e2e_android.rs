//! An Android-style board, end to end: scripts/android-board wires the
//! emulated board up as a lab wires an Android device (power by command
//! hooks, power-on into the bootloader by another, the UART on a telnet
//! serial port, adbd behind a host port) with hilt-fastbootd as its
//! bootloader stage. hilt flashes the device's own boot image (made by
//! Debian's mkbootimg) with only the variant's kernel replaced, flashes the
//! plan's image to the scratch partition by fastboot, reboots, and runs the
//! agent over Debian's real adb server. The OS is not Android: see
//! boards/android-emulated.yaml. Slow, so `#[ignore]`d; scripts/test runs it.

#[path = "common/android_board.rs"]
mod android_board;
mod common;
#[path = "common/os_board.rs"]
mod os_board;

use std::path::{Path, PathBuf};

use common::{
    control_suspected_by_watcher, each_variant_passed_on_its_kernel, free_port, json_lines,
    records, repo, says, shared_cache, TestDir,
};
use hilt_reports::Outcome;
use sha2::{Digest, Sha256};

const KERNELS: [&str; 2] = [
    "linux-image-6.1.0-44-arm64=6.1.164-1",
    "linux-image-6.1.0-45-arm64=6.1.170-1",
];

/// Where scripts/android-board puts userdata and boot on the eMMC
/// (512-byte sectors).
const SCRATCH_START: u64 = 4096;
const SCRATCH_BYTES: u64 = 96 << 20;
const USERDATA_START: u64 = 462848;
const BOOT_START: u64 = 495616;

/// A temporary home with an Android-style board of its own and an adb
/// server of its own; powered off when dropped.
struct AndroidBench {
    tmp: TestDir,
    state: PathBuf,
    releases: Vec<String>,
    adb_server: std::process::Child,
}

impl AndroidBench {
    fn new() -> Self {
        let fastbootd = repo().join("target/release/hilt-fastbootd");
        assert!(
            fastbootd.exists(),
            "{} is missing: cargo build --release -p hilt-fastbootd (scripts/setup does)",
            fastbootd.display()
        );
        let tmp = TestDir::new();
        let state = tmp.path().join("board");
        let releases = android_board::build(&shared_cache(), &KERNELS, &state, free_port());
        let adb_port = free_port();
        let mut board = std::fs::read_to_string(repo().join("boards/android-emulated.yaml"))
            .unwrap()
            .replace("name: android-emulated", "name: android-test")
            .replace("/tmp/hilt-android-emulated", state.to_str().unwrap());
        for (from, to) in [
            ("5572", free_port()),
            ("5641", free_port()),
            ("5642", free_port()),
            ("5037", adb_port),
        ] {
            assert!(
                board.contains(from),
                "android-emulated.yaml lacks port {from}"
            );
            board = board.replace(from, &to.to_string());
        }
        std::fs::create_dir_all(tmp.path().join("boards")).unwrap();
        std::fs::write(tmp.path().join("boards/android-test.yaml"), board).unwrap();
        for d in ["workloads", "scripts", "target"] {
            std::os::unix::fs::symlink(repo().join(d), tmp.path().join(d)).unwrap();
        }
        let adb_server = common::adb_server(tmp.path(), adb_port);
        Self {
            tmp,
            state,
            releases,
            adb_server,
        }
    }

    fn board_file(&self) -> PathBuf {
        self.tmp.path().join("boards/android-test.yaml")
    }

    /// plans/smoke-bench.yaml on this board as plan `name`: its one
    /// kernel (the first of KERNELS), one iteration, with `extra`
    /// appended. Refusals need one boot at most, and the Android plan
    /// runs both kernels.
    fn plan(&self, name: &str, extra: &str) -> PathBuf {
        common::bench_plan(
            self.tmp.path(),
            "android-test",
            name,
            &[
                ("iterations: 2", "iterations: 1"),
                ("duration_s: 15", "duration_s: 8"),
                ("evidence_s: 5", "evidence_s: 10"),
            ],
            extra,
        )
    }

    /// plans/erofs-noio-android.yaml, on this board, its iterations 8 s
    /// long instead of 20: what the test checks is how each boot was
    /// flashed and reached, which the workload's length does not change.
    fn android_plan(&self) -> PathBuf {
        let text = std::fs::read_to_string(repo().join("plans/erofs-noio-android.yaml"))
            .unwrap()
            .replace("board: android-emulated", "board: android-test");
        assert!(
            text.contains("\nduration_s: 20\n"),
            "erofs-noio-android.yaml changed"
        );
        let text = text.replacen("\nduration_s: 20\n", "\nduration_s: 8\n", 1);
        let plan = self.tmp.path().join("plans/erofs-noio-android.yaml");
        std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
        std::fs::write(&plan, text).unwrap();
        plan
    }

    /// The board file without `bootloader_on`: hilt then reaches the
    /// bootloader with `adb reboot bootloader`.
    fn without_bootloader_key(&self) {
        let file = self.board_file();
        let text = std::fs::read_to_string(&file).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("bootloader_on:"))
            .collect();
        assert!(kept.len() < text.lines().count(), "no bootloader_on line");
        std::fs::write(&file, kept.join("\n") + "\n").unwrap();
    }

    fn run(&self, plan: &Path, name: &str) -> (PathBuf, std::process::Output) {
        common::run_in(self.tmp.path(), plan, name)
    }

    /// The userdata partition's bytes, as the eMMC holds them now.
    fn userdata(&self) -> Vec<u8> {
        let disk = std::fs::read(self.state.join("disk.img")).unwrap();
        let start = (USERDATA_START * 512) as usize;
        let len = std::fs::metadata(self.state.join("userdata.img"))
            .unwrap()
            .len() as usize;
        disk[start..start + len].to_vec()
    }
}

impl Drop for AndroidBench {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("scripts/android-board"))
            .arg("off")
            .arg(&self.state)
            .status();
        let _ = self.adb_server.kill();
        let _ = self.adb_server.wait();
    }
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// plans/erofs-noio-android.yaml as a user runs it: both kernels and the
/// positive control, each booted from the device's own boot image with
/// only the kernel replaced, by fastboot from the bootloader that `adb
/// reboot bootloader` reaches; the plan's image flashed by fastboot once;
/// the agent over adb on Android's device paths; Android's zram swap used
/// as it is; userdata untouched.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn android_board_runs_the_android_plan_through_fastboot_and_adb() {
    let bench = AndroidBench::new();
    bench.without_bootloader_key();
    let plan = bench.android_plan();
    let (out, o) = bench.run(&plan, "android");
    // The first power-on looked at userdata before anything was written.
    let userdata_before = std::fs::read(bench.state.join("userdata.img")).unwrap();
    assert!(o.status.success(), "{}", says(&o));
    let recs = records(&out);
    control_suspected_by_watcher(&recs, "adb");
    each_variant_passed_on_its_kernel(&recs, &bench.releases);
    // The device's own boot image was read from its boot partition over
    // adb, once; every boot flashed it with its variant's kernel.
    let device = std::fs::read(bench.state.join("device-boot.img")).unwrap();
    assert_eq!(
        std::fs::read(out.join("device-boot-android-test.img")).unwrap(),
        device,
        "the boot image read from the device"
    );
    let boots = json_lines(&out.join("deploy.jsonl"));
    assert_eq!(
        boots.len(),
        4,
        "two controls' worth of boots and two iterations: {boots:?}"
    );
    for b in &boots {
        assert_eq!(b["device_boot_image_sha256"], sha256(&device));
        assert_eq!(b["flash"]["method"], "fastboot");
        assert_eq!(b["flash"]["target"], "boot");
    }
    // The partition holds the last boot's image, the rest as it was.
    let last = boots.last().unwrap();
    let disk = std::fs::read(bench.state.join("disk.img")).unwrap();
    let at = (BOOT_START * 512) as usize;
    let flashed_boot = &disk[at..at + last["flash"]["bytes"].as_u64().unwrap() as usize];
    assert_eq!(
        sha256(flashed_boot),
        last["flash"]["sha256"].as_str().unwrap()
    );
    let parsed = hilt_images::bootimg::parse(flashed_boot).unwrap();
    let device_parsed = hilt_images::bootimg::parse(&device).unwrap();
    let (ro, rl) = parsed.ramdisk;
    let (dro, drl) = device_parsed.ramdisk;
    assert_eq!(
        &flashed_boot[ro..ro + rl],
        &device[dro..dro + drl],
        "the device's own ramdisk"
    );
    assert_eq!(parsed.cmdline, device_parsed.cmdline);
    let flashes = json_lines(&out.join("flash.jsonl"));
    assert_eq!(
        flashes.len(),
        1,
        "the scratch partition, on the first boot only"
    );
    assert_eq!(flashes[0]["method"], "fastboot");
    assert_eq!(flashes[0]["target"], "scratch");
    assert_eq!(bench.userdata(), userdata_before, "userdata was written");
    for it in ["unpatched-000", "patched-000"] {
        let console = String::from_utf8_lossy(
            &std::fs::read(out.join("iterations").join(it).join("console.log")).unwrap(),
        )
        .into_owned();
        for said in [
            "android-board: userdata mounted",
            "android-board: zram swap on",
        ] {
            assert!(console.contains(said), "{it}: no {said:?} in {console}");
        }
        // Android came up twice: to be asked for `adb reboot bootloader`,
        // then on the variant's kernel.
        assert_eq!(
            console.matches("android-board: boot completed").count(),
            2,
            "{it}: {console}"
        );
        assert!(!console.contains("@H2 "), "{it}: agent frames on the UART");
    }
    // The agent on Android's device paths: dm-verity made through
    // /dev/device-mapper over the partition found by name, its node under
    // /dev/block; swap on the zram Android set up, or for the control on
    // the swap partition, above it.
    let stages: Vec<_> = json_lines(&out.join("events.jsonl"))
        .into_iter()
        .filter(|e| e["type"] == "stage")
        .collect();
    let details = |stage: &str, control: bool| -> Vec<String> {
        stages
            .iter()
            .filter(|e| e["stage"] == stage && e.get("control").is_some() == control)
            .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let mounts = details("mount", false);
    assert_eq!(mounts.len(), 2, "{stages:?}");
    for m in mounts.iter().chain(&details("mount", true)) {
        assert!(
            m.contains("on /dev/block/dm-")
                && m.contains(
                    "dm-verity over /dev/block/vda2 from its AVB footer: partition \"scratch\""
                ),
            "{m}"
        );
    }
    // The image fastboot wrote ends in the AVB footer the agent read, and
    // the run's vbmeta.img carries the same descriptor; the user is told
    // what a device that checks vbmeta needs.
    assert!(
        says(&o).contains("--disable-verification vbmeta"),
        "{}",
        says(&o)
    );
    let disk = std::fs::read(bench.state.join("disk.img")).unwrap();
    let at = (SCRATCH_START * 512) as usize;
    let scratch = &disk[at..at + SCRATCH_BYTES as usize];
    assert_eq!(flashes[0]["bytes"].as_u64(), Some(SCRATCH_BYTES));
    assert_eq!(sha256(scratch), flashes[0]["sha256"].as_str().unwrap());
    let footed = hilt_avb::read_footed(&mut std::io::Cursor::new(scratch), "scratch").unwrap();
    assert_eq!(
        std::fs::read(out.join("vbmeta.img")).unwrap(),
        footed.vbmeta
    );
    for swap in details("swap", false) {
        assert!(
            swap.contains("as the OS set it up") && swap.contains("/dev/block/zram0"),
            "{swap}"
        );
    }
    for swap in details("swap", true) {
        assert!(swap.contains("highest priority"), "{swap}");
    }
    let bootloader = std::fs::read_to_string(bench.state.join("bootloader.log")).unwrap();
    assert!(bootloader.contains("flash:boot"), "{bootloader}");
    let up = json_lines(&out.join("android-boots.jsonl"));
    assert_eq!(up.len(), 4, "{up:?}");
    for b in &up {
        assert!(
            b["running"]
                .as_str()
                .unwrap()
                .starts_with("Linux version 6.1.0-4"),
            "{b}"
        );
        // No SELinux policy on this OS: recorded as such, not assumed.
        assert_eq!(b["selinux"]["found"], "disabled", "{b}");
    }
}

/// Android's own partitions are refused before anything is leased or
/// built, unless the board file allows them; a spare partition that the
/// device has mounted is refused on the run's first boot, before fastboot
/// writes anything.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn android_board_never_flashes_userdata_nor_a_mounted_partition() {
    let bench = AndroidBench::new();
    let file = bench.board_file();
    let original = std::fs::read_to_string(&file).unwrap();
    let plan = bench.plan("android", "");

    let onto_userdata = original
        .replace("    partition: scratch", "    partition: userdata")
        .replace("  image: scratch", "  image: userdata");
    std::fs::write(&file, &onto_userdata).unwrap();
    let (_, run) = bench.run(&plan, "userdata");
    assert_eq!(run.status.code(), Some(2), "{}", says(&run));
    assert!(
        says(&run).contains("one of Android's own partitions"),
        "{}",
        says(&run)
    );
    assert!(
        !bench.state.join("disk.img").exists(),
        "the board was powered on"
    );

    // The same partition under another name: only the device knows it is
    // in use.
    let spare_name = onto_userdata
        .replace("    partition: userdata", "    partition: spare")
        .replace("  image: userdata", "  image: spare")
        .replace(
            "  userdata: /dev/block/by-name/userdata",
            "  userdata: /dev/block/by-name/userdata\n  spare: /dev/block/by-name/userdata",
        );
    std::fs::write(&file, spare_name).unwrap();
    let (out, o) = bench.run(&plan, "mounted");
    let before = std::fs::read(bench.state.join("userdata.img")).unwrap();
    assert_eq!(
        bench.userdata(),
        before,
        "userdata was written\n{}",
        says(&o)
    );
    let recs = records(&out);
    assert!(!recs.is_empty(), "{}", says(&o));
    for r in &recs {
        assert_eq!(r.outcome, Outcome::InfraError, "{r:?}");
    }
    assert!(
        recs.iter()
            .any(|r| r.detail.contains("is mounted at /mnt/userdata")),
        "{recs:?}"
    );
    assert!(
        !out.join("flash.jsonl").exists(),
        "fastboot flashed the image"
    );

    // The lab's way into the bootloader (a key held at power on, the board
    // file's bootloader_on), with hilt sizing zram itself and putting
    // Android's back: the same board, now on its spare partition, and with
    // no swap partition named, as on most devices: the control's swap goes
    // on a zram device the agent adds.
    let no_swap_partition = original.replace("  swap: swap\n", "");
    assert_ne!(no_swap_partition, original);
    std::fs::write(&file, &no_swap_partition).unwrap();
    // One kernel is enough here: the Android plan above ran both.
    let plan = bench.plan("android-key", "controls:\n  - swap_freeze\n");
    let (out, o) = bench.run(&plan, "bootloader-key");
    assert!(o.status.success(), "{}", says(&o));
    let recs = records(&out);
    control_suspected_by_watcher(&recs, "adb");
    let runs: Vec<_> = recs.iter().filter(|r| r.control.is_none()).collect();
    assert_eq!(runs.len(), 1, "{recs:?}");
    assert_eq!(runs[0].outcome, Outcome::Pass, "{}", runs[0].detail);
    assert_eq!(runs[0].kernel_release.as_ref(), Some(&bench.releases[0]));
    assert!(
        runs[0].reads > 0 && runs[0].read_errors == 0,
        "{:?}",
        runs[0]
    );
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(
        events.contains("(dm-linear over /dev/block/zram1, freezable, highest priority)"),
        "the control's swap is not on an added zram device: {events}"
    );
    assert!(
        events.contains("(the OS's 64 MiB") && events.contains("the OS's zram swap restored"),
        "{events}"
    );
    let console = std::fs::read_to_string(out.join("iterations/unpatched-000/console.log"))
        .unwrap_or_default();
    assert_eq!(
        console.matches("android-board: boot completed").count(),
        1,
        "adb was asked, with a key to hold: {console}"
    );
}
