//! Cross-check against AOSP's avbtool: the fixture (see
//! tests/fixtures/avb/README.md) is avbtool's add_hashtree_footer output for
//! an erofs image, and hilt must both read it and write the same bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use hilt_avb::{Footer, Vbmeta};
use hilt_images::avb::{add_hashtree_footer, read_footer, AvbOptions};

const PARTITION: &str = "hilt_fixture";
const PARTITION_SIZE: u64 = 1 << 20;
const EROFS_BYTES: usize = 606_208;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/avb")
        .join(name)
}

fn avbtool_image() -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture("footed.img.gz")).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn parser_reads_avbtools_footer_and_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("footed.img");
    let bytes = avbtool_image();
    std::fs::write(&img, &bytes).unwrap();

    // The figures avbtool's own `info_image` printed for this file.
    let f = read_footer(&img, PARTITION).unwrap();
    assert_eq!(f.partition_size, PARTITION_SIZE);
    assert_eq!(f.footer, Footer::new(606_208, 618_496, 512));
    let d = &f.descriptor;
    assert_eq!(d.dm_verity_version, 1);
    assert_eq!(
        (d.image_size, d.tree_offset, d.tree_size),
        (606_208, 606_208, 12_288)
    );
    assert_eq!((d.data_block_size, d.hash_block_size), (4096, 4096));
    assert_eq!((d.fec_num_roots, d.fec_offset, d.fec_size), (0, 0, 0));
    assert_eq!(d.hash_algorithm, "sha256");
    assert_eq!(d.partition_name, PARTITION);
    assert_eq!(d.salt, b"hilt dm-verity salt, fixed, v1..");
    assert_eq!(
        hex::encode(&d.root_digest),
        "da55e6bf5c09dd1b24eee15810ef6907f3be8d264c530db3e7b88a9b5728079e"
    );
    assert_eq!(d.flags, 0);

    let v = Vbmeta::parse(&std::fs::read(fixture("vbmeta.img")).unwrap()).unwrap();
    assert_eq!(v.release_string, "avbtool 1.3.0");
    assert_eq!((v.algorithm_type, v.flags, v.rollback_index), (0, 0, 0));
    assert_eq!(v.hashtree(PARTITION), Some(d));
    assert_eq!(f.vbmeta, std::fs::read(fixture("vbmeta.img")).unwrap());
}

#[test]
fn writer_matches_avbtool_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let reference = avbtool_image();
    let erofs = dir.path().join("erofs.img");
    std::fs::write(&erofs, &reference[..EROFS_BYTES]).unwrap();
    let out = dir.path().join("ours.img");
    let opts = AvbOptions {
        partition_size: Some(PARTITION_SIZE),
        // The one free-form field: the vbmeta header names the tool that
        // wrote it. Everything else is compared as hilt writes it.
        release_string: "avbtool 1.3.0".into(),
        ..AvbOptions::new(PARTITION)
    };
    let ours = add_hashtree_footer(&erofs, &out, &opts).unwrap();
    let written = std::fs::read(&out).unwrap();
    assert_eq!(written.len(), reference.len());
    for (what, range) in [
        ("erofs data", 0..EROFS_BYTES),
        ("hash tree", EROFS_BYTES..618_496),
        ("vbmeta", 618_496..619_008),
        ("gap", 619_008..reference.len() - 64),
        ("footer", reference.len() - 64..reference.len()),
    ] {
        assert!(
            written[range.clone()] == reference[range.clone()],
            "{what} ({range:?}) differs from avbtool's"
        );
    }
    assert_eq!(ours.vbmeta, std::fs::read(fixture("vbmeta.img")).unwrap());
}

#[test]
fn hilts_own_release_string_is_the_only_difference() {
    let dir = tempfile::tempdir().unwrap();
    let reference = avbtool_image();
    let erofs = dir.path().join("erofs.img");
    std::fs::write(&erofs, &reference[..EROFS_BYTES]).unwrap();
    let out = dir.path().join("ours.img");
    let opts = AvbOptions {
        partition_size: Some(PARTITION_SIZE),
        ..AvbOptions::new(PARTITION)
    };
    add_hashtree_footer(&erofs, &out, &opts).unwrap();
    let written = std::fs::read(&out).unwrap();
    let differing: Vec<usize> = (0..written.len())
        .filter(|&i| written[i] != reference[i])
        .collect();
    // vbmeta starts at 618496; its release string at header byte 128.
    let release = 618_496 + 128..618_496 + 176;
    assert!(!differing.is_empty());
    assert!(
        differing.iter().all(|i| release.contains(i)),
        "bytes outside the release string differ: {:?}",
        &differing[..differing.len().min(8)]
    );
}
