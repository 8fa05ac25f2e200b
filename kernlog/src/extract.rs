//! Turns the collected lines of one report into a title, the way syzkaller's
//! extractDescription does: the format whose title matches earliest wins, its report
//! regex (if any) must match too, and its stack spec names the guilty frame.

use crate::compile::{tables, CFormat, CGroup};
use crate::stack;
use crate::title;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Corruption {
    None,
    /// A title matched but the rest of the report did not.
    ReportMismatch,
    /// The stack walk found no usable frame.
    NoFrames,
    /// The matched format only ever matches damaged reports.
    Format,
}

#[derive(Debug)]
pub(crate) struct Description {
    /// Index into the group's formats, if one matched fully.
    pub format: Option<usize>,
    /// Before normalisation (see `title::normalise`).
    pub title: String,
    pub corruption: Corruption,
    /// The stack walk (if the format has one) found a guilty frame.
    pub walk_ok: bool,
}

/// The report text is its lines, each followed by '\n'. `header_titles` are the
/// title matches of the first line (`CGroup::title_matches`), known since it was read.
pub(crate) fn describe(
    group: &CGroup,
    text: &str,
    header_titles: &[(usize, usize)],
) -> Description {
    let mut candidates: Vec<(usize, usize, usize)> =
        header_titles.iter().map(|&(col, i)| (col, i, 0)).collect();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if !candidates.is_empty() {
            break;
        }
        let body = line.strip_suffix('\n').unwrap_or(line);
        candidates.extend(
            group
                .title_matches(body)
                .into_iter()
                .map(|(col, i)| (col, i, offset)),
        );
        offset += line.len();
    }
    candidates.sort_unstable();
    let first_col = candidates.first().map(|c| c.0);
    for &(col, i, line_start) in &candidates {
        if Some(col) != first_col {
            break;
        }
        if let Some(desc) = try_format(&group.formats[i], i, text, line_start, col) {
            return desc;
        }
    }
    // Nothing matched fully: fall back to the header line itself.
    let start = group
        .src
        .headers
        .iter()
        .filter_map(|h| text.find(h))
        .min()
        .unwrap_or(0);
    let end = text[start..].find('\n').map_or(text.len(), |e| start + e);
    Description {
        format: None,
        title: text[start..end].to_string(),
        corruption: if candidates.is_empty() {
            Corruption::None
        } else {
            Corruption::ReportMismatch
        },
        walk_ok: false,
    }
}

fn try_format(
    f: &CFormat,
    index: usize,
    text: &str,
    line_start: usize,
    col: usize,
) -> Option<Description> {
    let mut args: Vec<&str> = Vec::new();
    let walk_from;
    if let Some(report) = &f.report {
        let caps = report.captures(text)?;
        args.extend(caps.iter().skip(1).map(|c| c.map_or("", |m| m.as_str())));
        walk_from = caps.get(0).map_or(0, |m| m.start());
    } else {
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |e| line_start + e);
        let caps = f.title.captures(&text[line_start..line_end])?;
        args.extend(caps.iter().skip(1).map(|c| c.map_or("", |m| m.as_str())));
        walk_from = line_start + col;
    }
    let mut corruption = Corruption::None;
    let mut walk_ok = true;
    let frames;
    let mut title_template = f.src.template;
    if let Some(spec) = &f.stack {
        let (found, ok) = stack::guilty_frames(spec, &text[walk_from..]);
        walk_ok = ok;
        if !ok {
            match f.src.frameless_title {
                Some(bare) => title_template = bare,
                None => corruption = Corruption::NoFrames,
            }
        }
        frames = found;
    } else {
        frames = Vec::new();
    }
    args.extend(frames.iter().map(|g| g.name.as_str()));
    let title = title::render(title_template, &args);
    if corruption == Corruption::None && f.src.corrupted {
        corruption = Corruption::Format;
    }
    Some(Description {
        format: Some(index),
        title,
        corruption,
        walk_ok,
    })
}

/// Whether the report's stack traces look cut short (syzkaller's isCorrupted): every
/// stack-start keyword must be followed by a frame within a few lines, and a format
/// that expects a stack must have one.
pub(crate) fn damaged(group: &CGroup, desc: &Description, text: &str) -> bool {
    let t = tables();
    if t.corrupted_title.is_match(&desc.title) {
        return true;
    }
    let Some(format) = desc.format.map(|i| &group.formats[i]) else {
        return false;
    };
    if format.src.no_stack_trace {
        return false;
    }
    // Every stack-start keyword's first occurrence must be followed by a frame soon.
    let mut seen = vec![false; t.stack_starts.len()];
    let mut has_trace = false;
    let mut pos = 0;
    while let Some(line_start) = t.next_stack_start(text, pos) {
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |p| line_start + p);
        pos = line_end + 1;
        let line = &text[line_start..line_end];
        for (k, re) in t.stack_starts.iter().enumerate() {
            if seen[k] || !re.is_match(line) {
                continue;
            }
            seen[k] = true;
            let mut rest = text[line_start..].split('\n');
            // Counted like syzkaller: the keyword line and a trailing empty piece included.
            if rest.clone().nth(3).is_none() {
                return true;
            }
            rest.next();
            let mut found = false;
            for next in rest.take(15) {
                if t.is_stack_start(next) {
                    break;
                }
                if next.contains("(stack is not available)")
                    || stack::walk_frame_names(next)[0].is_some()
                {
                    found = true;
                    has_trace = true;
                    break;
                }
            }
            if !found && k != t.riscv_stack_start {
                return true;
            }
        }
    }
    !has_trace
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(header: &str) -> &'static CGroup {
        let g = crate::formats::GROUPS
            .iter()
            .position(|g| g.headers.contains(&header))
            .unwrap();
        crate::compile::group(g)
    }

    #[test]
    fn earliest_title_wins_and_report_regex_gates() {
        let text = "WARNING: CPU: 0 PID: 1 at kernel/foo.c:12 foo_bar+0x1/0x2\nRIP: 0010:foo_bar+0x1/0x2\nCall Trace:\n baz+0x1/0x2\n";
        let d = describe(
            group("WARNING:"),
            text,
            &group("WARNING:").title_matches(text.lines().next().unwrap()),
        );
        assert_eq!(title::normalise(&d.title), "WARNING in foo_bar");
        assert_eq!(d.corruption, Corruption::None);
    }

    #[test]
    fn unmatched_report_falls_back_to_the_header() {
        let text = "BUG: something new and strange\n";
        let d = describe(group("BUG:"), text, &[]);
        assert_eq!(d.title, "BUG: something new and strange");
        assert_eq!(d.format, None);
    }

    #[test]
    fn missing_frames_mark_corruption() {
        let text =
            "INFO: task a:1 blocked for more than 120 seconds.\nCall Trace:\n __schedule+0x1/0x2\n";
        let d = describe(group("INFO:"), text, &[]);
        assert_eq!(d.title, "INFO: task hung in corrupted");
        assert_eq!(d.corruption, Corruption::NoFrames);
    }
}
