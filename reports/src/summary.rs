//! Per-variant figures: hang rate and read-latency percentiles.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use hilt_protocol::histo::new_histogram;
use serde::{Deserialize, Serialize};

use crate::{IterationRecord, Outcome};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSummary {
    pub variant: String,
    /// Iterations with a kernel verdict (not infra errors, not unrun).
    pub iterations: u32,
    pub pass: u32,
    /// Hangs not classified as deadlock or stall (no deadlock window).
    pub hangs: u32,
    #[serde(default)]
    pub deadlocks: u32,
    #[serde(default)]
    pub stalls: u32,
    pub silent_hangs: u32,
    pub crashes: u32,
    pub infra_errors: u32,
    pub not_run: u32,
    /// (deadlocks + unclassified hangs + silent hangs) / iterations: hangs
    /// that never recovered; None without valid iterations.
    pub hang_rate: Option<f64>,
    #[serde(default)]
    pub stall_rate: Option<f64>,
    pub reads: u64,
    pub latency_us: Option<Percentiles>,
    /// In-kernel latency of erofs' decompression path, where it was probed.
    #[serde(default)]
    pub decompress_latency_us: Option<Percentiles>,
    /// The probed functions, outermost first.
    #[serde(default)]
    pub decompress_funcs: Vec<String>,
    /// Why the decompression path could not be probed, in any iteration.
    #[serde(default)]
    pub decompress_probe_errors: BTreeMap<String, u32>,
    /// Distinct failure titles with their counts.
    pub signatures: BTreeMap<String, u32>,
    /// Iterations in which each of the plan's named stack signatures was seen.
    #[serde(default)]
    pub plan_signatures: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// Summaries in the order variants first appear in `records`.
pub fn summarize(records: &[IterationRecord]) -> Vec<VariantSummary> {
    let mut order: Vec<String> = Vec::new();
    for r in records {
        if !order.contains(&r.variant) {
            order.push(r.variant.clone());
        }
    }
    order
        .iter()
        .map(|v| summarize_variant(v, records.iter().filter(|r| &r.variant == v)))
        .collect()
}

pub fn summarize_variant<'a>(
    variant: &str,
    records: impl Iterator<Item = &'a IterationRecord>,
) -> VariantSummary {
    let mut s = VariantSummary {
        variant: variant.to_string(),
        iterations: 0,
        pass: 0,
        hangs: 0,
        deadlocks: 0,
        stalls: 0,
        silent_hangs: 0,
        crashes: 0,
        infra_errors: 0,
        not_run: 0,
        hang_rate: None,
        stall_rate: None,
        reads: 0,
        latency_us: None,
        decompress_latency_us: None,
        decompress_funcs: Vec::new(),
        decompress_probe_errors: BTreeMap::new(),
        signatures: BTreeMap::new(),
        plan_signatures: BTreeMap::new(),
    };
    let mut h = new_histogram();
    let mut dh = new_histogram();
    for r in records {
        match r.outcome {
            Outcome::Pass => s.pass += 1,
            Outcome::Hang => s.hangs += 1,
            Outcome::Deadlock => s.deadlocks += 1,
            Outcome::Stall => s.stalls += 1,
            Outcome::SilentHang => s.silent_hangs += 1,
            Outcome::Crash => s.crashes += 1,
            Outcome::InfraError => s.infra_errors += 1,
            Outcome::NotRun => s.not_run += 1,
        }
        if !r.outcome.is_valid() {
            continue;
        }
        s.iterations += 1;
        for name in &r.signatures {
            *s.plan_signatures.entry(name.clone()).or_default() += 1;
        }
        s.reads += r.reads;
        r.read_latency_us.merge_into(&mut h);
        r.decompress_latency_us.merge_into(&mut dh);
        if let Some(f) = &r.decompress_func {
            if !s.decompress_funcs.contains(f) {
                s.decompress_funcs.push(f.clone());
            }
        }
        if let Some(e) = &r.decompress_probe_error {
            *s.decompress_probe_errors.entry(e.clone()).or_default() += 1;
        }
        if let Some(f) = &r.failure {
            if r.outcome.is_kernel_failure() {
                *s.signatures.entry(f.title.clone()).or_default() += 1;
            }
        }
    }
    if s.iterations > 0 {
        let n = s.iterations as f64;
        s.hang_rate = Some((s.hangs + s.deadlocks + s.silent_hangs) as f64 / n);
        s.stall_rate = Some(s.stalls as f64 / n);
    }
    s.latency_us = Percentiles::of(&h);
    s.decompress_latency_us = Percentiles::of(&dh);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use hilt_protocol::LatencyHisto;

    fn rec(variant: &str, outcome: Outcome, lat: &[(u64, u64)]) -> IterationRecord {
        IterationRecord {
            outcome,
            reads: lat.iter().map(|x| x.1).sum(),
            read_latency_us: LatencyHisto {
                buckets: lat.iter().map(|&(v, n)| [v, n]).collect(),
            },
            ..IterationRecord::blank(variant, 0, "b")
        }
    }

    #[test]
    fn infra_errors_never_count_as_hangs() {
        let rs = vec![
            rec("a", Outcome::Hang, &[(100, 10)]),
            rec("a", Outcome::InfraError, &[]),
            rec("a", Outcome::Pass, &[(200, 10)]),
            rec("b", Outcome::SilentHang, &[]),
            rec("b", Outcome::Stall, &[]),
            rec("b", Outcome::Deadlock, &[]),
        ];
        let s = summarize(&rs);
        assert_eq!(s[0].variant, "a");
        assert_eq!((s[0].iterations, s[0].hangs, s[0].infra_errors), (2, 1, 1));
        assert_eq!(s[0].hang_rate, Some(0.5));
        // A stall recovered: it is not a hang.
        assert_eq!((s[1].deadlocks, s[1].stalls), (1, 1));
        assert_eq!(s[1].hang_rate, Some(2.0 / 3.0));
        assert_eq!(s[1].stall_rate, Some(1.0 / 3.0));
        let p = s[0].latency_us.unwrap();
        assert!(p.p50 >= 100 && p.p50 <= 101, "{p:?}");
        assert!(p.p99 >= 200 && p.p99 <= 201, "{p:?}");
    }
}
