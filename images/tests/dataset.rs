mod common;

use std::fs;

use common::Scratch;
use hilt_images::dataset::{self, DatasetFile, DatasetSpec};

fn spec(seed: u64, total_bytes: u64, files: u32) -> DatasetSpec {
    DatasetSpec {
        seed,
        total_bytes,
        files,
    }
}

#[test]
fn same_spec_same_bytes_other_seed_other_bytes() {
    let dir = Scratch::new("dataset-det");
    let s = spec(11, 3_000_017, 3);
    let a = dataset::generate(&s, &dir.path("a")).unwrap();
    let b = dataset::generate(&s, &dir.path("b")).unwrap();
    let c = dataset::generate(&spec(12, 3_000_017, 3), &dir.path("c")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c, "manifest depends on sizes only");
    for f in &a.files {
        let fa = fs::read(dir.path("a").join(&f.name)).unwrap();
        assert_eq!(
            fa,
            fs::read(dir.path("b").join(&f.name)).unwrap(),
            "{}",
            f.name
        );
        assert_ne!(
            fa,
            fs::read(dir.path("c").join(&f.name)).unwrap(),
            "{}",
            f.name
        );
    }
    // Files of one dataset differ from each other too.
    assert_ne!(
        fs::read(dir.path("a/f0000.txt")).unwrap()[..1000],
        fs::read(dir.path("a/f0001.txt")).unwrap()[..1000]
    );
}

#[test]
fn sizes_split_evenly_and_match_disk() {
    let dir = Scratch::new("dataset-sizes");
    let m = dataset::generate(&spec(1, 1_000_003, 4), &dir.0).unwrap();
    let expect: Vec<DatasetFile> = [250_001, 250_001, 250_001, 250_000]
        .iter()
        .enumerate()
        .map(|(i, &bytes)| DatasetFile {
            name: format!("f{i:04}.txt"),
            bytes,
        })
        .collect();
    assert_eq!(m.files, expect);
    assert_eq!(m.total_bytes, 1_000_003);
    for f in &m.files {
        assert_eq!(fs::metadata(dir.0.join(&f.name)).unwrap().len(), f.bytes);
    }
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 4);
}

/// A file spans many internal write chunks; every line must follow its
/// predecessor with no bytes lost or repeated at chunk boundaries, and a
/// shorter file must be a prefix of a longer one with the same seed.
#[test]
fn lines_are_continuous_and_shorter_is_prefix() {
    let dir = Scratch::new("dataset-lines");
    dataset::generate(&spec(5, 3_000_000, 1), &dir.path("long")).unwrap();
    dataset::generate(&spec(5, 777_777, 1), &dir.path("short")).unwrap();
    let long = fs::read(dir.path("long/f0000.txt")).unwrap();
    let short = fs::read(dir.path("short/f0000.txt")).unwrap();
    assert_eq!(long[..short.len()], short[..]);

    let text = std::str::from_utf8(&long).unwrap();
    let mut lines = text.split_inclusive('\n').peekable();
    let mut n = 0u64;
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && !line.ends_with('\n') {
            break; // the cut last line
        }
        let fields: Vec<&str> = line.trim_end().split(' ').collect();
        assert_eq!(fields.len(), 5, "line {n}: {line:?}");
        assert_eq!(fields[0], format!("{n:08}"), "line {n}");
        assert!(fields[4].starts_with("value="), "line {n}: {line:?}");
        n += 1;
    }
    assert!(n > 50_000, "only {n} lines");
}

#[test]
fn refuses_non_empty_dir_and_zero_files() {
    let dir = Scratch::new("dataset-refuse");
    fs::write(dir.path("stale.txt"), b"x").unwrap();
    let err = dataset::generate(&spec(1, 100, 1), &dir.0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("not empty"), "{err}");

    let err = dataset::generate(&spec(1, 100, 0), &dir.path("new")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn zero_bytes_gives_empty_files() {
    let dir = Scratch::new("dataset-empty");
    let m = dataset::generate(&spec(1, 0, 2), &dir.0).unwrap();
    assert_eq!(m.files.len(), 2);
    for f in &m.files {
        assert_eq!(fs::metadata(dir.0.join(&f.name)).unwrap().len(), 0);
    }
}
