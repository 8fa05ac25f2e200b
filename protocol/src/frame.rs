//! Line framing: `@H2 <seq> <crc32> <json>\n`, the CRC over `<seq> <json>`.
//!
//! A frame is one text line so that it can share a UART with printk: a
//! reader skips anything that is not a frame, checks the CRC of what is, and
//! notices lost frames from the sequence number. JSON never contains a raw
//! newline, so the newline is an unambiguous terminator.

use serde::{de::DeserializeOwned, Serialize};

/// Version 2: the checksum also covers the sequence number.
pub const MAGIC: &[u8] = b"@H2 ";

/// What every version's magic starts with: `@H<version> `.
const MAGIC_STEM: &[u8] = b"@H";

/// Lines longer than this are noise (a flood, or a lost newline); they are
/// dropped instead of growing the buffer without bound.
pub const MAX_LINE: usize = 1 << 20;

/// How many occurrences of the magic on one line are tried as a frame start.
const MAX_TRIES: usize = 8;

/// CRC-32 (IEEE), table-driven. Hand-written because it is twenty lines and
/// the agent is a static binary that should carry as little as possible.
pub fn crc32(data: &[u8]) -> u32 {
    !crc32_update(!0, data)
}

/// The checksum of a frame: its sequence number, as written, and its JSON.
/// Covering the number means a damaged digit cannot renumber a record.
fn frame_crc(seq: &[u8], json: &[u8]) -> u32 {
    !crc32_update(crc32_update(crc32_update(!0, seq), b" "), json)
}

fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    data.iter().fold(crc, |crc, &b| {
        TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// Appends one frame for `msg` to `out`. Reusing `out` lets a caller avoid an
/// allocation per record.
pub fn encode_frame<T: Serialize>(seq: u64, msg: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    // Reserve room for "<seq> <crc> " after the JSON is known; write JSON to
    // the tail first, then splice the header in front of it.
    let json_start = out.len();
    serde_json::to_writer(&mut *out, msg).expect("serialising to a Vec cannot fail");
    let seq_text = seq.to_string();
    let crc = frame_crc(seq_text.as_bytes(), &out[json_start..]);
    let header = format!("{seq_text} {crc:08x} ");
    out.splice(json_start..json_start, header.bytes());
    out.push(b'\n');
    debug_assert!(out[start..].ends_with(b"\n"));
}

/// What the decoder found in the byte stream.
#[derive(Debug, PartialEq)]
pub enum Decoded<T> {
    /// A valid frame.
    Record { seq: u64, msg: T },
    /// Frames were lost between the previous good frame and this one.
    Gap { expected: u64, got: u64 },
    /// A line that looked like a frame but failed its checksum or did not
    /// parse: reported, never trusted.
    Corrupt { reason: String, line: Vec<u8> },
    /// A line framed by another version of this protocol (`@H1 ...` where `@H2 ...`
    /// is expected): the peer was built from other sources, typically a stale agent
    /// binary. Its records cannot be read, and waiting for readable ones is futile.
    ForeignVersion { magic: String, line: Vec<u8> },
    /// A line that is not a frame (printk on a shared console, boot noise).
    Noise(Vec<u8>),
}

/// Incremental decoder: feed it whatever the transport delivered, in any
/// chunking, and it yields what it can.
pub struct FrameDecoder {
    buf: Vec<u8>,
    next_seq: Option<u64>,
    overflowed: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(4096),
            next_seq: None,
            overflowed: false,
        }
    }

    pub fn feed<T: DeserializeOwned>(&mut self, bytes: &[u8], out: &mut Vec<Decoded<T>>) {
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            let complete = chunk.last() == Some(&b'\n');
            if self.overflowed {
                // Skip the rest of an oversized line up to its newline.
                if complete {
                    self.overflowed = false;
                }
                continue;
            }
            self.buf.extend_from_slice(chunk);
            if self.buf.len() > MAX_LINE {
                out.push(Decoded::Corrupt {
                    reason: format!("line longer than {MAX_LINE} bytes dropped"),
                    line: self.buf[..64].to_vec(),
                });
                self.buf.clear();
                self.overflowed = !complete;
                continue;
            }
            if complete {
                let line = std::mem::take(&mut self.buf);
                self.decode_line(line, out);
            }
        }
    }

    /// Decodes what is left without a trailing newline (end of stream).
    pub fn finish<T: DeserializeOwned>(&mut self, out: &mut Vec<Decoded<T>>) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.decode_line(line, out);
        }
    }

    fn decode_line<T: DeserializeOwned>(&mut self, mut line: Vec<u8>, out: &mut Vec<Decoded<T>>) {
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        // A frame may follow garbage on the same line when a newline was
        // dropped or printk interleaved mid-line; look for the magic anywhere.
        let Some(first) = find(&line, MAGIC) else {
            if let Some(magic) = foreign_magic(&line) {
                out.push(Decoded::ForeignVersion { magic, line });
            } else if !line.is_empty() {
                out.push(Decoded::Noise(line));
            }
            return;
        };
        if first > 0 {
            out.push(Decoded::Noise(line[..first].to_vec()));
        }
        // The garbage may itself hold the magic (a frame that lost its
        // newline, or quoted "@H2 " in its payload): try each occurrence, a
        // bounded number of times so that a hostile line stays linear.
        let mut pos = first;
        let mut first_error = None;
        for _ in 0..MAX_TRIES {
            match parse_body::<T>(&line[pos + MAGIC.len()..]) {
                Ok((seq, msg)) => {
                    if let Some(reason) = first_error {
                        out.push(Decoded::Corrupt {
                            reason,
                            line: line[first..pos].to_vec(),
                        });
                    }
                    if let Some(expected) = self.next_seq {
                        if seq != expected {
                            out.push(Decoded::Gap { expected, got: seq });
                        }
                    }
                    // No expectation after the last number rather than an overflow.
                    self.next_seq = seq.checked_add(1);
                    out.push(Decoded::Record { seq, msg });
                    return;
                }
                Err(reason) => {
                    first_error.get_or_insert(reason);
                    match find(&line[pos + 1..], MAGIC) {
                        Some(n) => pos += 1 + n,
                        None => break,
                    }
                }
            }
        }
        let reason = first_error.unwrap_or_default();
        out.push(Decoded::Corrupt {
            reason,
            line: line[first..].to_vec(),
        });
    }
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<(u64, T), String> {
    let mut parts = body.splitn(3, |&b| b == b' ');
    let seq = parts.next().ok_or("missing sequence number")?;
    let crc = parts.next().ok_or("missing checksum")?;
    let json = parts.next().ok_or("missing payload")?;
    let seq_text = seq;
    let seq: u64 = std::str::from_utf8(seq)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("bad sequence number")?;
    let crc = std::str::from_utf8(crc)
        .ok()
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or("bad checksum field")?;
    let actual = frame_crc(seq_text, json);
    if actual != crc {
        return Err(format!(
            "checksum mismatch: frame says {crc:08x}, payload has {actual:08x}"
        ));
    }
    let msg = serde_json::from_slice(json).map_err(|e| format!("undecodable payload: {e}"))?;
    Ok((seq, msg))
}

/// The magic of a frame of another protocol version on `line`, if there is one:
/// `@H<version> <seq> <crc> <json>` with a version other than ours and a checksum
/// that holds, over the JSON alone (version 1) or over `<seq> <json>` (version 2 on).
/// Requiring the checksum keeps text that merely looks like an old frame noise.
fn foreign_magic(line: &[u8]) -> Option<String> {
    let mut from = 0;
    while let Some(n) = find(&line[from..], MAGIC_STEM) {
        let at = from + n;
        from = at + MAGIC_STEM.len();
        let version = digits(&line[from..]);
        let magic_end = from + version;
        if !(1..=4).contains(&version)
            || line.get(magic_end) != Some(&b' ')
            || line[at..].starts_with(MAGIC)
        {
            continue;
        }
        let mut parts = line[magic_end + 1..].splitn(3, |&b| b == b' ');
        let (Some(seq), Some(crc), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let crc = std::str::from_utf8(crc)
            .ok()
            .filter(|c| c.len() == 8)
            .and_then(|c| u32::from_str_radix(c, 16).ok());
        if seq.is_empty() || digits(seq) != seq.len() || json.first() != Some(&b'{') {
            continue;
        }
        if crc.is_some_and(|crc| crc == crc32(json) || crc == frame_crc(seq, json)) {
            return Some(String::from_utf8_lossy(&line[at..magic_end]).into_owned());
        }
    }
    None
}

fn digits(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_digit()).count()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct M {
        n: u32,
        s: String,
    }

    fn frames(msgs: &[(u64, M)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (seq, m) in msgs {
            encode_frame(*seq, m, &mut out);
        }
        out
    }

    fn decode_all(bytes: &[u8], chunk: usize) -> Vec<Decoded<M>> {
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        for c in bytes.chunks(chunk) {
            d.feed(c, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn roundtrip_in_any_chunking() {
        let bytes = frames(&[
            (
                0,
                M {
                    n: 1,
                    s: "a\nb".into(),
                },
            ),
            (
                1,
                M {
                    n: 2,
                    s: "é".into(),
                },
            ),
        ]);
        for chunk in [1, 3, 7, 1000] {
            let out = decode_all(&bytes, chunk);
            assert_eq!(
                out,
                vec![
                    Decoded::Record {
                        seq: 0,
                        msg: M {
                            n: 1,
                            s: "a\nb".into()
                        }
                    },
                    Decoded::Record {
                        seq: 1,
                        msg: M {
                            n: 2,
                            s: "é".into()
                        }
                    },
                ]
            );
        }
    }

    #[test]
    fn printk_interleaving_and_gaps_are_reported() {
        let mut bytes = b"[   1.0] random printk line\r\n".to_vec();
        bytes.extend(frames(&[(
            5,
            M {
                n: 5,
                s: String::new(),
            },
        )]));
        bytes.extend_from_slice(b"garbage before ");
        bytes.extend(frames(&[(
            8,
            M {
                n: 8,
                s: String::new(),
            },
        )]));
        let out = decode_all(&bytes, 5);
        assert_eq!(
            out[0],
            Decoded::Noise(b"[   1.0] random printk line".to_vec())
        );
        assert!(matches!(out[1], Decoded::Record { seq: 5, .. }));
        assert_eq!(out[2], Decoded::Noise(b"garbage before ".to_vec()));
        assert_eq!(
            out[3],
            Decoded::Gap {
                expected: 6,
                got: 8
            }
        );
        assert!(matches!(out[4], Decoded::Record { seq: 8, .. }));
    }

    #[test]
    fn flipped_byte_is_corrupt_not_trusted() {
        let mut bytes = frames(&[(
            0,
            M {
                n: 12345,
                s: "x".into(),
            },
        )]);
        let i = bytes.iter().position(|&b| b == b'1').unwrap();
        let last_digit = bytes.len() - 12;
        bytes[last_digit.max(i)] ^= 0x01;
        let out = decode_all(&bytes, 64);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Decoded::Corrupt { .. }), "{out:?}");
    }

    #[test]
    fn oversized_line_is_dropped_and_decoder_recovers() {
        let mut bytes = vec![b'x'; MAX_LINE + 10];
        bytes.push(b'\n');
        bytes.extend(frames(&[(
            0,
            M {
                n: 1,
                s: String::new(),
            },
        )]));
        let out = decode_all(&bytes, 4096);
        assert!(matches!(out[0], Decoded::Corrupt { .. }));
        assert!(matches!(
            out.last().unwrap(),
            Decoded::Record { seq: 0, .. }
        ));
    }

    /// A frame as an agent speaking another version would write it.
    fn foreign_frame(version: &str, seq: u64, json: &str) -> Vec<u8> {
        let crc = crc32(json.as_bytes());
        format!("@H{version} {seq} {crc:08x} {json}\n").into_bytes()
    }

    #[test]
    fn another_versions_frames_are_recognised() {
        let mut bytes = b"[    2.1] booting\n".to_vec();
        bytes.extend(foreign_frame("1", 0, r#"{"type":"hello","protocol":1}"#));
        bytes.extend(b"printk garbage ");
        bytes.extend(foreign_frame("3", 7, r#"{"type":"heartbeat"}"#));
        for chunk in [1, 5, 4096] {
            let out = decode_all(&bytes, chunk);
            assert_eq!(out.len(), 3, "{out:?}");
            assert!(matches!(&out[0], Decoded::Noise(_)));
            match &out[1] {
                Decoded::ForeignVersion { magic, line } => {
                    assert_eq!(magic, "@H1");
                    assert!(line.starts_with(b"@H1 0 "));
                }
                other => panic!("expected a foreign frame, got {other:?}"),
            }
            assert!(
                matches!(&out[2], Decoded::ForeignVersion { magic, .. } if magic == "@H3"),
                "{:?}",
                out[2]
            );
        }
    }

    #[test]
    fn mentions_of_other_magics_stay_noise() {
        for line in [
            &b"the old agent wrote @H1 frames"[..],
            b"@H1 12 deadbeef",
            b"@H1 12 deadbee {}",
            b"@H1 x deadbeef {}",
            b"@H12345 1 deadbeef {}",
            b"@H 1 deadbeef {}",
            b"@H1 1 deadbeef []",
            // The right shape, but a checksum that holds under no version's rule.
            b"@H1 0 00000000 {}",
        ] {
            let mut bytes = line.to_vec();
            bytes.push(b'\n');
            let out = decode_all(&bytes, 64);
            assert_eq!(out, vec![Decoded::Noise(line.to_vec())]);
        }
    }

    #[test]
    fn our_own_frames_are_never_foreign() {
        // A current frame whose payload quotes an old frame is still ours.
        let bytes = frames(&[(
            0,
            M {
                n: 1,
                s: "@H1 5 0000abcd {}".into(),
            },
        )]);
        let out = decode_all(&bytes, 7);
        assert!(
            matches!(out[..], [Decoded::Record { seq: 0, .. }]),
            "{out:?}"
        );
    }
}
