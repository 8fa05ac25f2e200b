//! The records exchanged between the board agent (`hilt-agent`) and the host
//! harness (`hilt`). Both sides link this crate, so a record type is defined
//! exactly once.
//!
//! Records travel as framed lines (see [`frame`]) so that they survive a
//! channel shared with printk, dropped bytes, and corruption.

pub mod frame;
pub mod histo;
pub mod messages;
pub mod spec;

pub use frame::{encode_frame, Decoded, FrameDecoder};
pub use histo::LatencyHisto;
pub use messages::*;
pub use spec::*;

/// Bumped whenever a record changes shape; the host refuses an agent that
/// speaks another version instead of misreading it.
pub const PROTOCOL_VERSION: u32 = 8;

/// The name of the virtio-serial port the agent talks on. The host creates
/// the port with this name and the agent looks it up under
/// /sys/class/virtio-ports, so it never depends on device numbering.
pub const AGENT_PORT_NAME: &str = "org.hilt.agent.0";
