//! U-Boot's legacy image format, the one `source` reads boot.scr in and
//! `booti`/`bootm` take an uInitrd in: a 64-byte big-endian header with
//! CRC32s of itself and of the data. Written here rather than by mkimage
//! on the board, which few boards have (u-boot-tools).

use anyhow::{bail, ensure};

const MAGIC: u32 = 0x2705_1956;
const HEADER: usize = 64;
const OS_LINUX: u8 = 5;
const ARCH_ARM64: u8 = 22;
const COMP_NONE: u8 = 0;

/// The image types hilt writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `source` runs it: the data is a table of lengths (one script, then
    /// a zero) followed by the script's text.
    Script,
    /// An initrd `booti`/`bootm` takes without a size (Armbian's uInitrd).
    Ramdisk,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Script => 6,
            Kind::Ramdisk => 3,
        }
    }
}

/// A legacy image of `kind` holding `payload` (a script's text, or an
/// initrd), named `name` (at most 31 bytes are kept, as mkimage keeps).
/// The time stamp is 0 so that the same input gives the same bytes: the
/// install reads files back by sha256.
pub fn wrap(kind: Kind, name: &str, payload: &[u8]) -> Vec<u8> {
    let data = match kind {
        Kind::Script => {
            let mut d = Vec::with_capacity(payload.len() + 8);
            d.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            d.extend_from_slice(&0u32.to_be_bytes());
            d.extend_from_slice(payload);
            d
        }
        Kind::Ramdisk => payload.to_vec(),
    };
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    // 4..8 header CRC, 8..12 time: filled below / left 0.
    h[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
    // 16..20 load and 20..24 entry address: 0, as for any script or an
    // initrd that is loaded where the boot command says.
    h[24..28].copy_from_slice(&crc32fast::hash(&data).to_be_bytes());
    h[28] = OS_LINUX;
    h[29] = ARCH_ARM64;
    h[30] = kind.code();
    h[31] = COMP_NONE;
    let n = name.len().min(31);
    h[32..32 + n].copy_from_slice(&name.as_bytes()[..n]);
    let hcrc = crc32fast::hash(&h);
    h[4..8].copy_from_slice(&hcrc.to_be_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(&data);
    out
}

/// The text of a script image (a board's own boot.scr), both CRCs checked.
pub fn script_text(image: &[u8]) -> anyhow::Result<String> {
    let data = checked_data(image)?;
    ensure!(
        image[30] == Kind::Script.code(),
        "it is a U-Boot image of type {}, not a script (6)",
        image[30]
    );
    ensure!(
        image[31] == COMP_NONE,
        "its script is compressed (type {}): hilt reads uncompressed scripts, as mkimage -C none writes them",
        image[31]
    );
    // The lengths table: one entry per component, ended by a zero; the
    // script is the first component.
    let word = |i: usize| -> Option<u32> {
        data.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(len) = word(0).filter(|&l| l > 0) else {
        bail!("its script is empty");
    };
    let mut i = 1;
    while word(i).is_some_and(|w| w != 0) {
        i += 1;
    }
    ensure!(word(i).is_some(), "its table of script lengths has no end");
    let start = (i + 1) * 4;
    let Some(text) = data.get(start..start + len as usize) else {
        bail!("its script of {len} bytes runs past the image's data");
    };
    // U-Boot stops at a NUL; mkimage's input files have none.
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    Ok(String::from_utf8(text.to_vec())?)
}

fn checked_data(image: &[u8]) -> anyhow::Result<&[u8]> {
    ensure!(
        image.len() >= HEADER,
        "it is {} bytes, shorter than a U-Boot image header",
        image.len()
    );
    let be =
        |at: usize| u32::from_be_bytes([image[at], image[at + 1], image[at + 2], image[at + 3]]);
    ensure!(
        be(0) == MAGIC,
        "it is no U-Boot legacy image (magic {:#010x})",
        be(0)
    );
    let mut h = [0u8; HEADER];
    h.copy_from_slice(&image[..HEADER]);
    h[4..8].fill(0);
    ensure!(crc32fast::hash(&h) == be(4), "its header checksum is wrong");
    let size = be(12) as usize;
    let Some(data) = image.get(HEADER..HEADER + size) else {
        bail!(
            "its header says {size} bytes of data, the file has {}",
            image.len() - HEADER
        );
    };
    ensure!(
        crc32fast::hash(data) == be(24),
        "its data checksum is wrong"
    );
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `mkimage -A arm64 -O linux -T script -C none -n t -d` made of
    /// "echo hi\n" (Debian's u-boot-tools 2023.01), its time stamp zeroed
    /// and the header CRC recomputed by the same tool's rules.
    #[test]
    fn a_script_image_has_mkimages_layout() {
        let img = wrap(Kind::Script, "t", b"echo hi\n");
        assert_eq!(img.len(), 64 + 8 + 8);
        assert_eq!(&img[0..4], &[0x27, 0x05, 0x19, 0x56]);
        assert_eq!(&img[12..16], &16u32.to_be_bytes());
        // Data CRC, os, arch, type and compression as mkimage wrote them.
        assert_eq!(&img[24..32], &[0xd9, 0x34, 0x01, 0x62, 5, 22, 6, 0]);
        assert_eq!(&img[64..72], &[0, 0, 0, 8, 0, 0, 0, 0]);
        assert_eq!(&img[72..], b"echo hi\n");
        assert_eq!(script_text(&img).unwrap(), "echo hi\n");
    }

    #[test]
    fn damaged_images_are_refused() {
        let mut img = wrap(Kind::Script, "boot", b"booti\n");
        img[70] ^= 1;
        assert!(script_text(&img)
            .unwrap_err()
            .to_string()
            .contains("data checksum"));
        let mut img = wrap(Kind::Script, "boot", b"booti\n");
        img[40] = b'x';
        assert!(script_text(&img)
            .unwrap_err()
            .to_string()
            .contains("header checksum"));
        let rd = wrap(Kind::Ramdisk, "uInitrd", b"0707");
        assert!(script_text(&rd)
            .unwrap_err()
            .to_string()
            .contains("not a script"));
        assert!(script_text(b"#!/bin/sh\n")
            .unwrap_err()
            .to_string()
            .contains("shorter"));
    }

    #[test]
    fn long_names_are_cut_as_mkimage_cuts_them() {
        let img = wrap(Kind::Ramdisk, &"n".repeat(40), b"x");
        assert_eq!(&img[32..63], "n".repeat(31).as_bytes());
        assert_eq!(img[63], 0);
    }

    /// The host's mkimage and dumpimage (Debian's u-boot-tools) read what
    /// hilt writes, and hilt reads what mkimage writes.
    /// (u-boot-tools is in scripts/setup's host packages.)
    #[test]
    fn u_boot_tools_agree() {
        let dir = tempfile::tempdir().unwrap();
        let scr = dir.path().join("boot.scr");
        let text = "setenv bootargs \"console=ttyAMA0\"\nload virtio 0:1 ${kernel_addr_r} /Image\nbooti ${kernel_addr_r} - ${fdtcontroladdr}\n";
        std::fs::write(&scr, wrap(Kind::Script, "hilt", text.as_bytes())).unwrap();
        let o = std::process::Command::new("mkimage")
            .arg("-l")
            .arg(&scr)
            .output()
            .expect("mkimage (u-boot-tools)");
        let listed = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "mkimage -l: {o:?}");
        assert!(
            listed.contains("AArch64 Linux Script (uncompressed)"),
            "{listed}"
        );
        assert!(listed.contains("Image Name:   hilt"), "{listed}");
        assert!(
            listed.contains(&format!("Image 0: {} Bytes", text.len())),
            "{listed}"
        );
        let out = dir.path().join("extracted");
        let o = std::process::Command::new("dumpimage")
            .args(["-T", "script", "-p", "0", "-o"])
            .arg(&out)
            .arg(&scr)
            .output()
            .unwrap();
        assert!(o.status.success(), "dumpimage: {o:?}");
        // dumpimage hands a script's data out whole: its lengths table, then the text.
        let mut want = (text.len() as u32).to_be_bytes().to_vec();
        want.extend_from_slice(&[0; 4]);
        want.extend_from_slice(text.as_bytes());
        assert_eq!(std::fs::read(&out).unwrap(), want);

        let rd = dir.path().join("uInitrd");
        std::fs::write(&rd, wrap(Kind::Ramdisk, "uInitrd", b"07070100")).unwrap();
        let o = std::process::Command::new("mkimage")
            .arg("-l")
            .arg(&rd)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&o.stdout);
        assert!(
            listed.contains("AArch64 Linux RAMDisk Image (uncompressed)"),
            "{listed}"
        );

        let cmd = dir.path().join("own.cmd");
        std::fs::write(&cmd, text).unwrap();
        let theirs = dir.path().join("own.scr");
        let o = std::process::Command::new("mkimage")
            .args([
                "-A", "arm", "-O", "linux", "-T", "script", "-C", "none", "-n", "own", "-d",
            ])
            .arg(&cmd)
            .arg(&theirs)
            .output()
            .unwrap();
        assert!(o.status.success(), "mkimage: {o:?}");
        let theirs = std::fs::read(&theirs).unwrap();
        assert_eq!(script_text(&theirs).unwrap(), text);
        // Byte for byte what mkimage writes, but for the header CRC and the
        // time stamp (hilt writes 0), and the architecture asked for.
        let mut ours = wrap(Kind::Script, "own", text.as_bytes());
        ours[29] = theirs[29];
        assert_eq!(ours[12..], theirs[12..]);
    }
}
