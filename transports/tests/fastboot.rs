//! fastboot over TCP against a PROTOCOL DOUBLE of a fastboot device
//! (written here from AOSP's fastboot/README.md and libsparse's format; no
//! fastboot device can run here). Debian's real `fastboot` host tool talks
//! to the same double, which shows the double is faithful, and Debian's
//! real `simg2img` rebuilds images from our sparse files.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::require;
use hilt_transports::fastboot::sparse::SparseImage;
use hilt_transports::fastboot::{connect_tcp, FastbootError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// PROTOCOL DOUBLE of a fastboot device over TCP. Not a bootloader.
// ---------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Device {
    partitions: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    booted: Arc<Mutex<Option<Vec<u8>>>>,
    log: Arc<Mutex<Vec<String>>>,
    max_download: u32,
}

impl Device {
    fn note(&self, s: impl Into<String>) {
        self.log.lock().unwrap().push(s.into());
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn part(&self, name: &str) -> Vec<u8> {
        self.partitions.lock().unwrap()[name].clone()
    }
}

async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 8];
    s.read_exact(&mut len).await.ok()?;
    let mut v = vec![0u8; u64::from_be_bytes(len) as usize];
    s.read_exact(&mut v).await.ok()?;
    Some(v)
}

async fn write_frame(s: &mut TcpStream, p: &[u8]) {
    assert!(p.len() <= 256, "responses are at most 256 bytes");
    let _ = s
        .write_all(&[(p.len() as u64).to_be_bytes().as_slice(), p].concat())
        .await;
}

/// Applies a sparse file to a partition as a bootloader does; returns an
/// error text for anything the format does not allow.
fn apply_sparse(part: &mut [u8], f: &[u8]) -> Result<(), String> {
    let u16at = |o: usize| u16::from_le_bytes(f[o..o + 2].try_into().unwrap());
    let u32at = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().unwrap());
    if f.len() < 28 || u32at(0) != 0xed26_ff3a || u16at(4) != 1 {
        return Err("bad sparse header".into());
    }
    let (hdr, chdr, bs, total, nchunks) = (
        u16at(8) as usize,
        u16at(10) as usize,
        u32at(12) as usize,
        u32at(16) as usize,
        u32at(20),
    );
    if bs % 4 != 0 || total * bs > part.len() {
        return Err(format!("{total} blocks of {bs} do not fit the partition"));
    }
    let (mut off, mut block) = (hdr, 0usize);
    let mut crc = crc32fast::Hasher::new();
    for _ in 0..nchunks {
        if off + chdr > f.len() {
            return Err(format!(
                "chunk header at {off} past the end ({} bytes)",
                f.len()
            ));
        }
        let (kind, blocks, size) = (u16at(off), u32at(off + 4) as usize, u32at(off + 8) as usize);
        if size < chdr || off + size > f.len() || (block + blocks) * bs > part.len() {
            return Err(format!("chunk {kind:#x} at {off} of {size} bytes, {blocks} blocks from {block}: out of bounds ({} bytes)", f.len()));
        }
        let body = &f[off + chdr..off + size];
        let span = block * bs..(block + blocks) * bs;
        match kind {
            0xcac1 => {
                if body.len() != blocks * bs {
                    return Err("RAW chunk size".into());
                }
                part[span].copy_from_slice(body);
                crc.update(body);
            }
            0xcac2 => {
                if body.len() != 4 {
                    return Err("FILL chunk size".into());
                }
                let pattern: Vec<u8> = body.iter().copied().cycle().take(blocks * bs).collect();
                part[span].copy_from_slice(&pattern);
                crc.update(&pattern);
            }
            0xcac3 => {
                if !body.is_empty() {
                    return Err("DONT_CARE chunk with data".into());
                }
                crc.update(&vec![0u8; blocks * bs]);
            }
            0xcac4 => {
                let want = u32::from_le_bytes(body.try_into().map_err(|_| "CRC32 chunk size")?);
                if crc.clone().finalize() != want {
                    return Err("CRC32 mismatch".into());
                }
            }
            k => return Err(format!("unknown chunk type {k:#x}")),
        }
        block += blocks;
        off += size;
    }
    if block != total || off != f.len() {
        return Err(format!(
            "chunks cover {block} of {total} blocks, {off} of {} bytes",
            f.len()
        ));
    }
    Ok(())
}

async fn device_conn(mut s: TcpStream, dev: Device) {
    let mut hs = [0u8; 4];
    if s.read_exact(&mut hs).await.is_err() || &hs[..2] != b"FB" {
        dev.note("violation: bad handshake");
        return;
    }
    let _ = s.write_all(b"FB01").await;
    let mut downloaded: Vec<u8> = Vec::new();
    while let Some(cmd) = read_frame(&mut s).await {
        let cmd = String::from_utf8_lossy(&cmd).into_owned();
        if cmd.len() > 4096 {
            dev.note("violation: command over 4096 bytes");
        }
        dev.note(format!("cmd {cmd}"));
        let (verb, arg) = cmd.split_once(':').unwrap_or((cmd.as_str(), ""));
        let reply: String = match verb {
            "getvar" => {
                let parts = dev.partitions.lock().unwrap();
                let v = match arg {
                    "version" => Some("0.4".to_string()),
                    "product" => Some("hilt-double".into()),
                    "serialno" => Some("HILT0001".into()),
                    "max-download-size" => Some(format!("0x{:08x}", dev.max_download)),
                    "is-userspace" | "secure" => Some("no".into()),
                    _ => match arg.split_once(':') {
                        Some(("partition-size", p)) => {
                            parts.get(p).map(|d| format!("0x{:016x}", d.len()))
                        }
                        Some(("partition-type", p)) => parts.get(p).map(|_| "raw".into()),
                        Some(("has-slot", p)) => parts.get(p).map(|_| "no".into()),
                        Some(("is-logical", p)) => parts.get(p).map(|_| "no".into()),
                        _ => None,
                    },
                };
                match v {
                    Some(v) => format!("OKAY{v}"),
                    None => "FAILunknown variable".into(),
                }
            }
            "download" => {
                let n = u32::from_str_radix(arg, 16).unwrap_or(u32::MAX);
                if arg.len() != 8 || n > dev.max_download {
                    format!("FAILdownload of {arg:?} refused")
                } else {
                    write_frame(&mut s, format!("DATA{n:08x}").as_bytes()).await;
                    downloaded.clear();
                    while downloaded.len() < n as usize {
                        let Some(chunk) = read_frame(&mut s).await else {
                            return;
                        };
                        downloaded.extend(chunk);
                    }
                    if downloaded.len() != n as usize {
                        dev.note("violation: more data than announced");
                    }
                    "OKAY".into()
                }
            }
            "flash" => {
                let mut parts = dev.partitions.lock().unwrap();
                match parts.get_mut(arg) {
                    None => format!("FAILpartition '{arg}' not found"),
                    Some(p) if downloaded.starts_with(&0xed26_ff3au32.to_le_bytes()) => {
                        match apply_sparse(p, &downloaded) {
                            Ok(()) => "OKAY".into(),
                            Err(e) => {
                                dev.note(format!("violation: {e}"));
                                format!("FAIL{e}")
                            }
                        }
                    }
                    Some(p) if downloaded.len() <= p.len() => {
                        p[..downloaded.len()].copy_from_slice(&downloaded);
                        "OKAY".into()
                    }
                    Some(_) => "FAILimage larger than partition".into(),
                }
            }
            "erase" => match dev.partitions.lock().unwrap().get_mut(arg) {
                Some(p) => {
                    p.fill(0xff);
                    "OKAY".into()
                }
                None => format!("FAILpartition '{arg}' not found"),
            },
            "boot" => {
                *dev.booted.lock().unwrap() = Some(downloaded.clone());
                "OKAY".into()
            }
            "continue" | "reboot" | "reboot-bootloader" => {
                write_frame(&mut s, b"INFOrebooting").await;
                write_frame(&mut s, b"OKAY").await;
                return;
            }
            _ => "FAILunknown command".into(),
        };
        if reply.starts_with("OKAY") && verb == "flash" {
            write_frame(&mut s, format!("INFOwriting '{arg}'").as_bytes()).await;
        }
        write_frame(&mut s, reply.as_bytes()).await;
    }
}

async fn start_device(max_download: u32, partitions: &[(&str, usize)]) -> (String, Device) {
    let dev = Device {
        max_download,
        ..Default::default()
    };
    for (name, size) in partitions {
        dev.partitions
            .lock()
            .unwrap()
            .insert(name.to_string(), vec![0x55; *size]);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let d = dev.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(device_conn(s, d.clone()));
        }
    });
    (addr, dev)
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
async fn real_fastboot_tool_talks_to_the_double() {
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
    // the double rebuilds the partition from them. (Whole blocks: fastboot
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

    // Does not fit: our sparse pieces, applied by the double.
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
    assert_eq!(dev.booted.lock().unwrap().as_deref(), Some(&small[..]));
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

/// The fastboot strategy against the device double: sparse when large,
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
    assert_eq!(dev.booted.lock().unwrap().as_deref(), Some(&img[..]));
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
