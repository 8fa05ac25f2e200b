//! The console capture; the console transports themselves are in the
//! hilt-transports crate.

pub mod capture;
#[cfg(test)]
mod capture_fuzz;

pub use hilt_transports::console::{Console, TelnetConsole};

/// Runs `work` while keeping what the console says in `heard`: a board's
/// boot log belongs in console.log even while hilt waits on another
/// channel, and a UART nobody reads would stall the board.
pub async fn record_while<T>(
    console: &mut Box<dyn Console>,
    heard: &mut Vec<u8>,
    work: impl std::future::Future<Output = T>,
) -> T {
    match record_until(console, heard, work, |_| false).await {
        Some(r) => r,
        None => unreachable!("nothing stops the recording"),
    }
}

/// `record_while` that gives up on `work` (None) as soon as `stop` is true
/// of what the console said during this call: a kernel that panicked while
/// booting will not answer, and waiting out the boot limit for it is time
/// lost on every such boot.
pub async fn record_until<T>(
    console: &mut Box<dyn Console>,
    heard: &mut Vec<u8>,
    work: impl std::future::Future<Output = T>,
    stop: impl Fn(&[u8]) -> bool,
) -> Option<T> {
    use tokio::io::AsyncReadExt;
    tokio::pin!(work);
    let from = heard.len();
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            r = &mut work => return Some(r),
            n = console.read(&mut buf) => match n {
                Ok(n) if n > 0 => {
                    heard.extend_from_slice(&buf[..n]);
                    if stop(&heard[from..]) {
                        return None;
                    }
                }
                _ => return Some(work.await),
            },
        }
    }
}

/// Whether a console's text holds the kernel's panic line.
pub fn kernel_panicked(text: &[u8]) -> bool {
    find(text, b"Kernel panic - not syncing").is_some()
}

/// Where `needle` first occurs in what a console said.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A failed bring-up's error with the end of what the console said: on a
/// board that does not come up, that is usually why.
pub fn with_console_tail(e: anyhow::Error, heard: &[u8]) -> anyhow::Error {
    let tail = String::from_utf8_lossy(&heard[heard.len().saturating_sub(1500)..]);
    anyhow::anyhow!("{e:#}\n--- the console said ---\n{tail}")
}
