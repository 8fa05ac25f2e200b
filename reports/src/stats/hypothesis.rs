//! Hypothesis tests: Fisher's exact test on hang counts, Mann–Whitney U on
//! latency histograms, the log-rank test on times to hang.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};
use statrs::function::factorial::ln_binomial;

use super::latency::Grouped;
use super::standard_normal;

/// Two-sided Fisher exact p for hang counts `a_k` of `a_n` against `b_k` of
/// `b_n`: the probability, given both margins, of a table as likely as the
/// observed one or less (SciPy's definition, with its 1e-7 relative tolerance).
pub fn fisher_two_sided(a_k: u64, a_n: u64, b_k: u64, b_n: u64) -> Option<f64> {
    let (support, pmf) = fisher_null(a_k, a_n, b_k, b_n)?;
    let observed = pmf[(a_k - support) as usize] * (1.0 + 1e-7);
    Some(pmf.iter().filter(|&&p| p <= observed).sum::<f64>().min(1.0))
}

/// One-sided Fisher exact p for "the rate of `a` is higher than that of `b`".
pub fn fisher_greater(a_k: u64, a_n: u64, b_k: u64, b_n: u64) -> Option<f64> {
    let (support, pmf) = fisher_null(a_k, a_n, b_k, b_n)?;
    Some(pmf[(a_k - support) as usize..].iter().sum::<f64>().min(1.0))
}

/// The null distribution of `a`'s hang count given the margins, as (lowest
/// possible count, probabilities from there on).
///
/// statrs 0.18's `fishers_exact` computes two-sided p as 1 − cdf, which
/// cancels catastrophically below ~1e-12 (it returns negative values for
/// 160/494 against 4/495 hangs); summing the tail probabilities, each from
/// statrs' log-binomials, keeps full relative precision down to 1e-300.
fn fisher_null(a_k: u64, a_n: u64, b_k: u64, b_n: u64) -> Option<(u64, Vec<f64>)> {
    if a_n == 0 || b_n == 0 || a_k > a_n || b_k > b_n {
        return None;
    }
    let n = a_n + b_n;
    let k = a_k + b_k;
    let lo = a_n.saturating_sub(n - k);
    let hi = k.min(a_n);
    let ln_total = ln_binomial(n, a_n);
    let pmf = (lo..=hi)
        .map(|x| (ln_binomial(k, x) + ln_binomial(n - k, a_n - x) - ln_total).exp())
        .collect();
    Some((lo, pmf))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MwuMethod {
    Exact,
    /// Normal approximation with tie and continuity corrections.
    Asymptotic,
}

impl MwuMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MwuMethod::Exact => "exact",
            MwuMethod::Asymptotic => "normal approximation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// U of the first sample: pairs where it is larger, ties counting half.
    pub u: f64,
    pub n1: u64,
    pub n2: u64,
    /// Two-sided.
    pub p: f64,
    pub method: MwuMethod,
    /// U / (n1·n2): the probability that a read of the first sample is slower
    /// than one of the second (ties half). 0.5 means no shift.
    pub prob_first_larger: f64,
}

/// Above this many pairs the exact null distribution is not computed
/// (it needs n1·n2 floats); SciPy would, at that size the normal
/// approximation is indistinguishable.
const EXACT_MAX_PAIRS: u64 = 1_000_000;

/// Mann–Whitney U test on two samples given as value → count histograms.
///
/// Ranks are computed per distinct value, so a bucketed histogram is tested
/// exactly as its expanded per-read samples would be, ties included, in time
/// proportional to the number of distinct values. The method follows SciPy's
/// `method="auto"`: exact when one sample has at most 8 values and nothing
/// is tied, otherwise the normal approximation with tie correction and
/// continuity correction.
pub fn mann_whitney(x: &Grouped, y: &Grouped) -> Option<MannWhitney> {
    let (n1, n2) = (x.total(), y.total());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (mut i, mut j) = (0, 0);
    let mut below = 0.0f64;
    let mut rank_sum_x = 0.0f64;
    let mut tie_term = 0.0f64;
    let mut ties = false;
    while i < x.values.len() || j < y.values.len() {
        let vx = x.values.get(i).copied().unwrap_or(u64::MAX);
        let vy = y.values.get(j).copied().unwrap_or(u64::MAX);
        let v = vx.min(vy);
        let a = if vx == v { x.counts[i] as f64 } else { 0.0 };
        let b = if vy == v { y.counts[j] as f64 } else { 0.0 };
        if vx == v {
            i += 1;
        }
        if vy == v {
            j += 1;
        }
        let t = a + b;
        rank_sum_x += a * (below + (t + 1.0) / 2.0);
        tie_term += t * t * t - t;
        ties |= t > 1.0;
        below += t;
    }
    let (f1, f2) = (n1 as f64, n2 as f64);
    let u1 = rank_sum_x - f1 * (f1 + 1.0) / 2.0;
    let u = u1.max(f1 * f2 - u1);
    let exact = (n1 <= 8 || n2 <= 8) && !ties && n1 * n2 <= EXACT_MAX_PAIRS;
    let (p, method) = if exact {
        (
            2.0 * exact_sf(u.round() as u64, n1.min(n2), n1.max(n2)),
            MwuMethod::Exact,
        )
    } else {
        let n = f1 + f2;
        let s = (f1 * f2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
        let z = (u - f1 * f2 / 2.0 - 0.5) / s;
        let p = if s > 0.0 {
            2.0 * standard_normal().sf(z)
        } else {
            1.0
        };
        (p, MwuMethod::Asymptotic)
    };
    Some(MannWhitney {
        u: u1,
        n1,
        n2,
        p: p.clamp(0.0, 1.0),
        method,
        prob_first_larger: u1 / (f1 * f2),
    })
}

/// P(U ≥ u) under the null for samples of sizes m ≤ n without ties.
///
/// The counts of arrangements by U are the coefficients of the Gaussian
/// binomial [m+n choose m](q) = Π_{i=1..m} (1 − q^(n+i)) / (1 − q^i),
/// built one factor at a time: multiplying by (1 − q^(n+i)) and then dividing
/// by (1 − q^i), which is a running sum with stride i.
fn exact_sf(u: u64, m: u64, n: u64) -> f64 {
    let max = (m * n) as usize;
    let mut c = vec![0.0f64; max + 1];
    c[0] = 1.0;
    for i in 1..=m as usize {
        let shift = n as usize + i;
        for k in (shift..=max).rev() {
            c[k] -= c[k - shift];
        }
        for k in i..=max {
            c[k] += c[k - i];
        }
    }
    let total: f64 = c.iter().sum();
    let tail: f64 = c[(u as usize).min(max + 1)..].iter().sum();
    tail / total
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogRank {
    pub chi2: f64,
    pub p: f64,
    /// Observed and expected hangs in the first sample.
    pub observed_first: f64,
    pub expected_first: f64,
}

/// Log-rank test between two samples of (time, hung) observations, where
/// `hung == false` means censored at that time.
pub fn log_rank(a: &[(f64, bool)], b: &[(f64, bool)]) -> Option<LogRank> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut times: Vec<f64> = a.iter().chain(b).filter(|o| o.1).map(|o| o.0).collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let (mut o1, mut e1, mut var) = (0.0, 0.0, 0.0);
    for &t in &times {
        let at_risk = |s: &[(f64, bool)]| s.iter().filter(|o| o.0 >= t).count() as f64;
        let died = |s: &[(f64, bool)]| s.iter().filter(|o| o.1 && o.0 == t).count() as f64;
        let (n1, n2) = (at_risk(a), at_risk(b));
        let (d1, d2) = (died(a), died(b));
        let (n, d) = (n1 + n2, d1 + d2);
        o1 += d1;
        e1 += d * n1 / n;
        if n > 1.0 {
            var += d * (n1 / n) * (n2 / n) * (n - d) / (n - 1.0);
        }
    }
    if var <= 0.0 {
        return None;
    }
    let chi2 = (o1 - e1) * (o1 - e1) / var;
    let p = ChiSquared::new(1.0)
        .expect("one degree of freedom")
        .sf(chi2);
    Some(LogRank {
        chi2,
        p,
        observed_first: o1,
        expected_first: e1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::assert_close;

    // scipy 1.17: scipy.stats.fisher_exact(table).pvalue
    #[test]
    fn fisher_matches_scipy() {
        assert_close(
            fisher_two_sided(8, 8, 0, 7).unwrap(),
            0.0001554001554001554,
            1e-9,
        );
        assert_close(
            fisher_two_sided(3, 4, 1, 4).unwrap(),
            0.48571428571428565,
            1e-9,
        );
        assert_close(
            fisher_two_sided(12, 100, 3, 100).unwrap(),
            0.028671314973177094,
            1e-9,
        );
        assert_close(
            fisher_two_sided(1, 100, 9, 100).unwrap(),
            0.018487679877476362,
            1e-9,
        );
        assert_eq!(fisher_two_sided(0, 10, 0, 10), Some(1.0));
        assert_eq!(fisher_two_sided(0, 0, 1, 3), None);
        // alternative="greater" on [[9, 91], [1, 99]]
        assert_close(
            fisher_greater(9, 100, 1, 100).unwrap(),
            0.009243839938738181,
            1e-9,
        );
        assert!(fisher_greater(1, 100, 9, 100).unwrap() > 0.99);
        // Far below where 1 − cdf cancels to nothing (or below zero).
        assert_close(
            fisher_two_sided(160, 494, 4, 495).unwrap(),
            4.287553752090397e-49,
            1e-6,
        );
        assert_close(
            fisher_greater(160, 494, 4, 495).unwrap(),
            4.184052130498442e-49,
            1e-6,
        );
        assert_close(
            fisher_two_sided(500, 500, 0, 500).unwrap(),
            7.399507995628049e-300,
            1e-6,
        );
    }

    #[test]
    fn fisher_agrees_with_statrs_where_statrs_is_accurate() {
        use statrs::stats_tests::{fishers_exact, Alternative};
        for a_n in 1..=9u64 {
            for b_n in 1..=9u64 {
                for a_k in 0..=a_n {
                    for b_k in 0..=b_n {
                        let table = [a_k, a_n - a_k, b_k, b_n - b_k];
                        let ours = fisher_two_sided(a_k, a_n, b_k, b_n).unwrap();
                        let theirs = fishers_exact(&table, Alternative::TwoSided).unwrap();
                        assert!(
                            (ours - theirs).abs() < 1e-9,
                            "{table:?}: {ours} vs statrs {theirs}"
                        );
                        let ours = fisher_greater(a_k, a_n, b_k, b_n).unwrap();
                        let theirs = fishers_exact(&table, Alternative::Greater).unwrap();
                        assert!(
                            (ours - theirs).abs() < 1e-9,
                            "{table:?} greater: {ours} vs statrs {theirs}"
                        );
                    }
                }
            }
        }
    }

    fn g(pairs: &[(u64, u64)]) -> Grouped {
        Grouped::from_pairs(pairs.iter().copied())
    }

    fn ones(v: &[u64]) -> Grouped {
        g(&v.iter().map(|&x| (x, 1)).collect::<Vec<_>>())
    }

    // scipy 1.17: scipy.stats.mannwhitneyu(x, y) (method "auto" picks exact)
    #[test]
    fn mann_whitney_exact_matches_scipy() {
        let r = mann_whitney(&ones(&[1, 2, 3, 4, 5]), &ones(&[6, 7, 8, 9, 10])).unwrap();
        assert_eq!(r.method, MwuMethod::Exact);
        assert_eq!(r.u, 0.0);
        assert_close(r.p, 0.007936507936507936, 1e-12);
        assert_eq!(r.prob_first_larger, 0.0);
        // mannwhitneyu([3, 1, 7], [2, 9, 8, 4], method="exact") → U = 3, p = 0.4
        let r = mann_whitney(&ones(&[3, 1, 7]), &ones(&[2, 9, 8, 4])).unwrap();
        assert_eq!(r.u, 3.0);
        assert_close(r.p, 0.4, 1e-12);
    }

    // scipy 1.17: mannwhitneyu(x, y, method="asymptotic", use_continuity=True)
    #[test]
    fn mann_whitney_asymptotic_matches_scipy() {
        // Raw samples with ties.
        let x = g(&[(1, 1), (2, 2), (3, 3), (4, 1), (5, 2), (9, 1)]);
        let y = g(&[
            (2, 1),
            (3, 1),
            (4, 2),
            (5, 1),
            (6, 2),
            (7, 1),
            (8, 2),
            (9, 1),
            (10, 1),
        ]);
        let r = mann_whitney(&x, &y).unwrap();
        assert_eq!(r.method, MwuMethod::Asymptotic);
        assert_eq!(r.u, 28.0);
        assert_close(r.p, 0.036450532109172394, 1e-9);
        // Bucketed histograms, against numpy.repeat-expanded samples.
        let x = g(&[(100, 50), (200, 30), (400, 15), (800, 5)]);
        let y = g(&[(100, 30), (200, 40), (400, 20), (800, 8), (1600, 2)]);
        let r = mann_whitney(&x, &y).unwrap();
        assert_eq!(r.u, 3920.0);
        assert_close(r.p, 0.0051133185763362135, 1e-9);
        assert!(r.prob_first_larger < 0.5);
    }

    #[test]
    fn mann_whitney_identical_samples_are_not_different() {
        let x = g(&[(100, 500), (200, 300)]);
        let r = mann_whitney(&x, &x).unwrap();
        assert_eq!(r.prob_first_larger, 0.5);
        assert!(r.p > 0.95, "{r:?}");
        assert!(mann_whitney(&x, &g(&[])).is_none());
    }

    // lifelines 0.30: logrank_test on the Gehan/Freireich 6-MP (censored)
    // versus placebo remission times; R's survdiff gives the same 16.8.
    #[test]
    fn log_rank_matches_lifelines() {
        let drug: Vec<(f64, bool)> = [6, 6, 6, 7, 10, 13, 16, 22, 23]
            .iter()
            .map(|&t| (t as f64, true))
            .chain(
                [6, 9, 10, 11, 17, 19, 20, 25, 32, 32, 34, 35]
                    .iter()
                    .map(|&t| (t as f64, false)),
            )
            .collect();
        let placebo: Vec<(f64, bool)> = [
            1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23,
        ]
        .iter()
        .map(|&t| (t as f64, true))
        .collect();
        let r = log_rank(&drug, &placebo).unwrap();
        assert_close(r.chi2, 16.792940989216547, 1e-9);
        assert_close(r.p, 4.168809109334511e-05, 1e-6);
        assert_eq!(r.observed_first, 9.0);
        assert!(r.expected_first > 9.0);
    }
}
