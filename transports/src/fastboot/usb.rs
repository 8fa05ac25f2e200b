//! fastboot over USB: each command and response is one bulk transfer on
//! the interface with class 0xff, subclass 0x42, protocol 0x03.

use std::io;
use std::time::Duration;

use super::proto::{FastbootIo, MAX_RESPONSE};
use crate::usbbulk::{BulkDevice, CLASS_VENDOR, PROTOCOL_FASTBOOT, SUBCLASS_ANDROID};

const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct UsbIo {
    dev: BulkDevice,
}

impl UsbIo {
    /// The device in fastboot mode with this serial number (or the only one).
    pub fn open(serial: Option<&str>) -> io::Result<Self> {
        Ok(Self {
            dev: BulkDevice::open(
                CLASS_VENDOR,
                SUBCLASS_ANDROID,
                PROTOCOL_FASTBOOT,
                serial,
                "fastboot",
            )?,
        })
    }
}

#[async_trait::async_trait]
impl FastbootIo for UsbIo {
    async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.dev.write(packet.to_vec(), WRITE_TIMEOUT).await
    }

    async fn recv(&mut self) -> io::Result<Vec<u8>> {
        // A buffer of a whole packet: a device answering with a full-size
        // packet into a smaller buffer is a libusb overflow error.
        self.dev
            .read(MAX_RESPONSE.max(usize::from(self.dev.interface.max_packet)))
            .await
    }
}
