//! Fetching `.deb` files with apt and checking them against apt's own index.
//!
//! Trust comes from the index, not from the download: `apt-cache show` reads the
//! Packages lists that `apt-get update` verified against the signed Release file, so a
//! matching SHA256 ties the cached file to Debian's signature even though the file
//! itself is unsigned.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd;
use crate::digest::sha256_file;
use crate::package::{stem, FetchedDeb, PackageRef};
use crate::Error;

/// What apt's index says about one exact version of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexRecord {
    pub version: String,
    pub sha256: String,
}

/// Looks the package up in the local apt index; costs no network.
pub(crate) fn index_record(pkg: &PackageRef) -> Result<IndexRecord, Error> {
    let mut c = Command::new("apt-cache");
    c.args(["show", "--no-all-versions", &pkg.apt_spec()]);
    let stdout = match cmd::output(c) {
        Ok(out) => out,
        // apt-cache exits 100 for unknown names and unknown architectures alike.
        Err(Error::ToolFailed { stderr, .. })
            if stderr.contains("No packages found") || stderr.contains("Unable to locate") =>
        {
            return Err(Error::PackageNotFound {
                package: pkg.apt_spec(),
            })
        }
        Err(e) => return Err(e),
    };
    parse_record(&String::from_utf8_lossy(&stdout), pkg)
}

/// Reads the first stanza of `apt-cache show` output.
///
/// An unknown version makes apt-cache print nothing and succeed, hence the empty check.
fn parse_record(text: &str, pkg: &PackageRef) -> Result<IndexRecord, Error> {
    let stanza = text.split("\n\n").find(|s| !s.trim().is_empty());
    let Some(stanza) = stanza else {
        return Err(Error::PackageNotFound {
            package: pkg.apt_spec(),
        });
    };
    let field = |key: &str| {
        stanza.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k == key).then(|| v.trim().to_string())
        })
    };
    let missing = |f: &str| Error::IndexRecord {
        package: pkg.apt_spec(),
        field: f.to_string(),
    };
    let name = field("Package").ok_or_else(|| missing("Package"))?;
    let arch = field("Architecture").ok_or_else(|| missing("Architecture"))?;
    let version = field("Version").ok_or_else(|| missing("Version"))?;
    let sha256 = field("SHA256").ok_or_else(|| missing("SHA256"))?;
    // "all" packages satisfy any architecture; anything else must be what was asked for.
    if name != pkg.name || (arch != pkg.arch && arch != "all") {
        return Err(Error::PackageNotFound {
            package: pkg.apt_spec(),
        });
    }
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(missing("SHA256"));
    }
    Ok(IndexRecord {
        version,
        sha256: sha256.to_ascii_lowercase(),
    })
}

/// Fetches `pkg` into `cache/debs/` and returns it once its SHA256 matches apt's index.
///
/// A cached file that matches is returned without touching the network. A cached file
/// that does not match is deleted and downloaded again, so corruption is never
/// accepted; a fresh download that does not match is deleted and reported.
pub fn fetch(pkg: &PackageRef, cache: &Path) -> Result<FetchedDeb, Error> {
    let record = index_record(pkg)?;
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).map_err(|e| Error::io(&debs, e))?;
    let path = debs.join(format!(
        "{}.deb",
        stem(&pkg.name, &record.version, &pkg.arch)
    ));
    let fetched = FetchedDeb {
        name: pkg.name.clone(),
        version: record.version.clone(),
        arch: pkg.arch.clone(),
        sha256: record.sha256.clone(),
        path: path.clone(),
    };

    if path.exists() {
        if sha256_file(&path)? == record.sha256 {
            return Ok(fetched);
        }
        fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
    }

    // Downloading into a private directory and renaming means a crash or a concurrent
    // run can never leave a truncated file under the final name.
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&debs)
        .map_err(|e| Error::io(&debs, e))?;
    let exact = PackageRef {
        version: Some(record.version.clone()),
        ..pkg.clone()
    };
    let mut c = Command::new("apt-get");
    c.args(["download", "-q", &exact.apt_spec()])
        .current_dir(tmp.path());
    cmd::output(c)?;
    let downloaded = single_deb(tmp.path())?;
    verify_or_delete(&downloaded, &record.sha256, &path)?;
    fs::rename(&downloaded, &path).map_err(|e| Error::io(&path, e))?;
    Ok(fetched)
}

fn single_deb(dir: &Path) -> Result<PathBuf, Error> {
    let mut debs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.path().extension().is_some_and(|x| x == "deb") {
            debs.push(entry.path());
        }
    }
    match debs.len() {
        1 => Ok(debs.remove(0)),
        n => Err(Error::artifact(
            dir,
            format!("apt-get download left {n} .deb files, expected exactly one"),
        )),
    }
}

/// Checks a file against an expected SHA256, deleting it on mismatch.
///
/// `report_as` is the name the user knows the file by (its cache path), which a
/// download in a temporary directory does not have yet.
fn verify_or_delete(path: &Path, expected: &str, report_as: &Path) -> Result<(), Error> {
    let actual = sha256_file(path)?;
    if actual == expected {
        return Ok(());
    }
    fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    Err(Error::HashMismatch {
        path: report_as.to_path_buf(),
        expected: expected.to_string(),
        actual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "Package: linux-image-6.1.0-44-arm64\n\
Source: linux-signed-arm64 (6.1.164+1)\n\
Version: 6.1.164-1\n\
Architecture: arm64\n\
Description: Linux 6.1 for 64-bit ARMv8 machines (signed)\n\
Filename: pool/updates/main/l/linux-signed-arm64/linux-image-6.1.0-44-arm64_6.1.164-1_arm64.deb\n\
Size: 59415768\n\
SHA256: 4B9C101FC8E5081F78089DAF3F98ACE6C40CF3F2BB6F1D551BC53A1E23724D9B\n\
\n\
Package: linux-image-6.1.0-44-arm64\n\
Version: 6.1.164-0\n\
Architecture: arm64\n\
SHA256: 0000000000000000000000000000000000000000000000000000000000000000\n\n";

    fn kernel_ref() -> PackageRef {
        PackageRef::parse("linux-image-6.1.0-44-arm64").unwrap()
    }

    #[test]
    fn record_comes_from_the_first_stanza() {
        let r = parse_record(SHOW, &kernel_ref()).unwrap();
        assert_eq!(r.version, "6.1.164-1");
        assert_eq!(
            r.sha256,
            "4b9c101fc8e5081f78089daf3f98ace6c40cf3f2bb6f1d551bc53a1e23724d9b"
        );
    }

    #[test]
    fn empty_output_means_unknown_version() {
        let err = parse_record("", &kernel_ref()).unwrap_err();
        assert!(matches!(err, Error::PackageNotFound { .. }));
        assert!(err.to_string().contains("scripts/setup"), "{err}");
    }

    #[test]
    fn record_without_sha256_is_refused() {
        let text = "Package: linux-image-6.1.0-44-arm64\nVersion: 1\nArchitecture: arm64\n";
        let err = parse_record(text, &kernel_ref()).unwrap_err();
        assert!(matches!(err, Error::IndexRecord { ref field, .. } if field == "SHA256"));
    }

    #[test]
    fn record_for_another_architecture_is_refused() {
        let text = SHOW.replace("Architecture: arm64", "Architecture: amd64");
        let err = parse_record(&text, &kernel_ref()).unwrap_err();
        assert!(matches!(err, Error::PackageNotFound { .. }));
    }

    #[test]
    fn mismatch_names_both_hashes_and_deletes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.deb");
        fs::write(&p, b"abc").unwrap();
        let expected = "1".repeat(64);
        let err = verify_or_delete(&p, &expected, Path::new("/cache/debs/x.deb")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&expected), "{msg}");
        assert!(
            msg.contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            "{msg}"
        );
        assert!(msg.contains("/cache/debs/x.deb"), "{msg}");
        assert!(!p.exists());
        fs::write(&p, b"abc").unwrap();
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        verify_or_delete(&p, good, &p).unwrap();
        assert!(p.exists());
    }
}
