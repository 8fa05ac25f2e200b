//! How hilt talks to boards. Each module is one transport; the harness
//! sees them through the traits at the seams (a console, power control).
//!
//! - [`console`]: the [`console::Console`] trait and its transports: a local
//!   serial port, ser2net's raw TCP, telnet and RFC 2217 ports, QEMU's
//!   telnet chardev.
//! - [`ssh`]: commands and file pushes on boards running Linux.
//! - [`adb`]: the adb server protocol, and adbd itself over TCP or USB.
//! - [`fastboot`]: fastboot over TCP or USB, with sparse images.
//! - [`uboot`]: U-Boot driven through any console.
//! - [`flash`]: flashing strategies (fastboot, dd over SSH or adb, U-Boot,
//!   a disk file), each recording digests and reading back where it can.
//! - [`power`]: the [`power::Power`] trait: command hooks, USB HID relays.
//!
//! What each was tested against is in docs/transports.md.

pub mod adb;
pub mod console;
pub mod deploy;
pub mod fastboot;
pub mod flash;
pub mod power;
pub mod ssh;
pub mod uboot;
pub mod usbbulk;

/// The last `max` bytes of `s` at most, starting on a character boundary:
/// for error messages quoting another program's output, which may hold any
/// characters. Slicing at `len - max` can fall inside one and panic.
pub fn tail_of(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::tail_of;

    #[test]
    fn tail_of_never_cuts_a_character() {
        for text in [
            "é".repeat(400),
            format!("x{}", "é".repeat(400)),
            "🦀".repeat(200),
            "ab".into(),
            String::new(),
        ] {
            for max in 0..12 {
                let t = tail_of(&text, max);
                assert!(t.len() <= max && text.ends_with(t), "{max}: {t:?}");
                // At most one character short of the limit.
                assert!(max - t.len() < 4 || t.len() == text.len(), "{max}: {t:?}");
            }
        }
    }
}
