//! The checks of a board file.

use std::path::Path;

use super::{is_name, Check, MAX_ARGS, MAX_MODULES, MAX_PARTITIONS};
use crate::plan::load::Loaded;
use crate::plan::model::*;
use crate::plan::PlanError;

/// Each value on its own first, then what the sections need of each other;
/// as for a plan, the order decides which error the user sees.
pub fn board(file: &Path, doc: &Loaded<BoardFile>) -> Result<(), PlanError> {
    let c = Check { file, doc };
    let b = &doc.value;
    c.name("name", &b.name)?;
    c.text("description", &b.description)?;
    if let Some(soc) = &b.soc {
        c.word("soc", soc, "._-", "a SoC name such as amlogic-s905x")?;
    }
    board_values(&c, b)?;
    labgrid_values(&c, b)?;
    console_line_and_power_lists(&c, b)?;
    needed_sections(&c, b)?;
    flash_partition_listed(&c, b)?;
    uboot_tftp_needs(&c, b)?;
    android_needs(&c, b)?;
    storage_partitions_listed(&c, b)?;
    initramfs_used(&c, b)?;
    ramoops_used(&c, b)?;
    install_used(&c, b)?;
    emulation(&c, b)
}

/// Every board value that ends up on a kernel, U-Boot, shell or tool
/// command line, checked here so that `hilt check` refuses it rather than
/// the board after it was powered on (or not at all).
fn board_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    kernel_values(c, b)?;
    qemu_values(c, b)?;
    partition_values(c, b)?;
    uboot_tftp_values(c, b)?;
    uboot_values(c, b)?;
    ramoops_values(c, b)?;
    initramfs_values(c, b)?;
    console_and_power_values(c, b)?;
    transport_values(c, b)
}

fn kernel_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if let Some(k) = &b.kernel_console {
        if !is_kernel_console(k) {
            return Err(c.fail(
                "kernel_console",
                format!("{k:?}: expected the kernel's name for the console UART with optional line settings, e.g. ttyAML0,115200 or ttyS2,1500000n8 (no spaces or `=`: it is one kernel option)"),
            ));
        }
    }
    if let Some(p) = &b.kernel_path {
        c.board_path(
            "kernel_path",
            p,
            "/",
            "an absolute path on the board such as /boot/Image (letters, digits and /._+:@-, no `..`)",
        )?;
    }
    if let Some(i) = &b.install {
        c.board_path(
            "install.boot_dir",
            &i.boot_dir,
            "/",
            "an absolute directory on the board such as /boot (letters, digits and /._+:@-, no `..`)",
        )?;
        if let Some(m) = &i.root_modules {
            module_names(c, "install.root_modules", m)?;
        }
        if let Some(m) = &i.modules {
            module_names(c, "install.modules", m)?;
        }
    }
    Ok(())
}

/// `install:` drives the kernel install of a board that boots its own
/// Linux; `kernel_path` is the older, Image-only way, and two ways to put
/// a kernel on the board would leave which one ran to chance.
fn install_used(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if b.install.is_none() {
        return Ok(());
    }
    if b.kind() != BoardKind::OwnOs {
        return Err(c.fail(
            "install",
            "only a board that boots its own Linux (agent: ssh, or agent: adb without fastboot) installs kernels this way: leave `install:` out",
        ));
    }
    if b.kernel_path.is_some() {
        return Err(c.fail(
            "install",
            "`install:` installs the kernel with its modules and a boot entry; `kernel_path` writes the Image alone: keep one of them (install: is the one that can fall back)",
        ));
    }
    if let Some(i) = &b.install {
        if i.layout == InstallLayout::Extlinux && i.fallback == Some(InstallFallback::BootFile) {
            return Err(c.fail(
                "install.fallback",
                "boot_file is a mark hilt's boot script writes, and with `layout: extlinux` U-Boot reads no script of hilt's: use `fallback: bootcount` (U-Boot's CONFIG_BOOTCOUNT_LIMIT), or `layout: boot_scr`",
            ));
        }
    }
    Ok(())
}

fn qemu_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    let Some(q) = &b.qemu else {
        return Ok(());
    };
    if !is_kernel_cmdline(&q.append) {
        return Err(c.fail(
            "qemu.append",
            format!("{:?}: expected kernel options separated by spaces, at most 1024 printable ASCII characters without quotes, backslashes or `;`", q.append),
        ));
    }
    c.word(
        "qemu.machine",
        &q.machine,
        "._,=-",
        "a QEMU machine type such as virt",
    )?;
    c.word(
        "qemu.cpu",
        &q.cpu,
        "._,=+-",
        "a QEMU CPU model such as cortex-a53",
    )?;
    c.at_most("qemu.extra_args", &q.extra_args, MAX_ARGS, "arguments")
}

/// `partitions:` and the partition `flash:` names; whether that one is
/// listed is checked later, with the other sections.
fn partition_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    c.at_most(
        "partitions",
        &b.partitions.iter().collect::<Vec<_>>(),
        MAX_PARTITIONS,
        "partitions",
    )?;
    for (name, device) in &b.partitions {
        let key = format!("partitions.{name}");
        if !is_name(name) {
            return Err(c.fail(
                &key,
                "expected a partition name of 1-64 characters from [A-Za-z0-9._-]",
            ));
        }
        c.board_path(
            &key,
            device,
            "/dev/",
            "a device node on the board such as /dev/mmcblk1p3 or /dev/block/by-name/userdata",
        )?;
    }
    if let Some(partition) = flash_partition(b) {
        if !is_name(partition) || !partition.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(c.fail(
                "flash",
                format!("partition {partition:?}: expected a partition name of 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit"),
            ));
        }
    }
    Ok(())
}

fn uboot_tftp_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    let Some(BenchBootCfg::UbootTftp(t)) = &b.boot else {
        return Ok(());
    };
    // U-Boot's shell reads these unquoted (`setenv serverip ...`).
    for (key, v) in [
        ("boot.uboot_tftp.serverip", &t.serverip),
        ("boot.uboot_tftp.ipaddr", &t.ipaddr),
    ] {
        if let Some(v) = v {
            c.ipv4(key, v)?;
        }
    }
    if let Some(m) = &t.netmask {
        let mask = u32::from(c.ipv4("boot.uboot_tftp.netmask", m)?);
        if mask.leading_ones() + mask.trailing_zeros() != 32 {
            return Err(c.fail(
                "boot.uboot_tftp.netmask",
                format!("{m:?}: expected a netmask such as 255.255.255.0"),
            ));
        }
    }
    if let Some(serve) = &t.serve {
        if serve.port == 0 {
            return Err(c.fail(
                "boot.uboot_tftp.serve.port",
                "expected a UDP port from 1 to 65535 (69 unless the board's U-Boot has CONFIG_TFTP_PORT)",
            ));
        }
        if serve.address.parse::<std::net::IpAddr>().is_err() {
            return Err(c.fail(
                "boot.uboot_tftp.serve.address",
                format!("{:?}: expected an IP address of this host to listen on, e.g. 0.0.0.0 or 192.168.1.2", serve.address),
            ));
        }
    }
    if t.root.is_empty() || t.root.contains(['\n', '\0']) {
        return Err(c.fail(
            "boot.uboot_tftp.root",
            "expected the TFTP server's root directory",
        ));
    }
    Ok(())
}

fn uboot_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    let Some(u) = &b.uboot else {
        return Ok(());
    };
    c.line(
        "uboot.prompt",
        &u.prompt,
        "U-Boot's prompt, e.g. \"=> \", on one line",
    )?;
    let texts = u.autoboot_text.all();
    if texts.is_empty() || texts.len() > 8 {
        return Err(c.fail(
            "uboot.autoboot_text",
            "expected the line U-Boot prints while counting down, or a list of 1 to 8 of them",
        ));
    }
    for (i, t) in texts.iter().enumerate() {
        let key = match &u.autoboot_text {
            Texts::One(_) => "uboot.autoboot_text".to_string(),
            Texts::Several(_) => format!("uboot.autoboot_text[{i}]"),
        };
        c.line(
            &key,
            t,
            "the line U-Boot prints while counting down, e.g. \"Hit any key to stop autoboot\"",
        )?;
    }
    if u.interrupt.is_empty() || u.interrupt.len() > 16 {
        return Err(c.fail(
            "uboot.interrupt",
            "expected 1 to 16 characters to send to stop autoboot, e.g. \" \" or \"\\u0003\"",
        ));
    }
    c.range("uboot.char_delay_ms", u.char_delay_ms, 0, 100)?;
    // Below 128 the `setenv bootargs` pieces get too short to hold a word.
    c.range("uboot.max_line", u.max_line, 128, 4096)?;
    if let Some(a) = &u.addresses {
        for name in LOAD_ADDRESSES {
            if let Some(v) = a.get(name) {
                let hex = v.strip_prefix("0x").unwrap_or("");
                if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(c.fail(
                        &format!("uboot.addresses.{name}"),
                        format!("{v:?}: expected an address in hex with 0x, e.g. \"0x08080000\" (quoted, or YAML reads a number)"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The region goes into the kernel's command line and U-Boot's `fdt`
/// commands as numbers; each is checked as the kernel would take it, so a
/// region ramoops would refuse (or silently round) is a board-file error.
fn ramoops_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    let Some(r) = &b.ramoops else {
        return Ok(());
    };
    let hex = |key: &str, v: &str, example: &str| -> Result<u64, PlanError> {
        let digits = v.strip_prefix("0x").unwrap_or("");
        match u64::from_str_radix(digits, 16) {
            Ok(n) if digits.len() <= 16 => Ok(n),
            _ => Err(c.fail(
                key,
                format!("{v:?}: expected a number in hex with 0x, e.g. \"{example}\" (quoted, or YAML reads a number)"),
            )),
        }
    };
    let address = hex("ramoops.address", &r.address, "0x4d000000")?;
    let size = hex("ramoops.size", &r.size, "0x100000")?;
    let record = hex("ramoops.record_size", &r.record_size, "0x40000")?;
    const PAGE: u64 = 0x1000;
    if address == 0 || address % PAGE != 0 {
        return Err(c.fail(
            "ramoops.address",
            format!("{}: expected the region's physical address in RAM, 4 KiB aligned (ending in 000); `bdinfo` at the U-Boot prompt shows the RAM", r.address),
        ));
    }
    if !(PAGE..=1 << 30).contains(&size) || size % PAGE != 0 {
        return Err(c.fail(
            "ramoops.size",
            format!(
                "{}: expected a multiple of 4 KiB from 0x1000 to 0x40000000, e.g. 0x100000 (1 MiB)",
                r.size
            ),
        ));
    }
    if address.checked_add(size).is_none() {
        return Err(c.fail(
            "ramoops.size",
            format!(
                "{} at {} runs past the end of the address space",
                r.size, r.address
            ),
        ));
    }
    if !record.is_power_of_two() || !(PAGE..=size).contains(&record) {
        return Err(c.fail(
            "ramoops.record_size",
            format!("{}: expected a power of two from 0x1000 up to the region's size ({}); ramoops rounds other sizes down and a panic's log goes into one record", r.record_size, r.size),
        ));
    }
    Ok(())
}

/// Only a board hilt boots through U-Boot and TFTP gets hilt's kernel
/// command line and its U-Boot's device tree; the emulated board keeps
/// its ramoops in a RAM file (`qemu.ramoops`), and a board that boots its
/// own OS has its own kernel's settings.
fn ramoops_used(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if b.ramoops.is_some() && b.kind() != BoardKind::UbootTftp {
        return Err(c.fail(
            "ramoops",
            "only a board booted through U-Boot and TFTP (boot: uboot_tftp) takes `ramoops:`; an emulated board uses `qemu: {ramoops: true}`, and a board that boots its own OS keeps its own kernel's: leave it out",
        ));
    }
    Ok(())
}

/// Module names reach the initramfs as file names and its /init's list,
/// and are looked up in each variant's kernel only when a run prepares it:
/// here they are checked as names, so that a typo in their form is a
/// board-file error; a name no kernel has is caught, naming the kernel,
/// when the run resolves it.
fn initramfs_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    let Some(i) = &b.initramfs else {
        return Ok(());
    };
    module_names(c, "initramfs.modules", &i.modules)
}

/// A list of module names (`initramfs.modules`, `install.root_modules`).
fn module_names(c: &Check<'_, BoardFile>, at: &str, modules: &[String]) -> Result<(), PlanError> {
    if modules.is_empty() {
        return Err(c.fail(
            at,
            "expected at least one module name, e.g. [meson-gx-mmc]; without any, leave the key out",
        ));
    }
    c.at_most(at, modules, MAX_MODULES, "modules")?;
    let mut seen = std::collections::BTreeMap::new();
    for (n, m) in modules.iter().enumerate() {
        let key = format!("{at}[{n}]");
        if let Some(stem) = m.strip_suffix(".ko") {
            return Err(c.fail(
                &key,
                format!("{m:?}: expected the module's name without .ko, e.g. {stem:?}"),
            ));
        }
        if !is_module_name(m) {
            return Err(c.fail(
                &key,
                format!("{m:?}: expected a module name as `modinfo` prints it (1-64 characters from [A-Za-z0-9_-], starting with a letter or digit), e.g. meson-gx-mmc"),
            ));
        }
        if let Some(first) = seen.insert(hilt_kernels::normalize_module_name(m), n) {
            return Err(c.fail(
                &key,
                format!("{m:?} is listed twice (also {at}[{first}]; `-` and `_` are the same in module names)"),
            ));
        }
    }
    Ok(())
}

fn is_module_name(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Only a board that boots hilt's initramfs (emulated, or U-Boot over
/// TFTP) loads its modules; on one that boots its own OS the key would be
/// silently ignored.
fn initramfs_used(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if b.initramfs.is_some() && matches!(b.kind(), BoardKind::OwnOs | BoardKind::Android) {
        return Err(c.fail(
            "initramfs.modules",
            "this board boots its own OS, not hilt's initramfs, so `initramfs:` would do nothing: leave it out (only emulated boards and boot: uboot_tftp boards load it)",
        ));
    }
    Ok(())
}

/// The U-Boot variables hilt's commands load into.
const LOAD_ADDRESSES: [&str; 3] = ["kernel_addr_r", "ramdisk_addr_r", "fdt_addr_r"];

fn console_and_power_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    match &b.console {
        ConsoleCfg::Serial { device, .. } if device.is_empty() || device.contains(['\n', '\0']) => {
            return Err(c.fail(
                "console.serial.device",
                "expected the UART's device, e.g. /dev/serial/by-id/...",
            ))
        }
        ConsoleCfg::Ser2net { host, port, .. } => {
            c.host("console.ser2net.host", host, "a host name or address")?;
            if *port == 0 {
                return Err(c.fail(
                    "console.ser2net.port",
                    "expected a TCP port from 1 to 65535",
                ));
            }
        }
        _ => {}
    }
    if let PowerCfg::Command { on, off, cycle } = &b.power {
        c.at_most("power.command.on", on, MAX_ARGS, "arguments")?;
        c.at_most("power.command.off", off, MAX_ARGS, "arguments")?;
        if let Some(cy) = cycle {
            c.at_most("power.command.cycle", cy, MAX_ARGS, "arguments")?;
        }
    }
    Ok(())
}

/// `labgrid:` and the console and power it stands in for: a board without
/// its own console or power must name the place they come from.
fn labgrid_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    let Some(l) = &b.labgrid else {
        for (key, missing) in [
            ("console", b.console == ConsoleCfg::FromLabgrid),
            ("power", b.power == PowerCfg::FromLabgrid),
        ] {
            if missing {
                return Err(c.fail(
                    key,
                    format!("missing: expected the board's `{key}:`, or `labgrid: {{coordinator: HOST:PORT, place: NAME}}` for a board whose {key} comes from a labgrid place"),
                ));
            }
        }
        return Ok(());
    };
    let port_ok = l
        .coordinator
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(c.fail(
            "labgrid.coordinator",
            format!("{:?}: expected the coordinator's HOST:PORT, e.g. labgrid.example.com:20408 (labgrid's LG_COORDINATOR)", l.coordinator),
        ));
    }
    c.host(
        "labgrid.coordinator",
        &l.coordinator,
        "the coordinator's HOST:PORT, e.g. labgrid.example.com:20408",
    )?;
    match (l.place.is_empty(), l.tags.is_empty()) {
        (false, true) => c.word(
            "labgrid.place",
            &l.place,
            "._-",
            "a labgrid place name, as `labgrid-client places` lists it",
        )?,
        (true, false) => {
            for (k, v) in &l.tags {
                let key = format!("labgrid.tags.{k}");
                let ok = |s: &str, first_letter: bool| {
                    !s.is_empty()
                        && (!first_letter || s.starts_with(|c: char| c.is_ascii_lowercase()))
                        && s.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                };
                if !ok(k, true) || k.len() < 2 || !ok(v, false) {
                    return Err(c.fail(
                        &key,
                        format!("{k}={v}: expected a labgrid tag: a key of [a-z][a-z0-9_]+ and a value of [a-z0-9_]+"),
                    ));
                }
            }
        }
        _ => {
            return Err(c.fail(
                "labgrid",
                "expected either `place: NAME` (this board's place) or `tags: {KEY: VALUE}` (any place with these tags, reserved), not both or neither",
            ))
        }
    }
    if let Some(s) = &l.ssh {
        if b.ssh.is_some() {
            return Err(c.fail(
                "labgrid.ssh",
                "the board has its own `ssh:` too: keep one (`labgrid.ssh` logs in to the place's NetworkService)",
            ));
        }
        if let Some(n) = &s.name {
            c.word(
                "labgrid.ssh.name",
                n,
                "._-",
                "the name of one of the place's resources",
            )?;
        }
    }
    for (key, v) in [("labgrid.console", &l.console), ("labgrid.power", &l.power)] {
        if let Some(v) = v {
            c.word(key, v, "._-", "the name of one of the place's resources")?;
        }
    }
    if b.qemu.is_some() {
        return Err(c.fail(
            "labgrid",
            "an emulated board (`qemu:`) is made by hilt, not acquired from a lab: remove `labgrid:` or `qemu:`",
        ));
    }
    Ok(())
}

/// ssh, adb and fastboot: each value lands on that tool's command line.
fn transport_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if let Some(s) = &b.ssh {
        c.host("ssh.host", &s.host, "a host name or address")?;
        c.word("ssh.user", &s.user, "._-", "a user name")?;
    }
    if let Some(a) = &b.adb {
        c.word(
            "adb.serial",
            &a.serial,
            "._:-",
            "a device serial as adb lists it, or host:port",
        )?;
        if let Some(server) = &a.server {
            c.host("adb.server", server, "host:port of the adb server")?;
        }
    }
    if let Some(f) = &b.fastboot {
        c.word(
            "fastboot.target",
            &f.target,
            "._:-",
            "a USB serial or tcp:HOST:PORT",
        )?;
    }
    Ok(())
}

fn console_line_and_power_lists(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if let ConsoleCfg::Serial { line, .. } = &b.console {
        if line
            .parse::<hilt_transports::console::LineSettings>()
            .is_err()
        {
            return Err(c.fail("console.serial.line", format!("{line:?}: expected ser2net line notation such as 115200n81 or 1500000n81,rtscts")));
        }
    }
    if let PowerCfg::Command { on, off, .. } = &b.power {
        if on.is_empty() || off.is_empty() {
            return Err(c.fail(
                "power.command",
                "expected `on` and `off` as argument lists, e.g. [uhubctl, -l, 1-1, -p, 2, -a, on]",
            ));
        }
    }
    Ok(())
}

/// The agent and flash methods name a transport whose section says how to
/// reach the board.
fn needed_sections(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if matches!(b.agent, AgentChannelCfg::Ssh) && !b.has_ssh() {
        return Err(c.fail(
            "agent",
            "agent: ssh needs an `ssh:` section (or, for a board in a labgrid lab, `labgrid: {ssh: {key, known_hosts}}`)",
        ));
    }
    if matches!(b.agent, AgentChannelCfg::Adb) && b.adb.is_none() {
        return Err(c.fail("agent", "agent: adb needs an `adb:` section"));
    }
    match &b.flash {
        Some(FlashCfg::Fastboot { .. }) if b.fastboot.is_none() => {
            Err(c.fail("flash", "flash: fastboot needs a `fastboot:` section"))
        }
        Some(FlashCfg::SshDd { .. }) if !b.has_ssh() => {
            Err(c.fail("flash", "flash: ssh_dd needs an `ssh:` section"))
        }
        Some(FlashCfg::AdbDd { .. }) if b.adb.is_none() => {
            Err(c.fail("flash", "flash: adb_dd needs an `adb:` section"))
        }
        Some(FlashCfg::UbootMmc { .. } | FlashCfg::UbootBlock { .. }) if b.uboot.is_none() => {
            Err(c.fail("flash", "U-Boot flashing needs a `uboot:` section"))
        }
        _ => Ok(()),
    }
}

/// The partition flash methods name, if any.
fn flash_partition(b: &BoardFile) -> Option<&String> {
    match &b.flash {
        Some(
            FlashCfg::Fastboot { partition }
            | FlashCfg::SshDd { partition }
            | FlashCfg::AdbDd { partition },
        ) => Some(partition),
        _ => None,
    }
}

/// fastboot flashes a partition by its own name; the dd methods need the
/// device node that `partitions:` gives.
fn flash_partition_listed(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if let Some(partition) = flash_partition(b) {
        if !b.partitions.contains_key(partition)
            && !matches!(b.flash, Some(FlashCfg::Fastboot { .. }))
        {
            return Err(c.fail(
                "flash",
                format!("partition {partition:?} is not in `partitions:`"),
            ));
        }
    }
    Ok(())
}

fn uboot_tftp_needs(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if let Some(BenchBootCfg::UbootTftp(t)) = &b.boot {
        if b.uboot.is_none() {
            return Err(c.fail(
                "boot",
                "boot: uboot_tftp needs a `uboot:` section (its prompt and how to stop autoboot)",
            ));
        }
        if t.ipaddr.is_some() && t.serverip.is_none() {
            return Err(c.fail("boot.uboot_tftp.serverip", "a static `ipaddr` needs the TFTP server's `serverip` too (without both, U-Boot asks DHCP)"));
        }
        if b.kernel_console.is_none() {
            return Err(c.fail("kernel_console", "expected the kernel's name for the console UART, e.g. ttyAML0,115200 (Amlogic) or ttyS2,1500000 (Rockchip)"));
        }
    }
    Ok(())
}

/// An Android board is powered on into its bootloader by a command,
/// flashed by fastboot and reached over adb; its own partitions are kept
/// from the plan's image unless the file allows them.
fn android_needs(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    let Some(BenchBootCfg::AndroidFastboot(a)) = &b.boot else {
        return Ok(());
    };
    let key = |k: &str| format!("boot.android_fastboot.{k}");
    if let Some(on) = &a.bootloader_on {
        if on.is_empty() {
            return Err(c.fail(
                &key("bootloader_on"),
                "expected the command (an argument list) that powers the board on into its bootloader's fastboot, e.g. a relay holding the update key; leave the key out to have hilt run `adb reboot bootloader`",
            ));
        }
        c.at_most(&key("bootloader_on"), on, MAX_ARGS, "arguments")?;
        if !matches!(b.power, PowerCfg::Command { .. }) {
            return Err(c.fail(
                "power",
                "with boot.android_fastboot.bootloader_on, power must be a command (power: {command: {on, off}}): bootloader_on takes the place of `on`",
            ));
        }
    }
    c.name(&key("boot_partition"), &a.boot_partition)?;
    match &a.boot_image {
        Some(f) if f.is_empty() || f.contains(['\n', '\0']) => {
            return Err(c.fail(
                &key("boot_image"),
                "expected the device's own boot image, a file on this host",
            ))
        }
        None if !b.partitions.contains_key(&a.boot_partition) => {
            return Err(c.fail(
                &key("boot_image"),
                format!("expected the device's own boot image (a file on this host), or the node of partition {:?} in `partitions:` so that hilt reads it from the device", a.boot_partition),
            ))
        }
        _ => {}
    }
    for (i, p) in a.allow_overwrite.iter().enumerate() {
        c.name(&format!("{}[{i}]", key("allow_overwrite")), p)?;
    }
    if !matches!(b.agent, AgentChannelCfg::Adb) {
        return Err(c.fail(
            "agent",
            "an Android board's agent runs over adb: agent: adb",
        ));
    }
    if b.fastboot.is_none() {
        return Err(c.fail(
            "fastboot",
            "an Android board is flashed by its bootloader's fastboot: fastboot: {target: tcp:HOST:PORT or a USB serial}",
        ));
    }
    match &b.flash {
        Some(FlashCfg::Fastboot { partition }) => {
            if is_android_partition(partition) && !a.allow_overwrite.contains(partition) {
                return Err(c.fail(
                    "flash.fastboot.partition",
                    format!("{partition:?} is one of Android's own partitions: expected a spare partition for the plan's image, or {partition:?} in boot.android_fastboot.allow_overwrite if this device can lose it"),
                ));
            }
            Ok(())
        }
        _ => Err(c.fail(
            "flash",
            "an Android board gets the plan's image by fastboot: flash: {fastboot: {partition: <spare partition>}}",
        )),
    }
}

fn storage_partitions_listed(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    if let Some(st) = &b.storage {
        for (key, part) in [
            ("storage.image", Some(&st.image)),
            ("storage.swap", st.swap.as_ref()),
        ] {
            if let Some(part) = part {
                if !b.partitions.contains_key(part) {
                    return Err(c.fail(key, format!("partition {part:?} is not in `partitions:`")));
                }
            }
        }
        // `hilt run` checks that U-Boot's mmc N is the card holding this
        // partition by asking Linux about the partition's disk.
        if let (Some(FlashCfg::UbootMmc { .. }), BoardKind::UbootTftp) = (&b.flash, b.kind()) {
            let node = &b.partitions[&st.image];
            if !is_mmc_partition(node) {
                return Err(c.fail(
                    &format!("partitions.{}", st.image),
                    format!("{node:?}: with flash: uboot_mmc, expected the partition's node on an SD card or eMMC as hilt's initramfs names it, /dev/mmcblkNpM (hilt checks that U-Boot's mmc_dev is Linux's mmcblkN before writing)"),
                ));
            }
        }
        if let Some(n) = st.image_bytes {
            if n == 0 || n % 4096 != 0 {
                return Err(c.fail(
                    "storage.image_bytes",
                    format!("{n} is not a partition size: expected a non-zero multiple of 4096 bytes, as `blockdev --getsize64` prints it"),
                ));
            }
        }
    }
    Ok(())
}

/// QEMU power, a QEMU console and a `qemu:` section come together or not
/// at all.
fn emulation(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    let qemu_console = matches!(b.console, ConsoleCfg::QemuTelnet | ConsoleCfg::QemuPty);
    if matches!(b.power, PowerCfg::Qemu) != qemu_console {
        return Err(c.fail("console", "an emulated board needs power: qemu with a qemu_telnet or qemu_pty console, and a real board neither"));
    }
    let qemu_parts = matches!(b.power, PowerCfg::Qemu) || qemu_console;
    match &b.qemu {
        None if qemu_parts => Err(c.fail(
            "qemu",
            "a board with QEMU power or console needs a `qemu:` section",
        )),
        Some(q) => {
            c.range("qemu.cpus", q.cpus, 1, 16)?;
            c.range("qemu.memory_mb", q.memory_mb, 128, 16_384)
        }
        None => Ok(()),
    }
}

/// `console=` on a board's kernel command line: the UART's kernel name and
/// its optional line settings (`ttyAML0,115200`, `ttyS2,1500000n8`). A space
/// or `=` would add kernel options of its own (`ttyAML0 init=/bin/sh`).
fn is_kernel_console(s: &str) -> bool {
    let (dev, opts) = s.split_once(',').unwrap_or((s, ""));
    !dev.is_empty()
        && dev.len() <= 32
        && dev.starts_with(|c: char| c.is_ascii_alphabetic())
        && dev.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && (!s.contains(',') || (!opts.is_empty() && opts.len() <= 16))
        && opts.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Extra kernel command line: options separated by single spaces, in
/// printable ASCII without quotes or backslashes (the kernel's quoting and
/// U-Boot's `setenv '...'` would read them differently), within what a
/// kernel command line holds beside hilt's own options.
fn is_kernel_cmdline(s: &str) -> bool {
    s.len() <= 1024
        && s.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !b"'\"\\;".contains(&b))
}

/// `/dev/mmcblk1p3`: a partition of an SD card or eMMC.
fn is_mmc_partition(node: &str) -> bool {
    let Some(rest) = node.strip_prefix("/dev/mmcblk") else {
        return false;
    };
    match rest.split_once('p') {
        Some((disk, part)) => [disk, part]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}
