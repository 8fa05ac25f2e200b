//! Property tests of every decoder in the transports that reads what a board
//! or a terminal server sends: telnet and RFC 2217, adb messages, sync
//! replies and shell v2 output (host side; the device side is in
//! adbd/tests/fuzz_adbd.rs), fastboot responses, U-Boot's console output,
//! and the sparse images hilt writes for fastboot.
//!
//! Whatever arrives: no panic, nothing kept beyond the limits the code
//! states, and everything hilt encodes comes back the same when decoded.
//!
//! 256 cases per property (64 for those that open sockets) unless
//! PROPTEST_CASES is set (docs/fuzzing.md).

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use hilt_transports::adb::sync::{self, shell_packet, shell_v2_output, Channel};
use hilt_transports::adb::wire::{
    Message, MessageIo, StreamIo, A_VERSION, A_VERSION_MIN, MAX_PAYLOAD,
};
use hilt_transports::console::telnet::{self, Decoder, Event, IAC, SB, SE};
use hilt_transports::console::Rfc2217Console;
use hilt_transports::fastboot::proto::MAX_RESPONSE;
use hilt_transports::fastboot::sparse::{self, SparseImage};
use hilt_transports::fastboot::{Fastboot, FastbootError, FastbootIo};
use hilt_transports::ssh::ExecChunk;
use hilt_transports::uboot::{BlockInterface, UBoot, UBootConfig, UBootError};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = None;
    c
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `bytes` cut into pieces of the given sizes (cycled).
fn cut(bytes: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(n.clamp(1, rest.len()));
        out.push(now.to_vec());
        rest = later;
    }
    out
}

/// Telnet traffic: data, escaped 0xff, commands, negotiations, well-formed
/// and unterminated subnegotiations, and raw bytes.
fn telnet_soup() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            4 => vec(any::<u8>(), 0..20).prop_map(|d| telnet::escape(&d)),
            2 => vec(any::<u8>(), 0..20),
            1 => (251u8..=254, any::<u8>()).prop_map(|(v, o)| vec![IAC, v, o]),
            1 => any::<u8>().prop_map(|c| vec![IAC, c]),
            2 => (any::<u8>(), vec(any::<u8>(), 0..30)).prop_map(|(o, p)| telnet::subnegotiation(o, &p)),
            1 => (any::<u8>(), vec(any::<u8>(), 0..30)).prop_map(|(o, p)| [vec![IAC, SB, o], p].concat()),
            1 => (4090..4200usize).prop_map(|n| [vec![IAC, SB, 44], vec![7; n], vec![IAC, SE]].concat()),
        ],
        0..16,
    )
    .prop_map(|v| v.concat())
}

fn telnet_decode(bytes: &[u8], sizes: &[usize]) -> (Vec<u8>, Vec<Event>) {
    let mut d = Decoder::default();
    let (mut data, mut events) = (Vec::new(), Vec::new());
    for piece in cut(bytes, sizes) {
        d.feed(&piece, &mut data, &mut |e| events.push(e));
    }
    (data, events)
}

/// A replayed adb stream: canned reads, recorded writes.
struct Canned {
    reads: VecDeque<Vec<u8>>,
    written: Vec<u8>,
}

impl Canned {
    fn new(bytes: &[u8], sizes: &[usize]) -> Self {
        Self {
            reads: cut(bytes, sizes).into(),
            written: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl Channel for Canned {
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.written.extend_from_slice(data);
        Ok(())
    }
    async fn read_some(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.reads.pop_front())
    }
}

fn sync_reply(id: &[u8; 4], arg: u32, data: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend(arg.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// Sync replies a device might send, well formed or not.
fn sync_soup() -> impl Strategy<Value = Vec<u8>> {
    let id = proptest::sample::select(vec![
        *b"DATA", *b"DONE", *b"FAIL", *b"OKAY", *b"STAT", *b"QUIT", *b"xxxx",
    ]);
    vec(
        prop_oneof![
            3 => (id.clone(), vec(any::<u8>(), 0..100)).prop_map(|(id, d)| sync_reply(&id, d.len() as u32, &d)),
            1 => (id, prop_oneof![Just(u32::MAX), Just(65537u32), any::<u32>()]).prop_map(|(id, n)| sync_reply(&id, n, b"")),
            1 => vec(any::<u8>(), 0..30),
        ],
        0..10,
    )
    .prop_map(|v| v.concat())
}

/// A fastboot device that answers from a script and then hangs up.
struct Scripted {
    replies: VecDeque<Vec<u8>>,
}

#[async_trait::async_trait]
impl FastbootIo for Scripted {
    async fn send(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    async fn recv(&mut self) -> io::Result<Vec<u8>> {
        self.replies
            .pop_front()
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "device gone"))
    }
}

fn fastboot_reply() -> impl Strategy<Value = Vec<u8>> {
    let kind =
        proptest::sample::select(vec!["INFO", "TEXT", "OKAY", "FAIL", "DATA", "okay", "XXXX"]);
    prop_oneof![
        4 => (kind, "[ -~]{0,20}").prop_map(|(k, t)| format!("{k}{t}").into_bytes()),
        1 => "[0-9a-fA-F]{0,9}".prop_map(|h| format!("DATA{h}").into_bytes()),
        1 => vec(any::<u8>(), 0..300),
    ]
}

/// Block size, total blocks, and the blocks written as (block, bytes).
type Unsparsed = (u32, u32, Vec<(u32, Vec<u8>)>);

/// The sparse format as libsparse reads it, written here from the format's
/// description so that the encoder is checked against something it does
/// not share code with: the blocks a file writes, in order, as
/// (block, bytes); DONT_CARE leaves blocks out.
fn unsparse(file: &[u8]) -> Result<Unsparsed, String> {
    let u16_at = |at: usize| u16::from_le_bytes(file[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
    if file.len() < 28 || u32_at(0) != sparse::MAGIC || u16_at(4) != 1 {
        return Err("bad header".into());
    }
    if u16_at(8) != 28 || u16_at(10) != 12 {
        return Err("bad header sizes".into());
    }
    let (bs, total, chunks) = (u32_at(12), u32_at(16), u32_at(20));
    let mut at = 28;
    let mut block = 0u32;
    let mut out = Vec::new();
    for _ in 0..chunks {
        if file.len() < at + 12 {
            return Err("chunk header past the end".into());
        }
        let (kind, blocks, size) = (u16_at(at), u32_at(at + 4), u32_at(at + 8) as usize);
        let body = file
            .get(at + 12..at + size)
            .ok_or("chunk body past the end")?;
        match kind {
            sparse::CHUNK_RAW => {
                if body.len() != blocks as usize * bs as usize {
                    return Err("raw chunk size".into());
                }
                for (i, b) in body.chunks(bs as usize).enumerate() {
                    out.push((block + i as u32, b.to_vec()));
                }
            }
            sparse::CHUNK_FILL => {
                let value: [u8; 4] = body.try_into().map_err(|_| "fill chunk size")?;
                for i in 0..blocks {
                    out.push((block + i, value.repeat(bs as usize / 4)));
                }
            }
            sparse::CHUNK_DONT_CARE if body.is_empty() => {}
            sparse::CHUNK_CRC32 if body.len() == 4 && blocks == 0 => {}
            k => return Err(format!("chunk kind {k:#x} of {} bytes", body.len())),
        }
        block += blocks;
        at += size;
    }
    if at != file.len() || block != total {
        return Err(format!(
            "{block} of {total} blocks, {at} of {} bytes",
            file.len()
        ));
    }
    Ok((bs, total, out))
}

/// Images with the runs the encoder tells apart: fills of one word, zeros,
/// random blocks, and a partial last block.
fn image() -> impl Strategy<Value = (Vec<u8>, u32)> {
    let bs = prop_oneof![Just(4u32), Just(16), Just(64), Just(4096)];
    (bs, vec((0u8..3, any::<u32>(), 1..4usize), 0..8), 0..70usize).prop_map(|(bs, blocks, tail)| {
        let mut v = Vec::new();
        for (kind, word, n) in blocks {
            for _ in 0..n {
                match kind {
                    0 => v.extend(word.to_le_bytes().repeat(bs as usize / 4)),
                    1 => v.extend(vec![0u8; bs as usize]),
                    _ => v.extend((0..bs).map(|i| (word.wrapping_mul(i + 1) >> 7) as u8)),
                }
            }
        }
        v.extend((0..tail.min(bs as usize - 1)).map(|i| i as u8));
        (v, bs)
    })
}

/// A U-Boot that echoes each line typed and answers it with the next reply
/// of a script, then its prompt. It hangs up after the last reply, or when
/// the host types nothing for a moment (it is still looking for a prompt
/// the reply did not bring): either way the host gets an error at once
/// rather than after its command timeout.
async fn scripted_uboot(mut io: tokio::io::DuplexStream, replies: Vec<Vec<u8>>) {
    let mut replies = replies.into_iter().peekable();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    let quiet = Duration::from_millis(100);
    while let Ok(Ok(1)) = tokio::time::timeout(quiet, io.read(&mut b)).await {
        if b[0] != b'\n' {
            line.push(b[0]);
            continue;
        }
        let Some(reply) = replies.next() else { return };
        let mut out = std::mem::take(&mut line);
        out.extend(b"\r\n");
        out.extend(reply);
        out.extend(b"=> ");
        if io.write_all(&out).await.is_err() || replies.peek().is_none() {
            return;
        }
    }
}

fn uboot_with(replies: Vec<Vec<u8>>) -> UBoot<tokio::io::DuplexStream> {
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(scripted_uboot(b, replies));
    let cfg = UBootConfig {
        command_timeout: Duration::from_secs(2),
        ..UBootConfig::default()
    };
    UBoot::new(a, cfg)
}

/// What a U-Boot command may print: lines of text, status echoes with any
/// value, variable assignments, prompt lookalikes, and raw bytes.
fn uboot_output() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            3 => "[ -~]{0,30}\r\n".prop_map(String::into_bytes),
            2 => "hilt-status=-?[0-9]{0,12}\r\n".prop_map(String::into_bytes),
            2 => "(hilt_part|filesize|x)=[0-9a-fx]{0,20}\r\n".prop_map(String::into_bytes),
            1 => Just(b"=> ".to_vec()),
            1 => vec(any::<u8>(), 0..20).prop_map(|v| v.into_iter().filter(|&b| b != b'\n').collect()),
        ],
        0..5,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config(256))]

    /// Any telnet traffic in any chunking: the same data and commands as in
    /// one piece, no more data than came in, and subnegotiations cut at
    /// the decoder's cap.
    #[test]
    fn telnet_decodes_the_same_in_any_chunking(bytes in telnet_soup(), sizes in vec(1..50usize, 1..6)) {
        let (data, events) = telnet_decode(&bytes, &sizes);
        prop_assert_eq!(&(data.clone(), events.clone()), &telnet_decode(&bytes, &[usize::MAX]));
        prop_assert!(data.len() <= bytes.len());
        for e in &events {
            if let Event::Sub(_, payload) = e {
                prop_assert!(payload.len() < 4096, "a {}-byte subnegotiation kept", payload.len());
            }
        }
    }

    /// Escaped data comes back exactly, and a subnegotiation comes back as
    /// one event with its payload.
    #[test]
    fn telnet_round_trips(data in vec(any::<u8>(), 0..300), option in any::<u8>(), payload in vec(any::<u8>(), 0..200)) {
        let mut bytes = telnet::escape(&data);
        bytes.extend(telnet::subnegotiation(option, &payload));
        bytes.extend(telnet::escape(&data));
        let (got, events) = telnet_decode(&bytes, &[7]);
        prop_assert_eq!(got, [data.clone(), data].concat());
        prop_assert_eq!(events, vec![Event::Sub(option, payload)]);
    }

    /// Any adb byte stream on the host: messages read until the first
    /// error, none over the agreed payload size; and every message
    /// round trips.
    #[test]
    fn adb_host_reads_bounded_messages_and_round_trips(
        noise in vec(any::<u8>(), 0..200),
        msgs in vec((any::<u32>(), any::<u32>(), any::<u32>(), vec(any::<u8>(), 0..100)), 0..4),
        max in prop_oneof![Just(64u32), Just(MAX_PAYLOAD)],
    ) {
        block_on(async {
            let msgs: Vec<Message> = msgs.into_iter().map(|(c, a, b, d)| Message::new(c, a, b, d)).collect();
            let (a, mut b) = tokio::io::duplex(1 << 16);
            let mut bytes: Vec<u8> = msgs.iter().flat_map(Message::encode).collect();
            bytes.extend(&noise);
            b.write_all(&bytes).await.unwrap();
            drop(b);
            let mut io = StreamIo::new(a);
            for (i, m) in msgs.iter().enumerate() {
                io.version = if i % 2 == 0 { A_VERSION_MIN } else { A_VERSION };
                match io.recv(max).await {
                    Ok(got) => prop_assert_eq!(&got, m),
                    Err(_) => prop_assert!(m.data.len() > max as usize),
                }
                if m.data.len() > max as usize {
                    return Ok(());
                }
            }
            while let Ok(m) = io.recv(max).await {
                prop_assert!(m.data.len() <= max as usize);
            }
            Ok(())
        })?;
    }

    /// Any sync replies: pull, stat and push end in a result, never a
    /// panic; a pull never returns more than its limit.
    #[test]
    fn adb_sync_replies_never_panic_and_pulls_stay_in_limit(
        bytes in sync_soup(),
        sizes in vec(1..64usize, 1..5),
        limit in 0..500usize,
    ) {
        block_on(async {
            if let Ok(data) = sync::recv(&mut Canned::new(&bytes, &sizes), "/x", limit).await {
                prop_assert!(data.len() <= limit);
            }
            let _ = sync::stat(&mut Canned::new(&bytes, &sizes), "/x").await;
            let _ = sync::send(&mut Canned::new(&bytes, &sizes), "/x", 0o644, 0, b"abc").await;
            Ok(())
        })?;
    }

    /// A file sent as DATA chunks of any sizes comes back whole.
    #[test]
    fn adb_sync_pull_round_trips(body in vec(any::<u8>(), 0..3000), chunk in 1..1000usize, sizes in vec(1..300usize, 1..5)) {
        let mut bytes = Vec::new();
        for c in body.chunks(chunk) {
            bytes.extend(sync_reply(b"DATA", c.len() as u32, c));
        }
        bytes.extend(sync_reply(b"DONE", 0, b""));
        let got = block_on(sync::recv(&mut Canned::new(&bytes, &sizes), "/x", body.len())).unwrap();
        prop_assert_eq!(got, body);
    }

    /// Shell v2 output: packets round trip into stdout, stderr and the
    /// exit status in any chunking; any bytes end in a result.
    #[test]
    fn adb_shell_v2_output_round_trips(
        packets in vec((1u8..3, vec(any::<u8>(), 0..200)), 0..6),
        status in any::<u8>(),
        noise in vec(any::<u8>(), 0..100),
        sizes in vec(1..100usize, 1..5),
    ) {
        let mut bytes: Vec<u8> = packets.iter().flat_map(|(id, d)| shell_packet(*id, d)).collect();
        bytes.extend(shell_packet(3, &[status]));
        let (got, code) = block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
            let code = shell_v2_output(&mut Canned::new(&bytes, &sizes), &tx).await;
            drop(tx);
            let mut got = Vec::new();
            while let Some(c) = rx.recv().await {
                got.push(c);
            }
            (got, code)
        });
        prop_assert_eq!(code.unwrap(), i32::from(status));
        let want: Vec<ExecChunk> = packets
            .into_iter()
            .map(|(id, d)| if id == 1 { ExecChunk::Stdout(d) } else { ExecChunk::Stderr(d) })
            .collect();
        prop_assert_eq!(got, want);
        let out = block_on(async {
            let (tx, _rx) = tokio::sync::mpsc::channel(1024);
            shell_v2_output(&mut Canned::new(&noise, &sizes), &tx).await
        });
        let _ = out;
    }

    /// Any fastboot responses: each command ends in a result, never a
    /// panic, and the device's messages kept for the log stay bounded.
    #[test]
    fn fastboot_responses_never_panic(replies in vec(fastboot_reply(), 0..12), payload in vec(any::<u8>(), 0..64)) {
        block_on(async {
            let mut fb = Fastboot::new(Scripted { replies: replies.clone().into() });
            let _ = fb.getvar("product").await;
            let _ = fb.max_download_size().await;
            let _ = fb.download(&payload).await;
            let _ = fb.flash("userdata", &payload).await;
            let _ = fb.command("reboot").await;
            let messages = fb.take_messages();
            prop_assert!(messages.len() <= replies.len());
            for m in messages {
                // Invalid UTF-8 is shown as U+FFFD, three bytes for one.
                prop_assert!(m.len() <= 3 * MAX_RESPONSE + 16);
            }
            Ok(())
        })?;
    }

    /// OKAY's text and FAIL's message come back as the device sent them,
    /// after any INFO lines.
    #[test]
    fn fastboot_answers_round_trip(infos in vec("[ -~]{0,60}", 0..5), text in "[ -~]{0,60}", fail in any::<bool>()) {
        let mut replies: VecDeque<Vec<u8>> = infos.iter().map(|i| format!("INFO{i}").into_bytes()).collect();
        replies.push_back(format!("{}{text}", if fail { "FAIL" } else { "OKAY" }).into_bytes());
        let (answer, messages) = block_on(async {
            let mut fb = Fastboot::new(Scripted { replies });
            let a = fb.getvar("product").await;
            (a, fb.take_messages())
        });
        match answer {
            Ok(t) => prop_assert!(!fail && t == text.trim_end_matches('\0')),
            Err(FastbootError::Fail { message, .. }) => prop_assert!(fail && message == text),
            Err(e) => prop_assert!(false, "{}", e),
        }
        let want: Vec<String> = infos.iter().map(|i| format!("(bootloader) {i}")).collect();
        prop_assert_eq!(messages, want);
    }

    /// Every image comes back block for block from its sparse file, and
    /// from the pieces it is split into for any download size: each piece
    /// within the size, each covering the whole partition.
    #[test]
    fn sparse_images_round_trip((data, bs) in image(), max in 100..20_000u64, crc in any::<bool>()) {
        let img = SparseImage::new(&data, bs).unwrap();
        let padded = {
            let mut p = data.clone();
            p.resize(img.total_blocks as usize * bs as usize, 0);
            p
        };
        let check = |file: &[u8], blocks: &mut Vec<Option<Vec<u8>>>| -> Result<(), TestCaseError> {
            prop_assert!(sparse::is_sparse(file));
            let (fbs, total, written) = unsparse(file).map_err(TestCaseError::fail)?;
            prop_assert_eq!((fbs, total), (bs, img.total_blocks));
            for (b, bytes) in written {
                prop_assert!(blocks[b as usize].is_none(), "block {} written twice", b);
                blocks[b as usize] = Some(bytes);
            }
            Ok(())
        };
        let rebuilt = |blocks: Vec<Option<Vec<u8>>>| blocks.into_iter().map(|b| b.unwrap_or_default()).collect::<Vec<_>>().concat();
        let mut blocks = vec![None; img.total_blocks as usize];
        check(&img.encode_all(crc), &mut blocks)?;
        prop_assert_eq!(&rebuilt(blocks), &padded);
        if let Ok(pieces) = img.pieces(max) {
            let mut blocks = vec![None; img.total_blocks as usize];
            for p in &pieces {
                prop_assert!(p.len() as u64 <= max, "a {}-byte piece for {}", p.len(), max);
                check(p, &mut blocks)?;
            }
            prop_assert_eq!(&rebuilt(blocks), &padded);
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// A command's output comes back without echo, prompt or CRs; an
    /// empty output too.
    #[test]
    fn uboot_output_round_trips(lines in vec("[ -~]{0,40}", 0..5)) {
        let lines: Vec<String> = lines.into_iter().filter(|l| !l.starts_with("=> ")).collect();
        let reply = if lines.is_empty() { Vec::new() } else { format!("{}\r\n", lines.join("\r\n")).into_bytes() };
        let got = block_on(async { uboot_with(vec![reply]).run("version").await });
        prop_assert_eq!(got.unwrap(), lines.join("\n"));
    }

    /// Any output from U-Boot: the parsing of statuses, variables,
    /// partition extents and file sizes ends in a result, never a panic.
    #[test]
    fn uboot_output_never_panics(replies in vec(uboot_output(), 1..8)) {
        block_on(async {
            let _ = uboot_with(replies.clone()).run("version").await;
            let _ = uboot_with(replies.clone()).run_checked("version").await;
            let _ = uboot_with(replies.clone()).getenv("x").await;
            let _ = uboot_with(replies.clone()).tftp("loadaddr", "k.img", Duration::from_secs(2)).await;
            let r = uboot_with(replies.clone()).partition_extent(BlockInterface::Mmc, 1, 5, Duration::from_secs(2)).await;
            if let Err(UBootError::Timeout { tail, .. }) = r {
                prop_assert!(tail.len() <= 1200);
            }
            Ok(())
        })?;
    }

    /// An RFC 2217 server sending any telnet traffic after it accepts
    /// COM-PORT-OPTION: the console hands over exactly the data bytes, and
    /// commands and subnegotiations end in a result, never a panic.
    #[test]
    fn rfc2217_console_passes_exactly_the_data(soup in telnet_soup(), sizes in vec(1..64usize, 1..4)) {
        let (want, _) = telnet_decode(&soup, &[usize::MAX]);
        let got = block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let pieces = cut(&soup, &sizes);
            // The traffic starts once the console is connected: a DONT
            // COM-PORT-OPTION in it must not be read as the answer to the offer.
            let (connected, start) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                s.write_all(&[IAC, telnet::DO, telnet::OPT_COM_PORT]).await.unwrap();
                let _ = start.await;
                for p in pieces {
                    if s.write_all(&p).await.is_err() {
                        return;
                    }
                }
                // Reads what the client says until it hangs up.
                let _ = s.shutdown().await;
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink).await;
            });
            let mut c = Rfc2217Console::connect(&addr, None, Duration::from_secs(2)).await.unwrap();
            connected.send(()).unwrap();
            let mut got = Vec::new();
            let r = c.read_to_end(&mut got).await;
            drop(c);
            server.await.unwrap();
            r.map(|_| got)
        });
        prop_assert_eq!(got.unwrap(), want);
    }
}

/// A device that prints INFO lines without end kept every one of them for
/// the log: memory grew with the device's output, not with hilt's needs.
#[test]
fn fastboot_keeps_a_bounded_number_of_messages() {
    let mut replies: VecDeque<Vec<u8>> = (0..100_000)
        .map(|i| format!("INFO line {i}").into_bytes())
        .collect();
    replies.push_back(b"OKAYdone".to_vec());
    let messages = block_on(async {
        let mut fb = Fastboot::new(Scripted { replies });
        assert_eq!(fb.command("flash:userdata").await.unwrap(), "done");
        fb.take_messages()
    });
    assert!(messages.len() <= 1001, "{} messages kept", messages.len());
    assert!(
        messages.last().unwrap().contains("line 99999"),
        "the latest are kept"
    );
}

/// A command without output: U-Boot prints its prompt right after the
/// echo, and cutting the line break put back before it panicked.
#[test]
fn uboot_command_without_output_returns_nothing() {
    let got = block_on(async { uboot_with(vec![Vec::new()]).run("true").await });
    assert_eq!(got.unwrap(), "");
}
