//! What runs inside an adb stream once a service is open, the same whether
//! the stream goes through the adb server or straight to adbd: the sync
//! protocol (SYNC.TXT: SEND/DATA/DONE, RECV, STAT, QUIT) and shell output
//! (plain `shell:` and the `shell,v2` packet protocol that carries stderr
//! and the exit status).

use std::io;

use tokio::sync::mpsc;

use crate::ssh::ExecChunk;

/// A byte stream to one adb service.
#[async_trait::async_trait]
pub trait Channel: Send {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// The next bytes; `None` once the other side closed the stream.
    async fn read_some(&mut self) -> io::Result<Option<Vec<u8>>>;
}

/// Exact reads over a [`Channel`].
pub struct Reader<'a, C: ?Sized> {
    ch: &'a mut C,
    buf: Vec<u8>,
}

impl<'a, C: Channel + ?Sized> Reader<'a, C> {
    pub fn new(ch: &'a mut C) -> Self {
        Self {
            ch,
            buf: Vec::new(),
        }
    }

    pub async fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            match self.ch.read_some().await? {
                Some(b) => self.buf.extend(b),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("adb stream closed after {} of {n} bytes", self.buf.len()),
                    ))
                }
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    pub async fn read_u32(&mut self) -> io::Result<u32> {
        let b = self.read_exact(4).await?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// Everything until the stream closes.
    pub async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut out = std::mem::take(&mut self.buf);
        while let Some(b) = self.ch.read_some().await? {
            out.extend(b);
        }
        Ok(out)
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.ch.write_all(data).await
    }
}

/// SYNC.TXT: data is sent in DATA chunks of at most 64 KiB.
pub const SYNC_DATA_MAX: usize = 64 * 1024;

fn request(id: &[u8; 4], arg: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend((arg.len() as u32).to_le_bytes());
    v.extend_from_slice(arg);
    v
}

async fn fail_message<C: Channel + ?Sized>(r: &mut Reader<'_, C>) -> io::Error {
    let msg = match r.read_u32().await {
        Ok(len) if len <= 64 * 1024 => r
            .read_exact(len as usize)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        Ok(len) => Ok(format!("(FAIL message of {len} bytes)")),
        Err(e) => Err(e),
    };
    io::Error::other(msg.unwrap_or_else(|e| format!("(unreadable FAIL message: {e})")))
}

/// What STAT says about a path; mode 0 means it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub size: u32,
    pub mtime: u32,
}

pub async fn stat<C: Channel + ?Sized>(ch: &mut C, path: &str) -> io::Result<Stat> {
    let mut r = Reader::new(ch);
    r.write_all(&request(b"STAT", path.as_bytes())).await?;
    let id = r.read_exact(4).await?;
    if id != b"STAT" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sync STAT answered with {:?}", String::from_utf8_lossy(&id)),
        ));
    }
    Ok(Stat {
        mode: r.read_u32().await?,
        size: r.read_u32().await?,
        mtime: r.read_u32().await?,
    })
}

/// SEND `data` as `path` with permission bits `mode` (regular file bits
/// are added, as adb does).
pub async fn send<C: Channel + ?Sized>(
    ch: &mut C,
    path: &str,
    mode: u32,
    mtime: u32,
    data: &[u8],
) -> io::Result<()> {
    if path.contains(',') {
        // SEND's argument is "path,mode": adbd splits at the last comma, so
        // a comma would silently change the path on some versions.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("adb push target {path:?} contains a comma"),
        ));
    }
    let mut r = Reader::new(ch);
    let mut out = request(
        b"SEND",
        format!("{path},{}", 0o100000 | (mode & 0o7777)).as_bytes(),
    );
    for chunk in data.chunks(SYNC_DATA_MAX) {
        out.extend(request(b"DATA", chunk));
        // Sent in batches: one adb message per DATA chunk would halve the
        // throughput for nothing.
        if out.len() >= SYNC_DATA_MAX {
            r.write_all(&out).await?;
            out.clear();
        }
    }
    out.extend(b"DONE");
    out.extend(mtime.to_le_bytes());
    r.write_all(&out).await?;
    let id = r.read_exact(4).await?;
    match &id[..] {
        b"OKAY" => {
            r.read_u32().await?;
            Ok(())
        }
        b"FAIL" => {
            let e = fail_message(&mut r).await;
            Err(io::Error::other(format!("adb push to {path} failed: {e}")))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sync SEND answered with {:?}", String::from_utf8_lossy(&id)),
        )),
    }
}

/// RECV: the whole file.
pub async fn recv<C: Channel + ?Sized>(
    ch: &mut C,
    path: &str,
    limit: usize,
) -> io::Result<Vec<u8>> {
    let mut r = Reader::new(ch);
    r.write_all(&request(b"RECV", path.as_bytes())).await?;
    let mut out = Vec::new();
    loop {
        let id = r.read_exact(4).await?;
        match &id[..] {
            b"DATA" => {
                let len = r.read_u32().await? as usize;
                if len > SYNC_DATA_MAX || out.len() + len > limit {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("adb pull of {path}: more than {limit} bytes"),
                    ));
                }
                out.extend(r.read_exact(len).await?);
            }
            b"DONE" => {
                r.read_u32().await?;
                return Ok(out);
            }
            b"FAIL" => {
                let e = fail_message(&mut r).await;
                return Err(io::Error::other(format!("adb pull of {path} failed: {e}")));
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("sync RECV answered with {:?}", String::from_utf8_lossy(&id)),
                ))
            }
        }
    }
}

pub async fn quit<C: Channel + ?Sized>(ch: &mut C) -> io::Result<()> {
    ch.write_all(&request(b"QUIT", b"")).await
}

/// Push with a check: STAT gives the size and mode, RECV gives the bytes,
/// whose sha256 must be that of `data`. Returns the sha256 (hex).
pub async fn push_checked<C: Channel + ?Sized>(
    ch: &mut C,
    path: &str,
    mode: u32,
    data: &[u8],
) -> io::Result<String> {
    use sha2::Digest;
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    send(ch, path, mode, mtime, data).await?;
    let st = stat(ch, path).await?;
    if st.mode == 0 || st.size as usize != data.len() & 0xffff_ffff {
        return Err(io::Error::other(format!(
            "after adb push, {path} has mode {:o} and {} bytes, not {}",
            st.mode,
            st.size,
            data.len()
        )));
    }
    let back = recv(ch, path, data.len()).await?;
    let (want, got) = (
        hex::encode(sha2::Sha256::digest(data)),
        hex::encode(sha2::Sha256::digest(&back)),
    );
    if want != got {
        return Err(io::Error::other(format!(
            "{path} reads back with sha256 {got}, not the pushed {want}"
        )));
    }
    Ok(got)
}

/// shell v2 packet ids and framing, shared with the device end.
pub use hilt_adbd::shell::{id as shell_id, packet as shell_packet};

/// Reads a `shell,v2` stream: output as it comes, then the exit status.
pub async fn shell_v2_output<C: Channel + ?Sized>(
    ch: &mut C,
    out: &mpsc::Sender<ExecChunk>,
) -> io::Result<i32> {
    let mut r = Reader::new(ch);
    loop {
        let head = match r.read_exact(5).await {
            Ok(h) => h,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "adb shell ended without an exit status",
                ))
            }
            Err(e) => return Err(e),
        };
        let len = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes")) as usize;
        if len > 1 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("adb shell packet of {len} bytes"),
            ));
        }
        let data = r.read_exact(len).await?;
        match head[0] {
            shell_id::STDOUT => {
                let _ = out.send(ExecChunk::Stdout(data)).await;
            }
            shell_id::STDERR => {
                let _ = out.send(ExecChunk::Stderr(data)).await;
            }
            shell_id::EXIT => return Ok(data.first().copied().map(i32::from).unwrap_or(-1)),
            _ => {}
        }
    }
}

/// Reads a v1 `shell:` stream: stdout and stderr mixed, no exit status.
pub async fn shell_v1_output<C: Channel + ?Sized>(
    ch: &mut C,
    out: &mpsc::Sender<ExecChunk>,
) -> io::Result<()> {
    while let Some(b) = ch.read_some().await? {
        let _ = out.send(ExecChunk::Stdout(b)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A channel replaying canned reads and recording writes.
    struct Canned {
        reads: std::collections::VecDeque<Vec<u8>>,
        written: Vec<u8>,
    }

    #[async_trait::async_trait]
    impl Channel for Canned {
        async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
            self.written.extend_from_slice(data);
            Ok(())
        }
        async fn read_some(&mut self) -> io::Result<Option<Vec<u8>>> {
            Ok(self.reads.pop_front())
        }
    }

    #[tokio::test]
    async fn send_frames_as_sync_txt_says() {
        let mut ch = Canned {
            reads: [b"OKAY\0\0\0\0".to_vec()].into(),
            written: Vec::new(),
        };
        let data = vec![7u8; SYNC_DATA_MAX + 1];
        send(&mut ch, "/data/local/tmp/x", 0o644, 99, &data)
            .await
            .unwrap();
        let w = &ch.written;
        let arg = b"/data/local/tmp/x,33188";
        assert_eq!(&w[..4], b"SEND");
        assert_eq!(
            u32::from_le_bytes(w[4..8].try_into().unwrap()) as usize,
            arg.len()
        );
        assert_eq!(&w[8..8 + arg.len()], arg);
        let rest = &w[8 + arg.len()..];
        assert_eq!(&rest[..4], b"DATA");
        assert_eq!(
            u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize,
            SYNC_DATA_MAX
        );
        let rest = &rest[8 + SYNC_DATA_MAX..];
        assert_eq!(&rest[..8], b"DATA\x01\0\0\0");
        assert_eq!(&rest[9..], b"DONE\x63\0\0\0");
    }

    #[tokio::test]
    async fn fail_carries_the_message() {
        let mut ch = Canned {
            reads: [b"FAIL\x11\0\0\0".to_vec(), b"Permission denied".to_vec()].into(),
            written: Vec::new(),
        };
        let err = send(&mut ch, "/system/x", 0o644, 0, b"x")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Permission denied"), "{err}");
        assert!(send(&mut ch, "/a,b", 0o644, 0, b"x").await.is_err());
    }

    #[tokio::test]
    async fn shell_v2_splits_streams_in_any_chunking() {
        let stream = [
            shell_packet(1, b"out"),
            shell_packet(2, b"err"),
            shell_packet(1, b"!"),
            shell_packet(3, &[42]),
        ]
        .concat();
        for size in [1, 2, 5, 100] {
            let mut ch = Canned {
                reads: stream.chunks(size).map(<[u8]>::to_vec).collect(),
                written: Vec::new(),
            };
            let (tx, mut rx) = mpsc::channel(16);
            assert_eq!(shell_v2_output(&mut ch, &tx).await.unwrap(), 42);
            drop(tx);
            let mut got = Vec::new();
            while let Some(c) = rx.recv().await {
                got.push(c);
            }
            assert_eq!(
                got,
                vec![
                    ExecChunk::Stdout(b"out".to_vec()),
                    ExecChunk::Stderr(b"err".to_vec()),
                    ExecChunk::Stdout(b"!".to_vec())
                ]
            );
        }
    }
}
