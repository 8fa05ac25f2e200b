//! Writes that survive what can end a run: hilt killed (Ctrl-C, SIGTERM,
//! `kill -9`), the host crashing or losing power, the disk filling up.
//!
//! - A journal (results.jsonl, events.jsonl, flash.jsonl, deploy.jsonl)
//!   only ever gains whole lines: a line the disk had no room for is taken
//!   back, and a line a killed writer left cut short is ended before the
//!   next one, so that it never swallows the start of a good line.
//! - A whole file (summary.json, run.json, a lease) is replaced through a
//!   temporary file that is synced, renamed over the old one, and whose
//!   directory is then synced: after a crash the name holds the old
//!   contents or the new ones, never a mix or an empty file, and a failed
//!   write leaves no temporary file behind.
//!
//! Killing hilt loses nothing the kernel already has; the syncs are for a
//! host that goes down before its page cache reaches the disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// An append-only file of JSON lines.
pub struct Journal {
    file: File,
    /// How long an appended line may stay unsynced; zero syncs each one.
    sync_every: Duration,
    synced: Instant,
    dirty: bool,
}

impl Journal {
    /// Opens (or creates) `path` for appending. A last line without its
    /// newline (a writer killed mid-line) gets one, so it stays a line of
    /// its own that readers can skip.
    pub fn open(path: &Path, sync_every: Duration) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8];
            file.read_exact_at(&mut last, len - 1)?;
            if last[0] != b'\n' {
                append_line(&mut file, b"\n")?;
            }
        }
        Ok(Self {
            file,
            sync_every,
            synced: Instant::now(),
            dirty: false,
        })
    }

    /// Appends `line` (which ends in a newline) whole or not at all, and
    /// syncs when the last sync is `sync_every` old.
    pub fn append(&mut self, line: &[u8]) -> io::Result<()> {
        append_line(&mut self.file, line)?;
        self.dirty = true;
        if self.synced.elapsed() >= self.sync_every {
            self.sync()?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        self.synced = Instant::now();
        Ok(())
    }
}

/// Appends one line to the journal at `path` and syncs it: for files
/// written a line at a time, far apart (a flash, an install).
pub fn append_synced(path: &Path, line: &[u8]) -> io::Result<()> {
    Journal::open(path, Duration::ZERO)?.append(line)
}

/// Appends a whole line or nothing: a line cut off by a full disk is taken
/// back, so every reader of the file still finds only complete lines.
fn append_line(f: &mut File, line: &[u8]) -> io::Result<()> {
    let len = f.metadata()?.len();
    f.write_all(line).inspect_err(|_| {
        let _ = f.set_len(len);
    })
}

/// Appends one record as a JSON line (flash.jsonl, deploy.jsonl): a
/// night's flashes in one place, each line synced and written whole or
/// not at all when the disk fills.
pub fn append_json_line<T: serde::Serialize>(path: &Path, rec: &T) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut line = serde_json::to_vec(rec)?;
    line.push(b'\n');
    append_synced(path, &line).with_context(|| format!("appending to {}", path.display()))
}

/// Replaces `path` with `bytes`: after a crash or a failed write, `path`
/// holds either its old contents or the new ones.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = parent(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Unique per process and call: two writers of one name (the runner's
    // threads, two hilt processes sharing a lease directory) never share
    // a temporary file.
    let tmp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        // The data must be on disk before the name points at it, or a crash
        // can leave the new name on an empty file.
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(&dir)
}

/// Makes the names in `dir` (files created, renamed or removed) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir)?.sync_all() {
        // Some network and FUSE filesystems cannot sync a directory; they
        // order their metadata themselves.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP)) => Ok(()),
        r => r,
    }
}

/// Syncs every file below `dir`, then the directories, deepest first:
/// for files written in place once, before anything that refers to them.
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            sync_tree(&e.path())?;
        } else if t.is_file() {
            File::open(e.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

/// Removes the temporary files a killed writer left in `dir`; only for a
/// directory no one else is writing. Returns their names.
pub fn remove_temps(dir: &Path) -> io::Result<Vec<String>> {
    let mut gone = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            std::fs::remove_file(dir.join(&name))?;
            gone.push(name);
        }
    }
    if !gone.is_empty() {
        sync_dir(dir)?;
    }
    Ok(gone)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Names of the temporary files in `dir`.
#[cfg(test)]
pub fn temps_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// For a test that needs a full disk: runs the test `test` (its full
/// name) again, in a copy of this test binary whose files may not grow past
/// `limit` bytes (RLIMIT_FSIZE, with SIGXFSZ ignored, so that a write
/// crossing it writes what fits and fails with EFBIG, as a full disk does
/// with ENOSPC). The limit holds for that process only, so the other tests
/// of this binary are not affected.
///
/// Returns `dir` in the copy, for it to write there; in the caller, None
/// once the copy has passed, for it to check what was written.
#[cfg(test)]
pub fn small_disk(test: &str, limit: u64, dir: &Path) -> Option<PathBuf> {
    use std::os::unix::process::CommandExt;
    if let Some(d) = std::env::var_os("HILT_TEST_SMALL_DISK") {
        return Some(PathBuf::from(d));
    }
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("HILT_TEST_SMALL_DISK", dir);
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A name that matched no test also exits 0.
    assert!(
        out.contains(" 1 passed"),
        "the copy did not run {test}: {out}"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_ended_before_the_next_append() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("flash.jsonl");
        std::fs::write(&p, b"{\"a\":1}\n{\"a\":").unwrap();
        append_json_line(&p, &serde_json::json!({"a": 2})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"a\":1}\n{\"a\":\n{\"a\":2}\n"
        );
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("summary.json");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(temps_in(d.path()), Vec::<String>::new());
        // A directory in the way: the rename fails, and its temporary goes.
        let blocked = d.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        write_atomic(&blocked, b"new").unwrap_err();
        assert_eq!(temps_in(d.path()), Vec::<String>::new());
    }

    #[test]
    fn the_temporaries_of_a_killed_writer_are_removed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".summary.json.77-0.tmp"), b"{").unwrap();
        std::fs::write(d.path().join("summary.json"), b"{}").unwrap();
        assert_eq!(
            remove_temps(d.path()).unwrap(),
            [".summary.json.77-0.tmp".to_string()]
        );
        assert_eq!(temps_in(d.path()), Vec::<String>::new());
        assert!(d.path().join("summary.json").exists());
    }

    /// The disk fills while a flash record and a whole file are written:
    /// the journal keeps whole lines and the file its old contents, and
    /// no temporary file is left.
    #[test]
    fn a_full_disk_leaves_whole_lines_and_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let name = "durable::tests::a_full_disk_leaves_whole_lines_and_the_old_file";
        let rec = serde_json::json!({ "detail": "x".repeat(588) });
        if let Some(dir) = small_disk(name, 1000, d.path()) {
            let flash = dir.join("flash.jsonl");
            append_json_line(&flash, &rec).unwrap();
            let e = append_json_line(&flash, &rec).unwrap_err();
            assert!(format!("{e:#}").contains("File too large"), "{e:#}");
            write_atomic(&dir.join("run.json"), b"old").unwrap();
            let e = write_atomic(&dir.join("run.json"), &[b'n'; 2000]).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
            return;
        }
        let j = std::fs::read_to_string(d.path().join("flash.jsonl")).unwrap();
        assert_eq!(j, format!("{rec}\n"));
        assert_eq!(std::fs::read(d.path().join("run.json")).unwrap(), b"old");
        assert_eq!(temps_in(d.path()), Vec::<String>::new());
    }
}
