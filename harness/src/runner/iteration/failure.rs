//! The constructors of an iteration's failure.

use std::time::Instant;

use hilt_reports::{Detector, Failure};

/// A failure seen only by its symptom (a reader, the sampler or both channels
/// going quiet): no task, stack or kernel report names the culprit yet.
pub(super) fn symptom(
    detector: Detector,
    title: String,
    uptime_ms: Option<u64>,
    t0: Instant,
) -> Failure {
    Failure {
        detector,
        title,
        task: None,
        frames: vec![],
        uptime_ms,
        detected_after_ms: t0.elapsed().as_millis() as u64,
        excerpt: String::new(),
        timing: None,
    }
}
