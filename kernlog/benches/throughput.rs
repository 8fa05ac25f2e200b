//! Parses the whole syzkaller corpus repeatedly and prints the throughput.
//! Run with `cargo bench -p hilt-kernlog` (corpus location: see tests/support/corpus.rs);
//! `cargo bench -p hilt-kernlog -- parse` runs only the benchmarks whose name contains `parse`.
//!
//! Each figure is given per wall-clock second and per second of this process's CPU time:
//! the build machine is shared, and under load only the CPU-time figure stays comparable.

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
    // `cargo bench` passes `--bench`; any other argument selects benchmarks by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let selected = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f));
    let bytes: usize = files.iter().map(|f| f.log.len()).sum();

    // The first pass compiles the tables; keep it out of the measurement.
    let warm = Instant::now();
    let events: usize = files
        .iter()
        .map(|f| hilt_kernlog::parse(&f.log).len())
        .sum();
    println!(
        "corpus: {} files, {:.2} MB, {events} events; first pass (incl. table build) {:.1} ms",
        files.len(),
        bytes as f64 / 1e6,
        warm.elapsed().as_secs_f64() * 1e3,
    );

    if selected("parse") {
        measure("parse", bytes, || {
            for f in &files {
                black_box(hilt_kernlog::parse(black_box(&f.log)));
            }
        });
    }
    if selected("stream") {
        // The agent's path: one record at a time through a long-lived parser.
        measure("stream", bytes, || {
            let mut parser = hilt_kernlog::StreamParser::new();
            let mut out = Vec::new();
            for f in &files {
                for line in f.log.split(|&b| b == b'\n') {
                    parser.push_line_into(black_box(line), &mut out);
                }
                parser.flush_into(&mut out);
                black_box(&out);
                out.clear();
            }
        });
    }
    if selected("contains_crash") {
        measure("contains_crash", bytes, || {
            for f in &files {
                black_box(hilt_kernlog::contains_crash(black_box(&f.log)));
            }
        });
    }
}

/// Runs `pass` (one pass over the corpus) for at least three passes and three seconds.
#[inline(never)] // a symbol of its own, for profilers (callgrind --toggle-collect)
fn measure(name: &str, bytes: usize, mut pass: impl FnMut()) {
    let budget = Duration::from_secs(3);
    let start = Instant::now();
    let cpu_start = cpu_time();
    let mut passes = 0u32;
    while passes < 3 || start.elapsed() < budget {
        pass();
        passes += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu_start).as_secs_f64();
    let mb = bytes as f64 * f64::from(passes) / 1e6;
    println!(
        "{name}: {passes} passes in {wall:.2} s wall, {cpu:.2} s CPU = {:.1} MB/s wall, \
         {:.1} MB/s CPU",
        mb / wall,
        mb / cpu
    );
}

/// CPU time of this process (user + system, all threads).
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through the pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
