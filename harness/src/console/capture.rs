//! Records a console byte-exact, with host timestamps, while watching it
//! for kernel reports: the evidence that survives when the agent is dead.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hilt_kernlog::{Event, StreamParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{find, Console};

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

/// Separates the agent's frames from the kernel's output on a console they
/// share. A frame starts at its magic (`@H<version>`) and ends at its
/// newline; everything else is console text. Only the two bytes of a
/// possible magic are ever held back from the console.
///
/// The kernel writes to the UART directly, past the tty the agent writes
/// to, so a report can land inside a frame. The agent's frames never hold
/// a `\r` (raw tty, JSON escapes it) and the kernel ends its lines with
/// `\r\n`: a frame cut by a `\r` was torn, and from the printk timestamp
/// inside it on, its bytes are the kernel's. The decoder still sees the
/// torn frame, and counts it as damage.
#[derive(Default)]
pub struct FrameTap {
    in_frame: bool,
    held: Vec<u8>,
    frame: Vec<u8>,
}

impl FrameTap {
    pub fn split(&mut self, chunk: &[u8], console: &mut Vec<u8>, frames: &mut Vec<u8>) {
        for &b in chunk {
            if self.in_frame {
                match b {
                    b'\n' => {
                        self.frame.push(b);
                        frames.append(&mut self.frame);
                        self.in_frame = false;
                    }
                    b'\r' => {
                        let at = printk_start(&self.frame).unwrap_or(self.frame.len());
                        console.extend_from_slice(&self.frame[at..]);
                        console.push(b);
                        self.frame.truncate(at);
                        self.frame.push(b'\n');
                        frames.append(&mut self.frame);
                        self.in_frame = false;
                    }
                    // A frame is one line; a longer one is noise, which the
                    // decoder drops past its own limit.
                    _ if self.frame.len() > hilt_protocol::frame::MAX_LINE => {
                        frames.append(&mut self.frame);
                        frames.push(b);
                    }
                    _ => self.frame.push(b),
                }
                continue;
            }
            self.held.push(b);
            match self.held.as_slice() {
                [b'@'] | [b'@', b'H'] => {}
                [b'@', b'H', d] if d.is_ascii_digit() => {
                    self.frame.append(&mut self.held);
                    self.in_frame = true;
                }
                [.., last] => {
                    let keep = *last == b'@';
                    let n = self.held.len() - keep as usize;
                    console.extend(self.held.drain(..n));
                }
                [] => {}
            }
        }
    }
}

/// Where a printk line starts inside `line`: its `[ seconds.micros]`
/// timestamp. JSON cannot hold one unquoted, and a quoted one would need a
/// `"` the kernel's bytes do not bring.
fn printk_start(line: &[u8]) -> Option<usize> {
    (1..line.len()).find(|&i| {
        let rest = &line[i..];
        if rest.first() != Some(&b'[') {
            return false;
        }
        let end = match rest.iter().position(|&c| c == b']') {
            Some(e) if e <= 16 => e,
            _ => return false,
        };
        let inner = &rest[1..end];
        let t = inner.iter().skip_while(|&&c| c == b' ');
        let digits_dot = t.clone().all(|&c| c.is_ascii_digit() || c == b'.');
        digits_dot && inner.contains(&b'.') && inner.iter().any(u8::is_ascii_digit)
    })
}

/// Runs until the console closes or `cmds` is dropped. With a `tap`, the
/// console is shared with the agent: its frames go to the tap instead of
/// the log, and what the host writes to the tap is typed on the console.
pub async fn run(
    mut console: Box<dyn Console>,
    mut rec: Recorder,
    notes: mpsc::UnboundedSender<ConsoleNote>,
    mut cmds: mpsc::UnboundedReceiver<ConsoleCmd>,
    tap: Option<tokio::io::DuplexStream>,
) -> Recorder {
    let mut buf = vec![0u8; 8192];
    let mut host_bytes = vec![0u8; 8192];
    let (mut tap_rd, mut tap_wr) = match tap {
        Some(t) => {
            let (r, w) = tokio::io::split(t);
            (Some(r), Some(w))
        }
        None => (None, None),
    };
    let mut splitter = FrameTap::default();
    let (mut text, mut frames) = (Vec::new(), Vec::new());
    let idle = std::time::Duration::from_secs(1);
    loop {
        let from_host = async {
            match tap_rd.as_mut() {
                Some(r) => r.read(&mut host_bytes).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = from_host => match r {
                Ok(n) if n > 0 => {
                    if console.write_all(&host_bytes[..n]).await.is_err() {
                        return closed(rec, &notes);
                    }
                    let _ = console.flush().await;
                }
                // The iteration is done with the agent.
                _ => tap_rd = None,
            },
            r = console.read(&mut buf) => match r {
                Ok(0) | Err(_) => return closed(rec, &notes),
                Ok(n) => {
                    let _ = notes.send(ConsoleNote::Activity(Instant::now()));
                    let chunk = match tap_wr.as_mut() {
                        Some(w) => {
                            text.clear();
                            frames.clear();
                            splitter.split(&buf[..n], &mut text, &mut frames);
                            if !frames.is_empty() && w.write_all(&frames).await.is_err() {
                                tap_wr = None;
                            }
                            &text[..]
                        }
                        None => &buf[..n],
                    };
                    let (events, exited) = rec.record(chunk);
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

#[cfg(test)]
mod tests {
    use super::FrameTap;

    fn split_in_pieces(input: &[u8], piece: usize) -> (Vec<u8>, Vec<u8>) {
        let mut tap = FrameTap::default();
        let (mut text, mut frames) = (Vec::new(), Vec::new());
        for c in input.chunks(piece) {
            tap.split(c, &mut text, &mut frames);
        }
        (text, frames)
    }

    #[test]
    fn frames_leave_the_console_text_intact_at_any_chunking() {
        let mut frame = Vec::new();
        hilt_protocol::encode_frame(7, &serde_json::json!({"heartbeat": 1}), &mut frame);
        let mut input = b"[   1.0] erofs: mounted\r\nmail@Host and @H: not frames\r\n".to_vec();
        input.extend_from_slice(&frame);
        input.extend_from_slice(b"[   2.0] INFO: task kworker blocked\r\n@");
        input.extend_from_slice(&frame);
        for piece in [1, 2, 3, 7, 4096] {
            let (text, frames) = split_in_pieces(&input, piece);
            assert_eq!(
                String::from_utf8_lossy(&text),
                "[   1.0] erofs: mounted\r\nmail@Host and @H: not frames\r\n[   2.0] INFO: task kworker blocked\r\n@",
                "chunks of {piece}"
            );
            assert_eq!(
                frames,
                [frame.clone(), frame.clone()].concat(),
                "chunks of {piece}"
            );
        }
    }

    /// A kernel report that lands inside a frame (a panic stops the agent
    /// mid-write) stays the console's: the parser must still see it.
    #[test]
    fn a_report_inside_a_torn_frame_stays_on_the_console() {
        let mut frame = Vec::new();
        hilt_protocol::encode_frame(9, &serde_json::json!({"heartbeat": [1, 2.5]}), &mut frame);
        let half = frame.len() / 2;
        let report = "[   12.345678] Kernel panic - not syncing: hung_task: blocked tasks\r\n";
        let mut input = frame[..half].to_vec();
        input.extend_from_slice(report.as_bytes());
        input.extend_from_slice(&frame);
        for piece in [1, 5, 4096] {
            let (text, frames) = split_in_pieces(&input, piece);
            assert_eq!(String::from_utf8_lossy(&text), report, "chunks of {piece}");
            let mut want = frame[..half].to_vec();
            want.push(b'\n');
            want.extend_from_slice(&frame);
            assert_eq!(frames, want, "chunks of {piece}");
            let mut dec = hilt_protocol::FrameDecoder::new();
            let mut out = Vec::new();
            dec.feed::<serde_json::Value>(&frames, &mut out);
            assert_eq!(out.len(), 2, "the torn frame reported, the next one read");
            assert!(matches!(out[1], hilt_protocol::Decoded::Record { .. }));
        }
    }
}
