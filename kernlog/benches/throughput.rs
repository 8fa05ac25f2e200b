//! Parses the whole syzkaller corpus repeatedly and prints the throughput.
//! Run with `cargo bench -p hilt-kernlog` (corpus location: see tests/support/corpus.rs).

#[path = "../tests/support/corpus.rs"]
#[allow(dead_code)]
mod corpus;

use std::hint::black_box;
use std::time::{Duration, Instant};

fn main() {
    let files = match corpus::dir().and_then(|d| corpus::load(&d)) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("throughput bench: {e}");
            std::process::exit(1);
        }
    };
    let bytes: usize = files.iter().map(|f| f.log.len()).sum();

    // The first pass compiles the tables; keep it out of the measurement.
    let warm = Instant::now();
    let events: usize = files
        .iter()
        .map(|f| hilt_kernlog::parse(&f.log).len())
        .sum();
    let first_pass = warm.elapsed();

    let budget = Duration::from_secs(3);
    let start = Instant::now();
    let mut passes = 0u32;
    while passes < 3 || start.elapsed() < budget {
        for f in &files {
            black_box(hilt_kernlog::parse(black_box(&f.log)));
        }
        passes += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mb = bytes as f64 * f64::from(passes) / 1e6;
    println!(
        "parse: {} files, {:.2} MB, {events} events; first pass (incl. table build) {:.1} ms; \
         {passes} passes in {elapsed:.2} s = {:.1} MB/s",
        files.len(),
        bytes as f64 / 1e6,
        first_pass.as_secs_f64() * 1e3,
        mb / elapsed
    );

    let start = Instant::now();
    let mut passes = 0u32;
    while passes < 3 || start.elapsed() < budget {
        for f in &files {
            black_box(hilt_kernlog::contains_crash(black_box(&f.log)));
        }
        passes += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "contains_crash: {passes} passes in {elapsed:.2} s = {:.1} MB/s",
        bytes as f64 * f64::from(passes) / 1e6 / elapsed
    );
}
