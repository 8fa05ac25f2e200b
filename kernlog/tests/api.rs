//! Behaviour of the public API on hand-written logs: input shapes (printk prefixes,
//! /dev/kmsg records, CRLF, bytes that are not UTF-8, interleaved callers), the
//! streaming parser's timing, and the event kinds beyond syzkaller's.

use hilt_kernlog::{contains_crash, parse, Event, EventKind, StreamParser, Task};

/// The hung-task record sequence from an arm64 Debian board (mmc driver stuck).
const HUNG_TASK: &[&str] = &[
    "INFO: task kworker/0:2H:127 blocked for more than 10 seconds.",
    "      Not tainted 6.1.0-44-arm64 #1 Debian 6.1.164-1",
    "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.",
    "task:kworker/0:2H    state:D stack:0     pid:127   ppid:2      flags:0x00000008",
    "Workqueue: mmc_complete mmc_blk_mq_complete_work",
    "Call trace:",
    " __switch_to+0xf0/0x170",
    " __schedule+0x33c/0xa40",
    " schedule+0x5c/0x100",
    " schedule_preempt_disabled+0x2c/0x50",
    " __mutex_lock.constprop.0+0x2a8/0x5d0",
    " __mutex_lock_slowpath+0x1c/0x30",
    " mutex_lock+0x50/0x60",
    " mmc_blk_rw_wait+0x8c/0x140 [mmc_block]",
    " mmc_blk_mq_complete_prev_req.part.0+0x34/0x1a0 [mmc_block]",
    " mmc_blk_mq_complete_work+0x30/0x50 [mmc_block]",
    " process_one_work+0x1f4/0x490",
    " worker_thread+0x284/0x4a0",
    " kthread+0xe8/0xf4",
    " ret_from_fork+0x10/0x20",
];

fn console(lines: &[&str], start: f64) -> Vec<String> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("[{:12.6}] {l}", start + i as f64 * 0.000_01))
        .collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    let mut log = lines.join("\n").into_bytes();
    log.push(b'\n');
    log
}

fn assert_hung_task(ev: &Event) {
    assert_eq!(ev.kind, EventKind::HungTask);
    assert_eq!(ev.title, "INFO: task hung in mmc_blk_rw_wait");
    assert_eq!(
        ev.task,
        Some(Task {
            comm: "kworker/0:2H".into(),
            pid: Some(127)
        })
    );
    assert_eq!(ev.frames.first().map(String::as_str), Some("__switch_to"));
    assert!(ev.frames.iter().any(|f| f == "mmc_blk_rw_wait"));
    assert!(
        ev.frames
            .iter()
            .all(|f| !f.contains('+') && !f.contains('[')),
        "{:?}",
        ev.frames
    );
    assert!(!ev.corrupted);
    assert!(ev
        .excerpt
        .starts_with("INFO: task kworker/0:2H:127 blocked for more than 10 seconds."));
    assert!(ev
        .excerpt
        .contains(" mmc_blk_rw_wait+0x8c/0x140 [mmc_block]"));
}

#[test]
fn hung_task_from_the_brief() {
    let mut lines = console(HUNG_TASK, 250.5);
    lines.push("[  251.000000] usb 1-1: new high-speed USB device number 3".into());
    let events = parse(&join(&lines));
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_hung_task(&events[0]);
    assert_eq!(events[0].timestamp, Some(250.5));
    assert!(!events[0].excerpt.contains("usb 1-1"));
    assert!(contains_crash(&join(&lines)));
}

#[test]
fn bare_lines_parse_like_console_lines() {
    let lines: Vec<String> = HUNG_TASK.iter().map(|l| l.to_string()).collect();
    let events = parse(&join(&lines));
    assert_eq!(events.len(), 1);
    assert_hung_task(&events[0]);
    assert_eq!(events[0].timestamp, None);
}

#[test]
fn streaming_emits_when_the_stack_ends() {
    let mut parser = StreamParser::new();
    for line in console(HUNG_TASK, 10.0) {
        assert!(
            parser.push_line(line.as_bytes()).is_empty(),
            "emitted early at {line:?}"
        );
    }
    let events = parser.push_line(b"[   10.500000] mmc0: cache flush error -110");
    assert_eq!(events.len(), 1);
    assert_hung_task(&events[0]);
    assert!(parser.flush().is_empty());
}

#[test]
fn streaming_flush_ends_an_open_report() {
    let mut parser = StreamParser::new();
    let mut events = Vec::new();
    for line in console(HUNG_TASK, 10.0) {
        parser.push_line_into(format!("{line}\n").as_bytes(), &mut events);
    }
    assert!(events.is_empty());
    parser.flush_into(&mut events);
    assert_eq!(events.len(), 1);
    assert_hung_task(&events[0]);
}

#[test]
fn kmsg_records() {
    let mut parser = StreamParser::new();
    let mut events = Vec::new();
    for (i, line) in HUNG_TASK.iter().enumerate() {
        let record = format!(
            "3,{},{},-;{line}\n SUBSYSTEM=block\n",
            900 + i,
            250_500_000 + i as u64 * 10
        );
        events.extend(parser.push_line(record.as_bytes()));
    }
    events.extend(parser.flush());
    assert_eq!(events.len(), 1);
    assert_hung_task(&events[0]);
    assert_eq!(events[0].timestamp, Some(250.5));
    assert!(!events[0].excerpt.contains("SUBSYSTEM"));
}

#[test]
fn level_prefixes_and_caller_ids() {
    let lines: Vec<String> = HUNG_TASK
        .iter()
        .enumerate()
        .map(|(i, l)| format!("<3>[  77.{:06}][  T412] {l}", i))
        .collect();
    let events = parse(&join(&lines));
    assert_eq!(events.len(), 1);
    assert_hung_task(&events[0]);
    assert_eq!(events[0].caller.as_deref(), Some("T412"));
    assert_eq!(events[0].timestamp, Some(77.0));
}

#[test]
fn crlf_gives_the_same_events() {
    let lines = console(HUNG_TASK, 5.0);
    let lf = parse(&join(&lines));
    let crlf = parse(lines.join("\r\n").as_bytes());
    assert_eq!(lf, crlf);
    assert_hung_task(&crlf[0]);
}

#[test]
fn bytes_that_are_not_utf8() {
    let mut log = join(&console(HUNG_TASK, 5.0));
    // Garbage in the middle of the report and a broken line of its own.
    let at = log.windows(9).position(|w| w == b"Workqueue").unwrap();
    log.splice(at..at, [0xff, 0xfe, 0xc3]);
    log.extend_from_slice(b"[    6.000000] \xe2\x28\xa1 weird\n");
    let events = parse(&log);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].title, "INFO: task hung in mmc_blk_rw_wait");
    assert!(events[0].excerpt.contains('\u{fffd}'));
}

/// Two tasks' reports printed at once: with caller ids each gets its own lines.
#[test]
fn interleaved_callers_are_separated() {
    let warning = [
        "------------[ cut here ]------------",
        "WARNING: CPU: 1 PID: 200 at drivers/gpu/drm/panel.c:80 panel_enable+0x40/0x90",
        "Modules linked in: panel_simple",
        "CPU: 1 PID: 200 Comm: weston Not tainted 6.1.0 #1",
        "pc : panel_enable+0x40/0x90",
        "lr : panel_enable+0x24/0x90",
        "Call trace:",
        " panel_enable+0x40/0x90",
        " drm_atomic_helper_commit_modeset_enables+0x1c4/0x240",
        " commit_tail+0xa8/0x1a0",
        "---[ end trace 0000000000000000 ]---",
    ];
    let mut lines = Vec::new();
    let (mut a, mut b) = (HUNG_TASK.iter(), warning.iter());
    let mut t = 1.0;
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() {
            break;
        }
        for (caller, line) in [("T37", x), ("T200", y)] {
            if let Some(line) = line {
                lines.push(format!("[{t:12.6}][{caller:>6}] {line}"));
                t += 0.001;
            }
        }
    }
    let events = parse(&join(&lines));
    assert_eq!(events.len(), 2, "{events:#?}");
    let hung = events
        .iter()
        .find(|e| e.kind == EventKind::HungTask)
        .unwrap();
    assert_hung_task(hung);
    assert_eq!(hung.caller.as_deref(), Some("T37"));
    assert!(!hung.excerpt.contains("panel"));
    let warn = events
        .iter()
        .find(|e| e.kind == EventKind::Warning)
        .unwrap();
    assert_eq!(warn.title, "WARNING in panel_enable");
    assert_eq!(warn.caller.as_deref(), Some("T200"));
    assert_eq!(
        warn.task,
        Some(Task {
            comm: "weston".into(),
            pid: Some(200)
        })
    );
    assert!(!warn.excerpt.contains("mmc"));
    // Log order: the hung task's header came first.
    assert_eq!(events[0].kind, EventKind::HungTask);
}

#[test]
fn x86_hung_task_skips_unreliable_frames() {
    let log = "\
[  246.752196] INFO: task syz-executor0:10244 blocked for more than 120 seconds.
[  246.759551]       Not tainted 4.16.0+ #10
[  246.764124] syz-executor0   D24856 10244   4479 0x00000004
[  246.773012] Call Trace:
[  246.775564]  <TASK>
[  246.778222]  __schedule+0x8eb/0x2060
[  246.781800]  ? __sched_text_start+0x8/0x8
[  246.786123]  schedule+0xf5/0x430
[  246.789500]  ? mark_held_locks+0xaf/0x100
[  246.793444]  do_exit+0x1a4f/0x2790
[  246.797132]  do_group_exit+0x149/0x400
[  246.801000]  get_signal+0x73a/0x16d0
[  246.805000]  </TASK>
[  246.809000] Showing all locks held in the system:
";
    let events = parse(log.as_bytes());
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!(ev.title, "INFO: task hung in do_exit");
    assert_eq!(
        ev.frames,
        [
            "__schedule",
            "schedule",
            "do_exit",
            "do_group_exit",
            "get_signal"
        ]
    );
    assert_eq!(
        ev.task,
        Some(Task {
            comm: "syz-executor0".into(),
            pid: Some(10244)
        })
    );
}

#[test]
fn informational_events() {
    let log = "\
[  100.000000] stress-ng invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=1000
[  100.000100] CPU: 2 PID: 991 Comm: stress-ng Not tainted 6.1.0-44-arm64 #1
[  100.000200] Call trace:
[  100.000300]  dump_backtrace+0xe4/0x140
[  100.000400]  dump_stack_lvl+0x64/0x80
[  100.000500]  dump_header+0x50/0x200
[  100.000600]  oom_kill_process+0x2a4/0x2b0
[  100.000700]  out_of_memory+0xf4/0x340
[  100.000800]  __alloc_pages_slowpath.constprop.0+0x9a0/0xc00
[  100.000900]  __alloc_pages+0x2b4/0x340
[  100.001000]  __folio_alloc+0x20/0x70
[  100.001100]  vma_alloc_folio+0x2a0/0x380
[  100.001200]  do_anonymous_page+0x8c/0x460
[  100.001300]  handle_mm_fault+0x2a4/0x5c0
[  100.001400] Mem-Info:
[  100.002000] Out of memory: Killed process 991 (stress-ng) total-vm:1290884kB, anon-rss:1048576kB
[  101.000000] erofs: (device mmcblk0p7): z_erofs_decompress_pcluster: failed to decompress -117 in[4096, 0] out[16384]
[  101.100000] erofs: (device mmcblk0p7): mounted with root inode @ nid 36.
[  102.000000] kworker/u8:3: page allocation failure: order:4, mode:0x40cc0(GFP_KERNEL|__GFP_COMP), nodemask=(null)
[  102.000100] CPU: 0 PID: 77 Comm: kworker/u8:3 Not tainted 6.1.0 #1
[  102.000200] Call trace:
[  102.000300]  warn_alloc+0x118/0x190
[  102.000400]  __alloc_pages_slowpath.constprop.0+0xb48/0xc00
[  102.000500]  __alloc_pages+0x2b4/0x340
[  102.000600]  __kmalloc_large_node+0xa0/0x170
[  102.000700]  mmc_blk_alloc_req+0x44/0x300 [mmc_block]
[  102.000800]  mmc_blk_probe+0x1c4/0x6e0 [mmc_block]
[  102.000900] Mem-Info:
[  103.000000] sysrq: Show Blocked State
[  103.000100] task:jbd2/mmcblk0p2- state:D stack:0     pid:211   ppid:2      flags:0x00000008
[  103.000200] Call trace:
[  103.000300]  __switch_to+0xf0/0x170
[  103.000400]  __schedule+0x33c/0xa40
[  103.000500]  schedule+0x5c/0x100
[  103.000600]  io_schedule+0x44/0x70
[  103.000700]  bit_wait_io+0x1c/0x70
[  103.000800]  __wait_on_bit+0x54/0x1b0
[  103.000900]  out_of_line_wait_on_bit+0x88/0xc0
[  103.001000]  __wait_on_buffer+0x3c/0x50
[  103.001100]  jbd2_journal_commit_transaction+0x1174/0x1a30 [jbd2]
[  103.001200]  kjournald2+0xd4/0x280 [jbd2]
[  103.001300] task:kworker/1:1     state:D stack:0     pid:40    ppid:2      flags:0x00000008
[  103.001400] Call trace:
[  103.001500]  __switch_to+0xf0/0x170
[  103.001600]  __schedule+0x33c/0xa40
[  103.001700] usb 1-1: USB disconnect, device number 2
";
    let events = parse(log.as_bytes());
    let summary: Vec<(EventKind, &str)> =
        events.iter().map(|e| (e.kind, e.title.as_str())).collect();
    assert_eq!(
        summary,
        [
            (
                EventKind::OomInvoked,
                "oom-killer invoked in do_anonymous_page"
            ),
            (
                EventKind::OomKill,
                "Out of memory: Killed process stress-ng"
            ),
            (
                EventKind::ErofsError,
                "erofs: error in z_erofs_decompress_pcluster"
            ),
            (
                EventKind::PageAllocFailure,
                "page allocation failure in mmc_blk_alloc_req"
            ),
            (
                EventKind::BlockedStateDump,
                "sysrq: blocked task in jbd2_journal_commit_transaction"
            ),
        ]
    );
    assert_eq!(
        events[0].task,
        Some(Task {
            comm: "stress-ng".into(),
            pid: Some(991)
        })
    );
    assert_eq!(
        events[1].task,
        Some(Task {
            comm: "stress-ng".into(),
            pid: Some(991)
        })
    );
    assert_eq!(
        events[3].task,
        Some(Task {
            comm: "kworker/u8:3".into(),
            pid: Some(77)
        })
    );
    let dump = &events[4];
    assert_eq!(
        dump.task,
        Some(Task {
            comm: "jbd2/mmcblk0p2-".into(),
            pid: Some(211)
        })
    );
    assert!(
        dump.excerpt.contains("task:kworker/1:1"),
        "the whole dump is one event"
    );
    assert!(!dump.excerpt.contains("USB disconnect"));
    assert!(events.iter().all(|e| !e.is_crash()));
    assert!(!contains_crash(log.as_bytes()));
}

#[test]
fn oops_and_panic_form_one_event() {
    let log = "\
[   12.000000] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008
[   12.000100] Mem abort info:
[   12.000200]   ESR = 0x0000000096000005
[   12.000300] Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP
[   12.000400] Modules linked in: mmc_block
[   12.000500] CPU: 3 PID: 1234 Comm: fio Not tainted 6.1.0-44-arm64 #1
[   12.000600] pc : mmc_blk_mq_issue_rq+0x1c/0x4a0 [mmc_block]
[   12.000700] lr : mmc_mq_queue_rq+0x118/0x290 [mmc_block]
[   12.000800] sp : ffff80000a2f3a40
[   12.000900] x29: ffff80000a2f3a40 x28: 0000000000000000 x27: ffff000003f2c000
[   12.001000] Call trace:
[   12.001100]  mmc_blk_mq_issue_rq+0x1c/0x4a0 [mmc_block]
[   12.001200]  mmc_mq_queue_rq+0x118/0x290 [mmc_block]
[   12.001300]  blk_mq_dispatch_rq_list+0x1d0/0x8b0
[   12.001400] Code: a9bd7bfd 910003fd a90153f3 f9400000 (f9400400)
[   12.001500] ---[ end trace 0000000000000000 ]---
[   12.001600] Kernel panic - not syncing: Oops: Fatal exception
[   12.001700] SMP: stopping secondary CPUs
[   12.001800] Kernel Offset: disabled
[   12.001900] ---[ end Kernel panic - not syncing: Oops: Fatal exception ]---
[   13.000000] random: crng init done
";
    let events = parse(log.as_bytes());
    assert_eq!(events.len(), 1, "{events:#?}");
    let ev = &events[0];
    assert_eq!(ev.kind, EventKind::Oops);
    assert_eq!(
        ev.title,
        "BUG: unable to handle kernel NULL pointer dereference in mmc_blk_mq_issue_rq"
    );
    assert_eq!(
        ev.task,
        Some(Task {
            comm: "fio".into(),
            pid: Some(1234)
        })
    );
    assert_eq!(
        ev.frames,
        [
            "mmc_blk_mq_issue_rq",
            "mmc_mq_queue_rq",
            "blk_mq_dispatch_rq_list"
        ]
    );
    assert!(ev
        .excerpt
        .ends_with("---[ end Kernel panic - not syncing: Oops: Fatal exception ]---"));
}

#[test]
fn quiet_logs_have_no_events() {
    let log = b"[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]\n\
[    1.000000] INFO: lockdep is turned off.\n[    2.000000] WARNING: /etc/ssh/moduli does not exist, using fixed modulus\n";
    assert!(parse(log).is_empty());
    assert!(!contains_crash(log));
    assert!(parse(b"").is_empty());
}

#[test]
fn huge_reports_stay_bounded() {
    let mut log =
        String::from("[    1.000000] BUG: soft lockup - CPU#0 stuck for 22s! [spin:99]\n");
    for i in 0..50_000 {
        log.push_str(&format!(
            "[    1.{i:06}] filler line number {i} that never ends the report\n"
        ));
    }
    let events = parse(log.as_bytes());
    assert!(!events.is_empty());
    assert!(
        events[0].excerpt.len() <= 300 * 1024,
        "excerpt of {} bytes",
        events[0].excerpt.len()
    );
    assert_eq!(events[0].kind, EventKind::SoftLockup);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A deterministic xorshift stream mixed with report fragments.
    let fragments: &[&[u8]] = &[
        b"[  1.0] ",
        b"[ T1] ",
        b"<4>",
        b"BUG: ",
        b"WARNING: ",
        b"INFO: task ",
        b"Call Trace:",
        b" f+0x1/0x2",
        b"\n",
        b"\r\n",
        b"---[ end trace",
        b"Kernel panic - not syncing",
        b"=====",
        b"\xff\xfe",
        b" ? ",
        b"3,4,5,-;",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..200 {
        let mut log = Vec::new();
        for _ in 0..400 {
            let r = next();
            if r % 3 == 0 {
                log.push((r >> 8) as u8);
            } else {
                log.extend_from_slice(fragments[(r >> 16) as usize % fragments.len()]);
            }
        }
        let events = parse(&log);
        assert_eq!(events.iter().any(Event::is_crash), contains_crash(&log));
        let mut parser = StreamParser::new();
        for chunk in log.chunks(7) {
            parser.push_line(chunk);
        }
        parser.flush();
    }
}

#[test]
fn events_serialize_with_snake_case_kinds() {
    let events = parse(&join(&console(HUNG_TASK, 1.0)));
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["kind"], "hung_task");
    assert_eq!(json["task"]["comm"], "kworker/0:2H");
    assert_eq!(json["task"]["pid"], 127);
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, events[0]);
    assert_eq!(
        serde_json::to_string(&EventKind::OomKill).unwrap(),
        "\"oom_kill\""
    );
    assert_eq!(
        serde_json::to_string(&EventKind::PageAllocFailure).unwrap(),
        "\"page_alloc_failure\""
    );
}
