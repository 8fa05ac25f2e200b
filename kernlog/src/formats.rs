//! Data tables: which lines start a kernel report, how each report is titled,
//! where its guilty frame is, which frames are never guilty, and when it ends.
//!
//! The titles follow syzkaller's conventions (pkg/report/linux.go) so that titles
//! from hilt runs can be compared with syzbot's; the extra groups at the end of
//! `GROUPS` cover events syzkaller ignores but a stress harness records
//! (allocation failures, OOM, sysrq dumps, erofs errors, hard lockups).
//!
//! Regex placeholders, expanded by `compile.rs`:
//! - `%PC%`: a bracketed address such as `[<ffffffff81234567>]`;
//! - `%FUNC%`: a function name, captured, followed by `+` (offset) or `.` (compiler suffix);
//! - `%SRC%`: a captured `path/file.c:123`;
//! - `%RIP%`: the faulting-PC line of a register dump (x86 `RIP:`, arm64 `pc :`, arm `PC is at`);
//! - `%CALLTRACE%`: the line that opens a call trace.
//!
//! Title templates use `{1}`, `{2}`, ...: first the groups captured by the title
//! (or report) regex, then one guilty frame per stack trace walked.

use crate::EventKind;
use EventKind::*;

/// One step of a walk through a report towards its guilty frame.
pub(crate) enum Part {
    /// Skip lines up to the first one matching this regex; its capture groups are frames.
    Line(&'static str),
    /// Collect the frames of a stack trace, up to the next trace or the next `Line` part.
    Trace,
}

/// How the guilty frame is picked from the frames collected (after `skip`).
#[derive(Clone, Copy)]
pub(crate) enum Pick {
    /// The innermost remaining frame.
    First,
    /// Stalls loop somewhere below a dispatcher: take the frame called by the first
    /// `STALL_ANCHORS` frame (the syscall, work item or timer that looped).
    Stall,
    /// Hung tasks sleep in generic waits: see `HUNG_ANCHORS` and `HUNG_SKIP`.
    Hung,
}

pub(crate) struct Stack {
    pub parts: &'static [Part],
    /// Tried when `parts` finds no usable frame.
    pub fallback: &'static [Part],
    /// Extra frame regexes to skip for this format, on top of `GLOBAL_SKIP`.
    pub skip: &'static [&'static str],
    pub pick: Pick,
}

/// When a report is complete, as seen line by line (the streaming parser needs this;
/// a new report in the same context, a size cap and `flush()` also end a report).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum End {
    /// At `---[ end trace`, a line of `=====`, or `---[ end Kernel panic`; register
    /// dumps and panic lines right after the marker still belong to the report.
    Marker,
    /// When a stack trace ends and the guilty frame can be named from what was seen.
    Stack,
    /// When the first stack trace after a line containing one of these ends.
    StackAfter(&'static [&'static str]),
    /// After this many lines.
    Lines(usize),
    /// After the first line matching this regex ends a stack trace, as long as the
    /// following lines keep matching it (a dump of several tasks).
    Dump(&'static str),
    /// At the first line that does not match this regex.
    While(&'static str),
}

pub(crate) struct Format {
    /// Single-line regex; the format whose title matches earliest in the report wins.
    pub title: &'static str,
    /// Multi-line regex that must also match; its captures replace the title's.
    pub report: Option<&'static str>,
    pub template: &'static str,
    /// Title used instead of `template` when the stack walk finds no frame.
    pub frameless_title: Option<&'static str>,
    pub kind: EventKind,
    pub stack: Option<Stack>,
    /// The report legitimately has no stack trace (don't call it corrupted for that).
    pub no_stack_trace: bool,
    /// Reaching this format means the real header was lost.
    pub corrupted: bool,
    pub end: End,
}

const F: Format = Format {
    title: "",
    report: None,
    template: "",
    frameless_title: None,
    kind: Other,
    stack: None,
    no_stack_trace: false,
    corrupted: false,
    end: End::Marker,
};

/// A family of reports sharing a literal header.
pub(crate) struct Group {
    /// A line containing one of these (and passing `require`/`suppress`) starts a report.
    pub headers: &'static [&'static str],
    pub require: Option<&'static str>,
    /// Lines matching one of these regexes look like the header but are harmless.
    pub suppress: &'static [&'static str],
    /// Kind used when no format's title matches.
    pub kind: EventKind,
    pub formats: &'static [Format],
}

// ---------------------------------------------------------------------------------
// Stack walks shared by many formats.

const CALL_STACK: &[Part] = &[Part::Line("%CALLTRACE%"), Part::Trace];
const RIP_THEN_STACK: &[Part] = &[Part::Line("%RIP%"), Part::Line("%CALLTRACE%"), Part::Trace];
const RIP_ONLY: &[Part] = &[Part::Line("%RIP%")];
/// WARNINGs trap: newer kernels print the trapping PC first, older ones just a stack.
const WARN_PARTS: &[Part] = &[
    Part::Line(r"(?:%RIP%|--- interrupt: [0-9]+ at %FUNC%)"),
    Part::Trace,
];
/// KMSAN prints the access stack without a header line, then the origin stack.
const KMSAN_PARTS: &[Part] = &[
    Part::Trace,
    Part::Line(r"(Local variable .* created at:|Uninit was created at:)"),
    Part::Trace,
];
const LOCKDEP_END: End = End::StackAfter(&["stack backtrace:"]);
const CALL_TRACE_END: End = End::StackAfter(&["Call Trace", "Call trace"]);

const fn stack(parts: &'static [Part], skip: &'static [&'static str]) -> Stack {
    Stack {
        parts,
        fallback: &[],
        skip,
        pick: Pick::First,
    }
}

const fn warn_stack(skip: &'static [&'static str]) -> Stack {
    Stack {
        parts: WARN_PARTS,
        fallback: CALL_STACK,
        skip,
        pick: Pick::First,
    }
}

const PLAIN_CALL_STACK: Stack = stack(CALL_STACK, &[]);
const PLAIN_RIP_STACK: Stack = stack(RIP_THEN_STACK, &[]);
const PLAIN_WARN_STACK: Stack = warn_stack(&[]);
const USB_URB_SKIP: &[&str] = &[
    "usb_submit_urb",
    "usb_start_wait_urb",
    "usb_bulk_msg",
    "usb_interrupt_msg",
    "usb_control_msg",
];

// ---------------------------------------------------------------------------------
// Report groups, in the order a line is tested against them.

// A static, not a const: the compiled tables point back at their source (compile.rs),
// and only a static has one address wherever it is used.
pub(crate) static GROUPS: &[Group] = &[
    Group {
        headers: &["BUG:"],
        require: None,
        suppress: &[
            "ODEBUG:",
            "Boot_DEBUG:",
            "xlog_status:",
            // Android ART debug output.
            "DEBUG:",
            "BUG: no syscalls can create resource",
        ],
        kind: Bug,
        formats: BUG_FORMATS,
    },
    Group {
        headers: &["WARNING:"],
        require: None,
        suppress: &[
            "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
            "WARNING: workqueue cpumask: online intersect > possible intersect",
            "WARNING: [Tt]he mand mount option",
            r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
            "WARNING: Unprivileged eBPF is enabled with eIBRS",
            r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
            "WARNING: See https.* for mitigation options.",
            "WARNING: kernel not compiled with CPU_SRSO",
            r"EXT4-[Ff][Ss](?: \(.*\))?:",
            "(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)",
            r"XFS \(\w+\): WARNING",
        ],
        kind: Warning,
        formats: WARNING_FORMATS,
    },
    Group {
        headers: &["INFO:"],
        require: None,
        suppress: &[
            "INFO: lockdep is turned off",
            "INFO: Stall ended before state dump start",
            // 7.x: the stall ended while its CPUs were being dumped.
            "INFO: Stall ended during stack backtracing",
            "INFO: Expedited stall ended before state dump start",
            // Newer hung-task reports name the lock's owner after the task's stack
            // (CONFIG_DETECT_HUNG_TASK_BLOCKER): part of that report, not a new one.
            r"INFO: task .*:\d+ (?:<\w+> )?(?:is )?blocked on an? (?:mutex|semaphore|rw-semaphore)",
            "INFO: NMI handler",
            "INFO: recovery required on readonly filesystem",
            "(handler|interrupt).*took too long",
            "INFO: sys_.* is not present in /proc/kallsyms",
            "INFO: no syscalls can create resource",
            "rmt_storage:INFO:",
            // "INVALID BTF_INFO:..." and friends.
            "_INFO:",
        ],
        kind: Other,
        formats: INFO_FORMATS,
    },
    Group {
        headers: &["Unable to handle kernel"],
        require: None,
        suppress: &[],
        kind: Oops,
        formats: &[Format {
            title: "Unable to handle kernel (paging request|NULL pointer dereference|access to user memory|execute from non-executable memory|write to read-only memory|execution of user memory|read from unreadable memory)",
            template: "BUG: unable to handle kernel {1} in {2}",
            kind: Oops,
            stack: Some(PLAIN_RIP_STACK),
            ..F
        }],
    },
    Group {
        headers: &["general protection fault"],
        require: None,
        // A user-space fault reported by traps.c, not a kernel bug.
        suppress: &[r"general protection fault .* error:\d+ in "],
        kind: Oops,
        formats: &[Format {
            title: "general protection fault.*:",
            template: "general protection fault in {1}",
            kind: Oops,
            stack: Some(PLAIN_RIP_STACK),
            ..F
        }],
    },
    Group {
        headers: &["stack segment: "],
        require: None,
        suppress: &[],
        kind: Oops,
        formats: &[Format {
            title: "stack segment: ",
            template: "stack segment fault in {1}",
            kind: Oops,
            stack: Some(PLAIN_RIP_STACK),
            ..F
        }],
    },
    Group {
        headers: &["Kernel panic"],
        require: None,
        suppress: &[],
        kind: Panic,
        formats: PANIC_FORMATS,
    },
    Group {
        headers: &["PANIC: double fault"],
        require: None,
        suppress: &[],
        kind: Oops,
        formats: &[Format {
            title: "PANIC: double fault",
            template: "PANIC: double fault in {1}",
            kind: Oops,
            stack: Some(stack(RIP_ONLY, &[])),
            ..F
        }],
    },
    Group {
        headers: &["rust_kernel: panicked"],
        require: None,
        suppress: &[],
        kind: Panic,
        formats: &[Format {
            title: "rust_kernel: panicked",
            report: Some(r"rust_kernel: panicked at [^\n]*?\n(.+?)\n"),
            template: "{1} in {2}",
            kind: Panic,
            stack: Some(stack(CALL_STACK, &[r"__rustc::rust_begin_unwind"])),
            ..F
        }],
    },
    Group {
        headers: &["kernel BUG"],
        require: None,
        suppress: &[],
        kind: Bug,
        formats: &[
            Format {
                title: "kernel BUG at mm/usercopy.c",
                template: "BUG: bad usercopy in {1}",
                kind: Bug,
                stack: Some(stack(CALL_STACK, &["usercopy", "__check"])),
                ..F
            },
            Format {
                title: "kernel BUG at lib/list_debug.c",
                template: "BUG: corrupted list in {1}",
                kind: Bug,
                stack: Some(PLAIN_CALL_STACK),
                ..F
            },
            Format {
                title: "kernel BUG at (.*)",
                template: "kernel BUG in {2}",
                kind: Bug,
                // skb helpers BUG_ON on bad input; the caller is to blame.
                stack: Some(stack(RIP_THEN_STACK, &["^skb_"])),
                ..F
            },
        ],
    },
    Group {
        headers: &["Kernel BUG"],
        require: None,
        suppress: &[],
        kind: Bug,
        formats: &[Format { title: "Kernel BUG (.*)", template: "kernel BUG {1}", kind: Bug, ..F }],
    },
    Group {
        headers: &["BUG kmalloc-"],
        require: None,
        suppress: &[],
        kind: Bug,
        formats: &[Format {
            title: "BUG kmalloc-.*: Object already free",
            template: "BUG: Object already free",
            kind: Bug,
            end: End::Stack,
            ..F
        }],
    },
    Group {
        // The second spelling is a typo some kernels shipped with.
        headers: &["divide error:", "divide_error:"],
        require: None,
        suppress: &[],
        kind: Oops,
        formats: &[Format {
            title: "divide(?: |_)error: ",
            template: "divide error in {1}",
            kind: Oops,
            stack: Some(stack(RIP_ONLY, &[])),
            ..F
        }],
    },
    Group {
        headers: &["invalid opcode:"],
        require: None,
        suppress: &[],
        kind: Oops,
        formats: &[Format {
            title: "invalid opcode: ",
            template: "invalid opcode in {1}",
            kind: Oops,
            stack: Some(stack(RIP_ONLY, &[])),
            ..F
        }],
    },
    Group {
        // A breakpoint trap in kernel code (x86 `Oops: int3: 0000 [#1] ...`).
        headers: &["int3: "],
        require: Some(r"int3: [0-9a-f]{4} \[#"),
        suppress: &[],
        kind: Oops,
        formats: &[Format {
            title: "int3: ",
            template: "int3 in {1}",
            kind: Oops,
            stack: Some(PLAIN_RIP_STACK),
            ..F
        }],
    },
    Group {
        headers: &["UBSAN:"],
        require: None,
        suppress: &[],
        kind: Ubsan,
        formats: &[
            Format {
                title: "UBSAN:",
                report: Some("UBSAN: Undefined behaviour in"),
                template: "UBSAN: undefined-behaviour in {1}",
                kind: Ubsan,
                stack: Some(UBSAN_STACK),
                ..F
            },
            Format {
                title: "UBSAN: array-index-out-of-bounds in",
                template: "UBSAN: array-index-out-of-bounds in {1}",
                kind: Ubsan,
                stack: Some(UBSAN_STACK),
                ..F
            },
            Format {
                title: "UBSAN:",
                report: Some("UBSAN: (.*?) in"),
                template: "UBSAN: {1} in {2}",
                kind: Ubsan,
                stack: Some(UBSAN_STACK),
                ..F
            },
        ],
    },
    Group {
        headers: &["Booting the kernel."],
        require: None,
        // Boot messages echoed back by the fuzzer (e.g. as a bogus mount option).
        suppress: &["Parsing ELF|Decompressing Linux|Unknown parameter '"],
        kind: Reboot,
        formats: &[Format {
            title: "^Booting the kernel",
            template: "unexpected kernel reboot",
            kind: Reboot,
            no_stack_trace: true,
            end: End::Lines(1),
            ..F
        }],
    },
    Group {
        headers: &["unregister_netdevice: waiting for"],
        require: None,
        suppress: &[],
        kind: Other,
        formats: &[Format {
            title: "unregister_netdevice: waiting for (?:.*) to become free",
            template: "unregister_netdevice: waiting for DEV to become free",
            kind: Other,
            no_stack_trace: true,
            end: End::Lines(1),
            ..F
        }],
    },
    Group {
        headers: &["VFS: Close: file count is 0"],
        require: None,
        suppress: &[],
        kind: Other,
        formats: &[Format {
            title: "VFS: Close: file count is 0",
            template: "VFS: Close: file count is zero (use-after-free)",
            kind: Other,
            no_stack_trace: true,
            end: End::Lines(1),
            ..F
        }],
    },
    Group {
        headers: &["VFS: Busy inodes after unmount"],
        require: None,
        suppress: &[],
        kind: Other,
        formats: &[Format {
            title: "VFS: Busy inodes after unmount",
            template: "VFS: Busy inodes after unmount (use-after-free)",
            kind: Other,
            no_stack_trace: true,
            end: End::Lines(1),
            ..F
        }],
    },
    Group {
        // arm64 oops ("Internal error: Oops: 96000005 [#1] SMP").
        headers: &["Internal error:"],
        require: None,
        suppress: &[],
        kind: Oops,
        formats: &[Format {
            title: "Internal error:",
            template: "Internal error in {1}",
            kind: Oops,
            stack: Some(PLAIN_RIP_STACK),
            ..F
        }],
    },
    Group {
        headers: &["Unhandled fault:"],
        require: None,
        suppress: &[],
        kind: Oops,
        formats: &[Format {
            title: "Unhandled fault:",
            template: "Unhandled fault in {1}",
            kind: Oops,
            stack: Some(PLAIN_RIP_STACK),
            ..F
        }],
    },
    Group {
        headers: &["Alignment trap:"],
        require: None,
        suppress: &[],
        kind: Oops,
        formats: &[Format {
            title: "Alignment trap:",
            template: "Alignment trap in {1}",
            kind: Oops,
            stack: Some(PLAIN_RIP_STACK),
            ..F
        }],
    },
    Group {
        headers: &["trusty: panic"],
        require: None,
        suppress: &[],
        kind: Other,
        formats: &[
            Format {
                title: "trusty: panic.* ASSERT FAILED",
                report: Some(r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)"),
                template: "trusty: ASSERT FAILED: {1}",
                kind: Other,
                no_stack_trace: true,
                end: End::Lines(1),
                ..F
            },
            Format {
                title: "trusty: panic.* ASSERT FAILED.*: *(.*)",
                template: "trusty: ASSERT FAILED: {1}",
                kind: Other,
                corrupted: true,
                end: End::Lines(1),
                ..F
            },
            Format {
                title: "trusty: panic",
                report: Some(r"trusty: panic \(.*?\): (.+)"),
                template: "trusty: panic: {1}",
                kind: Other,
                no_stack_trace: true,
                end: End::Lines(1),
                ..F
            },
        ],
    },
    Group {
        // Go runtime crashes (gVisor, syzkaller's own tools).
        headers: &["fatal error:"],
        require: None,
        suppress: &["ALSA", "fatal error: cannot create timer"],
        kind: Other,
        formats: &[Format {
            title: "fatal error:",
            template: "go runtime error",
            kind: Other,
            no_stack_trace: true,
            end: End::Lines(1),
            ..F
        }],
    },
    Group {
        headers: &["SYZFAIL:"],
        require: None,
        suppress: &[],
        kind: Other,
        formats: &[Format {
            title: "SYZFAIL:(.*)",
            template: "SYZFAIL:{1}",
            kind: Other,
            no_stack_trace: true,
            end: End::Lines(1),
            ..F
        }],
    },
    Group {
        headers: &["SYZFATAL:"],
        require: None,
        suppress: &[],
        kind: Other,
        formats: &[Format {
            title: "SYZFATAL:(.*)",
            template: "SYZFATAL:{1}",
            kind: Other,
            no_stack_trace: true,
            end: End::Lines(1),
            ..F
        }],
    },
    Group {
        headers: &["panic:"],
        require: None,
        // skb_panic, skb_over_panic and Android boot chatter.
        suppress: &["_panic:", "xlog_status:", r"ddb\.onpanic:", "evtlog_status:"],
        kind: Other,
        formats: &[
            Format {
                title: "panic: Sentry detected .* stuck task",
                template: "panic: Sentry detected stuck tasks",
                kind: Other,
                no_stack_trace: true,
                end: End::Lines(1),
                ..F
            },
            Format {
                title: "panic:(.*)",
                template: "panic:{1}",
                kind: Other,
                no_stack_trace: true,
                end: End::Lines(1),
                ..F
            },
        ],
    },
    // ----- Not in syzkaller: what a stress harness on real boards also records. -----
    Group {
        headers: &["Watchdog detected hard LOCKUP"],
        require: None,
        suppress: &[],
        kind: HardLockup,
        formats: &[Format {
            title: "Watchdog detected hard LOCKUP on cpu",
            template: "BUG: hard lockup in {1}",
            kind: HardLockup,
            stack: Some(Stack { parts: RIP_THEN_STACK, fallback: CALL_STACK, skip: &[], pick: Pick::Stall }),
            end: End::Stack,
            ..F
        }],
    },
    Group {
        headers: &["page allocation failure:"],
        require: None,
        suppress: &[],
        kind: PageAllocFailure,
        formats: &[Format {
            title: "page allocation failure: order:",
            template: "page allocation failure in {1}",
            frameless_title: Some("page allocation failure"),
            kind: PageAllocFailure,
            stack: Some(stack(CALL_STACK, ALLOC_FAILURE_SKIP)),
            end: End::Stack,
            ..F
        }],
    },
    Group {
        headers: &["vmalloc error:", "vmalloc: allocation failure"],
        require: None,
        suppress: &[],
        kind: VmallocFailure,
        formats: &[Format {
            title: "vmalloc(?: error:|: allocation failure)",
            template: "vmalloc failure in {1}",
            frameless_title: Some("vmalloc failure"),
            kind: VmallocFailure,
            stack: Some(stack(CALL_STACK, VMALLOC_FAILURE_SKIP)),
            end: End::Stack,
            ..F
        }],
    },
    Group {
        headers: &["invoked oom-killer:"],
        require: None,
        suppress: &[],
        kind: OomInvoked,
        formats: &[Format {
            title: "invoked oom-killer:",
            template: "oom-killer invoked in {1}",
            frameless_title: Some("oom-killer invoked"),
            kind: OomInvoked,
            stack: Some(stack(CALL_STACK, OOM_SKIP)),
            end: End::Stack,
            ..F
        }],
    },
    Group {
        headers: &["Out of memory: Kill", "out of memory: Kill"],
        require: None,
        suppress: &[],
        kind: OomKill,
        formats: &[
            Format {
                title: r"Memory cgroup out of memory: Kill(?:ed)? process \d+ \(([^)]*)\)",
                template: "Memory cgroup out of memory: Killed process {1}",
                kind: OomKill,
                no_stack_trace: true,
                end: End::Lines(1),
                ..F
            },
            Format {
                title: r"Out of memory: Kill(?:ed)? process \d+ \(([^)]*)\)",
                template: "Out of memory: Killed process {1}",
                kind: OomKill,
                no_stack_trace: true,
                end: End::Lines(1),
                ..F
            },
        ],
    },
    Group {
        headers: &["Show Blocked State"],
        require: None,
        suppress: &[],
        kind: BlockedStateDump,
        formats: &[Format {
            title: "(?i)sysrq ?: Show Blocked State",
            template: "sysrq: blocked task in {1}",
            frameless_title: Some("sysrq: Show Blocked State"),
            kind: BlockedStateDump,
            stack: Some(Stack { parts: CALL_STACK, fallback: &[], skip: &[], pick: Pick::Hung }),
            end: End::Dump(TASK_STATE_LINE),
            ..F
        }],
    },
    Group {
        // erofs_err() names the failing function; erofs_info() lines do not.
        headers: &["erofs: (device ", "erofs (device "],
        require: Some(r"erofs:? \(device [^)]*\): [A-Za-z0-9_]+: "),
        suppress: &[],
        kind: ErofsError,
        formats: &[Format {
            title: r"erofs:? \(device ([^)]*)\): ([A-Za-z0-9_]+): ",
            template: "erofs: error in {2}",
            kind: ErofsError,
            no_stack_trace: true,
            end: End::Lines(1),
            ..F
        }],
    },
];

/// A task line of a sysrq-w / hung-task dump (`task:kworker/0:2H state:D ...` on
/// newer kernels, `kworker/0:2H   D    0   127      2 0x00000008` on older ones).
const TASK_STATE_LINE: &str =
    r"^task:\S+\s+state:|^\S+\s+[DRSTtXZPI]\s*[0-9a-f]*\s+\d+\s+\d+\s+(?:\d+\s+)?0x";

const UBSAN_STACK: Stack = stack(CALL_STACK, &["ubsan", "overflow"]);

const ALLOC_FAILURE_SKIP: &[&str] = &[
    "alloc_pages",
    "alloc_folio",
    "get_free_pages",
    "kmalloc_large",
    "kmalloc_order",
    "page_frag",
    "alloc_skb",
];
const VMALLOC_FAILURE_SKIP: &[&str] = &["vmalloc", "vmap", "vm_area", "vm_map_ram", "vm_struct"];
const OOM_SKIP: &[&str] = &[
    "oom",
    "out_of_memory",
    "dump_header",
    "alloc_pages",
    "alloc_folio",
    "page_cache_alloc",
    "get_free_pages",
    "mem_cgroup",
    "memcg",
    "try_charge",
    "charge_memcg",
];

const BUG_FORMATS: &[Format] = &[
    Format {
        title: "BUG: KASAN:",
        report: Some(r"BUG: KASAN: ([a-z\-]+) in %FUNC%(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)"),
        template: "KASAN: {1} {3} in {4}",
        kind: Kasan,
        stack: Some(stack(
            &[Part::Line(r"BUG: KASAN: (?:[a-z\-]+) in %FUNC%"), Part::Line("%CALLTRACE%"), Part::Trace],
            // Hardware tag-based KASAN reports go through the arm64 fault path.
            &["kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"],
        )),
        ..F
    },
    Format {
        title: "BUG: KASAN:",
        report: Some(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in %FUNC%"),
        template: "KASAN: invalid-free in {2}",
        kind: Kasan,
        stack: Some(stack(
            &[
                Part::Line(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in %FUNC%"),
                Part::Line("%CALLTRACE%"),
                Part::Trace,
            ],
            &["slab_", "kfree", "vunmap", "vfree"],
        )),
        ..F
    },
    Format {
        title: r"BUG: KASAN: ([a-z\-]+) on address",
        report: Some(r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)"),
        template: "KASAN: {1} {2}",
        kind: Kasan,
        ..F
    },
    Format { title: "BUG: KASAN: (.*)", template: "KASAN: {1}", kind: Kasan, corrupted: true, ..F },
    Format {
        title: "BUG: KMSAN: kernel-usb-infoleak",
        report: Some("BUG: KMSAN: kernel-usb-infoleak in %FUNC%"),
        template: "KMSAN: kernel-usb-infoleak in {2}",
        kind: Kmsan,
        stack: Some(stack(KMSAN_PARTS, &["alloc_skb", "usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg"])),
        no_stack_trace: true,
        ..F
    },
    Format {
        title: "BUG: KMSAN:",
        report: Some(r"BUG: KMSAN: ([a-z\-]+) in %FUNC%"),
        template: "KMSAN: {1} in {3}",
        kind: Kmsan,
        stack: Some(stack(
            KMSAN_PARTS,
            // Generic crypto code is where uninit data is noticed, rarely where it came from.
            &["alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$", "^(?:crypto|cipher|drbg|rng)_"],
        )),
        no_stack_trace: true,
        ..F
    },
    Format {
        title: "BUG: KCSAN: data-race",
        report: Some("BUG: KCSAN: (.*)"),
        template: "KCSAN: {1}",
        kind: Kcsan,
        no_stack_trace: true,
        ..F
    },
    Format {
        title: "BUG: KCSAN:",
        report: Some("BUG: KCSAN: (.*)"),
        template: "KCSAN: {1}",
        kind: Kcsan,
        no_stack_trace: true,
        ..F
    },
    Format {
        title: "BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in %FUNC%",
        template: "KFENCE: {1} {2} in {4}",
        kind: Kfence,
        stack: Some(KFENCE_STACK),
        ..F
    },
    Format {
        title: "BUG: KFENCE: invalid free in %FUNC%",
        template: "KFENCE: invalid free in {2}",
        kind: Kfence,
        stack: Some(KFENCE_STACK),
        no_stack_trace: true,
        ..F
    },
    Format {
        title: "BUG: KFENCE: invalid (read|write) in %FUNC%",
        template: "KFENCE: invalid {1} in {3}",
        kind: Kfence,
        stack: Some(KFENCE_STACK),
        ..F
    },
    Format {
        title: "BUG: KFENCE: memory corruption in %FUNC%",
        template: "KFENCE: memory corruption in {2}",
        kind: Kfence,
        stack: Some(KFENCE_STACK),
        no_stack_trace: true,
        ..F
    },
    Format {
        title: "BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access)",
        template: "BUG: unable to handle kernel paging request in {1}",
        kind: Oops,
        stack: Some(PLAIN_RIP_STACK),
        ..F
    },
    Format {
        title: "BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|Kernel NULL pointer dereference)",
        template: "BUG: unable to handle kernel NULL pointer dereference in {1}",
        kind: Oops,
        stack: Some(PLAIN_RIP_STACK),
        ..F
    },
    Format {
        // The header is printed by two printk calls; the second half got lost.
        title: "BUG: (?:unable to handle kernel|Unable to handle kernel)",
        template: "BUG: unable to handle kernel",
        kind: Oops,
        corrupted: true,
        ..F
    },
    Format {
        title: "BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
        template: "BUG: {1} {2} in {3}",
        kind: Bug,
        stack: Some(stack(CALL_STACK, &["spin_", "_lock", "_unlock"])),
        end: End::Stack,
        ..F
    },
    Format {
        title: "BUG: soft lockup",
        template: "BUG: soft lockup in {1}",
        kind: SoftLockup,
        stack: Some(Stack { parts: RIP_THEN_STACK, fallback: &[], skip: &[], pick: Pick::Stall }),
        end: End::Stack,
        ..F
    },
    Format {
        title: "BUG: .*still has locks held!",
        report: Some(r"BUG: .*still has locks held!(?:.*\n)+?.*%PC% +%FUNC%"),
        template: "BUG: still has locks held in {1}",
        kind: Lockdep,
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "BUG: scheduling while atomic",
        template: "BUG: scheduling while atomic in {1}",
        kind: Bug,
        stack: Some(stack(CALL_STACK, &["schedule"])),
        end: End::Stack,
        ..F
    },
    Format {
        title: "BUG: lock held when returning to user space",
        report: Some(r"BUG: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:%PC% +)?%FUNC%"),
        template: "BUG: lock held when returning to user space in {1}",
        kind: Lockdep,
        no_stack_trace: true,
        end: End::Lines(12),
        ..F
    },
    Format {
        title: "BUG: bad unlock balance detected!",
        template: "BUG: bad unlock balance in {1}",
        kind: Lockdep,
        stack: Some(stack(&[Part::Line("%PC% +%FUNC%"), Part::Line("%CALLTRACE%"), Part::Trace], &[])),
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "BUG: held lock freed!",
        report: Some(r"BUG: held lock freed!(?:.*\n)+?.*%PC% +%FUNC%"),
        template: "BUG: held lock freed in {1}",
        kind: Lockdep,
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "BUG: Bad rss-counter state",
        template: "BUG: Bad rss-counter state",
        kind: Bug,
        no_stack_trace: true,
        end: End::Lines(1),
        ..F
    },
    Format {
        title: "BUG: non-zero nr_ptes on freeing mm",
        template: "BUG: non-zero nr_ptes on freeing mm",
        kind: Bug,
        no_stack_trace: true,
        end: End::Lines(1),
        ..F
    },
    Format {
        title: "BUG: non-zero nr_pmds on freeing mm",
        template: "BUG: non-zero nr_pmds on freeing mm",
        kind: Bug,
        no_stack_trace: true,
        end: End::Lines(1),
        ..F
    },
    Format {
        // The block device and filesystem type are left out: loop0/loop1 would split one bug.
        title: "BUG: Dentry .* still in use",
        report: Some(r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]"),
        template: "BUG: Dentry still in use in {1}",
        kind: Bug,
        ..F
    },
    Format {
        title: "BUG: Bad page (state|cache)",
        template: "BUG: Bad page {1} in {2}",
        kind: Bug,
        stack: Some(stack(
            &[Part::Line("page last allocated"), Part::Trace],
            &[
                "(free|put|get|update|release)_page",
                "free_unref",
                "^_*folio",
                "truncate_inode_pages",
                "page_frag_free",
                "alloc",
                "vmap",
                "page_owner",
            ],
        )),
        end: CALL_TRACE_END,
        ..F
    },
    Format { title: "BUG: Bad page map", template: "BUG: Bad page map", kind: Bug, end: End::Stack, ..F },
    Format {
        title: "BUG: workqueue lockup",
        template: "BUG: workqueue lockup",
        kind: WorkqueueLockup,
        no_stack_trace: true,
        // 6.9+ follows the pools with the stacks of workers hogging a stalled CPU.
        end: End::While(r"^(?:BUG: workqueue lockup|Showing busy workqueues|Showing backtraces of running workers|workqueue |pool |\s)"),
        ..F
    },
    Format {
        title: "BUG: sleeping function called from invalid context at (.*)",
        template: "BUG: sleeping function called from invalid context in {2}",
        kind: Bug,
        stack: Some(PLAIN_CALL_STACK),
        end: End::Stack,
        ..F
    },
    Format {
        title: r"BUG: using ([a-z_]+)\(\) in preemptible",
        template: "BUG: using {1}() in preemptible code in {2}",
        kind: Bug,
        stack: Some(stack(CALL_STACK, &["dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"])),
        end: End::Stack,
        ..F
    },
    Format {
        // 6.9+ wording, with the work function on the line after the header.
        title: "BUG: workqueue leaked atomic, lock or RCU",
        report: Some(r"BUG: workqueue leaked atomic, lock or RCU.*\n.*workfn=([a-zA-Z0-9_]+)"),
        template: "BUG: workqueue leaked atomic, lock or RCU in {1}",
        kind: Bug,
        no_stack_trace: true,
        end: End::Stack,
        ..F
    },
    Format {
        title: "BUG: workqueue leaked lock or atomic",
        report: Some(r"BUG: workqueue leaked lock or atomic(?:.*\n)+?.*last function: ([a-zA-Z0-9_]+)\n"),
        template: "BUG: workqueue leaked lock or atomic in {1}",
        kind: Bug,
        no_stack_trace: true,
        end: End::Stack,
        ..F
    },
    Format {
        title: "BUG: memory leak",
        template: "memory leak in {1}",
        kind: MemoryLeak,
        stack: Some(stack(
            &[Part::Line(r"backtrace(?: \(crc [[:xdigit:]]*\))?:"), Part::Trace],
            &[
                "kmemleak", "mmap", "kmem", "slab", "alloc", "create_object", "idr_get", "list_lru_init",
                "kasprintf", "kvasprintf", "pcpu_create", "strdup", "strndup", "memdup",
            ],
        )),
        end: End::Stack,
        ..F
    },
    Format {
        title: "BUG: .*stack guard page was hit at",
        template: "BUG: stack guard page was hit in {1}",
        kind: Bug,
        stack: Some(Stack { parts: RIP_THEN_STACK, fallback: &[], skip: &[], pick: Pick::Stall }),
        ..F
    },
    Format {
        // arm/arm64 print this where x86 prints a lockdep WARNING; keep one title for both.
        title: "BUG: Invalid wait context",
        template: "WARNING: locking bug in {1}",
        kind: Lockdep,
        stack: Some(stack(CALL_STACK, &["lock_sock", "release_sock"])),
        end: LOCKDEP_END,
        ..F
    },
    Format { title: r"BUG:\s*$", template: "BUG: corrupted", kind: Bug, corrupted: true, ..F },
];

const KFENCE_STACK: Stack = stack(
    &[
        Part::Line(r"BUG: KFENCE: (?:[a-z\- ]+) in %FUNC%"),
        Part::Trace,
    ],
    &[],
);

const WARNING_FORMATS: &[Format] = &[
    Format {
        title: r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)",
        template: "WARNING: ODEBUG bug in {1}",
        kind: Warning,
        // Whoever misuses the debug object is further up than its timer/work/rcu wrappers.
        stack: Some(warn_stack(&[
            "debug_",
            "rcu",
            "hrtimer_",
            "timer_",
            "work_",
            "percpu_",
            "vunmap",
            "vfree",
            "__free_",
            "debug_check",
            "kobject_",
        ])),
        ..F
    },
    Format {
        title: r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)",
        template: "WARNING: bad usercopy in {1}",
        kind: Warning,
        stack: Some(warn_stack(&["usercopy", "__check"])),
        ..F
    },
    Format {
        title: r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)",
        template: "WARNING: kobject bug in {1}",
        kind: Warning,
        stack: Some(warn_stack(&["kobject_"])),
        ..F
    },
    Format {
        title: r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)",
        template: "WARNING: proc registration bug in {1}",
        kind: Warning,
        stack: Some(warn_stack(&["proc_"])),
        ..F
    },
    Format {
        title: r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)",
        template: "WARNING: refcount bug in {1}",
        kind: Warning,
        stack: Some(warn_stack(&["refcount", "kobject_"])),
        ..F
    },
    Format {
        title: r"WARNING: .*kernel/locking/lockdep\.c.*lock_",
        template: "WARNING: locking bug in {1}",
        kind: Lockdep,
        stack: Some(warn_stack(&["lock_sock", "release_sock"])),
        ..F
    },
    Format {
        title: "WARNING: .*still has locks held!",
        report: Some(r"WARNING: .*still has locks held!(?:.*\n)+?.*at: %FUNC%"),
        template: "WARNING: still has locks held in {1}",
        kind: Lockdep,
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: Nested lock was not taken",
        template: "WARNING: nested lock was not taken in {1}",
        kind: Lockdep,
        stack: Some(PLAIN_WARN_STACK),
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: lock held when returning to user space",
        report: Some(
            r"WARNING: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:%PC% +)?%FUNC%",
        ),
        template: "WARNING: lock held when returning to user space in {1}",
        kind: Lockdep,
        no_stack_trace: true,
        end: End::Lines(12),
        ..F
    },
    Format {
        title: r"WARNING: .*mm/.*\.c.* k?.?malloc",
        template: "WARNING: kmalloc bug in {1}",
        kind: Warning,
        stack: Some(warn_stack(&["kmalloc", "krealloc", "slab", "kmem"])),
        ..F
    },
    Format {
        title: r"WARNING: .*mm/vmalloc.c.*__vmalloc_node",
        template: "WARNING: zero-size vmalloc in {1}",
        kind: Warning,
        stack: Some(PLAIN_WARN_STACK),
        ..F
    },
    Format {
        title: "WARNING: .* usb_submit_urb",
        template: "WARNING in {1}/usb_submit_urb",
        kind: Warning,
        stack: Some(warn_stack(USB_URB_SKIP)),
        ..F
    },
    Format {
        // Format of kernels since late 2025: "WARNING: kernel/foo.c:12 at 0x0, CPU#0: ...".
        title: r"WARNING: %SRC% at 0x\d+, CPU#\d+",
        template: "WARNING in {2}",
        kind: Warning,
        stack: Some(PLAIN_WARN_STACK),
        ..F
    },
    Format {
        title: "WARNING: .* at %SRC% %FUNC%",
        template: "WARNING in {3}",
        kind: Warning,
        stack: Some(PLAIN_WARN_STACK),
        ..F
    },
    Format {
        title: "WARNING: %SRC% at %FUNC%",
        template: "WARNING in {3}",
        kind: Warning,
        stack: Some(PLAIN_WARN_STACK),
        ..F
    },
    Format {
        title: r"WARNING: \[.*\] %SRC% at %FUNC%.*",
        template: "WARNING in {3}",
        kind: Warning,
        stack: Some(PLAIN_WARN_STACK),
        ..F
    },
    Format {
        title: "WARNING: possible circular locking dependency detected",
        report: Some(
            r"WARNING: possible circular locking dependency detected(?:.*\n)+?.*is trying to acquire lock",
        ),
        template: "possible deadlock in {1}",
        kind: Lockdep,
        stack: Some(stack(
            &[
                Part::Line("at: (?:%PC% +)?%FUNC%"),
                Part::Line("at: (?:%PC% +)?%FUNC%"),
                Part::Trace,
            ],
            // These take locks on behalf of work items; the work item is the real party.
            &[
                "process_one_work",
                "flush_workqueue",
                "drain_workqueue",
                "destroy_workqueue",
            ],
        )),
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: possible irq lock inversion dependency detected",
        report: Some(
            r"WARNING: possible irq lock inversion dependency detected(?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: (?:%PC% +)?%FUNC%",
        ),
        template: "possible deadlock in {1}",
        kind: Lockdep,
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: .*-safe -> .*-unsafe lock order detected",
        template: "possible deadlock in {1}",
        kind: Lockdep,
        stack: Some(stack(
            &[Part::Line("which became (?:.*) at:"), Part::Trace],
            &[],
        )),
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: possible recursive locking detected",
        report: Some(
            r"WARNING: possible recursive locking detected(?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: (?:%PC% +)?%FUNC%",
        ),
        template: "possible deadlock in {1}",
        kind: Lockdep,
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: inconsistent lock state",
        report: Some(
            r"WARNING: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?.*at: (?:%PC% +)?%FUNC%",
        ),
        template: "inconsistent lock state in {2}",
        kind: Lockdep,
        stack: Some(PLAIN_CALL_STACK),
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: suspicious RCU usage",
        report: Some(r"WARNING: suspicious RCU usage(?:.*\n)+?.*?%SRC%"),
        template: "WARNING: suspicious RCU usage in {2}",
        kind: Lockdep,
        stack: Some(stack(CALL_STACK, &["rcu", "kmem", "slab"])),
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value",
        template: "WARNING: kernel stack regs has bad '{1}' value",
        kind: Warning,
        no_stack_trace: true,
        ..F
    },
    Format {
        title: "WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value",
        template: "WARNING: kernel stack frame pointer has bad value",
        kind: Warning,
        no_stack_trace: true,
        ..F
    },
    Format {
        title: "WARNING: bad unlock balance detected!",
        template: "WARNING: bad unlock balance in {1}",
        kind: Lockdep,
        stack: Some(stack(
            &[
                Part::Line("%PC% +%FUNC%"),
                Part::Line("%CALLTRACE%"),
                Part::Trace,
            ],
            &[],
        )),
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: held lock freed!",
        report: Some(r"WARNING: held lock freed!(?:.*\n)+?.*at:(?: %PC%)? +%FUNC%"),
        template: "WARNING: held lock freed in {1}",
        kind: Lockdep,
        end: LOCKDEP_END,
        ..F
    },
    Format {
        title: "WARNING: kernel stack regs .* has bad 'bp' value",
        template: "WARNING: kernel stack regs has bad value",
        kind: Warning,
        no_stack_trace: true,
        ..F
    },
    Format {
        title: "WARNING: kernel stack frame pointer .* has bad value",
        template: "WARNING: kernel stack regs has bad value",
        kind: Warning,
        no_stack_trace: true,
        ..F
    },
    Format {
        title: r"WARNING:\s*$",
        template: "WARNING: corrupted",
        kind: Warning,
        corrupted: true,
        ..F
    },
];

/// Old (pre-4.x) lockdep headers end in " ]" and print `at: [<pc>] func`.
const fn old_lockdep(title: &'static str, report: &'static str, template: &'static str) -> Format {
    Format {
        title,
        report: Some(report),
        template,
        kind: Lockdep,
        end: LOCKDEP_END,
        ..F
    }
}

const INFO_FORMATS: &[Format] = &[
    old_lockdep(
        "INFO: possible circular locking dependency detected",
        r"INFO: possible circular locking dependency detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: %PC% +%FUNC%",
        "possible deadlock in {1}",
    ),
    old_lockdep(
        "INFO: possible irq lock inversion dependency detected",
        r"INFO: possible irq lock inversion dependency detected \](?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: %PC% +%FUNC%",
        "possible deadlock in {1}",
    ),
    old_lockdep(
        "INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
        r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected \](?:.*\n)+?.*is trying to acquire(?:.*\n)+?.*at: %PC% +%FUNC%",
        "possible deadlock in {1}",
    ),
    old_lockdep(
        "INFO: possible recursive locking detected",
        r"INFO: possible recursive locking detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: %PC% +%FUNC%",
        "possible deadlock in {1}",
    ),
    old_lockdep(
        "INFO: inconsistent lock state",
        r"INFO: inconsistent lock state \](?:.*\n)+?.*takes(?:.*\n)+?.*at: %PC% +%FUNC%",
        "inconsistent lock state in {1}",
    ),
    Format {
        // 6.6+: a CPU stuck in a CSD lock got its own report first; RCU says only this.
        title: "INFO: rcu_(?:preempt|sched|bh) detected(?: expedited)? stalls?, but suppressed full report due to a stuck CSD-lock",
        template: "INFO: rcu detected stall (report suppressed: stuck CSD-lock)",
        kind: RcuStall,
        no_stack_trace: true,
        end: End::Lines(1),
        ..F
    },
    Format {
        // Tasks RCU lists the holdout tasks, not a CPU's stack.
        title: "INFO: (rcu_tasks(?:_trace|_rude)?) detected stalls on tasks",
        template: "INFO: {1} detected stall",
        kind: RcuStall,
        no_stack_trace: true,
        end: End::Lines(1),
        ..F
    },
    Format {
        title: "INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected(?: expedited)? stall",
        template: "INFO: rcu detected stall in {1}",
        kind: RcuStall,
        stack: Some(Stack {
            // The interrupted code follows the timer interrupt that noticed the stall.
            parts: &[
                Part::Line("apic_timer_interrupt"),
                Part::Line("%RIP%"),
                Part::Trace,
            ],
            fallback: &[
                Part::Line("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"),
                Part::Trace,
            ],
            skip: &["apic_timer_interrupt", "rcu"],
            pick: Pick::Stall,
        }),
        end: End::Stack,
        ..F
    },
    Format {
        title: "INFO: trying to register non-static key",
        template: "INFO: trying to register non-static key in {1}",
        kind: Lockdep,
        stack: Some(stack(CALL_STACK, &["stack", "lock", "IRQ"])),
        end: End::Stack,
        ..F
    },
    Format {
        title: "INFO: suspicious RCU usage",
        report: Some(r"INFO: suspicious RCU usage(?:.*\n)+?.*?%SRC%"),
        template: "INFO: suspicious RCU usage in {2}",
        kind: Lockdep,
        stack: Some(stack(CALL_STACK, &["rcu", "kmem", "slab"])),
        end: LOCKDEP_END,
        ..F
    },
    Format {
        // 7.1+ says "blocked in I/O wait for more than" for a task in io_schedule().
        title: "INFO: task .* blocked (?:in I/O wait )?for more than [0-9]+ seconds",
        template: "INFO: task hung in {1}",
        kind: HungTask,
        stack: Some(Stack {
            parts: CALL_STACK,
            fallback: &[],
            skip: &[],
            pick: Pick::Hung,
        }),
        end: End::Stack,
        ..F
    },
    Format {
        title: "INFO: task .* can't die for more than .* seconds",
        template: "INFO: task can't die in {1}",
        kind: TaskCantDie,
        stack: Some(stack(CALL_STACK, &["schedule"])),
        end: End::Stack,
        ..F
    },
    Format {
        // What is left of an old-style KASAN report whose header was lost.
        title: "INFO: (Freed|Allocated) in (.*)",
        template: "INFO: {1} in {2}",
        kind: Kasan,
        corrupted: true,
        ..F
    },
    Format {
        title: r"INFO:\s*$",
        template: "INFO: corrupted",
        kind: Other,
        corrupted: true,
        ..F
    },
];

const PANIC_FORMATS: &[Format] = &[
    Format {
        title: "Kernel panic - not syncing: stack-protector:",
        report: Some(
            "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: %FUNC%",
        ),
        template: "kernel panic: stack is corrupted in {1}",
        kind: Panic,
        no_stack_trace: true,
        ..F
    },
    Format {
        // The symbol was not resolved: name the function from the stack instead.
        title: "Kernel panic - not syncing: stack-protector:",
        report: Some(
            "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+",
        ),
        template: "kernel panic: stack is corrupted in {1}",
        kind: Panic,
        stack: Some(stack(CALL_STACK, &["stack_chk"])),
        ..F
    },
    Format {
        title: "Kernel panic - not syncing: corrupted stack end",
        report: Some("Kernel panic - not syncing: corrupted stack end detected inside scheduler"),
        template: "kernel panic: corrupted stack end in {1}",
        kind: Panic,
        stack: Some(Stack {
            parts: CALL_STACK,
            fallback: &[],
            skip: &["schedule", "retint_kernel"],
            pick: Pick::Stall,
        }),
        ..F
    },
    Format {
        title: "Kernel panic - not syncing: kernel stack overflow",
        template: "kernel stack overflow in {1}",
        kind: Panic,
        stack: Some(Stack {
            parts: CALL_STACK,
            fallback: &[],
            skip: &["bad_stack"],
            pick: Pick::Stall,
        }),
        ..F
    },
    Format {
        title: "Kernel panic - not syncing: Attempted to kill init!",
        template: "kernel panic: Attempted to kill init!",
        kind: Panic,
        ..F
    },
    Format {
        title: "Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
        template: "kernel panic: Couldn't open N_TTY ldisc",
        kind: Panic,
        ..F
    },
    // These three follow another report; seeing them first means its header was lost.
    Format {
        title: "Kernel panic - not syncing: Fatal exception",
        template: "kernel panic: Fatal exception",
        kind: Panic,
        corrupted: true,
        ..F
    },
    Format {
        title: "Kernel panic - not syncing: panic_on_warn set",
        template: "kernel panic: panic_on_warn set",
        kind: Panic,
        corrupted: true,
        ..F
    },
    Format {
        title: "Kernel panic - not syncing: hung_task: blocked tasks",
        template: "kernel panic: hung_task: blocked tasks",
        kind: Panic,
        corrupted: true,
        ..F
    },
    Format {
        title: "Kernel panic - not syncing: (.*)",
        template: "kernel panic: {1}",
        kind: Panic,
        ..F
    },
];

// ---------------------------------------------------------------------------------
// Lines inside a report.

/// These look like report headers but are normally part of the report being printed
/// (an oops ends in a panic, a BUG() traps as an invalid opcode, ...).
pub(crate) const CONTINUATION_HEADERS: &[&str] = &[
    "invalid opcode: 0000",
    "Kernel panic - not syncing",
    "unregister_netdevice: waiting for",
    // Can come from the faulting CPU itself while it reports a page fault.
    "PANIC: double fault",
    "Internal error:",
];

/// Messages that print a stack trace without being a report; without caller ids they
/// mean whatever follows belongs to something else.
pub(crate) const STACK_DUMPING_MESSAGES: &[&str] = &[
    "vmalloc: allocation failure:",
    "FAULT_INJECTION: forcing a failure",
    "FAULT_FLAG_ALLOW_RETRY missing",
];

/// The line that starts a panic dump; one after a report belongs to that report.
pub(crate) const PANIC_LINE: &str = "Kernel panic - not syncing";
/// Other CPUs' backtraces follow (and belong to the report despite their caller ids).
pub(crate) const NMI_BACKTRACE_LINE: &str = "Sending NMI from CPU";
/// Printed in the middle of reports; says nothing about them.
pub(crate) const LOCK_DEBUG_OFF_LINE: &str = "Disabling lock debugging due to kernel taint";

/// Rare substrings such that every header, continuation, stack-dumper and flag literal
/// above contains one of them. A line without any of these is skipped at once; the
/// list is short and its words rare in ordinary kernel output, which keeps that
/// first test fast (checked by a unit test in compile.rs).
pub(crate) const SCREENING_WORDS: &[&str] = &[
    // The search keys on the first three bytes of each word, so each starts rare.
    "BUG",
    "WARNING:",
    "INFO:",
    "int3: ",
    "Unable to handle",
    "general protection",
    "segment: ",
    "panic",
    "PANIC:",
    "divide",
    "opcode:",
    "UBSAN:",
    "Booting the",
    "unregister_netdevice",
    "VFS: ",
    "Internal error",
    "Unhandled fault",
    "Alignment trap",
    "fatal error",
    "SYZFA",
    "LOCKUP",
    "ocation fail",
    "vmalloc",
    "oom-killer",
    "ry: Kill",
    "Blocked State",
    "(device ",
    "FAULT_",
    "NMI from CPU",
    "debugging due",
];

/// Lines that open a list of frames.
pub(crate) const STACK_STARTS: &[&str] = &[
    "Call (?:T|t)race",
    "Allocated:",
    "Allocated by task [0-9]+:",
    "Freed:",
    "Freed by task [0-9]+:",
    // kmemleak's "backtrace:" (optionally with a crc), but not lockdep's "stack backtrace:".
    r"[^k] backtrace(?: \(crc [[:xdigit:]]*\))?:",
    "Backtrace:",
    "Uninit was stored to memory at",
    // RISC-V prints the stack right after the register dump without a header.
    RISCV_STACK_START,
];
pub(crate) const RISCV_STACK_START: &str =
    "status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}";

/// Fault-injection stacks get mixed into reports; seeing one makes the walk unreliable.
pub(crate) const CORRUPTING_FRAME: &str =
    r"^( \[<?(?:0x)?[0-9a-f]+>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x";

/// A title containing a timestamp was glued together from two lines.
pub(crate) const CORRUPTED_TITLE: &str = r"\[ *[0-9]+\.[0-9]+\]";

/// Syscall entry wrappers differ per architecture; the shortest stripped name is used.
pub(crate) const FRAME_PREFIXES: &[&str] = &[
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
];

// ---------------------------------------------------------------------------------
// Frames that are never the guilty one (regexes, searched anywhere in the name).

pub(crate) const GLOBAL_SKIP: &[&str] = &[
    // Sanitizer runtimes and the code that prints their reports.
    "__sanitizer",
    "__asan",
    "kasan",
    "hwasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "(read|write)_once_.*nocheck",
    "print_address_description",
    "print_report",
    "__fortify_report",
    // Reporting, tracing and stack dumping.
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "print_usage_bug",
    "do_error",
    "_trap$|do_trap",
    "show_stack",
    "dump_stack",
    "walk_stack",
    "dump_backtrace",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "print_tainted",
    "^get_taint$",
    "stack_trace_consume_entry",
    "arch_stack_walk",
    "stack_trace_save",
    "program_check_exception",
    "program_check_common",
    "assertfail",
    "hex_dump_to_buffer",
    "print_hex_dump",
    "perf_trace",
    // Allocators and page cache lookups.
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "__alloc_frozen_pages_noprof",
    "folio_(?:alloc|unlock)",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "^kv?free$",
    "kfree_skb",
    "find_lock_entries",
    "truncate_inode_pages_range",
    // Debug objects, lockdep and locking primitives.
    "debug_object",
    "timer_is_static_object",
    "work_is_static_object",
    "__might_fault",
    "might_fault",
    "might_sleep",
    "__might_resched",
    "print_unlock",
    "imbalance_bug",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "(reacquire|mark)_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_read_trylock",
    "down_write_trylock",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "(trace|lockdep)_(hard|soft)irq",
    "^(un)?lock_page",
    "lock_timer_base",
    // Atomics, bit operations and reference counts.
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(set|clear|change|test)_bit",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    "seqprop_assert",
    // String, memory and user-copy helpers.
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "memdup",
    "strcmp",
    "strncmp",
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
    "copy_to_user",
    "copy_from_user",
    "copy_to_iter",
    "copy_from_iter",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "copy_folio_to_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "extract_(user|iter)_to_sg",
    "^crc\\d+",
    "crc_itu_t",
    // printk and formatting.
    "string",
    "pointer",
    "snprintf",
    "scnprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "dev_info",
    "dev_notice",
    "dev_warn",
    "dev_err",
    "dev_alert",
    "dev_crit",
    "dev_emerg",
    // Containers.
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "^klist_",
    "xas_(?:start|load|find)",
    "rhashtable_lookup",
    // Retpoline thunks and MMIO accessors.
    "_indirect_thunk_",
    "readb$",
    "readw$",
    "readl$",
    "readq$",
    "writeb$",
    "writew$",
    "writel$",
    "writeq$",
    "logic_in",
    "logic_out",
    // Wakeups, timers, work items and completions.
    "__wake_up",
    "del_timer",
    "__timer_delete_sync",
    "sk_stop_timer_sync",
    "__mod_timer",
    "flush_work",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "insert_work",
    "__queue_delayed_work",
    "queue_delayed_work_on",
    "finish_wait",
    "kthread_stop",
    "^complete$",
    "wait_for_completion",
    "cleanup_srcu_struct",
    // Device model and USB core plumbing.
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "hwrng_unregister",
    "i2c_del_adapter",
    "__unregister_client",
    "device_for_each_child",
    "rollback_registered",
    "unregister_netdev",
    "sysfs_remove",
    "device_remove_file",
    "tty_unregister_device",
    "^put_device$",
    "ida_free",
    "dummy_urb_enqueue",
    "usb_kill_urb",
    "usb_kill_anchored_urbs",
    "usb_control_msg",
    "usb_hcd_submit_urb",
    "usb_submit_urb",
    // VFS reference counting.
    "^iput$",
    "^iput_final$",
    "^ihold$",
    "drop_nlink",
    "fast_dput",
    "dput",
    // arm64 exception entry.
    "do_(kernel|translation)_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync(?:_handler)?",
    "__phys_addr",
];

/// Frames that dispatch work; a stall's identity is the frame they called.
pub(crate) const STALL_ANCHORS: &[&str] = &[
    // Work items, syscalls, softirqs, timers and kernel threads.
    "process_one_work",
    "do_syscall_",
    "do_fast_syscall_",
    "sysenter_dispatch",
    "tracesys_phase2",
    "el0_svc_handler",
    "invoke_syscall",
    "ret_fast_syscall",
    "netif_receive_skb",
    "do_softirq",
    "call_timer_fn",
    "_run_timers",
    "run_timer_softirq",
    "hrtimer_run",
    "run_ksoftirqd",
    "smpboot_thread_fn",
    "^kthread$",
    "start_secondary",
    "cpu_startup_entry",
    "ret_from_fork",
    "tasklet_action",
    "tasklet_hi_action",
    "smp_call_function",
    // File operations: the frame below names the driver or filesystem.
    "vfs_write",
    "vfs_read",
    "vfs_iter_read",
    "vfs_iter_write",
    "do_iter_read",
    "do_iter_write",
    "call_read_iter",
    "call_write_iter",
    "new_sync_read",
    "new_sync_write",
    "vfs_ioctl",
    "ksys_ioctl",
    "compat_ioctl",
    "compat_sys_ioctl",
    "blkdev_driver_ioctl",
    "blkdev_ioctl",
    "do_iter_readv_writev",
    "^call_mmap",
    "mmap_region",
    "do_mmap",
    "do_dentry_open",
    "vfs_open",
    // Socket operations: the frame below names the protocol.
    "^sock_sendmsg",
    "^sock_recvmsg",
    "^sock_release",
    "^__sock_release",
    "^setsockopt$",
    "kernel_setsockopt",
    "sock_common_setsockopt",
    "^listen$",
    "kernel_listen",
    "sk_common_release",
    "^sock_mmap",
    "^accept$",
    "kernel_accept",
    "^sock_do_ioctl",
    "^sock_ioctl",
    "^compat_sock_ioctl",
    "^nfnetlink_rcv_msg",
    "^rtnetlink_rcv_msg",
    "^netlink_dump",
    "^(sys_)?(socketpair|connect|ioctl)",
    // Page faults and return-to-user work.
    "__do_fault",
    "do_page_fault",
    "^page_fault$",
    "__fput",
    "task_work_run",
    "exit_to_usermode",
];

/// A hung task blocked in one of these is grouped under the replacement (or the frame itself).
pub(crate) const HUNG_ANCHORS: &[(&str, Option<&str>)] = &[
    ("rtnl_lock", None),
    ("synchronize_rcu", Some("synchronize_rcu")),
    ("synchronize_srcu", Some("synchronize_rcu")),
    ("synchronize_net", Some("synchronize_rcu")),
    ("synchronize_sched", Some("synchronize_rcu")),
];

/// Generic sleeping primitives a hung task sits in; the guilty frame is their caller.
///
/// syzkaller skips every frame containing "wait"; here only the generic wait helpers
/// are skipped, so driver functions such as `mmc_blk_rw_wait` can still be named.
pub(crate) const HUNG_SKIP: &[&str] = &[
    "sched",
    "_lock",
    "_slowlock",
    "down",
    "rwsem",
    "completion",
    "kthread",
    "synchronize",
    "context_switch",
    "__switch_to",
    "cancel_delayed_work",
    "rcu_barrier",
    // Wait queues, bit waits, page/folio waits and writeback waits.
    "^_*wait_",
    "^_*(?:io|bit|folio|prepare_to|finish|do|out_of_line)_wait",
    "wait_on_",
    "wait_for_",
    "_wait_event",
    "fdatawait",
    "wait_woken",
    "_wait_urb",
    "wait_rcu_gp",
    "wait_sb_inodes",
    "^(?:rq_qos|wbt)_wait",
];

// ---------------------------------------------------------------------------------
// Title normalisation (applied in order, each until nothing changes), as syzkaller does
// so that titles do not depend on pids, addresses, line numbers or CPU numbers.

pub(crate) const TITLE_REPLACEMENTS: &[(&str, &str)] = &[
    (r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),
    (r"syzkaller[0-9]+((/|:)[0-9]+)?", "syzkaller"),
    (r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", "${1}ADDR"),
    (r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", "IP"),
    (r"(\.\w+)(:[0-9]+)+", "${1}:LINE"),
    (r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", "${1}"),
    (r"CPU#[0-9]+", "CPU"),
    (r"(\W)(\d+)(\W|$)", "${1}NUM${3}"),
    // Digits inside names (cfg80211, nl802154) stay, very long numbers do not.
    (r"(\d+){7,}", "NUM"),
];

pub(crate) const MAX_TITLE_LEN: usize = 120;

// ---------------------------------------------------------------------------------
// Who is to blame: tried in order over the report, the first pattern that matches wins.
// Each has a `comm` group and optionally a `pid` group.

pub(crate) const TASK_PATTERNS: &[(&str, &str)] = &[
    // (a literal the pattern needs, which makes most non-matches cheap; the pattern)
    (
        "INFO: task ",
        r"(?m)INFO: task (?P<comm>.+):(?P<pid>\d+) (?:blocked (?:in I/O wait )?for more than|can't die for more than)",
    ),
    (
        "soft lockup",
        r"(?m)soft lockup - CPU#\d+ stuck for \d+s! \[(?P<comm>.+):(?P<pid>\d+)\]",
    ),
    (
        "of memory: Kill",
        r"(?m)Out of memory: Kill(?:ed)? process (?P<pid>\d+) \((?P<comm>[^)]*)\)",
    ),
    (
        " by task ",
        r"(?m)(?:Read|Write) (?:of size \d+ )?at addr [0-9a-fx]+ by task (?P<comm>\S+)/(?P<pid>\d+)",
    ),
    (
        " is trying to acquire lock",
        r"(?m)^(?P<comm>\S+)/(?P<pid>\d+) is trying to acquire lock",
    ),
    (
        " Comm: ",
        r"(?m)CPU: \d+ (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>\S+)",
    ),
    (
        "task:",
        r"(?m)^task:(?P<comm>\S+)\s+state:\S+.*?\bpid:\s*(?P<pid>\d+)",
    ),
    (
        " invoked oom-killer:",
        r"(?m)^(?P<comm>\S+) invoked oom-killer:",
    ),
    (
        ": page allocation failure:",
        r"(?m)^(?P<comm>\S+): page allocation failure:",
    ),
    (": vmalloc error:", r"(?m)^(?P<comm>\S+): vmalloc error:"),
];

// ---------------------------------------------------------------------------------
// Line shapes that decide where a report ends.

/// Closes a report that ended with a marker, once nothing report-like follows it.
/// (stream.rs relies on these, `FINAL_LINES` and `=====` rules starting with `-`, `R` or `=`.)
pub(crate) const END_MARKERS: &[&str] = &["---[ end trace", "---[ end Kernel panic"];
/// After `Kernel panic - not syncing`, nothing else of the report follows these.
pub(crate) const FINAL_LINES: &[&str] = &["---[ end Kernel panic", "Rebooting in "];
/// Lines that may still follow an end marker and belong to the same report.
pub(crate) const TAIL_LINES: &[&str] = &[
    "Kernel panic - not syncing",
    "Kernel Offset:",
    "Rebooting in ",
    "Dumping ftrace buffer",
    "(ftrace buffer empty)",
    "Disabling lock debugging",
    "Modules linked in",
    "irq event stamp",
    "hardirqs last",
    "softirqs last",
    "SMP: stopping secondary CPUs",
    "---[ end",
];
/// Register dump lines (x86, arm64, arm, powerpc, riscv): part of a stack trace's surroundings.
pub(crate) const REGISTER_PREFIXES: &[&str] = &[
    "RIP: ",
    "RSP: ",
    "RAX: ",
    "RBX: ",
    "RCX: ",
    "RDX: ",
    "RBP: ",
    "RSI: ",
    "RDI: ",
    "R08: ",
    "R09: ",
    "R10: ",
    "R11: ",
    "R12: ",
    "R13: ",
    "R14: ",
    "R15: ",
    "FS: ",
    "CS: ",
    "DS: ",
    "ES: ",
    "CR0: ",
    "CR2: ",
    "CR3: ",
    "CR4: ",
    "DR0: ",
    "DR1: ",
    "DR2: ",
    "DR3: ",
    "DR6: ",
    "DR7: ",
    "PKRU: ",
    "EIP: ",
    "EAX: ",
    "EBX: ",
    "ECX: ",
    "EDX: ",
    "ESI: ",
    "EDI: ",
    "EBP: ",
    "ESP: ",
    "Code: ",
    "pc : ",
    "lr : ",
    "sp : ",
    "pstate: ",
    "PC is at ",
    "LR is at ",
    "Flags: ",
    "Control: ",
    "Table: ",
    "DAC: ",
    "NIP: ",
    "NIP [",
    "LR [",
    "MSR: ",
    "CTR: ",
    "GPR",
    "epc : ",
    "ra : ",
    "status: ",
    "ORIG_RAX: ",
    "CFAR: ",
    "IRQMASK: ",
    "XER: ",
    "CR: ",
];
/// Lines that keep a stack trace going without being frames.
pub(crate) const STACK_MARKERS: &[&str] = &[
    "<IRQ>",
    "</IRQ>",
    "<EOI>",
    "<NMI>",
    "</NMI>",
    "<TASK>",
    "</TASK>",
    "<SOFTIRQ>",
    "</SOFTIRQ>",
    "--- interrupt:",
    "Exception stack(",
    "---[ end trace",
    "...",
];

/// Everything a report may hold: lines beyond these caps end it.
pub(crate) const MAX_REPORT_LINES: usize = 2000;
pub(crate) const MAX_REPORT_BYTES: usize = 256 * 1024;
pub(crate) const MAX_LINE_BYTES: usize = 4096;
/// Reports open at once (one per printk caller); the oldest is closed beyond this.
pub(crate) const MAX_OPEN_REPORTS: usize = 32;
/// Once the report has this many lines, a following `Kernel panic` (from panic_on_warn)
/// and its stack add nothing; fewer lines mean the report itself had no stack.
pub(crate) const PANIC_TAIL_MIN_LINES: usize = 22;
pub(crate) const PANIC_TAIL_MIN_LINES_KMSAN: usize = 16;
