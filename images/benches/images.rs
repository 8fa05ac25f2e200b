//! Throughput of the two builders that touch every byte of a run's data.
//! `cargo bench -p hilt-images`; prints MB/s (10^6 bytes per second).
//!
//! Files go to the system temp dir (page cache on a normal host), so this
//! measures CPU cost, not the disk.

use std::path::PathBuf;
use std::time::Instant;

use hilt_images::dataset::{self, DatasetSpec};
use hilt_images::erofs::{self, ErofsOptions};
use hilt_images::verity::{self, VerityParams};

const BYTES: u64 = 256 << 20;
const ROUNDS: usize = 3;
const EROFS_BYTES: u64 = 64 << 20;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    let scratch =
        Scratch(std::env::temp_dir().join(format!("hilt-images-bench-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).expect("create scratch dir");

    let spec = DatasetSpec {
        seed: 1,
        total_bytes: BYTES,
        files: 16,
    };
    let mut best = f64::MAX;
    for round in 0..ROUNDS {
        let dir = scratch.0.join(format!("dataset{round}"));
        let t = Instant::now();
        dataset::generate(&spec, &dir).expect("generate dataset");
        best = best.min(t.elapsed().as_secs_f64());
        std::fs::remove_dir_all(&dir).expect("remove dataset");
    }
    report("dataset::generate (16 files)", best);

    // Verity input: one file of generated text, which is what it hashes in
    // practice (an erofs image) as far as sha256 cost goes.
    let single = DatasetSpec {
        seed: 2,
        total_bytes: BYTES,
        files: 1,
    };
    let dir = scratch.0.join("verity");
    dataset::generate(&single, &dir).expect("generate verity input");
    let data = dir.join(dataset::file_name(0));
    let hash = scratch.0.join("verity.hash");
    let params = VerityParams::default();
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let info = verity::format(&data, &hash, &params).expect("verity format");
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(info.data_blocks, BYTES / 4096);
    }
    report("verity::format (4 KiB blocks)", best);

    // mkfs.erofs is an external tool, but its speed decides how long a fresh
    // image takes, and the ratio checks the dataset's 3:1 design target.
    let erofs_spec = DatasetSpec {
        seed: 3,
        total_bytes: EROFS_BYTES,
        files: 8,
    };
    let src = scratch.0.join("erofs-src");
    dataset::generate(&erofs_spec, &src).expect("generate erofs input");
    let opts = ErofsOptions::default();
    let t = Instant::now();
    let info = erofs::build(&src, &scratch.0.join("bench.erofs"), &opts).expect("mkfs.erofs");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{:<32} {:>8.1} MB/s  ({} MiB in {secs:.3} s; ratio {:.2}:1 with {},{:?} -C{})",
        "erofs::build (mkfs.erofs)",
        EROFS_BYTES as f64 / secs / 1e6,
        EROFS_BYTES >> 20,
        EROFS_BYTES as f64 / info.size_bytes as f64,
        opts.compressor,
        opts.level.unwrap_or_default(),
        opts.pcluster_bytes,
    );
}

fn report(what: &str, secs: f64) {
    println!(
        "{what:<32} {:>8.0} MB/s  ({} MiB in {secs:.3} s, best of {ROUNDS})",
        BYTES as f64 / secs / 1e6,
        BYTES >> 20
    );
}
