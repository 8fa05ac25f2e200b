//! Hang rates: confidence intervals and how many iterations an experiment needs.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, Discrete};
use statrs::function::factorial::ln_binomial;

use super::z_two_sided;

/// Wilson score interval for `k` successes out of `n`.
///
/// Chosen over the Wald interval because hang counts are often 0 or `n`,
/// where Wald collapses to a zero-width interval and claims certainty.
pub fn wilson(k: u64, n: u64, confidence: f64) -> Option<(f64, f64)> {
    if n == 0 || k > n {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let z = z_two_sided(confidence);
    let p = k / n;
    let z2n = z * z / n;
    let centre = (p + z2n / 2.0) / (1.0 + z2n);
    let half = z / (1.0 + z2n) * (p * (1.0 - p) / n + z2n / (4.0 * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Iterations per variant needed to tell hang rate `p1` from `p2`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleSize {
    pub p1: f64,
    pub p2: f64,
    pub alpha: f64,
    pub power: f64,
    /// Smallest n per variant at which Fisher's exact test (the test the
    /// report uses) reaches `power`, by exact enumeration; None above
    /// [`EXACT_LIMIT`] iterations.
    pub exact: Option<u64>,
    /// The power Fisher's test has at `exact`.
    pub exact_power: Option<f64>,
    /// Normal approximation with Fleiss' continuity correction: close to
    /// the exact figure and cheap at any size.
    pub approx: u64,
}

impl SampleSize {
    /// The figure to quote: the exact one when it was computed.
    pub fn per_variant(&self) -> u64 {
        self.exact.unwrap_or(self.approx)
    }
}

/// Exact power is not enumerated beyond this many iterations per variant
/// (each candidate n costs n² log n), nor when the approximation is beyond it.
pub const EXACT_LIMIT: u64 = 1000;

/// None when the rates are equal (no finite number of iterations tells them
/// apart) or out of [0, 1].
pub fn sample_size(p1: f64, p2: f64, alpha: f64, power: f64) -> Option<SampleSize> {
    let valid = |p: f64| (0.0..=1.0).contains(&p);
    if !valid(p1)
        || !valid(p2)
        || (p1 - p2).abs() < 1e-12
        || !(0.0..1.0).contains(&alpha)
        || !(0.0..1.0).contains(&power)
    {
        return None;
    }
    let approx = fleiss_n(p1, p2, alpha, power).ceil().max(2.0) as u64;
    let exact = if approx <= EXACT_LIMIT {
        exact_n(p1, p2, alpha, power, approx)
    } else {
        None
    };
    Some(SampleSize {
        p1,
        p2,
        alpha,
        power,
        exact: exact.map(|e| e.0),
        exact_power: exact.map(|e| e.1),
        approx,
    })
}

/// Fleiss, Levin & Paik, "Statistical Methods for Rates and Proportions",
/// the two-sample size formula with continuity correction.
pub fn fleiss_n(p1: f64, p2: f64, alpha: f64, power: f64) -> f64 {
    let za = z_two_sided(1.0 - alpha);
    let zb = super::standard_normal_quantile(power);
    let pbar = (p1 + p2) / 2.0;
    let d = (p1 - p2).abs();
    let n = (za * (2.0 * pbar * (1.0 - pbar)).sqrt()
        + zb * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt())
    .powi(2)
        / (d * d);
    n / 4.0 * (1.0 + (1.0 + 4.0 / (n * d)).sqrt()).powi(2)
}

fn exact_n(p1: f64, p2: f64, alpha: f64, target: f64, start: u64) -> Option<(u64, f64)> {
    let reaches = |n: u64| fisher_power(n, p1, p2, alpha) >= target;
    // Find a bracket [lo, hi] with hi reaching the target.
    let mut hi = start.clamp(2, EXACT_LIMIT);
    while !reaches(hi) {
        if hi >= EXACT_LIMIT {
            return None;
        }
        hi = (hi * 2).min(EXACT_LIMIT);
    }
    let mut lo = 1;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // Exact power is a sawtooth in n, so bisection lands on a crossing but
    // not necessarily the first one nearby.
    while hi > 2 && reaches(hi - 1) {
        hi -= 1;
    }
    Some((hi, fisher_power(hi, p1, p2, alpha)))
}

/// Power of the two-sided Fisher exact test with `n` iterations per variant
/// and true hang rates `p1`, `p2`: the probability that p ≤ `alpha`.
pub fn fisher_power(n: u64, p1: f64, p2: f64, alpha: f64) -> f64 {
    let b1 = binomial_pmfs(n, p1);
    let b2 = binomial_pmfs(n, p2);
    let mut power = 0.0;
    // Tables sharing the total number of hangs k share one hypergeometric
    // null distribution, so each k costs one sort instead of one test per table.
    let mut pmf: Vec<(f64, u64)> = Vec::with_capacity(n as usize + 1);
    let mut prefix: Vec<f64> = Vec::with_capacity(n as usize + 2);
    for k in 0..=2 * n {
        let lo = k.saturating_sub(n);
        let hi = k.min(n);
        let ln_total = ln_binomial(2 * n, k);
        pmf.clear();
        for x in lo..=hi {
            pmf.push((
                (ln_binomial(n, x) + ln_binomial(n, k - x) - ln_total).exp(),
                x,
            ));
        }
        pmf.sort_by(|a, b| a.0.total_cmp(&b.0));
        prefix.clear();
        prefix.push(0.0);
        let mut acc = 0.0;
        for (p, _) in &pmf {
            acc += p;
            prefix.push(acc);
        }
        for &(p_obs, x1) in &pmf {
            let weight = b1[x1 as usize] * b2[(k - x1) as usize];
            if weight == 0.0 {
                continue;
            }
            // SciPy's tolerance for "as or less likely than observed".
            let cut = p_obs * (1.0 + 1e-7);
            let idx = pmf.partition_point(|e| e.0 <= cut);
            if prefix[idx].min(1.0) <= alpha {
                power += weight;
            }
        }
    }
    power
}

fn binomial_pmfs(n: u64, p: f64) -> Vec<f64> {
    let b = Binomial::new(p, n).expect("p is within [0, 1]");
    (0..=n).map(|x| b.pmf(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::assert_close;

    // Reference intervals from statsmodels 0.15:
    // proportion_confint(k, n, alpha=0.05, method="wilson").
    #[test]
    fn wilson_matches_statsmodels() {
        let cases = [
            (8, 8, 0.6755924351161198, 1.0),
            (0, 7, 0.0, 0.3543304350666875),
            (3, 10, 0.10779126740630104, 0.6032218525388546),
            (1, 2, 0.09453120573423068, 0.9054687942657693),
            (50, 1000, 0.03813026239274881, 0.06531382024425081),
        ];
        for (k, n, lo, hi) in cases {
            let (l, h) = wilson(k, n, 0.95).unwrap();
            assert!((l - lo).abs() < 1e-12, "{k}/{n}: lower {l} vs {lo}");
            assert!((h - hi).abs() < 1e-12, "{k}/{n}: upper {h} vs {hi}");
        }
        assert_eq!(wilson(0, 0, 0.95), None);
    }

    // Reference: the formula evaluated in Python with scipy.stats.norm.ppf.
    #[test]
    fn fleiss_formula() {
        assert_close(fleiss_n(0.5, 0.75, 0.05, 0.8), 65.42889646903588, 1e-9);
        assert_close(fleiss_n(0.4, 0.1, 0.05, 0.8), 37.871657431649155, 1e-9);
        assert_close(fleiss_n(1.0, 0.0, 0.05, 0.8), 3.6464933412182754, 1e-9);
    }

    // Reference powers by brute force in Python: for every pair of hang
    // counts (x1, x2), binom.pmf(x1, n, p1) * binom.pmf(x2, n, p2) summed
    // over the tables where scipy.stats.fisher_exact(...).pvalue < 0.05.
    #[test]
    fn exact_power_matches_brute_force() {
        assert_close(fisher_power(35, 0.4, 0.1, 0.05), 0.784769762868074, 1e-9);
        assert_close(fisher_power(36, 0.4, 0.1, 0.05), 0.800390263055087, 1e-9);
        assert_close(fisher_power(63, 0.5, 0.75, 0.05), 0.7941721206857758, 1e-9);
        assert_close(fisher_power(64, 0.5, 0.75, 0.05), 0.8017144906038225, 1e-9);
    }

    #[test]
    fn sample_sizes() {
        let s = sample_size(0.4, 0.1, 0.05, 0.8).unwrap();
        assert_eq!((s.exact, s.approx), (Some(36), 38));
        let s = sample_size(0.5, 0.75, 0.05, 0.8).unwrap();
        assert_eq!((s.exact, s.approx), (Some(64), 66));
        // Every unpatched run hangs, no patched run does: 3 per variant give
        // p = 0.1 at best, 4 give p = 0.029.
        let s = sample_size(1.0, 0.0, 0.05, 0.8).unwrap();
        assert_eq!(s.exact, Some(4));
        assert_eq!(s.exact_power, Some(1.0));
        assert!(sample_size(0.2, 0.2, 0.05, 0.8).is_none());
        // Too rare to enumerate: falls back to the approximation.
        let s = sample_size(0.01, 0.005, 0.05, 0.8).unwrap();
        assert_eq!(s.exact, None);
        assert!(s.approx > EXACT_LIMIT, "{s:?}");
        assert_eq!(s.per_variant(), s.approx);
    }
}
