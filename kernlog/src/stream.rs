//! The line-at-a-time engine behind both [`crate::parse`] and [`StreamParser`].
//!
//! A report is opened by a header line and collects the following lines of the same
//! printk caller (all lines when the log has no caller ids). It ends when its format's
//! end condition is met (see `formats::End`), when a new report starts in the same
//! stream, when it grows past the caps in `formats.rs`, or on `flush()`. Memory is
//! bounded by those caps times `MAX_OPEN_REPORTS`.

use std::borrow::Cow;
use std::cell::Cell;

use crate::compile::{self, screen, tables, CEnd, CGroup, HeaderHit, LineKind};
use crate::extract::{self, Corruption, Description};
use crate::formats::{self, MAX_LINE_BYTES, MAX_OPEN_REPORTS, MAX_REPORT_BYTES, MAX_REPORT_LINES};
use crate::prefix::{self, Context, Marker};
use crate::stack::{self, LineClass};
use crate::task;
use crate::title;
use crate::Event;

/// Streaming kernel log parser: feed it lines, get events as their reports end.
///
/// ```
/// let mut p = hilt_kernlog::StreamParser::new();
/// let mut events = Vec::new();
/// for line in ["[ 5.0] INFO: task kworker/0:1:12 blocked for more than 10 seconds.",
///              "[ 5.0] Call trace:", "[ 5.0]  __switch_to+0xf0/0x170",
///              "[ 5.0]  my_driver_wait+0x8c/0x140 [my_driver]", "[ 5.1] unrelated"] {
///     events.extend(p.push_line(line.as_bytes()));
/// }
/// events.extend(p.flush());
/// assert_eq!(events[0].title, "INFO: task hung in my_driver_wait");
/// ```
#[derive(Debug, Default)]
pub struct StreamParser {
    open: Vec<OpenReport>,
    seq: u64,
    /// The previous line as received, to recognise the copy a replay prints again.
    last_line: Vec<u8>,
    /// The console announced a replay: the next line repeats a record.
    replaying: bool,
}

impl StreamParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line (a console line or a /dev/kmsg record, with or without the
    /// trailing newline) and returns the events whose reports it completed.
    /// A chunk holding several lines is split at '\n'.
    pub fn push_line(&mut self, line: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        self.push_line_into(line, &mut out);
        out
    }

    /// Like [`push_line`](Self::push_line), appending to `out`.
    pub fn push_line_into(&mut self, line: &[u8], out: &mut Vec<Event>) {
        self.push_chunk(line, &mut |_, ev| out.push(ev));
    }

    /// Ends every open report (end of input, or the kernel went quiet) and returns them.
    pub fn flush(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        self.flush_into(&mut out);
        out
    }

    /// Like [`flush`](Self::flush), appending to `out`.
    pub fn flush_into(&mut self, out: &mut Vec<Event>) {
        self.flush_with(&mut |_, ev| out.push(ev));
    }

    /// Like [`push_line_into`](Self::push_line_into), tagging each event with
    /// the number of its report's first line. With [`oldest_open`](Self::oldest_open)
    /// a reader can put events in log order as they come, holding only those
    /// that an older open report may still precede.
    pub fn push_line_seq(&mut self, line: &[u8], out: &mut Vec<(u64, Event)>) {
        self.push_chunk(line, &mut |seq, ev| out.push((seq, ev)));
    }

    /// The number of the first line of the oldest report still open.
    pub fn oldest_open(&self) -> Option<u64> {
        self.open.iter().map(|r| r.seq).min()
    }

    /// Events are tagged with the sequence number of their first line, so that a
    /// whole-log parse can list them in log order rather than in the order they ended.
    /// For a line known to hold no '\n'.
    pub(crate) fn push_split_line_seq(&mut self, line: &[u8], out: &mut Vec<(u64, Event)>) {
        self.feed(line, &mut |seq, ev| out.push((seq, ev)));
    }

    /// Like [`flush_into`](Self::flush_into), with the tags of [`push_line_seq`](Self::push_line_seq).
    pub fn flush_seq(&mut self, out: &mut Vec<(u64, Event)>) {
        self.flush_with(&mut |seq, ev| out.push((seq, ev)));
    }

    fn push_chunk(&mut self, line: &[u8], emit: &mut dyn FnMut(u64, Event)) {
        let mut rest = line.strip_suffix(b"\n").unwrap_or(line);
        while let Some(n) = memchr::memchr(b'\n', rest) {
            self.feed(&rest[..n], emit);
            rest = &rest[n + 1..];
        }
        self.feed(rest, emit);
    }

    fn flush_with(&mut self, emit: &mut dyn FnMut(u64, Event)) {
        self.open.sort_by_key(|r| r.seq);
        for report in self.open.drain(..) {
            let (seq, ev) = report.finish();
            emit(seq, ev);
        }
    }

    fn feed(&mut self, raw: &[u8], emit: &mut dyn FnMut(u64, Event)) {
        let line = prefix::split(raw);
        if line.kmsg_dict {
            return;
        }
        if line.dropped_before {
            // Records went missing while these reports were open.
            for r in &mut self.open {
                r.lost_lines = true;
            }
        }
        match line.marker {
            Some(Marker::Replay) => {
                // A cut-off copy in front of the marker is dropped with it; a copy that
                // was printed whole is recognised when the replay repeats it.
                self.replaying = true;
                return;
            }
            Some(Marker::Dropped) => return,
            None => {}
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let repeat = std::mem::take(&mut self.replaying) && raw == self.last_line.as_slice();
        self.last_line.clear();
        self.last_line
            .extend_from_slice(&raw[..raw.len().min(MAX_LINE_BYTES)]);
        if repeat {
            return;
        }
        self.seq += 1;
        let bytes = &line.text[..line.text.len().min(MAX_LINE_BYTES)];
        // Stack frames make up much of a report and never hold a header.
        let kind = if is_plain_frame(bytes) {
            LineKind::default()
        } else {
            screen().classify_line(bytes)
        };
        let ctx = line.context;

        if kind.stack_dumper {
            // Without caller ids, the stack that follows could be taken for the report's.
            self.close_where(|r| r.context.is_shared(), emit);
        }
        let starts = match kind.header {
            Some(hit) => self.make_room_for(hit, ctx, emit),
            None => false,
        };

        let takers = |r: &OpenReport| {
            r.context == ctx || (r.cpu_traceback && matches!(ctx, Context::Cpu(_)))
        };
        if !starts && !self.open.iter().any(takers) {
            return;
        }
        let questionable = ctx != Context::Bare && is_questionable(bytes);
        if !starts && questionable {
            return;
        }
        // Nearly every line is valid UTF-8, and checking that is much faster than
        // the lossy conversion's chunked walk.
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        if !questionable {
            let info = LineInfo::new(&text, kind);
            let mut i = 0;
            while i < self.open.len() {
                if takers(&self.open[i]) && self.open[i].handle(&info) != Verdict::Keep {
                    let (seq, ev) = self.open.remove(i).finish();
                    emit(seq, ev);
                } else {
                    i += 1;
                }
            }
        }
        if starts {
            if let Some(hit) = kind.header {
                self.start(hit.group, &line, &text, kind, emit);
            }
        }
    }

    /// Ends the reports a new header ends and tells whether the header starts a report
    /// of its own (rather than continuing one that is open).
    fn make_room_for(
        &mut self,
        hit: HeaderHit,
        ctx: Context,
        emit: &mut dyn FnMut(u64, Event),
    ) -> bool {
        let mut starts = true;
        let mut i = 0;
        while i < self.open.len() {
            let r = &mut self.open[i];
            let same = r.context == ctx;
            // An oops ends in a panic, a BUG() traps as an invalid opcode: same report.
            // Without caller ids an OOM or allocation-failure line in the middle of a
            // report is more likely another CPU talking than the report's end.
            let continues = same
                && r.crash
                && !r.lingering
                && (hit.continuation || (!hit.crash && ctx.is_shared()));
            if continues {
                starts = false;
                i += 1;
                continue;
            }
            let ends = (same && !(r.lingering && hit.continuation))
                || (r.context.is_shared() && hit.crash && !hit.continuation)
                || (r.context.is_shared() && ctx.is_shared() && !hit.crash && !r.crash);
            if !ends {
                i += 1;
                continue;
            }
            // With caller ids, syzkaller reads a report up to the end of its task's
            // output: a report that has not shown its stack yet (a lockdep splat cut
            // short by an oops) takes it from what the same task prints next.
            if same && !ctx.is_shared() && r.crash && hit.crash && !r.lingering && !r.title_ready()
            {
                r.lingering = true;
                i += 1;
                continue;
            }
            let (seq, ev) = self.open.remove(i).finish();
            emit(seq, ev);
        }
        starts
    }

    fn start(
        &mut self,
        group: usize,
        line: &prefix::Line<'_>,
        text: &str,
        kind: LineKind,
        emit: &mut dyn FnMut(u64, Event),
    ) {
        if self.open.len() >= MAX_OPEN_REPORTS {
            let oldest = (0..self.open.len())
                .min_by_key(|&i| self.open[i].seq)
                .unwrap_or(0);
            let (seq, ev) = self.open.remove(oldest).finish();
            emit(seq, ev);
        }
        let report = OpenReport::new(
            group,
            line.context,
            self.seq,
            line.timestamp(),
            &LineInfo::new(text, kind),
        );
        if report.complete_at_open() {
            let (seq, ev) = report.finish();
            emit(seq, ev);
        } else {
            self.open.push(report);
        }
    }

    fn close_where(
        &mut self,
        pred: impl Fn(&OpenReport) -> bool,
        emit: &mut dyn FnMut(u64, Event),
    ) {
        let mut i = 0;
        while i < self.open.len() {
            if pred(&self.open[i]) {
                let (seq, ev) = self.open.remove(i).finish();
                emit(seq, ev);
            } else {
                i += 1;
            }
        }
    }
}

/// A report line, what its literals say, and (computed on first use) its class.
struct LineInfo<'a> {
    text: &'a str,
    kind: LineKind,
    class: Cell<Option<(LineClass, Option<&'a str>)>>,
}

impl<'a> LineInfo<'a> {
    fn new(text: &'a str, kind: LineKind) -> Self {
        LineInfo {
            text,
            kind,
            class: Cell::new(None),
        }
    }

    fn classified(&self) -> (LineClass, Option<&'a str>) {
        if let Some(known) = self.class.get() {
            return known;
        }
        let known = stack::classify_frame(self.text);
        self.class.set(Some(known));
        known
    }

    fn class(&self) -> LineClass {
        self.classified().0
    }
}

/// ` [<ffffffff81234567>] ? func.part.0+0x1c/0x30 [module]` and nothing else: such a
/// line holds no header, since every header has a space, a colon or a capital letter.
fn is_plain_frame(s: &[u8]) -> bool {
    // Byte classes: lower-case hex digits, and the rest of a lower-case symbol.
    const HEX: u8 = 1;
    const SYM: u8 = 2;
    const CLASS: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            if c.is_ascii_digit() || (c >= b'a' && c <= b'f') {
                t[b] |= HEX;
            }
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'.' {
                t[b] |= SYM;
            }
            b += 1;
        }
        t
    };
    let run = |i: usize, class: u8| {
        s[i..]
            .iter()
            .take_while(|&&b| CLASS[b as usize] & class != 0)
            .count()
    };
    let mut i = s.iter().take_while(|&&b| b == b' ').count();
    if s[i..].starts_with(b"[<") {
        let n = run(i + 2, HEX);
        if n == 0 || !s[i + 2 + n..].starts_with(b">] ") {
            return false;
        }
        i += 2 + n + 3;
    }
    if s[i..].starts_with(b"? ") {
        i += 2;
    }
    match s.get(i) {
        Some(b) if b.is_ascii_lowercase() || *b == b'_' => {}
        _ => return false,
    }
    i += run(i, SYM);
    for part in [&b"+0x"[..], b"/0x"] {
        if !s[i..].starts_with(part) {
            return false;
        }
        let n = run(i + 3, HEX);
        if n == 0 {
            return false;
        }
        i += 3 + n;
    }
    match &s[i..] {
        [] => true,
        [b' ', b'[', module @ .., b']'] => {
            !module.is_empty()
                && module
                    .iter()
                    .all(|&b| CLASS[b as usize] & SYM != 0 && b != b'.')
        }
        _ => false,
    }
}

/// `? func+0x1/0x2` (x86) or `... (unreliable)` (powerpc): a stale return address that
/// syzkaller leaves out of reports, unless the line is an `<EOI>` marker.
fn is_questionable(text: &[u8]) -> bool {
    let spaced_mark = memchr::memchr_iter(b'?', text)
        .any(|i| i > 0 && text[i - 1] == b' ' && text.get(i + 1) == Some(&b' '));
    (spaced_mark || text.ends_with(b" (unreliable)"))
        && memchr::memmem::find(text, b"<EOI>").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_frames() {
        for frame in [
            &b" __schedule+0x33c/0xa40"[..],
            b"  mmc_blk_rw_wait+0x8c/0x140 [mmc_block]",
            b" [<ffffffff82a9df9c>] schedule+0x7c/0x1b0",
            b"  ? __sched_text_start+0x8/0x8",
            b" __mutex_lock.constprop.0+0x2a8/0x5d0",
        ] {
            assert!(is_plain_frame(frame), "{}", String::from_utf8_lossy(frame));
        }
        for line in [
            &b"BUG: soft lockup"[..],
            b" f+0x1/0x2 BUG: KASAN: use-after-free",
            b" dump_stack+0x1b2/0x281 lib/dump_stack.c:113",
            b" Foo+0x1/0x2",
            b"",
            b" [<ffff>",
            b" f+0x/0x2",
            b" f+0x1/0x2 [Mod]",
        ] {
            assert!(!is_plain_frame(line), "{}", String::from_utf8_lossy(line));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    /// The line completed the report and belongs to it.
    CloseAfter,
    /// The report was already complete; the line is not part of it.
    CloseBefore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Body,
    /// After an end marker: only register dumps and panic lines still belong.
    Tail,
    /// After `Kernel panic - not syncing`: everything until the panic's end marker.
    Panic,
}

#[derive(Debug)]
struct OpenReport {
    group: usize,
    /// `(column, format)` of the formats whose title matches the header line.
    header_titles: Vec<(usize, usize)>,
    /// The earliest of them: decides how the report ends.
    format: Option<usize>,
    crash: bool,
    context: Context,
    seq: u64,
    timestamp: Option<f64>,
    text: String,
    lines: usize,
    phase: Phase,
    /// A panic followed a long enough report: its lines add nothing.
    skip_text: bool,
    cpu_traceback: bool,
    /// A newer report started in the same context before this one showed its stack;
    /// this one keeps reading until it can name its guilty frame.
    lingering: bool,
    in_stack: bool,
    stack_frames: usize,
    /// For `End::StackAfter`: the keyword was seen.
    armed: bool,
    /// The console dropped records while this report was open.
    lost_lines: bool,
    kmsan: bool,
    trace: stack::FirstTrace,
    /// The last description computed, and the text length it was computed for.
    described: Option<(usize, Description)>,
}

impl OpenReport {
    fn new(
        group: usize,
        context: Context,
        seq: u64,
        timestamp: Option<f64>,
        line: &LineInfo<'_>,
    ) -> Self {
        let header = line.text;
        let g = compile::group(group);
        let header_titles = g.title_matches(header);
        let format = header_titles.first().map(|&(_, i)| i);
        let mut report = OpenReport {
            group,
            header_titles,
            format,
            crash: g.crash,
            context,
            seq,
            timestamp,
            // Most reports fit; growing a string by doubling from empty costs more.
            text: String::with_capacity(4096),
            lines: 0,
            phase: Phase::Body,
            skip_text: false,
            cpu_traceback: false,
            lingering: false,
            in_stack: false,
            stack_frames: 0,
            armed: false,
            lost_lines: false,
            kmsan: header.contains("BUG: KMSAN:"),
            trace: stack::FirstTrace::default(),
            described: None,
        };
        report.append(line);
        if let CEnd::StackAfter(keys) = report.end() {
            report.armed = keys.iter().any(|k| header.contains(k));
        }
        report
    }

    fn group(&self) -> &'static CGroup {
        compile::group(self.group)
    }

    fn end(&self) -> &'static CEnd {
        if self.lingering {
            return &CEnd::Stack;
        }
        self.format
            .map_or(&CEnd::Marker, |i| &self.group().formats[i].end)
    }

    fn complete_at_open(&self) -> bool {
        matches!(self.end(), CEnd::Lines(n) if *n <= 1)
    }

    fn append(&mut self, line: &LineInfo<'_>) {
        let text = line.text;
        let mut end = text.len().min(MAX_LINE_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if !self.trace.done() {
            let (class, frame) = line.classified();
            self.trace.push(class, frame);
        }
        self.text.push_str(&text[..end]);
        self.text.push('\n');
        self.lines += 1;
    }

    fn full(&self) -> bool {
        self.lines >= MAX_REPORT_LINES || self.text.len() >= MAX_REPORT_BYTES
    }

    fn handle(&mut self, line: &LineInfo<'_>) -> Verdict {
        let text = line.text;
        if line.kind.lock_debug_off {
            return Verdict::Keep;
        }
        if line.kind.nmi_backtrace {
            self.cpu_traceback = true;
        }
        let verdict = match self.phase {
            Phase::Tail => self.handle_tail(line),
            Phase::Panic => {
                if !self.skip_text {
                    self.append(line);
                }
                if starts_any(text.trim_start(), formats::FINAL_LINES) {
                    Verdict::CloseAfter
                } else {
                    Verdict::Keep
                }
            }
            Phase::Body => self.handle_body(line),
        };
        if verdict == Verdict::Keep && self.full() {
            return Verdict::CloseAfter;
        }
        verdict
    }

    fn enter_panic(&mut self, line: &LineInfo<'_>) {
        self.phase = Phase::Panic;
        let min_lines = if self.kmsan {
            formats::PANIC_TAIL_MIN_LINES_KMSAN
        } else {
            formats::PANIC_TAIL_MIN_LINES
        };
        if self.lines > min_lines {
            self.skip_text = true;
        } else {
            self.append(line);
        }
    }

    fn handle_tail(&mut self, line: &LineInfo<'_>) -> Verdict {
        let trimmed = line.text.trim_start();
        let belongs = tables().tail_lines.matches(trimmed)
            || trimmed.starts_with("note: ")
            || matches!(
                line.class(),
                LineClass::Register | LineClass::Marker | LineClass::Blank
            );
        if !belongs {
            return Verdict::CloseBefore;
        }
        if line.kind.panic {
            self.enter_panic(line);
            return Verdict::Keep;
        }
        self.append(line);
        if starts_any(trimmed, formats::FINAL_LINES) {
            Verdict::CloseAfter
        } else {
            Verdict::Keep
        }
    }

    /// Tracks stack traces; true when `line` ends one.
    fn stack_ended_by(&mut self, line: &LineInfo<'_>) -> bool {
        match line.class() {
            LineClass::StackStart => {
                self.in_stack = true;
                self.stack_frames = 0;
                false
            }
            LineClass::Frame => {
                self.in_stack = true;
                self.stack_frames += 1;
                false
            }
            LineClass::Questionable | LineClass::Marker | LineClass::Register => false,
            LineClass::Blank | LineClass::Other => {
                let ended = self.in_stack && self.stack_frames > 0;
                if ended {
                    self.in_stack = false;
                    self.stack_frames = 0;
                }
                ended
            }
        }
    }

    fn handle_body(&mut self, line: &LineInfo<'_>) -> Verdict {
        let text = line.text;
        if line.kind.panic {
            self.enter_panic(line);
            return Verdict::Keep;
        }
        match self.end() {
            CEnd::Marker => {
                self.append(line);
                let trimmed = text.trim();
                // All markers start with one of these; most lines need no further look.
                if !matches!(trimmed.as_bytes().first(), Some(b'-' | b'R' | b'=')) {
                    return Verdict::Keep;
                }
                if starts_any(trimmed, formats::FINAL_LINES) {
                    return Verdict::CloseAfter;
                }
                if starts_any(trimmed, formats::END_MARKERS) || is_rule(trimmed) {
                    self.phase = Phase::Tail;
                }
                Verdict::Keep
            }
            CEnd::Stack => {
                if self.stack_ended_by(line) && self.title_ready() {
                    return Verdict::CloseBefore;
                }
                self.append(line);
                Verdict::Keep
            }
            CEnd::StackAfter(keys) => {
                if self.stack_ended_by(line) && self.armed {
                    return Verdict::CloseBefore;
                }
                self.armed |= keys.iter().any(|k| text.contains(k));
                self.append(line);
                Verdict::Keep
            }
            CEnd::Lines(n) => {
                self.append(line);
                if self.lines >= *n {
                    Verdict::CloseAfter
                } else {
                    Verdict::Keep
                }
            }
            CEnd::Dump(next_block) => {
                if self.stack_ended_by(line) && !next_block.is_match(text) {
                    return Verdict::CloseBefore;
                }
                self.append(line);
                Verdict::Keep
            }
            CEnd::While(re) => {
                if !re.is_match(text) {
                    return Verdict::CloseBefore;
                }
                self.append(line);
                Verdict::Keep
            }
        }
    }

    /// Whether the lines so far already name the report fully.
    fn title_ready(&mut self) -> bool {
        let desc = self.describe();
        desc.format.is_some() && desc.walk_ok && desc.corruption != Corruption::ReportMismatch
    }

    fn describe(&mut self) -> &Description {
        let len = self.text.len();
        if self.described.as_ref().is_none_or(|(at, _)| *at != len) {
            self.described = Some((
                len,
                extract::describe(self.group(), &self.text, &self.header_titles),
            ));
        }
        &self.described.as_ref().expect("just set").1
    }

    fn finish(mut self) -> (u64, Event) {
        let group = self.group();
        self.describe();
        let (_, desc) = self.described.take().expect("described");
        let kind = desc
            .format
            .map_or(group.src.kind, |i| group.formats[i].src.kind);
        let corrupted = self.lost_lines
            || desc.corruption != Corruption::None
            || extract::damaged(group, &desc, &self.text);
        let event = Event {
            kind,
            title: title::normalise(&desc.title),
            task: task::find(&self.text),
            frames: self.trace.into_frames(),
            excerpt: {
                let mut text = self.text;
                text.truncate(text.trim_end_matches('\n').len());
                // Shrinking in place is cheap; the events may be kept for long.
                text.shrink_to_fit();
                text
            },
            timestamp: self.timestamp,
            caller: self.context.caller(),
            corrupted,
        };
        (self.seq, event)
    }
}

fn starts_any(s: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| s.starts_with(p))
}

/// A `=====...` rule: sanitizer reports end with one.
fn is_rule(s: &str) -> bool {
    s.len() >= 16 && s.bytes().all(|b| b == b'=')
}
