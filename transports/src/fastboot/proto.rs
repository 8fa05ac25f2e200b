//! The fastboot command protocol (AOSP fastboot/README.md), independent of
//! the transport: a command packet, then INFO/TEXT packets until OKAY, FAIL
//! or DATA; in a download, the data phase between DATA and the final OKAY.

use std::io;
use std::time::Duration;

use super::sparse::{self, SparseImage};

/// Commands are one packet of at most this many bytes.
pub const MAX_COMMAND: usize = 4096;
/// Responses are at most this long.
pub const MAX_RESPONSE: usize = 256;
/// How many INFO and TEXT lines are kept for the log between two
/// `take_messages`.
pub const MAX_MESSAGES: usize = 1000;

/// Moves fastboot packets. TCP and USB differ only here.
#[async_trait::async_trait]
pub trait FastbootIo: Send {
    async fn send(&mut self, packet: &[u8]) -> io::Result<()>;
    async fn recv(&mut self) -> io::Result<Vec<u8>>;
    /// Largest piece of download data to hand to `send` at once.
    fn data_chunk(&self) -> usize {
        1 << 20
    }
}

/// Either transport behind one type, for a caller that picks it at run
/// time from a board file.
#[async_trait::async_trait]
impl FastbootIo for Box<dyn FastbootIo> {
    async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        (**self).send(packet).await
    }
    async fn recv(&mut self) -> io::Result<Vec<u8>> {
        (**self).recv().await
    }
    fn data_chunk(&self) -> usize {
        (**self).data_chunk()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FastbootError {
    #[error("the device refused `{command}`: {message}")]
    Fail { command: String, message: String },
    #[error("fastboot I/O: {0}")]
    Io(#[from] io::Error),
    #[error("timed out after {0:?} waiting for the device to answer `{1}`")]
    Timeout(Duration, String),
    #[error("{0}")]
    Protocol(String),
}

/// The final answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Okay(String),
    Data(u32),
}

pub struct Fastboot<IO> {
    io: IO,
    /// INFO and TEXT messages, in order, until taken.
    messages: std::collections::VecDeque<String>,
    timeout: Duration,
}

/// Partition and variable names go into the command text; ':' would start
/// another argument.
fn check_name(what: &str, s: &str) -> Result<(), FastbootError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(FastbootError::Protocol(format!(
            "{what} {s:?} is not a fastboot name"
        )));
    }
    Ok(())
}

impl<IO: FastbootIo> Fastboot<IO> {
    pub fn new(io: IO) -> Self {
        // Flashing a large partition answers only when it is written.
        Self {
            io,
            messages: Default::default(),
            timeout: Duration::from_secs(300),
        }
    }

    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// INFO/TEXT lines the device sent since the last call.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages).into()
    }

    /// A device may print without end: only the latest messages are kept.
    fn keep(&mut self, message: String) {
        if self.messages.len() >= MAX_MESSAGES {
            self.messages.pop_front();
        }
        self.messages.push_back(message);
    }

    async fn recv(&mut self, command: &str) -> Result<Vec<u8>, FastbootError> {
        match tokio::time::timeout(self.timeout, self.io.recv()).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(FastbootError::Timeout(self.timeout, command.into())),
        }
    }

    async fn answer(&mut self, command: &str) -> Result<Reply, FastbootError> {
        loop {
            let p = self.recv(command).await?;
            if p.len() < 4 || p.len() > MAX_RESPONSE {
                return Err(FastbootError::Protocol(format!(
                    "a {}-byte response to `{command}`",
                    p.len()
                )));
            }
            let text = String::from_utf8_lossy(&p[4..])
                .trim_end_matches('\0')
                .to_string();
            match &p[..4] {
                b"INFO" => self.keep(format!("(bootloader) {text}")),
                b"TEXT" => self.keep(text),
                b"OKAY" => return Ok(Reply::Okay(text)),
                b"FAIL" => {
                    return Err(FastbootError::Fail {
                        command: command.into(),
                        message: text,
                    })
                }
                b"DATA" => {
                    let n = u32::from_str_radix(&text, 16).map_err(|_| {
                        FastbootError::Protocol(format!("DATA{text:?} in answer to `{command}`"))
                    })?;
                    return Ok(Reply::Data(n));
                }
                other => {
                    return Err(FastbootError::Protocol(format!(
                        "response {:?} to `{command}`",
                        String::from_utf8_lossy(other)
                    )))
                }
            }
        }
    }

    /// Sends a command and waits for OKAY; returns its text.
    pub async fn command(&mut self, command: &str) -> Result<String, FastbootError> {
        if command.len() > MAX_COMMAND {
            return Err(FastbootError::Protocol(format!(
                "a {}-byte fastboot command",
                command.len()
            )));
        }
        self.io.send(command.as_bytes()).await?;
        match self.answer(command).await? {
            Reply::Okay(t) => Ok(t),
            Reply::Data(_) => Err(FastbootError::Protocol(format!(
                "DATA in answer to `{command}`"
            ))),
        }
    }

    pub async fn getvar(&mut self, var: &str) -> Result<String, FastbootError> {
        check_name("variable", var)?;
        self.command(&format!("getvar:{var}")).await
    }

    /// max-download-size, which devices give in hex ("0x20000000") or, on
    /// some bootloaders, decimal.
    pub async fn max_download_size(&mut self) -> Result<u64, FastbootError> {
        let v = self.getvar("max-download-size").await?;
        let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        };
        parsed
            .filter(|&n| n > 0)
            .ok_or_else(|| FastbootError::Protocol(format!("max-download-size {v:?}")))
    }

    /// `download:%08x`, the data, OKAY.
    pub async fn download(&mut self, data: &[u8]) -> Result<(), FastbootError> {
        let len = u32::try_from(data.len())
            .map_err(|_| FastbootError::Protocol("a download of 4 GiB or more".into()))?;
        let command = format!("download:{len:08x}");
        self.io.send(command.as_bytes()).await?;
        match self.answer(&command).await? {
            Reply::Data(n) if n == len => {}
            Reply::Data(n) => {
                return Err(FastbootError::Protocol(format!(
                    "device asked for {n} bytes of a {len}-byte download"
                )))
            }
            Reply::Okay(_) => {
                return Err(FastbootError::Protocol(format!(
                    "OKAY instead of DATA to `{command}`"
                )))
            }
        }
        for chunk in data.chunks(self.io.data_chunk().max(1)) {
            self.io.send(chunk).await?;
        }
        match self.answer(&command).await? {
            Reply::Okay(_) => Ok(()),
            Reply::Data(_) => Err(FastbootError::Protocol("DATA after a download".into())),
        }
    }

    /// Flashes `image` (raw or already sparse) to `partition`: as it is when
    /// it fits in max-download-size, else as sparse pieces.
    pub async fn flash(&mut self, partition: &str, image: &[u8]) -> Result<(), FastbootError> {
        check_name("partition", partition)?;
        let max = self.max_download_size().await?;
        if image.len() as u64 <= max {
            self.download(image).await?;
            self.command(&format!("flash:{partition}")).await?;
            return Ok(());
        }
        if sparse::is_sparse(image) {
            return Err(FastbootError::Protocol(format!(
                "a {}-byte sparse image is larger than the device's max-download-size {max}: resparse it",
                image.len()
            )));
        }
        let s = SparseImage::new(image, sparse::DEFAULT_BLOCK_SIZE)?;
        let pieces = s.pieces(max)?;
        let count = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            self.download(&piece).await?;
            self.command(&format!("flash:{partition}"))
                .await
                .map_err(|e| match e {
                    FastbootError::Fail { command, message } => FastbootError::Fail {
                        command,
                        message: format!("{message} (sparse piece {} of {count})", i + 1),
                    },
                    e => e,
                })?;
        }
        Ok(())
    }

    pub async fn erase(&mut self, partition: &str) -> Result<(), FastbootError> {
        check_name("partition", partition)?;
        self.command(&format!("erase:{partition}")).await.map(drop)
    }

    /// Downloads a boot image and boots it without flashing.
    pub async fn boot(&mut self, boot_img: &[u8]) -> Result<(), FastbootError> {
        self.download(boot_img).await?;
        self.command("boot").await.map(drop)
    }

    pub async fn reboot(&mut self) -> Result<(), FastbootError> {
        self.command("reboot").await.map(drop)
    }

    pub async fn reboot_bootloader(&mut self) -> Result<(), FastbootError> {
        self.command("reboot-bootloader").await.map(drop)
    }

    pub async fn continue_boot(&mut self) -> Result<(), FastbootError> {
        self.command("continue").await.map(drop)
    }

    pub fn into_inner(self) -> IO {
        self.io
    }
}
