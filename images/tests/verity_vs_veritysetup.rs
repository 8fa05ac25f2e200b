//! Our dm-verity hash tree must be byte-identical to what cryptsetup's
//! `veritysetup format` writes, superblock included, so `veritysetup
//! open/verify` and the kernel accept it.

mod common;

use std::path::Path;

use common::{run, run_status, s, Scratch};
use hilt_images::verity::{self, VerityParams};

const SALT: [u8; 32] =
    *b"0123456789abcdef\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\xff";
const UUID: [u8; 16] = [
    0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a, 0x47, 0x98, 0x87, 0x76, 0x65, 0x54, 0x43, 0x32, 0x21, 0x10,
];

fn uuid_string(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Distinct, non-zero content per block, so a tree built from the wrong
/// blocks or in the wrong order cannot match by accident.
fn write_data(path: &Path, blocks: u64) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ blocks;
    let mut bytes = Vec::with_capacity(blocks as usize * 4096);
    while bytes.len() < blocks as usize * 4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn veritysetup_format(data: &Path, hash: &Path, params: &VerityParams) -> [u8; 32] {
    let salt = if params.salt.is_empty() {
        "-".to_owned()
    } else {
        hex::encode(&params.salt)
    };
    let out = run(
        "veritysetup",
        "cryptsetup-bin",
        &[
            "format",
            &format!("--data-block-size={}", params.data_block_size),
            &format!("--hash-block-size={}", params.hash_block_size),
            "--hash=sha256",
            "--format=1",
            &format!("--salt={salt}"),
            &format!("--uuid={}", uuid_string(&params.uuid)),
            s(data),
            s(hash),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let root = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap_or_else(|| panic!("no 'Root hash:' line in veritysetup output:\n{stdout}"))
        .trim();
    hex::decode(root).unwrap().try_into().unwrap()
}

fn compare(blocks: u64, params: &VerityParams) {
    let dir = Scratch::new(&format!("verity-cmp-{blocks}-{}", params.hash_block_size));
    let data = dir.path("data.img");
    let theirs = dir.path("hash.veritysetup");
    let ours = dir.path("hash.ours");
    write_data(&data, blocks * 4096 / u64::from(params.data_block_size));

    let their_root = veritysetup_format(&data, &theirs, params);
    let info = verity::format(&data, &ours, params).unwrap();

    assert_eq!(
        info.root_hash_hex(),
        hex::encode(their_root),
        "root hash for {blocks} blocks"
    );
    let (a, b) = (
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap(),
    );
    assert_eq!(a.len(), b.len(), "hash device length for {blocks} blocks");
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "hash devices differ for {blocks} blocks first at byte {i} (hash block {})",
            i / params.hash_block_size as usize
        );
    }
    assert_eq!(info.hash_start_block, 1);
}

fn fixed_params() -> VerityParams {
    VerityParams {
        data_block_size: 4096,
        hash_block_size: 4096,
        salt: SALT.to_vec(),
        uuid: UUID,
    }
}

#[test]
fn one_block_has_no_tree() {
    compare(1, &fixed_params());
}

#[test]
fn one_leaf_block_partially_filled() {
    compare(127, &fixed_params());
}

#[test]
fn one_leaf_block_full() {
    compare(128, &fixed_params());
}

#[test]
fn two_levels_minimal() {
    compare(129, &fixed_params());
}

#[test]
fn two_levels_20_mib() {
    compare(20 * 256, &fixed_params());
}

#[test]
fn three_levels() {
    compare(128 * 128 + 1, &fixed_params());
}

#[test]
fn unsalted_small_hash_blocks() {
    // 1 KiB hash blocks hold 32 digests: a deeper tree from little data.
    let params = VerityParams {
        hash_block_size: 1024,
        salt: Vec::new(),
        ..fixed_params()
    };
    compare(33 * 32 + 5, &params);
}

#[test]
fn default_params_match_too() {
    compare(300, &VerityParams::default());
}

/// veritysetup's userspace verifier accepts our tree, and rejects it once a
/// data block is corrupted, as the kernel would with EIO.
#[test]
fn veritysetup_verify_accepts_then_catches_corruption() {
    let dir = Scratch::new("verity-verify");
    let data = dir.path("data.img");
    let hash = dir.path("hash.img");
    write_data(&data, 1000);
    let info = verity::format(&data, &hash, &fixed_params()).unwrap();
    let root = info.root_hash_hex();
    run(
        "veritysetup",
        "cryptsetup-bin",
        &["verify", s(&data), s(&hash), &root],
    );

    verity::corrupt_block(&data, 517, 4096).unwrap();
    let out = run_status(
        "veritysetup",
        "cryptsetup-bin",
        &["verify", s(&data), s(&hash), &root],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "veritysetup verify accepted a corrupted data block"
    );
    assert!(
        stderr.contains(&format!("Verification failed at position {}", 517 * 4096)),
        "veritysetup should blame data block 517:\n{stderr}"
    );
}
