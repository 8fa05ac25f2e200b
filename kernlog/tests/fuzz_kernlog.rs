//! Property tests of the kernel-log parser, which reads whatever a board's
//! console and /dev/kmsg carry: printk with every prefix style, reports cut
//! short or interleaved, line noise, and bytes that are not UTF-8.
//!
//! For any input: no panic; titles stay within their cap; no event is made
//! of more text than came in; `contains_crash` agrees with `parse`; and the
//! streaming parser finds the same events as `parse`, however the lines are
//! grouped into chunks.
//!
//! 256 cases per property unless PROPTEST_CASES is set (docs/fuzzing.md).

use hilt_kernlog::{contains_crash, parse, Event, StreamParser};
use proptest::collection::vec;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = None;
    c
}

/// Report headers and the lines that follow them, from the formats the
/// parser knows, so that random logs open, fill and end reports.
const BODIES: &[&str] = &[
    "INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
    "      Not tainted 6.1.0-44-arm64 #1 Debian 6.1.164-1",
    "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.",
    "task:kworker/0:1 state:D stack:0 pid:12 ppid:2 flags:0x00000008",
    "Call trace:",
    " __switch_to+0xf0/0x170",
    " __schedule+0x2d4/0x8f0",
    " my_driver_wait+0x8c/0x140 [my_driver]",
    " ? erofs_read_folio+0x10/0x20 (unreliable)",
    "------------[ cut here ]------------",
    "WARNING: CPU: 1 PID: 77 at fs/erofs/zdata.c:123 z_erofs_decompress+0x44/0x90",
    "---[ end trace 0000000000000000 ]---",
    "Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008",
    "Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP",
    "Kernel panic - not syncing: Fatal exception",
    "BUG: KASAN: use-after-free in erofs_read+0x1c/0x30",
    "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [reader:99]",
    "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    "hilt invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
    "Out of memory: Killed process 123 (hog) total-vm:1000kB",
    "======================================================",
    "WARNING: possible circular locking dependency detected",
    "UBSAN: shift-out-of-bounds in lib/foo.c:12:3",
    "pc : erofs_bread+0x4/0x8",
    "Modules linked in: erofs(E) dm_verity",
    "",
];

const PREFIXES: &[&str] = &[
    "",
    "[  123.456789] ",
    "[    0.000000][    T1] ",
    "[ 5.0] ",
    "<4>[   12.5] ",
    "[ 99.000001][    C0] ",
    "6,1234,5678901,-;",
    "4,1,2,c;",
    "[1234567890123456789012.999999999999] ",
    "[ T12] ",
];

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (proptest::sample::select(PREFIXES), proptest::sample::select(BODIES))
            .prop_map(|(p, b)| format!("{p}{b}").into_bytes()),
        2 => vec(any::<u8>(), 0..60),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => (proptest::sample::select(BODIES), 0..200usize).prop_map(|(b, n)| {
            // A line cut anywhere, even inside a character.
            let mut v = b.as_bytes().to_vec();
            v.truncate(n);
            v
        }),
        1 => (1..6000usize).prop_map(|n| vec![b'x'; n]),
    ]
}

fn log() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(line(), 0..60).prop_map(|lines| {
        // No '\n' inside a line: lines are what the log is split into.
        lines
            .into_iter()
            .map(|l| l.into_iter().filter(|&b| b != b'\n').collect())
            .collect()
    })
}

/// Events in a canonical order, so that two parsers' outputs can be
/// compared as sets.
fn canonical(events: &[Event]) -> Vec<String> {
    let mut v: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_log_parses_within_bounds(lines in log(), crlf in any::<bool>()) {
        let end: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let text = lines.join(end);
        let events = parse(&text);
        prop_assert!(events.len() <= lines.len(), "{} events from {} lines", events.len(), lines.len());
        for e in &events {
            prop_assert!(e.title.len() <= 120 * 4, "title of {} bytes", e.title.len());
            // Bytes that are not UTF-8 come out as U+FFFD, three bytes each.
            prop_assert!(e.excerpt.len() <= 3 * text.len() + lines.len(), "excerpt of {} bytes from {}", e.excerpt.len(), text.len());
            prop_assert!(e.frames.len() <= lines.len());
            if let Some(t) = e.timestamp {
                prop_assert!(t.is_finite() && t >= 0.0, "timestamp {}", t);
            }
        }
        prop_assert_eq!(
            contains_crash(&text),
            events.iter().any(Event::is_crash),
            "contains_crash disagrees with parse: {:?}",
            events.iter().map(|e| &e.title).collect::<Vec<_>>()
        );
    }

    /// The streaming parser, fed the same lines in chunks of several lines
    /// (as the console reader does), finds the same events.
    #[test]
    fn streaming_in_chunks_finds_what_parse_finds(lines in log(), sizes in vec(1..8usize, 1..6)) {
        let text = lines.join(&b"\n"[..]);
        let whole = parse(&text);
        let mut p = StreamParser::new();
        let mut streamed = Vec::new();
        let mut rest = &lines[..];
        for n in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*n).min(rest.len()));
            // Each line with its newline: a chunk's last line may be empty.
            let chunk: Vec<u8> = now.iter().flat_map(|l| l.iter().chain(b"\n")).copied().collect();
            streamed.extend(p.push_line(&chunk));
            rest = later;
        }
        streamed.extend(p.flush());
        prop_assert_eq!(canonical(&streamed), canonical(&whole));
    }

    /// A report that never ends (thousands of stack lines, no end marker)
    /// closes at its caps: one event, its excerpt bounded.
    #[test]
    fn an_endless_report_is_capped(prefix in proptest::sample::select(PREFIXES), n in 2000..6000usize) {
        let mut text = format!("{prefix}INFO: task kworker/0:1:12 blocked for more than 120 seconds.\n{prefix}Call trace:\n");
        for i in 0..n {
            text.push_str(&format!("{prefix} func_{i}+0x10/0x20\n"));
        }
        let events = parse(text.as_bytes());
        for e in &events {
            prop_assert!(e.excerpt.len() <= 256 * 1024 + 4096, "excerpt of {} bytes", e.excerpt.len());
        }
    }
}
