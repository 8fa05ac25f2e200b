//! Time to hang as a Kaplan–Meier survival curve.

use serde::{Deserialize, Serialize};

use super::z_two_sided;

/// One step of the curve, at a time where something happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KmStep {
    pub t: f64,
    pub at_risk: u64,
    pub events: u64,
    pub censored: u64,
    /// Fraction still without a hang just after `t`.
    pub survival: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmCurve {
    pub n: u64,
    pub events: u64,
    pub steps: Vec<KmStep>,
    /// First time the curve is at or below one half; None while it is not.
    pub median: Option<f64>,
}

impl KmCurve {
    /// Survival just after `t` (1 before the first step).
    pub fn at(&self, t: f64) -> f64 {
        self.steps
            .iter()
            .take_while(|s| s.t <= t)
            .last()
            .map_or(1.0, |s| s.survival)
    }
}

/// Kaplan–Meier estimate from (time, hung) observations; `hung == false`
/// means censored at that time (the iteration ended without a hang).
///
/// Pointwise intervals use Greenwood's variance on the log(−log S) scale
/// (the "exponential Greenwood" interval, lifelines' default), which stays
/// inside [0, 1] unlike the plain Greenwood interval.
pub fn kaplan_meier(obs: &[(f64, bool)], confidence: f64) -> KmCurve {
    let z = z_two_sided(confidence);
    let mut sorted: Vec<(f64, bool)> = obs.iter().copied().filter(|o| o.0.is_finite()).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = sorted.len() as u64;
    let mut at_risk = n;
    let mut survival = 1.0f64;
    let mut greenwood = 0.0f64;
    let mut steps = Vec::new();
    let mut median = None;
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].0;
        let (mut events, mut censored) = (0u64, 0u64);
        while i < sorted.len() && sorted[i].0 == t {
            if sorted[i].1 {
                events += 1;
            } else {
                censored += 1;
            }
            i += 1;
        }
        if events > 0 {
            let (d, r) = (events as f64, at_risk as f64);
            survival *= 1.0 - d / r;
            if at_risk > events {
                greenwood += d / (r * (r - d));
            }
        }
        let (lower, upper) = loglog_interval(survival, greenwood, z);
        steps.push(KmStep {
            t,
            at_risk,
            events,
            censored,
            survival,
            lower,
            upper,
        });
        if median.is_none() && survival <= 0.5 {
            median = Some(t);
        }
        at_risk -= events + censored;
    }
    KmCurve {
        n,
        events: steps.iter().map(|s| s.events).sum(),
        steps,
        median,
    }
}

fn loglog_interval(s: f64, greenwood: f64, z: f64) -> (f64, f64) {
    if s >= 1.0 {
        return (1.0, 1.0);
    }
    if s <= 0.0 {
        return (0.0, 0.0);
    }
    let ln = s.ln();
    let se = (greenwood / (ln * ln)).sqrt();
    let c = (-ln).ln();
    ((-(c + z * se).exp()).exp(), (-(c - z * se).exp()).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    // lifelines 0.30: KaplanMeierFitter().fit(T, E) on the Gehan/Freireich
    // 6-MP remission times (survival_function_ and confidence_interval_).
    #[test]
    fn matches_lifelines_on_the_6mp_data() {
        let events = [6, 6, 6, 7, 10, 13, 16, 22, 23];
        let censored = [6, 9, 10, 11, 17, 19, 20, 25, 32, 32, 34, 35];
        let obs: Vec<(f64, bool)> = events
            .iter()
            .map(|&t| (t as f64, true))
            .chain(censored.iter().map(|&t| (t as f64, false)))
            .collect();
        let km = kaplan_meier(&obs, 0.95);
        let want = [
            (
                6.0,
                0.857142857142857,
                0.6197179552659838,
                0.9515517476469969,
            ),
            (
                7.0,
                0.8067226890756299,
                0.5631465646222333,
                0.9228090192028802,
            ),
            (
                10.0,
                0.7529411764705878,
                0.5031995107999564,
                0.8893618351692651,
            ),
            (
                13.0,
                0.6901960784313722,
                0.4316102224861839,
                0.8490659633494505,
            ),
            (
                16.0,
                0.6274509803921566,
                0.36751085598750194,
                0.8049121894718411,
            ),
            (
                22.0,
                0.5378151260504199,
                0.26777893676713493,
                0.7467907176353943,
            ),
            (
                23.0,
                0.44817927170868327,
                0.18805200595923233,
                0.6801426284952412,
            ),
            (
                35.0,
                0.44817927170868327,
                0.18805200595923233,
                0.6801426284952412,
            ),
        ];
        for (t, s, lo, hi) in want {
            let step = km.steps.iter().find(|x| x.t == t).unwrap();
            assert!(
                (step.survival - s).abs() < 1e-12,
                "S({t}) = {} vs {s}",
                step.survival
            );
            assert!(
                (step.lower - lo).abs() < 1e-9,
                "lower({t}) = {} vs {lo}",
                step.lower
            );
            assert!(
                (step.upper - hi).abs() < 1e-9,
                "upper({t}) = {} vs {hi}",
                step.upper
            );
        }
        assert_eq!(km.median, Some(23.0));
        assert_eq!((km.n, km.events), (21, 9));
        assert_eq!(km.at(0.0), 1.0);
        assert_eq!(km.at(8.0), km.steps[1].survival);
        let first = &km.steps[0];
        assert_eq!((first.at_risk, first.events, first.censored), (21, 3, 1));
    }

    #[test]
    fn everything_hangs_or_nothing_does() {
        let all: Vec<(f64, bool)> = (1..=4).map(|t| (t as f64, true)).collect();
        let km = kaplan_meier(&all, 0.95);
        assert_eq!(km.steps.last().unwrap().survival, 0.0);
        assert_eq!(km.median, Some(2.0));
        let none: Vec<(f64, bool)> = (1..=4).map(|t| (t as f64, false)).collect();
        let km = kaplan_meier(&none, 0.95);
        assert!(km.steps.iter().all(|s| s.survival == 1.0 && s.lower == 1.0));
        assert_eq!((km.median, km.events), (None, 0));
    }
}
