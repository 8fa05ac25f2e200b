//! The checks of a plan file.

use hilt_protocol::ReadFrom;
use std::collections::HashSet;
use std::path::Path;

use super::kernel_source::kernel_source;
use super::{
    Check, MAX_BOARDS, MAX_CONTROLS, MAX_FAULTS, MAX_FRAMES, MAX_SIGNATURES, MAX_TOTAL_ITERATIONS,
    MAX_VARIANTS, MAX_WORKLOADS,
};
use crate::plan::load::Loaded;
use crate::plan::model::*;
use crate::plan::PlanError;

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
    machine_and_instances(&c, p, boards)?;
    avb_partition_sizes(&c, p, boards)
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
    c.range_if_set("machine.memory_mb", p.machine.memory_mb, 128, 16_384)?;
    c.range_if_set("machine.cpus", p.machine.cpus, 1, 16)?;
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
    c.range_if_set("image.level", p.image.level, 0, 12)?;
    Ok(())
}

fn storage(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    c.range_if_set("storage.sync_decompress", p.storage.sync_decompress, 0, 2)?;
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
    if let Some(d) = &p.storage.data {
        if p.storage.erofs_on != ErofsOn::Sdcard {
            return Err(c.fail(
                "storage.data",
                "a data partition needs storage.erofs_on: sdcard: it is there to share erofs' card and mmc queue",
            ));
        }
        let name = d.fs.name();
        let min_mb = hilt_images::datafs::min_bytes(name)
            .map_err(|e| c.fail("storage.data.fs", e.to_string()))?
            >> 20;
        c.range("storage.data.size_mb", d.size_mb, min_mb, 65_536)?;
        c.range("storage.data.files", u64::from(d.files), 1, 256)?;
        c.range("storage.data.file_mb", d.file_mb, 1, 4096)?;
        // What the filesystem's own metadata and reserve leave free, roughly.
        let room = d.size_mb * 3 / 4;
        if u64::from(d.files) * d.file_mb > room {
            return Err(c.fail(
                "storage.data.files",
                format!(
                    "{} files of {} MiB do not fit on {} MiB of {name}: expected at most {room} MiB in all",
                    d.files, d.file_mb, d.size_mb
                ),
            ));
        }
    }
    Ok(())
}

fn swap(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    match &p.swap {
        SwapCfg::None | SwapCfg::ZramExisting => {}
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
    if p.storage.data.is_none() {
        if let Some(w) = workloads
            .iter()
            .find(|w| w.readers.as_ref().is_some_and(|r| r.on == ReadFrom::Data))
        {
            return Err(c.fail(
                "workloads",
                format!(
                    "{}: reads `on: data`, and the plan has no storage.data filesystem: add storage: {{data: {{fs: f2fs, size_mb: 128}}}}",
                    w.name
                ),
            ));
        }
    }
    if threads > 32 {
        return Err(c.fail(
            "workloads",
            format!("{threads} reader threads in all: expected at most 32"),
        ));
    }
    Ok(())
}

fn kernel_settings(c: &Check<'_, Plan>, p: &Plan) -> Result<(), PlanError> {
    c.range_if_set(
        "kernel.hung_task_timeout_secs",
        p.kernel.hung_task_timeout_secs,
        0,
        86_400,
    )?;
    c.range_if_set("kernel.printk_level", p.kernel.printk_level, 0, 8)?;
    c.range_if_set("kernel.swappiness", p.kernel.swappiness, 0, 200)?;
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
    c.range_if_set("stop.max_iterations", stop.max_iterations, 1, 100_000)?;
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

/// `verity: avb` writes the footer in the last bytes of a real board's image
/// partition, so every real board must give that partition's size.
fn avb_partition_sizes(
    c: &Check<'_, Plan>,
    p: &Plan,
    boards: &[BoardFile],
) -> Result<(), PlanError> {
    if p.image.verity != Verity::Avb {
        return Ok(());
    }
    for b in boards.iter().filter(|b| b.kind() != BoardKind::Emulated) {
        if b.storage.as_ref().and_then(|s| s.image_bytes).is_none() {
            return Err(c.fail(
                "image.verity",
                format!(
                    "`avb` puts the AVB footer at the end of the image partition, and board {} does not say how large it is: \
                     add `image_bytes:` (the partition's size, `blockdev --getsize64 <node>` on the board) to its `storage:`",
                    b.name
                ),
            ));
        }
    }
    Ok(())
}

/// The key that sets how many iterations each variant may take.
fn iterations_key(p: &Plan) -> &'static str {
    if p.stop.as_ref().is_some_and(|s| s.max_iterations.is_some()) {
        "stop.max_iterations"
    } else {
        "iterations"
    }
}
