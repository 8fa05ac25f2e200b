//! The shell v2 protocol (AOSP shell_protocol.h): inside a `shell,v2`
//! stream, every piece of stdin, stdout or stderr, and the exit status, is a
//! packet of an id byte, a little-endian u32 length and the payload.

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

/// Splits a byte stream into packets as they complete.
#[derive(Default)]
pub struct Depacketizer {
    buf: Vec<u8>,
}

impl Depacketizer {
    pub fn push(&mut self, data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 5 {
                return out;
            }
            let len = u32::from_le_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize;
            if self.buf.len() < 5 + len {
                return out;
            }
            let id = self.buf[0];
            let payload = self.buf[5..5 + len].to_vec();
            self.buf.drain(..5 + len);
            out.push((id, payload));
        }
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
            got.extend(d.push(b));
        }
        assert_eq!(
            got,
            vec![(id::STDIN, b"hello".to_vec()), (id::CLOSE_STDIN, vec![])]
        );
    }
}
