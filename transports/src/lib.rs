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
