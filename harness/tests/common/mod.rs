//! What the emulated-board tests share: where the checkout is, and the
//! records a run wrote.

use std::path::{Path, PathBuf};

use hilt_reports::{IterationRecord, Outcome};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `results.jsonl` of a run directory; empty while the run has none yet.
pub fn records(dir: &Path) -> Vec<IterationRecord> {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every record passed; a failure names the iteration and why.
pub fn assert_all_pass(recs: &[IterationRecord]) {
    for r in recs {
        assert_eq!(
            r.outcome,
            Outcome::Pass,
            "{}#{}: {}",
            r.variant,
            r.iteration,
            r.detail
        );
    }
}
