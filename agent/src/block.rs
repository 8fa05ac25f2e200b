//! Finds block devices the way the host described them.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hilt_protocol::BlockDevice;

/// Devices appear asynchronously after their driver loads; poll briefly
/// rather than fail on a race.
pub fn resolve(dev: &BlockDevice) -> io::Result<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_resolve(dev) {
            // By its kernel name, not a by-name link: sysfs lookups use it.
            Ok(p) if p.exists() => return Ok(fs::canonicalize(&p).unwrap_or(p)),
            Ok(p) if Instant::now() > deadline => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} did not appear", p.display()),
                ))
            }
            Err(e) if Instant::now() > deadline => return Err(e),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn try_resolve(dev: &BlockDevice) -> io::Result<PathBuf> {
    match dev {
        BlockDevice::Path(p) => {
            let path = PathBuf::from(p);
            if path.exists() {
                return Ok(path);
            }
            crate::devnode::by_name(&path).unwrap_or(Ok(path))
        }
        BlockDevice::VirtioSerial(serial) => {
            for entry in fs::read_dir("/sys/block")? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with("vd") {
                    continue;
                }
                let s = fs::read_to_string(entry.path().join("serial")).unwrap_or_default();
                if s.trim() == serial {
                    return crate::devnode::block(&name);
                }
            }
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no virtio disk with serial {serial:?}"),
            ))
        }
        BlockDevice::NewZram { size_bytes } => new_zram(*size_bytes),
        BlockDevice::Mmc { partition } => {
            let mut cards: Vec<String> = fs::read_dir("/sys/block")?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("mmcblk") && !n.contains("boot") && !n.contains("rpmb"))
                .collect();
            cards.sort();
            let card = cards
                .first()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no MMC/SD card"))?;
            match partition {
                Some(n) => crate::devnode::block(&format!("{card}p{n}")),
                None => crate::devnode::block(card),
            }
        }
    }
}

/// Adds a zram device of `size_bytes` and returns its node; it goes with
/// the board's next power cycle.
fn new_zram(size_bytes: u64) -> io::Result<PathBuf> {
    let id = crate::sys::read_trimmed("/sys/class/zram-control/hot_add").map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("/sys/class/zram-control/hot_add: {e} (is the zram module loaded?)"),
        )
    })?;
    let name = format!("zram{id}");
    crate::sys::write_attr(
        format!("/sys/block/{name}/disksize"),
        &size_bytes.to_string(),
    )?;
    crate::devnode::block(&name)
}

/// The sysfs name of the whole disk holding `dev` (mmcblk0p1 -> mmcblk0).
pub fn disk_name(dev: &std::path::Path) -> Option<String> {
    let name = dev.file_name()?.to_string_lossy().into_owned();
    if fs::metadata(format!("/sys/block/{name}")).is_ok() {
        return Some(name);
    }
    for entry in fs::read_dir("/sys/block").ok()?.flatten() {
        let disk = entry.file_name().to_string_lossy().into_owned();
        if fs::metadata(entry.path().join(&name)).is_ok() {
            return Some(disk);
        }
    }
    None
}
