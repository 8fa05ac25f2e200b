//! Property tests ("fuzzing" on stable Rust) of the agent channel's framing.
//!
//! Agent records may share a console with printk and cross a UART that drops
//! bytes. Whatever arrives, the decoder must not panic, must hand back every
//! intact frame exactly, must never turn damaged bytes into a record (wrong
//! content or wrong sequence number), and must say when frames were lost.
//!
//! Each property runs 256 cases by default; `PROPTEST_CASES=100000` runs a
//! longer campaign (see docs/fuzzing.md). Failures are not persisted to files:
//! a failure prints its minimal input, which becomes a deterministic test in
//! `frame_regressions.rs`.

use hilt_kernlog::{Event, EventKind, Task};
use hilt_protocol::frame::{MAGIC, MAX_LINE};
use hilt_protocol::*;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde::de::DeserializeOwned;

// ---------------------------------------------------------------------------
// Configuration and helpers

/// `cases` unless PROPTEST_CASES is set, so a nightly job can run longer
/// campaigns without editing the tests.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = None;
    c
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn frame<T: serde::Serialize>(seq: u64, msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(seq, msg, &mut out);
    out
}

/// Feeds `bytes` cut into pieces of the given sizes (cycled), then finishes.
fn decode_chunked<T: DeserializeOwned>(bytes: &[u8], sizes: &[usize]) -> Vec<Decoded<T>> {
    let mut d = FrameDecoder::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(n.clamp(1, rest.len()));
        d.feed(now, &mut out);
        rest = later;
    }
    d.finish(&mut out);
    out
}

fn decode_whole<T: DeserializeOwned>(bytes: &[u8]) -> Vec<Decoded<T>> {
    decode_chunked(bytes, &[usize::MAX])
}

/// Feeds one line at a time and returns what each line produced, so a test
/// can tell which line a report came from. An unterminated last line is
/// decoded by `finish`, as at the end of a stream.
fn decode_per_line<T: DeserializeOwned>(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<Decoded<T>>)> {
    let mut d = FrameDecoder::new();
    let mut lines = Vec::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let mut out = Vec::new();
        d.feed(line, &mut out);
        if !line.ends_with(b"\n") {
            d.finish(&mut out);
        }
        lines.push((line.to_vec(), out));
    }
    lines
}

/// What holds for any output, whatever the input: noise and corrupt lines
/// are single lines, every rejection says why, and a Gap sits right before
/// the record that revealed it, counting from the record before.
fn check_output_shape<T: std::fmt::Debug>(out: &[Decoded<T>]) -> Result<(), TestCaseError> {
    let mut prev: Option<u64> = None;
    for (i, d) in out.iter().enumerate() {
        match d {
            Decoded::Noise(line) => {
                prop_assert!(!line.is_empty(), "empty noise at {}", i);
                prop_assert!(!line.contains(&b'\n'), "noise spans lines: {:?}", d);
            }
            Decoded::ForeignVersion { magic, line } => {
                prop_assert!(magic.starts_with("@H"), "foreign magic {:?}", magic);
                prop_assert!(!line.contains(&b'\n'), "foreign line spans lines: {:?}", d);
            }
            Decoded::Corrupt { reason, line } => {
                prop_assert!(!reason.trim().is_empty(), "corrupt frame without a reason");
                prop_assert!(!reason.contains('\n'), "multi-line reason {:?}", reason);
                prop_assert!(!line.contains(&b'\n'), "corrupt line spans lines: {:?}", d);
            }
            Decoded::Gap { expected, got } => {
                prop_assert_ne!(expected, got, "a gap of nothing");
                if let Some(p) = prev {
                    if let Some(next) = p.checked_add(1) {
                        prop_assert_eq!(
                            *expected,
                            next,
                            "gap does not count from the previous record"
                        );
                    }
                }
                prop_assert!(
                    matches!(out.get(i + 1), Some(Decoded::Record { seq, .. }) if seq == got),
                    "gap {:?} not followed by record {}: {:?}",
                    d,
                    got,
                    out.get(i + 1)
                );
            }
            Decoded::Record { seq, .. } => {
                if let Some(next) = prev.and_then(|p| p.checked_add(1)) {
                    let gap_before = i > 0 && matches!(out[i - 1], Decoded::Gap { .. });
                    prop_assert_eq!(
                        gap_before,
                        *seq != next,
                        "record {} after {:?}: gap reported = {}",
                        seq,
                        prev,
                        gap_before
                    );
                }
                prev = Some(*seq);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies for the records

/// Text with the characters that stress JSON escaping and line framing:
/// control characters, newlines, quotes, backslashes, the frame magic,
/// non-BMP characters and the Unicode line separators.
fn text() -> BoxedStrategy<String> {
    vec(
        prop_oneof![
            6 => any::<char>().prop_map(String::from),
            2 => "[a-z_]{1,8}",
            1 => Just("@H2 ".to_string()),
            1 => Just("\n".to_string()),
            1 => Just("\r\n".to_string()),
            1 => Just("\"\\\u{0}\u{7f}".to_string()),
            1 => Just("\u{2028}\u{2029}\u{85}".to_string()),
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
    .boxed()
}

fn stage() -> BoxedStrategy<Stage> {
    select(vec![
        Stage::Settings,
        Stage::Verity,
        Stage::Mount,
        Stage::Swap,
        Stage::Workloads,
        Stage::Watch,
        Stage::Channel,
        Stage::Control,
        Stage::Probes,
    ])
    .boxed()
}

fn mem() -> BoxedStrategy<MemSnapshot> {
    any::<[u64; 5]>()
        .prop_map(
            |[total_kb, available_kb, free_kb, swap_total_kb, swap_free_kb]| MemSnapshot {
                total_kb,
                available_kb,
                free_kb,
                swap_total_kb,
                swap_free_kb,
            },
        )
        .boxed()
}

fn vmstat() -> BoxedStrategy<VmstatDelta> {
    any::<[u64; 5]>()
        .prop_map(
            |[pswpin, pswpout, allocstall, pgmajfault, oom_kill]| VmstatDelta {
                pswpin,
                pswpout,
                allocstall,
                pgmajfault,
                oom_kill,
            },
        )
        .boxed()
}

/// Any finite f32/f64 (proptest's `any` excludes NaN and infinities, which
/// JSON cannot carry; see `non_finite_floats_are_rejected_not_misread`).
fn psi() -> BoxedStrategy<Option<PsiMemory>> {
    proptest::option::of(
        (any::<f32>(), any::<f32>(), any::<u64>(), any::<u64>()).prop_map(
            |(some_avg10, full_avg10, some_total_us, full_total_us)| PsiMemory {
                some_avg10,
                full_avg10,
                some_total_us,
                full_total_us,
            },
        ),
    )
    .boxed()
}

fn histo() -> BoxedStrategy<LatencyHisto> {
    vec(any::<[u64; 2]>(), 0..6)
        .prop_map(|buckets| LatencyHisto { buckets })
        .boxed()
}

fn interval() -> BoxedStrategy<IntervalStats> {
    (
        (
            any::<u64>(),
            histo(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<Option<i32>>(),
            vec(any::<u64>(), 0..5),
        ),
        (
            any::<u64>(),
            psi(),
            mem(),
            vmstat(),
            any::<u64>(),
            any::<u64>(),
        ),
        vec(
            (text(), histo(), any::<u64>(), any::<u64>()).prop_map(
                |(func, latency_us, calls_in_worker, calls_elsewhere)| FuncLatency {
                    func,
                    latency_us,
                    calls_in_worker,
                    calls_elsewhere,
                },
            ),
            0..3,
        ),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                (
                    uptime_ms,
                    read_latency_us,
                    reads,
                    bytes_read,
                    read_errors,
                    last_read_errno,
                    reader_bytes,
                ),
                (hog_bytes, psi, mem, vmstat, agent_rss_kb, agent_cpu_ms),
                decompress,
                data_reads,
                data_bytes,
            )| IntervalStats {
                uptime_ms,
                read_latency_us,
                reads,
                bytes_read,
                read_errors,
                last_read_errno,
                reader_bytes,
                hog_bytes,
                psi,
                mem,
                vmstat,
                agent_rss_kb,
                agent_cpu_ms,
                decompress,
                data_reads,
                data_bytes,
            },
        )
        .boxed()
}

fn event() -> BoxedStrategy<Event> {
    use EventKind::*;
    let kinds = vec![
        HungTask,
        TaskCantDie,
        SoftLockup,
        HardLockup,
        RcuStall,
        WorkqueueLockup,
        Warning,
        Oops,
        Bug,
        Panic,
        PageAllocFailure,
        VmallocFailure,
        OomInvoked,
        OomKill,
        BlockedStateDump,
        ErofsError,
        Kasan,
        Ubsan,
        Lockdep,
        Kmsan,
        Kcsan,
        Kfence,
        MemoryLeak,
        Reboot,
        Other,
    ];
    (
        select(kinds),
        text(),
        proptest::option::of(
            (text(), any::<Option<u32>>()).prop_map(|(comm, pid)| Task { comm, pid }),
        ),
        vec(text(), 0..4),
        text(),
        any::<Option<f64>>(),
        proptest::option::of(text()),
        any::<bool>(),
    )
        .prop_map(
            |(kind, title, task, frames, excerpt, timestamp, caller, corrupted)| Event {
                kind,
                title,
                task,
                frames,
                excerpt,
                timestamp,
                caller,
                corrupted,
            },
        )
        .boxed()
}

fn suspect() -> BoxedStrategy<SuspectReport> {
    (
        (
            any::<u64>(),
            any::<i32>(),
            any::<i32>(),
            text(),
            text(),
            text(),
        ),
        (
            any::<u64>(),
            vec(text(), 0..4),
            psi(),
            mem(),
            text(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (uptime_ms, pid, tid, comm, wchan, reason),
                (stopped_ms, stack, psi, mem, vmstat, evidence_ms),
            )| {
                SuspectReport {
                    uptime_ms,
                    pid,
                    tid,
                    comm,
                    wchan,
                    reason,
                    stopped_ms,
                    stack,
                    psi,
                    mem,
                    vmstat,
                    evidence_ms,
                }
            },
        )
        .boxed()
}

fn agent_msg() -> BoxedStrategy<AgentMsg> {
    prop_oneof![
        (
            (any::<u32>(), text(), text(), text(), text()),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
                btree_map(text(), text(), 0..4)
            ),
        )
            .prop_map(
                |(
                    (protocol, agent_version, kernel_release, kernel_version, machine),
                    (uptime_ms, mem_total_kb, cpus, facts),
                )| {
                    AgentMsg::Hello(Hello {
                        protocol,
                        agent_version,
                        kernel_release,
                        kernel_version,
                        machine,
                        uptime_ms,
                        mem_total_kb,
                        cpus,
                        facts,
                        mmc: Vec::new(),
                    })
                }
            ),
        (stage(), any::<u64>(), any::<u64>(), text()).prop_map(
            |(stage, uptime_ms, elapsed_ms, detail)| {
                AgentMsg::Stage(StageReport {
                    stage,
                    uptime_ms,
                    elapsed_ms,
                    detail,
                })
            }
        ),
        any::<u64>().prop_map(|uptime_ms| AgentMsg::Heartbeat { uptime_ms }),
        interval().prop_map(|i| AgentMsg::Interval(Box::new(i))),
        (any::<u64>(), any::<u64>(), any::<u8>(), text()).prop_map(|(seq, ts_us, level, text)| {
            AgentMsg::Kmsg(KmsgRecord {
                seq,
                ts_us,
                level,
                text,
            })
        }),
        (any::<u64>(), event()).prop_map(|(uptime_ms, e)| AgentMsg::Kernel {
            uptime_ms,
            event: Box::new(e)
        }),
        (any::<u64>(), any::<u32>(), text(), any::<u64>()).prop_map(
            |(uptime_ms, reader, workload, stalled_ms)| {
                AgentMsg::ReaderStall {
                    uptime_ms,
                    reader,
                    workload,
                    stalled_ms,
                }
            }
        ),
        (any::<u64>(), any::<u32>(), text()).prop_map(|(uptime_ms, reader, workload)| {
            AgentMsg::ReaderResumed {
                uptime_ms,
                reader,
                workload,
            }
        }),
        suspect().prop_map(|s| AgentMsg::Suspect(Box::new(s))),
        (
            any::<u64>(),
            any::<i32>(),
            any::<i32>(),
            text(),
            select(vec![ConfirmedBy::KernelReport, ConfirmedBy::Timeout]),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(uptime_ms, pid, tid, comm, by, stopped_ms, suspected_ms)| {
                    AgentMsg::Confirmed(Confirmation {
                        uptime_ms,
                        pid,
                        tid,
                        comm,
                        by,
                        stopped_ms,
                        suspected_ms,
                    })
                }
            ),
        (any::<u64>(), any::<i32>(), any::<i32>()).prop_map(|(uptime_ms, pid, tid)| {
            AgentMsg::Cleared {
                uptime_ms,
                pid,
                tid,
            }
        }),
        (
            any::<u64>(),
            any::<i32>(),
            any::<i32>(),
            text(),
            any::<u64>()
        )
            .prop_map(|(uptime_ms, pid, tid, comm, blocked_ms)| {
                AgentMsg::Resumed {
                    uptime_ms,
                    pid,
                    tid,
                    comm,
                    blocked_ms,
                }
            }),
        (
            any::<u64>(),
            select(vec![DoneReason::Completed, DoneReason::Stopped])
        )
            .prop_map(|(uptime_ms, reason)| AgentMsg::Done {
                uptime_ms,
                reason,
                agent_threads: vec![ThreadCpu {
                    name: "dstate".into(),
                    cpu_ms: uptime_ms / 7
                }],
            }),
        vec(
            (text(), text()).prop_map(|(name, content)| PstoreFile { name, content }),
            0..3
        )
        .prop_map(|files| AgentMsg::Pstore { files }),
        (stage(), text()).prop_map(|(stage, message)| AgentMsg::Error { stage, message }),
    ]
    .boxed()
}

/// Small records, for streams of many frames where the content matters
/// less than the framing.
fn small_agent_msg() -> BoxedStrategy<AgentMsg> {
    prop_oneof![
        any::<u64>().prop_map(|uptime_ms| AgentMsg::Heartbeat { uptime_ms }),
        (any::<u64>(), any::<u64>(), any::<u8>(), text()).prop_map(|(seq, ts_us, level, text)| {
            AgentMsg::Kmsg(KmsgRecord {
                seq,
                ts_us,
                level,
                text,
            })
        }),
        (stage(), text()).prop_map(|(stage, message)| AgentMsg::Error { stage, message }),
    ]
    .boxed()
}

fn block_device() -> BoxedStrategy<BlockDevice> {
    prop_oneof![
        text().prop_map(BlockDevice::VirtioSerial),
        any::<Option<u32>>().prop_map(|partition| BlockDevice::Mmc { partition }),
        text().prop_map(BlockDevice::Path),
    ]
    .boxed()
}

fn run_spec() -> BoxedStrategy<RunSpec> {
    let verity = (
        block_device(),
        text(),
        text(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                hash,
                root_hash,
                salt,
                data_blocks,
                data_block_size,
                hash_block_size,
                hash_start_block,
            )| VeritySpec {
                hash,
                root_hash,
                salt,
                data_blocks,
                data_block_size,
                hash_block_size,
                hash_start_block,
            },
        );
    let verity = prop_oneof![
        verity.prop_map(VeritySource::Explicit),
        text().prop_map(|partition_name| VeritySource::AvbFooter { partition_name }),
    ];
    let data = (
        block_device(),
        select(vec![DataFs::F2fs, DataFs::Ext4]),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(device, fs, files, file_bytes)| DataSpec {
            device,
            fs,
            files,
            file_bytes,
        });
    let storage = (
        block_device(),
        proptest::option::of(verity),
        text(),
        proptest::option::of(text()),
        any::<Option<u8>>(),
        proptest::option::of(data),
    )
        .prop_map(
            |(erofs, verity, mount_options, io_scheduler, sync_decompress, data)| StorageSpec {
                erofs,
                verity,
                mount_options,
                io_scheduler,
                sync_decompress,
                data,
            },
        );
    let swap = prop_oneof![
        Just(SwapSpec::None),
        (any::<u64>(), proptest::option::of(text())).prop_map(|(size_bytes, algorithm)| {
            SwapSpec::Zram {
                size_bytes,
                algorithm,
            }
        }),
        block_device().prop_map(|device| SwapSpec::Device { device }),
    ];
    let kernel = (
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<i64>>(),
        any::<Option<u8>>(),
        any::<bool>(),
        any::<Option<u32>>(),
    )
        .prop_map(
            |(
                hung_task_timeout_secs,
                hung_task_check_interval_secs,
                hung_task_warnings,
                printk_level,
                sysrq,
                swappiness,
            )| {
                KernelSettings {
                    hung_task_timeout_secs,
                    hung_task_check_interval_secs,
                    hung_task_warnings,
                    printk_level,
                    sysrq,
                    swappiness,
                }
            },
        );
    let workload = prop_oneof![
        (text(), any::<f64>(), any::<u64>()).prop_map(|(name, mem_fraction, start_after_ms)| {
            WorkloadSpec::Hog {
                name,
                mem_fraction,
                start_after_ms,
            }
        }),
        (
            text(),
            any::<u32>(),
            select(vec![
                ReadPattern::Sequential,
                ReadPattern::Random,
                ReadPattern::Mmap
            ]),
            any::<u32>(),
            any::<bool>(),
            any::<Option<u32>>(),
            any::<u64>(),
            (select(vec![ReadFrom::Erofs, ReadFrom::Data]), any::<bool>()),
        )
            .prop_map(
                |(
                    name,
                    threads,
                    pattern,
                    block_size,
                    drop_caches,
                    rounds,
                    start_after_ms,
                    (on, readahead),
                )| {
                    WorkloadSpec::Readers {
                        name,
                        threads,
                        pattern,
                        block_size,
                        drop_caches,
                        rounds,
                        start_after_ms,
                        on,
                        readahead,
                    }
                }
            ),
    ];
    let watch = (any::<[u64; 6]>(), text(), any::<bool>()).prop_map(
        |(
            [heartbeat_ms, interval_ms, reader_stall_ms, dstate_ms, same_wchan_ms, confirm_ms],
            sysrq_keys,
            decompress_probes,
        )| {
            WatchSpec {
                heartbeat_ms,
                interval_ms,
                reader_stall_ms,
                dstate_ms,
                same_wchan_ms,
                confirm_ms,
                sysrq_keys,
                decompress_probes,
            }
        },
    );
    let control = proptest::option::of(prop_oneof![
        (
            block_device(),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(device, stuck_kb, within_ms, resume_after_ms)| {
                ControlSpec::SwapFreeze {
                    device,
                    stuck_kb,
                    within_ms,
                    resume_after_ms,
                }
            }),
        (block_device(), any::<u64>())
            .prop_map(|(device, within_ms)| ControlSpec::BioWaitFreeze { device, within_ms }),
    ]);
    (
        (text(), text(), any::<u32>(), any::<u64>()),
        (storage, swap, kernel, vec(workload, 0..4), watch, control),
    )
        .prop_map(
            |(
                (run_id, variant, iteration, duration_ms),
                (storage, swap, kernel, workloads, watch, control),
            )| RunSpec {
                run_id,
                variant,
                iteration,
                duration_ms,
                storage,
                swap,
                kernel,
                workloads,
                watch,
                control,
            },
        )
        .boxed()
}

fn host_msg() -> BoxedStrategy<HostMsg> {
    prop_oneof![
        run_spec().prop_map(|spec| HostMsg::Start {
            spec: Box::new(spec)
        }),
        Just(HostMsg::Stop),
        any::<char>().prop_map(|key| HostMsg::Sysrq { key }),
        select(vec![AgentFault::Exit, AgentFault::Mute, AgentFault::Panic])
            .prop_map(|fault| HostMsg::Fault { fault }),
    ]
    .boxed()
}

/// Sequence numbers: small ones (a fresh boot), multi-digit ones, and the
/// edges of the type.
fn seq() -> BoxedStrategy<u64> {
    prop_oneof![0..100u64, any::<u64>(), (u64::MAX - 2)..=u64::MAX].boxed()
}

// ---------------------------------------------------------------------------
// Strategies for the wire

/// Printk-like console noise, as one line without its terminator: kernel log
/// lines, arbitrary (often non-UTF-8) bytes, escape sequences, and near
/// misses of the frame magic.
fn noise_line() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => ("[ ]{0,4}[0-9]{1,5}\\.[0-9]{6}", "[ -~]{0,60}").prop_map(|(ts, msg)| format!("[{ts}] {msg}").into_bytes()),
        3 => vec(any::<u8>(), 0..48),
        1 => Just(b"\x1b[0;32m  OK  \x1b[0m] Reached target".to_vec()),
        1 => select(vec![&b"@H2"[..], b"@H", b"@", b"H2 ", b"@H1 0 00000000 {}", b"@h2 0 0 {}"]).prop_map(<[u8]>::to_vec),
    ].boxed()
}

/// How a noise line ends. An empty terminator puts the next frame on the
/// same line, as when printk's newline has not been written yet.
fn terminator() -> BoxedStrategy<&'static [u8]> {
    select(vec![&b"\n"[..], b"\r\n", b"", b"\r", b"\n\n", b"\r\r\n"]).boxed()
}

/// A byte soup for the no-panic property: fragments that each exercise a
/// path of the decoder, in any order.
fn soup_piece() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..24),
        2 => select(vec![&b"\n"[..], b"\r\n", b"\r", b" ", b"@H2 ", b"@H2", b"{", b"}", b"\"", b"\\"]).prop_map(<[u8]>::to_vec),
        2 => "[0-9]{1,24}".prop_map(String::into_bytes),
        1 => "[0-9a-fA-F+-]{0,10}".prop_map(String::into_bytes),
        2 => (seq(), small_agent_msg()).prop_map(|(s, m)| frame(s, &m)),
        2 => (seq(), small_agent_msg(), any::<Index>()).prop_map(|(s, m, cut)| {
            let f = frame(s, &m);
            f[..cut.index(f.len())].to_vec()
        }),
        // A valid frame around JSON that is not a record, or nested deeper
        // than serde_json's recursion limit: the checksum passes, so
        // decoding the payload must fail cleanly.
        1 => (seq(), select(vec!["{}", "null", "[1,2]", "{\"type\":\"nope\"}", "{\"type\":\"heartbeat\"}", "\"\\u0000\""]), 0..200usize)
            .prop_map(|(s, json, depth)| {
                let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
                for _ in 0..depth {
                    v = serde_json::Value::Array(vec![v]);
                }
                frame(s, &v)
            }),
    ].boxed()
}

fn chunk_sizes() -> BoxedStrategy<Vec<usize>> {
    vec(prop_oneof![1usize..4, 1usize..64, 64usize..4096], 1..8).boxed()
}

/// A stream of consecutive frames with printk noise around them, and where
/// each frame sits in the stream.
#[derive(Debug, Clone)]
struct Wire {
    bytes: Vec<u8>,
    frames: Vec<Placed>,
    /// The noise bytes that went in, in order.
    noise: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Placed {
    seq: u64,
    msg: AgentMsg,
    /// Byte range of the frame, its newline included.
    at: std::ops::Range<usize>,
}

fn wire(
    msgs: impl Strategy<Value = AgentMsg> + 'static,
    max_frames: usize,
) -> impl Strategy<Value = Wire> {
    let noise = || vec((noise_line(), terminator()), 0..3);
    (
        prop_oneof![0..20u64, 0..(u64::MAX / 2)],
        vec((noise(), msgs), 1..max_frames),
        noise(),
    )
        .prop_map(|(first, items, tail)| {
            let mut w = Wire {
                bytes: Vec::new(),
                frames: Vec::new(),
                noise: Vec::new(),
            };
            let add_noise = |w: &mut Wire, noise: &[(Vec<u8>, &[u8])]| {
                for (line, end) in noise {
                    w.bytes.extend_from_slice(line);
                    w.bytes.extend_from_slice(end);
                    w.noise.extend_from_slice(line);
                    w.noise.extend_from_slice(end);
                }
            };
            for (i, (noise, msg)) in items.into_iter().enumerate() {
                add_noise(&mut w, &noise);
                let seq = first + i as u64;
                let start = w.bytes.len();
                encode_frame(seq, &msg, &mut w.bytes);
                w.frames.push(Placed {
                    seq,
                    msg,
                    at: start..w.bytes.len(),
                });
            }
            add_noise(&mut w, &tail);
            w
        })
        // Noise that spells the magic (across pieces, or random bytes that
        // happen to) is a frame lookalike, which other properties cover.
        .prop_filter("noise must not contain the frame magic", |w| {
            let mut between = Vec::new();
            let mut last = 0;
            for f in &w.frames {
                between.push(&w.bytes[last..f.at.start]);
                last = f.at.end;
            }
            between.push(&w.bytes[last..]);
            between.iter().all(|n| find(n, MAGIC).is_none())
        })
}

fn strip_line_ends(b: &[u8]) -> Vec<u8> {
    b.iter()
        .copied()
        .filter(|&c| c != b'\n' && c != b'\r')
        .collect()
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(256))]

    /// Any bytes, in any chunking: no panic, the same output as when fed at
    /// once (a transport's read sizes must not change what is decoded), and
    /// an output of the documented shape.
    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_does_not_matter(
        pieces in vec(soup_piece(), 0..24),
        sizes in chunk_sizes(),
    ) {
        let bytes = pieces.concat();
        let whole: Vec<Decoded<AgentMsg>> = decode_whole(&bytes);
        let chunked: Vec<Decoded<AgentMsg>> = decode_chunked(&bytes, &sizes);
        prop_assert_eq!(&whole, &chunked);
        check_output_shape(&whole)?;
        // The host and the agent decode different types, and a generic
        // JSON value accepts any payload that passes its checksum.
        let host: Vec<Decoded<HostMsg>> = decode_chunked(&bytes, &sizes);
        check_output_shape(&host)?;
        let value: Vec<Decoded<serde_json::Value>> = decode_chunked(&bytes, &sizes);
        check_output_shape(&value)?;
        prop_assert_eq!(value, decode_whole::<serde_json::Value>(&bytes));
    }

    /// Frames interleaved with printk lines, including noise with no newline
    /// before a frame, CRLF and non-UTF-8 bytes: every frame comes back, in
    /// order, with nothing reported lost or corrupt, and no noise byte is
    /// dropped or taken for a frame.
    #[test]
    fn frames_survive_printk_interleaving(w in wire(agent_msg(), 8), sizes in chunk_sizes()) {
        let out: Vec<Decoded<AgentMsg>> = decode_chunked(&w.bytes, &sizes);
        check_output_shape(&out)?;
        let records: Vec<(u64, &AgentMsg)> = out
            .iter()
            .filter_map(|d| match d { Decoded::Record { seq, msg } => Some((*seq, msg)), _ => None })
            .collect();
        let sent: Vec<(u64, &AgentMsg)> = w.frames.iter().map(|f| (f.seq, &f.msg)).collect();
        prop_assert_eq!(records, sent);
        for d in &out {
            prop_assert!(
                matches!(d, Decoded::Record { .. } | Decoded::Noise(_)),
                "unexpected {:?}",
                d
            );
        }
        let noise: Vec<u8> = out
            .iter()
            .filter_map(|d| match d { Decoded::Noise(n) => Some(n.as_slice()), _ => None })
            .flatten()
            .copied()
            .collect();
        prop_assert_eq!(strip_line_ends(&noise), strip_line_ends(&w.noise));
    }

    /// Bytes dropped anywhere (single bytes and bursts, as from a UART FIFO
    /// overrun), with printk around the frames:
    /// - every record decoded is exactly a frame that was sent, with its own
    ///   sequence number: damaged bytes are never trusted;
    /// - every frame whose bytes all arrived is decoded, even when a damaged
    ///   frame ran into it (its newline lost);
    /// - every loss between two decoded records is reported as a Gap with
    ///   the right numbers (checked by `check_output_shape`);
    /// - a line that carries the frame magic yields a record or a Corrupt
    ///   report, never silence or mere noise.
    #[test]
    fn dropped_bytes_never_yield_a_wrong_record_and_gaps_are_reported(
        w in wire(small_agent_msg(), 12),
        drops in vec((any::<Index>(), prop_oneof![3 => 1usize..=1, 1 => 2usize..=40]), 1..6),
        sizes in chunk_sizes(),
    ) {
        let mut lost = vec![false; w.bytes.len()];
        for (at, len) in &drops {
            let start = at.index(w.bytes.len());
            for l in lost.iter_mut().skip(start).take(*len) {
                *l = true;
            }
        }
        let bytes: Vec<u8> = w.bytes.iter().zip(&lost).filter(|(_, &l)| !l).map(|(&b, _)| b).collect();

        let per_line = decode_per_line::<AgentMsg>(&bytes);
        for (line, o) in &per_line {
            if find(line, MAGIC).is_some() {
                prop_assert!(
                    o.iter().any(|d| matches!(d, Decoded::Record { .. } | Decoded::Corrupt { .. })),
                    "a frame-like line was neither decoded nor reported corrupt: {:?} -> {:?}",
                    String::from_utf8_lossy(line),
                    o
                );
            }
        }
        let out: Vec<Decoded<AgentMsg>> = per_line.into_iter().flat_map(|(_, o)| o).collect();
        prop_assert_eq!(&out, &decode_chunked::<AgentMsg>(&bytes, &sizes));
        check_output_shape(&out)?;

        let mut last_index = None;
        for d in &out {
            if let Decoded::Record { seq, msg } = d {
                let i = w.frames.iter().position(|f| f.seq == *seq);
                prop_assert!(i.is_some(), "record with a sequence number never sent: {} {:?}", seq, msg);
                let i = i.unwrap();
                prop_assert_eq!(msg, &w.frames[i].msg, "record {} has another frame's content", seq);
                prop_assert!(last_index < Some(i), "record {} out of order or repeated", seq);
                last_index = Some(i);
            }
        }
        for f in &w.frames {
            if !lost[f.at.clone()].contains(&true) {
                prop_assert!(
                    out.iter().any(|d| matches!(d, Decoded::Record { seq, .. } if *seq == f.seq)),
                    "intact frame {} was not decoded; stream after drops: {:?}",
                    f.seq,
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }

    /// Any single byte of a frame's JSON changed to any other value: the
    /// CRC catches it (CRC-32 detects every error confined to 32 bits), so
    /// the frame is reported Corrupt and yields no record.
    #[test]
    fn a_changed_payload_byte_is_always_detected(
        s in seq(),
        msg in agent_msg(),
        at in any::<Index>(),
        xor in 1u8..=255,
    ) {
        let mut f = frame(s, &msg);
        // The payload is everything after the third space, up to the newline.
        let json_start = f.iter().enumerate().filter(|(_, &b)| b == b' ').nth(2).unwrap().0 + 1;
        let i = json_start + at.index(f.len() - 1 - json_start);
        f[i] ^= xor;
        let out: Vec<Decoded<AgentMsg>> = decode_whole(&f);
        prop_assert!(!out.iter().any(|d| matches!(d, Decoded::Record { .. })), "changed byte {} accepted: {:?}", i, out);
        prop_assert!(out.iter().any(|d| matches!(d, Decoded::Corrupt { .. })), "changed byte {} not reported: {:?}", i, out);
    }

    /// Any single byte of a frame's header (magic, sequence number,
    /// checksum field) changed: the frame may be lost, but it must never be
    /// decoded as anything but itself. (A header change that keeps the
    /// meaning, such as an upper-case hex digit in the checksum, may pass.)
    #[test]
    fn a_changed_header_byte_never_yields_a_wrong_record(
        s in seq(),
        msg in small_agent_msg(),
        at in any::<Index>(),
        xor in 1u8..=255,
    ) {
        let mut f = frame(s, &msg);
        let json_start = f.iter().enumerate().filter(|(_, &b)| b == b' ').nth(2).unwrap().0 + 1;
        let i = at.index(json_start);
        f[i] ^= xor;
        let out: Vec<Decoded<AgentMsg>> = decode_whole(&f);
        for d in &out {
            if let Decoded::Record { seq, msg: got } = d {
                prop_assert_eq!((*seq, got), (s, &msg), "header byte {} changed to {:?}: {:?}", i, f[i] as char, String::from_utf8_lossy(&f));
            }
        }
    }

    /// Every agent record, with any field values, survives encode + decode
    /// exactly, in any chunking and after any sequence number.
    #[test]
    fn agent_messages_round_trip(msgs in vec((seq(), agent_msg()), 1..6), sizes in chunk_sizes()) {
        let mut bytes = Vec::new();
        for (s, m) in &msgs {
            encode_frame(*s, m, &mut bytes);
        }
        let out: Vec<Decoded<AgentMsg>> = decode_chunked(&bytes, &sizes);
        let records: Vec<(u64, AgentMsg)> = out
            .into_iter()
            .filter_map(|d| match d {
                Decoded::Record { seq, msg } => Some((seq, msg)),
                Decoded::Gap { .. } => None,
                other => panic!("a valid frame decoded as {other:?}"),
            })
            .collect();
        prop_assert_eq!(records, msgs);
    }

    /// Every host command survives encode + decode exactly.
    #[test]
    fn host_messages_round_trip(s in seq(), msg in host_msg(), sizes in chunk_sizes()) {
        let f = frame(s, &msg);
        let out: Vec<Decoded<HostMsg>> = decode_chunked(&f, &sizes);
        prop_assert_eq!(out, vec![Decoded::Record { seq: s, msg }]);
    }
}

// ---------------------------------------------------------------------------
// Deterministic edge cases the generators reach too rarely

/// JSON has no NaN or infinity: serde_json writes them as `null`. Such a
/// record must be reported Corrupt rather than decoded with another value.
#[test]
fn non_finite_floats_are_rejected_not_misread() {
    for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let msg = AgentMsg::Interval(Box::new(IntervalStats {
            psi: Some(PsiMemory {
                some_avg10: v,
                ..Default::default()
            }),
            ..Default::default()
        }));
        let out: Vec<Decoded<AgentMsg>> = decode_whole(&frame(0, &msg));
        assert!(
            matches!(out.as_slice(), [Decoded::Corrupt { .. }]),
            "{v}: {out:?}"
        );
    }
}

/// A line longer than MAX_LINE is dropped with one Corrupt report in any
/// chunking, and the frame after it is decoded. (Property inputs are far
/// shorter than MAX_LINE, so this path needs its own test.)
#[test]
fn oversized_line_is_reported_once_in_any_chunking() {
    let mut bytes = b"@H2 0 00000000 ".to_vec();
    bytes.resize(MAX_LINE + 100, b'x');
    bytes.push(b'\n');
    let good = AgentMsg::Heartbeat { uptime_ms: 7 };
    bytes.extend(frame(1, &good));
    for sizes in [
        &[usize::MAX][..],
        &[4096],
        &[MAX_LINE],
        &[MAX_LINE + 1],
        &[1 << 16, 3, 1 << 19],
    ] {
        let out: Vec<Decoded<AgentMsg>> = decode_chunked(&bytes, sizes);
        assert!(
            matches!(out.as_slice(), [Decoded::Corrupt { .. }, Decoded::Record { seq: 1, msg }] if *msg == good),
            "chunks {sizes:?}: {:?}",
            out.iter()
                .map(|d| format!("{d:?}").chars().take(120).collect::<String>())
                .collect::<Vec<_>>()
        );
    }
}
