//! Ctrl-C and SIGTERM for every command that holds boards. The first asks
//! the command to stop and give its boards back; a second exits at once,
//! after releasing what is still held: the lab's places and this host's
//! leases, since no destructor runs after `process::exit`.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::runner::exit;

/// Turns true at the first interrupt, after saying `first`. Needs a
/// running tokio runtime.
pub fn watch(first: &'static str) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    // Installed before returning: from here on an interrupt is never the
    // default one that kills the process holding its boards.
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::spawn(async move {
        either(&mut int, &mut term).await;
        eprintln!("hilt: {first}");
        let _ = tx.send(true);
        either(&mut int, &mut term).await;
        eprintln!("hilt: interrupted again: releasing the boards still held and exiting");
        give_back_now();
        std::process::exit(exit::INTERRUPTED);
    });
    rx
}

/// The next SIGINT or SIGTERM.
async fn either(int: &mut Option<Signal>, term: &mut Option<Signal>) {
    async fn one(s: &mut Option<Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    tokio::select! {
        _ = one(int) => {}
        _ = one(term) => {}
    }
}

/// Releases every labgrid place and local lease this process holds.
pub fn give_back_now() {
    crate::board::labgrid::release_all_blocking();
    crate::lease::release_all_now();
}

/// The error of a command stopped by an interrupt: its exit code is
/// [`exit::INTERRUPTED`], not an infrastructure failure.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}
