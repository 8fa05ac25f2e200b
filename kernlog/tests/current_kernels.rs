//! The report wordings of current kernels, each as the source prints it: Debian's
//! linux-source-6.12 (6.12.118) and linux-source-7.2 (7.2.13), files named at each
//! test. 6.1's wordings are covered by the corpus and `api.rs`; real console logs of
//! a 6.12 board are in `tests/data/` (`board_logs.rs`).

use hilt_kernlog::{contains_crash, parse, Event, EventKind, Task};

fn log(lines: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("** ") {
            out.extend_from_slice(l.as_bytes());
        } else {
            out.extend_from_slice(format!("[{:12.6}] {l}", 100.0 + i as f64 * 0.000_1).as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn crashes(lines: &[&str]) -> Vec<Event> {
    let text = log(lines);
    let events: Vec<Event> = parse(&text).into_iter().filter(|e| e.is_crash()).collect();
    assert_eq!(contains_crash(&text), !events.is_empty());
    events
}

fn titles(lines: &[&str]) -> Vec<String> {
    crashes(lines).into_iter().map(|e| e.title).collect()
}

/// A swapoff waiting on writeback to a frozen swap device, as 7.x prints its stack
/// (arm64 marks where each frame's address came from: `(T)` the task, `(P)` regs).
const SWAPOFF_STACK_7: &[&str] = &[
    "task:hilt-swapoff    state:D stack:0     pid:139   tgid:139   ppid:129    task_flags:0x400100 flags:0x00000010",
    "Call trace:",
    " __switch_to+0xf0/0x170 (T)",
    " __schedule+0x33c/0xa40",
    " schedule+0x5c/0x100",
    " io_schedule+0x44/0x70",
    " folio_wait_bit_common+0x184/0x3e0",
    " folio_wait_writeback+0x50/0xe0",
    " try_to_unuse+0x3b0/0x6f0",
    " __arm64_sys_swapoff+0x1c4/0x6a0",
    " invoke_syscall+0x50/0x120",
    " el0_svc_common.constprop.0+0x48/0xf0",
    " do_el0_svc+0x24/0x38",
    " el0_svc+0x34/0xf0",
    " el0t_64_sync_handler+0x10c/0x138",
    " el0t_64_sync+0x1b0/0x1b8",
];

fn hung_swapoff(header: &str, release: &str) -> Vec<String> {
    let mut lines = vec![
        header.to_string(),
        format!("      Not tainted {release}"),
        "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.".into(),
    ];
    lines.extend(SWAPOFF_STACK_7.iter().map(|s| s.to_string()));
    lines
}

fn refs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

/// kernel/hung_task.c, 7.2: `"INFO: task %s:%d blocked%s for more than %ld seconds.\n"`
/// with `" in I/O wait"` for a task in io_schedule(); 6.12 has no `%s` there.
#[test]
fn hung_task_in_io_wait() {
    for (header, release) in [
        (
            "INFO: task hilt-swapoff:139 blocked in I/O wait for more than 122 seconds.",
            "7.2.13-arm64 #1 Debian 7.2.13-1",
        ),
        (
            "INFO: task hilt-swapoff:139 blocked for more than 10 seconds.",
            "6.12.118+deb12-arm64 #1 Debian 6.12.118-1~deb12u1",
        ),
    ] {
        let lines = hung_swapoff(header, release);
        let events = crashes(&refs(&lines));
        assert_eq!(events.len(), 1, "{header}: {events:#?}");
        let ev = &events[0];
        assert_eq!(ev.kind, EventKind::HungTask);
        assert_eq!(ev.title, "INFO: task hung in try_to_unuse", "{header}");
        assert_eq!(
            ev.task,
            Some(Task {
                comm: "hilt-swapoff".into(),
                pid: Some(139)
            })
        );
        assert_eq!(ev.frames.first().map(String::as_str), Some("__switch_to"));
        assert!(!ev.corrupted);
    }
}

/// kernel/hung_task.c, 7.2, `debug_show_blocker()` (CONFIG_DETECT_HUNG_TASK_BLOCKER):
/// after the hung task's stack, the lock's owner and its stack. All of it is the one
/// hung-task report, not a second one.
#[test]
fn hung_task_blocker_lines_are_not_reports_of_their_own() {
    let owner_lines = [
        "INFO: task mount:201 is blocked on a mutex likely owned by task hilt-swapoff:139.",
        "INFO: task mount:201 blocked on a semaphore likely last held by task hilt-swapoff:139",
        "INFO: task mount:201 <reader> blocked on an rw-semaphore likely owned by task hilt-swapoff:139 <writer>",
        "INFO: task mount:201 is blocked on a mutex, but the owner is not found.",
        "INFO: task mount:201 is blocked on a semaphore, but the last holder is not found.",
        "INFO: task mount:201 is blocked on an rw-semaphore, but the owner is not found.",
    ];
    for owner in owner_lines {
        let mut lines = vec![
            "INFO: task mount:201 blocked for more than 122 seconds.".to_string(),
            "      Not tainted 7.2.13-arm64 #1 Debian 7.2.13-1".into(),
            "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.".into(),
            "task:mount           state:D stack:0     pid:201   tgid:201   ppid:1      task_flags:0x400100 flags:0x00000010".into(),
            "Call trace:".into(),
            " __switch_to+0xf0/0x170 (T)".into(),
            " __schedule+0x33c/0xa40".into(),
            " schedule+0x5c/0x100".into(),
            " schedule_preempt_disabled+0x2c/0x50".into(),
            " __mutex_lock.constprop.0+0x2a8/0x5d0".into(),
            " mutex_lock+0x50/0x60".into(),
            " swap_mount_helper+0x30/0x80".into(),
            " do_mount+0x90/0x100".into(),
            owner.into(),
        ];
        lines.extend(SWAPOFF_STACK_7.iter().map(|s| s.to_string()));
        lines.push(
            "Future hung task reports are suppressed, see sysctl kernel.hung_task_warnings".into(),
        );
        assert_eq!(
            titles(&refs(&lines)),
            ["INFO: task hung in swap_mount_helper"],
            "{owner}"
        );
    }
}

/// kernel/watchdog.c: 6.12 `"Watchdog detected hard LOCKUP on cpu %d\n"`, 7.2
/// `"CPU%u: Watchdog detected hard LOCKUP on cpu %u\n"`, both after `pr_fmt`'s
/// `watchdog: `.
#[test]
fn hard_lockup_both_wordings() {
    for header in [
        "watchdog: Watchdog detected hard LOCKUP on cpu 0",
        "watchdog: CPU1: Watchdog detected hard LOCKUP on cpu 0",
    ] {
        let lines = [
            header,
            "Modules linked in: zram zsmalloc",
            "CPU: 0 UID: 0 PID: 88 Comm: spin Not tainted 7.2.13-arm64 #1 Debian 7.2.13-1",
            "pstate: 60400005 (nZCv daif +PAN -UAO -TCO -DIT -SSBS BTYPE=--)",
            "pc : spin_forever+0x10/0x20 [spinmod]",
            "lr : spin_write+0x20/0x40 [spinmod]",
            "Call trace:",
            " spin_forever+0x10/0x20 [spinmod] (P)",
            " spin_write+0x20/0x40 [spinmod]",
            " vfs_write+0xd0/0x360",
            " ksys_write+0x70/0x108",
            " __arm64_sys_write+0x20/0x30",
            " invoke_syscall+0x50/0x120",
            "hilt-agent: next",
        ];
        let events = crashes(&lines);
        assert_eq!(events.len(), 1, "{header}");
        assert_eq!(events[0].kind, EventKind::HardLockup);
        assert_eq!(
            events[0].title, "BUG: hard lockup in spin_write",
            "{header}"
        );
    }
}

/// kernel/watchdog.c, 6.12 and 7.2: `"BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]\n"`,
/// then `report_cpu_status()`'s utilisation table (6.9+) before the registers.
#[test]
fn soft_lockup_with_the_cpu_utilisation_table() {
    let lines = [
        "watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [spin:88]",
        "CPU#0 Utilization every 4s during lockup:",
        "\t#1: 100% system,\t  0% softirq,\t  0% hardirq,\t  0% idle",
        "\t#2: 100% system,\t  0% softirq,\t  0% hardirq,\t  0% idle",
        "Modules linked in: spinmod zram",
        "CPU: 0 UID: 0 PID: 88 Comm: spin Not tainted 6.12.118+deb12-arm64 #1 Debian 6.12.118-1~deb12u1",
        "pc : spin_forever+0x10/0x20 [spinmod]",
        "lr : spin_write+0x20/0x40 [spinmod]",
        "Call trace:",
        " spin_forever+0x10/0x20 [spinmod]",
        " spin_write+0x20/0x40 [spinmod]",
        " vfs_write+0xd0/0x360",
        " ksys_write+0x70/0x108",
        " __arm64_sys_write+0x20/0x30",
        " invoke_syscall+0x50/0x120",
        "hilt-agent: next",
    ];
    let events = crashes(&lines);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::SoftLockup);
    assert_eq!(events[0].title, "BUG: soft lockup in spin_write");
    assert_eq!(
        events[0].task,
        Some(Task {
            comm: "spin".into(),
            pid: Some(88)
        })
    );
}

/// kernel/rcu/tree_stall.h and tree_exp.h (6.12 and 7.2), kernel/rcu/tasks.h.
#[test]
fn rcu_stall_wordings() {
    let stall_stack = [
        "Call trace:",
        " spin_forever+0x10/0x20 [spinmod]",
        " spin_write+0x20/0x40 [spinmod]",
        " vfs_write+0xd0/0x360",
        "hilt-agent: next",
    ];
    for header in [
        "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
        "rcu: INFO: rcu_preempt self-detected stall on CPU",
        "rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 0-.... } 5252 jiffies s: 761 root: 0x1/.",
    ] {
        let mut lines = vec![
            header,
            "rcu: \t0-....: (5249 ticks this GP) idle=ee1c/1/0x4000000000000000 softirq=3420/3420 fqs=2587",
            "rcu: \t(t=5250 jiffies g=6213 q=262 ncpus=2)",
            "CPU: 0 UID: 0 PID: 88 Comm: spin Not tainted 6.12.118+deb12-arm64 #1 Debian 6.12.118-1~deb12u1",
            "pc : spin_forever+0x10/0x20 [spinmod]",
        ];
        lines.extend(stall_stack);
        let events = crashes(&lines);
        assert_eq!(events.len(), 1, "{header}");
        assert_eq!(events[0].kind, EventKind::RcuStall, "{header}");
        assert!(
            events[0].title.starts_with("INFO: rcu detected stall in "),
            "{header}: {}",
            events[0].title
        );
    }
    assert_eq!(
        titles(&["rcu: INFO: rcu_preempt detected stall, but suppressed full report due to a stuck CSD-lock."]),
        ["INFO: rcu detected stall (report suppressed: stuck CSD-lock)"]
    );
    assert_eq!(
        titles(&["rcu: INFO: rcu_sched detected expedited stalls, but suppressed full report due to a stuck CSD-lock."]),
        ["INFO: rcu detected stall (report suppressed: stuck CSD-lock)"]
    );
    for (header, title) in [
        (
            "INFO: rcu_tasks detected stalls on tasks:",
            "INFO: rcu_tasks detected stall",
        ),
        (
            "INFO: rcu_tasks_trace detected stalls on tasks:",
            "INFO: rcu_tasks_trace detected stall",
        ),
    ] {
        let events = crashes(&[
            header,
            "00000000a1b2c3d4: .. nvcsw: 2/2 holdout: 1 idle_cpu: -1/1",
        ]);
        assert_eq!(events.len(), 1, "{header}");
        assert_eq!(
            (events[0].kind, events[0].title.as_str()),
            (EventKind::RcuStall, title)
        );
    }
    // The ends of stalls that were already reported.
    for quiet in [
        "rcu: INFO: Stall ended before state dump start",
        "rcu: INFO: Stall ended during stack backtracing.",
        "rcu: INFO: Expedited stall ended before state dump start",
    ] {
        assert!(titles(&[quiet]).is_empty(), "{quiet}");
    }
}

/// kernel/workqueue.c, 6.12 and 7.2.
#[test]
fn workqueue_wordings() {
    let lockup = [
        "BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 31s!",
        "Showing busy workqueues and worker pools:",
        "workqueue events: flags=0x0",
        "  pwq 0: cpus=0 node=0 flags=0x0 nice=0 active=2 refcnt=3",
        "    in-flight: 12:spin_work_fn [spinmod]",
        "pool 0: cpus=0 node=0 flags=0x0 nice=0 hung=31s workers=3 idle: 30 5",
        "Showing backtraces of running workers in stalled CPU-bound worker pools:",
        "pool 0:",
        "task:kworker/0:1     state:R  running task     stack:0     pid:12    tgid:12    ppid:2      flags:0x00000008",
        "Workqueue: events spin_work_fn [spinmod]",
        "Call trace:",
        " spin_work_fn+0x10/0x20 [spinmod]",
        " process_one_work+0x178/0x3d0",
        "hilt-agent: next",
    ];
    let events = crashes(&lockup);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, EventKind::WorkqueueLockup);
    assert_eq!(events[0].title, "BUG: workqueue lockup");
    assert!(
        events[0]
            .excerpt
            .contains("Showing backtraces of running workers"),
        "{}",
        events[0].excerpt
    );

    let leaked = [
        "BUG: workqueue leaked atomic, lock or RCU: kworker/0:1[12]",
        "     preempt=0x00000000 lock=0->1 RCU=0->0 workfn=leaky_work_fn [leakmod]",
        "1 lock held by kworker/0:1/12:",
        " #0: ffff000001234568 (leak_lock){+.+.}-{3:3}, at: leaky_work_fn+0x1c/0x40 [leakmod]",
        "CPU: 0 UID: 0 PID: 12 Comm: kworker/0:1 Not tainted 6.12.118+deb12-arm64 #1 Debian 6.12.118-1~deb12u1",
        "Workqueue: events leaky_work_fn [leakmod]",
        "Call trace:",
        " show_stack+0x20/0x38 (C)",
        " dump_stack_lvl+0x78/0x90",
        " dump_stack+0x18/0x28",
        " process_one_work+0x3a0/0x480",
        " worker_thread+0x2b0/0x3d8",
        "hilt-agent: next",
    ];
    assert_eq!(
        titles(&leaked),
        ["BUG: workqueue leaked atomic, lock or RCU in leaky_work_fn"]
    );
}

/// kernel/printk/printk.c (6.12, 7.2): `"** %lu printk messages dropped **\n"` and
/// `"** replaying previous printk message **\n"` go in front of a record, each on a
/// line of its own; nbcon.c replays a record whose printing another context cut off.
#[test]
fn replayed_and_dropped_printk_records() {
    let mut lines = hung_swapoff(
        "INFO: task hilt-swapoff:139 blocked for more than 10 seconds.",
        "6.12.118+deb12-arm64 #1 Debian 6.12.118-1~deb12u1",
    );
    lines.insert(0, "hilt-agent: before".into());
    let whole = String::from_utf8(log(&refs(&lines))).unwrap();
    let raw: Vec<&str> = whole.lines().collect();
    // The header cut off mid-line with the marker glued to it, then the record
    // again; a stack line printed whole, announced as replayed, printed again.
    let mut text = String::new();
    for (i, line) in raw.iter().enumerate() {
        if i == 1 {
            text += &line[..45];
            text += "** replaying previous printk message **\n";
        }
        text += line;
        text += "\n";
        if i == 4 {
            text += "** replaying previous printk message **\n";
            text += line;
            text += "\n";
        }
    }
    assert!(raw[4].contains("task:hilt-swapoff"));
    let text = text.into_bytes();
    let events: Vec<Event> = parse(&text).into_iter().filter(|e| e.is_crash()).collect();
    assert!(contains_crash(&text));
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].title, "INFO: task hung in try_to_unuse");
    assert_eq!(events[0].excerpt.matches("task:hilt-swapoff").count(), 1);
    assert!(!events[0].excerpt.contains("replaying"));
    assert!(!events[0].corrupted);

    // Records lost inside a report: the title still comes out, marked as damaged.
    let mut lines = hung_swapoff(
        "INFO: task hilt-swapoff:139 blocked for more than 10 seconds.",
        "6.12.118+deb12-arm64 #1 Debian 6.12.118-1~deb12u1",
    );
    lines.insert(7, "** 3 printk messages dropped **".into());
    let events = crashes(&refs(&lines));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].title, "INFO: task hung in try_to_unuse");
    assert!(events[0].corrupted);
    assert!(!events[0].excerpt.contains("dropped"));
    // Before any report opens, a drop damages nothing.
    let mut lines = vec!["** 3 printk messages dropped **".to_string()];
    lines.extend(hung_swapoff(
        "INFO: task hilt-swapoff:139 blocked for more than 10 seconds.",
        "6.12.118+deb12-arm64 #1 Debian 6.12.118-1~deb12u1",
    ));
    assert!(!crashes(&refs(&lines))[0].corrupted);
}
