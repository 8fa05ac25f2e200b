//! One iteration on the board: settings, storage, swap, workloads, watch.

use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hilt_protocol::{
    AgentMsg, ControlSpec, DoneReason, ReadFrom, RunSpec, Stage, StageReport, WorkloadSpec,
};

use crate::channel::Sender;
use crate::shm::{self, Mapping};
use crate::workloads::{self, WorkerArgs};
use crate::{control, data, kprobe, sampler, settings, storage, swap, sys};

fn stage<T>(
    tx: &Sender,
    stage: Stage,
    f: impl FnOnce() -> std::io::Result<(T, String)>,
) -> Option<T> {
    let t = Instant::now();
    match f() {
        Ok((v, detail)) => {
            tx.send(&AgentMsg::Stage(StageReport {
                stage,
                uptime_ms: sys::uptime_ms(),
                elapsed_ms: t.elapsed().as_millis() as u64,
                detail,
            }));
            Some(v)
        }
        Err(e) => {
            tx.send(&AgentMsg::Error {
                stage,
                message: e.to_string(),
            });
            None
        }
    }
}

pub fn run(spec: &RunSpec, tx: &Sender, stop: &Arc<AtomicBool>) {
    let Some(saved) = stage(tx, Stage::Settings, || settings::apply(&spec.kernel)) else {
        return;
    };
    let mut zram_before = None;
    let result = run_inner(spec, tx, stop, &mut zram_before);
    settings::restore(&saved);
    if let Some(before) = zram_before {
        // Reported, never an error: the run's results stand either way.
        let detail = match swap::restore(&before) {
            Ok(()) => "the OS's zram swap restored".to_string(),
            Err(e) => format!("the OS's zram swap NOT restored: {e}"),
        };
        tx.send(&AgentMsg::Stage(StageReport {
            stage: Stage::Swap,
            uptime_ms: sys::uptime_ms(),
            elapsed_ms: 0,
            detail,
        }));
    }
    if let Some(reason) = result {
        tx.send(&AgentMsg::Done {
            uptime_ms: sys::uptime_ms(),
            reason,
            agent_threads: sampler::thread_cpu(),
        });
    }
}

fn run_inner(
    spec: &RunSpec,
    tx: &Sender,
    stop: &Arc<AtomicBool>,
    zram_before: &mut Option<swap::ZramBefore>,
) -> Option<DoneReason> {
    let mounted = stage(tx, Stage::Mount, || {
        let m = storage::set_up(&spec.storage)?;
        let files = storage::files()?;
        let detail = format!(
            "{} on {}{}, {} files",
            storage::MOUNT_POINT,
            m.device.display(),
            match &m.verity {
                Some(from) => format!(" (dm-verity over {} from {from})", m.lower.display()),
                None => String::new(),
            },
            files.len()
        );
        Ok(((m, files), detail))
    })?;
    let (_mount, files) = mounted;
    let data_files = match &spec.storage.data {
        Some(d) => stage(tx, Stage::Data, || data::set_up(d))?,
        None => Vec::new(),
    };
    let control_swap = stage(tx, Stage::Swap, || {
        if let Some(ControlSpec::SwapFreeze { device, .. }) = &spec.control {
            let (node, detail) = swap::set_up_freezable(&crate::block::resolve(device)?)?;
            return Ok((Some(node), detail));
        }
        let set = swap::set_up(&spec.swap)?;
        *zram_before = set.zram_before;
        let detail = set
            .active
            .as_ref()
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| "no swap".into());
        Ok((None, detail))
    })?;
    // Before the workloads, so that their memory pressure cannot get in the
    // way of the hang; it is the detectors that must work under that load.
    if let (
        Some(ControlSpec::SwapFreeze {
            stuck_kb,
            within_ms,
            resume_after_ms,
            ..
        }),
        Some(node),
    ) = (&spec.control, control_swap)
    {
        stage(tx, Stage::Control, || {
            let detail = control::SwapFreeze::prepare(&node)?.freeze(*stuck_kb, *within_ms)?;
            match resume_after_ms {
                Some(ms) => {
                    control::resume_later(*ms)?;
                    Ok(((), format!("{detail}; resumed after {} s", ms / 1000)))
                }
                None => Ok(((), detail)),
            }
        })?;
    }
    if let Some(ControlSpec::BioWaitFreeze { device, within_ms }) = &spec.control {
        stage(tx, Stage::Control, || {
            let dev = crate::block::resolve(device)?;
            control::bio_wait_freeze(&dev, *within_ms).map(|d| ((), d))
        })?;
    }
    let map = stage(tx, Stage::Workloads, || {
        Mapping::create().map(|m| (m, String::new()))
    })?;
    let mem_total_kb = sampler::read_mem().total_kb;
    let start = sys::uptime_ms();
    let deadline = start + spec.duration_ms;
    let mut children: Vec<(String, Child)> = Vec::new();
    let mut slot_base = 0;
    // What each reader slot reads, in slot order.
    let mut slots: Vec<ReadFrom> = Vec::new();
    for w in &spec.workloads {
        let (name, threads, from) = match w {
            WorkloadSpec::Hog { name, .. } => (name.clone(), 0, ReadFrom::Erofs),
            WorkloadSpec::Readers {
                name, threads, on, ..
            } => (name.clone(), *threads as usize, *on),
        };
        if slot_base + threads > shm::MAX_READERS {
            tx.send(&AgentMsg::Error {
                stage: Stage::Workloads,
                message: format!("more than {} readers", shm::MAX_READERS),
            });
            return None;
        }
        let files = match from {
            ReadFrom::Data => data_files.clone(),
            ReadFrom::Erofs => files.clone(),
        };
        if threads > 0 && files.is_empty() {
            // A reader with nothing to read would spin through empty rounds.
            tx.send(&AgentMsg::Error {
                stage: Stage::Workloads,
                message: format!("{name}: no files to read on {from:?}"),
            });
            return None;
        }
        let args = WorkerArgs {
            spec: w.clone(),
            shm_fd: map.fd,
            slot_base,
            deadline_uptime_ms: deadline,
            files,
            mem_total_kb,
        };
        match workloads::spawn(&args) {
            Ok(c) => children.push((name, c)),
            Err(e) => {
                tx.send(&AgentMsg::Error {
                    stage: Stage::Workloads,
                    message: format!("starting {name}: {e}"),
                });
                return None;
            }
        }
        slot_base += threads;
        slots.extend(std::iter::repeat_n(from, threads));
    }
    let readers = slot_base;
    if matches!(spec.control, Some(ControlSpec::BioWaitFreeze { .. })) {
        stage(tx, Stage::Control, || {
            stop_readers(spec, &children).map(|d| ((), d))
        })?;
    }
    // Probes go in after the mount: erofs' symbols exist once it is loaded.
    let probes = if spec.watch.decompress_probes {
        stage(tx, Stage::Probes, kprobe::start).unwrap_or_default()
    } else {
        Vec::new()
    };
    let running = Running {
        map: &map,
        readers,
        slots: &slots,
        deadline,
        children: &mut children,
        probes: &probes,
    };
    let reason = watch(spec, tx, stop, running);
    crate::selfwatch::SAMPLER.rest();
    for (_, c) in &mut children {
        let _ = c.kill();
    }
    if !probes.is_empty() {
        kprobe::stop();
    }
    Some(reason)
}

/// What the watch loop looks after: the workload processes, their shared
/// counters, and the kernel probes.
struct Running<'a> {
    map: &'a Mapping,
    readers: usize,
    slots: &'a [ReadFrom],
    deadline: u64,
    children: &'a mut [(String, Child)],
    probes: &'a [Arc<kprobe::Func>],
}

fn watch(spec: &RunSpec, tx: &Sender, stop: &Arc<AtomicBool>, w: Running<'_>) -> DoneReason {
    let Running {
        map,
        readers,
        slots,
        deadline,
        children,
        probes,
    } = w;
    let mut sampler = sampler::Sampler::new(slots);
    let mut stalled = vec![false; readers];
    // Each workload's exit is reported once.
    let mut exited = vec![false; children.len()];
    let interval = Duration::from_millis(spec.watch.interval_ms.max(100));
    let mut next = Instant::now() + interval;
    loop {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += interval;
        crate::faults::sampler_frozen_wait();
        crate::selfwatch::SAMPLER.beat();
        let now = sys::uptime_ms();
        let mut stats = sampler.sample(map.get(), now);
        stats.decompress = probes.iter().map(|f| f.delta()).collect();
        tx.send(&AgentMsg::Interval(Box::new(stats)));
        let mut now_stalled = vec![false; readers];
        for (i, since) in sampler::stalled(map.get(), readers, now, spec.watch.reader_stall_ms) {
            now_stalled[i] = true;
            if !stalled[i] {
                tx.send(&AgentMsg::ReaderStall {
                    uptime_ms: now,
                    reader: i as u32,
                    workload: reader_workload(spec, i),
                    stalled_ms: since,
                });
            }
        }
        for i in 0..readers {
            if stalled[i] && !now_stalled[i] {
                tx.send(&AgentMsg::ReaderResumed {
                    uptime_ms: now,
                    reader: i as u32,
                    workload: reader_workload(spec, i),
                });
            }
        }
        stalled = now_stalled;
        for ((name, c), gone) in children.iter_mut().zip(exited.iter_mut()) {
            if *gone {
                continue;
            }
            if let Ok(Some(status)) = c.try_wait() {
                *gone = true;
                if !status.success() && now < deadline {
                    tx.send(&AgentMsg::Error {
                        stage: Stage::Workloads,
                        message: format!("{name} exited early: {status}"),
                    });
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            return DoneReason::Stopped;
        }
        let readers_done = readers > 0
            && map.get().readers[..readers]
                .iter()
                .all(|s| s.state.load(Ordering::Relaxed) == shm::FINISHED);
        if now >= deadline || readers_done {
            return DoneReason::Completed;
        }
    }
}

/// The bio-wait control's other half: the readers stand still, as they do
/// behind the seed's deadlock, so the waiter is one with no progress.
fn stop_readers(spec: &RunSpec, children: &[(String, Child)]) -> std::io::Result<String> {
    let mut stopped = Vec::new();
    for (w, (name, child)) in spec.workloads.iter().zip(children) {
        if matches!(w, WorkloadSpec::Readers { .. }) {
            let ret = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
            sys::check(ret, &format!("SIGSTOP {name}"))?;
            stopped.push(name.as_str());
        }
    }
    if stopped.is_empty() {
        return Err(std::io::Error::other(
            "bio-wait: the plan has no readers to stop, so the waiter could never be one with no progress",
        ));
    }
    Ok(format!("bio-wait: readers stopped: {}", stopped.join(", ")))
}

fn reader_workload(spec: &RunSpec, reader: usize) -> String {
    let mut base = 0;
    for w in &spec.workloads {
        if let WorkloadSpec::Readers { name, threads, .. } = w {
            if reader < base + *threads as usize {
                return name.clone();
            }
            base += *threads as usize;
        }
    }
    String::new()
}
