//! What the device says it is, and what a host may ask of it.

use std::time::Duration;

/// What AOSP's devices commonly offer; the host splits larger images.
pub const DEFAULT_MAX_DOWNLOAD: u32 = 256 << 20;

#[derive(Debug, Clone)]
pub struct Config {
    /// `getvar:product`: what `fastboot -p` and flashing scripts check.
    pub product: String,
    pub serialno: String,
    /// The largest download taken, which is also the RAM it may take.
    pub max_download: u32,
    /// Whether `boot` is taken: the caller must have somewhere to put the
    /// image it returns.
    pub boot_once: bool,
    /// How long a new connection may take to say "FB01" before it is
    /// dropped for the next.
    pub handshake_timeout: Duration,
    /// Echo the log to stderr.
    pub echo: bool,
}

impl Config {
    pub fn new(product: impl Into<String>) -> Config {
        Config {
            product: product.into(),
            serialno: "HILT0001".into(),
            max_download: DEFAULT_MAX_DOWNLOAD,
            boot_once: false,
            handshake_timeout: Duration::from_secs(10),
            echo: false,
        }
    }
}

/// What the host asked the board to do when it left the bootloader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// `reboot` or `continue`: boot what is flashed.
    BootOs,
    /// `reboot-bootloader`: come back here.
    Bootloader,
    /// `boot`: run this downloaded image once, leaving the flash alone.
    BootOnce(Vec<u8>),
}
