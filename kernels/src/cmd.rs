//! Running the Debian tools this crate leans on (apt-cache, apt-get, dpkg-deb, xz...).

use std::io::ErrorKind;
use std::process::Command;

use crate::Error;

/// Runs `command` to completion and returns its stdout.
///
/// The C locale keeps apt's messages parseable; a missing program becomes
/// [`Error::ToolMissing`] so the user is pointed at scripts/setup.
pub(crate) fn output(mut command: Command) -> Result<Vec<u8>, Error> {
    command.env("LC_ALL", "C");
    let display = describe(&command);
    let program = command.get_program().to_string_lossy().into_owned();
    let out = command.output().map_err(|e| match e.kind() {
        ErrorKind::NotFound => Error::ToolMissing { tool: program },
        _ => Error::ToolFailed {
            command: display.clone(),
            status: "could not start".into(),
            stderr: e.to_string(),
        },
    })?;
    if !out.status.success() {
        return Err(Error::ToolFailed {
            command: display,
            status: out.status.to_string(),
            stderr: tail(&out.stderr),
        });
    }
    Ok(out.stdout)
}

fn describe(command: &Command) -> String {
    let mut s = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// The last lines of a tool's stderr: apt prints its actual error after pages of progress.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(8);
    let joined = lines[start..].join("\n");
    if joined.is_empty() {
        "(no output on stderr)".into()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_points_at_setup() {
        let err = output(Command::new("hilt-no-such-tool-1b7e")).unwrap_err();
        assert!(matches!(err, Error::ToolMissing { ref tool } if tool == "hilt-no-such-tool-1b7e"));
        assert!(err.to_string().contains("scripts/setup"));
    }

    #[test]
    fn failure_carries_status_and_stderr() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "echo progress >&2; echo 'E: real problem' >&2; exit 3",
        ]);
        match output(c).unwrap_err() {
            Error::ToolFailed {
                command,
                status,
                stderr,
            } => {
                assert!(command.starts_with("sh -c"));
                assert!(status.contains('3'), "{status}");
                assert!(stderr.ends_with("E: real problem"), "{stderr}");
            }
            other => panic!("unexpected {other}"),
        }
    }
}
