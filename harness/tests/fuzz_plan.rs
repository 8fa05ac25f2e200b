//! Property tests ("fuzzing" on stable Rust) of the plan, board and workload
//! loaders, through the real binary: `hilt check` on mutated copies of the
//! shipped files.
//!
//! Whatever the file holds, `hilt check` must exit 0 (valid) or 2 (rejected),
//! never panic (101) or die of a signal, and a rejection must be one line
//! `error: <file>:<line>:<col>: [key `<key>`: ]<message>` whose position lies
//! inside the named file and which names the key when the failure is about
//! one. A key that the format does not have must be rejected, wherever it is.
//!
//! Each property runs 256 cases by default (a `hilt check` takes a few
//! milliseconds); `PROPTEST_CASES=20000` runs a longer campaign (see
//! docs/fuzzing.md). Failures are not persisted: a failure prints its minimal
//! input, which becomes a deterministic test below.

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

const PLAN: &str = "plans/smoke.yaml";
const BOARD: &str = "boards/qemu-virt-a53.yaml";
/// The workloads smoke.yaml names.
const WORKLOADS: [&str; 2] = ["workloads/hog-80pct.yaml", "workloads/readers-seq-1.yaml"];

/// `cases` unless PROPTEST_CASES is set, so a nightly job can run longer
/// campaigns without editing the tests.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = None;
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn original(rel: &str) -> Vec<u8> {
    std::fs::read(repo().join(rel)).unwrap()
}

/// A private copy of the plan with its board and workload files, `rel`
/// replaced by `text`, checked by the binary. Real copies, not symlinks,
/// so that the mutated file is the one hilt resolves.
struct Checked {
    dir: tempfile::TempDir,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check_with(rel: &str, text: &[u8]) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["plans", "boards", "workloads"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    for f in [PLAN, BOARD].iter().chain(&WORKLOADS) {
        std::fs::write(dir.path().join(f), original(f)).unwrap();
    }
    std::fs::write(dir.path().join(rel), text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hilt"));
    cmd.arg("check").arg(dir.path().join(PLAN));
    // Whatever a mutation builds (an alias bomb, deep nesting), one check
    // stays within the README's input bounds: past this address space hilt
    // aborts, which fails the property as a signal.
    // SAFETY: setrlimit is async-signal-safe and touches no parent memory.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let lim = libc::rlimit {
                rlim_cur: 256 << 20,
                rlim_max: 256 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    Checked {
        dir,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A parsed `error: file:line:col: [key `k`: ]message`.
#[derive(Debug)]
struct Reported {
    file: PathBuf,
    line: usize,
    col: usize,
    key: String,
    message: String,
}

/// Lines as an editor shows them: split at LF, CRLF or a lone CR. (YAML
/// 1.1 parsers also break lines at NEL, LS and PS, editors do not.)
fn editor_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['\n', '\r']) {
        lines.push(&rest[..i]);
        let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + skip..];
    }
    lines.push(rest);
    lines
}

/// Checks the outcome of one `hilt check` and returns the parsed error, if
/// the files were rejected.
fn check_outcome(c: &Checked) -> Result<Option<Reported>, TestCaseError> {
    match c.code {
        Some(0) => {
            prop_assert!(
                c.stdout.contains(": ok ("),
                "exit 0 without the ok line: {:?} {:?}",
                c.stdout,
                c.stderr
            );
            return Ok(None);
        }
        Some(2) => {}
        other => prop_assert!(
            false,
            "hilt check exited with {:?} (101 is a panic, None a signal): {}",
            other,
            c.stderr
        ),
    }
    let err = c.stderr.strip_suffix('\n').unwrap_or(&c.stderr);
    prop_assert!(
        !err.contains('\n'),
        "a rejection must be one line: {:?}",
        err
    );
    let rest = err.strip_prefix("error: ");
    prop_assert!(rest.is_some(), "no `error: ` prefix: {:?}", err);
    let rest = rest.unwrap();

    // The error names one of the sandbox's files, as hilt resolved it.
    let mut fields = rest.splitn(4, ": ").collect::<Vec<_>>();
    prop_assert!(fields.len() >= 2, "no position: {:?}", err);
    let mut loc = fields.remove(0).rsplitn(3, ':');
    let (col, line, file) = (loc.next(), loc.next(), loc.next());
    let (Some(col), Some(line), Some(file)) = (col, line, file) else {
        return Err(TestCaseError::fail(format!("no file:line:col in {err:?}")));
    };
    let (line, col): (usize, usize) = match (line.parse(), col.parse()) {
        (Ok(l), Ok(c)) => (l, c),
        _ => {
            return Err(TestCaseError::fail(format!(
                "line and column are not numbers in {err:?}"
            )))
        }
    };
    let file = PathBuf::from(file);
    let canon = file.canonicalize();
    prop_assert!(
        canon
            .as_ref()
            .is_ok_and(|f| f.starts_with(c.dir.path().canonicalize().unwrap())),
        "error names a file outside the plan's tree: {:?}",
        err
    );

    let mut tail = fields.join(": ");
    let mut key = String::new();
    if let Some(k) = tail.strip_prefix("key `") {
        let Some(end) = k.find("`: ") else {
            return Err(TestCaseError::fail(format!("unterminated key in {err:?}")));
        };
        key = k[..end].to_string();
        tail = k[end + 3..].to_string();
        prop_assert!(!key.is_empty(), "empty key in {:?}", err);
    }
    prop_assert!(!tail.trim().is_empty(), "no message in {:?}", err);

    // The position lies inside the file hilt read (which may be another
    // file than the one mutated: a board or workload name can be mutated
    // into a path). Unreadable (non-UTF-8) files are reported at 1:1.
    prop_assert!(line >= 1 && col >= 1, "positions are 1-based: {:?}", err);
    if let Ok(text) = std::fs::read_to_string(&file) {
        let lines = editor_lines(&text);
        prop_assert!(
            line <= lines.len() + 1,
            "line {} beyond the {} lines of {:?}: {:?}",
            line,
            lines.len(),
            file,
            err
        );
        if let Some(l) = lines.get(line - 1) {
            prop_assert!(
                col <= l.chars().count() + 1,
                "column {} beyond line {} {:?}: {:?}",
                col,
                line,
                l,
                err
            );
        }
    }
    Ok(Some(Reported {
        file,
        line,
        col,
        key,
        message: tail,
    }))
}

/// What an error about a key must say: serde's data errors name the key
/// they are about (in the `key` prefix, or, for a missing field, in the
/// message), and point at it.
fn check_names_key(r: &Reported) -> Result<(), TestCaseError> {
    let field = |prefix: &str| -> Option<String> {
        let rest = r.message.strip_prefix(prefix)?;
        Some(rest[..rest.find('`')?].to_string())
    };
    for prefix in ["unknown field `", "duplicate field `"] {
        if let Some(f) = field(prefix) {
            // Compared as a suffix: the key itself may contain `.` or `[`.
            prop_assert!(
                r.key == f || r.key.ends_with(&format!(".{f}")),
                "{} error must name the key: {:?}",
                prefix.trim_end_matches(" `"),
                r
            );
            // The position points at the offending key itself.
            let text = std::fs::read_to_string(&r.file).unwrap_or_default();
            let at: String = editor_lines(&text)
                .get(r.line - 1)
                .map(|l| l.chars().skip(r.col - 1).collect())
                .unwrap_or_default();
            // An anchor (`&a`) or a tag (`!t`) before the key is part of it.
            let mut at = at.as_str();
            while let Some(rest) = at.strip_prefix(['&', '!']) {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || "-_!".contains(c)))
                    .unwrap_or(rest.len());
                at = rest[end..].trim_start();
            }
            let at = at.trim_start_matches(['"', '\'']);
            // The key may be quoted with its control characters escaped, and
            // a plain key may fold over lines (`? a\n  b` is the key "a b"):
            // its first word must be there.
            let escaped: String = at.chars().flat_map(char::escape_debug).collect();
            let word = f.split(' ').next().unwrap_or_default();
            prop_assert!(
                at.starts_with(word) || escaped.starts_with(word),
                "{:?} points at {:?}, not at the key",
                r,
                at
            );
        }
    }
    let root = [
        "expected struct Plan",
        "expected struct BoardFile",
        "expected struct WorkloadFile",
    ];
    let data_error = [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
    ];
    if data_error.iter().any(|p| r.message.starts_with(p))
        && !root.iter().any(|s| r.message.contains(s))
    {
        prop_assert!(!r.key.is_empty(), "a data error without its key: {:?}", r);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Mutations of a YAML document

/// Values of every YAML type and of the shapes hilt's fields take, including
/// out-of-range numbers, tags, anchors, aliases and unterminated flows.
fn value() -> impl Strategy<Value = String> {
    let pool = select(vec![
        "0",
        "-1",
        "1",
        "2",
        "3",
        "5",
        "48",
        "64",
        "100",
        "1024",
        "65536",
        "4294967296",
        "18446744073709551616",
        "-9223372036854775809",
        "0.5",
        "1.0",
        "-0.0",
        "1e3",
        "0x10",
        "0o17",
        ".nan",
        ".inf",
        "-.inf",
        "~",
        "null",
        "true",
        "no",
        "''",
        "\"\"",
        "[]",
        "{}",
        "[1, 2]",
        "{a: 1}",
        "[",
        "{",
        "]",
        "\"unterminated",
        "'x",
        "!!binary aGk=",
        "!!str 5",
        "!custom 1",
        "*nope",
        "&a 1",
        "|",
        ">-",
        "- a",
        "a: b",
        "a:b",
        "x # comment",
        "\"\\u00e9\\x41\"",
        "\"\\uD800\"",
        "\"\\q\"",
        "é",
        "🦀",
        "\t",
        "sdcard",
        "virtio",
        "zram",
        "none",
        "lz4",
        "w",
        "wtmlcd",
        "linux-image-6.1.0-44-arm64",
        "linux-image-",
        "../boards/qemu-virt-a53.yaml",
        "../workloads/hog-80pct.yaml",
        "qemu-virt-a53.yaml",
        "/",
        "..",
        ".",
        "hog-80pct",
        "readers-seq-1",
        "qemu-virt-a53",
        "swap_freeze",
        "? a",
        "@x",
        "`x",
        "%x",
        "<<",
    ]);
    prop_oneof![
        6 => pool.prop_map(str::to_string),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| f.to_string()),
        2 => "[a-z0-9_./-]{0,12}",
        1 => "\\PC{0,8}",
        1 => (1usize..400).prop_map(|n| "a".repeat(n)),
    ]
}

/// Key names: the formats' own (in the wrong place), typos and junk.
fn key() -> impl Strategy<Value = String> {
    let known = select(vec![
        "name",
        "description",
        "board",
        "iterations",
        "duration_s",
        "variants",
        "kernel",
        "debian",
        "machine",
        "memory_mb",
        "cpus",
        "dataset",
        "size_mb",
        "files",
        "seed",
        "image",
        "compressor",
        "level",
        "pcluster_kb",
        "verity",
        "storage",
        "erofs_on",
        "mount_options",
        "io_scheduler",
        "sync_decompress",
        "swap",
        "zram",
        "disk",
        "sdcard",
        "algorithm",
        "workloads",
        "sysrq",
        "watch",
        "timeouts",
        "boot_s",
        "controls",
        "hog",
        "readers",
        "mem_fraction",
        "threads",
        "pattern",
        "qemu",
        "binary",
        "cpu",
        "append",
        "extra_args",
        "arch",
        "soc",
        "console",
        "power",
        "agent",
        "<<",
        "?",
        "-",
    ]);
    prop_oneof![
        4 => known.prop_map(str::to_string),
        2 => "[a-z_]{1,12}",
        1 => "\\PC{1,6}",
        1 => Just("\"quoted key\"".to_string()),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace what follows the first `: ` of a line (or the whole line).
    SetValue(Index, String),
    /// Replace the key before the first `:` of a line.
    RenameKey(Index, String),
    /// Re-indent a line with this prefix.
    Indent(Index, String),
    Delete(Index),
    Duplicate(Index),
    Insert(Index, String),
    Swap(Index, Index),
    /// Insert raw bytes (often not UTF-8, or YAML's own line breaks).
    Bytes(Index, Vec<u8>),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let line = || {
        prop_oneof![
            (key(), value()).prop_map(|(k, v)| format!("{k}: {v}")),
            ("[ ]{0,6}", key(), value()).prop_map(|(i, k, v)| format!("{i}{k}: {v}")),
            ("[ ]{0,6}", value()).prop_map(|(i, v)| format!("{i}- {v}")),
            select(vec![
                "---",
                "...",
                "%YAML 1.2",
                "%TAG ! tag:x,2000:",
                "key:",
                "? complex",
                "<<: *a",
                "a: &x 1",
                "b: *x",
                "# comment",
                "",
                "\t",
                "[",
                "{",
                "- - -",
                "!!map",
                "&a",
                "kernel:",
                "  sysrq: true",
                "swap: none",
                "controls: [swap_freeze]"
            ])
            .prop_map(str::to_string),
        ]
    };
    let bytes = prop_oneof![
        vec(any::<u8>(), 1..8),
        select(vec![
            &b"\r"[..],
            b"\r\n",
            b"\n",
            b"\0",
            b"\t",
            b"\xef\xbb\xbf",
            b"\xe2\x80\xa8",
            b"\xc2\x85",
            b"\xff",
            b":",
            b"#",
            b"\"",
            b"'",
            b"{",
            b"["
        ])
        .prop_map(<[u8]>::to_vec),
        "\\PC{1,4}".prop_map(String::into_bytes),
    ];
    prop_oneof![
        4 => (any::<Index>(), value()).prop_map(|(i, v)| Mutation::SetValue(i, v)),
        2 => (any::<Index>(), key()).prop_map(|(i, k)| Mutation::RenameKey(i, k)),
        2 => (any::<Index>(), select(vec!["", " ", "  ", "   ", "    ", "      ", "\t", " \t"]))
            .prop_map(|(i, s)| Mutation::Indent(i, s.to_string())),
        2 => any::<Index>().prop_map(Mutation::Delete),
        2 => any::<Index>().prop_map(Mutation::Duplicate),
        2 => (any::<Index>(), line()).prop_map(|(i, l)| Mutation::Insert(i, l)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        2 => (any::<Index>(), bytes).prop_map(|(i, b)| Mutation::Bytes(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn split_lines(doc: &[u8]) -> Vec<Vec<u8>> {
    doc.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

fn apply(doc: &[u8], m: &Mutation) -> Vec<u8> {
    if let Mutation::Bytes(i, b) = m {
        let at = i.index(doc.len() + 1);
        return [&doc[..at], b, &doc[at..]].concat();
    }
    if let Mutation::Truncate(i) = m {
        return doc[..i.index(doc.len() + 1)].to_vec();
    }
    let mut lines = split_lines(doc);
    let n = lines.len();
    match m {
        Mutation::SetValue(i, v) => {
            let l = &mut lines[i.index(n)];
            match find(l, b": ") {
                Some(p) => l.splice(p + 2.., v.bytes()).for_each(drop),
                None => *l = v.clone().into_bytes(),
            }
        }
        Mutation::RenameKey(i, k) => {
            let l = &mut lines[i.index(n)];
            if let Some(colon) = l.iter().position(|&b| b == b':') {
                let start = l
                    .iter()
                    .position(|&b| b != b' ' && b != b'-')
                    .unwrap_or(0)
                    .min(colon);
                l.splice(start..colon, k.bytes()).for_each(drop);
            }
        }
        Mutation::Indent(i, s) => {
            let l = &mut lines[i.index(n)];
            let start = l
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(l.len());
            l.splice(..start, s.bytes()).for_each(drop);
        }
        Mutation::Delete(i) => {
            lines.remove(i.index(n));
        }
        Mutation::Duplicate(i) => {
            let i = i.index(n);
            lines.insert(i, lines[i].clone());
        }
        Mutation::Insert(i, l) => lines.insert(i.index(n + 1), l.clone().into_bytes()),
        Mutation::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
        Mutation::Bytes(..) | Mutation::Truncate(..) => unreachable!(),
    }
    lines.join(&b'\n')
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A mutated document; shown as text when a property fails.
#[derive(Clone)]
struct Doc(Vec<u8>);

impl std::fmt::Debug for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

fn mutated(rel: &'static str) -> impl Strategy<Value = Doc> {
    vec(mutation(), 1..5)
        .prop_map(move |ms| Doc(ms.iter().fold(original(rel), |doc, m| apply(&doc, m))))
}

/// Every line of `rel` that holds a `key:` (not a list item, nor a
/// comment), with the file as it is once an unknown key is inserted before
/// that line at the same indentation, so that it joins the same mapping.
fn with_unknown_key(rel: &str) -> Vec<(usize, String)> {
    let doc = String::from_utf8(original(rel)).unwrap();
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let is_key = !t.starts_with('#')
            && !t.starts_with('-')
            && t.split_once(':').is_some_and(|(k, _)| !k.contains(' '));
        if is_key {
            let mut new = lines.clone();
            let unknown = format!("{}{UNKNOWN}: 1", " ".repeat(l.len() - t.len()));
            new.insert(i, &unknown);
            out.push((i + 1, new.join("\n") + "\n"));
        }
    }
    out
}

const UNKNOWN: &str = "hilt_fuzz_unknown";

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_plans_are_rejected_cleanly(doc in mutated(PLAN)) {
        let c = check_with(PLAN, &doc.0);
        if let Some(r) = check_outcome(&c)? {
            check_names_key(&r)?;
        }
    }

    #[test]
    fn mutated_board_files_are_rejected_cleanly(doc in mutated(BOARD)) {
        let c = check_with(BOARD, &doc.0);
        if let Some(r) = check_outcome(&c)? {
            check_names_key(&r)?;
        }
    }

    #[test]
    fn mutated_workload_files_are_rejected_cleanly(which in 0..WORKLOADS.len(), docs in (mutated(WORKLOADS[0]), mutated(WORKLOADS[1]))) {
        let (rel, doc) = if which == 0 { (WORKLOADS[0], docs.0) } else { (WORKLOADS[1], docs.1) };
        let c = check_with(rel, &doc.0);
        if let Some(r) = check_outcome(&c)? {
            check_names_key(&r)?;
        }
    }
}

/// "Every key is checked": an unknown key in any mapping of any of the
/// three formats is rejected, naming that key at its line. Exhaustive over
/// the shipped files' mappings rather than sampled.
#[test]
fn an_unknown_key_in_any_mapping_is_rejected() {
    let mut failures = Vec::new();
    for rel in [PLAN, BOARD, WORKLOADS[0], WORKLOADS[1]] {
        for (line, doc) in with_unknown_key(rel) {
            let c = check_with(rel, doc.as_bytes());
            let ok = match check_outcome(&c) {
                Ok(Some(r)) => r.key.ends_with(UNKNOWN) && r.line == line && r.file.ends_with(rel),
                _ => false,
            };
            if !ok {
                let before = doc.lines().nth(line).unwrap_or_default();
                failures.push(format!(
                    "{rel}:{line} (before {before:?}): exit {:?} {}{}",
                    c.code,
                    c.stderr.trim(),
                    c.stdout.trim()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "unknown keys not rejected as such:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Minimal reproductions of what the properties found, one per defect.

fn smoke_with(from: &str, to: &str) -> String {
    let text = String::from_utf8(original(PLAN)).unwrap();
    assert!(
        text.contains(from),
        "smoke.yaml no longer contains {from:?}"
    );
    text.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn rejected(rel: &str, text: &str) -> Reported {
    let c = check_with(rel, text.as_bytes());
    match check_outcome(&c) {
        Ok(Some(r)) => r,
        Ok(None) => panic!("accepted: {}", c.stdout),
        Err(e) => panic!("{e}"),
    }
}

/// A repeated key was reported without its name, at the start of the
/// enclosing mapping (line 3 of smoke.yaml, or `- name:` of the variant),
/// because serde reports a duplicate at the mapping's level. Fix: load.rs
/// treats `duplicate field` like `unknown field` (appends it to the key) and
/// takes the key's last occurrence from the position index.
#[test]
fn a_duplicate_key_is_named_where_it_repeats() {
    let plan = smoke_with("iterations: 2", "iterations: 2\niterations: 3");
    let r = rejected(PLAN, &plan);
    assert_eq!(
        (r.key.as_str(), r.line, r.col),
        ("iterations", line_of(&plan, "iterations: 3"), 1),
        "{r:?}"
    );

    let plan = smoke_with("  - name: patched", "  - name: patched\n    name: again");
    let r = rejected(PLAN, &plan);
    assert_eq!(
        (r.key.as_str(), r.line, r.col),
        ("variants[1].name", line_of(&plan, "name: again"), 5),
        "{r:?}"
    );
}

/// `swap: {zram: {...}}` (and `disk`, `sdcard`) accepted any extra key:
/// the struct variants of `SwapCfg` lack `deny_unknown_fields`, so a typo
/// such as `algoritm: zstd` silently fell back to the default. Fix:
/// `#[serde(deny_unknown_fields)]` on the enum.
#[test]
fn an_unknown_key_under_a_swap_kind_is_rejected() {
    let plan = smoke_with("    size_mb: 128", "    size_mb: 128\n    algoritm: zstd");
    let r = rejected(PLAN, &plan);
    assert_eq!(
        (r.key.as_str(), r.line),
        ("swap.zram.algoritm", line_of(&plan, "algoritm")),
        "{r:?}"
    );
}

/// serde quotes a value it does not know verbatim, control characters
/// included: a value with a newline split the error over two lines, and an
/// escape sequence in a plan reached the terminal. Fix: `PlanError`'s
/// Display escapes control characters in the key and the message.
#[test]
fn an_error_quoting_the_file_stays_one_printable_line() {
    for value in ["\"virtio\\nsdcard\"", "\"\\e[31mvirtio\""] {
        let plan = smoke_with("  erofs_on: virtio", &format!("  erofs_on: {value}"));
        let c = check_with(PLAN, plan.as_bytes());
        let err = c.stderr.strip_suffix('\n').unwrap_or(&c.stderr);
        assert_eq!(c.code, Some(2), "{err}");
        assert!(!err.chars().any(char::is_control), "{value}: {err:?}");
    }
}

/// The YAML parser (YAML 1.1 rules) ends a line at NEL, LS or PS, editors
/// do not: one of them in a comment turned the rest of the comment into
/// content, and the error was reported a line below the one the editor
/// shows. Either the character is harmless, or the error is at its line.
/// Fix: reject NEL, LS and PS before parsing, at the line and column an
/// editor shows.
#[test]
fn a_unicode_line_separator_does_not_shift_positions() {
    for sep in ['\u{85}', '\u{2028}', '\u{2029}'] {
        let plan = smoke_with("# short iterations", &format!("# short{sep} iterations"));
        let c = check_with(PLAN, plan.as_bytes());
        match check_outcome(&c) {
            Ok(None) => {}
            Ok(Some(r)) => assert_eq!(
                r.line,
                line_of(&plan, "short"),
                "U+{:04X}: {r:?}",
                sep as u32
            ),
            Err(e) => panic!("{e}"),
        }
    }
}
