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
