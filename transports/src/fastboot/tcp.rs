//! fastboot over TCP (port 5554 by default): a "FB01" handshake both ways,
//! then every packet prefixed with its length as 8 bytes big-endian.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proto::{FastbootIo, MAX_RESPONSE};

pub const DEFAULT_PORT: u16 = 5554;

pub struct TcpIo {
    stream: TcpStream,
    pub version: u32,
}

impl TcpIo {
    pub async fn connect(addr: &str, limit: Duration) -> io::Result<Self> {
        let mut stream = crate::console::tcp::connect(addr, limit)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("fastboot at {addr}: {e}")))?;
        stream.write_all(b"FB01").await?;
        let mut hs = [0u8; 4];
        tokio::time::timeout(limit, stream.read_exact(&mut hs))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr} sent no fastboot handshake"),
                )
            })??;
        let version = std::str::from_utf8(&hs[2..])
            .ok()
            .and_then(|v| v.parse::<u32>().ok());
        match (&hs[..2], version) {
            (b"FB", Some(v)) if v >= 1 => Ok(Self {
                stream,
                version: v.min(1),
            }),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{addr} answered {:?} to the fastboot handshake: not a fastboot TCP server",
                    String::from_utf8_lossy(&hs)
                ),
            )),
        }
    }
}

#[async_trait::async_trait]
impl FastbootIo for TcpIo {
    async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        let mut v = Vec::with_capacity(8 + packet.len());
        v.extend((packet.len() as u64).to_be_bytes());
        v.extend_from_slice(packet);
        self.stream.write_all(&v).await
    }

    async fn recv(&mut self) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 8];
        self.stream.read_exact(&mut len).await?;
        let len = u64::from_be_bytes(len);
        if len > MAX_RESPONSE as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("fastboot response of {len} bytes"),
            ));
        }
        let mut p = vec![0u8; len as usize];
        self.stream.read_exact(&mut p).await?;
        Ok(p)
    }
}
