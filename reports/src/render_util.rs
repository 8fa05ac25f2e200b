//! What more than one output writes the same way. Kept apart from
//! `output`, which calls the renderers, so that a renderer never imports
//! the module that imports it.

use std::path::{Component, Path, PathBuf};

use crate::report::Report;
use crate::text;
use crate::verdict::{Conclusion, SignatureVerdict};
use crate::Outcome;

/// A relative URL from `from_dir` to `target`, so a report directory can be
/// moved together with its results directory (or served by any web server).
pub(crate) fn link(from_dir: &Path, target: &Path) -> String {
    let abs = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        p.canonicalize().unwrap_or_else(|_| normalise(&p))
    };
    let (from, to) = (abs(from_dir), abs(target));
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), f.len() - common).collect();
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts
        .iter()
        .map(|p| percent_encode(p))
        .collect::<Vec<_>>()
        .join("/")
}

fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The last `max_lines` lines of a console log, without terminal escapes
/// and control characters, for failures that carry no excerpt.
pub(crate) fn console_tail(path: &Path, max_lines: usize) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    // Checked on the open file: a device or FIFO (/dev/zero) never ends,
    // and a log still being written must not be followed as it grows.
    if !meta.is_file() {
        return None;
    }
    let start = meta.len().saturating_sub(8192);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(8192).read_to_end(&mut buf).ok()?;
    let text = strip_terminal(&String::from_utf8_lossy(&buf));
    let lines: Vec<&str> = text.lines().collect();
    // Drop the first line when it was cut by the 8 KiB window.
    let skip = usize::from(start > 0).max(lines.len().saturating_sub(max_lines));
    Some(lines[skip.min(lines.len())..].join("\n"))
}

/// Removes ANSI escape sequences and control characters other than tab and newline.
pub(crate) fn strip_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in @..~.
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\r' {
            continue;
        }
        if c.is_control() && c != '\n' && c != '\t' {
            continue;
        }
        out.push(c);
    }
    out
}

/// Escapes a Markdown table cell: pipes would end it, newlines would end the row.
pub(crate) fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// How the iterations with this failure title ended: one title can be a
/// deadlock in one boot and a stall in the next.
pub(crate) fn outcome_tally(r: &Report, title: &str) -> Vec<(Outcome, u32)> {
    let mut out: Vec<(Outcome, u32)> = Vec::new();
    for it in r.iterations.iter().filter(|i| {
        i.outcome.is_kernel_failure() && i.signature.as_deref().unwrap_or("(no signature)") == title
    }) {
        match out.iter_mut().find(|(o, _)| *o == it.outcome) {
            Some((_, n)) => *n += 1,
            None => out.push((it.outcome, 1)),
        }
    }
    out
}

/// The conclusion in a few words, for tables and figures.
pub(crate) fn conclusion_words(v: &SignatureVerdict) -> String {
    match v.conclusion {
        Conclusion::Removed => format!("removed in {}", v.variant),
        Conclusion::Reduced => format!("fewer in {}", v.variant),
        Conclusion::Introduced => format!("introduced in {}", v.variant),
        Conclusion::Increased => format!("more in {}", v.variant),
        Conclusion::NotSeen => "not seen as a deadlock".into(),
        Conclusion::NoDifferenceFound => "no difference found".into(),
        Conclusion::Undecided => "not decided yet".into(),
    }
}

/// The anytime-valid p as the tables give it: a bound ("≤ 0.0028") unless
/// it is 1.
pub(crate) fn p_words(v: &SignatureVerdict) -> String {
    let rel = if v.p_value >= 1.0 { "=" } else { "≤" };
    format!("{rel} {}", text::p_value(v.p_value))
}

/// The verdict's details the signature verdict table does not already say.
pub(crate) fn details_beside_table(r: &Report) -> impl Iterator<Item = &String> {
    r.verdict
        .details
        .iter()
        .filter(|d| !r.signature_verdicts.iter().any(|v| &v.sentence == *d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_and_encoded() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("runs/a b");
        let out = d.path().join("reports/r1");
        std::fs::create_dir_all(run.join("iterations/x-000")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let log = run.join("iterations/x-000/console.log");
        std::fs::write(&log, "").unwrap();
        assert_eq!(
            link(&out, &log),
            "../../runs/a%20b/iterations/x-000/console.log"
        );
        assert_eq!(link(&run, &log), "iterations/x-000/console.log");
    }

    #[test]
    fn terminal_escapes_and_controls_are_removed() {
        assert_eq!(
            strip_terminal("\u{1b}[1;31mred\u{1b}[0m ok\r\n\u{7}bell\u{0}"),
            "red ok\nbell"
        );
    }

    #[test]
    fn console_tail_keeps_the_last_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("console.log");
        let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        let tail = console_tail(&p, 3).unwrap();
        assert_eq!(tail, "line 4997\nline 4998\nline 4999");
        assert!(console_tail(&d.path().join("missing"), 3).is_none());
        assert!(console_tail(Path::new("/dev/zero"), 3).is_none());
    }
}
