//! Unpacking a fetched `.deb` into the cache without installing it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd;
use crate::package::FetchedDeb;
use crate::Error;

/// Written last into an extracted tree; holds the `.deb`'s SHA256 so a tree is only
/// reused for the exact file it came from.
pub const EXTRACTED_MARKER: &str = ".hilt-extracted";

/// Unpacks `deb` (with `dpkg-deb -x`) into `cache/extracted/<name>_<version>_<arch>/`.
///
/// The tree is built in a temporary directory and renamed into place, so the final
/// directory either does not exist or is complete; a second call returns at once.
pub fn extract(deb: &FetchedDeb, cache: &Path) -> Result<PathBuf, Error> {
    let root = cache.join("extracted");
    fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let dest = root.join(deb.stem());
    if is_complete(&dest, deb) {
        return Ok(dest);
    }
    if dest.exists() {
        // Left by another file of the same name (e.g. a rebuilt package): never mix trees.
        fs::remove_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
    }

    let tmp = tempfile::Builder::new()
        .prefix(".extract-")
        .tempdir_in(&root)
        .map_err(|e| Error::io(&root, e))?;
    // tempdir is 0700; the tree is read by tools that may not run as this user.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(tmp.path(), e))?;
    let mut c = Command::new("dpkg-deb");
    c.arg("-x").arg(&deb.path).arg(tmp.path());
    cmd::output(c)?;
    let marker = tmp.path().join(EXTRACTED_MARKER);
    fs::write(&marker, format!("{}\n", deb.sha256)).map_err(|e| Error::io(&marker, e))?;

    if let Err(e) = fs::rename(tmp.path(), &dest) {
        // A concurrent extraction of the same file may have won the race; its tree is as good.
        if !is_complete(&dest, deb) {
            return Err(Error::io(&dest, e));
        }
    }
    // Dropping `tmp` removes the losing tree, or nothing if the rename moved it.
    drop(tmp);
    Ok(dest)
}

fn is_complete(dest: &Path, deb: &FetchedDeb) -> bool {
    fs::read_to_string(dest.join(EXTRACTED_MARKER)).is_ok_and(|s| s.trim() == deb.sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_file;

    /// Builds a real (tiny) .deb with dpkg-deb so extraction is tested end to end.
    fn build_deb(dir: &Path, payload: &str) -> FetchedDeb {
        let src = dir.join(format!("src-{payload}"));
        fs::create_dir_all(src.join("DEBIAN")).unwrap();
        fs::create_dir_all(src.join("usr/share/hilt")).unwrap();
        fs::write(
            src.join("DEBIAN/control"),
            "Package: hilt-test\nVersion: 1:1.0-1\nArchitecture: arm64\n\
             Maintainer: hilt <hilt@example.invalid>\nDescription: test\n",
        )
        .unwrap();
        fs::write(src.join("usr/share/hilt/payload"), payload).unwrap();
        let deb = dir.join(format!("hilt-test-{payload}.deb"));
        let mut c = Command::new("dpkg-deb");
        c.args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&src)
            .arg(&deb);
        cmd::output(c).unwrap();
        FetchedDeb {
            name: "hilt-test".into(),
            version: "1:1.0-1".into(),
            arch: "arm64".into(),
            sha256: sha256_file(&deb).unwrap(),
            path: deb,
        }
    }

    #[test]
    fn extracts_once_and_replaces_a_tree_from_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let first = build_deb(dir.path(), "one");
        let root = extract(&first, &cache).unwrap();
        assert_eq!(root, cache.join("extracted/hilt-test_1%3a1.0-1_arm64"));
        let payload = root.join("usr/share/hilt/payload");
        assert_eq!(fs::read_to_string(&payload).unwrap(), "one");

        // A second call must reuse the tree: a file added meanwhile survives.
        fs::write(root.join("probe"), "x").unwrap();
        assert_eq!(extract(&first, &cache).unwrap(), root);
        assert!(root.join("probe").exists());

        // Same name and version but different bytes: the old tree must not be reused.
        let second = build_deb(dir.path(), "two");
        assert_ne!(first.sha256, second.sha256);
        assert_eq!(extract(&second, &cache).unwrap(), root);
        assert_eq!(fs::read_to_string(&payload).unwrap(), "two");
        assert!(!root.join("probe").exists());

        let leftovers: Vec<_> = fs::read_dir(cache.join("extracted"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn a_broken_deb_leaves_no_tree() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let mut deb = build_deb(dir.path(), "one");
        fs::write(&deb.path, b"!<arch>\nnot really a deb").unwrap();
        deb.sha256 = sha256_file(&deb.path).unwrap();
        let err = extract(&deb, &cache).unwrap_err();
        assert!(matches!(err, Error::ToolFailed { .. }), "{err}");
        assert_eq!(fs::read_dir(cache.join("extracted")).unwrap().count(), 0);
    }
}
