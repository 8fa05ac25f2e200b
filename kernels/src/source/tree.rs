//! Where a kernel tree comes from and what identifies it: a Debian
//! `linux-source-*` package (its version and the tarball's SHA256) or a
//! local directory (its git tree hash when clean, else a hash of every
//! file). The identity names a work directory that every variant of that
//! tree shares, so a second variant recompiles only what differs.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::digest::sha256_file;
use crate::{cmd, Error, PackageRef};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeSource {
    /// Debian's kernel source package, e.g. `linux-source-6.1=6.1.192-2`.
    Debian(String),
    /// A kernel tree on this machine; it is copied, never modified.
    Path(PathBuf),
}

/// What the provenance record says about the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TreeInfo {
    /// `debian` or `path`.
    pub kind: String,
    /// The package reference or the directory.
    pub origin: String,
    /// What the content key is built from: package version plus tarball
    /// SHA256, `git:<tree hash>`, or `files:<hash of every file>`.
    pub identity: String,
}

pub(crate) struct Tree {
    pub info: TreeInfo,
    /// A short, path-safe name derived from the identity.
    pub dir_name: String,
    /// Fills an empty directory with the pristine tree.
    populate: Populate,
}

enum Populate {
    Tarball(PathBuf),
    Copy(PathBuf),
}

impl Tree {
    pub fn resolve(source: &TreeSource, cache: &Path) -> Result<Tree, Error> {
        match source {
            TreeSource::Debian(spec) => debian(spec, cache),
            TreeSource::Path(p) => local(p),
        }
    }

    /// Unpacks or copies the tree into `dest` (which must not exist).
    pub fn populate(&self, dest: &Path) -> Result<(), Error> {
        let tmp = dest.with_extension("partial");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        match &self.populate {
            Populate::Tarball(t) => {
                let mut c = Command::new("tar");
                c.arg("-xf")
                    .arg(t)
                    .arg("-C")
                    .arg(&tmp)
                    .arg("--strip-components=1");
                cmd::output(c)?;
            }
            Populate::Copy(src) => {
                // tar rather than cp: it can leave .git out.
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(r#"tar -C "$1" --exclude=./.git -cf - . | tar -C "$2" -xf -"#)
                    .arg("sh")
                    .arg(src)
                    .arg(&tmp);
                cmd::output(c)?;
            }
        }
        if !tmp.join("Makefile").is_file() || !tmp.join("Kconfig").is_file() {
            return Err(Error::artifact(
                &tmp,
                "no top-level Makefile and Kconfig: not a Linux kernel tree",
            ));
        }
        fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))
    }
}

fn debian(spec: &str, cache: &Path) -> Result<Tree, Error> {
    let mut pkg = PackageRef::parse(spec)?;
    // Source packages are arch-independent; PackageRef defaults to arm64.
    if !spec.contains(':') {
        pkg.arch = "all".into();
    }
    if !pkg.name.starts_with("linux-source-") {
        return Err(Error::InvalidPackageRef {
            input: spec.into(),
            reason: "expected Debian's kernel source package, linux-source-<version>".into(),
        });
    }
    let deb = crate::fetch(&pkg, cache)?;
    let root = crate::extract(&deb, cache)?;
    let src = root.join("usr/src");
    let tarball = fs::read_dir(&src)
        .map_err(|e| Error::io(&src, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("linux-source-")
                    && n.to_string_lossy().contains(".tar")
            })
        })
        .ok_or_else(|| Error::artifact(&src, "no linux-source-*.tar.* in the package"))?;
    let sha = sha256_file(&tarball)?;
    Ok(Tree {
        info: TreeInfo {
            kind: "debian".into(),
            origin: format!("{}={}", deb.name, deb.version),
            identity: format!("{}={} tarball sha256:{sha}", deb.name, deb.version),
        },
        dir_name: format!(
            "{}_{}-{}",
            deb.name,
            deb.version.replace(':', "%3a"),
            &sha[..12]
        ),
        populate: Populate::Tarball(tarball),
    })
}

fn local(path: &Path) -> Result<Tree, Error> {
    let path = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    if !path.join("Makefile").is_file() || !path.join("Kconfig").is_file() {
        return Err(Error::artifact(
            &path,
            "no top-level Makefile and Kconfig: expected the root of a Linux kernel tree",
        ));
    }
    // kbuild refuses to build out of tree (O=) from a configured tree.
    for f in [".config", "include/config/auto.conf"] {
        if path.join(f).exists() {
            return Err(Error::artifact(
                &path,
                format!("has {f}: hilt builds out of tree and kbuild then needs a clean source; run `make mrproper` in it"),
            ));
        }
    }
    let identity = match git_tree(&path) {
        Some(t) => format!("git:{t}"),
        None => format!("files:{}", hash_tree(&path)?),
    };
    let short = Sha256::digest(identity.as_bytes());
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tree".into());
    Ok(Tree {
        info: TreeInfo {
            kind: "path".into(),
            origin: path.display().to_string(),
            identity,
        },
        dir_name: format!("{base}-{}", &hex::encode(short)[..12]),
        populate: Populate::Copy(path),
    })
}

/// The git tree hash of HEAD, if the directory is a git checkout with no
/// changes and no untracked files: then the hash names the content exactly.
fn git_tree(path: &Path) -> Option<String> {
    if !path.join(".git").exists() {
        return None;
    }
    let run = |args: &[&str]| {
        let mut c = Command::new("git");
        c.arg("-C").arg(path).args(args);
        cmd::output(c).ok()
    };
    let status = run(&["status", "--porcelain", "--untracked-files=normal"])?;
    if !status.is_empty() {
        return None;
    }
    let tree = run(&["rev-parse", "HEAD^{tree}"])?;
    Some(String::from_utf8_lossy(&tree).trim().to_string())
}

/// A hash over every file's relative path, type and content, in sorted
/// order; `.git` is left out.
pub fn hash_tree(root: &Path) -> Result<String, Error> {
    let mut files = Vec::new();
    walk(root, Path::new(""), &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for rel in files {
        let full = root.join(&rel);
        let meta = fs::symlink_metadata(&full).map_err(|e| Error::io(&full, e))?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&full).map_err(|e| Error::io(&full, e))?;
            h.update(b"L");
            h.update(target.to_string_lossy().as_bytes());
        } else {
            use std::os::unix::fs::PermissionsExt;
            h.update(if meta.permissions().mode() & 0o111 != 0 {
                b"X"
            } else {
                b"F"
            });
            h.update(meta.len().to_le_bytes());
            let mut f = fs::File::open(&full).map_err(|e| Error::io(&full, e))?;
            loop {
                let n = f.read(&mut buf).map_err(|e| Error::io(&full, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let dir = root.join(rel);
    for entry in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let name = entry.file_name();
        if rel.as_os_str().is_empty() && name == ".git" {
            continue;
        }
        let child = rel.join(&name);
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if kind.is_dir() {
            walk(root, &child, out)?;
        } else {
            out.push(child);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_hash_follows_content_names_and_modes() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("fs/erofs")).unwrap();
        fs::write(d.path().join("fs/erofs/zdata.c"), "a").unwrap();
        fs::write(d.path().join("Makefile"), "m").unwrap();
        let h1 = hash_tree(d.path()).unwrap();
        assert_eq!(h1, hash_tree(d.path()).unwrap());
        fs::create_dir_all(d.path().join(".git")).unwrap();
        fs::write(d.path().join(".git/HEAD"), "x").unwrap();
        assert_eq!(h1, hash_tree(d.path()).unwrap(), ".git must not count");
        fs::write(d.path().join("fs/erofs/zdata.c"), "b").unwrap();
        let h2 = hash_tree(d.path()).unwrap();
        assert_ne!(h1, h2);
        fs::rename(
            d.path().join("fs/erofs/zdata.c"),
            d.path().join("fs/erofs/zmap.c"),
        )
        .unwrap();
        assert_ne!(h2, hash_tree(d.path()).unwrap());
    }

    #[test]
    fn a_configured_tree_is_refused_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("Makefile"), "").unwrap();
        fs::write(d.path().join("Kconfig"), "").unwrap();
        fs::write(d.path().join(".config"), "").unwrap();
        let err = local(d.path()).err().unwrap().to_string();
        assert!(err.contains("make mrproper"), "{err}");
    }

    #[test]
    fn not_a_kernel_tree_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let err = local(d.path()).err().unwrap().to_string();
        assert!(err.contains("Linux kernel tree"), "{err}");
    }
}
