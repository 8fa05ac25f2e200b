//! fastboot over TCP, the device end (AOSP fastboot/README.md, "TCP
//! Protocol v1"): the host opens with "FB" and a two-digit version, the
//! device answers "FB01", and from then on every packet either way is its
//! length as 8 bytes big-endian followed by the payload.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A command is one packet of at most this many bytes.
pub const MAX_COMMAND: usize = 4096;
/// A response (OKAY, FAIL, INFO, DATA) is at most this many bytes.
pub const MAX_RESPONSE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The host broke the protocol; the connection cannot be trusted after.
    #[error("{0}")]
    Violation(String),
}

/// One host's connection, after the handshake.
pub struct Link {
    stream: TcpStream,
}

/// The first byte of a response packet: what kind of answer it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Okay,
    Fail,
    Info,
    Data,
}

impl Kind {
    fn tag(self) -> &'static [u8; 4] {
        match self {
            Kind::Okay => b"OKAY",
            Kind::Fail => b"FAIL",
            Kind::Info => b"INFO",
            Kind::Data => b"DATA",
        }
    }
}

/// Reads `buf.len()` bytes; `Ok(false)` when the host closed before the
/// first one (it left between packets, which is how a session ends).
fn read_all_or_eof(stream: &mut TcpStream, buf: &mut [u8]) -> Result<bool, LinkError> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(LinkError::Violation(format!(
                    "the host closed the connection {got} bytes into a {}-byte read",
                    buf.len()
                )))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

impl Link {
    /// Answers the handshake. A host that says nothing within `limit` is
    /// dropped: the device serves one host at a time, and a stray
    /// connection must not hold that place for ever. `Ok(None)` when the
    /// host closed without a word (a port probe).
    pub fn accept(mut stream: TcpStream, limit: Duration) -> Result<Option<Link>, LinkError> {
        stream.set_read_timeout(Some(limit))?;
        let mut hs = [0u8; 4];
        match read_all_or_eof(&mut stream, &mut hs) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(LinkError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(LinkError::Violation(format!(
                    "no fastboot handshake within {limit:?}"
                )))
            }
            Err(e) => return Err(e),
        }
        let version = std::str::from_utf8(&hs[2..])
            .ok()
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u32>().ok());
        if &hs[..2] != b"FB" || !matches!(version, Some(v) if v >= 1) {
            return Err(LinkError::Violation(format!(
                "bad handshake {:?}: a fastboot host opens with \"FB\" and a version of 01 or more",
                String::from_utf8_lossy(&hs)
            )));
        }
        // A host of a newer version falls back to ours, the only one there is.
        stream.write_all(b"FB01")?;
        stream.set_read_timeout(None)?;
        stream.set_nodelay(true)?;
        Ok(Some(Link { stream }))
    }

    fn packet_len(&mut self) -> Result<Option<u64>, LinkError> {
        let mut len = [0u8; 8];
        Ok(read_all_or_eof(&mut self.stream, &mut len)?.then(|| u64::from_be_bytes(len)))
    }

    /// The next command; `None` when the host has gone.
    pub fn recv_command(&mut self) -> Result<Option<Vec<u8>>, LinkError> {
        let Some(len) = self.packet_len()? else {
            return Ok(None);
        };
        if len > MAX_COMMAND as u64 {
            // Reading it whole would let the host pick our allocation.
            return Err(LinkError::Violation(format!(
                "a {len}-byte command; commands are at most {MAX_COMMAND} bytes"
            )));
        }
        let mut cmd = vec![0u8; len as usize];
        if !read_all_or_eof(&mut self.stream, &mut cmd)? && len > 0 {
            return Err(LinkError::Violation(
                "the host closed the connection inside a command".into(),
            ));
        }
        Ok(Some(cmd))
    }

    /// The data phase of a download: packets of any size, together exactly
    /// `len` bytes, into `buf` (cleared first).
    pub fn recv_data(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<(), LinkError> {
        buf.clear();
        buf.reserve_exact(len);
        while buf.len() < len {
            let Some(n) = self.packet_len()? else {
                return Err(LinkError::Violation(format!(
                    "the host left {} bytes into a {len}-byte download",
                    buf.len()
                )));
            };
            let room = (len - buf.len()) as u64;
            if n > room {
                return Err(LinkError::Violation(format!(
                    "more data than announced: a {n}-byte packet with {room} of {len} bytes left"
                )));
            }
            let start = buf.len();
            buf.resize(start + n as usize, 0);
            if !read_all_or_eof(&mut self.stream, &mut buf[start..])? && n > 0 {
                return Err(LinkError::Violation(format!(
                    "the host left {start} bytes into a {len}-byte download"
                )));
            }
        }
        Ok(())
    }

    /// Sends a response, its text cut to fit the 256 bytes a host reads:
    /// messages can quote the host's own (longer) command.
    pub fn send(&mut self, kind: Kind, text: &str) -> io::Result<()> {
        let mut end = text.len().min(MAX_RESPONSE - 4);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let payload = [kind.tag().as_slice(), &text.as_bytes()[..end]].concat();
        let mut packet = (payload.len() as u64).to_be_bytes().to_vec();
        packet.extend_from_slice(&payload);
        self.stream.write_all(&packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A link to a host played by the test, after it sent `opening`.
    fn pair(opening: &[u8]) -> (Result<Option<Link>, LinkError>, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut host = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        host.write_all(opening).unwrap();
        let (s, _) = l.accept().unwrap();
        (Link::accept(s, Duration::from_millis(300)), host)
    }

    fn frame(p: &[u8]) -> Vec<u8> {
        [(p.len() as u64).to_be_bytes().as_slice(), p].concat()
    }

    #[test]
    fn handshake_answers_fb01_even_to_a_newer_host() {
        let (link, mut host) = pair(b"FB02");
        assert!(link.unwrap().is_some());
        let mut hs = [0u8; 4];
        host.read_exact(&mut hs).unwrap();
        assert_eq!(&hs, b"FB01");
    }

    #[test]
    fn handshake_refuses_what_is_not_fastboot() {
        for bad in [&b"SSH-"[..], b"FB0x", b"FB00", b"GET "] {
            let (link, _host) = pair(bad);
            let err = link.err().expect("refused");
            assert!(
                matches!(&err, LinkError::Violation(m) if m.contains("bad handshake")),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn a_silent_host_is_dropped_and_a_probe_is_not_a_violation() {
        let (link, _host) = pair(b"");
        let err = link.err().expect("timed out");
        assert!(err.to_string().contains("no fastboot handshake"), "{err}");

        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        drop(TcpStream::connect(l.local_addr().unwrap()).unwrap());
        let (s, _) = l.accept().unwrap();
        assert!(Link::accept(s, Duration::from_secs(5)).unwrap().is_none());
    }

    #[test]
    fn commands_and_data_and_their_limits() {
        let mut opening = b"FB01".to_vec();
        opening.extend(frame(b"getvar:product"));
        opening.extend(frame(b"abc"));
        opening.extend(frame(b""));
        opening.extend(frame(b"defg"));
        opening.extend(frame(&[7u8; 10]));
        let (link, host) = pair(&opening);
        let mut link = link.unwrap().unwrap();
        assert_eq!(link.recv_command().unwrap().unwrap(), b"getvar:product");
        let mut buf = vec![1, 2, 3];
        link.recv_data(&mut buf, 7).unwrap();
        assert_eq!(buf, b"abcdefg");
        // 10 bytes when 4 were left.
        let err = link.recv_data(&mut buf, 4).unwrap_err();
        assert!(
            err.to_string().contains("more data than announced"),
            "{err}"
        );
        drop(host);

        let mut opening = b"FB01".to_vec();
        opening.extend(((MAX_COMMAND + 1) as u64).to_be_bytes());
        let (link, host) = pair(&opening);
        let err = link.unwrap().unwrap().recv_command().unwrap_err();
        assert!(err.to_string().contains("4097-byte command"), "{err}");
        drop(host);

        let (link, mut host) = pair(b"FB01");
        let mut link = link.unwrap().unwrap();
        // Read first: closing on unread data would reset the connection.
        host.read_exact(&mut [0u8; 4]).unwrap();
        drop(host);
        assert!(link.recv_command().unwrap().is_none(), "the host left");
    }

    #[test]
    fn responses_are_cut_to_256_bytes_on_a_character_boundary() {
        let (link, mut host) = pair(b"FB01");
        let mut link = link.unwrap().unwrap();
        link.send(Kind::Fail, &"é".repeat(200)).unwrap();
        link.send(Kind::Okay, "").unwrap();
        let mut hs = [0u8; 4];
        host.read_exact(&mut hs).unwrap();
        let mut len = [0u8; 8];
        host.read_exact(&mut len).unwrap();
        let len = u64::from_be_bytes(len) as usize;
        assert_eq!(len, 4 + 252);
        let mut p = vec![0u8; len];
        host.read_exact(&mut p).unwrap();
        assert!(p.starts_with(b"FAIL"));
        assert_eq!(std::str::from_utf8(&p[4..]).unwrap(), "é".repeat(126));
        let mut okay = [0u8; 12];
        host.read_exact(&mut okay).unwrap();
        assert_eq!(&okay, b"\0\0\0\0\0\0\0\x04OKAY");
    }
}
