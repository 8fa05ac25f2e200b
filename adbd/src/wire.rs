//! The adb wire protocol between a host and adbd (AOSP adb's protocol.txt):
//! 24-byte little-endian message headers, then the payload. Both sides of
//! hilt speak it: the host's transports (over TCP or USB) and [`crate::device`].

use std::io;

pub const A_SYNC: u32 = 0x434e_5953;
pub const A_CNXN: u32 = 0x4e58_4e43;
pub const A_OPEN: u32 = 0x4e45_504f;
pub const A_OKAY: u32 = 0x5941_4b4f;
pub const A_CLSE: u32 = 0x4553_4c43;
pub const A_WRTE: u32 = 0x4554_5257;
pub const A_AUTH: u32 = 0x4854_5541;
pub const A_STLS: u32 = 0x534c_5453;

/// The version that stopped requiring payload checksums; what current
/// adb and adbd speak.
pub const A_VERSION: u32 = 0x0100_0001;
pub const A_VERSION_MIN: u32 = 0x0100_0000;
/// What we accept in one message: adb's MAX_PAYLOAD since A_VERSION.
pub const MAX_PAYLOAD: u32 = 1024 * 1024;
/// What a peer gets before the CNXN says otherwise (protocol.txt: 4096).
pub const MAX_PAYLOAD_V1: u32 = 4 * 1024;

pub const AUTH_TOKEN: u32 = 1;
pub const AUTH_SIGNATURE: u32 = 2;
pub const AUTH_RSAPUBLICKEY: u32 = 3;

pub const HEADER_LEN: usize = 24;

#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub command: u32,
    pub arg0: u32,
    pub arg1: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let data = if self.data.len() > 64 {
            format!(
                "{:?}... ({} bytes)",
                String::from_utf8_lossy(&self.data[..64]),
                self.data.len()
            )
        } else {
            format!("{:?}", String::from_utf8_lossy(&self.data))
        };
        write!(
            f,
            "{}({:#x}, {:#x}, {data})",
            command_name(self.command),
            self.arg0,
            self.arg1
        )
    }
}

pub fn command_name(c: u32) -> String {
    let b = c.to_le_bytes();
    if b.iter().all(u8::is_ascii_uppercase) {
        String::from_utf8_lossy(&b).into_owned()
    } else {
        format!("{c:#010x}")
    }
}

/// The payload "checksum" of protocol.txt: a plain sum of the bytes, not a
/// CRC. Peers at A_VERSION ignore it; older adbd checks it.
pub fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |s, &b| s.wrapping_add(b.into()))
}

/// A decoded header: what comes before the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command: u32,
    pub arg0: u32,
    pub arg1: u32,
    pub data_length: u32,
    pub data_check: u32,
}

impl Message {
    pub fn new(command: u32, arg0: u32, arg1: u32, data: impl Into<Vec<u8>>) -> Self {
        Self {
            command,
            arg0,
            arg1,
            data: data.into(),
        }
    }

    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let fields = [
            self.command,
            self.arg0,
            self.arg1,
            self.data.len() as u32,
            checksum(&self.data),
            self.command ^ 0xffff_ffff,
        ];
        for (i, v) in fields.iter().enumerate() {
            h[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        h
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.header().to_vec();
        v.extend_from_slice(&self.data);
        v
    }
}

impl Header {
    /// Checks the magic and the length against what we accept.
    pub fn decode(h: &[u8; HEADER_LEN], max_payload: u32) -> io::Result<Self> {
        let w = |i: usize| u32::from_le_bytes(h[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        let header = Header {
            command: w(0),
            arg0: w(1),
            arg1: w(2),
            data_length: w(3),
            data_check: w(4),
        };
        if w(5) != header.command ^ 0xffff_ffff {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "adb message with a bad magic ({:#x} for {}): not an adb peer, or out of sync",
                    w(5),
                    command_name(w(0))
                ),
            ));
        }
        if header.data_length > max_payload {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "adb message of {} bytes, more than the {max_payload} agreed",
                    header.data_length
                ),
            ));
        }
        Ok(header)
    }

    /// The checksum only binds peers below A_VERSION, and a zero means
    /// "not computed".
    pub fn check(&self, data: &[u8], version: u32) -> io::Result<()> {
        if version < A_VERSION && self.data_check != 0 && self.data_check != checksum(data) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "adb {} payload checksum mismatch",
                    command_name(self.command)
                ),
            ));
        }
        Ok(())
    }
}

/// Reads one whole message from a byte stream (adbd's TCP port).
pub fn read_message(r: &mut impl io::Read, max_payload: u32, version: u32) -> io::Result<Message> {
    let mut h = [0u8; HEADER_LEN];
    r.read_exact(&mut h)?;
    let header = Header::decode(&h, max_payload)?;
    let mut data = vec![0u8; header.data_length as usize];
    r.read_exact(&mut data)?;
    header.check(&data, version)?;
    Ok(Message::new(header.command, header.arg0, header.arg1, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_protocol_txt() {
        let m = Message::new(A_CNXN, A_VERSION, MAX_PAYLOAD, &b"host::\0"[..]);
        let h = m.header();
        assert_eq!(&h[0..4], b"CNXN");
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 0x0100_0001);
        assert_eq!(u32::from_le_bytes(h[8..12].try_into().unwrap()), 1 << 20);
        assert_eq!(u32::from_le_bytes(h[12..16].try_into().unwrap()), 7);
        let sum: u32 = b"host::\0".iter().map(|&b| b as u32).sum();
        assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), sum);
        assert_eq!(
            u32::from_le_bytes(h[20..24].try_into().unwrap()),
            A_CNXN ^ 0xffff_ffff
        );
        for (c, name) in [
            (A_SYNC, "SYNC"),
            (A_OPEN, "OPEN"),
            (A_OKAY, "OKAY"),
            (A_CLSE, "CLSE"),
            (A_WRTE, "WRTE"),
            (A_AUTH, "AUTH"),
            (A_STLS, "STLS"),
        ] {
            assert_eq!(&c.to_le_bytes(), name.as_bytes());
        }
    }

    #[test]
    fn decode_rejects_bad_magic_and_oversize() {
        let mut h = Message::new(A_OKAY, 1, 2, Vec::new()).header();
        assert_eq!(Header::decode(&h, 16).unwrap().arg1, 2);
        h[20] ^= 1;
        assert!(Header::decode(&h, 16)
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let h = Message::new(A_WRTE, 1, 2, vec![0; 17]).header();
        assert!(Header::decode(&h, 16).is_err());
    }

    #[test]
    fn read_message_round_trip_and_checksum() {
        let m = Message::new(A_WRTE, 7, 9, b"hello".to_vec());
        let raw = m.encode();
        assert_eq!(
            read_message(&mut &raw[..], MAX_PAYLOAD, A_VERSION).unwrap(),
            m
        );
        // Below A_VERSION a wrong checksum is an error.
        let mut bad = raw.clone();
        bad[16] ^= 1;
        assert!(read_message(&mut &bad[..], MAX_PAYLOAD, A_VERSION_MIN).is_err());
        assert!(read_message(&mut &bad[..], MAX_PAYLOAD, A_VERSION).is_ok());
    }
}
