//! Running a plan: lease the boards, prepare the artifacts, then let each
//! board take slots from a shared queue, writing results as they come.
//!
//! - [`slots`]: the run's slots, their order, and each one's agent spec;
//! - [`prepare`]: kernels, initramfs and media, built before any boot;
//! - [`run_json`]: what a run started with, its resumes and its stop;
//! - [`resume`]: picking an interrupted run up where it stopped;
//! - [`board_loop`]: each board's loop over the shared queue;
//! - [`iteration`]: one boot, from power-on to the record;
//! - [`results`], [`summary`], [`exit`]: what is written, shown and returned.

mod board_loop;
pub mod exit;
pub mod iteration;
mod prepare;
pub mod progress;
pub mod results;
mod resume;
mod run_json;
mod slots;
mod stopping;
mod summary;
mod window;
pub use prepare::fetch_all;
pub use run_json::resume_plan;
pub use summary::print_summary;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::join_all;
use futures_util::FutureExt;
use hilt_reports::Outcome;
use std::panic::AssertUnwindSafe;
use tokio::sync::watch;

use crate::artifacts::{self, Cache, Media};
use crate::board::{self, BoardStorage};
use crate::durable;
use crate::lease;
use crate::plan::{BoardFile, ResolvedPlan};
use board_loop::Shared;
use prepare::PreparedVariant;
use progress::Progress;
use results::RunDir;
use slots::Slot;

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

pub fn default_out(plan: &ResolvedPlan) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    PathBuf::from("runs").join(format!("{}-{stamp}", plan.plan.name))
}

fn signals() -> watch::Receiver<bool> {
    crate::interrupt::watch(
        "stopping: powering boards off and writing results (interrupt again to abort)",
    )
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
    let mut instances = plan.instances();
    let names: Vec<String> = instances.iter().map(|b| b.name.clone()).collect();
    // Boards first: a run that cannot have them leaves no run directory
    // behind to trip over.
    let Some(held) = lease_boards(&plan, &opts, &out, &names, &progress, cancel.clone()).await?
    else {
        progress.finish();
        return Ok(exit::INTERRUPTED);
    };
    let Some(places) = take_places(&mut instances, &opts, &progress, cancel.clone()).await? else {
        progress.finish();
        return Ok(exit::INTERRUPTED);
    };

    let _run_lock = results::lock_run_dir(&out)?;
    let earlier = match opts.resume {
        true => resume::Earlier::load(&out, &progress)?,
        false => resume::Earlier::default(),
    };
    let order = earlier.order.clone().unwrap_or_else(|| slots::order(&plan));
    let todo = earlier.todo(&order);
    if opts.resume {
        let moved = resume::set_aside_interrupted(&out, &todo)?;
        progress.note(&format!(
            "resuming {}: {} of {} iterations finished, {} to run ({moved} event lines of interrupted iterations moved to events.interrupted.jsonl)",
            out.display(),
            earlier.done.len(),
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

    let (variants, media, storages) = prepare_boards(&plan, &instances, &progress).await?;
    tell_about_vbmeta(&storages, &instances, &out)?;
    if opts.resume {
        run_json::record_resume(&run_dir, &names, earlier.done.len(), &earlier.set_aside)?;
    } else {
        run_json::write_new(
            &run_dir,
            &plan,
            &names,
            &variants,
            &media.provenance,
            &order,
        )?;
    }
    progress.note(&format!("results go to {}", out.display()));

    let run_id = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
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
        records: Mutex::new(earlier.done),
        quarantined: Mutex::new(Vec::new()),
        crashed: AtomicBool::new(false),
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
    let sh = &shared;
    join_all(
        instances
            .into_iter()
            .enumerate()
            .zip(storages)
            .map(|((k, b), st)| {
                let lost: Vec<_> = places
                    .iter()
                    .filter(|p| p.board == b.name)
                    .map(|p| p.lost())
                    .chain(held.lost(&b.name))
                    .collect();
                let name = b.name.clone();
                // A panicking board loop is a bug in hilt: caught here, it
                // takes that board out of the run and nothing else, so the
                // other boards go on, the results so far are summed up, and
                // the places and leases are given back as after any run.
                AssertUnwindSafe(board_loop::drive_board(&shared, k, b, st, lost))
                    .catch_unwind()
                    .map(move |r| {
                        if let Err(panic) = r {
                            sh.crash(&name, panic.as_ref());
                        }
                    })
            }),
    )
    .await;
    release_places(places, &progress).await;
    drop(held);
    if *cancel.borrow() {
        shared.interrupted.store(true, Ordering::Relaxed);
    }
    finish(shared, &opts, &out)
}

/// Leases every board of the run, waiting for those another run holds;
/// None when the run was interrupted while it waited.
async fn lease_boards(
    plan: &ResolvedPlan,
    opts: &RunOptions,
    out: &Path,
    names: &[String],
    progress: &Progress,
    mut cancel: watch::Receiver<bool>,
) -> anyhow::Result<Option<lease::Held>> {
    let leases = lease::Leases::new(opts.leases.clone());
    let claim = lease::Claim {
        run_dir: std::path::absolute(out)
            .unwrap_or_else(|_| out.to_path_buf())
            .display()
            .to_string(),
        plan: plan.plan.name.clone(),
        ttl: opts.lease_ttl,
        command: String::new(),
    };
    let say = |m: &str| progress.note(m);
    let held = tokio::select! {
        r = lease::acquire(&leases, names, claim, opts.lease_wait, &say) => r?,
        _ = cancel.wait_for(|c| *c) => return Ok(None),
    };
    progress.note(&format!(
        "leased {} (in {})",
        held.boards().join(", "),
        leases.dir().display()
    ));
    Ok(Some(held))
}

/// Writes vbmeta.img beside the results and tells the user what a device
/// that checks vbmeta needs: said even with --quiet, because it asks the
/// user to act on the device.
fn tell_about_vbmeta(
    storages: &[board::storage::BoardStorage],
    instances: &[BoardFile],
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let lines = board::storage::publish_vbmeta(storages, instances, out)?;
    if lines.is_empty() {
        return Ok(());
    }
    for line in &lines {
        eprintln!("hilt: {line}");
    }
    std::fs::write(out.join("vbmeta.txt"), lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", out.join("vbmeta.txt").display()))
}

async fn release_places(places: Vec<board::labgrid::HeldPlace>, progress: &Progress) {
    for p in places {
        let (board, place) = (p.board.clone(), p.place.clone());
        match p.release().await {
            Ok(()) => progress.note(&format!("released labgrid place {place} ({board})")),
            Err(e) => progress.note(&format!("warning: {e:#}")),
        }
    }
}

/// Acquires the labgrid place of each board that lives in one, and fills
/// in the console and power the place provides; None when the run was
/// interrupted while it waited. A place is released if a later one fails.
async fn take_places(
    instances: &mut [BoardFile],
    opts: &RunOptions,
    progress: &Progress,
    mut cancel: watch::Receiver<bool>,
) -> anyhow::Result<Option<Vec<board::labgrid::HeldPlace>>> {
    let say = |m: &str| progress.note(m);
    let wanted = board::labgrid::Wanted {
        wait: opts.lease_wait,
        ttl: opts.lease_ttl,
        say: &say,
    };
    let mut held = Vec::new();
    for b in instances.iter_mut().filter(|b| b.labgrid.is_some()) {
        let h = tokio::select! {
            r = board::labgrid::take(b, &wanted) => r?,
            _ = cancel.wait_for(|c| *c) => {
                // A place acquired but not yet handed over is only in the
                // registry of places this process holds.
                board::labgrid::release_all_blocking();
                return Ok(None);
            }
        };
        progress.note(&format!(
            "acquired labgrid place {} for board {} as {}",
            h.place,
            b.name,
            board::labgrid::identity()
        ));
        held.push(h);
    }
    Ok(Some(held))
}

/// The kernels and media, then each board's storage layout, built off the
/// async threads: they read and write large files.
async fn prepare_boards(
    plan: &ResolvedPlan,
    instances: &[BoardFile],
    progress: &Progress,
) -> anyhow::Result<(Vec<PreparedVariant>, Media, Vec<BoardStorage>)> {
    let (for_prepare, p) = (plan.clone(), progress.clone());
    let (variants, media) =
        tokio::task::spawn_blocking(move || prepare::prepare(&for_prepare, &|m| p.note(m)))
            .await?
            .context("preparing the board artifacts")?;
    let (plan, for_boards, boards) = (plan.clone(), media.clone(), instances.to_vec());
    let storages = tokio::task::spawn_blocking(move || {
        let cache = Cache::default_for(&crate::plan::home_for(&plan.path));
        boards
            .iter()
            .map(|b| board::strategy::for_kind(b.kind()).storage(&cache, &plan, &for_boards, b))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await?
    .context("laying out the boards' storage")?;
    Ok((variants, media, storages))
}

/// After the boards' loops: the slots no board could take, the summary,
/// the report and history entry, the CI exports and the exit code.
fn finish(shared: Shared<'_>, opts: &RunOptions, out: &Path) -> anyhow::Result<i32> {
    let (plan, run_dir, progress) = (shared.plan, shared.run_dir, shared.progress);
    // Every board quarantined: the slots left are recorded as not run, and why.
    if !shared.interrupted.load(Ordering::Relaxed) {
        let left: VecDeque<(usize, Slot)> =
            std::mem::take(&mut *shared.queue.lock().unwrap_or_else(|p| p.into_inner()));
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
    print_summary(&summary, out);
    // The report and the history entry come from what is on disk, so an
    // interrupted run gets them too.
    let published = crate::reporting::report_and_record(out, opts.history.as_deref());
    let write_failure = run_dir.write_failure();
    let records = shared
        .records
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let (code, status) = exit::verdict(&exit::Facts {
        interrupted: summary.interrupted,
        results_lost: write_failure.is_some(),
        crashed: shared.crashed.load(Ordering::Relaxed),
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
        out,
        &published,
        code,
        status,
        write_failure.as_deref(),
        None,
    )?;
    Ok(code)
}
