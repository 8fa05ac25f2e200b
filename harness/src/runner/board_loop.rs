//! The boards' loops: each board takes the next slot from the shared queue,
//! boots it through its strategy, runs the iteration and records it; what
//! they share is the queue, the records and the stopping rule.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use hilt_reports::{IterationRecord, Outcome};
use tokio::sync::watch;

use super::prepare::PreparedVariant;
use super::progress::Progress;
use super::results::{self, RunDir, RunSummary};
use super::slots::{self, Slot};
use super::{iteration, run_json, stopping};
use crate::artifacts;
use crate::board::{self, BoardStorage, BootRequest, RunBoard};
use crate::plan::{BoardFile, ResolvedPlan};

/// What the boards' loops share: the plan, what was prepared, the queue
/// of slots still to run and everything gathered.
pub struct Shared<'a> {
    pub plan: &'a ResolvedPlan,
    pub variants: &'a [PreparedVariant],
    pub media: &'a artifacts::Media,
    pub run_dir: &'a RunDir,
    pub run_id: &'a str,
    pub progress: &'a Progress,
    pub cancel: watch::Receiver<bool>,
    pub planned: u32,
    pub queue: Mutex<VecDeque<(usize, Slot)>>,
    pub records: Mutex<Vec<IterationRecord>>,
    /// Why each quarantined board was taken out.
    pub quarantined: Mutex<Vec<(String, String)>>,
    /// A board's loop panicked.
    pub crashed: AtomicBool,
    pub interrupted: AtomicBool,
    pub started: std::time::Instant,
    pub cpu0: u64,
    pub changes: Mutex<crate::plan::snapshot::ChangeWatch>,
    /// The agent binary, pushed to boards that boot their own OS.
    pub agent: PathBuf,
    pub stop_rule: Option<stopping::StopRule>,
    /// Why the stopping rule ended the run, once it has.
    pub stopped: Mutex<Option<String>>,
}

impl Shared<'_> {
    pub fn summary(&self) -> RunSummary {
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

    /// Takes a board whose lease was lost out of the run, saying why: the
    /// slots it would have run go to the other boards, or are recorded as
    /// not run with this reason.
    fn lose(&self, board: &str, why: &str) {
        let why = format!("board {board} stopped: {why}");
        self.progress.note(&why);
        let _ = self.run_dir.event(
            &serde_json::json!({"source": "host", "kind": "lease_lost", "board": board, "detail": why}),
        );
        self.quarantined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((board.to_string(), why));
    }

    /// Takes a board whose loop panicked out of the run, saying so as a
    /// bug to report: its remaining slots go to the other boards, or are
    /// recorded as not run with this reason.
    pub fn crash(&self, board: &str, panic: &(dyn std::any::Any + Send)) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let why = format!(
            "board {board} stopped: hilt's loop for it panicked ({what}); this is a bug in hilt: \
             please report it with {}",
            self.run_dir.path.display()
        );
        eprintln!("hilt: error: {why}");
        self.crashed.store(true, Ordering::Relaxed);
        let _ = self.run_dir.event(
            &serde_json::json!({"source": "host", "kind": "hilt_panic", "board": board, "detail": why}),
        );
        self.quarantined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((board.to_string(), why));
    }

    pub fn record(&self, rec: IterationRecord) {
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
    pub fn check_stop(&self) {
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
        if let Err(e) = run_json::record_stop(self.run_dir, &reason, after, &dropped) {
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
/// record it, until the queue is empty, the run is stopped, the board is
/// quarantined, or (`lost`) the board's lab lease is lost.
/// This board stops when the run does, or at once when one of its leases
/// (local, or a labgrid place) is lost: another holder may be driving it
/// already. The task that watches for either is aborted with the board.
fn stop_signal(
    mut run_cancel: watch::Receiver<bool>,
    lost: Vec<watch::Receiver<Option<String>>>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (stop_tx, stop) = watch::channel(false);
    let watcher = tokio::spawn(async move {
        tokio::select! {
            _ = run_cancel.wait_for(|c| *c) => {}
            _ = crate::lease::first_loss(lost) => {}
        }
        let _ = stop_tx.send(true);
    });
    (stop, watcher)
}

pub async fn drive_board(
    sh: &Shared<'_>,
    k: usize,
    board: BoardFile,
    storage: BoardStorage,
    lost: Vec<watch::Receiver<Option<String>>>,
) {
    let line = sh.progress.board(&board.name);
    let (stop, watcher) = stop_signal(sh.cancel.clone(), lost.clone());
    let lost_why = || lost.iter().find_map(|rx| rx.borrow().clone());
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
        if let Some(why) = lost_why() {
            sh.lose(&board.name, &why);
            last = "stopped: lease lost";
            break;
        }
        if *stop.borrow() {
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
        let files = v.for_board(&board);
        let boot = attached.boot(&BootRequest {
            kernel: &files,
            slot: n,
            dir: &dir,
        });
        let label = slot.label(n, sh.planned);
        let say = |m: &str| line.iteration(&label, m);
        let input = iteration::IterationInput {
            plan: &bplan,
            variant: &slot.variant,
            iteration: slot.iteration,
            spec: slots::run_spec(&bplan, &storage, sh.run_id, &slot),
            signatures: &bplan.plan.signatures,
            faults: slots::faults_of(&bplan, &slot),
            run_dir: sh.run_dir,
            dir: dir.clone(),
            previous_dir: previous_dir.clone(),
            progress: &say,
        };
        let mut rec = iteration::run(input, boot, stop.clone()).await;
        previous_dir = Some(dir);
        rec.control = slot.control.map(|c| c.name().to_string());
        rec.board = board.name.clone();
        line.done(sh.progress, &label, &rec);
        let lease_lost = lost_why();
        if let Some(why) = &lease_lost {
            rec.detail = format!("{why}; {}", rec.detail);
        }
        let was_cancelled = rec.outcome == Outcome::NotRun && lease_lost.is_none();
        infra_in_a_row = if rec.outcome == Outcome::InfraError {
            infra_in_a_row + 1
        } else {
            0
        };
        sh.record(rec);
        crate::failpoint::hit("board-loop-recorded");
        sh.check_inputs();
        // Without room for results, going on only burns board time.
        if sh.run_dir.write_failure().is_some() {
            last = "stopped: results cannot be written";
            break;
        }
        if let Some(why) = lease_lost {
            sh.lose(&board.name, &why);
            last = "stopped: lease lost";
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
    // A board its last boot left on to reset itself (ramoops) would boot
    // on, unattended, from its own autoboot.
    if let Some(mut power) = attached.left_on() {
        let _ = power.off().await;
    }
    watcher.abort();
    line.idle(last);
}
