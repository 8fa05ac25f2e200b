//! Checks that types alone cannot express. Each error names the key and
//! says what would have been accepted.

use std::collections::HashSet;
use std::path::Path;

use super::load::Loaded;
use super::model::*;
use super::PlanError;

struct Check<'a, T> {
    file: &'a Path,
    doc: &'a Loaded<T>,
}

impl<T> Check<'_, T> {
    fn fail(&self, key: &str, msg: impl Into<String>) -> PlanError {
        PlanError::new(self.file, self.doc.positions.of(key), key, msg)
    }

    fn range<N: PartialOrd + std::fmt::Display + Copy>(
        &self,
        key: &str,
        v: N,
        lo: N,
        hi: N,
    ) -> Result<(), PlanError> {
        if v < lo || v > hi {
            return Err(self.fail(key, format!("{v} is out of range: expected {lo} to {hi}")));
        }
        Ok(())
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// How many of each repeated thing a file may hold: enough for any real
/// bench, and a bound on what one plan can make hilt prepare and run.
pub const MAX_VARIANTS: usize = 32;
pub const MAX_BOARDS: usize = 64;
pub const MAX_WORKLOADS: usize = 16;
pub const MAX_SIGNATURES: usize = 64;
pub const MAX_FRAMES: usize = 16;
pub const MAX_FAULTS: usize = 64;
pub const MAX_CONTROLS: usize = 8;
pub const MAX_KERNEL_FILES: usize = 256;
pub const MAX_PARTITIONS: usize = 64;
pub const MAX_ARGS: usize = 64;
/// Iterations of all variants together.
pub const MAX_TOTAL_ITERATIONS: u64 = 1_000_000;
/// Free text (descriptions): it is copied into every report.
pub const MAX_TEXT: usize = 4096;

impl<T> Check<'_, T> {
    fn at_most<X>(&self, key: &str, items: &[X], max: usize, what: &str) -> Result<(), PlanError> {
        if items.len() > max {
            return Err(self.fail(
                key,
                format!("{} {what}: expected at most {max}", items.len()),
            ));
        }
        Ok(())
    }

    fn name(&self, key: &str, s: &str) -> Result<(), PlanError> {
        if !is_name(s) {
            return Err(self.fail(key, "expected 1-64 characters from [A-Za-z0-9._-]"));
        }
        Ok(())
    }

    fn text(&self, key: &str, s: &str) -> Result<(), PlanError> {
        if s.len() > MAX_TEXT {
            return Err(self.fail(
                key,
                format!("{} bytes: expected at most {MAX_TEXT}", s.len()),
            ));
        }
        Ok(())
    }

    /// A word that reaches a command line or a shell unquoted somewhere:
    /// printable ASCII from `allowed` besides letters and digits, starting
    /// with a letter or digit so that it can never read as an option.
    fn word(&self, key: &str, s: &str, allowed: &str, expected: &str) -> Result<(), PlanError> {
        let ok = s.len() <= 256
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || allowed.as_bytes().contains(&b));
        if !ok {
            return Err(self.fail(key, format!("{s:?}: expected {expected}")));
        }
        Ok(())
    }

    /// A path on the board that a shell line or the kernel receives.
    fn board_path(&self, key: &str, s: &str, under: &str, expected: &str) -> Result<(), PlanError> {
        let ok = s.len() <= 256
            && s.starts_with(under)
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._+:@-".contains(&b))
            && !s.split('/').any(|c| c == ".." || c.starts_with('-'));
        if !ok {
            return Err(self.fail(key, format!("{s:?}: expected {expected}")));
        }
        Ok(())
    }

    /// One line of printable text: what U-Boot prints or is sent.
    fn line(&self, key: &str, s: &str, expected: &str) -> Result<(), PlanError> {
        if s.is_empty() || s.len() > 256 || s.contains(['\n', '\r', '\0']) {
            return Err(self.fail(key, format!("{s:?}: expected {expected}")));
        }
        Ok(())
    }

    /// A host name or address (IPv6 in brackets or bare), optionally with
    /// a port: never an option, never more than one word.
    fn host(&self, key: &str, s: &str, expected: &str) -> Result<(), PlanError> {
        let ok = !s.is_empty()
            && s.len() <= 260
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-_[]".contains(&b));
        if !ok {
            return Err(self.fail(key, format!("{s:?}: expected {expected}")));
        }
        Ok(())
    }

    fn ipv4(&self, key: &str, s: &str) -> Result<std::net::Ipv4Addr, PlanError> {
        s.parse().map_err(|_| {
            self.fail(
                key,
                format!("{s:?}: expected an IPv4 address such as 192.168.1.10"),
            )
        })
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

/// Only the first error reaches the user, so the order of these steps is
/// part of what `hilt check` does: a new check goes where it is meant to
/// win over the ones after it.
pub fn plan(
    file: &Path,
    doc: &Loaded<Plan>,
    boards: &[BoardFile],
    workloads: &[WorkloadFile],
) -> Result<(), PlanError> {
    let c = Check { file, doc };
    let p = &doc.value;
    plan_header(&c, p)?;
    list_lengths(&c, p)?;
    variants(&c, p)?;
    machine_size(&c, p)?;
    dataset_and_image(&c, p)?;
    storage(&c, p)?;
    swap(&c, p)?;
    reader_threads(&c, p, workloads)?;
    kernel_settings(&c, p)?;
    watch(&c, p)?;
    timeouts(&c, p)?;
    signatures(&c, p)?;
    stopping_rule(&c, p)?;
    total_iterations(&c, p)?;
    faults(&c, p)?;
    machine_and_instances(&c, p, boards)
}

fn plan_header(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    c.name("name", &p.name)?;
    c.text("description", &p.description)?;
    c.range("iterations", p.iterations, 1, 100_000)?;
    c.range("duration_s", p.duration_s, 1, 86_400)
}

/// The caps come before any item is looked at: later checks walk these
/// lists, one of them pairwise.
fn list_lengths(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    if p.variants.is_empty() {
        return Err(c.fail("variants", "expected at least one variant"));
    }
    c.at_most("variants", &p.variants, MAX_VARIANTS, "variants")?;
    c.at_most("boards", &p.boards, MAX_BOARDS, "boards")?;
    c.at_most("workloads", &p.workloads, MAX_WORKLOADS, "workloads")?;
    c.at_most("signatures", &p.signatures, MAX_SIGNATURES, "signatures")?;
    c.at_most("faults", &p.faults, MAX_FAULTS, "faults")?;
    c.at_most("controls", &p.controls, MAX_CONTROLS, "controls")
}

fn variants(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    let mut names = HashSet::new();
    for (i, v) in p.variants.iter().enumerate() {
        c.name(&format!("variants[{i}].name"), &v.name)?;
        if !names.insert(&v.name) {
            return Err(c.fail(
                &format!("variants[{i}].name"),
                format!("duplicate variant name {:?}", v.name),
            ));
        }
        kernel_source(c, i, &v.kernel)?;
    }
    Ok(())
}

/// The emulated machine's size; whether the boards allow it at all is
/// checked last, in `machine_and_instances`.
fn machine_size(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    if let Some(m) = p.machine.memory_mb {
        c.range("machine.memory_mb", m, 128, 16_384)?;
    }
    if let Some(n) = p.machine.cpus {
        c.range("machine.cpus", n, 1, 16)?;
    }
    Ok(())
}

fn dataset_and_image(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    c.range("dataset.size_mb", p.dataset.size_mb, 1, 65_536)?;
    c.range("dataset.files", p.dataset.files, 1, 100_000)?;
    let pc = p.image.pcluster_kb;
    if !(4..=1024).contains(&pc) || !pc.is_power_of_two() {
        return Err(c.fail(
            "image.pcluster_kb",
            format!("{pc} is not allowed: expected a power of two from 4 to 1024"),
        ));
    }
    if let Some(l) = p.image.level {
        c.range("image.level", l, 0, 12)?;
    }
    Ok(())
}

fn storage(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    if let Some(s) = p.storage.sync_decompress {
        c.range("storage.sync_decompress", s, 0, 2)?;
    }
    if let Some(s) = &p.storage.io_scheduler {
        if !["none", "mq-deadline", "bfq", "kyber"].contains(&s.as_str()) {
            return Err(c.fail(
                "storage.io_scheduler",
                format!("{s:?}: expected none, mq-deadline, bfq or kyber"),
            ));
        }
    }
    // The agent hands them to mount(2) as they are.
    let mo = &p.storage.mount_options;
    if mo.len() > 1024
        || !mo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_=.,:/+-".contains(&b))
    {
        return Err(c.fail(
            "storage.mount_options",
            format!("{mo:?}: expected comma-separated erofs mount options such as cache_strategy=disabled (letters, digits and _=.:/+-)"),
        ));
    }
    Ok(())
}

fn swap(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    match &p.swap {
        SwapCfg::None => {}
        SwapCfg::Zram { size_mb, algorithm } => {
            c.range("swap.zram.size_mb", *size_mb, 1, 65_536)?;
            if let Some(a) = algorithm {
                if !["lzo", "lzo-rle", "lz4", "lz4hc", "zstd", "deflate", "842"]
                    .contains(&a.as_str())
                {
                    return Err(c.fail(
                        "swap.zram.algorithm",
                        format!("{a:?}: expected lzo, lzo-rle, lz4, lz4hc, zstd, deflate or 842"),
                    ));
                }
            }
        }
        SwapCfg::Disk { size_mb } => c.range("swap.disk.size_mb", *size_mb, 1, 65_536)?,
        SwapCfg::Sdcard { size_mb } => {
            c.range("swap.sdcard.size_mb", *size_mb, 1, 65_536)?;
            if p.storage.erofs_on != ErofsOn::Sdcard {
                return Err(c.fail("swap.sdcard", "swap on the SD card needs storage.erofs_on: sdcard (the swap partition lives on that card)"));
            }
        }
    }
    Ok(())
}

/// The workload files were checked one by one; this is what they add up
/// to on one board.
fn reader_threads(
    c: &Check<'_, Plan>,
    p: &Plan,
    workloads: &[WorkloadFile],
) -> Result<(), PlanError> {
    if p.workloads.is_empty() {
        return Err(c.fail("workloads", "expected at least one workload"));
    }
    let threads: u32 = workloads
        .iter()
        .filter_map(|w| w.readers.as_ref())
        .map(|r| r.threads)
        .sum();
    if threads > 32 {
        return Err(c.fail(
            "workloads",
            format!("{threads} reader threads in all: expected at most 32"),
        ));
    }
    Ok(())
}

fn kernel_settings(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    if let Some(t) = p.kernel.hung_task_timeout_secs {
        c.range("kernel.hung_task_timeout_secs", t, 0, 86_400)?;
    }
    if let Some(l) = p.kernel.printk_level {
        c.range("kernel.printk_level", l, 0, 8)?;
    }
    if let Some(s) = p.kernel.swappiness {
        c.range("kernel.swappiness", s, 0, 200)?;
    }
    Ok(())
}

fn watch(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    c.range("watch.reader_stall_s", p.watch.reader_stall_s, 1, 3600)?;
    c.range("watch.silent_after_s", p.watch.silent_after_s, 5, 3600)?;
    c.range("watch.evidence_s", p.watch.evidence_s, 0, 600)?;
    c.range(
        "watch.deadlock_window_s",
        p.watch.deadlock_window_s,
        0,
        3600,
    )?;
    c.range("watch.dstate_s", p.watch.dstate_s, 1, 3600)?;
    c.range("watch.same_wchan_s", p.watch.same_wchan_s, 1, 3600)?;
    c.range("watch.confirm_s", p.watch.confirm_s, 0, 3600)?;
    if p.watch.sysrq.is_empty()
        || p.watch.sysrq.len() > 8
        || !p.watch.sysrq.chars().all(|k| "wtmlcd".contains(k))
    {
        return Err(c.fail("watch.sysrq", format!("{:?}: expected 1 to 8 sysrq keys from w (blocked tasks), t (all tasks), m (memory), l (CPU backtraces), d (locks)", p.watch.sysrq)));
    }
    Ok(())
}

fn timeouts(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    c.range("timeouts.boot_s", p.timeouts.boot_s, 5, 3600)?;
    c.range("timeouts.setup_s", p.timeouts.setup_s, 5, 3600)?;
    c.range("timeouts.finish_s", p.timeouts.finish_s, 5, 3600)?;
    c.range(
        "timeouts.quarantine_after",
        p.timeouts.quarantine_after,
        1,
        1000,
    )
}

fn signatures(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    for (i, s) in p.signatures.iter().enumerate() {
        signature(c, p, i, s)?;
    }
    Ok(())
}

/// `signatures[i]`; the ones before it were checked already, so a name
/// used twice is reported at its second use.
fn signature(c: &Check<'_, Plan>, p: &Plan, i: usize, s: &SignatureCfg) -> Result<(), PlanError> {
    c.at_most(
        &format!("signatures[{i}].frames"),
        &s.frames,
        MAX_FRAMES,
        "frames",
    )?;
    c.name(&format!("signatures[{i}].name"), &s.name)?;
    if s.frames.is_empty() || !s.frames.iter().all(|f| is_frame_pattern(f)) {
        return Err(c.fail(
            &format!("signatures[{i}].frames"),
            "expected one or more kernel function names (a|b for either)",
        ));
    }
    if p.signatures[..i].iter().any(|o| o.name == s.name) {
        return Err(c.fail(
            &format!("signatures[{i}].name"),
            format!(
                "{:?} is named twice: expected unique signature names",
                s.name
            ),
        ));
    }
    if let Some(v) = &s.absent_in {
        if !p.variants.iter().any(|x| &x.name == v) {
            return Err(c.fail(
                &format!("signatures[{i}].absent_in"),
                format!(
                    "{v:?} is not a variant of this plan: expected one of {}",
                    p.variants
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// One frame of a stack signature: kernel function names, `a|b` for either.
fn is_frame_pattern(f: &str) -> bool {
    f.split('|').all(|alt| {
        !alt.is_empty()
            && alt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    })
}

fn stopping_rule(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    let Some(stop) = &p.stop else {
        return Ok(());
    };
    if !(stop.alpha > 0.0 && stop.alpha < 0.5) {
        return Err(c.fail(
            "stop.alpha",
            format!(
                "{}: expected a level above 0 and below 0.5, e.g. 0.01",
                stop.alpha
            ),
        ));
    }
    if let Some(m) = stop.max_iterations {
        c.range("stop.max_iterations", m, 1, 100_000)?;
    }
    if p.signatures.is_empty() {
        return Err(c.fail(
            "stop",
            "a stopping rule needs the question it stops on: expected `signatures:` naming at least one stack signature",
        ));
    }
    if p.variants.len() < 2 {
        return Err(c.fail(
            "stop",
            "a stopping rule compares variants: expected at least two `variants:`",
        ));
    }
    let need = hilt_reports::stats::sequential::TwoSided::min_blocks(stop.alpha);
    if p.max_iterations() < need {
        return Err(c.fail(
            iterations_key(p),
            format!(
                "{} iterations per variant can never reach α = {}: expected at least {need}",
                p.max_iterations(),
                stop.alpha
            ),
        ));
    }
    Ok(())
}

fn total_iterations(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    let total = p.variants.len() as u64 * u64::from(p.max_iterations());
    if total > MAX_TOTAL_ITERATIONS {
        return Err(c.fail(
            iterations_key(p),
            format!(
                "{} variants × {} iterations is {total} iterations: expected at most {MAX_TOTAL_ITERATIONS} in all",
                p.variants.len(),
                p.max_iterations()
            ),
        ));
    }
    Ok(())
}

fn faults(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    for (i, f) in p.faults.iter().enumerate() {
        fault(c, p, i, f)?;
    }
    Ok(())
}

fn fault(c: &Check<'_, Plan>, p: &Plan, i: usize, f: &FaultCfg) -> Result<(), PlanError> {
    c.range(&format!("faults[{i}].after_s"), f.after_s, 0, 86_400)?;
    if f.after_s >= p.duration_s {
        return Err(c.fail(
            &format!("faults[{i}].after_s"),
            format!(
                "{} s is not within duration_s ({} s)",
                f.after_s, p.duration_s
            ),
        ));
    }
    if let Some(b) = f.bytes {
        if f.kind != FaultKind::ConsoleFlood {
            return Err(c.fail(
                &format!("faults[{i}].bytes"),
                "bytes applies only to kind: console_flood",
            ));
        }
        c.range(&format!("faults[{i}].bytes"), b, 1, 64 << 20)?;
    }
    if let Some(d) = f.for_s {
        if f.kind != FaultKind::SamplerFreeze {
            return Err(c.fail(
                &format!("faults[{i}].for_s"),
                "for_s applies only to kind: sampler_freeze",
            ));
        }
        c.range(&format!("faults[{i}].for_s"), d, 1, 86_400)?;
    }
    if f.iteration.is_some_and(|n| n >= p.max_iterations()) {
        return Err(c.fail(
            &format!("faults[{i}].iteration"),
            format!("expected an iteration from 0 to {}", p.max_iterations() - 1),
        ));
    }
    Ok(())
}

/// What the plan asks of its boards: only emulated ones can be resized or
/// copied.
fn machine_and_instances(
    c: &Check<'_, Plan>,
    p: &Plan,
    boards: &[BoardFile],
) -> Result<(), PlanError> {
    let real = boards.iter().find(|b| b.kind() != BoardKind::Emulated);
    if let Some(b) = real {
        if p.machine.memory_mb.is_some() || p.machine.cpus.is_some() {
            return Err(c.fail(
                "machine",
                format!(
                    "machine overrides apply only to emulated boards, and {} is a real one",
                    b.name
                ),
            ));
        }
    }
    c.range("instances", p.instances, 1, 64)?;
    if p.instances > 1 && !boards.iter().any(|b| b.kind().can_copy()) {
        return Err(c.fail(
            "instances",
            "copies of a board exist only for emulated boards: name each real board in `boards:`",
        ));
    }
    Ok(())
}

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
    console_line_and_power_lists(&c, b)?;
    needed_sections(&c, b)?;
    flash_partition_listed(&c, b)?;
    uboot_tftp_needs(&c, b)?;
    storage_partitions_listed(&c, b)?;
    emulation(&c, b)
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
    if matches!(b.agent, AgentChannelCfg::Ssh) && b.ssh.is_none() {
        return Err(c.fail("agent", "agent: ssh needs an `ssh:` section"));
    }
    if matches!(b.agent, AgentChannelCfg::Adb) && b.adb.is_none() {
        return Err(c.fail("agent", "agent: adb needs an `adb:` section"));
    }
    match &b.flash {
        Some(FlashCfg::Fastboot { .. }) if b.fastboot.is_none() => {
            Err(c.fail("flash", "flash: fastboot needs a `fastboot:` section"))
        }
        Some(FlashCfg::SshDd { .. }) if b.ssh.is_none() => {
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

/// Every board value that ends up on a kernel, U-Boot, shell or tool
/// command line, checked here so that `hilt check` refuses it rather than
/// the board after it was powered on (or not at all).
fn board_values(c: &Check<'_, BoardFile>, b: &BoardFile) -> Result<(), PlanError> {
    kernel_values(c, b)?;
    qemu_values(c, b)?;
    partition_values(c, b)?;
    uboot_tftp_values(c, b)?;
    uboot_values(c, b)?;
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
    c.line(
        "uboot.autoboot_text",
        &u.autoboot_text,
        "the line U-Boot prints while counting down, e.g. \"Hit any key to stop autoboot\"",
    )?;
    if u.interrupt.is_empty() || u.interrupt.len() > 16 {
        return Err(c.fail(
            "uboot.interrupt",
            "expected 1 to 16 characters to send to stop autoboot, e.g. \" \" or \"\\u0003\"",
        ));
    }
    Ok(())
}

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

pub fn workload(file: &Path, doc: &Loaded<WorkloadFile>) -> Result<(), PlanError> {
    let c = Check { file, doc };
    let w = &doc.value;
    c.name("name", &w.name)?;
    c.text("description", &w.description)?;
    match (&w.hog, &w.readers) {
        (Some(h), None) => {
            if !(h.mem_fraction > 0.0 && h.mem_fraction < 1.0) {
                return Err(c.fail(
                    "hog.mem_fraction",
                    format!(
                        "{} is out of range: expected more than 0 and less than 1",
                        h.mem_fraction
                    ),
                ));
            }
            if !(0.0..=3600.0).contains(&h.start_after_s) {
                return Err(c.fail("hog.start_after_s", "expected 0 to 3600"));
            }
            Ok(())
        }
        (None, Some(r)) => {
            c.range("readers.threads", r.threads, 1, 32)?;
            c.range("readers.block_size_kb", r.block_size_kb, 1, 16_384)?;
            if let Some(n) = r.rounds {
                c.range("readers.rounds", n, 1, 1_000_000)?;
            }
            if !(0.0..=3600.0).contains(&r.start_after_s) {
                return Err(c.fail("readers.start_after_s", "expected 0 to 3600"));
            }
            Ok(())
        }
        _ => Err(c.fail("", "expected exactly one of `hog:` or `readers:`")),
    }
}

/// `variants[i].kernel`. Its files are looked for here so that `hilt
/// check` reports a missing one with its key, not a build later on.
fn kernel_source<T>(c: &Check<'_, T>, i: usize, k: &KernelSource) -> Result<(), PlanError> {
    match k {
        KernelSource::Debian(pkg) => debian_kernel(c, i, pkg),
        KernelSource::Prebuilt(p) => prebuilt_kernel(c, i, p),
        KernelSource::Source(s) => {
            source_tree(c, i, s)?;
            source_config(c, i, s)?;
            source_files(c, i, s)
        }
    }
}

fn kernel_key(i: usize, rest: &str) -> String {
    format!("variants[{i}].kernel.{rest}")
}

/// A file the plan names for a kernel, relative to the plan file.
fn kernel_file<T>(c: &Check<'_, T>, key: String, value: &str, what: &str) -> Result<(), PlanError> {
    let p = super::plan_relative(c.file, value);
    if p.is_file() {
        Ok(())
    } else {
        Err(c.fail(
            &key,
            format!(
                "no file {}: expected {what} (paths are relative to the plan file)",
                p.display()
            ),
        ))
    }
}

/// A Debian package reference, `name` or `name=version`, of the kind
/// `prefix` names.
fn is_package(pkg: &str, prefix: &str) -> bool {
    hilt_kernels::PackageRef::parse(pkg).is_ok() && pkg.starts_with(prefix)
}

fn debian_kernel<T>(c: &Check<'_, T>, i: usize, pkg: &str) -> Result<(), PlanError> {
    if !is_package(pkg, "linux-image-") {
        return Err(c.fail(
            &kernel_key(i, "debian"),
            format!("{pkg:?} is not a kernel package: expected linux-image-<release>[=<version>]"),
        ));
    }
    Ok(())
}

fn prebuilt_kernel<T>(c: &Check<'_, T>, i: usize, p: &PrebuiltCfg) -> Result<(), PlanError> {
    match (&p.image, &p.modules, &p.deb) {
        (None, _, Some(deb)) if p.modules.is_none() => {
            kernel_file(c, kernel_key(i, "prebuilt.deb"), deb, "a linux-image .deb")
        }
        (Some(image), modules, None) => {
            kernel_file(
                c,
                kernel_key(i, "prebuilt.image"),
                image,
                "an uncompressed arm64 Image",
            )?;
            let Some(m) = modules else {
                return Err(c.fail(
                    &kernel_key(i, "prebuilt"),
                    "`image:` needs `modules:`, the Image's lib/modules/<release> from \
                     `make modules_install`: its modules.builtin says what is built in, \
                     even when nothing is a module",
                ));
            };
            let d = super::plan_relative(c.file, m);
            if !d.join("modules.builtin").is_file() {
                return Err(c.fail(
                    &kernel_key(i, "prebuilt.modules"),
                    format!(
                        "no {}/modules.builtin: expected the Image's lib/modules/<release> \
                         from `make modules_install`",
                        d.display()
                    ),
                ));
            }
            Ok(())
        }
        _ => Err(c.fail(
            &kernel_key(i, "prebuilt"),
            "expected either `image:` (with optional `modules:`) or `deb:`",
        )),
    }
}

/// Where the tree to build comes from: Debian's source package or a
/// directory.
fn source_tree<T>(c: &Check<'_, T>, i: usize, s: &SourceCfg) -> Result<(), PlanError> {
    match (&s.debian, &s.path) {
        (Some(pkg), None) => {
            if !is_package(pkg, "linux-source-") {
                return Err(c.fail(
                    &kernel_key(i, "source.debian"),
                    format!(
                        "{pkg:?}: expected Debian's kernel source package, linux-source-<version>[=<package version>]"
                    ),
                ));
            }
            Ok(())
        }
        (None, Some(path)) => {
            let d = super::plan_relative(c.file, path);
            if !d.join("Makefile").is_file() || !d.join("Kconfig").is_file() {
                return Err(c.fail(
                    &kernel_key(i, "source.path"),
                    format!(
                        "{} is not a kernel tree: expected a directory with a top-level Makefile and Kconfig",
                        d.display()
                    ),
                ));
            }
            Ok(())
        }
        _ => Err(c.fail(
            &kernel_key(i, "source"),
            "expected exactly one of `debian: linux-source-<version>` or `path: <kernel tree>`",
        )),
    }
}

fn source_config<T>(c: &Check<'_, T>, i: usize, s: &SourceCfg) -> Result<(), PlanError> {
    if s.config != "board" && !is_config_target(&s.config) {
        kernel_file(
            c,
            kernel_key(i, "source.config"),
            &s.config,
            "`board`, a kbuild config target such as `defconfig`, or a .config file",
        )?;
    }
    Ok(())
}

/// Fragments and patches: every list's length first, then every file.
fn source_files<T>(c: &Check<'_, T>, i: usize, s: &SourceCfg) -> Result<(), PlanError> {
    let lists = [
        ("fragments", &s.fragments, "a config fragment"),
        ("revert", &s.revert, "a patch to revert"),
        ("patches", &s.patches, "a patch to apply"),
    ];
    for (key, list, _) in lists {
        c.at_most(
            &kernel_key(i, &format!("source.{key}")),
            list,
            MAX_KERNEL_FILES,
            "files",
        )?;
    }
    for (key, list, what) in lists {
        for (j, f) in list.iter().enumerate() {
            kernel_file(c, kernel_key(i, &format!("source.{key}[{j}]")), f, what)?;
        }
    }
    Ok(())
}

/// `defconfig`, `allnoconfig`, `tinyconfig`, `<board>_defconfig`: a name,
/// not a path, and never an option (`-fconfig` would reach make as one).
pub fn is_config_target(s: &str) -> bool {
    s.ends_with("config")
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !s.contains('/')
        && !s.contains('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The key that sets how many iterations each variant may take.
fn iterations_key(p: &Plan) -> &'static str {
    if p.stop.as_ref().is_some_and(|s| s.max_iterations.is_some()) {
        "stop.max_iterations"
    } else {
        "iterations"
    }
}
