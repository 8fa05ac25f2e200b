//! hilt-kernlog: one parser for Linux kernel logs.
//!
//! It finds kernel reports (hung tasks, lockups, RCU stalls, WARNINGs, oopses,
//! sanitizer reports, panics) and informational events worth recording
//! (allocation failures, OOM kills, sysrq blocked-task dumps, erofs errors) in
//! console captures, saved logs and `/dev/kmsg` records, and names each report
//! the way syzkaller does (`INFO: task hung in <frame>`, `WARNING in <frame>`, ...)
//! so that the same bug gets the same title across runs.
//!
//! Two entry points share one engine:
//! - [`parse`] for a whole log held in memory;
//! - [`StreamParser`] for line-at-a-time input with bounded memory (the board agent).
//!
//! The report formats, skip lists and title rules are data tables in
//! `formats.rs`; the code only interprets them.

mod compile;
mod demangle;
mod extract;
mod formats;
mod prefix;
mod stack;
mod stream;
mod task;
mod title;

use serde::{Deserialize, Serialize};

pub use stream::StreamParser;

/// What kind of kernel event a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    HungTask,
    TaskCantDie,
    SoftLockup,
    HardLockup,
    RcuStall,
    WorkqueueLockup,
    Warning,
    Oops,
    Bug,
    Panic,
    PageAllocFailure,
    VmallocFailure,
    OomInvoked,
    OomKill,
    BlockedStateDump,
    ErofsError,
    Kasan,
    Ubsan,
    Lockdep,
    Kmsan,
    Kcsan,
    Kfence,
    MemoryLeak,
    /// The kernel started booting again without a crash report.
    Reboot,
    Other,
}

impl EventKind {
    /// Whether this kind is a kernel crash/hang report (what syzkaller calls a crash),
    /// as opposed to an informational event such as an OOM kill or an allocation failure.
    pub fn is_crash(self) -> bool {
        !matches!(
            self,
            EventKind::PageAllocFailure
                | EventKind::VmallocFailure
                | EventKind::OomInvoked
                | EventKind::OomKill
                | EventKind::BlockedStateDump
                | EventKind::ErofsError
        )
    }
}

/// The task a report blames: its command name and, where the log gives it, its pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub comm: String,
    pub pid: Option<u32>,
}

/// One kernel report found in a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// Normalised signature, e.g. `INFO: task hung in mmc_blk_rw_wait`.
    pub title: String,
    pub task: Option<Task>,
    /// Function names of the report's first stack trace, innermost first,
    /// without offsets or module names.
    pub frames: Vec<String>,
    /// The report's lines with printk prefixes removed, de-interleaved by caller id.
    pub excerpt: String,
    /// printk timestamp (seconds since boot) of the report's first line.
    pub timestamp: Option<f64>,
    /// printk caller id of the report's first line (`T123` or `C1`).
    pub caller: Option<String>,
    /// The report looks truncated or intermixed with other output.
    pub corrupted: bool,
}

impl Event {
    pub fn is_crash(&self) -> bool {
        self.kind.is_crash()
    }
}

/// The log's lines, without their '\n'.
fn lines(log: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(log);
    std::iter::from_fn(move || {
        let text = rest?;
        match find_newline(text) {
            Some(n) => {
                rest = Some(&text[n + 1..]);
                Some(&text[..n])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// Kernel log lines are short: a word-at-a-time scan of the first bytes finds the
/// newline sooner than setting up a vector search, which takes over for long lines.
fn find_newline(text: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let mut at = 0;
    while at + 8 <= text.len().min(256) {
        let word = u64::from_le_bytes(text[at..at + 8].try_into().expect("8 bytes"));
        let x = word ^ NEWLINES;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr(b'\n', &text[at..]).map(|n| at + n)
}

/// Parses a whole log and returns its events in the order their first lines appear.
pub fn parse(log: &[u8]) -> Vec<Event> {
    let mut parser = StreamParser::new();
    let mut out = Vec::new();
    for line in lines(log) {
        parser.push_split_line_seq(line, &mut out);
    }
    parser.flush_seq(&mut out);
    // Reports close in the order they end; readers expect the order they start.
    out.sort_by_key(|(seq, _)| *seq);
    out.into_iter().map(|(_, ev)| ev).collect()
}

/// Whether the log contains a kernel crash report (informational events do not count).
///
/// Agrees with [`parse`]: it is true exactly when `parse` returns an event whose
/// [`EventKind::is_crash`] is true.
pub fn contains_crash(log: &[u8]) -> bool {
    lines(log).any(|line| {
        let line = prefix::split(line);
        !line.kmsg_dict && compile::detect_header(line.text).is_some_and(|hit| hit.crash)
    })
}
