//! Consoles: a board's UART as the host reaches it.

pub mod telnet;

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
        Self { inner, decoder: Default::default(), decoded: Vec::new(), pos: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TelnetConsole<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
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
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        // Console writes are keystrokes; escaping 0xff is rare enough that
        // writing the escaped form whole, or not at all, is fine.
        if !data.contains(&telnet::IAC) {
            return Pin::new(&mut self.inner).poll_write(cx, data);
        }
        let esc = telnet::escape(&data[..1]);
        match Pin::new(&mut self.inner).poll_write(cx, &esc) {
            Poll::Ready(Ok(n)) if n == esc.len() => Poll::Ready(Ok(1)),
            Poll::Ready(Ok(_)) => Poll::Ready(Err(std::io::Error::other("short write of an escaped byte"))),
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
