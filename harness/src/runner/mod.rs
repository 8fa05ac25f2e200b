//! Running a plan: prepare artifacts, then iterate over variants, writing
//! results as they come.

pub mod iteration;
pub mod progress;
pub mod results;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hilt_protocol::{
    BlockDevice, ControlSpec, KernelSettings, ReadPattern, RunSpec, WatchSpec, WorkloadSpec,
};
use hilt_reports::{IterationRecord, Outcome};
use serde::Serialize;
use tokio::sync::watch;

use crate::artifacts::{self, media::MediaProvenance, Cache};
use crate::board::qemu::Launch;
use crate::plan::{ConsoleCfg, Control, Pattern, ResolvedPlan};
use progress::Progress;
use results::{RunDir, RunSummary};

pub struct RunOptions {
    pub out: Option<PathBuf>,
    pub quiet: bool,
    /// History database; None leaves the run out of the history.
    pub history: Option<PathBuf>,
}

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const BAD_INPUT: i32 = 2;
    pub const INFRA: i32 = 3;
    /// A positive control was not detected: no result of the run can be trusted.
    pub const INVALID: i32 = 4;
    pub const INTERRUPTED: i32 = 130;
}

struct PreparedVariant {
    name: String,
    kernel_package: String,
    kernel_release: String,
    kernel_image_sha256: String,
    kernel_image: PathBuf,
    initramfs: PathBuf,
    builtin_modules: Vec<String>,
    loaded_modules: Vec<String>,
    kernel_build: Option<hilt_kernels::source::Provenance>,
    kernel_prebuilt: Option<artifacts::kernel::PrebuiltRecord>,
}

#[derive(Serialize)]
struct RunInfo<'a> {
    version: u32,
    hilt_version: &'static str,
    plan: &'a str,
    plan_path: String,
    plan_sha256: &'a str,
    board: &'a str,
    started_at: String,
    host: String,
    variants: Vec<VariantInfo<'a>>,
    media: &'a MediaProvenance,
    /// The order iterations ran in, controls first.
    order: &'a [Slot],
}

#[derive(Serialize)]
struct VariantInfo<'a> {
    name: &'a str,
    kernel_package: &'a str,
    kernel_release: &'a str,
    kernel_image_sha256: &'a str,
    modules_loaded: &'a [String],
    modules_builtin: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_build: Option<&'a hilt_kernels::source::Provenance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_prebuilt: Option<&'a artifacts::kernel::PrebuiltRecord>,
}

fn default_out(plan: &ResolvedPlan) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    PathBuf::from("runs").join(format!("{}-{stamp}", plan.plan.name))
}

fn prepare(
    plan: &ResolvedPlan,
    say: &dyn Fn(&str),
) -> anyhow::Result<(Vec<PreparedVariant>, artifacts::Media)> {
    let home = crate::plan::home_for(&plan.path);
    let cache = Cache::default_for(&home);
    let agent = artifacts::agent_binary()?;
    say("fetching busybox");
    let busybox = artifacts::fetch_busybox(&cache)?;
    let mut out = Vec::new();
    for v in &plan.plan.variants {
        let pk = artifacts::prepare_kernel(&cache, &plan.path, &v.name, &v.kernel, say)?;
        let k = &pk.boot;
        let initramfs = artifacts::build_initramfs(&cache, k, &busybox, &agent)?;
        out.push(PreparedVariant {
            name: v.name.clone(),
            kernel_package: pk.label.clone(),
            kernel_build: pk.build.clone(),
            kernel_prebuilt: pk.prebuilt.clone(),
            kernel_release: k.kernel.release.clone(),
            kernel_image_sha256: k.kernel.image_sha256.clone(),
            kernel_image: k.kernel.image.clone(),
            initramfs,
            builtin_modules: k.builtin.clone(),
            loaded_modules: k.modules.iter().map(|m| m.name.clone()).collect(),
        });
    }
    let media = artifacts::build_media(&cache, &plan.plan, say)?;
    Ok((out, media))
}

/// One planned boot: a variant's iteration, or its positive control.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slot {
    pub variant: String,
    pub iteration: u32,
    pub control: Option<Control>,
}

impl Slot {
    fn dir_name(&self) -> String {
        match self.control {
            Some(c) => format!("{}-control-{}", self.variant, c.name()),
            None => format!("{}-{:03}", self.variant, self.iteration),
        }
    }
}

pub fn run_spec(
    plan: &ResolvedPlan,
    media: &artifacts::Media,
    run_id: &str,
    slot: &Slot,
) -> RunSpec {
    let p = &plan.plan;
    let (variant, iteration) = (slot.variant.as_str(), slot.iteration);
    let control = slot.control.map(|c| match c {
        Control::SwapFreeze => ControlSpec::SwapFreeze {
            device: BlockDevice::VirtioSerial(artifacts::media::CONTROL_DISK.into()),
            after_swap_kb: 16 * 1024,
            after_ms: 30_000,
        },
    });
    let workloads = plan
        .workloads
        .iter()
        .filter_map(|w| {
            let ms = |s: f64| (s * 1000.0) as u64;
            if let Some(h) = &w.hog {
                return Some(WorkloadSpec::Hog {
                    name: w.name.clone(),
                    mem_fraction: h.mem_fraction,
                    start_after_ms: ms(h.start_after_s),
                });
            }
            let r = w.readers.as_ref()?;
            Some(WorkloadSpec::Readers {
                name: w.name.clone(),
                threads: r.threads,
                pattern: match r.pattern {
                    Pattern::Sequential => ReadPattern::Sequential,
                    Pattern::Random => ReadPattern::Random,
                    Pattern::Mmap => ReadPattern::Mmap,
                },
                block_size: r.block_size_kb * 1024,
                drop_caches: r.drop_caches,
                rounds: r.rounds,
                start_after_ms: ms(r.start_after_s),
            })
        })
        .collect();
    RunSpec {
        run_id: run_id.to_string(),
        variant: variant.to_string(),
        iteration,
        // A control ends when its hang is detected; give the kernel's own
        // detector (up to twice hung_task_timeout_secs) time to report.
        duration_ms: if control.is_some() {
            p.duration_s.max(90) * 1000
        } else {
            p.duration_s * 1000
        },
        storage: media.storage.clone(),
        swap: media.swap.clone(),
        kernel: KernelSettings {
            hung_task_timeout_secs: p.kernel.hung_task_timeout_secs,
            hung_task_check_interval_secs: p.kernel.hung_task_check_interval_secs,
            hung_task_warnings: p.kernel.hung_task_warnings,
            printk_level: p.kernel.printk_level,
            sysrq: p.kernel.sysrq,
            swappiness: p.kernel.swappiness,
        },
        workloads,
        watch: WatchSpec {
            heartbeat_ms: 1000,
            interval_ms: 1000,
            reader_stall_ms: p.watch.reader_stall_s * 1000,
            dstate_ms: p.watch.dstate_s * 1000,
            same_wchan_ms: p.watch.same_wchan_s * 1000,
            confirm_ms: p.watch.confirm_s * 1000,
            sysrq_keys: p.watch.sysrq.clone(),
            decompress_probes: p.watch.decompress_probes,
        },
        control,
    }
}

/// Interleaves variants within each round, in an order shuffled from the
/// plan's hash, so time-of-night effects do not line up with one variant.
pub fn order(plan: &ResolvedPlan) -> Vec<Slot> {
    let mut seed = u64::from_str_radix(&plan.sha256[..16], 16).unwrap_or(1);
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Controls first: a harness that cannot see a hang should not spend the
    // night producing "0 hangs".
    let mut out: Vec<Slot> = plan
        .plan
        .variants
        .iter()
        .flat_map(|v| {
            plan.plan.controls.iter().map(|c| Slot {
                variant: v.name.clone(),
                iteration: 0,
                control: Some(*c),
            })
        })
        .collect();
    for i in 0..plan.plan.iterations {
        let mut round: Vec<String> = plan.plan.variants.iter().map(|v| v.name.clone()).collect();
        for k in (1..round.len()).rev() {
            round.swap(k, (next() % (k as u64 + 1)) as usize);
        }
        out.extend(round.into_iter().map(|variant| Slot {
            variant,
            iteration: i,
            control: None,
        }));
    }
    out
}

fn signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        eprintln!(
            "hilt: stopping: powering boards off and writing results (interrupt again to abort)"
        );
        let _ = tx.send(true);
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(exit::INTERRUPTED);
    });
    rx
}

pub async fn run_plan(plan: ResolvedPlan, opts: RunOptions) -> anyhow::Result<i32> {
    let out = opts.out.clone().unwrap_or_else(|| default_out(&plan));
    if out.join("results.jsonl").exists() {
        anyhow::bail!(
            "{} already holds results: choose another --out directory",
            out.display()
        );
    }
    let progress = Progress::new(opts.quiet);
    let run_dir = RunDir::create(&out)?;
    std::fs::write(out.join("plan.yaml"), &plan.text)?;
    let cancel = signals();

    let plan2 = plan.clone();
    let p2 = progress.clone();
    let (variants, media) = tokio::task::spawn_blocking(move || prepare(&plan2, &|m| p2.note(m)))
        .await?
        .context("preparing the board artifacts")?;
    let order = order(&plan);
    let run_id = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_dir.write_json(
        "run.json",
        &RunInfo {
            version: hilt_reports::RESULTS_VERSION,
            hilt_version: env!("CARGO_PKG_VERSION"),
            plan: &plan.plan.name,
            plan_path: plan.path.display().to_string(),
            plan_sha256: &plan.sha256,
            board: &plan.board.name,
            started_at: chrono::Utc::now().to_rfc3339(),
            host: hostname(),
            variants: variants
                .iter()
                .map(|v| VariantInfo {
                    name: &v.name,
                    kernel_package: &v.kernel_package,
                    kernel_release: &v.kernel_release,
                    kernel_image_sha256: &v.kernel_image_sha256,
                    modules_loaded: &v.loaded_modules,
                    modules_builtin: &v.builtin_modules,
                    kernel_build: v.kernel_build.as_ref(),
                    kernel_prebuilt: v.kernel_prebuilt.as_ref(),
                })
                .collect(),
            media: &media.provenance,
            order: &order,
        },
    )?;
    progress.note(&format!("results go to {}", out.display()));

    let qemu = plan
        .board
        .qemu
        .clone()
        .context("only emulated boards can run plans in this version")?;
    let mut records: Vec<IterationRecord> = Vec::new();
    let planned = order.len() as u32;
    // One RAM file for the board for the whole run: what the kernel left
    // in ramoops before a power cycle is read by the next boot.
    let ram_file = qemu
        .ramoops
        .then(|| std::env::temp_dir().join(format!("hilt-{}-board0.ram", std::process::id())));
    let mut previous_dir: Option<PathBuf> = None;
    let mut infra_in_a_row = 0u32;
    let mut quarantined: Option<String> = None;
    let mut interrupted = false;
    for (n, slot) in order.iter().enumerate() {
        let (variant, iteration) = (&slot.variant, &slot.iteration);
        if *cancel.borrow() {
            interrupted = true;
            break;
        }
        if let Some(why) = &quarantined {
            let rec = iteration::not_run(&plan.board.name, slot, why);
            let _ = run_dir.record(&rec);
            records.push(rec);
            continue;
        }
        let v = variants
            .iter()
            .find(|p| &p.name == variant)
            .expect("order only names planned variants");
        let dir = run_dir.iteration_dir(&slot.dir_name())?;
        let runtime_dir = std::env::temp_dir().join(format!("hilt-{}-{n}", std::process::id()));
        let launch = Launch {
            qemu: qemu.clone(),
            console: plan.board.console.clone(),
            memory_mb: plan.memory_mb(),
            cpus: plan.cpus(),
            kernel: v.kernel_image.clone(),
            initrd: v.initramfs.clone(),
            append: match &ram_file {
                Some(_) => format!(
                    "{} {}",
                    kernel_cmdline(&plan),
                    Launch::ramoops_cmdline(plan.memory_mb())
                ),
                None => kernel_cmdline(&plan),
            },
            disks: media.disks.clone(),
            runtime_dir,
            log: dir.join("qemu.log"),
            ram_file: ram_file.clone(),
        };
        let label = match slot.control {
            Some(c) => format!("[{}/{planned}] {variant} control {}", n + 1, c.name()),
            None => format!("[{}/{planned}] {variant} #{iteration}", n + 1),
        };
        let say = |m: &str| progress.iteration(&label, m);
        let input = iteration::IterationInput {
            plan: &plan,
            variant,
            iteration: *iteration,
            launch,
            spec: run_spec(&plan, &media, &run_id, slot),
            signatures: &plan.plan.signatures,
            faults: plan
                .plan
                .faults
                .iter()
                .filter(|f| {
                    slot.control.is_none() && f.iteration.is_none_or(|i| i == slot.iteration)
                })
                .map(|f| (Duration::from_secs(f.after_s), f.kind))
                .collect(),
            run_dir: &run_dir,
            dir: dir.clone(),
            previous_dir: previous_dir.clone(),
            progress: &say,
        };
        let mut rec = iteration::run(input, cancel.clone()).await;
        previous_dir = Some(dir);
        rec.control = slot.control.map(|c| c.name().to_string());
        progress.done(&label, &rec);
        if let Err(e) = run_dir.record(&rec) {
            progress.note(&format!(
                "warning: could not append to results.jsonl: {e:#}"
            ));
        }
        let was_cancelled = rec.outcome == Outcome::NotRun;
        infra_in_a_row = if rec.outcome == Outcome::InfraError {
            infra_in_a_row + 1
        } else {
            0
        };
        if infra_in_a_row >= plan.plan.timeouts.quarantine_after {
            let why = format!(
                "board {} quarantined after {infra_in_a_row} infrastructure errors in a row",
                plan.board.name
            );
            progress.note(&why);
            quarantined = Some(why);
        }
        records.push(rec);
        let _ = run_dir.write_summary(&results::summary_of(
            &plan.plan.name,
            planned,
            false,
            &records,
        ));
        if was_cancelled {
            interrupted = true;
            break;
        }
    }
    if let Some(f) = &ram_file {
        let _ = std::fs::remove_file(f);
    }
    let mut summary = results::summary_of(&plan.plan.name, planned, interrupted, &records);
    summary.quarantined = quarantined
        .iter()
        .map(|_| plan.board.name.clone())
        .collect();
    run_dir.write_summary(&summary)?;
    progress.finish();
    print_summary(&summary, &out);
    // The report and the history entry come from what is on disk, so an
    // interrupted run gets them too.
    match crate::reporting::report_and_record(&out, opts.history.as_deref()) {
        Ok(r) => println!("report: {}", r.display()),
        Err(e) => eprintln!("hilt: warning: no report written: {e:#}"),
    }
    Ok(if interrupted {
        exit::INTERRUPTED
    } else if summary.valid == Some(false) {
        exit::INVALID
    } else if !records.is_empty()
        && records
            .iter()
            .all(|r| matches!(r.outcome, Outcome::InfraError | Outcome::NotRun))
    {
        exit::INFRA
    } else {
        exit::OK
    })
}

fn kernel_cmdline(plan: &ResolvedPlan) -> String {
    // QEMU virt's PL011; real Amlogic boards use ttyAML0, given by their
    // board file once they run plans.
    let console = match plan.board.console {
        ConsoleCfg::QemuTelnet | ConsoleCfg::QemuPty => "console=ttyAMA0",
        ConsoleCfg::Serial { .. } | ConsoleCfg::Ser2net { .. } => "console=ttyAML0,115200",
    };
    let extra = plan
        .board
        .qemu
        .as_ref()
        .map(|q| q.append.as_str())
        .unwrap_or("");
    format!("{console} panic=5 loglevel=4 {extra}")
        .trim()
        .to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn print_summary(s: &RunSummary, out: &Path) {
    println!(
        "plan {}: {}/{} iterations{}",
        s.plan,
        s.finished_iterations,
        s.planned_iterations,
        if s.interrupted { " (interrupted)" } else { "" }
    );
    println!(
        "{:<14} {:>5} {:>6} {:>7} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "variant",
        "iters",
        "hangs",
        "silent",
        "crash",
        "infra",
        "hang rate",
        "p50 µs",
        "p99 µs",
        "p99.9 µs"
    );
    for v in &s.variants {
        let rate = v
            .hang_rate
            .map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "-".into());
        let (p50, p99, p999) = match v.latency_us {
            Some(p) => (p.p50.to_string(), p.p99.to_string(), p.p999.to_string()),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<14} {:>5} {:>6} {:>7} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
            v.variant,
            v.iterations,
            v.hangs,
            v.silent_hangs,
            v.crashes,
            v.infra_errors,
            rate,
            p50,
            p99,
            p999
        );
        for (sig, n) in &v.signatures {
            println!("{:<14}   {n} × {sig}", "");
        }
        for (sig, n) in &v.plan_signatures {
            println!(
                "{:<14}   signature {sig}: {n}/{} iterations",
                "", v.iterations
            );
        }
    }
    for c in &s.controls {
        let verdict = if c.detected {
            "detected"
        } else {
            "NOT DETECTED"
        };
        println!(
            "control {} on {}: {verdict} ({})",
            c.control, c.variant, c.detail
        );
    }
    for b in &s.quarantined {
        println!("QUARANTINED: board {b} failed to come back repeatedly; its remaining iterations did not run");
    }
    if s.valid == Some(false) {
        println!("RUN INVALID: a positive control was not detected, so no hang count of this run can be trusted");
    }
    println!("results: {}", out.display());
    let _ = Duration::ZERO;
}

/// `hilt fetch`: everything `hilt run` would prepare, without booting.
pub fn fetch_all(plan: &ResolvedPlan, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let (variants, media) = prepare(plan, say)?;
    for v in &variants {
        say(&format!(
            "{}: {} ({}), initramfs {}",
            v.name,
            v.kernel_package,
            v.kernel_release,
            v.initramfs.display()
        ));
    }
    say(&format!(
        "erofs image {} bytes, sha256 {}{}",
        media.provenance.erofs_bytes,
        media.provenance.erofs_sha256,
        media
            .provenance
            .verity_root_hash
            .as_ref()
            .map(|r| format!(", verity root {r}"))
            .unwrap_or_default()
    ));
    Ok(())
}
