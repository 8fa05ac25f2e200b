use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;

/// Board artifacts are arm64 unless a reference says otherwise.
pub const DEFAULT_ARCH: &str = "arm64";

/// A Debian package as the user names it: `NAME[:ARCH][=VERSION]`.
///
/// The architecture must come before `=` because Debian versions may themselves
/// contain colons (an epoch, as in `1:1.35.0-4`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageRef {
    pub name: String,
    pub version: Option<String>,
    pub arch: String,
}

impl PackageRef {
    pub fn parse(input: &str) -> Result<PackageRef, Error> {
        let bad = |reason: &str| Error::InvalidPackageRef {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (left, version) = match input.split_once('=') {
            Some((left, version)) => (left, Some(version)),
            None => (input, None),
        };
        let (name, arch) = match left.split_once(':') {
            Some((name, arch)) => (name, arch),
            None => (left, DEFAULT_ARCH),
        };
        if !valid_name(name) {
            return Err(bad(
                "the package name must be 2+ characters of a-z, 0-9, '+', '-', '.' and start \
                 with a letter or digit",
            ));
        }
        if arch.is_empty()
            || !arch
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("the architecture must be non-empty a-z, 0-9, '-'"));
        }
        if let Some(version) = version {
            if !valid_version(version) {
                return Err(bad(
                    "the version must start with a digit and use only A-Z, a-z, 0-9, '.', '+', \
                     '~', '-', ':'",
                ));
            }
        }
        Ok(PackageRef {
            name: name.to_string(),
            version: version.map(str::to_string),
            arch: arch.to_string(),
        })
    }

    /// The form apt-get and apt-cache accept: `name:arch` or `name:arch=version`.
    pub fn apt_spec(&self) -> String {
        self.to_string()
    }
}

fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphanumeric()
        && !bytes[0].is_ascii_uppercase()
        && bytes.iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+' || b == b'-' || b == b'.'
        })
}

fn valid_version(version: &str) -> bool {
    // The upstream part (after an optional epoch) must start with a digit, per Debian policy.
    let upstream = version.split_once(':').map_or(version, |(_, rest)| rest);
    upstream.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+.~-:".contains(&b))
}

impl FromStr for PackageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PackageRef::parse(s)
    }
}

impl fmt::Display for PackageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.arch)?;
        if let Some(version) = &self.version {
            write!(f, "={version}")?;
        }
        Ok(())
    }
}

/// A `.deb` in the cache whose SHA256 matched apt's signed index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedDeb {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub sha256: String,
    pub path: PathBuf,
}

impl FetchedDeb {
    /// `name_version_arch`, with the epoch colon escaped as `%3a` the way Debian's own
    /// file names do, so cache paths never contain a colon.
    pub fn stem(&self) -> String {
        stem(&self.name, &self.version, &self.arch)
    }
}

pub(crate) fn stem(name: &str, version: &str, arch: &str) -> String {
    format!("{name}_{}_{arch}", version.replace(':', "%3a"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_and_version_with_default_arch() {
        let p = PackageRef::parse("linux-image-6.1.0-44-arm64=6.1.164-1").unwrap();
        assert_eq!(p.name, "linux-image-6.1.0-44-arm64");
        assert_eq!(p.version.as_deref(), Some("6.1.164-1"));
        assert_eq!(p.arch, "arm64");
    }

    #[test]
    fn parses_name_and_arch_without_version() {
        let p: PackageRef = "busybox-static:arm64".parse().unwrap();
        assert_eq!(p.name, "busybox-static");
        assert_eq!(p.version, None);
        assert_eq!(p.arch, "arm64");
    }

    #[test]
    fn epoch_colon_stays_in_the_version() {
        let p = PackageRef::parse("busybox-static:amd64=1:1.35.0-4+deb12u1+b1").unwrap();
        assert_eq!(p.name, "busybox-static");
        assert_eq!(p.arch, "amd64");
        assert_eq!(p.version.as_deref(), Some("1:1.35.0-4+deb12u1+b1"));
        assert_eq!(p.to_string(), "busybox-static:amd64=1:1.35.0-4+deb12u1+b1");
        let without_arch = PackageRef::parse("busybox-static=1:1.35.0-4").unwrap();
        assert_eq!(without_arch.arch, "arm64");
        assert_eq!(without_arch.version.as_deref(), Some("1:1.35.0-4"));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "dmsetup:arm64",
            "linux-image-6.1.0-45-arm64:arm64=6.1.170-1",
            "g++:amd64",
        ] {
            assert_eq!(PackageRef::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_malformed_references() {
        for s in [
            "",
            "a",
            "Busybox",
            "busybox:",
            "busybox:ARM64",
            "busybox=",
            "busybox=abc",
            "busybox=1.0 -x",
            "busy box",
            "-busybox",
            "busybox;rm",
        ] {
            let err = PackageRef::parse(s).unwrap_err();
            assert!(
                matches!(err, Error::InvalidPackageRef { .. }),
                "{s:?}: {err}"
            );
        }
    }

    #[test]
    fn stem_escapes_the_epoch() {
        assert_eq!(
            stem("busybox-static", "1:1.35.0-4+deb12u1+b1", "arm64"),
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64"
        );
    }
}
