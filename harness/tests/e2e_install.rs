//! A complete kernel install on a board that boots its own Linux, end to
//! end: the emulated board laid out as a Debian board (root filesystem of
//! its own, /boot with extlinux.conf, an initrd holding only what mounting
//! the root needs), booted by scripts/os-board as U-Boot's distro boot
//! boots it. hilt installs a variant's Image, its whole module tree, an
//! initrd of its own and an extlinux entry, and the variant's kernel then
//! boots from what is on the board alone. Slow, so `#[ignore]`d;
//! scripts/test runs it.

mod common;
#[path = "common/os_board.rs"]
mod os_board;

use common::{assert_all_pass, free_port, json_lines, records, repo, says, shared_cache, TestDir};
use hilt_reports::Outcome;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The board's own kernel, then the one a variant brings.
const KERNELS: [&str; 2] = [
    "linux-image-6.1.0-44-arm64=6.1.164-1",
    "linux-image-6.1.0-45-arm64=6.1.170-1",
];

struct Bench {
    tmp: TestDir,
    state: PathBuf,
    releases: Vec<String>,
}

impl Bench {
    fn new() -> Self {
        let tmp = TestDir::new();
        let state = tmp.path().join("board");
        let (console, ssh) = (free_port(), free_port());
        let releases = os_board::build_rooted(&shared_cache(), &KERNELS, &state, ssh);
        let mut board = std::fs::read_to_string(repo().join("boards/debian-emulated.yaml"))
            .unwrap()
            .replace("name: debian-emulated", "name: install-test")
            .replace("/tmp/hilt-debian-emulated", state.to_str().unwrap());
        for (from, to) in [("5572", console), ("5524", ssh)] {
            assert!(
                board.contains(from),
                "debian-emulated.yaml lacks port {from}"
            );
            board = board.replace(from, &to.to_string());
        }
        std::fs::create_dir_all(tmp.path().join("boards")).unwrap();
        std::fs::write(tmp.path().join("boards/install-test.yaml"), board).unwrap();
        for d in ["workloads", "scripts"] {
            std::os::unix::fs::symlink(repo().join(d), tmp.path().join(d)).unwrap();
        }
        Self {
            tmp,
            state,
            releases,
        }
    }

    fn plan(&self, edits: &[(&str, &str)], extra: &str) -> PathBuf {
        common::bench_plan(self.tmp.path(), "install-test", "install", edits, extra)
    }

    fn run(&self, plan: &Path, name: &str) -> (PathBuf, std::process::Output) {
        common::run_in(self.tmp.path(), plan, name)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("scripts/os-board"))
            .arg("off")
            .arg(&self.state)
            .status();
    }
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A kernel whose modules were not built with it: Debian's 6.1.0-45 Image
/// with 6.1.0-44's module tree under 6.1.0-45's name, as happens when a
/// kernel and its modules get out of step. Its banner is changed in place
/// (same length, in the build tag) as another build of one release has
/// another banner: hilt tells kernels apart by it, and this one must not
/// pass for the `patched` variant's. Its initrd's modules are
/// refused (their version magic is 6.1.0-44's), so the root never mounts, /init
/// exits and the kernel panics: a kernel that does not boot, for a reason
/// that is the kernel's and not the lab's.
fn mismatched_kernel(plans: &Path) -> (String, String) {
    let cache = shared_cache();
    let get = |spec: &str| {
        let deb =
            hilt_kernels::fetch(&hilt_kernels::PackageRef::parse(spec).unwrap(), &cache).unwrap();
        let root = hilt_kernels::extract(&deb, &cache).unwrap();
        hilt_kernels::Kernel::from_extracted(&root, &deb.name, &deb.version).unwrap()
    };
    let (k0, k1) = (get(KERNELS[0]), get(KERNELS[1]));
    let dir = plans.join("mismatched");
    std::fs::create_dir_all(dir.join("lib/modules")).unwrap();
    let mut image = std::fs::read(&k1.image).unwrap();
    let banner = hilt_kernels::linux_banner(&image).expect("Debian's Image has a banner");
    let at = image
        .windows(banner.len())
        .position(|w| w == banner.as_bytes())
        .unwrap();
    let tag = banner.find("Debian ").expect("Debian's build tag") + at;
    image[tag..tag + 7].copy_from_slice(b"rebuilt");
    std::fs::write(dir.join("Image"), &image).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&k0.modules_dir)
        .arg(dir.join("lib/modules").join(&k1.release))
        .status()
        .unwrap();
    assert!(st.success());
    (
        "mismatched/Image".into(),
        format!("mismatched/lib/modules/{}", k1.release),
    )
}

/// One run on the Debian-laid-out board, three variants:
/// - `unpatched` is the board's own kernel: nothing is installed.
/// - `patched` is on a kernel the board lacks: after hilt's install the
///   board's firmware boots it from extlinux.conf with hilt's initrd
///   (which loads the variant's own 9p modules to mount the root), its
///   modules are under /lib/modules/<release> on the board's root with
///   depmod's index, and the board's boot loads one with modprobe. Each
///   file is recorded with the sha256 the board read back.
/// - `broken` panics at boot: hilt sees the panic on the console, power
///   cycles it at once, U-Boot's boot count (kept by the emulated firmware) boots the
///   board's own entry, and hilt records "the variant did not boot" as a
///   kernel result and restores the board's extlinux.conf.
#[test]
#[ignore = "boots the emulated board: run by scripts/test"]
fn variants_are_installed_completely_and_one_that_does_not_boot_falls_back() {
    let bench = Bench::new();
    let (image, modules) = mismatched_kernel(&bench.tmp.path().join("plans"));
    let smoke = format!(
        "variants:\n  - name: unpatched\n    kernel:\n      debian: {}\n",
        KERNELS[0]
    );
    let all = format!(
        "{smoke}  - name: patched\n    kernel:\n      debian: {}\n  - name: broken\n    kernel:\n      prebuilt:\n        image: {image}\n        modules: {modules}\n",
        KERNELS[1]
    );
    let plan = bench.plan(
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 8"),
            ("boot_s: 120", "boot_s: 100"),
            (&smoke, &all),
        ],
        "",
    );
    let (out, o) = bench.run(&plan, "install");
    let recs = records(&out);
    assert_eq!(recs.len(), 3, "{}", says(&o));
    let by = |v: &str| {
        recs.iter()
            .find(|r| r.variant == v)
            .unwrap_or_else(|| panic!("no {v}"))
    };
    assert_all_pass(&[by("unpatched").clone(), by("patched").clone()]);
    assert_eq!(
        by("unpatched").kernel_release.as_ref(),
        Some(&bench.releases[0])
    );
    assert_eq!(
        by("patched").kernel_release.as_ref(),
        Some(&bench.releases[1])
    );

    let r1 = &bench.releases[1];
    let lines = json_lines(&out.join("deploy.jsonl"));
    let i = lines
        .iter()
        .find(|l| l["variant"] == "patched")
        .expect("the patched kernel was installed");
    assert_eq!(i["file"]["name"], format!("/boot/vmlinuz-{r1}"));
    let also: Vec<&str> = i["also"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        also,
        [
            format!("/lib/modules/{r1}"),
            format!("/boot/initrd.hilt-{r1}"),
            "/boot/extlinux/extlinux.conf".to_string()
        ]
    );

    // The variant's modules, indexed on the board by its depmod.
    let dep = std::fs::read_to_string(
        bench
            .state
            .join(format!("root/lib/modules/{r1}/modules.dep")),
    )
    .unwrap();
    assert!(
        dep.contains("kernel/drivers/net/dummy.ko:"),
        "modules.dep lacks dummy: {dep}"
    );
    let patched = std::fs::read_to_string(out.join("iterations/patched-000/console.log")).unwrap();
    for needle in [
        "hilt-initrd: root root mounted",
        &format!("os-board: root on 9p, kernel {r1}"),
        "os-board: modprobe dummy: loaded",
    ] {
        assert!(patched.contains(needle), "patched console lacks {needle:?}");
    }
    let unpatched =
        std::fs::read_to_string(out.join("iterations/unpatched-000/console.log")).unwrap();
    assert!(unpatched.contains("os-board: modprobe dummy: loaded"));
    assert!(
        !unpatched.contains("hilt-initrd:"),
        "the board's own kernel boots its own initrd"
    );

    // The broken variant: a kernel result, the board back on its own kernel.
    let broken = by("broken");
    assert_eq!(broken.outcome, Outcome::Crash, "{}", broken.detail);
    for needle in [
        "the variant did not boot",
        "fell back to its own kernel",
        "hilt-initrd: insmod 9p.ko failed",
        // Seen on the console, not waited out for the boot limit.
        "it did not answer (the kernel panicked while booting); after a power cycle",
    ] {
        assert!(
            broken.detail.contains(needle),
            "{needle}: {}",
            broken.detail
        );
    }
    let firmware = std::fs::read_to_string(bench.state.join("firmware.log")).unwrap();
    assert!(
        firmware.contains("booting extlinux.conf entry l0 (altbootcmd: bootcount 2 > bootlimit 1)"),
        "{firmware}"
    );
    let restore = lines
        .iter()
        .find(|l| l["variant"] == "broken" && l.get("restored").is_some())
        .expect("a restore record");
    assert_eq!(restore["restored"]["name"], "/boot/extlinux/extlinux.conf");
    assert!(restore["running"]
        .as_str()
        .unwrap()
        .contains(&bench.releases[0]));
    let boot = bench.state.join("boot/extlinux");
    assert_eq!(
        sha256_of(&boot.join("extlinux.conf")),
        sha256_of(&boot.join("extlinux.conf.hilt-orig")),
        "the board's own extlinux.conf is back"
    );
    assert_eq!(
        restore["restored"]["sha256"].as_str().unwrap(),
        sha256_of(&boot.join("extlinux.conf"))
    );
    let env = std::fs::read_to_string(bench.state.join("boot/uboot.env")).unwrap();
    assert!(
        !env.contains("upgrade_available=1"),
        "the fallback is disarmed: {env}"
    );
}
