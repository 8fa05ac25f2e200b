//! fastboot, host side: the command protocol ([`proto`]) over TCP or USB,
//! and Android sparse images ([`sparse`]) for partitions larger than a
//! device takes in one download.

pub mod proto;
pub mod sparse;
pub mod tcp;
pub mod usb;

pub use proto::{Fastboot, FastbootError, FastbootIo};

/// fastboot over TCP at `addr` (host:port; devices listen on 5554).
pub async fn connect_tcp(
    addr: &str,
    limit: std::time::Duration,
) -> std::io::Result<Fastboot<tcp::TcpIo>> {
    Ok(Fastboot::new(tcp::TcpIo::connect(addr, limit).await?))
}

/// fastboot over USB to the device with this serial (or the only one).
pub fn open_usb(serial: Option<&str>) -> std::io::Result<Fastboot<usb::UsbIo>> {
    Ok(Fastboot::new(usb::UsbIo::open(serial)?))
}
