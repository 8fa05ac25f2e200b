//! adb over USB: the same messages as TCP, the header and the payload each
//! in their own bulk transfer (as adbd's USB function expects).

use std::io;
use std::time::Duration;

use super::wire::{Header, Message, MessageIo, HEADER_LEN};
use crate::usbbulk::{BulkDevice, CLASS_VENDOR, PROTOCOL_ADB, SUBCLASS_ANDROID};

const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct UsbIo {
    dev: BulkDevice,
}

impl UsbIo {
    /// Opens the adb interface of the device with this serial number (or
    /// the only adb device). Needs no adb server on the device: stop it
    /// first (`adb kill-server`), it holds the interface.
    pub fn open(serial: Option<&str>) -> io::Result<Self> {
        Ok(Self {
            dev: BulkDevice::open(CLASS_VENDOR, SUBCLASS_ANDROID, PROTOCOL_ADB, serial, "adb")?,
        })
    }
}

#[async_trait::async_trait]
impl MessageIo for UsbIo {
    async fn send(&mut self, m: &Message) -> io::Result<()> {
        self.dev.write(m.header().to_vec(), WRITE_TIMEOUT).await?;
        if !m.data.is_empty() {
            self.dev.write(m.data.clone(), WRITE_TIMEOUT).await?;
        }
        Ok(())
    }

    async fn recv(&mut self, max_payload: u32) -> io::Result<Message> {
        let h = self.dev.read(HEADER_LEN).await?;
        let h: [u8; HEADER_LEN] = h.as_slice().try_into().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: adb header of {} bytes", self.dev.name, h.len()),
            )
        })?;
        let header = Header::decode(&h, max_payload)?;
        let mut data = Vec::with_capacity(header.data_length as usize);
        while data.len() < header.data_length as usize {
            data.extend(
                self.dev
                    .read(header.data_length as usize - data.len())
                    .await?,
            );
        }
        header.check(&data, super::wire::A_VERSION)?;
        Ok(Message::new(header.command, header.arg0, header.arg1, data))
    }
}
