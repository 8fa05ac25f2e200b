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
    swapon_with(dev, 0)
}

fn swapon_with(dev: &Path, flags: libc::c_int) -> io::Result<()> {
    let p = sys::cstr(&dev.to_string_lossy())?;
    sys::check(
        unsafe { libc::swapon(p.as_ptr(), flags) },
        &format!("swapon {}", dev.display()),
    )
}

/// Above any swap the OS set up (Android's zram from boot): the control's
/// stuck writeback must go to the frozen device, not to another swap.
/// <linux/swap.h>: SWAP_FLAG_PREFER | priority 32767 (SWAP_FLAG_PRIO_MASK).
const PREFER_HIGHEST: libc::c_int = 0x8000 | 0x7fff;

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
    let node = freezable(dev)?;
    let size = mkswap(&node)?;
    swapon_with(&node, PREFER_HIGHEST)?;
    Ok((
        node.clone(),
        format!(
            "{} (dm-linear over {}, freezable, highest priority) {} MiB",
            node.display(),
            dev.display(),
            size >> 20
        ),
    ))
}

/// A dm-linear device over `dev` that a control can suspend: bios sent to
/// it then wait for the resume.
pub fn freezable(dev: &Path) -> io::Result<PathBuf> {
    let sectors = crate::dm::sectors(dev)?;
    let _ = crate::dm::remove(CONTROL_DM);
    let params = format!("{} 0", dev.display());
    crate::dm::create(
        CONTROL_DM,
        &[crate::dm::Target {
            start: 0,
            sectors,
            kind: "linear",
            params: &params,
        }],
        false,
    )
}

/// How the OS had zram0 set up before the agent reconfigured it, so that
/// it is put back when the run ends (Android swaps on it).
pub struct ZramBefore {
    node: PathBuf,
    disksize: String,
    algorithm: String,
}

/// Whether `dev` is an active swap area. /proc/swaps names it as it was
/// swapped on (/dev/zram0 or /dev/block/zram0), so by its kernel name.
fn is_swap(dev: &Path) -> bool {
    std::fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .any(|s| Path::new(s).file_name() == dev.file_name())
}

fn zram0() -> io::Result<PathBuf> {
    if !Path::new("/sys/block/zram0").exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no /sys/block/zram0: is the zram module in the initramfs (or the device's kernel)?",
        ));
    }
    crate::devnode::block("zram0")
}

/// The selected algorithm: comp_algorithm lists all, the chosen in [].
fn zram_algorithm() -> String {
    let all = sys::read_trimmed("/sys/block/zram0/comp_algorithm").unwrap_or_default();
    all.split_whitespace()
        .find_map(|a| a.strip_prefix('[').and_then(|a| a.strip_suffix(']')))
        .unwrap_or(&all)
        .to_string()
}

/// What a plan's swap left set up.
pub struct SwapSetUp {
    /// The active swap device and a description for the stage report.
    pub active: Option<(PathBuf, String)>,
    /// zram0's earlier setup, if it was in use and is now changed.
    pub zram_before: Option<ZramBefore>,
}

fn set_up_as(active: Option<(PathBuf, String)>, zram_before: Option<ZramBefore>) -> SwapSetUp {
    SwapSetUp {
        active,
        zram_before,
    }
}

pub fn set_up(spec: &SwapSpec) -> io::Result<SwapSetUp> {
    match spec {
        SwapSpec::None => Ok(set_up_as(None, None)),
        SwapSpec::ZramExisting => {
            let dev = zram0()?;
            if !is_swap(&dev) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "the plan swaps on the zram the OS set up (swap: zram_existing), and {} is not swap here: set `swap: {{zram: {{size_mb: N}}}}` to have hilt set it up",
                        dev.display()
                    ),
                ));
            }
            let size: u64 = sys::read_trimmed("/sys/block/zram0/disksize")?
                .parse()
                .unwrap_or(0);
            let detail = format!(
                "zram {} MiB as the OS set it up ({}), {}",
                size >> 20,
                zram_algorithm(),
                dev.display()
            );
            Ok(set_up_as(Some((dev, detail)), None))
        }
        SwapSpec::Zram {
            size_bytes,
            algorithm,
        } => {
            let dev = zram0()?;
            let was_swap = is_swap(&dev);
            let before = was_swap.then(|| ZramBefore {
                node: dev.clone(),
                disksize: sys::read_trimmed("/sys/block/zram0/disksize").unwrap_or_default(),
                algorithm: zram_algorithm(),
            });
            if was_swap {
                swapoff(&dev)?;
            }
            let _ = sys::write_attr("/sys/block/zram0/reset", "1");
            if let Some(a) = algorithm {
                sys::write_attr("/sys/block/zram0/comp_algorithm", a)?;
            }
            sys::write_attr("/sys/block/zram0/disksize", &size_bytes.to_string())?;
            let size = mkswap(&dev)?;
            swapon(&dev)?;
            let mut detail = format!("zram {} MiB, {}", size >> 20, zram_algorithm());
            if let Some(b) = &before {
                detail += &format!(
                    " (the OS's {} MiB {} zram swap is restored at the end)",
                    b.disksize.parse::<u64>().unwrap_or(0) >> 20,
                    b.algorithm
                );
            }
            Ok(set_up_as(Some((dev, detail)), before))
        }
        SwapSpec::Device { device } => {
            let dev = block::resolve(device)?;
            let size = mkswap(&dev)?;
            swapon(&dev)?;
            let detail = format!("{} {} MiB", dev.display(), size >> 20);
            Ok(set_up_as(Some((dev, detail)), None))
        }
    }
}

/// Puts zram0 back as the OS had it: swapoff can fail while memory is
/// short, and then the OS keeps the plan's zram, which is said.
pub fn restore(b: &ZramBefore) -> io::Result<()> {
    swapoff(&b.node)?;
    sys::write_attr("/sys/block/zram0/reset", "1")?;
    let _ = sys::write_attr("/sys/block/zram0/comp_algorithm", &b.algorithm);
    sys::write_attr("/sys/block/zram0/disksize", &b.disksize)?;
    mkswap(&b.node)?;
    swapon(&b.node)
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
