//! fastboot over TCP against hilt's own fastboot device, the bootloader
//! stage of the emulated board (hilt-fastbootd, written from AOSP's
//! fastboot/README.md and libsparse's format), with its partitions in
//! memory. It is not a real bootloader: no real fastboot device can run
//! here. Debian's real `fastboot` host tool talks to the same device, which
//! shows the device is faithful, and Debian's real `simg2img` rebuilds
//! images from our sparse files.

mod common;

use std::process::Command;
use std::time::Duration;

use common::require;
use hilt_fastbootd::{Config, Device, Memory};
use hilt_transports::fastboot::sparse::SparseImage;
use hilt_transports::fastboot::{connect_tcp, FastbootError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(10);

/// hilt's bootloader stage on a loopback port, with partitions of 0x55 in
/// memory, served from a thread of its own (it is blocking code).
async fn start_device(max_download: u32, partitions: &[(&str, usize)]) -> (String, Device) {
    let mut config = Config::new("hilt-double");
    config.max_download = max_download;
    config.boot_once = true;
    let parts = partitions
        .iter()
        .map(|&(n, size)| Memory::named(n, size, 0x55));
    let dev = Device::new(config, parts.collect()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let d = dev.clone();
    // The board comes back to its bootloader whatever it was asked to boot,
    // so that a test can go on with the same partitions.
    std::thread::spawn(move || while hilt_fastbootd::serve(&d, &listener).is_ok() {});
    (addr, dev)
}

/// The bytes of a partition the test declared.
trait Part {
    fn part(&self, name: &str) -> Vec<u8>;
}

impl Part for Device {
    fn part(&self, name: &str) -> Vec<u8> {
        self.partition_bytes(name).unwrap()
    }
}

// ---------------------------------------------------------------------------

/// An image with what partitions hold: zeroed and erased areas, a repeated
/// pattern, data, and a partial last block.
fn image(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    for (i, b) in v.iter_mut().enumerate() {
        let block = i / 4096;
        *b = match block % 7 {
            0 | 1 => 0,
            2 => 0xff,
            3 => [0x12, 0x34, 0x56, 0x78][i % 4],
            _ => (i.wrapping_mul(2_654_435_761) >> 13) as u8,
        };
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_fastboot_tool_talks_to_hilts_bootloader_stage() {
    let bin = require("fastboot", "fastboot");
    let (addr, dev) = start_device(64 * 1024, &[("userdata", 1 << 20)]).await;
    let target = format!("tcp:{addr}");
    let out = tokio::task::spawn_blocking({
        let (bin, target) = (bin.clone(), target.clone());
        move || {
            Command::new(bin)
                .args(["-s", &target, "getvar", "product"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    // fastboot prints variables on stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("product: hilt-double"),
        "{text}"
    );

    // The real tool splits a 300 KiB image into sparse pieces of 64 KiB;
    // the device rebuilds the partition from them. (Whole blocks: fastboot
    // 29.0.6 cannot split an image with a partial last block, "don't care
    // size ... is not a multiple of the block size"; ours pads it.)
    let img = image(300 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("userdata.img");
    std::fs::write(&file, &img).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["-s", &target, "flash", "userdata"])
            .arg(&file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let part = dev.part("userdata");
    assert_eq!(&part[..img.len()], &img[..]);
    let log = dev.log();
    assert!(
        log.iter().filter(|l| *l == "cmd flash:userdata").count() > 1,
        "the tool sent sparse pieces: {log:?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("violation")), "{log:?}");
}

#[tokio::test]
async fn getvar_flash_erase_boot_reboot_over_tcp() {
    let (addr, dev) = start_device(64 * 1024, &[("boot", 200_000), ("userdata", 1 << 20)]).await;
    let mut fb = connect_tcp(&addr, T).await.unwrap();
    assert_eq!(fb.getvar("product").await.unwrap(), "hilt-double");
    assert_eq!(fb.max_download_size().await.unwrap(), 64 * 1024);
    let err = fb.getvar("nonexistent").await.unwrap_err();
    assert!(
        matches!(&err, FastbootError::Fail { message, .. } if message == "unknown variable"),
        "{err}"
    );

    // Fits in one download: sent raw.
    let small = image(50_000);
    fb.flash("boot", &small).await.unwrap();
    assert_eq!(&dev.part("boot")[..small.len()], &small[..]);
    assert_eq!(
        fb.take_messages(),
        vec!["(bootloader) writing 'boot'".to_string()]
    );

    // Does not fit: our sparse pieces, applied by the device.
    let big = image(700 * 1024 + 10);
    fb.flash("userdata", &big).await.unwrap();
    let part = dev.part("userdata");
    assert_eq!(&part[..big.len()], &big[..]);
    let flashes = dev
        .log()
        .iter()
        .filter(|l| *l == "cmd flash:userdata")
        .count();
    assert!(flashes >= 3, "{flashes} pieces");

    fb.erase("boot").await.unwrap();
    assert!(dev.part("boot").iter().all(|&b| b == 0xff));
    let err = fb.erase("nosuch").await.unwrap_err();
    assert!(
        err.to_string().contains("partition 'nosuch' not found"),
        "{err}"
    );
    assert!(fb.flash("bad:name", &small).await.is_err());

    fb.boot(&small).await.unwrap();
    assert_eq!(dev.booted().as_deref(), Some(&small[..]));
    // The board left its bootloader to boot the image, dropping this
    // connection; it is back there for the next one.
    let mut fb = connect_tcp(&addr, T).await.unwrap();
    fb.reboot().await.unwrap();
    let log = dev.log();
    assert!(!log.iter().any(|l| l.starts_with("violation")), "{log:?}");
    assert!(
        log.iter().any(|l| l.starts_with("cmd download:")),
        "{log:?}"
    );
}

#[tokio::test]
async fn not_a_fastboot_server_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = s.write_all(b"SSH-2.0-x\r\n").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let err = connect_tcp(&addr, T).await.err().unwrap();
    assert!(
        err.to_string().contains("not a fastboot TCP server"),
        "{err}"
    );
}

fn simg2img(inputs: &[std::path::PathBuf], out: &std::path::Path) {
    // Several inputs are applied in order to the same output.
    let res = Command::new(require("simg2img", "android-sdk-libsparse-utils"))
        .args(inputs)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "simg2img: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

#[test]
fn simg2img_rebuilds_our_sparse_files() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(900 * 1024 + 333);
    let padded = {
        let mut p = img.clone();
        p.resize(img.len().div_ceil(4096) * 4096, 0);
        p
    };
    let s = SparseImage::new(&img, 4096).unwrap();

    // Whole, with a CRC32 chunk.
    let whole = dir.path().join("whole.simg");
    std::fs::write(&whole, s.encode_all(true)).unwrap();
    let out = dir.path().join("whole.raw");
    simg2img(&[whole], &out);
    assert_eq!(std::fs::read(&out).unwrap(), padded);

    // Split for a 100 KiB max-download-size: the pieces applied in order.
    let pieces = s.pieces(100 * 1024).unwrap();
    assert!(pieces.len() > 3);
    let paths: Vec<_> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            assert!(p.len() <= 100 * 1024);
            let path = dir.path().join(format!("piece{i}.simg"));
            std::fs::write(&path, p).unwrap();
            path
        })
        .collect();
    let out = dir.path().join("pieces.raw");
    simg2img(&paths, &out);
    assert_eq!(std::fs::read(&out).unwrap(), padded);

    // And one piece alone: its blocks, and nothing else written.
    let out = dir.path().join("one.raw");
    simg2img(&paths[1..2], &out);
    let one = std::fs::read(&out).unwrap();
    let runs = &s.split(100 * 1024).unwrap()[1];
    let (first, last) = (runs.first().unwrap(), runs.last().unwrap());
    let start = match first {
        hilt_transports::fastboot::sparse::Run::Raw { start, .. }
        | hilt_transports::fastboot::sparse::Run::Fill { start, .. } => *start as usize * 4096,
    };
    let end = match last {
        hilt_transports::fastboot::sparse::Run::Raw { start, blocks }
        | hilt_transports::fastboot::sparse::Run::Fill { start, blocks, .. } => {
            (*start + *blocks) as usize * 4096
        }
    };
    assert_eq!(&one[start..end], &padded[start..end]);
    assert!(
        one[..start].iter().all(|&b| b == 0),
        "DONT_CARE before the piece left alone"
    );
}

/// The fastboot strategy against hilt's bootloader stage: sparse when large,
/// digests recorded, and no read back claimed (fastboot has none).
#[tokio::test]
async fn fastboot_flash_strategy_records_digests_without_claiming_a_readback() {
    use hilt_transports::flash::{FastbootFlasher, FlashImage, Flasher};
    let (addr, dev) = start_device(64 * 1024, &[("system", 1 << 20)]).await;
    let mut fb = connect_tcp(&addr, T).await.unwrap();
    let img = FlashImage::new("system.img", image(300 * 1024 + 7), Some("12".repeat(32)));
    let rec = FastbootFlasher {
        fastboot: &mut fb,
        partition: "system".into(),
    }
    .flash(&img)
    .await
    .unwrap();
    assert_eq!(&dev.part("system")[..img.data.len()], &img.data[..]);
    assert_eq!(
        (rec.method.as_str(), rec.target.as_str()),
        ("fastboot", "system")
    );
    assert_eq!(rec.sha256, img.sha256);
    assert_eq!(rec.verity_root_hash, img.verity_root_hash);
    assert_eq!(rec.readback, None);
    let err = FastbootFlasher {
        fastboot: &mut fb,
        partition: "nosuch".into(),
    }
    .flash(&img)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nosuch"), "{err}");
}

#[tokio::test]
async fn deploy_by_fastboot_boot_and_flash_records_the_image_digest() {
    use hilt_transports::deploy::{fastboot_boot, fastboot_flash};
    use sha2::{Digest, Sha256};
    let (addr, dev) = start_device(64 * 1024, &[("boot", 200_000)]).await;
    let img = image(40_000);
    let want = hex::encode(Sha256::digest(&img));
    let mut fb = connect_tcp(&addr, T).await.unwrap();
    let rec = fastboot_boot(&mut fb, &img).await.unwrap();
    assert_eq!(rec.method, "fastboot-boot");
    assert_eq!(rec.files[0].sha256, want);
    assert_eq!(dev.booted().as_deref(), Some(&img[..]));
    // Booting from RAM leaves the partition alone.
    assert!(dev.part("boot").iter().all(|&b| b == 0x55));

    let mut fb = connect_tcp(&addr, T).await.unwrap();
    let rec = fastboot_flash(&mut fb, "boot", &img).await.unwrap();
    assert_eq!(rec.method, "fastboot-flash:boot");
    assert_eq!(rec.files[0].sha256, want);
    assert_eq!(&dev.part("boot")[..img.len()], &img[..]);
    assert!(
        dev.log().iter().any(|l| l == "cmd reboot"),
        "{:?}",
        dev.log()
    );
}
