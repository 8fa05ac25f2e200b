//! The answer to the question a plan asks: for each named stack signature,
//! did the variant remove (or bring) the deadlock the baseline shows?
//!
//! Counts are deadlocks that carry the signature; stalls that carry it are
//! counted beside them but never tested, since a stall that recovers is not
//! the bug a fix is meant to remove. The test is the anytime-valid one of
//! [`crate::stats::sequential`], so the same verdict can be computed after
//! every iteration to decide when to stop, and again by `hilt report`.

use serde::{Deserialize, Serialize};

use crate::stats::sequential::{pair_blocks, Decision, Direction, TwoSided};
use crate::{IterationRecord, Outcome};

/// What a run asks of its results, from the plan: written to `run.json`
/// so that a report of the results directory asks the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub signatures: Vec<SignatureQuestion>,
    /// The level of every per-signature test.
    pub alpha: f64,
    /// Set when the plan stops as soon as the answer is known: the most
    /// iterations per variant it may take.
    #[serde(default)]
    pub max_iterations: Option<u32>,
}

impl Default for Question {
    fn default() -> Self {
        Self {
            signatures: Vec::new(),
            alpha: DEFAULT_ALPHA,
            max_iterations: None,
        }
    }
}

pub const DEFAULT_ALPHA: f64 = 0.05;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureQuestion {
    pub name: String,
    /// The variant in which this signature must not deadlock (the fixed one).
    #[serde(default)]
    pub absent_in: Option<String>,
}

/// Whether the signature's deadlocks differ between two variants, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// Fewer in the variant, and none at all.
    Removed,
    /// Fewer in the variant, but not none.
    Reduced,
    /// More in the variant, and none in the baseline.
    Introduced,
    Increased,
    /// Not seen as a deadlock in either variant.
    NotSeen,
    /// The test cannot be decided within the iterations left.
    NoDifferenceFound,
    Undecided,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureVerdict {
    pub signature: String,
    pub baseline: String,
    pub variant: String,
    pub baseline_deadlocks: u32,
    pub baseline_valid: u32,
    pub baseline_stalls: u32,
    pub variant_deadlocks: u32,
    pub variant_valid: u32,
    pub variant_stalls: u32,
    /// Pairs of one baseline and one variant iteration the test has used.
    pub blocks: u32,
    pub alpha: f64,
    /// Anytime-valid: it stays valid however often it was looked at.
    pub p_value: f64,
    pub decision: Decision,
    pub conclusion: Conclusion,
    /// Whether the plan's expectation holds: None when it states none, or
    /// when the evidence does not yet say.
    pub expected: Option<String>,
    pub met: Option<bool>,
    /// The verdict in one line, for the headline.
    pub sentence: String,
}

impl SignatureVerdict {
    /// Decided either way, or known not to decide: nothing more to run for.
    pub fn settled(&self) -> bool {
        !matches!(self.decision, Decision::Continue)
    }
}

/// A hang that did not recover and carries the signature.
pub fn is_signature_deadlock(r: &IterationRecord, signature: &str) -> bool {
    r.outcome.is_hang() && r.signatures.iter().any(|s| s == signature)
}

fn is_signature_stall(r: &IterationRecord, signature: &str) -> bool {
    r.outcome == Outcome::Stall && r.signatures.iter().any(|s| s == signature)
}

/// The variant's iterations that tell something about the kernel, in
/// iteration order: the order the sequential test sees them in, whatever
/// order parallel boards finished them in.
fn valid_in_order<'a>(records: &'a [IterationRecord], variant: &str) -> Vec<&'a IterationRecord> {
    let mut v: Vec<&IterationRecord> = records
        .iter()
        .filter(|r| r.variant == variant && r.control.is_none() && r.outcome.is_valid())
        .collect();
    v.sort_by_key(|r| r.iteration);
    v
}

/// One verdict per signature of the question, for `variant` against `baseline`.
pub fn signature_verdicts(
    question: &Question,
    records: &[IterationRecord],
    baseline: &str,
    variant: &str,
) -> Vec<SignatureVerdict> {
    let base = valid_in_order(records, baseline);
    let var = valid_in_order(records, variant);
    question
        .signatures
        .iter()
        .map(|q| {
            let a: Vec<bool> = base
                .iter()
                .map(|r| is_signature_deadlock(r, &q.name))
                .collect();
            let b: Vec<bool> = var
                .iter()
                .map(|r| is_signature_deadlock(r, &q.name))
                .collect();
            let blocks = pair_blocks(&a, &b);
            let test = TwoSided::from_blocks(question.alpha, &blocks);
            let remaining = question
                .max_iterations
                .map(|m| m.saturating_sub(blocks.len() as u32));
            let count = |v: &[bool]| v.iter().filter(|x| **x).count() as u32;
            let stalls = |rs: &[&IterationRecord]| {
                rs.iter().filter(|r| is_signature_stall(r, &q.name)).count() as u32
            };
            let mut v = SignatureVerdict {
                signature: q.name.clone(),
                baseline: baseline.to_string(),
                variant: variant.to_string(),
                baseline_deadlocks: count(&a),
                baseline_valid: a.len() as u32,
                baseline_stalls: stalls(&base),
                variant_deadlocks: count(&b),
                variant_valid: b.len() as u32,
                variant_stalls: stalls(&var),
                blocks: blocks.len() as u32,
                alpha: question.alpha,
                p_value: test.p_value(),
                decision: test.decision(remaining),
                conclusion: Conclusion::Undecided,
                expected: q.absent_in.clone(),
                met: None,
                sentence: String::new(),
            };
            v.conclusion = conclude(&v);
            v.met = expectation_met(q, &v);
            v.sentence = sentence(&v);
            v
        })
        .collect()
}

fn conclude(v: &SignatureVerdict) -> Conclusion {
    match v.decision {
        Decision::Decided {
            direction: Direction::AGreater,
        } if v.variant_deadlocks == 0 => Conclusion::Removed,
        Decision::Decided {
            direction: Direction::AGreater,
        } => Conclusion::Reduced,
        Decision::Decided {
            direction: Direction::BGreater,
        } if v.baseline_deadlocks == 0 => Conclusion::Introduced,
        Decision::Decided {
            direction: Direction::BGreater,
        } => Conclusion::Increased,
        _ if v.baseline_deadlocks == 0 && v.variant_deadlocks == 0 => Conclusion::NotSeen,
        Decision::Futile => Conclusion::NoDifferenceFound,
        _ => Conclusion::Undecided,
    }
}

/// `absent_in: V` fails on any deadlock of V that carries the signature,
/// and on a decision that V has more of them; it holds once the test
/// decides V has fewer and V has none.
fn expectation_met(q: &SignatureQuestion, v: &SignatureVerdict) -> Option<bool> {
    let fixed = q.absent_in.as_deref()?;
    // In a comparison of several runs, variants are labelled `run/variant`.
    let is = |label: &str| label == fixed || label.ends_with(&format!("/{fixed}"));
    let (mine, other_more) = if is(&v.variant) {
        (v.variant_deadlocks, Direction::AGreater)
    } else if is(&v.baseline) {
        (v.baseline_deadlocks, Direction::BGreater)
    } else {
        return None;
    };
    if mine > 0 {
        return Some(false);
    }
    match v.decision {
        Decision::Decided { direction } if direction == other_more => Some(true),
        Decision::Decided { .. } => Some(false),
        _ => None,
    }
}

fn sentence(v: &SignatureVerdict) -> String {
    let what = match v.conclusion {
        Conclusion::Removed => format!("removed in {}", v.variant),
        Conclusion::Reduced => format!("fewer in {}", v.variant),
        Conclusion::Introduced => format!("introduced in {}", v.variant),
        Conclusion::Increased => format!("more in {}", v.variant),
        Conclusion::NotSeen => "not seen as a deadlock in either variant".to_string(),
        Conclusion::NoDifferenceFound => {
            "no difference can be shown within the planned iterations".to_string()
        }
        Conclusion::Undecided => "not decided yet".to_string(),
    };
    let stalls = if v.baseline_stalls + v.variant_stalls > 0 {
        format!(
            "; stalls {} {}, {} {}",
            v.baseline, v.baseline_stalls, v.variant, v.variant_stalls
        )
    } else {
        String::new()
    };
    let expectation = match (&v.expected, v.met) {
        (Some(e), Some(true)) => format!(" — as expected (absent in {e})"),
        (Some(e), Some(false)) => format!(" — NOT AS EXPECTED (absent in {e})"),
        (Some(e), None) => format!(" — expected absent in {e}, not shown yet"),
        (None, _) => String::new(),
    };
    format!(
        "{}: {what} ({} {}/{} deadlocks, {} {}/{}{stalls}; anytime-valid p {} {}, α = {}){expectation}",
        v.signature,
        v.baseline,
        v.baseline_deadlocks,
        v.baseline_valid,
        v.variant,
        v.variant_deadlocks,
        v.variant_valid,
        if v.p_value >= 1.0 { "=" } else { "≤" },
        crate::text::p_value(v.p_value),
        v.alpha,
    )
}

/// The plan's question asked of every variant against the first: what the
/// stopping rule and the exit code look at.
pub fn all_verdicts(
    question: &Question,
    variants: &[String],
    records: &[IterationRecord],
) -> Vec<SignatureVerdict> {
    let Some((baseline, rest)) = variants.split_first() else {
        return Vec::new();
    };
    rest.iter()
        .flat_map(|v| signature_verdicts(question, records, baseline, v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(variant: &str, iteration: u32, outcome: Outcome, sigs: &[&str]) -> IterationRecord {
        IterationRecord {
            outcome,
            signatures: sigs.iter().map(|s| s.to_string()).collect(),
            ..IterationRecord::blank(variant, iteration, "b")
        }
    }

    fn question(max: Option<u32>) -> Question {
        Question {
            signatures: vec![SignatureQuestion {
                name: "seed".into(),
                absent_in: Some("patched".into()),
            }],
            alpha: 0.01,
            max_iterations: max,
        }
    }

    #[test]
    fn a_signature_that_deadlocks_only_in_the_baseline_is_removed() {
        let mut rs = Vec::new();
        for i in 0..30 {
            rs.push(rec("unpatched", i, Outcome::Deadlock, &["seed"]));
            rs.push(rec("patched", i, Outcome::Pass, &[]));
        }
        let v = &signature_verdicts(&question(Some(40)), &rs, "unpatched", "patched")[0];
        assert_eq!(v.conclusion, Conclusion::Removed, "{}", v.sentence);
        assert_eq!(v.met, Some(true));
        assert!(v.p_value <= 0.01, "{}", v.sentence);
        assert!(v
            .sentence
            .starts_with("seed: removed in patched (unpatched 30/30 deadlocks"));
    }

    #[test]
    fn stalls_are_counted_apart_and_never_as_deadlocks() {
        let mut rs = Vec::new();
        for i in 0..30 {
            rs.push(rec("unpatched", i, Outcome::Stall, &["seed"]));
            rs.push(rec("patched", i, Outcome::Stall, &["seed"]));
        }
        let v = &signature_verdicts(&question(Some(30)), &rs, "unpatched", "patched")[0];
        assert_eq!((v.baseline_deadlocks, v.variant_deadlocks), (0, 0));
        assert_eq!((v.baseline_stalls, v.variant_stalls), (30, 30));
        assert_eq!(v.conclusion, Conclusion::NotSeen);
        assert!(v.sentence.contains("stalls unpatched 30, patched 30"));
    }

    #[test]
    fn one_deadlock_in_the_fixed_variant_breaks_the_expectation() {
        let rs = vec![
            rec("unpatched", 0, Outcome::Deadlock, &["seed"]),
            rec("patched", 0, Outcome::SilentHang, &["seed"]),
        ];
        let v = &signature_verdicts(&question(None), &rs, "unpatched", "patched")[0];
        assert_eq!(v.met, Some(false));
        assert!(v.sentence.contains("NOT AS EXPECTED"), "{}", v.sentence);
    }

    #[test]
    fn infra_errors_and_controls_are_left_out_and_order_is_by_iteration() {
        let mut rs = vec![
            rec("patched", 1, Outcome::Pass, &[]),
            rec("unpatched", 1, Outcome::Deadlock, &["seed"]),
            rec("unpatched", 0, Outcome::InfraError, &[]),
            rec("patched", 0, Outcome::Pass, &[]),
        ];
        let mut c = rec("unpatched", 0, Outcome::Hang, &["seed"]);
        c.control = Some("swap_freeze".into());
        rs.push(c);
        let v = &signature_verdicts(&question(Some(10)), &rs, "unpatched", "patched")[0];
        assert_eq!((v.baseline_deadlocks, v.baseline_valid), (1, 1));
        assert_eq!((v.variant_valid, v.blocks), (2, 1));
        assert_eq!(v.conclusion, Conclusion::Undecided);
        assert_eq!(v.met, None);
    }
}
