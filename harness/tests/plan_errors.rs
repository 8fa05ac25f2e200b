//! Bad plans are rejected by the real binary with exit code 2 and an error
//! naming the file, line, column, key and what was expected.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `hilt check PLAN`.
fn hilt_check(plan: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hilt"))
        .arg("check")
        .arg(plan)
        .output()
        .unwrap()
}

/// Writes `plan` into a temporary plans/ directory beside symlinks to the
/// repository's boards/ and workloads/, and runs `hilt check` on it.
fn check(plan: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo().join("boards"), dir.path().join("boards")).unwrap();
    std::os::unix::fs::symlink(repo().join("workloads"), dir.path().join("workloads")).unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let path = dir.path().join("plans/p.yaml");
    std::fs::write(&path, plan).unwrap();
    let out = hilt_check(&path);
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "P");
    (out.status.code().unwrap_or(-1), stderr)
}

fn smoke_with(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(repo().join("plans/smoke.yaml")).unwrap();
    assert!(
        text.contains(from),
        "smoke.yaml no longer contains {from:?}"
    );
    text.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn the_shipped_plans_are_valid() {
    // Every plan in plans/, so a new one cannot rot unchecked.
    let mut plans: Vec<String> = std::fs::read_dir(repo().join("plans"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("plans/{n}"))
        .collect();
    plans.sort();
    for p in [
        "plans/smoke.yaml",
        "plans/erofs-noio-ab.yaml",
        "plans/erofs-noio-clean-ab.yaml",
        "plans/smoke-source.yaml",
    ] {
        assert!(plans.iter().any(|x| x == p), "{p} is missing from plans/");
    }
    for p in &plans {
        let out = hilt_check(&repo().join(p));
        assert!(
            out.status.success(),
            "{p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn unknown_key_names_line_column_key_and_the_accepted_keys() {
    let plan = smoke_with(
        "  erofs_on: virtio",
        "  erofs_on: virtio\n  erofs_onn: sdcard",
    );
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&plan, "erofs_onn");
    assert!(
        err.contains(&format!(
            "P:{line}:3: key `storage.erofs_onn`: unknown field `erofs_onn`, expected one of"
        )),
        "{err}"
    );
    assert!(err.contains("`mount_options`"), "{err}");
}

#[test]
fn wrong_type_names_the_key_and_the_expected_type() {
    let plan = smoke_with("iterations: 2", "iterations: many");
    let (code, err) = check(&plan);
    assert_eq!(code, 2);
    let line = line_of(&plan, "iterations: many");
    assert!(
        err.contains(&format!(
            "P:{line}:13: key `iterations`: invalid type: string \"many\", expected u32"
        )),
        "{err}"
    );
}

#[test]
fn impossible_value_names_the_range() {
    let plan = smoke_with("pcluster_kb: 64", "pcluster_kb: 48");
    let (code, err) = check(&plan);
    assert_eq!(code, 2);
    let line = line_of(&plan, "pcluster_kb: 48");
    assert!(err.contains(&format!("P:{line}:16: key `image.pcluster_kb`: 48 is not allowed: expected a power of two from 4 to 1024")), "{err}");
}

#[test]
fn missing_workload_file_is_located() {
    let plan = smoke_with("  - readers-seq-1", "  - readers-nonexistent");
    let (code, err) = check(&plan);
    assert_eq!(code, 2);
    let line = line_of(&plan, "readers-nonexistent");
    assert!(
        err.contains(&format!("P:{line}:5: key `workloads[1]`: no workload file")),
        "{err}"
    );
    assert!(err.contains("readers-nonexistent.yaml"), "{err}");
}

#[test]
fn bad_enum_value_lists_the_variants() {
    let plan = smoke_with("erofs_on: virtio", "erofs_on: nvme");
    let (code, err) = check(&plan);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "key `storage.erofs_on`: unknown variant `nvme`, expected `virtio` or `sdcard`"
        ),
        "{err}"
    );
}

#[test]
fn duplicate_variant_and_missing_field_are_reported() {
    let plan = smoke_with("  - name: patched", "  - name: unpatched");
    let (code, err) = check(&plan);
    assert_eq!(code, 2);
    assert!(
        err.contains("key `variants[1].name`: duplicate variant name \"unpatched\""),
        "{err}"
    );

    let plan = smoke_with("duration_s: 20\n", "");
    let (code, err) = check(&plan);
    assert_eq!(code, 2);
    assert!(err.contains("missing field `duration_s`"), "{err}");
    assert!(err.starts_with("error: P:"), "{err}");
}

#[test]
fn board_file_errors_name_the_board_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("boards")).unwrap();
    std::os::unix::fs::symlink(repo().join("workloads"), dir.path().join("workloads")).unwrap();
    let board = std::fs::read_to_string(repo().join("boards/qemu-virt-a53.yaml"))
        .unwrap()
        .replace("memory_mb: 256", "memory_mb: 64");
    std::fs::write(dir.path().join("boards/qemu-virt-a53.yaml"), &board).unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let plan = dir.path().join("plans/p.yaml");
    std::fs::copy(repo().join("plans/smoke.yaml"), &plan).unwrap();
    let out = hilt_check(&plan);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    let line = line_of(&board, "memory_mb: 64");
    assert!(err.contains(&format!("boards/qemu-virt-a53.yaml:{line}:14: key `qemu.memory_mb`: 64 is out of range: expected 128 to 16384")), "{err}");
}

#[test]
fn fault_bytes_are_only_for_a_console_flood_and_bounded() {
    let base = std::fs::read_to_string(repo().join("plans/smoke.yaml")).unwrap();
    let (code, err) =
        check(&(base.clone() + "faults:\n  - { kind: power_loss, after_s: 2, bytes: 100 }\n"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("faults[0].bytes") && err.contains("only to kind: console_flood"),
        "{err}"
    );
    let (code, err) =
        check(&(base.clone() + "faults:\n  - { kind: console_flood, after_s: 2, bytes: 0 }\n"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("faults[0].bytes") && err.contains("out of range"),
        "{err}"
    );
    let (code, err) = check(
        &(base.clone()
            + "faults:\n  - { kind: console_flood, after_s: 2, bytes: 4096 }\n  - { kind: console_close, after_s: 3 }\n  - { kind: channel_garbage, after_s: 4 }\n  - { kind: sampler_freeze, after_s: 3, for_s: 35 }\n"),
    );
    assert_eq!(code, 0, "{err}");
    let (code, err) =
        check(&(base.clone() + "faults:\n  - { kind: agent_mute, after_s: 2, for_s: 10 }\n"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("faults[0].for_s") && err.contains("only to kind: sampler_freeze"),
        "{err}"
    );
    let (code, err) =
        check(&(base + "faults:\n  - { kind: sampler_freeze, after_s: 2, for_s: 0 }\n"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("faults[0].for_s") && err.contains("out of range"),
        "{err}"
    );
}

#[test]
fn board_lists_and_instances_are_checked() {
    let both = smoke_with(
        "board: qemu-virt-a53",
        "board: qemu-virt-a53\nboards: [le-potato]",
    );
    let (code, err) = check(&both);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&both, "boards:");
    assert!(
        err.contains(&format!("P:{line}:9: key `boards`: expected either `board:` (one board) or `boards:` (several), not both")),
        "{err}"
    );

    let twice = smoke_with(
        "board: qemu-virt-a53",
        "boards: [qemu-virt-a53, qemu-virt-a53]",
    );
    let (code, err) = check(&twice);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `boards[1]`: board \"qemu-virt-a53\" is named twice: to run several copies of an emulated board, use `instances:`"),
        "{err}"
    );

    let real = smoke_with("board: qemu-virt-a53", "boards: [le-potato]\ninstances: 2")
        .replace("machine:\n  memory_mb: 256\n", "");
    let (code, err) = check(&real);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `instances`: copies of a board exist only for emulated boards"),
        "{err}"
    );

    let many = smoke_with(
        "board: qemu-virt-a53",
        "board: qemu-virt-a53\ninstances: 65",
    );
    let (code, err) = check(&many);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `instances`: 65 is out of range: expected 1 to 64"),
        "{err}"
    );

    let ok = smoke_with(
        "board: qemu-virt-a53",
        "boards: [qemu-virt-a53]\ninstances: 3",
    );
    let dir = tempfile::tempdir().unwrap();
    for d in ["boards", "workloads"] {
        std::os::unix::fs::symlink(repo().join(d), dir.path().join(d)).unwrap();
    }
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    std::fs::write(dir.path().join("plans/p.yaml"), ok).unwrap();
    let out = hilt_check(&dir.path().join("plans/p.yaml"));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("on qemu-virt-a53, qemu-virt-a53-2, qemu-virt-a53-3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn source_kernel_errors_are_located() {
    let source = |body: &str| {
        smoke_with(
            "    kernel:\n      debian: linux-image-6.1.0-44-arm64=6.1.164-1",
            &format!("    kernel:\n      source:\n{body}"),
        )
    };
    // Neither a package nor a path.
    let plan = source("        config: board\n");
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `variants[0].kernel.source`: expected exactly one of `debian: linux-source-<version>` or `path: <kernel tree>`"),
        "{err}"
    );
    // A binary package where the source package belongs.
    let plan = source("        debian: linux-image-6.1.0-44-arm64\n");
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "P:{}:",
            line_of(&plan, "        debian: linux-image")
        )),
        "{err}"
    );
    assert!(
        err.contains("expected Debian's kernel source package"),
        "{err}"
    );
    // A missing patch, by its list index.
    let plan = source(
        "        debian: linux-source-6.1\n        revert:\n          - ../patches/x.patch\n",
    );
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&plan, "- ../patches/x.patch");
    assert!(
        err.contains(&format!(
            "P:{line}:13: key `variants[0].kernel.source.revert[0]`: no file"
        )),
        "{err}"
    );
    assert!(err.contains("expected a patch to revert"), "{err}");
    // Unknown keys inside source are rejected with the accepted ones.
    let plan = source("        debian: linux-source-6.1\n        patch: [a]\n");
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown field `patch`"), "{err}");
    assert!(err.contains("`patches`"), "{err}");
    // prebuilt with both an Image and a .deb.
    let plan = smoke_with(
        "    kernel:\n      debian: linux-image-6.1.0-44-arm64=6.1.164-1",
        "    kernel:\n      prebuilt:\n        image: ../boards/qemu-virt-a53.yaml\n        deb: x.deb",
    );
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `variants[0].kernel.prebuilt`: expected either `image:`"),
        "{err}"
    );
    // An Image without its lib/modules/<release>.
    let plan = smoke_with(
        "    kernel:\n      debian: linux-image-6.1.0-44-arm64=6.1.164-1",
        "    kernel:\n      prebuilt:\n        image: ../boards/qemu-virt-a53.yaml",
    );
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `variants[0].kernel.prebuilt`: `image:` needs `modules:`"),
        "{err}"
    );
}

/// A board `hilt run` cannot drive (an Android board whose image goes in
/// with fastboot; an SSH board with no way to write the image) is
/// refused before anything is leased or built, and the error says what its
/// file lacks; a bench board file that names a partition it does not have
/// is a board-file error with its position.
#[test]
fn run_refuses_boards_it_cannot_drive_and_bad_bench_storage() {
    let dir = tempfile::tempdir().unwrap();
    let hilt_run_refused = |plan: &Path| {
        Command::new(env!("CARGO_BIN_EXE_hilt"))
            .arg("run")
            .arg(plan)
            .arg("--out")
            .arg(dir.path().join("run"))
            .env("HILT_LEASES", dir.path().join("leases"))
            .output()
            .unwrap()
    };
    std::fs::create_dir_all(dir.path().join("boards")).unwrap();
    std::os::unix::fs::symlink(repo().join("workloads"), dir.path().join("workloads")).unwrap();
    for b in ["khadas-vim3", "bench-emulated", "ssh-emulated"] {
        std::fs::copy(
            repo().join(format!("boards/{b}.yaml")),
            dir.path().join(format!("boards/{b}.yaml")),
        )
        .unwrap();
    }
    // Without its `boot: {android_fastboot}`, the VIM3's file is a board
    // with its own OS over adb that only fastboot can flash.
    let vim3 = dir.path().join("boards/khadas-vim3.yaml");
    let text = std::fs::read_to_string(&vim3).unwrap();
    let start = text.find("boot:\n").unwrap();
    let end = start + text[start..].find("agent:").unwrap();
    std::fs::write(&vim3, format!("{}{}", &text[..start], &text[end..])).unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let plan = dir.path().join("plans/p.yaml");
    let text = std::fs::read_to_string(repo().join("plans/smoke-bench.yaml")).unwrap();
    std::fs::write(
        &plan,
        text.replace("board: bench-emulated", "board: khadas-vim3"),
    )
    .unwrap();
    let out = hilt_run_refused(&plan);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("board khadas-vim3") && err.contains("flash: {adb_dd: {partition: <name>}}"),
        "{err}"
    );
    assert!(!dir.path().join("run").exists());

    let ssh = dir.path().join("boards/ssh-emulated.yaml");
    let text = std::fs::read_to_string(&ssh).unwrap();
    std::fs::write(
        &ssh,
        text.replace("flash:\n  ssh_dd:\n    partition: data\n", ""),
    )
    .unwrap();
    std::fs::write(
        &plan,
        std::fs::read_to_string(repo().join("plans/smoke-bench.yaml"))
            .unwrap()
            .replace("board: bench-emulated", "board: ssh-emulated"),
    )
    .unwrap();
    let out = hilt_run_refused(&plan);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("board ssh-emulated") && err.contains("flash: {ssh_dd: {partition: <name>}}"),
        "{err}"
    );
    assert!(!dir.path().join("run").exists());

    let bench = dir.path().join("boards/bench-emulated.yaml");
    let text = std::fs::read_to_string(&bench).unwrap();
    std::fs::write(&bench, text.replace("  swap: swap\n", "  swap: swp\n")).unwrap();
    std::fs::write(
        &plan,
        std::fs::read_to_string(repo().join("plans/smoke-bench.yaml")).unwrap(),
    )
    .unwrap();
    let out = hilt_check(&plan);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bench-emulated.yaml:")
            && err.contains("storage.swap")
            && err.contains("\"swp\""),
        "{err}"
    );
}

#[test]
fn the_stopping_rule_and_signature_expectations_are_checked() {
    let sig = "signatures:\n  - name: seed\n    frames: [a, \"b|c\"]\n";
    // A plan whose question is well formed passes.
    let (code, err) = check(&format!(
        "{}{sig}stop:\n  alpha: 0.01\n  max_iterations: 6\n",
        smoke_with("", "")
    ));
    assert_eq!(code, 0, "{err}");

    // Too few iterations to ever reach α: refused before the run, not found out after it.
    let text = format!("{}{sig}stop:\n  alpha: 0.01\n", smoke_with("", ""));
    let (code, err) = check(&text);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("P:{}:", line_of(&text, "iterations: 2")))
            && err.contains("key `iterations`")
            && err.contains("can never reach α = 0.01: expected at least 6"),
        "{err}"
    );

    let text = smoke_with("", "") + "stop:\n  alpha: 0.01\n";
    let (code, err) = check(&text);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("P:{}:", line_of(&text, "alpha: 0.01")))
            && err.contains("key `stop`")
            && err.contains("expected `signatures:`"),
        "{err}"
    );

    let text = format!("{}{sig}stop:\n  alpha: 0.7\n", smoke_with("", ""));
    let (code, err) = check(&text);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("P:{}:", line_of(&text, "alpha: 0.7")))
            && err.contains("stop.alpha")
            && err.contains("expected a level above 0 and below 0.5"),
        "{err}"
    );

    let text = smoke_with("", "") + &sig.replace("\"b|c\"]\n", "\"b|c\"]\n    absent_in: fixed\n");
    let (code, err) = check(&text);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("P:{}:", line_of(&text, "absent_in")))
            && err.contains("signatures[0].absent_in")
            && err.contains("expected one of unpatched, patched"),
        "{err}"
    );

    let text = smoke_with("", "") + &sig.replace("\"b|c\"", "\"b||c\"");
    let (code, err) = check(&text);
    assert_eq!(code, 2);
    assert!(
        err.contains("signatures[0].frames") && err.contains("a|b for either"),
        "{err}"
    );

    let text = smoke_with("deadlock_window_s: 30", "deadlock_window_s: 7200");
    let (code, err) = check(&text);
    assert_eq!(code, 2);
    assert!(
        err.contains("watch.deadlock_window_s") && err.contains("expected 0 to 3600"),
        "{err}"
    );
}

/// `hilt check` on smoke.yaml with boards/qemu-virt-a53.yaml replaced by
/// `board` (a bench board's fields are checked the same way: board errors
/// come before the plan's). Returns the exit code and stderr, the board
/// file's path replaced by B.
fn check_board(board: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("boards")).unwrap();
    std::os::unix::fs::symlink(repo().join("workloads"), dir.path().join("workloads")).unwrap();
    let path = dir.path().join("boards/qemu-virt-a53.yaml");
    std::fs::write(&path, board).unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let plan = dir.path().join("plans/p.yaml");
    std::fs::copy(repo().join("plans/smoke.yaml"), &plan).unwrap();
    let out = hilt_check(&plan);
    let err = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "B");
    (out.status.code().unwrap_or(-1), err)
}

fn board_with(file: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    assert!(text.contains(from), "{file} no longer contains {from:?}");
    text.replacen(from, to, 1)
}

/// Values that reach a kernel, U-Boot, shell or make command line are
/// refused by `hilt check`, located, before any board is powered on.
#[test]
fn values_for_command_lines_are_checked_before_a_board_is_touched() {
    let cases: Vec<(String, &str, &str)> = vec![
        // Would add init=/bin/sh to the kernel command line.
        (
            board_with("boards/le-potato.yaml", "kernel_console: ttyAML0,115200", "kernel_console: \"ttyAML0 init=/bin/sh\""),
            "kernel_console: \"ttyAML0",
            "key `kernel_console`: \"ttyAML0 init=/bin/sh\": expected the kernel's name for the console UART",
        ),
        // Would run `reset` in U-Boot's shell, once the board is on.
        (
            board_with("boards/le-potato.yaml", "    root: /srv/tftp", "    root: /srv/tftp\n    serverip: \"10.0.0.1;reset\""),
            "serverip:",
            "key `boot.uboot_tftp.serverip`: \"10.0.0.1;reset\": expected an IPv4 address",
        ),
        (
            board_with("boards/le-potato.yaml", "    root: /srv/tftp", "    root: /srv/tftp\n    serverip: 10.0.0.1\n    ipaddr: 10.0.0.2\n    netmask: 255.0.255.0"),
            "netmask:",
            "key `boot.uboot_tftp.netmask`: \"255.0.255.0\": expected a netmask",
        ),
        (
            board_with("boards/qemu-virt-a53.yaml", "append: \"\"", "append: \"quiet' ; reset\""),
            "append:",
            "key `qemu.append`: ",
        ),
        (
            board_with("boards/le-potato.yaml", "data: /dev/mmcblk1p3", "data: \"/dev/mmcblk1p3 of=/dev/mmcblk1\""),
            "data: \"/dev",
            "key `partitions.data`: \"/dev/mmcblk1p3 of=/dev/mmcblk1\": expected a device node on the board",
        ),
        (
            board_with("boards/ssh-emulated.yaml", "kernel_path: /boot/Image", "kernel_path: /boot/../etc/Image"),
            "kernel_path:",
            "key `kernel_path`: \"/boot/../etc/Image\": expected an absolute path on the board",
        ),
        (
            board_with("boards/android-adb.yaml", "target: 0123456789ABCDEF", "target: -w"),
            "target: -w",
            "key `fastboot.target`: \"-w\": expected a USB serial or tcp:HOST:PORT",
        ),
        (
            board_with("boards/le-potato.yaml", "  user: root", "  user: \"-oProxyCommand=x\""),
            "user:",
            "key `ssh.user`: ",
        ),
        (
            board_with("boards/le-potato.yaml", "  prompt: \"=> \"", "  prompt: \"\""),
            "prompt:",
            "key `uboot.prompt`: \"\": expected U-Boot's prompt",
        ),
    ];
    for (board, at, want) in cases {
        let (code, err) = check_board(&board);
        assert_eq!(code, 2, "{want}: {err}");
        let line = line_of(&board, at);
        assert!(
            err.starts_with(&format!("error: B:{line}:")),
            "{want}: {err}"
        );
        assert!(err.contains(want), "{want}: {err}");
    }

    // A config "target" that is an option to make is a (missing) file.
    let plan = smoke_with(
        "    kernel:\n      debian: linux-image-6.1.0-44-arm64=6.1.164-1",
        "    kernel:\n      source:\n        debian: linux-source-6.1\n        config: -fconfig\n",
    );
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&plan, "config: -fconfig");
    assert!(
        err.contains(&format!(
            "P:{line}:17: key `variants[0].kernel.source.config`: no file"
        )),
        "{err}"
    );
    // Handed to mount(2) by the agent as they are.
    let plan = smoke_with(
        "  erofs_on: virtio",
        "  erofs_on: virtio\n  mount_options: \"ro x y\"",
    );
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&plan, "mount_options");
    assert!(
        err.contains(&format!("P:{line}:18: key `storage.mount_options`: \"ro x y\": expected comma-separated erofs mount options")),
        "{err}"
    );
    // What the shipped boards and plans hold still passes.
    let (code, err) = check_board(&board_with(
        "boards/qemu-virt-a53.yaml",
        "append: \"\"",
        "append: \"panic=0 rdinit=/nonexistent\"",
    ));
    assert_eq!(code, 0, "{err}");
}

/// `ramoops:` is checked as the kernel and U-Boot's `fdt` would take it,
/// each error located at the value, naming the key and what it expects;
/// and only a board booted through U-Boot and TFTP takes it.
#[test]
fn ramoops_regions_are_checked_where_they_are_written() {
    let potato = |ramoops: &str| {
        board_with(
            "boards/le-potato.yaml",
            "initramfs:\n",
            &format!("ramoops:\n{ramoops}initramfs:\n"),
        )
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            potato("  address: \"3e000000\"\n  size: \"0x100000\"\n"),
            "address:",
            "key `ramoops.address`: \"3e000000\": expected a number in hex with 0x, e.g. \"0x4d000000\"",
        ),
        (
            potato("  address: \"0x3e000800\"\n  size: \"0x100000\"\n"),
            "address:",
            "key `ramoops.address`: 0x3e000800: expected the region's physical address in RAM, 4 KiB aligned",
        ),
        (
            potato("  address: \"0x3e000000\"\n  size: \"0x100\"\n"),
            "size:",
            "key `ramoops.size`: 0x100: expected a multiple of 4 KiB from 0x1000 to 0x40000000",
        ),
        (
            potato("  address: \"0xfffffffffff00000\"\n  size: \"0x200000\"\n"),
            "size:",
            "key `ramoops.size`: 0x200000 at 0xfffffffffff00000 runs past the end of the address space",
        ),
        (
            potato("  address: \"0x3e000000\"\n  size: \"0x100000\"\n  record_size: \"0x30000\"\n"),
            "record_size:",
            "key `ramoops.record_size`: 0x30000: expected a power of two from 0x1000 up to the region's size (0x100000)",
        ),
        (
            potato("  address: \"0x3e000000\"\n  size: \"0x100000\"\n  reserve: bootloader\n"),
            "reserve:",
            "ramoops.reserve",
        ),
        (
            board_with(
                "boards/ssh-emulated.yaml",
                "kernel_path: /boot/Image",
                "kernel_path: /boot/Image\nramoops:\n  address: \"0x4d000000\"\n  size: \"0x100000\"",
            ),
            // A mapping's position is where its first key starts.
            "  address: \"0x4d000000\"",
            "key `ramoops`: only a board booted through U-Boot and TFTP (boot: uboot_tftp) takes `ramoops:`",
        ),
    ];
    for (board, at, want) in cases {
        let (code, err) = check_board(&board);
        assert_eq!(code, 2, "{want}: {err}");
        let line = line_of(&board, at);
        assert!(
            err.starts_with(&format!("error: B:{line}:")),
            "{want}: {err}"
        );
        assert!(err.contains(want), "{want}: {err}");
    }
    // The SD/eMMC pairing check needs the image partition's mmcblk disk.
    let board = board_with(
        "boards/le-potato.yaml",
        "data: /dev/mmcblk1p3",
        "data: /dev/disk/by-partlabel/data",
    );
    let (code, err) = check_board(&board);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&board, "data: /dev/disk");
    assert!(
        err.contains(&format!("B:{line}:9: key `partitions.data`: \"/dev/disk/by-partlabel/data\": with flash: uboot_mmc, expected the partition's node on an SD card or eMMC as hilt's initramfs names it, /dev/mmcblkNpM")),
        "{err}"
    );
    // A good region passes the board's checks (the smoke plan's machine
    // override is then what a real board refuses).
    let (code, err) = check_board(&potato(
        "  address: 0x3e000000\n  size: \"0x100000\"\n  record_size: \"0x20000\"\n  reserve: devicetree\n",
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        !err.contains("ramoops") && err.contains("machine overrides apply only to emulated boards"),
        "{err}"
    );
}

#[test]
fn counts_are_capped() {
    let variants: String = (0..33)
        .map(|i| format!("  - name: v{i}\n    kernel:\n      debian: linux-image-6.1.0-44-arm64\n"))
        .collect();
    let plan = smoke_with(
        "  - name: unpatched\n",
        &format!("{variants}  - name: unpatched\n"),
    );
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&plan, "- name: v0");
    assert!(
        err.contains(&format!(
            "P:{line}:3: key `variants`: 35 variants: expected at most 32"
        )),
        "{err}"
    );

    let frames: Vec<String> = (0..17).map(|i| format!("f{i}")).collect();
    let plan = smoke()
        + &format!(
            "signatures:\n  - name: s\n    frames: [{}]\n",
            frames.join(", ")
        );
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `signatures[0].frames`: 17 frames: expected at most 16"),
        "{err}"
    );

    let plan = smoke_with("iterations: 2", "iterations: 100000");
    let variants: String = (0..9)
        .map(|i| format!("  - name: v{i}\n    kernel:\n      debian: linux-image-6.1.0-44-arm64\n"))
        .collect();
    let plan = plan.replacen(
        "  - name: unpatched\n",
        &format!("{variants}  - name: unpatched\n"),
        1,
    );
    let (code, err) = check(&plan);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `iterations`: 11 variants × 100000 iterations is 1100000 iterations: expected at most 1000000 in all"),
        "{err}"
    );
}

fn smoke() -> String {
    std::fs::read_to_string(repo().join("plans/smoke.yaml")).unwrap()
}

/// An Android board's file names the partition its image goes to: one of
/// Android's own is refused where the file says it, and `hilt check`, not
/// only `hilt run`, asks the board's strategy whether it can drive it.
#[test]
fn android_boards_keep_their_own_partitions_and_check_asks_the_strategy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("boards")).unwrap();
    std::os::unix::fs::symlink(repo().join("workloads"), dir.path().join("workloads")).unwrap();
    let board = std::fs::read_to_string(repo().join("boards/android-emulated.yaml"))
        .unwrap()
        .replace("    partition: scratch", "    partition: userdata");
    let file = dir.path().join("boards/android-emulated.yaml");
    std::fs::write(&file, &board).unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let plan = dir.path().join("plans/p.yaml");
    std::fs::write(
        &plan,
        std::fs::read_to_string(repo().join("plans/smoke-bench.yaml"))
            .unwrap()
            .replace("board: bench-emulated", "board: android-emulated"),
    )
    .unwrap();
    let out = hilt_check(&plan);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = line_of(&board, "partition: userdata");
    assert!(
        err.contains(&format!(
            "boards/android-emulated.yaml:{line}:16: key `flash.fastboot.partition`: \"userdata\" is one of Android's own partitions"
        )),
        "{err}"
    );
    // Allowed by the file, it passes, and without a swap partition the
    // plan's control goes on a zram device the agent adds; but swap on a
    // disk needs the partition, and the strategy says so in `hilt check`.
    let allowed = board
        .replace(
            "    bootloader_on:",
            "    allow_overwrite: [userdata]\n    bootloader_on:",
        )
        .replace("  swap: swap\n", "");
    std::fs::write(&file, &allowed).unwrap();
    let with_control = std::fs::read_to_string(&plan).unwrap() + "controls:\n  - swap_freeze\n";
    std::fs::write(&plan, &with_control).unwrap();
    let out = hilt_check(&plan);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let zram = "swap:\n  zram:\n    size_mb: 128\n";
    assert!(with_control.contains(zram));
    std::fs::write(
        &plan,
        with_control.replace(zram, "swap:\n  disk:\n    size_mb: 64\n"),
    )
    .unwrap();
    let out = hilt_check(&plan);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("board android-emulated") && err.contains("swap partition"),
        "{err}"
    );
}

/// `swap: zram_existing` needs an OS that sets zram up at boot; `hilt check`
/// asks the board's strategy, so a board that boots hilt's initramfs
/// refuses it, and an Android board takes it.
#[test]
fn zram_of_the_os_is_refused_where_hilt_boots_its_own_initramfs() {
    let (code, err) = check(&smoke_with(
        "swap:\n  zram:\n    size_mb: 128\n",
        "swap: zram_existing\n",
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("zram_existing") && err.contains("hilt's initramfs"),
        "{err}"
    );
    let android = std::fs::read_to_string(repo().join("plans/erofs-noio-android.yaml")).unwrap();
    assert!(android.contains("swap: zram_existing"));
    let (code, err) = check(&android);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn verity_takes_true_false_or_avb_and_avb_needs_the_partition_size() {
    let plan = smoke_with("verity: true", "verity: avb");
    let (code, err) = check(&plan);
    assert_eq!(code, 0, "{err}");

    let plan = smoke_with("verity: true", "verity: avbf");
    let (code, err) = check(&plan);
    assert_eq!(code, 2);
    let line = line_of(&plan, "verity: avbf");
    assert!(
        err.contains(&format!(
            "P:{line}:11: key `image.verity`: invalid value: string \"avbf\", expected true, false or avb"
        )),
        "{err}"
    );

    // A real board: the footer goes at the end of its image partition.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("boards")).unwrap();
    std::os::unix::fs::symlink(repo().join("workloads"), dir.path().join("workloads")).unwrap();
    let bench = dir.path().join("boards/bench-emulated.yaml");
    std::fs::copy(repo().join("boards/bench-emulated.yaml"), &bench).unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let plan = dir.path().join("plans/p.yaml");
    let text = std::fs::read_to_string(repo().join("plans/smoke-bench.yaml")).unwrap();
    assert!(text.contains("verity: true"), "smoke-bench.yaml changed");
    let text = text.replacen("verity: true", "verity: avb", 1);
    std::fs::write(&plan, &text).unwrap();
    let out = hilt_check(&plan);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = line_of(&text, "verity: avb");
    assert!(
        err.contains(&format!("p.yaml:{line}:11: key `image.verity`"))
            && err.contains("board bench-emulated")
            && err.contains("image_bytes"),
        "{err}"
    );

    let board = std::fs::read_to_string(&bench).unwrap();
    assert!(
        board.contains("  swap: swap\n"),
        "bench-emulated.yaml changed"
    );
    std::fs::write(
        &bench,
        board.replacen("  swap: swap\n", "  swap: swap\n  image_bytes: 1000\n", 1),
    )
    .unwrap();
    let out = hilt_check(&plan);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bench-emulated.yaml:")
            && err.contains("key `storage.image_bytes`: 1000 is not a partition size"),
        "{err}"
    );
    std::fs::write(
        &bench,
        board.replacen(
            "  swap: swap\n",
            "  swap: swap\n  image_bytes: 268435456\n",
            1,
        ),
    )
    .unwrap();
    let out = hilt_check(&plan);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A board in a labgrid lab: its console and power may come from its
/// place, its `labgrid:` values are checked like any other key, and a
/// board with neither console nor place is told what to add.
#[test]
fn labgrid_board_files_are_checked() {
    let bench = std::fs::read_to_string(repo().join("boards/bench-emulated.yaml")).unwrap();
    let cut = |text: &str, from: &str, to: &str| -> String {
        let a = text.find(from).unwrap();
        let b = a + text[a..].find(to).unwrap() + to.len();
        format!("{}{}", &text[..a], &text[b..])
    };
    let bare = cut(&bench, "console:\n  ser2net:", "protocol: telnet\n");
    let bare = cut(&bare, "power:\n  command:", "/tmp/hilt-bench-emulated]\n");
    let check_board = check_bench_board;
    let lab = |coordinator: &str, place: &str| {
        format!("{bare}labgrid:\n  coordinator: \"{coordinator}\"\n  place: {place}\n")
    };
    let (code, err) = check_board(&lab("lab.example:20408", "bench-1"));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check_board(&bare);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("key `console`: missing: expected the board's `console:`, or `labgrid: {coordinator: HOST:PORT, place: NAME}`"),
        "{err}"
    );
    let bad = lab("lab.example", "bench-1");
    let (code, err) = check_board(&bad);
    assert_eq!(code, Some(2));
    let line = line_of(&bad, "coordinator:");
    assert!(
        err.contains(&format!("boards/bench-emulated.yaml:{line}:16: key `labgrid.coordinator`: \"lab.example\": expected the coordinator's HOST:PORT")),
        "{err}"
    );
    let bad = lab("lab.example:20408", "bench 1");
    let (code, err) = check_board(&bad);
    assert_eq!(code, Some(2));
    let line = line_of(&bad, "place:");
    assert!(
        err.contains(&format!("boards/bench-emulated.yaml:{line}:10: key `labgrid.place`: \"bench 1\": expected a labgrid place name")),
        "{err}"
    );
    // Any place with some tags, reserved; but a place or tags, not both.
    let tagged = format!("{bare}labgrid:\n  coordinator: \"h:1\"\n  tags: {{rig: bench_a}}\n");
    let (code, err) = check_board(&tagged);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check_board(&format!("{}  tags: {{rig: a}}\n", lab("h:1", "p")));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("key `labgrid`: expected either `place: NAME`"),
        "{err}"
    );
    let (code, err) = check_board(&tagged.replace("rig: bench_a", "Rig: x"));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("key `labgrid.tags.Rig`: Rig=x: expected a labgrid tag"),
        "{err}"
    );
    let (code, err) = check_board(&format!("{}  consol: uart\n", lab("h:1", "p")));
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown field `consol`"), "{err}");
}

#[test]
fn a_data_filesystem_is_checked_against_the_card_and_its_readers() {
    let data =
        "storage:\n  erofs_on: sdcard\n  data: {fs: f2fs, size_mb: 128, files: 8, file_mb: 4}";
    let ok = smoke_with("storage:\n  erofs_on: virtio", data);
    let (code, err) = check(&ok);
    assert_eq!(code, 0, "{err}");

    let virtio = smoke_with(
        "storage:\n  erofs_on: virtio",
        "storage:\n  erofs_on: virtio\n  data: {fs: ext4, size_mb: 64}",
    );
    let (code, err) = check(&virtio);
    assert_eq!(code, 2);
    assert!(
        err.contains("key `storage.data`: a data partition needs storage.erofs_on: sdcard"),
        "{err}"
    );

    let small = ok.replace("size_mb: 128", "size_mb: 48");
    let (code, err) = check(&small);
    assert_eq!(code, 2);
    assert!(err.contains("key `storage.data.size_mb`"), "{err}");
    assert!(err.contains("64"), "f2fs' minimum: {err}");

    let full = ok.replace("files: 8, file_mb: 4", "files: 8, file_mb: 16");
    let (code, err) = check(&full);
    assert_eq!(code, 2);
    assert!(
        err.contains("8 files of 16 MiB do not fit on 128 MiB of f2fs"),
        "{err}"
    );

    let fs = ok.replace("fs: f2fs", "fs: btrfs");
    let (code, err) = check(&fs);
    assert_eq!(code, 2);
    assert!(
        err.contains("storage.data.fs") && err.contains("f2fs"),
        "{err}"
    );

    // A reader of /data in a plan that has none.
    let orphan = smoke_with(
        "  - readers-seq-1",
        "  - readers-seq-1\n  - data-readers-seq-1",
    );
    let (code, err) = check(&orphan);
    assert_eq!(code, 2);
    assert!(
        err.contains("data-readers-seq-1: reads `on: data`, and the plan has no storage.data"),
        "{err}"
    );
    let both = ok.replace(
        "  - readers-seq-1",
        "  - readers-seq-1\n  - data-readers-seq-1",
    );
    let (code, err) = check(&both);
    assert_eq!(code, 0, "{err}");
}

/// A board whose SSH comes from its labgrid place's `NetworkService`
/// gives the key and known_hosts in `labgrid.ssh`, and not its own `ssh:`
/// as well.
#[test]
fn ssh_from_a_labgrid_place_is_checked() {
    let text = std::fs::read_to_string(repo().join("boards/ssh-emulated.yaml")).unwrap();
    let a = text.find("\nssh:\n").unwrap() + 1;
    let b = a + text[a..].find("\nflash:").unwrap() + 1;
    let own_ssh = &text[a..b];
    let without = format!("{}{}", &text[..a], &text[b..]).replace("ssh-emulated", "bench-emulated");
    let lab = "labgrid:\n  coordinator: \"lab.example:20408\"\n  place: os-1\n";
    let login = "  ssh: {key: /k/id, known_hosts: /k/known_hosts}\n";

    let (code, err) = check_bench_board(&format!("{without}{lab}{login}"));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check_bench_board(&format!("{without}{lab}"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("agent: ssh needs an `ssh:` section (or, for a board in a labgrid lab, `labgrid: {ssh: {key, known_hosts}}`)"),
        "{err}"
    );
    let (code, err) = check_bench_board(&format!("{without}{own_ssh}{lab}{login}"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("key `labgrid.ssh`: the board has its own `ssh:` too"),
        "{err}"
    );
}

/// `hilt check` of plans/smoke-bench.yaml with `board` as its board
/// (boards/bench-emulated.yaml): the exit code and stderr.
fn check_bench_board(board: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("boards")).unwrap();
    std::os::unix::fs::symlink(repo().join("workloads"), dir.path().join("workloads")).unwrap();
    std::fs::write(dir.path().join("boards/bench-emulated.yaml"), board).unwrap();
    std::fs::create_dir(dir.path().join("plans")).unwrap();
    let plan = dir.path().join("plans/p.yaml");
    std::fs::copy(repo().join("plans/smoke-bench.yaml"), &plan).unwrap();
    let out = hilt_check(&plan);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `install.layout` takes the three presets; `fallback: boot_file` is a
/// mark hilt's own boot script writes, which extlinux has none of.
#[test]
fn install_layouts_and_their_fallbacks_are_checked() {
    let boot_file = board_with(
        "boards/debian-emulated.yaml",
        "  fallback: bootcount",
        "  fallback: boot_file",
    );
    let (code, err) = check_board(&boot_file);
    assert_eq!(code, 2, "{err}");
    let line = line_of(&boot_file, "fallback: boot_file");
    assert!(err.starts_with(&format!("error: B:{line}:")), "{err}");
    assert!(
        err.contains("key `install.fallback`: boot_file is a mark hilt's boot script writes"),
        "{err}"
    );
    for layout in ["boot_scr", "armbian"] {
        let (_, err) =
            check_board(&boot_file.replace("layout: extlinux", &format!("layout: {layout}")));
        assert!(!err.contains("install"), "{layout}: {err}");
    }
    let (code, err) = check_board(&board_with(
        "boards/debian-emulated.yaml",
        "layout: extlinux",
        "layout: grub",
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("layout") && err.contains("boot_scr") && err.contains("armbian"),
        "{err}"
    );
}
