//! Swap on zram (as on Android) or on a block device.

use std::fs::OpenOptions;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hilt_protocol::SwapSpec;

use crate::{block, sys};

const PAGE: u64 = 4096;

/// The on-disk header of a Linux swap area (version 1), as mkswap writes it;
/// written here so the board needs no mkswap.
pub fn header(size_bytes: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE as usize];
    let last_page = (size_bytes / PAGE - 1) as u32;
    page[1024..1028].copy_from_slice(&1u32.to_ne_bytes());
    page[1028..1032].copy_from_slice(&last_page.to_ne_bytes());
    page[1036..1052].copy_from_slice(b"hilt-swap-uuid!!");
    page[PAGE as usize - 10..].copy_from_slice(b"SWAPSPACE2");
    page
}

pub fn mkswap(dev: &Path) -> io::Result<u64> {
    let size = crate::dm::sectors(dev)? * 512;
    if size < 16 * PAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is too small for swap", dev.display()),
        ));
    }
    let mut f = OpenOptions::new().write(true).open(dev)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&header(size))?;
    f.sync_all()?;
    Ok(size)
}

pub fn swapon(dev: &Path) -> io::Result<()> {
    let p = sys::cstr(&dev.to_string_lossy())?;
    sys::check(
        unsafe { libc::swapon(p.as_ptr(), 0) },
        &format!("swapon {}", dev.display()),
    )
}

pub fn swapoff(dev: &Path) -> io::Result<()> {
    let p = sys::cstr(&dev.to_string_lossy())?;
    sys::check(
        unsafe { libc::swapoff(p.as_ptr()) },
        &format!("swapoff {}", dev.display()),
    )
}

pub const CONTROL_DM: &str = "hilt-ctlswap";

/// Swap on a dm-linear device over `dev`, so it can later be suspended.
pub fn set_up_freezable(dev: &Path) -> io::Result<(PathBuf, String)> {
    let sectors = crate::dm::sectors(dev)?;
    let _ = crate::dm::remove(CONTROL_DM);
    let params = format!("{} 0", dev.display());
    let node = crate::dm::create(
        CONTROL_DM,
        &[crate::dm::Target {
            start: 0,
            sectors,
            kind: "linear",
            params: &params,
        }],
        false,
    )?;
    let size = mkswap(&node)?;
    swapon(&node)?;
    Ok((
        node.clone(),
        format!(
            "{} (dm-linear over {}, freezable) {} MiB",
            node.display(),
            dev.display(),
            size >> 20
        ),
    ))
}

/// Returns the active swap device and a description for the stage report.
pub fn set_up(spec: &SwapSpec) -> io::Result<Option<(PathBuf, String)>> {
    match spec {
        SwapSpec::None => Ok(None),
        SwapSpec::Zram {
            size_bytes,
            algorithm,
        } => {
            let dev = PathBuf::from("/dev/zram0");
            if !Path::new("/sys/block/zram0").exists() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no /sys/block/zram0: is the zram module in the initramfs?",
                ));
            }
            let _ = swapoff(&dev);
            let _ = sys::write_attr("/sys/block/zram0/reset", "1");
            if let Some(a) = algorithm {
                sys::write_attr("/sys/block/zram0/comp_algorithm", a)?;
            }
            sys::write_attr("/sys/block/zram0/disksize", &size_bytes.to_string())?;
            let size = mkswap(&dev)?;
            swapon(&dev)?;
            let algo = sys::read_trimmed("/sys/block/zram0/comp_algorithm").unwrap_or_default();
            Ok(Some((
                dev,
                format!("zram {} MiB, algorithms: {algo}", size >> 20),
            )))
        }
        SwapSpec::Device { device } => {
            let dev = block::resolve(device)?;
            let size = mkswap(&dev)?;
            swapon(&dev)?;
            Ok(Some((
                dev.clone(),
                format!("{} {} MiB", dev.display(), size >> 20),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_has_signature_and_last_page() {
        let h = super::header(64 << 20);
        assert_eq!(&h[4086..], b"SWAPSPACE2");
        assert_eq!(
            u32::from_ne_bytes(h[1028..1032].try_into().unwrap()),
            (64 << 20) / 4096 - 1
        );
    }
}
