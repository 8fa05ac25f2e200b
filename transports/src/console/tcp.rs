//! ser2net's raw TCP accepter (`accepter: tcp,PORT`): the UART's bytes and
//! nothing else. It cannot carry a BREAK; use a telnet or RFC 2217 accepter
//! on boards that need magic sysrq from the console.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Console;

/// Connects with a deadline and an error that names the address and what
/// to check.
pub(crate) async fn connect(addr: &str, limit: Duration) -> io::Result<TcpStream> {
    let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connecting to {addr} timed out after {} s: is the host up and the port open?",
                    limit.as_secs()
                ),
            ))
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(io::Error::new(
                e.kind(),
                format!(
                "{addr} refused the connection: is ser2net running with an accepter on that port?"
            ),
            ))
        }
        Ok(Err(e)) => {
            return Err(io::Error::new(
                e.kind(),
                format!("connecting to {addr}: {e}"),
            ))
        }
        Ok(Ok(s)) => s,
    };
    // Console bytes are keystrokes: Nagle would hold them back.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A raw TCP serial port.
#[derive(Debug)]
pub struct TcpConsole {
    stream: TcpStream,
    addr: String,
}

impl TcpConsole {
    pub async fn connect(addr: &str, limit: Duration) -> io::Result<Self> {
        Ok(Self {
            stream: connect(addr, limit).await?,
            addr: addr.to_string(),
        })
    }
}

impl AsyncRead for TcpConsole {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpConsole {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl Console for TcpConsole {
    async fn send_break(&mut self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{} is a raw TCP port, which has no way to send a BREAK: configure ser2net's accepter \
                 as telnet(rfc2217),tcp,PORT and use the rfc2217 console",
                self.addr
            ),
        ))
    }
}
