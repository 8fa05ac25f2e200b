//! The CI glue that needs no board. docs/ci.md is copied into real CI
//! configurations, so its YAML must parse, say what it claims, and use only
//! `hilt run` flags that exist; --help, README and docs agree on exit codes;
//! and CI gets its JSON even from a run that fails early.

use std::path::Path;
use std::process::Command;

use serde_yaml_ng::Value;

fn doc() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ci.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn blocks(doc: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    doc.split(&fence)
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap().to_string())
        .collect()
}

fn run_help() -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_hilt"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn ci_examples_parse_and_use_real_flags() {
    let doc = doc();
    let yaml = blocks(&doc, "yaml");
    assert_eq!(yaml.len(), 2, "one GitHub and one GitLab example");
    let gh: Value = serde_yaml_ng::from_str(&yaml[0]).expect("the GitHub workflow parses");
    let steps = gh["jobs"]["nightly"]["steps"]
        .as_sequence()
        .expect("jobs.nightly.steps");
    assert!(gh["on"]["schedule"][0]["cron"].is_string());
    let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
    for want in ["Check the plan", "Run", "Upload the results", "Verdict"] {
        assert!(names.contains(&want), "no step {want:?}: {names:?}");
    }
    for s in steps.iter().skip_while(|s| s["name"] != "Run").skip(1) {
        assert_eq!(
            s["if"], "always()",
            "{:?} must run after a failed run",
            s["name"]
        );
    }

    let gl: Value = serde_yaml_ng::from_str(&yaml[1]).expect("the GitLab pipeline parses");
    let job = &gl["nightly-hil"];
    assert_eq!(job["artifacts"]["when"], "always");
    assert!(job["artifacts"]["reports"]["junit"].is_string());
    assert_eq!(job["allow_failure"]["exit_codes"][0], 3);
    assert_eq!(gl["check-plan"]["stage"], "check");

    // Every flag a `hilt run` line passes is one hilt has.
    let help = run_help();
    let mut seen = 0;
    for line in doc.lines().filter(|l| l.contains("hilt run ")) {
        for flag in line.split_whitespace().filter(|w| w.starts_with("--")) {
            let flag = flag.trim_end_matches(['`', ',', ')', ':']);
            assert!(
                help.contains(flag),
                "docs/ci.md uses {flag}, unknown to hilt run"
            );
            seen += 1;
        }
    }
    assert!(seen >= 8, "only {seen} flags checked");
}

#[test]
fn run_help_documents_every_exit_code() {
    let help = run_help();
    for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "130 "] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(code)),
            "exit code {code}missing from hilt run --help:\n{help}"
        );
    }
    for flag in ["--junit <PATH>", "--json <PATH>", "--quiet"] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    // The README and docs/ci.md give the same codes.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    for code in ["`0`", "`1`", "`2`", "`3`", "`4`", "`130`"] {
        assert!(readme.contains(code), "README lacks exit code {code}");
    }
    let ci = doc();
    for code in ["| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |"] {
        assert!(ci.contains(code), "docs/ci.md lacks exit code {code}");
    }
}

/// A run that fails before it can report still gives CI its JSON on
/// stdout, with the reason, and nothing else there.
#[test]
fn a_run_that_fails_early_still_writes_its_json() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("results.jsonl"), "").unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans/smoke.yaml");
    let o = Command::new(env!("CARGO_BIN_EXE_hilt"))
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(tmp.path())
        .args(["--quiet", "--no-history", "--json", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["status"], "infrastructure");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("already holds results"),
        "{r}"
    );
    assert!(r["report"].is_null());
    assert!(stderr.contains("already holds results"), "{stderr}");
}
