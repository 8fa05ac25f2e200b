//! Android sparse images (libsparse's format, what `fastboot flash` sends
//! for large partitions): a 28-byte header, then chunks of RAW data, FILL
//! patterns, DONT_CARE gaps and an optional CRC32, all little-endian.
//!
//! A device can only take `max-download-size` bytes at once, so an image is
//! split into several sparse files, each covering the whole partition: the
//! blocks it does not carry are DONT_CARE, which the device leaves as they
//! are. Flashing the pieces one after the other writes the whole image.
//! Blocks that repeat one 32-bit value (erased or zeroed areas) become FILL
//! chunks and cost 16 bytes instead of a block.

use std::io;

pub const MAGIC: u32 = 0xed26_ff3a;
pub const MAJOR: u16 = 1;
pub const MINOR: u16 = 0;
pub const FILE_HEADER_LEN: usize = 28;
pub const CHUNK_HEADER_LEN: usize = 12;
pub const CHUNK_RAW: u16 = 0xcac1;
pub const CHUNK_FILL: u16 = 0xcac2;
pub const CHUNK_DONT_CARE: u16 = 0xcac3;
pub const CHUNK_CRC32: u16 = 0xcac4;
/// What fastboot and img2simg use.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;

/// One run of blocks of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// `blocks` blocks of the image from block `start`, stored as they are.
    Raw { start: u32, blocks: u32 },
    /// `blocks` blocks, every 32-bit word `value`.
    Fill { start: u32, blocks: u32, value: u32 },
}

impl Run {
    fn start(&self) -> u32 {
        match *self {
            Run::Raw { start, .. } | Run::Fill { start, .. } => start,
        }
    }

    fn blocks(&self) -> u32 {
        match *self {
            Run::Raw { blocks, .. } | Run::Fill { blocks, .. } => blocks,
        }
    }

    fn encoded_len(&self, block_size: u32) -> u64 {
        CHUNK_HEADER_LEN as u64
            + match self {
                Run::Raw { blocks, .. } => u64::from(*blocks) * u64::from(block_size),
                Run::Fill { .. } => 4,
            }
    }
}

/// An image cut into runs, ready to be written as one or more sparse files.
#[derive(Debug, Clone)]
pub struct SparseImage<'a> {
    data: &'a [u8],
    pub block_size: u32,
    pub total_blocks: u32,
    pub runs: Vec<Run>,
}

fn fill_value(block: &[u8]) -> Option<u32> {
    let first = u32::from_le_bytes(block[..4].try_into().expect("4 bytes"));
    block
        .chunks_exact(4)
        .all(|w| u32::from_le_bytes(w.try_into().expect("4 bytes")) == first)
        .then_some(first)
}

impl<'a> SparseImage<'a> {
    /// Cuts `data` into runs. A last partial block is padded with zeros, as
    /// the device writes whole blocks anyway.
    // is_multiple_of needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    pub fn new(data: &'a [u8], block_size: u32) -> io::Result<Self> {
        if block_size == 0 || block_size % 4 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "sparse block size must be a positive multiple of 4",
            ));
        }
        let bs = block_size as usize;
        let total_blocks = u32::try_from(data.len().div_ceil(bs)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "image too large for a sparse file",
            )
        })?;
        let mut runs: Vec<Run> = Vec::new();
        for b in 0..total_blocks {
            let off = b as usize * bs;
            let block = &data[off..(off + bs).min(data.len())];
            let value = if block.len() == bs {
                fill_value(block)
            } else {
                None
            };
            match (runs.last_mut(), value) {
                (
                    Some(Run::Fill {
                        blocks, value: v, ..
                    }),
                    Some(value),
                ) if *v == value => *blocks += 1,
                (Some(Run::Raw { blocks, .. }), None) => *blocks += 1,
                (_, Some(value)) => runs.push(Run::Fill {
                    start: b,
                    blocks: 1,
                    value,
                }),
                (_, None) => runs.push(Run::Raw {
                    start: b,
                    blocks: 1,
                }),
            }
        }
        Ok(Self {
            data,
            block_size,
            total_blocks,
            runs,
        })
    }

    /// Splits the runs into groups whose sparse file fits in `max_size`
    /// bytes (fastboot's max-download-size). Raw runs are cut as needed.
    pub fn split(&self, max_size: u64) -> io::Result<Vec<Vec<Run>>> {
        let bs = u64::from(self.block_size);
        // Header, a DONT_CARE before and one after the carried blocks.
        let overhead = (FILE_HEADER_LEN + 2 * CHUNK_HEADER_LEN) as u64;
        if max_size < overhead + CHUNK_HEADER_LEN as u64 + bs {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("max-download-size {max_size} cannot hold even one {bs}-byte block of a sparse image"),
            ));
        }
        let budget = max_size - overhead;
        let mut pieces: Vec<Vec<Run>> = Vec::new();
        let mut cur: Vec<Run> = Vec::new();
        let mut used = 0u64;
        for run in &self.runs {
            let mut run = *run;
            loop {
                let need = run.encoded_len(self.block_size);
                if used + need <= budget {
                    cur.push(run);
                    used += need;
                    break;
                }
                if let Run::Raw { start, blocks } = run {
                    let room = budget.saturating_sub(used + CHUNK_HEADER_LEN as u64) / bs;
                    if room > 0 {
                        let take = room.min(u64::from(blocks)) as u32;
                        cur.push(Run::Raw {
                            start,
                            blocks: take,
                        });
                        run = Run::Raw {
                            start: start + take,
                            blocks: blocks - take,
                        };
                    }
                }
                pieces.push(std::mem::take(&mut cur));
                used = 0;
            }
        }
        if !cur.is_empty() || pieces.is_empty() {
            pieces.push(cur);
        }
        Ok(pieces)
    }

    /// The sparse file of the whole image in one piece, with a CRC32 chunk
    /// of the image if asked.
    pub fn encode_all(&self, with_crc: bool) -> Vec<u8> {
        let crc = with_crc.then(|| {
            let mut h = crc32fast::Hasher::new();
            h.update(self.data);
            let pad = (self.total_blocks as usize * self.block_size as usize) - self.data.len();
            h.update(&vec![0u8; pad]);
            h.finalize()
        });
        self.encode(&self.runs, crc)
    }

    /// One sparse file carrying `runs` (consecutive, as from [`Self::split`]),
    /// DONT_CARE elsewhere.
    pub fn encode(&self, runs: &[Run], crc: Option<u32>) -> Vec<u8> {
        let bs = self.block_size as usize;
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let chunk = |kind: u16, blocks: u32, body_len: usize| {
            let mut c = Vec::with_capacity(CHUNK_HEADER_LEN + body_len);
            c.extend(kind.to_le_bytes());
            c.extend(0u16.to_le_bytes());
            c.extend(blocks.to_le_bytes());
            c.extend(((CHUNK_HEADER_LEN + body_len) as u32).to_le_bytes());
            c
        };
        let mut next = 0u32;
        for run in runs {
            if run.start() > next {
                chunks.push(chunk(CHUNK_DONT_CARE, run.start() - next, 0));
            }
            match *run {
                Run::Raw { start, blocks } => {
                    let body = blocks as usize * bs;
                    let mut c = chunk(CHUNK_RAW, blocks, body);
                    let from = start as usize * bs;
                    let to = (from + body).min(self.data.len());
                    c.extend_from_slice(&self.data[from..to]);
                    c.resize(CHUNK_HEADER_LEN + body, 0);
                    chunks.push(c);
                }
                Run::Fill { blocks, value, .. } => {
                    let mut c = chunk(CHUNK_FILL, blocks, 4);
                    c.extend(value.to_le_bytes());
                    chunks.push(c);
                }
            }
            next = run.start() + run.blocks();
        }
        if next < self.total_blocks {
            chunks.push(chunk(CHUNK_DONT_CARE, self.total_blocks - next, 0));
        }
        if let Some(crc) = crc {
            let mut c = chunk(CHUNK_CRC32, 0, 4);
            c.extend(crc.to_le_bytes());
            chunks.push(c);
        }
        let mut out =
            Vec::with_capacity(FILE_HEADER_LEN + chunks.iter().map(Vec::len).sum::<usize>());
        out.extend(MAGIC.to_le_bytes());
        out.extend(MAJOR.to_le_bytes());
        out.extend(MINOR.to_le_bytes());
        out.extend((FILE_HEADER_LEN as u16).to_le_bytes());
        out.extend((CHUNK_HEADER_LEN as u16).to_le_bytes());
        out.extend(self.block_size.to_le_bytes());
        out.extend(self.total_blocks.to_le_bytes());
        out.extend((chunks.len() as u32).to_le_bytes());
        // image_checksum: unused by libsparse (a CRC32 chunk does that job).
        out.extend(0u32.to_le_bytes());
        chunks.iter().for_each(|c| out.extend_from_slice(c));
        out
    }

    /// The sparse files to flash one after the other, each at most
    /// `max_size` bytes.
    pub fn pieces(&self, max_size: u64) -> io::Result<Vec<Vec<u8>>> {
        Ok(self
            .split(max_size)?
            .iter()
            .map(|runs| self.encode(runs, None))
            .collect())
    }
}

/// Whether `data` starts like a sparse file (already sparse images are
/// sent as they are when they fit).
pub fn is_sparse(data: &[u8]) -> bool {
    data.len() >= FILE_HEADER_LEN
        && u32::from_le_bytes(data[..4].try_into().expect("4 bytes")) == MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        let bs = 4096;
        let mut v = vec![0u8; 3 * bs]; // fill 0
        v.extend((0..5 * bs).map(|i| (i * 7 % 251) as u8)); // raw
        v.extend(std::iter::repeat_n([0xde, 0xad, 0xbe, 0xef], bs / 2).flatten()); // fill, 2 blocks
        v.extend(vec![0xffu8; bs]); // fill ff
        v.extend((0..1000).map(|i| i as u8)); // partial block: raw
        v
    }

    #[test]
    fn runs_classify_blocks() {
        let img = image();
        let s = SparseImage::new(&img, 4096).unwrap();
        assert_eq!(s.total_blocks, 12);
        assert_eq!(
            s.runs,
            vec![
                Run::Fill {
                    start: 0,
                    blocks: 3,
                    value: 0
                },
                Run::Raw {
                    start: 3,
                    blocks: 5
                },
                Run::Fill {
                    start: 8,
                    blocks: 2,
                    value: 0xefbe_adde
                },
                Run::Fill {
                    start: 10,
                    blocks: 1,
                    value: 0xffff_ffff
                },
                Run::Raw {
                    start: 11,
                    blocks: 1
                },
            ]
        );
    }

    #[test]
    fn pieces_fit_and_cover_every_block_once() {
        let img = image();
        let s = SparseImage::new(&img, 4096).unwrap();
        for max in [28 + 36 + 4096, 20_000, 30_000, 1 << 20] {
            let pieces = s.split(max).unwrap();
            let mut covered = vec![0u32; s.total_blocks as usize];
            for p in &pieces {
                assert!(s.encode(p, None).len() as u64 <= max, "max {max}");
                for r in p {
                    (r.start()..r.start() + r.blocks()).for_each(|b| covered[b as usize] += 1);
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "max {max}: {covered:?}");
        }
        assert!(s.split(100).is_err());
    }

    #[test]
    fn header_fields() {
        let img = image();
        let f = SparseImage::new(&img, 4096).unwrap().encode_all(true);
        assert!(is_sparse(&f));
        let u16at = |o: usize| u16::from_le_bytes(f[o..o + 2].try_into().unwrap());
        let u32at = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().unwrap());
        assert_eq!((u16at(4), u16at(6), u16at(8), u16at(10)), (1, 0, 28, 12));
        assert_eq!((u32at(12), u32at(16), u32at(20)), (4096, 12, 6));
        assert_eq!(u16at(28), CHUNK_FILL);
        assert_eq!(u32at(28 + 8), 16);
    }
}
