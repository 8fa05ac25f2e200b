//! erofs images from generated datasets: reproducible, about 3:1 with lz4hc,
//! and readable back (fsck.erofs extracts exactly the source tree).

mod common;

use std::fs;
use std::path::Path;

use common::{run, s, Scratch};
use hilt_images::dataset::{self, DatasetSpec};
use hilt_images::erofs::{self, ErofsOptions};
use hilt_images::verity::{self, VerityParams};
use hilt_images::Error;

const SPEC: DatasetSpec = DatasetSpec {
    seed: 3,
    total_bytes: 6 << 20,
    files: 4,
};

/// Copies `from` into `to`, creating files in name order or reversed.
fn copy_tree(from: &Path, to: &Path, reverse: bool) {
    fs::create_dir_all(to).unwrap();
    let mut names = readdir_order(from);
    names.sort();
    if reverse {
        names.reverse();
    }
    for n in &names {
        fs::copy(from.join(n), to.join(n)).unwrap();
    }
}

fn readdir_order(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn reproducible_compressed_and_extractable() {
    let dir = Scratch::new("erofs-repro");
    let src = dir.path("src");
    let manifest = dataset::generate(&SPEC, &src).unwrap();
    let opts = ErofsOptions::default();

    let a = erofs::build(&src, &dir.path("a.erofs"), &opts).unwrap();
    let b = erofs::build(&src, &dir.path("b.erofs"), &opts).unwrap();
    assert_eq!(a, b, "two builds of one tree differ");

    // tmpfs lists a directory in reverse creation order (ext4 in hash order,
    // whatever the creation order), so two copies there made in opposite
    // orders present mkfs.erofs with different readdir orders.
    let shm = Scratch::new_in(Path::new("/dev/shm"), "erofs-order");
    copy_tree(&src, &shm.path("fwd"), false);
    copy_tree(&src, &shm.path("rev"), true);
    assert_ne!(
        readdir_order(&shm.path("fwd")),
        readdir_order(&shm.path("rev")),
        "/dev/shm should be a tmpfs, whose readdir order follows creation order"
    );
    let c = erofs::build(&shm.path("fwd"), &dir.path("c.erofs"), &opts).unwrap();
    let d = erofs::build(&shm.path("rev"), &dir.path("d.erofs"), &opts).unwrap();
    assert_eq!(a, c, "copying the tree changed the image");
    assert_eq!(c, d, "readdir order changed the image");
    assert_eq!(
        a.size_bytes,
        fs::metadata(dir.path("a.erofs")).unwrap().len()
    );
    assert_eq!(a.size_bytes % 4096, 0);
    assert_eq!(a.sha256_hex().len(), 64);

    let ratio = manifest.total_bytes as f64 / a.size_bytes as f64;
    assert!(
        (2.6..3.4).contains(&ratio),
        "lz4hc ratio {ratio:.2}, expected about 3"
    );

    run(
        "fsck.erofs",
        "erofs-utils",
        &[
            &format!("--extract={}", s(&dir.path("out"))),
            s(&dir.path("a.erofs")),
        ],
    );
    for f in &manifest.files {
        assert_eq!(
            fs::read(dir.path("out").join(&f.name)).unwrap(),
            fs::read(src.join(&f.name)).unwrap(),
            "{} differs after extraction",
            f.name
        );
    }

    // The image is block-aligned, so it goes straight into verity.
    let v = verity::format(
        &dir.path("a.erofs"),
        &dir.path("a.hash"),
        &VerityParams::default(),
    )
    .unwrap();
    assert_eq!(v.data_blocks * 4096, a.size_bytes);
}

#[test]
fn options_change_the_image() {
    let dir = Scratch::new("erofs-opts");
    let src = dir.path("src");
    dataset::generate(
        &DatasetSpec {
            total_bytes: 2 << 20,
            ..SPEC
        },
        &src,
    )
    .unwrap();
    let big = erofs::build(&src, &dir.path("big.erofs"), &ErofsOptions::default()).unwrap();
    let small_pcluster = ErofsOptions {
        pcluster_bytes: 4096,
        ..ErofsOptions::default()
    };
    let small = erofs::build(&src, &dir.path("small.erofs"), &small_pcluster).unwrap();
    let plain = ErofsOptions {
        compressor: "none".to_owned(),
        level: None,
        pcluster_bytes: 4096,
    };
    let none = erofs::build(&src, &dir.path("none.erofs"), &plain).unwrap();
    assert_ne!(big.sha256, small.sha256);
    assert!(
        none.size_bytes > 2 << 20,
        "uncompressed image is {} bytes",
        none.size_bytes
    );
    assert!(big.size_bytes < none.size_bytes / 2);
}

#[test]
fn failures_explain_themselves() {
    let dir = Scratch::new("erofs-fail");
    let out = dir.path("x.erofs");
    let err = erofs::build(&dir.path("missing"), &out, &ErofsOptions::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");

    fs::create_dir(dir.path("src")).unwrap();
    fs::write(dir.path("src/a"), b"a").unwrap();
    let zstd = ErofsOptions {
        compressor: "zstd".to_owned(),
        level: None,
        ..ErofsOptions::default()
    };
    let err = erofs::build(&dir.path("src"), &out, &zstd).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ToolFailed { .. }), "{err:?}");
    assert!(
        msg.contains("-zzstd") && msg.contains("compressor"),
        "{msg}"
    );
    assert!(!out.exists());
    assert_eq!(
        fs::read_dir(&dir.0).unwrap().count(),
        1,
        "temporary image left behind"
    );
}

/// The extents dump.erofs reports for a file are where its data really is:
/// they cover the file, lie inside the image, and corrupting one of their
/// blocks breaks that file when read back (what the board's EIO test does
/// through dm-verity).
#[test]
fn file_extents_locate_file_data() {
    let dir = Scratch::new("erofs-extents");
    let src = dir.path("src");
    let manifest = dataset::generate(&SPEC, &src).unwrap();
    let img = dir.path("img.erofs");
    let info = erofs::build(&src, &img, &ErofsOptions::default()).unwrap();

    let file = &manifest.files[1];
    let extents = erofs::file_extents(&img, &file.name).unwrap();
    assert!(extents.len() > 4, "{extents:?}");
    let mut next = 0;
    for e in &extents {
        assert_eq!(e.logical.start, next, "gap or overlap in {extents:?}");
        next = e.logical.end;
        assert!(e.physical.end <= info.size_bytes, "{e:?} beyond the image");
    }
    assert_eq!(next, file.bytes);
    assert!(matches!(
        erofs::file_extents(&img, "no-such-file"),
        Err(Error::ToolFailed { .. })
    ));

    let verity_info =
        verity::format(&img, &dir.path("img.hash"), &VerityParams::default()).unwrap();
    let block = extents[2].blocks().start;
    verity::corrupt_block(&img, block, 4096).unwrap();

    let out = common::run_status(
        "veritysetup",
        "cryptsetup-bin",
        &[
            "verify",
            s(&img),
            s(&dir.path("img.hash")),
            &verity_info.root_hash_hex(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Verification failed at position {}", block * 4096)),
        "{stderr}"
    );

    let fsck = common::run_status(
        "fsck.erofs",
        "erofs-utils",
        &[&format!("--extract={}", s(&dir.path("out"))), s(&img)],
    );
    let damaged = !fsck.status.success()
        || fs::read(dir.path("out").join(&file.name)).ok()
            != Some(fs::read(src.join(&file.name)).unwrap());
    assert!(
        damaged,
        "corrupting block {block} left {} intact",
        file.name
    );
}
