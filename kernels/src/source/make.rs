//! Running kbuild for arm64 with the cross compiler, out of tree, with
//! progress reported while it runs and the full output kept in a log.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

pub const CROSS_COMPILE: &str = "aarch64-linux-gnu-";

pub(crate) struct Kbuild {
    pub src: PathBuf,
    pub obj: PathBuf,
    pub jobs: usize,
    /// Shown in `uname -v` on the board, so a boot can be tied to its build.
    pub build_version: Option<String>,
}

impl Kbuild {
    fn command(&self, targets: &[&str]) -> Command {
        let mut c = Command::new("make");
        c.current_dir(&self.src)
            .env("LC_ALL", "C")
            .env("ARCH", "arm64")
            .env("CROSS_COMPILE", CROSS_COMPILE)
            // Reproducible: the same inputs give the same Image.
            .env("KBUILD_BUILD_TIMESTAMP", "@0")
            .env("KBUILD_BUILD_USER", "hilt")
            .env("KBUILD_BUILD_HOST", "hilt")
            .arg(format!("O={}", self.obj.display()))
            .arg(format!("-j{}", self.jobs))
            .args(targets);
        if let Some(v) = &self.build_version {
            c.env("KBUILD_BUILD_VERSION", v);
        }
        c
    }

    /// Runs make quietly (config targets); the output only shows on failure.
    pub fn quiet(&self, targets: &[&str], env: &[(&str, &Path)]) -> Result<(), Error> {
        let mut c = self.command(targets);
        for (k, v) in env {
            c.env(k, v);
        }
        crate::cmd::output(c).map(|_| ())
    }

    /// Runs a real build, calling `progress` about every `every` with a
    /// one-line status, and appending everything make prints to `log`.
    pub fn build(
        &self,
        targets: &[&str],
        log: &Path,
        every: Duration,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), Error> {
        let mut c = self.command(targets);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ToolMissing {
                tool: "make".into(),
            },
            _ => Error::io(&self.src, e),
        })?;
        let mut logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(log, e))?;
        // stderr on its own thread, into a channel shared with stdout, so
        // neither pipe can fill up and stall make.
        let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
        let err = child.stderr.take().expect("piped stderr");
        let tx2 = tx.clone();
        let t_err = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send((true, line));
            }
        });
        let out = child.stdout.take().expect("piped stdout");
        let t_out = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send((false, line));
            }
        });
        let start = Instant::now();
        let mut last_report = Instant::now();
        let mut compiled = 0u64;
        let mut last_obj = String::new();
        let mut errors: Vec<String> = Vec::new();
        for (is_err, line) in rx {
            let _ = writeln!(logf, "{line}");
            if is_err {
                // The last lines carry make's own verdict and the
                // compiler's error above it.
                errors.push(line);
                if errors.len() > 30 {
                    errors.remove(0);
                }
                continue;
            }
            if let Some(obj) = compiled_object(&line) {
                compiled += 1;
                last_obj = obj.to_string();
            }
            if last_report.elapsed() >= every {
                last_report = Instant::now();
                progress(&format!(
                    "{} files compiled in {}s (now {last_obj})",
                    compiled,
                    start.elapsed().as_secs()
                ));
            }
        }
        let _ = t_err.join();
        let _ = t_out.join();
        let status = child.wait().map_err(|e| Error::io(&self.src, e))?;
        if !status.success() {
            return Err(Error::ToolFailed {
                command: format!("make {} (log: {})", targets.join(" "), log.display()),
                status: status.to_string(),
                stderr: errors.join("\n"),
            });
        }
        progress(&format!(
            "{compiled} files compiled in {}s",
            start.elapsed().as_secs()
        ));
        Ok(())
    }
}

/// The object of a kbuild short-log line (`  CC      fs/erofs/zdata.o`).
fn compiled_object(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("  ")?;
    let (tag, obj) = rest.split_once(char::is_whitespace)?;
    matches!(tag, "CC" | "AS" | "HOSTCC" | "CC [M]").then(|| obj.trim())
}

/// The cross compiler's version line; part of the recipe key.
pub(crate) fn compiler_version() -> Result<String, Error> {
    let mut c = Command::new(format!("{CROSS_COMPILE}gcc"));
    c.arg("--version");
    let out = crate::cmd::output(c).map_err(|e| match e {
        Error::ToolMissing { .. } => Error::ToolMissing {
            tool: format!("{CROSS_COMPILE}gcc (scripts/setup --kernel-build installs it)"),
        },
        e => e,
    })?;
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_compile_lines() {
        assert_eq!(
            compiled_object("  CC      fs/erofs/zdata.o"),
            Some("fs/erofs/zdata.o")
        );
        assert_eq!(
            compiled_object("  AS      arch/arm64/kernel/head.o"),
            Some("arch/arm64/kernel/head.o")
        );
        assert_eq!(compiled_object("  LD      vmlinux.o"), None);
        assert_eq!(compiled_object("make[1]: Entering directory"), None);
    }
}
