//! Running a plan: prepare artifacts, then iterate over variants, writing
//! results as they come.

pub mod iteration;
pub mod progress;
pub mod results;
mod stopping;
mod summary;
mod window;
pub use summary::print_summary;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use hilt_protocol::{ControlSpec, KernelSettings, ReadPattern, RunSpec, WatchSpec, WorkloadSpec};
use hilt_reports::{IterationRecord, Outcome};
use serde::Serialize;
use tokio::sync::watch;

use crate::artifacts::{self, media::MediaProvenance, Cache};
use crate::board::{self, BoardStorage, BootRequest, KernelFiles, RunBoard};
use crate::durable;
use crate::lease;
use crate::plan::{BoardFile, Control, Pattern, ResolvedPlan};
use futures_util::future::join_all;
use progress::Progress;
use results::{RunDir, RunSummary};

pub struct RunOptions {
    pub out: Option<PathBuf>,
    pub quiet: bool,
    /// History database; None leaves the run out of the history.
    pub history: Option<PathBuf>,
    /// Continue the run in `out` instead of starting one.
    pub resume: bool,
    /// The lease directory shared by the host's hilt processes.
    pub leases: PathBuf,
    /// How long to wait for a board another run holds.
    pub lease_wait: Duration,
    pub lease_ttl: Duration,
    /// Copies of the results for CI (`--junit`, `--json`).
    pub exports: crate::reporting::Exports,
}

pub mod exit;

struct PreparedVariant {
    kernel: KernelFiles,
    kernel_package: String,
    kernel_image_sha256: String,
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
    /// Where a resumed run finds the plan's board and workload files.
    plan_path_abs: String,
    plan_sha256: &'a str,
    board: &'a str,
    /// The boards (instances) that take slots from the queue.
    boards: Vec<&'a str>,
    started_at: String,
    host: String,
    variants: Vec<VariantInfo<'a>>,
    media: &'a MediaProvenance,
    /// The order iterations ran in, controls first.
    order: &'a [Slot],
    /// The plan's named signatures, what it expects of them, and its
    /// stopping rule: what `hilt report` asks of the records.
    question: hilt_reports::verdict::Question,
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

pub fn default_out(plan: &ResolvedPlan) -> PathBuf {
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
            kernel: KernelFiles {
                variant: v.name.clone(),
                image: k.kernel.image.clone(),
                initramfs,
                release: k.kernel.release.clone(),
            },
            kernel_package: pk.label.clone(),
            kernel_build: pk.build.clone(),
            kernel_prebuilt: pk.prebuilt.clone(),
            kernel_image_sha256: k.kernel.image_sha256.clone(),
            builtin_modules: k.builtin.clone(),
            loaded_modules: k.modules.iter().map(|m| m.name.clone()).collect(),
        });
    }
    let media = artifacts::build_media(&cache, &plan.plan, say)?;
    Ok((out, media))
}

/// One planned boot: a variant's iteration, or its positive control.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Slot {
    pub variant: String,
    pub iteration: u32,
    pub control: Option<Control>,
}

impl Slot {
    fn key(&self) -> results::SlotKey {
        (
            self.variant.clone(),
            self.iteration,
            self.control.map(|c| c.name().to_string()),
        )
    }

    fn dir_name(&self) -> String {
        match self.control {
            Some(c) => format!("{}-control-{}", self.variant, c.name()),
            None => format!("{}-{:03}", self.variant, self.iteration),
        }
    }

    /// How progress names the slot: its place in the run, then what it is.
    fn label(&self, n: usize, planned: u32) -> String {
        match self.control {
            Some(c) => format!(
                "[{}/{planned}] {} control {}",
                n + 1,
                self.variant,
                c.name()
            ),
            None => format!("[{}/{planned}] {} #{}", n + 1, self.variant, self.iteration),
        }
    }
}

/// How long the stall control holds swap frozen: past the hung-task
/// threshold of the plans that use it (10 s), well inside a deadlock window.
const SWAP_STALL_MS: u64 = 30_000;

pub fn run_spec(plan: &ResolvedPlan, storage: &BoardStorage, run_id: &str, slot: &Slot) -> RunSpec {
    let p = &plan.plan;
    let (variant, iteration) = (slot.variant.as_str(), slot.iteration);
    let control = slot.control.map(|c| match c {
        Control::SwapFreeze => ControlSpec::SwapFreeze {
            device: storage.control.clone(),
            stuck_kb: 16 * 1024,
            within_ms: 30_000,
            resume_after_ms: None,
        },
        Control::SwapStall => ControlSpec::SwapFreeze {
            device: storage.control.clone(),
            stuck_kb: 16 * 1024,
            within_ms: 30_000,
            resume_after_ms: Some(SWAP_STALL_MS),
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
        storage: storage.storage.clone(),
        swap: storage.swap.clone(),
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
    for i in 0..plan.plan.max_iterations() {
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

fn read_run_json(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let path = dir.join("run.json");
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "{} is not a run hilt can resume (no readable run.json): expected the --out directory of an earlier `hilt run`",
            dir.display()
        )
    })?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// `hilt run --resume`: the plan exactly as the run started with it, its
/// board and workload files found where the original plan found them.
pub fn resume_plan(dir: &Path) -> anyhow::Result<ResolvedPlan> {
    let info = read_run_json(dir)?;
    let original = info["plan_path_abs"]
        .as_str()
        .or(info["plan_path"].as_str())
        .unwrap_or("plan.yaml");
    let plan = crate::plan::resolve_as(&dir.join("plan.yaml"), Path::new(original))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let want = info["plan_sha256"].as_str().unwrap_or_default();
    if plan.sha256 != want {
        anyhow::bail!(
            "{}/plan.yaml is not the plan this run started with (sha256 {} instead of {want}): restore it, or start a new run",
            dir.display(),
            plan.sha256
        );
    }
    Ok(plan)
}

/// What the boards' loops share: the plan, what was prepared, the queue
/// of slots still to run and everything gathered.
struct Shared<'a> {
    plan: &'a ResolvedPlan,
    variants: &'a [PreparedVariant],
    media: &'a artifacts::Media,
    run_dir: &'a RunDir,
    run_id: &'a str,
    progress: &'a Progress,
    cancel: watch::Receiver<bool>,
    planned: u32,
    queue: Mutex<VecDeque<(usize, Slot)>>,
    records: Mutex<Vec<IterationRecord>>,
    /// Why each quarantined board was taken out.
    quarantined: Mutex<Vec<(String, String)>>,
    interrupted: AtomicBool,
    started: std::time::Instant,
    cpu0: u64,
    changes: Mutex<crate::plan::snapshot::ChangeWatch>,
    /// The agent binary, pushed to boards that boot their own OS.
    agent: PathBuf,
    stop_rule: Option<stopping::StopRule>,
    /// Why the stopping rule ended the run, once it has.
    stopped: Mutex<Option<String>>,
}

/// Adds the stop to run.json; slots already dropped by an earlier stop of
/// a resumed run stay dropped.
fn record_stop(run_dir: &RunDir, reason: &str, after: u32, dropped: &[Slot]) -> anyhow::Result<()> {
    let mut info = read_run_json(&run_dir.path)?;
    let mut all: Vec<serde_json::Value> = info["stopped"]["dropped"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for s in dropped {
        all.push(serde_json::to_value(s)?);
    }
    info["stopped"] = serde_json::json!({
        "reason": reason,
        "after_iterations": after,
        "dropped": all,
    });
    run_dir.write_json("run.json", &info)
}

impl Shared<'_> {
    fn summary(&self) -> RunSummary {
        let recs = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = results::summary_of(
            &self.plan.plan,
            self.planned,
            self.interrupted.load(Ordering::Relaxed),
            &recs,
        );
        s.quarantined = self
            .quarantined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(b, _)| b.clone())
            .collect();
        s.stopped = self
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        s.iterations_wall_ms = self.started.elapsed().as_millis() as u64;
        s.hilt_cpu_ms = iteration::host_cpu_ms().saturating_sub(self.cpu0);
        s
    }

    /// Takes a board out of the run after too many infrastructure errors
    /// in a row; true when it did.
    fn quarantine(&self, board: &str, in_a_row: u32) -> bool {
        if in_a_row < self.plan.plan.timeouts.quarantine_after {
            return false;
        }
        let why =
            format!("board {board} quarantined after {in_a_row} infrastructure errors in a row");
        self.progress.note(&why);
        self.quarantined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((board.to_string(), why));
        true
    }

    fn record(&self, rec: IterationRecord) {
        if let Err(e) = self.run_dir.record(&rec) {
            self.progress.note(&format!(
                "warning: could not append to results.jsonl: {e:#}"
            ));
        }
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(rec);
        self.check_stop();
        let _ = self.run_dir.write_summary(&self.summary());
    }

    /// Ends the run once the stopping rule has its answer: the slots left
    /// are dropped, and run.json says which and why, so that neither a
    /// report nor `--resume` takes them for missing.
    fn check_stop(&self) {
        let Some(rule) = &self.stop_rule else { return };
        if self
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return;
        }
        let (reason, after) = {
            let recs = self.records.lock().unwrap_or_else(|p| p.into_inner());
            let Some(reason) = rule.check(&recs) else {
                return;
            };
            let after = recs
                .iter()
                .filter(|r| r.control.is_none() && r.outcome.is_valid())
                .count() as u32;
            (reason, after)
        };
        let dropped: Vec<Slot> = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .map(|(_, s)| s)
            .collect();
        self.progress.note(&reason);
        if let Err(e) = record_stop(self.run_dir, &reason, after, &dropped) {
            self.progress.note(&format!(
                "warning: could not record the stop in run.json: {e:#}"
            ));
        }
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    /// Warns once per input file edited on disk since the run started.
    fn check_inputs(&self) {
        let changed = self
            .changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(&self.plan.sources);
        for why in changed {
            // Even with --quiet: results from an edited plan must not pass unnoticed.
            eprintln!(
                "hilt: warning: {why}; this run keeps using its snapshot in {}/snapshot/",
                self.run_dir.path.display()
            );
            let _ = self.run_dir.event(
                &serde_json::json!({"source": "host", "kind": "input_changed", "detail": why}),
            );
        }
    }
}

/// One board's loop: take the next slot from the shared queue, run it,
/// record it, until the queue is empty, the run is stopped, or the board
/// is quarantined.
async fn drive_board(sh: &Shared<'_>, k: usize, board: BoardFile, storage: BoardStorage) {
    let line = sh.progress.board(&board.name);
    // The iteration sees a plan whose board is this instance, so its
    // records and events name the board that ran them.
    let mut bplan = sh.plan.clone();
    bplan.board = board.clone();
    let attached = board::strategy::for_kind(board.kind()).attach(RunBoard {
        plan: bplan.clone(),
        index: k,
        storage: storage.clone(),
        disks: sh.media.disks.clone(),
        agent: sh.agent.clone(),
        run_dir: sh.run_dir.path.clone(),
    });
    let mut previous_dir: Option<PathBuf> = None;
    let mut infra_in_a_row = 0u32;
    let mut last = "done: no slots left";
    loop {
        if *sh.cancel.borrow() {
            last = "stopped";
            break;
        }
        let next = sh
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let Some((n, slot)) = next else {
            break;
        };
        let v = sh
            .variants
            .iter()
            .find(|p| p.kernel.variant == slot.variant)
            .expect("order only names planned variants");
        let dir = match sh.run_dir.iteration_dir(&slot.dir_name()) {
            Ok(d) => d,
            Err(e) => {
                sh.run_dir.write_failed(&format!("{e:#}"));
                last = "stopped: results cannot be written";
                break;
            }
        };
        let boot = attached.boot(&BootRequest {
            kernel: &v.kernel,
            slot: n,
            dir: &dir,
        });
        let label = slot.label(n, sh.planned);
        let say = |m: &str| line.iteration(&label, m);
        let input = iteration::IterationInput {
            plan: &bplan,
            variant: &slot.variant,
            iteration: slot.iteration,
            spec: run_spec(&bplan, &storage, sh.run_id, &slot),
            signatures: &bplan.plan.signatures,
            faults: faults_of(&bplan, &slot),
            run_dir: sh.run_dir,
            dir: dir.clone(),
            previous_dir: previous_dir.clone(),
            progress: &say,
        };
        let mut rec = iteration::run(input, boot, sh.cancel.clone()).await;
        previous_dir = Some(dir);
        rec.control = slot.control.map(|c| c.name().to_string());
        rec.board = board.name.clone();
        line.done(sh.progress, &label, &rec);
        let was_cancelled = rec.outcome == Outcome::NotRun;
        infra_in_a_row = if rec.outcome == Outcome::InfraError {
            infra_in_a_row + 1
        } else {
            0
        };
        sh.record(rec);
        sh.check_inputs();
        // Without room for results, going on only burns board time.
        if sh.run_dir.write_failure().is_some() {
            last = "stopped: results cannot be written";
            break;
        }
        if was_cancelled {
            sh.interrupted.store(true, Ordering::Relaxed);
            last = "stopped";
            break;
        }
        if sh.quarantine(&board.name, infra_in_a_row) {
            last = "quarantined";
            break;
        }
    }
    line.idle(last);
}

/// The plan's faults for this slot, by when they strike: none in a
/// positive control, which must see its own hang alone.
fn faults_of(plan: &ResolvedPlan, slot: &Slot) -> Vec<(Duration, crate::plan::FaultCfg)> {
    plan.plan
        .faults
        .iter()
        .filter(|f| slot.control.is_none() && f.iteration.is_none_or(|i| i == slot.iteration))
        .map(|f| (Duration::from_secs(f.after_s), f.clone()))
        .collect()
}

pub async fn run_plan(plan: ResolvedPlan, opts: RunOptions) -> anyhow::Result<i32> {
    let out = opts.out.clone().unwrap_or_else(|| default_out(&plan));
    let progress = Progress::new(opts.quiet);
    if !opts.resume && out.join("results.jsonl").exists() {
        anyhow::bail!(
            "{} already holds results: choose another --out directory, or continue that run with --resume {0}",
            out.display()
        );
    }
    let cancel = signals();
    let instances = plan.instances();

    // Boards first: a run that cannot have them leaves no run directory
    // behind to trip over.
    let names: Vec<String> = instances.iter().map(|b| b.name.clone()).collect();
    let leases = lease::Leases::new(opts.leases.clone());
    let claim = lease::Claim {
        run_dir: std::path::absolute(&out)
            .unwrap_or_else(|_| out.clone())
            .display()
            .to_string(),
        plan: plan.plan.name.clone(),
        ttl: opts.lease_ttl,
    };
    let mut stop = cancel.clone();
    let say = |m: &str| progress.note(m);
    let held = tokio::select! {
        r = lease::acquire(&leases, &names, claim, opts.lease_wait, &say) => r?,
        _ = stop.wait_for(|c| *c) => {
            progress.finish();
            return Ok(exit::INTERRUPTED);
        }
    };
    progress.note(&format!(
        "leased {} (in {})",
        held.boards().join(", "),
        leases.dir().display()
    ));

    let _run_lock = results::lock_run_dir(&out)?;
    // A resumed run keeps what finished; the slot that was cut short, and
    // those never started, run now.
    let mut done: Vec<IterationRecord> = Vec::new();
    let mut recorded_order: Option<Vec<Slot>> = None;
    let mut dropped: Vec<Slot> = Vec::new();
    let mut set_aside: Vec<usize> = Vec::new();
    if opts.resume {
        let info = read_run_json(&out)?;
        recorded_order = serde_json::from_value(info["order"].clone()).ok();
        // What an earlier stop left out stays out: its answer was known.
        dropped = serde_json::from_value(info["stopped"]["dropped"].clone()).unwrap_or_default();
        let gone = durable::remove_temps(&out)
            .with_context(|| format!("removing temporary files from {}", out.display()))?;
        if !gone.is_empty() {
            progress.note(&format!(
                "resume: removed {} (temporary files of the interrupted run)",
                gone.join(", ")
            ));
        }
        let kept = results::resume_records(&out)?;
        if let Some(line) = kept.torn {
            progress.note(&format!(
                "resume: results.jsonl line {line} was cut short by the interruption: dropped, its iteration runs again"
            ));
        }
        if !kept.set_aside.is_empty() {
            // Not the interruption's doing: said even with --quiet, and
            // kept in run.json for the report.
            eprintln!(
                "hilt: WARNING: results.jsonl had {} line(s) that were not usable records; \
                 they are moved, verbatim, to {}/{} and their iterations run again:",
                kept.set_aside.len(),
                out.display(),
                results::DAMAGED
            );
            for (line, why) in &kept.set_aside {
                eprintln!("hilt:   line {line}: {why}");
            }
            set_aside = kept.set_aside.iter().map(|(l, _)| *l).collect();
        }
        done = kept.done;
    }
    let order = recorded_order.unwrap_or_else(|| order(&plan));
    let todo: VecDeque<(usize, Slot)> = order
        .iter()
        .cloned()
        .enumerate()
        .filter(|(_, s)| !done.iter().any(|d| results::record_key(d) == s.key()))
        .filter(|(_, s)| !dropped.contains(s))
        .collect();
    if opts.resume {
        let redo: Vec<results::SlotKey> = todo.iter().map(|(_, s)| s.key()).collect();
        let moved = results::set_aside_events(&out, &redo)?;
        for (_, s) in &todo {
            let d = out.join("iterations").join(s.dir_name());
            if d.exists() {
                let aside = (1..)
                    .map(|i| {
                        out.join("iterations")
                            .join(format!("{}.interrupted-{i}", s.dir_name()))
                    })
                    .find(|p| !p.exists())
                    .expect("some name is free");
                std::fs::rename(&d, &aside)?;
            }
        }
        progress.note(&format!(
            "resuming {}: {} of {} iterations finished, {} to run ({moved} event lines of interrupted iterations moved to events.interrupted.jsonl)",
            out.display(),
            done.len(),
            order.len(),
            todo.len()
        ));
    }
    let run_dir = RunDir::create(&out)?;
    if !opts.resume {
        crate::plan::snapshot::write(&plan.sources, &out)?;
        // run.json, written next, is what makes the directory resumable:
        // the plan it names must be on disk before it is.
        durable::sync_tree(&out).with_context(|| format!("syncing {}", out.display()))?;
    }

    let plan2 = plan.clone();
    let p2 = progress.clone();
    let (variants, media) = tokio::task::spawn_blocking(move || prepare(&plan2, &|m| p2.note(m)))
        .await?
        .context("preparing the board artifacts")?;
    let (plan3, media2, boards) = (plan.clone(), media.clone(), instances.clone());
    let storages = tokio::task::spawn_blocking(move || {
        let cache = Cache::default_for(&crate::plan::home_for(&plan3.path));
        boards
            .iter()
            .map(|b| board::strategy::for_kind(b.kind()).storage(&cache, &plan3, &media2, b))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await?
    .context("laying out the boards' storage")?;
    let run_id = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if opts.resume {
        let mut info = read_run_json(&out)?;
        let mut entry = serde_json::json!({
            "at": chrono::Utc::now().to_rfc3339(),
            "host": hostname(),
            "boards": names,
            "finished_before": done.len(),
        });
        if !set_aside.is_empty() {
            entry["results_set_aside"] = serde_json::json!({
                "file": results::DAMAGED,
                "lines": set_aside,
            });
        }
        match info["resumed"].as_array_mut() {
            Some(a) => a.push(entry),
            None => info["resumed"] = serde_json::json!([entry]),
        }
        run_dir.write_json("run.json", &info)?;
    } else {
        run_dir.write_json(
            "run.json",
            &RunInfo {
                version: hilt_reports::RESULTS_VERSION,
                hilt_version: env!("CARGO_PKG_VERSION"),
                plan: &plan.plan.name,
                plan_path: plan.path.display().to_string(),
                plan_path_abs: std::path::absolute(&plan.path)
                    .unwrap_or_else(|_| plan.path.clone())
                    .display()
                    .to_string(),
                plan_sha256: &plan.sha256,
                board: &plan.board.name,
                boards: names.iter().map(String::as_str).collect(),
                started_at: chrono::Utc::now().to_rfc3339(),
                host: hostname(),
                variants: variants
                    .iter()
                    .map(|v| VariantInfo {
                        name: &v.kernel.variant,
                        kernel_package: &v.kernel_package,
                        kernel_release: &v.kernel.release,
                        kernel_image_sha256: &v.kernel_image_sha256,
                        modules_loaded: &v.loaded_modules,
                        modules_builtin: &v.builtin_modules,
                        kernel_build: v.kernel_build.as_ref(),
                        kernel_prebuilt: v.kernel_prebuilt.as_ref(),
                    })
                    .collect(),
                media: &media.provenance,
                order: &order,
                question: plan.plan.question(),
            },
        )?;
    }
    progress.note(&format!("results go to {}", out.display()));

    let shared = Shared {
        plan: &plan,
        variants: &variants,
        media: &media,
        run_dir: &run_dir,
        run_id: &run_id,
        progress: &progress,
        cancel: cancel.clone(),
        planned: order.len() as u32,
        queue: Mutex::new(todo),
        records: Mutex::new(done),
        quarantined: Mutex::new(Vec::new()),
        interrupted: AtomicBool::new(false),
        started: std::time::Instant::now(),
        cpu0: iteration::host_cpu_ms(),
        changes: Mutex::new(Default::default()),
        agent: artifacts::agent_binary()?,
        stop_rule: stopping::StopRule::of(&plan.plan),
        stopped: Mutex::new(None),
    };
    // A resumed run may already hold its answer.
    shared.check_stop();
    // The boards' loops run concurrently on this task: they wait on their
    // boards, and share the queue and the records without locks held
    // across an await.
    join_all(
        instances
            .into_iter()
            .enumerate()
            .zip(storages)
            .map(|((k, b), st)| drive_board(&shared, k, b, st)),
    )
    .await;
    drop(held);
    if *cancel.borrow() {
        shared.interrupted.store(true, Ordering::Relaxed);
    }
    // Every board quarantined: the slots left are recorded as not run, and why.
    if !shared.interrupted.load(Ordering::Relaxed) {
        let left: Vec<(usize, Slot)> = shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        let why = shared
            .quarantined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, w)| w.clone())
            .collect::<Vec<_>>()
            .join("; ");
        for (_, slot) in left {
            shared.record(iteration::not_run(&plan.board.name, &slot, &why));
        }
    }
    let summary = shared.summary();
    let _ = run_dir.write_summary(&summary);
    progress.finish();
    print_summary(&summary, &out);
    // The report and the history entry come from what is on disk, so an
    // interrupted run gets them too.
    let published = crate::reporting::report_and_record(&out, opts.history.as_deref());
    let write_failure = run_dir.write_failure();
    let records = shared
        .records
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let (code, status) = exit::verdict(&exit::Facts {
        interrupted: summary.interrupted,
        results_lost: write_failure.is_some(),
        controls_failed: summary.valid == Some(false),
        all_infra: !records.is_empty()
            && records
                .iter()
                .all(|r| matches!(r.outcome, Outcome::InfraError | Outcome::NotRun)),
        regressions: published.regressions.len(),
        unexpected: stopping::expectations_failed(&plan.plan, &records).len(),
    });
    if let Some(e) = &write_failure {
        eprintln!(
            "error: results could not be written ({e}): the run stopped after {} of {} iterations; \
             what was written before is intact in {}. Free space there (or choose another --out) and run again",
            records.len(),
            summary.planned_iterations,
            out.display()
        );
    }
    crate::reporting::export(
        &opts.exports,
        &out,
        &published,
        code,
        status,
        write_failure.as_deref(),
        None,
    )?;
    Ok(code)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `hilt fetch`: everything `hilt run` would prepare, without booting.
pub fn fetch_all(plan: &ResolvedPlan, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let (variants, media) = prepare(plan, say)?;
    for v in &variants {
        say(&format!(
            "{}: {} ({}), initramfs {}",
            v.kernel.variant,
            v.kernel_package,
            v.kernel.release,
            v.kernel.initramfs.display()
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
