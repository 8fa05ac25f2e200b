use std::fmt;
use std::path::{Path, PathBuf};

use super::positions::Pos;

/// A rejected plan, board or workload file: where, which key, and what was
/// expected. Exit code 2.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanError {
    pub file: PathBuf,
    pub pos: Pos,
    /// Dotted path of the offending key; empty for the whole document.
    pub key: String,
    pub message: String,
}

impl PlanError {
    pub fn new(file: &Path, pos: Pos, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            pos,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.file.display(),
            self.pos.line,
            self.pos.column
        )?;
        // Keys and messages quote the file's own text: control characters
        // are escaped so that an error stays one line and cannot drive the
        // terminal.
        let printable = |s: &str| {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                if c.is_control() {
                    out.extend(c.escape_debug());
                } else {
                    out.push(c);
                }
            }
            out
        };
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", printable(&self.key))?;
        }
        write!(f, "{}", printable(&self.message))
    }
}

impl std::error::Error for PlanError {}
