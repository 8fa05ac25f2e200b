//! The adb wire protocol, host side: the messages themselves are defined
//! once, in `hilt_adbd::wire`, for both ends. The same messages travel over
//! TCP (adbd's port 5555) and USB bulk endpoints; only [`MessageIo`] differs.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use hilt_adbd::wire::*;

/// Moves whole messages. TCP and USB differ only here.
#[async_trait::async_trait]
pub trait MessageIo: Send {
    async fn send(&mut self, m: &Message) -> io::Result<()>;
    async fn recv(&mut self, max_payload: u32) -> io::Result<Message>;
}

/// Messages over a byte stream (adbd's TCP port).
pub struct StreamIo<S> {
    inner: S,
    /// Version agreed in CNXN; until then, checksums are checked.
    pub version: u32,
}

impl<S> StreamIo<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            version: A_VERSION_MIN,
        }
    }
}

#[async_trait::async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send> MessageIo for StreamIo<S> {
    async fn send(&mut self, m: &Message) -> io::Result<()> {
        self.inner.write_all(&m.encode()).await?;
        self.inner.flush().await
    }

    async fn recv(&mut self, max_payload: u32) -> io::Result<Message> {
        let mut h = [0u8; HEADER_LEN];
        self.inner.read_exact(&mut h).await?;
        let header = Header::decode(&h, max_payload)?;
        let mut data = vec![0u8; header.data_length as usize];
        self.inner.read_exact(&mut data).await?;
        header.check(&data, self.version)?;
        Ok(Message::new(header.command, header.arg0, header.arg1, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stream_io_round_trip_and_checksum() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut a, mut b) = (StreamIo::new(a), StreamIo::new(b));
        let m = Message::new(A_WRTE, 7, 9, b"hello".to_vec());
        a.send(&m).await.unwrap();
        assert_eq!(b.recv(MAX_PAYLOAD).await.unwrap(), m);
        // Below A_VERSION a wrong checksum is an error.
        let mut raw = m.encode();
        raw[16] ^= 1;
        let (x, mut y) = tokio::io::duplex(1 << 16);
        let mut x = StreamIo::new(x);
        y.write_all(&raw).await.unwrap();
        assert!(x.recv(MAX_PAYLOAD).await.is_err());
    }
}
