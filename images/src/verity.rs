//! dm-verity hash tree (format version 1, sha256), byte-compatible with
//! `veritysetup format` from cryptsetup.
//!
//! Computed here instead of by veritysetup so hosts without cryptsetup can
//! build images, and so the root hash is known without parsing tool output.
//! Layout of the hash device, as veritysetup writes it and as the kernel
//! (drivers/md/dm-verity-target.c) reads it:
//!
//! * hash block 0: the 512-byte veritysetup superblock, zero-padded to a
//!   hash block. The kernel ignores it; `veritysetup open` and
//!   `veritysetup verify` read it.
//! * from hash block 1 ([`HASH_START_BLOCK`]): the tree levels, top (the one
//!   whose single block is hashed into the root) first, leaves (hashes of
//!   data blocks) last.
//!
//! Every digest is `sha256(salt || block)`, stored padded to a power of two
//! (32 bytes for sha256, so no padding), and each hash block is zero-filled
//! after its last digest. A single-block device has no tree at all: the root
//! is the digest of the data block itself.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hash block holding the veritysetup superblock precedes the tree.
pub const HASH_START_BLOCK: u64 = 1;

const DIGEST_SIZE: usize = 32;
const SUPERBLOCK_SIZE: usize = 512;
const MAX_SALT: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VerityParams {
    /// Power of two, 512..=65536; must not exceed the board's page size to
    /// be usable by the kernel (4096 fits every board we have).
    pub data_block_size: u32,
    pub hash_block_size: u32,
    /// Up to 256 bytes. The default is fixed, not random as veritysetup's:
    /// a salt only hinders precomputed attacks on the tree, which are not our
    /// threat model, while a fixed one keeps the root hash reproducible.
    pub salt: Vec<u8>,
    /// Stored in the superblock; `veritysetup` shows it, the kernel ignores it.
    pub uuid: [u8; 16],
}

impl Default for VerityParams {
    fn default() -> Self {
        VerityParams {
            data_block_size: 4096,
            hash_block_size: 4096,
            salt: b"hilt dm-verity salt, fixed, v1..".to_vec(),
            uuid: *b"hilt-verity-v1\0\0",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerityInfo {
    pub root_hash: [u8; 32],
    pub salt: Vec<u8>,
    pub data_blocks: u64,
    /// In hash blocks, as the dm table wants it.
    pub hash_start_block: u64,
    pub data_block_size: u32,
    pub hash_block_size: u32,
}

impl VerityInfo {
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }

    /// The device-mapper table line for `dmsetup create --table` (or the
    /// kernel's `dm-mod.create=`), covering the whole data device.
    pub fn table(&self, data_dev: &str, hash_dev: &str) -> String {
        let sectors = self.data_blocks * u64::from(self.data_block_size) / 512;
        let salt = if self.salt.is_empty() {
            "-".to_owned()
        } else {
            hex::encode(&self.salt)
        };
        format!(
            "0 {sectors} verity 1 {data_dev} {hash_dev} {} {} {} {} sha256 {} {salt}",
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks,
            self.hash_start_block,
            self.root_hash_hex(),
        )
    }
}

/// Hashes `data` and writes superblock plus tree to `hash_out` (created or
/// truncated). `data` is streamed, never loaded whole; the tree itself is
/// kept in memory (1/128 of the data size with 4 KiB blocks).
pub fn format(data: &Path, hash_out: &Path, params: &VerityParams) -> io::Result<VerityInfo> {
    let tree = hash_tree(data, params)?;
    let hbs = params.hash_block_size as usize;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(hash_out)?);
    let mut block0 = vec![0u8; hbs];
    block0[..SUPERBLOCK_SIZE].copy_from_slice(&superblock(params, tree.info.data_blocks));
    out.write_all(&block0)?;
    out.write_all(&tree.levels)?;
    out.flush()?;
    Ok(tree.info)
}

/// A hash tree without the veritysetup superblock: what AVB appends to a
/// partition, and what follows block 0 in [`format`]'s output.
pub struct HashTree {
    /// `hash_start_block` is [`HASH_START_BLOCK`], where the tree starts in
    /// [`format`]'s output; add the tree's own position where it lies
    /// elsewhere.
    pub info: VerityInfo,
    /// The levels, top first, each a whole number of hash blocks; empty for
    /// a single data block.
    pub levels: Vec<u8>,
}

/// Hashes `data` (a non-zero multiple of the data block size) into its tree.
pub fn hash_tree(data: &Path, params: &VerityParams) -> io::Result<HashTree> {
    validate(params)?;
    let dbs = params.data_block_size as usize;
    let hbs = params.hash_block_size as usize;

    let mut input = File::open(data)?;
    let size = input.metadata()?.len();
    if size == 0 || size % dbs as u64 != 0 {
        return Err(invalid(format!(
            "{} is {size} bytes, not a non-zero multiple of the {dbs}-byte data block size; \
             pad it first with verity::pad_to_block",
            data.display()
        )));
    }
    let data_blocks = size / dbs as u64;

    let salted = {
        let mut h = Sha256::new();
        h.update(&params.salt);
        h
    };
    let levels = level_count(data_blocks, hbs / DIGEST_SIZE);

    // Each pass packs the digests of the level below into hash blocks and
    // hashes those blocks; after the top level exactly one digest is left,
    // the root. With no levels (one data block) that is the block's digest.
    let mut digests = hash_data(&mut input, data, data_blocks, dbs, &salted)?;
    let mut tree: Vec<Vec<u8>> = Vec::with_capacity(levels);
    for _ in 0..levels {
        let level = pack(&digests, hbs);
        digests = hash_chunks(&level, hbs, &salted);
        tree.push(level);
    }
    debug_assert_eq!(digests.len(), DIGEST_SIZE);
    let mut root = [0u8; 32];
    root.copy_from_slice(&digests);

    Ok(HashTree {
        info: VerityInfo {
            root_hash: root,
            salt: params.salt.clone(),
            data_blocks,
            hash_start_block: HASH_START_BLOCK,
            data_block_size: params.data_block_size,
            hash_block_size: params.hash_block_size,
        },
        levels: tree.into_iter().rev().flatten().collect(),
    })
}

/// Digests of all data blocks, back to back, reading `input` in 1 MiB
/// pieces.
fn hash_data(
    input: &mut File,
    path: &Path,
    blocks: u64,
    block_size: usize,
    salted: &Sha256,
) -> io::Result<Vec<u8>> {
    let chunk_blocks = ((1 << 20) / block_size).max(1);
    let mut buf = vec![0u8; chunk_blocks * block_size];
    let mut digests = Vec::with_capacity(blocks as usize * DIGEST_SIZE);
    let mut left = blocks;
    while left > 0 {
        let n = left.min(chunk_blocks as u64) as usize;
        let piece = &mut buf[..n * block_size];
        input.read_exact(piece).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                e.kind(),
                format!("{} shrank while being hashed", path.display()),
            ),
            _ => e,
        })?;
        digests.extend_from_slice(&hash_chunks(piece, block_size, salted));
        left -= n as u64;
    }
    Ok(digests)
}

/// `sha256(salt || chunk)` for each `size`-byte chunk, back to back.
fn hash_chunks(bytes: &[u8], size: usize, salted: &Sha256) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / size * DIGEST_SIZE);
    for chunk in bytes.chunks_exact(size) {
        out.extend_from_slice(&salted.clone().chain_update(chunk).finalize());
    }
    out
}

/// Lays digests into hash blocks, `hash_block_size / 32` per block, the
/// rest of the last block zero.
fn pack(digests: &[u8], hash_block_size: usize) -> Vec<u8> {
    let mut level = digests.to_vec();
    level.resize(digests.len().div_ceil(hash_block_size) * hash_block_size, 0);
    level
}

/// Depth of the tree exactly as cryptsetup and the kernel compute it: the
/// smallest number of levels whose fan-out covers every data block index.
fn level_count(data_blocks: u64, per_block: usize) -> usize {
    let bits = per_block.trailing_zeros() as usize;
    let mut levels = 0;
    while bits * levels < 64 && (data_blocks - 1) >> (bits * levels) != 0 {
        levels += 1;
    }
    levels
}

/// The veritysetup on-disk header (cryptsetup lib/verity/verity.c,
/// `struct verity_sb`), little-endian.
fn superblock(params: &VerityParams, data_blocks: u64) -> [u8; SUPERBLOCK_SIZE] {
    let mut sb = [0u8; SUPERBLOCK_SIZE];
    sb[0..8].copy_from_slice(b"verity\0\0");
    sb[8..12].copy_from_slice(&1u32.to_le_bytes()); // superblock version
    sb[12..16].copy_from_slice(&1u32.to_le_bytes()); // hash type: normal
    sb[16..32].copy_from_slice(&params.uuid);
    sb[32..38].copy_from_slice(b"sha256");
    sb[64..68].copy_from_slice(&params.data_block_size.to_le_bytes());
    sb[68..72].copy_from_slice(&params.hash_block_size.to_le_bytes());
    sb[72..80].copy_from_slice(&data_blocks.to_le_bytes());
    sb[80..82].copy_from_slice(&(params.salt.len() as u16).to_le_bytes());
    sb[88..88 + params.salt.len()].copy_from_slice(&params.salt);
    sb
}

fn validate(params: &VerityParams) -> io::Result<()> {
    for (name, size) in [
        ("data block size", params.data_block_size),
        ("hash block size", params.hash_block_size),
    ] {
        if !size.is_power_of_two() || !(512..=65536).contains(&size) {
            return Err(invalid(format!(
                "verity {name} {size} must be a power of two between 512 and 65536 (use 4096)"
            )));
        }
    }
    if params.salt.len() > MAX_SALT {
        return Err(invalid(format!(
            "verity salt is {} bytes; at most {MAX_SALT} fit the superblock",
            params.salt.len()
        )));
    }
    Ok(())
}

/// Extends `path` with zeros to a multiple of `block` bytes and returns the
/// new size. The zero tail is a sparse hole, so this is cheap.
pub fn pad_to_block(path: &Path, block: u32) -> io::Result<u64> {
    if block == 0 {
        return Err(invalid("block size 0".to_owned()));
    }
    let f = OpenOptions::new().write(true).open(path)?;
    let size = f.metadata()?.len();
    let padded = size.div_ceil(u64::from(block)) * u64::from(block);
    if padded != size {
        f.set_len(padded)?;
    }
    Ok(padded)
}

/// Inverts every byte of data block `block`, so any read touching it fails
/// verification (EIO) on a verity device built before the corruption.
pub fn corrupt_block(path: &Path, block: u64, block_size: u32) -> io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let size = f.metadata()?.len();
    let start = block
        .checked_mul(u64::from(block_size))
        .filter(|s| s + u64::from(block_size) <= size)
        .ok_or_else(|| {
            invalid(format!(
                "block {block} of {block_size} bytes lies outside {} ({size} bytes)",
                path.display()
            ))
        })?;
    let mut buf = vec![0u8; block_size as usize];
    f.seek(SeekFrom::Start(start))?;
    f.read_exact(&mut buf)?;
    for b in &mut buf {
        *b = !*b;
    }
    f.seek(SeekFrom::Start(start))?;
    f.write_all(&buf)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("hilt-verity-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pattern(blocks: usize) -> Vec<u8> {
        (0..blocks * 4096).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn level_counts_match_kernel_rule() {
        assert_eq!(level_count(1, 128), 0);
        assert_eq!(level_count(2, 128), 1);
        assert_eq!(level_count(128, 128), 1);
        assert_eq!(level_count(129, 128), 2);
        assert_eq!(level_count(128 * 128, 128), 2);
        assert_eq!(level_count(128 * 128 + 1, 128), 3);
    }

    #[test]
    fn flipping_one_data_byte_changes_root() {
        let s = Scratch::new("flip");
        let data = s.0.join("data");
        let hash = s.0.join("hash");
        let mut bytes = pattern(300);
        std::fs::write(&data, &bytes).unwrap();
        let a = format(&data, &hash, &VerityParams::default()).unwrap();
        bytes[299 * 4096 + 17] ^= 1;
        std::fs::write(&data, &bytes).unwrap();
        let b = format(&data, &hash, &VerityParams::default()).unwrap();
        assert_ne!(a.root_hash, b.root_hash);
        assert_eq!(a.data_blocks, 300);
    }

    #[test]
    fn corrupt_block_changes_only_that_block() {
        let s = Scratch::new("corrupt");
        let data = s.0.join("data");
        let orig = pattern(4);
        std::fs::write(&data, &orig).unwrap();
        corrupt_block(&data, 2, 4096).unwrap();
        let now = std::fs::read(&data).unwrap();
        assert_eq!(now[..2 * 4096], orig[..2 * 4096]);
        assert_eq!(now[3 * 4096..], orig[3 * 4096..]);
        assert!(now[2 * 4096..3 * 4096]
            .iter()
            .zip(&orig[2 * 4096..3 * 4096])
            .all(|(a, b)| a == &!b));
        assert!(corrupt_block(&data, 4, 4096).is_err());
    }

    #[test]
    fn unaligned_data_is_rejected_until_padded() {
        let s = Scratch::new("pad");
        let data = s.0.join("data");
        let hash = s.0.join("hash");
        std::fs::write(&data, vec![1u8; 5000]).unwrap();
        let err = format(&data, &hash, &VerityParams::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("pad_to_block"), "{err}");
        assert_eq!(pad_to_block(&data, 4096).unwrap(), 8192);
        assert_eq!(pad_to_block(&data, 4096).unwrap(), 8192);
        assert_eq!(
            format(&data, &hash, &VerityParams::default())
                .unwrap()
                .data_blocks,
            2
        );
    }

    #[test]
    fn table_line() {
        let info = VerityInfo {
            root_hash: [0xab; 32],
            salt: vec![0x01, 0x02],
            data_blocks: 10,
            hash_start_block: 1,
            data_block_size: 4096,
            hash_block_size: 4096,
        };
        assert_eq!(
            info.table("/dev/mmcblk0p1", "/dev/vdb"),
            format!(
                "0 80 verity 1 /dev/mmcblk0p1 /dev/vdb 4096 4096 10 1 sha256 {} 0102",
                "ab".repeat(32)
            )
        );
        let unsalted = VerityInfo {
            salt: vec![],
            ..info
        };
        assert!(unsalted.table("a", "b").ends_with(" -"));
    }
}
