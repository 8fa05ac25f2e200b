use hilt_protocol::LatencyHisto;
use serde::{Deserialize, Serialize};

/// Bumped when a record changes shape.
pub const RESULTS_VERSION: u32 = 1;

/// The outcome of one iteration, in the spirit of KCIDB's statuses: kernel
/// failures (hang, silent hang, crash) are kept apart from infrastructure
/// errors, which never count against a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    /// A task stopped making progress (the kernel's hung-task detector, a
    /// reader without progress, a task stuck in D), and the iteration did not
    /// watch long enough to tell a deadlock from a stall: a plan with
    /// `watch.deadlock_window_s: 0`, or a record from before the window existed.
    Hang,
    /// A hang that made no progress for the whole deadlock window: the
    /// blocked tasks stayed blocked and the workloads stood still.
    Deadlock,
    /// A hang that recovered within the deadlock window: a finding, not a
    /// pass, but not a deadlock either.
    Stall,
    /// The board went quiet: no agent heartbeat and no console output.
    SilentHang,
    /// Oops, BUG, panic or another kernel crash report.
    Crash,
    InfraError,
    NotRun,
}

impl Outcome {
    pub fn is_kernel_failure(self) -> bool {
        matches!(
            self,
            Outcome::Hang
                | Outcome::Deadlock
                | Outcome::Stall
                | Outcome::SilentHang
                | Outcome::Crash
        )
    }

    /// Hangs that did not recover while hilt watched. A stall is not one:
    /// hang rates would otherwise count a slow kernel as a deadlocked one.
    pub fn is_hang(self) -> bool {
        matches!(
            self,
            Outcome::Hang | Outcome::Deadlock | Outcome::SilentHang
        )
    }

    /// Iterations that tell something about the kernel.
    pub fn is_valid(self) -> bool {
        !matches!(self, Outcome::InfraError | Outcome::NotRun)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Hang => "hang",
            Outcome::Deadlock => "deadlock",
            Outcome::Stall => "stall",
            Outcome::SilentHang => "silent_hang",
            Outcome::Crash => "crash",
            Outcome::InfraError => "infra_error",
            Outcome::NotRun => "not_run",
        }
    }
}

/// Which mechanism saw a failure first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// A kernel report recognised in /dev/kmsg by the agent.
    AgentKmsg,
    /// A kernel report recognised in the console capture by the host.
    Console,
    /// A reader that made no progress.
    ReaderStall,
    /// The agent's D-state watcher: a task in D without progress.
    Dstate,
    /// Silence on both channels.
    Silence,
    /// The agent's heartbeat went on but its sampler stopped reporting: it
    /// is blocked in the kernel, and the readers it watches cannot be seen.
    SamplerStall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub detector: Detector,
    /// Normalised title, e.g. `INFO: task hung in mmc_blk_rw_wait`.
    pub title: String,
    pub task: Option<String>,
    pub frames: Vec<String>,
    /// Board uptime when detected, from the board's own clock.
    pub uptime_ms: Option<u64>,
    /// Host time from power-on to detection.
    pub detected_after_ms: u64,
    pub excerpt: String,
    /// When the culprit stopped and when hilt saw it, on the board's clock.
    #[serde(default)]
    pub timing: Option<DetectTiming>,
}

/// Board uptimes (ms) of a hang's detection steps; differences from
/// `stopped_ms` are the time to suspect, to confirm and to evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectTiming {
    /// The culprit's last progress (context switch or wchan change), or the
    /// kernel's report time minus its timeout.
    pub stopped_ms: u64,
    pub suspected_ms: Option<u64>,
    pub confirmed_ms: Option<u64>,
    pub evidence_ms: Option<u64>,
}

/// What the deadlock window saw after a hang was detected: whether anything
/// moved again, and who was blocked on what.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HangWatch {
    /// How long hilt watched for progress after the detection.
    pub window_ms: u64,
    /// Detection to the first sign of progress; None for a deadlock.
    #[serde(default)]
    pub resumed_after_ms: Option<u64>,
    /// What moved again (a reader's bytes, the memory hog, a task leaving D).
    #[serde(default)]
    pub progress: Option<String>,
    /// The longest time the kernel or the watcher saw a task blocked.
    #[serde(default)]
    pub longest_blocked_s: Option<u64>,
    /// The blocked tasks, in the order they were first reported.
    #[serde(default)]
    pub waiters: Vec<Waiter>,
}

/// A task seen blocked, and where.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Waiter {
    /// `comm:pid` where the pid is known.
    pub task: String,
    /// The innermost frame that is not the scheduler's own: what it waits on.
    pub waits_in: String,
    /// Innermost first.
    #[serde(default)]
    pub frames: Vec<String>,
    /// The longest blocked time reported for it, in seconds.
    #[serde(default)]
    pub blocked_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    pub version: u32,
    pub variant: String,
    pub iteration: u32,
    pub board: String,
    pub outcome: Outcome,
    /// One line a person can read: why this outcome.
    pub detail: String,
    pub failure: Option<Failure>,
    /// All kernel reports seen, by title, in order.
    pub kernel_events: Vec<String>,
    pub kernel_release: Option<String>,
    pub started_at: String,
    pub wall_ms: u64,
    /// Power-on to the agent's hello.
    pub boot_ms: Option<u64>,
    pub reads: u64,
    pub bytes_read: u64,
    #[serde(default)]
    pub read_errors: u64,
    #[serde(default)]
    pub last_read_errno: Option<i32>,
    /// Reads of the plan's data filesystem (`on: data` readers): load on
    /// the same card, kept out of the erofs figures.
    #[serde(default)]
    pub data_reads: u64,
    #[serde(default)]
    pub data_bytes: u64,
    pub read_latency_us: LatencyHisto,
    /// In-kernel time of erofs' top decompression function, when probed
    /// (empty otherwise), with the calls made by kworkers (deferred) and
    /// from any other context (direct, e.g. in a bio completion).
    #[serde(default)]
    pub decompress_latency_us: LatencyHisto,
    #[serde(default)]
    pub decompress_func: Option<String>,
    /// Why the decompression path has no figures, when the agent could not
    /// probe it (no such function on this kernel, no kprobes, no tracefs).
    #[serde(default)]
    pub decompress_probe_error: Option<String>,
    #[serde(default)]
    pub decompress_calls_in_worker: u64,
    #[serde(default)]
    pub decompress_calls_elsewhere: u64,
    pub max_swap_used_kb: u64,
    pub max_psi_some_avg10: f32,
    pub max_psi_full_avg10: f32,
    /// Relative to the results directory.
    pub console_log: String,
    /// Names of the plan's stack signatures seen in this iteration.
    #[serde(default)]
    pub signatures: Vec<String>,
    /// Set on positive-control iterations, which are kept out of the
    /// variant's statistics.
    #[serde(default)]
    pub control: Option<String>,
    /// Set on hangs: deadlock or stall, and who waited on what.
    #[serde(default)]
    pub hang: Option<HangWatch>,
    /// CPU time hilt itself used during the iteration.
    #[serde(default)]
    pub host_cpu_ms: u64,
}

impl IterationRecord {
    /// A record with nothing gathered yet: not run, no figures.
    pub fn blank(variant: &str, iteration: u32, board: &str) -> Self {
        IterationRecord {
            version: RESULTS_VERSION,
            variant: variant.to_string(),
            iteration,
            board: board.to_string(),
            outcome: Outcome::NotRun,
            detail: String::new(),
            failure: None,
            kernel_events: vec![],
            kernel_release: None,
            started_at: String::new(),
            wall_ms: 0,
            boot_ms: None,
            reads: 0,
            bytes_read: 0,
            read_errors: 0,
            last_read_errno: None,
            data_reads: 0,
            data_bytes: 0,
            read_latency_us: Default::default(),
            decompress_latency_us: Default::default(),
            decompress_func: None,
            decompress_probe_error: None,
            decompress_calls_in_worker: 0,
            decompress_calls_elsewhere: 0,
            max_swap_used_kb: 0,
            max_psi_some_avg10: 0.0,
            max_psi_full_avg10: 0.0,
            console_log: String::new(),
            signatures: vec![],
            control: None,
            hang: None,
            host_cpu_ms: 0,
        }
    }
}
