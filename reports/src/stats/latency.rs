//! Read latency: percentiles of merged HDR histograms with bootstrap
//! intervals over iterations.

use hdrhistogram::Histogram;
use hilt_protocol::histo::{new_histogram, MAX_US};
use hilt_protocol::LatencyHisto;
use serde::{Deserialize, Serialize};

/// The percentiles every latency table shows.
pub const QUANTILES: [(f64, &str); 4] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

/// A histogram as sorted distinct values with their counts: the form the
/// rank test and the bootstrap work on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grouped {
    pub values: Vec<u64>,
    pub counts: Vec<u64>,
}

impl Grouped {
    /// From (value, count) pairs in any order; equal values are merged and
    /// zero counts dropped.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut v: Vec<(u64, u64)> = pairs.into_iter().filter(|p| p.1 > 0).collect();
        v.sort_unstable_by_key(|p| p.0);
        let mut g = Grouped::default();
        for (value, count) in v {
            if g.values.last() == Some(&value) {
                *g.counts
                    .last_mut()
                    .expect("values and counts have the same length") += count;
            } else {
                g.values.push(value);
                g.counts.push(count);
            }
        }
        g
    }

    pub fn from_hdr(h: &Histogram<u64>) -> Self {
        Self::from_pairs(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value())),
        )
    }

    /// Values are mapped to their HDR bucket's highest equivalent value, as
    /// [`LatencyHisto::merge_into`] would, so that every iteration and every
    /// variant share one bucket grid and equal buckets compare as ties.
    pub fn from_histo(h: &LatencyHisto, grid: &Histogram<u64>) -> Self {
        Self::from_pairs(
            h.buckets
                .iter()
                .map(|&[v, n]| (grid.highest_equivalent(v.clamp(1, MAX_US)), n)),
        )
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The same quantile as `Histogram::value_at_quantile`: the first value
    /// whose cumulative count reaches ⌈q·total⌉ (at least 1).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let target = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut acc = 0;
        for (v, c) in self.values.iter().zip(&self.counts) {
            acc += c;
            if acc >= target {
                return Some(*v);
            }
        }
        self.values.last().copied()
    }

    pub fn to_histo(&self) -> LatencyHisto {
        LatencyHisto {
            buckets: self
                .values
                .iter()
                .zip(&self.counts)
                .map(|(&v, &c)| [v, c])
                .collect(),
        }
    }

    /// (value, fraction of samples ≤ value) at every distinct value.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let total = self.total() as f64;
        let mut acc = 0u64;
        self.values
            .iter()
            .zip(&self.counts)
            .map(|(&v, &c)| {
                acc += c;
                (v, acc as f64 / total)
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileEstimate {
    pub name: String,
    pub q: f64,
    pub value_us: u64,
    /// Bootstrap interval over iterations; None with fewer than 2
    /// iterations that read anything.
    pub ci_us: Option<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub samples: u64,
    /// Iterations that contributed at least one sample.
    pub iterations: u64,
    pub mean_us: f64,
    pub max_us: u64,
    pub quantiles: Vec<QuantileEstimate>,
    /// The merged histogram, on the HDR bucket grid.
    pub histogram: LatencyHisto,
}

impl LatencyStats {
    pub fn quantile(&self, name: &str) -> Option<&QuantileEstimate> {
        self.quantiles.iter().find(|q| q.name == name)
    }

    pub fn grouped(&self) -> Grouped {
        Grouped::from_pairs(self.histogram.buckets.iter().map(|b| (b[0], b[1])))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapOptions {
    pub resamples: u32,
    pub seed: u64,
    pub confidence: f64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            resamples: 1000,
            seed: 0x6869_6c74,
            confidence: 0.95,
        }
    }
}

/// Percentiles of the merged histograms of `iterations`, with percentile
/// bootstrap intervals from resampling whole iterations (reads within one
/// boot are correlated, iterations are the independent units).
pub fn latency_stats<'a>(
    iterations: impl IntoIterator<Item = &'a LatencyHisto>,
    boot: &BootstrapOptions,
) -> Option<LatencyStats> {
    let grid = new_histogram();
    let per_iter: Vec<Grouped> = iterations
        .into_iter()
        .map(|h| Grouped::from_histo(h, &grid))
        .filter(|g| g.total() > 0)
        .collect();
    if per_iter.is_empty() {
        return None;
    }
    let mut merged = new_histogram();
    for g in &per_iter {
        for (v, c) in g.values.iter().zip(&g.counts) {
            merged.saturating_record_n(*v, *c);
        }
    }
    let qs: Vec<f64> = QUANTILES.iter().map(|q| q.0).collect();
    let cis = if per_iter.len() >= 2 {
        Some(bootstrap(&per_iter, &qs, boot))
    } else {
        None
    };
    let quantiles = QUANTILES
        .iter()
        .enumerate()
        .map(|(i, &(q, name))| QuantileEstimate {
            name: name.to_string(),
            q,
            value_us: merged.value_at_quantile(q),
            ci_us: cis.as_ref().map(|c| c[i]),
        })
        .collect();
    Some(LatencyStats {
        samples: merged.len(),
        iterations: per_iter.len() as u64,
        mean_us: merged.mean(),
        max_us: merged.max(),
        quantiles,
        histogram: Grouped::from_hdr(&merged).to_histo(),
    })
}

/// Percentile-bootstrap intervals of quantiles `qs` (ascending).
pub fn bootstrap(per_iter: &[Grouped], qs: &[f64], boot: &BootstrapOptions) -> Vec<(u64, u64)> {
    // Every iteration's cumulative counts on one shared grid of values, so
    // that a replicate's count at or below any value is a sum over the
    // iterations it drew, and each quantile a binary search over the grid:
    // O(B · q · n · log grid) instead of summing whole histograms.
    let mut grid: Vec<u64> = per_iter
        .iter()
        .flat_map(|g| g.values.iter().copied())
        .collect();
    grid.sort_unstable();
    grid.dedup();
    let g = grid.len();
    let mut cum = vec![0u64; per_iter.len() * g];
    for (i, it) in per_iter.iter().enumerate() {
        let row = &mut cum[i * g..(i + 1) * g];
        for (v, &c) in it.values.iter().zip(&it.counts) {
            row[grid.binary_search(v).expect("value is on the grid")] += c;
        }
        for j in 1..g {
            row[j] += row[j - 1];
        }
    }
    let mut rng = fastrand::Rng::with_seed(boot.seed);
    let b = boot.resamples.max(1) as usize;
    let n = per_iter.len();
    let mut draws: Vec<Vec<u64>> = vec![Vec::with_capacity(b); qs.len()];
    let mut picks = vec![0usize; n];
    for _ in 0..b {
        picks.iter_mut().for_each(|p| *p = rng.usize(..n) * g);
        let at = |j: usize| picks.iter().map(|&row| cum[row + j]).sum::<u64>();
        let total = at(g - 1);
        let mut lo = 0;
        for (qi, &q) in qs.iter().enumerate() {
            let target = ((q * total as f64).ceil() as u64).max(1);
            // First grid index whose cumulative count reaches the target;
            // quantiles ascend, so the search starts where the last ended.
            let (mut a, mut z) = (lo, g - 1);
            while a < z {
                let mid = a + (z - a) / 2;
                if at(mid) >= target {
                    z = mid;
                } else {
                    a = mid + 1;
                }
            }
            draws[qi].push(grid[a]);
            lo = a;
        }
    }
    let tail = (1.0 - boot.confidence) / 2.0;
    draws
        .into_iter()
        .map(|mut d| {
            d.sort_unstable();
            let lo = ((tail * d.len() as f64).floor() as usize).min(d.len() - 1);
            let hi = (((1.0 - tail) * d.len() as f64).ceil() as usize).clamp(1, d.len()) - 1;
            (d[lo], d[hi])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lognormal_histo(rng: &mut fastrand::Rng, n: usize, median_us: f64) -> LatencyHisto {
        let mut h = new_histogram();
        for _ in 0..n {
            // Box–Muller: the test needs a skewed, realistic shape, not exact normality.
            let (u1, u2) = (rng.f64().max(1e-12), rng.f64());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            h.record((median_us * (0.8 * z).exp()) as u64 + 1).unwrap();
        }
        LatencyHisto::from_hdr(&h)
    }

    #[test]
    fn grouped_quantiles_agree_with_hdr() {
        let mut rng = fastrand::Rng::with_seed(7);
        let histos: Vec<LatencyHisto> = (0..5)
            .map(|i| lognormal_histo(&mut rng, 3000, 500.0 * (i + 1) as f64))
            .collect();
        let mut hdr = new_histogram();
        histos.iter().for_each(|h| h.merge_into(&mut hdr));
        let grid = new_histogram();
        let mut g = Grouped::default();
        for h in &histos {
            let x = Grouped::from_histo(h, &grid);
            g = Grouped::from_pairs(
                g.values
                    .iter()
                    .copied()
                    .zip(g.counts.iter().copied())
                    .chain(x.values.into_iter().zip(x.counts)),
            );
        }
        assert_eq!(g.total(), hdr.len());
        for q in [0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(g.quantile(q), Some(hdr.value_at_quantile(q)), "q = {q}");
        }
        let s = latency_stats(&histos, &BootstrapOptions::default()).unwrap();
        for e in &s.quantiles {
            assert_eq!(e.value_us, hdr.value_at_quantile(e.q), "{}", e.name);
        }
        assert_eq!(s.samples, 15_000);
        assert_eq!(s.max_us, hdr.max());
    }

    #[test]
    fn bootstrap_intervals_cover_the_estimate_and_are_reproducible() {
        let mut rng = fastrand::Rng::with_seed(11);
        let histos: Vec<LatencyHisto> = (0..20)
            .map(|i| lognormal_histo(&mut rng, 500, 1000.0 + 50.0 * i as f64))
            .collect();
        let boot = BootstrapOptions {
            resamples: 400,
            ..Default::default()
        };
        let a = latency_stats(&histos, &boot).unwrap();
        let b = latency_stats(&histos, &boot).unwrap();
        assert_eq!(a, b, "a fixed seed gives the same intervals");
        for e in &a.quantiles {
            let (lo, hi) = e.ci_us.unwrap();
            assert!(
                lo <= e.value_us && e.value_us <= hi,
                "{}: {lo} <= {} <= {hi}",
                e.name,
                e.value_us
            );
        }
        let p50 = a.quantile("p50").unwrap().ci_us.unwrap();
        assert!(
            p50.0 < p50.1,
            "iterations differ, so the interval has width: {p50:?}"
        );
        // Medians run from 1000 to 1950 µs across iterations: the pooled
        // median's interval sits well inside that range.
        assert!(p50.0 > 1000 && p50.1 < 1950, "{p50:?}");
        let other = latency_stats(&histos, &BootstrapOptions { seed: 99, ..boot }).unwrap();
        assert_ne!(a.quantiles, other.quantiles, "the seed matters");
    }

    #[test]
    fn bootstrap_replicates_match_summing_the_drawn_histograms() {
        // One replicate, done the slow way: merge the drawn iterations and
        // take the quantile of the merged histogram.
        let mut rng = fastrand::Rng::with_seed(3);
        let grid = new_histogram();
        let per: Vec<Grouped> = (0..7)
            .map(|i| {
                Grouped::from_histo(
                    &lognormal_histo(&mut rng, 300, 200.0 * (i + 1) as f64),
                    &grid,
                )
            })
            .collect();
        let boot = BootstrapOptions {
            resamples: 1,
            seed: 5,
            confidence: 0.95,
        };
        let mut draw = fastrand::Rng::with_seed(5);
        let picks: Vec<usize> = (0..per.len()).map(|_| draw.usize(..per.len())).collect();
        let merged = Grouped::from_pairs(picks.iter().flat_map(|&i| {
            per[i]
                .values
                .iter()
                .copied()
                .zip(per[i].counts.iter().copied())
        }));
        let qs = [0.5, 0.9, 0.99];
        let got = bootstrap(&per, &qs, &boot);
        for (q, (lo, hi)) in qs.iter().zip(got) {
            let want = merged.quantile(*q).unwrap();
            assert_eq!((lo, hi), (want, want), "q = {q}");
        }
    }

    #[test]
    fn one_iteration_has_no_interval_and_empty_has_no_stats() {
        let h = LatencyHisto {
            buckets: vec![[100, 3], [200, 1]],
        };
        let s = latency_stats([&h], &BootstrapOptions::default()).unwrap();
        assert_eq!(s.quantile("p50").unwrap().ci_us, None);
        assert_eq!(s.quantile("p50").unwrap().value_us, 100);
        assert_eq!(s.quantile("p99").unwrap().value_us, 200);
        assert!(latency_stats([&LatencyHisto::default()], &BootstrapOptions::default()).is_none());
        let g = Grouped::from_pairs([(5, 1), (1, 1), (5, 2), (3, 0)]);
        assert_eq!(
            (g.values.clone(), g.counts.clone()),
            (vec![1, 5], vec![1, 3])
        );
        assert_eq!(g.cdf(), vec![(1, 0.25), (5, 1.0)]);
    }
}
