//! Counters shared with the workload processes through a memfd mapping.
//!
//! Workers run as separate processes so that the OOM killer can take the
//! hog, and a reader stuck in D state cannot stall the watcher. They publish
//! progress with relaxed atomics; the watcher reads them without locks or
//! syscalls, so it keeps sampling even when every worker is wedged.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hilt_protocol::histo::buckets;

pub const MAX_READERS: usize = 32;

pub const RUNNING: u64 = 1;
pub const FINISHED: u64 = 2;

#[repr(C)]
pub struct ReaderSlot {
    pub state: AtomicU64,
    pub bytes: AtomicU64,
    pub reads: AtomicU64,
    pub errors: AtomicU64,
    /// errno of the latest failed read (0: none yet).
    pub last_errno: AtomicU64,
    pub rounds: AtomicU64,
    /// Uptime (ms) of the last completed read: the progress heartbeat.
    pub last_progress_ms: AtomicU64,
    pub hist: [AtomicU64; buckets::COUNT],
}

#[repr(C)]
pub struct Shared {
    pub hog_bytes: AtomicU64,
    pub hog_passes: AtomicU64,
    pub readers: [ReaderSlot; MAX_READERS],
}

impl ReaderSlot {
    pub fn record(&self, latency_us: u64, bytes: u64, now_ms: u64) {
        self.hist[buckets::index(latency_us)].fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        self.reads.fetch_add(1, Relaxed);
        self.last_progress_ms.store(now_ms, Relaxed);
    }
}

pub struct Mapping {
    ptr: *mut Shared,
    pub fd: RawFd,
}

// The mapping is only accessed through atomics.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Creates the region; the fd stays inheritable so exec'd workers can map it.
    pub fn create() -> io::Result<Self> {
        let fd = unsafe { libc::memfd_create(c"hilt-shm".as_ptr(), 0) };
        crate::sys::check(fd, "memfd_create")?;
        crate::sys::check(
            unsafe { libc::ftruncate(fd, std::mem::size_of::<Shared>() as i64) },
            "ftruncate",
        )?;
        Self::map(fd)
    }

    pub fn map(fd: RawFd) -> io::Result<Self> {
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Shared>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr as *mut Shared,
            fd,
        })
    }

    pub fn get(&self) -> &Shared {
        // A fresh memfd is zero-filled, which is a valid state for atomics.
        unsafe { &*self.ptr }
    }
}
