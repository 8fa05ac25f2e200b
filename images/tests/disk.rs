//! SD card images: sfdisk reads the table back as written, partitions hold
//! their sources, and blkid/file recognise the swap header.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{run, s, Scratch};
use hilt_images::disk::{self, PartitionSpec, TYPE_LINUX, TYPE_SWAP};

const MIB: u64 = 1 << 20;
const SMALL: &[u8] = b"second linux partition";

/// 3 MiB + 5 bytes with an all-zero middle MiB, so the sparse copy path
/// (skipping zero chunks) is exercised.
fn source_bytes() -> Vec<u8> {
    let mut v: Vec<u8> = (0..3 * MIB + 5).map(|i| (i % 253) as u8 | 1).collect();
    v[MIB as usize..2 * MIB as usize].fill(0);
    v
}

#[test]
fn table_contents_and_swap_read_back() {
    let dir = Scratch::new("disk");
    let src = dir.path("rootfs.erofs");
    fs::write(&src, source_bytes()).unwrap();
    let small = dir.path("small.bin");
    fs::write(&small, SMALL).unwrap();
    let img = dir.path("sd.img");
    // A stale, larger file must not survive the rebuild.
    fs::write(&img, vec![0xAAu8; 40 * MIB as usize]).unwrap();

    let parts = [
        PartitionSpec {
            source: Some(src.clone()),
            size_bytes: 0,
            type_id: TYPE_LINUX,
        },
        PartitionSpec {
            source: None,
            size_bytes: 8 * MIB - 1,
            type_id: TYPE_SWAP,
        },
        PartitionSpec {
            source: Some(small.clone()),
            size_bytes: 2 * MIB,
            type_id: TYPE_LINUX,
        },
    ];
    let layout = disk::build_mbr_image(&img, &parts).unwrap();
    let starts: Vec<_> = layout.iter().map(|l| (l.start_lba, l.sectors)).collect();
    assert_eq!(
        starts,
        [
            (2048, 4 * 2048),
            (5 * 2048, 8 * 2048),
            (13 * 2048, 2 * 2048)
        ]
    );
    for l in &layout {
        assert_eq!(l.offset_bytes, l.start_lba * 512);
        assert_eq!(l.size_bytes, l.sectors * 512);
    }

    // 15 MiB of partitions, rounded to QEMU's power-of-two SD card size.
    let meta = fs::metadata(&img).unwrap();
    assert_eq!(meta.len(), 16 * MIB);
    assert!(
        meta.blocks() * 512 < 8 * MIB,
        "image is not sparse: {} blocks",
        meta.blocks()
    );

    let dump = String::from_utf8(run("sfdisk", "fdisk", &["--dump", s(&img)]).stdout).unwrap();
    assert!(dump.contains("label: dos"), "{dump}");
    assert!(dump.contains("label-id: 0x68696c74"), "{dump}");
    let rows: Vec<String> = dump
        .lines()
        .filter(|l| l.starts_with(s(&img)))
        .map(|l| {
            l.split_once(':')
                .unwrap()
                .1
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        rows,
        [
            "start= 2048, size= 8192, type=83",
            "start= 10240, size= 16384, type=82",
            "start= 26624, size= 4096, type=83",
        ],
        "{dump}"
    );

    let bytes = fs::read(&img).unwrap();
    let part =
        |i: usize| &bytes[layout[i].offset_bytes as usize..][..layout[i].size_bytes as usize];
    let src_bytes = source_bytes();
    assert_eq!(&part(0)[..src_bytes.len()], &src_bytes[..]);
    assert!(
        part(0)[src_bytes.len()..].iter().all(|&b| b == 0),
        "partition 1 tail not zeroed"
    );
    assert_eq!(&part(2)[..SMALL.len()], SMALL);
    assert!(
        bytes[(layout[2].offset_bytes + layout[2].size_bytes) as usize..]
            .iter()
            .all(|&b| b == 0)
    );

    let blkid = String::from_utf8(
        run(
            "blkid",
            "util-linux",
            &[
                "-p",
                "-O",
                &layout[1].offset_bytes.to_string(),
                "-S",
                &layout[1].size_bytes.to_string(),
                s(&img),
            ],
        )
        .stdout,
    )
    .unwrap();
    assert!(blkid.contains("TYPE=\"swap\""), "{blkid}");
    assert!(blkid.contains("LABEL=\"hilt-swap\""), "{blkid}");
    assert!(blkid.contains("VERSION=\"1\""), "{blkid}");

    let whole = String::from_utf8(run("blkid", "util-linux", &["-p", s(&img)]).stdout).unwrap();
    assert!(
        whole.contains("PTUUID=\"68696c74\"") && whole.contains("PTTYPE=\"dos\""),
        "{whole}"
    );
}

#[test]
fn swap_signature_on_plain_file() {
    let dir = Scratch::new("swapfile");
    let f = dir.path("swapfile");
    fs::write(&f, vec![0xFFu8; 2 * MIB as usize]).unwrap();
    disk::write_swap_signature(&f, 0, 2 * MIB).unwrap();

    let label = String::from_utf8(run("swaplabel", "util-linux", &[s(&f)]).stdout).unwrap();
    assert!(label.contains("LABEL: hilt-swap"), "{label}");
    let file = String::from_utf8(run("file", "file", &["-s", s(&f)]).stdout).unwrap();
    assert!(
        file.contains("Linux swap file, 4k page size, little endian, version 1, size 511 pages"),
        "{file}"
    );
    // Boot-block space is cleared so no older signature there confuses blkid.
    assert!(fs::read(&f).unwrap()[..1024].iter().all(|&b| b == 0));
}

#[test]
fn rejects_partition_smaller_than_source() {
    let dir = Scratch::new("disk-small");
    let src = dir.path("src");
    fs::write(&src, vec![1u8; (MIB + 1) as usize]).unwrap();
    let err = disk::build_mbr_image(
        &dir.path("img"),
        &[PartitionSpec {
            source: Some(src),
            size_bytes: MIB,
            type_id: TYPE_LINUX,
        }],
    )
    .unwrap_err();
    assert!(err.to_string().contains("smaller than its source"), "{err}");
    assert!(!dir.path("img").exists());
}

/// QEMU's sd-card device rejects images whose size is not a power of two;
/// ours (3 MiB of partitions) must come out at 4 MiB and be accepted.
#[test]
fn qemu_sd_card_accepts_image() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let dir = Scratch::new("disk-qemu");
    let img = dir.path("sd.img");
    disk::build_mbr_image(
        &img,
        &[PartitionSpec {
            source: None,
            size_bytes: 2 * MIB,
            type_id: TYPE_LINUX,
        }],
    )
    .unwrap();
    assert_eq!(fs::metadata(&img).unwrap().len(), 4 * MIB);

    let drive = format!("if=none,id=hiltsd,file={},format=raw", s(&img));
    let child = Command::new("qemu-system-aarch64")
        .args([
            "-M",
            "virt",
            "-nodefaults",
            "-display",
            "none",
            "-S",
            "-monitor",
            "stdio",
        ])
        .args([
            "-device",
            "sdhci-pci",
            "-drive",
            &drive,
            "-device",
            "sd-card,drive=hiltsd",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`qemu-system-aarch64` is required by this test but not installed: \
             apt-get install qemu-system-arm (or run scripts/setup)"
        ),
        Err(e) => panic!("running qemu-system-aarch64: {e}"),
    };
    // The monitor reads this once the machine (and the SD card) is realized;
    // a rejected card makes QEMU exit with an error before that.
    child.stdin.take().unwrap().write_all(b"quit\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "QEMU rejected the SD image:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
