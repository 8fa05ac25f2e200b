//! Positive controls: hangs injected on purpose, so that "no hang seen" can
//! be trusted to mean "no hang happened".

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hilt_protocol::{AgentMsg, Stage, StageReport};

use crate::channel::Sender;
use crate::{dm, sampler, swap, sys};

/// The swapoff that will block, forked before the freeze: once swap is
/// frozen, forking (a new stack, page tables) can itself wait on swap.
pub struct SwapFreeze {
    victim: Child,
}

impl SwapFreeze {
    pub fn prepare(node: &Path) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let victim = Command::new(exe).arg("swapoff").arg(node).stdin(Stdio::piped()).spawn()?;
        Ok(Self { victim })
    }

    pub fn run(mut self, tx: &Sender, after_swap_kb: u64, deadline_ms: u64) {
        let started = sys::uptime_ms();
        let swapped = || {
            let m = sampler::read_mem();
            m.swap_total_kb.saturating_sub(m.swap_free_kb)
        };
        while swapped() < after_swap_kb && sys::uptime_ms() < deadline_ms {
            std::thread::sleep(Duration::from_millis(200));
        }
        let used = swapped();
        // Say it before doing it: after the freeze this thread may block too.
        tx.send(&AgentMsg::Stage(StageReport {
            stage: Stage::Control,
            uptime_ms: sys::uptime_ms(),
            elapsed_ms: sys::uptime_ms() - started,
            detail: format!(
                "swap-freeze: suspending {} with {used} kB swapped; swapoff pid {} follows",
                swap::CONTROL_DM,
                self.victim.id()
            ),
        }));
        if let Err(e) = dm::suspend_noflush(swap::CONTROL_DM) {
            tx.send(&AgentMsg::Error { stage: Stage::Control, message: format!("suspending {}: {e}", swap::CONTROL_DM) });
            let _ = self.victim.kill();
            return;
        }
        // swapoff must read every swapped page back: it blocks in D state, in
        // the kernel, where khungtaskd sees it.
        if let Some(mut go) = self.victim.stdin.take() {
            let _ = go.write_all(b"go\n");
            // Never closed: closing a pipe takes its mutex, which must not
            // become one more place for this thread to block.
            std::mem::forget(go);
        }
    }
}
