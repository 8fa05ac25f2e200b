//! The D-state watcher thread: suspicion, evidence, confirmation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hilt_protocol::{AgentMsg, Confirmation, ConfirmedBy, SuspectReport, WatchSpec};

use crate::channel::Sender;
use crate::dstate::{Reason, Watcher};
use crate::{sampler, sys};

/// Shared with the kmsg thread, which records the pids the kernel reported
/// hung, and with the run, which sets the thresholds.
#[derive(Default)]
pub struct Shared {
    pub spec: Mutex<Option<WatchSpec>>,
    pub kernel_hung_pids: Mutex<Vec<u32>>,
}

struct Pending {
    pid: i32,
    tid: i32,
    comm: String,
    stopped_ms: u64,
    suspected_ms: u64,
    reason: Reason,
    /// Once confirmed: what it looked like then, to tell when it moves.
    moved_from: Option<Snapshot>,
    /// Scans in a row that found it out of D, once confirmed.
    out_of_d: u8,
}

/// What says a thread got somewhere: it ran (schedstat's count of runs), or
/// it waits somewhere else.
#[derive(Clone, PartialEq, Eq)]
struct Snapshot {
    runs: Option<u64>,
    wchan: String,
}

fn snapshot(pid: i32, tid: i32) -> Snapshot {
    let runs = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok());
    let wchan = sys::read_trimmed(format!("/proc/{pid}/task/{tid}/wchan")).unwrap_or_default();
    Snapshot { runs, wchan }
}

/// The state letter of one thread; None once it is gone.
fn task_state(pid: i32, tid: i32) -> Option<u8> {
    let stat = std::fs::read(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    crate::dstate::comm_and_state(&stat).map(|(_, state)| state)
}

/// Whether a confirmed task has moved since it was confirmed. A task
/// suspected for not running moves when it runs at all (khungtaskd's own
/// rule); one suspected on an unchanging wait while it wakes in slices moves
/// when it waits somewhere else (for a bio waiter: anywhere but a bio wait),
/// or is seen out of D in two scans in a row.
fn has_moved(p: &mut Pending) -> bool {
    let state = task_state(p.pid, p.tid);
    let Some(state) = state else {
        return true; // gone
    };
    p.out_of_d = if state == b'D' { 0 } else { p.out_of_d + 1 };
    let now = snapshot(p.pid, p.tid);
    let Some(then) = &p.moved_from else {
        p.moved_from = Some(now);
        return false;
    };
    match p.reason {
        Reason::NoContextSwitch => now.runs != then.runs || p.out_of_d >= 2,
        Reason::SameWchan => p.out_of_d >= 2 || (!now.wchan.is_empty() && now.wchan != then.wchan),
        Reason::BioWait => p.out_of_d >= 2 || left_bio_wait(&now.wchan),
    }
}

/// A bio waiter moved when it waits anywhere but in a bio wait; "0" (or
/// nothing) is a waiter caught awake between two of blk_wait_io's slices.
fn left_bio_wait(wchan: &str) -> bool {
    !matches!(wchan, "" | "0") && !crate::dstate::is_bio_wait(wchan.as_bytes())
}

pub fn spawn(tx: Sender, shared: Arc<Shared>) {
    std::thread::Builder::new()
        .name("dstate".into())
        .stack_size(crate::sys::THREAD_STACK)
        .spawn(move || run(tx, shared))
        .expect("spawning the D-state watcher");
}

fn run(tx: Sender, shared: Arc<Shared>) {
    let mut w = Watcher::new("/proc", 10_000, 60_000);
    let mut pending: Vec<Pending> = Vec::with_capacity(64);
    // Confirmed tasks stay watched: one that moves again turns the hang
    // into a stall, and only the agent sees its context switches.
    let mut confirmed: Vec<Pending> = Vec::with_capacity(64);
    // Kernel reports already looked at: each new one names a task the host
    // may watch, which this thread must follow even if it never suspected it.
    let mut reports_seen = 0;
    let mut new: Vec<(i32, i32, String, String, Reason, u64)> = Vec::with_capacity(16);
    let mut next = Instant::now();
    loop {
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        // Watching starts with the run's thresholds; before that, there is
        // nothing to compare against.
        crate::selfwatch::DSTATE.beat();
        let spec = match shared.spec.lock() {
            Ok(g) => match g.as_ref() {
                Some(s) => (s.dstate_ms, s.same_wchan_ms, s.confirm_ms),
                None => continue,
            },
            Err(_) => continue,
        };
        w.threshold_ms = spec.0;
        w.same_wchan_ms = spec.1;
        w.progress_ms = sampler::last_progress_ms();
        let now = sys::uptime_ms();
        w.scan(now, &mut |s| {
            new.push((
                s.pid,
                s.tid,
                s.comm.to_string(),
                s.wchan.to_string(),
                s.reason,
                s.stopped_ms,
            ));
        });
        for (pid, tid, comm, wchan, reason, stopped) in new.drain(..) {
            let keys = shared
                .spec
                .lock()
                .ok()
                .and_then(|g| g.as_ref().map(|s| s.sysrq_keys.clone()))
                .unwrap_or_default();
            let report = evidence(pid, tid, comm.clone(), wchan, reason, stopped, now, &keys);
            tx.send(&AgentMsg::Suspect(Box::new(report)));
            pending.push(Pending {
                pid,
                tid,
                comm,
                stopped_ms: stopped,
                suspected_ms: now,
                reason,
                moved_from: None,
                out_of_d: 0,
            });
        }
        let reported = shared
            .kernel_hung_pids
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        for &pid in reported.get(reports_seen..).unwrap_or_default() {
            let pid = pid as i32;
            let known = |p: &Pending| p.tid == pid || p.pid == pid;
            if !confirmed.iter().any(known) && !pending.iter().any(known) {
                let comm = sys::read_trimmed(format!("/proc/{pid}/comm")).unwrap_or_default();
                confirmed.push(Pending {
                    pid,
                    tid: pid,
                    comm,
                    stopped_ms: now,
                    suspected_ms: now,
                    reason: Reason::NoContextSwitch,
                    moved_from: Some(snapshot(pid, pid)),
                    out_of_d: 0,
                });
            }
        }
        reports_seen = reported.len();
        confirmed.retain_mut(|p| {
            if !has_moved(p) {
                return true;
            }
            tx.send(&AgentMsg::Resumed {
                uptime_ms: now,
                pid: p.pid,
                tid: p.tid,
                comm: p.comm.clone(),
                blocked_ms: now.saturating_sub(p.stopped_ms),
            });
            false
        });
        let mut newly_confirmed = Vec::new();
        pending.retain(|p| {
            let by = if reported.contains(&(p.tid as u32)) || reported.contains(&(p.pid as u32)) {
                ConfirmedBy::KernelReport
            } else if !w.still_suspected(p.tid) {
                tx.send(&AgentMsg::Cleared {
                    uptime_ms: now,
                    pid: p.pid,
                    tid: p.tid,
                });
                return false;
            } else if now.saturating_sub(p.suspected_ms) >= spec.2 {
                ConfirmedBy::Timeout
            } else {
                return true;
            };
            tx.send(&AgentMsg::Confirmed(Confirmation {
                uptime_ms: now,
                pid: p.pid,
                tid: p.tid,
                comm: p.comm.clone(),
                by,
                stopped_ms: p.stopped_ms,
                suspected_ms: p.suspected_ms,
            }));
            newly_confirmed.push(Pending {
                comm: p.comm.clone(),
                moved_from: Some(snapshot(p.pid, p.tid)),
                out_of_d: 0,
                ..*p
            });
            false
        });
        confirmed.extend(newly_confirmed);
        if confirmed.len() > crate::dstate::MAX_TRACKED {
            confirmed.drain(..confirmed.len() - crate::dstate::MAX_TRACKED);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn evidence(
    pid: i32,
    tid: i32,
    comm: String,
    wchan: String,
    reason: Reason,
    stopped_ms: u64,
    now: u64,
    sysrq_keys: &str,
) -> SuspectReport {
    // The stack first: it is what explains the hang, and the task may move.
    let stack = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stack"))
        .map(|s| {
            s.lines()
                .map(|l| l.trim().trim_start_matches("[<0>] ").to_string())
                .collect()
        })
        .unwrap_or_default();
    for key in sysrq_keys.chars() {
        let _ = sys::sysrq(key);
    }
    SuspectReport {
        uptime_ms: now,
        pid,
        tid,
        comm,
        wchan,
        reason: reason.name().into(),
        stopped_ms,
        stack,
        psi: sampler::read_psi(),
        mem: sampler::read_mem(),
        vmstat: std::fs::read_to_string("/proc/vmstat").unwrap_or_default(),
        evidence_ms: sys::uptime_ms(),
    }
}
