//! busybox-static: the board's userland, one static aarch64 binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::elf::{Elf, EM_AARCH64};
use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busybox {
    /// `bin/busybox` in the extracted package.
    pub path: PathBuf,
    /// The Debian package version it came from.
    pub version: String,
}

/// Finds busybox in an extracted `busybox-static:arm64` and checks that it can run on the
/// board as-is: an executable, statically linked aarch64 ELF (an initramfs has no libc).
pub fn busybox_from_extracted(root: &Path, version: &str) -> Result<Busybox, Error> {
    let path = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::artifact(
                root,
                "no bin/busybox here: is this an extracted busybox-static package?",
            )
        })?;
    let meta = fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::artifact(&path, "not executable"));
    }
    let data = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let elf_err = |reason: String| Error::Elf {
        path: path.clone(),
        reason,
    };
    let elf = Elf::parse(&data).map_err(elf_err)?;
    if elf.machine != EM_AARCH64 {
        return Err(elf_err(format!(
            "built for ELF machine {}, not aarch64 ({EM_AARCH64}): fetch busybox-static:arm64",
            elf.machine
        )));
    }
    if elf.has_interpreter().map_err(elf_err)? {
        return Err(elf_err(
            "dynamically linked; the board's initramfs needs busybox-static, not busybox".into(),
        ));
    }
    Ok(Busybox {
        path,
        version: version.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::build_test_elf;

    fn tree(elf: &[u8], mode: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("bin")).unwrap();
        let p = dir.path().join("bin/busybox");
        fs::write(&p, elf).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    #[test]
    fn accepts_static_aarch64() {
        let dir = tree(&build_test_elf(EM_AARCH64, &[], Some(1)), 0o755);
        let bb = busybox_from_extracted(dir.path(), "1:1.35.0-4").unwrap();
        assert_eq!(bb.path, dir.path().join("bin/busybox"));
        assert_eq!(bb.version, "1:1.35.0-4");
    }

    #[test]
    fn refuses_dynamic_foreign_or_non_executable() {
        let dynamic = tree(&build_test_elf(EM_AARCH64, &[], Some(3)), 0o755);
        let err = busybox_from_extracted(dynamic.path(), "1").unwrap_err();
        assert!(err.to_string().contains("dynamically linked"), "{err}");

        let x86 = tree(&build_test_elf(62, &[], Some(1)), 0o755);
        let err = busybox_from_extracted(x86.path(), "1").unwrap_err();
        assert!(err.to_string().contains("not aarch64"), "{err}");

        let plain = tree(&build_test_elf(EM_AARCH64, &[], Some(1)), 0o644);
        let err = busybox_from_extracted(plain.path(), "1").unwrap_err();
        assert!(err.to_string().contains("not executable"), "{err}");

        let empty = tempfile::tempdir().unwrap();
        assert!(busybox_from_extracted(empty.path(), "1").is_err());
    }
}
