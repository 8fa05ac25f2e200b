//! Positive controls: hangs injected on purpose, so that "no hang seen" can
//! be trusted to mean "no hang happened".

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hilt_protocol::{AgentMsg, Stage, StageReport};

use crate::channel::Sender;
use crate::{dm, sampler, swap, sys};

pub fn swap_freeze(tx: &Sender, node: &Path, after_swap_kb: u64, deadline_ms: u64) {
    let started = sys::uptime_ms();
    loop {
        let m = sampler::read_mem();
        let used = m.swap_total_kb.saturating_sub(m.swap_free_kb);
        if used >= after_swap_kb || sys::uptime_ms() >= deadline_ms {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = sampler::read_mem();
    let used = m.swap_total_kb.saturating_sub(m.swap_free_kb);
    // Queued and future swap I/O now waits forever.
    if let Err(e) = dm::suspend_noflush(swap::CONTROL_DM) {
        tx.send(&AgentMsg::Error { stage: Stage::Control, message: format!("suspending {}: {e}", swap::CONTROL_DM) });
        return;
    }
    // swapoff must read every swapped page back in: it blocks in D state,
    // in the kernel, where khungtaskd can see it.
    let spawned = std::env::current_exe().and_then(|exe| Command::new(exe).arg("swapoff").arg(node).spawn());
    let detail = match spawned {
        Ok(child) => format!(
            "swap-freeze: {} suspended with {} kB swapped, swapoff started as pid {}",
            node.display(),
            used,
            child.id()
        ),
        Err(e) => {
            tx.send(&AgentMsg::Error { stage: Stage::Control, message: format!("starting swapoff: {e}") });
            return;
        }
    };
    tx.send(&AgentMsg::Stage(StageReport {
        stage: Stage::Control,
        uptime_ms: sys::uptime_ms(),
        elapsed_ms: sys::uptime_ms() - started,
        detail,
    }));
}
