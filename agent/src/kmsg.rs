//! Streams /dev/kmsg to the host and recognises kernel reports on the board
//! with the same parser the host uses on console logs.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;

use hilt_kernlog::StreamParser;
use hilt_protocol::{AgentMsg, KmsgRecord};

use crate::channel::Sender;
use crate::sys;

/// Parses one /dev/kmsg record: `pri,seq,usec,flags;text\n[ KEY=value\n]...`.
pub fn parse_record(rec: &[u8]) -> Option<KmsgRecord> {
    let semi = rec.iter().position(|&b| b == b';')?;
    let head = std::str::from_utf8(&rec[..semi]).ok()?;
    let mut f = head.split(',');
    let pri: u32 = f.next()?.parse().ok()?;
    let seq: u64 = f.next()?.parse().ok()?;
    let ts_us: u64 = f.next()?.parse().ok()?;
    let body = &rec[semi + 1..];
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    Some(KmsgRecord {
        seq,
        ts_us,
        level: (pri & 7) as u8,
        text: unescape(&body[..end]),
    })
}

/// /dev/kmsg escapes non-printable bytes as \xNN; undo that so the parser
/// sees what the console would have shown.
fn unescape(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b.get(i + 1) == Some(&b'x') {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn run(tx: Sender, watched: &crate::watch::Shared) -> io::Result<()> {
    let mut f = File::open("/dev/kmsg")?;
    let mut parser = StreamParser::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut line = Vec::with_capacity(1024);
    loop {
        // Wait at most 1 s so a report's last stack gets flushed even if
        // the kernel then goes quiet (as it does when it hangs).
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ready = unsafe { libc::poll(&mut pfd, 1, 1000) };
        crate::selfwatch::KMSG.beat();
        if ready == 0 {
            for event in parser.flush() {
                note_hung(watched, &event);
                tx.send(&AgentMsg::Kernel {
                    uptime_ms: sys::uptime_ms(),
                    event: Box::new(event),
                });
            }
            continue;
        }
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            // EPIPE: records were overwritten before we read them; carry on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let Some(rec) = parse_record(&buf[..n]) else {
            continue;
        };
        line.clear();
        line.extend_from_slice(
            format!(
                "[{:5}.{:06}] ",
                rec.ts_us / 1_000_000,
                rec.ts_us % 1_000_000
            )
            .as_bytes(),
        );
        line.extend_from_slice(rec.text.as_bytes());
        for event in parser.push_line(&line) {
            note_hung(watched, &event);
            tx.send(&AgentMsg::Kernel {
                uptime_ms: sys::uptime_ms(),
                event: Box::new(event),
            });
        }
        tx.send(&AgentMsg::Kmsg(rec));
    }
}

/// Lets the D-state watcher confirm a suspect by the kernel's own report.
fn note_hung(watched: &crate::watch::Shared, e: &hilt_kernlog::Event) {
    if e.kind == hilt_kernlog::EventKind::HungTask {
        if let (Some(pid), Ok(mut v)) = (
            e.task.as_ref().and_then(|t| t.pid),
            watched.kernel_hung_pids.lock(),
        ) {
            v.push(pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kmsg_record() {
        let r =
            parse_record(b"3,1234,5678901,-;INFO: task a\\x3ab:1 blocked\n SUBSYSTEM=x\n").unwrap();
        assert_eq!((r.level, r.seq, r.ts_us), (3, 1234, 5678901));
        assert_eq!(r.text, "INFO: task a:b:1 blocked");
    }
}
