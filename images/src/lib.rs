//! Host-side builders for the images a hilt run needs: a deterministic
//! dataset, an erofs image of it, its dm-verity hash tree, the initramfs
//! (newc cpio) and the partitioned SD card image.
//!
//! Everything here is deterministic on purpose: the same inputs give the same
//! bytes, so images can be cached by input and a report's hashes identify
//! exactly what a board ran on.

pub mod avb;
pub mod bootimg;
pub mod cpio;
pub mod datafs;
pub mod dataset;
pub mod disk;
pub mod erofs;
mod error;
pub mod swap;
pub mod verity;

pub use error::Error;
