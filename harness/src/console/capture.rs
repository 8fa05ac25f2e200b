//! Records a console byte-exact, with host timestamps, while watching it
//! for kernel reports: the evidence that survives when the agent is dead.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hilt_kernlog::{Event, StreamParser};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::Console;

/// What the capture tells the iteration loop.
#[derive(Debug)]
pub enum ConsoleNote {
    Activity(Instant),
    /// The board's init says its agent exited, with this status.
    AgentExited(String),
    Kernel(Box<Event>),
    Closed,
}

/// Printed by the initramfs' /init (artifacts/initramfs.rs) when the agent
/// process ends.
pub const AGENT_EXITED: &[u8] = b"hilt-init: agent exited with status";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What the iteration loop asks of the console.
#[derive(Debug)]
pub enum ConsoleCmd {
    Sysrq(u8),
    /// Drop the connection, as a vanished USB adapter or a ser2net restart
    /// would: the `console_close` fault.
    Close,
}

/// `console.log` gets the bytes as received; `console.ts` gets one line per
/// received chunk, `<offset> <unix-ms>`, so any byte can be dated without
/// altering the log itself.
pub struct Recorder {
    log: File,
    ts: File,
    offset: u64,
    line: Vec<u8>,
    parser: StreamParser,
    write_error: Option<String>,
}

impl Recorder {
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            log: File::create(dir.join("console.log"))?,
            ts: File::create(dir.join("console.ts"))?,
            offset: 0,
            line: Vec::with_capacity(512),
            parser: StreamParser::new(),
            write_error: None,
        })
    }

    /// Records a chunk and returns the kernel reports it completed, and
    /// whether init reported the agent's exit.
    pub fn record(&mut self, chunk: &[u8]) -> (Vec<Event>, Option<String>) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        // A full disk must not end the iteration: keep parsing, report once.
        let res = self
            .log
            .write_all(chunk)
            .and_then(|_| writeln!(self.ts, "{} {ms}", self.offset));
        if let Err(e) = res {
            self.write_error.get_or_insert_with(|| e.to_string());
        }
        self.offset += chunk.len() as u64;
        let mut events = Vec::new();
        let mut exited = None;
        for &b in chunk {
            if b == b'\n' {
                // The virtio-serial socket stays open when the guest side
                // closes, so init's word is how the host learns of it.
                if let Some(pos) = find(&self.line, AGENT_EXITED) {
                    exited = Some(
                        String::from_utf8_lossy(&self.line[pos + AGENT_EXITED.len()..])
                            .trim()
                            .to_string(),
                    );
                }
                events.extend(self.parser.push_line(&self.line));
                self.line.clear();
            } else if self.line.len() < 4096 {
                self.line.push(b);
            }
        }
        (events, exited)
    }

    pub fn flush_parser(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            events.extend(self.parser.push_line(&self.line));
            self.line.clear();
        }
        events.extend(self.parser.flush());
        events
    }

    pub fn write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }
}

/// Runs until the console closes or `cmds` is dropped.
pub async fn run(
    mut console: Box<dyn Console>,
    mut rec: Recorder,
    notes: mpsc::UnboundedSender<ConsoleNote>,
    mut cmds: mpsc::UnboundedReceiver<ConsoleCmd>,
) -> Recorder {
    let mut buf = vec![0u8; 8192];
    let idle = std::time::Duration::from_secs(1);
    loop {
        tokio::select! {
            r = console.read(&mut buf) => match r {
                Ok(0) | Err(_) => return closed(rec, &notes),
                Ok(n) => {
                    let _ = notes.send(ConsoleNote::Activity(Instant::now()));
                    let (events, exited) = rec.record(&buf[..n]);
                    for e in events {
                        let _ = notes.send(ConsoleNote::Kernel(Box::new(e)));
                    }
                    if let Some(status) = exited {
                        let _ = notes.send(ConsoleNote::AgentExited(status));
                    }
                }
            },
            cmd = cmds.recv() => match cmd {
                Some(ConsoleCmd::Sysrq(k)) => { let _ = console.sysrq(k).await; }
                Some(ConsoleCmd::Close) => {
                    drop(console);
                    return closed(rec, &notes);
                }
                None => return rec,
            },
            _ = tokio::time::sleep(idle) => {
                // A report's stack ends when the kernel goes quiet, which is
                // exactly what a hung kernel does.
                for e in rec.flush_parser() {
                    let _ = notes.send(ConsoleNote::Kernel(Box::new(e)));
                }
            }
        }
    }
}

/// A report cut off by the close is still a report.
fn closed(mut rec: Recorder, notes: &mpsc::UnboundedSender<ConsoleNote>) -> Recorder {
    for e in rec.flush_parser() {
        let _ = notes.send(ConsoleNote::Kernel(Box::new(e)));
    }
    let _ = notes.send(ConsoleNote::Closed);
    rec
}
