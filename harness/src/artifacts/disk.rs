//! The emulated board's disks: which image files QEMU attaches, and how.
//! Built with the media, attached by the QEMU driver.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum Attach {
    /// virtio-blk on the MMIO bus, found on the board by its serial.
    Virtio { serial: String },
    /// An SD card behind an sdhci-pci controller.
    SdCard,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub id: String,
    pub path: PathBuf,
    pub attach: Attach,
    pub read_only: bool,
    /// Writes go to a throw-away overlay, keeping the cached image pristine
    /// and letting boards share it.
    pub snapshot: bool,
}
