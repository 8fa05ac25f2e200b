//! Latency histograms on the wire.
//!
//! The agent records into an HDR histogram and ships only its non-empty
//! buckets, so a sparse interval costs a few bytes; the host rebuilds an HDR
//! histogram and merges intervals without losing precision.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest trackable latency: one hour in microseconds. A read slower than
/// that is a hang, which is reported by other means, and is clamped here.
pub const MAX_US: u64 = 3_600_000_000;
pub const SIGFIG: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, SIGFIG).expect("static bounds are valid")
}

/// Non-empty buckets as `[value_us, count]` pairs, value being the bucket's
/// highest equivalent value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHisto {
    pub buckets: Vec<[u64; 2]>,
}

impl LatencyHisto {
    pub fn from_hdr(h: &Histogram<u64>) -> Self {
        let buckets = h
            .iter_recorded()
            .map(|v| [v.value_iterated_to(), v.count_at_value()])
            .collect();
        Self { buckets }
    }

    pub fn count(&self) -> u64 {
        // The counts come from the board: a sum past u64::MAX must not wrap
        // to a small number.
        self.buckets
            .iter()
            .fold(0u64, |sum, b| sum.saturating_add(b[1]))
    }

    /// Adds these buckets into `h`; values beyond the range are clamped
    /// rather than dropped so the count stays right.
    pub fn merge_into(&self, h: &mut Histogram<u64>) {
        for [v, n] in &self.buckets {
            h.saturating_record_n((*v).clamp(1, MAX_US), *n);
        }
    }

    pub fn to_hdr(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        self.merge_into(&mut h);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20, finding 8: the sum wrapped in release builds, so two huge
    /// bucket counts added up to a small one.
    #[test]
    fn a_count_past_u64_max_saturates() {
        let h = LatencyHisto {
            buckets: vec![[1, u64::MAX], [2, 2]],
        };
        assert_eq!(h.count(), u64::MAX);
    }

    /// Issue 20, finding 8: CI tests the release profile, which wrapped on
    /// overflow; the workspace's crates now check it there too (Cargo.toml).
    #[test]
    fn the_test_build_checks_integer_overflow() {
        let r =
            std::panic::catch_unwind(|| std::hint::black_box(u8::MAX) + std::hint::black_box(1));
        assert!(r.is_err(), "255 + 1 gave {r:?}");
    }

    #[test]
    fn roundtrip_preserves_quantiles() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 7).unwrap();
        }
        let wire = LatencyHisto::from_hdr(&h);
        assert_eq!(wire.count(), 10_000);
        let back = wire.to_hdr();
        for q in [0.5, 0.99, 0.999] {
            let (a, b) = (h.value_at_quantile(q), back.value_at_quantile(q));
            assert!(a.abs_diff(b) * 1000 <= a, "q{q}: {a} vs {b}");
        }
    }
}

/// Lock-free log-linear bucketing, used by the agent's shared-memory
/// counters where an HDR histogram cannot live (it would need a lock, and a
/// reader stuck in D state must never hold one the watcher needs). 32
/// sub-buckets per power of two bound the error at about 3%.
pub mod buckets {
    pub const SUB_BITS: u32 = 5;
    pub const SUB: usize = 1 << SUB_BITS;
    /// Enough exponents for values up to 2^40 µs (12 days).
    pub const COUNT: usize = SUB * 36;

    pub fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros();
        let sub = ((v >> (exp - SUB_BITS)) as usize) & (SUB - 1);
        (((exp - SUB_BITS + 1) as usize) * SUB + sub).min(COUNT - 1)
    }

    /// The highest value that maps to bucket `i`.
    pub fn value(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let exp = (i / SUB) as u32 + SUB_BITS - 1;
        let sub = (i % SUB) as u64;
        let low = (1u64 << exp) | (sub << (exp - SUB_BITS));
        low + (1u64 << (exp - SUB_BITS)) - 1
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_value_lands_in_a_bucket_that_bounds_it() {
            for v in (0..100_000u64).chain([1 << 20, 123_456_789, 1 << 39]) {
                let i = index(v);
                assert!(value(i) >= v, "{v} -> {i} -> {}", value(i));
                if i > 0 {
                    assert!(value(i - 1) < v, "{v} also fits bucket {}", i - 1);
                }
                assert!((value(i) - v) * 32 <= v.max(32), "error too large for {v}");
            }
        }
    }
}
