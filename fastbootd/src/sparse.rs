//! Android sparse images (libsparse's format), as a device reads them: a
//! 28-byte header, then chunks of RAW data, FILL patterns, DONT_CARE gaps
//! and CRC32 checks, all little-endian. `fastboot flash` sends a large
//! image as several of them, each covering the whole partition and leaving
//! DONT_CARE what another piece carries.
//!
//! [`parse`] checks a whole image (bounds, sizes, CRC32 chunks) before
//! anything is written, so that a broken image leaves the partition as it
//! was instead of half written.

pub const MAGIC: u32 = 0xed26_ff3a;
const MAJOR: u16 = 1;
const FILE_HEADER_LEN: usize = 28;
const CHUNK_HEADER_LEN: usize = 12;
const CHUNK_RAW: u16 = 0xcac1;
const CHUNK_FILL: u16 = 0xcac2;
const CHUNK_DONT_CARE: u16 = 0xcac3;
const CHUNK_CRC32: u16 = 0xcac4;

/// One write a sparse image asks for, at a byte offset in the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    Write {
        offset: u64,
        data: &'a [u8],
    },
    Fill {
        offset: u64,
        len: u64,
        pattern: [u8; 4],
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad sparse image: {0}")]
pub struct SparseError(String);

fn bad<T>(msg: impl Into<String>) -> Result<T, SparseError> {
    Err(SparseError(msg.into()))
}

pub fn is_sparse(image: &[u8]) -> bool {
    image.starts_with(&MAGIC.to_le_bytes())
}

fn u16at(f: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([f[o], f[o + 1]])
}

fn u32at(f: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]])
}

/// A chunk as read, before its CRC32 (if any) is checked.
enum Chunk<'a> {
    Data(Op<'a>),
    /// A gap of this many bytes: left as it is, but counted as zeros in the
    /// CRC32 (libsparse's rule).
    Skip(u64),
    Crc(u32),
}

/// The writes `image` asks for on a partition of `partition_size` bytes,
/// or why it is refused.
pub fn parse(image: &[u8], partition_size: u64) -> Result<Vec<Op<'_>>, SparseError> {
    let f = image;
    if f.len() < FILE_HEADER_LEN || !is_sparse(f) {
        return bad("no sparse header");
    }
    if u16at(f, 4) != MAJOR {
        return bad(format!("major version {}, not {MAJOR}", u16at(f, 4)));
    }
    let hdr = usize::from(u16at(f, 8));
    let chdr = usize::from(u16at(f, 10));
    let bs = u64::from(u32at(f, 12));
    let total = u64::from(u32at(f, 16));
    let nchunks = u32at(f, 20);
    if hdr < FILE_HEADER_LEN || hdr > f.len() || chdr < CHUNK_HEADER_LEN {
        return bad(format!("header of {hdr} bytes, chunk headers of {chdr}"));
    }
    if bs == 0 || bs % 4 != 0 {
        return bad(format!("block size {bs} is not a multiple of 4"));
    }
    if total * bs > partition_size {
        return bad(format!(
            "{total} blocks of {bs} bytes do not fit the partition's {partition_size} bytes"
        ));
    }

    let (mut off, mut block) = (hdr, 0u64);
    let mut chunks = Vec::new();
    for i in 0..nchunks {
        if f.len() - off < chdr {
            return bad(format!("chunk {i}'s header at byte {off} is past the end"));
        }
        let (kind, blocks, size) = (
            u16at(f, off),
            u64::from(u32at(f, off + 4)),
            u32at(f, off + 8) as usize,
        );
        if size < chdr || f.len() - off < size || block + blocks > total {
            return bad(format!(
                "chunk {i} ({kind:#x}) at byte {off}, {size} bytes, blocks {block}..{}: out of bounds",
                block + blocks
            ));
        }
        let body = &f[off + chdr..off + size];
        let offset = block * bs;
        let len = blocks * bs;
        chunks.push(match kind {
            CHUNK_RAW if body.len() as u64 == len => Chunk::Data(Op::Write { offset, data: body }),
            CHUNK_FILL if body.len() == 4 => Chunk::Data(Op::Fill {
                offset,
                len,
                pattern: [body[0], body[1], body[2], body[3]],
            }),
            CHUNK_DONT_CARE if body.is_empty() => Chunk::Skip(len),
            CHUNK_CRC32 if body.len() == 4 && blocks == 0 => Chunk::Crc(u32at(body, 0)),
            CHUNK_RAW | CHUNK_FILL | CHUNK_DONT_CARE | CHUNK_CRC32 => {
                return bad(format!(
                    "chunk {i} ({kind:#x}) has {} bytes of data for {blocks} blocks",
                    body.len()
                ))
            }
            k => return bad(format!("chunk {i} has unknown type {k:#x}")),
        });
        block += blocks;
        off += size;
    }
    if block != total || off != f.len() {
        return bad(format!(
            "chunks cover {block} of {total} blocks and {off} of {} bytes",
            f.len()
        ));
    }
    check_crcs(&chunks)?;
    Ok(chunks
        .into_iter()
        .filter_map(|c| match c {
            Chunk::Data(op) => Some(op),
            _ => None,
        })
        .collect())
}

/// Hashes `len` bytes of `pattern` repeated, without allocating them all.
fn update_repeated(crc: &mut crc32fast::Hasher, pattern: &[u8], len: u64) {
    let buf: Vec<u8> = pattern.iter().copied().cycle().take(64 * 1024).collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
}

/// A CRC32 chunk covers the expanded image up to it. Only computed when
/// there is one: a piece of a large image is mostly DONT_CARE, and hashing
/// its gaps as zeros costs far more than writing it.
fn check_crcs(chunks: &[Chunk]) -> Result<(), SparseError> {
    if !chunks.iter().any(|c| matches!(c, Chunk::Crc(_))) {
        return Ok(());
    }
    let mut crc = crc32fast::Hasher::new();
    for c in chunks {
        match c {
            Chunk::Data(Op::Write { data, .. }) => crc.update(data),
            Chunk::Data(Op::Fill { len, pattern, .. }) => update_repeated(&mut crc, pattern, *len),
            Chunk::Skip(len) => update_repeated(&mut crc, &[0], *len),
            Chunk::Crc(want) => {
                let got = crc.clone().finalize();
                if got != *want {
                    return bad(format!(
                        "CRC32 mismatch: the chunks hash to {got:#010x}, the image says {want:#010x}"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A sparse image of `total` blocks of `bs` bytes from `(type, blocks,
    /// body)` chunks, as libsparse lays it out.
    pub(crate) fn build(bs: u32, total: u32, chunks: &[(u16, u32, Vec<u8>)]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(MAGIC.to_le_bytes());
        f.extend(1u16.to_le_bytes());
        f.extend(0u16.to_le_bytes());
        f.extend((FILE_HEADER_LEN as u16).to_le_bytes());
        f.extend((CHUNK_HEADER_LEN as u16).to_le_bytes());
        f.extend(bs.to_le_bytes());
        f.extend(total.to_le_bytes());
        f.extend((chunks.len() as u32).to_le_bytes());
        f.extend(0u32.to_le_bytes());
        for (kind, blocks, body) in chunks {
            f.extend(kind.to_le_bytes());
            f.extend(0u16.to_le_bytes());
            f.extend(blocks.to_le_bytes());
            f.extend(((CHUNK_HEADER_LEN + body.len()) as u32).to_le_bytes());
            f.extend(body);
        }
        f
    }

    fn crc(parts: &[&[u8]]) -> Vec<u8> {
        let mut h = crc32fast::Hasher::new();
        parts.iter().for_each(|p| h.update(p));
        h.finalize().to_le_bytes().to_vec()
    }

    #[test]
    fn chunks_become_writes_at_their_blocks_and_gaps_are_left_alone() {
        let raw: Vec<u8> = (0..8u8).collect();
        let f = build(
            4,
            7,
            &[
                (CHUNK_DONT_CARE, 1, vec![]),
                (CHUNK_RAW, 2, raw.clone()),
                (CHUNK_FILL, 3, vec![1, 2, 3, 4]),
                (
                    CHUNK_CRC32,
                    0,
                    crc(&[&[0; 4], &raw, &[1, 2, 3, 4].repeat(3)]),
                ),
                (CHUNK_DONT_CARE, 1, vec![]),
            ],
        );
        assert!(is_sparse(&f));
        assert_eq!(
            parse(&f, 28).unwrap(),
            vec![
                Op::Write {
                    offset: 4,
                    data: &raw[..]
                },
                Op::Fill {
                    offset: 12,
                    len: 12,
                    pattern: [1, 2, 3, 4]
                },
            ]
        );
    }

    fn refusal(f: &[u8], size: u64) -> String {
        parse(f, size).unwrap_err().to_string()
    }

    #[test]
    fn broken_images_are_refused_with_the_reason() {
        let raw = vec![9u8; 8];
        let ok = build(4, 2, &[(CHUNK_RAW, 2, raw.clone())]);
        assert!(parse(&ok, 8).is_ok());
        assert!(refusal(&ok, 7).contains("do not fit the partition's 7 bytes"));
        assert!(refusal(&ok[..27], 8).contains("no sparse header"));
        assert!(refusal(&ok[..ok.len() - 1], 8).contains("out of bounds"));
        let mut v2 = ok.clone();
        v2[4] = 2;
        assert!(refusal(&v2, 8).contains("major version 2"));
        let mut bs = ok.clone();
        bs[12] = 6;
        assert!(refusal(&bs, 100).contains("block size 6"));

        let cases = [
            (
                build(4, 2, &[(CHUNK_RAW, 2, vec![9; 7])]),
                "7 bytes of data for 2 blocks",
            ),
            (
                build(4, 1, &[(CHUNK_FILL, 1, vec![1, 2])]),
                "2 bytes of data",
            ),
            (
                build(4, 1, &[(CHUNK_DONT_CARE, 1, vec![0])]),
                "1 bytes of data",
            ),
            (build(4, 2, &[(CHUNK_RAW, 3, vec![9; 12])]), "out of bounds"),
            (
                build(4, 2, &[(CHUNK_RAW, 1, vec![9; 4])]),
                "cover 1 of 2 blocks",
            ),
            (build(4, 1, &[(0xcac9, 1, vec![])]), "unknown type 0xcac9"),
            (
                build(
                    4,
                    2,
                    &[
                        (CHUNK_RAW, 2, raw.clone()),
                        (CHUNK_CRC32, 0, crc(&[&[8; 8]])),
                    ],
                ),
                "CRC32 mismatch",
            ),
        ];
        for (f, says) in cases {
            let err = refusal(&f, 8);
            assert!(err.contains(says), "{says}: {err}");
        }
        // Trailing bytes after the last chunk.
        let mut tail = ok.clone();
        tail.push(0);
        assert!(refusal(&tail, 8).contains("48 of 49 bytes"));
    }
}
