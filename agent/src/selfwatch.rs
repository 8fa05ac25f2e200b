//! The agent watching itself: each long-lived loop beats, and a watchdog
//! thread reports a loop that stopped beating, both on the agent channel
//! and in the kernel log (so the console shows it even if the channel is
//! what broke).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hilt_protocol::{AgentMsg, Stage};

use crate::channel::Sender;
use crate::sys;

pub struct Beat {
    pub name: &'static str,
    last_ms: AtomicU64,
    active: AtomicBool,
}

impl Beat {
    const fn new(name: &'static str) -> Self {
        Self {
            name,
            last_ms: AtomicU64::new(0),
            active: AtomicBool::new(false),
        }
    }

    pub fn beat(&self) {
        self.last_ms.store(sys::uptime_ms(), Relaxed);
        self.active.store(true, Relaxed);
    }

    /// A loop that ends on purpose says so, so it is not reported stalled.
    pub fn rest(&self) {
        self.active.store(false, Relaxed);
    }
}

pub static DSTATE: Beat = Beat::new("D-state watcher");
pub static KMSG: Beat = Beat::new("kmsg reader");
pub static SAMPLER: Beat = Beat::new("interval sampler");
const ALL: [&Beat; 3] = [&DSTATE, &KMSG, &SAMPLER];

pub const STALL_MS: u64 = 15_000;

pub fn spawn(tx: Sender) {
    std::thread::Builder::new()
        .name("selfwatch".into())
        .stack_size(crate::sys::THREAD_STACK)
        .spawn(move || {
            let mut reported = [false; ALL.len()];
            loop {
                std::thread::sleep(Duration::from_secs(2));
                let now = sys::uptime_ms();
                for (b, done) in ALL.iter().zip(reported.iter_mut()) {
                    let stalled = b.active.load(Relaxed)
                        && now.saturating_sub(b.last_ms.load(Relaxed)) >= STALL_MS;
                    if stalled && !*done {
                        let msg = format!(
                            "hilt-agent: {} stalled for {} s",
                            b.name,
                            (now - b.last_ms.load(Relaxed)) / 1000
                        );
                        // The channel first: a write to /dev/kmsg can itself
                        // wait behind the console under the pressure that
                        // stalled the loop.
                        tx.send(&AgentMsg::Error {
                            stage: Stage::Watch,
                            message: msg.clone(),
                        });
                        let _ = std::fs::write("/dev/kmsg", format!("<3>{msg}\n"));
                    }
                    *done = stalled;
                }
            }
        })
        .expect("spawning the self-watchdog");
}
