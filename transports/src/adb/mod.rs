//! adb, host side: through the adb server ([`server`]) or straight to
//! adbd over TCP or USB ([`AdbDevice`], on [`wire`] messages), with the same
//! service code ([`sync`]: push, shell output) on top of both.

pub mod auth;
pub mod server;
pub mod sync;
pub mod usb;
pub mod wire;

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::ssh::ExecChunk;
use auth::AdbKey;
use sync::Channel;
use wire::*;

pub use server::{AdbServer, DeviceInfo, RootAnswer};

/// A connection to adbd, authenticated.
pub struct AdbDevice<IO: MessageIo> {
    io: IO,
    max_payload: u32,
    banner: String,
    next_id: u32,
    /// Messages for streams that were not being read when they came.
    backlog: VecDeque<Message>,
}

impl<IO: MessageIo> std::fmt::Debug for AdbDevice<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdbDevice")
            .field("banner", &self.banner)
            .field("max_payload", &self.max_payload)
            .finish()
    }
}

/// How the host introduces itself and how long it waits for a person to
/// accept its key on the device.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub key: AdbKey,
    /// Shown on the device's "Allow USB debugging?" prompt.
    pub key_comment: String,
    pub timeout: Duration,
    /// Waiting for the prompt to be accepted after sending our public key.
    pub accept_wait: Duration,
}

impl ConnectOptions {
    pub fn new(key: AdbKey) -> Self {
        Self {
            key,
            key_comment: "hilt@host".into(),
            timeout: Duration::from_secs(10),
            accept_wait: Duration::from_secs(60),
        }
    }
}

fn unexpected(m: &Message, when: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("adbd sent {m:?} {when}"),
    )
}

/// CNXN, then AUTH: sign the token; if the device does not know our key,
/// offer the public key and wait for a person to accept it. Returns the
/// device's protocol version, max payload and banner.
async fn handshake<IO: MessageIo>(
    io: &mut IO,
    opts: &ConnectOptions,
) -> io::Result<(u32, u32, String)> {
    io.send(&Message::new(
        A_CNXN,
        A_VERSION,
        MAX_PAYLOAD,
        &b"host::\0"[..],
    ))
    .await?;
    let mut signed = false;
    let mut deadline = tokio::time::Instant::now() + opts.timeout;
    loop {
        let m = match tokio::time::timeout_at(deadline, io.recv(MAX_PAYLOAD)).await {
            Ok(r) => r?,
            Err(_) if signed => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the device did not accept our adb key: accept the \"Allow USB debugging?\" prompt on its screen",
                ))
            }
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer to adb CNXN: is this adbd?")),
        };
        match m.command {
            A_CNXN => {
                let banner = String::from_utf8_lossy(&m.data)
                    .trim_end_matches('\0')
                    .to_string();
                return Ok((m.arg0, m.arg1.clamp(MAX_PAYLOAD_V1, MAX_PAYLOAD), banner));
            }
            A_AUTH if m.arg0 == AUTH_TOKEN && !signed => {
                signed = true;
                let sig = opts.key.sign_token(&m.data)?;
                io.send(&Message::new(A_AUTH, AUTH_SIGNATURE, 0, sig))
                    .await?;
            }
            A_AUTH if m.arg0 == AUTH_TOKEN => {
                // Our signature was refused: the device does not know
                // the key. Offering it makes the device ask its user.
                io.send(&Message::new(
                    A_AUTH,
                    AUTH_RSAPUBLICKEY,
                    0,
                    opts.key.public_key_payload(&opts.key_comment),
                ))
                .await?;
                deadline = tokio::time::Instant::now() + opts.accept_wait;
            }
            A_STLS => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "adbd asks for TLS (Android 11+ wireless debugging); hilt speaks classic adb: \
                     enable it with `adb tcpip 5555` over USB",
                ))
            }
            _ => return Err(unexpected(&m, "during the handshake")),
        }
    }
}

impl AdbDevice<StreamIo<TcpStream>> {
    /// adbd listening on TCP (`adb tcpip 5555`, or an emulator).
    pub async fn connect_tcp(addr: &str, opts: &ConnectOptions) -> io::Result<Self> {
        let stream = crate::console::tcp::connect(addr, opts.timeout)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("adbd at {addr}: {e}")))?;
        let mut io = StreamIo::new(stream);
        let (version, max_payload, banner) = handshake(&mut io, opts).await?;
        // Below A_VERSION the device checks payload checksums, and so do we.
        io.version = version.min(A_VERSION);
        Ok(Self::from_parts(io, max_payload, banner))
    }
}

impl<IO: MessageIo> AdbDevice<IO> {
    /// Connects over any message transport (USB: [`usb::UsbIo`]).
    pub async fn connect(mut io: IO, opts: &ConnectOptions) -> io::Result<Self> {
        let (_, max_payload, banner) = handshake(&mut io, opts).await?;
        Ok(Self::from_parts(io, max_payload, banner))
    }

    fn from_parts(io: IO, max_payload: u32, banner: String) -> Self {
        Self {
            io,
            max_payload,
            banner,
            next_id: 1,
            backlog: VecDeque::new(),
        }
    }

    /// adbd's CNXN banner, e.g. `device::ro.product.name=...;features=...`.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    pub fn features(&self) -> Vec<&str> {
        self.banner
            .split(';')
            .find_map(|kv| kv.strip_prefix("features="))
            .map(|f| f.split(',').collect())
            .unwrap_or_default()
    }

    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    async fn next_message(&mut self) -> io::Result<Message> {
        if let Some(m) = self.backlog.pop_front() {
            return Ok(m);
        }
        self.io.recv(self.max_payload.max(MAX_PAYLOAD_V1)).await
    }

    /// Opens a service (`shell,v2,raw:...`, `sync:`, `reboot:`...).
    pub async fn open(&mut self, service: &str) -> io::Result<AdbStream<'_, IO>> {
        let local = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let mut name = service.as_bytes().to_vec();
        name.push(0);
        self.io.send(&Message::new(A_OPEN, local, 0, name)).await?;
        loop {
            let m = self.next_message().await?;
            match m.command {
                A_OKAY if m.arg1 == local => {
                    return Ok(AdbStream {
                        dev: self,
                        local,
                        remote: m.arg0,
                        reads: VecDeque::new(),
                        closed: false,
                    })
                }
                A_CLSE if m.arg1 == local || m.arg1 == 0 => {
                    return Err(io::Error::other(format!(
                        "adbd refused the service {service:?}"
                    )))
                }
                // Leftovers of streams closed earlier.
                A_OKAY | A_CLSE | A_WRTE => {}
                _ => return Err(unexpected(&m, &format!("in answer to OPEN {service:?}"))),
            }
        }
    }

    /// Runs a command: with the shell v2 protocol when the device has it
    /// (stderr apart, exit status), else plain `shell:` (no exit status:
    /// `None`).
    pub async fn shell(
        &mut self,
        command: &str,
        out: &mpsc::Sender<ExecChunk>,
    ) -> io::Result<Option<i32>> {
        if self.features().contains(&"shell_v2") {
            let mut s = self.open(&format!("shell,v2,raw:{command}")).await?;
            let status = sync::shell_v2_output(&mut s, out).await?;
            s.close().await?;
            Ok(Some(status))
        } else {
            let mut s = self.open(&format!("shell:{command}")).await?;
            sync::shell_v1_output(&mut s, out).await?;
            Ok(None)
        }
    }

    /// Pushes `data` to `path` and checks it by reading it back; returns
    /// the sha256 (hex).
    pub async fn push(&mut self, data: &[u8], path: &str, mode: u32) -> io::Result<String> {
        let mut s = self.open("sync:").await?;
        let sum = sync::push_checked(&mut s, path, mode, data).await?;
        sync::quit(&mut s).await?;
        s.close().await?;
        Ok(sum)
    }
}

/// One open stream; data in both directions with adb's flow control
/// (each WRTE waits for its OKAY).
pub struct AdbStream<'a, IO: MessageIo> {
    dev: &'a mut AdbDevice<IO>,
    local: u32,
    remote: u32,
    reads: VecDeque<Vec<u8>>,
    closed: bool,
}

impl<IO: MessageIo> AdbStream<'_, IO> {
    /// Handles one message for this stream; others wait in the backlog.
    async fn pump(&mut self) -> io::Result<Option<Message>> {
        let m = self.dev.next_message().await?;
        if m.arg1 != self.local {
            if m.command == A_WRTE {
                // Data for a stream we no longer read: acknowledge so the
                // device is not stuck, and drop it.
                self.dev
                    .io
                    .send(&Message::new(A_OKAY, m.arg1, m.arg0, Vec::new()))
                    .await?;
            }
            return Ok(None);
        }
        match m.command {
            A_WRTE => {
                self.dev
                    .io
                    .send(&Message::new(A_OKAY, self.local, self.remote, Vec::new()))
                    .await?;
                self.reads.push_back(m.data);
                Ok(None)
            }
            A_CLSE => {
                if !self.closed {
                    self.closed = true;
                    self.dev
                        .io
                        .send(&Message::new(A_CLSE, self.local, self.remote, Vec::new()))
                        .await?;
                }
                Ok(None)
            }
            A_OKAY => Ok(Some(m)),
            _ => Err(unexpected(&m, "on an open stream")),
        }
    }

    pub async fn close(mut self) -> io::Result<()> {
        if !self.closed {
            self.closed = true;
            self.dev
                .io
                .send(&Message::new(A_CLSE, self.local, self.remote, Vec::new()))
                .await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl<IO: MessageIo> Channel for AdbStream<'_, IO> {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let max = self.dev.max_payload as usize;
        for chunk in data.chunks(max) {
            if self.closed {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "adb stream closed by the device",
                ));
            }
            self.dev
                .io
                .send(&Message::new(
                    A_WRTE,
                    self.local,
                    self.remote,
                    chunk.to_vec(),
                ))
                .await?;
            loop {
                if self.pump().await?.is_some() {
                    break;
                }
                if self.closed {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "adb stream closed by the device",
                    ));
                }
            }
        }
        Ok(())
    }

    async fn read_some(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(b) = self.reads.pop_front() {
                return Ok(Some(b));
            }
            if self.closed {
                return Ok(None);
            }
            self.pump().await?;
        }
    }
}
