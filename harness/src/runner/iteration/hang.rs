//! A detected hang's course: the deadlock window on its culprit, then the
//! evidence collection, and the detail that names the outcome.

use std::time::{Duration, Instant};

use hilt_reports::Outcome;

use super::links::Via;
use super::state::{Phase, State};
use super::{Flow, Iteration};
use crate::runner::window::{self, Culprit, Progress, Window};

impl Iteration<'_> {
    /// A hang was detected: watch its culprit for the deadlock window, or, with
    /// no window, collect evidence and end as an unclassified hang.
    pub(super) fn detected(&mut self, culprit: Culprit, detected_ms: Option<u64>) {
        if self.limits.window.is_zero() {
            return self.enter_evidence();
        }
        self.open_window(culprit, detected_ms);
    }

    /// Opens a window on `culprit`, detected at board uptime `detected_ms`. A
    /// report can arrive after its task already moved (the agent's kmsg reader
    /// lags under pressure): the window then closes at once as a stall.
    pub(super) fn open_window(&mut self, culprit: Culprit, detected_ms: Option<u64>) {
        let st = &mut self.st;
        let moved_since = match (&culprit, detected_ms) {
            (Culprit::Task(id), Some(d)) => st
                .moved
                .iter()
                .find(|&&(pid, tid, at)| (pid == *id || tid == *id) && at > d)
                .map(|&(_, tid, at)| (tid, at)),
            _ => None,
        };
        if st.phase == Phase::Running {
            st.run_deadline = Some(st.deadline);
        }
        let w = Window::open(culprit, self.limits.window, st.last_interval.as_ref());
        st.deadline = w.closes;
        st.window = Some(w);
        st.phase = Phase::Window;
        self.say(&format!(
            "hang detected: watching {} s for progress",
            self.limits.window.as_secs()
        ));
        if let Some((tid, at)) = moved_since {
            let what = format!("task {tid} had already left D when its report arrived");
            let moved = Progress {
                after: Duration::ZERO,
                what,
            };
            // Never an end: `done_seen` is set only while a window runs, and
            // a window that does not end the iteration leads to the evidence,
            // where no window opens again.
            let _ = self.on_culprit_moved(Some(moved), at);
        }
    }

    /// The culprit moved, if `moved` says so, while a window watched it: the
    /// hang was a stall. The iteration ends when the workloads already
    /// finished during the window.
    pub(super) fn on_culprit_moved(&mut self, moved: Option<Progress>, uptime_ms: u64) -> Flow {
        let Some(moved) = moved else {
            return Flow::Continue;
        };
        let Some(w) = self.st.window.take() else {
            return Flow::Continue;
        };
        let st = &mut self.st;
        st.resumed_uptime_ms = Some(uptime_ms);
        st.watch.window_ms = w.closes.duration_since(w.opened).as_millis() as u64;
        st.watch.resumed_after_ms = Some(moved.after.as_millis() as u64);
        st.watch.progress = Some(moved.what);
        st.rec.outcome = Outcome::Stall;
        st.phase = Phase::Running;
        let resume = Instant::now() + Duration::from_secs(self.input.plan.plan.timeouts.finish_s);
        st.deadline = st.run_deadline.map_or(resume, |d| d.max(resume));
        self.say(&format!(
            "stall: {} after {} s",
            self.st.watch.progress.as_deref().unwrap_or("progress"),
            moved.after.as_secs()
        ));
        if self.st.done_seen {
            Flow::End(Outcome::Stall, self.st.stall_detail())
        } else {
            Flow::Continue
        }
    }

    /// Nothing the detection named moved for the whole window.
    pub(super) async fn declare_deadlock(&mut self) {
        let st = &mut self.st;
        if let Some(w) = st.window.take() {
            st.watch.window_ms = w.closes.duration_since(w.opened).as_millis() as u64;
            if let Some(bytes) = w.work_during() {
                st.watch.progress = Some(format!(
                    "the culprit never moved; the workloads moved {} KiB meanwhile",
                    bytes / 1024
                ));
            }
        }
        if st.rec.outcome == Outcome::Hang || st.rec.outcome == Outcome::Stall {
            st.rec.outcome = Outcome::Deadlock;
        }
        let window_s = self.limits.window.as_secs();
        self.say(&format!("deadlock: no progress for {window_s} s"));
        // Who holds what the others wait for is rarely in D
        // itself: every task's stack, and every CPU's.
        for key in ['t', 'l'] {
            let via = if self.st.agent_closed || self.st.sampler_stuck {
                Via::Console
            } else {
                Via::Agent
            };
            self.sysrq(key, via).await;
        }
        self.enter_evidence();
    }

    pub(super) fn enter_evidence(&mut self) {
        self.st.phase = Phase::Evidence;
        self.st.deadline = Instant::now() + self.limits.evidence;
        self.say("collecting evidence");
    }
}

impl State {
    /// After a stall the iteration runs on; a task still (or newly) blocked
    /// opens another window, which may end in a deadlock.
    ///
    /// Only a detection made after the stall ended counts: the agent's kmsg
    /// reader can fall behind under the very pressure it watches, and its
    /// backlog of reports from before the recovery must not reopen a window on
    /// a task that has long moved (seen in the clean A/B campaign).
    pub(super) fn reopens(&self, detected_uptime_ms: Option<u64>) -> bool {
        self.phase == Phase::Running
            && self.rec.outcome == Outcome::Stall
            && matches!((detected_uptime_ms, self.resumed_uptime_ms), (Some(d), Some(r)) if d > r)
    }

    /// The outcome and detail once the evidence is in.
    pub(super) fn evidence_collected(&self) -> (Outcome, String) {
        let o = self.rec.outcome;
        let title = self
            .rec
            .failure
            .as_ref()
            .map(|f| f.title.clone())
            .unwrap_or_default();
        let detail = match o {
            Outcome::Deadlock => self.deadlock_detail(&title),
            _ => title,
        };
        (o, detail)
    }

    /// The agent's workloads finished, no window watching a hang.
    pub(super) fn workloads_done(&self) -> Flow {
        if self.rec.outcome == Outcome::Stall {
            return Flow::End(Outcome::Stall, self.stall_detail());
        }
        Flow::End(Outcome::Pass, "workloads completed".to_string())
    }

    fn stall_detail(&self) -> String {
        let title = self
            .rec
            .failure
            .as_ref()
            .map(|f| f.title.as_str())
            .unwrap_or("hang");
        format!(
            "stall: {title}; {} {} s after the detection",
            self.watch.progress.as_deref().unwrap_or("progress resumed"),
            self.watch.resumed_after_ms.unwrap_or(0) / 1000
        )
    }

    fn deadlock_detail(&self, title: &str) -> String {
        let waiters = window::describe(&self.watch);
        format!(
            "deadlock: {title}; no progress for {} s{}",
            self.watch.window_ms / 1000,
            if waiters.is_empty() {
                String::new()
            } else {
                format!("; blocked: {waiters}")
            }
        )
    }
}
