//! The board-file keys for real boards' first contact: `initramfs.modules`,
//! checked where it is written (file, line, column) and resolved from each
//! variant's own kernel package into the initramfs that board boots; and
//! `boot.uboot_tftp.serve`, hilt's own TFTP server; and the `uboot:` knobs
//! for vendors' U-Boots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The artifact cache scripts/setup fills, as `hilt` finds it.
fn shared_cache() -> PathBuf {
    std::env::var_os("HILT_CACHE")
        .map(PathBuf::from)
        .unwrap_or(repo().join(".cache"))
}

/// A tree with plans/p.yaml (the bench smoke plan on `board`, both Debian
/// 6.1 kernels that scripts/setup caches), workloads/ and boards/: the
/// repository's board files, with `board`'s own replaced by `board_text`.
fn tree(board: &str, board_text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let boards = dir.path().join("boards");
    std::fs::create_dir(&boards).unwrap();
    for e in std::fs::read_dir(repo().join("boards")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), boards.join(e.file_name())).unwrap();
    }
    std::fs::write(boards.join(format!("{board}.yaml")), board_text).unwrap();
    std::os::unix::fs::symlink(repo().join("workloads"), dir.path().join("workloads")).unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let plan = std::fs::read_to_string(repo().join("plans/smoke-bench.yaml"))
        .unwrap()
        .replace("board: bench-emulated", &format!("board: {board}"))
        .replace(
            "variants:\n",
            "variants:\n  - name: later\n    kernel:\n      debian: linux-image-6.1.0-45-arm64=6.1.170-1\n",
        );
    assert!(plan.contains(&format!("board: {board}")) && plan.contains("6.1.0-45"));
    let path = dir.path().join("plans/p.yaml");
    std::fs::write(&path, plan).unwrap();
    (dir, path)
}

fn hilt(args: &[&str], plan: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hilt"))
        .args(args)
        .arg(plan)
        .env("HILT_CACHE", shared_cache())
        .output()
        .unwrap()
}

fn le_potato_with(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(repo().join("boards/le-potato.yaml")).unwrap();
    assert!(text.contains(from), "le-potato.yaml no longer has {from:?}");
    text.replacen(from, to, 1)
}

fn check_fails(board: &str, text: &str) -> String {
    let (_dir, plan) = tree(board, text);
    let out = hilt(&["check"], &plan);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

const MODULES: &str = "modules: [fixed, gpio-regulator, pwrseq_emmc, meson-gx-mmc]";

#[test]
fn initramfs_module_errors_name_file_line_and_column() {
    let (_dir, plan) = tree(
        "le-potato",
        &std::fs::read_to_string(repo().join("boards/le-potato.yaml")).unwrap(),
    );
    let ok = hilt(&["check"], &plan);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let text = le_potato_with(MODULES, "modules: [fixed, meson-gx-mmc.ko]");
    let err = check_fails("le-potato", &text);
    let line = line_of(&text, "meson-gx-mmc.ko");
    assert!(
        err.contains(&format!(
            "boards/le-potato.yaml:{line}:20: key `initramfs.modules[1]`: \"meson-gx-mmc.ko\": expected the module's name without .ko, e.g. \"meson-gx-mmc\""
        )),
        "{err}"
    );

    let text = le_potato_with(MODULES, "modules: [fixed, \"../evil\"]");
    let err = check_fails("le-potato", &text);
    assert!(
        err.contains(&format!("boards/le-potato.yaml:{line}:20: key `initramfs.modules[1]`: \"../evil\": expected a module name")),
        "{err}"
    );

    let text = le_potato_with(MODULES, "modules: [meson_gx_mmc, fixed, meson-gx-mmc]");
    let err = check_fails("le-potato", &text);
    assert!(
        err.contains(&format!("boards/le-potato.yaml:{line}:34: key `initramfs.modules[2]`: \"meson-gx-mmc\" is listed twice (also initramfs.modules[0]")),
        "{err}"
    );

    let text = le_potato_with(MODULES, "modules: []");
    let err = check_fails("le-potato", &text);
    assert!(
        err.contains(&format!(
            "boards/le-potato.yaml:{line}:12: key `initramfs.modules`: expected at least one module name"
        )),
        "{err}"
    );

    // A board that boots its own OS never boots hilt's initramfs.
    let own = std::fs::read_to_string(repo().join("boards/ssh-emulated.yaml")).unwrap()
        + "initramfs:\n  modules: [meson-gx-mmc]\n";
    let err = check_fails("ssh-emulated", &own);
    let line = own.lines().count();
    assert!(
        err.contains(&format!("boards/ssh-emulated.yaml:{line}:12: key `initramfs.modules`: this board boots its own OS, not hilt's initramfs")),
        "{err}"
    );
}

#[test]
fn tftp_serve_errors_name_file_line_and_column() {
    let bench = std::fs::read_to_string(repo().join("boards/bench-emulated.yaml")).unwrap();
    let root = "    root: /tmp/hilt-bench-emulated/tftp\n";
    assert!(bench.contains(root));
    let with = |serve: &str| bench.replacen(root, &format!("{root}    serve: {serve}\n"), 1);

    let ok = with("{port: 6969, address: 127.0.0.1}");
    let (_dir, plan) = tree("bench-emulated", &ok);
    let out = hilt(&["check"], &plan);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = with("{port: 0}");
    let err = check_fails("bench-emulated", &text);
    let line = line_of(&text, "serve:");
    assert!(
        err.contains(&format!("boards/bench-emulated.yaml:{line}:19: key `boot.uboot_tftp.serve.port`: expected a UDP port from 1 to 65535")),
        "{err}"
    );
    let text = with("{address: tftp.lab}");
    let err = check_fails("bench-emulated", &text);
    assert!(
        err.contains(&format!("boards/bench-emulated.yaml:{line}:22: key `boot.uboot_tftp.serve.address`: \"tftp.lab\": expected an IP address of this host")),
        "{err}"
    );
    let text = with("{port: 69, root: /srv}");
    let err = check_fails("bench-emulated", &text);
    assert!(err.contains("unknown field `root`"), "{err}");
}

#[test]
fn uboot_knob_errors_name_file_line_and_column() {
    let n2 = std::fs::read_to_string(repo().join("boards/odroid-n2.yaml")).unwrap();
    let (_dir, plan) = tree("odroid-n2", &n2);
    let out = hilt(&["check"], &plan);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let edit = |from: &str, to: &str| {
        assert!(n2.contains(from), "odroid-n2.yaml lacks {from:?}");
        n2.replacen(from, to, 1)
    };
    for (from, to, key, col, msg) in [
        (
            "char_delay_ms: 1",
            "char_delay_ms: 500",
            "uboot.char_delay_ms",
            18,
            "500 is out of range: expected 0 to 100",
        ),
        (
            "max_line: 255",
            "max_line: 64",
            "uboot.max_line",
            13,
            "64 is out of range: expected 128 to 4096",
        ),
        (
            "  max_line: 255\n",
            "  max_line: 255\n  addresses: {kernel_addr_r: \"8080000\"}\n",
            "uboot.addresses.kernel_addr_r",
            30,
            "\"8080000\": expected an address in hex with 0x",
        ),
        (
            "    - \"Hit any key to stop autoboot\"",
            "    - \"\"",
            "uboot.autoboot_text[1]",
            7,
            "\"\": expected the line U-Boot prints while counting down",
        ),
    ] {
        let text = edit(from, to);
        let err = check_fails("odroid-n2", &text);
        let needle = to.trim_start().lines().last().unwrap().trim();
        let needle = needle.split(':').next().unwrap();
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .map(|(i, _)| i + 1)
            .last()
            .unwrap();
        assert!(
            err.contains(&format!(
                "boards/odroid-n2.yaml:{line}:{col}: key `{key}`: {msg}"
            )),
            "{err}"
        );
    }
}

/// Runs `hilt fetch` and returns its standard error (where it reports).
fn fetch(plan: &Path) -> (bool, String) {
    let out = hilt(&["fetch"], plan);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Unpacks a newc cpio with Debian's cpio into `into`.
fn unpack(cpio: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let out = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames", "-F"])
        .arg(cpio)
        .current_dir(into)
        .output()
        .expect("cpio (apt-get install cpio)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn modinfo_field(ko: &Path, field: &str) -> Vec<String> {
    let out = Command::new("/sbin/modinfo")
        .args(["-F", field])
        .arg(ko)
        .output()
        .expect("modinfo (kmod)");
    assert!(out.status.success(), "modinfo {}", ko.display());
    String::from_utf8_lossy(&out.stdout)
        .split([',', '\n'])
        .map(|s| s.trim().replace('-', "_"))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The Debian package's modules.builtin, as module names.
fn builtin_of(release: &str) -> Vec<String> {
    let pkg = std::fs::read_dir(shared_cache().join("extracted"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("linux-image-{release}_"))
        })
        .expect("the kernel package scripts/setup extracts");
    std::fs::read_to_string(pkg.join(format!("lib/modules/{release}/modules.builtin")))
        .unwrap()
        .lines()
        .map(|l| {
            l.rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".ko")
                .replace('-', "_")
        })
        .collect()
}

/// The `(variant, release, initramfs)` lines `hilt fetch` printed for `board`.
fn board_initramfs(report: &str, board: &str) -> Vec<(String, PathBuf)> {
    report
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("hilt: ")?;
            let (variant, rest) = rest.split_once(&format!(": board {board}: initramfs "))?;
            let path = rest.split(" (loads ").next()?;
            path.ends_with(".cpio")
                .then(|| (variant.to_string(), PathBuf::from(path)))
        })
        .collect()
}

#[test]
#[ignore = "needs the Debian 6.1 kernels and busybox that scripts/setup caches, and the board agent"]
fn le_potato_initramfs_loads_the_meson_mmc_driver_after_its_dependencies() {
    let text = std::fs::read_to_string(repo().join("boards/le-potato.yaml")).unwrap();
    assert!(text.contains(MODULES), "le-potato.yaml's modules changed");
    let (dir, plan) = tree("le-potato", &text);
    let (ok, report) = fetch(&plan);
    assert!(ok, "{report}");
    let built = board_initramfs(&report, "le-potato");
    assert_eq!(built.len(), 2, "one initramfs per variant: {report}");
    for (variant, release) in [("later", "6.1.0-45-arm64"), ("unpatched", "6.1.0-44-arm64")] {
        // Debian builds pwrseq_emmc in: reported, and nothing added.
        assert!(
            report.contains(&format!("{variant}: board le-potato: initramfs loads"))
                && report.contains(&format!(
                    "for kernel {release}; built in, so not added: pwrseq_emmc"
                )),
            "{report}"
        );
        let cpio = &built.iter().find(|(v, _)| v == variant).unwrap().1;
        let root = dir.path().join(format!("unpacked-{variant}"));
        unpack(cpio, &root);
        let order: Vec<String> = std::fs::read_to_string(root.join("etc/hilt/modules"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        for want in ["meson-gx-mmc.ko", "fixed.ko", "gpio-regulator.ko"] {
            assert!(order.iter().any(|m| m == want), "{want} in {order:?}");
            assert!(root.join("lib/modules").join(want).is_file(), "{want}");
        }
        assert!(
            !root.join("lib/modules/pwrseq_emmc.ko").exists(),
            "a built-in driver adds no file"
        );
        // /init loads them in the file's order, the one that was checked here.
        let init = std::fs::read_to_string(root.join("init")).unwrap();
        assert!(init.contains("done < /etc/hilt/modules"), "{init}");
        // Every module's dependencies, as modinfo reads them from the very
        // files in the cpio, come before it or are built into the kernel;
        // and the board's own modules come after every board's ones.
        let builtin = builtin_of(release);
        let mut loaded: Vec<String> = Vec::new();
        for file in &order {
            let ko = root.join("lib/modules").join(file);
            for dep in modinfo_field(&ko, "depends") {
                assert!(
                    loaded.contains(&dep) || builtin.contains(&dep),
                    "{file} needs {dep}, which is neither loaded before it nor built in: {order:?}"
                );
            }
            loaded.extend(modinfo_field(&ko, "name"));
        }
        let pos = |m: &str| order.iter().position(|x| x == m).unwrap();
        assert!(pos("fixed.ko") < pos("gpio-regulator.ko"));
        assert!(pos("gpio-regulator.ko") < pos("meson-gx-mmc.ko"));
        assert!(pos("dm-verity.ko") < pos("meson-gx-mmc.ko"));
        assert!(order.len() >= 10, "the storage stack too: {order:?}");
    }

    // A board without the key keeps the plain initramfs.
    let plain = report
        .lines()
        .find(|l| l.starts_with("hilt: unpatched: linux-image-6.1.0-44-arm64"))
        .and_then(|l| l.rsplit("initramfs ").next())
        .map(PathBuf::from)
        .expect("the variant's own initramfs");
    let root = dir.path().join("unpacked-plain");
    unpack(&plain, &root);
    assert!(!root.join("lib/modules/meson-gx-mmc.ko").exists());

    // A name the kernel has neither as a module nor built in.
    let text = le_potato_with(MODULES, "modules: [meson-gx-mmc, meson-nonesuch-mmc]");
    let (_dir2, plan) = tree("le-potato", &text);
    let (ok, report) = fetch(&plan);
    assert!(!ok);
    assert!(
        report.contains(
            "board le-potato: initramfs.modules names meson_nonesuch_mmc, which kernel 6.1.0-4"
        ),
        "{report}"
    );
    assert!(report.contains("nor built in"), "{report}");
}

/// A port hilt's TFTP server cannot bind fails the run before any board is
/// leased or anything built, not every boot as an infrastructure error.
#[test]
fn a_tftp_port_in_use_stops_the_run_before_it_starts() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let bench = std::fs::read_to_string(repo().join("boards/bench-emulated.yaml")).unwrap();
    let root = "    root: /tmp/hilt-bench-emulated/tftp\n";
    let text = bench.replacen(
        root,
        &format!("{root}    serve: {{port: {port}, address: 127.0.0.1}}\n"),
        1,
    );
    let (dir, plan) = tree("bench-emulated", &text);
    let out = Command::new(env!("CARGO_BIN_EXE_hilt"))
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(dir.path().join("run"))
        .arg("--quiet")
        .env("HILT_LEASES", dir.path().join("leases"))
        .env("HILT_HISTORY", dir.path().join("history.sqlite"))
        .env("HILT_CACHE", dir.path().join("no-cache"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "board bench-emulated: hilt cannot serve TFTP on 127.0.0.1 port {port}"
        )) && err.contains("another TFTP server"),
        "{err}"
    );
    assert!(!dir.path().join("no-cache").exists(), "nothing was built");
    drop(taken);
}
