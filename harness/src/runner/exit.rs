//! Exit codes of `hilt run`, documented in the README, `hilt run --help`
//! and docs/ci.md: what a nightly job that nobody watches branches on.

pub const OK: i32 = 0;
/// The history check found a regression against the last nights, or the
/// evidence contradicts what the plan expects of a signature.
pub const REGRESSION: i32 = 1;
pub const BAD_INPUT: i32 = 2;
pub const INFRA: i32 = 3;
/// A positive control was not detected: no result of the run can be trusted.
pub const INVALID: i32 = 4;
pub const INTERRUPTED: i32 = 130;

/// What the end of a run knows.
pub struct Facts {
    pub interrupted: bool,
    /// A result file could not be written (a full disk).
    pub results_lost: bool,
    /// hilt's own loop for a board panicked: a bug in hilt, whatever the
    /// boards did.
    pub crashed: bool,
    /// A positive control went undetected.
    pub controls_failed: bool,
    /// Every iteration was an infrastructure error or did not run.
    pub all_infra: bool,
    pub regressions: usize,
    /// Signatures whose plan expectation the evidence contradicts (a
    /// deadlock the fix was to remove, seen in the fixed variant).
    pub unexpected: usize,
}

/// The exit code and the status word of `--json`. A result that cannot be
/// trusted outranks one that can: an interrupted or unrecorded run says
/// nothing about regressions, and neither does one whose controls failed.
pub fn verdict(f: &Facts) -> (i32, &'static str) {
    if f.interrupted {
        (INTERRUPTED, "interrupted")
    } else if f.results_lost {
        (INFRA, "results_not_written")
    } else if f.crashed {
        (INFRA, "hilt_crashed")
    } else if f.controls_failed {
        (INVALID, "invalid")
    } else if f.all_infra {
        (INFRA, "infrastructure")
    } else if f.unexpected > 0 {
        (REGRESSION, "not_as_expected")
    } else if f.regressions > 0 {
        (REGRESSION, "regression")
    } else {
        (OK, "ok")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            interrupted: false,
            results_lost: false,
            crashed: false,
            controls_failed: false,
            all_infra: false,
            regressions: 0,
            unexpected: 0,
        }
    }

    #[test]
    fn untrustworthy_results_outrank_a_regression() {
        assert_eq!(verdict(&facts()), (OK, "ok"));
        let reg = Facts {
            regressions: 2,
            ..facts()
        };
        assert_eq!(verdict(&reg), (REGRESSION, "regression"));
        for (f, want) in [
            (
                Facts {
                    all_infra: true,
                    ..reg
                },
                (INFRA, "infrastructure"),
            ),
            (
                Facts {
                    controls_failed: true,
                    all_infra: true,
                    regressions: 1,
                    ..facts()
                },
                (INVALID, "invalid"),
            ),
            (
                Facts {
                    results_lost: true,
                    controls_failed: true,
                    regressions: 1,
                    ..facts()
                },
                (INFRA, "results_not_written"),
            ),
            (
                Facts {
                    crashed: true,
                    controls_failed: true,
                    ..reg
                },
                (INFRA, "hilt_crashed"),
            ),
            (
                Facts {
                    interrupted: true,
                    results_lost: true,
                    regressions: 1,
                    ..facts()
                },
                (INTERRUPTED, "interrupted"),
            ),
        ] {
            assert_eq!(verdict(&f), want);
        }
    }
}
