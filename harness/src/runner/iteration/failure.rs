//! The two kinds of failure an iteration records: one seen by its symptom,
//! and one whose report names the blocked task.

use std::time::Instant;

use hilt_reports::{DetectTiming, Detector, Failure};

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

/// What a report says of the task it names as blocked.
pub(super) struct Named {
    pub(super) task: Option<String>,
    pub(super) frames: Vec<String>,
    pub(super) excerpt: String,
    pub(super) timing: Option<DetectTiming>,
}

/// A failure whose report names its culprit: the kernel's, or the agent's
/// confirmation of a task stuck in D.
pub(super) fn named(
    detector: Detector,
    title: String,
    uptime_ms: Option<u64>,
    t0: Instant,
    culprit: Named,
) -> Failure {
    Failure {
        task: culprit.task,
        frames: culprit.frames,
        excerpt: culprit.excerpt,
        timing: culprit.timing,
        ..symptom(detector, title, uptime_ms, t0)
    }
}
