//! The kernel's own reports, heard on the console or through the agent's
//! /dev/kmsg reader: what they change in the iteration's failure and outcome.

use hilt_kernlog::{Event, EventKind};
use hilt_protocol::{HostMsg, SuspectReport};
use hilt_reports::{DetectTiming, Detector, Failure, Outcome};

use super::failure::{named, Named};
use super::state::{Phase, State};
use super::{severity, Iteration};
use crate::runner::window::{self, Culprit};

impl Iteration<'_> {
    pub(super) async fn on_kernel_event(
        &mut self,
        event: Event,
        detector: Detector,
        uptime_ms: Option<u64>,
    ) {
        // The agent and the console both see most reports; count each once.
        if detector == Detector::Console && self.st.rec.kernel_events.last() == Some(&event.title) {
            return;
        }
        if event.kind == EventKind::HungTask {
            window::note_report(&mut self.st.watch, &event);
        }
        self.st.rec.kernel_events.push(event.title.clone());
        // Before the agent's hello no workload has run: a kernel that dies
        // while booting (no root, a missing driver) is a broken setup, not a
        // result of the kernel under test. The boot deadline ends it, and its
        // detail names the report.
        if self.st.phase == Phase::Booting {
            return;
        }
        self.match_signatures(&event.frames);
        let Some(outcome) = severity(event.kind) else {
            return;
        };
        // A crash while a hang is watched ends the watch: the board is going
        // down, and what it reports is the iteration's outcome.
        if outcome == Outcome::Crash && self.st.phase == Phase::Window {
            return self.crash_ends_window(&event);
        }
        let reported_ms = event.timestamp.map(|t| (t * 1000.0) as u64);
        if outcome == Outcome::Hang && self.st.reopens(reported_ms) {
            if let Some(pid) = reported_pid(&event) {
                self.open_window(Culprit::Task(pid), reported_ms);
            }
            return;
        }
        if !self.st.kernel_report_improves_failure(detector) {
            return;
        }
        let first = self.st.rec.failure.is_none();
        let failure = self.kernel_failure(&event, detector, uptime_ms);
        self.st.rec.failure = Some(failure);
        if first {
            self.st.rec.outcome = outcome;
            match (outcome, reported_pid(&event)) {
                (Outcome::Hang, Some(pid)) => self.detected(Culprit::Task(pid), reported_ms),
                _ => self.enter_evidence(),
            }
            let _ = self.links.tell_agent(&HostMsg::Sysrq { key: 'w' }).await;
        } else if self.st.rec.outcome == Outcome::SilentHang && outcome == Outcome::Hang {
            // Still silent from the agent, but the kernel said why.
            self.st.rec.outcome = Outcome::SilentHang;
        } else {
            self.st.rec.outcome = outcome;
        }
    }

    fn crash_ends_window(&mut self, event: &Event) {
        self.st.window = None;
        self.st.rec.outcome = Outcome::Crash;
        if let Some(f) = self.st.rec.failure.as_mut() {
            f.title = event.title.clone();
            f.frames = event.frames.clone();
            f.excerpt = event.excerpt.clone();
        }
        self.enter_evidence();
    }

    /// The failure as the kernel's report tells it; a symptom seen before
    /// keeps its detector and when it was seen.
    fn kernel_failure(
        &mut self,
        event: &Event,
        detector: Detector,
        uptime_ms: Option<u64>,
    ) -> Failure {
        let culprit = Named {
            task: event.task.as_ref().map(window::task_name),
            frames: event.frames.clone(),
            excerpt: event.excerpt.clone(),
            timing: kernel_timing(&self.st, event),
        };
        let title = event.title.clone();
        let mut f = named(detector, title, uptime_ms, self.st.t0, culprit);
        if let Some(prev) = self.st.rec.failure.take() {
            f.detector = prev.detector;
            f.uptime_ms = prev.uptime_ms.or(uptime_ms);
            f.detected_after_ms = prev.detected_after_ms;
        }
        f
    }

    /// Records each plan signature whose frames all appear in `frames`.
    pub(super) fn match_signatures(&mut self, frames: &[String]) {
        for s in self.input.signatures {
            if !self.st.rec.signatures.contains(&s.name) && s.matches(frames) {
                self.st.rec.signatures.push(s.name.clone());
            }
        }
    }
}

impl State {
    /// Whether a kernel report, heard by `detector`, should replace the
    /// failure already recorded.
    fn kernel_report_improves_failure(&self, detector: Detector) -> bool {
        match &self.rec.failure {
            None => true,
            // A reader stall or silence is a symptom; the kernel's own report
            // names the culprit, so it supplies the signature.
            Some(f) => {
                matches!(f.detector, Detector::ReaderStall | Detector::Silence)
                    && !matches!(detector, Detector::ReaderStall)
            }
        }
    }
}

/// The task a report names, by the pid the kernel printed.
fn reported_pid(event: &Event) -> Option<i32> {
    event.task.as_ref().and_then(|t| t.pid).map(|p| p as i32)
}

/// Detection times for a kernel-reported hang: the watcher's, when it
/// suspected the same task first; otherwise the report's own timestamp
/// less the time the kernel says the task was blocked.
fn kernel_timing(st: &State, event: &Event) -> Option<DetectTiming> {
    let pid = reported_pid(event);
    if let Some(s) = st
        .suspects
        .iter()
        .find(|s| Some(s.tid) == pid || Some(s.pid) == pid)
    {
        return Some(DetectTiming {
            stopped_ms: s.stopped_ms,
            suspected_ms: Some(s.uptime_ms),
            confirmed_ms: event.timestamp.map(|t| (t * 1000.0) as u64),
            evidence_ms: Some(s.evidence_ms),
        });
    }
    let ts = event.timestamp?;
    let blocked_s: f64 = event
        .excerpt
        .split("blocked for more than ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())?;
    Some(DetectTiming {
        stopped_ms: ((ts - blocked_s).max(0.0) * 1000.0) as u64,
        suspected_ms: None,
        confirmed_ms: Some((ts * 1000.0) as u64),
        evidence_ms: None,
    })
}

/// The kernel can report a task before the watcher suspects it: on a UART
/// shared with the console the agent's frame may also queue behind the
/// report. The watcher's times then join the kernel's, as if it had spoken
/// first, so the record does not depend on which line won the race.
pub(super) fn add_late_suspicion(f: &mut Failure, s: &SuspectReport) {
    let Some(t) = f.timing.as_mut() else { return };
    let culprit = f
        .task
        .as_deref()
        .and_then(|t| t.rsplit(':').next())
        .and_then(|n| n.parse::<i32>().ok());
    if t.suspected_ms.is_none() && (culprit == Some(s.tid) || culprit == Some(s.pid)) {
        t.stopped_ms = s.stopped_ms;
        t.suspected_ms = Some(s.uptime_ms);
        t.evidence_ms = Some(s.evidence_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_failure(task: &str) -> Failure {
        let culprit = Named {
            task: Some(task.into()),
            frames: vec![],
            excerpt: String::new(),
            timing: Some(DetectTiming {
                stopped_ms: 2_000,
                suspected_ms: None,
                confirmed_ms: Some(12_000),
                evidence_ms: None,
            }),
        };
        let title = "INFO: task hung in unuse_pte_range".into();
        named(
            Detector::Console,
            title,
            None,
            std::time::Instant::now(),
            culprit,
        )
    }

    fn suspect(tid: i32) -> SuspectReport {
        SuspectReport {
            uptime_ms: 13_000,
            pid: tid,
            tid,
            comm: "hilt-swapoff".into(),
            wchan: "folio_wait_bit_common".into(),
            reason: "no_context_switch".into(),
            stopped_ms: 3_000,
            stack: vec![],
            psi: None,
            mem: Default::default(),
            vmstat: String::new(),
            evidence_ms: 13_400,
        }
    }

    #[test]
    fn a_suspicion_heard_after_the_kernel_report_joins_its_timing() {
        let mut f = kernel_failure("hilt-swapoff:312");
        add_late_suspicion(&mut f, &suspect(312));
        let t = f.timing.unwrap();
        assert_eq!(t.suspected_ms, Some(13_000));
        assert_eq!(t.evidence_ms, Some(13_400));
        assert_eq!(t.stopped_ms, 3_000);
        assert_eq!(t.confirmed_ms, Some(12_000), "the kernel's report stays");
    }

    #[test]
    fn another_tasks_suspicion_leaves_the_timing_alone() {
        let mut f = kernel_failure("hilt-swapoff:312");
        let before = f.timing;
        add_late_suspicion(&mut f, &suspect(313));
        assert_eq!(f.timing, before);
        // Nor does a second suspicion replace the first.
        add_late_suspicion(&mut f, &suspect(312));
        let first = f.timing;
        let mut later = suspect(312);
        later.uptime_ms = 20_000;
        add_late_suspicion(&mut f, &later);
        assert_eq!(f.timing, first);
    }
}
