//! Boards, in labgrid's layers:
//! - resources ([`resources`]): what the board file declares, opened as the
//!   transports' drivers (power, console, SSH, adb, fastboot), plus the
//!   drivers of this crate's own ([`qemu`], [`remote`], [`uboot`]);
//! - strategies ([`strategy`]): how a kind of board is brought up for one
//!   iteration, through those drivers and never by opening a device itself.
//!
//! The kind of a board is read from its file once (`BoardFile::kind`), and
//! [`strategy::for_kind`] is the one table from kind to strategy. The run
//! loop only sees [`Strategy`], [`Board`], [`Boot`] and the [`Session`]
//! they produce.

pub mod install;
pub mod labgrid;
pub mod mmc_identity;
pub mod preflight;
pub mod qemu;
pub mod remote;
pub mod resources;
pub mod retry;
pub mod storage;
pub mod strategy;
pub mod uboot;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::artifacts::disk::Disk;
use crate::artifacts::{Cache, Media};
use crate::console::Console;
use crate::plan::{BoardFile, Plan, ResolvedPlan};
pub use storage::BoardStorage;

/// Power control of one board; the controllers themselves (commands, USB
/// relays) live in the transports crate, QEMU's process in [`qemu`].
pub use hilt_transports::power::Power;

/// How `hilt run` drives one kind of board.
pub trait Strategy: Sync {
    /// Whether `hilt run` can drive this board with this plan, checked
    /// before anything is leased or built; the error says what to change.
    fn preflight(&self, board: &BoardFile, plan: &Plan) -> anyhow::Result<()>;
    /// Where the plan's storage stack goes on this board: by default, as
    /// on any real board, on the partitions its file names.
    fn storage(
        &self,
        cache: &Cache,
        plan: &ResolvedPlan,
        media: &Media,
        board: &BoardFile,
    ) -> anyhow::Result<BoardStorage> {
        BoardStorage::on_partitions(cache, plan, media, board)
    }
    /// Takes the board into a run, for all of its iterations.
    fn attach(&self, run: RunBoard) -> Box<dyn Board>;
}

/// A board taken into a run: it holds what outlives one boot (a RAM file
/// with ramoops, whether the image was written) and makes each boot.
pub trait Board {
    fn boot(&self, req: &BootRequest<'_>) -> Box<dyn Boot>;
    /// After the run's last boot: the switch of a board that boot left on
    /// (see [`WarmReset`]), to turn it off.
    fn left_on(&self) -> Option<Box<dyn Power>> {
        None
    }
}

/// How one iteration brings its board up.
#[async_trait::async_trait]
pub trait Boot: Send + Sync {
    async fn start(self: Box<Self>, boot_limit: Duration) -> anyhow::Result<Session>;
    /// A second handle on the board's power switch, to turn it off when
    /// the bring-up is abandoned half-way (QEMU dies with its process).
    fn power_switch(&self) -> Option<Box<dyn Power>>;
    /// Whether a panic's log survives the power cycle in ramoops, where the
    /// next boot reads it: then a silent board is crashed on purpose first.
    fn keeps_ramoops(&self) -> bool;
}

/// What a run hands one of its boards.
pub struct RunBoard {
    /// The run's plan, with this board as its board.
    pub plan: ResolvedPlan,
    /// The board's place among the run's boards.
    pub index: usize,
    pub storage: BoardStorage,
    /// The emulated board's disks.
    pub disks: Vec<Disk>,
    /// The static aarch64 agent on this host, for boards that boot their
    /// own OS.
    pub agent: PathBuf,
    /// The run directory, where flash.jsonl and deploy.jsonl go.
    pub run_dir: PathBuf,
}

impl RunBoard {
    pub fn board(&self) -> &BoardFile {
        &self.plan.board
    }

    /// The directory holding `boards/`: relative paths in the board file
    /// (power programs, the TFTP root, a device tree) are relative to it.
    pub fn home(&self) -> PathBuf {
        crate::plan::home_for(&self.plan.path)
    }
}

/// A boot that ended with the board back on its own kernel through its
/// bootloader's fallback: the variant's kernel did not come up. A result
/// about the kernel, not about the lab, so the iteration records it as one.
#[derive(Debug)]
pub struct VariantDidNotBoot(pub String);

impl std::fmt::Display for VariantDidNotBoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VariantDidNotBoot {}

/// A variant's kernel, as prepared for boards.
pub struct KernelFiles {
    pub variant: String,
    pub image: PathBuf,
    pub initramfs: PathBuf,
    pub release: String,
    /// Its modules as a board with `install:` gets them.
    pub modules_archive: Option<PathBuf>,
    /// The initrd hilt built for the board's `install.root_modules`.
    pub root_initrd: Option<PathBuf>,
}

/// One boot: the variant it runs, and where its logs go.
pub struct BootRequest<'a> {
    pub kernel: &'a KernelFiles,
    /// The slot's number in the run, unique among concurrent boots.
    pub slot: usize,
    /// The iteration's directory.
    pub dir: &'a Path,
}

/// The agent's own byte channel (virtio-serial on the emulated board).
pub trait AgentStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AgentStream for T {}

/// Where the agent's frames travel.
pub enum AgentLink {
    /// A channel of its own.
    Own(Box<dyn AgentStream>),
    /// Interleaved with printk on the console: the capture separates the
    /// frame lines from the kernel's and carries the host's frames back.
    Console,
}

/// A powered board with its channels open.
pub struct Session {
    pub power: Box<dyn Power>,
    pub console: Box<dyn Console>,
    pub agent: AgentLink,
    /// Set on a board that resets itself after a panic with its RAM kept
    /// (ramoops on a bench board): instead of cutting its power, the
    /// iteration hands it on to the next boot through this.
    pub warm: Option<WarmReset>,
}

/// A board left powered after its kernel panicked, for its next boot to
/// meet at the bootloader once the kernel's `panic=` delay resets it: a
/// power cut would lose the panic's log in ramoops.
pub struct WarmReset(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl WarmReset {
    pub fn new(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self(flag)
    }

    /// The board stays on; its next boot does not power-cycle it.
    pub fn leave_on(self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
