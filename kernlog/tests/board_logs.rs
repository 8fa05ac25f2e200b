//! Real console logs of the emulated board on current kernels (`tests/data/board/`,
//! in the corpus's format: `TITLE:`/`TYPE:` headers, `#` lines saying where each log
//! came from, an empty line, the log). Each log holds one kind of report, possibly
//! repeated: every crash report in it must carry the file's title, and a file
//! without a title must hold none.

#[allow(dead_code)]
#[path = "support/corpus.rs"]
mod corpus;

use std::path::Path;

use hilt_kernlog::{contains_crash, parse, EventKind};

#[test]
fn board_logs_of_current_kernels_are_titled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/board");
    let files = corpus::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    for f in &files {
        let crashes: Vec<_> = parse(&f.log).into_iter().filter(|e| e.is_crash()).collect();
        assert_eq!(contains_crash(&f.log), !crashes.is_empty(), "{}", f.name);
        let got: Vec<&str> = crashes.iter().map(|e| e.title.as_str()).collect();
        let ok = match f.title.as_deref().filter(|t| !t.is_empty()) {
            Some(want) => !got.is_empty() && got.iter().all(|t| *t == want),
            None => got.is_empty(),
        };
        if f.kind.as_deref() == Some("HANG") {
            assert!(
                crashes
                    .iter()
                    .all(|e| e.kind == EventKind::HungTask && !e.corrupted),
                "{}: {crashes:#?}",
                f.name
            );
        }
        if !ok {
            failures.push(format!("{}: want {:?}, got {got:?}", f.name, f.title));
        }
    }
    assert!(files.len() >= 4, "{} board logs", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// 7.1+ words the hung-task header differently when the task waits in
/// io_schedule(); the board's 7.2 log must have it, or the test above proves nothing
/// about that wording.
#[test]
fn the_seven_two_log_has_the_io_wait_wording() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/board/7.2-swap-freeze");
    let text = std::fs::read(&path).unwrap();
    let f = corpus::parse("7.2-swap-freeze".into(), &text);
    let hung: Vec<_> = parse(&f.log)
        .into_iter()
        .filter(|e| e.kind == EventKind::HungTask)
        .collect();
    assert!(!hung.is_empty());
    for e in &hung {
        assert!(
            e.excerpt.starts_with("INFO: task hilt-swapoff:")
                && e.excerpt
                    .lines()
                    .next()
                    .unwrap()
                    .contains(" blocked in I/O wait for more than "),
            "{}",
            e.excerpt
        );
    }
}
