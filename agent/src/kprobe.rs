//! Latency of erofs' decompression path inside the kernel, from kprobe and
//! kretprobe pairs on whichever candidate functions this kernel has.
//!
//! The events are read from tracefs' trace_pipe by one thread; durations
//! go into the same lock-free bucket counters the readers use, plus a count
//! of calls made from kworkers (decompression deferred to a worker) versus
//! any other context (done directly, e.g. in a bio completion: the path the
//! NOIO fix is about).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use hilt_protocol::histo::buckets;
use hilt_protocol::{FuncLatency, LatencyHisto};

use crate::sys;

/// Outermost first: the host takes the first one probed as the path's
/// latency. A compiler may inline any static one of them (a source-built
/// kernel's did), so the list runs down to the decompressors, which are
/// called through a table and cannot be inlined.
pub const CANDIDATES: &[&str] = &[
    "z_erofs_decompress_queue",
    "z_erofs_decompressqueue_work",
    "z_erofs_decompress_pcluster",
    "z_erofs_decompress",
    "z_erofs_lz4_decompress",
];
const TRACING: &str = "/sys/kernel/tracing";
const GROUP: &str = "hilt";

pub struct Func {
    pub name: String,
    pub hist: Vec<AtomicU64>,
    pub in_worker: AtomicU64,
    pub elsewhere: AtomicU64,
    prev: std::sync::Mutex<Vec<u64>>,
}

impl Func {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            hist: (0..buckets::COUNT).map(|_| AtomicU64::new(0)).collect(),
            in_worker: AtomicU64::new(0),
            elsewhere: AtomicU64::new(0),
            prev: std::sync::Mutex::new(vec![0; buckets::COUNT]),
        }
    }

    /// The buckets filled since the previous call.
    pub fn delta(&self) -> FuncLatency {
        let mut prev = self.prev.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (i, (c, p)) in self.hist.iter().zip(prev.iter_mut()).enumerate() {
            let now = c.load(Relaxed);
            if now > *p {
                out.push([buckets::value(i), now - *p]);
            }
            *p = now;
        }
        FuncLatency {
            func: self.name.clone(),
            latency_us: LatencyHisto { buckets: out },
            calls_in_worker: self.in_worker.load(Relaxed),
            calls_elsewhere: self.elsewhere.load(Relaxed),
        }
    }
}

fn event_name(i: usize, ret: bool) -> String {
    format!("f{i}_{}", if ret { "out" } else { "in" })
}

/// Adds one probe definition (kprobe_events takes a line per write).
fn add_probe(line: &str) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(format!("{TRACING}/kprobe_events"))
        .and_then(|mut f| io::Write::write_all(&mut f, line.as_bytes()))
        .map_err(|e| io::Error::new(e.kind(), format!("kprobe_events <- {line:?}: {e}")))
}

/// The kernel's answer to a probe on a function it does not have (or cannot
/// probe). By kind, not errno: `add_probe` rewraps the error with the line it
/// wrote, which keeps the kind and drops the raw errno (the check by errno
/// never matched, and one absent function cost every probe).
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
    )
}

/// Installs the probes on whichever candidates this kernel has (erofs must be
/// loaded) and starts the reader thread.
///
/// Asking kprobe_events is the presence test: scanning /proc/kallsyms instead
/// (tens of thousands of lines) cost the agent two seconds of emulated CPU per run.
pub fn start() -> io::Result<(Vec<Arc<Func>>, String)> {
    if !std::path::Path::new(&format!("{TRACING}/kprobe_events")).exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no {TRACING}/kprobe_events: tracefs is not mounted there, or the kernel lacks CONFIG_KPROBE_EVENTS"),
        ));
    }
    stop();
    let mut funcs: Vec<&str> = Vec::new();
    for f in CANDIDATES {
        let i = funcs.len();
        match add_probe(&format!("p:{GROUP}/{} {f}", event_name(i, false))) {
            Ok(()) => {}
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e),
        }
        add_probe(&format!("r:{GROUP}/{} {f}", event_name(i, true)))?;
        funcs.push(f);
    }
    if funcs.is_empty() {
        // An error, so that the host records why the figure is missing.
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no erofs decompression function to probe: kprobe_events refused {}",
                CANDIDATES.join(", ")
            ),
        ));
    }
    sys::write_attr(format!("{TRACING}/buffer_size_kb"), "1024")?;
    sys::write_attr(format!("{TRACING}/events/{GROUP}/enable"), "1")?;
    sys::write_attr(format!("{TRACING}/tracing_on"), "1")?;
    let out: Vec<Arc<Func>> = funcs.iter().map(|f| Arc::new(Func::new(f))).collect();
    let reader = out.clone();
    std::thread::Builder::new()
        .name("kprobe".into())
        .stack_size(crate::sys::THREAD_STACK)
        .spawn(move || read_pipe(&reader))?;
    Ok((out, format!("kprobes on {}", funcs.join(", "))))
}

pub fn stop() {
    let _ = sys::write_attr(format!("{TRACING}/events/{GROUP}/enable"), "0");
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(format!("{TRACING}/kprobe_events"));
}

fn read_pipe(funcs: &[Arc<Func>]) {
    let Ok(f) = File::open(format!("{TRACING}/trace_pipe")) else {
        return;
    };
    let mut open: Vec<(u32, usize, f64)> = Vec::with_capacity(64);
    let mut line = String::with_capacity(256);
    let mut r = BufReader::new(f);
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Some(ev) = parse_line(&line) else {
            continue;
        };
        let Some(func) = funcs.get(ev.func) else {
            continue;
        };
        if !ev.ret {
            open.push((ev.pid, ev.func, ev.ts));
            if open.len() > 4096 {
                open.drain(..2048); // entries whose returns were lost
            }
            continue;
        }
        if let Some(i) = open
            .iter()
            .rposition(|&(p, f, _)| p == ev.pid && f == ev.func)
        {
            let (_, _, t0) = open.swap_remove(i);
            let us = ((ev.ts - t0) * 1e6).max(0.0) as u64;
            func.hist[buckets::index(us)].fetch_add(1, Relaxed);
            if ev.comm.starts_with("kworker") {
                func.in_worker.fetch_add(1, Relaxed);
            } else {
                func.elsewhere.fetch_add(1, Relaxed);
            }
        }
    }
}

#[derive(Debug, PartialEq)]
struct Ev<'a> {
    comm: &'a str,
    pid: u32,
    ts: f64,
    func: usize,
    ret: bool,
}

/// `  kworker/u4:1-45   [001] d..1.  123.456789: f0_in: (z_erofs...+0x0/0x4a0 [erofs])`
fn parse_line(line: &str) -> Option<Ev<'_>> {
    let (head, rest) = line.split_once("]")?;
    let task = head.rsplit_once('[')?.0.trim_end();
    let (comm, pid) = task.rsplit_once('-')?;
    let mut fields = rest.split_whitespace();
    let _flags = fields.next()?;
    let ts: f64 = fields.next()?.trim_end_matches(':').parse().ok()?;
    let name = fields.next()?.trim_end_matches(':');
    let (f, kind) = name.strip_prefix('f')?.split_once('_')?;
    Some(Ev {
        comm: comm.trim(),
        pid: pid.parse().ok()?,
        ts,
        func: f.parse().ok()?,
        ret: kind == "out",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_probe_is_absent_after_add_probes_rewrap() {
        for errno in [libc::ENOENT, libc::EINVAL, libc::EOPNOTSUPP] {
            let e = io::Error::from_raw_os_error(errno);
            let wrapped = io::Error::new(e.kind(), format!("kprobe_events <- \"p:x\": {e}"));
            assert!(is_absent(&wrapped), "errno {errno}: {wrapped}");
        }
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        assert!(!is_absent(&io::Error::new(denied.kind(), "x")));
    }

    #[test]
    fn parses_trace_pipe_lines() {
        let l = "  kworker/u4:1-45      [001] d..1.   123.456789: f0_in: (z_erofs_decompress_queue+0x0/0x4a0 [erofs])\n";
        assert_eq!(
            parse_line(l),
            Some(Ev {
                comm: "kworker/u4:1",
                pid: 45,
                ts: 123.456789,
                func: 0,
                ret: false
            })
        );
        let l = " hilt-agent-130 [000] ..... 123.5: f2_out: (z_erofs_decompress_queue+0x44/0x4a0 [erofs] <- z_erofs_decompress_pcluster)";
        assert_eq!(
            parse_line(l),
            Some(Ev {
                comm: "hilt-agent",
                pid: 130,
                ts: 123.5,
                func: 2,
                ret: true
            })
        );
        assert_eq!(parse_line("# tracer: nop"), None);
    }
}
