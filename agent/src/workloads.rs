//! The workload processes: an anonymous-memory hog and erofs readers.
//! Each runs as `hilt-agent worker <json>` in its own process.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use hilt_protocol::{ReadPattern, WorkloadSpec};
use serde::{Deserialize, Serialize};

use crate::shm::{self, Mapping};
use crate::sys;

/// What the watcher tells a worker process; passed as one argv entry.
#[derive(Serialize, Deserialize)]
pub struct WorkerArgs {
    pub spec: WorkloadSpec,
    pub shm_fd: i32,
    /// First reader slot this worker owns.
    pub slot_base: usize,
    pub deadline_uptime_ms: u64,
    pub files: Vec<PathBuf>,
    pub mem_total_kb: u64,
}

pub fn spawn(args: &WorkerArgs) -> io::Result<Child> {
    let json = serde_json::to_string(args).map_err(io::Error::other)?;
    // Exec the agent's own file by name, so workers show as hilt-agent in
    // ps and in the kernel's task dumps rather than as "exe".
    Command::new(std::env::current_exe()?)
        .arg("worker")
        .arg(json)
        .spawn()
}

pub fn worker_main(json: &str) -> io::Result<()> {
    let args: WorkerArgs = serde_json::from_str(json).map_err(io::Error::other)?;
    // Kernel reports (OOM kills, hung tasks) then name the workload.
    let comm: &std::ffi::CStr = match args.spec {
        WorkloadSpec::Hog { .. } => c"hilt-hog",
        WorkloadSpec::Readers { .. } => c"hilt-reader",
    };
    unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) };
    sys::clear_io_flusher();
    let map = Mapping::map(args.shm_fd)?;
    match &args.spec {
        WorkloadSpec::Hog {
            mem_fraction,
            start_after_ms,
            ..
        } => {
            // The hog, not the readers, should be what an OOM kill takes.
            let _ = sys::write_attr("/proc/self/oom_score_adj", "1000");
            std::thread::sleep(Duration::from_millis(*start_after_ms));
            let bytes = (args.mem_total_kb as f64 * 1024.0 * mem_fraction) as usize;
            hog(&map, bytes, args.deadline_uptime_ms)
        }
        WorkloadSpec::Readers {
            threads,
            pattern,
            block_size,
            drop_caches,
            rounds,
            start_after_ms,
            readahead,
            ..
        } => {
            std::thread::sleep(Duration::from_millis(*start_after_ms));
            std::thread::scope(|s| {
                for t in 0..*threads as usize {
                    let how = ReadHow {
                        pattern: *pattern,
                        block_size: *block_size as usize,
                        drop_caches: *drop_caches,
                        rounds: *rounds,
                        readahead: *readahead,
                        deadline: args.deadline_uptime_ms,
                    };
                    let slot = &map.get().readers[args.slot_base + t];
                    let files = &args.files;
                    s.spawn(move || reader(slot, t, files, &how));
                }
            });
            Ok(())
        }
    }
}

fn hog(map: &Mapping, bytes: usize, deadline: u64) -> io::Result<()> {
    let page = 4096;
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mem = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, bytes) };
    let shared = map.get();
    let mut pass: u64 = 0;
    while sys::uptime_ms() < deadline {
        for (i, chunk) in mem.chunks_mut(page).enumerate() {
            // Distinct values per pass so no page stays identical (and
            // cheap for zram to store as a same-filled page).
            chunk[0] = pass as u8;
            chunk[chunk.len() / 2] = (i as u8) ^ (pass as u8);
            if pass == 0 {
                shared.hog_bytes.fetch_add(chunk.len() as u64, Relaxed);
            }
        }
        shared.hog_passes.fetch_add(1, Relaxed);
        pass += 1;
        // Often enough to keep every page on the active list, rarely enough
        // that the hog does not take a whole CPU away from the readers.
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One reader thread's settings, from its workload.
struct ReadHow {
    pattern: ReadPattern,
    block_size: usize,
    drop_caches: bool,
    rounds: Option<u32>,
    readahead: bool,
    deadline: u64,
}

fn reader(slot: &shm::ReaderSlot, index: usize, files: &[PathBuf], how: &ReadHow) {
    let ReadHow {
        block_size,
        drop_caches,
        rounds,
        deadline,
        ..
    } = *how;
    slot.state.store(shm::RUNNING, Relaxed);
    slot.last_progress_ms.store(sys::uptime_ms(), Relaxed);
    let mut buf = vec![0u8; block_size];
    let mut rng = Rng(index as u64 + 1);
    let mut round = 0u32;
    if drop_caches {
        // 4 silences the kernel's "drop_caches" line after this one: each
        // drop would otherwise print it, and on a UART shared with the
        // agent every console line is a chance to tear one of its frames.
        let _ = sys::write_attr("/proc/sys/vm/drop_caches", "4");
    }
    'rounds: while rounds.is_none_or(|r| round < r) {
        if drop_caches {
            let _ = sys::write_attr("/proc/sys/vm/drop_caches", "3");
        }
        // Readers start at different files so they do not all fault the
        // same pclusters in lockstep.
        for k in 0..files.len() {
            if sys::uptime_ms() >= deadline {
                break 'rounds;
            }
            let path = &files[(k + index) % files.len()];
            if let Err(e) = read_file(slot, path, how, &mut buf, &mut rng) {
                slot.errors.fetch_add(1, Relaxed);
                slot.last_errno
                    .store(e.raw_os_error().unwrap_or(0) as u64, Relaxed);
            }
        }
        round += 1;
        slot.rounds.fetch_add(1, Relaxed);
    }
    slot.state.store(shm::FINISHED, Relaxed);
}

fn read_file(
    slot: &shm::ReaderSlot,
    path: &PathBuf,
    how: &ReadHow,
    buf: &mut [u8],
    rng: &mut Rng,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if !how.readahead {
        // Advice only: a kernel that ignores it reads as before.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
    }
    let deadline = how.deadline;
    match how.pattern {
        ReadPattern::Sequential => loop {
            let t = Instant::now();
            let n = f.read(buf)?;
            if n == 0 {
                return Ok(());
            }
            slot.record(t.elapsed().as_micros() as u64, n as u64, sys::uptime_ms());
        },
        ReadPattern::Random => {
            let blocks = (len / buf.len() as u64).max(1);
            for _ in 0..blocks {
                let off = (rng.next() % blocks) * buf.len() as u64;
                let t = Instant::now();
                let n = f.read_at(buf, off)?;
                slot.record(t.elapsed().as_micros() as u64, n as u64, sys::uptime_ms());
                if sys::uptime_ms() >= deadline {
                    break;
                }
            }
            Ok(())
        }
        ReadPattern::Mmap => read_mapped(slot, &f, len as usize, buf.len(), how.readahead),
    }
}

thread_local! {
    /// Set by the SIGBUS handler on the thread whose mapped read failed.
    static MAPPED_READ_FAILED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A read through a mapping that hits an I/O error (or a file truncated
/// under it) raises SIGBUS, which would kill the whole worker and every
/// reader in it. The handler maps a zero page over the faulting page so the
/// access completes, and flags the thread: its read ends with EIO, counted
/// like any other read error.
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let page = 4096usize;
    let addr = unsafe { (*info).si_addr() } as usize & !(page - 1);
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            page,
            libc::PROT_READ,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        // Not a page of ours to replace: die as SIGBUS would have.
        unsafe { libc::_exit(128 + libc::SIGBUS) };
    }
    MAPPED_READ_FAILED.with(|f| f.set(true));
}

fn catch_sigbus() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    });
}

/// Reads `len` bytes of `f` through a shared mapping, one chunk of `block`
/// bytes at a time (one touch per page faults the chunk in).
fn read_mapped(
    slot: &shm::ReaderSlot,
    f: &File,
    len: usize,
    block: usize,
    readahead: bool,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    catch_sigbus();
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if !readahead {
        // Each fault then reads its one page through ->read_folio, unplugged.
        unsafe { libc::madvise(p, len, libc::MADV_RANDOM) };
    }
    MAPPED_READ_FAILED.with(|f| f.set(false));
    let data = unsafe { std::slice::from_raw_parts(p as *const u8, len) };
    let mut sum = 0u8;
    let mut result = Ok(());
    for chunk in data.chunks(block.max(1)) {
        let t = Instant::now();
        for page in chunk.chunks(4096) {
            sum ^= unsafe { std::ptr::read_volatile(&page[0]) };
        }
        if MAPPED_READ_FAILED.with(|f| f.replace(false)) {
            result = Err(io::Error::from_raw_os_error(libc::EIO));
            break;
        }
        slot.record(
            t.elapsed().as_micros() as u64,
            chunk.len() as u64,
            sys::uptime_ms(),
        );
    }
    std::hint::black_box(sum);
    unsafe { libc::munmap(p, len) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_read_past_the_end_of_its_file_is_an_eio_not_a_dead_worker() {
        let dir = std::env::temp_dir().join(format!("hilt-mmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("short");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let f = File::open(&path).unwrap();
        // All atomics: zero is every field's starting value.
        let slot: shm::ReaderSlot = unsafe { std::mem::zeroed() };
        // Mapped as if 64 KiB long: every page after the first is past the
        // end of the file, and touching it raises SIGBUS.
        let err = read_mapped(&slot, &f, 64 << 10, 4096, true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert_eq!(
            slot.bytes.load(Relaxed),
            4096,
            "the page inside the file was read"
        );
        // The thread goes on reading: a whole file is no error.
        read_mapped(&slot, &f, 4096, 4096, false).unwrap();
        assert_eq!(slot.bytes.load(Relaxed), 8192);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
