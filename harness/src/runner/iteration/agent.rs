//! The agent's frames: its channel's health, then each message by its type.

use std::time::{Duration, Instant};

use hilt_protocol::{
    AgentMsg, Confirmation, Hello, HostMsg, IntervalStats, PstoreFile, Stage, SuspectReport,
};
use hilt_reports::{DetectTiming, Detector, IterationRecord, Outcome};

use super::failure::{named, symptom, Named};
use super::journal::{HostEvent, PstoreEvent};
use super::kernel::add_late_suspicion;
use super::links::{AgentNote, Via};
use super::state::Phase;
use super::{Flow, Iteration};
use crate::runner::window::{self, frame_names, Culprit};

impl Iteration<'_> {
    pub(super) async fn on_agent_note(&mut self, note: Option<AgentNote>) -> Flow {
        match note {
            None | Some(AgentNote::Closed) => {
                self.st.agent_closed = true;
                self.st
                    .agent_gone
                    .get_or_insert_with(|| (Instant::now(), "the agent channel closed".into()));
                let closed = HostEvent::Phase {
                    phase: "agent_channel_closed",
                };
                self.journal.log("host", &closed);
            }
            Some(AgentNote::Gap(expected, got)) => {
                self.st.damage.lost_frames += got.saturating_sub(expected);
                self.journal
                    .log("host", &HostEvent::ChannelGap { expected, got });
            }
            Some(AgentNote::Corrupt(reason)) => {
                self.st.damage.corrupt_lines += 1;
                self.journal
                    .log("host", &HostEvent::ChannelCorrupt { reason: &reason });
            }
            Some(AgentNote::Noise(bytes)) => {
                self.st.damage.noise_bytes += bytes;
                self.journal.log("host", &HostEvent::ChannelNoise { bytes });
            }
            // Its records cannot be read: waiting for them would end only in a boot timeout.
            Some(AgentNote::Foreign(magic)) => {
                let why = format!(
                    "the agent frames its records as {magic}, this hilt reads {}",
                    String::from_utf8_lossy(hilt_protocol::frame::MAGIC).trim_end()
                );
                return Flow::End(Outcome::InfraError, stale_agent(&why));
            }
            Some(AgentNote::Msg(msg)) => return self.on_agent_message(*msg).await,
        }
        Flow::Continue
    }

    async fn on_agent_message(&mut self, msg: AgentMsg) -> Flow {
        self.st.last_activity = Instant::now();
        self.st.last_agent_msg = self.st.last_activity;
        self.journal.log("agent", &msg);
        let phase = self.st.phase;
        match msg {
            AgentMsg::Hello(h) => return self.on_hello(h).await,
            AgentMsg::Stage(s) if s.stage == Stage::Workloads && phase == Phase::SettingUp => {
                self.on_workloads_started()
            }
            // Setup failing is the harness's problem; once running,
            // a workload dying (an OOM kill) is the kernel's doing
            // and is only recorded.
            AgentMsg::Error { stage, message } if phase == Phase::SettingUp => {
                let why = format!("agent {stage:?} stage failed: {message}");
                return Flow::End(Outcome::InfraError, why);
            }
            AgentMsg::Interval(iv) => return self.on_interval(iv),
            // The probes are set up after the workloads start: a
            // failure there leaves the run going, and the figure
            // missing for a reason the summary must give.
            AgentMsg::Error {
                stage: Stage::Probes,
                message,
            } => self.st.rec.decompress_probe_error = Some(message),
            AgentMsg::Resumed {
                uptime_ms,
                pid,
                tid,
                comm,
                blocked_ms: followed_ms,
            } => {
                // The agent may have started following it only at the
                // kernel's report, which said how long it had been blocked.
                let reported_ms = window::reported_blocked_ms(&self.st.watch, tid);
                let blocked_ms = followed_ms.max(reported_ms);
                return self.on_task_moved(pid, tid, &comm, blocked_ms, uptime_ms);
            }
            AgentMsg::Cleared {
                uptime_ms,
                pid,
                tid,
            } => return self.on_cleared(pid, tid, uptime_ms),
            AgentMsg::ReaderResumed {
                uptime_ms,
                reader,
                workload,
            } => return self.on_reader_resumed(reader, &workload, uptime_ms),
            AgentMsg::Kernel { uptime_ms, event } => {
                let from = Detector::AgentKmsg;
                self.on_kernel_event(*event, from, Some(uptime_ms)).await
            }
            AgentMsg::ReaderStall {
                uptime_ms, reader, ..
            } if self.st.reopens(Some(uptime_ms)) => {
                self.open_window(Culprit::Reader(reader), Some(uptime_ms))
            }
            AgentMsg::ReaderStall {
                uptime_ms,
                reader,
                workload,
                stalled_ms,
            } if self.st.rec.failure.is_none() => {
                self.on_reader_stall(reader, &workload, stalled_ms, uptime_ms)
                    .await
            }
            AgentMsg::Suspect(s) => self.on_suspect(s),
            AgentMsg::Confirmed(c) if self.st.reopens(Some(c.uptime_ms)) => {
                self.open_window(Culprit::Task(c.tid), Some(c.uptime_ms))
            }
            AgentMsg::Confirmed(c) => self.on_confirmed(c),
            AgentMsg::Pstore { files } => self.save_pstore(&files),
            AgentMsg::Done { .. } if phase == Phase::Running => return self.st.workloads_done(),
            // The window decides; a stall found later ends the
            // iteration at once, since the workloads are over.
            AgentMsg::Done { .. } if phase == Phase::Window => self.st.done_seen = true,
            _ => {}
        }
        Flow::Continue
    }

    async fn on_hello(&mut self, h: Hello) -> Flow {
        if h.protocol != hilt_protocol::PROTOCOL_VERSION {
            let why = format!(
                "agent speaks protocol {}, host {}",
                h.protocol,
                hilt_protocol::PROTOCOL_VERSION
            );
            return Flow::End(Outcome::InfraError, stale_agent(&why));
        }
        self.st.rec.boot_ms = Some(self.st.elapsed_ms());
        self.st.rec.kernel_release = Some(h.kernel_release.clone());
        let start = HostMsg::Start {
            spec: Box::new(self.input.spec.clone()),
        };
        if self.links.tell_agent(&start).await.is_err() {
            let why = "could not send the run spec to the agent";
            return Flow::End(Outcome::InfraError, why.into());
        }
        self.st.phase = Phase::SettingUp;
        self.st.deadline =
            Instant::now() + Duration::from_secs(self.input.plan.plan.timeouts.setup_s);
        self.say(&format!("setting up on {}", h.kernel_release));
        Flow::Continue
    }

    fn on_workloads_started(&mut self) {
        let st = &mut self.st;
        st.phase = Phase::Running;
        st.running_since = Some(Instant::now());
        st.last_interval_at = st.running_since;
        let timeouts = &self.input.plan.plan.timeouts;
        st.deadline = Instant::now()
            + Duration::from_millis(self.input.spec.duration_ms)
            + Duration::from_secs(timeouts.finish_s);
        self.say("running");
    }

    fn on_interval(&mut self, iv: Box<IntervalStats>) -> Flow {
        let st = &mut self.st;
        record_interval(&mut st.rec, &mut st.hist, &mut st.decompress_hist, &iv);
        st.last_interval_at = Some(Instant::now());
        let uptime_ms = iv.uptime_ms;
        if let Some(w) = st.window.as_mut() {
            w.interval(&iv);
        }
        st.last_interval = Some(*iv);
        let moved = st.window.as_ref().and_then(|w| w.sampler_reported());
        self.on_culprit_moved(moved, uptime_ms)
    }

    fn on_cleared(&mut self, pid: i32, tid: i32, uptime_ms: u64) -> Flow {
        // The watcher's suspicion of it says who it was and since when.
        let (comm, blocked_ms) = self
            .st
            .suspects
            .iter()
            .find(|s| s.tid == tid)
            .map(|s| (s.comm.clone(), uptime_ms.saturating_sub(s.stopped_ms)))
            .unwrap_or_else(|| ("task".to_string(), 0));
        self.on_task_moved(pid, tid, &comm, blocked_ms, uptime_ms)
    }

    /// A task the agent watched left D or ran again.
    fn on_task_moved(
        &mut self,
        pid: i32,
        tid: i32,
        comm: &str,
        blocked_ms: u64,
        uptime_ms: u64,
    ) -> Flow {
        self.st.moved.push((pid, tid, uptime_ms));
        let w = self.st.window.as_ref();
        let moved = w.and_then(|w| w.task_resumed(pid, tid, comm, blocked_ms));
        self.on_culprit_moved(moved, uptime_ms)
    }

    fn on_reader_resumed(&mut self, reader: u32, workload: &str, uptime_ms: u64) -> Flow {
        let w = self.st.window.as_ref();
        let moved = w.and_then(|w| w.reader_resumed(reader, workload));
        self.on_culprit_moved(moved, uptime_ms)
    }

    async fn on_reader_stall(
        &mut self,
        reader: u32,
        workload: &str,
        stalled_ms: u64,
        uptime_ms: u64,
    ) {
        let title = format!(
            "hang: {workload} reader {reader} made no progress for {} s",
            stalled_ms / 1000
        );
        let failure = symptom(Detector::ReaderStall, title, Some(uptime_ms), self.st.t0);
        self.st.rec.failure = Some(failure);
        self.st.rec.outcome = Outcome::Hang;
        self.detected(Culprit::Reader(reader), Some(uptime_ms));
        // Ask the kernel who is blocked, and where.
        self.sysrq('w', Via::Agent).await;
    }

    fn on_suspect(&mut self, s: Box<SuspectReport>) {
        let frames = frame_names(&s.stack);
        self.match_signatures(&frames);
        self.say(&format!(
            "suspect: {}:{} in D at {}",
            s.comm, s.tid, s.wchan
        ));
        window::note_suspect(&mut self.st.watch, &s);
        if let Some(f) = self.st.rec.failure.as_mut() {
            add_late_suspicion(f, &s);
        }
        self.st.suspects.push(*s);
    }

    /// The agent's watcher confirmed a task stuck in D.
    fn on_confirmed(&mut self, c: Confirmation) {
        let suspect = self.st.suspects.iter().find(|s| s.tid == c.tid).cloned();
        let timing = DetectTiming {
            stopped_ms: c.stopped_ms,
            suspected_ms: Some(c.suspected_ms),
            confirmed_ms: Some(c.uptime_ms),
            evidence_ms: suspect.as_ref().map(|s| s.evidence_ms),
        };
        match &mut self.st.rec.failure {
            // Already failed: the watcher adds when it began.
            Some(f) if f.timing.is_none() || f.detector != Detector::Dstate => {
                if f.timing.is_none() {
                    f.timing = Some(timing);
                }
            }
            Some(_) => {}
            None => {
                let stack = suspect
                    .as_ref()
                    .map(|s| s.stack.clone())
                    .unwrap_or_default();
                let wchan = suspect.as_ref().map(|s| s.wchan.as_str()).unwrap_or("?");
                let culprit = Named {
                    task: Some(format!("{}:{}", c.comm, c.tid)),
                    frames: frame_names(&stack),
                    excerpt: stack.join("\n"),
                    timing: Some(timing),
                };
                let reason = suspect.as_ref().map(|s| s.reason.as_str());
                let title = watcher_title(&c.comm, wchan, reason);
                let failure = named(
                    Detector::Dstate,
                    title,
                    Some(c.uptime_ms),
                    self.st.t0,
                    culprit,
                );
                self.st.rec.failure = Some(failure);
                self.st.rec.outcome = Outcome::Hang;
                self.detected(Culprit::Task(c.tid), Some(c.uptime_ms));
            }
        }
    }

    /// Files from the previous boot's pstore go to that boot's directory; the
    /// kernel reports in them are logged as events of that boot.
    fn save_pstore(&mut self, files: &[PstoreFile]) {
        let Some(prev) = &self.input.previous_dir else {
            return;
        };
        let dir = prev.join("pstore");
        for f in files {
            let name: String = f
                .name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            if std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(dir.join(&name), &f.content))
                .is_err()
            {
                self.journal
                    .write_failed(|| format!("writing {}", dir.display()));
            }
            for e in hilt_kernlog::parse(f.content.as_bytes()) {
                let line = PstoreEvent {
                    kind: "previous_boot_kernel",
                    file: &name,
                    event: &e,
                };
                self.journal.log("pstore", &line);
            }
        }
    }
}

/// Adds an interval report's figures to the record.
fn record_interval(
    rec: &mut IterationRecord,
    hist: &mut hdrhistogram::Histogram<u64>,
    decompress_hist: &mut hdrhistogram::Histogram<u64>,
    iv: &IntervalStats,
) {
    iv.read_latency_us.merge_into(hist);
    // The first probed function is the outermost one.
    if let Some(f) = iv.decompress.first() {
        f.latency_us.merge_into(decompress_hist);
        rec.decompress_func = Some(f.func.clone());
        rec.decompress_calls_in_worker = f.calls_in_worker;
        rec.decompress_calls_elsewhere = f.calls_elsewhere;
    }
    rec.reads = iv.reads;
    rec.bytes_read = iv.bytes_read;
    rec.data_reads = iv.data_reads;
    rec.data_bytes = iv.data_bytes;
    rec.read_errors = iv.read_errors;
    rec.last_read_errno = iv.last_read_errno.or(rec.last_read_errno);
    let swap_used_kb = iv.mem.swap_total_kb.saturating_sub(iv.mem.swap_free_kb);
    rec.max_swap_used_kb = rec.max_swap_used_kb.max(swap_used_kb);
    if let Some(psi) = iv.psi {
        rec.max_psi_some_avg10 = rec.max_psi_some_avg10.max(psi.some_avg10);
        rec.max_psi_full_avg10 = rec.max_psi_full_avg10.max(psi.full_avg10);
    }
}

/// Why a board's agent cannot be talked to, and what to do about it: the agent binary
/// in the image was built from other sources than this hilt.
fn stale_agent(what: &str) -> String {
    format!(
        "{what}: the agent on the board was built from other sources than this hilt; \
         rebuild it with scripts/build-agent (it installs target/agent/hilt-agent) and run again"
    )
}

/// The title of a hang the agent's watcher confirmed. A bio waiter wakes in
/// slices, so "stuck in D" would undersell what was seen: the same wait, and
/// the workloads going nowhere.
fn watcher_title(comm: &str, wchan: &str, reason: Option<&str>) -> String {
    match reason {
        Some("bio_wait") => format!("hang: {comm} stuck in {wchan} with no workload progress"),
        _ => format!("hang: {comm} stuck in D state at {wchan}"),
    }
}

#[cfg(test)]
mod tests {
    use super::watcher_title;

    #[test]
    fn titles_name_the_rule_that_caught_the_task() {
        assert_eq!(
            watcher_title("kworker/u4:2", "submit_bio_wait", Some("bio_wait")),
            "hang: kworker/u4:2 stuck in submit_bio_wait with no workload progress"
        );
        for reason in [Some("no_context_switch"), Some("same_wchan"), None] {
            assert_eq!(
                watcher_title("hilt-swapoff", "folio_wait_bit_common", reason),
                "hang: hilt-swapoff stuck in D state at folio_wait_bit_common"
            );
        }
    }
}
