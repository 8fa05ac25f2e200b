//! Boards: what is attached (the board file), how to drive it (power,
//! console, agent channel), and how to bring it up (boot).
//!
//! The emulated board is one implementation among others: the iteration
//! loop only sees the traits below.

pub mod deploy;
pub mod doctor;
pub mod flash;
pub mod qemu;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::console::Console;

/// Power control of one board.
#[async_trait::async_trait]
pub trait Power: Send {
    async fn on(&mut self) -> anyhow::Result<()>;
    /// Must be safe to call at any time, any number of times.
    async fn off(&mut self) -> anyhow::Result<()>;
    /// Why the board lost power by itself (for QEMU: the process exited).
    fn lost(&mut self) -> Option<String>;
    /// Cuts power abruptly, as a failing supply would, without the
    /// bookkeeping of `off` (fault injection).
    fn cut(&mut self) {}
}

/// The agent's own byte channel (virtio-serial on the emulated board).
pub trait AgentStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AgentStream for T {}

/// A powered board with its channels open.
pub struct Session {
    pub power: Box<dyn Power>,
    pub console: Box<dyn Console>,
    pub agent: Box<dyn AgentStream>,
}
