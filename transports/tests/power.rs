//! Command power hooks, run for real (no shell in between).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hilt_transports::power::{CommandPower, CommandPowerConfig, Power};

fn cfg(on: &[&str], off: &[&str]) -> CommandPowerConfig {
    CommandPowerConfig {
        on: on.iter().map(|s| s.to_string()).collect(),
        off: off.iter().map(|s| s.to_string()).collect(),
        cycle: None,
        timeout_s: 1,
        off_s: 0,
    }
}

#[tokio::test]
async fn commands_run_without_a_shell_and_with_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    // The board's value would be a command in a shell; here it is one
    // argument of `touch`, which makes a file of that name.
    let vars: BTreeMap<String, String> =
        [("name".to_string(), "x; touch pwned".to_string())].into();
    let c = CommandPowerConfig {
        on: vec!["touch".into(), format!("{}/{{name}}", dir.path().display())],
        off: vec![
            "rm".into(),
            "-f".into(),
            format!("{}/{{name}}", dir.path().display()),
        ],
        cycle: None,
        timeout_s: 5,
        off_s: 0,
    };
    let mut p = CommandPower::new(&c, &vars).unwrap();
    p.on().await.unwrap();
    let made = dir.path().join("x; touch pwned");
    assert!(made.exists(), "the value was one argument");
    p.off().await.unwrap();
    assert!(!made.exists());
    p.cycle().await.unwrap();
    assert!(made.exists());
    assert!(p.lost().is_none());
    assert!(!std::path::Path::new("pwned").exists() && !dir.path().join("pwned").exists());

    let mut p = CommandPower::new(&cfg(&["true"], &["false"]), &BTreeMap::new()).unwrap();
    p.on().await.unwrap();
    let err = format!("{:#}", p.off().await.unwrap_err());
    assert!(err.contains("`false` failed"), "{err}");

    let mut p = CommandPower::new(&cfg(&["sleep", "5"], &["true"]), &BTreeMap::new()).unwrap();
    let t0 = Instant::now();
    let err = format!("{:#}", p.on().await.unwrap_err());
    assert!(err.contains("did not finish within 1 s"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(3));

    let mut p = CommandPower::new(
        &cfg(&["sh", "-c", "echo relay jammed >&2; exit 3"], &["true"]),
        &BTreeMap::new(),
    )
    .unwrap();
    let err = format!("{:#}", p.on().await.unwrap_err());
    assert!(
        err.contains("relay jammed") && err.contains("exit status: 3"),
        "{err}"
    );

    let mut p = CommandPower::new(
        &cfg(&["/nonexistent/relayctl"], &["true"]),
        &BTreeMap::new(),
    )
    .unwrap();
    assert!(format!("{:#}", p.on().await.unwrap_err()).contains("starting `/nonexistent/relayctl`"));
    assert!(CommandPower::new(&cfg(&["x", "{undefined}"], &["true"]), &BTreeMap::new()).is_err());
}

/// Issue 20, finding 3: the failure message quotes the end of stderr, and
/// cutting it at a byte count fell inside `é` (two bytes): a panic, and
/// `hilt flash` exited 101. Every parity of the cut is tried.
#[tokio::test]
async fn a_failing_command_with_multibyte_stderr_is_an_error_not_a_panic() {
    for pad in ["", "x", "xy", "xyz"] {
        let script = format!("printf '{pad}' >&2; for i in $(seq 400); do printf 'é' >&2; done; printf '{pad}' >&2; exit 1");
        let mut p =
            CommandPower::new(&cfg(&["true"], &["sh", "-c", &script]), &BTreeMap::new()).unwrap();
        let err = format!("{:#}", p.off().await.unwrap_err());
        assert!(err.contains("failed (exit status: 1): "), "{err}");
        assert!(err.contains(&"é".repeat(200)), "{err}");
    }
}
