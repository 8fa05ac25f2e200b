//! The run's slots, the order they run in, and what the agent is told to do
//! in each.

use std::time::Duration;

use hilt_protocol::{ControlSpec, KernelSettings, ReadPattern, RunSpec, WatchSpec, WorkloadSpec};
use serde::Serialize;

use super::results;
use crate::board::BoardStorage;
use crate::plan::{Control, FaultCfg, Pattern, ResolvedPlan};

/// One planned boot: a variant's iteration, or its positive control.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Slot {
    pub variant: String,
    pub iteration: u32,
    pub control: Option<Control>,
}

impl Slot {
    pub fn key(&self) -> results::SlotKey {
        (
            self.variant.clone(),
            self.iteration,
            self.control.map(|c| c.name().to_string()),
        )
    }

    pub fn dir_name(&self) -> String {
        match self.control {
            Some(c) => format!("{}-control-{}", self.variant, c.name()),
            None => format!("{}-{:03}", self.variant, self.iteration),
        }
    }

    /// How progress names the slot: its place in the run, then what it is.
    pub fn label(&self, n: usize, planned: u32) -> String {
        match self.control {
            Some(c) => format!(
                "[{}/{planned}] {} control {}",
                n + 1,
                self.variant,
                c.name()
            ),
            None => format!("[{}/{planned}] {} #{}", n + 1, self.variant, self.iteration),
        }
    }
}

/// How long the stall control holds swap frozen: past the hung-task
/// threshold of the plans that use it (10 s), well inside a deadlock window.
const SWAP_STALL_MS: u64 = 30_000;

pub fn run_spec(plan: &ResolvedPlan, storage: &BoardStorage, run_id: &str, slot: &Slot) -> RunSpec {
    let p = &plan.plan;
    let (variant, iteration) = (slot.variant.as_str(), slot.iteration);
    let control = slot.control.map(|c| match c {
        Control::SwapFreeze => ControlSpec::SwapFreeze {
            device: storage.control.clone(),
            stuck_kb: 16 * 1024,
            within_ms: 30_000,
            resume_after_ms: None,
        },
        Control::SwapStall => ControlSpec::SwapFreeze {
            device: storage.control.clone(),
            stuck_kb: 16 * 1024,
            within_ms: 30_000,
            resume_after_ms: Some(SWAP_STALL_MS),
        },
        Control::BioWait => ControlSpec::BioWaitFreeze {
            device: storage.control.clone(),
            within_ms: 30_000,
        },
    });
    let workloads = plan
        .workloads
        .iter()
        .filter_map(|w| {
            let ms = |s: f64| (s * 1000.0) as u64;
            if let Some(h) = &w.hog {
                return Some(WorkloadSpec::Hog {
                    name: w.name.clone(),
                    mem_fraction: h.mem_fraction,
                    start_after_ms: ms(h.start_after_s),
                });
            }
            let r = w.readers.as_ref()?;
            Some(WorkloadSpec::Readers {
                name: w.name.clone(),
                threads: r.threads,
                pattern: match r.pattern {
                    Pattern::Sequential => ReadPattern::Sequential,
                    Pattern::Random => ReadPattern::Random,
                    Pattern::Mmap => ReadPattern::Mmap,
                },
                block_size: r.block_size_kb * 1024,
                drop_caches: r.drop_caches,
                rounds: r.rounds,
                start_after_ms: ms(r.start_after_s),
                on: r.on,
                readahead: r.readahead,
            })
        })
        .collect();
    RunSpec {
        run_id: run_id.to_string(),
        variant: variant.to_string(),
        iteration,
        // A control ends when its hang is detected; give the kernel's own
        // detector (up to twice hung_task_timeout_secs) time to report.
        duration_ms: if control.is_some() {
            p.duration_s.max(90) * 1000
        } else {
            p.duration_s * 1000
        },
        storage: storage.storage.clone(),
        swap: storage.swap.clone(),
        kernel: KernelSettings {
            hung_task_timeout_secs: p.kernel.hung_task_timeout_secs,
            hung_task_check_interval_secs: p.kernel.hung_task_check_interval_secs,
            hung_task_warnings: p.kernel.hung_task_warnings,
            printk_level: p.kernel.printk_level,
            sysrq: p.kernel.sysrq,
            swappiness: p.kernel.swappiness,
        },
        workloads,
        watch: WatchSpec {
            heartbeat_ms: 1000,
            interval_ms: 1000,
            reader_stall_ms: p.watch.reader_stall_s * 1000,
            dstate_ms: p.watch.dstate_s * 1000,
            same_wchan_ms: p.watch.same_wchan_s * 1000,
            confirm_ms: p.watch.confirm_s * 1000,
            sysrq_keys: p.watch.sysrq.clone(),
            decompress_probes: p.watch.decompress_probes,
        },
        control,
    }
}

/// Interleaves variants within each round, in an order shuffled from the
/// plan's hash, so time-of-night effects do not line up with one variant.
pub fn order(plan: &ResolvedPlan) -> Vec<Slot> {
    let mut seed = u64::from_str_radix(&plan.sha256[..16], 16).unwrap_or(1);
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Controls first: a harness that cannot see a hang should not spend the
    // night producing "0 hangs".
    let mut out: Vec<Slot> = plan
        .plan
        .variants
        .iter()
        .flat_map(|v| {
            plan.plan.controls.iter().map(|c| Slot {
                variant: v.name.clone(),
                iteration: 0,
                control: Some(*c),
            })
        })
        .collect();
    for i in 0..plan.plan.max_iterations() {
        let mut round: Vec<String> = plan.plan.variants.iter().map(|v| v.name.clone()).collect();
        for k in (1..round.len()).rev() {
            round.swap(k, (next() % (k as u64 + 1)) as usize);
        }
        out.extend(round.into_iter().map(|variant| Slot {
            variant,
            iteration: i,
            control: None,
        }));
    }
    out
}

/// The plan's faults for this slot, by when they strike: none in a
/// positive control, which must see its own hang alone.
pub fn faults_of(plan: &ResolvedPlan, slot: &Slot) -> Vec<(Duration, FaultCfg)> {
    plan.plan
        .faults
        .iter()
        .filter(|f| slot.control.is_none() && f.iteration.is_none_or(|i| i == slot.iteration))
        .map(|f| (Duration::from_secs(f.after_s), f.clone()))
        .collect()
}
