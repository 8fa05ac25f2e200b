//! Checks shared by the strategies of real boards, made before a run
//! leases or builds anything.

use anyhow::{bail, Context};

use crate::plan::{BoardFile, FaultKind, Plan, SwapCfg};

/// A board outside QEMU gets the plan's image on a partition of its own,
/// and swap on another when the plan wants swap on a disk.
pub fn check_partitions(b: &BoardFile, plan: &Plan) -> anyhow::Result<()> {
    let storage = b.storage.as_ref().with_context(|| {
        format!(
            "board {} has no `storage:`: name the partition that receives the plan's image (storage: {{image: data}})",
            b.name
        )
    })?;
    if plan.storage.data.is_some() {
        bail!(
            "board {}: storage.data is a partition hilt formats on the emulated SD card, and this board keeps its own partitions: \
             run that plan on an emulated board, or drop storage.data and the `on: data` readers",
            b.name
        );
    }
    let disk_swap = matches!(plan.swap, SwapCfg::Disk { .. } | SwapCfg::Sdcard { .. });
    if storage.swap.is_none() && disk_swap {
        bail!(
            "board {}: the plan puts swap on a disk, and the board names no swap partition (storage: {{swap: <partition>}})",
            b.name
        );
    }
    Ok(())
}

/// Refuses the plan's faults that only an emulated board can inject: a
/// real board's power switch is a command hilt cannot cut mid-write, and
/// on a UART shared with the agent, closing the console closes the agent
/// too.
pub fn refuse_emulator_faults(
    b: &BoardFile,
    plan: &Plan,
    agent_on_console: bool,
) -> anyhow::Result<()> {
    for f in &plan.faults {
        match f.kind {
            FaultKind::PowerLoss => bail!(
                "board {}: the power_loss fault kills QEMU, and this board's switch is a command: run that fault on an emulated board",
                b.name
            ),
            FaultKind::ConsoleClose if agent_on_console => bail!(
                "board {}: closing the console would also close the agent's channel on a shared UART, so console_close tests nothing here: run it on an emulated board",
                b.name
            ),
            _ => {}
        }
    }
    Ok(())
}

/// `swap: zram_existing` uses the zram swap a board's own OS set up at boot;
/// a board that boots hilt's initramfs has none.
pub fn refuse_zram_existing(b: &BoardFile, plan: &Plan) -> anyhow::Result<()> {
    if matches!(plan.swap, SwapCfg::ZramExisting) {
        bail!(
            "board {}: `swap: zram_existing` uses the zram swap the board's own OS sets up at boot, and this board boots hilt's initramfs, which sets up none: use `swap: {{zram: {{size_mb: N}}}}`",
            b.name
        );
    }
    Ok(())
}
