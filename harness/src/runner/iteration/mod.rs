//! One iteration: power on, boot, set up, run, watch, classify, power off.
//!
//! Every stage has a deadline; the board is powered off on every path out
//! of here, including Ctrl-C.
//!
//! [`run`] powers the board on, hands it to the loop (`Iteration::watch`)
//! and powers it off. The loop waits on Ctrl-C and three sources, each with
//! its handler: the agent's frames (`agent.rs`), the console capture's notes
//! (`console.rs`) and a timer (`tick.rs`). Kernel reports come from either
//! channel (`kernel.rs`); a detected hang goes through the deadlock window
//! and the evidence collection (`hang.rs`).

mod agent;
mod console;
mod failure;
mod hang;
mod journal;
mod kernel;
mod links;
mod state;
mod tick;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hilt_kernlog::EventKind;
use hilt_protocol::{HostMsg, RunSpec};
use hilt_reports::{IterationRecord, Outcome};
use tokio::sync::watch;

use self::journal::{HostEvent, Journal, KernelLine};
use self::links::{Inbox, Links, Via};
use self::state::State;
use super::results::RunDir;
use crate::board::Boot;
use crate::console::capture::{ConsoleCmd, ConsoleNote, Recorder};
use crate::plan::{FaultCfg, ResolvedPlan, SignatureCfg};

/// How a kernel report affects the outcome.
pub fn severity(kind: EventKind) -> Option<Outcome> {
    use EventKind::*;
    match kind {
        HungTask | TaskCantDie | SoftLockup | HardLockup | RcuStall | WorkqueueLockup => {
            Some(Outcome::Hang)
        }
        Oops | Bug | Panic | Kasan | Ubsan => Some(Outcome::Crash),
        _ => None,
    }
}

pub struct IterationInput<'a> {
    pub plan: &'a ResolvedPlan,
    pub variant: &'a str,
    pub iteration: u32,
    pub spec: RunSpec,
    /// Faults to inject, with their delay after the workloads start.
    pub faults: Vec<(Duration, FaultCfg)>,
    pub signatures: &'a [SignatureCfg],
    pub run_dir: &'a RunDir,
    pub dir: PathBuf,
    /// The board's previous iteration, where what its pstore held belongs.
    pub previous_dir: Option<PathBuf>,
    pub progress: &'a dyn Fn(&str),
}

pub async fn run(
    input: IterationInput<'_>,
    boot: Box<dyn Boot>,
    mut cancel: watch::Receiver<bool>,
) -> IterationRecord {
    let mut st = State::new(&input);
    let mut journal = Journal::new(&input, st.t0);
    (input.progress)("powering on");
    journal.log("host", &HostEvent::Phase { phase: "power_on" });
    let recorder = match Recorder::create(&input.dir) {
        Ok(r) => r,
        Err(e) => {
            let why = format!("creating the console log in {}: {e}", input.dir.display());
            input.run_dir.write_failed(&why);
            return st.into_record(Outcome::InfraError, why);
        }
    };
    let keeps_ramoops = boot.keeps_ramoops();
    let boot_limit = Duration::from_secs(input.plan.plan.timeouts.boot_s);
    let session = match power_on(boot, boot_limit, &mut cancel).await {
        Ok(s) => s,
        Err((outcome, why)) => return st.into_record(outcome, why),
    };
    // The boot deadline counts from the bootloader's hand-over: flashing a
    // bench board on its first boot is not booting.
    st.deadline = Instant::now() + boot_limit;
    let (links, mut inbox) = links::connect(session, recorder);
    (input.progress)("booting");
    let mut it = Iteration {
        limits: Limits::of(input.plan),
        input,
        journal,
        st,
        links,
        keeps_ramoops,
    };
    let (outcome, detail) = it.watch(&mut inbox, &mut cancel).await;
    it.finish(outcome, detail, inbox).await
}

/// Starts the board, unless Ctrl-C comes first.
async fn power_on(
    boot: Box<dyn Boot>,
    boot_limit: Duration,
    cancel: &mut watch::Receiver<bool>,
) -> Result<crate::board::Session, (Outcome, String)> {
    // Dropping a bring-up cut short by Ctrl-C kills an emulated board; a
    // board on the bench needs its switch turned off.
    let mut power_switch = boot.power_switch();
    let started = tokio::select! {
        r = boot.start(boot_limit) => Some(r),
        _ = cancel.wait_for(|c| *c) => None,
    };
    match started {
        Some(Ok(s)) => Ok(s),
        Some(Err(e)) if e.is::<crate::board::VariantDidNotBoot>() => {
            Err((Outcome::Crash, format!("{e:#}")))
        }
        Some(Err(e)) => Err((Outcome::InfraError, format!("power on: {e:#}"))),
        None => {
            if let Some(p) = power_switch.as_mut() {
                let _ = p.off().await;
            }
            Err((Outcome::NotRun, "interrupted".into()))
        }
    }
}

/// The plan's watch settings, as durations.
struct Limits {
    silent_after: Duration,
    reader_stall: Duration,
    evidence: Duration,
    /// How long a detected hang's culprit is watched; zero for no window.
    window: Duration,
}

impl Limits {
    fn of(plan: &ResolvedPlan) -> Self {
        let w = &plan.plan.watch;
        Self {
            silent_after: Duration::from_secs(w.silent_after_s),
            reader_stall: Duration::from_secs(w.reader_stall_s),
            evidence: Duration::from_secs(w.evidence_s),
            window: Duration::from_secs(w.deadlock_window_s),
        }
    }
}

/// A powered board's iteration, from its boot to its outcome.
struct Iteration<'a> {
    input: IterationInput<'a>,
    limits: Limits,
    journal: Journal<'a>,
    st: State,
    links: Links,
    keeps_ramoops: bool,
}

/// Whether the loop goes on after one event.
#[must_use]
enum Flow {
    Continue,
    End(Outcome, String),
}

/// The loop's timer: how often deadlines and the host-side detectors are checked.
const TICK: Duration = Duration::from_millis(250);

impl Iteration<'_> {
    async fn watch(
        &mut self,
        inbox: &mut Inbox,
        cancel: &mut watch::Receiver<bool>,
    ) -> (Outcome, String) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            let flow = tokio::select! {
                _ = cancel.changed() => if *cancel.borrow() {
                    Flow::End(Outcome::NotRun, "interrupted".to_string())
                } else {
                    Flow::Continue
                },
                note = inbox.agent.recv(), if !self.st.agent_closed => self.on_agent_note(note).await,
                note = inbox.console.recv(), if self.st.console_open => self.on_console_note(note).await,
                _ = tick.tick() => self.on_tick().await,
            };
            if let Flow::End(outcome, detail) = flow {
                return (outcome, detail);
            }
        }
    }

    /// Powers the board off and writes the iteration's end.
    async fn finish(
        mut self,
        outcome: Outcome,
        mut detail: String,
        mut inbox: Inbox,
    ) -> IterationRecord {
        if let Some(f) = &self.st.rec.failure {
            self.say(&format!("{}: {}", outcome.as_str(), f.title));
        }
        // A silent board is crashed on purpose before its power cycle: the
        // panic writes the kernel log into ramoops, where the next boot finds
        // it. (On a board without a console capture this is the only copy.)
        // A board that resets itself keeps its RAM only without a power
        // cut: after a crash or a hang it is left on, crashed on purpose
        // (a kernel that already panicked ignores the key), so that the log
        // goes into ramoops and the kernel's panic= delay resets it.
        let warm = self.links.warm.is_some()
            && matches!(
                outcome,
                Outcome::Crash | Outcome::Hang | Outcome::Deadlock | Outcome::SilentHang
            );
        if warm || (outcome == Outcome::SilentHang && self.keeps_ramoops) {
            self.sysrq('c', Via::Console).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let Self {
            input,
            mut journal,
            mut st,
            links,
            ..
        } = self;
        let stopped = if warm {
            journal.log(
                "host",
                &HostEvent::Phase {
                    phase: "left_on_for_warm_reset",
                },
            );
            links.leave_on().await
        } else {
            links.power_off().await
        };
        if let Some(recorder) = stopped {
            if let Some(e) = recorder.write_error() {
                journal.write_failed(|| format!("console.log: {e}"));
            }
        }
        // Late kernel reports already queued still count.
        while let Ok(note) = inbox.console.try_recv() {
            if let ConsoleNote::Kernel(event) = note {
                let line = KernelLine {
                    kind: "kernel",
                    event: &event,
                };
                journal.log("console", &line);
                st.rec.kernel_events.push(event.title.clone());
            }
        }
        if let Some(d) = st.damage.describe() {
            detail.push_str(&format!(" ({d})"));
        }
        if let Some(e) = journal.write_error() {
            detail.push_str(&format!(" (results not fully written: {e})"));
            input.run_dir.write_failed(e);
        }
        let end = HostEvent::Outcome {
            outcome,
            detail: &detail,
        };
        journal.log("host", &end);
        st.into_record(outcome, detail)
    }

    fn say(&self, what: &str) {
        (self.input.progress)(what)
    }

    /// Asks the kernel for a sysrq dump, and logs the asking: the dump
    /// itself lands only in the console log.
    async fn sysrq(&mut self, key: char, via: Via) {
        let via = match via {
            Via::Agent => {
                let _ = self.links.tell_agent(&HostMsg::Sysrq { key }).await;
                "agent"
            }
            Via::Console => {
                self.links.tell_console(ConsoleCmd::Sysrq(key as u8));
                "console"
            }
        };
        self.journal.log("host", &HostEvent::Sysrq { key, via });
    }
}

/// The record of a slot that never ran, and why.
pub fn not_run(board: &str, slot: &super::slots::Slot, why: &str) -> IterationRecord {
    let mut r = state::new_record(
        slot.variant.clone(),
        slot.iteration,
        board.to_string(),
        String::new(),
    );
    r.outcome = Outcome::NotRun;
    r.detail = why.to_string();
    r.control = slot.control.map(|c| c.name().to_string());
    r
}

/// CPU time used by hilt itself (user + system), for the overhead figures.
pub fn host_cpu_ms() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ms = |tv: libc::timeval| tv.tv_sec as u64 * 1000 + tv.tv_usec as u64 / 1000;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}
