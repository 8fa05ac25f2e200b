//! Finds tasks stuck in D state sooner than khungtaskd.
//!
//! Every scan walks /proc/*/task/* and looks at the state letter only; tasks
//! in D are tracked in a small fixed table. A task is suspected when it has
//! stayed in D with no context switch for the threshold, or, because some
//! stuck tasks wake periodically and so keep switching, when it has stayed in
//! D on the same wchan for a longer "same wchan" threshold.
//!
//! One such periodic waiter gets a rule of its own, because it is the wait the
//! erofs deadlock ends in: `submit_bio_wait()` waits through `blk_wait_io()`
//! (block/blk.h), which sleeps in slices of half the hung-task timeout just so
//! that khungtaskd never reports it. A task whose wchan stays in that wait for
//! the D threshold while the workloads make no progress is suspected (see
//! [`BioWait`]); being caught awake between two slices does not reset it.
//!
//! The scan allocates nothing: directories are read with getdents64 into a
//! fixed buffer and paths are formatted on the stack. It runs once a second
//! for the whole run, under the memory pressure it is there to watch.

use std::ffi::CStr;

pub const MAX_TRACKED: usize = 512;
const COMM: usize = 16;
const WCHAN: usize = 48;

/// Where a task waiting for its own bio sleeps, as /proc/PID/wchan names it:
/// `blk_wait_io()` is inline, so 6.x shows its caller `submit_bio_wait`, and
/// 7.x moved the wait into `bio_await`, which `submit_bio_wait` calls.
pub const BIO_WAITS: &[&str] = &["submit_bio_wait", "bio_await", "blk_wait_io"];

/// How long a bio waiter may be seen awake, or not at all, between two
/// sightings in the wait and still count as the same wait: a 1 s scan can
/// catch it running between slices, but not for long.
pub const BIO_AWAY_MS: u64 = 2_500;

pub fn is_bio_wait(wchan: &[u8]) -> bool {
    let w = wchan.trim_ascii();
    BIO_WAITS.iter().any(|f| f.as_bytes() == w)
}

/// One task's time in a bio wait: the decision behind [`Reason::BioWait`].
///
/// The wait counts from the first sighting in it. It restarts when the task
/// is seen waiting anywhere else, when it was out of sight for longer than
/// [`BIO_AWAY_MS`], or when it switched more often than `blk_wait_io()`'s
/// slices allow: a task that keeps issuing synchronous bios also sits in
/// `submit_bio_wait` at most scans, but each bio that completes wakes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BioWait {
    /// Board uptime of the first sighting in this wait; None: not in one.
    pub since_ms: Option<u64>,
    /// The last sighting in the wait.
    pub seen_ms: u64,
    /// schedstat's count of runs at `since_ms`.
    switches: u64,
}

impl BioWait {
    /// A scan saw the task in D at `wchan`, after `switches` runs. `slice_ms`
    /// is blk_wait_io's slice (half the hung-task timeout; 0: it never wakes).
    pub fn observe(&mut self, now: u64, wchan: &[u8], switches: u64, slice_ms: u64) {
        if !is_bio_wait(wchan) {
            *self = Self::default();
            return;
        }
        // One run per slice, and one of slack for the slice the wait began in.
        let waking_allows = |since: u64| match slice_ms {
            0 => 2,
            s => now.saturating_sub(since) / s + 2,
        };
        let fresh = match self.since_ms {
            None => true,
            Some(since) => {
                now.saturating_sub(self.seen_ms) > BIO_AWAY_MS
                    || switches.saturating_sub(self.switches) > waking_allows(since)
            }
        };
        if fresh {
            self.since_ms = Some(now);
            self.switches = switches;
        }
        self.seen_ms = now;
    }

    /// A scan did not see the task in D; `wchan` is where it is now (empty
    /// or "0" while it runs). False when the wait is over.
    pub fn observe_away(&mut self, now: u64, wchan: &[u8]) -> bool {
        let w = wchan.trim_ascii();
        let running = w.is_empty() || w == b"0";
        let kept = self.since_ms.is_some()
            && now.saturating_sub(self.seen_ms) <= BIO_AWAY_MS
            && (running || is_bio_wait(w));
        if !kept {
            *self = Self::default();
        }
        kept
    }

    /// When the task stopped getting anywhere, if it has been stuck in the
    /// wait for `threshold_ms` with the workloads' last progress
    /// (`progress_ms`; None: no workload is running) no later than that.
    pub fn stuck_since(
        &self,
        now: u64,
        progress_ms: Option<u64>,
        threshold_ms: u64,
    ) -> Option<u64> {
        let stopped = self.since_ms?.max(progress_ms?);
        (now.saturating_sub(stopped) >= threshold_ms).then_some(stopped)
    }
}

#[derive(Clone, Copy)]
struct Slot {
    tid: i32,
    pid: i32,
    seen: u64,
    d_since_ms: u64,
    switches: u64,
    last_switch_ms: u64,
    wchan: [u8; WCHAN],
    wchan_len: u8,
    wchan_since_ms: u64,
    comm: [u8; COMM],
    comm_len: u8,
    suspected: bool,
    bio: BioWait,
    /// Seen out of D since the last scan that found it in D (a bio waiter
    /// kept through a slice's wake-up): its D clocks start again.
    away: bool,
}

const EMPTY: Slot = Slot {
    tid: 0,
    pid: 0,
    seen: 0,
    d_since_ms: 0,
    switches: 0,
    last_switch_ms: 0,
    wchan: [0; WCHAN],
    wchan_len: 0,
    wchan_since_ms: 0,
    comm: [0; COMM],
    comm_len: 0,
    suspected: false,
    bio: BioWait {
        since_ms: None,
        seen_ms: 0,
        switches: 0,
    },
    away: false,
};

/// What a suspicion says, borrowed from the watcher's own buffers.
pub struct Suspect<'a> {
    pub pid: i32,
    pub tid: i32,
    pub comm: &'a str,
    pub wchan: &'a str,
    pub d_since_ms: u64,
    pub last_switch_ms: u64,
    /// When it was last seen getting anywhere, by the rule that suspects it.
    pub stopped_ms: u64,
    pub reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NoContextSwitch,
    SameWchan,
    /// Stuck in submit_bio_wait (see [`BioWait`]) while the workloads made no progress.
    BioWait,
}

impl Reason {
    /// The name the protocol's `SuspectReport::reason` carries.
    pub fn name(self) -> &'static str {
        match self {
            Reason::NoContextSwitch => "no_context_switch",
            Reason::SameWchan => "same_wchan",
            Reason::BioWait => "bio_wait",
        }
    }
}

pub struct Watcher {
    root: [u8; 64],
    root_len: usize,
    slots: [Slot; MAX_TRACKED],
    scan: u64,
    pub threshold_ms: u64,
    pub same_wchan_ms: u64,
    /// When the workloads last made progress (board uptime); None while none
    /// runs, which keeps the bio-wait rule quiet.
    pub progress_ms: Option<u64>,
    /// blk_wait_io's slice, read from the kernel's hung-task timeout each scan.
    bio_slice_ms: u64,
    // Taken out of self while a scan walks them, so the per-thread code can
    // borrow self mutably; Option::take moves without allocating.
    dirbuf: Option<Box<[u8; 32 * 1024]>>,
    taskbuf: Option<Box<[u8; 8 * 1024]>>,
    task_dirs: Option<FdTable>,
    stats: FdTable,
    filebuf: [u8; 1024],
    /// Tasks in D seen in the last scan, and how many threads were looked at.
    pub in_d: usize,
    pub threads: usize,
}

impl Watcher {
    pub fn new(proc_root: &str, threshold_ms: u64, same_wchan_ms: u64) -> Self {
        let mut root = [0u8; 64];
        let n = proc_root.len().min(63);
        root[..n].copy_from_slice(&proc_root.as_bytes()[..n]);
        Self {
            root,
            root_len: n,
            slots: [EMPTY; MAX_TRACKED],
            scan: 0,
            threshold_ms,
            same_wchan_ms,
            progress_ms: None,
            bio_slice_ms: 0,
            dirbuf: Some(Box::new([0; 32 * 1024])),
            taskbuf: Some(Box::new([0; 8 * 1024])),
            task_dirs: Some(FdTable::new()),
            stats: FdTable::new(),
            filebuf: [0; 1024],
            in_d: 0,
            threads: 0,
        }
    }

    /// One pass over every thread; calls `on_suspect` for each task that
    /// newly crosses a threshold.
    pub fn scan(&mut self, now_ms: u64, on_suspect: &mut dyn FnMut(&Suspect)) {
        self.scan += 1;
        self.in_d = 0;
        self.threads = 0;
        let mut path = PathBuf::new(&self.root[..self.root_len]);
        self.bio_slice_ms = self.read_bio_slice_ms(&mut path);
        let Some(proc_fd) = open_dir(&mut path) else {
            return;
        };
        let Some(mut dirbuf) = self.dirbuf.take() else {
            return;
        };
        let Some(mut taskbuf) = self.taskbuf.take() else {
            return;
        };
        let Some(mut task_dirs) = self.task_dirs.take() else {
            return;
        };
        let scan = self.scan;
        for_each_entry(proc_fd, &mut dirbuf[..], &mut |name| {
            let Some(pid) = parse_i32(name) else { return };
            let mark = path.len;
            path.push(b"/");
            path.push(name);
            path.push(b"/task");
            let task_fd = task_dirs.get(pid, scan, || open_dir(&mut path).unwrap_or(-1));
            path.len = mark;
            let Some(task_fd) = task_fd else { return };
            // A cached directory fd is read again from the start.
            unsafe { libc::lseek(task_fd, 0, libc::SEEK_SET) };
            let mut any = false;
            for_each_entry(task_fd, &mut taskbuf[..], &mut |tname| {
                if let Some(tid) = parse_i32(tname) {
                    any = true;
                    self.thread(task_fd, tname, pid, tid, now_ms, on_suspect);
                }
            });
            if !any {
                task_dirs.forget(pid); // the process is gone
            }
        });
        unsafe { libc::close(proc_fd) };
        task_dirs.sweep(scan);
        self.stats.sweep(scan);
        self.dirbuf = Some(dirbuf);
        self.taskbuf = Some(taskbuf);
        self.task_dirs = Some(task_dirs);
        for i in 0..MAX_TRACKED {
            let s = self.slots[i];
            if s.tid == 0 || s.seen == self.scan {
                continue;
            }
            // Out of D, or exited. A bio waiter is kept through a slice's
            // wake-up, as long as it is not seen waiting somewhere else.
            let wn = match s.bio.since_ms {
                Some(_) => self.read_task_file(&mut path, s.pid, s.tid, b"/wchan"),
                None => None,
            };
            let slot = &mut self.slots[i];
            match wn {
                Some(n) if slot.bio.observe_away(now_ms, &self.filebuf[..n]) => slot.away = true,
                _ => *slot = EMPTY,
            }
        }
    }

    /// Half of `<root>/sys/kernel/hung_task_timeout_secs`, in ms; 0 when
    /// hung-task detection is off (blk_wait_io then sleeps in one piece).
    fn read_bio_slice_ms(&mut self, path: &mut PathBuf) -> u64 {
        let mark = path.len;
        path.push(b"/sys/kernel/hung_task_timeout_secs");
        let n = read_path(path, &mut self.filebuf).unwrap_or(0);
        path.len = mark;
        parse_u64(&self.filebuf[..n]).map_or(0, |secs| secs * 500)
    }

    /// None when the task is gone.
    fn read_task_file(
        &mut self,
        path: &mut PathBuf,
        pid: i32,
        tid: i32,
        file: &[u8],
    ) -> Option<usize> {
        let mark = path.len;
        let mut num = [0u8; 12];
        path.push(b"/");
        path.push(format_i32(pid, &mut num));
        path.push(b"/task/");
        path.push(format_i32(tid, &mut num));
        path.push(file);
        let n = read_path(path, &mut self.filebuf);
        path.len = mark;
        n
    }

    fn thread(
        &mut self,
        task_fd: i32,
        tname: &[u8],
        pid: i32,
        tid: i32,
        now: u64,
        on_suspect: &mut dyn FnMut(&Suspect),
    ) {
        self.threads += 1;
        let mut rel = RelPath::new(tname);
        let scan = self.scan;
        let Some(stat_fd) = self.stats.get(tid, scan, || rel.open_at(task_fd, b"/stat")) else {
            return;
        };
        let n = unsafe {
            libc::pread(
                stat_fd,
                self.filebuf.as_mut_ptr() as *mut libc::c_void,
                self.filebuf.len(),
                0,
            )
        };
        if n <= 0 {
            self.stats.forget(tid);
            return;
        }
        let Some((comm_src, b'D')) = comm_and_state(&self.filebuf[..n as usize]) else {
            return;
        };
        self.in_d += 1;
        let mut comm = [0u8; COMM];
        let comm_len = comm_src.len().min(COMM);
        comm[..comm_len].copy_from_slice(&comm_src[..comm_len]);

        // Only tasks in D get these two extra reads.
        let n = read_at(task_fd, &mut rel, b"/schedstat", &mut self.filebuf);
        // The third field counts the times the task was scheduled in.
        let switches = self.filebuf[..n]
            .split(|&b| b == b' ')
            .nth(2)
            .and_then(parse_u64)
            .unwrap_or(0);

        let wn = read_at(task_fd, &mut rel, b"/wchan", &mut self.filebuf).min(WCHAN);
        let mut wchan = [0u8; WCHAN];
        wchan[..wn].copy_from_slice(&self.filebuf[..wn]);

        let idx = match self.slots.iter().position(|s| s.tid == tid) {
            Some(i) => i,
            None => match self.slots.iter().position(|s| s.tid == 0) {
                Some(i) => {
                    self.slots[i] = Slot {
                        tid,
                        pid,
                        seen: scan,
                        d_since_ms: now,
                        switches,
                        last_switch_ms: now,
                        wchan,
                        wchan_len: wn as u8,
                        wchan_since_ms: now,
                        comm,
                        comm_len: comm_len as u8,
                        suspected: false,
                        bio: BioWait::default(),
                        away: false,
                    };
                    i
                }
                None => return, // table full: more than MAX_TRACKED tasks in D
            },
        };
        let s = &mut self.slots[idx];
        s.seen = scan;
        s.bio
            .observe(now, &wchan[..wn], switches, self.bio_slice_ms);
        if std::mem::take(&mut s.away) {
            // Back in D after being seen out of it: the D clocks start again.
            s.d_since_ms = now;
            s.last_switch_ms = now;
            s.wchan_since_ms = now;
        }
        if s.switches != switches {
            s.switches = switches;
            s.last_switch_ms = now;
        }
        if s.wchan_len as usize != wn || s.wchan[..wn] != wchan[..wn] {
            s.wchan = wchan;
            s.wchan_len = wn as u8;
            s.wchan_since_ms = now;
        }
        if s.suspected {
            return;
        }
        let bio_stuck = s.bio.stuck_since(now, self.progress_ms, self.threshold_ms);
        let (reason, stopped_ms) = if now.saturating_sub(s.last_switch_ms) >= self.threshold_ms {
            (Reason::NoContextSwitch, s.last_switch_ms)
        } else if let Some(stopped) = bio_stuck {
            (Reason::BioWait, stopped)
        } else if wn > 0 && now.saturating_sub(s.wchan_since_ms) >= self.same_wchan_ms {
            (Reason::SameWchan, s.d_since_ms)
        } else {
            return;
        };
        s.suspected = true;
        let s = *s;
        on_suspect(&Suspect {
            pid: s.pid,
            tid: s.tid,
            comm: std::str::from_utf8(&s.comm[..s.comm_len as usize]).unwrap_or("?"),
            wchan: std::str::from_utf8(&s.wchan[..s.wchan_len as usize])
                .unwrap_or("?")
                .trim(),
            d_since_ms: s.d_since_ms,
            last_switch_ms: s.last_switch_ms,
            stopped_ms,
            reason,
        });
    }

    /// Whether `tid` is still tracked in D and suspected.
    pub fn still_suspected(&self, tid: i32) -> bool {
        self.slots.iter().any(|s| s.tid == tid && s.suspected)
    }
}

/// Open fds kept from scan to scan (a task directory per process, a stat
/// file per thread), so a steady-state scan costs one pread per thread
/// instead of open, read and close. Open addressing over preallocated
/// arrays; entries not seen in a scan are closed, and the table is rebuilt
/// into its spare twin when deletions pile up, so nothing allocates.
struct FdTable {
    keys: Box<[i32]>,
    fds: Box<[i32]>,
    seen: Box<[u64]>,
    spare_keys: Box<[i32]>,
    spare_fds: Box<[i32]>,
    spare_seen: Box<[u64]>,
    live: usize,
    dead: usize,
}

const FD_CAP: usize = 8192;
const EMPTY_KEY: i32 = 0;
const DEAD_KEY: i32 = -1;

impl FdTable {
    fn new() -> Self {
        let z = || vec![0i32; FD_CAP].into_boxed_slice();
        let u = || vec![0u64; FD_CAP].into_boxed_slice();
        Self {
            keys: z(),
            fds: z(),
            seen: u(),
            spare_keys: z(),
            spare_fds: z(),
            spare_seen: u(),
            live: 0,
            dead: 0,
        }
    }

    fn slot(keys: &[i32], key: i32) -> (Option<usize>, Option<usize>) {
        let mut i = (key as u32).wrapping_mul(2_654_435_761) as usize % FD_CAP;
        let mut free = None;
        for _ in 0..FD_CAP {
            match keys[i] {
                k if k == key => return (Some(i), free),
                EMPTY_KEY => return (None, free.or(Some(i))),
                DEAD_KEY => free = free.or(Some(i)),
                _ => {}
            }
            i = (i + 1) % FD_CAP;
        }
        (None, free)
    }

    /// The cached fd for `key`, opening it with `open` when absent. None
    /// when `open` fails; the fd is then not cached.
    fn get(&mut self, key: i32, scan: u64, open: impl FnOnce() -> i32) -> Option<i32> {
        let (found, free) = Self::slot(&self.keys, key);
        if let Some(i) = found {
            self.seen[i] = scan;
            return Some(self.fds[i]);
        }
        let fd = open();
        if fd < 0 {
            return None;
        }
        match free {
            // Keep a quarter free so probes stay short.
            Some(i) if self.live + self.dead < FD_CAP * 3 / 4 || self.keys[i] == DEAD_KEY => {
                if self.keys[i] == DEAD_KEY {
                    self.dead -= 1;
                }
                self.keys[i] = key;
                self.fds[i] = fd;
                self.seen[i] = scan;
                self.live += 1;
            }
            // Full (over 6144 threads): this one goes unwatched this scan.
            _ => {
                unsafe { libc::close(fd) };
                return None;
            }
        }
        Some(fd)
    }

    fn forget(&mut self, key: i32) {
        if let (Some(i), _) = Self::slot(&self.keys, key) {
            unsafe { libc::close(self.fds[i]) };
            self.keys[i] = DEAD_KEY;
            self.live -= 1;
            self.dead += 1;
        }
    }

    /// Closes what this scan did not see (exited tasks).
    fn sweep(&mut self, scan: u64) {
        for i in 0..FD_CAP {
            if self.keys[i] > 0 && self.seen[i] != scan {
                unsafe { libc::close(self.fds[i]) };
                self.keys[i] = DEAD_KEY;
                self.live -= 1;
                self.dead += 1;
            }
        }
        if self.dead > FD_CAP / 4 {
            self.spare_keys.fill(EMPTY_KEY);
            for i in 0..FD_CAP {
                if self.keys[i] > 0 {
                    let (_, free) = Self::slot(&self.spare_keys, self.keys[i]);
                    let j = free.expect("the spare table has room for every live entry");
                    self.spare_keys[j] = self.keys[i];
                    self.spare_fds[j] = self.fds[i];
                    self.spare_seen[j] = self.seen[i];
                }
            }
            std::mem::swap(&mut self.keys, &mut self.spare_keys);
            std::mem::swap(&mut self.fds, &mut self.spare_fds);
            std::mem::swap(&mut self.seen, &mut self.spare_seen);
            self.dead = 0;
        }
    }
}

/// A path built in place on the stack, NUL-terminated for the syscalls.
struct PathBuf {
    buf: [u8; 256],
    len: usize,
}

impl PathBuf {
    fn new(root: &[u8]) -> Self {
        let mut p = Self {
            buf: [0; 256],
            len: 0,
        };
        p.push(root);
        p
    }

    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - 1 - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn c(&mut self) -> &CStr {
        self.buf[self.len] = 0;
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or(c"/")
    }
}

fn open_dir(path: &mut PathBuf) -> Option<i32> {
    let fd = unsafe {
        libc::open(
            path.c().as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    (fd >= 0).then_some(fd)
}

/// `<tid><suffix>` relative to a task directory fd, on the stack.
struct RelPath {
    buf: [u8; 48],
    base: usize,
}

impl RelPath {
    fn new(tid: &[u8]) -> Self {
        let mut buf = [0u8; 48];
        let n = tid.len().min(24);
        buf[..n].copy_from_slice(&tid[..n]);
        Self { buf, base: n }
    }

    fn open_at(&mut self, dir: i32, suffix: &[u8]) -> i32 {
        let n = suffix.len().min(self.buf.len() - self.base - 1);
        self.buf[self.base..self.base + n].copy_from_slice(&suffix[..n]);
        self.buf[self.base + n] = 0;
        unsafe {
            libc::openat(
                dir,
                self.buf.as_ptr() as *const libc::c_char,
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        }
    }
}

/// None when the file cannot be opened.
fn read_path(path: &mut PathBuf, buf: &mut [u8]) -> Option<usize> {
    let fd = unsafe { libc::open(path.c().as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    unsafe { libc::close(fd) };
    Some(n.max(0) as usize)
}

/// The decimal digits of `n` (non-negative: pids and tids), without allocating.
fn format_i32(n: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut v = n.max(0) as u32;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

fn read_at(dir: i32, rel: &mut RelPath, suffix: &[u8], buf: &mut [u8]) -> usize {
    let fd = rel.open_at(dir, suffix);
    if fd < 0 {
        return 0;
    }
    let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    unsafe { libc::close(fd) };
    n.max(0) as usize
}

/// getdents64 over a directory fd, without libc's allocating opendir.
fn for_each_entry(fd: i32, buf: &mut [u8], f: &mut dyn FnMut(&[u8])) {
    loop {
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            return;
        }
        let mut off = 0usize;
        while off < n as usize {
            // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = &buf[off + 19..off + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            f(name);
            off += reclen;
        }
    }
}

/// The command name and state letter of a /proc/PID/stat line. The name may
/// hold spaces and parentheses, so it ends at the last ')'.
pub fn comm_and_state(stat: &[u8]) -> Option<(&[u8], u8)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let open = stat.iter().position(|&b| b == b'(').unwrap_or(0);
    Some((&stat[(open + 1).min(close)..close], *stat.get(close + 2)?))
}

fn parse_i32(s: &[u8]) -> Option<i32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0i32, |a, &b| {
        a.checked_mul(10)?.checked_add((b - b'0') as i32)
    })
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = s.split(|b| !b.is_ascii_digit()).next()?;
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |a, &b| {
        a.checked_mul(10)?.checked_add((b - b'0') as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    // Counts this thread's heap allocations, so the proof is not disturbed by
    // other tests running in parallel.
    struct Counting;
    thread_local! { static ALLOCS: Cell<u64> = const { Cell::new(0) }; }
    unsafe impl std::alloc::GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            unsafe { std::alloc::System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
            unsafe { std::alloc::System.dealloc(p, l) }
        }
    }
    #[global_allocator]
    static GLOBAL: Counting = Counting;

    fn fake_task(
        root: &std::path::Path,
        pid: i32,
        tid: i32,
        comm: &str,
        state: char,
        switches: u64,
        wchan: &str,
    ) {
        let d = root.join(format!("{pid}/task/{tid}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("stat"), format!("{tid} ({comm}) {state} 1 2 3 4")).unwrap();
        std::fs::write(d.join("schedstat"), format!("100 200 {switches}\n")).unwrap();
        std::fs::write(d.join("wchan"), wchan).unwrap();
    }

    fn suspects(w: &mut Watcher, now: u64) -> Vec<(i32, String, String, Reason)> {
        let mut out = Vec::new();
        w.scan(now, &mut |s| {
            out.push((s.tid, s.comm.to_string(), s.wchan.to_string(), s.reason))
        });
        out
    }

    #[test]
    fn state_letter_follows_the_last_parenthesis() {
        let state = |s: &str| comm_and_state(s.as_bytes()).map(|(_, st)| st as char);
        assert_eq!(state("139 (hilt-swapoff) D 129 139"), Some('D'));
        assert_eq!(state("7 (a) b) (c) S 1 7"), Some('S'));
        assert_eq!(state("garbage"), None);
        assert_eq!(
            comm_and_state(b"7 (a) b) (c) S 1 7").map(|(c, _)| c),
            Some(&b"a) b) (c"[..])
        );
    }

    #[test]
    fn suspects_a_task_in_d_without_switches_after_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        fake_task(
            dir.path(),
            10,
            10,
            "kworker/0:2H",
            'D',
            5,
            "mmc_blk_rw_wait",
        );
        fake_task(dir.path(), 11, 12, "reader (x)", 'S', 5, "do_wait");
        let mut w = Watcher::new(root, 10_000, 60_000);
        assert!(suspects(&mut w, 1_000).is_empty());
        assert_eq!(w.in_d, 1);
        assert!(suspects(&mut w, 10_999).is_empty());
        let s = suspects(&mut w, 11_000);
        assert_eq!(
            s,
            vec![(
                10,
                "kworker/0:2H".into(),
                "mmc_blk_rw_wait".into(),
                Reason::NoContextSwitch
            )]
        );
        // Reported once, not every scan.
        assert!(suspects(&mut w, 12_000).is_empty());
        assert!(w.still_suspected(10));
    }

    #[test]
    fn a_switching_task_is_suspected_only_by_its_unchanging_wchan() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let mut w = Watcher::new(root, 10_000, 30_000);
        for t in 0..=30u64 {
            // Wakes every second (as submit_bio_wait does), same wchan.
            fake_task(dir.path(), 20, 21, "dd", 'D', 100 + t, "submit_bio_wait");
            let s = suspects(&mut w, t * 1000);
            if t < 30 {
                assert!(s.is_empty(), "at {t} s: {s:?}");
            } else {
                assert_eq!(s[0].3, Reason::SameWchan);
            }
        }
    }

    fn bio_watcher(root: &std::path::Path, hung_task_timeout_s: u64) -> Watcher {
        let sys = root.join("sys/kernel");
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::write(
            sys.join("hung_task_timeout_secs"),
            format!("{hung_task_timeout_s}\n"),
        )
        .unwrap();
        // A same-wchan threshold far away, so only the bio-wait rule can fire.
        Watcher::new(root.to_str().unwrap(), 10_000, 600_000)
    }

    /// blk_wait_io with a 10 s hung-task timeout: a wake-up every 5 s, the
    /// scan at 1 Hz catching the task awake (state R, wchan 0) now and then.
    #[test]
    fn a_bio_waiter_waking_in_slices_is_suspected_when_the_workloads_stop() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = bio_watcher(dir.path(), 10);
        w.progress_ms = Some(2_000);
        let mut hits = Vec::new();
        for t in 0..=12u64 {
            let switches = 40 + t / 5;
            let (state, wchan) = if t % 5 == 0 && t > 0 {
                ('R', "0")
            } else {
                ('D', "submit_bio_wait")
            };
            fake_task(dir.path(), 50, 51, "kworker/u4:2", state, switches, wchan);
            for s in suspects(&mut w, t * 1000) {
                hits.push((t, s));
            }
        }
        // In the wait since 0 s, no progress since 2 s: stuck from 2 s, suspected at 12 s.
        assert_eq!(hits.len(), 1, "{hits:?}");
        let (t, (tid, comm, wchan, reason)) = &hits[0];
        assert_eq!(
            (*t, *tid, comm.as_str(), wchan.as_str(), *reason),
            (12, 51, "kworker/u4:2", "submit_bio_wait", Reason::BioWait)
        );
    }

    #[test]
    fn the_stopped_time_is_the_later_of_entering_the_wait_and_the_last_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = bio_watcher(dir.path(), 10);
        w.progress_ms = Some(3_000);
        let mut stopped = Vec::new();
        for t in 0..=13u64 {
            fake_task(dir.path(), 60, 60, "dd", 'D', 7, "bio_await");
            w.scan(t * 1000, &mut |s| stopped.push((t, s.stopped_ms, s.reason)));
        }
        // 7.x names the wait bio_await. It never switched, so khungtaskd's
        // own rule (no context switch for 10 s) fires first, at 10 s.
        assert_eq!(stopped, vec![(10, 0, Reason::NoContextSwitch)]);

        let dir = tempfile::tempdir().unwrap();
        let mut w = bio_watcher(dir.path(), 10);
        w.progress_ms = Some(3_000);
        let mut stopped = Vec::new();
        for t in 0..=13u64 {
            // A switch every 5 s, as blk_wait_io's slices give.
            fake_task(dir.path(), 60, 60, "dd", 'D', 7 + t / 5, "bio_await");
            w.scan(t * 1000, &mut |s| stopped.push((t, s.stopped_ms, s.reason)));
        }
        assert_eq!(stopped, vec![(13, 3_000, Reason::BioWait)]);
    }

    #[test]
    fn a_bio_waiter_is_not_suspected_while_the_workloads_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = bio_watcher(dir.path(), 10);
        for t in 0..=30u64 {
            fake_task(
                dir.path(),
                70,
                70,
                "reader",
                'D',
                5 + t / 5,
                "submit_bio_wait",
            );
            w.progress_ms = Some(t * 1000);
            assert!(suspects(&mut w, t * 1000).is_empty(), "at {t} s");
        }
        // No workloads running: the rule has nothing to go on and stays quiet.
        w.progress_ms = None;
        for t in 31..=60u64 {
            fake_task(
                dir.path(),
                70,
                70,
                "reader",
                'D',
                5 + t / 5,
                "submit_bio_wait",
            );
            assert!(suspects(&mut w, t * 1000).is_empty(), "at {t} s");
        }
    }

    #[test]
    fn a_task_that_leaves_the_bio_wait_is_not_suspected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = bio_watcher(dir.path(), 10);
        w.progress_ms = Some(1);
        let mut hits = Vec::new();
        for t in 0..=40u64 {
            // Every 4 s it is seen sleeping elsewhere (the bio completed and it
            // went on); it is back in a new submit_bio_wait the next second.
            let (state, wchan) = if t % 4 == 3 {
                ('S', "do_epoll_wait")
            } else {
                ('D', "submit_bio_wait")
            };
            fake_task(dir.path(), 80, 80, "writer", state, 100 + t, wchan);
            hits.extend(suspects(&mut w, t * 1000));
        }
        assert!(hits.is_empty(), "{hits:?}");
    }

    #[test]
    fn an_exited_bio_waiter_is_forgotten_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = bio_watcher(dir.path(), 10);
        w.progress_ms = Some(1);
        for t in 0..=9u64 {
            fake_task(
                dir.path(),
                95,
                95,
                "gone",
                'D',
                1 + t / 5,
                "submit_bio_wait",
            );
            assert!(suspects(&mut w, t * 1000).is_empty());
        }
        fake_task(dir.path(), 95, 95, "gone", 'R', 3, "0");
        w.scan(10_000, &mut |_| {});
        assert!(w.slots.iter().any(|s| s.tid == 95), "kept while awake");
        std::fs::remove_dir_all(dir.path().join("95")).unwrap();
        w.scan(11_000, &mut |_| {});
        assert!(w.slots.iter().all(|s| s.tid != 95), "gone is gone");
    }

    #[test]
    fn a_task_issuing_bio_after_bio_is_not_one_stuck_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = bio_watcher(dir.path(), 10);
        w.progress_ms = Some(1);
        for t in 0..=40u64 {
            // Always caught in submit_bio_wait, but each completed bio wakes
            // it: 20 runs a second, where blk_wait_io allows one per 5 s.
            fake_task(
                dir.path(),
                90,
                90,
                "swapper-ish",
                'D',
                20 * t,
                "submit_bio_wait",
            );
            assert!(suspects(&mut w, t * 1000).is_empty(), "at {t} s");
        }
    }

    #[test]
    fn bio_wait_decisions() {
        let mut b = BioWait::default();
        b.observe(1_000, b"submit_bio_wait\n", 10, 5_000);
        assert_eq!(b.since_ms, Some(1_000));
        // Caught running between slices: the wait goes on.
        assert!(b.observe_away(2_000, b"0\n"));
        b.observe(3_000, b"submit_bio_wait", 11, 5_000);
        assert_eq!(b.since_ms, Some(1_000));
        assert_eq!(b.stuck_since(11_000, Some(500), 10_000), Some(1_000));
        assert_eq!(b.stuck_since(10_999, Some(500), 10_000), None);
        assert_eq!(b.stuck_since(11_000, Some(4_000), 10_000), None);
        assert_eq!(b.stuck_since(20_000, None, 10_000), None);
        assert!(b.observe_away(4_000, b"0"));
        b.observe(5_000, b"submit_bio_wait", 12, 5_000);
        assert_eq!(b.since_ms, Some(1_000), "2 s since the last sighting");
        // Out of sight too long: a later sighting is a new wait.
        let mut gone = b;
        assert!(!gone.observe_away(7_600, b"0"));
        let mut late = b;
        late.observe(7_600, b"submit_bio_wait", 12, 5_000);
        assert_eq!(late.since_ms, Some(7_600), "2.6 s out of sight");
        // More runs than the slices allow: bios completing, a new wait.
        let mut busy = b;
        busy.observe(6_000, b"submit_bio_wait", 16, 5_000);
        assert_eq!(busy.since_ms, Some(6_000));
        // Seen waiting elsewhere, in D or not: the wait is over.
        let mut elsewhere = b;
        elsewhere.observe(6_000, b"folio_wait_bit_common", 12, 5_000);
        assert_eq!(elsewhere, BioWait::default());
        let mut asleep = b;
        assert!(!asleep.observe_away(6_000, b"do_sys_poll"));
        assert_eq!(asleep, BioWait::default());
        // With the hung-task detector off, blk_wait_io never wakes: past the
        // slack, runs mean new bios.
        let mut off = BioWait::default();
        off.observe(0, b"submit_bio_wait", 3, 0);
        off.observe(1_000, b"submit_bio_wait", 5, 0);
        assert_eq!(off.since_ms, Some(0));
        off.observe(2_000, b"submit_bio_wait", 8, 0);
        assert_eq!(off.since_ms, Some(2_000));
        assert!(is_bio_wait(b"blk_wait_io"));
        assert!(!is_bio_wait(b"submit_bio"));
    }

    #[test]
    fn leaving_d_state_forgets_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let mut w = Watcher::new(root, 10_000, 60_000);
        fake_task(dir.path(), 30, 30, "t", 'D', 1, "io_schedule");
        suspects(&mut w, 0);
        fake_task(dir.path(), 30, 30, "t", 'R', 1, "0");
        suspects(&mut w, 5_000);
        fake_task(dir.path(), 30, 30, "t", 'D', 1, "io_schedule");
        // Back in D at 14 s: the clock restarts there, so 0-5 s in D before
        // does not count towards the 10 s.
        assert!(suspects(&mut w, 14_000).is_empty());
        assert!(suspects(&mut w, 23_999).is_empty());
        assert_eq!(suspects(&mut w, 24_000).len(), 1);
    }

    #[test]
    fn scanning_the_real_proc_allocates_nothing() {
        let mut w = Watcher::new("/proc", 10_000, 60_000);
        let mut count = 0usize;
        w.scan(0, &mut |_| count += 1);
        assert!(w.threads > 0, "no threads found under /proc");
        let before = ALLOCS.with(|c| c.get());
        for i in 1..=20 {
            w.scan(i * 1000, &mut |_| count += 1);
        }
        assert_eq!(
            ALLOCS.with(|c| c.get()) - before,
            0,
            "the steady-state scan allocated"
        );
    }
}
