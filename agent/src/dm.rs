//! Device-mapper control through its ioctls, so the board needs no dmsetup
//! (Debian's is dynamically linked) and the kernel needs no CONFIG_DM_INIT.

use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
const HEADER: usize = 312;
const SPEC: usize = 40;

const DM_READONLY_FLAG: u32 = 1 << 0;
const DM_SUSPEND_FLAG: u32 = 1 << 1;
const DM_NOFLUSH_FLAG: u32 = 1 << 11;

#[derive(Clone, Copy)]
enum Cmd {
    Create = 3,
    Remove = 4,
    Suspend = 6,
    TableLoad = 9,
}

fn request_code(cmd: Cmd) -> libc::c_ulong {
    // _IOWR(0xfd, cmd, struct dm_ioctl)
    (3 << 30) | ((HEADER as libc::c_ulong) << 16) | (0xfd << 8) | cmd as libc::c_ulong
}

pub struct Target<'a> {
    pub start: u64,
    pub sectors: u64,
    pub kind: &'a str,
    pub params: &'a str,
}

fn ioctl(name: &str, cmd: Cmd, flags: u32, targets: &[Target]) -> io::Result<()> {
    if name.len() >= DM_NAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "dm name too long",
        ));
    }
    let mut buf = vec![0u8; HEADER];
    for t in targets {
        let start = buf.len();
        buf.resize(start + SPEC, 0);
        buf.extend_from_slice(t.params.as_bytes());
        buf.push(0);
        while !buf.len().is_multiple_of(8) {
            buf.push(0);
        }
        let next = (buf.len() - start) as u32;
        buf[start..start + 8].copy_from_slice(&t.start.to_ne_bytes());
        buf[start + 8..start + 16].copy_from_slice(&t.sectors.to_ne_bytes());
        buf[start + 20..start + 24].copy_from_slice(&next.to_ne_bytes());
        let kind = t.kind.as_bytes();
        buf[start + 24..start + 24 + kind.len().min(15)]
            .copy_from_slice(&kind[..kind.len().min(15)]);
    }
    // The kernel may write a status string back; leave room for it.
    buf.resize(buf.len() + 4096, 0);
    let put =
        |buf: &mut Vec<u8>, off: usize, v: u32| buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    put(&mut buf, 0, 4); // version 4.0.0
    let size = buf.len() as u32;
    put(&mut buf, 12, size);
    put(&mut buf, 16, HEADER as u32);
    put(&mut buf, 20, targets.len() as u32);
    put(&mut buf, 28, flags);
    buf[48..48 + name.len()].copy_from_slice(name.as_bytes());
    let _ = DM_UUID_LEN;
    let ctl = crate::devnode::dm_control()?;
    let ret = unsafe { libc::ioctl(ctl.as_raw_fd(), request_code(cmd) as _, buf.as_mut_ptr()) };
    crate::sys::check(
        ret,
        &format!("device-mapper ioctl {} on {name}", cmd as u32),
    )
}

/// Creates and activates a device; returns its dm-N node.
pub fn create(name: &str, targets: &[Target], read_only: bool) -> io::Result<PathBuf> {
    ioctl(name, Cmd::Create, 0, &[])?;
    let flags = if read_only { DM_READONLY_FLAG } else { 0 };
    if let Err(e) = ioctl(name, Cmd::TableLoad, flags, targets) {
        let _ = remove(name);
        return Err(e);
    }
    resume(name)?;
    node(name)
}

pub fn resume(name: &str) -> io::Result<()> {
    ioctl(name, Cmd::Suspend, 0, &[])
}

/// Suspends without flushing: I/O queued to the device then waits forever,
/// which is how the positive control freezes swap.
pub fn suspend_noflush(name: &str) -> io::Result<()> {
    ioctl(name, Cmd::Suspend, DM_SUSPEND_FLAG | DM_NOFLUSH_FLAG, &[])
}

pub fn remove(name: &str) -> io::Result<()> {
    ioctl(name, Cmd::Remove, 0, &[])
}

/// Neither devtmpfs nor Android's ueventd makes /dev/mapper/NAME (that is
/// udev's job); find dm-N through sysfs.
pub fn node(name: &str) -> io::Result<PathBuf> {
    for entry in std::fs::read_dir("/sys/block")?.flatten() {
        let dm_name = std::fs::read_to_string(entry.path().join("dm/name")).unwrap_or_default();
        if dm_name.trim() == name {
            return crate::devnode::block(&entry.file_name().to_string_lossy());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("dm device {name} has no node"),
    ))
}

pub fn sectors(dev: &std::path::Path) -> io::Result<u64> {
    let name = dev
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let disk = crate::block::disk_name(dev).unwrap_or_else(|| name.clone());
    let path = if disk == name {
        format!("/sys/block/{name}/size")
    } else {
        format!("/sys/block/{disk}/{name}/size")
    };
    crate::sys::read_trimmed(&path)?
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad {path}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_codes_match_linux_headers() {
        // Values from <linux/dm-ioctl.h> on 64-bit: DM_DEV_CREATE = 0xc138fd03.
        assert_eq!(request_code(Cmd::Create), 0xc138_fd03);
        assert_eq!(request_code(Cmd::TableLoad), 0xc138_fd09);
        assert_eq!(request_code(Cmd::Suspend), 0xc138_fd06);
    }
}
