//! The deadlock window: after a hang is detected, hilt keeps watching to
//! tell a deadlock (nothing that was blocked ever moves again) from a stall
//! (it was blocked past the threshold, then went on).
//!
//! The decision rests on the tasks the detection named (the culprits): the
//! agent reports a confirmed task that leaves D (`Resumed`), a stalled
//! reader that reads again (`ReaderResumed`). Workload progress is recorded
//! beside it but decides nothing: a hog can go on allocating while the
//! culprit stays stuck for good, and that is still a deadlock of the culprit.
//! A culprit that recovers closes the window as a stall, and the iteration
//! goes on: a later report of a task still blocked opens a new window.

use std::time::{Duration, Instant};

use hilt_kernlog::{Event, Task};
use hilt_protocol::{IntervalStats, SuspectReport};
use hilt_reports::{HangWatch, Waiter};

/// What a detection names as blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Culprit {
    /// A task, by pid or tid (khungtaskd names a thread by its pid).
    Task(i32),
    Reader(u32),
    /// The agent's sampler: its heartbeat goes on but its interval reports
    /// stopped, so it is blocked in the kernel itself (reading /proc, or
    /// allocating under the pressure it measures) and cannot see the readers.
    Sampler,
}

pub struct Window {
    pub opened: Instant,
    pub closes: Instant,
    culprits: Vec<Culprit>,
    base_work: Option<u64>,
    last_work: Option<u64>,
}

/// What ended a window early: the culprit and how it moved.
pub struct Progress {
    pub after: Duration,
    pub what: String,
}

impl Window {
    pub fn open(culprit: Culprit, length: Duration, last: Option<&IntervalStats>) -> Self {
        let now = Instant::now();
        let work = last.map(work_done);
        Self {
            opened: now,
            closes: now + length,
            culprits: vec![culprit],
            base_work: work,
            last_work: work,
        }
    }

    pub fn names(&self, c: &Culprit) -> bool {
        self.culprits.contains(c)
    }

    /// A confirmed task left D: progress when it is one of the culprits.
    pub fn task_resumed(
        &self,
        pid: i32,
        tid: i32,
        comm: &str,
        blocked_ms: u64,
    ) -> Option<Progress> {
        (self.names(&Culprit::Task(tid)) || self.names(&Culprit::Task(pid))).then(|| Progress {
            after: self.opened.elapsed(),
            what: format!("{comm}:{tid} left D after {} s blocked", blocked_ms / 1000),
        })
    }

    /// An interval report arrived. When the sampler was the culprit, its
    /// report counts as progress only if the workloads moved meanwhile: a
    /// sampler that wakes to find every reader still stuck has not seen the
    /// hang end.
    pub fn sampler_reported(&self) -> Option<Progress> {
        let moved = self.work_during().filter(|&b| b > 0)?;
        self.names(&Culprit::Sampler).then(|| Progress {
            after: self.opened.elapsed(),
            what: format!(
                "the agent's sampler reported again, the workloads having moved {} KiB",
                moved / 1024
            ),
        })
    }

    pub fn reader_resumed(&self, reader: u32, workload: &str) -> Option<Progress> {
        self.names(&Culprit::Reader(reader)).then(|| Progress {
            after: self.opened.elapsed(),
            what: format!("{workload} reader {reader} read again"),
        })
    }

    pub fn interval(&mut self, iv: &IntervalStats) {
        let w = work_done(iv);
        self.base_work.get_or_insert(w);
        self.last_work = Some(w);
    }

    /// Bytes the workloads moved since the window opened.
    pub fn work_during(&self) -> Option<u64> {
        Some(self.last_work?.saturating_sub(self.base_work?))
    }
}

/// Everything the workloads have read or touched: one counter that only
/// stands still when none of them moves.
fn work_done(iv: &IntervalStats) -> u64 {
    iv.reader_bytes.iter().sum::<u64>() + iv.hog_bytes
}

/// Frames that say a task sleeps, not what it waits for.
const SCHEDULER: &[&str] = &[
    "__switch_to",
    "__schedule",
    "schedule",
    "schedule_timeout",
    "schedule_preempt_disabled",
    "io_schedule",
    "io_schedule_timeout",
    "preempt_schedule_common",
    "__cond_resched",
    "_cond_resched",
    "ret_from_fork",
];

fn waits_in(frames: &[String]) -> String {
    let mut it = frames
        .iter()
        .map(|f| f.split('+').next().unwrap_or(f))
        .filter(|f| !SCHEDULER.contains(f));
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => format!("{a} ← {b}"),
        (Some(a), None) => a.to_string(),
        _ => "?".to_string(),
    }
}

/// `blocked for more than N seconds` in a hung-task report.
pub fn blocked_s(excerpt: &str) -> Option<u64> {
    excerpt
        .split("blocked for more than ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A reported task as hilt names it: `comm:pid`, or its comm alone.
pub fn task_name(task: &Task) -> String {
    match task.pid {
        Some(pid) => format!("{}:{pid}", task.comm),
        None => task.comm.clone(),
    }
}

/// Function names of a /proc/PID/stack capture (`name+0x1c/0x40 [mod]`).
pub fn frame_names(stack: &[String]) -> Vec<String> {
    stack
        .iter()
        .map(|f| f.split('+').next().unwrap_or(f).to_string())
        .collect()
}

/// Adds or updates a waiter from a hung-task report.
pub fn note_report(w: &mut HangWatch, event: &Event) {
    let Some(task) = &event.task else { return };
    note(w, task_name(task), &event.frames, blocked_s(&event.excerpt));
}

/// Adds or updates a waiter from the agent's D-state evidence.
pub fn note_suspect(w: &mut HangWatch, s: &SuspectReport) {
    let frames = frame_names(&s.stack);
    let blocked = s.uptime_ms.saturating_sub(s.stopped_ms) / 1000;
    note(w, format!("{}:{}", s.comm, s.tid), &frames, Some(blocked));
}

fn note(w: &mut HangWatch, task: String, frames: &[String], blocked: Option<u64>) {
    w.longest_blocked_s = w.longest_blocked_s.max(blocked);
    if let Some(x) = w.waiters.iter_mut().find(|x| x.task == task) {
        x.blocked_s = x.blocked_s.max(blocked);
        if x.frames.is_empty() && !frames.is_empty() {
            x.frames = frames.to_vec();
            x.waits_in = waits_in(frames);
        }
        return;
    }
    w.waiters.push(Waiter {
        waits_in: waits_in(frames),
        task,
        frames: frames.to_vec(),
        blocked_s: blocked,
    });
}

/// The longest time the kernel reported `tid` blocked, in ms (0 if never).
pub fn reported_blocked_ms(w: &HangWatch, tid: i32) -> u64 {
    let suffix = format!(":{tid}");
    w.waiters
        .iter()
        .filter(|x| x.task.ends_with(&suffix))
        .filter_map(|x| x.blocked_s)
        .max()
        .unwrap_or(0)
        * 1000
}

/// The waiters in one line, for the record's detail.
pub fn describe(w: &HangWatch) -> String {
    w.waiters
        .iter()
        .take(6)
        .map(|x| format!("{} in {}", x.task, x.waits_in))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_is_named_by_what_it_waits_in_not_by_the_scheduler() {
        let frames: Vec<String> = [
            "__switch_to",
            "__schedule",
            "schedule",
            "schedule_preempt_disabled",
            "__mutex_lock.constprop.0",
            "z_erofs_decompress_queue",
            "z_erofs_decompress_kickoff",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            waits_in(&frames),
            "__mutex_lock.constprop.0 ← z_erofs_decompress_queue"
        );
    }

    #[test]
    fn reports_of_the_same_task_keep_its_longest_blocked_time() {
        let mut w = HangWatch::default();
        note(&mut w, "kswapd0:40".into(), &[], Some(20));
        note(
            &mut w,
            "kswapd0:40".into(),
            &["rq_qos_wait".into()],
            Some(120),
        );
        note(&mut w, "kswapd0:40".into(), &[], Some(30));
        assert_eq!(w.waiters.len(), 1);
        assert_eq!(w.waiters[0].blocked_s, Some(120));
        assert_eq!(w.waiters[0].waits_in, "rq_qos_wait");
        assert_eq!(w.longest_blocked_s, Some(120));
    }

    #[test]
    fn only_a_culprit_resuming_is_progress() {
        let w = Window::open(Culprit::Task(312), Duration::from_secs(120), None);
        assert!(w.task_resumed(311, 311, "other", 20_000).is_none());
        let p = w.task_resumed(312, 313, "swapoff", 31_000).unwrap();
        assert_eq!(p.what, "swapoff:313 left D after 31 s blocked");
        assert!(w.reader_resumed(0, "readers-seq-1").is_none());
        let r = Window::open(Culprit::Reader(1), Duration::from_secs(120), None);
        assert!(r.reader_resumed(1, "readers-seq-1").is_some());
    }

    #[test]
    fn a_silent_sampler_recovers_only_when_the_workloads_moved() {
        let iv = |bytes: u64| IntervalStats {
            reader_bytes: vec![bytes],
            ..IntervalStats::default()
        };
        let mut w = Window::open(Culprit::Sampler, Duration::from_secs(120), Some(&iv(4096)));
        // The sampler woke, but the reader had not read a byte since.
        w.interval(&iv(4096));
        assert!(w.sampler_reported().is_none());
        w.interval(&iv(4096 + 8192));
        let p = w.sampler_reported().unwrap();
        assert!(p.what.contains("moved 8 KiB"), "{}", p.what);
        // A task's window is not ended by the sampler's reports.
        let mut t = Window::open(Culprit::Task(7), Duration::from_secs(120), Some(&iv(0)));
        t.interval(&iv(1 << 20));
        assert!(t.sampler_reported().is_none());
    }

    #[test]
    fn blocked_time_is_read_from_the_report() {
        assert_eq!(
            blocked_s("INFO: task kswapd0:40 blocked for more than 245 seconds.\n"),
            Some(245)
        );
        assert_eq!(blocked_s("no such line"), None);
    }
}
