//! A client of the adb server (the `adb` daemon on port 5037), in its
//! smart-socket protocol (OVERVIEW.TXT, SERVICES.TXT): each request is four
//! hex digits of length and the text; the answer is OKAY or FAIL and a
//! length-prefixed message. `host:transport:<serial>` turns the connection
//! into a stream to that device, on which a device service (`shell,v2,...`,
//! `sync:`) is then requested the same way.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::sync::{self, Channel};
use crate::ssh::ExecChunk;

/// Where the adb server listens unless told otherwise (ADB_SERVER_SOCKET).
pub const DEFAULT_PORT: u16 = 5037;

#[derive(Debug, Clone)]
pub struct AdbServer {
    addr: String,
    timeout: Duration,
}

/// One line of `host:devices-l`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub serial: String,
    /// device, offline, unauthorized, recovery, bootloader, ...
    pub state: String,
    /// product:..., model:..., device:..., transport_id:... as key/value.
    pub details: Vec<(String, String)>,
}

/// An open connection to the server: requests, then maybe a device stream.
pub struct ServerConn {
    stream: TcpStream,
    what: String,
}

fn encode_request(req: &str) -> io::Result<Vec<u8>> {
    if req.len() > 0xffff {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "adb request longer than 65535 bytes",
        ));
    }
    Ok(format!("{:04x}{req}", req.len()).into_bytes())
}

impl ServerConn {
    async fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.stream
            .read_exact(&mut b)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.what)))?;
        Ok(b)
    }

    async fn read_hex_len(&mut self) -> io::Result<usize> {
        let b = self.read_exact(4).await?;
        let s = std::str::from_utf8(&b)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok());
        s.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: bad length {:?} from the adb server",
                    self.what,
                    String::from_utf8_lossy(&b)
                ),
            )
        })
    }

    /// A length-prefixed string (the payload of most host: answers).
    pub async fn read_string(&mut self) -> io::Result<String> {
        let n = self.read_hex_len().await?;
        Ok(String::from_utf8_lossy(&self.read_exact(n).await?).into_owned())
    }

    /// Sends a request and reads OKAY, or turns FAIL into an error with the
    /// server's message.
    pub async fn request(&mut self, req: &str) -> io::Result<()> {
        self.stream.write_all(&encode_request(req)?).await?;
        let status = self.read_exact(4).await?;
        match &status[..] {
            b"OKAY" => Ok(()),
            b"FAIL" => {
                let msg = self.read_string().await?;
                Err(io::Error::other(format!(
                    "adb server refused {req:?}: {msg}"
                )))
            }
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: answer {:?} to {req:?} is neither OKAY nor FAIL",
                    self.what,
                    String::from_utf8_lossy(other)
                ),
            )),
        }
    }
}

#[async_trait::async_trait]
impl Channel for ServerConn {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data).await
    }

    async fn read_some(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut b = vec![0u8; 64 * 1024];
        let n = self.stream.read(&mut b).await?;
        if n == 0 {
            return Ok(None);
        }
        b.truncate(n);
        Ok(Some(b))
    }
}

pub fn parse_devices(text: &str) -> Vec<DeviceInfo> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let serial = parts.next()?.to_string();
            let state = parts.next()?.to_string();
            let details = parts
                .filter_map(|kv| {
                    kv.split_once(':')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            Some(DeviceInfo {
                serial,
                state,
                details,
            })
        })
        .collect()
}

impl AdbServer {
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The local server on its default port.
    pub fn local() -> Self {
        Self::new(format!("127.0.0.1:{DEFAULT_PORT}"))
    }

    pub async fn connect(&self) -> io::Result<ServerConn> {
        let stream = match tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "no adb server at {}: start one with `adb start-server` (package adb)",
                        self.addr
                    ),
                ))
            }
            Ok(Err(e)) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("connecting to the adb server at {}: {e}", self.addr),
                ))
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to the adb server at {}", self.addr),
                ))
            }
        };
        Ok(ServerConn {
            stream,
            what: format!("adb server {}", self.addr),
        })
    }

    async fn query(&self, req: &str) -> io::Result<String> {
        let mut c = self.connect().await?;
        c.request(req).await?;
        c.read_string().await
    }

    /// The server's protocol version (adb 29.0.6 answers 41).
    pub async fn version(&self) -> io::Result<u32> {
        let s = self.query("host:version").await?;
        u32::from_str_radix(&s, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("host:version answered {s:?}"),
            )
        })
    }

    pub async fn devices(&self) -> io::Result<Vec<DeviceInfo>> {
        Ok(parse_devices(&self.query("host:devices-l").await?))
    }

    /// `host:connect:<host:port>`: makes the server connect to a TCP adbd.
    /// The answer text says whether it worked ("connected to ...",
    /// "already connected to ...", or "failed to ...").
    ///
    /// "failed to authenticate" is not a failure of the connection: adb 29
    /// answers it when the device did not know its key and is now asking
    /// its user; the connection stays and becomes a device once accepted,
    /// which [`Self::wait_for_device`] waits for. It is returned as Ok.
    pub async fn connect_device(&self, target: &str) -> io::Result<String> {
        let msg = self.query(&format!("host:connect:{target}")).await?;
        if msg.starts_with("connected to")
            || msg.starts_with("already connected to")
            || msg.starts_with("failed to authenticate")
        {
            Ok(msg)
        } else {
            Err(io::Error::other(format!(
                "adb could not connect to {target}: {msg}"
            )))
        }
    }

    pub async fn disconnect_device(&self, target: &str) -> io::Result<String> {
        self.query(&format!("host:disconnect:{target}")).await
    }

    /// Waits until `serial` is listed in the "device" state.
    pub async fn wait_for_device(&self, serial: &str, limit: Duration) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let devices = self.devices().await?;
            let state = devices
                .iter()
                .find(|d| d.serial == serial)
                .map(|d| d.state.clone());
            match state.as_deref() {
                Some("device") => return Ok(()),
                _ if tokio::time::Instant::now() >= deadline => {
                    let hint = if state.as_deref() == Some("unauthorized") {
                        ": accept the USB debugging prompt on the device"
                    } else {
                        ""
                    };
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "{serial} is {} after {} s{hint}",
                            state.as_deref().unwrap_or("not listed"),
                            limit.as_secs()
                        ),
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// A connection switched to `serial` (None: the only device, which
    /// fails if there are none or several).
    pub async fn transport(&self, serial: Option<&str>) -> io::Result<ServerConn> {
        let mut c = self.connect().await?;
        match serial {
            Some(s) => c.request(&format!("host:transport:{s}")).await?,
            None => c.request("host:transport-any").await?,
        }
        Ok(c)
    }

    /// Opens a device service (e.g. `shell,v2,raw:ls`, `sync:`).
    pub async fn open(&self, serial: Option<&str>, service: &str) -> io::Result<ServerConn> {
        let mut c = self.transport(serial).await?;
        c.request(service).await?;
        Ok(c)
    }

    /// A service's whole answer, up to the device closing it (`root:`,
    /// `reboot:...`), at most 4 KiB.
    async fn answer_of(&self, serial: Option<&str>, service: &str) -> io::Result<String> {
        let mut c = self.open(serial, service).await?;
        let mut text = Vec::new();
        while let Some(b) = c.read_some().await? {
            text.extend_from_slice(&b);
            if text.len() > 4096 {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// `adb root`: adbd's answer says whether it runs as root already, is
    /// restarting as root (the device then drops off for a moment), or
    /// cannot (a production build).
    pub async fn root(&self, serial: Option<&str>) -> io::Result<RootAnswer> {
        let text = self.answer_of(serial, "root:").await?;
        Ok(RootAnswer::parse(&text))
    }

    /// `adb reboot [TARGET]`, e.g. "bootloader". The device goes away.
    pub async fn reboot(&self, serial: Option<&str>, target: &str) -> io::Result<String> {
        self.answer_of(serial, &format!("reboot:{target}")).await
    }

    /// Runs a command with the shell v2 protocol: stdout and stderr apart,
    /// streamed to `out`, and the exit status. The command line is run by
    /// the device's shell; quote arguments with [`crate::ssh::shell_quote`].
    pub async fn shell(
        &self,
        serial: Option<&str>,
        command: &str,
        out: &mpsc::Sender<ExecChunk>,
    ) -> io::Result<i32> {
        let mut c = self
            .open(serial, &format!("shell,v2,raw:{command}"))
            .await?;
        sync::shell_v2_output(&mut c, out).await
    }

    /// Pushes `data` to `path`, then checks size and sha256 by reading it
    /// back. Returns the sha256 (hex).
    pub async fn push(
        &self,
        serial: Option<&str>,
        data: &[u8],
        path: &str,
        mode: u32,
    ) -> io::Result<String> {
        let mut c = self.open(serial, "sync:").await?;
        let sum = sync::push_checked(&mut c, path, mode, data).await?;
        sync::quit(&mut c).await?;
        Ok(sum)
    }

    /// Reads a file from the device (a block device too, when adbd runs as
    /// root), refusing more than `limit` bytes.
    pub async fn pull(
        &self,
        serial: Option<&str>,
        path: &str,
        limit: usize,
    ) -> io::Result<Vec<u8>> {
        let mut c = self.open(serial, "sync:").await?;
        let data = sync::recv(&mut c, path, limit).await?;
        sync::quit(&mut c).await?;
        Ok(data)
    }

    /// Runs `command` with shell v2 and returns its stdin and stdout as one
    /// byte stream, the way [`crate::ssh::open_stream`] does over SSH:
    /// stderr arrives on `stderr` as it comes, and when the host drops the
    /// stream the command's stdin is closed (EOF). The receiver gets the
    /// exit status, or why the stream broke.
    pub async fn open_stream(
        &self,
        serial: Option<&str>,
        command: &str,
        stderr: mpsc::Sender<Vec<u8>>,
    ) -> io::Result<(DuplexStream, oneshot::Receiver<io::Result<i32>>)> {
        use hilt_adbd::shell::{id, packet, Depacketizer};
        let conn = self
            .open(serial, &format!("shell,v2,raw:{command}"))
            .await?;
        let (mut from_device, mut to_device) = conn.stream.into_split();
        let (host_side, pump_side) = tokio::io::duplex(256 * 1024);
        let (mut from_host, mut to_host) = tokio::io::split(pump_side);
        // Dropping the write half would half-close the socket, and the
        // server would then close the stream before the exit status came.
        let (read_done, write_may_close) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match from_host.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to_device
                            .write_all(&packet(id::STDIN, &buf[..n]))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            let _ = to_device.write_all(&packet(id::CLOSE_STDIN, &[])).await;
            let _ = write_may_close.await;
        });
        let (ended_tx, ended) = oneshot::channel();
        tokio::spawn(async move {
            let mut d = Depacketizer::default();
            let mut buf = vec![0u8; 64 * 1024];
            let end = loop {
                let n = match from_device.read(&mut buf).await {
                    Ok(0) => {
                        break Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "adb shell ended without an exit status",
                        ))
                    }
                    Ok(n) => n,
                    Err(e) => break Err(e),
                };
                let mut status = None;
                let packets = match d.push(&buf[..n]) {
                    Ok(p) => p,
                    Err(e) => break Err(e),
                };
                for (pid, data) in packets {
                    match pid {
                        id::STDOUT => {
                            // The host may have dropped its end; the
                            // command's output is still drained.
                            let _ = to_host.write_all(&data).await;
                        }
                        id::STDERR => {
                            let _ = stderr.send(data).await;
                        }
                        id::EXIT => status = Some(data.first().copied().map_or(-1, i32::from)),
                        _ => {}
                    }
                }
                if let Some(s) = status {
                    break Ok(s);
                }
            };
            let _ = to_host.shutdown().await;
            drop(read_done);
            let _ = ended_tx.send(end);
        });
        Ok((host_side, ended))
    }

    pub async fn stat(&self, serial: Option<&str>, path: &str) -> io::Result<sync::Stat> {
        let mut c = self.open(serial, "sync:").await?;
        let st = sync::stat(&mut c, path).await?;
        sync::quit(&mut c).await?;
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_hex_length_prefixed() {
        assert_eq!(encode_request("host:version").unwrap(), b"000chost:version");
        assert!(encode_request(&"x".repeat(0x10000)).is_err());
    }

    #[test]
    fn devices_l_parses() {
        let d = parse_devices("0123456789ABCDEF       device usb:1-1 product:p model:Pixel_7 device:panther transport_id:1\n127.0.0.1:5555 unauthorized\n");
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].serial.as_str(), d[0].state.as_str()),
            ("0123456789ABCDEF", "device")
        );
        assert!(d[0].details.contains(&("model".into(), "Pixel_7".into())));
        assert_eq!(d[1].state, "unauthorized");
        assert!(parse_devices("").is_empty());
    }
}

/// What adbd said to `root:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootAnswer {
    AlreadyRoot,
    Restarting,
    /// A production build, or anything else adbd said.
    Refused(String),
}

impl RootAnswer {
    /// adbd's fixed wordings (daemon/restart_service.cpp).
    pub fn parse(text: &str) -> Self {
        let t = text.trim();
        if t.contains("already running as root") {
            RootAnswer::AlreadyRoot
        } else if t.contains("restarting") {
            RootAnswer::Restarting
        } else {
            RootAnswer::Refused(t.to_string())
        }
    }
}

#[cfg(test)]
mod root_answer_tests {
    use super::RootAnswer;

    #[test]
    fn adbds_wordings() {
        assert_eq!(
            RootAnswer::parse("adbd is already running as root\n"),
            RootAnswer::AlreadyRoot
        );
        assert_eq!(
            RootAnswer::parse("restarting adbd as root\n"),
            RootAnswer::Restarting
        );
        assert_eq!(
            RootAnswer::parse("adbd cannot run as root in production builds\n"),
            RootAnswer::Refused("adbd cannot run as root in production builds".into())
        );
    }
}
