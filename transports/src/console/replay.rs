//! A console some of whose output a driver already consumed (U-Boot's
//! dialogue, say) handed on to a capture that must still see every byte.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Console;

/// Reads `head` first, then `inner`; writes and BREAK go to `inner`.
pub struct Replayed<C> {
    head: Vec<u8>,
    pos: usize,
    inner: C,
}

impl<C> Replayed<C> {
    pub fn new(head: Vec<u8>, inner: C) -> Self {
        Self {
            head,
            pos: 0,
            inner,
        }
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Replayed<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.head.len() {
            let n = (this.head.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.head[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.head.len() {
                this.head = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Replayed<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl<C: Console> Console for Replayed<C> {
    async fn send_break(&mut self) -> std::io::Result<()> {
        self.inner.send_break().await
    }

    fn take_notices(&mut self) -> Vec<String> {
        self.inner.take_notices()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_the_head_then_reads_and_writes_through() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut c = Replayed::new(b"U-Boot> booti\r\n".to_vec(), a);
        b.write_all(b"[    0.000000] Booting Linux").await.unwrap();
        drop(b.shutdown().await);
        let mut small = [0u8; 4];
        c.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"U-Bo");
        let mut rest = Vec::new();
        let mut chunk = [0u8; 8];
        // Never more of the head than asked, and no inner byte before it ends.
        loop {
            let n = c.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(rest, b"ot> booti\r\n[    0.000000] Booting Linux");
    }
}
