//! Records on the agent channel, in both directions.

use serde::{Deserialize, Serialize};

use crate::{LatencyHisto, RunSpec};

/// Host to agent. The agent reads these only from its own virtio-serial
/// port; it listens on no network socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum HostMsg {
    Start {
        spec: Box<RunSpec>,
    },
    /// Stop the workloads early and report `Done`.
    Stop,
    /// Trigger a sysrq key via /proc/sysrq-trigger.
    Sysrq {
        key: char,
    },
    /// Injected failures, for testing that hilt survives them.
    Fault {
        fault: AgentFault,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentFault {
    /// The agent exits at once.
    Exit,
    /// The agent stays alive but sends nothing more: to the host, a board
    /// that went silent.
    Mute,
    /// The kernel panics (sysrq c).
    Panic,
    /// The agent writes this many random bytes to the board's console, as a
    /// misbehaving driver or a runaway printk would.
    ConsoleFlood { bytes: u32 },
    /// The agent damages its own channel: random bytes, a frame cut short, a
    /// frame with a bad checksum, and lost sequence numbers.
    ChannelGarbage,
    /// The interval sampler stops for `ms` (for good when absent) while the
    /// heartbeat goes on, as when it blocks in the kernel under pressure.
    SamplerFreeze { ms: Option<u64> },
}

/// Agent to host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AgentMsg {
    Hello(Hello),
    Stage(StageReport),
    Heartbeat {
        uptime_ms: u64,
    },
    Interval(Box<IntervalStats>),
    Kmsg(KmsgRecord),
    /// A kernel report recognised in /dev/kmsg by the shared parser.
    Kernel {
        uptime_ms: u64,
        event: Box<hilt_kernlog::Event>,
    },
    /// A reader has made no progress for `stalled_ms`.
    ReaderStall {
        uptime_ms: u64,
        reader: u32,
        workload: String,
        stalled_ms: u64,
    },
    /// A stalled reader moved again.
    ReaderResumed {
        uptime_ms: u64,
        reader: u32,
        workload: String,
    },
    /// A task has been in D state too long: evidence captured at once.
    Suspect(Box<SuspectReport>),
    /// A suspect is confirmed hung: by the kernel's report, or by staying
    /// stuck for the confirm time.
    Confirmed(Confirmation),
    /// A suspect left D state before it was confirmed.
    Cleared {
        uptime_ms: u64,
        pid: i32,
        tid: i32,
    },
    /// A confirmed task made progress again (a context switch out of its
    /// wait, or it left D): the hang was a stall, not a deadlock.
    Resumed {
        uptime_ms: u64,
        pid: i32,
        tid: i32,
        comm: String,
        /// From its last progress before the hang to now.
        blocked_ms: u64,
    },
    Done {
        uptime_ms: u64,
        reason: DoneReason,
        /// CPU time of each of the agent's own threads so far, by thread name:
        /// where the agent's footprint goes (`scripts/bench-agent` prints it).
        #[serde(default)]
        agent_threads: Vec<ThreadCpu>,
    },
    /// What the previous boot left in pstore (ramoops), read at start.
    Pstore {
        files: Vec<PstoreFile>,
    },
    Error {
        stage: Stage,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectReport {
    pub uptime_ms: u64,
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    pub wchan: String,
    /// "no_context_switch", "same_wchan", or "bio_wait" (in submit_bio_wait
    /// while the workloads made no progress).
    pub reason: String,
    /// When the task was last seen making progress (a context switch, or a
    /// change of wchan), board uptime.
    pub stopped_ms: u64,
    /// /proc/PID/task/TID/stack, innermost first.
    pub stack: Vec<String>,
    pub psi: Option<PsiMemory>,
    pub mem: MemSnapshot,
    pub vmstat: String,
    /// Board uptime when all of the above was captured.
    pub evidence_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmedBy {
    KernelReport,
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    pub uptime_ms: u64,
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    pub by: ConfirmedBy,
    pub stopped_ms: u64,
    pub suspected_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PstoreFile {
    pub name: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub agent_version: String,
    pub kernel_release: String,
    pub kernel_version: String,
    pub machine: String,
    pub uptime_ms: u64,
    pub mem_total_kb: u64,
    pub cpus: u32,
    /// What the kernel offers that the run relies on ("psi": "yes", ...).
    #[serde(default)]
    pub facts: std::collections::BTreeMap<String, String>,
    /// The SD cards and eMMCs Linux found, by the identity their card
    /// reports: how the host tells which of U-Boot's `mmc` devices each is.
    #[serde(default)]
    pub mmc: Vec<MmcCard>,
}

/// One `/sys/block/mmcblkN`, from its card's CID and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmcCard {
    /// `mmcblk1`.
    pub disk: String,
    /// "SD" or "MMC" (eMMC), as the card's `type` says.
    pub kind: String,
    pub manfid: u32,
    pub oemid: u32,
    /// The product name (5 characters on SD, 6 on eMMC).
    pub name: String,
    /// 512-byte sectors of the user area.
    pub sectors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Settings,
    Verity,
    Mount,
    /// The data filesystem beside erofs, and its files.
    Data,
    Swap,
    Workloads,
    Watch,
    Channel,
    Control,
    /// The kprobes on erofs' decompression path: failing leaves the run
    /// going without that figure.
    Probes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub stage: Stage,
    pub uptime_ms: u64,
    pub elapsed_ms: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneReason {
    /// Duration elapsed or every bounded workload finished its rounds.
    Completed,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmsgRecord {
    pub seq: u64,
    pub ts_us: u64,
    pub level: u8,
    pub text: String,
}

/// One thread of the agent and the CPU time it used (utime + stime).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ThreadCpu {
    pub name: String,
    pub cpu_ms: u64,
}

/// One sampling interval of the workloads and of the kernel's memory state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IntervalStats {
    pub uptime_ms: u64,
    pub read_latency_us: LatencyHisto,
    pub reads: u64,
    pub bytes_read: u64,
    /// Cumulative failed reads, and the errno of the latest one.
    pub read_errors: u64,
    pub last_read_errno: Option<i32>,
    /// Cumulative bytes per reader thread, so a stuck reader shows as a flat line.
    pub reader_bytes: Vec<u64>,
    pub hog_bytes: u64,
    pub psi: Option<PsiMemory>,
    pub mem: MemSnapshot,
    pub vmstat: VmstatDelta,
    /// The agent's own footprint: resident memory and CPU time so far
    /// (all its threads, not its workload processes).
    #[serde(default)]
    pub agent_rss_kb: u64,
    #[serde(default)]
    pub agent_cpu_ms: u64,
    /// In-kernel latency of erofs' decompression functions, when probed.
    #[serde(default)]
    pub decompress: Vec<FuncLatency>,
    /// Cumulative reads and bytes of the `on: data` readers, kept out of
    /// the erofs figures above.
    #[serde(default)]
    pub data_reads: u64,
    #[serde(default)]
    pub data_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FuncLatency {
    pub func: String,
    /// Calls completed in this interval.
    pub latency_us: LatencyHisto,
    /// Cumulative calls from kworkers (deferred) and from anywhere else
    /// (direct, e.g. in a bio completion).
    pub calls_in_worker: u64,
    pub calls_elsewhere: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PsiMemory {
    pub some_avg10: f32,
    pub full_avg10: f32,
    pub some_total_us: u64,
    pub full_total_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemSnapshot {
    pub total_kb: u64,
    pub available_kb: u64,
    pub free_kb: u64,
    pub swap_total_kb: u64,
    pub swap_free_kb: u64,
}

/// Deltas over the interval of the /proc/vmstat counters that show reclaim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VmstatDelta {
    pub pswpin: u64,
    pub pswpout: u64,
    pub allocstall: u64,
    pub pgmajfault: u64,
    pub oom_kill: u64,
}
