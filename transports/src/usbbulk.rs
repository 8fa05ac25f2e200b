//! USB devices that speak over a pair of bulk endpoints of a vendor
//! interface: adbd (class 0xff, subclass 0x42, protocol 0x01) and fastboot
//! (protocol 0x03). Finding the interface is plain logic on descriptors,
//! kept apart from libusb so it can be checked without a device.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusb::UsbContext;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDesc {
    pub address: u8,
    /// bmAttributes: bits 0-1 are the transfer type (2 = bulk).
    pub attributes: u8,
    pub max_packet: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceDesc {
    pub number: u8,
    pub alt: u8,
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
    pub endpoints: Vec<EndpointDesc>,
}

/// The vendor interface of a protocol, with its bulk endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkInterface {
    pub number: u8,
    pub alt: u8,
    pub ep_in: u8,
    pub ep_out: u8,
    /// Of the OUT endpoint: a transfer that is a multiple of it needs a
    /// zero-length packet to end.
    pub max_packet: u16,
}

pub const CLASS_VENDOR: u8 = 0xff;
pub const SUBCLASS_ANDROID: u8 = 0x42;
pub const PROTOCOL_ADB: u8 = 0x01;
pub const PROTOCOL_FASTBOOT: u8 = 0x03;

/// The first interface with this class triple and one bulk IN and one bulk
/// OUT endpoint. Composite devices (MTP + adb, RNDIS + adb) list other
/// interfaces first; those with the right class but no bulk pair are
/// skipped rather than picked.
pub fn find_interface(
    ifaces: &[InterfaceDesc],
    class: u8,
    subclass: u8,
    protocol: u8,
) -> Option<BulkInterface> {
    ifaces
        .iter()
        .filter(|i| (i.class, i.subclass, i.protocol) == (class, subclass, protocol))
        .find_map(|i| {
            let bulk = |dir_in: bool| {
                i.endpoints
                    .iter()
                    .find(|e| e.attributes & 0x03 == 0x02 && (e.address & 0x80 != 0) == dir_in)
            };
            let (ep_in, ep_out) = (bulk(true)?, bulk(false)?);
            Some(BulkInterface {
                number: i.number,
                alt: i.alt,
                ep_in: ep_in.address,
                ep_out: ep_out.address,
                max_packet: ep_out.max_packet,
            })
        })
}

fn interfaces_of<T: UsbContext>(dev: &rusb::Device<T>) -> Vec<InterfaceDesc> {
    let Ok(cfg) = dev.active_config_descriptor() else {
        return Vec::new();
    };
    cfg.interfaces()
        .flat_map(|i| i.descriptors())
        .map(|d| InterfaceDesc {
            number: d.interface_number(),
            alt: d.setting_number(),
            class: d.class_code(),
            subclass: d.sub_class_code(),
            protocol: d.protocol_code(),
            endpoints: d
                .endpoint_descriptors()
                .map(|e| EndpointDesc {
                    address: e.address(),
                    attributes: e.transfer_type() as u8,
                    max_packet: e.max_packet_size(),
                })
                .collect(),
        })
        .collect()
}

/// A USB device seen on the bus with the interface asked for.
#[derive(Debug, Clone)]
pub struct Found {
    pub bus: u8,
    pub address: u8,
    pub vendor: u16,
    pub product: u16,
    /// None when the device could not be opened to read it.
    pub serial: Option<String>,
    pub interface: BulkInterface,
}

/// Lists the devices that have the interface.
pub fn scan(class: u8, subclass: u8, protocol: u8) -> io::Result<Vec<Found>> {
    let devices = rusb::devices()
        .map_err(|e| io::Error::other(format!("listing USB devices (libusb): {e}")))?;
    let mut out = Vec::new();
    for dev in devices.iter() {
        let Some(interface) = find_interface(&interfaces_of(&dev), class, subclass, protocol)
        else {
            continue;
        };
        let Ok(desc) = dev.device_descriptor() else {
            continue;
        };
        let serial = dev
            .open()
            .ok()
            .and_then(|h| h.read_serial_number_string_ascii(&desc).ok());
        out.push(Found {
            bus: dev.bus_number(),
            address: dev.address(),
            vendor: desc.vendor_id(),
            product: desc.product_id(),
            serial,
            interface,
        });
    }
    Ok(out)
}

/// An opened device with its interface claimed.
pub struct BulkDevice {
    handle: Arc<rusb::DeviceHandle<rusb::GlobalContext>>,
    pub interface: BulkInterface,
    closed: Arc<AtomicBool>,
    pub name: String,
}

impl BulkDevice {
    /// Opens the device with this serial number (or the only one if None).
    pub fn open(
        class: u8,
        subclass: u8,
        protocol: u8,
        serial: Option<&str>,
        what: &str,
    ) -> io::Result<Self> {
        let found = scan(class, subclass, protocol)?;
        let matching: Vec<&Found> = found
            .iter()
            .filter(|f| serial.is_none() || f.serial.as_deref() == serial)
            .collect();
        let f = match (matching.as_slice(), serial) {
            ([one], _) => *one,
            ([], Some(s)) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no {what} USB device with serial {s}"),
                ))
            }
            ([], None) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no {what} USB device found: is it plugged in and in {what} mode?"),
                ))
            }
            (many, _) => {
                let list: Vec<String> = many
                    .iter()
                    .map(|f| f.serial.clone().unwrap_or_else(|| "?".into()))
                    .collect();
                return Err(io::Error::other(format!(
                    "several {what} USB devices ({}): name one by serial",
                    list.join(", ")
                )));
            }
        };
        let dev = rusb::devices()
            .map_err(|e| io::Error::other(e.to_string()))?
            .iter()
            .find(|d| d.bus_number() == f.bus && d.address() == f.address)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{what} device went away"))
            })?;
        let name = format!(
            "{what} {:04x}:{:04x} on bus {} address {}",
            f.vendor, f.product, f.bus, f.address
        );
        let handle = dev.open().map_err(|e| match e {
            rusb::Error::Access => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("permission denied opening {name}: install a udev rule for it (Debian: android-sdk-platform-tools-common) and replug"),
            ),
            e => io::Error::other(format!("opening {name}: {e}")),
        })?;
        let _ = handle.set_auto_detach_kernel_driver(true);
        handle.claim_interface(f.interface.number).map_err(|e| {
            io::Error::other(format!("claiming interface {} of {name}: {e} (is an adb server or another fastboot using it? `adb kill-server`)", f.interface.number))
        })?;
        if f.interface.alt != 0 {
            handle
                .set_alternate_setting(f.interface.number, f.interface.alt)
                .map_err(|e| io::Error::other(format!("{name}: {e}")))?;
        }
        Ok(Self {
            handle: Arc::new(handle),
            interface: f.interface,
            closed: Arc::new(AtomicBool::new(false)),
            name,
        })
    }

    /// Writes one transfer, ending it with a zero-length packet when its
    /// length is a multiple of the packet size (else the device waits for
    /// more).
    // is_multiple_of needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    pub async fn write(&self, data: Vec<u8>, timeout: Duration) -> io::Result<()> {
        let (h, ep, mps, name) = (
            self.handle.clone(),
            self.interface.ep_out,
            self.interface.max_packet.max(1) as usize,
            self.name.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut off = 0;
            while off < data.len() {
                off += h
                    .write_bulk(ep, &data[off..], timeout)
                    .map_err(|e| io::Error::other(format!("{name}: USB write: {e}")))?;
            }
            if !data.is_empty() && data.len() % mps == 0 {
                h.write_bulk(ep, &[], timeout)
                    .map_err(|e| io::Error::other(format!("{name}: USB write: {e}")))?;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Reads one transfer of at most `max` bytes, waiting as long as the
    /// device is open.
    pub async fn read(&self, max: usize) -> io::Result<Vec<u8>> {
        let (h, ep, closed, name) = (
            self.handle.clone(),
            self.interface.ep_in,
            self.closed.clone(),
            self.name.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; max];
            loop {
                if closed.load(Ordering::Relaxed) {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        format!("{name} closed"),
                    ));
                }
                // Short timeouts so that a dropped reader does not keep a
                // thread in libusb for long.
                match h.read_bulk(ep, &mut buf, Duration::from_millis(500)) {
                    Ok(n) => {
                        buf.truncate(n);
                        return Ok(buf);
                    }
                    Err(rusb::Error::Timeout) => continue,
                    Err(e) => return Err(io::Error::other(format!("{name}: USB read: {e}"))),
                }
            }
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl Drop for BulkDevice {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        let _ = self.handle.release_interface(self.interface.number);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parses a configuration descriptor as a device sends it (what
    /// `/sys/bus/usb/devices/*/descriptors` holds after the device one).
    pub(crate) fn parse_config(raw: &[u8]) -> Vec<InterfaceDesc> {
        let mut out: Vec<InterfaceDesc> = Vec::new();
        let mut i = 0;
        while i + 2 <= raw.len() {
            let (len, kind) = (raw[i] as usize, raw[i + 1]);
            assert!(len >= 2 && i + len <= raw.len(), "bad descriptor at {i}");
            let d = &raw[i..i + len];
            match kind {
                4 => out.push(InterfaceDesc {
                    number: d[2],
                    alt: d[3],
                    class: d[5],
                    subclass: d[6],
                    protocol: d[7],
                    endpoints: Vec::new(),
                }),
                5 => out
                    .last_mut()
                    .expect("endpoint before interface")
                    .endpoints
                    .push(EndpointDesc {
                        address: d[2],
                        attributes: d[3],
                        max_packet: u16::from_le_bytes([d[4], d[5]]),
                    }),
                _ => {}
            }
            i += len;
        }
        out
    }

    fn iface(n: u8, class: u8, sub: u8, proto: u8, eps: &[(u8, u8, u16)]) -> Vec<u8> {
        let mut v = vec![9, 4, n, 0, eps.len() as u8, class, sub, proto, 0];
        for &(addr, attr, mps) in eps {
            v.extend([7, 5, addr, attr]);
            v.extend(mps.to_le_bytes());
            v.push(0);
        }
        v
    }

    /// A phone in "File transfer + USB debugging" mode: MTP (still image
    /// class, with an interrupt endpoint) first, then adb.
    pub(crate) fn mtp_adb_config() -> Vec<u8> {
        let body = [
            iface(
                0,
                0x06,
                0x01,
                0x01,
                &[(0x81, 2, 512), (0x01, 2, 512), (0x82, 3, 28)],
            ),
            iface(1, 0xff, 0x42, 0x01, &[(0x83, 2, 512), (0x02, 2, 512)]),
        ]
        .concat();
        let total = (9 + body.len()) as u16;
        let mut v = vec![9, 2];
        v.extend(total.to_le_bytes());
        v.extend([2, 1, 0, 0x80, 250]);
        v.extend(body);
        v
    }

    #[test]
    fn finds_adb_behind_mtp() {
        let ifaces = parse_config(&mtp_adb_config());
        assert_eq!(ifaces.len(), 2);
        let adb = find_interface(&ifaces, CLASS_VENDOR, SUBCLASS_ANDROID, PROTOCOL_ADB).unwrap();
        assert_eq!(
            adb,
            BulkInterface {
                number: 1,
                alt: 0,
                ep_in: 0x83,
                ep_out: 0x02,
                max_packet: 512
            }
        );
        assert_eq!(
            find_interface(&ifaces, CLASS_VENDOR, SUBCLASS_ANDROID, PROTOCOL_FASTBOOT),
            None
        );
    }

    #[test]
    fn skips_a_matching_interface_without_a_bulk_pair() {
        let raw = [
            vec![9, 2, 0, 0, 2, 1, 0, 0x80, 250],
            iface(0, 0xff, 0x42, 0x03, &[(0x81, 3, 64)]),
            iface(1, 0xff, 0x42, 0x03, &[(0x01, 2, 64), (0x82, 2, 64)]),
        ]
        .concat();
        let fb = find_interface(&parse_config(&raw), 0xff, 0x42, 0x03).unwrap();
        assert_eq!(
            (fb.number, fb.ep_in, fb.ep_out, fb.max_packet),
            (1, 0x82, 0x01, 64)
        );
    }
}
