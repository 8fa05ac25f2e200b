//! Power control of a board: external commands (uhubctl, a relay or PDU
//! CLI) or a USB HID relay board.

pub mod command;
pub mod usbrelay;

pub use command::{CommandPower, CommandPowerConfig};
pub use usbrelay::UsbRelay;

/// Power control of one board (the harness's trait, defined here for the
/// transports that implement it).
#[async_trait::async_trait]
pub trait Power: Send {
    async fn on(&mut self) -> anyhow::Result<()>;
    /// Must be safe to call at any time, any number of times.
    async fn off(&mut self) -> anyhow::Result<()>;
    /// Why the board lost power by itself, if the controller can tell.
    fn lost(&mut self) -> Option<String>;
    /// Cuts power abruptly, as a failing supply would, without the
    /// bookkeeping of `off` (fault injection).
    fn cut(&mut self) {}
}
