//! Faults the host asks for, to prove it survives a board that misbehaves
//! in these ways. Random bytes come from a xorshift generator: the point is
//! bytes no parser expects, not unpredictability.

use std::io::{self, Write};

pub struct Noise(u64);

impl Noise {
    pub fn from_clock() -> Self {
        Self(crate::sys::uptime_ms() | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

/// Writes `bytes` random bytes to the console, as a runaway driver or a
/// corrupted printk would; /dev/console is the UART the host records.
pub fn console_flood(bytes: u32) -> io::Result<()> {
    let mut console = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/console")?;
    let mut noise = Noise::from_clock();
    let mut buf = [0u8; 4096];
    let mut left = bytes as usize;
    while left > 0 {
        let n = left.min(buf.len());
        noise.fill(&mut buf[..n]);
        console.write_all(&buf[..n])?;
        left -= n;
    }
    // Back to column 0, so the next kernel line starts cleanly.
    console.write_all(b"\r\n")
}

/// Uptime (ms) until which the interval sampler stands still; 0 when it runs.
static SAMPLER_FROZEN_UNTIL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Stops the interval sampler for `ms`, or for good.
pub fn freeze_sampler(ms: Option<u64>) {
    let until = ms.map_or(u64::MAX, |ms| crate::sys::uptime_ms().saturating_add(ms));
    SAMPLER_FROZEN_UNTIL.store(until, std::sync::atomic::Ordering::Relaxed);
}

/// Called by the sampler before each interval: returns once no freeze is on.
/// It sleeps without beating, as a sampler blocked in the kernel would.
pub fn sampler_frozen_wait() {
    while crate::sys::uptime_ms() < SAMPLER_FROZEN_UNTIL.load(std::sync::atomic::Ordering::Relaxed)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
