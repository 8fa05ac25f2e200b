//! Android boot images (`boot.img`) for `fastboot boot` and
//! `fastboot flash boot`: header version 2 (kernel, ramdisk, dtb, with load
//! addresses, as Amlogic-era bootloaders expect) and version 4 (GKI layout:
//! 4096-byte pages, no addresses, the dtb lives in vendor_boot).
//!
//! Layouts follow AOSP's `bootimg.h`; version 2 output is byte-identical to
//! AOSP's `mkbootimg` with the same arguments (tested against Debian's
//! `mkbootimg` package).

use sha1::{Digest, Sha1};

use crate::Error;

const MAGIC: &[u8; 8] = b"ANDROID!";
const V2_HEADER_SIZE: u32 = 1660;
const V4_HEADER_SIZE: u32 = 1584;
const V4_PAGE: u32 = 4096;

/// mkbootimg's defaults: the load addresses most v2 bootloaders accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    pub base: u32,
    pub kernel_offset: u32,
    pub ramdisk_offset: u32,
    pub second_offset: u32,
    pub tags_offset: u32,
    pub dtb_offset: u64,
}

impl Default for Addresses {
    fn default() -> Self {
        Self {
            base: 0x1000_0000,
            kernel_offset: 0x0000_8000,
            ramdisk_offset: 0x0100_0000,
            second_offset: 0x00f0_0000,
            tags_offset: 0x0000_0100,
            dtb_offset: 0x01f0_0000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    V2 {
        page_size: u32,
        addresses: Addresses,
        /// At most 16 bytes.
        board: String,
        /// Required by version 2.
        dtb: Vec<u8>,
    },
    V4,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootImage<'a> {
    pub header: Header,
    pub kernel: &'a [u8],
    pub ramdisk: &'a [u8],
    /// Up to 1536 bytes.
    pub cmdline: String,
    /// `(a << 14 | b << 7 | c)`, as mkbootimg's --os_version packs a.b.c.
    pub os_version: u32,
    /// `((year - 2000) << 4) | month`, as --os_patch_level packs it.
    pub os_patch_level: u32,
}

fn bad(what: impl Into<String>) -> Error {
    Error::Invalid(what.into())
}

impl BootImage<'_> {
    /// The whole image, header and padded sections.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        if self.kernel.is_empty() {
            return Err(bad("boot image: the kernel is empty"));
        }
        if self.cmdline.len() > 1536 {
            return Err(bad(format!(
                "boot image: the command line is {} bytes, the header holds at most 1536",
                self.cmdline.len()
            )));
        }
        let size = |b: &[u8], what: &str| {
            u32::try_from(b.len()).map_err(|_| bad(format!("boot image: the {what} is over 4 GiB")))
        };
        let (k, r) = (size(self.kernel, "kernel")?, size(self.ramdisk, "ramdisk")?);
        let os = (self.os_version << 11) | self.os_patch_level;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        match &self.header {
            Header::V2 {
                page_size,
                addresses: a,
                board,
                dtb,
            } => {
                if !(2048..=16384).contains(page_size) || !page_size.is_power_of_two() {
                    return Err(bad(format!(
                        "boot image: page size {page_size}: expected 2048, 4096, 8192 or 16384"
                    )));
                }
                if board.len() > 16 {
                    return Err(bad("boot image: the board name is over 16 bytes"));
                }
                if dtb.is_empty() {
                    return Err(bad("boot image v2: a dtb is required"));
                }
                let d = size(dtb, "dtb")?;
                let ramdisk_addr = if r > 0 { a.base + a.ramdisk_offset } else { 0 };
                for v in [
                    k,
                    a.base + a.kernel_offset,
                    r,
                    ramdisk_addr,
                    0, // second stage size
                    0, // and address: none
                    a.base + a.tags_offset,
                    *page_size,
                    2,
                    os,
                ] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                put_str(&mut out, board, 16);
                let cmd = self.cmdline.as_bytes();
                let split = cmd.len().min(512);
                put_bytes(&mut out, &cmd[..split], 512);
                // The id: SHA-1 over each section and its size, as mkbootimg
                // computes it (second stage and recovery dtbo empty).
                let mut h = Sha1::new();
                for part in [self.kernel, self.ramdisk, &[], &[], dtb.as_slice()] {
                    h.update(part);
                    h.update((part.len() as u32).to_le_bytes());
                }
                put_bytes(&mut out, &h.finalize(), 32);
                put_bytes(&mut out, &cmd[split..], 1024);
                out.extend_from_slice(&0u32.to_le_bytes()); // recovery dtbo size
                out.extend_from_slice(&0u64.to_le_bytes()); // and offset
                out.extend_from_slice(&V2_HEADER_SIZE.to_le_bytes());
                out.extend_from_slice(&d.to_le_bytes());
                out.extend_from_slice(&(u64::from(a.base) + a.dtb_offset).to_le_bytes());
                debug_assert_eq!(out.len(), V2_HEADER_SIZE as usize);
                let page = *page_size as usize;
                pad(&mut out, page);
                for part in [self.kernel, self.ramdisk, dtb.as_slice()] {
                    out.extend_from_slice(part);
                    pad(&mut out, page);
                }
            }
            Header::V4 => {
                for v in [k, r, os, V4_HEADER_SIZE, 0, 0, 0, 0, 4] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                put_str(&mut out, &self.cmdline, 1536);
                // No boot signature: devices that verify it (GKI certified
                // builds) reject unsigned kernels anyway.
                out.extend_from_slice(&0u32.to_le_bytes());
                debug_assert_eq!(out.len(), V4_HEADER_SIZE as usize);
                let page = V4_PAGE as usize;
                pad(&mut out, page);
                for part in [self.kernel, self.ramdisk] {
                    out.extend_from_slice(part);
                    pad(&mut out, page);
                }
            }
        }
        Ok(out)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, width: usize) {
    put_bytes(out, s.as_bytes(), width)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8], width: usize) {
    let n = b.len().min(width);
    out.extend_from_slice(&b[..n]);
    out.resize(out.len() + width - n, 0);
}

fn pad(out: &mut Vec<u8>, page: usize) {
    let rem = out.len() % page;
    if rem != 0 {
        out.resize(out.len() + page - rem, 0);
    }
}

/// What a boot image holds, read back from its header (for checking an
/// image before flashing it, and for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub version: u32,
    pub page_size: u32,
    pub kernel: (usize, usize),
    pub ramdisk: (usize, usize),
    pub dtb: Option<(usize, usize)>,
    pub cmdline: String,
}

/// Reads the header of a v2 or v4 image; sections as (offset, length).
pub fn parse(img: &[u8]) -> Result<Parsed, Error> {
    if img.len() < 1584 || &img[..8] != MAGIC {
        return Err(bad("not an Android boot image (no ANDROID! magic)"));
    }
    let u = |at: usize| u32::from_le_bytes(img[at..at + 4].try_into().unwrap());
    let cstr = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let round = |n: usize, p: usize| n.div_ceil(p) * p;
    let version = u(40);
    if version >= 3 {
        let (k, r) = (u(8) as usize, u(12) as usize);
        let p = V4_PAGE as usize;
        let ko = p;
        let ro = ko + round(k, p);
        return Ok(Parsed {
            version,
            page_size: V4_PAGE,
            kernel: (ko, k),
            ramdisk: (ro, r),
            dtb: None,
            cmdline: cstr(&img[44..44 + 1536]),
        });
    }
    let p = u(36) as usize;
    if p == 0 || !p.is_power_of_two() {
        return Err(bad(format!(
            "boot image page size {p} is not a power of two"
        )));
    }
    let (k, r, s) = (u(8) as usize, u(16) as usize, u(24) as usize);
    let ko = p;
    let ro = ko + round(k, p);
    let so = ro + round(r, p);
    let mut cmd = cstr(&img[64..64 + 512]);
    cmd.push_str(&cstr(&img[608..608 + 1024]));
    let dtb = (version == 2).then(|| {
        let rec = u(1632) as usize;
        (so + round(s, p) + round(rec, p), u(1648) as usize)
    });
    Ok(Parsed {
        version,
        page_size: p as u32,
        kernel: (ko, k),
        ramdisk: (ro, r),
        dtb,
        cmdline: cmd,
    })
}

/// How many bytes of `img` the boot image takes, by its header: a boot
/// partition read whole holds the image and then whatever was there before.
pub fn image_len(img: &[u8]) -> Result<usize, Error> {
    let p = parse(img)?;
    let page = p.page_size as usize;
    let u = |at: usize| u32::from_le_bytes(img[at..at + 4].try_into().unwrap()) as usize;
    let mut sections = vec![p.kernel.1, p.ramdisk.1];
    if p.version >= 3 {
        if p.version >= 4 {
            sections.push(u(1580)); // boot signature
        }
    } else {
        sections.push(u(24)); // second stage
        if p.version >= 1 {
            sections.push(u(1632)); // recovery dtbo
        }
        if p.version >= 2 {
            sections.push(u(1648)); // dtb
        }
    }
    let len = page
        + sections
            .iter()
            .map(|n| n.div_ceil(page) * page)
            .sum::<usize>();
    if len > img.len() {
        return Err(bad(format!(
            "boot image: its header says it is {len} bytes, and {} were read",
            img.len()
        )));
    }
    Ok(len)
}

/// The device's own boot image with only its kernel replaced: the header,
/// the ramdisk, the second stage, the recovery dtbo and the dtb stay as the
/// device had them, so the device's own userspace comes back up. For
/// versions 0 to 2 the id (SHA-1 over the sections) is recomputed, as
/// mkbootimg computes it; versions 3 and 4 have none.
pub fn replace_kernel(img: &[u8], kernel: &[u8]) -> Result<Vec<u8>, Error> {
    if kernel.is_empty() {
        return Err(bad("boot image: the new kernel is empty"));
    }
    let p = parse(img)?;
    let page = p.page_size as usize;
    let (ko, klen) = p.kernel;
    let rest = ko + klen.div_ceil(page) * page;
    if rest > img.len() {
        return Err(bad(format!(
            "boot image: its header says the kernel ends at byte {rest}, and the image has {}",
            img.len()
        )));
    }
    let k = u32::try_from(kernel.len()).map_err(|_| bad("boot image: the kernel is over 4 GiB"))?;
    let mut out = img[..ko].to_vec();
    out[8..12].copy_from_slice(&k.to_le_bytes());
    out.extend_from_slice(kernel);
    pad(&mut out, page);
    out.extend_from_slice(&img[rest..]);
    if p.version < 3 {
        let id = section_id(&out, p.version)?;
        out[576..608].copy_from_slice(&id);
    }
    Ok(out)
}

/// mkbootimg's id of a version 0-2 image: SHA-1 over each section and its
/// size, in the order they are laid out, padded to the 32 bytes it holds.
fn section_id(img: &[u8], version: u32) -> Result<[u8; 32], Error> {
    let u = |at: usize| u32::from_le_bytes(img[at..at + 4].try_into().unwrap()) as usize;
    let page = u(36);
    let mut sizes = vec![u(8), u(16), u(24)];
    if version >= 1 {
        sizes.push(u(1632));
    }
    if version >= 2 {
        sizes.push(u(1648));
    }
    let mut h = Sha1::new();
    let mut at = page;
    for n in sizes {
        let part = img
            .get(at..at + n)
            .ok_or_else(|| bad("boot image: a section runs past its end"))?;
        h.update(part);
        h.update((n as u32).to_le_bytes());
        at += n.div_ceil(page) * page;
    }
    let mut id = [0u8; 32];
    id[..20].copy_from_slice(&h.finalize());
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(header: Header) -> Vec<u8> {
        BootImage {
            header,
            kernel: &[1u8; 5000],
            ramdisk: &[2u8; 100],
            cmdline: "console=ttyAML0,115200".into(),
            os_version: 0,
            os_patch_level: 0,
        }
        .to_bytes()
        .unwrap()
    }

    #[test]
    fn v2_round_trips_through_the_parser() {
        let b = img(Header::V2 {
            page_size: 2048,
            addresses: Addresses::default(),
            board: "vim3".into(),
            dtb: vec![3u8; 77],
        });
        let p = parse(&b).unwrap();
        assert_eq!(p.version, 2);
        assert_eq!(p.kernel, (2048, 5000));
        assert_eq!(p.ramdisk, (2048 + 6144, 100));
        assert_eq!(p.dtb, Some((2048 + 6144 + 2048, 77)));
        assert_eq!(&b[p.dtb.unwrap().0..][..77], &[3u8; 77][..]);
        assert_eq!(p.cmdline, "console=ttyAML0,115200");
        assert_eq!(b.len() % 2048, 0);
    }

    #[test]
    fn v4_layout_follows_bootimg_h() {
        let b = img(Header::V4);
        assert_eq!(&b[..8], b"ANDROID!");
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 1584);
        assert_eq!(u32::from_le_bytes(b[40..44].try_into().unwrap()), 4);
        let p = parse(&b).unwrap();
        assert_eq!(p.kernel, (4096, 5000));
        assert_eq!(p.ramdisk, (4096 + 8192, 100));
        assert_eq!(b.len(), 4096 * 4);
    }

    #[test]
    fn long_command_lines_split_like_mkbootimg_and_overlong_ones_fail() {
        let long = "x".repeat(700);
        let b = BootImage {
            header: Header::V2 {
                page_size: 4096,
                addresses: Addresses::default(),
                board: String::new(),
                dtb: vec![1],
            },
            kernel: &[1],
            ramdisk: &[],
            cmdline: long.clone(),
            os_version: 0,
            os_patch_level: 0,
        };
        assert_eq!(parse(&b.to_bytes().unwrap()).unwrap().cmdline, long);
        let over = BootImage {
            cmdline: "x".repeat(1537),
            ..b.clone()
        };
        assert!(over.to_bytes().unwrap_err().to_string().contains("1536"));
        let no_dtb = BootImage {
            header: Header::V2 {
                page_size: 4096,
                addresses: Addresses::default(),
                board: String::new(),
                dtb: vec![],
            },
            ..b
        };
        assert!(no_dtb.to_bytes().unwrap_err().to_string().contains("dtb"));
    }

    #[test]
    fn replacing_the_kernel_equals_building_with_the_new_one() {
        for header in [
            Header::V2 {
                page_size: 2048,
                addresses: Addresses::default(),
                board: "vim3".into(),
                dtb: vec![3u8; 77],
            },
            Header::V4,
        ] {
            let build = |kernel: &[u8]| {
                BootImage {
                    header: header.clone(),
                    kernel,
                    ramdisk: &[2u8; 3000],
                    cmdline: "console=ttyAML0,115200".into(),
                    os_version: 0,
                    os_patch_level: 0,
                }
                .to_bytes()
                .unwrap()
            };
            let old = build(&[1u8; 5000]);
            // Longer and shorter than the old kernel, by more than a page.
            for new in [vec![9u8; 9000], vec![8u8; 100]] {
                assert_eq!(replace_kernel(&old, &new).unwrap(), build(&new));
            }
        }
    }

    #[test]
    fn the_image_length_comes_from_the_header_not_the_partition() {
        for header in [
            Header::V2 {
                page_size: 2048,
                addresses: Addresses::default(),
                board: String::new(),
                dtb: vec![3u8; 77],
            },
            Header::V4,
        ] {
            let b = img(header);
            let mut partition = b.clone();
            partition.resize(b.len() + 100_000, 0);
            assert_eq!(image_len(&partition).unwrap(), b.len());
            assert!(image_len(&b[..b.len() - 1]).is_err());
        }
    }

    #[test]
    fn a_truncated_image_or_an_empty_kernel_is_refused() {
        let old = img(Header::V4);
        assert!(replace_kernel(&old, &[])
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let cut = &old[..4096 + 100];
        assert!(replace_kernel(cut, &[1])
            .unwrap_err()
            .to_string()
            .contains("the kernel ends at byte"));
    }
}
