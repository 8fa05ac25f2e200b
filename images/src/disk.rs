//! MBR-partitioned disk image for the emulated SD card (erofs on partition
//! 1, swap on partition 2), also fine to `dd` onto a real card.
//!
//! Partitions start on 1 MiB boundaries, as fdisk/sfdisk place them, which
//! keeps them aligned to any erase block. The disk signature is fixed so the
//! board can address partitions as `root=PARTUUID=68696c74-01` (see
//! [`partuuid`]) no matter which device name the SD controller gets.
//!
//! The image's total size is rounded up to a power of two because QEMU's
//! `sd-card` device refuses anything else (QEMU 7.2 says "Invalid SD card
//! size: 3 MiB / SD card size has to be a power of 2, e.g. 4 MiB"). The tail
//! beyond the last partition is a sparse hole, so the rounding costs no disk
//! space.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::swap::{swap_header, write_swap_signature};

pub const SECTOR_SIZE: u64 = 512;
/// Partition start and size granularity.
pub const ALIGN_BYTES: u64 = 1 << 20;
/// Stored little-endian at byte 440. Its hex form, which PARTUUIDs start
/// with, is "hilt" in ASCII, so our disks are easy to spot in blkid output.
pub const DISK_SIGNATURE: u32 = 0x6869_6c74;
pub const TYPE_LINUX: u8 = 0x83;
pub const TYPE_SWAP: u8 = 0x82;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSpec {
    /// Copied byte for byte to the start of the partition.
    pub source: Option<PathBuf>,
    /// Rounded up to 1 MiB. Must be at least the source's size; 0 means
    /// "exactly the source, rounded up".
    pub size_bytes: u64,
    /// MBR partition type: [`TYPE_LINUX`], [`TYPE_SWAP`], ... A
    /// [`TYPE_SWAP`] partition without a source gets a swap header, so it
    /// is ready for `swapon` without mkswap.
    pub type_id: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLayout {
    pub start_lba: u64,
    pub sectors: u64,
    pub offset_bytes: u64,
    pub size_bytes: u64,
}

/// `PARTUUID` of the partition at `index` (0-based) of an image built here,
/// as the kernel's `root=PARTUUID=` and blkid spell it.
pub fn partuuid(index: usize) -> String {
    format!("{DISK_SIGNATURE:08x}-{:02x}", index + 1)
}

/// Writes `out` (replacing it) with one primary partition per spec, in
/// order, and returns where each landed.
pub fn build_mbr_image(out: &Path, parts: &[PartitionSpec]) -> io::Result<Vec<PartitionLayout>> {
    let layout = plan(parts)?;
    let end = layout
        .last()
        .map(|l| l.offset_bytes + l.size_bytes)
        .unwrap_or(ALIGN_BYTES);
    let total = end.next_power_of_two();

    let mut img = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)?;
    img.set_len(total)?;
    for (spec, l) in parts.iter().zip(&layout) {
        match &spec.source {
            Some(src) => copy_sparse(src, &mut img, l.offset_bytes)?,
            None if spec.type_id == TYPE_SWAP => {
                img.seek(SeekFrom::Start(l.offset_bytes))?;
                img.write_all(&swap_header(l.size_bytes)?)?;
            }
            None => {}
        }
    }
    img.seek(SeekFrom::Start(0))?;
    img.write_all(&mbr(&layout, parts))?;
    img.flush()?;
    Ok(layout)
}

fn plan(parts: &[PartitionSpec]) -> io::Result<Vec<PartitionLayout>> {
    if parts.is_empty() || parts.len() > 4 {
        return Err(invalid(format!(
            "{} partitions requested; an MBR holds 1 to 4 primary partitions",
            parts.len()
        )));
    }
    let mut offset = ALIGN_BYTES;
    let mut layout = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let n = i + 1;
        if p.type_id == 0 {
            return Err(invalid(format!(
                "partition {n}: type 0 marks an unused MBR slot; use 0x83 or 0x82"
            )));
        }
        let source_len = match &p.source {
            Some(src) => std::fs::metadata(src)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("partition {n} source {}: {e}", src.display()),
                    )
                })?
                .len(),
            None => 0,
        };
        let wanted = if p.size_bytes == 0 {
            source_len
        } else {
            p.size_bytes
        };
        if wanted < source_len {
            return Err(invalid(format!(
                "partition {n}: size {} bytes is smaller than its source ({source_len} bytes)",
                p.size_bytes
            )));
        }
        let size = wanted.div_ceil(ALIGN_BYTES) * ALIGN_BYTES;
        if size == 0 {
            return Err(invalid(format!(
                "partition {n}: neither a size nor a source was given"
            )));
        }
        let start_lba = offset / SECTOR_SIZE;
        let sectors = size / SECTOR_SIZE;
        if start_lba + sectors > u64::from(u32::MAX) {
            return Err(invalid(format!(
                "partition {n} ends beyond 2 TiB, which MBR cannot address"
            )));
        }
        layout.push(PartitionLayout {
            start_lba,
            sectors,
            offset_bytes: offset,
            size_bytes: size,
        });
        offset += size;
    }
    Ok(layout)
}

/// Copies `src` to `offset` in the freshly truncated image, leaving all-zero
/// chunks as holes so a mostly empty partition stays cheap on the host.
fn copy_sparse(src: &Path, img: &mut File, offset: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let mut input = File::open(src)?;
    let mut buf = vec![0u8; CHUNK];
    let mut pos = offset;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|&b| b != 0) {
            img.seek(SeekFrom::Start(pos))?;
            img.write_all(&buf[..n])?;
        }
        pos += n as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn mbr(layout: &[PartitionLayout], parts: &[PartitionSpec]) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[440..444].copy_from_slice(&DISK_SIGNATURE.to_le_bytes());
    for (i, (l, p)) in layout.iter().zip(parts).enumerate() {
        let e = &mut m[446 + 16 * i..446 + 16 * (i + 1)];
        e[0] = 0x00; // not bootable: firmware/QEMU load the kernel directly
        e[1..4].copy_from_slice(&chs(l.start_lba));
        e[4] = p.type_id;
        e[5..8].copy_from_slice(&chs(l.start_lba + l.sectors - 1));
        e[8..12].copy_from_slice(&(l.start_lba as u32).to_le_bytes());
        e[12..16].copy_from_slice(&(l.sectors as u32).to_le_bytes());
    }
    m[510] = 0x55;
    m[511] = 0xAA;
    m
}

/// CHS address in the 255-head/63-sector geometry fdisk assumes; nothing
/// reads it any more, but tools print warnings when it is inconsistent.
/// Addresses past cylinder 1023 saturate, as the convention is.
fn chs(lba: u64) -> [u8; 3] {
    const HEADS: u64 = 255;
    const SECTORS: u64 = 63;
    let cyl = lba / (HEADS * SECTORS);
    if cyl > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let head = (lba / SECTORS) % HEADS;
    let sector = lba % SECTORS + 1;
    [
        head as u8,
        (sector as u8) | ((cyl >> 2) as u8 & 0xC0),
        cyl as u8,
    ]
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: u64, type_id: u8) -> PartitionSpec {
        PartitionSpec {
            source: None,
            size_bytes: size,
            type_id,
        }
    }

    #[test]
    fn plan_aligns_and_rounds() {
        let l = plan(&[spec(1, TYPE_LINUX), spec(3 << 20, TYPE_SWAP)]).unwrap();
        assert_eq!(l[0].start_lba, 2048);
        assert_eq!(l[0].size_bytes, 1 << 20);
        assert_eq!(l[1].offset_bytes, 2 << 20);
        assert_eq!(l[1].sectors, 3 * 2048);
    }

    #[test]
    fn plan_rejects_nonsense() {
        assert!(plan(&[]).is_err());
        assert!(plan(&vec![spec(1 << 20, TYPE_LINUX); 5]).is_err());
        assert!(plan(&[spec(0, TYPE_LINUX)]).is_err());
        assert!(plan(&[spec(1 << 20, 0)]).is_err());
    }

    #[test]
    fn chs_matches_fdisk_convention() {
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(u64::from(u32::MAX)), [0xFE, 0xFF, 0xFF]);
    }

    #[test]
    fn partuuid_format() {
        assert_eq!(partuuid(0), "68696c74-01");
        assert_eq!(partuuid(1), "68696c74-02");
    }
}
