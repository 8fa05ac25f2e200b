//! Periodic samples of the kernel's memory state and the workloads'
//! progress. Never touches the erofs mount, so it cannot block on it.

use hilt_protocol::histo::buckets;
use hilt_protocol::{
    IntervalStats, LatencyHisto, MemSnapshot, PsiMemory, ReadFrom, ThreadCpu, VmstatDelta,
};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use crate::shm::{self, Shared};
use crate::sys;

#[derive(Default, Clone, Copy)]
struct Vmstat {
    pswpin: u64,
    pswpout: u64,
    allocstall: u64,
    pgmajfault: u64,
    oom_kill: u64,
}

fn read_vmstat() -> Vmstat {
    let text = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
    let mut v = Vmstat::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(n)) = (it.next(), it.next().and_then(|n| n.parse::<u64>().ok())) else {
            continue;
        };
        match k {
            "pswpin" => v.pswpin = n,
            "pswpout" => v.pswpout = n,
            "pgmajfault" => v.pgmajfault = n,
            "oom_kill" => v.oom_kill = n,
            // 6.1 splits allocstall per zone; the sum is what matters.
            k if k.starts_with("allocstall") => v.allocstall += n,
            _ => {}
        }
    }
    v
}

pub fn read_psi() -> Option<PsiMemory> {
    let text = std::fs::read_to_string("/proc/pressure/memory").ok()?;
    let mut psi = PsiMemory::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let kind = fields.next()?;
        for f in fields {
            let (k, v) = f.split_once('=')?;
            match (kind, k) {
                ("some", "avg10") => psi.some_avg10 = v.parse().ok()?,
                ("full", "avg10") => psi.full_avg10 = v.parse().ok()?,
                ("some", "total") => psi.some_total_us = v.parse().ok()?,
                ("full", "total") => psi.full_total_us = v.parse().ok()?,
                _ => {}
            }
        }
    }
    Some(psi)
}

pub fn read_mem() -> MemSnapshot {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |k| sys::meminfo_kb(&text, k).unwrap_or(0);
    MemSnapshot {
        total_kb: kb("MemTotal"),
        available_kb: kb("MemAvailable"),
        free_kb: kb("MemFree"),
        swap_total_kb: kb("SwapTotal"),
        swap_free_kb: kb("SwapFree"),
    }
}

/// Board uptime (ms) of the workloads' last progress as the sampler saw it;
/// 0 while no sampler runs. The D-state watcher's bio-wait rule reads it.
static LAST_PROGRESS_MS: AtomicU64 = AtomicU64::new(0);

/// When the workloads last got anywhere (a read completed, the hog touched
/// memory); None while no workloads run.
pub fn last_progress_ms() -> Option<u64> {
    match LAST_PROGRESS_MS.load(Relaxed) {
        0 => None,
        t => Some(t),
    }
}

/// Keeps the previous cumulative counters so each interval reports deltas.
pub struct Sampler {
    vm: Vmstat,
    hist_prev: Vec<[u64; buckets::COUNT]>,
    /// What each reader slot reads: data readers are load, not the figure.
    slots: Vec<ReadFrom>,
    /// The workloads' progress counters at the last sample (see `sample`).
    work_prev: Option<[u64; 3]>,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // The workloads are over: nothing to compare a waiter against.
        LAST_PROGRESS_MS.store(0, Relaxed);
    }
}

impl Sampler {
    pub fn new(slots: &[ReadFrom]) -> Self {
        Self {
            vm: read_vmstat(),
            hist_prev: vec![[0; buckets::COUNT]; slots.len()],
            slots: slots.to_vec(),
            work_prev: None,
        }
    }

    pub fn sample(&mut self, shared: &Shared, uptime_ms: u64) -> IntervalStats {
        let vm = read_vmstat();
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let vmstat = VmstatDelta {
            pswpin: d(vm.pswpin, self.vm.pswpin),
            pswpout: d(vm.pswpout, self.vm.pswpout),
            allocstall: d(vm.allocstall, self.vm.allocstall),
            pgmajfault: d(vm.pgmajfault, self.vm.pgmajfault),
            oom_kill: d(vm.oom_kill, self.vm.oom_kill),
        };
        self.vm = vm;
        let mut merged = [0u64; buckets::COUNT];
        let mut reader_bytes = Vec::with_capacity(self.slots.len());
        let (mut reads, mut bytes, mut errors, mut errno) = (0, 0, 0, None);
        let (mut data_reads, mut data_bytes) = (0, 0);
        for ((slot, prev), from) in shared.readers[..self.slots.len()]
            .iter()
            .zip(self.hist_prev.iter_mut())
            .zip(&self.slots)
        {
            reader_bytes.push(slot.bytes.load(Relaxed));
            if *from == ReadFrom::Data {
                data_reads += slot.reads.load(Relaxed);
                data_bytes += slot.bytes.load(Relaxed);
            } else {
                for (i, (cell, p)) in slot.hist.iter().zip(prev.iter_mut()).enumerate() {
                    let now = cell.load(Relaxed);
                    merged[i] += now - *p;
                    *p = now;
                }
                reads += slot.reads.load(Relaxed);
                bytes += slot.bytes.load(Relaxed);
            }
            errors += slot.errors.load(Relaxed);
            match slot.last_errno.load(Relaxed) {
                0 => {}
                e => errno = Some(e as i32),
            }
        }
        // The readers are the workload whose progress a hang stops; the hog only
        // makes pressure, and may keep cycling while a reader is stuck. It
        // counts when there are no readers.
        let work = if !self.slots.is_empty() {
            [reads + data_reads, 0, 0]
        } else {
            [
                0,
                shared.hog_bytes.load(Relaxed),
                shared.hog_passes.load(Relaxed),
            ]
        };
        // The first sample counts as progress: the workloads just started.
        if self.work_prev != Some(work) {
            LAST_PROGRESS_MS.store(uptime_ms.max(1), Relaxed);
        }
        self.work_prev = Some(work);
        let read_latency_us = LatencyHisto {
            buckets: merged
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(i, &n)| [buckets::value(i), n])
                .collect(),
        };
        IntervalStats {
            uptime_ms,
            read_latency_us,
            reads,
            bytes_read: bytes,
            read_errors: errors,
            last_read_errno: errno,
            reader_bytes,
            hog_bytes: shared.hog_bytes.load(Relaxed),
            psi: read_psi(),
            mem: read_mem(),
            vmstat,
            agent_rss_kb: self_rss_kb(),
            agent_cpu_ms: self_cpu_ms(),
            decompress: Vec::new(),
            data_reads,
            data_bytes,
        }
    }
}

/// Resident set of the agent process. statm is a few numbers where status is some
/// fifty formatted lines: this runs every interval, on an emulated CPU.
fn self_rss_kb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let page_kb = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64 / 1024;
    pages * page_kb
}

/// utime + stime of the whole agent process (all threads), in ms: one system call,
/// no file to open and format.
fn self_cpu_ms() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

/// utime + stime from a /proc stat line, in ms (USER_HZ is 100).
fn stat_cpu_ms(stat: &str) -> u64 {
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() * 10
}

/// CPU time of each of the agent's threads, by name (threads of one name summed).
pub fn thread_cpu() -> Vec<ThreadCpu> {
    let mut out: Vec<ThreadCpu> = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let path = task.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let (name, cpu_ms) = (name.trim().to_string(), stat_cpu_ms(&stat));
        match out.iter_mut().find(|t| t.name == name) {
            Some(t) => t.cpu_ms += cpu_ms,
            None => out.push(ThreadCpu { name, cpu_ms }),
        }
    }
    out.sort_by_key(|t| std::cmp::Reverse(t.cpu_ms));
    out
}

/// Readers that are running but have not completed a read for `stall_ms`.
pub fn stalled(
    shared: &Shared,
    readers: usize,
    now_ms: u64,
    stall_ms: u64,
) -> impl Iterator<Item = (usize, u64)> + '_ {
    shared.readers[..readers]
        .iter()
        .enumerate()
        .filter_map(move |(i, s)| {
            let since = now_ms.saturating_sub(s.last_progress_ms.load(Relaxed));
            (s.state.load(Relaxed) == shm::RUNNING && since >= stall_ms).then_some((i, since))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_the_readers_reads_and_ends_with_the_sampler() {
        let map = shm::Mapping::create().unwrap();
        let shared = map.get();
        {
            let mut s = Sampler::new(&[ReadFrom::Erofs]);
            assert_eq!(last_progress_ms(), None);
            s.sample(shared, 1_000);
            assert_eq!(last_progress_ms(), Some(1_000), "the start counts");
            s.sample(shared, 2_000);
            assert_eq!(last_progress_ms(), Some(1_000));
            // The hog cycling does not stand in for a stuck reader.
            shared.hog_bytes.fetch_add(4096, Relaxed);
            shared.hog_passes.fetch_add(1, Relaxed);
            s.sample(shared, 3_000);
            assert_eq!(last_progress_ms(), Some(1_000));
            shared.readers[0].record(50, 4096, 3_500);
            s.sample(shared, 4_000);
            assert_eq!(last_progress_ms(), Some(4_000));
        }
        assert_eq!(last_progress_ms(), None, "no workloads, no progress");
        let mut hog_only = Sampler::new(&[]);
        hog_only.sample(shared, 5_000);
        hog_only.sample(shared, 6_000);
        assert_eq!(last_progress_ms(), Some(5_000));
        shared.hog_passes.fetch_add(1, Relaxed);
        hog_only.sample(shared, 7_000);
        assert_eq!(last_progress_ms(), Some(7_000));
        drop(hog_only);
        // In this one test: the progress clock is one per process.
        let mut mixed = Sampler::new(&[ReadFrom::Erofs, ReadFrom::Data]);
        let first = mixed.sample(shared, 8_000);
        assert_eq!((first.reads, first.data_reads), (1, 0));
        shared.readers[1].record(70, 8192, 8_500);
        let iv = mixed.sample(shared, 9_000);
        assert_eq!(last_progress_ms(), Some(9_000), "a data read is progress");
        assert_eq!((iv.reads, iv.bytes_read), (1, 4096), "not an erofs read");
        assert_eq!((iv.data_reads, iv.data_bytes), (1, 8192));
        assert!(iv.read_latency_us.buckets.is_empty(), "nor its latency");
        assert_eq!(iv.reader_bytes, vec![4096, 8192]);
    }

    #[test]
    fn own_footprint_agrees_with_proc_status() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let vm_rss = sys::meminfo_kb(&status, "VmRSS").unwrap();
        let rss = self_rss_kb();
        // Both read the same counters a moment apart.
        assert!(
            rss > 0 && rss.abs_diff(vm_rss) < vm_rss / 4,
            "{rss} vs {vm_rss}"
        );

        // Spin for 300 ms of CPU as the kernel's own clock counts it, not of
        // wall time: on a loaded machine the wall-clock spin got 87 ms.
        let cpu_clock_ms = || {
            let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
            unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
            ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
        };
        let before = self_cpu_ms();
        let start = cpu_clock_ms();
        let mut x = 0u64;
        while cpu_clock_ms() - start < 300 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let spent = self_cpu_ms() - before;
        // /proc counts in 10 ms ticks.
        assert!(spent >= 250, "300 ms of CPU counted as {spent} ms");

        let threads = thread_cpu();
        assert!(!threads.is_empty());
        let total: u64 = threads.iter().map(|t| t.cpu_ms).sum();
        // Per-thread figures come in 10 ms ticks and miss threads that have ended.
        assert!(total <= self_cpu_ms() + 10 * threads.len() as u64 + 10);
    }
}
