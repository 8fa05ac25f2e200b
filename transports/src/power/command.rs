//! Power through external commands, e.g.
//! `["uhubctl", "-l", "1-1", "-p", "{port}", "-a", "off"]`.
//!
//! Commands are argument vectors run directly, never through a shell:
//! `{name}` placeholders are replaced inside single arguments by the
//! board's values, so no value can become shell syntax. Every run has a
//! time limit, after which the command is killed: a hung PDU CLI must not
//! hang the run.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::Power;
use crate::ssh::shell_quote;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandPowerConfig {
    pub on: Vec<String>,
    pub off: Vec<String>,
    /// Optional: a command that power cycles by itself (some PDUs have
    /// one); without it, cycle is off, wait, on.
    #[serde(default)]
    pub cycle: Option<Vec<String>>,
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
    /// How long the board stays off in a cycle without a cycle command.
    #[serde(default = "default_off_s")]
    pub off_s: u64,
}

fn default_timeout_s() -> u64 {
    30
}

fn default_off_s() -> u64 {
    3
}

#[derive(Debug)]
pub struct CommandPower {
    on: Vec<String>,
    off: Vec<String>,
    cycle: Option<Vec<String>>,
    timeout: Duration,
    off_time: Duration,
}

/// Replaces `{name}` in each argument; an unknown name is an error, never
/// left in place.
fn expand(
    argv: &[String],
    vars: &BTreeMap<String, String>,
    what: &str,
) -> anyhow::Result<Vec<String>> {
    if argv.is_empty() || argv[0].is_empty() {
        bail!("the power {what} command is empty");
    }
    argv.iter()
        .map(|arg| {
            let mut out = String::new();
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let close = rest[open..].find('}').ok_or_else(|| anyhow!("unclosed '{{' in power {what} argument {arg:?}"))?;
                let name = &rest[open + 1..open + close];
                let value = vars.get(name).ok_or_else(|| anyhow!("power {what} argument {arg:?} names {{{name}}}, which the board does not define"))?;
                out.push_str(value);
                rest = &rest[open + close + 1..];
            }
            out.push_str(rest);
            Ok(out)
        })
        .collect()
}

fn display(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` with a time limit; fails with its output on a non-zero exit.
pub async fn run_command(argv: &[String], limit: Duration) -> anyhow::Result<String> {
    let shown = display(argv);
    let child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting `{shown}`"))?;
    let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Err(_) => bail!(
            "`{shown}` did not finish within {} s and was killed",
            limit.as_secs_f64()
        ),
        Ok(r) => r.with_context(|| format!("running `{shown}`"))?,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        let tail = crate::tail_of(err, 500);
        bail!(
            "`{shown}` failed ({}){}{tail}",
            out.status,
            if tail.is_empty() { "" } else { ": " }
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl CommandPower {
    /// `vars` are the board's values for `{name}` placeholders.
    pub fn new(cfg: &CommandPowerConfig, vars: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        if cfg.timeout_s == 0 {
            bail!("power timeout_s must be positive");
        }
        Ok(Self {
            on: expand(&cfg.on, vars, "on")?,
            off: expand(&cfg.off, vars, "off")?,
            cycle: cfg
                .cycle
                .as_ref()
                .map(|c| expand(c, vars, "cycle"))
                .transpose()?,
            timeout: Duration::from_secs(cfg.timeout_s),
            off_time: Duration::from_secs(cfg.off_s),
        })
    }

    /// The commands as they will run, for plan checks and logs.
    pub fn describe(&self) -> String {
        format!("on: {}; off: {}", display(&self.on), display(&self.off))
    }

    pub async fn cycle(&mut self) -> anyhow::Result<()> {
        match &self.cycle {
            Some(c) => run_command(c, self.timeout).await.map(drop),
            None => {
                self.off().await?;
                tokio::time::sleep(self.off_time).await;
                self.on().await
            }
        }
    }
}

#[async_trait::async_trait]
impl Power for CommandPower {
    async fn on(&mut self) -> anyhow::Result<()> {
        run_command(&self.on, self.timeout)
            .await
            .context("power on")
            .map(drop)
    }

    async fn off(&mut self) -> anyhow::Result<()> {
        run_command(&self.off, self.timeout)
            .await
            .context("power off")
            .map(drop)
    }

    /// A command cannot tell that power went away by itself.
    fn lost(&mut self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [
            ("port".to_string(), "2; reboot".to_string()),
            ("hub".into(), "1-1".into()),
        ]
        .into()
    }

    #[test]
    fn placeholders_expand_inside_one_argument() {
        let argv: Vec<String> = ["uhubctl", "-l", "{hub}", "-p", "{port}", "-a", "x{hub}y"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            expand(&argv, &vars(), "on").unwrap(),
            ["uhubctl", "-l", "1-1", "-p", "2; reboot", "-a", "x1-1y"]
        );
        assert!(expand(&["a{nope}".into()], &vars(), "on")
            .unwrap_err()
            .to_string()
            .contains("{nope}"));
        assert!(expand(&["a{hub".into()], &vars(), "on").is_err());
        assert!(expand(&[], &vars(), "on").is_err());
    }
}
