//! Deterministic, compressible text dataset.
//!
//! The stress workloads read these files back through erofs decompression,
//! so what matters is that (a) the bytes compress roughly 3:1 with lz4hc,
//! which keeps decompression busy and pcluster pages in flight, and (b) the
//! same [`DatasetSpec`] yields byte-identical files on every host and every
//! build, so a run's image hash identifies its data. The PRNG is written here
//! rather than taken from a crate because a crate update could silently change
//! the stream.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What to generate. Two equal specs produce identical bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DatasetSpec {
    pub seed: u64,
    /// Sum of all file sizes, split evenly across `files` (the first
    /// `total_bytes % files` files are one byte longer).
    pub total_bytes: u64,
    pub files: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetFile {
    /// File name relative to the dataset directory, e.g. `f0000.txt`.
    pub name: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetManifest {
    pub files: Vec<DatasetFile>,
    pub total_bytes: u64,
}

/// Vocabulary for the generated lines. 64 entries so one PRNG draw yields three
/// 6-bit word indices plus a value. Changing this list changes every dataset:
/// don't, or bump whatever caches datasets by spec.
#[rustfmt::skip]
const WORDS: [&str; 64] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
    "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
    "yankee", "zulu", "anchor", "buffer", "cache", "dentry", "extent", "folio",
    "gfp", "hugepage", "inode", "journal", "kswapd", "lru", "mmap", "node",
    "oom", "page", "queue", "reclaim", "slab", "swap", "thp", "vmscan",
    "writeback", "zone", "block", "cluster", "decompress", "erofs", "verity", "lz4",
    "kworker", "mutex", "spinlock", "rcu", "shrinker", "pressure", "memcg", "watermark",
];

/// Upper bound (exclusive) of the `value=` field. Tuned together with
/// [`WORDS`] so lz4hc with 64 KiB pclusters lands near 3:1 (measured 2.92
/// at level 9, 2.96 at level 12); larger ranges compress worse.
const VALUE_RANGE: u64 = 100_000;

/// Bytes formatted per write. Large enough that syscall overhead vanishes,
/// small enough to stay in L2.
const CHUNK: usize = 256 * 1024;

/// Writes the dataset described by `spec` into `dir` (created if missing).
///
/// `dir` must be empty or absent: stale files from an earlier, larger spec
/// would otherwise end up in the image without being in the manifest.
pub fn generate(spec: &DatasetSpec, dir: &Path) -> io::Result<DatasetManifest> {
    if spec.files == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "dataset spec has files = 0; ask for at least one file",
        ));
    }
    fs::create_dir_all(dir)?;
    if let Some(entry) = fs::read_dir(dir)?.next() {
        let entry = entry?;
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "dataset directory {} is not empty (found {:?}); remove it or pick a fresh directory",
                dir.display(),
                entry.file_name()
            ),
        ));
    }

    let base = spec.total_bytes / u64::from(spec.files);
    let longer = spec.total_bytes % u64::from(spec.files);
    // Headroom for the line that straddles the end of a chunk.
    let mut buf = Vec::with_capacity(CHUNK + 128);
    let mut files = Vec::with_capacity(spec.files as usize);
    for index in 0..spec.files {
        let bytes = base + u64::from(u64::from(index) < longer);
        let name = file_name(index);
        write_file(&dir.join(&name), spec.seed, index, bytes, &mut buf)?;
        files.push(DatasetFile { name, bytes });
    }
    Ok(DatasetManifest {
        files,
        total_bytes: spec.total_bytes,
    })
}

/// Name of the `index`-th dataset file, so callers can address a file
/// without keeping the manifest around.
pub fn file_name(index: u32) -> String {
    format!("f{index:04}.txt")
}

/// Each file is a prefix of its own infinite line stream, keyed by
/// (seed, index), so a file's bytes depend only on its seed, its index and
/// its length; the last line is cut wherever the length ends.
fn write_file(path: &Path, seed: u64, index: u32, bytes: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut out = File::create(path)?;
    let mut lines = LineGen::new(seed, index);
    let mut left = bytes;
    buf.clear();
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        while buf.len() < want {
            lines.push_line(buf);
        }
        out.write_all(&buf[..want])?;
        // The line straddling the chunk boundary continues the next chunk.
        buf.drain(..want);
        left -= want as u64;
    }
    Ok(())
}

/// splitmix64 (Steele, Lea, Flood 2014). Fixed here forever: the dataset's
/// identity depends on it.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

struct LineGen {
    rng: SplitMix64,
    line: u64,
}

impl LineGen {
    fn new(seed: u64, index: u32) -> Self {
        // Scramble (seed, index) so neighbouring files/seeds don't start on
        // overlapping splitmix sequences.
        let mut mix = SplitMix64(seed ^ u64::from(index).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        LineGen {
            rng: SplitMix64(mix.next()),
            line: 0,
        }
    }

    /// Appends `%08d <word> <word> <word> value=%d\n`.
    fn push_line(&mut self, buf: &mut Vec<u8>) {
        let r = self.rng.next();
        push_zero_padded8(buf, self.line);
        for shift in [0, 6, 12] {
            buf.push(b' ');
            buf.extend_from_slice(WORDS[((r >> shift) & 63) as usize].as_bytes());
        }
        buf.extend_from_slice(b" value=");
        push_decimal(buf, (r >> 32) % VALUE_RANGE);
        buf.push(b'\n');
        self.line += 1;
    }
}

const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// `format!("{:08}")` without the formatting machinery, which costs more than
/// everything else in the line generator together.
fn push_zero_padded8(buf: &mut Vec<u8>, v: u64) {
    if v >= 100_000_000 {
        push_decimal(buf, v);
        return;
    }
    let mut out = [0u8; 8];
    let mut v = v as usize;
    for pair in (0..4).rev() {
        let d = (v % 100) * 2;
        out[pair * 2..pair * 2 + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
        v /= 100;
    }
    buf.extend_from_slice(&out);
}

fn push_decimal(buf: &mut Vec<u8>, mut v: u64) {
    let mut out = [0u8; 20];
    let mut pos = out.len();
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        pos -= 2;
        out[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
        v /= 100;
    }
    if v >= 10 {
        let d = v as usize * 2;
        pos -= 2;
        out[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    } else {
        pos -= 1;
        out[pos] = b'0' + v as u8;
    }
    buf.extend_from_slice(&out[pos..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formatting_matches_std() {
        for v in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            12345,
            99_999_999,
            100_000_000,
            u64::MAX,
        ] {
            let mut a = Vec::new();
            push_zero_padded8(&mut a, v);
            assert_eq!(String::from_utf8(a).unwrap(), format!("{v:08}"));
            let mut b = Vec::new();
            push_decimal(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }

    #[test]
    fn line_shape() {
        let mut g = LineGen::new(7, 0);
        let mut buf = Vec::new();
        for _ in 0..1000 {
            g.push_line(&mut buf);
        }
        let text = String::from_utf8(buf).unwrap();
        for (n, line) in text.lines().enumerate() {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 5, "{line}");
            assert_eq!(f[0], format!("{n:08}"));
            for w in &f[1..4] {
                assert!(WORDS.contains(w), "{w}");
            }
            let v: u64 = f[4].strip_prefix("value=").unwrap().parse().unwrap();
            assert!(v < VALUE_RANGE);
        }
    }

    /// Pins the stream: if this changes, every cached dataset and every image
    /// hash recorded in reports changes with it.
    #[test]
    fn stream_is_pinned() {
        let mut g = LineGen::new(42, 3);
        let mut buf = Vec::new();
        g.push_line(&mut buf);
        g.push_line(&mut buf);
        assert_eq!(String::from_utf8(buf).unwrap(), PINNED_42_3);
    }

    const PINNED_42_3: &str =
        "00000000 romeo alpha kworker value=32598\n00000001 verity mike yankee value=56187\n";
}
