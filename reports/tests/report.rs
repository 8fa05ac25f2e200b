//! Reports built from synthetic results directories with known outcomes,
//! and from a real one recorded on the emulated board.

use std::path::Path;

use hilt_reports::synth::{write_run, SynthRun, SynthVariant};
use hilt_reports::{
    build_report, load_run, write_report, Outcome, Report, ReportOptions, TimelineSelection,
};
use quick_xml::events::Event;

fn fixed_patch(dir: &Path) {
    // The example: every unpatched iteration hangs (6 deadlocks, 2
    // silent hangs), no patched one does though one stalls and recovers,
    // one patched iteration is lost to the infrastructure.
    let spec = SynthRun::new(
        "erofs-noio-ab",
        7,
        vec![
            SynthVariant::new("unpatched", 8)
                .deadlocks(6)
                .silent_hangs(2)
                .decompress_median_us(400.0)
                .decompress_direct_fraction(0.3)
                .stack_signatures(&["erofs_decompress_in_bio_completion"]),
            SynthVariant::new("patched", 8)
                .infra_errors(1)
                .stalls(1)
                .read_median_us(3300.0)
                .decompress_median_us(420.0),
        ],
    );
    write_run(dir, &spec).unwrap();
}

/// Fails, listing them, unless one of the verdict's details starts with `prefix`.
#[track_caller]
fn assert_detail(r: &Report, prefix: &str) {
    assert!(
        r.verdict.details.iter().any(|d| d.starts_with(prefix)),
        "no detail starts with {prefix:?}: {:?}",
        r.verdict.details
    );
}

fn quick() -> ReportOptions {
    ReportOptions {
        bootstrap: hilt_reports::stats::latency::BootstrapOptions {
            resamples: 200,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn the_verdict_answers_whether_the_patch_fixed_it() {
    let d = tempfile::tempdir().unwrap();
    fixed_patch(d.path());
    let run = load_run(d.path()).unwrap();
    let r = build_report(&[run], &quick()).unwrap();
    // The named signature is the question: its verdict is the headline, the
    // hang-rate comparison follows.
    assert_eq!(
        r.verdict.headline,
        "erofs_decompress_in_bio_completion: removed in patched (unpatched 8/8 deadlocks, patched 0/7; anytime-valid p ≤ 0.0028, α = 0.05)"
    );
    assert_eq!(
        r.verdict.details[0],
        "patched: 0/7 hangs [0–35%] vs unpatched 8/8 hangs [68–100%], Fisher p = 0.00016"
    );
    assert_eq!(r.baseline.as_deref(), Some("unpatched"));
    let sv = &r.signature_verdicts;
    assert_eq!(sv.len(), 1);
    assert_eq!(
        (
            sv[0].baseline_deadlocks,
            sv[0].baseline_valid,
            sv[0].variant_deadlocks,
            sv[0].variant_valid
        ),
        (8, 8, 0, 7)
    );
    assert_eq!(sv[0].met, None, "the records state no expectation");
    let c = &r.comparisons[0];
    assert!(c.significant);
    assert!((c.fisher_p.unwrap() - 0.0001554001554001554).abs() < 1e-12);
    assert_eq!(c.sample_size_observed.unwrap().exact, Some(4));
    assert!(
        r.verdict.details[1].starts_with("patched hangs less than unpatched"),
        "{:?}",
        r.verdict.details
    );
    // One decompression-path line per variant, last.
    assert_detail(
        &r,
        "unpatched: decompression path (z_erofs_decompress_queue) p50",
    );
    assert_detail(&r, "Read latency p99: patched");
    assert_detail(&r, "Decompression latency p99");
    let un = &r.variants[0];
    assert_eq!(
        (
            un.counts.valid,
            un.counts.deadlocks,
            un.counts.hangs,
            un.counts.silent_hangs,
            un.counts.stalls
        ),
        (8, 6, 0, 2, 0)
    );
    let km = un.time_to_hang.as_ref().unwrap();
    assert_eq!((km.n, km.events), (8, 8));
    assert!(km.median.is_some());
    let pa = &r.variants[1];
    assert_eq!(
        (pa.counts.valid, pa.counts.infra_errors, pa.counts.stalls),
        (7, 1, 1)
    );
    // A stall recovered: not a hang, not an event of the survival curve.
    assert_eq!(pa.counts.all_hangs(), 0);
    assert_eq!(pa.stall_rate, Some(1.0 / 7.0));
    assert_eq!(pa.time_to_hang.as_ref().unwrap().events, 0);
    // Both signatures, counted per variant.
    let titles: Vec<&str> = r.signatures.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "INFO: task hung in mmc_blk_rw_wait",
            "silent hang: no agent heartbeat and no console output for 60 s"
        ]
    );
    assert_eq!(r.signatures[0].counts["unpatched"], 6);
    assert_eq!(r.signatures[0].counts["patched"], 1, "the stall");
    // Auto timelines: every failure (the stall too) and one pass per
    // variant that has one.
    assert_eq!(r.timelines.len(), 10);
    let hung = r
        .timelines
        .iter()
        .find(|t| t.outcome == Outcome::Deadlock)
        .unwrap();
    assert!(hung.points.len() > 10);
    assert!(hung
        .marks
        .iter()
        .any(|m| m.failure && m.label == "deadlock detected"));
    // Deadlocks and stalls carry what the window saw.
    let stall = r
        .iterations
        .iter()
        .find(|i| i.outcome == Outcome::Stall)
        .unwrap();
    let w = stall.hang.as_ref().unwrap();
    assert!(w.resumed_after_ms.is_some() && !w.waiters.is_empty());
    assert!(r
        .iterations
        .iter()
        .filter(|i| i.outcome == Outcome::Deadlock)
        .all(|i| i
            .hang
            .as_ref()
            .is_some_and(|w| w.resumed_after_ms.is_none())));
    assert!(hung
        .marks
        .iter()
        .any(|m| m.failure && m.label == "INFO: task hung in mmc_blk_rw_wait"));
    // The plan's named stack signature, per variant.
    assert_eq!(un.stack_signatures["erofs_decompress_in_bio_completion"], 8);
    assert!(r.variants[1].stack_signatures.is_empty());
    // The named signature is the question: its verdict is the headline.
    let sig = &r.verdict.headline;
    assert!(
        sig.starts_with("erofs_decompress_in_bio_completion: ")
            && sig.contains("unpatched 8/8 deadlocks")
            && sig.contains("patched 0/7"),
        "{sig}"
    );
    let v = &r.signature_verdicts[0];
    assert_eq!((v.baseline_deadlocks, v.variant_deadlocks), (8, 0));
    assert!(v.p_value < 1.0, "{}", v.sentence);
    assert!(un.decompress_calls_elsewhere > 0 && r.variants[1].decompress_calls_elsewhere == 0);
    // Provenance from run.json.
    assert_eq!(r.runs[0].plan, "erofs-noio-ab");
    assert_eq!(r.runs[0].plan_sha256.len(), 64);
    assert_eq!(r.runs[0].boards_seen, ["qemu-virt-a53"]);
    assert!(r.runs[0].verity_root_hash.is_some());
    assert_eq!(un.kernel_image_sha256.len(), 64);
}

#[test]
fn an_interrupted_run_with_a_torn_line_and_no_summary_still_reports() {
    let d = tempfile::tempdir().unwrap();
    let mut spec = SynthRun::new(
        "p",
        3,
        vec![
            SynthVariant::new("a", 5).hangs(2),
            SynthVariant::new("b", 5),
        ],
    );
    spec.stop_after = Some(7);
    spec.torn_last_line = true;
    spec.summary = false;
    write_run(d.path(), &spec).unwrap();
    let run = load_run(d.path()).unwrap();
    assert_eq!(run.records.len(), 6, "the torn 7th record is dropped");
    assert!(
        run.warnings.iter().any(|w| w.contains("torn last line")),
        "{:?}",
        run.warnings
    );
    assert!(
        run.warnings.iter().any(|w| w == "summary.json is missing"),
        "{:?}",
        run.warnings
    );
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("4 of 10 planned iterations have no result")),
        "{:?}",
        run.warnings
    );
    assert!(run.interrupted());
    let r = build_report(&[run], &quick()).unwrap();
    let missing: u32 = r.variants.iter().map(|v| v.counts.missing).sum();
    assert_eq!(missing, 4);
    assert_eq!(r.iterations.len(), 10);
    assert_eq!(r.iterations.iter().filter(|i| !i.recorded).count(), 4);
    assert!(r.runs[0].interrupted);
}

#[test]
fn damage_before_the_last_line_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write_run(
        d.path(),
        &SynthRun::new("p", 3, vec![SynthVariant::new("a", 3)]),
    )
    .unwrap();
    let path = d.path().join("results.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[0] = "{\"version\":1,\"variant\":";
    std::fs::write(&path, lines.join("\n")).unwrap();
    let err = load_run(d.path()).unwrap_err();
    assert!(format!("{err:#}").contains("line 1"), "{err:#}");
}

#[test]
fn comparing_runs_names_variants_by_run_when_they_clash() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("night1"), d.path().join("night2"));
    write_run(
        &a,
        &SynthRun::new("p", 1, vec![SynthVariant::new("patched", 10).hangs(5)]),
    )
    .unwrap();
    write_run(
        &b,
        &SynthRun::new("p", 2, vec![SynthVariant::new("patched", 10).hangs(1)]),
    )
    .unwrap();
    let runs = [load_run(&a).unwrap(), load_run(&b).unwrap()];
    let r = build_report(&runs, &quick()).unwrap();
    let labels: Vec<&str> = r.variants.iter().map(|v| v.label.as_str()).collect();
    assert_eq!(labels, ["night1/patched", "night2/patched"]);
    assert_eq!(r.title, "hilt compare: night1 vs night2");
    assert_eq!(r.comparisons.len(), 1);
    assert!(
        r.verdict.headline.starts_with("night2/patched: 1/10 hangs"),
        "{}",
        r.verdict.headline
    );
    // The baseline can be named by label; a bare variant name is ambiguous here.
    let opts = ReportOptions {
        baseline: Some("night2/patched".into()),
        ..quick()
    };
    assert_eq!(
        build_report(&runs, &opts).unwrap().comparisons[0].variant,
        "night1/patched"
    );
    let opts = ReportOptions {
        baseline: Some("patched".into()),
        ..quick()
    };
    assert!(format!("{:#}", build_report(&runs, &opts).unwrap_err()).contains("ambiguous"));
    let opts = ReportOptions {
        baseline: Some("nope".into()),
        ..quick()
    };
    assert!(build_report(&runs, &opts).is_err());
}

#[derive(Default, Debug)]
struct JunitCounts {
    suites: usize,
    cases: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    names: Vec<(String, String)>,
    failure_texts: Vec<String>,
    /// (testcase name, failure type, failure message)
    failure_attrs: Vec<(String, String, String)>,
}

fn parse_junit(xml: &str) -> JunitCounts {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut c = JunitCounts::default();
    let mut in_failure = false;
    let mut case = String::new();
    loop {
        match reader.read_event().expect("junit.xml is well-formed XML") {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let attr = |k: &[u8]| {
                    e.attributes()
                        .map(|a| a.unwrap())
                        .find(|a| a.key.as_ref() == k)
                        .map(|a| a.unescape_value().unwrap().into_owned())
                        .unwrap_or_default()
                };
                match e.name().as_ref() {
                    b"testsuite" => c.suites += 1,
                    b"testcase" => {
                        c.cases += 1;
                        case = attr(b"name");
                        c.names.push((attr(b"classname"), attr(b"name")));
                    }
                    b"failure" => {
                        c.failures += 1;
                        in_failure = true;
                        assert!(!attr(b"message").is_empty());
                        c.failure_attrs
                            .push((case.clone(), attr(b"type"), attr(b"message")));
                    }
                    b"error" => c.errors += 1,
                    b"skipped" => c.skipped += 1,
                    _ => {}
                }
            }
            Event::Text(t) if in_failure => {
                c.failure_texts.push(t.unescape().unwrap().into_owned());
                in_failure = false;
            }
            _ => {}
        }
    }
    c
}

fn non_white_pixels(path: &Path) -> (usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    let mut dark = 0;
    for p in buf[..info.buffer_size()].chunks(px) {
        colours.insert((p[0], p[1], p[2]));
        if p[..3].iter().any(|&c| c < 200) {
            dark += 1;
        }
    }
    (dark, colours.len())
}

#[test]
fn every_output_is_written_and_well_formed() {
    let d = tempfile::tempdir().unwrap();
    let run_dir = d.path().join("run");
    fixed_patch(&run_dir);
    // Escapes and control characters in a failure excerpt must not break XML or HTML.
    let results = run_dir.join("results.jsonl");
    let text = std::fs::read_to_string(&results).unwrap().replacen(
        "Call trace:",
        "Call <trace> & \\u001b[31m\\u0007 \\\"q\\\"",
        1,
    );
    std::fs::write(&results, text).unwrap();
    let r = build_report(&[load_run(&run_dir).unwrap()], &quick()).unwrap();
    let out = d.path().join("report");
    write_report(&r, &out).unwrap();

    let junit = parse_junit(&std::fs::read_to_string(out.join("junit.xml")).unwrap());
    assert_eq!(
        (
            junit.suites,
            junit.cases,
            junit.failures,
            junit.errors,
            junit.skipped
        ),
        (3, 17, 9, 1, 0),
        "a suite and a case for the signature verdict; the stall fails too"
    );
    assert!(junit.names.contains(&(
        "signature verdicts".into(),
        "erofs_decompress_in_bio_completion: patched vs unpatched".into()
    )));
    assert!(junit
        .names
        .contains(&("unpatched".into(), "iteration-0".into())));
    assert!(junit
        .names
        .contains(&("patched".into(), "iteration-7".into())));
    assert!(
        junit
            .failure_texts
            .iter()
            .any(|t| t.contains("Call <trace> & ") && !t.contains('\u{7}')),
        "{:?}",
        junit.failure_texts
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["variants"][0]["counts"]["valid"], 8);
    assert_eq!(json["variants"][0]["counts"]["deadlocks"], 6);
    assert_eq!(json["variants"][1]["counts"]["stalls"], 1);
    assert_eq!(
        json["signature_verdicts"][0]["conclusion"], "removed",
        "report.json carries the signature verdicts"
    );
    assert!(json["iterations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["outcome"] == "stall" && i["hang"]["resumed_after_ms"].is_u64()));
    assert!(json["comparisons"][0]["fisher_p"].as_f64().unwrap() < 0.001);
    let back: hilt_reports::Report = serde_json::from_value(json).unwrap();
    assert_eq!(back.verdict, r.verdict);

    let k: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kcidb.json")).unwrap()).unwrap();
    assert_eq!(k["version"]["major"], 5);
    assert_eq!(k["builds"].as_array().unwrap().len(), 2);
    let tests = k["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 16);
    let status = |s: &str| tests.iter().filter(|t| t["status"] == s).count();
    assert_eq!((status("PASS"), status("FAIL"), status("ERROR")), (6, 9, 1));
    for t in tests {
        assert!(t["id"].as_str().unwrap().starts_with("hilt:"));
        assert!(k["builds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == t["build_id"]));
        assert!(
            t.as_object().unwrap().values().all(|v| !v.is_null()),
            "KCIDB allows no nulls at the top of a test: {t}"
        );
    }

    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains(&r.verdict.headline));
    assert!(md.contains("| unpatched | `6.1.0-"), "{md}");

    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("&lt;trace&gt; &amp;"));
    assert!(!html.contains("<trace>"));
    assert!(
        !html.contains("<?xml"),
        "inline SVG must not carry an XML declaration"
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "the page must be self-contained"
    );
    // hang rate, named signatures, read and decompression latency, time to hang.
    assert_eq!(html.matches("<svg").count(), 5 + r.timelines.len());
    assert!(html.contains("href=\"../run/iterations/unpatched-000/console.log\""));
    assert!(html.contains("<td class=\"mono\">erofs_decompress_in_bio_completion</td><td class=\"num\">8/8</td><td class=\"num\">0/7</td>"));

    for f in [
        "hang_rate",
        "signature_deadlocks",
        "read_latency",
        "decompress_latency",
        "time_to_hang",
    ] {
        let (dark, colours) = non_white_pixels(&out.join(format!("plots/{f}.png")));
        assert!(
            dark > 2000 && colours > 20,
            "{f}.png looks blank: {dark} dark pixels, {colours} colours"
        );
        assert!(std::fs::read_to_string(out.join(format!("plots/{f}.svg")))
            .unwrap()
            .contains("<svg"));
    }
}

#[test]
fn a_real_run_from_the_emulated_board() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/run1");
    let run = load_run(&dir).unwrap();
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    assert_eq!(run.records.len(), 4);
    let opts = ReportOptions {
        timelines: TimelineSelection::All,
        ..quick()
    };
    let r = build_report(&[run], &opts).unwrap();
    assert_eq!(
        r.verdict.headline,
        "patched: 0/2 hangs [0–66%] vs unpatched 0/2 hangs [0–66%], Fisher p = 1"
    );
    assert!(
        r.verdict.details[0].starts_with("Neither variant hung"),
        "{:?}",
        r.verdict.details
    );
    let v = &r.variants[0];
    assert_eq!(v.kernel_package, "linux-image-6.1.0-44-arm64=6.1.164-1");
    assert_eq!(
        v.kernel_image_sha256,
        "542b5bc5cb9afe63ecbcfc54ffcbb11b5f5788939322cf308abd02580605c717"
    );
    assert_eq!(
        r.runs[0].verity_root_hash.as_deref(),
        Some("5a1f3cd6d28a21beb881141fc5c9a200c91e5ddc4aea59afac0668eab2ad634a")
    );
    // The harness's own summary.json and the report agree on the merged percentiles.
    let lat = v.read_latency.as_ref().unwrap();
    assert_eq!(
        (
            lat.samples,
            lat.quantile("p50").unwrap().value_us,
            lat.quantile("p99").unwrap().value_us
        ),
        (4777, 3455, 24063)
    );
    assert!(v.decompress_latency.is_none(), "not measured by this agent");
    assert_eq!(r.timelines.len(), 4);
    assert!(r
        .timelines
        .iter()
        .all(|t| t.points.len() > 10 && t.marks.is_empty()));
    let out = tempfile::tempdir().unwrap();
    write_report(&r, out.path()).unwrap();
    assert!(out.path().join("plots/timeline_unpatched_000.png").exists());
    assert!(!out.path().join("plots/decompress_latency.png").exists());
}

#[test]
fn a_run_that_finished_nothing_says_so() {
    let d = tempfile::tempdir().unwrap();
    let mut spec = SynthRun::new(
        "p",
        1,
        vec![SynthVariant::new("a", 3), SynthVariant::new("b", 3)],
    );
    spec.stop_after = Some(0);
    write_run(d.path(), &spec).unwrap();
    let run = load_run(d.path()).unwrap();
    assert!(run.records.is_empty());
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("6 of 6 planned iterations have no result")),
        "{:?}",
        run.warnings
    );
    let r = build_report(&[run], &quick()).unwrap();
    assert_eq!(
        r.verdict.headline,
        "No iteration finished with a kernel verdict yet."
    );
    assert_eq!(
        r.verdict.details,
        [
            "a: 0 infrastructure errors, 0 not run, 3 without a result.",
            "b: 0 infrastructure errors, 0 not run, 3 without a result."
        ]
    );
    let out = d.path().join("report");
    write_report(&r, &out).unwrap();
    assert!(out.join("plots/hang_rate.png").exists());
    assert!(!out.join("plots/time_to_hang.png").exists());
    let junit = parse_junit(&std::fs::read_to_string(out.join("junit.xml")).unwrap());
    assert_eq!((junit.cases, junit.skipped), (6, 6));
    let k: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kcidb.json")).unwrap()).unwrap();
    assert!(k["tests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "MISS"));
}

#[test]
fn a_single_variant_gets_its_rate_and_any_timeline_can_be_asked_for() {
    let d = tempfile::tempdir().unwrap();
    write_run(
        d.path(),
        &SynthRun::new("p", 9, vec![SynthVariant::new("only", 6).hangs(2)]),
    )
    .unwrap();
    let run = load_run(d.path()).unwrap();
    let hung = run
        .records
        .iter()
        .find(|r| r.outcome == Outcome::Hang)
        .unwrap()
        .iteration;
    let opts = ReportOptions {
        timelines: TimelineSelection::Only(vec![("only".into(), hung)]),
        ..quick()
    };
    let r = build_report(&[run], &opts).unwrap();
    assert!(
        r.verdict.headline.starts_with("only: 2/6 hangs [9.7–70%]"),
        "{}",
        r.verdict.headline
    );
    assert!(r.comparisons.is_empty());
    assert_eq!(r.timelines.len(), 1);
    assert_eq!(
        (r.timelines[0].iteration, r.timelines[0].outcome),
        (hung, Outcome::Hang)
    );
    // Unclassified hangs only (no deadlock window): the figure does not
    // claim there were no stalls.
    let out = d.path().join("report");
    write_report(&r, &out).unwrap();
    let svg = std::fs::read_to_string(out.join("plots/hang_rate.svg")).unwrap();
    assert!(
        svg.contains("told apart") && !svg.contains("stalled"),
        "{svg}"
    );
}

#[test]
fn positive_controls_count_in_no_statistic_and_a_missed_one_invalidates_the_run() {
    let d = tempfile::tempdir().unwrap();
    let run_dir = d.path().join("run");
    let spec = SynthRun::new(
        "p",
        21,
        vec![
            SynthVariant::new("unpatched", 6).hangs(3).control(true),
            SynthVariant::new("patched", 6).control(false),
        ],
    );
    assert_eq!(
        spec.order()[0].control.as_deref(),
        Some("swap_freeze"),
        "controls run first"
    );
    write_run(&run_dir, &spec).unwrap();
    let run = load_run(&run_dir).unwrap();
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    assert_eq!(run.records.len(), 14);
    let opts = ReportOptions {
        timelines: TimelineSelection::All,
        ..quick()
    };
    let r = build_report(&[run], &opts).unwrap();
    assert_eq!(
        (r.variants[0].counts.valid, r.variants[0].counts.hangs),
        (6, 3),
        "the control's hang is not counted"
    );
    assert_eq!(r.iterations.len(), 12);
    assert_eq!(r.valid, Some(false));
    assert_eq!(r.verdict.headline, "RUN INVALID: positive control not detected (swap_freeze on patched): no hang count of this run can be trusted.");
    assert!(
        r.verdict.details[0].starts_with("patched: 0/6 hangs"),
        "{:?}",
        r.verdict.details
    );
    let detected: Vec<(&str, bool)> = r
        .controls
        .iter()
        .map(|c| (c.label.as_str(), c.detected))
        .collect();
    assert_eq!(detected, [("unpatched", true), ("patched", false)]);
    // Iteration 0 shares (variant, iteration) with the control in
    // events.jsonl: its timeline must hold its own boot only.
    for t in &r.timelines {
        assert!(
            t.points.windows(2).all(|w| w[0].t_s < w[1].t_s),
            "{} #{} mixes two boots",
            t.label,
            t.iteration
        );
        let rec = r
            .iterations
            .iter()
            .find(|i| i.label == t.label && i.iteration == t.iteration)
            .unwrap();
        assert_eq!(t.outcome, rec.outcome);
    }
    assert_eq!(r.timelines.len(), 12);

    let out = d.path().join("report");
    write_report(&r, &out).unwrap();
    let junit = parse_junit(&std::fs::read_to_string(out.join("junit.xml")).unwrap());
    assert_eq!((junit.suites, junit.cases, junit.failures), (3, 14, 3 + 1));
    assert!(junit
        .names
        .contains(&("patched".into(), "control-swap_freeze".into())));
    let k: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kcidb.json")).unwrap()).unwrap();
    let ctl: Vec<&str> = k["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["path"].as_str().unwrap().ends_with("control_swap_freeze"))
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(ctl, ["PASS", "FAIL"]);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("class=\"verdict bad\""));
    assert!(html.contains("swap_freeze on patched: NOT DETECTED"));

    // Detected everywhere: the run is valid and says so.
    let ok_dir = d.path().join("ok");
    write_run(
        &ok_dir,
        &SynthRun::new(
            "p",
            22,
            vec![
                SynthVariant::new("a", 3).control(true),
                SynthVariant::new("b", 3).control(true),
            ],
        ),
    )
    .unwrap();
    let r = build_report(&[load_run(&ok_dir).unwrap()], &quick()).unwrap();
    assert_eq!(r.valid, Some(true));
    assert_detail(
        &r,
        "Positive controls detected (swap_freeze on a, swap_freeze on b)",
    );
}

const SEED: &str = "erofs_decompress_in_bio_completion";
const NO_PROBE: &str = "z_erofs_decompress_queue: no such kprobe symbol";

/// A plan that expects its seed signature gone from the patched kernel,
/// a patched kernel that still deadlocks with it once and stalls three
/// times, and an agent that could not probe its decompression path.
fn broken_patch(dir: &Path) {
    let mut spec = SynthRun::new(
        "erofs-noio-ab",
        11,
        vec![
            SynthVariant::new("unpatched", 12)
                .deadlocks(6)
                .stalls(2)
                .silent_hangs(1)
                .decompress_median_us(400.0)
                .stack_signatures(&[SEED]),
            SynthVariant::new("patched", 12)
                .deadlocks(1)
                .stalls(3)
                .stack_signatures(&[SEED])
                .decompress_probe_error(NO_PROBE),
        ],
    );
    spec.events = false;
    spec.reads_per_iteration = 400;
    spec.expect_absent(SEED, "patched");
    write_run(dir, &spec).unwrap();
}

#[test]
fn deadlocks_and_stalls_are_counted_and_shown_apart_everywhere() {
    let d = tempfile::tempdir().unwrap();
    let run_dir = d.path().join("run");
    broken_patch(&run_dir);
    let r = build_report(&[load_run(&run_dir).unwrap()], &quick()).unwrap();
    let (un, pa) = (&r.variants[0], &r.variants[1]);
    assert_eq!(
        (
            un.counts.deadlocks,
            un.counts.stalls,
            un.counts.silent_hangs,
            un.counts.hangs
        ),
        (6, 2, 1, 0)
    );
    assert_eq!((pa.counts.deadlocks, pa.counts.stalls), (1, 3));
    let v = &r.signature_verdicts[0];
    assert_eq!(
        (
            v.baseline_deadlocks,
            v.variant_deadlocks,
            v.baseline_stalls,
            v.variant_stalls
        ),
        (7, 1, 2, 3),
        "silent hangs with the signature count as deadlocks; stalls apart"
    );
    assert_eq!(v.met, Some(false));
    assert_eq!(r.verdict.headline, v.sentence);
    let out = d.path().join("report");
    write_report(&r, &out).unwrap();

    // HTML: the verdict table first, flagged; counts apart; the decompression line either way.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let table = html
        .find("<table class=\"sigs\">")
        .expect("the signature verdict table");
    assert!(
        table < html.find("id=\"fig-hang_rate\"").unwrap(),
        "the verdicts come first"
    );
    assert!(
        html.contains("class=\"verdict bad\""),
        "a failed expectation is red"
    );
    assert!(
        html.contains(&format!(
            "<tr class=\"unmet\"><td class=\"mono\">{SEED}</td>"
        )),
        "the row that breaks the expectation is flagged"
    );
    assert!(html.contains(
        "<td class=\"num\">7/12</td><td class=\"num\">1/12</td><td class=\"num\">2 / 3</td>"
    ));
    assert!(html.contains("<td class=\"unmet\">✗ NOT MET: expected absent in patched</td>"));
    assert!(html.contains(&format!(
        "<p class=\"nodecomp\">patched: NO decompression-path latency: {NO_PROBE} (12×).</p>"
    )));
    assert!(html.contains(
        "<p class=\"decomp\">unpatched: decompression path (z_erofs_decompress_queue) p50 "
    ));
    assert!(html.contains(
        "<th>deadlocks</th><th>stalls</th><th>unclassified hangs</th><th>silent hangs</th>"
    ));
    assert!(
        html.contains("<td class=\"num\">12</td><td class=\"num\">6</td><td class=\"num\">2</td><td class=\"num\">0</td><td class=\"num\">1</td>"),
        "unpatched: valid, deadlocks, stalls, unclassified, silent"
    );
    assert!(html.contains("<td class=\"stall\">stall</td>"));
    assert!(html.contains("<td class=\"deadlock\">deadlock</td>"));
    assert!(html.contains("<b>resumed after "));
    assert!(html.contains("<b>no progress for the whole 2 min 00 s window</b>"));
    assert!(html.contains("waiters: <code>kworker/u4:2:61</code> in <code>mmc_blk_rw_wait</code>"));
    assert!(html.contains("id=\"fig-signature_deadlocks\""));
    // The figures: hang and stall bars apart; the signature plot with its verdict.
    let rate_svg = std::fs::read_to_string(out.join("plots/hang_rate.svg")).unwrap();
    assert!(
        rate_svg.contains("7/12 hung")
            && rate_svg.contains("2/12 stalled")
            && rate_svg.contains("3/12 stalled")
    );
    let sig_svg = std::fs::read_to_string(out.join("plots/signature_deadlocks.svg")).unwrap();
    assert!(sig_svg.contains("1/12 (+3 stalls)"), "{sig_svg}");
    assert!(sig_svg.contains("NOT AS EXPECTED (absent in patched)"));
    let dec_svg = std::fs::read_to_string(out.join("plots/decompress_latency.svg")).unwrap();
    assert!(dec_svg.contains("patched: NO decompression-path latency"));
    for f in ["hang_rate", "signature_deadlocks", "decompress_latency"] {
        let (dark, colours) = non_white_pixels(&out.join(format!("plots/{f}.png")));
        assert!(dark > 2000 && colours > 20, "{f}.png looks blank");
    }

    // Markdown: the same table under the headline, counts apart, both decompression lines.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let row = format!(
        "| `{SEED}` | patched vs unpatched | 7/12 | 1/12 | 2 / 3 | ≤ {} | not decided yet | **✗ NOT MET: expected absent in patched** |",
        hilt_reports::text::p_value(v.p_value)
    );
    assert!(md.contains(&row), "{md}");
    assert!(md.find(&row).unwrap() < md.find("| variant | kernel |").unwrap());
    assert!(md.contains(&format!(
        "- patched: NO decompression-path latency: {NO_PROBE} (12×)."
    )));
    assert!(md.contains("- unpatched: decompression path (z_erofs_decompress_queue) p50 "));
    assert!(
        md.contains("| unpatched | `6.1.0-6-arm64` | 12 | 6 | 2 | 0 | 1 | 0 | 0 |"),
        "{md}"
    );
    assert!(md.contains("| kworker/u4:2:61 in mmc_blk_rw_wait, hilt-reader:212 in folio_wait_bit_common | never (2 min 00 s window) |"));

    // JUnit: the outcome is the failure type; the verdict is a test case.
    let junit = parse_junit(&std::fs::read_to_string(out.join("junit.xml")).unwrap());
    let of_type = |t: &str| junit.failure_attrs.iter().filter(|f| f.1 == t).count();
    assert_eq!(
        (
            of_type("deadlock"),
            of_type("stall"),
            of_type("silent_hang"),
            of_type("hang")
        ),
        (7, 5, 1, 0)
    );
    assert!(junit
        .failure_attrs
        .iter()
        .filter(|f| f.1 == "stall")
        .all(|f| f.2.starts_with("stall, recovered after ")
            && f.2.ends_with(": INFO: task hung in mmc_blk_rw_wait")));
    assert!(junit
        .failure_texts
        .iter()
        .any(|t| t.contains("waiter: kworker/u4:2:61 in mmc_blk_rw_wait")));
    let sig = junit
        .failure_attrs
        .iter()
        .find(|f| f.1 == "signature_expectation")
        .expect("the broken expectation fails its test case");
    assert_eq!(sig.0, format!("{SEED}: patched vs unpatched"));
    assert_eq!(sig.2, v.sentence);

    // KCIDB: the kind of hang and the waiters in misc.
    let k: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kcidb.json")).unwrap()).unwrap();
    let tests = k["tests"].as_array().unwrap();
    let by_kind = |kind: &str| -> Vec<&serde_json::Value> {
        tests
            .iter()
            .filter(|t| t["misc"]["hang_kind"] == kind)
            .collect()
    };
    assert_eq!(
        (
            by_kind("deadlock").len(),
            by_kind("stall").len(),
            by_kind("silent").len()
        ),
        (7, 5, 1)
    );
    for t in by_kind("stall") {
        assert_eq!(t["status"], "FAIL");
        assert!(t["misc"]["resumed_after_ms"].as_u64().unwrap() > 0);
        assert_eq!(t["misc"]["waiters"][0]["task"], "kworker/u4:2:61");
        assert_eq!(t["misc"]["waiters"][0]["waits_in"], "mmc_blk_rw_wait");
    }
    for t in by_kind("deadlock") {
        assert_eq!(t["status"], "FAIL");
        assert!(t["misc"].get("resumed_after_ms").is_none());
        assert_eq!(t["misc"]["deadlock_window_ms"], 120_000);
        assert_eq!(t["misc"]["waiters"].as_array().unwrap().len(), 2);
    }
    assert!(tests
        .iter()
        .filter(|t| t["status"] == "PASS")
        .all(|t| t["misc"].get("hang_kind").is_none()));
}

#[test]
fn an_expectation_that_holds_turns_the_verdict_green() {
    let d = tempfile::tempdir().unwrap();
    let mut spec = SynthRun::new(
        "erofs-noio-ab",
        12,
        vec![
            SynthVariant::new("unpatched", 10)
                .deadlocks(10)
                .stack_signatures(&[SEED]),
            SynthVariant::new("patched", 10).stalls(2),
        ],
    );
    spec.events = false;
    spec.expect_absent(SEED, "patched");
    write_run(d.path(), &spec).unwrap();
    let r = build_report(&[load_run(d.path()).unwrap()], &quick()).unwrap();
    assert_eq!(
        r.signature_verdicts[0].met,
        Some(true),
        "{}",
        r.verdict.headline
    );
    let out = d.path().join("report");
    write_report(&r, &out).unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("class=\"verdict good\""));
    assert!(html.contains("<td class=\"met\">met: absent in patched</td>"));
    assert!(!html.contains("class=\"unmet\""));
    let junit = parse_junit(&std::fs::read_to_string(out.join("junit.xml")).unwrap());
    assert!(junit.names.contains(&(
        "signature verdicts".into(),
        format!("{SEED}: patched vs unpatched")
    )));
    assert_eq!(junit.failures, 10 + 2, "the verdict's test case passes");
    // Stalls do not raise the hang rate: patched hangs 0/10.
    assert_eq!(r.variants[1].counts.all_hangs(), 0);
    assert!(r.comparisons[0].significant);
}
