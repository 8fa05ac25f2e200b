//! An empty writable filesystem image for a plan's data partition, made
//! with the distribution's own mkfs so that the kernel sees exactly what a
//! device's /data would hold.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::process::Command;

use crate::Error;

/// The label the partition carries, so a person can find it with blkid.
pub const LABEL: &str = "hilt-data";

struct Tool {
    program: &'static str,
    package: &'static str,
    args: &'static [&'static str],
    /// Below this mkfs refuses (f2fs needs room for its six logs and
    /// checkpoint areas).
    min_bytes: u64,
}

fn tool(fs_name: &str) -> Result<Tool, Error> {
    match fs_name {
        "f2fs" => Ok(Tool {
            program: "mkfs.f2fs",
            package: "f2fs-tools",
            args: &["-f", "-q", "-l", LABEL],
            min_bytes: 64 << 20,
        }),
        "ext4" => Ok(Tool {
            program: "mkfs.ext4",
            package: "e2fsprogs",
            args: &["-F", "-q", "-L", LABEL],
            min_bytes: 8 << 20,
        }),
        other => Err(Error::InvalidOption {
            what: "data filesystem",
            reason: format!("{other:?}: expected f2fs or ext4"),
        }),
    }
}

/// The smallest partition `fs_name` can be made on.
pub fn min_bytes(fs_name: &str) -> Result<u64, Error> {
    tool(fs_name).map(|t| t.min_bytes)
}

/// Writes an image of `size_bytes` holding an empty `fs_name` filesystem.
pub fn format(out: &Path, fs_name: &str, size_bytes: u64) -> Result<(), Error> {
    let t = tool(fs_name)?;
    if size_bytes < t.min_bytes {
        return Err(Error::InvalidOption {
            what: "data partition size",
            reason: format!(
                "{} MiB is too small for {fs_name}: it needs at least {} MiB",
                size_bytes >> 20,
                t.min_bytes >> 20
            ),
        });
    }
    let tmp = out.with_extension("partial");
    let _ = fs::remove_file(&tmp);
    File::create(&tmp)
        .and_then(|f| f.set_len(size_bytes))
        .map_err(|e| Error::io("creating", &tmp, e))?;
    let output = match Command::new(t.program).args(t.args).arg(&tmp).output() {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = fs::remove_file(&tmp);
            return Err(Error::ToolMissing {
                tool: t.program,
                package: t.package,
            });
        }
        Err(e) => return Err(Error::io("running mkfs for", out, e)),
    };
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        return Err(Error::ToolFailed {
            command: format!("{} {} {}", t.program, t.args.join(" "), tmp.display()),
            status: output.status.to_string(),
            output: text,
        });
    }
    fs::rename(&tmp, out).map_err(|e| Error::io("renaming the new image to", out, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The magic each filesystem's kernel driver checks first.
    fn magic_at(path: &Path, offset: usize, magic: &[u8]) -> bool {
        let b = fs::read(path).unwrap();
        &b[offset..offset + magic.len()] == magic
    }

    #[test]
    fn makes_filesystems_the_kernel_recognises() {
        let dir = tempfile::tempdir().unwrap();
        let ext4 = dir.path().join("ext4.img");
        format(&ext4, "ext4", 16 << 20).unwrap();
        // ext4: s_magic 0xEF53 at 1024 + 56.
        assert!(magic_at(&ext4, 1024 + 56, &[0x53, 0xEF]));
        assert_eq!(fs::metadata(&ext4).unwrap().len(), 16 << 20);
        let f2fs = dir.path().join("f2fs.img");
        // scripts/setup installs f2fs-tools.
        format(&f2fs, "f2fs", 64 << 20).unwrap();
        // F2FS_SUPER_MAGIC 0xF2F52010 at 1024.
        assert!(magic_at(&f2fs, 1024, &0xF2F5_2010u32.to_le_bytes()));
    }

    #[test]
    fn refuses_sizes_mkfs_would_refuse_and_unknown_filesystems() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.img");
        let e = format(&out, "f2fs", 32 << 20).unwrap_err().to_string();
        assert!(e.contains("at least 64 MiB"), "{e}");
        assert!(format(&out, "btrfs", 64 << 20).is_err());
        assert!(!out.exists());
    }
}
