use std::io;
use std::path::PathBuf;

/// Failures of the image builders that shell out to host tools or validate
/// user-supplied options. Each message says what to do about it, because the
/// person reading it is usually setting up a new host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{tool}` was not found in PATH: install the Debian package `{package}`, or run scripts/setup")]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
    },

    #[error(
        "`{command}` failed ({status}); its output follows, fix the cause and retry:\n{output}"
    )]
    ToolFailed {
        command: String,
        status: String,
        output: String,
    },

    #[error("{0}")]
    Invalid(String),

    #[error("invalid {what}: {reason}")]
    InvalidOption { what: &'static str, reason: String },

    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
