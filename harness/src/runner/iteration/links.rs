//! The host's side of a powered board: its power switch, the requests the
//! host sends, and the tasks that read the console and the agent channel.

use hilt_protocol::{encode_frame, AgentMsg, Decoded, FrameDecoder, HostMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::board::{AgentLink, AgentStream, Power, Session, WarmReset};
use crate::console::capture::{self, ConsoleCmd, ConsoleNote, Recorder};

pub(super) enum AgentNote {
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
pub(super) struct ChannelDamage {
    pub(super) lost_frames: u64,
    pub(super) corrupt_lines: u64,
    pub(super) noise_bytes: usize,
}

impl ChannelDamage {
    pub(super) fn describe(&self) -> Option<String> {
        (self.lost_frames + self.corrupt_lines > 0 || self.noise_bytes > 0).then(|| {
            format!(
                "agent channel damaged: {} frames lost, {} corrupt lines, {} bytes of noise",
                self.lost_frames, self.corrupt_lines, self.noise_bytes
            )
        })
    }
}

/// What the board says, as the loop receives it.
pub(super) struct Inbox {
    pub(super) agent: mpsc::UnboundedReceiver<AgentNote>,
    pub(super) console: mpsc::UnboundedReceiver<ConsoleNote>,
}

pub(super) struct Links {
    pub(super) power: Box<dyn Power>,
    /// The board's way to its next boot without a power cut, if it has one.
    pub(super) warm: Option<WarmReset>,
    agent: WriteHalf<Box<dyn AgentStream>>,
    /// The sequence number of the next frame to the agent.
    host_seq: u64,
    console: mpsc::UnboundedSender<ConsoleCmd>,
    console_task: JoinHandle<Recorder>,
    agent_task: JoinHandle<()>,
}

/// Starts reading the board's console (into `recorder`) and its agent
/// channel.
pub(super) fn connect(session: Session, recorder: Recorder) -> (Links, Inbox) {
    let (note_tx, console_notes) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let Session {
        power,
        console,
        agent,
        warm,
    } = session;
    let (agent, tap): (Box<dyn AgentStream>, _) = match agent {
        AgentLink::Own(s) => (s, None),
        AgentLink::Console => {
            let (ours, capture_end) = tokio::io::duplex(1 << 20);
            (Box::new(ours), Some(capture_end))
        }
    };
    let console_task = tokio::spawn(capture::run(console, recorder, note_tx, cmd_rx, tap));
    let (agent_rd, agent_wr) = tokio::io::split(agent);
    let (agent_tx, agent_notes) = mpsc::unbounded_channel();
    let agent_task = tokio::spawn(read_agent(agent_rd, agent_tx));
    let links = Links {
        power,
        warm,
        agent: agent_wr,
        host_seq: 0,
        console: cmd_tx,
        console_task,
        agent_task,
    };
    let inbox = Inbox {
        agent: agent_notes,
        console: console_notes,
    };
    (links, inbox)
}

async fn read_agent(
    mut agent_rd: ReadHalf<Box<dyn AgentStream>>,
    agent_tx: mpsc::UnboundedSender<AgentNote>,
) {
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
}

impl Links {
    pub(super) async fn tell_agent(&mut self, msg: &HostMsg) -> std::io::Result<()> {
        let mut frame = Vec::new();
        encode_frame(self.host_seq, msg, &mut frame);
        self.host_seq += 1;
        self.agent.write_all(&frame).await
    }

    pub(super) fn tell_console(&self, cmd: ConsoleCmd) {
        let _ = self.console.send(cmd);
    }

    /// Powers the board off and stops reading it; the console's recorder
    /// comes back unless its task is stuck.
    pub(super) async fn power_off(mut self) -> Option<Recorder> {
        let _ = self.power.off().await;
        self.stop_reading().await
    }

    /// Stops reading a board that stays powered for its next boot (a warm
    /// reset after a panic), and hands it on.
    pub(super) async fn leave_on(mut self) -> Option<Recorder> {
        if let Some(w) = self.warm.take() {
            w.leave_on();
        }
        self.stop_reading().await
    }

    async fn stop_reading(self) -> Option<Recorder> {
        drop(self.console);
        self.agent_task.abort();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(5), self.console_task);
        waited.await.ok()?.ok()
    }
}

/// Which way a request for a sysrq dump goes.
#[derive(Clone, Copy)]
pub(super) enum Via {
    Agent,
    /// Straight to the UART, for when the agent cannot carry it out.
    Console,
}
