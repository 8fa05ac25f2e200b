//! What the host asks the agent to do in one iteration.
//!
//! The harness turns a validated plan into a [`RunSpec`]; the agent executes
//! it without interpreting any free-form strings, so a typo in a plan is
//! caught on the host, with its line and column, before a board boots.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub run_id: String,
    pub variant: String,
    pub iteration: u32,
    /// How long the workloads run once storage and swap are up.
    pub duration_ms: u64,
    pub storage: StorageSpec,
    pub swap: SwapSpec,
    pub kernel: KernelSettings,
    pub workloads: Vec<WorkloadSpec>,
    pub watch: WatchSpec,
    /// A positive control: a hang injected on purpose, which the run must
    /// detect for its other results to mean anything.
    #[serde(default)]
    pub control: Option<ControlSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ControlSpec {
    /// Swap goes on a dm-linear device over `device`. Before the workloads
    /// start, the device is suspended without flushing, at least `stuck_kb`
    /// of a filler's memory is paged out into it (writes that cannot
    /// complete), and swapoff is started: it waits on that writeback in
    /// TASK_UNINTERRUPTIBLE with no timeout, which khungtaskd reports on any
    /// kernel. The agent fails the stage, rather than run an iteration whose
    /// control never hung, unless swapoff is seen blocked within `within_ms`.
    SwapFreeze {
        device: BlockDevice,
        stuck_kb: u64,
        within_ms: u64,
        /// Resume the device this long after the freeze held: the stuck
        /// writeback completes, swapoff goes on, and the hang is a stall
        /// (the control for telling stalls from deadlocks). Never, if None.
        #[serde(default)]
        resume_after_ms: Option<u64>,
    },
    /// A task waits in `submit_bio_wait()` on a dm-linear device over
    /// `device`, suspended without flushing, and the readers are stopped
    /// (SIGSTOP): what the seed's deadlock looks like from outside. That
    /// wait wakes in slices, so khungtaskd never reports it; only the
    /// agent's watcher can. The stage fails unless the task is seen in the
    /// wait within `within_ms`.
    BioWaitFreeze { device: BlockDevice, within_ms: u64 },
}

/// How the agent finds a block device without relying on enumeration order
/// (virtio-mmio disks enumerate in reverse command-line order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockDevice {
    /// A virtio disk, found by the `serial=` QEMU gave it (/sys/block/vd*/serial).
    VirtioSerial(String),
    /// The first MMC/SD card, or one of its partitions (1-based).
    Mmc { partition: Option<u32> },
    /// An explicit device node, for real boards.
    Path(String),
    /// A zram device the agent adds for the run (zram-control's hot_add),
    /// of this size: swap for the positive control on a board with no
    /// spare partition, as most Android devices have none.
    NewZram { size_bytes: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageSpec {
    pub erofs: BlockDevice,
    pub verity: Option<VeritySource>,
    /// Passed to mount(2) as data, e.g. "cache_strategy=disabled".
    pub mount_options: String,
    /// Written to queue/scheduler of the devices under erofs and swap.
    pub io_scheduler: Option<String>,
    /// Written to /sys/fs/erofs/<dev>/sync_decompress when set (0, 1, 2).
    pub sync_decompress: Option<u8>,
    /// A writable filesystem beside erofs on the same device (Android's
    /// /data), whose own reads make submit_bio calls that erofs completions
    /// can run inside.
    #[serde(default)]
    pub data: Option<DataSpec>,
}

/// Where the agent mounts the data filesystem.
pub const DATA_MOUNT_POINT: &str = "/mnt/data";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSpec {
    /// The partition, already formatted by the host.
    pub device: BlockDevice,
    pub fs: DataFs,
    /// Files the agent writes at setup for `on: data` readers to read.
    pub files: u32,
    pub file_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFs {
    F2fs,
    Ext4,
}

impl DataFs {
    /// The name mount(2) and /proc/filesystems use.
    pub fn name(self) -> &'static str {
        match self {
            DataFs::F2fs => "f2fs",
            DataFs::Ext4 => "ext4",
        }
    }
}

/// Which files a readers workload reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// The erofs dataset: its reads are the latency the plan measures.
    #[default]
    Erofs,
    /// The data filesystem's files: load on the same device, counted apart.
    Data,
}

/// Where the agent gets the dm-verity parameters for the erofs device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VeritySource {
    /// Numbers the host computed when it built the hash tree.
    Explicit(VeritySpec),
    /// The AVB hashtree footer in the last 64 bytes of the erofs device
    /// itself: the agent reads the vbmeta it points at and sets up
    /// dm-verity from its hashtree descriptor, with the tree on the same
    /// device. So a board is verified by what is on it, as Android does.
    AvbFooter {
        /// The descriptor must name this partition (no A/B suffix).
        partition_name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VeritySpec {
    pub hash: BlockDevice,
    pub root_hash: String,
    pub salt: String,
    pub data_blocks: u64,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub hash_start_block: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SwapSpec {
    None,
    /// zram0 set up by the agent; if the OS had it as swap (Android), put
    /// back as it was when the run ends.
    Zram {
        size_bytes: u64,
        algorithm: Option<String>,
    },
    /// The zram swap the OS set up at boot, as Android does, used as it is.
    ZramExisting,
    Device {
        device: BlockDevice,
    },
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KernelSettings {
    pub hung_task_timeout_secs: Option<u64>,
    pub hung_task_check_interval_secs: Option<u64>,
    pub hung_task_warnings: Option<i64>,
    pub printk_level: Option<u8>,
    pub sysrq: bool,
    pub swappiness: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadPattern {
    Sequential,
    Random,
    Mmap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WorkloadSpec {
    /// Anonymous memory, sized as a fraction of MemTotal, touched page by
    /// page in a loop so the kernel cannot leave it swapped out.
    Hog {
        name: String,
        mem_fraction: f64,
        start_after_ms: u64,
    },
    /// Parallel readers of the erofs files, dropping caches between rounds
    /// and timing every read.
    Readers {
        name: String,
        threads: u32,
        pattern: ReadPattern,
        block_size: u32,
        drop_caches: bool,
        rounds: Option<u32>,
        start_after_ms: u64,
        #[serde(default)]
        on: ReadFrom,
        /// false: the files are marked random access (POSIX_FADV_RANDOM,
        /// MADV_RANDOM), so a mapped read faults one page in with no
        /// readahead and no plug: its bio is issued from inside submit_bio().
        #[serde(default = "readahead_default")]
        readahead: bool,
    },
}

fn readahead_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSpec {
    pub heartbeat_ms: u64,
    pub interval_ms: u64,
    /// A reader that makes no progress for this long is reported as stalled:
    /// the only signal for tasks khungtaskd never reports.
    pub reader_stall_ms: u64,
    /// A task in D with no context switch for this long is suspected.
    pub dstate_ms: u64,
    /// A task in D on the same wchan for this long is suspected even if it
    /// keeps waking up (submit_bio_wait sleeps in slices).
    pub same_wchan_ms: u64,
    /// A suspect still stuck this much later is confirmed without waiting
    /// for the kernel's own report.
    pub confirm_ms: u64,
    /// sysrq keys sent on suspicion, in order (w: blocked tasks, t: all
    /// tasks, m: memory, l: all CPUs' backtraces).
    pub sysrq_keys: String,
    /// Time erofs' decompression functions with kprobes.
    #[serde(default)]
    pub decompress_probes: bool,
}

impl Default for WatchSpec {
    fn default() -> Self {
        Self {
            heartbeat_ms: 1000,
            interval_ms: 1000,
            reader_stall_ms: 20_000,
            dstate_ms: 10_000,
            same_wchan_ms: 60_000,
            confirm_ms: 20_000,
            sysrq_keys: "w".into(),
            decompress_probes: true,
        }
    }
}
