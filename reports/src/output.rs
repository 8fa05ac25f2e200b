//! Writing a report directory.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::plots::report_figures;
use crate::report::Report;
use crate::{html, json, junit, kcidb, markdown};

/// Writes `out_dir/{index.html, summary.md, junit.xml, report.json,
/// kcidb.json, plots/*.svg, plots/*.png}`, creating `out_dir` if needed.
pub fn write_report(report: &Report, out_dir: &Path) -> Result<()> {
    let plots = out_dir.join("plots");
    std::fs::create_dir_all(&plots).with_context(|| format!("creating {}", plots.display()))?;
    let mut svgs = Vec::new();
    for f in report_figures(report) {
        let stem = f.stem();
        let svg = f.svg().with_context(|| format!("drawing {stem}"))?;
        std::fs::write(plots.join(format!("{stem}.svg")), &svg)?;
        f.png(&plots.join(format!("{stem}.png")))
            .with_context(|| format!("drawing {stem}.png"))?;
        svgs.push((stem, svg));
    }
    let write = |name: &str, body: &[u8]| -> Result<()> {
        let p = out_dir.join(name);
        std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))
    };
    write(
        "index.html",
        html::render(report, &svgs, out_dir).as_bytes(),
    )?;
    write("summary.md", markdown::render(report, out_dir).as_bytes())?;
    write("junit.xml", junit::render(report).as_bytes())?;
    write("report.json", json::render(report)?.as_bytes())?;
    write("kcidb.json", kcidb::render(report)?.as_bytes())?;
    Ok(())
}

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
