//! Builds matchers from the tables in `formats.rs`, once per process.

use std::cell::RefCell;
use std::hash::Hasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use aho_corasick::{packed, AhoCorasick, Anchored, Input, MatchKind, StartKind};
use regex::bytes::Regex as BytesRegex;
use regex::{Regex, RegexSet};

use crate::formats::{self, End, Format, Group, Part, Pick, Stack};

/// What every line meets: the literals that tell whether a line may start a report.
/// Built at the first line; everything else is built when a report first needs it, so
/// a reader of a quiet log (the board agent) never pays, in CPU time or in memory, for
/// the hundreds of regexes it would only need for reports it never sees.
pub(crate) struct Screen {
    /// Header, continuation and stack-dumper literals, all searched in one pass per line.
    line_literals: AhoCorasick,
    /// `formats::SCREENING_WORDS`: rejects nearly every line with one cheap search.
    any_line_literal: WordSet,
    literal_owner: Vec<Literal>,
    /// Per group of `formats::GROUPS`: its `require`/`suppress` filters, which decide
    /// whether a header literal is a header, and the group's formats.
    filters: Box<[OnceLock<Filter>]>,
    groups: Box<[OnceLock<CGroup>]>,
}

/// A group's header filters (`formats::Group::require` and `suppress`).
struct Filter {
    require: Option<BytesRegex>,
    suppress: Option<BytesRegex>,
}

/// What reading a report needs beyond its group's formats.
pub(crate) struct Tables {
    pub stack_start_literals: WordSet,
    /// One regex per `formats::STACK_STARTS` entry (the corruption check needs to know which).
    pub stack_starts: Vec<Regex>,
    pub riscv_stack_start: usize,
    pub any_stack_start: Regex,
    pub corrupting_frame: Regex,
    pub corrupted_title: Regex,
    pub global_skip: NameMatcher,
    pub stall_anchors: NameMatcher,
    pub hung_skip: NameMatcher,
    pub replacements: Vec<(Regex, &'static str)>,
    /// `formats::TASK_PATTERNS`: a literal each pattern needs, and the pattern.
    pub task_patterns: Vec<(memchr::memmem::Finder<'static>, Regex)>,
    pub should_fail_finder: memchr::memmem::Finder<'static>,
    pub register_prefixes: Prefixes,
    pub stack_markers: Prefixes,
    pub tail_lines: Prefixes,
}

/// "Does the line start with one of these?" for lists too long to test one by one.
pub(crate) struct Prefixes(AhoCorasick);

impl Prefixes {
    fn new(prefixes: &[&str]) -> Self {
        Prefixes(
            AhoCorasick::builder()
                .start_kind(StartKind::Anchored)
                .match_kind(MatchKind::LeftmostFirst)
                .build(prefixes)
                .expect("prefix list"),
        )
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        self.0.is_match(Input::new(s).anchored(Anchored::Yes))
    }
}

pub(crate) struct CGroup {
    pub src: &'static Group,
    pub crash: bool,
    pub formats: Vec<CFormat>,
    /// All format titles at once: one pass over a line tells which formats can match.
    titles: RegexSet,
}

impl CGroup {
    /// `(column, format)` of every format whose title matches `line`, earliest first.
    pub(crate) fn title_matches(&self, line: &str) -> Vec<(usize, usize)> {
        let mut found: Vec<(usize, usize)> = self
            .titles
            .matches(line)
            .iter()
            .filter_map(|i| self.formats[i].title.find(line).map(|m| (m.start(), i)))
            .collect();
        found.sort_unstable();
        found
    }
}

pub(crate) struct CFormat {
    pub src: &'static Format,
    pub title: Regex,
    pub report: Option<Regex>,
    pub stack: Option<CStack>,
    pub end: CEnd,
}

pub(crate) struct CStack {
    pub parts: Vec<CPart>,
    pub fallback: Vec<CPart>,
    pub skip: Option<NameMatcher>,
    pub pick: Pick,
}

/// Matches a function name against a list of regexes (searched anywhere in the name).
/// Most entries are plain words; those go into one substring automaton, which is far
/// cheaper per frame than a regex alternation of a few hundred branches.
pub(crate) struct NameMatcher {
    words: Option<AhoCorasick>,
    regex: Option<Regex>,
    /// Index of this matcher's memo in `MEMO`.
    id: usize,
}

/// Answers per matcher and frame name, in a direct-mapped table: the same few hundred
/// kernel functions appear in report after report, and a lookup is several times
/// cheaper than the search. Fixed size, so memory stays bounded.
type MemoSlot = Option<(u64, usize, Box<str>, bool)>;
const MEMO_SLOTS: usize = 4096;

thread_local! {
    static MEMO: RefCell<Vec<MemoSlot>> = const { RefCell::new(Vec::new()) };
}

static NEXT_MATCHER_ID: AtomicUsize = AtomicUsize::new(0);

impl NameMatcher {
    fn new(patterns: &[&str]) -> Self {
        let is_word = |p: &&str| !p.bytes().any(|b| br"\^$.|?*+()[]{}".contains(&b));
        let words: Vec<&str> = patterns.iter().copied().filter(is_word).collect();
        let regexes: Vec<&str> = patterns.iter().copied().filter(|p| !is_word(p)).collect();
        NameMatcher {
            words: (!words.is_empty()).then(|| leftmost(&words)),
            regex: (!regexes.is_empty()).then(|| {
                Regex::new(&any_of(&regexes)).unwrap_or_else(|e| panic!("bad frame pattern: {e}"))
            }),
            id: NEXT_MATCHER_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub(crate) fn is_match(&self, name: &str) -> bool {
        let mut hasher = FxHasher::default();
        hasher.write(name.as_bytes());
        hasher.write_usize(self.id);
        let hash = hasher.finish();
        MEMO.with(|memo| {
            let mut memo = memo.borrow_mut();
            if memo.is_empty() {
                memo.resize_with(MEMO_SLOTS, || None);
            }
            let slot = &mut memo[(hash as usize) & (MEMO_SLOTS - 1)];
            if let Some((h, id, known, answer)) = slot {
                if *h == hash && *id == self.id && **known == *name {
                    return *answer;
                }
            }
            let answer = self.search(name);
            *slot = Some((hash, self.id, name.into(), answer));
            answer
        })
    }

    fn search(&self, name: &str) -> bool {
        self.words.as_ref().is_some_and(|ac| ac.is_match(name))
            || self.regex.as_ref().is_some_and(|re| re.is_match(name))
    }
}

/// The multiply-rotate hash rustc uses for its own tables: plenty for short names.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) enum CPart {
    Line(Regex),
    Trace,
}

pub(crate) enum CEnd {
    Marker,
    Stack,
    StackAfter(&'static [&'static str]),
    Lines(usize),
    Dump(Regex),
    While(Regex),
}

#[derive(Clone, Copy)]
enum Literal {
    Header(usize),
    Continuation,
    StackDumper,
    Panic,
    NmiBacktrace,
    LockDebugOff,
}

/// A line that starts (or, for continuations, may extend) a report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderHit {
    pub group: usize,
    pub crash: bool,
    /// Inside an open report this line belongs to it (`formats::CONTINUATION_HEADERS`).
    pub continuation: bool,
}

/// What a line's literals say about it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LineKind {
    pub header: Option<HeaderHit>,
    pub stack_dumper: bool,
    /// `Kernel panic - not syncing`.
    pub panic: bool,
    /// `Sending NMI from CPU`: backtraces of other CPUs follow.
    pub nmi_backtrace: bool,
    /// `Disabling lock debugging due to kernel taint`: never part of a report.
    pub lock_debug_off: bool,
}

pub(crate) fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(build)
}

pub(crate) fn screen() -> &'static Screen {
    static SCREEN: OnceLock<Screen> = OnceLock::new();
    SCREEN.get_or_init(build_screen)
}

/// The compiled formats of `formats::GROUPS[g]`.
pub(crate) fn group(g: usize) -> &'static CGroup {
    screen().groups[g].get_or_init(|| build_group(&formats::GROUPS[g]))
}

pub(crate) fn detect_header(text: &[u8]) -> Option<HeaderHit> {
    screen().classify_line(text).header
}

impl Screen {
    pub(crate) fn classify_line(&self, text: &[u8]) -> LineKind {
        // Almost no line has any literal; the plain search is much faster than the
        // overlapping one, which is needed only to see every literal of a hit.
        if self.any_line_literal.find(text).is_none() {
            return LineKind::default();
        }
        let mut groups: u64 = 0;
        let mut continuation = false;
        let mut kind = LineKind::default();
        for m in self.line_literals.find_overlapping_iter(text) {
            match self.literal_owner[m.pattern().as_usize()] {
                Literal::Header(g) => groups |= 1 << g,
                Literal::Continuation => continuation = true,
                Literal::StackDumper => kind.stack_dumper = true,
                Literal::Panic => kind.panic = true,
                Literal::NmiBacktrace => kind.nmi_backtrace = true,
                Literal::LockDebugOff => kind.lock_debug_off = true,
            }
        }
        let mut header = None;
        while groups != 0 {
            let g = groups.trailing_zeros() as usize;
            groups &= groups - 1;
            let filter = self.filters[g].get_or_init(|| build_filter(&formats::GROUPS[g]));
            if filter.suppress.as_ref().is_some_and(|re| re.is_match(text)) {
                continue;
            }
            if filter.require.as_ref().is_some_and(|re| !re.is_match(text)) {
                continue;
            }
            header = Some(HeaderHit {
                group: g,
                crash: formats::GROUPS[g].kind.is_crash(),
                continuation,
            });
            break;
        }
        kind.header = header;
        kind
    }
}

impl Tables {
    pub(crate) fn is_stack_start(&self, line: &str) -> bool {
        self.stack_start_literals.find(line).is_some() && self.any_stack_start.is_match(line)
    }

    /// Start of the first line at or after `pos` that is a stack start.
    pub(crate) fn next_stack_start(&self, text: &str, mut pos: usize) -> Option<usize> {
        while pos < text.len() {
            let hit = pos + self.stack_start_literals.find(&text[pos..])?;
            let start = memchr::memrchr(b'\n', &text.as_bytes()[..hit])
                .map_or(0, |n| n + 1)
                .max(pos);
            let end =
                memchr::memchr(b'\n', &text.as_bytes()[start..]).map_or(text.len(), |n| start + n);
            if self.any_stack_start.is_match(&text[start..end]) {
                return Some(start);
            }
            pos = end + 1;
        }
        None
    }
}

/// Expands the `formats.rs` placeholders into regex syntax.
pub(crate) fn expand(re: &str) -> String {
    // `<` and `>` stay unescaped: in this regex dialect `\<` is a word boundary.
    const PC: &str = r"\[<?(?:0x)?[0-9a-f]+>?\]";
    const FUNC: &str = r"([a-zA-Z0-9_]+)(?:\.|\+)";
    const SRC: &str = r"([a-zA-Z0-9_/.\-]+\.[a-z]+:[0-9]+)";
    const CALLTRACE: &str = r"(?:Call (?:T|t)race:)|(?:Backtrace:)";
    const RIP: &str = r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:%PC% +){0,2}%FUNC%|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?%PC% +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))";
    re.replace("%RIP%", RIP)
        .replace("%CALLTRACE%", CALLTRACE)
        .replace("%PC%", PC)
        .replace("%FUNC%", FUNC)
        .replace("%SRC%", SRC)
}

/// "Does the text contain one of these few dozen words, and where?" The vectorised
/// searcher alone, without the automaton around it, is the cheapest answer per line;
/// CPUs without the needed vector unit get the automaton.
pub(crate) enum WordSet {
    Simd(packed::Searcher),
    Automaton(AhoCorasick),
}

impl WordSet {
    /// Start of the first word found.
    pub(crate) fn find(&self, text: impl AsRef<[u8]>) -> Option<usize> {
        match self {
            WordSet::Simd(s) => s.find(text).map(|m| m.start()),
            WordSet::Automaton(ac) => ac.find(text.as_ref()).map(|m| m.start()),
        }
    }
}

fn simd_words(words: &[&str]) -> WordSet {
    let mut config = packed::Config::new()
        .match_kind(packed::MatchKind::LeftmostFirst)
        .builder();
    config.extend(words);
    config
        .build()
        .map_or_else(|| WordSet::Automaton(leftmost(words)), WordSet::Simd)
}

/// A substring automaton for "is any of these present?" questions.
fn leftmost(words: &[&str]) -> AhoCorasick {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .build(words)
        .expect("literal list")
}

fn regex(re: &str) -> Regex {
    let expanded = expand(re);
    Regex::new(&expanded).unwrap_or_else(|e| panic!("bad regex in formats.rs: {re:?}: {e}"))
}

fn bytes_regex(re: &str) -> BytesRegex {
    BytesRegex::new(&expand(re)).unwrap_or_else(|e| panic!("bad regex in formats.rs: {re:?}: {e}"))
}

/// One regex matching wherever any of `res` matches (each keeps its own flags).
fn any_of(res: &[&str]) -> String {
    res.iter()
        .map(|re| format!("(?:{})", expand(re)))
        .collect::<Vec<_>>()
        .join("|")
}

fn build_screen() -> Screen {
    assert!(
        formats::GROUPS.len() <= 64,
        "header groups are tracked in a u64"
    );
    let mut literals: Vec<&str> = Vec::new();
    let mut literal_owner = Vec::new();
    for (i, group) in formats::GROUPS.iter().enumerate() {
        for header in group.headers {
            literals.push(header);
            literal_owner.push(Literal::Header(i));
        }
    }
    for lit in formats::CONTINUATION_HEADERS {
        literals.push(lit);
        literal_owner.push(Literal::Continuation);
    }
    for lit in formats::STACK_DUMPING_MESSAGES {
        literals.push(lit);
        literal_owner.push(Literal::StackDumper);
    }
    for (lit, owner) in [
        (formats::PANIC_LINE, Literal::Panic),
        (formats::NMI_BACKTRACE_LINE, Literal::NmiBacktrace),
        (formats::LOCK_DEBUG_OFF_LINE, Literal::LockDebugOff),
    ] {
        literals.push(lit);
        literal_owner.push(owner);
    }
    let line_literals = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .build(&literals)
        .expect("header literals");
    let any_line_literal = simd_words(formats::SCREENING_WORDS);
    for lit in &literals {
        assert!(
            any_line_literal.find(lit).is_some(),
            "{lit:?} contains no word of formats::SCREENING_WORDS"
        );
    }
    Screen {
        line_literals,
        any_line_literal,
        literal_owner,
        filters: formats::GROUPS.iter().map(|_| OnceLock::new()).collect(),
        groups: formats::GROUPS.iter().map(|_| OnceLock::new()).collect(),
    }
}

fn build() -> Tables {
    let stack_starts: Vec<Regex> = formats::STACK_STARTS.iter().map(|re| regex(re)).collect();
    let riscv_stack_start = formats::STACK_STARTS
        .iter()
        .position(|re| *re == formats::RISCV_STACK_START)
        .expect("riscv stack start listed");
    // Every stack start regex contains one of these literals; they make the common
    // "not a stack start" answer cheap.
    let stack_start_literals = simd_words(&[
        "Call Trace",
        "Call trace",
        "Allocated",
        "Freed",
        "backtrace",
        "Backtrace:",
        "Uninit was stored to memory at",
        "badaddr: ",
    ]);

    Tables {
        stack_start_literals,
        any_stack_start: Regex::new(&any_of(formats::STACK_STARTS)).expect("stack starts"),
        stack_starts,
        riscv_stack_start,
        corrupting_frame: regex(formats::CORRUPTING_FRAME),
        corrupted_title: regex(formats::CORRUPTED_TITLE),
        global_skip: NameMatcher::new(formats::GLOBAL_SKIP),
        stall_anchors: NameMatcher::new(formats::STALL_ANCHORS),
        hung_skip: NameMatcher::new(formats::HUNG_SKIP),
        replacements: formats::TITLE_REPLACEMENTS
            .iter()
            .map(|(re, with)| (regex(re), *with))
            .collect(),
        task_patterns: formats::TASK_PATTERNS
            .iter()
            .map(|(needle, re)| (memchr::memmem::Finder::new(needle), regex(re)))
            .collect(),
        should_fail_finder: memchr::memmem::Finder::new("should_fail"),
        register_prefixes: Prefixes::new(formats::REGISTER_PREFIXES),
        stack_markers: Prefixes::new(formats::STACK_MARKERS),
        tail_lines: Prefixes::new(formats::TAIL_LINES),
    }
}

fn build_filter(group: &'static Group) -> Filter {
    Filter {
        require: group.require.map(bytes_regex),
        suppress: (!group.suppress.is_empty()).then(|| {
            BytesRegex::new(&any_of(group.suppress))
                .unwrap_or_else(|e| panic!("bad suppression: {e}"))
        }),
    }
}

fn build_group(group: &'static Group) -> CGroup {
    CGroup {
        src: group,
        crash: group.kind.is_crash(),
        formats: group.formats.iter().map(build_format).collect(),
        titles: RegexSet::new(group.formats.iter().map(|f| expand(f.title)))
            .unwrap_or_else(|e| panic!("bad title regex: {e}")),
    }
}

fn build_format(format: &'static Format) -> CFormat {
    CFormat {
        src: format,
        title: regex(format.title),
        report: format.report.map(regex),
        stack: format.stack.as_ref().map(build_stack),
        end: match format.end {
            End::Marker => CEnd::Marker,
            End::Stack => CEnd::Stack,
            End::StackAfter(keys) => CEnd::StackAfter(keys),
            End::Lines(n) => CEnd::Lines(n),
            End::Dump(re) => CEnd::Dump(regex(re)),
            End::While(re) => CEnd::While(regex(re)),
        },
    }
}

fn build_stack(stack: &'static Stack) -> CStack {
    let parts = |parts: &[Part]| {
        parts
            .iter()
            .map(|p| match p {
                Part::Line(re) => CPart::Line(regex(re)),
                Part::Trace => CPart::Trace,
            })
            .collect()
    };
    CStack {
        parts: parts(stack.parts),
        fallback: parts(stack.fallback),
        skip: (!stack.skip.is_empty()).then(|| NameMatcher::new(stack.skip)),
        pick: stack.pick,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_tables_compile() {
        tables();
        for (g, src) in formats::GROUPS.iter().enumerate() {
            build_filter(src);
            assert!(std::ptr::eq(group(g).src, src));
        }
    }

    #[test]
    fn informational_groups_only_hold_informational_formats() {
        // contains_crash() looks at groups only; parse() names kinds by format.
        // Both must agree on what is a crash.
        for group in formats::GROUPS {
            for format in group.formats {
                assert_eq!(
                    format.kind.is_crash(),
                    group.kind.is_crash(),
                    "format {:?} disagrees with its group about being a crash",
                    format.title
                );
            }
        }
    }

    #[test]
    fn header_precedence_and_suppression() {
        let t = screen();
        let hit = |s: &str| {
            t.classify_line(s.as_bytes())
                .header
                .map(|h| formats::GROUPS[h.group].headers[0])
        };
        assert_eq!(
            hit("BUG: KASAN: use-after-free in foo+0x1/0x2"),
            Some("BUG:")
        );
        assert_eq!(
            hit("WARNING: CPU: 0 PID: 1 at mm/x.c:1 f+0x1/0x2"),
            Some("WARNING:")
        );
        assert_eq!(hit("INFO: lockdep is turned off."), None);
        assert_eq!(hit("DEBUG: BUG: something"), None);
        assert_eq!(hit("hello world"), None);
        let panic = t
            .classify_line(b"Kernel panic - not syncing: Fatal exception")
            .header
            .unwrap();
        assert!(panic.continuation && panic.crash);
        let oom = t
            .classify_line(b"Out of memory: Killed process 12 (stress)")
            .header
            .unwrap();
        assert!(!oom.crash);
        assert!(
            t.classify_line(b"FAULT_INJECTION: forcing a failure.")
                .stack_dumper
        );
        // erofs_info() lines are not errors.
        assert_eq!(
            hit("erofs: (device loop0): mounted with root inode @ nid 36."),
            None
        );
        assert_eq!(
            hit("erofs: (device loop0): z_erofs_read_folio: read error -5"),
            Some("erofs: (device ")
        );
    }
}
