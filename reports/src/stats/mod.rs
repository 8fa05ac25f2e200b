//! The statistics a report rests on.
//!
//! Distributions and special functions come from `statrs`. What no
//! maintained crate offers, or offers accurately, is written here on top of
//! them: Fisher's exact test (statrs' loses all precision below p ≈ 1e-12),
//! Wilson intervals, the exact power of Fisher's test, Kaplan–Meier with
//! Greenwood intervals, the log-rank test, Mann–Whitney U on bucketed
//! histograms and the bootstrap over iterations. Each is checked against
//! reference values from SciPy, statsmodels and lifelines (see the tests
//! for how they were obtained).

pub mod hypothesis;
pub mod latency;
pub mod rate;
pub mod sequential;
pub mod survival;

use statrs::distribution::{ContinuousCDF, Normal};

/// The two-sided standard normal quantile for a confidence level, e.g. 1.96 for 0.95.
pub fn z_two_sided(confidence: f64) -> f64 {
    standard_normal_quantile(0.5 + confidence / 2.0)
}

pub(crate) fn standard_normal_quantile(p: f64) -> f64 {
    standard_normal().inverse_cdf(p)
}

pub(crate) fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("the standard normal is valid")
}

#[cfg(test)]
pub(crate) fn assert_close(got: f64, want: f64, rel: f64) {
    let tol = rel * want.abs().max(1e-300);
    assert!(
        (got - want).abs() <= tol,
        "got {got:e}, want {want:e} (relative tolerance {rel:e})"
    );
}
