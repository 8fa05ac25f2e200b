//! Boards: what is attached (the board file), how to drive it (power,
//! console, agent channel), and how to bring it up (boot).
//!
//! The emulated board is one implementation among others: the iteration
//! loop only sees [`Session`], whichever [`Bringup`] produced it.

pub mod bench;
pub mod deploy;
pub mod doctor;
pub mod flash;
pub mod os;
pub mod qemu;
pub mod remote;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::console::Console;

/// Power control of one board; the controllers themselves (commands, USB
/// relays) live in the transports crate, QEMU's process in [`qemu`].
pub use hilt_transports::power::Power;

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
}

/// How one iteration brings its board up, by the kind of board.
pub enum Bringup {
    Qemu(Box<qemu::Launch>),
    Bench(Box<bench::Bringup>),
    Os(Box<os::Bringup>),
}

impl Bringup {
    pub async fn start(self, boot_limit: Duration) -> anyhow::Result<Session> {
        match self {
            Bringup::Qemu(launch) => qemu::start(*launch, boot_limit).await,
            Bringup::Bench(b) => b.start(boot_limit).await,
            Bringup::Os(b) => b.start(boot_limit).await,
        }
    }

    /// A second handle on the board's power switch, to turn it off when
    /// the bring-up is abandoned half-way (QEMU dies with its process).
    pub fn switch(&self) -> Option<Box<dyn Power>> {
        match self {
            Bringup::Qemu(_) => None,
            Bringup::Bench(b) => bench::open_power(&b.board, &b.home).ok(),
            Bringup::Os(b) => bench::open_power(&b.board, &b.home).ok(),
        }
    }

    /// Whether a panic's log survives the power cycle in ramoops, where the
    /// next boot reads it: then a silent board is crashed on purpose first.
    pub fn keeps_ramoops(&self) -> bool {
        match self {
            Bringup::Qemu(l) => l.ram_file.is_some(),
            Bringup::Bench(b) => b.ramoops,
            // Its kernel is its own: hilt does not know where its ramoops is.
            Bringup::Os(_) => false,
        }
    }
}
