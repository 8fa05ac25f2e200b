//! Debian kernel and userland packages as board artifacts.
//!
//! The board runs stock Debian arm64 kernels and busybox-static, taken straight from the
//! archive: [`fetch`] downloads a package with apt and checks it against apt's signed
//! index, [`extract`] unpacks it into the cache, and [`Kernel`] / [`busybox_from_extracted`]
//! find what the harness boots: the Image, its config, and modules in load order.
//!
//! Everything lives under one cache directory:
//! `debs/<name>_<version>_<arch>.deb` and `extracted/<name>_<version>_<arch>/`
//! (an epoch's `:` is written `%3a`, as in Debian's own file names).
//!
//! ```no_run
//! use std::path::Path;
//! use hilt_kernels::{extract, fetch, Kernel, PackageRef};
//!
//! let cache = Path::new(".cache");
//! let pkg = PackageRef::parse("linux-image-6.1.0-44-arm64=6.1.164-1")?;
//! let deb = fetch(&pkg, cache)?;
//! let root = extract(&deb, cache)?;
//! let kernel = Kernel::from_extracted(&root, &deb.name, &deb.version)?;
//! for module in kernel.load_order(&["erofs", "dm-verity", "zram"])? {
//!     println!("insmod {}", module.path.display());
//! }
//! # Ok::<(), hilt_kernels::Error>(())
//! ```

mod apt;
mod busybox;
mod cmd;
mod deb;
mod deps;
mod digest;
mod elf;
mod error;
#[cfg(test)]
mod fuzz;
mod kernel;
mod modinfo;
mod package;
pub mod source;

pub use apt::fetch;
pub use busybox::{busybox_from_extracted, Busybox};
pub use deb::{extract, EXTRACTED_MARKER};
pub use deps::{LoadPlan, Module};
pub use error::Error;
pub use kernel::{linux_banner, Kernel};
pub use modinfo::{normalize_module_name, ModInfo};
pub use package::{FetchedDeb, PackageRef, DEFAULT_ARCH};
