//! The shell v2 protocol (AOSP shell_protocol.h): inside a `shell,v2`
//! stream, every piece of stdin, stdout or stderr, and the exit status, is a
//! packet of an id byte, a little-endian u32 length and the payload.

use std::io;

/// Packet ids.
pub mod id {
    pub const STDIN: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    pub const EXIT: u8 = 3;
    pub const CLOSE_STDIN: u8 = 4;
    pub const WINDOW_SIZE_CHANGE: u8 = 5;
}

pub fn packet(id: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + data.len());
    v.push(id);
    v.extend((data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// Longest packet accepted: adb's own payload limit, which every real peer's
/// packets stay within. A longer length field is a broken peer, and waiting
/// for its payload would buffer up to 4 GiB.
pub const MAX_PACKET: usize = 1 << 20;

/// Splits a byte stream into packets as they complete.
#[derive(Default)]
pub struct Depacketizer {
    buf: Vec<u8>,
}

impl Depacketizer {
    /// The packets `data` completes. An error means the stream is broken
    /// (a packet over [`MAX_PACKET`]) and nothing more should be pushed.
    pub fn push(&mut self, data: &[u8]) -> io::Result<Vec<(u8, Vec<u8>)>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(head) = self.buf.get(at..at + 5) {
            let len = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes")) as usize;
            if len > MAX_PACKET {
                self.buf.clear();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("shell packet of {len} bytes, more than {MAX_PACKET}"),
                ));
            }
            let Some(payload) = self.buf.get(at + 5..at + 5 + len) else {
                break;
            };
            out.push((head[0], payload.to_vec()));
            at += 5 + len;
        }
        // One move per push, not one per packet: many small packets in one
        // read would otherwise cost quadratic time.
        self.buf.drain(..at);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_split_across_reads_come_out_whole() {
        let mut bytes = packet(id::STDIN, b"hello");
        bytes.extend(packet(id::CLOSE_STDIN, b""));
        let mut d = Depacketizer::default();
        let mut got = Vec::new();
        for b in bytes.chunks(3) {
            got.extend(d.push(b).unwrap());
        }
        assert_eq!(
            got,
            vec![(id::STDIN, b"hello".to_vec()), (id::CLOSE_STDIN, vec![])]
        );
    }

    /// Issue 20: a length field of 4 GiB made the depacketizer keep every
    /// byte that followed, waiting for a payload that never ends.
    #[test]
    fn a_packet_over_the_limit_is_an_error_not_a_buffer() {
        let mut d = Depacketizer::default();
        let mut head = vec![id::STDOUT];
        head.extend(u32::MAX.to_le_bytes());
        assert!(d.push(&head).is_err());
        assert!(d.buf.is_empty(), "{} bytes kept", d.buf.len());
        let mut d = Depacketizer::default();
        let at_limit = packet(id::STDOUT, &vec![7; MAX_PACKET]);
        assert_eq!(
            d.push(&at_limit).unwrap(),
            vec![(id::STDOUT, vec![7; MAX_PACKET])]
        );
    }
}
