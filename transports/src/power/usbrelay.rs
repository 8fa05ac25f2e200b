//! The common USB HID relay boards ("USBRelay1/2/4/8", V-USB firmware,
//! 16c0:05df): relays switched by HID feature reports on interface 0.
//! Report 0xFF + n closes relay n, 0xFD + n opens it; reading the feature
//! report gives the board's 5-character serial and a bitmask of closed
//! relays, which is read back after every switch.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::Power;

pub const VENDOR: u16 = 0x16c0;
pub const PRODUCT: u16 = 0x05df;
/// HID class requests (HID 1.11, 7.2): SET_REPORT and GET_REPORT to the
/// interface, feature report type (3) in the high byte of wValue.
const SET_REPORT: (u8, u8) = (0x21, 0x09);
const GET_REPORT: (u8, u8) = (0xa1, 0x01);
const FEATURE_REPORT_0: u16 = 0x0300;
const TIMEOUT: Duration = Duration::from_secs(2);

/// The feature report that closes (`on`) or opens relay `n` (1-based).
pub fn switch_report(relay: u8, on: bool) -> [u8; 8] {
    [if on { 0xff } else { 0xfd }, relay, 0, 0, 0, 0, 0, 0]
}

/// The board's serial and its closed relays (bit n-1 for relay n).
pub fn parse_state(report: &[u8]) -> anyhow::Result<(String, u8)> {
    if report.len() < 8 {
        bail!("USB relay state report of {} bytes", report.len());
    }
    let serial = String::from_utf8_lossy(&report[..5])
        .trim_end_matches('\0')
        .to_string();
    Ok((serial, report[7]))
}

/// How many relays a board has, from its product string ("USBRelay4").
pub fn relay_count(product: &str) -> Option<u8> {
    product
        .strip_prefix("USBRelay")?
        .parse()
        .ok()
        .filter(|&n| (1..=8).contains(&n))
}

pub struct UsbRelay {
    handle: std::sync::Arc<rusb::DeviceHandle<rusb::GlobalContext>>,
    relay: u8,
    /// Board power through the normally-closed contact: "on" opens it.
    inverted: bool,
    serial: String,
}

impl std::fmt::Debug for UsbRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UsbRelay({} relay {})", self.serial, self.relay)
    }
}

impl UsbRelay {
    /// The relay board with this serial (or the only one), relay `relay`.
    pub fn open(serial: Option<&str>, relay: u8, inverted: bool) -> anyhow::Result<Self> {
        let devices = rusb::devices().context("listing USB devices")?;
        let mut found = Vec::new();
        for dev in devices.iter() {
            let Ok(desc) = dev.device_descriptor() else {
                continue;
            };
            if (desc.vendor_id(), desc.product_id()) != (VENDOR, PRODUCT) {
                continue;
            }
            let handle = match dev.open() {
                Ok(h) => h,
                Err(rusb::Error::Access) => bail!(
                    "permission denied opening the USB relay on bus {} address {}: add a udev rule \
                     (SUBSYSTEM==\"usb\", ATTR{{idVendor}}==\"16c0\", ATTR{{idProduct}}==\"05df\", MODE=\"0660\", GROUP=\"plugdev\")",
                    dev.bus_number(),
                    dev.address()
                ),
                Err(e) => bail!("opening the USB relay: {e}"),
            };
            let product = handle.read_product_string_ascii(&desc).unwrap_or_default();
            let Some(count) = relay_count(&product) else {
                continue;
            };
            let _ = handle.set_auto_detach_kernel_driver(true);
            handle
                .claim_interface(0)
                .context("claiming the USB relay's interface")?;
            let mut me = Self {
                handle: std::sync::Arc::new(handle),
                relay,
                inverted,
                serial: String::new(),
            };
            let (board_serial, _) = me.read_state()?;
            me.serial = board_serial;
            if serial.is_none_or(|s| s == me.serial) {
                if relay == 0 || relay > count {
                    bail!(
                        "relay {relay} does not exist on {} ({product} has {count})",
                        me.serial
                    );
                }
                found.push(me);
            }
        }
        match found.len() {
            1 => Ok(found.pop().expect("one")),
            0 => Err(anyhow!(
                "no USB relay board{} found (16c0:05df \"USBRelayN\")",
                serial
                    .map(|s| format!(" with serial {s}"))
                    .unwrap_or_default()
            )),
            _ => Err(anyhow!("several USB relay boards: name one by serial")),
        }
    }

    fn read_state(&self) -> anyhow::Result<(String, u8)> {
        let mut buf = [0u8; 8];
        let n = self
            .handle
            .read_control(
                GET_REPORT.0,
                GET_REPORT.1,
                FEATURE_REPORT_0,
                0,
                &mut buf,
                TIMEOUT,
            )
            .context("reading the USB relay state")?;
        parse_state(&buf[..n])
    }

    async fn set(&mut self, closed: bool) -> anyhow::Result<()> {
        let (h, relay) = (self.handle.clone(), self.relay);
        let report = switch_report(relay, closed);
        tokio::task::spawn_blocking(move || {
            h.write_control(
                SET_REPORT.0,
                SET_REPORT.1,
                FEATURE_REPORT_0,
                0,
                &report,
                TIMEOUT,
            )
        })
        .await?
        .with_context(|| format!("switching relay {relay}"))?;
        let (_, mask) = self.read_state()?;
        let is_closed = mask & (1 << (relay - 1)) != 0;
        if is_closed != closed {
            bail!(
                "relay {relay} of {} reads back {} after being {}",
                self.serial,
                if is_closed { "closed" } else { "open" },
                if closed { "closed" } else { "opened" }
            );
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Power for UsbRelay {
    async fn on(&mut self) -> anyhow::Result<()> {
        let closed = !self.inverted;
        self.set(closed).await
    }

    async fn off(&mut self) -> anyhow::Result<()> {
        let closed = self.inverted;
        self.set(closed).await
    }

    /// A relay does not know whether the board behind it still has power.
    fn lost(&mut self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_match_the_usbrelay_firmware() {
        assert_eq!(switch_report(1, true), [0xff, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(switch_report(4, false), [0xfd, 4, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_state(b"HURTM\0\0\x05").unwrap(),
            ("HURTM".to_string(), 0b101)
        );
        assert!(parse_state(b"short").is_err());
        assert_eq!(relay_count("USBRelay2"), Some(2));
        assert_eq!(relay_count("USBRelay9"), None);
        assert_eq!(relay_count("Keyboard"), None);
        assert_eq!(
            (SET_REPORT, GET_REPORT, FEATURE_REPORT_0),
            ((0x21, 0x09), (0xa1, 0x01), 0x0300)
        );
    }
}
