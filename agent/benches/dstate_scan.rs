//! Time of one D-state watcher scan per 1000 threads: over a synthetic
//! /proc tree of N threads (some in D), and over this host's real /proc.
//!
//!     cargo bench -p hilt-agent --bench dstate_scan

use std::time::Instant;

use hilt_agent::dstate::Watcher;

fn fake_proc(root: &std::path::Path, threads: usize) {
    for i in 0..threads {
        let pid = 1000 + i / 4;
        let d = root.join(format!("{pid}/task/{}", 1000 + i));
        std::fs::create_dir_all(&d).unwrap();
        let state = if i % 50 == 0 { 'D' } else { 'S' };
        std::fs::write(
            d.join("stat"),
            format!("{} (worker {i}) {state} 1 2 3", 1000 + i),
        )
        .unwrap();
        std::fs::write(d.join("schedstat"), "100 200 7\n").unwrap();
        std::fs::write(d.join("wchan"), "io_schedule").unwrap();
    }
}

fn time(w: &mut Watcher, scans: u64) -> f64 {
    let t = Instant::now();
    for i in 0..scans {
        w.scan(i * 1000, &mut |_| {});
    }
    t.elapsed().as_secs_f64() / scans as f64
}

fn main() {
    for n in [1000, 4000] {
        let dir = tempfile::tempdir().unwrap();
        fake_proc(dir.path(), n);
        let mut w = Watcher::new(dir.path().to_str().unwrap(), 10_000, 60_000);
        w.scan(0, &mut |_| {});
        let per = time(&mut w, 50);
        println!(
            "synthetic /proc, {n} threads ({} in D): {:.2} ms per scan, {:.2} ms per 1000 threads",
            w.in_d,
            per * 1e3,
            per * 1e3 * 1000.0 / n as f64
        );
    }
    let mut w = Watcher::new("/proc", 10_000, 60_000);
    w.scan(0, &mut |_| {});
    let per = time(&mut w, 200);
    println!(
        "real /proc, {} threads: {:.3} ms per scan, {:.2} ms per 1000 threads",
        w.threads,
        per * 1e3,
        per * 1e3 * 1000.0 / w.threads.max(1) as f64
    );
}
