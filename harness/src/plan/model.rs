//! The plan, board and workload file formats. Every struct rejects unknown
//! keys: a typo must fail loudly, not silently fall back to a default.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A board name (boards/<name>.yaml) or a path to a board file.
    #[serde(default)]
    pub board: Option<String>,
    /// Several boards, driven at once; instead of `board`.
    #[serde(default)]
    pub boards: Vec<String>,
    /// Copies of each emulated board to run at once (emulated boards only).
    #[serde(default = "one_instance")]
    pub instances: u32,
    /// Iterations per variant.
    pub iterations: u32,
    /// How long the workloads run in each iteration.
    pub duration_s: u64,
    pub variants: Vec<Variant>,
    #[serde(default)]
    pub machine: MachineOverrides,
    pub dataset: DatasetCfg,
    #[serde(default)]
    pub image: ImageCfg,
    pub storage: StorageCfg,
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub swap: SwapCfg,
    /// Workload names (workloads/<name>.yaml) or paths.
    pub workloads: Vec<String>,
    #[serde(default)]
    pub kernel: KernelCfg,
    #[serde(default)]
    pub watch: WatchCfg,
    #[serde(default)]
    pub timeouts: TimeoutsCfg,
    /// Positive controls, run once per variant before the iterations: a
    /// run whose controls are not detected is invalid.
    #[serde(default)]
    pub controls: Vec<Control>,
    /// Failures injected on purpose, to test that hilt survives them.
    #[serde(default)]
    pub faults: Vec<FaultCfg>,
    /// Named stack signatures to look for in every kernel report and
    /// suspect stack of an iteration (e.g. the bug under test).
    #[serde(default)]
    pub signatures: Vec<SignatureCfg>,
    /// Stop as soon as every target signature's comparison is decided (or
    /// cannot be): `iterations` is then the most each variant may take.
    #[serde(default)]
    pub stop: Option<StopCfg>,
}

impl Plan {
    /// Iterations each variant may take: a stopping rule's maximum, or the
    /// plan's fixed count.
    pub fn max_iterations(&self) -> u32 {
        self.stop
            .as_ref()
            .and_then(|s| s.max_iterations)
            .unwrap_or(self.iterations)
    }

    /// What the run asks of its results, as reports read it from run.json.
    pub fn question(&self) -> hilt_reports::verdict::Question {
        hilt_reports::verdict::Question {
            signatures: self
                .signatures
                .iter()
                .map(|s| hilt_reports::verdict::SignatureQuestion {
                    name: s.name.clone(),
                    absent_in: s.absent_in.clone(),
                })
                .collect(),
            alpha: self
                .stop
                .as_ref()
                .map_or(hilt_reports::verdict::DEFAULT_ALPHA, |s| s.alpha),
            max_iterations: self.stop.as_ref().map(|_| self.max_iterations()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureCfg {
    pub name: String,
    /// Function names that must all appear in one stack; `a|b` takes
    /// either, for a path that runs in more than one context.
    pub frames: Vec<String>,
    /// The variant in which this signature must never deadlock: `hilt run`
    /// exits 1 when the evidence says otherwise.
    #[serde(default)]
    pub absent_in: Option<String>,
}

impl SignatureCfg {
    /// Every frame (or one of its alternatives) appears in `stack`.
    pub fn matches(&self, stack: &[String]) -> bool {
        self.frames
            .iter()
            .all(|f| f.split('|').any(|alt| stack.iter().any(|x| x == alt)))
    }
}

/// The sequential stopping rule: the plan's signatures are tested after
/// every iteration with an anytime-valid test, so stopping early keeps its
/// false-positive rate at `alpha`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopCfg {
    pub alpha: f64,
    /// The most iterations per variant; `iterations` when absent.
    #[serde(default)]
    pub max_iterations: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultCfg {
    pub kind: FaultKind,
    /// Seconds after the workloads start.
    pub after_s: u64,
    /// Only in this iteration (0-based); every iteration when absent.
    pub iteration: Option<u32>,
    /// How many random bytes a `console_flood` writes (default 256 KiB).
    #[serde(default)]
    pub bytes: Option<u32>,
    /// How long a `sampler_freeze` lasts (for good when absent).
    #[serde(default)]
    pub for_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The board agent exits.
    AgentExit,
    /// The agent goes quiet while staying alive: the board looks silent.
    AgentMute,
    /// The kernel panics (sysrq c from the agent).
    KernelPanic,
    /// The host kills QEMU: the board loses power.
    PowerLoss,
    /// The board writes random bytes to its console (the agent writes them
    /// to /dev/console).
    ConsoleFlood,
    /// The host's console connection closes, as when a USB adapter vanishes
    /// or ser2net drops the client.
    ConsoleClose,
    /// The agent's channel carries random bytes, a truncated frame, a frame
    /// with a bad checksum and lost frames.
    ChannelGarbage,
    /// The agent's interval sampler stops reporting (for `for_s`, or for
    /// good) while its heartbeat goes on, as when it blocks in the kernel.
    SamplerFreeze,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Swap on dm-linear, suspended with writeback stuck in it, then
    /// swapoff: a hung task on any kernel.
    SwapFreeze,
    /// The same freeze, let go 30 s later: a hang that recovers, which
    /// must come out as a stall.
    SwapStall,
    /// A task waiting in submit_bio_wait() on a suspended dm device, with
    /// the readers stopped: khungtaskd never reports that wait, so only the
    /// agent's watcher can find it. Must come out as a deadlock.
    BioWait,
}

impl Control {
    pub fn name(self) -> &'static str {
        match self {
            Control::SwapFreeze => "swap_freeze",
            Control::SwapStall => "swap_stall",
            Control::BioWait => "bio_wait",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(with = "serde_yaml_ng::with::singleton_map")]
    pub kernel: KernelSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelSource {
    /// A Debian arm64 kernel package, `name` or `name=version`.
    Debian(String),
    /// A kernel the user built: an Image plus its modules, or a .deb.
    Prebuilt(PrebuiltCfg),
    /// A tree hilt builds, with a config and patches.
    Source(SourceCfg),
}

/// Paths are relative to the plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrebuiltCfg {
    /// An uncompressed arm64 Image.
    pub image: Option<String>,
    /// `lib/modules/<release>` of that Image (`make modules_install`):
    /// required with `image`, its modules.builtin says what is built in.
    pub modules: Option<String>,
    /// A linux-image .deb; instead of image/modules.
    pub deb: Option<String>,
}

/// Paths are relative to the plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCfg {
    /// Debian's kernel source package, `linux-source-6.1[=version]`.
    pub debian: Option<String>,
    /// A local kernel tree (copied, never modified).
    pub path: Option<String>,
    /// `board` (hilt's config for the emulated board), a kbuild config
    /// target such as `defconfig`, or a .config file.
    #[serde(default = "board_config")]
    pub config: String,
    /// Config fragments laid over the base, in order.
    #[serde(default)]
    pub fragments: Vec<String>,
    /// Patches to take out of the tree (applied in reverse), first.
    #[serde(default)]
    pub revert: Vec<String>,
    /// Patches to apply, after the reverts.
    #[serde(default)]
    pub patches: Vec<String>,
}

fn board_config() -> String {
    "board".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineOverrides {
    pub memory_mb: Option<u32>,
    pub cpus: Option<u32>,
    /// How the kernel reaches the emulated board.
    #[serde(default)]
    pub boot: BootMethod,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootMethod {
    /// QEMU loads kernel and initrd itself (-kernel/-initrd): the fastest.
    #[default]
    Direct,
    /// U-Boot as firmware stops autoboot on the console, fetches kernel and
    /// initrd from QEMU's TFTP server and `booti`s them: the way racks of
    /// real boards boot, exercised on every iteration.
    UbootTftp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetCfg {
    pub size_mb: u64,
    pub files: u32,
    #[serde(default = "one")]
    pub seed: u64,
}

fn one() -> u64 {
    1
}

fn one_instance() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compressor {
    Lz4,
    Lz4hc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageCfg {
    pub compressor: Compressor,
    pub level: Option<u32>,
    /// Physical cluster size; large ones make decompression allocate.
    pub pcluster_kb: u32,
    pub verity: Verity,
}

impl Default for ImageCfg {
    fn default() -> Self {
        Self {
            compressor: Compressor::Lz4hc,
            level: None,
            pcluster_kb: 64,
            verity: Verity::Table,
        }
    }
}

/// `verity:` in a plan's image: `false`, `true` or `avb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verity {
    /// `false`: erofs mounted straight from its device.
    Off,
    /// `true`: hilt computes the hash tree and hands the agent its numbers;
    /// the tree goes on its own disk (emulated boards) or after the image.
    Table,
    /// `avb`: the image gets an AVB hashtree footer as avbtool writes it,
    /// and the agent sets up dm-verity from the footer on the device.
    Avb,
}

impl Serialize for Verity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Verity::Off => s.serialize_bool(false),
            Verity::Table => s.serialize_bool(true),
            Verity::Avb => s.serialize_str("avb"),
        }
    }
}

impl<'de> Deserialize<'de> for Verity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Verity;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or avb")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Verity, E> {
                Ok(if b { Verity::Table } else { Verity::Off })
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Verity, E> {
                match s {
                    "avb" => Ok(Verity::Avb),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErofsOn {
    /// A virtio-blk disk.
    Virtio,
    /// Partition 1 of an emulated SD card (sdhci-pci + sd-card), whose
    /// driver completes requests in the issuing task's context.
    Sdcard,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageCfg {
    pub erofs_on: ErofsOn,
    #[serde(default)]
    pub mount_options: String,
    pub io_scheduler: Option<String>,
    pub sync_decompress: Option<u8>,
    /// A writable filesystem on the same card as erofs (Android's /data),
    /// read by `on: data` readers.
    pub data: Option<DataCfg>,
}

/// `storage.data`: a partition hilt formats on the emulated card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    pub fs: hilt_protocol::DataFs,
    pub size_mb: u64,
    /// Files the agent writes there for the readers, and their size.
    #[serde(default = "default_data_files")]
    pub files: u32,
    #[serde(default = "default_data_file_mb")]
    pub file_mb: u64,
}

fn default_data_files() -> u32 {
    4
}

fn default_data_file_mb() -> u64 {
    4
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SwapCfg {
    None,
    /// The zram swap the board's own OS sets up at boot (Android's), used
    /// as it is.
    ZramExisting,
    /// zram0 set up by hilt; where the OS had it as swap, restored after.
    Zram {
        size_mb: u64,
        #[serde(default)]
        algorithm: Option<String>,
    },
    /// A separate virtio disk.
    Disk {
        size_mb: u64,
    },
    /// Partition 2 of the SD card that holds erofs (same mmc queue).
    Sdcard {
        size_mb: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelCfg {
    pub hung_task_timeout_secs: Option<u64>,
    pub hung_task_check_interval_secs: Option<u64>,
    pub hung_task_warnings: Option<i64>,
    pub printk_level: Option<u8>,
    pub sysrq: bool,
    pub swappiness: Option<u32>,
}

impl Default for KernelCfg {
    fn default() -> Self {
        Self {
            hung_task_timeout_secs: Some(10),
            hung_task_check_interval_secs: None,
            hung_task_warnings: Some(-1),
            printk_level: Some(7),
            sysrq: true,
            swappiness: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchCfg {
    /// A reader without progress for this long means a hang.
    pub reader_stall_s: u64,
    /// No agent heartbeat and no console byte for this long: silent hang.
    pub silent_after_s: u64,
    /// How long to keep collecting evidence after a hang is decided.
    pub evidence_s: u64,
    /// How long a detected hang is watched for progress: none in the whole
    /// window makes it a deadlock, progress makes it a stall. 0 ends the
    /// iteration at the detection, as an unclassified hang.
    pub deadlock_window_s: u64,
    /// A task in D state with no context switch this long is suspected.
    pub dstate_s: u64,
    /// A task in D state on the same wchan this long is suspected even if
    /// it keeps waking up.
    pub same_wchan_s: u64,
    /// A suspect still stuck this much later is confirmed hung.
    pub confirm_s: u64,
    /// sysrq keys the agent triggers on suspicion (w, t, m, l).
    pub sysrq: String,
    /// Time erofs' decompression functions in the kernel with kprobes.
    pub decompress_probes: bool,
}

impl Default for WatchCfg {
    fn default() -> Self {
        Self {
            reader_stall_s: 30,
            silent_after_s: 60,
            evidence_s: 10,
            deadlock_window_s: 120,
            dstate_s: 10,
            same_wchan_s: 60,
            confirm_s: 20,
            sysrq: "w".into(),
            decompress_probes: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsCfg {
    /// Power-on to the agent's hello.
    pub boot_s: u64,
    /// Hello to the start of the workloads (verity, mount, swap).
    pub setup_s: u64,
    /// Grace after the workloads' duration for the agent to say it is done.
    pub finish_s: u64,
    /// A board with this many infrastructure errors in a row is
    /// quarantined: no more iterations run on it in this run.
    pub quarantine_after: u32,
}

impl Default for TimeoutsCfg {
    fn default() -> Self {
        Self {
            boot_s: 120,
            setup_s: 120,
            finish_s: 60,
            quarantine_after: 3,
        }
    }
}

/// `workloads/<name>.yaml`: exactly one of `hog` or `readers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub hog: Option<HogCfg>,
    pub readers: Option<ReadersCfg>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HogCfg {
    /// Fraction of MemTotal to allocate and keep touching.
    pub mem_fraction: f64,
    #[serde(default)]
    pub start_after_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    Sequential,
    Random,
    Mmap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadersCfg {
    pub threads: u32,
    pub pattern: Pattern,
    #[serde(default = "default_block_kb")]
    pub block_size_kb: u32,
    #[serde(default)]
    pub drop_caches: bool,
    pub rounds: Option<u32>,
    #[serde(default)]
    pub start_after_s: f64,
    /// erofs (the default) or the plan's `storage.data` filesystem.
    #[serde(default)]
    pub on: hilt_protocol::ReadFrom,
    /// false marks the files random access: no readahead, so mapped reads
    /// fault single pages in, each bio issued inside its own submit_bio().
    #[serde(default = "default_readahead")]
    pub readahead: bool,
}

fn default_readahead() -> bool {
    true
}

fn default_block_kb() -> u32 {
    128
}

/// `boards/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub arch: Arch,
    pub soc: Option<String>,
    /// Absent on a board whose console comes from its labgrid place.
    #[serde(default, with = "serde_yaml_ng::with::singleton_map")]
    pub console: ConsoleCfg,
    /// Absent on a board whose power comes from its labgrid place.
    #[serde(default, with = "serde_yaml_ng::with::singleton_map")]
    pub power: PowerCfg,
    /// The labgrid place the board lives in: hilt acquires it for as long
    /// as it drives the board, and takes the console and power it lacks
    /// from the place's resources.
    #[serde(default)]
    pub labgrid: Option<LabgridCfg>,
    pub agent: AgentChannelCfg,
    pub qemu: Option<QemuCfg>,
    /// Network and USB transports the board offers besides its console.
    #[serde(default)]
    pub ssh: Option<SshCfg>,
    #[serde(default)]
    pub adb: Option<AdbCfg>,
    #[serde(default)]
    pub fastboot: Option<FastbootCfg>,
    #[serde(default)]
    pub uboot: Option<UbootCfg>,
    /// How images reach the board's storage.
    #[serde(default, with = "serde_yaml_ng::with::singleton_map")]
    pub flash: Option<FlashCfg>,
    /// Partition names to device nodes on the board.
    #[serde(default)]
    pub partitions: std::collections::BTreeMap<String, String>,
    /// How a board on the bench boots for a run; emulated boards boot
    /// from QEMU and ignore it.
    #[serde(default, with = "serde_yaml_ng::with::singleton_map")]
    pub boot: Option<BenchBootCfg>,
    /// The kernel's name for the console UART (`console=` on the command
    /// line), e.g. ttyAML0,115200 on Amlogic SoCs.
    #[serde(default)]
    pub kernel_console: Option<String>,
    /// On a board that boots its own OS: the file its bootloader loads as
    /// the kernel (e.g. /boot/Image). `hilt run` writes a variant's Image
    /// there over SSH when the board boots another kernel, then power
    /// cycles it; without it, the board must already run the variant's.
    #[serde(default)]
    pub kernel_path: Option<String>,
    /// On a board that boots its own Linux: a complete install (the
    /// kernel, its modules, a boot entry) in the layout its bootloader
    /// reads. Replaces `kernel_path`, which writes the Image alone.
    #[serde(default)]
    pub install: Option<InstallCfg>,
    /// Which of `partitions:` a run writes its image to and swaps on.
    #[serde(default)]
    pub storage: Option<BoardStorageCfg>,
    /// What hilt's initramfs needs on this board beyond what every board
    /// gets (the storage stack's own modules).
    #[serde(default)]
    pub initramfs: Option<InitramfsCfg>,
    /// A RAM region hilt's kernel keeps its panic log in (ramoops), on a
    /// board booted through U-Boot and TFTP: read back by the next boot
    /// after a warm reset, which keeps RAM.
    #[serde(default)]
    pub ramoops: Option<RamoopsCfg>,
}

/// Where ramoops lives in a bench board's RAM. The region must be out of
/// the way of U-Boot (it relocates itself to the top of RAM: `bdinfo`
/// shows `relocaddr` and what its memory map reserves) and of what hilt
/// loads (kernel_addr_r, ramdisk_addr_r and fdt_addr_r, plus each file's
/// size), or the next boot overwrites the log before Linux reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RamoopsCfg {
    /// Physical address, in hex with 0x, 4 KiB aligned.
    pub address: String,
    /// In hex with 0x: a multiple of 4 KiB holding at least one record.
    pub size: String,
    /// Each dump's share of the region (`ramoops.record_size`), a power of
    /// two: a panic's log goes into one record.
    #[serde(default = "default_ramoops_record")]
    pub record_size: String,
    /// Who keeps the kernel off the region.
    #[serde(default)]
    pub reserve: RamoopsReserve,
}

fn default_ramoops_record() -> String {
    "0x40000".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RamoopsReserve {
    /// hilt adds a `/reserved-memory` node (no-map) with U-Boot's `fdt`
    /// commands to the device tree it boots with (CONFIG_CMD_FDT).
    #[default]
    Uboot,
    /// The device tree the board boots with already reserves the region
    /// (a vendor DT's ramoops node): hilt adds nothing.
    Devicetree,
}

impl RamoopsCfg {
    /// (address, size, record size), once the board file's checks passed.
    pub fn numbers(&self) -> Option<(u64, u64, u64)> {
        let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
        Some((
            hex(&self.address)?,
            hex(&self.size)?,
            hex(&self.record_size)?,
        ))
    }
}

/// Modules the board's own hardware needs in hilt's initramfs: its
/// storage controller and what that controller's probe waits for
/// (regulators, power sequencing). Named as module files are named (the
/// `name:` of `modinfo`), not by device-tree compatible: Debian's kernels
/// list no device-tree aliases for built-in drivers, so a compatible that no
/// module matches could not be told apart from one the kernel lacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitramfsCfg {
    /// Loaded in this order, each after its own dependencies, which come
    /// from the variant's kernel. A name the kernel has built in adds
    /// nothing; one it has neither built in nor as a module is an error.
    pub modules: Vec<String>,
}

/// Where a variant's kernel goes on a board that boots its own Linux.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallCfg {
    /// The boot configuration the board's bootloader reads.
    pub layout: InstallLayout,
    /// The directory on the board holding the kernels and the layout's
    /// configuration (extlinux/extlinux.conf, boot.scr or armbianEnv.txt
    /// under it).
    #[serde(default = "default_boot_dir")]
    pub boot_dir: String,
    /// What the board's root needs before it can be mounted (its storage
    /// controller, or the filesystem's modules): hilt builds each variant
    /// an initrd that loads these, with their dependencies from the
    /// variant's kernel, mounts `root=` and switches to it. Without it the
    /// variant boots with the initrd of the board's own default entry,
    /// which holds the modules of the board's kernel, not the variant's.
    #[serde(default)]
    pub root_modules: Option<Vec<String>>,
    /// Which of the variant's modules go to /lib/modules/<release>, each
    /// with its dependencies; without it, all of them, as the kernel's
    /// package installs them.
    #[serde(default)]
    pub modules: Option<Vec<String>>,
    /// How a variant that does not boot gives the board back its own
    /// kernel after a power cycle. Without it, such a variant leaves the
    /// board booting it until someone restores /boot by hand.
    #[serde(default)]
    pub fallback: Option<InstallFallback>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallFallback {
    /// A boot count in U-Boot's environment. With `layout: extlinux`, U-Boot's
    /// own (CONFIG_BOOTCOUNT_LIMIT): hilt sets `upgrade_available=1`,
    /// `bootlimit=1`, `bootcount=0` and an `altbootcmd` that boots the
    /// board's own extlinux entry (`pxe_label_override`) with fw_setenv on
    /// the board, and resets `bootcount` each time the variant comes up.
    /// With `boot_scr` and `armbian`, hilt's boot script keeps the count
    /// (`hilt_trying`, set with saveenv before the variant boots; hilt clears
    /// it with fw_setenv once the variant is up), so U-Boot needs no
    /// bootcount support, only a saveable environment. Either way a second
    /// power on without that reset boots the board's own kernel.
    Bootcount,
    /// `boot_scr` and `armbian` only: hilt's boot script marks a try with a
    /// file beside the kernel (`hilt-trying`, written with U-Boot's `save`
    /// before the variant's first load) and hilt deletes it once the
    /// variant is up. For a U-Boot whose environment cannot be saved, or a
    /// board without fw_setenv; U-Boot must be able to write the boot
    /// partition's filesystem (CONFIG_FAT_WRITE for FAT, CONFIG_EXT4_WRITE
    /// for ext4).
    BootFile,
}

fn default_boot_dir() -> String {
    "/boot".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallLayout {
    /// U-Boot's distro boot: `<boot_dir>/extlinux/extlinux.conf`.
    Extlinux,
    /// A U-Boot boot script, `<boot_dir>/boot.scr` (from `boot.cmd`), that
    /// loads the kernel and boots it with `booti`: hilt's script is the
    /// board's own with its kernel (and initrd) loads switched to the
    /// variant's files.
    BootScr,
    /// Armbian: its boot.scr loads `<boot_dir>/Image`, `uInitrd` and
    /// `dtb/`, links to the versioned files its kernel packages install,
    /// with settings from `armbianEnv.txt`. hilt installs the variant's
    /// versioned files and repoints the links to them; its boot.scr loads
    /// the known-good ones by their versioned names once the variant fails.
    Armbian,
}

/// What kind of board a board file describes. The board file does not say
/// it in one key; its shape does, and this is the one place that reads it.
/// Everything that differs by kind hangs off this value (see
/// `board::strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardKind {
    /// QEMU is its power, console and disks.
    Emulated,
    /// A board on the bench that U-Boot boots into hilt's ramdisk over
    /// TFTP, the agent sharing its UART.
    UbootTftp,
    /// A board that boots its own Linux or Android, the agent over SSH or adb.
    OwnOs,
    /// An Android device: the variant's kernel in the device's own boot
    /// image and the plan's image flashed from its bootloader's fastboot,
    /// the agent over adb.
    Android,
}

impl BoardKind {
    /// Whether a plan's `instances:` may copy the board: only an emulated
    /// one is made, not attached.
    pub fn can_copy(self) -> bool {
        self == BoardKind::Emulated
    }
}

impl BoardFile {
    /// Whether the board reaches its OS over SSH, by its own `ssh:` or by
    /// its place's `NetworkService` (filled in once the place is acquired).
    pub fn has_ssh(&self) -> bool {
        self.ssh.is_some() || self.labgrid.as_ref().is_some_and(|l| l.ssh.is_some())
    }

    pub fn kind(&self) -> BoardKind {
        if self.qemu.is_some() {
            BoardKind::Emulated
        } else if matches!(self.boot, Some(BenchBootCfg::AndroidFastboot(_))) {
            BoardKind::Android
        } else if matches!(self.agent, AgentChannelCfg::Ssh | AgentChannelCfg::Adb) {
            BoardKind::OwnOs
        } else {
            BoardKind::UbootTftp
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchBootCfg {
    /// Stop U-Boot on the console and boot the variant's kernel and hilt's
    /// initramfs over TFTP, the way LAVA boots a ramdisk.
    UbootTftp(UbootTftpCfg),
    /// Power on into the bootloader's fastboot mode, flash the device's own
    /// boot image with the variant's kernel (and, on the run's first boot,
    /// the plan's image to a scratch partition), and reboot into Android.
    AndroidFastboot(AndroidFastbootCfg),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndroidFastbootCfg {
    /// The command that powers the board on into its bootloader's fastboot
    /// mode instead of booting Android: e.g. a relay that holds the
    /// board's update key while the hub port switches on. It runs without
    /// a shell, like the power commands. Without it, hilt powers the board
    /// on, waits for Android and runs `adb reboot bootloader`.
    #[serde(default)]
    pub bootloader_on: Option<Vec<String>>,
    /// The device's own boot image, on this host (relative paths are the
    /// checkout's). hilt flashes it with only the kernel replaced, so the
    /// device's ramdisk, and with it Android, comes back up. Without it,
    /// hilt reads the boot partition (`partitions:` names its node) over
    /// adb on the run's first boot, and keeps it in the run directory.
    #[serde(default)]
    pub boot_image: Option<String>,
    /// The partition fastboot flashes the boot image to.
    #[serde(default = "default_boot_partition")]
    pub boot_partition: String,
    /// Partitions Android itself uses (system, vendor, userdata, ...) that
    /// this board file nevertheless lets hilt overwrite with the plan's
    /// image; without it, hilt refuses them.
    #[serde(default)]
    pub allow_overwrite: Vec<String>,
    /// Lets hilt run `setenforce 0` on each boot where SELinux is
    /// enforcing; without it, SELinux is left as the device has it and
    /// recorded.
    #[serde(default)]
    pub selinux_permissive: bool,
}

fn default_boot_partition() -> String {
    "boot".into()
}

/// Partitions an Android device needs to boot or keeps its data on: the
/// plan's image never goes there unless the board file says so.
pub const ANDROID_PARTITIONS: &[&str] = &[
    "boot",
    "init_boot",
    "vendor_boot",
    "recovery",
    "dtbo",
    "vbmeta",
    "vbmeta_system",
    "vbmeta_vendor",
    "super",
    "system",
    "system_ext",
    "vendor",
    "vendor_dlkm",
    "odm",
    "product",
    "userdata",
    "metadata",
    "misc",
    "persist",
    "cache",
    "frp",
    "bootloader",
];

/// Whether `name` (or its slot `_a`/`_b` form) is one of Android's own
/// partitions.
pub fn is_android_partition(name: &str) -> bool {
    let base = name
        .strip_suffix("_a")
        .or_else(|| name.strip_suffix("_b"))
        .unwrap_or(name);
    ANDROID_PARTITIONS.contains(&base)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UbootTftpCfg {
    /// The lab TFTP server's root directory, as this host sees it; hilt
    /// puts the boot files in `hilt-<board>/` under it.
    pub root: String,
    /// The server's address as the board sees it; without it, DHCP's.
    #[serde(default)]
    pub serverip: Option<String>,
    /// A static address for the board; without it, U-Boot asks DHCP.
    #[serde(default)]
    pub ipaddr: Option<String>,
    #[serde(default)]
    pub netmask: Option<String>,
    /// A device tree file on this host; without it, U-Boot's own
    /// (`$fdtcontroladdr`), which mainline Amlogic U-Boot shares with Linux.
    #[serde(default)]
    pub dtb: Option<String>,
    /// hilt serves `root` over TFTP itself, while U-Boot fetches, instead
    /// of relying on the lab's server.
    #[serde(default)]
    pub serve: Option<TftpServeCfg>,
}

/// hilt's own TFTP server for a bench board (hilt-tftpd): read-only, only
/// the files under `root`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TftpServeCfg {
    /// The UDP port. U-Boot sends to 69 unless built with CONFIG_TFTP_PORT,
    /// which lets hilt point it elsewhere (`tftpdstp`); binding a port
    /// below 1024 needs root or CAP_NET_BIND_SERVICE.
    #[serde(default = "default_tftp_port")]
    pub port: u16,
    /// The host address to listen on; every address by default.
    #[serde(default = "default_tftp_address")]
    pub address: String,
}

fn default_tftp_port() -> u16 {
    69
}

fn default_tftp_address() -> String {
    "0.0.0.0".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardStorageCfg {
    /// The partition that receives the plan's erofs image with its verity
    /// hash tree appended.
    pub image: String,
    /// The partition a plan's disk swap goes on.
    #[serde(default)]
    pub swap: Option<String>,
    /// The size in bytes of the `image` partition. `verity: avb` needs it:
    /// the AVB footer goes in the partition's last 64 bytes.
    #[serde(default)]
    pub image_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshCfg {
    pub host: String,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    pub user: String,
    /// Private key file; `~` is the user's home.
    pub key: String,
    /// known_hosts file checked for the board's host key (never skipped).
    pub known_hosts: String,
}

fn default_ssh_port() -> u16 {
    22
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdbCfg {
    /// Device serial as adb lists it (USB), or host:port for adb over TCP.
    pub serial: String,
    /// The adb server to use (default 127.0.0.1:5037).
    pub server: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastbootCfg {
    /// USB serial, or `tcp:HOST:PORT`.
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UbootCfg {
    pub prompt: String,
    /// What to send to stop autoboot.
    pub interrupt: String,
    /// The text U-Boot prints while counting down, or several: vendor
    /// builds print their own ("Hit Enter or space or Ctrl+C key to stop
    /// autoboot"), and a board may run either.
    pub autoboot_text: Texts,
    /// Pause between typed characters: a UART without flow control drops
    /// what U-Boot does not read in time (0 for an emulated UART).
    #[serde(default)]
    pub char_delay_ms: u32,
    /// The longest command line U-Boot takes (its CONFIG_SYS_CBSIZE minus
    /// one); longer values are set in pieces.
    #[serde(default = "default_uboot_max_line")]
    pub max_line: u32,
    /// Load addresses hilt sets before fetching, for a U-Boot whose
    /// environment lacks mainline's `kernel_addr_r`, `ramdisk_addr_r` and
    /// `fdt_addr_r` (or where they overlap what hilt loads).
    #[serde(default)]
    pub addresses: Option<UbootAddresses>,
}

/// One string, or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Texts {
    One(String),
    Several(Vec<String>),
}

impl Texts {
    pub fn all(&self) -> Vec<String> {
        match self {
            Texts::One(t) => vec![t.clone()],
            Texts::Several(v) => v.clone(),
        }
    }
}

fn default_uboot_max_line() -> u32 {
    255
}

/// Values for the load-address variables hilt's U-Boot commands use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UbootAddresses {
    #[serde(default)]
    pub kernel_addr_r: Option<String>,
    #[serde(default)]
    pub ramdisk_addr_r: Option<String>,
    #[serde(default)]
    pub fdt_addr_r: Option<String>,
}

impl UbootAddresses {
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            "kernel_addr_r" => self.kernel_addr_r.as_deref(),
            "ramdisk_addr_r" => self.ramdisk_addr_r.as_deref(),
            "fdt_addr_r" => self.fdt_addr_r.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashCfg {
    /// fastboot flash <partition>.
    Fastboot { partition: String },
    /// dd over SSH to a partition, read back and compared by sha256.
    SshDd { partition: String },
    /// dd over adb to a partition, read back and compared by sha256.
    AdbDd { partition: String },
    /// tftpboot into RAM, then mmc write at a block offset.
    UbootMmc { mmc_dev: u32, start_block: u64 },
    /// tftpboot into RAM, then a write to any block device U-Boot knows
    /// (mmc, virtio, usb, scsi) at a block offset (512-byte blocks).
    UbootBlock {
        interface: hilt_transports::uboot::BlockInterface,
        dev: u32,
        start_block: u64,
    },
    /// The emulated board's disks are the images themselves.
    QemuDisks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Arm64,
}

/// `labgrid: {coordinator: HOST:PORT, place: NAME}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabgridCfg {
    /// The coordinator's gRPC address (labgrid's LG_COORDINATOR).
    pub coordinator: String,
    /// The board's place; or, instead, `tags`.
    #[serde(default)]
    pub place: String,
    /// Any place with these tags, through a labgrid reservation: hilt
    /// reserves one, waits for it to be allocated, acquires it and cancels
    /// the reservation at the end.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// The name of the place's resource that is the console (e.g.
    /// `RawSerialPort`, or the `name:` an exporter gave it), when the place
    /// has more than one serial port.
    #[serde(default)]
    pub console: Option<String>,
    /// The name of the place's resource that is the power switch, when it
    /// has more than one.
    #[serde(default)]
    pub power: Option<String>,
    /// SSH to the address, port and user of the place's `NetworkService`,
    /// in place of the board's own `ssh:`.
    #[serde(default)]
    pub ssh: Option<LabgridSshCfg>,
}

/// What hilt needs beside a place's `NetworkService` to log in: labgrid's
/// resource carries neither a key hilt can use (only a password, for
/// labgrid's own sshpass) nor the board's host key, which hilt always checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabgridSshCfg {
    /// Private key file; `~` is the user's home.
    pub key: String,
    /// known_hosts file holding the board's host key, under the address and
    /// port the place publishes.
    pub known_hosts: String,
    /// The `NetworkService`'s name, when the place has more than one.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleCfg {
    /// Not in the board file: the console is the labgrid place's serial
    /// port, filled in when the place is acquired.
    #[default]
    #[serde(skip)]
    FromLabgrid,
    /// QEMU's serial on a telnet chardev (carries BREAK as IAC BRK).
    QemuTelnet,
    /// QEMU's serial on a pty (no BREAK: the kernel never sees one).
    QemuPty,
    /// A local UART, e.g. a USB serial adapter.
    Serial {
        /// Prefer a stable /dev/serial/by-id/ path: it survives re-enumeration.
        device: String,
        /// ser2net notation: "115200n81", optionally ",rtscts".
        #[serde(default = "default_line")]
        line: String,
    },
    /// A UART behind ser2net.
    Ser2net {
        host: String,
        port: u16,
        #[serde(default)]
        protocol: Ser2netProtocol,
    },
}

fn default_line() -> String {
    "115200n81".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ser2netProtocol {
    /// telnet with COM-PORT-OPTION: line settings and BREAK.
    #[default]
    Rfc2217,
    Telnet,
    /// Raw TCP: no BREAK.
    Raw,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerCfg {
    /// Not in the board file: the power is the labgrid place's power port,
    /// filled in when the place is acquired.
    #[default]
    #[serde(skip)]
    FromLabgrid,
    /// A labgrid `NetworkPowerPort` of an HTTP model, as its place
    /// publishes it (only ever filled in from a place).
    #[serde(skip)]
    Http(HttpPowerCfg),
    /// Power on starts the QEMU process, power off kills it.
    Qemu,
    /// Commands run without a shell (uhubctl, a relay CLI, a PDU client).
    Command {
        on: Vec<String>,
        off: Vec<String>,
        #[serde(default)]
        cycle: Option<Vec<String>>,
    },
    /// A 16c0:05df HID relay board.
    UsbRelay {
        #[serde(default)]
        serial: Option<String>,
        relay: u8,
    },
}

/// labgrid's `NetworkPowerPort` with the `simplerest` or `rest` model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpPowerCfg {
    pub model: HttpPowerModel,
    /// A URL with `{index}` and, for simplerest, `{value}` in it.
    pub url: String,
    pub index: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpPowerModel {
    /// GET the URL with {value} 1 or 0; GET it with {value} empty for the state.
    Simplerest,
    /// PUT 1 or 0 to the URL; GET it for the state.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentChannelCfg {
    /// A virtio-serial port, separate from the UART.
    VirtioSerial,
    /// The UART itself, shared with printk: records are framed and
    /// checksummed, so they survive the interleaving.
    Console,
    /// The agent's stdio over SSH.
    Ssh,
    /// The agent's stdio over adb shell.
    Adb,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuCfg {
    #[serde(default = "default_qemu")]
    pub binary: String,
    pub machine: String,
    pub cpu: String,
    pub cpus: u32,
    pub memory_mb: u32,
    /// Kernel command line; the console and the harness's own options are
    /// added to it.
    #[serde(default)]
    pub append: String,
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Keep a ramoops region at the top of RAM, in a RAM file that outlives
    /// the QEMU process, so a crash dump survives the power cycle as it
    /// does on a real board.
    #[serde(default)]
    pub ramoops: bool,
    /// U-Boot built for this machine, for `machine: {boot: uboot_tftp}`.
    #[serde(default = "default_uboot_firmware")]
    pub uboot_firmware: String,
}

fn default_uboot_firmware() -> String {
    "/usr/lib/u-boot/qemu_arm64/u-boot.bin".into()
}

fn default_qemu() -> String {
    "qemu-system-aarch64".into()
}
