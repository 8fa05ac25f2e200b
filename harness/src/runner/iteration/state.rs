//! What an iteration has seen so far, and the record it becomes.

use std::time::{Duration, Instant};

use hilt_protocol::{IntervalStats, SuspectReport};
use hilt_reports::{HangWatch, IterationRecord, Outcome};

use super::links::ChannelDamage;
use super::{host_cpu_ms, Flow, IterationInput};
use crate::plan::FaultCfg;
use crate::runner::window::Window;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Booting,
    SettingUp,
    Running,
    /// A hang was detected: watching whether its culprit moves again.
    Window,
    Evidence,
}

pub(super) struct State {
    /// Power-on, on the host's clock.
    pub(super) t0: Instant,
    /// hilt's own CPU time at power-on.
    cpu0: u64,
    pub(super) rec: IterationRecord,
    pub(super) phase: Phase,
    pub(super) deadline: Instant,
    pub(super) last_activity: Instant,
    pub(super) hist: hdrhistogram::Histogram<u64>,
    pub(super) decompress_hist: hdrhistogram::Histogram<u64>,
    pub(super) suspects: Vec<SuspectReport>,
    pub(super) window: Option<Window>,
    /// The workloads' deadline, kept while a window runs: a stall goes back to it.
    pub(super) run_deadline: Option<Instant>,
    /// The agent said its workloads were done while a window ran.
    pub(super) done_seen: bool,
    pub(super) last_interval: Option<IntervalStats>,
    /// Who waited on what, over every hang of the iteration.
    pub(super) watch: HangWatch,
    /// Board uptime of the last stall's recovery.
    pub(super) resumed_uptime_ms: Option<u64>,
    /// Every task the agent saw leave D or move again: (pid, tid, uptime).
    pub(super) moved: Vec<(i32, i32, u64)>,
    /// The last message of any kind from the agent, heartbeats included.
    pub(super) last_agent_msg: Instant,
    /// The last interval report, once the workloads run.
    pub(super) last_interval_at: Option<Instant>,
    /// The sampler was found blocked: the agent may not carry out requests.
    pub(super) sampler_stuck: bool,
    pub(super) agent_closed: bool,
    pub(super) console_open: bool,
    pub(super) damage: ChannelDamage,
    /// When the agent went away, and how: its own failure unless the kernel
    /// reports one soon after.
    pub(super) agent_gone: Option<(Instant, String)>,
    pub(super) running_since: Option<Instant>,
    /// Faults not injected yet, with their delay after the workloads start.
    pub(super) faults: Vec<(Duration, FaultCfg)>,
}

impl State {
    /// At power-on, which starts the clock.
    pub(super) fn new(input: &IterationInput<'_>) -> Self {
        let t0 = Instant::now();
        let cpu0 = host_cpu_ms();
        let console_log = input
            .dir
            .join("console.log")
            .strip_prefix(&input.run_dir.path)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Self {
            t0,
            cpu0,
            rec: new_record(
                input.variant.to_string(),
                input.iteration,
                input.plan.board.name.clone(),
                console_log,
            ),
            phase: Phase::Booting,
            deadline: t0 + Duration::from_secs(input.plan.plan.timeouts.boot_s),
            last_activity: t0,
            hist: hilt_protocol::histo::new_histogram(),
            decompress_hist: hilt_protocol::histo::new_histogram(),
            suspects: Vec::new(),
            window: None,
            run_deadline: None,
            done_seen: false,
            last_interval: None,
            watch: HangWatch::default(),
            resumed_uptime_ms: None,
            moved: Vec::new(),
            last_agent_msg: t0,
            last_interval_at: None,
            sampler_stuck: false,
            agent_closed: false,
            console_open: true,
            damage: ChannelDamage::default(),
            agent_gone: None,
            running_since: None,
            faults: input.faults.clone(),
        }
    }

    pub(super) fn into_record(mut self, outcome: Outcome, detail: String) -> IterationRecord {
        if matches!(outcome, Outcome::Deadlock | Outcome::Stall | Outcome::Hang) {
            self.rec.hang = Some(std::mem::take(&mut self.watch));
        }
        self.rec.outcome = outcome;
        self.rec.detail = detail;
        self.rec.wall_ms = self.t0.elapsed().as_millis() as u64;
        self.rec.read_latency_us = hilt_protocol::LatencyHisto::from_hdr(&self.hist);
        self.rec.decompress_latency_us =
            hilt_protocol::LatencyHisto::from_hdr(&self.decompress_hist);
        self.rec.host_cpu_ms = host_cpu_ms().saturating_sub(self.cpu0);
        self.rec
    }

    /// The end when the board lost its power without hilt turning it off:
    /// a kernel failure already seen stays the outcome.
    pub(super) fn lost_power(&self, why: String) -> Flow {
        match (&self.rec.failure, self.rec.outcome) {
            (Some(f), o) if o.is_kernel_failure() => Flow::End(o, f.title.clone()),
            _ => Flow::End(Outcome::InfraError, format!("{why} unexpectedly")),
        }
    }

    /// Host milliseconds since power-on.
    pub(super) fn elapsed_ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }
}

/// A record with nothing gathered yet.
pub(super) fn new_record(
    variant: String,
    iteration: u32,
    board: String,
    console_log: String,
) -> IterationRecord {
    IterationRecord {
        started_at: chrono::Utc::now().to_rfc3339(),
        console_log,
        ..IterationRecord::blank(&variant, iteration, &board)
    }
}
