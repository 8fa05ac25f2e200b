//! The iteration's lines in events.jsonl, and the first thing it failed to
//! write anywhere in the run directory.

use std::time::Instant;

use hilt_kernlog::Event;
use hilt_protocol::ControlSpec;
use hilt_reports::Outcome;
use serde::Serialize;

use super::IterationInput;
use crate::plan::FaultKind;
use crate::runner::results::RunDir;

#[derive(Serialize)]
struct EventLine<'a, T: Serialize> {
    /// Host milliseconds since this iteration's power-on.
    t_ms: u64,
    variant: &'a str,
    iteration: u32,
    /// Set on a positive control's boot, which shares its variant and
    /// iteration number with the variant's first iteration.
    #[serde(skip_serializing_if = "Option::is_none")]
    control: Option<&'static str>,
    source: &'static str,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum HostEvent<'a> {
    Phase { phase: &'a str },
    Outcome { outcome: Outcome, detail: &'a str },
    ChannelGap { expected: u64, got: u64 },
    ChannelCorrupt { reason: &'a str },
    ChannelNoise { bytes: usize },
    Sysrq { key: char, via: &'a str },
    Fault { fault: FaultKind },
}

#[derive(Serialize)]
pub(super) struct KernelLine<'a> {
    pub(super) kind: &'static str,
    pub(super) event: &'a Event,
}

#[derive(Serialize)]
pub(super) struct PstoreEvent<'a> {
    pub(super) kind: &'static str,
    pub(super) file: &'a str,
    pub(super) event: &'a Event,
}

pub(super) struct Journal<'a> {
    run_dir: &'a RunDir,
    variant: &'a str,
    iteration: u32,
    control: Option<&'static str>,
    t0: Instant,
    /// The first write that failed, of any file: the record's detail says
    /// its results are incomplete.
    write_error: Option<String>,
}

impl<'a> Journal<'a> {
    pub(super) fn new(input: &IterationInput<'a>, t0: Instant) -> Self {
        Self {
            run_dir: input.run_dir,
            variant: input.variant,
            iteration: input.iteration,
            control: input.spec.control.as_ref().map(|c| match c {
                ControlSpec::SwapFreeze {
                    resume_after_ms: None,
                    ..
                } => "swap_freeze",
                ControlSpec::SwapFreeze { .. } => "swap_stall",
                ControlSpec::BioWaitFreeze { .. } => "bio_wait",
            }),
            t0,
            write_error: None,
        }
    }

    pub(super) fn log(&mut self, source: &'static str, body: &dyn erased::Ser) {
        let line = EventLine {
            t_ms: self.t0.elapsed().as_millis() as u64,
            variant: self.variant,
            iteration: self.iteration,
            control: self.control,
            source,
            body,
        };
        if let Err(e) = self.run_dir.event(&line) {
            self.write_failed(|| format!("events.jsonl: {e}"));
        }
    }

    /// The record names the first write that failed, not every one.
    pub(super) fn write_failed(&mut self, what: impl FnOnce() -> String) {
        self.write_error.get_or_insert_with(what);
    }

    pub(super) fn write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }
}

/// Lets one logging function take any serialisable body. The body goes
/// through a JSON value, which orders its keys: events.jsonl has always
/// been written so.
pub(super) mod erased {
    pub trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
    impl serde::Serialize for dyn Ser + '_ {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.json().serialize(s)
        }
    }
}
