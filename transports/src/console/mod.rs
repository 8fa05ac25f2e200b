//! Consoles: a board's UART as the host reaches it: a local serial port
//! ([`serial`]), ser2net's raw TCP ([`tcp`]), telnet ([`TelnetConsole`]) and
//! RFC 2217 ([`rfc2217`]) ports, QEMU's telnet chardev.

pub mod replay;
pub mod rfc2217;
pub mod serial;
pub mod tcp;
pub mod telnet;

pub use replay::Replayed;
pub use rfc2217::Rfc2217Console;
pub use serial::{Reconnect, SerialConfig, SerialConsole};
pub use tcp::TcpConsole;

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A serial console: bytes in both directions, plus BREAK.
#[async_trait::async_trait]
pub trait Console: AsyncRead + AsyncWrite + Unpin + Send {
    /// Sends a serial BREAK (for magic sysrq).
    async fn send_break(&mut self) -> std::io::Result<()>;

    /// BREAK followed by a sysrq key: how a host asks a wedged kernel for
    /// its stacks without any userspace help.
    async fn sysrq(&mut self, key: u8) -> std::io::Result<()> {
        self.send_break().await?;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        self.write_all(&[key]).await?;
        self.flush().await
    }

    /// Out-of-band events of the transport, oldest first, drained by the
    /// call (e.g. "reconnected to /dev/ttyUSB0 after 2.1 s"). They are never
    /// mixed into the byte stream, which stays byte-exact.
    fn take_notices(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// What the far end says it is, for a transport that can ask (an RFC
    /// 2217 server's signature); None for a bare line.
    async fn identify(&mut self) -> std::io::Result<Option<String>> {
        Ok(None)
    }
}

/// Parity of a serial line. Mark and space parity are left out: no board
/// console uses them and Linux termios cannot set them portably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    None,
    /// XON/XOFF
    Software,
    /// RTS/CTS
    Hardware,
}

/// Baud and framing of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineSettings {
    pub baud: u32,
    /// 5 to 8.
    pub data_bits: u8,
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
    pub flow: FlowControl,
}

impl Default for LineSettings {
    /// 115200 8N1 without flow control: what every Amlogic boot ROM, U-Boot
    /// and kernel console uses.
    fn default() -> Self {
        Self {
            baud: 115_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow: FlowControl::None,
        }
    }
}

impl LineSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.baud == 0 {
            return Err("baud must be positive".into());
        }
        if !(5..=8).contains(&self.data_bits) {
            return Err(format!("data bits must be 5 to 8, not {}", self.data_bits));
        }
        if !(1..=2).contains(&self.stop_bits) {
            return Err(format!("stop bits must be 1 or 2, not {}", self.stop_bits));
        }
        Ok(())
    }
}

impl std::str::FromStr for LineSettings {
    type Err = String;

    /// ser2net's notation: `115200n81`, `9600e71`, with an optional `,rtscts`
    /// or `,xonxoff`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("'{s}' is not a line setting like 115200n81 (baud, parity n/o/e, data bits, stop bits)")
        };
        let (line, flow) = match s.split_once(',') {
            None => (s, FlowControl::None),
            Some((l, "rtscts")) => (l, FlowControl::Hardware),
            Some((l, "xonxoff")) => (l, FlowControl::Software),
            Some(_) => return Err(bad()),
        };
        let split = line.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (baud, rest) = line.split_at(split);
        let rest = rest.as_bytes();
        if rest.len() != 3 {
            return Err(bad());
        }
        let parity = match rest[0].to_ascii_lowercase() {
            b'n' => Parity::None,
            b'o' => Parity::Odd,
            b'e' => Parity::Even,
            _ => return Err(bad()),
        };
        let digit = |b: u8| {
            if b.is_ascii_digit() {
                Ok(b - b'0')
            } else {
                Err(bad())
            }
        };
        let settings = LineSettings {
            baud: baud.parse().map_err(|_| bad())?,
            data_bits: digit(rest[1])?,
            parity,
            stop_bits: digit(rest[2])?,
            flow,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// A telnet-speaking stream (QEMU's telnet chardev, ser2net's telnet port).
pub struct TelnetConsole<S> {
    inner: S,
    decoder: telnet::Decoder,
    decoded: Vec<u8>,
    pos: usize,
}

impl<S> TelnetConsole<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            decoder: Default::default(),
            decoded: Vec::new(),
            pos: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TelnetConsole<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let this = &mut *self;
            if this.pos < this.decoded.len() {
                let n = (this.decoded.len() - this.pos).min(buf.remaining());
                buf.put_slice(&this.decoded[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            this.decoded.clear();
            this.pos = 0;
            let mut raw = [0u8; 4096];
            let mut rb = ReadBuf::new(&mut raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        return Poll::Ready(Ok(())); // EOF
                    }
                    this.decoder.decode(rb.filled(), &mut this.decoded);
                }
                other => return other,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TelnetConsole<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // Console writes are keystrokes; escaping 0xff is rare enough that
        // writing the escaped form whole, or not at all, is fine.
        if !data.contains(&telnet::IAC) {
            return Pin::new(&mut self.inner).poll_write(cx, data);
        }
        let esc = telnet::escape(&data[..1]);
        match Pin::new(&mut self.inner).poll_write(cx, &esc) {
            Poll::Ready(Ok(n)) if n == esc.len() => Poll::Ready(Ok(1)),
            Poll::Ready(Ok(_)) => {
                Poll::Ready(Err(std::io::Error::other("short write of an escaped byte")))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Console for TelnetConsole<S> {
    async fn send_break(&mut self) -> std::io::Result<()> {
        self.inner.write_all(&telnet::BREAK).await?;
        self.inner.flush().await
    }
}

/// A console chosen at run time (from a board file) is still a console.
#[async_trait::async_trait]
impl Console for Box<dyn Console> {
    async fn send_break(&mut self) -> std::io::Result<()> {
        (**self).send_break().await
    }

    async fn sysrq(&mut self, key: u8) -> std::io::Result<()> {
        (**self).sysrq(key).await
    }

    fn take_notices(&mut self) -> Vec<String> {
        (**self).take_notices()
    }

    async fn identify(&mut self) -> std::io::Result<Option<String>> {
        (**self).identify().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_settings_parse_ser2net_notation() {
        assert_eq!(
            "115200n81".parse::<LineSettings>().unwrap(),
            LineSettings::default()
        );
        let s: LineSettings = "9600e72,rtscts".parse().unwrap();
        assert_eq!(
            (s.baud, s.parity, s.data_bits, s.stop_bits, s.flow),
            (9600, Parity::Even, 7, 2, FlowControl::Hardware)
        );
        for bad in [
            "",
            "115200",
            "115200x81",
            "115200n91",
            "115200n83",
            "n81",
            "115200n81,foo",
        ] {
            assert!(bad.parse::<LineSettings>().is_err(), "{bad}");
        }
    }
}
