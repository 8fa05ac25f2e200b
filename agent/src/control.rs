//! Positive controls: hangs injected on purpose, so that "no hang seen" can
//! be trusted to mean "no hang happened".

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hilt_protocol::{AgentMsg, Stage, StageReport};

use crate::channel::Sender;
use crate::{dm, sampler, swap, sys};

/// What the filler pushes to swap: enough for swapoff to have to read
/// pages back, whatever the memory pressure is.
pub const FILLER_BYTES: usize = 32 << 20;
const MADV_PAGEOUT: libc::c_int = 21;

/// The swapoff that will block, and the filler whose pages it will have to
/// read back; both forked before the freeze, since once swap is frozen
/// forking (a new stack, page tables) can itself wait on swap.
pub struct SwapFreeze {
    victim: Child,
    filler: Child,
}

impl SwapFreeze {
    pub fn prepare(node: &Path) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let victim = Command::new(&exe)
            .arg("swapoff")
            .arg(node)
            .stdin(Stdio::piped())
            .spawn()?;
        let filler = Command::new(&exe).arg("swap-filler").spawn()?;
        Ok(Self { victim, filler })
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
        if used < after_swap_kb {
            tx.send(&AgentMsg::Error {
                stage: Stage::Control,
                message: format!(
                    "swap-freeze: only {used} kB swapped out, {after_swap_kb} kB needed: not freezing"
                ),
            });
            let _ = self.victim.kill();
            let _ = self.filler.kill();
            return;
        }
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
            tx.send(&AgentMsg::Error {
                stage: Stage::Control,
                message: format!("suspending {}: {e}", swap::CONTROL_DM),
            });
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
        // The filler stays parked on its swapped-out pages for good.
        std::mem::forget(self);
    }
}

/// Allocates, fills and pages out FILLER_BYTES, then parks forever without
/// touching them: runs as `hilt-agent swap-filler`.
pub fn swap_filler() -> ! {
    sys::clear_io_flusher();
    unsafe { libc::prctl(libc::PR_SET_NAME, c"hilt-swapfill".as_ptr()) };
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            FILLER_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p != libc::MAP_FAILED {
        let mem = unsafe { std::slice::from_raw_parts_mut(p as *mut u8, FILLER_BYTES) };
        // Not zero (zero pages need no swap slot), not uniform.
        for (i, page) in mem.chunks_mut(4096).enumerate() {
            page[0] = 0xa5;
            page[8] = i as u8;
        }
        // Reclaim these pages now (Linux 5.4+): swap fills whatever the
        // memory pressure, so the control does not depend on it.
        unsafe { libc::madvise(p, FILLER_BYTES, MADV_PAGEOUT) };
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
