//! The boot image writer against AOSP's mkbootimg (Debian package
//! `mkbootimg`): version 2 must be byte-identical; version 4 must share
//! every field of the version 3 layout it extends (Debian's mkbootimg stops
//! at v3) and differ only in the version, header size and signature size.

use std::path::Path;
use std::process::Command;

use hilt_images::bootimg::{parse, Addresses, BootImage, Header};

/// A missing mkbootimg fails the test: a comparison that was skipped must
/// not read as one that passed (scripts/setup installs it).
fn mkbootimg(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = dir.join("ref.img");
    let status = match Command::new("mkbootimg")
        .args(args)
        .arg("-o")
        .arg(&out)
        .status()
    {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("mkbootimg is missing, so nothing was compared: apt-get install mkbootimg (scripts/setup does)")
        }
        Err(e) => panic!("{e}"),
    };
    assert!(status.success());
    std::fs::read(out).unwrap()
}

fn inputs(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    // Sizes that are not page multiples, so padding is exercised.
    let kernel: Vec<u8> = (0..123_457u32).map(|i| (i * 7 % 251) as u8).collect();
    let ramdisk: Vec<u8> = (0..33_333u32).map(|i| (i * 13 % 253) as u8).collect();
    let dtb: Vec<u8> = (0..4_099u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(dir.join("kernel"), &kernel).unwrap();
    std::fs::write(dir.join("ramdisk"), &ramdisk).unwrap();
    std::fs::write(dir.join("dtb"), &dtb).unwrap();
    (kernel, ramdisk, dtb)
}

#[test]
fn v2_is_byte_identical_to_mkbootimg() {
    let d = tempfile::tempdir().unwrap();
    let (kernel, ramdisk, dtb) = inputs(d.path());
    let cmdline = format!(
        "console=ttyAML0,115200 root=/dev/mmcblk0p2 {}",
        "x".repeat(600)
    );
    let p = |f: &str| d.path().join(f).display().to_string();
    for page in [2048u32, 4096] {
        let reference = mkbootimg(
            d.path(),
            &[
                "--header_version",
                "2",
                "--kernel",
                &p("kernel"),
                "--ramdisk",
                &p("ramdisk"),
                "--dtb",
                &p("dtb"),
                "--cmdline",
                &cmdline,
                "--board",
                "khadas-vim3",
                "--pagesize",
                &page.to_string(),
                "--base",
                "0x01080000",
                "--kernel_offset",
                "0x0",
                "--os_version",
                "12.0.0",
                "--os_patch_level",
                "2024-05",
            ],
        );
        let ours = BootImage {
            header: Header::V2 {
                page_size: page,
                addresses: Addresses {
                    base: 0x0108_0000,
                    kernel_offset: 0,
                    ..Addresses::default()
                },
                board: "khadas-vim3".into(),
                dtb: dtb.clone(),
            },
            kernel: &kernel,
            ramdisk: &ramdisk,
            cmdline: cmdline.clone(),
            os_version: 12 << 14,
            os_patch_level: (24 << 4) | 5,
        }
        .to_bytes()
        .unwrap();
        assert_eq!(ours.len(), reference.len(), "page {page}");
        let first = ours.iter().zip(&reference).position(|(a, b)| a != b);
        assert_eq!(first, None, "page {page}: first differing byte");
        let parsed = parse(&ours).unwrap();
        assert_eq!(&ours[parsed.dtb.unwrap().0..][..dtb.len()], &dtb[..]);
    }
}

#[test]
fn v4_extends_mkbootimgs_v3_layout() {
    let d = tempfile::tempdir().unwrap();
    let (kernel, ramdisk, _) = inputs(d.path());
    let p = |f: &str| d.path().join(f).display().to_string();
    let v3 = mkbootimg(
        d.path(),
        &[
            "--header_version",
            "3",
            "--kernel",
            &p("kernel"),
            "--ramdisk",
            &p("ramdisk"),
            "--cmdline",
            "console=ttyS0 androidboot.hardware=hilt",
        ],
    );
    let v4 = BootImage {
        header: Header::V4,
        kernel: &kernel,
        ramdisk: &ramdisk,
        cmdline: "console=ttyS0 androidboot.hardware=hilt".into(),
        os_version: 0,
        os_patch_level: 0,
    }
    .to_bytes()
    .unwrap();
    assert_eq!(v4.len(), v3.len());
    let differing: Vec<usize> = v4
        .iter()
        .zip(&v3)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    // header_size (bytes 20..24: 1584 vs this mkbootimg's 1596) and
    // header_version (byte 40); the v4 signature size at 1580 is 0 in both.
    assert!(
        differing.iter().all(|&i| (20..24).contains(&i) || i == 40),
        "bytes differ outside header_size/header_version: {:?}",
        &differing[..differing.len().min(10)]
    );
    assert_eq!(v4[40], 4);
}

/// Issue 20, finding 8: without mkbootimg on PATH and without `CI` set, both
/// comparisons returned early and passed. This runs them again in a child
/// with neither, which must fail and say why.
#[test]
fn a_missing_mkbootimg_fails_the_comparison() {
    for test in [
        "v2_is_byte_identical_to_mkbootimg",
        "v4_extends_mkbootimgs_v3_layout",
    ] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--test-threads=1"])
            .env("PATH", "/nonexistent")
            .env_remove("CI")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{test} passed without mkbootimg:\n{text}"
        );
        assert!(
            text.contains("apt-get install mkbootimg"),
            "{test}:\n{text}"
        );
    }
}
