//! The plan's question asked again after every record: whether the run can
//! stop, and whether what it expected holds.
//!
//! The verdicts are those of `hilt report` (hilt_reports::verdict), computed
//! from the records alone, so a resumed run continues the same sequential
//! test, and the report of a stopped run says why it stopped.

use hilt_reports::verdict::{all_verdicts, Question, SignatureVerdict};
use hilt_reports::IterationRecord;

use crate::plan::Plan;

pub struct StopRule {
    question: Question,
    variants: Vec<String>,
    /// The signatures the rule waits for: those with an expectation, or
    /// every signature when none states one.
    targets: Vec<String>,
}

impl StopRule {
    /// None for a plan with a fixed number of iterations.
    pub fn of(plan: &Plan) -> Option<Self> {
        plan.stop.as_ref()?;
        let question = plan.question();
        let expecting: Vec<String> = question
            .signatures
            .iter()
            .filter(|s| s.absent_in.is_some())
            .map(|s| s.name.clone())
            .collect();
        let targets = if expecting.is_empty() {
            question.signatures.iter().map(|s| s.name.clone()).collect()
        } else {
            expecting
        };
        Some(Self {
            question,
            variants: plan.variants.iter().map(|v| v.name.clone()).collect(),
            targets,
        })
    }

    /// Why the run can stop now, or None while a target is still open.
    pub fn check(&self, records: &[IterationRecord]) -> Option<String> {
        let verdicts = all_verdicts(&self.question, &self.variants, records);
        let targets: Vec<&SignatureVerdict> = verdicts
            .iter()
            .filter(|v| self.targets.contains(&v.signature))
            .collect();
        // One round at least: a question is not settled before anything ran.
        if targets.is_empty()
            || targets.iter().any(|v| v.blocks == 0)
            || !targets.iter().all(|v| v.settled())
        {
            return None;
        }
        Some(format!(
            "stopped by the sequential rule (α = {}): {}",
            self.question.alpha,
            targets
                .iter()
                .map(|v| v.sentence.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ))
    }
}

/// The expectations the evidence contradicts, one sentence each: any of
/// them makes `hilt run` exit 1.
pub fn expectations_failed(plan: &Plan, records: &[IterationRecord]) -> Vec<String> {
    let variants: Vec<String> = plan.variants.iter().map(|v| v.name.clone()).collect();
    all_verdicts(&plan.question(), &variants, records)
        .into_iter()
        .filter(|v| v.met == Some(false))
        .map(|v| v.sentence)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hilt_reports::Outcome;

    fn plan(stop: &str) -> Plan {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans/smoke.yaml"),
        )
        .unwrap()
            + "signatures:\n  - name: seed\n    frames: [a]\n    absent_in: patched\n  - name: other\n    frames: [b]\n"
            + stop;
        serde_yaml_ng::from_str(&text).unwrap()
    }

    fn rec(variant: &str, iteration: u32, outcome: Outcome, sigs: &[&str]) -> IterationRecord {
        IterationRecord {
            outcome,
            signatures: sigs.iter().map(|s| s.to_string()).collect(),
            ..IterationRecord::blank(variant, iteration, "b")
        }
    }

    #[test]
    fn a_fixed_plan_has_no_rule() {
        assert!(StopRule::of(&plan("")).is_none());
    }

    #[test]
    fn the_rule_waits_for_the_expected_signature_only() {
        let p = plan("stop:\n  alpha: 0.01\n  max_iterations: 100\n");
        let rule = StopRule::of(&p).unwrap();
        let mut recs = Vec::new();
        let mut stopped_at = None;
        for i in 0..100 {
            // "other" stays undecided (never seen); "seed" is the target.
            recs.push(rec("unpatched", i, Outcome::Deadlock, &["seed"]));
            recs.push(rec("patched", i, Outcome::Pass, &[]));
            if let Some(why) = rule.check(&recs) {
                assert!(why.contains("seed: removed in patched"), "{why}");
                stopped_at = Some(i + 1);
                break;
            }
        }
        let n = stopped_at.expect("decided within 100 blocks");
        assert!(
            n >= 4,
            "no fewer blocks than 200 needs at a factor ≤ 4 each: {n}"
        );
        assert!(n <= 12, "a 100% vs 0% split decides quickly: {n}");
        assert!(expectations_failed(&p, &recs).is_empty());
    }

    #[test]
    fn a_hopeless_campaign_stops_as_futile_and_a_contradiction_fails() {
        let need = hilt_reports::stats::sequential::TwoSided::min_blocks(0.01);
        let p = plan(&format!("stop:\n  alpha: 0.01\n  max_iterations: {need}\n"));
        let rule = StopRule::of(&p).unwrap();
        let mut recs = vec![rec("unpatched", 0, Outcome::Pass, &[])];
        assert_eq!(rule.check(&recs), None, "no block yet");
        recs.push(rec("patched", 0, Outcome::Pass, &[]));
        let why = rule
            .check(&recs)
            .expect("one block spent without a split: the rest cannot reach 2/α");
        assert!(
            why.contains("not seen as a deadlock in either variant"),
            "{why}"
        );
        recs.push(rec("patched", 1, Outcome::Deadlock, &["seed"]));
        assert!(need >= 4, "200 at a factor of at most 4 a block: {need}");
        let failed = expectations_failed(&p, &recs);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].contains("NOT AS EXPECTED"), "{failed:?}");
    }
}
