//! Flashing strategies: getting an image onto a board's storage through one
//! of its transports, and proving what landed there. Every strategy returns
//! a [`FlashRecord`] with the image's sha256 and verity root hash, and, where
//! the transport can read the storage back, the digest of what it read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::adb::AdbServer;
use crate::fastboot::{Fastboot, FastbootIo};
use crate::ssh::{collect_chunks, shell_quote, SshSession};
use crate::uboot::{BlockInterface, UBoot};

/// An image to flash, hashed once.
#[derive(Debug, Clone)]
pub struct FlashImage {
    pub name: String,
    pub data: Vec<u8>,
    pub sha256: String,
    /// The dm-verity root hash the image's data verifies against, when it
    /// is a verity data (or data+hash) image.
    pub verity_root_hash: Option<String>,
}

impl FlashImage {
    pub fn new(name: impl Into<String>, data: Vec<u8>, verity_root_hash: Option<String>) -> Self {
        let sha256 = hex::encode(Sha256::digest(&data));
        Self {
            name: name.into(),
            data,
            sha256,
            verity_root_hash,
        }
    }

    pub fn from_file(path: &Path, verity_root_hash: Option<String>) -> std::io::Result<Self> {
        let data = std::fs::read(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        Ok(Self::new(name, data, verity_root_hash))
    }
}

/// What was flashed where, and how it was checked.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlashRecord {
    pub method: String,
    /// Partition or device as the strategy addressed it.
    pub target: String,
    pub image: String,
    pub bytes: u64,
    pub sha256: String,
    pub verity_root_hash: Option<String>,
    /// `sha256:<hex>` or `crc32:<hex>` of the bytes read back from the
    /// storage; None when the transport cannot read back (fastboot).
    pub readback: Option<String>,
    pub elapsed_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("{0}")]
    Transport(String),
    #[error(
        "{target}: read back as {got}, but the image is {want}: the write did not land intact"
    )]
    Mismatch {
        target: String,
        want: String,
        got: String,
    },
}

fn transport<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> FlashError + '_ {
    move |e| FlashError::Transport(format!("{what}: {e}"))
}

/// One way of writing an image to a board's storage.
#[async_trait::async_trait]
pub trait Flasher: Send {
    async fn flash(&mut self, image: &FlashImage) -> Result<FlashRecord, FlashError>;
}

fn record(
    method: &str,
    target: &str,
    image: &FlashImage,
    readback: Option<String>,
    t0: Instant,
) -> FlashRecord {
    FlashRecord {
        method: method.into(),
        target: target.into(),
        image: image.name.clone(),
        bytes: image.data.len() as u64,
        sha256: image.sha256.clone(),
        verity_root_hash: image.verity_root_hash.clone(),
        readback,
        elapsed_ms: t0.elapsed().as_millis() as u64,
    }
}

fn check(target: &str, want: String, got: String) -> Result<String, FlashError> {
    if want == got {
        Ok(got)
    } else {
        Err(FlashError::Mismatch {
            target: target.into(),
            want,
            got,
        })
    }
}

/// `fastboot flash <partition>`, sparse when the image exceeds the
/// device's max-download-size. fastboot cannot read a partition back; the
/// record says so with `readback: None`.
pub struct FastbootFlasher<'a, IO> {
    pub fastboot: &'a mut Fastboot<IO>,
    pub partition: String,
}

#[async_trait::async_trait]
impl<IO: FastbootIo + Send> Flasher for FastbootFlasher<'_, IO> {
    async fn flash(&mut self, image: &FlashImage) -> Result<FlashRecord, FlashError> {
        let t0 = Instant::now();
        self.fastboot
            .flash(&self.partition, &image.data)
            .await
            .map_err(transport(&format!("fastboot flash {}", self.partition)))?;
        Ok(record("fastboot", &self.partition, image, None, t0))
    }
}

/// A shell on the board (SSH, adb) that can also receive a file.
#[async_trait::async_trait]
pub trait BoardShell: Send + Sync {
    fn method(&self) -> &'static str;
    /// Runs a command line; (exit status, stdout, stderr).
    async fn run(&self, line: &str, limit: Duration) -> Result<(i32, String, String), FlashError>;
    /// Writes `data` to a regular file with permission bits `mode`, checks
    /// it by reading it back, and returns its sha256 (hex).
    async fn push(&self, data: &[u8], path: &str, mode: u32) -> Result<String, FlashError>;
}

#[async_trait::async_trait]
impl BoardShell for SshSession {
    fn method(&self) -> &'static str {
        "ssh_dd"
    }

    async fn run(&self, line: &str, limit: Duration) -> Result<(i32, String, String), FlashError> {
        let (status, out, err) = self.output(line, limit).await.map_err(transport("ssh"))?;
        Ok((
            status,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        ))
    }

    async fn push(&self, data: &[u8], path: &str, mode: u32) -> Result<String, FlashError> {
        self.push_bytes(data.to_vec(), path, mode as i32)
            .await
            .map_err(transport(&format!("pushing {path}")))
    }
}

/// A borrowed shell is a shell: a flasher can work through a board's
/// session without owning it.
#[async_trait::async_trait]
impl<T: BoardShell + ?Sized> BoardShell for &T {
    fn method(&self) -> &'static str {
        (**self).method()
    }
    async fn run(&self, line: &str, limit: Duration) -> Result<(i32, String, String), FlashError> {
        (**self).run(line, limit).await
    }
    async fn push(&self, data: &[u8], path: &str, mode: u32) -> Result<String, FlashError> {
        (**self).push(data, path, mode).await
    }
}

/// The adb server's view of one device.
pub struct AdbShell {
    pub server: AdbServer,
    pub serial: Option<String>,
}

#[async_trait::async_trait]
impl BoardShell for AdbShell {
    fn method(&self) -> &'static str {
        "adb_dd"
    }

    async fn run(&self, line: &str, limit: Duration) -> Result<(i32, String, String), FlashError> {
        let (tx, rx) = mpsc::channel(64);
        let collect = collect_chunks(rx);
        let shell = async {
            let r = self.server.shell(self.serial.as_deref(), line, &tx).await;
            drop(tx);
            r
        };
        let (status, (o, e)) = tokio::time::timeout(limit, async { tokio::join!(shell, collect) })
            .await
            .map_err(|_| FlashError::Transport(format!("adb shell: no answer in {limit:?}")))?;
        let status = status.map_err(transport("adb shell"))?;
        Ok((
            status,
            String::from_utf8_lossy(&o).into_owned(),
            String::from_utf8_lossy(&e).into_owned(),
        ))
    }

    async fn push(&self, data: &[u8], path: &str, mode: u32) -> Result<String, FlashError> {
        self.server
            .push(self.serial.as_deref(), data, path, mode)
            .await
            .map_err(transport(&format!("adb push {path}")))
    }
}

/// Stages the image in a file on the board, `dd`s it to the device, then
/// reads exactly the image's length back from the device and compares its
/// sha256. Every word on the command lines is quoted.
pub struct DdFlasher<S> {
    pub shell: S,
    /// The block device, e.g. /dev/mmcblk1p5 (from the board file's
    /// partition table).
    pub device: String,
    /// Where the image waits on the board (RAM-backed on most boards).
    pub staging: String,
    pub limit: Duration,
}

impl<S: BoardShell> DdFlasher<S> {
    async fn run_ok(&self, line: &str) -> Result<String, FlashError> {
        let (status, out, err) = self.shell.run(line, self.limit).await?;
        if status != 0 {
            // dd's line runs with `2>&1`, so its message is on stdout: both
            // streams are quoted, each bounded.
            let said: Vec<&str> = [err.trim(), out.trim()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(|s| crate::tail_of(s, 1000))
                .collect();
            return Err(FlashError::Transport(format!(
                "`{line}` exited with {status}: {}",
                said.join("; ")
            )));
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl<S: BoardShell> Flasher for DdFlasher<S> {
    async fn flash(&mut self, image: &FlashImage) -> Result<FlashRecord, FlashError> {
        let t0 = Instant::now();
        let (dev, stage) = (shell_quote(&self.device), shell_quote(&self.staging));
        self.shell.push(&image.data, &self.staging, 0o600).await?;
        let written = self
            .run_ok(&format!(
                "dd if={stage} of={dev} bs=65536 conv=notrunc,fsync 2>&1 && sync"
            ))
            .await;
        let _ = self.shell.run(&format!("rm -f {stage}"), self.limit).await;
        written?;
        let out = self
            .run_ok(&format!("head -c {} {dev} | sha256sum", image.data.len()))
            .await?;
        let got = out
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let got = check(&self.device, image.sha256.clone(), got)?;
        Ok(record(
            self.shell.method(),
            &self.device,
            image,
            Some(format!("sha256:{got}")),
            t0,
        ))
    }
}

/// U-Boot fetches the image over TFTP into RAM, writes it to a block
/// device, reads the blocks back into RAM elsewhere and compares their
/// CRC32 with the host's.
pub struct UBootFlasher<'a, C> {
    pub uboot: &'a mut UBoot<C>,
    /// The TFTP server's root directory on the host.
    pub tftp_root: PathBuf,
    /// Directory under the root for the image's file, one per board: boards
    /// flashing the same image at once must not share (and delete) a file.
    pub tftp_subdir: Option<String>,
    pub interface: BlockInterface,
    pub dev: u32,
    pub start_block: u64,
    /// The partition the image is meant for, by its number in the device's
    /// partition table: when given, U-Boot is asked where it is, and the
    /// write is refused unless it starts at `start_block` and holds the
    /// image. A wrong start_block would otherwise overwrite a neighbour.
    pub partition: Option<u32>,
    pub limit: Duration,
}

#[async_trait::async_trait]
impl<C: AsyncRead + AsyncWrite + Unpin + Send> Flasher for UBootFlasher<'_, C> {
    async fn flash(&mut self, image: &FlashImage) -> Result<FlashRecord, FlashError> {
        let t0 = Instant::now();
        let target = format!(
            "{} {} from block {}",
            self.interface.name(),
            self.dev,
            self.start_block
        );
        // Before staging anything: a refused write leaves no file behind.
        self.check_partition(image).await?;
        let mut file = format!("hilt-flash-{}.img", &image.sha256[..16]);
        if let Some(sub) = &self.tftp_subdir {
            file = format!("{sub}/{file}");
        }
        let path = self.tftp_root.join(&file);
        let parent = path.parent().unwrap_or(&self.tftp_root);
        std::fs::create_dir_all(parent)
            .and_then(|_| std::fs::write(&path, &image.data))
            .map_err(transport(&format!(
                "writing {} for the TFTP server",
                path.display()
            )))?;
        let result = self.write_and_verify(image, &file).await;
        let _ = std::fs::remove_file(&path);
        let crc = result?;
        Ok(record(
            &format!("uboot_{}", self.interface.name()),
            &target,
            image,
            Some(format!("crc32:{crc:08x}")),
            t0,
        ))
    }
}

impl<C: AsyncRead + AsyncWrite + Unpin + Send> UBootFlasher<'_, C> {
    /// Refuses a write unless U-Boot's partition table puts `partition` at
    /// `start_block`, with room for the image.
    async fn check_partition(&mut self, image: &FlashImage) -> Result<(), FlashError> {
        let Some(part) = self.partition else {
            return Ok(());
        };
        let iface = self.interface.name();
        let (start, blocks) = self
            .uboot
            .partition_extent(self.interface, self.dev, part, self.limit)
            .await
            .map_err(transport("U-Boot part"))?;
        let where_ = format!("partition {part} of {iface} {}", self.dev);
        if start != self.start_block {
            return Err(FlashError::Transport(format!(
                "{where_} starts at block {start}, but the board file says start_block {}: \
                 nothing written (`part list {iface} {}` at the U-Boot prompt shows the table)",
                self.start_block, self.dev
            )));
        }
        let need = (image.data.len() as u64).div_ceil(512);
        if need > blocks {
            return Err(FlashError::Transport(format!(
                "the image needs {need} blocks and {where_} has {blocks}: nothing written"
            )));
        }
        Ok(())
    }

    async fn write_and_verify(
        &mut self,
        image: &FlashImage,
        file: &str,
    ) -> Result<u32, FlashError> {
        let iface = self.interface.name();
        let u = &mut *self.uboot;
        let size = u
            .tftp("kernel_addr_r", file, self.limit)
            .await
            .map_err(transport("U-Boot tftp"))?;
        if size != image.data.len() as u64 {
            return Err(FlashError::Transport(format!(
                "U-Boot received {size} bytes of {file}, not {}",
                image.data.len()
            )));
        }
        u.block_write(
            self.interface,
            self.dev,
            "kernel_addr_r",
            self.start_block,
            size,
            self.limit,
        )
        .await
        .map_err(transport("U-Boot block write"))?;
        // Read back past the loaded copy (1 MiB aligned), so that a write
        // that never happened cannot pass by reading the RAM it came from.
        let blocks = size.div_ceil(512);
        let gap = (size + (1 << 20)) & !((1 << 20) - 1);
        let step = async {
            u.run_checked(&format!("setexpr hilt_rb ${{kernel_addr_r}} + {gap:#x}"))
                .await?;
            u.run_checked_for(
                &format!(
                    "{iface} read ${{hilt_rb}} {:#x} {blocks:#x}",
                    self.start_block
                ),
                self.limit,
            )
            .await?;
            u.run_checked_for(&format!("crc32 ${{hilt_rb}} {size:#x}"), self.limit)
                .await
        };
        let out = step.await.map_err(transport("U-Boot read back"))?;
        // "crc32 for 40500000 ... 4051116f ==> 8f6e3c1a"
        let got = out
            .rsplit("==> ")
            .next()
            .and_then(|h| u32::from_str_radix(h.trim(), 16).ok())
            .ok_or_else(|| FlashError::Transport(format!("unexpected crc32 output {out:?}")))?;
        let want = crc32fast::hash(&image.data);
        check(
            &format!("{iface} {}", self.dev),
            format!("crc32:{want:08x}"),
            format!("crc32:{got:08x}"),
        )?;
        Ok(got)
    }
}

/// The emulated board's storage is a file: write the image at an offset,
/// sync, and read it back.
pub struct DiskFileFlasher {
    pub path: PathBuf,
    pub offset: u64,
}

#[async_trait::async_trait]
impl Flasher for DiskFileFlasher {
    async fn flash(&mut self, image: &FlashImage) -> Result<FlashRecord, FlashError> {
        use std::io::{Read, Seek, SeekFrom, Write};
        let t0 = Instant::now();
        let target = format!("{}@{}", self.path.display(), self.offset);
        let io = |e: std::io::Error| FlashError::Transport(format!("{target}: {e}"));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(io)?;
        f.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        f.write_all(&image.data).map_err(io)?;
        f.sync_all().map_err(io)?;
        f.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut back = vec![0u8; image.data.len()];
        f.read_exact(&mut back).map_err(io)?;
        let got = check(
            &target,
            image.sha256.clone(),
            hex::encode(Sha256::digest(&back)),
        )?;
        Ok(record(
            "disk_file",
            &target,
            image,
            Some(format!("sha256:{got}")),
            t0,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A board whose `dd` fails the way a real one does: the message on
    /// stdout (the command line merges stderr into it), nothing on stderr.
    struct FailingDd;

    #[async_trait::async_trait]
    impl BoardShell for FailingDd {
        fn method(&self) -> &'static str {
            "ssh_dd"
        }
        async fn run(&self, line: &str, _: Duration) -> Result<(i32, String, String), FlashError> {
            if line.starts_with("dd ") {
                let msg = "dd: error writing '/dev/mmcblk1p5': No space left on device\n";
                return Ok((1, msg.repeat(50) + "é", String::new()));
            }
            Ok((0, String::new(), String::new()))
        }
        async fn push(&self, data: &[u8], _: &str, _: u32) -> Result<String, FlashError> {
            Ok(hex::encode(Sha256::digest(data)))
        }
    }

    /// Issue 20, finding 8: only stderr was quoted, so the error said
    /// nothing about why dd failed.
    #[tokio::test]
    async fn a_dd_failure_quotes_dds_own_message() {
        let mut f = DdFlasher {
            shell: FailingDd,
            device: "/dev/mmcblk1p5".into(),
            staging: "/tmp/stage.img".into(),
            limit: Duration::from_secs(1),
        };
        let err = f
            .flash(&FlashImage::new("x.img", vec![1; 10], None))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("No space left on device"), "{err}");
        assert!(
            err.len() < 1500,
            "the quote is bounded: {} bytes",
            err.len()
        );
    }

    #[tokio::test]
    async fn disk_file_flash_lands_at_the_offset_and_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("sd.img");
        std::fs::write(&disk, vec![0xeeu8; 8192]).unwrap();
        let img = FlashImage::new(
            "erofs.img",
            (0..3000u32).map(|i| i as u8).collect(),
            Some("ab".repeat(32)),
        );
        let rec = DiskFileFlasher {
            path: disk.clone(),
            offset: 1024,
        }
        .flash(&img)
        .await
        .unwrap();
        let after = std::fs::read(&disk).unwrap();
        assert_eq!(&after[1024..4024], &img.data[..]);
        assert!(after[..1024]
            .iter()
            .chain(&after[4024..])
            .all(|&b| b == 0xee));
        assert_eq!(rec.readback, Some(format!("sha256:{}", img.sha256)));
        assert_eq!(rec.verity_root_hash.as_deref(), Some(&*"ab".repeat(32)));
        assert_eq!(rec.bytes, 3000);
    }
}
