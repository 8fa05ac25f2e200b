//! What reading one plan, board or workload file may cost.
//!
//! serde_yaml_ng expands every alias in full while deserialising, and its
//! repetition limit counts events, not bytes: a 1 MB file holding one big
//! string aliased 10,000 times made `hilt check` allocate 9.8 GB. Its
//! scanner also takes time quadratic in the nesting of flow collections
//! (100,000 `[` took 24 s). Both are bounded here, before serde sees the
//! text, in one linear pass of another YAML parser that also indexes the
//! keys' positions.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};

use super::error::PlanError;
use super::positions::{pos, Builder, Pos, Positions};

/// The largest file read: the shipped ones are under 8 KiB.
pub const MAX_FILE_BYTES: usize = 256 << 10;
/// Lists and mappings inside each other; the formats need 6.
pub const MAX_DEPTH: usize = 32;
/// What aliases may repeat in all, counted as the text of every repeated
/// scalar plus `NODE_BYTES` for every repeated node (the memory a value
/// takes even when its text is empty).
pub const MAX_REPEATED_BYTES: u64 = 256 << 10;
const NODE_BYTES: u64 = 8;

const START: Pos = Pos { line: 1, column: 1 };

/// The file's text, refusing a file larger than `MAX_FILE_BYTES` after
/// reading at most one byte more (a plan named /dev/zero ends there too).
pub fn read(path: &Path) -> Result<String, PlanError> {
    let cannot =
        |e: std::io::Error| PlanError::new(path, START, "", format!("cannot read file: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(PlanError::new(
            path,
            START,
            "",
            format!(
                "the file is larger than {} KiB: expected a plan, board or workload file of at most {} KiB",
                MAX_FILE_BYTES >> 10,
                MAX_FILE_BYTES >> 10
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        cannot(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// Checks nesting and alias expansion, and indexes where each key is.
/// A syntax error is reported here too: serde's parser must never see a
/// document this pass could not bound.
pub fn scan(path: &Path, text: &str) -> Result<Positions, PlanError> {
    let mut parser = Parser::new_from_str(text);
    let mut index = Builder::default();
    // Collections being read: their anchor (0 for none) and the document's
    // expanded size where they started.
    let mut open: Vec<(usize, u64)> = Vec::new();
    // The expanded size of every complete anchored node.
    let mut anchored: HashMap<usize, u64> = HashMap::new();
    let mut expanded: u64 = 0;
    let mut repeated: u64 = 0;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            let m = e.marker();
            let at = Pos {
                line: m.line(),
                column: m.col() + 1,
            };
            // The scanner reads ahead of the events (a `[` may start a
            // key), so flow nesting can overflow its own counter before
            // the depth below is checked.
            if e.info() == "recursion limit exceeded" {
                return PlanError::new(path, at, index.top_path(), too_deep());
            }
            PlanError::new(path, at, "", format!("YAML syntax: {}", e.info()))
        })?;
        match &event {
            Event::StreamEnd => break,
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_DEPTH {
                    return Err(PlanError::new(
                        path,
                        pos(mark),
                        index.top_path(),
                        too_deep(),
                    ));
                }
                open.push((*anchor, expanded));
                expanded += NODE_BYTES;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = open.pop() {
                    if anchor != 0 {
                        anchored.insert(anchor, expanded - start);
                    }
                }
            }
            Event::Scalar(value, _, anchor, _) => {
                let size = NODE_BYTES + value.len() as u64;
                expanded += size;
                if *anchor != 0 {
                    anchored.insert(*anchor, size);
                }
            }
            Event::Alias(anchor) => {
                let Some(&size) = anchored.get(anchor) else {
                    return Err(PlanError::new(
                        path,
                        pos(mark),
                        index.next_path(),
                        "an alias inside the node its anchor names would repeat itself forever: expected an alias to a complete node",
                    ));
                };
                expanded = expanded.saturating_add(size);
                repeated = repeated.saturating_add(size);
                if repeated > MAX_REPEATED_BYTES {
                    return Err(PlanError::new(
                        path,
                        pos(mark),
                        index.next_path(),
                        format!(
                            "with this alias, aliases repeat more than {} KiB of the document: expected aliases that repeat at most {} KiB in all (each repeated value counts its text plus {NODE_BYTES} bytes)",
                            MAX_REPEATED_BYTES >> 10,
                            MAX_REPEATED_BYTES >> 10
                        ),
                    ));
                }
            }
            _ => {}
        }
        index.on_event(event, mark);
    }
    Ok(index.out)
}

fn too_deep() -> String {
    format!("lists and mappings nest more than {MAX_DEPTH} deep here: expected at most {MAX_DEPTH} levels")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(text: &str) -> Result<Positions, PlanError> {
        scan(Path::new("f.yaml"), text)
    }

    #[test]
    fn a_big_string_aliased_many_times_is_refused_at_the_alias_that_crosses_the_budget() {
        let text = format!(
            "name: &a {}\nlist: [{}]\n",
            "x".repeat(64 << 10),
            vec!["*a"; 100].join(", ")
        );
        let e = scanned(&text).unwrap_err();
        // 64 KiB + 8 bytes each: the fourth alias crosses 256 KiB.
        assert_eq!(e.key, "list[3]");
        assert_eq!(e.pos.line, 2);
        assert_eq!(e.pos.column, 8 + 3 * 4);
        assert!(e.message.contains("at most 256 KiB"), "{}", e.message);
    }

    #[test]
    fn nested_anchors_count_what_they_expand_to() {
        // Each level repeats the one before ten times: a billion laughs.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{p}"); 10].join(", ")
            ));
        }
        let e = scanned(&text).unwrap_err();
        assert!(e.message.contains("aliases repeat"), "{e}");
        assert!(e.pos.line <= 6, "{e}");
    }

    #[test]
    fn modest_aliases_pass() {
        let text = "base: &k {debian: linux-image-6.1.0-44-arm64}\nvariants:\n  - {name: a, kernel: *k}\n  - {name: b, kernel: *k}\n";
        let p = scanned(text).unwrap();
        assert_eq!(
            p.of("variants[1].name"),
            Pos {
                line: 4,
                column: 12
            }
        );
    }

    #[test]
    fn an_alias_to_itself_is_refused() {
        let e = scanned("a: &a [1, *a]\n").unwrap_err();
        assert_eq!(e.key, "a[1]");
        assert!(e.message.contains("repeat itself"), "{e}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_at_the_first_level_too_deep() {
        let text = format!(
            "name: x\nfaults: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let t = std::time::Instant::now();
        let e = scanned(&text).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(e.key, "faults");
        assert_eq!(e.message, too_deep());
        assert_eq!(e.pos.line, 2);
        // One level per line keeps the scanner from reading ahead: the
        // root mapping is level 1, so the 32nd `[` is the 33rd level.
        let text = format!("faults:\n{}", " [\n".repeat(40));
        let e = scanned(&text).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.pos),
            (
                "faults",
                Pos {
                    line: 33,
                    column: 2
                }
            )
        );
        let ok = format!("faults: {}{}\n", "[".repeat(31), "]".repeat(31));
        scanned(&ok).unwrap();
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
        }
        text.push_str(&format!("{}v\n", "  ".repeat(40)));
        let e = scanned(&text).unwrap_err();
        assert_eq!(e.key, "k0");
        assert_eq!(e.pos.line, 33);
    }

    #[test]
    fn a_file_over_the_limit_is_refused_after_reading_one_byte_more() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.yaml");
        std::fs::write(&p, "#".repeat(MAX_FILE_BYTES)).unwrap();
        read(&p).unwrap();
        std::fs::write(&p, "#".repeat(MAX_FILE_BYTES + 1)).unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(e.pos, START);
        assert!(e.message.contains("larger than 256 KiB"), "{e}");
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert!(e.message.contains("larger than 256 KiB"), "{e}");
    }
}
