use std::fmt;

/// Why bytes are not a valid AVB structure. Each message names the field and
/// the numbers involved, because the reader is usually looking at a device
/// that somebody else flashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the structure (or a size field in it) needs.
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    BadMagic {
        what: &'static str,
        expected: [u8; 4],
        found: [u8; 4],
    },
    UnsupportedVersion {
        what: &'static str,
        major: u32,
        minor: u32,
    },
    /// A field that is out of range or inconsistent with another.
    Invalid { what: &'static str, reason: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { what, need, have } => write!(
                f,
                "{what} is truncated: it needs {need} bytes and only {have} are there"
            ),
            Error::BadMagic {
                what,
                expected,
                found,
            } => write!(
                f,
                "no {what}: expected magic {:?}, found {:?} (was the image written with an AVB footer, e.g. `verity: avb`?)",
                String::from_utf8_lossy(expected),
                String::from_utf8_lossy(found)
            ),
            Error::UnsupportedVersion { what, major, minor } => write!(
                f,
                "{what} version {major}.{minor} is not supported (only major version 1 is)"
            ),
            Error::Invalid { what, reason } => write!(f, "invalid {what}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        reason: reason.into(),
    }
}
