//! One read transfer, from its own port (the server's transfer ID):
//! options answered, then DATA and ACK in lock step.

use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::packet::{self, ErrorCode, Reply};
use crate::root::Root;

/// RFC 1350's block size, and RFC 2348's bounds on the `blksize` option.
const DEFAULT_BLKSIZE: usize = 512;
const MIN_BLKSIZE: usize = 8;
const MAX_BLKSIZE: usize = 65464;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Sends of one packet before the transfer is given up.
const TRIES: u32 = 6;

struct Negotiated {
    blksize: usize,
    timeout: Duration,
    /// The options acknowledged in an OACK; empty, no OACK is sent.
    answer: Vec<(String, String)>,
}

/// Reads the client's options: unknown ones and bad values are left out of
/// the answer (RFC 2347: the client then goes on without them).
fn negotiate(options: &[(String, String)], size: u64) -> Negotiated {
    let mut n = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        timeout: DEFAULT_TIMEOUT,
        answer: Vec::new(),
    };
    for (name, value) in options {
        match name.as_str() {
            "blksize" => {
                if let Ok(v) = value.parse::<usize>() {
                    if v >= MIN_BLKSIZE {
                        // A server may answer with a smaller size (RFC 2348).
                        n.blksize = v.min(MAX_BLKSIZE);
                        n.answer.push((name.clone(), n.blksize.to_string()));
                    }
                }
            }
            "tsize" => n.answer.push((name.clone(), size.to_string())),
            "timeout" => {
                if let Ok(v) = value.parse::<u64>() {
                    if (1..=255).contains(&v) {
                        n.timeout = Duration::from_secs(v);
                        n.answer.push((name.clone(), v.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    n
}

pub fn send(
    bind: SocketAddr,
    peer: SocketAddr,
    root: &Root,
    file: &str,
    mode: &str,
    options: &[(String, String)],
    stop: &AtomicBool,
) -> Result<u64, String> {
    let socket = UdpSocket::bind(bind).map_err(|e| format!("binding a transfer port: {e}"))?;
    let fail = |code: ErrorCode, why: String| -> Result<u64, String> {
        let _ = socket.send_to(&packet::error(code, &why), peer);
        Err(why)
    };
    if mode != "octet" {
        // netascii would rewrite line ends on the way, and nothing a board
        // boots is text; mail mode is obsolete (RFC 1350).
        return fail(
            ErrorCode::IllegalOperation,
            format!("mode {mode:?} is not served: use octet (binary)"),
        );
    }
    let (f, size) = match root.open(file) {
        Ok(f) => f,
        Err(r) => return fail(r.0, r.1),
    };
    let n = negotiate(options, size);
    let mut link = Link {
        socket: &socket,
        peer,
        timeout: n.timeout,
        stop,
    };
    if !n.answer.is_empty() {
        link.exchange(&packet::oack(&n.answer), 0)?;
    }
    let mut reader = io::BufReader::with_capacity(n.blksize.max(64 * 1024), f);
    let mut chunk = vec![0u8; n.blksize];
    let mut block: u16 = 0;
    let mut sent: u64 = 0;
    loop {
        let len = fill(&mut reader, &mut chunk).map_err(|e| {
            let why = format!("reading {file}: {e}");
            let _ = socket.send_to(&packet::error(ErrorCode::NotDefined, &why), peer);
            why
        })?;
        // Past 65535 the number starts again at 0: what clients expect
        // for files over 32 MiB at 512-byte blocks.
        block = block.wrapping_add(1);
        link.exchange(&packet::data(block, &chunk[..len]), block)?;
        sent += len as u64;
        // A short block, possibly empty, ends the transfer.
        if len < n.blksize {
            return Ok(sent);
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(k) => at += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

struct Link<'a> {
    socket: &'a UdpSocket,
    peer: SocketAddr,
    timeout: Duration,
    stop: &'a AtomicBool,
}

impl Link<'_> {
    /// Sends `packet` until the client acknowledges `block`, resending on
    /// silence only: answering a duplicate ACK with a resend would double
    /// every packet from there on (the Sorcerer's Apprentice bug, RFC 1123).
    fn exchange(&mut self, packet: &[u8], block: u16) -> Result<(), String> {
        let mut buf = [0u8; 1024];
        for _ in 0..TRIES {
            self.socket
                .send_to(packet, self.peer)
                .map_err(|e| format!("sending to {}: {e}", self.peer))?;
            let deadline = Instant::now() + self.timeout;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if self.stop.load(Ordering::Relaxed) {
                    return Err("the server was stopped".into());
                }
                let wait = left.min(crate::POLL).max(Duration::from_millis(1));
                self.socket
                    .set_read_timeout(Some(wait))
                    .map_err(|e| e.to_string())?;
                let (n, from) = match self.socket.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(format!("receiving from {}: {e}", self.peer)),
                };
                if from != self.peer {
                    let _ = self.socket.send_to(
                        &packet::error(ErrorCode::UnknownTid, "unknown transfer ID"),
                        from,
                    );
                    continue;
                }
                match packet::parse_reply(&buf[..n]) {
                    Reply::Ack(b) if b == block => return Ok(()),
                    Reply::Ack(_) | Reply::Other => {}
                    Reply::Error(code, msg) => {
                        return Err(format!(
                            "the client ended the transfer: error {code}: {msg}"
                        ))
                    }
                }
            }
        }
        Err(format!(
            "no acknowledgement of block {block} from {} after {TRIES} sends",
            self.peer
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_bounded_and_unknown_ones_left_out() {
        let o = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let n = negotiate(
            &o(&[
                ("blksize", "100000"),
                ("tsize", "0"),
                ("windowsize", "8"),
                ("timeout", "3"),
            ]),
            1234,
        );
        assert_eq!(n.blksize, MAX_BLKSIZE);
        assert_eq!(n.timeout, Duration::from_secs(3));
        assert_eq!(
            n.answer,
            o(&[("blksize", "65464"), ("tsize", "1234"), ("timeout", "3")])
        );
        let n = negotiate(
            &o(&[("blksize", "7"), ("timeout", "0"), ("blksize", "x")]),
            1,
        );
        assert_eq!((n.blksize, n.answer.len()), (DEFAULT_BLKSIZE, 0));
        assert_eq!(n.timeout, DEFAULT_TIMEOUT);
    }
}
