//! One iteration: power on, boot, set up, run, watch, classify, power off.
//!
//! Every stage has a deadline; the board is powered off on every path out
//! of here, including Ctrl-C.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hilt_kernlog::{Event, EventKind};
use hilt_protocol::{
    encode_frame, AgentFault, AgentMsg, Decoded, FrameDecoder, HostMsg, IntervalStats, RunSpec,
    Stage, SuspectReport,
};
use hilt_reports::{DetectTiming, Detector, Failure, HangWatch, IterationRecord, Outcome};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::results::RunDir;
use super::window::{self, Culprit, Window};
use crate::board::Bringup;
use crate::console::capture::{self, ConsoleCmd, ConsoleNote, Recorder};
use crate::plan::{FaultCfg, FaultKind, ResolvedPlan, SignatureCfg};

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

#[derive(Serialize)]
struct EventLine<'a, T: Serialize> {
    /// Host milliseconds since this iteration's power-on.
    t_ms: u64,
    variant: &'a str,
    iteration: u32,
    /// Set on a positive control's boot, which shares its variant and
    /// iteration number with the variant's first iteration.
    #[serde(skip_serializing_if = "Option::is_none")]
    control: Option<&'static str>,
    source: &'static str,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum HostEvent<'a> {
    Phase { phase: &'a str },
    Outcome { outcome: Outcome, detail: &'a str },
    ChannelGap { expected: u64, got: u64 },
    ChannelCorrupt { reason: &'a str },
    ChannelNoise { bytes: usize },
    Sysrq { key: char, via: &'a str },
    Fault { fault: FaultKind },
}

#[derive(Serialize)]
struct KernelLine<'a> {
    kind: &'static str,
    event: &'a Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Booting,
    SettingUp,
    Running,
    /// A hang was detected: watching whether its culprit moves again.
    Window,
    Evidence,
}

enum AgentNote {
    Msg(Box<AgentMsg>),
    Gap(u64, u64),
    Corrupt(String),
    Noise(usize),
    /// A frame of another protocol version, by its magic (`@H1`).
    Foreign(String),
    Closed,
}

/// What went wrong on the agent channel: the outcome stays the kernel's,
/// but a reader of the record must know that some agent records are missing.
#[derive(Default)]
struct ChannelDamage {
    lost_frames: u64,
    corrupt_lines: u64,
    noise_bytes: usize,
}

impl ChannelDamage {
    fn describe(&self) -> Option<String> {
        (self.lost_frames + self.corrupt_lines > 0 || self.noise_bytes > 0).then(|| {
            format!(
                "agent channel damaged: {} frames lost, {} corrupt lines, {} bytes of noise",
                self.lost_frames, self.corrupt_lines, self.noise_bytes
            )
        })
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

struct State {
    rec: IterationRecord,
    phase: Phase,
    deadline: Instant,
    last_activity: Instant,
    hist: hdrhistogram::Histogram<u64>,
    decompress_hist: hdrhistogram::Histogram<u64>,
    write_error: Option<String>,
    suspects: Vec<SuspectReport>,
    window: Option<Window>,
    /// The workloads' deadline, kept while a window runs: a stall goes back to it.
    run_deadline: Option<Instant>,
    /// The agent said its workloads were done while a window ran.
    done_seen: bool,
    last_interval: Option<IntervalStats>,
    /// Who waited on what, over every hang of the iteration.
    watch: HangWatch,
    /// Set once a window ended without progress.
    deadlocked: bool,
    /// Board uptime of the last stall's recovery.
    resumed_uptime_ms: Option<u64>,
    /// Every task the agent saw leave D or move again: (pid, tid, uptime).
    moved: Vec<(i32, i32, u64)>,
    /// The last message of any kind from the agent, heartbeats included.
    last_agent_msg: Instant,
    /// The last interval report, once the workloads run.
    last_interval_at: Option<Instant>,
    /// The sampler was found blocked: the agent may not carry out requests.
    sampler_stuck: bool,
}

pub async fn run(
    input: IterationInput<'_>,
    bringup: Bringup,
    mut cancel: watch::Receiver<bool>,
) -> IterationRecord {
    let t0 = Instant::now();
    let cpu0 = host_cpu_ms();
    let p = &input.plan.plan;
    let mut st = State {
        rec: new_record(
            input.variant.to_string(),
            input.iteration,
            input.plan.board.name.clone(),
            input
                .dir
                .join("console.log")
                .strip_prefix(&input.run_dir.path)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        phase: Phase::Booting,
        deadline: t0 + Duration::from_secs(p.timeouts.boot_s),
        last_activity: t0,
        hist: hilt_protocol::histo::new_histogram(),
        decompress_hist: hilt_protocol::histo::new_histogram(),
        write_error: None,
        suspects: Vec::new(),
        window: None,
        run_deadline: None,
        done_seen: false,
        last_interval: None,
        watch: HangWatch::default(),
        deadlocked: false,
        resumed_uptime_ms: None,
        moved: Vec::new(),
        last_agent_msg: t0,
        last_interval_at: None,
        sampler_stuck: false,
    };
    let log = |st: &mut State, source: &'static str, body: &dyn erased::Ser| {
        let control = input.spec.control.as_ref().map(|c| match c {
            hilt_protocol::ControlSpec::SwapFreeze {
                resume_after_ms: None,
                ..
            } => "swap_freeze",
            hilt_protocol::ControlSpec::SwapFreeze { .. } => "swap_stall",
        });
        let line = EventLine {
            t_ms: t0.elapsed().as_millis() as u64,
            variant: input.variant,
            iteration: input.iteration,
            control,
            source,
            body,
        };
        if let Err(e) = input.run_dir.event(&line) {
            st.write_error
                .get_or_insert_with(|| format!("events.jsonl: {e}"));
        }
    };

    (input.progress)("powering on");
    log(&mut st, "host", &HostEvent::Phase { phase: "power_on" });
    let recorder = match Recorder::create(&input.dir) {
        Ok(r) => r,
        Err(e) => {
            let why = format!("creating the console log in {}: {e}", input.dir.display());
            input.run_dir.write_failed(&why);
            return finish_early(st, t0, cpu0, Outcome::InfraError, why);
        }
    };
    let keeps_ramoops = bringup.keeps_ramoops();
    // Dropping a bring-up cut short by Ctrl-C kills an emulated board; a
    // board on the bench needs its switch turned off.
    let mut switch_off = bringup.switch();
    let boot_limit = Duration::from_secs(p.timeouts.boot_s);
    let started = tokio::select! {
        r = bringup.start(boot_limit) => Some(r),
        _ = cancel.wait_for(|c| *c) => None,
    };
    let session = match started {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            return finish_early(
                st,
                t0,
                cpu0,
                Outcome::InfraError,
                format!("power on: {e:#}"),
            )
        }
        None => {
            if let Some(p) = switch_off.as_mut() {
                let _ = p.off().await;
            }
            return finish_early(st, t0, cpu0, Outcome::NotRun, "interrupted".into());
        }
    };
    // The boot deadline counts from the bootloader's hand-over: flashing a
    // bench board on its first boot is not booting.
    st.deadline = Instant::now() + boot_limit;

    let (note_tx, mut notes) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let crate::board::Session {
        mut power,
        console,
        agent,
    } = session;
    let (agent, tap): (Box<dyn crate::board::AgentStream>, _) = match agent {
        crate::board::AgentLink::Own(s) => (s, None),
        crate::board::AgentLink::Console => {
            let (ours, capture_end) = tokio::io::duplex(1 << 20);
            (Box::new(ours), Some(capture_end))
        }
    };
    let console_task = tokio::spawn(capture::run(console, recorder, note_tx, cmd_rx, tap));
    let (mut agent_rd, mut agent_wr) = tokio::io::split(agent);
    let (agent_tx, mut agent_rx) = mpsc::unbounded_channel();
    let agent_task = tokio::spawn(async move {
        let mut dec = FrameDecoder::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            let n = match agent_rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = agent_tx.send(AgentNote::Closed);
                    return;
                }
                Ok(n) => n,
            };
            dec.feed::<AgentMsg>(&buf[..n], &mut out);
            for d in out.drain(..) {
                let note = match d {
                    Decoded::Record { msg, .. } => AgentNote::Msg(Box::new(msg)),
                    Decoded::Gap { expected, got } => AgentNote::Gap(expected, got),
                    Decoded::Corrupt { reason, .. } => AgentNote::Corrupt(reason),
                    Decoded::ForeignVersion { magic, .. } => AgentNote::Foreign(magic),
                    Decoded::Noise(n) => AgentNote::Noise(n.len()),
                };
                if agent_tx.send(note).is_err() {
                    return;
                }
            }
        }
    });
    let mut host_seq = 0u64;
    let mut send = |msg: &HostMsg| {
        let mut buf = Vec::new();
        encode_frame(host_seq, msg, &mut buf);
        host_seq += 1;
        buf
    };

    (input.progress)("booting");
    let silent_after = Duration::from_secs(p.watch.silent_after_s);
    let reader_stall = Duration::from_secs(p.watch.reader_stall_s);
    let evidence = Duration::from_secs(p.watch.evidence_s);
    let window_len = Duration::from_secs(p.watch.deadlock_window_s);
    let mut agent_closed = false;
    let mut console_open = true;
    let mut damage = ChannelDamage::default();
    let mut agent_gone: Option<(Instant, String)> = None;
    let mut running_since: Option<Instant> = None;
    let mut faults = input.faults.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let (outcome, detail) = loop {
        tokio::select! {
            _ = cancel.changed() => {
                if *cancel.borrow() {
                    break (Outcome::NotRun, "interrupted".to_string());
                }
            }
            note = agent_rx.recv(), if !agent_closed => match note {
                None | Some(AgentNote::Closed) => {
                    agent_closed = true;
                    agent_gone.get_or_insert_with(|| (Instant::now(), "the agent channel closed".into()));
                    log(&mut st, "host", &HostEvent::Phase { phase: "agent_channel_closed" });
                }
                Some(AgentNote::Gap(expected, got)) => {
                    damage.lost_frames += got.saturating_sub(expected);
                    log(&mut st, "host", &HostEvent::ChannelGap { expected, got });
                }
                Some(AgentNote::Corrupt(reason)) => {
                    damage.corrupt_lines += 1;
                    log(&mut st, "host", &HostEvent::ChannelCorrupt { reason: &reason });
                }
                Some(AgentNote::Noise(bytes)) => {
                    damage.noise_bytes += bytes;
                    log(&mut st, "host", &HostEvent::ChannelNoise { bytes });
                }
                // Its records cannot be read: waiting for them would end only in a boot timeout.
                Some(AgentNote::Foreign(magic)) => {
                    break (Outcome::InfraError, stale_agent(&format!(
                        "the agent frames its records as {magic}, this hilt reads {}",
                        String::from_utf8_lossy(hilt_protocol::frame::MAGIC).trim_end()
                    )));
                }
                Some(AgentNote::Msg(msg)) => {
                    st.last_activity = Instant::now();
                    st.last_agent_msg = st.last_activity;
                    log(&mut st, "agent", &*msg);
                    match *msg {
                        AgentMsg::Hello(h) => {
                            if h.protocol != hilt_protocol::PROTOCOL_VERSION {
                                break (Outcome::InfraError, stale_agent(&format!("agent speaks protocol {}, host {}", h.protocol, hilt_protocol::PROTOCOL_VERSION)));
                            }
                            st.rec.boot_ms = Some(t0.elapsed().as_millis() as u64);
                            st.rec.kernel_release = Some(h.kernel_release.clone());
                            let start = send(&HostMsg::Start { spec: Box::new(input.spec.clone()) });
                            if agent_wr.write_all(&start).await.is_err() {
                                break (Outcome::InfraError, "could not send the run spec to the agent".into());
                            }
                            st.phase = Phase::SettingUp;
                            st.deadline = Instant::now() + Duration::from_secs(p.timeouts.setup_s);
                            (input.progress)(&format!("setting up on {}", h.kernel_release));
                        }
                        AgentMsg::Stage(s) if s.stage == Stage::Workloads && st.phase == Phase::SettingUp => {
                            st.phase = Phase::Running;
                            running_since = Some(Instant::now());
                            st.last_interval_at = running_since;
                            st.deadline = Instant::now() + Duration::from_millis(input.spec.duration_ms) + Duration::from_secs(p.timeouts.finish_s);
                            (input.progress)("running");
                        }
                        // Setup failing is the harness's problem; once running,
                        // a workload dying (an OOM kill) is the kernel's doing
                        // and is only recorded.
                        AgentMsg::Error { stage, message } if st.phase == Phase::SettingUp => {
                            break (Outcome::InfraError, format!("agent {stage:?} stage failed: {message}"));
                        }
                        AgentMsg::Interval(iv) => {
                            iv.read_latency_us.merge_into(&mut st.hist);
                            // The first probed function is the outermost one.
                            if let Some(f) = iv.decompress.first() {
                                f.latency_us.merge_into(&mut st.decompress_hist);
                                st.rec.decompress_func = Some(f.func.clone());
                                st.rec.decompress_calls_in_worker = f.calls_in_worker;
                                st.rec.decompress_calls_elsewhere = f.calls_elsewhere;
                            }
                            st.rec.reads = iv.reads;
                            st.rec.bytes_read = iv.bytes_read;
                            st.rec.read_errors = iv.read_errors;
                            st.rec.last_read_errno = iv.last_read_errno.or(st.rec.last_read_errno);
                            st.rec.max_swap_used_kb = st.rec.max_swap_used_kb.max(iv.mem.swap_total_kb.saturating_sub(iv.mem.swap_free_kb));
                            if let Some(psi) = iv.psi {
                                st.rec.max_psi_some_avg10 = st.rec.max_psi_some_avg10.max(psi.some_avg10);
                                st.rec.max_psi_full_avg10 = st.rec.max_psi_full_avg10.max(psi.full_avg10);
                            }
                            st.last_interval_at = Some(Instant::now());
                            let uptime_ms = iv.uptime_ms;
                            if let Some(w) = st.window.as_mut() {
                                w.interval(&iv);
                            }
                            st.last_interval = Some(*iv);
                            let moved = st.window.as_ref().and_then(|w| w.sampler_reported());
                            if let Some(end) = moved.and_then(|m| on_progress(&mut st, m, uptime_ms, &input)) {
                                break end;
                            }
                        }
                        // The probes are set up after the workloads start: a
                        // failure there leaves the run going, and the figure
                        // missing for a reason the summary must give.
                        AgentMsg::Error { stage: Stage::Probes, message } => {
                            st.rec.decompress_probe_error = Some(message);
                        }
                        AgentMsg::Resumed { uptime_ms, pid, tid, comm, blocked_ms } => {
                            st.moved.push((pid, tid, uptime_ms));
                            // The agent may have started following it only at the
                            // kernel's report, which said how long it had been blocked.
                            let blocked_ms = blocked_ms.max(window::reported_blocked_ms(&st.watch, tid));
                            let moved = st.window.as_ref().and_then(|w| w.task_resumed(pid, tid, &comm, blocked_ms));
                            if let Some(end) = moved.and_then(|m| on_progress(&mut st, m, uptime_ms, &input)) {
                                break end;
                            }
                        }
                        AgentMsg::Cleared { uptime_ms, pid, tid } => {
                            st.moved.push((pid, tid, uptime_ms));
                            // The watcher's suspicion of it says who it was and since when.
                            let (comm, blocked_ms) = st.suspects.iter().find(|s| s.tid == tid)
                                .map(|s| (s.comm.clone(), uptime_ms.saturating_sub(s.stopped_ms)))
                                .unwrap_or_else(|| ("task".to_string(), 0));
                            let moved = st.window.as_ref().and_then(|w| w.task_resumed(pid, tid, &comm, blocked_ms));
                            if let Some(end) = moved.and_then(|m| on_progress(&mut st, m, uptime_ms, &input)) {
                                break end;
                            }
                        }
                        AgentMsg::ReaderResumed { uptime_ms, reader, workload } => {
                            let moved = st.window.as_ref().and_then(|w| w.reader_resumed(reader, &workload));
                            if let Some(end) = moved.and_then(|m| on_progress(&mut st, m, uptime_ms, &input)) {
                                break end;
                            }
                        }
                        AgentMsg::Kernel { uptime_ms, event } => {
                            on_kernel_event(&mut st, &input, &mut agent_wr, &mut send, *event, Detector::AgentKmsg, Some(uptime_ms), t0, (evidence, window_len)).await;
                        }
                        AgentMsg::ReaderStall { uptime_ms, reader, .. } if reopens(&st, Some(uptime_ms)) => {
                            open_window(&mut st, Culprit::Reader(reader), window_len, &input, Some(uptime_ms));
                        }
                        AgentMsg::ReaderStall { uptime_ms, reader, workload, stalled_ms } if st.rec.failure.is_none() => {
                            st.rec.failure = Some(symptom(
                                Detector::ReaderStall,
                                format!("hang: {workload} reader {reader} made no progress for {} s", stalled_ms / 1000),
                                Some(uptime_ms),
                                t0,
                            ));
                            st.rec.outcome = Outcome::Hang;
                            detected(&mut st, Culprit::Reader(reader), &input, (evidence, window_len), Some(uptime_ms));
                            // Ask the kernel who is blocked, and where.
                            let _ = agent_wr.write_all(&send(&HostMsg::Sysrq { key: 'w' })).await;
                            log(&mut st, "host", &HostEvent::Sysrq { key: 'w', via: "agent" });
                        }
                        AgentMsg::Suspect(s) => {
                            let frames = frame_names(&s.stack);
                            match_signatures(&mut st, input.signatures, &frames);
                            (input.progress)(&format!("suspect: {}:{} in D at {}", s.comm, s.tid, s.wchan));
                            window::note_suspect(&mut st.watch, &s);
                            if let Some(f) = st.rec.failure.as_mut() {
                                add_late_suspicion(f, &s);
                            }
                            st.suspects.push(*s);
                        }
                        AgentMsg::Confirmed(c) if reopens(&st, Some(c.uptime_ms)) => {
                            open_window(&mut st, Culprit::Task(c.tid), window_len, &input, Some(c.uptime_ms));
                        }
                        AgentMsg::Confirmed(c) => {
                            let suspect = st.suspects.iter().find(|s| s.tid == c.tid).cloned();
                            let timing = DetectTiming {
                                stopped_ms: c.stopped_ms,
                                suspected_ms: Some(c.suspected_ms),
                                confirmed_ms: Some(c.uptime_ms),
                                evidence_ms: suspect.as_ref().map(|s| s.evidence_ms),
                            };
                            match &mut st.rec.failure {
                                // Already failed: the watcher adds when it began.
                                Some(f) if f.timing.is_none() || f.detector != Detector::Dstate => {
                                    if f.timing.is_none() {
                                        f.timing = Some(timing);
                                    }
                                }
                                Some(_) => {}
                                None => {
                                    let stack = suspect.as_ref().map(|s| s.stack.clone()).unwrap_or_default();
                                    st.rec.failure = Some(Failure {
                                        detector: Detector::Dstate,
                                        title: format!("hang: {} stuck in D state at {}", c.comm, suspect.as_ref().map(|s| s.wchan.as_str()).unwrap_or("?")),
                                        task: Some(format!("{}:{}", c.comm, c.tid)),
                                        frames: frame_names(&stack),
                                        uptime_ms: Some(c.uptime_ms),
                                        detected_after_ms: t0.elapsed().as_millis() as u64,
                                        excerpt: stack.join("\n"),
                                        timing: Some(timing),
                                    });
                                    st.rec.outcome = Outcome::Hang;
                                    detected(&mut st, Culprit::Task(c.tid), &input, (evidence, window_len), Some(c.uptime_ms));
                                }
                            }
                        }
                        AgentMsg::Pstore { files } => {
                            save_pstore(&mut st, &input, &files, &log);
                        }
                        AgentMsg::Done { .. } if st.phase == Phase::Running => {
                            if st.rec.outcome == Outcome::Stall {
                                break (Outcome::Stall, stall_detail(&st));
                            }
                            break (Outcome::Pass, "workloads completed".to_string());
                        }
                        // The window decides; a stall found later ends the
                        // iteration at once, since the workloads are over.
                        AgentMsg::Done { .. } if st.phase == Phase::Window => {
                            st.done_seen = true;
                        }
                        _ => {}
                    }
                }
            },
            note = notes.recv(), if console_open => match note {
                Some(ConsoleNote::Activity(t)) => st.last_activity = st.last_activity.max(t),
                Some(ConsoleNote::AgentExited(status)) => {
                    log(&mut st, "console", &HostEvent::Phase { phase: "agent_exited" });
                    agent_gone.get_or_insert_with(|| (Instant::now(), format!("the board agent exited (status {status})")));
                }
                Some(ConsoleNote::Kernel(event)) => {
                    log(&mut st, "console", &KernelLine { kind: "kernel", event: &event });
                    on_kernel_event(&mut st, &input, &mut agent_wr, &mut send, *event, Detector::Console, None, t0, (evidence, window_len)).await;
                }
                Some(ConsoleNote::Closed) | None => {
                    // The console closes when QEMU exits; the power check
                    // says why. Otherwise the transport alone failed: the
                    // agent channel still carries the iteration, and the
                    // kernel's reports still reach it through /dev/kmsg.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Some(why) = power.lost() {
                        break lost_power(&st, why);
                    }
                    console_open = false;
                    log(&mut st, "host", &HostEvent::Phase { phase: "console_closed" });
                    (input.progress)("console closed; continuing on the agent channel");
                }
            },
            _ = tick.tick() => {
                let now = Instant::now();
                if let Some(why) = power.lost() {
                    break lost_power(&st, why);
                }
                if let Some(since) = running_since {
                    while let Some(i) = faults.iter().position(|(after, _)| now >= since + *after) {
                        let (_, f) = faults.swap_remove(i);
                        let kind = f.kind;
                        log(&mut st, "host", &HostEvent::Fault { fault: kind });
                        (input.progress)(&format!("injecting fault {kind:?}"));
                        let msg = match kind {
                            FaultKind::AgentExit => Some(AgentFault::Exit),
                            FaultKind::AgentMute => Some(AgentFault::Mute),
                            FaultKind::KernelPanic => Some(AgentFault::Panic),
                            FaultKind::ConsoleFlood => Some(AgentFault::ConsoleFlood { bytes: f.bytes.unwrap_or(256 << 10) }),
                            FaultKind::ChannelGarbage => Some(AgentFault::ChannelGarbage),
                            FaultKind::SamplerFreeze => Some(AgentFault::SamplerFreeze { ms: f.for_s.map(|s| s.saturating_mul(1000)) }),
                            FaultKind::ConsoleClose => {
                                let _ = cmd_tx.send(ConsoleCmd::Close);
                                None
                            }
                            FaultKind::PowerLoss => {
                                power.cut();
                                None
                            }
                        };
                        if let Some(fault) = msg {
                            let _ = agent_wr.write_all(&send(&HostMsg::Fault { fault })).await;
                        }
                    }
                }
                // The agent's channel closing is the agent's failure, not the
                // kernel's, unless the kernel says otherwise within a grace
                // period (a panic closes every channel at once).
                if let Some((at, why)) = &agent_gone {
                    if st.rec.failure.is_none() && now.duration_since(*at) >= Duration::from_secs(5) {
                        break (Outcome::InfraError, why.clone());
                    }
                }
                if st.phase == Phase::Window && now >= st.deadline {
                    // Nothing the detection named moved for the whole window.
                    if let Some(w) = st.window.take() {
                        st.watch.window_ms = w.closes.duration_since(w.opened).as_millis() as u64;
                        if let Some(bytes) = w.work_during() {
                            st.watch.progress = Some(format!(
                                "the culprit never moved; the workloads moved {} KiB meanwhile",
                                bytes / 1024
                            ));
                        }
                    }
                    st.deadlocked = true;
                    if st.rec.outcome == Outcome::Hang || st.rec.outcome == Outcome::Stall {
                        st.rec.outcome = Outcome::Deadlock;
                    }
                    (input.progress)(&format!("deadlock: no progress for {} s", window_len.as_secs()));
                    // Who holds what the others wait for is rarely in D
                    // itself: every task's stack, and every CPU's.
                    for key in ['t', 'l'] {
                        if agent_closed || st.sampler_stuck {
                            let _ = cmd_tx.send(ConsoleCmd::Sysrq(key as u8));
                            log(&mut st, "host", &HostEvent::Sysrq { key, via: "console" });
                        } else {
                            let _ = agent_wr.write_all(&send(&HostMsg::Sysrq { key })).await;
                            log(&mut st, "host", &HostEvent::Sysrq { key, via: "agent" });
                        }
                    }
                    enter_evidence(&mut st, evidence, &input);
                    continue;
                }
                if st.phase == Phase::Evidence && now >= st.deadline {
                    let o = st.rec.outcome;
                    let title = st.rec.failure.as_ref().map(|f| f.title.clone()).unwrap_or_default();
                    let detail = match o {
                        Outcome::Deadlock => deadlock_detail(&st, &title),
                        _ => title,
                    };
                    break (o, detail);
                }
                if let Some(stalled) = sampler_stalled(&st, now, reader_stall) {
                    st.sampler_stuck = true;
                    // The agent's own threads may be stuck too: ask over the UART.
                    let _ = cmd_tx.send(ConsoleCmd::Sysrq(b'w'));
                    log(&mut st, "host", &HostEvent::Sysrq { key: 'w', via: "console" });
                    if st.rec.failure.is_some() {
                        // A stall went before: this is a new hang of the same iteration.
                        open_window(&mut st, Culprit::Sampler, window_len, &input, None);
                        continue;
                    }
                    st.rec.failure = Some(symptom(
                        Detector::SamplerStall,
                        format!("hang: the board agent's sampler made no report for {} s", stalled.as_secs()),
                        None,
                        t0,
                    ));
                    st.rec.outcome = Outcome::Hang;
                    detected(&mut st, Culprit::Sampler, &input, (evidence, window_len), None);
                    continue;
                }
                if !matches!(st.phase, Phase::Booting | Phase::Window | Phase::Evidence) && now.duration_since(st.last_activity) >= silent_after {
                    st.rec.failure = Some(symptom(
                        Detector::Silence,
                        format!("silent hang: no agent heartbeat and no console output for {} s", silent_after.as_secs()),
                        None,
                        t0,
                    ));
                    st.rec.outcome = Outcome::SilentHang;
                    enter_evidence(&mut st, evidence, &input);
                    // The agent is gone; ask the kernel over the UART.
                    let _ = cmd_tx.send(ConsoleCmd::Sysrq(b'w'));
                    log(&mut st, "host", &HostEvent::Sysrq { key: 'w', via: "console" });
                    continue;
                }
                if !matches!(st.phase, Phase::Evidence | Phase::Window) && now >= st.deadline {
                    let what = match st.phase {
                        Phase::Booting => format!(
                            "boot timeout: no agent hello within {} s{}",
                            p.timeouts.boot_s,
                            st.rec.kernel_events.last().map(|t| format!(" (the kernel reported: {t})")).unwrap_or_default()
                        ),
                        Phase::SettingUp => format!("setup timeout: storage and swap not ready within {} s", p.timeouts.setup_s),
                        _ => format!("the agent did not finish within {} s of the planned duration", p.timeouts.finish_s),
                    };
                    break (Outcome::InfraError, what);
                }
            }
        }
    };
    if let Some(f) = &st.rec.failure {
        (input.progress)(&format!("{}: {}", outcome.as_str(), f.title));
    }
    // A silent board is crashed on purpose before its power cycle: the
    // panic writes the kernel log into ramoops, where the next boot finds
    // it. (On a board without a console capture this is the only copy.)
    if outcome == Outcome::SilentHang && keeps_ramoops {
        let _ = cmd_tx.send(ConsoleCmd::Sysrq(b'c'));
        log(
            &mut st,
            "host",
            &HostEvent::Sysrq {
                key: 'c',
                via: "console",
            },
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let _ = power.off().await;
    drop(cmd_tx);
    agent_task.abort();
    if let Ok(Ok(rec)) = tokio::time::timeout(Duration::from_secs(5), console_task).await {
        if let Some(e) = rec.write_error() {
            st.write_error
                .get_or_insert_with(|| format!("console.log: {e}"));
        }
    }
    // Late kernel reports already queued still count.
    while let Ok(note) = notes.try_recv() {
        if let ConsoleNote::Kernel(event) = note {
            log(
                &mut st,
                "console",
                &KernelLine {
                    kind: "kernel",
                    event: &event,
                },
            );
            st.rec.kernel_events.push(event.title.clone());
        }
    }
    let mut detail = detail;
    if let Some(d) = damage.describe() {
        detail.push_str(&format!(" ({d})"));
    }
    if let Some(e) = &st.write_error {
        detail.push_str(&format!(" (results not fully written: {e})"));
        input.run_dir.write_failed(e);
    }
    log(
        &mut st,
        "host",
        &HostEvent::Outcome {
            outcome,
            detail: &detail,
        },
    );
    finish_early(st, t0, cpu0, outcome, detail)
}

fn lost_power(st: &State, why: String) -> (Outcome, String) {
    match (&st.rec.failure, st.rec.outcome) {
        (Some(f), o) if o.is_kernel_failure() => (o, f.title.clone()),
        _ => (Outcome::InfraError, format!("{why} unexpectedly")),
    }
}

/// A hang was detected: watch its culprit for the deadlock window, or, with
/// no window, collect evidence and end as an unclassified hang.
fn detected(
    st: &mut State,
    culprit: Culprit,
    input: &IterationInput<'_>,
    (evidence, window_len): (Duration, Duration),
    detected_ms: Option<u64>,
) {
    if window_len.is_zero() {
        return enter_evidence(st, evidence, input);
    }
    open_window(st, culprit, window_len, input, detected_ms);
}

/// Opens a window on `culprit`, detected at board uptime `detected_ms`. A
/// report can arrive after its task already moved (the agent's kmsg reader
/// lags under pressure): the window then closes at once as a stall.
fn open_window(
    st: &mut State,
    culprit: Culprit,
    window_len: Duration,
    input: &IterationInput<'_>,
    detected_ms: Option<u64>,
) {
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
    let w = Window::open(culprit, window_len, st.last_interval.as_ref());
    st.deadline = w.closes;
    st.window = Some(w);
    st.phase = Phase::Window;
    (input.progress)(&format!(
        "hang detected: watching {} s for progress",
        window_len.as_secs()
    ));
    if let Some((tid, at)) = moved_since {
        let what = format!("task {tid} had already left D when its report arrived");
        let moved = window::Progress {
            after: Duration::ZERO,
            what,
        };
        on_progress(st, moved, at, input);
    }
}

/// After a stall the iteration runs on; a task still (or newly) blocked
/// opens another window, which may end in a deadlock.
///
/// Only a detection made after the stall ended counts: the agent's kmsg
/// reader can fall behind under the very pressure it watches, and its
/// backlog of reports from before the recovery must not reopen a window on
/// a task that has long moved (seen in the clean A/B campaign).
/// A failure seen only by its symptom (a reader, the sampler or both channels
/// going quiet): no task, stack or kernel report names the culprit yet.
fn symptom(detector: Detector, title: String, uptime_ms: Option<u64>, t0: Instant) -> Failure {
    Failure {
        detector,
        title,
        task: None,
        frames: vec![],
        uptime_ms,
        detected_after_ms: t0.elapsed().as_millis() as u64,
        excerpt: String::new(),
        timing: None,
    }
}

/// How long the sampler has been silent, when that is a hang: the workloads
/// run, no other detection is open, and the agent still sends heartbeats
/// (an agent that went quiet altogether is the silence detector's case).
fn sampler_stalled(st: &State, now: Instant, threshold: Duration) -> Option<Duration> {
    let silent = now.duration_since(st.last_interval_at?);
    let open = st.rec.failure.is_none() || st.rec.outcome == Outcome::Stall;
    let agent_alive = now.duration_since(st.last_agent_msg) < HEARTBEAT_GRACE;
    (st.phase == Phase::Running && open && agent_alive && silent >= threshold).then_some(silent)
}

/// Heartbeats come every second; a few missed ones are not yet silence.
const HEARTBEAT_GRACE: Duration = Duration::from_secs(5);

fn reopens(st: &State, detected_uptime_ms: Option<u64>) -> bool {
    st.phase == Phase::Running
        && st.rec.outcome == Outcome::Stall
        && matches!((detected_uptime_ms, st.resumed_uptime_ms), (Some(d), Some(r)) if d > r)
}

/// The culprit moved: the hang was a stall. Returns the iteration's end
/// when the workloads already finished during the window.
fn on_progress(
    st: &mut State,
    moved: window::Progress,
    uptime_ms: u64,
    input: &IterationInput<'_>,
) -> Option<(Outcome, String)> {
    let w = st.window.take()?;
    st.resumed_uptime_ms = Some(uptime_ms);
    st.watch.window_ms = w.closes.duration_since(w.opened).as_millis() as u64;
    st.watch.resumed_after_ms = Some(moved.after.as_millis() as u64);
    st.watch.progress = Some(moved.what);
    st.rec.outcome = Outcome::Stall;
    st.phase = Phase::Running;
    let resume = Instant::now() + Duration::from_secs(input.plan.plan.timeouts.finish_s);
    st.deadline = st.run_deadline.map_or(resume, |d| d.max(resume));
    (input.progress)(&format!(
        "stall: {} after {} s",
        st.watch.progress.as_deref().unwrap_or("progress"),
        moved.after.as_secs()
    ));
    st.done_seen.then(|| (Outcome::Stall, stall_detail(st)))
}

fn stall_detail(st: &State) -> String {
    let title = st
        .rec
        .failure
        .as_ref()
        .map(|f| f.title.as_str())
        .unwrap_or("hang");
    format!(
        "stall: {title}; {} {} s after the detection",
        st.watch.progress.as_deref().unwrap_or("progress resumed"),
        st.watch.resumed_after_ms.unwrap_or(0) / 1000
    )
}

fn deadlock_detail(st: &State, title: &str) -> String {
    let waiters = window::describe(&st.watch);
    format!(
        "deadlock: {title}; no progress for {} s{}",
        st.watch.window_ms / 1000,
        if waiters.is_empty() {
            String::new()
        } else {
            format!("; blocked: {waiters}")
        }
    )
}

fn enter_evidence(st: &mut State, evidence: Duration, input: &IterationInput<'_>) {
    st.phase = Phase::Evidence;
    st.deadline = Instant::now() + evidence;
    (input.progress)("collecting evidence");
}

#[allow(clippy::too_many_arguments)]
async fn on_kernel_event<W: tokio::io::AsyncWrite + Unpin>(
    st: &mut State,
    input: &IterationInput<'_>,
    agent_wr: &mut W,
    send: &mut impl FnMut(&HostMsg) -> Vec<u8>,
    event: Event,
    detector: Detector,
    uptime_ms: Option<u64>,
    t0: Instant,
    (evidence, window_len): (Duration, Duration),
) {
    // The agent and the console both see most reports; count each once.
    if detector == Detector::Console && st.rec.kernel_events.last() == Some(&event.title) {
        return;
    }
    if event.kind == EventKind::HungTask {
        window::note_report(&mut st.watch, &event);
    }
    st.rec.kernel_events.push(event.title.clone());
    // Before the agent's hello no workload has run: a kernel that dies
    // while booting (no root, a missing driver) is a broken setup, not a
    // result of the kernel under test. The boot deadline ends it, and its
    // detail names the report.
    if st.phase == Phase::Booting {
        return;
    }
    match_signatures(st, input.signatures, &event.frames);
    let Some(outcome) = severity(event.kind) else {
        return;
    };
    // A crash while a hang is watched ends the watch: the board is going
    // down, and what it reports is the iteration's outcome.
    if outcome == Outcome::Crash && st.phase == Phase::Window {
        st.window = None;
        st.rec.outcome = Outcome::Crash;
        if let Some(f) = st.rec.failure.as_mut() {
            f.title = event.title.clone();
            f.frames = event.frames.clone();
            f.excerpt = event.excerpt.clone();
        }
        return enter_evidence(st, evidence, input);
    }
    let reported_ms = event.timestamp.map(|t| (t * 1000.0) as u64);
    if outcome == Outcome::Hang && reopens(st, reported_ms) {
        if let Some(pid) = event.task.as_ref().and_then(|t| t.pid) {
            open_window(
                st,
                Culprit::Task(pid as i32),
                window_len,
                input,
                reported_ms,
            );
        }
        return;
    }
    let better = match &st.rec.failure {
        None => true,
        // A reader stall or silence is a symptom; the kernel's own report
        // names the culprit, so it supplies the signature.
        Some(f) => {
            matches!(f.detector, Detector::ReaderStall | Detector::Silence)
                && !matches!(detector, Detector::ReaderStall)
        }
    };
    if !better {
        return;
    }
    let first = st.rec.failure.is_none();
    let prev = st.rec.failure.take();
    st.rec.failure = Some(Failure {
        detector: prev.as_ref().map(|f| f.detector).unwrap_or(detector),
        title: event.title.clone(),
        task: event.task.as_ref().map(|t| match t.pid {
            Some(pid) => format!("{}:{pid}", t.comm),
            None => t.comm.clone(),
        }),
        frames: event.frames.clone(),
        uptime_ms: prev.as_ref().and_then(|f| f.uptime_ms).or(uptime_ms),
        detected_after_ms: prev
            .as_ref()
            .map(|f| f.detected_after_ms)
            .unwrap_or(t0.elapsed().as_millis() as u64),
        excerpt: event.excerpt.clone(),
        timing: kernel_timing(st, &event),
    });
    if first {
        st.rec.outcome = outcome;
        match (outcome, event.task.as_ref().and_then(|t| t.pid)) {
            (Outcome::Hang, Some(pid)) => detected(
                st,
                Culprit::Task(pid as i32),
                input,
                (evidence, window_len),
                reported_ms,
            ),
            _ => enter_evidence(st, evidence, input),
        }
        let _ = agent_wr
            .write_all(&send(&HostMsg::Sysrq { key: 'w' }))
            .await;
    } else if st.rec.outcome == Outcome::SilentHang && outcome == Outcome::Hang {
        // Still silent from the agent, but the kernel said why.
        st.rec.outcome = Outcome::SilentHang;
    } else {
        st.rec.outcome = outcome;
    }
}

/// Files from the previous boot's pstore go to that boot's directory; the
/// kernel reports in them are logged as events of that boot.
fn save_pstore(
    st: &mut State,
    input: &IterationInput<'_>,
    files: &[hilt_protocol::PstoreFile],
    log: &dyn Fn(&mut State, &'static str, &dyn erased::Ser),
) {
    let Some(prev) = &input.previous_dir else {
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
            st.write_error
                .get_or_insert_with(|| format!("writing {}", dir.display()));
        }
        for e in hilt_kernlog::parse(f.content.as_bytes()) {
            log(
                st,
                "pstore",
                &PstoreEvent {
                    kind: "previous_boot_kernel",
                    file: &name,
                    event: &e,
                },
            );
        }
    }
}

#[derive(Serialize)]
struct PstoreEvent<'a> {
    kind: &'static str,
    file: &'a str,
    event: &'a Event,
}

/// Function names of a /proc/PID/stack capture (`name+0x1c/0x40 [mod]`).
fn frame_names(stack: &[String]) -> Vec<String> {
    stack
        .iter()
        .map(|f| f.split('+').next().unwrap_or(f).to_string())
        .collect()
}

/// Records each plan signature whose frames all appear in `frames`.
fn match_signatures(st: &mut State, sigs: &[SignatureCfg], frames: &[String]) {
    for s in sigs {
        if !st.rec.signatures.contains(&s.name) && s.matches(frames) {
            st.rec.signatures.push(s.name.clone());
        }
    }
}

/// Detection times for a kernel-reported hang: the watcher's, when it
/// suspected the same task first; otherwise the report's own timestamp
/// less the time the kernel says the task was blocked.
fn kernel_timing(st: &State, event: &Event) -> Option<DetectTiming> {
    let pid = event.task.as_ref().and_then(|t| t.pid).map(|p| p as i32);
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
fn add_late_suspicion(f: &mut Failure, s: &SuspectReport) {
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

fn finish_early(
    mut st: State,
    t0: Instant,
    cpu0: u64,
    outcome: Outcome,
    detail: String,
) -> IterationRecord {
    if matches!(outcome, Outcome::Deadlock | Outcome::Stall | Outcome::Hang) {
        st.rec.hang = Some(std::mem::take(&mut st.watch));
    }
    st.rec.outcome = outcome;
    st.rec.detail = detail;
    st.rec.wall_ms = t0.elapsed().as_millis() as u64;
    st.rec.read_latency_us = hilt_protocol::LatencyHisto::from_hdr(&st.hist);
    st.rec.decompress_latency_us = hilt_protocol::LatencyHisto::from_hdr(&st.decompress_hist);
    st.rec.host_cpu_ms = host_cpu_ms().saturating_sub(cpu0);
    st.rec
}

/// A record with nothing gathered yet.
fn new_record(
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

/// The record of a slot that never ran, and why.
pub fn not_run(board: &str, slot: &super::Slot, why: &str) -> IterationRecord {
    let mut r = new_record(
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

/// Lets one logging closure take any serialisable body.
mod erased {
    pub trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
    impl serde::Serialize for dyn Ser + '_ {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.json().serialize(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_failure(task: &str) -> Failure {
        Failure {
            detector: Detector::Console,
            title: "INFO: task hung in unuse_pte_range".into(),
            task: Some(task.into()),
            frames: vec![],
            uptime_ms: None,
            detected_after_ms: 0,
            excerpt: String::new(),
            timing: Some(DetectTiming {
                stopped_ms: 2_000,
                suspected_ms: None,
                confirmed_ms: Some(12_000),
                evidence_ms: None,
            }),
        }
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
