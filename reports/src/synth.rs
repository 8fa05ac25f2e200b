//! Synthetic results directories, for tests and benchmarks: the same files
//! the harness writes (run.json, results.jsonl, events.jsonl, summary.json,
//! plan.yaml, iterations/*/console.log), generated deterministically from a
//! seed, with exact numbers of hangs (unclassified), deadlocks, stalls,
//! silent hangs, crashes and infrastructure errors per variant. Deadlocks
//! and stalls carry what the deadlock window saw ([`HangWatch`]): who
//! waited on what, and for a stall when it resumed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Result;
use hilt_protocol::histo::new_histogram;
use hilt_protocol::LatencyHisto;
use serde_json::json;

use crate::load::Slot;
use crate::verdict::{Question, SignatureQuestion};
use crate::{Detector, Failure, HangWatch, IterationRecord, Outcome, Waiter, RESULTS_VERSION};

/// The positive control synthetic runs name: the harness's only one so far.
pub const CONTROL: &str = "swap_freeze";

#[derive(Debug, Clone)]
pub struct SynthVariant {
    pub name: String,
    pub kernel_package: String,
    pub kernel_release: String,
    pub iterations: u32,
    /// Hangs without a deadlock window (`Outcome::Hang`), as old records have.
    pub hangs: u32,
    /// Hangs that made no progress for the whole deadlock window.
    pub deadlocks: u32,
    /// Hangs that recovered within the deadlock window.
    pub stalls: u32,
    pub silent_hangs: u32,
    pub crashes: u32,
    pub infra_errors: u32,
    pub hang_title: String,
    /// Hangs are detected uniformly within this window after power-on (s).
    pub hang_window_s: (f64, f64),
    /// Read latency is log-normal with this median and log-sd.
    pub read_median_us: f64,
    pub read_sigma: f64,
    /// Decompression-path latency, when the variant measures it.
    pub decompress_median_us: Option<f64>,
    /// Why the agent could not probe the decompression path (recorded on
    /// every valid iteration when set).
    pub decompress_probe_error: Option<String>,
    /// The deadlock window deadlocks and stalls were watched for (s).
    pub deadlock_window_s: u64,
    /// A stall resumes uniformly within this time after detection (s).
    pub stall_resume_s: (f64, f64),
    /// Fraction of decompressions outside kworkers (in a bio completion).
    pub decompress_direct_fraction: f64,
    /// The plan's named stack signatures a hang of this variant shows.
    pub stack_signatures: Vec<String>,
    /// A positive control before the iterations: Some(true) when its
    /// injected hang is detected, Some(false) when it is not.
    pub control: Option<bool>,
}

impl SynthVariant {
    pub fn new(name: &str, iterations: u32) -> Self {
        let n = name.bytes().map(u32::from).sum::<u32>() % 50;
        Self {
            name: name.to_string(),
            kernel_package: format!("linux-image-6.1.0-{n}-arm64=6.1.{n}-1"),
            kernel_release: format!("6.1.0-{n}-arm64"),
            iterations,
            hangs: 0,
            deadlocks: 0,
            stalls: 0,
            silent_hangs: 0,
            crashes: 0,
            infra_errors: 0,
            hang_title: "INFO: task hung in mmc_blk_rw_wait".into(),
            hang_window_s: (20.0, 80.0),
            read_median_us: 3000.0,
            read_sigma: 0.9,
            decompress_median_us: None,
            decompress_probe_error: None,
            deadlock_window_s: 120,
            stall_resume_s: (5.0, 60.0),
            decompress_direct_fraction: 0.0,
            stack_signatures: Vec::new(),
            control: None,
        }
    }

    /// Runs the `swap_freeze` positive control first, detected or not.
    pub fn control(mut self, detected: bool) -> Self {
        self.control = Some(detected);
        self
    }

    pub fn stack_signatures(mut self, names: &[&str]) -> Self {
        self.stack_signatures = names.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn decompress_direct_fraction(mut self, f: f64) -> Self {
        self.decompress_direct_fraction = f;
        self
    }

    pub fn hangs(mut self, n: u32) -> Self {
        self.hangs = n;
        self
    }

    pub fn deadlocks(mut self, n: u32) -> Self {
        self.deadlocks = n;
        self
    }

    pub fn stalls(mut self, n: u32) -> Self {
        self.stalls = n;
        self
    }

    /// The agent could not probe the decompression path, for this reason.
    pub fn decompress_probe_error(mut self, why: &str) -> Self {
        self.decompress_probe_error = Some(why.into());
        self
    }

    pub fn silent_hangs(mut self, n: u32) -> Self {
        self.silent_hangs = n;
        self
    }

    pub fn crashes(mut self, n: u32) -> Self {
        self.crashes = n;
        self
    }

    pub fn infra_errors(mut self, n: u32) -> Self {
        self.infra_errors = n;
        self
    }

    pub fn read_median_us(mut self, us: f64) -> Self {
        self.read_median_us = us;
        self
    }

    pub fn decompress_median_us(mut self, us: f64) -> Self {
        self.decompress_median_us = Some(us);
        self
    }

    pub fn kernel(mut self, package: &str, release: &str) -> Self {
        self.kernel_package = package.into();
        self.kernel_release = release.into();
        self
    }
}

#[derive(Debug, Clone)]
pub struct SynthRun {
    pub plan: String,
    pub seed: u64,
    pub started_at: String,
    pub duration_s: u32,
    pub reads_per_iteration: u32,
    pub boards: Vec<String>,
    pub variants: Vec<SynthVariant>,
    /// Write events.jsonl (one interval record per second, heartbeats,
    /// kmsg noise, kernel reports).
    pub events: bool,
    pub summary: bool,
    /// Stop after this many iterations of the order, as an interrupted run.
    pub stop_after: Option<usize>,
    /// Leave half a record at the end of results.jsonl, as a power cut does.
    pub torn_last_line: bool,
    /// The plan's question, written to run.json; without it a report asks
    /// about the signatures the records name, expecting nothing.
    pub question: Option<Question>,
}

impl SynthRun {
    pub fn new(plan: &str, seed: u64, variants: Vec<SynthVariant>) -> Self {
        Self {
            plan: plan.into(),
            seed,
            started_at: "2026-11-21T02:00:00+00:00".into(),
            duration_s: 60,
            reads_per_iteration: 1500,
            boards: vec!["qemu-virt-a53".into()],
            variants,
            events: true,
            summary: true,
            stop_after: None,
            torn_last_line: false,
            question: None,
        }
    }

    /// Asks, as a plan that expects a fix does, whether `signature` is gone
    /// from `variant` (at α = 0.05, with no stopping rule).
    pub fn expect_absent(&mut self, signature: &str, variant: &str) {
        self.question = Some(Question {
            signatures: vec![SignatureQuestion {
                name: signature.into(),
                absent_in: Some(variant.into()),
            }],
            alpha: 0.05,
            max_iterations: None,
        });
    }

    /// The order boots run in: positive controls first, then rounds of
    /// every variant, shuffled within each round as the harness does.
    pub fn order(&self) -> Vec<Slot> {
        let mut rng = fastrand::Rng::with_seed(self.seed ^ 0x5eed);
        let rounds = self
            .variants
            .iter()
            .map(|v| v.iterations)
            .max()
            .unwrap_or(0);
        let mut out: Vec<Slot> = self
            .variants
            .iter()
            .filter(|v| v.control.is_some())
            .map(|v| Slot {
                variant: v.name.clone(),
                iteration: 0,
                control: Some(CONTROL.into()),
            })
            .collect();
        for i in 0..rounds {
            let mut round: Vec<Slot> = self
                .variants
                .iter()
                .filter(|v| i < v.iterations)
                .map(|v| Slot {
                    variant: v.name.clone(),
                    iteration: i,
                    control: None,
                })
                .collect();
            rng.shuffle(&mut round);
            out.extend(round);
        }
        out
    }
}

/// Writes the results directory `dir` (created if needed).
pub fn write_run(dir: &Path, spec: &SynthRun) -> Result<()> {
    std::fs::create_dir_all(dir.join("iterations"))?;
    let order = spec.order();
    let run_json = json!({
        "version": 1,
        "hilt_version": "0.1.0",
        "plan": spec.plan,
        "plan_path": format!("plans/{}.yaml", spec.plan),
        "plan_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(spec.plan.as_bytes())),
        "board": spec.boards[0],
        "started_at": spec.started_at,
        "host": "synth",
        "variants": spec.variants.iter().map(|v| json!({
            "name": v.name,
            "kernel_package": v.kernel_package,
            "kernel_release": v.kernel_release,
            "kernel_image_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(v.kernel_package.as_bytes())),
            "modules_loaded": ["erofs", "dm_verity", "sdhci_pci"],
            "modules_builtin": ["mmc_block"],
        })).collect::<Vec<_>>(),
        "media": {
            "dataset_bytes": 536870912u64, "dataset_files": 64, "erofs_bytes": 180355072u64,
            "erofs_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(format!("erofs-{}", spec.seed).as_bytes())),
            "verity_root_hash": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(format!("verity-{}", spec.seed).as_bytes())),
            "verity_salt": "00",
        },
        "order": order,
        "question": spec.question,
    });
    std::fs::write(dir.join("run.json"), serde_json::to_vec_pretty(&run_json)?)?;
    std::fs::write(
        dir.join("plan.yaml"),
        format!("name: {}\n# synthetic\n", spec.plan),
    )?;

    let mut rng = fastrand::Rng::with_seed(spec.seed);
    // Which iterations of each variant fail, and how: a seeded shuffle.
    let mut fates: Vec<Vec<Outcome>> = Vec::new();
    for v in &spec.variants {
        let mut f: Vec<Outcome> = std::iter::repeat_n(Outcome::Hang, v.hangs as usize)
            .chain(std::iter::repeat_n(Outcome::Deadlock, v.deadlocks as usize))
            .chain(std::iter::repeat_n(Outcome::Stall, v.stalls as usize))
            .chain(std::iter::repeat_n(
                Outcome::SilentHang,
                v.silent_hangs as usize,
            ))
            .chain(std::iter::repeat_n(Outcome::Crash, v.crashes as usize))
            .chain(std::iter::repeat_n(
                Outcome::InfraError,
                v.infra_errors as usize,
            ))
            .collect();
        f.resize(v.iterations as usize, Outcome::Pass);
        f.truncate(v.iterations as usize);
        rng.shuffle(&mut f);
        fates.push(f);
    }
    let mut results = std::io::BufWriter::new(std::fs::File::create(dir.join("results.jsonl"))?);
    let mut events = if spec.events {
        Some(std::io::BufWriter::new(std::fs::File::create(
            dir.join("events.jsonl"),
        )?))
    } else {
        None
    };
    let done = spec.stop_after.unwrap_or(order.len()).min(order.len());
    let mut records = Vec::new();
    for (k, slot) in order.iter().take(done).enumerate() {
        let vi = spec
            .variants
            .iter()
            .position(|v| v.name == slot.variant)
            .expect("order names a variant");
        let v = &spec.variants[vi];
        let board = spec.boards[k % spec.boards.len()].clone();
        let fate = match (&slot.control, v.control) {
            (Some(_), Some(true)) => Outcome::Hang,
            (Some(_), _) => Outcome::Pass,
            (None, _) => fates[vi][slot.iteration as usize],
        };
        let rec = one_iteration(
            dir,
            spec,
            v,
            slot,
            k,
            &board,
            fate,
            &mut rng,
            events.as_mut(),
        )?;
        let mut line = serde_json::to_vec(&rec)?;
        if spec.torn_last_line && k + 1 == done {
            line.truncate(line.len() / 2);
        } else {
            line.push(b'\n');
        }
        results.write_all(&line)?;
        records.push(rec);
    }
    results.flush()?;
    if let Some(e) = events.as_mut() {
        e.flush()?;
    }
    if spec.summary {
        let plain: Vec<IterationRecord> = records
            .iter()
            .filter(|r| r.control.is_none())
            .cloned()
            .collect();
        let controls: Vec<serde_json::Value> = records
            .iter()
            .filter(|r| r.control.is_some())
            .map(|r| json!({"variant": r.variant, "control": r.control, "detected": crate::report::control_detected(r), "detail": r.detail}))
            .collect();
        let summary = json!({
            "version": 1,
            "plan": spec.plan,
            "planned_iterations": order.len(),
            "finished_iterations": done,
            "interrupted": done < order.len(),
            "variants": crate::summarize(&plain),
            "controls": controls,
            "valid": (!controls.is_empty()).then(|| controls.iter().all(|c| c["detected"] == json!(true))),
        });
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_vec_pretty(&summary)?,
        )?;
    }
    Ok(())
}

fn lognormal(rng: &mut fastrand::Rng, median: f64, sigma: f64) -> f64 {
    let (u1, u2) = (rng.f64().max(1e-12), rng.f64());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    median * (sigma * z).exp()
}

fn histo(rng: &mut fastrand::Rng, n: u64, median: f64, sigma: f64) -> LatencyHisto {
    let mut h = new_histogram();
    for _ in 0..n {
        h.saturating_record(lognormal(rng, median, sigma).max(1.0) as u64);
    }
    LatencyHisto::from_hdr(&h)
}

#[allow(clippy::too_many_arguments)]
fn one_iteration(
    dir: &Path,
    spec: &SynthRun,
    v: &SynthVariant,
    slot: &Slot,
    k: usize,
    board: &str,
    fate: Outcome,
    rng: &mut fastrand::Rng,
    events: Option<&mut std::io::BufWriter<std::fs::File>>,
) -> Result<IterationRecord> {
    let iteration = slot.iteration;
    let boot_ms = 3000 + rng.u64(0..1000);
    let run_ms = spec.duration_s as u64 * 1000;
    let (detected_ms, wall_ms) = match fate {
        Outcome::Pass => (None, boot_ms + run_ms + 500 + rng.u64(0..300)),
        Outcome::InfraError => (None, 1000 + rng.u64(0..5000)),
        Outcome::NotRun => (None, 0),
        _ => {
            let (a, b) = v.hang_window_s;
            let t = ((a + rng.f64() * (b - a)) * 1000.0) as u64;
            let t = t.max(boot_ms + 2000);
            (Some(t), t + 5000)
        }
    };
    let hang = hang_watch(v, fate, rng);
    // Deadlocks are watched for the whole window, stalls until they resume.
    let wall_ms = wall_ms
        + hang
            .as_ref()
            .map_or(0, |h| h.resumed_after_ms.unwrap_or(h.window_ms));
    let running_ms = match fate {
        Outcome::InfraError => 0,
        _ => detected_ms
            .unwrap_or(boot_ms + run_ms)
            .saturating_sub(boot_ms),
    };
    let reads = spec.reads_per_iteration as u64 * running_ms / run_ms.max(1);
    let sigma = if fate.is_hang() {
        v.read_sigma + 0.3
    } else {
        v.read_sigma
    };
    let read_latency_us = histo(rng, reads, v.read_median_us, sigma);
    let decompress_latency_us = match v.decompress_median_us {
        Some(m) if reads > 0 => histo(rng, reads, m, 0.6),
        _ => LatencyHisto::default(),
    };
    let peak_psi = match fate {
        Outcome::Pass => 20.0 + rng.f64() * 30.0,
        Outcome::InfraError => 0.0,
        _ => 80.0 + rng.f64() * 15.0,
    };
    let swap_total_kb = 262_144u64;
    let peak_swap_kb = (swap_total_kb as f64 * peak_psi / 100.0) as u64;
    // The harness's directory names for iterations and controls.
    let dir_name = match &slot.control {
        Some(c) => format!("{}-control-{c}", v.name),
        None => format!("{}-{iteration:03}", v.name),
    };
    let console_rel = format!("iterations/{dir_name}/console.log");
    let idir = dir.join("iterations").join(&dir_name);
    std::fs::create_dir_all(&idir)?;
    let mut console = String::new();
    let _ = writeln!(
        console,
        "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]"
    );
    let _ = writeln!(
        console,
        "[    0.000000] Linux version {} (synthetic)",
        v.kernel_release
    );
    let failure = detected_ms.map(|t| {
        let uptime = t.saturating_sub(650);
        let (detector, title) = match fate {
            Outcome::SilentHang => (Detector::Silence, "silent hang: no agent heartbeat and no console output for 60 s".to_string()),
            Outcome::Crash => (Detector::Console, "BUG: unable to handle kernel paging request in z_erofs_decompress".to_string()),
            _ if slot.control.is_some() => (Detector::AgentKmsg, "INFO: task hung in dm_suspend".to_string()),
            _ => (Detector::AgentKmsg, v.hang_title.clone()),
        };
        let excerpt = format!(
            "{title}\nINFO: task kworker/u4:2:61 blocked for more than 10 seconds.\nCall trace:\n __switch_to+0xe4/0x150\n __schedule+0x2f0/0x7b0\n mmc_blk_rw_wait+0x8c/0x130\n z_erofs_decompress_queue+0x54/0x9c\n"
        );
        let _ = writeln!(console, "[{:>5}.{:06}] {}", uptime / 1000, (uptime % 1000) * 1000, excerpt.replace('\n', "\n[  ...] "));
        let f = json!({
            "detector": detector,
            "title": title,
            "task": "kworker/u4:2",
            "frames": ["mmc_blk_rw_wait", "z_erofs_decompress_queue"],
            "uptime_ms": (fate != Outcome::SilentHang).then_some(uptime),
            "detected_after_ms": t,
            "excerpt": excerpt,
            // The culprit stopped one hung-task timeout (10 s) before the report.
            "timing": {
                "stopped_ms": uptime.saturating_sub(10_000),
                "suspected_ms": uptime.saturating_sub(4_000),
                "confirmed_ms": uptime,
                "evidence_ms": uptime + 5_000,
            },
        });
        serde_json::from_value::<Failure>(f).expect("a synthetic failure is a valid Failure")
    });
    std::fs::write(idir.join("console.log"), console)?;
    if let Some(ev) = events {
        write_events(
            ev,
            v,
            iteration,
            fate,
            boot_ms,
            wall_ms,
            detected_ms,
            peak_psi,
            swap_total_kb,
            peak_swap_kb,
            failure.as_ref(),
            rng,
        )?;
    }
    let (outcome, detail) = match fate {
        Outcome::Pass => (fate, "workloads completed".to_string()),
        Outcome::InfraError => (
            fate,
            "boot timed out: no agent hello within 90 s".to_string(),
        ),
        Outcome::Deadlock => (
            fate,
            format!(
                "deadlock: no progress for the whole {} s window",
                v.deadlock_window_s
            ),
        ),
        Outcome::Stall => (
            fate,
            format!(
                "stall: recovered after {} s ({})",
                hang.as_ref().and_then(|h| h.resumed_after_ms).unwrap_or(0) / 1000,
                hang.as_ref()
                    .and_then(|h| h.progress.clone())
                    .unwrap_or_default(),
            ),
        ),
        _ => (
            fate,
            failure
                .as_ref()
                .map(|f| f.title.clone())
                .unwrap_or_default(),
        ),
    };
    let started = chrono::DateTime::parse_from_rfc3339(&spec.started_at)
        .map(|t| (t + chrono::Duration::seconds(k as i64 * 70)).to_rfc3339())
        .unwrap_or_else(|_| spec.started_at.clone());
    // Built as JSON, the way the harness's records are read back, so that
    // fields the harness adds later (with serde defaults) never break this.
    let decompress_calls = decompress_latency_us.count() as f64;
    let record = json!({
        "version": RESULTS_VERSION,
        "variant": v.name,
        "iteration": iteration,
        "board": board,
        "outcome": outcome,
        "detail": detail,
        "failure": failure,
        "kernel_events": failure.iter().map(|f| f.title.clone()).collect::<Vec<_>>(),
        "kernel_release": (fate != Outcome::InfraError).then(|| v.kernel_release.clone()),
        "started_at": started,
        "wall_ms": wall_ms,
        "boot_ms": (fate != Outcome::InfraError).then_some(boot_ms),
        "reads": reads,
        "bytes_read": reads * 131_072,
        "read_latency_us": read_latency_us,
        "decompress_latency_us": decompress_latency_us,
        "decompress_func": (decompress_calls > 0.0).then_some("z_erofs_decompress_queue"),
        "decompress_probe_error": if fate.is_valid() { v.decompress_probe_error.clone() } else { None },
        "decompress_calls_in_worker": (decompress_calls * (1.0 - v.decompress_direct_fraction)) as u64,
        "decompress_calls_elsewhere": (decompress_calls * v.decompress_direct_fraction) as u64,
        "max_swap_used_kb": if fate == Outcome::InfraError { 0 } else { peak_swap_kb },
        "max_psi_some_avg10": peak_psi as f32,
        "max_psi_full_avg10": (peak_psi * 0.6) as f32,
        "console_log": console_rel,
        "signatures": if (fate.is_hang() || fate == Outcome::Stall) && slot.control.is_none() { v.stack_signatures.clone() } else { Vec::new() },
        "control": slot.control,
        "hang": hang,
        "host_cpu_ms": 40 + rng.u64(0..60),
    });
    Ok(serde_json::from_value(record)?)
}

/// What the deadlock window saw: nothing moving for a deadlock, a reader
/// resuming for a stall. The waiters are the erofs deadlock's: the task
/// whose bio completion decompresses, and a reader queued behind it.
fn hang_watch(v: &SynthVariant, fate: Outcome, rng: &mut fastrand::Rng) -> Option<HangWatch> {
    let window_ms = v.deadlock_window_s * 1000;
    let resumed_after_ms = match fate {
        Outcome::Deadlock => None,
        Outcome::Stall => {
            let (a, b) = v.stall_resume_s;
            Some((((a + rng.f64() * (b - a)) * 1000.0) as u64).min(window_ms.max(1000) - 1000))
        }
        _ => return None,
    };
    let blocked = 10 + resumed_after_ms.unwrap_or(window_ms) / 1000;
    Some(HangWatch {
        window_ms,
        resumed_after_ms,
        progress: resumed_after_ms.map(|_| "reader 0 read 4 MiB".to_string()),
        longest_blocked_s: Some(blocked),
        waiters: vec![
            Waiter {
                task: "kworker/u4:2:61".into(),
                waits_in: "mmc_blk_rw_wait".into(),
                frames: vec![
                    "mmc_blk_rw_wait".into(),
                    "mmc_blk_mq_issue_rq".into(),
                    "z_erofs_decompress_queue".into(),
                ],
                blocked_s: Some(blocked),
            },
            Waiter {
                task: "hilt-reader:212".into(),
                waits_in: "folio_wait_bit_common".into(),
                frames: vec!["folio_wait_bit_common".into(), "filemap_read".into()],
                blocked_s: Some(blocked.saturating_sub(2)),
            },
        ],
    })
}

#[allow(clippy::too_many_arguments)]
fn write_events(
    out: &mut impl std::io::Write,
    v: &SynthVariant,
    iteration: u32,
    fate: Outcome,
    boot_ms: u64,
    wall_ms: u64,
    detected_ms: Option<u64>,
    peak_psi: f64,
    swap_total_kb: u64,
    peak_swap_kb: u64,
    failure: Option<&Failure>,
    rng: &mut fastrand::Rng,
) -> Result<()> {
    let name = &v.name;
    // The board's clock starts ~650 ms after the host powers it on.
    let up = |t: u64| t.saturating_sub(650);
    let mut line = |t_ms: u64, source: &str, body: serde_json::Value| -> Result<()> {
        let mut m = serde_json::Map::new();
        m.insert("t_ms".into(), json!(t_ms));
        m.insert("variant".into(), json!(name));
        m.insert("iteration".into(), json!(iteration));
        m.insert("source".into(), json!(source));
        if let serde_json::Value::Object(b) = body {
            m.extend(b);
        }
        serde_json::to_writer(&mut *out, &m)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    line(0, "host", json!({"kind": "phase", "phase": "power_on"}))?;
    if fate == Outcome::InfraError {
        return line(
            wall_ms,
            "host",
            json!({"kind": "outcome", "outcome": "infra_error", "detail": "boot timed out"}),
        );
    }
    line(
        boot_ms,
        "agent",
        json!({"type": "hello", "uptime_ms": up(boot_ms), "kernel_release": v.kernel_release, "protocol": 1}),
    )?;
    let end = detected_ms.unwrap_or(wall_ms - 500);
    let span = (end - boot_ms).max(1) as f64;
    let mut t = boot_ms + 1000;
    while t < end {
        let x = (t - boot_ms) as f64 / span;
        // Pressure builds over the iteration; a hanging one climbs to its peak.
        let shape = if fate.is_hang() { x * x } else { x.sqrt() };
        let some = peak_psi * shape * (0.9 + 0.1 * rng.f64());
        let swap_used = (peak_swap_kb as f64 * shape) as u64;
        let n = 20 + rng.u64(0..10);
        let lat = histo(rng, n, v.read_median_us, v.read_sigma);
        line(
            t,
            "agent",
            json!({
                "type": "interval", "uptime_ms": up(t), "reads": n, "bytes_read": n * 131_072,
                "read_errors": 0, "last_read_errno": null, "reader_bytes": [n * 131_072], "hog_bytes": 0,
                "read_latency_us": lat,
                "psi": {"some_avg10": some, "full_avg10": some * 0.6, "some_total_us": 0, "full_total_us": 0},
                "mem": {"total_kb": 229_448, "available_kb": 60_000 + rng.u64(0..20_000), "free_kb": 8000,
                        "swap_total_kb": swap_total_kb, "swap_free_kb": swap_total_kb - swap_used},
                "vmstat": {"pswpin": rng.u64(0..50), "pswpout": (shape * 400.0) as u64, "allocstall": (shape * 30.0) as u64, "pgmajfault": 3, "oom_kill": 0},
            }),
        )?;
        line(
            t + 5,
            "agent",
            json!({"type": "heartbeat", "uptime_ms": up(t + 5)}),
        )?;
        line(
            t + 7,
            "agent",
            json!({"type": "kmsg", "seq": t, "ts_us": up(t) * 1000, "level": 6, "text": "exe (120): drop_caches: 3"}),
        )?;
        t += 1000;
    }
    if let (Some(d), Some(f)) = (detected_ms, failure) {
        if matches!(fate, Outcome::Hang | Outcome::Deadlock | Outcome::Stall) {
            line(
                d,
                "agent",
                json!({"type": "kernel", "uptime_ms": up(d), "event": {"kind": "hung_task", "title": f.title, "frames": f.frames, "excerpt": f.excerpt}}),
            )?;
        }
        line(
            d + 20,
            "host",
            json!({"kind": "sysrq", "key": "w", "via": "agent"}),
        )?;
    } else {
        line(
            end,
            "agent",
            json!({"type": "done", "uptime_ms": up(end), "reason": "completed"}),
        )?;
    }
    line(
        wall_ms,
        "host",
        json!({"kind": "outcome", "outcome": fate.as_str(), "detail": ""}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlocks_and_stalls_carry_what_the_window_saw() {
        let d = tempfile::tempdir().unwrap();
        let mut spec = SynthRun::new(
            "p",
            4,
            vec![SynthVariant::new("a", 6)
                .deadlocks(2)
                .stalls(2)
                .hangs(1)
                .stack_signatures(&["seed"])
                .decompress_probe_error("no kprobes")],
        );
        spec.events = false;
        write_run(d.path(), &spec).unwrap();
        let run = crate::load_run(d.path()).unwrap();
        let of = |o: Outcome| -> Vec<&IterationRecord> {
            run.records.iter().filter(|r| r.outcome == o).collect()
        };
        assert_eq!(
            (
                of(Outcome::Deadlock).len(),
                of(Outcome::Stall).len(),
                of(Outcome::Hang).len()
            ),
            (2, 2, 1)
        );
        for r in of(Outcome::Deadlock) {
            let w = r.hang.as_ref().unwrap();
            assert_eq!((w.window_ms, w.resumed_after_ms), (120_000, None));
            assert_eq!(w.waiters[0].waits_in, "mmc_blk_rw_wait");
            assert!(r.wall_ms >= r.failure.as_ref().unwrap().detected_after_ms + 120_000);
        }
        for r in of(Outcome::Stall) {
            let w = r.hang.as_ref().unwrap();
            let after = w.resumed_after_ms.unwrap();
            assert!((5_000..=60_000).contains(&after), "{after}");
            assert!(
                r.detail.starts_with("stall: recovered after "),
                "{}",
                r.detail
            );
            assert_eq!(r.signatures, ["seed"], "a stall carries the signature too");
        }
        // An unclassified hang is what an old record looks like: no window.
        assert!(of(Outcome::Hang)[0].hang.is_none());
        assert!(run
            .records
            .iter()
            .all(|r| r.decompress_probe_error.as_deref() == Some("no kprobes")));
    }
}
