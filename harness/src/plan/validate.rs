//! Checks that types alone cannot express. Each error names the key and
//! says what would have been accepted.
//!
//! A plan's, a board's and a kernel's checks each have their own file
//! (plan_file, board_file, kernel_source); here are the rules they share
//! and a workload file's few checks.

use std::path::Path;

use super::load::Loaded;
use super::model::*;
use super::PlanError;

mod board_file;
mod kernel_source;
mod plan_file;

pub use board_file::board;
pub use plan_file::plan;

struct Check<'a, T> {
    file: &'a Path,
    doc: &'a Loaded<T>,
}

impl<T> Check<'_, T> {
    fn fail(&self, key: &str, msg: impl Into<String>) -> PlanError {
        PlanError::new(self.file, self.doc.positions.of(key), key, msg)
    }

    fn range<N: PartialOrd + std::fmt::Display + Copy>(
        &self,
        key: &str,
        v: N,
        lo: N,
        hi: N,
    ) -> Result<(), PlanError> {
        if v < lo || v > hi {
            return Err(self.fail(key, format!("{v} is out of range: expected {lo} to {hi}")));
        }
        Ok(())
    }

    /// An optional value is checked only where the file sets it.
    fn range_if_set<N: PartialOrd + std::fmt::Display + Copy>(
        &self,
        key: &str,
        v: Option<N>,
        lo: N,
        hi: N,
    ) -> Result<(), PlanError> {
        v.map_or(Ok(()), |v| self.range(key, v, lo, hi))
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// How many of each repeated thing a file may hold: enough for any real
/// bench, and a bound on what one plan can make hilt prepare and run.
pub const MAX_VARIANTS: usize = 32;
pub const MAX_BOARDS: usize = 64;
pub const MAX_WORKLOADS: usize = 16;
pub const MAX_SIGNATURES: usize = 64;
pub const MAX_FRAMES: usize = 16;
pub const MAX_FAULTS: usize = 64;
pub const MAX_CONTROLS: usize = 8;
pub const MAX_KERNEL_FILES: usize = 256;
pub const MAX_PARTITIONS: usize = 64;
pub const MAX_ARGS: usize = 64;
/// A board's own initramfs modules, besides what every board gets.
pub const MAX_MODULES: usize = 64;
/// Iterations of all variants together.
pub const MAX_TOTAL_ITERATIONS: u64 = 1_000_000;
/// Free text (descriptions): it is copied into every report.
pub const MAX_TEXT: usize = 4096;

impl<T> Check<'_, T> {
    fn at_most<X>(&self, key: &str, items: &[X], max: usize, what: &str) -> Result<(), PlanError> {
        if items.len() > max {
            return Err(self.fail(
                key,
                format!("{} {what}: expected at most {max}", items.len()),
            ));
        }
        Ok(())
    }

    fn name(&self, key: &str, s: &str) -> Result<(), PlanError> {
        if !is_name(s) {
            return Err(self.fail(key, "expected 1-64 characters from [A-Za-z0-9._-]"));
        }
        Ok(())
    }

    fn text(&self, key: &str, s: &str) -> Result<(), PlanError> {
        if s.len() > MAX_TEXT {
            return Err(self.fail(
                key,
                format!("{} bytes: expected at most {MAX_TEXT}", s.len()),
            ));
        }
        Ok(())
    }

    /// A word that reaches a command line or a shell unquoted somewhere:
    /// printable ASCII from `allowed` besides letters and digits, starting
    /// with a letter or digit so that it can never read as an option.
    fn word(&self, key: &str, s: &str, allowed: &str, expected: &str) -> Result<(), PlanError> {
        let ok = s.len() <= 256
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || allowed.as_bytes().contains(&b));
        if !ok {
            return Err(self.fail(key, format!("{s:?}: expected {expected}")));
        }
        Ok(())
    }

    /// A path on the board that a shell line or the kernel receives.
    fn board_path(&self, key: &str, s: &str, under: &str, expected: &str) -> Result<(), PlanError> {
        let ok = s.len() <= 256
            && s.starts_with(under)
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._+:@-".contains(&b))
            && !s.split('/').any(|c| c == ".." || c.starts_with('-'));
        if !ok {
            return Err(self.fail(key, format!("{s:?}: expected {expected}")));
        }
        Ok(())
    }

    /// One line of printable text: what U-Boot prints or is sent.
    fn line(&self, key: &str, s: &str, expected: &str) -> Result<(), PlanError> {
        if s.is_empty() || s.len() > 256 || s.contains(['\n', '\r', '\0']) {
            return Err(self.fail(key, format!("{s:?}: expected {expected}")));
        }
        Ok(())
    }

    /// A host name or address (IPv6 in brackets or bare), optionally with
    /// a port: never an option, never more than one word.
    fn host(&self, key: &str, s: &str, expected: &str) -> Result<(), PlanError> {
        let ok = !s.is_empty()
            && s.len() <= 260
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-_[]".contains(&b));
        if !ok {
            return Err(self.fail(key, format!("{s:?}: expected {expected}")));
        }
        Ok(())
    }

    fn ipv4(&self, key: &str, s: &str) -> Result<std::net::Ipv4Addr, PlanError> {
        s.parse().map_err(|_| {
            self.fail(
                key,
                format!("{s:?}: expected an IPv4 address such as 192.168.1.10"),
            )
        })
    }
}

pub fn workload(file: &Path, doc: &Loaded<WorkloadFile>) -> Result<(), PlanError> {
    let c = Check { file, doc };
    let w = &doc.value;
    c.name("name", &w.name)?;
    c.text("description", &w.description)?;
    match (&w.hog, &w.readers) {
        (Some(h), None) => {
            if !(h.mem_fraction > 0.0 && h.mem_fraction < 1.0) {
                return Err(c.fail(
                    "hog.mem_fraction",
                    format!(
                        "{} is out of range: expected more than 0 and less than 1",
                        h.mem_fraction
                    ),
                ));
            }
            if !(0.0..=3600.0).contains(&h.start_after_s) {
                return Err(c.fail("hog.start_after_s", "expected 0 to 3600"));
            }
            Ok(())
        }
        (None, Some(r)) => {
            c.range("readers.threads", r.threads, 1, 32)?;
            c.range("readers.block_size_kb", r.block_size_kb, 1, 16_384)?;
            c.range_if_set("readers.rounds", r.rounds, 1, 1_000_000)?;
            if !(0.0..=3600.0).contains(&r.start_after_s) {
                return Err(c.fail("readers.start_after_s", "expected 0 to 3600"));
            }
            Ok(())
        }
        _ => Err(c.fail("", "expected exactly one of `hog:` or `readers:`")),
    }
}

/// `defconfig`, `allnoconfig`, `tinyconfig`, `<board>_defconfig`: a name,
/// not a path, and never an option (`-fconfig` would reach make as one).
pub fn is_config_target(s: &str) -> bool {
    s.ends_with("config")
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !s.contains('/')
        && !s.contains('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
