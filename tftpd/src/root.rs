//! Which file a requested name means, and only ever one under the root.

use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::packet::ErrorCode;

/// The directory served, resolved once so that every answer is compared
/// with the same real path.
#[derive(Debug, Clone)]
pub struct Root(PathBuf);

/// Why a name gets no file, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub ErrorCode, pub String);

impl Root {
    pub fn new(dir: &Path) -> io::Result<Root> {
        let real = dir
            .canonicalize()
            .map_err(|e| io::Error::new(e.kind(), format!("TFTP root {}: {e}", dir.display())))?;
        if !real.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TFTP root {} is not a directory", dir.display()),
            ));
        }
        Ok(Root(real))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Opens `name`, relative to the root. Absolute names and `..` are
    /// refused outright; a symbolic link is followed only if where it leads
    /// is still under the root.
    pub fn open(&self, name: &str) -> Result<(File, u64), Refused> {
        let access = |why: String| Refused(ErrorCode::AccessViolation, why);
        if name.is_empty() {
            return Err(access("an empty file name".into()));
        }
        let rel = Path::new(name);
        for c in rel.components() {
            match c {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => {
                    return Err(access(format!("{name}: `..` is refused")));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(access(format!(
                        "{name}: absolute names are refused; names are relative to the TFTP root"
                    )));
                }
            }
        }
        let real = self
            .0
            .join(rel)
            .canonicalize()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => {
                    Refused(ErrorCode::FileNotFound, format!("{name}: no such file"))
                }
                _ => access(format!("{name}: {e}")),
            })?;
        if !real.starts_with(&self.0) {
            return Err(access(format!("{name}: leads outside the TFTP root")));
        }
        let file = File::open(&real).map_err(|e| access(format!("{name}: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| access(format!("{name}: {e}")))?;
        if !meta.is_file() {
            return Err(access(format!("{name}: not a regular file")));
        }
        Ok((file, meta.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_under_the_root_are_served() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let served = dir.path().join("served");
        std::fs::create_dir_all(served.join("sub")).unwrap();
        std::fs::write(served.join("sub/Image"), b"kernel").unwrap();
        std::fs::write(dir.path().join("beside"), b"b").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), served.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/Image", served.join("in")).unwrap();
        let root = Root::new(&served).unwrap();

        assert_eq!(root.open("sub/Image").unwrap().1, 6);
        assert_eq!(root.open("./sub/Image").unwrap().1, 6);
        assert_eq!(root.open("in").unwrap().1, 6);
        for (name, code) in [
            ("../beside", ErrorCode::AccessViolation),
            ("sub/../../beside", ErrorCode::AccessViolation),
            ("sub/../sub/Image", ErrorCode::AccessViolation),
            ("/etc/passwd", ErrorCode::AccessViolation),
            ("out", ErrorCode::AccessViolation),
            ("sub", ErrorCode::AccessViolation),
            ("", ErrorCode::AccessViolation),
            ("nonesuch", ErrorCode::FileNotFound),
        ] {
            assert_eq!(root.open(name).unwrap_err().0, code, "{name}");
        }
        assert!(Root::new(&served.join("sub/Image")).is_err());
        assert!(Root::new(&dir.path().join("missing")).is_err());
    }
}
