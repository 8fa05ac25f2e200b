//! Periodic samples of the kernel's memory state and the workloads'
//! progress. Never touches the erofs mount, so it cannot block on it.

use hilt_protocol::histo::buckets;
use hilt_protocol::{IntervalStats, LatencyHisto, MemSnapshot, PsiMemory, VmstatDelta};
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

/// Keeps the previous cumulative counters so each interval reports deltas.
pub struct Sampler {
    vm: Vmstat,
    hist_prev: Vec<[u64; buckets::COUNT]>,
    readers: usize,
}

impl Sampler {
    pub fn new(readers: usize) -> Self {
        Self {
            vm: read_vmstat(),
            hist_prev: vec![[0; buckets::COUNT]; readers],
            readers,
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
        let mut reader_bytes = Vec::with_capacity(self.readers);
        let (mut reads, mut bytes, mut errors, mut errno) = (0, 0, 0, None);
        for (slot, prev) in shared.readers[..self.readers]
            .iter()
            .zip(self.hist_prev.iter_mut())
        {
            for (i, (cell, p)) in slot.hist.iter().zip(prev.iter_mut()).enumerate() {
                let now = cell.load(Relaxed);
                merged[i] += now - *p;
                *p = now;
            }
            reader_bytes.push(slot.bytes.load(Relaxed));
            reads += slot.reads.load(Relaxed);
            bytes += slot.bytes.load(Relaxed);
            errors += slot.errors.load(Relaxed);
            match slot.last_errno.load(Relaxed) {
                0 => {}
                e => errno = Some(e as i32),
            }
        }
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
        }
    }
}

fn self_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    sys::meminfo_kb(&status, "VmRSS").unwrap_or(0)
}

/// utime + stime of the whole agent process, in ms (USER_HZ is 100).
fn self_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() * 10
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
