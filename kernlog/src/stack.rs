//! Stack traces: recognising frame lines, walking a report to its guilty frame,
//! and listing a report's frames.

use std::borrow::Cow;

use crate::compile::{tables, CPart, CStack, NameMatcher};
use crate::demangle::demangle;
use crate::formats::{self, Pick};

/// What a report line is, as far as telling where a stack trace ends goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineClass {
    Blank,
    /// `Call Trace:`, `Allocated by task 1:`, `backtrace:` ...
    StackStart,
    Frame,
    /// `? func+0x1/0x2` or `(unreliable)`: a stale return address; not a frame, not an end.
    Questionable,
    /// `<IRQ>`, `</TASK>`, `--- interrupt:` ...
    Marker,
    /// Register dump and `Code:` lines around a trace.
    Register,
    Other,
}

#[cfg(test)]
pub(crate) fn classify(line: &str) -> LineClass {
    classify_frame(line).0
}

/// The class of a line and, for frame lines, the function name.
pub(crate) fn classify_frame(line: &str) -> (LineClass, Option<&str>) {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return (LineClass::Blank, None);
    }
    if let Some(frame) = parse_frame(line) {
        return if frame.questionable {
            (LineClass::Questionable, None)
        } else {
            (LineClass::Frame, Some(frame.name))
        };
    }
    (classify_rest(line, trimmed), None)
}

fn classify_rest(line: &str, trimmed: &str) -> LineClass {
    let t = tables();
    if t.is_stack_start(line) {
        return LineClass::StackStart;
    }
    if t.stack_markers.matches(trimmed) {
        return LineClass::Marker;
    }
    if t.register_prefixes.matches(trimmed) || is_arm_register_line(trimmed) {
        return LineClass::Register;
    }
    LineClass::Other
}

/// `x29: ffff800008003d90 x28: ffff0000c1234000` and `r10: 00000000  r9 : ...`.
fn is_arm_register_line(s: &str) -> bool {
    let b = s.as_bytes();
    if !matches!(b.first(), Some(b'x' | b'r')) {
        return false;
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    digits > 0
        && matches!(
            &b[1 + digits..],
            [b':', b' ', ..] | [b' ', b':', ..] | [b' ', b' ', b':', ..]
        )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameLine<'a> {
    pub name: &'a str,
    pub questionable: bool,
}

/// Recognises a frame line in any of the common shapes and returns the function name
/// without offset, size or module:
/// `  func+0x1c/0x30 [mod]`, `[<ffffffff81234567>] func+0x1/0x2`, `? func+0x1/0x2`,
/// `func mm/x.c:12 [inline]`, arm's `[<c0123456>] (func) from [<c0123457>] (caller+0x1/0x2)`.
pub(crate) fn parse_frame(line: &str) -> Option<FrameLine<'_>> {
    let mut s = line.trim_start();
    let mut pcs = 0;
    while pcs < 2 {
        match skip_pc(s) {
            Some(rest) => {
                s = rest.trim_start();
                pcs += 1;
            }
            None => break,
        }
    }
    if pcs > 0 {
        if let Some(name) = arm_frame(s) {
            return Some(FrameLine {
                name,
                questionable: false,
            });
        }
    }
    let mut questionable = false;
    if let Some(rest) = s.strip_prefix("? ") {
        s = rest.trim_start();
        questionable = true;
    }
    let name_len = s.bytes().take_while(|&b| is_symbol_byte(b)).count();
    if name_len == 0 {
        return None;
    }
    let (name, rest) = s.split_at(name_len);
    if is_offset(rest) {
        let questionable = questionable || line.trim_end().ends_with("(unreliable)");
        return Some(FrameLine { name, questionable });
    }
    // Symbolized inline frame: "func path/file.c:123 [inline]".
    if pcs == 0 && !questionable && rest.starts_with(' ') && rest.trim_end().ends_with("[inline]") {
        let location = rest.trim_start().split(' ').next().unwrap_or("");
        if location.contains(".c:") || location.contains(".h:") || location.contains(".rs:") {
            return Some(FrameLine {
                name,
                questionable: false,
            });
        }
    }
    None
}

fn is_symbol_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'$'
}

/// `+0x1c/0x30`.
fn is_offset(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("+0x") else {
        return false;
    };
    let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
    hex > 0 && rest[hex..].starts_with("/0x")
}

/// Skips `[<ffffffff81234567>]`, `[<0x1234>]` or `[c000000000012345]`.
fn skip_pc(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let rest = rest.strip_prefix('<').unwrap_or(rest);
    let rest = rest.strip_prefix("0x").unwrap_or(rest);
    let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
    if hex == 0 {
        return None;
    }
    let rest = &rest[hex..];
    let rest = rest.strip_prefix('>').unwrap_or(rest);
    rest.strip_prefix(']')
}

/// `(func+0x1/0x2) from [<c0123456>] (caller+0x1/0x2)`: arm's unwinder output.
fn arm_frame(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('(')?;
    let name_len = rest.bytes().take_while(|&b| is_symbol_byte(b)).count();
    if name_len == 0 {
        return None;
    }
    let after = &rest[name_len..];
    (after.starts_with(')') || after.starts_with('+')).then(|| &rest[..name_len])
}

/// Frame names as syzkaller's frame regexes capture them, for the guilty-frame walk:
/// `^ *(?:PC ){0,2}FUNC` (the name stops at the first `.`) or arm's
/// `^ *PC \(name\) from PC \(FUNC` (both names).
pub(crate) fn walk_frame_names(line: &str) -> [Option<&str>; 2] {
    let s = line.trim_start_matches(' ');
    let mut t = s;
    for _ in 0..2 {
        match strict_pc(t) {
            Some(rest) => t = rest,
            None => break,
        }
    }
    if let Some(name) = func(t) {
        return [Some(name), None];
    }
    // arm: "[<c0123>] (name) from [<c0456>] (caller+0x".
    if let Some(rest) = strict_pc(s) {
        if let Some(rest) = rest.strip_prefix('(') {
            let len = rest
                .bytes()
                .take_while(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                .count();
            if len > 0 {
                if let Some(after) = rest[len..].strip_prefix(") from ") {
                    if let Some(caller) = strict_pc(after)
                        .and_then(|a| a.strip_prefix('('))
                        .and_then(func)
                    {
                        return [Some(&rest[..len]), Some(caller)];
                    }
                }
            }
        }
    }
    [None, None]
}

/// `\[<?(?:0x)?[0-9a-f]+>?\] ` (with exactly one trailing space).
fn strict_pc(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let rest = rest.strip_prefix('<').unwrap_or(rest);
    let rest = rest.strip_prefix("0x").unwrap_or(rest);
    let hex = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .count();
    if hex == 0 {
        return None;
    }
    let rest = &rest[hex..];
    let rest = rest.strip_prefix('>').unwrap_or(rest);
    rest.strip_prefix("] ")
}

/// `[a-zA-Z0-9_]+` followed by `.` or `+`.
fn func(s: &str) -> Option<&str> {
    let len = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    (len > 0 && matches!(s.as_bytes().get(len), Some(b'.' | b'+'))).then(|| &s[..len])
}

/// A guilty frame: the stripped name used in titles and the name as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Guilty {
    pub name: String,
}

/// Walks `text` (a report, from its header on) along the stack spec and returns one
/// guilty frame per trace walked. `ok` is false when a trace gave no usable frame
/// (its place then holds "corrupted") or a fault-injection frame was crossed.
pub(crate) fn guilty_frames(spec: &CStack, text: &str) -> (Vec<Guilty>, bool) {
    let first = walk(spec, &spec.parts, text);
    if first.1 || spec.fallback.is_empty() {
        return first;
    }
    walk(spec, &spec.fallback, text)
}

fn walk(spec: &CStack, parts: &[CPart], text: &str) -> (Vec<Guilty>, bool) {
    let t = tables();
    let mut pos = 0; // start of the first line not read yet
    let mut raw: Vec<Cow<'_, str>> = Vec::new();
    let mut results = Vec::new();
    let mut ok = true;
    let mut traces = 0;
    let mut idx = 0;
    let skipped = |name: &str| {
        t.global_skip.is_match(name) || spec.skip.as_ref().is_some_and(|re| re.is_match(name))
    };
    let first_only = matches!(spec.pick, Pick::First);
    fn push_captures<'a>(
        raw: &mut Vec<Cow<'a, str>>,
        caps: &regex::Captures<'a>,
        skipped: &dyn Fn(&str) -> bool,
    ) {
        for name in caps.iter().skip(1).flatten() {
            let name = demangle(name.as_str());
            if !skipped(&name) {
                raw.push(name);
            }
        }
    }
    // Same control flow as syzkaller's walk, so titles agree: a part either consumes
    // lines up to its match, or (Trace) collects frames until the next part matches,
    // a new trace starts, or the text ends. Lines are tested in this order: fault
    // injection frame, stack start, next part, frame.
    'parts: loop {
        let flush_here = idx == parts.len() || (matches!(parts[idx], CPart::Trace) && traces > 0);
        if flush_here {
            match pick(spec.pick, &raw) {
                Some(name) => results.push(Guilty { name }),
                None => {
                    results.push(Guilty {
                        name: "corrupted".to_string(),
                    });
                    ok = false;
                }
            }
            raw.clear();
        }
        if idx == parts.len() {
            break;
        }
        match &parts[idx] {
            CPart::Trace => {
                traces += 1;
                let next = match parts.get(idx + 1) {
                    Some(CPart::Line(re)) => Some(re),
                    _ => None,
                };
                // Frame by frame while frames still matter...
                while pos < text.len() && (!first_only || raw.is_empty()) {
                    let (line, after) = line_at(text, pos);
                    pos = after;
                    if is_corrupting(line) {
                        ok = false;
                        idx += 1;
                        continue 'parts;
                    }
                    let names = walk_frame_names(line);
                    // A frame line is never a stack start, so most lines skip that search.
                    if names[0].is_none() && t.is_stack_start(line) {
                        idx += 1;
                        continue 'parts;
                    }
                    if let Some(caps) = next
                        .filter(|re| re.is_match(line))
                        .and_then(|re| re.captures(line))
                    {
                        push_captures(&mut raw, &caps, &skipped);
                        idx += 2;
                        continue 'parts;
                    }
                    for name in names.into_iter().flatten() {
                        let name = demangle(name);
                        if !skipped(&name) {
                            raw.push(name);
                        }
                    }
                }
                // ...then, with the guilty frame known, jump to where the trace ends.
                if pos < text.len() {
                    let corrupt = find_line(text, pos, is_corrupting, &t.should_fail_finder);
                    let start = t.next_stack_start(text, pos);
                    let part = next.and_then(|re| first_line_matching(re, text, pos));
                    let earliest = [corrupt, start, part].into_iter().flatten().min();
                    match earliest {
                        None => pos = text.len(),
                        Some(at) => {
                            let (line, after) = line_at(text, at);
                            pos = after;
                            if corrupt == Some(at) {
                                ok = false;
                                idx += 1;
                                continue 'parts;
                            }
                            if start == Some(at) {
                                idx += 1;
                                continue 'parts;
                            }
                            if let Some(caps) = next.and_then(|re| re.captures(line)) {
                                push_captures(&mut raw, &caps, &skipped);
                            }
                            idx += 2;
                            continue 'parts;
                        }
                    }
                }
            }
            CPart::Line(re) => {
                let corrupt = find_line(text, pos, is_corrupting, &t.should_fail_finder);
                let found = first_line_matching(re, text, pos);
                match (corrupt, found) {
                    (Some(c), f) if f.is_none_or(|f| c <= f) => {
                        ok = false;
                        pos = line_at(text, c).1;
                        idx += 1;
                        continue 'parts;
                    }
                    (_, Some(at)) => {
                        let (line, after) = line_at(text, at);
                        pos = after;
                        if let Some(caps) = re.captures(line) {
                            push_captures(&mut raw, &caps, &skipped);
                        }
                    }
                    _ => pos = text.len(),
                }
            }
        }
        idx += 1;
    }
    (results, ok)
}

/// The line starting at `pos` (without its '\n') and the start of the next one.
fn line_at(text: &str, pos: usize) -> (&str, usize) {
    match memchr::memchr(b'\n', &text.as_bytes()[pos..]) {
        Some(n) => (&text[pos..pos + n], pos + n + 1),
        None => (&text[pos..], text.len()),
    }
}

fn line_start(text: &str, at: usize) -> usize {
    memchr::memrchr(b'\n', &text.as_bytes()[..at]).map_or(0, |n| n + 1)
}

/// Start of the first line at or after `pos` that `re` matches on its own: one search
/// over the rest of the text instead of one per line.
fn first_line_matching(re: &regex::Regex, text: &str, mut pos: usize) -> Option<usize> {
    while pos < text.len() {
        // The end of the shortest match is enough to know the line, and finding the
        // start would cost a second, backwards search.
        let end = re.shortest_match_at(text, pos)?;
        // Judge the line holding the match's last byte; a match may begin on the
        // previous line's newline (`[^k] backtrace`), which a line alone would not see.
        let start = line_start(text, end.saturating_sub(1).max(pos)).max(pos);
        let (line, after) = line_at(text, start);
        if re.is_match(line) {
            return Some(start);
        }
        pos = after;
    }
    None
}

/// Start of the first line at or after `pos` containing the finder's needle and
/// passing `check`.
fn find_line(
    text: &str,
    mut pos: usize,
    check: impl Fn(&str) -> bool,
    needle: &memchr::memmem::Finder<'_>,
) -> Option<usize> {
    while pos < text.len() {
        let hit = pos + needle.find(&text.as_bytes()[pos..])?;
        let start = line_start(text, hit).max(pos);
        let (line, after) = line_at(text, start);
        if check(line) {
            return Some(start);
        }
        pos = after;
    }
    None
}

/// A fault-injection frame: ` should_fail+0x..` or ` [<pc>] should_failslab+0x..`
/// (checked cheaply before the exact regex).
fn is_corrupting(line: &str) -> bool {
    let candidate = line.starts_with(" should_fail")
        || (line.starts_with(" [") && line.contains("] should_fail"));
    candidate && tables().corrupting_frame.is_match(line)
}

/// The shortest name left after removing one syscall-wrapper prefix.
pub(crate) fn strip_prefix(name: &str) -> &str {
    formats::FRAME_PREFIXES
        .iter()
        .filter_map(|p| name.strip_prefix(p))
        .min_by_key(|s| s.len())
        .unwrap_or(name)
}

fn pick(how: Pick, raw: &[Cow<'_, str>]) -> Option<String> {
    let first = raw.first()?;
    if let Pick::First = how {
        return Some(strip_prefix(first).to_string());
    }
    let stripped: Vec<&str> = raw.iter().map(|f| strip_prefix(f.as_ref())).collect();
    match how {
        Pick::First => Some(stripped[0].to_string()),
        Pick::Stall => pick_stall(&stripped, &tables().stall_anchors),
        Pick::Hung => pick_hung(&stripped, &tables().hung_skip),
    }
}

fn pick_stall(frames: &[&str], anchors: &NameMatcher) -> Option<String> {
    let mut prev = frames[0];
    for frame in frames {
        if anchors.is_match(frame) {
            // The variants (_single, _many, _cond) are one bug.
            if frame.contains("smp_call_function") {
                prev = "smp_call_function";
            }
            return Some(prev.to_string());
        }
        prev = frame;
    }
    None
}

fn pick_hung(frames: &[&str], skip: &NameMatcher) -> Option<String> {
    for frame in frames {
        for (anchor, replacement) in formats::HUNG_ANCHORS {
            if frame.contains(anchor) {
                return Some(replacement.unwrap_or(frame).to_string());
            }
        }
    }
    frames
        .iter()
        .find(|f| !skip.is_match(f))
        .map(|f| f.to_string())
}

/// Collects the frames of a report's first stack trace, innermost first: from the
/// first stack-start line (or the first frame line if there is none) to the end of
/// that trace. Fed line by line as the report grows.
#[derive(Debug, Default)]
pub(crate) struct FirstTrace {
    frames: Vec<String>,
    in_trace: bool,
    done: bool,
}

impl FirstTrace {
    /// `frame` is the function name when `class` is `Frame`.
    pub(crate) fn push(&mut self, class: LineClass, frame: Option<&str>) {
        if self.done {
            return;
        }
        let ends = !self.frames.is_empty();
        match class {
            LineClass::StackStart => {
                self.done = self.in_trace && ends;
                self.in_trace = true;
            }
            LineClass::Frame => {
                if let Some(name) = frame {
                    self.frames.push(demangle(name).into_owned());
                    self.in_trace = true;
                }
            }
            LineClass::Questionable | LineClass::Marker | LineClass::Register => {}
            LineClass::Blank | LineClass::Other => self.done = self.in_trace && ends,
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.done
    }

    pub(crate) fn into_frames(self) -> Vec<String> {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_shapes() {
        let name = |s| parse_frame(s).map(|f| (f.name, f.questionable));
        assert_eq!(
            name(" __switch_to+0xf0/0x170"),
            Some(("__switch_to", false))
        );
        assert_eq!(
            name(" mmc_blk_rw_wait+0x8c/0x140 [mmc_block]"),
            Some(("mmc_blk_rw_wait", false))
        );
        assert_eq!(
            name(" __mutex_lock.constprop.0+0x2a8/0x5d0"),
            Some(("__mutex_lock.constprop.0", false))
        );
        assert_eq!(
            name(" [<ffffffff82a9df9c>] schedule+0x7c/0x1b0"),
            Some(("schedule", false))
        );
        assert_eq!(
            name("  ? __sched_text_start+0x8/0x8"),
            Some(("__sched_text_start", true))
        );
        assert_eq!(
            name(" [<ffffffff81234>] ? foo+0x1/0x2"),
            Some(("foo", true))
        );
        assert_eq!(
            name(" __dump_stack lib/dump_stack.c:77 [inline]"),
            Some(("__dump_stack", false))
        );
        assert_eq!(
            name(" dump_stack+0x1b2/0x281 lib/dump_stack.c:113"),
            Some(("dump_stack", false))
        );
        assert_eq!(
            name("[<c0308e5c>] (unwind_backtrace) from [<c030b99c>] (show_stack+0x10/0x14)"),
            Some(("unwind_backtrace", false))
        );
        assert_eq!(
            name("[c0000000fe7f3bb0] [c00000000021b4e8] func+0x98/0x130 (unreliable)"),
            Some(("func", true))
        );
        assert_eq!(name("RIP: 0010:check_memory_region+0x38/0x190"), None);
        assert_eq!(name("Hardware name: QEMU"), None);
        assert_eq!(
            name(" #0: ffff8880 (&sb->s_type->i_mutex_key), at: f+0x1/0x2"),
            None
        );
    }

    #[test]
    fn walk_names_follow_the_title_rules() {
        assert_eq!(
            walk_frame_names(" __mutex_lock.constprop.0+0x2a8/0x5d0"),
            [Some("__mutex_lock"), None]
        );
        assert_eq!(
            walk_frame_names(" [<ffffffff82a9df9c>] schedule+0x7c/0x1b0"),
            [Some("schedule"), None]
        );
        assert_eq!(walk_frame_names("  ? foo+0x1/0x2"), [None, None]);
        assert_eq!(
            walk_frame_names(
                "[<c0308e5c>] (unwind_backtrace) from [<c030b99c>] (show_stack+0x10/0x14)"
            ),
            [Some("unwind_backtrace"), Some("show_stack")]
        );
    }

    #[test]
    fn classes() {
        assert_eq!(classify(" dump_stack+0x1b2/0x281"), LineClass::Frame);
        assert_eq!(classify("  ? foo+0x1/0x2"), LineClass::Questionable);
        assert_eq!(classify("Call trace:"), LineClass::StackStart);
        assert_eq!(classify("Allocated by task 4070:"), LineClass::StackStart);
        assert_eq!(classify("Call Trace:"), LineClass::StackStart);
        assert_eq!(classify(" <TASK>"), LineClass::Marker);
        assert_eq!(classify("RIP: 0033:0x44a739"), LineClass::Register);
        assert_eq!(
            classify("x29: ffff800008003d90 x28: ffff0000c1234000"),
            LineClass::Register
        );
        assert_eq!(classify("   "), LineClass::Blank);
        assert_eq!(
            classify("Showing all locks held in the system:"),
            LineClass::Other
        );
        assert_eq!(classify("stack backtrace:"), LineClass::Other);
    }

    #[test]
    fn prefixes_and_picks() {
        assert_eq!(strip_prefix("__x64_sys_mount"), "sys_mount");
        assert_eq!(strip_prefix("compat_SyS_mount"), "mount");
        assert_eq!(strip_prefix("__do_sys_mount"), "mount");
        let t = tables();
        let hung = |frames: &[&str]| pick_hung(frames, &t.hung_skip);
        assert_eq!(
            hung(&["__schedule", "schedule", "mmc_blk_rw_wait", "worker_thread"]).as_deref(),
            Some("mmc_blk_rw_wait")
        );
        assert_eq!(
            hung(&[
                "schedule",
                "io_schedule",
                "folio_wait_bit_common",
                "__filemap_fdatawait_range",
                "f2fs_sync_file"
            ])
            .as_deref(),
            Some("f2fs_sync_file")
        );
        assert_eq!(
            hung(&["schedule", "synchronize_rcu_expedited", "x"]).as_deref(),
            Some("synchronize_rcu")
        );
        let stall = |frames: &[&str]| pick_stall(frames, &t.stall_anchors);
        assert_eq!(
            stall(&[
                "mulaw_decode",
                "snd_pcm_oss_write",
                "__vfs_write",
                "vfs_write"
            ])
            .as_deref(),
            Some("snd_pcm_oss_write")
        );
        assert_eq!(
            stall(&["a", "smp_call_function_single", "b"]).as_deref(),
            Some("smp_call_function")
        );
        assert_eq!(stall(&["a", "b"]), None);
    }
}
