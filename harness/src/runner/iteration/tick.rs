//! The loop's timer: the power check, fault injection, the host-side
//! detectors (a stalled sampler, a silent board) and every deadline.

use std::time::{Duration, Instant};

use hilt_protocol::{AgentFault, HostMsg};
use hilt_reports::{Detector, Outcome};

use super::failure::symptom;
use super::journal::HostEvent;
use super::links::Via;
use super::state::{Phase, State};
use super::{Flow, Iteration};
use crate::console::capture::ConsoleCmd;
use crate::plan::{FaultCfg, FaultKind};
use crate::runner::window::Culprit;

/// Heartbeats come every second; a few missed ones are not yet silence.
const HEARTBEAT_GRACE: Duration = Duration::from_secs(5);

/// How long a vanished agent waits for the kernel's own report.
const AGENT_GONE_GRACE: Duration = Duration::from_secs(5);

impl Iteration<'_> {
    pub(super) async fn on_tick(&mut self) -> Flow {
        let now = Instant::now();
        if let Some(why) = self.links.power.lost() {
            return self.st.lost_power(why);
        }
        self.inject_due_faults(now).await;
        // The agent's channel closing is the agent's failure, not the
        // kernel's, unless the kernel says otherwise within a grace
        // period (a panic closes every channel at once).
        if let Some((at, why)) = &self.st.agent_gone {
            if self.st.rec.failure.is_none() && now.duration_since(*at) >= AGENT_GONE_GRACE {
                return Flow::End(Outcome::InfraError, why.clone());
            }
        }
        let phase = self.st.phase;
        if phase == Phase::Window && now >= self.st.deadline {
            self.declare_deadlock().await;
            return Flow::Continue;
        }
        if phase == Phase::Evidence && now >= self.st.deadline {
            let (outcome, detail) = self.st.evidence_collected();
            return Flow::End(outcome, detail);
        }
        if let Some(stalled) = self.st.sampler_stalled(now, self.limits.reader_stall) {
            self.on_sampler_stall(stalled).await;
            return Flow::Continue;
        }
        let silent_after = self.limits.silent_after;
        if !matches!(phase, Phase::Booting | Phase::Window | Phase::Evidence)
            && now.duration_since(self.st.last_activity) >= silent_after
        {
            self.on_silence(silent_after).await;
            return Flow::Continue;
        }
        if !matches!(phase, Phase::Evidence | Phase::Window) && now >= self.st.deadline {
            return Flow::End(Outcome::InfraError, self.timeout_detail());
        }
        Flow::Continue
    }

    async fn inject_due_faults(&mut self, now: Instant) {
        let Some(since) = self.st.running_since else {
            return;
        };
        let due = |(after, _): &(Duration, FaultCfg)| now >= since + *after;
        while let Some(i) = self.st.faults.iter().position(due) {
            let (_, f) = self.st.faults.swap_remove(i);
            self.inject(f).await;
        }
    }

    async fn inject(&mut self, f: FaultCfg) {
        let kind = f.kind;
        self.journal.log("host", &HostEvent::Fault { fault: kind });
        self.say(&format!("injecting fault {kind:?}"));
        let fault = match kind {
            FaultKind::AgentExit => AgentFault::Exit,
            FaultKind::AgentMute => AgentFault::Mute,
            FaultKind::KernelPanic => AgentFault::Panic,
            FaultKind::ConsoleFlood => AgentFault::ConsoleFlood {
                bytes: f.bytes.unwrap_or(256 << 10),
            },
            FaultKind::ChannelGarbage => AgentFault::ChannelGarbage,
            FaultKind::SamplerFreeze => AgentFault::SamplerFreeze {
                ms: f.for_s.map(|s| s.saturating_mul(1000)),
            },
            FaultKind::ConsoleClose => {
                self.links.tell_console(ConsoleCmd::Close);
                return;
            }
            FaultKind::PowerLoss => {
                self.links.power.cut();
                return;
            }
        };
        let _ = self.links.tell_agent(&HostMsg::Fault { fault }).await;
    }

    async fn on_sampler_stall(&mut self, stalled: Duration) {
        self.st.sampler_stuck = true;
        // The agent's own threads may be stuck too: ask over the UART.
        self.sysrq('w', Via::Console).await;
        if self.st.rec.failure.is_some() {
            // A stall went before: this is a new hang of the same iteration.
            return self.open_window(Culprit::Sampler, None);
        }
        let title = format!(
            "hang: the board agent's sampler made no report for {} s",
            stalled.as_secs()
        );
        self.st.rec.failure = Some(symptom(Detector::SamplerStall, title, None, self.st.t0));
        self.st.rec.outcome = Outcome::Hang;
        self.detected(Culprit::Sampler, None);
    }

    /// Neither the agent's heartbeat nor the console said anything for
    /// `silent_after`.
    async fn on_silence(&mut self, silent_after: Duration) {
        let title = format!(
            "silent hang: no agent heartbeat and no console output for {} s",
            silent_after.as_secs()
        );
        self.st.rec.failure = Some(symptom(Detector::Silence, title, None, self.st.t0));
        self.st.rec.outcome = Outcome::SilentHang;
        self.enter_evidence();
        // The agent is gone; ask the kernel over the UART.
        self.sysrq('w', Via::Console).await;
    }

    fn timeout_detail(&self) -> String {
        let timeouts = &self.input.plan.plan.timeouts;
        match self.st.phase {
            Phase::Booting => format!(
                "boot timeout: no agent hello within {} s{}",
                timeouts.boot_s,
                self.st
                    .rec
                    .kernel_events
                    .last()
                    .map(|t| format!(" (the kernel reported: {t})"))
                    .unwrap_or_default()
            ),
            Phase::SettingUp => format!(
                "setup timeout: storage and swap not ready within {} s",
                timeouts.setup_s
            ),
            _ => format!(
                "the agent did not finish within {} s of the planned duration",
                timeouts.finish_s
            ),
        }
    }
}

impl State {
    /// How long the sampler has been silent, when that is a hang: the workloads
    /// run, no other detection is open, and the agent still sends heartbeats
    /// (an agent that went quiet altogether is the silence detector's case).
    fn sampler_stalled(&self, now: Instant, threshold: Duration) -> Option<Duration> {
        let silent = now.duration_since(self.last_interval_at?);
        let open = self.rec.failure.is_none() || self.rec.outcome == Outcome::Stall;
        let agent_alive = now.duration_since(self.last_agent_msg) < HEARTBEAT_GRACE;
        (self.phase == Phase::Running && open && agent_alive && silent >= threshold)
            .then_some(silent)
    }
}
