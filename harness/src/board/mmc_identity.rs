//! Which of U-Boot's `mmc` devices is which of Linux's `mmcblk` disks.
//! The numbers differ between the two (on a Le Potato U-Boot's `mmc 0` is
//! the SD card Linux calls mmcblk1), so a board file pairs them by hand,
//! and a wrong pair writes the plan's image to the wrong card. Each side
//! is asked who the card is: U-Boot's `mmc info` and Linux's sysfs report
//! the same CID fields (manufacturer, OEM, product name) and capacity.

use anyhow::{bail, Context};
use hilt_protocol::MmcCard;

use crate::plan::{BoardFile, FlashCfg};

/// A card as U-Boot's `mmc info` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UbootCard {
    /// "SD" or "MMC", from its "SD version 3.0" / "MMC version 5.1" line.
    pub kind: String,
    pub manfid: u32,
    pub oem: u32,
    pub name: String,
    /// As printed: "14.8 GiB" (mainline), or "7944011776 Bytes" and a bare
    /// number in some vendor builds.
    pub capacity: String,
}

/// Reads `mmc info` (cmd/mmc.c's print_mmcinfo).
pub fn parse_mmc_info(text: &str) -> anyhow::Result<UbootCard> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("no \"{name}:\" line in U-Boot's `mmc info`:\n{text}"))
    };
    let hex = |name: &str| -> anyhow::Result<u32> {
        let v = field(name)?;
        u32::from_str_radix(v.trim_start_matches("0x"), 16)
            .with_context(|| format!("`mmc info` gave {name}: {v:?}, not a hex number"))
    };
    let kind = text
        .lines()
        .find_map(|l| {
            let l = l.trim_start();
            ["SD", "MMC"]
                .into_iter()
                .find(|k| l.starts_with(&format!("{k} version ")))
        })
        .with_context(|| {
            format!("no \"SD version\" or \"MMC version\" line in `mmc info`:\n{text}")
        })?;
    Ok(UbootCard {
        kind: kind.to_string(),
        manfid: hex("Manufacturer ID")?,
        oem: hex("OEM")?,
        name: field("Name")?,
        capacity: field("Capacity")?,
    })
}

/// A size as U-Boot's print_size() prints it: binary units with one
/// rounded decimal, the decimal left out when it is 0 ("14.8 GiB", "8 GiB").
pub fn uboot_size(bytes: u64) -> String {
    const NAMES: [char; 6] = ['E', 'P', 'T', 'G', 'M', 'K'];
    for (i, c) in NAMES.into_iter().enumerate() {
        let d = 60 - 10 * i as u32;
        if bytes >> d == 0 {
            continue;
        }
        let mut n = bytes >> d;
        let f = bytes & ((1u64 << d) - 1);
        let mut m = 0;
        if f != 0 {
            m = ((10 * u128::from(f) + (1u128 << (d - 1))) >> d) as u64;
            if m >= 10 {
                m -= 10;
                n += 1;
            }
        }
        return match m {
            0 => format!("{n} {c}iB"),
            m => format!("{n}.{m} {c}iB"),
        };
    }
    format!("{bytes} Bytes")
}

/// Whether U-Boot and Linux describe the same card. An eMMC's OEM is one
/// byte in U-Boot and, in Linux before 6.6, two (with the CBX byte above
/// it): only the low byte is compared there.
pub fn same_card(u: &UbootCard, l: &MmcCard) -> bool {
    let oem_mask = if u.kind == "MMC" { 0xff } else { 0xffff };
    u.kind == l.kind
        && u.manfid == l.manfid
        && u.oem & oem_mask == l.oemid & oem_mask
        && u.name.trim() == l.name.trim()
        && same_capacity(&u.capacity, l.sectors * 512)
}

fn same_capacity(printed: &str, bytes: u64) -> bool {
    let plain = printed.trim_end_matches("Bytes").trim();
    match plain.parse::<u64>() {
        Ok(n) => n == bytes,
        Err(_) => printed == uboot_size(bytes),
    }
}

fn describe_uboot(dev: u32, u: &UbootCard) -> String {
    format!(
        "U-Boot's mmc {dev}: {} card, manufacturer {:#04x}, OEM {:#06x}, name {:?}, {}",
        u.kind, u.manfid, u.oem, u.name, u.capacity
    )
}

fn describe_linux(l: &MmcCard) -> String {
    format!(
        "Linux's {}: {} card, manfid {:#08x}, oemid {:#06x}, name {:?}, {} ({} sectors)",
        l.disk,
        l.kind,
        l.manfid,
        l.oemid,
        l.name,
        uboot_size(l.sectors * 512),
        l.sectors
    )
}

/// The disk of a Linux partition node: `/dev/mmcblk1p3` → `mmcblk1`.
pub fn mmc_disk(node: &str) -> Option<&str> {
    let name = node.strip_prefix("/dev/")?;
    let rest = name.strip_prefix("mmcblk")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0 && rest[digits..].starts_with('p')).then(|| &name[..6 + digits])
}

/// What the board file pairs: U-Boot's `mmc N` and the Linux disk that
/// holds the image partition. None on a board that does not write an
/// image to an SD card or eMMC from U-Boot.
pub fn pairing(b: &BoardFile) -> Option<(u32, String, &str, &str)> {
    let Some(FlashCfg::UbootMmc { mmc_dev, .. }) = &b.flash else {
        return None;
    };
    let part = &b.storage.as_ref()?.image;
    let node = b.partitions.get(part)?;
    Some((
        *mmc_dev,
        format!("partitions.{part}"),
        node.as_str(),
        mmc_disk(node)?,
    ))
}

/// Checks the board file's pairing against what both sides reported on
/// the identification boot; the error names the keys, both sides' cards
/// and what to change.
pub fn check(b: &BoardFile, uboot: &UbootCard, linux: &[MmcCard]) -> anyhow::Result<()> {
    let Some((dev, part_key, node, disk)) = pairing(b) else {
        return Ok(());
    };
    let file = format!("boards/{}.yaml", b.name);
    let theirs = describe_uboot(dev, uboot);
    let listed = if linux.is_empty() {
        "Linux found no SD card or eMMC (is the storage driver in `initramfs.modules`?)".to_string()
    } else {
        linux
            .iter()
            .map(describe_linux)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let Some(ours) = linux.iter().find(|l| l.disk == disk) else {
        bail!(
            "board {}: {file} pairs U-Boot's mmc {dev} (flash.uboot_mmc.mmc_dev) with Linux's {disk} ({part_key}: {node}), \
             and Linux has no {disk}. {theirs}. {listed}. Nothing was written. \
             Set {part_key} to the partition on the disk that is U-Boot's mmc {dev}",
            b.name
        );
    };
    if same_card(uboot, ours) {
        return Ok(());
    }
    let hint = match linux.iter().find(|l| same_card(uboot, l)) {
        Some(other) => format!(
            "Linux's {} is U-Boot's mmc {dev}: set {part_key} (and the other partitions) to /dev/{}pN, \
             or set flash.uboot_mmc.mmc_dev to the U-Boot device that is {disk}",
            other.disk, other.disk
        ),
        None => format!(
            "no card Linux found is U-Boot's mmc {dev}: set flash.uboot_mmc.mmc_dev to the U-Boot device that is {disk} \
             (`mmc list`, then `mmc dev N` and `mmc info` for each at the U-Boot prompt)"
        ),
    };
    bail!(
        "board {}: {file} pairs U-Boot's mmc {dev} (flash.uboot_mmc.mmc_dev: {dev}) with Linux's {disk} ({part_key}: {node}), \
         and they are different cards. {theirs}. {}. Nothing was written. {hint}",
        b.name,
        describe_linux(ours)
    )
}

/// [`tests`]' `mmc info` text, for the strategy's U-Boot double.
#[cfg(test)]
pub fn tests_sd_info() -> String {
    tests::SD_INFO.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// U-Boot 2023.01's print_mmcinfo for QEMU's sd-card, laid out as
    /// cmd/mmc.c prints it, with the CID fields and size of the card Linux
    /// reported from QEMU's sdhci-pci below.
    pub(super) const SD_INFO: &str = "Device: sdhci@0\nManufacturer ID: aa\nOEM: 5859\nName: QEMU! \nBus Speed: 25000000\nMode: SD Legacy\nRd Block Len: 512\nSD version 2.0\nHigh Capacity: No\nCapacity: 256 MiB\nBus Width: 4-bit\nErase Group Size: 512 Bytes\n";

    fn qemu_sd(disk: &str) -> MmcCard {
        MmcCard {
            disk: disk.into(),
            kind: "SD".into(),
            manfid: 0xaa,
            oemid: 0x5859,
            name: "QEMU!".into(),
            sectors: 524_288,
        }
    }

    #[test]
    fn mmc_info_is_read_field_by_field() {
        let u = parse_mmc_info(SD_INFO).unwrap();
        assert_eq!(
            u,
            UbootCard {
                kind: "SD".into(),
                manfid: 0xaa,
                oem: 0x5859,
                name: "QEMU!".into(),
                capacity: "256 MiB".into(),
            }
        );
        assert!(same_card(&u, &qemu_sd("mmcblk0")));
        let err = parse_mmc_info("Device: x\nManufacturer ID: zz\n").unwrap_err();
        assert!(format!("{err:#}").contains("SD version"), "{err:#}");
    }

    #[test]
    fn sizes_print_as_uboot_prints_them() {
        for (bytes, want) in [
            (268_435_456, "256 MiB"),
            (31_116_288 * 512, "14.8 GiB"),
            (15_269_888 * 512, "7.3 GiB"),
            (8 << 30, "8 GiB"),
            // The unit is picked before rounding, as U-Boot does.
            ((1 << 30) - 1, "1024 MiB"),
            (1023, "1023 Bytes"),
        ] {
            assert_eq!(uboot_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn an_emmc_oem_is_compared_in_its_low_byte_and_bytes_count_exactly() {
        let u = UbootCard {
            kind: "MMC".into(),
            manfid: 0x15,
            oem: 0x00,
            name: "8GME4R".into(),
            capacity: "7818182656 Bytes".into(),
        };
        let l = MmcCard {
            disk: "mmcblk1".into(),
            kind: "MMC".into(),
            manfid: 0x15,
            oemid: 0x0100,
            name: "8GME4R".into(),
            sectors: 7_818_182_656 / 512,
        };
        assert!(same_card(&u, &l));
        assert!(!same_card(
            &u,
            &MmcCard {
                sectors: l.sectors - 1,
                ..l.clone()
            }
        ));
    }

    fn potato(data: &str) -> BoardFile {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/le-potato.yaml"),
        )
        .unwrap()
        .replace("data: /dev/mmcblk1p3", &format!("data: {data}"));
        serde_yaml_ng::from_str(&text).unwrap()
    }

    #[test]
    fn the_pairing_is_checked_and_a_mismatch_says_what_to_change() {
        let u = parse_mmc_info(SD_INFO).unwrap();
        let emmc = MmcCard {
            disk: "mmcblk0".into(),
            kind: "MMC".into(),
            manfid: 0x15,
            oemid: 0x100,
            name: "8GME4R".into(),
            sectors: 15_269_888,
        };
        // As on a Le Potato: U-Boot's mmc 0 is the SD card, mmcblk1.
        let b = potato("/dev/mmcblk1p3");
        check(&b, &u, &[emmc.clone(), qemu_sd("mmcblk1")]).unwrap();

        // The board file names the eMMC's partition instead.
        let b = potato("/dev/mmcblk0p3");
        let err = check(&b, &u, &[emmc.clone(), qemu_sd("mmcblk1")])
            .unwrap_err()
            .to_string();
        for want in [
            "boards/le-potato.yaml pairs U-Boot's mmc 0 (flash.uboot_mmc.mmc_dev: 0) with Linux's mmcblk0 (partitions.data: /dev/mmcblk0p3), and they are different cards",
            "U-Boot's mmc 0: SD card, manufacturer 0xaa, OEM 0x5859, name \"QEMU!\", 256 MiB",
            "Linux's mmcblk0: MMC card, manfid 0x000015, oemid 0x0100, name \"8GME4R\", 7.3 GiB (15269888 sectors)",
            "Nothing was written",
            "Linux's mmcblk1 is U-Boot's mmc 0: set partitions.data (and the other partitions) to /dev/mmcblk1pN",
        ] {
            assert!(err.contains(want), "{want:?} not in {err}");
        }

        // No card of Linux's is U-Boot's.
        let err = check(&b, &u, &[emmc]).unwrap_err().to_string();
        assert!(
            err.contains("no card Linux found is U-Boot's mmc 0: set flash.uboot_mmc.mmc_dev"),
            "{err}"
        );
        let err = check(&potato("/dev/mmcblk2p3"), &u, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("Linux has no mmcblk2"), "{err}");
        assert!(err.contains("Linux found no SD card or eMMC"), "{err}");
    }

    #[test]
    fn only_mmc_partition_nodes_name_a_disk() {
        assert_eq!(mmc_disk("/dev/mmcblk1p3"), Some("mmcblk1"));
        assert_eq!(mmc_disk("/dev/mmcblk10p1"), Some("mmcblk10"));
        assert_eq!(mmc_disk("/dev/mmcblk1"), None);
        assert_eq!(mmc_disk("/dev/mmcblk1boot0"), None);
        assert_eq!(mmc_disk("/dev/vda1"), None);
    }
}
