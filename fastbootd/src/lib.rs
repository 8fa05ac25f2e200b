//! The bootloader stage of hilt's emulated Android-style board: a fastboot
//! device over TCP ([`transport`]) that writes the board's partitions
//! ([`partition`]: files, or regions of a disk image) and then tells its
//! caller what to boot ([`Next`]).
//!
//! It is the device end of AOSP's fastboot protocol (fastboot/README.md)
//! and libsparse's image format, written from those documents so that
//! hilt's fastboot paths and the real `fastboot` tool meet an honest device
//! in CI. It is not a bootloader: it loads and runs nothing itself.

pub mod config;
pub mod device;
pub mod flash;
pub mod log;
pub mod partition;
mod session;
pub use session::serve;
pub mod sparse;
pub mod transport;
pub mod vars;

pub use config::{Config, Next, DEFAULT_MAX_DOWNLOAD};
pub use device::{Device, SetupError};
pub use partition::{FileRegion, Memory, Partition, PartitionSpec};
