//! Kernel settings for the run: applied at start, checked, restored at end.

use std::io;

use hilt_protocol::KernelSettings;

use crate::sys;

pub struct Saved(Vec<(&'static str, String)>);

fn wanted(k: &KernelSettings) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    if let Some(x) = k.hung_task_timeout_secs {
        v.push(("/proc/sys/kernel/hung_task_timeout_secs", x.to_string()));
    }
    if let Some(x) = k.hung_task_check_interval_secs {
        v.push((
            "/proc/sys/kernel/hung_task_check_interval_secs",
            x.to_string(),
        ));
    }
    if let Some(x) = k.hung_task_warnings {
        v.push(("/proc/sys/kernel/hung_task_warnings", x.to_string()));
    }
    if let Some(x) = k.printk_level {
        // Only the console level changes; the other three fields keep theirs.
        let cur = sys::read_trimmed("/proc/sys/kernel/printk").unwrap_or_default();
        let rest: Vec<&str> = cur.split_whitespace().skip(1).collect();
        v.push(("/proc/sys/kernel/printk", format!("{x} {}", rest.join(" "))));
    }
    if k.sysrq {
        v.push(("/proc/sys/kernel/sysrq", "1".into()));
    }
    if let Some(x) = k.swappiness {
        v.push(("/proc/sys/vm/swappiness", x.to_string()));
    }
    v
}

/// Applies every setting or none: a missing knob means the kernel lacks a
/// feature the run relies on, which the host must hear about.
pub fn apply(k: &KernelSettings) -> io::Result<(Saved, String)> {
    let mut saved = Vec::new();
    let mut detail = Vec::new();
    for (path, value) in wanted(k) {
        let old = sys::read_trimmed(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{path} is missing ({e}): the kernel lacks this feature"),
            )
        })?;
        sys::write_attr(path, &value)?;
        let now = sys::read_trimmed(path)?;
        detail.push(format!(
            "{}={now} (was {old})",
            path.trim_start_matches("/proc/sys/")
        ));
        saved.push((path, old));
    }
    Ok((Saved(saved), detail.join(", ")))
}

/// Restores everything but sysrq: the host may still need it after the
/// workloads end (a silent board gets BREAK + sysrq until power-off).
pub fn restore(s: &Saved) {
    for (path, old) in &s.0 {
        if *path != "/proc/sys/kernel/sysrq" {
            let _ = sys::write_attr(path, old);
        }
    }
}
