//! The data filesystem beside erofs (Android's /data): mounted read-write,
//! and filled with the files `on: data` readers read. Its reads put another
//! filesystem's submit_bio() calls on the card erofs completes on.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use hilt_protocol::{DataSpec, DATA_MOUNT_POINT};

use crate::{block, sys};

const CHUNK: usize = 1 << 20;

/// Mounts the filesystem and writes its files; returns them, sorted, and the
/// stage report's words.
pub fn set_up(spec: &DataSpec) -> io::Result<(Vec<PathBuf>, String)> {
    let fs_name = spec.fs.name();
    if !kernel_has(fs_name)? {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "this kernel has no {fs_name} (not in /proc/filesystems): build it with CONFIG_{}_FS=y \
                 (kernels/configs/{fs_name}.config) or drop storage.data from the plan",
                fs_name.to_uppercase()
            ),
        ));
    }
    let device = block::resolve(&spec.device)?;
    fs::create_dir_all(DATA_MOUNT_POINT)?;
    // A second run in the same boot finds it mounted already.
    let _ = unmount(DATA_MOUNT_POINT);
    sys::mount(&device, DATA_MOUNT_POINT, fs_name, libc::MS_NOATIME, "")?;
    let dir = Path::new(DATA_MOUNT_POINT).join("hilt");
    fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let mut written = 0;
    let mut files = Vec::with_capacity(spec.files as usize);
    for i in 0..spec.files {
        let path = dir.join(format!("file-{i:03}"));
        if fs::metadata(&path).map(|m| m.len()).ok() != Some(spec.file_bytes) {
            fill(&path, spec.file_bytes, i)?;
            written += 1;
        }
        files.push(path);
    }
    let detail = format!(
        "{fs_name} on {} at {DATA_MOUNT_POINT}, {} files of {} KiB ({written} written in {:.1} s)",
        device.display(),
        spec.files,
        spec.file_bytes / 1024,
        started.elapsed().as_secs_f64()
    );
    Ok((files, detail))
}

fn kernel_has(fs_name: &str) -> io::Result<bool> {
    let text = fs::read_to_string("/proc/filesystems")?;
    Ok(listed(&text, fs_name))
}

fn listed(proc_filesystems: &str, fs_name: &str) -> bool {
    proc_filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs_name))
}

/// Writes distinct bytes per file and chunk, so that no layer below (f2fs
/// compression, zram's same-page detection) can shortcut the reads, and
/// syncs them so the readers' first round already goes to the card.
fn fill(path: &Path, bytes: u64, seed: u32) -> io::Result<()> {
    let mut f = File::create(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut x = u64::from(seed) << 32 | 1;
    let mut left = bytes;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            // xorshift64: cheap on an emulated CPU, and never all zeroes.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(CHUNK as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

fn unmount(dir: &str) -> io::Result<()> {
    let c = sys::cstr(dir)?;
    sys::check(
        unsafe { libc::umount(c.as_ptr()) },
        &format!("umount {dir}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_counts_only_where_proc_lists_it() {
        let text = "nodev\tsysfs\nnodev\ttmpfs\n\text4\n\terofs\n";
        assert!(listed(text, "ext4"));
        assert!(listed(text, "erofs"));
        assert!(!listed(text, "f2fs"));
        assert!(!listed(text, "sysfs2"));
    }

    #[test]
    fn filled_files_have_the_size_asked_and_differ_between_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fill(&a, 3 * CHUNK as u64 + 100, 0).unwrap();
        fill(&b, 3 * CHUNK as u64 + 100, 1).unwrap();
        let (ba, bb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
        assert_eq!(ba.len(), 3 * CHUNK + 100);
        assert_ne!(ba, bb);
        // No chunk repeats, or a deduplicating layer could skip the I/O.
        assert_ne!(ba[..CHUNK], ba[CHUNK..2 * CHUNK]);
    }
}
