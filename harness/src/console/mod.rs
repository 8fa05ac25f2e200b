//! The console capture; the console transports themselves are in the
//! hilt-transports crate.

pub mod capture;
#[cfg(test)]
mod capture_fuzz;

pub use hilt_transports::console::{Console, TelnetConsole};
