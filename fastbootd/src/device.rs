//! The device: its partitions, its log, and what `boot` downloaded;
//! [`crate::session::serve`] serves hosts on it.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Config;
use crate::log::{Log, VIOLATION};
use crate::partition::{check_name, Named, Table};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    BadName(String),
    #[error("partition {0:?} is declared twice: give each partition once")]
    Duplicate(String),
    #[error("max-download-size 0: the device could take no image at all; give at least 1 byte")]
    NoDownload,
}

/// A handle to the device, cheap to clone: a test keeps one to look at the
/// partitions and the log while another thread serves.
#[derive(Clone)]
pub struct Device {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    partitions: Mutex<Table>,
    log: Log,
    /// A copy of the last image `boot` took, recorded before the host has
    /// its OKAY so that a test looking right after sees it.
    booted: Mutex<Option<Vec<u8>>>,
}

impl Device {
    pub fn new(config: Config, partitions: Vec<Named>) -> Result<Device, SetupError> {
        if config.max_download == 0 {
            return Err(SetupError::NoDownload);
        }
        let mut table = Table::new();
        for (name, part) in partitions {
            check_name(&name).map_err(SetupError::BadName)?;
            if table.insert(name.clone(), part).is_some() {
                return Err(SetupError::Duplicate(name));
            }
        }
        Ok(Device {
            inner: Arc::new(Inner {
                log: Log::new(config.echo),
                config,
                partitions: Mutex::new(table),
                booted: Mutex::default(),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn partitions(&self) -> MutexGuard<'_, Table> {
        // A panic while writing leaves bytes half written, as a power cut
        // would; the table itself is still sound.
        self.inner
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn note(&self, line: String) {
        self.inner.log.note(line);
    }

    /// Every line the device printed, oldest first (the latest
    /// [`crate::log::MAX_LINES`]): `cmd <command>` for each command.
    pub fn log(&self) -> Vec<String> {
        self.inner.log.lines()
    }

    /// The log's lines about a host breaking the protocol.
    pub fn violations(&self) -> Vec<String> {
        let mut lines = self.log();
        lines.retain(|l| l.starts_with(VIOLATION));
        lines
    }

    pub(crate) fn record_boot(&self, image: &[u8]) {
        *self.inner.booted.lock().unwrap_or_else(|e| e.into_inner()) = Some(image.to_vec());
    }

    /// The image the last `boot` took, also returned by [`Device::serve`].
    pub fn booted(&self) -> Option<Vec<u8>> {
        let booted = self.inner.booted.lock().unwrap_or_else(|e| e.into_inner());
        booted.clone()
    }

    /// A partition's bytes as they are now.
    pub fn partition_bytes(&self, name: &str) -> io::Result<Vec<u8>> {
        let table = self.partitions();
        let part = table.get(name).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no partition {name:?} on this device"),
            )
        })?;
        let mut bytes = vec![0u8; part.size() as usize];
        part.read_at(0, &mut bytes)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Memory;
    use crate::Next;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// A host that speaks the protocol by hand.
    struct Host(TcpStream);

    impl Host {
        fn connect(addr: &str) -> Host {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"FB01").unwrap();
            let mut hs = [0u8; 4];
            s.read_exact(&mut hs).unwrap();
            assert_eq!(&hs, b"FB01");
            Host(s)
        }

        fn send(&mut self, p: &[u8]) {
            let mut v = (p.len() as u64).to_be_bytes().to_vec();
            v.extend_from_slice(p);
            self.0.write_all(&v).unwrap();
        }

        fn recv(&mut self) -> io::Result<String> {
            let mut len = [0u8; 8];
            self.0.read_exact(&mut len)?;
            let mut p = vec![0u8; u64::from_be_bytes(len) as usize];
            self.0.read_exact(&mut p)?;
            Ok(String::from_utf8(p).unwrap())
        }

        /// The responses to `cmd`, INFO lines and the final one.
        fn cmd(&mut self, cmd: &str) -> Vec<String> {
            self.send(cmd.as_bytes());
            let mut out = vec![self.recv().unwrap()];
            while out.last().unwrap().starts_with("INFO") {
                out.push(self.recv().unwrap());
            }
            out
        }

        fn last(&mut self, cmd: &str) -> String {
            self.cmd(cmd).pop().unwrap()
        }

        fn download(&mut self, data: &[u8]) -> String {
            let r = self.last(&format!("download:{:08x}", data.len()));
            assert_eq!(r, format!("DATA{:08x}", data.len()));
            self.send(data);
            self.recv().unwrap()
        }
    }

    fn start(
        config: Config,
        parts: &[(&str, usize)],
    ) -> (String, Device, JoinHandle<io::Result<Next>>) {
        let parts = parts.iter().map(|&(n, size)| Memory::named(n, size, 0x55));
        let dev = Device::new(config, parts.collect()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let d = dev.clone();
        (
            addr,
            dev,
            std::thread::spawn(move || crate::serve(&d, &listener)),
        )
    }

    fn config() -> Config {
        let mut c = Config::new("hilt-test");
        c.max_download = 1000;
        c
    }

    #[test]
    fn variables_of_the_device_and_its_partitions() {
        let (addr, _dev, _) = start(config(), &[("boot", 300), ("misc", 16)]);
        let mut h = Host::connect(&addr);
        for (var, want) in [
            ("version", "OKAY0.4"),
            ("product", "OKAYhilt-test"),
            ("serialno", "OKAYHILT0001"),
            ("max-download-size", "OKAY0x000003e8"),
            ("is-userspace", "OKAYno"),
            ("secure", "OKAYno"),
            ("partition-size:boot", "OKAY0x000000000000012c"),
            ("partition-type:boot", "OKAYraw"),
            ("has-slot:misc", "OKAYno"),
            ("is-logical:misc", "OKAYno"),
            ("partition-size:nosuch", "FAILunknown variable"),
            ("current-slot", "FAILunknown variable"),
        ] {
            assert_eq!(h.last(&format!("getvar:{var}")), want, "{var}");
        }
        let all = h.cmd("getvar:all");
        assert_eq!(all.len(), 6 + 2 * 4 + 1, "{all:?}");
        assert!(all.contains(&"INFOpartition-size:misc:0x0000000000000010".into()));
        assert!(all.contains(&"INFOproduct:hilt-test".into()));
        assert_eq!(all.last().unwrap(), "OKAY");
    }

    #[test]
    fn refusals_say_why_and_change_nothing() {
        let (addr, dev, _) = start(config(), &[("boot", 300)]);
        let mut h = Host::connect(&addr);
        assert_eq!(
            h.last("download:000003e9"),
            "FAILa 1001-byte download is over max-download-size 1000: split the image"
        );
        for bad in ["download:3e8", "download:+00003e8", "download:xyz00000"] {
            assert!(h.last(bad).contains("expected 8 hex digits"), "{bad}");
        }
        assert!(h.last("flash:boot").contains("nothing downloaded"));
        assert_eq!(h.download(&[1; 301]), "OKAY");
        assert_eq!(h.last("flash:nosuch"), "FAILpartition 'nosuch' not found");
        assert_eq!(h.last("erase:nosuch"), "FAILpartition 'nosuch' not found");
        assert_eq!(
            h.last("flash:boot"),
            "FAILa 301-byte image does not fit the partition's 300 bytes"
        );
        assert!(h.last("boot").contains("start it with --boot-once"));
        assert_eq!(h.last("oem:unlock"), "FAILunknown command \"oem\"");
        assert_eq!(dev.partition_bytes("boot").unwrap(), vec![0x55; 300]);
        assert!(dev.violations().is_empty(), "{:?}", dev.log());

        // A broken sparse image is the host's fault, and logged as such.
        assert_eq!(h.download(&crate::sparse::MAGIC.to_le_bytes()), "OKAY");
        assert!(h.last("flash:boot").starts_with("FAILbad sparse image"));
        assert_eq!(dev.violations().len(), 1, "{:?}", dev.log());
        assert_eq!(dev.partition_bytes("boot").unwrap(), vec![0x55; 300]);
    }

    #[test]
    fn flash_and_erase_then_reboot_ends_serving() {
        let (addr, dev, served) = start(config(), &[("boot", 300)]);
        let mut h = Host::connect(&addr);
        assert_eq!(h.download(&[1, 2, 3]), "OKAY");
        assert_eq!(h.cmd("flash:boot"), ["INFOwriting 'boot'", "OKAY"]);
        let mut want = vec![0x55; 300];
        want[..3].copy_from_slice(&[1, 2, 3]);
        assert_eq!(dev.partition_bytes("boot").unwrap(), want);
        assert_eq!(h.last("erase:boot"), "OKAY");
        assert_eq!(dev.partition_bytes("boot").unwrap(), vec![0xff; 300]);
        assert_eq!(h.cmd("reboot"), ["INFOrebooting", "OKAY"]);
        assert_eq!(served.join().unwrap().unwrap(), Next::BootOs);
        assert!(h.recv().is_err(), "the device stopped serving");
        assert!(
            dev.log().contains(&"cmd erase:boot".into()),
            "{:?}",
            dev.log()
        );
    }

    #[test]
    fn each_way_out_is_returned() {
        for (cmd, want) in [
            ("continue", Next::BootOs),
            ("reboot-bootloader", Next::Bootloader),
        ] {
            let (addr, _dev, served) = start(config(), &[]);
            assert_eq!(Host::connect(&addr).last(cmd), "OKAY");
            assert_eq!(served.join().unwrap().unwrap(), want);
        }
    }

    #[test]
    fn boot_takes_what_an_earlier_connection_downloaded() {
        let mut c = config();
        c.boot_once = true;
        let (addr, dev, served) = start(c, &[]);
        let mut h = Host::connect(&addr);
        assert!(h.last("boot").contains("nothing downloaded"));
        assert_eq!(h.download(b"kernel"), "OKAY");
        drop(h);
        assert_eq!(Host::connect(&addr).last("boot"), "OKAY");
        assert_eq!(dev.booted().as_deref(), Some(&b"kernel"[..]));
        assert_eq!(
            served.join().unwrap().unwrap(),
            Next::BootOnce(b"kernel".to_vec())
        );
    }

    #[test]
    fn hosts_are_served_one_after_another() {
        let mut c = config();
        c.handshake_timeout = Duration::from_millis(300);
        let (addr, dev, served) = start(c, &[]);
        // One that never speaks holds the device until it is dropped.
        let _silent = TcpStream::connect(&addr).unwrap();
        let mut first = Host::connect(&addr);
        let mut second = TcpStream::connect(&addr).unwrap();
        second.write_all(b"FB01").unwrap();
        second
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert_eq!(first.last("getvar:version"), "OKAY0.4");
        let mut hs = [0u8; 4];
        let waiting = second.read_exact(&mut hs).unwrap_err();
        assert_eq!(waiting.kind(), io::ErrorKind::WouldBlock, "{waiting}");
        drop(first);
        second
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        second.read_exact(&mut hs).unwrap();
        let mut second = Host(second);
        assert_eq!(second.last("reboot"), "OKAY");
        assert_eq!(served.join().unwrap().unwrap(), Next::BootOs);
        let v = dev.violations();
        assert!(
            v.len() == 1 && v[0].contains("no fastboot handshake"),
            "{:?}",
            dev.log()
        );
    }

    #[test]
    fn a_misdeclared_device_is_refused() {
        let part = |name| Memory::named(name, 1, 0);
        let err = Device::new(config(), vec![part("a"), part("a")]);
        assert!(matches!(err, Err(SetupError::Duplicate(n)) if n == "a"));
        let err = Device::new(config(), vec![part("a:b")]);
        assert!(matches!(err, Err(SetupError::BadName(_))));
        let mut c = config();
        c.max_download = 0;
        assert!(matches!(
            Device::new(c, vec![]),
            Err(SetupError::NoDownload)
        ));
    }
}
