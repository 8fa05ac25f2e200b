//! The U-Boot driver against real U-Boot (Debian's u-boot-qemu build for
//! qemu_arm64) on the emulated board, its console on a QEMU telnet
//! chardev, TFTP from QEMU's built-in server (inside QEMU's user-mode
//! network: no traffic leaves the process).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{require, Peer};
use hilt_transports::console::TelnetConsole;
use hilt_transports::flash::{FlashImage, Flasher, UBootFlasher};
use hilt_transports::uboot::{
    BlockInterface, Network, Reserved, TftpBoot, UBoot, UBootConfig, UBootError,
};
use tokio::io::AsyncReadExt;

const UBOOT_BIN: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
const T: Duration = Duration::from_secs(30);

fn payload(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect()
}

/// A DOS partition table with Linux partitions at (first block, blocks).
fn mbr(parts: &[(u32, u32)]) -> [u8; 512] {
    let mut s = [0u8; 512];
    for (i, (start, blocks)) in parts.iter().enumerate() {
        let e = &mut s[446 + 16 * i..462 + 16 * i];
        e[4] = 0x83;
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&blocks.to_le_bytes());
    }
    s[510..].copy_from_slice(&[0x55, 0xaa]);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uboot_on_the_emulated_board() {
    let qemu = require("qemu-system-aarch64", "qemu-system-arm");
    assert!(
        std::path::Path::new(UBOOT_BIN).exists(),
        "{UBOOT_BIN} is missing: apt-get install -y u-boot-qemu"
    );
    let dir = tempfile::tempdir().unwrap();
    let tftp = dir.path().join("tftp");
    std::fs::create_dir(&tftp).unwrap();
    let image = payload(70_001, 1);
    std::fs::write(tftp.join("image.bin"), &image).unwrap();
    std::fs::write(tftp.join("initrd.bin"), payload(5_000, 2)).unwrap();
    let disk = dir.path().join("disk.img");
    // Partition 1 (blocks 600..1000) takes the flashed image; partition 2
    // (1100..1200) is too small for it.
    let mut blank = vec![0u8; 1 << 20];
    blank[..512].copy_from_slice(&mbr(&[(600, 400), (1100, 100)]));
    std::fs::write(&disk, blank).unwrap();
    let sock = dir.path().join("console.sock");
    let _qemu = Peer::spawn(
        "qemu-system-aarch64",
        Command::new(qemu)
            .args([
                "-M",
                "virt",
                "-cpu",
                "cortex-a53",
                "-m",
                "256",
                "-bios",
                UBOOT_BIN,
                "-display",
                "none",
                "-monitor",
                "none",
            ])
            .arg("-chardev")
            .arg(format!(
                "socket,id=c,path={},server=on,wait=on,telnet=on",
                sock.display()
            ))
            .args(["-serial", "chardev:c"])
            .arg("-netdev")
            .arg(format!("user,id=n0,restrict=on,tftp={}", tftp.display()))
            .args(["-device", "virtio-net-device,netdev=n0"])
            .arg("-drive")
            .arg(format!("if=none,id=d0,format=raw,file={}", disk.display()))
            .args(["-device", "virtio-blk-device,drive=d0"])
            .stdout(Stdio::null()),
    );
    let t0 = Instant::now();
    let stream = loop {
        match tokio::net::UnixStream::connect(&sock).await {
            Ok(s) => break s,
            Err(_) if t0.elapsed() < T => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("QEMU's console socket: {e}"),
        }
    };
    let cfg = UBootConfig {
        stop_timeout: T,
        command_timeout: T,
        ..Default::default()
    };
    let mut u = UBoot::new(TelnetConsole::new(stream), cfg);
    u.stop_autoboot().await.unwrap();
    assert!(String::from_utf8_lossy(u.transcript()).contains("Hit any key to stop autoboot"));

    let version = u.run("version").await.unwrap();
    assert!(version.starts_with("U-Boot 20"), "{version:?}");
    assert!(u.getenv("fdtcontroladdr").await.unwrap().is_some());
    assert_eq!(u.getenv("hilt_unset").await.unwrap(), None);
    u.setenv("hilt_test", "a b  c").await.unwrap();
    assert_eq!(
        u.getenv("hilt_test").await.unwrap().as_deref(),
        Some("a b  c")
    );
    // Longer than a command line: built up in pieces.
    // Under U-Boot's print buffer (CONFIG_SYS_PBSIZE), which cuts longer lines.
    let long: Vec<String> = (0..30).map(|i| format!("opt{i}=v{i}")).collect();
    let long = long.join(" ");
    assert!(long.len() > 255);
    u.setenv("bootargs", &long).await.unwrap();
    assert_eq!(
        u.getenv("bootargs").await.unwrap().as_deref(),
        Some(long.as_str())
    );
    let err = u.run_checked("test 1 -eq 2").await.unwrap_err();
    assert!(matches!(err, UBootError::Failed { status: 1, .. }), "{err}");

    // TFTP from QEMU's server, with a static address, then DHCP.
    for (n, v) in [
        ("ipaddr", "10.0.2.15"),
        ("netmask", "255.255.255.0"),
        ("serverip", "10.0.2.2"),
    ] {
        u.setenv(n, v).await.unwrap();
    }
    assert_eq!(
        u.tftp("kernel_addr_r", "image.bin", T).await.unwrap(),
        image.len() as u64
    );
    let err = u.tftp("kernel_addr_r", "missing.bin", T).await.unwrap_err();
    assert!(err.to_string().contains("File not found"), "{err}");

    // Write what was loaded to the virtio disk, at block 8.
    u.block_write(
        BlockInterface::Virtio,
        0,
        "kernel_addr_r",
        8,
        image.len() as u64,
        T,
    )
    .await
    .unwrap();
    let written = std::fs::read(&disk).unwrap();
    assert_eq!(&written[8 * 512..8 * 512 + image.len()], &image[..]);

    // The flashing strategy: TFTP, write, read back elsewhere in RAM, CRC32.
    let img = FlashImage::new("erofs.img", payload(150_000, 3), Some("ab".repeat(32)));
    let rec = UBootFlasher {
        uboot: &mut u,
        tftp_root: tftp.clone(),
        tftp_subdir: None,
        interface: BlockInterface::Virtio,
        dev: 0,
        start_block: 600,
        partition: Some(1),
        limit: T,
    }
    .flash(&img)
    .await
    .unwrap();
    let written = std::fs::read(&disk).unwrap();
    assert_eq!(
        &written[600 * 512..600 * 512 + img.data.len()],
        &img.data[..]
    );
    assert_eq!(
        rec.readback,
        Some(format!("crc32:{:08x}", crc32fast::hash(&img.data)))
    );
    assert_eq!((rec.method.as_str(), rec.bytes), ("uboot_virtio", 150_000));
    assert_eq!(
        std::fs::read_dir(&tftp).unwrap().count(),
        2,
        "the staged file is removed"
    );
    assert_eq!(
        u.partition_extent(BlockInterface::Virtio, 0, 2, T)
            .await
            .unwrap(),
        (1100, 100)
    );

    // U-Boot's partition table overrules a wrong start_block or a partition
    // too small for the image, before anything is written.
    let before = std::fs::read(&disk).unwrap();
    for (start_block, partition, why) in [
        (
            601,
            1,
            "partition 1 of virtio 0 starts at block 600, but the board file says start_block 601",
        ),
        (
            1100,
            2,
            "the image needs 293 blocks and partition 2 of virtio 0 has 100",
        ),
    ] {
        let err = UBootFlasher {
            uboot: &mut u,
            tftp_root: tftp.clone(),
            tftp_subdir: None,
            interface: BlockInterface::Virtio,
            dev: 0,
            start_block,
            partition: Some(partition),
            limit: T,
        }
        .flash(&img)
        .await
        .unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
    assert!(
        std::fs::read(&disk).unwrap() == before,
        "nothing was written"
    );

    // The whole boot sequence; the "kernel" is not one, so booti refuses it
    // and says so, which shows every step before it worked. The kernel's
    // tree is a copy of U-Boot's (QEMU's) with a reserved region added.
    u.setenv("fdt_addr_r", "0x40000000").await.unwrap();
    let boot = TftpBoot {
        network: Network::Dhcp { serverip: None },
        kernel: "image.bin".into(),
        initrd: Some("initrd.bin".into()),
        dtb: None,
        bootargs: "console=ttyAMA0 panic=-1".into(),
        reserve: vec![Reserved {
            name: "hilt-ramoops".into(),
            address: 0x4d00_0000,
            size: 0x10_0000,
        }],
    };
    u.tftp_boot(&boot, T).await.unwrap();
    u.expect("Bad Linux ARM64 Image magic", T).await.unwrap();
    u.sync().await.unwrap();
    assert_eq!(
        u.getenv("filesize").await.unwrap().as_deref(),
        Some("1388"),
        "initrd was loaded last"
    );
    let transcript = String::from_utf8_lossy(u.transcript()).into_owned();
    assert!(
        transcript.contains("DHCP client bound to address"),
        "{transcript}"
    );
    assert!(
        transcript.contains("booti ${kernel_addr_r} ${ramdisk_addr_r}:0x1388 ${fdt_addr_r}"),
        "{transcript}"
    );
    let node = u.run("fdt print /reserved-memory").await.unwrap();
    for want in [
        "hilt-ramoops@4d000000 {",
        "reg = <0x00000000 0x4d000000 0x00000000 0x00100000>;",
        "no-map;",
        "#address-cells = <0x00000002>;",
    ] {
        assert!(node.contains(want), "{want:?} not in {node}");
    }
    u.run_checked("fdt addr ${fdtcontroladdr}").await.unwrap();
    assert!(
        u.run_checked("fdt list /reserved-memory").await.is_err(),
        "U-Boot's own tree is left as it was"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t0.elapsed()
    );
    let mut rest = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_millis(10), u.into_console().read(&mut rest)).await;
}
