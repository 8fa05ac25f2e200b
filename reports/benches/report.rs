//! Times `hilt report` on a synthetic run of 1,000 iterations (500 per
//! variant, 120 s each, realistic read histograms and a full events.jsonl;
//! deadlocks, stalls and unclassified hangs, and a named signature):
//! loading, `build_report` (statistics, bootstrap, timelines) and
//! `write_report` (every plot as SVG and PNG, HTML, Markdown, JUnit, JSON, KCIDB).
//!
//!     CARGO_TARGET_DIR=/tmp/target-reports cargo bench -p hilt-reports --bench report

use std::time::{Duration, Instant};

use hilt_reports::synth::{write_run, SynthRun, SynthVariant};
use hilt_reports::{build_report, load_run, write_report, ReportOptions};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let root = tempfile::tempdir().expect("temporary directory");
    let run_dir = root.path().join("run");
    let mut spec = SynthRun::new(
        "erofs-noio-ab",
        2026,
        vec![
            SynthVariant::new("unpatched", 500)
                .deadlocks(120)
                .hangs(20)
                .stalls(30)
                .silent_hangs(20)
                .crashes(3)
                .infra_errors(6)
                .decompress_median_us(400.0)
                .stack_signatures(&["erofs_decompress_in_bio_completion"]),
            SynthVariant::new("patched", 500)
                .deadlocks(4)
                .stalls(12)
                .infra_errors(5)
                .read_median_us(3200.0)
                .decompress_median_us(430.0),
        ],
    );
    spec.expect_absent("erofs_decompress_in_bio_completion", "patched");
    spec.duration_s = 120;
    spec.reads_per_iteration = 12_000;
    spec.boards = vec!["board-a".into(), "board-b".into(), "board-c".into()];
    let t = Instant::now();
    write_run(&run_dir, &spec).expect("synthetic run");
    let events_mb = std::fs::metadata(run_dir.join("events.jsonl"))
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(0.0);
    println!(
        "generated 1000 iterations ({events_mb:.0} MB of events) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let opts = ReportOptions::default();
    let (mut load, mut build, mut write, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..3 {
        let out = root.path().join(format!("report-{i}"));
        let t0 = Instant::now();
        let run = load_run(&run_dir).expect("load");
        let t1 = Instant::now();
        let report = build_report(std::hint::black_box(&[run]), &opts).expect("build");
        let t2 = Instant::now();
        write_report(&report, &out).expect("write");
        let t3 = Instant::now();
        load.push(t1 - t0);
        build.push(t2 - t1);
        write.push(t3 - t2);
        total.push(t3 - t0);
        if i == 0 {
            println!("{}", report.verdict.headline);
            println!(
                "{} timelines, {} iteration rows",
                report.timelines.len(),
                report.iterations.len()
            );
        }
    }
    println!(
        "load_run      {:>8.3} s (median of 3)",
        median(load).as_secs_f64()
    );
    println!("build_report  {:>8.3} s", median(build).as_secs_f64());
    println!("write_report  {:>8.3} s", median(write).as_secs_f64());
    println!("total         {:>8.3} s", median(total).as_secs_f64());
}
