//! Property tests of what hilt-adbd reads from the host: adb message headers
//! and payloads, the `sync:` service's requests, and shell v2 packets.
//!
//! Whatever arrives, nothing panics, nothing allocates more than the limits
//! the code states (a message payload, a sync path or DATA chunk, a shell
//! packet), and everything hilt encodes decodes back to itself. The host
//! side of the same formats is covered by transports/tests/fuzz_transports.rs.
//!
//! 256 cases per property unless PROPTEST_CASES is set (docs/fuzzing.md).

use std::io::Read;

use hilt_adbd::shell::{packet, Depacketizer, MAX_PACKET};
use hilt_adbd::sync::{serve, DATA_MAX};
use hilt_adbd::wire::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = None;
    c
}

/// Feeds `bytes` in pieces of the given sizes, cycled.
fn pieces<'a>(bytes: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = bytes;
    sizes.iter().cycle().map_while(move |&n| {
        if rest.is_empty() {
            return None;
        }
        let (now, later) = rest.split_at(n.clamp(1, rest.len()));
        rest = later;
        Some(now)
    })
}

fn command() -> impl Strategy<Value = u32> {
    prop_oneof![
        proptest::sample::select(vec![
            A_SYNC, A_CNXN, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_AUTH, A_STLS
        ]),
        any::<u32>(),
    ]
}

/// A reader that hands out at most `n` bytes per read, as a socket does.
struct Trickle<'a> {
    data: &'a [u8],
    n: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.n.min(buf.len()).min(self.data.len());
        buf[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

/// A reply's id, argument and body.
type Reply = (Vec<u8>, u32, Vec<u8>);

/// A sync reply as the device writes it: id, u32, then for DATA and FAIL
/// that many bytes, for STAT eight more.
fn split_replies(mut out: &[u8]) -> Result<Vec<Reply>, String> {
    let mut v = Vec::new();
    while !out.is_empty() {
        if out.len() < 8 {
            return Err(format!("a reply cut short: {out:?}"));
        }
        let id = out[..4].to_vec();
        let arg = u32::from_le_bytes(out[4..8].try_into().unwrap());
        let body = match &id[..] {
            b"DATA" | b"FAIL" => arg as usize,
            b"STAT" => 8,
            b"OKAY" | b"DONE" => 0,
            other => return Err(format!("unknown reply {other:?}")),
        };
        if out.len() < 8 + body {
            return Err(format!(
                "{:?} reply cut short",
                String::from_utf8_lossy(&id)
            ));
        }
        v.push((id, arg, out[8..8 + body].to_vec()));
        out = &out[8 + body..];
    }
    Ok(v)
}

fn request(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend((data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// One sync request, with every path inside `dir` so that SEND cannot
/// write outside the test's directory.
#[derive(Debug, Clone)]
enum Req {
    Send {
        name: u8,
        body: Vec<u8>,
        chunk: usize,
    },
    Stat(u8),
    Recv(u8),
    /// A request id of four arbitrary bytes with an arbitrary argument.
    Raw([u8; 4], Vec<u8>),
    /// A length field that lies, then whatever follows.
    Lying([u8; 4], u32),
    Quit,
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        3 => (0..4u8, vec(any::<u8>(), 0..3000), 1..2000usize)
            .prop_map(|(name, body, chunk)| Req::Send { name, body, chunk }),
        2 => (0..5u8).prop_map(Req::Stat),
        2 => (0..5u8).prop_map(Req::Recv),
        1 => (any::<[u8; 4]>(), vec(any::<u8>(), 0..40))
            .prop_filter("SEND names a path; the structured case covers it", |(id, _)| id != b"SEND")
            .prop_map(|(id, arg)| Req::Raw(id, arg)),
        1 => (
            proptest::sample::select(vec![*b"STAT", *b"RECV", *b"DATA", *b"DONE"]),
            prop_oneof![Just(u32::MAX), Just(1025u32), Just(DATA_MAX as u32 + 1), any::<u32>()],
        )
            .prop_map(|(id, len)| Req::Lying(id, len)),
        1 => Just(Req::Quit),
    ]
}

fn encode_reqs(dir: &std::path::Path, reqs: &[Req]) -> Vec<u8> {
    let path = |n: u8| dir.join(format!("f{n}")).display().to_string();
    let mut v = Vec::new();
    for r in reqs {
        match r {
            Req::Send { name, body, chunk } => {
                v.extend(request(
                    b"SEND",
                    format!("{},{}", path(*name), 0o100644).as_bytes(),
                ));
                for c in body.chunks(*chunk) {
                    v.extend(request(b"DATA", c));
                }
                v.extend(b"DONE\0\0\0\0");
            }
            Req::Stat(n) => v.extend(request(b"STAT", path(*n).as_bytes())),
            Req::Recv(n) => v.extend(request(b"RECV", path(*n).as_bytes())),
            Req::Raw(id, arg) => v.extend(request(id, arg)),
            Req::Lying(id, len) => {
                v.extend(id);
                v.extend(len.to_le_bytes());
                v.extend(b"short");
            }
            Req::Quit => v.extend(request(b"QUIT", b"")),
        }
    }
    v
}

proptest! {
    #![proptest_config(config(256))]

    /// Any 24 bytes: no panic, and an accepted header never promises more
    /// than the payload limit it was given.
    #[test]
    fn any_header_decodes_within_the_limit(h in any::<[u8; HEADER_LEN]>(), max in prop_oneof![Just(MAX_PAYLOAD), Just(MAX_PAYLOAD_V1), any::<u32>()]) {
        if let Ok(header) = Header::decode(&h, max) {
            prop_assert!(header.data_length <= max);
        }
    }

    /// Any bytes read as messages until the first error: every message read
    /// stays within the payload limit and re-encodes to the very bytes it
    /// came from.
    #[test]
    fn any_byte_stream_reads_as_bounded_messages(
        bytes in vec(any::<u8>(), 0..600),
        frames in vec((command(), any::<u32>(), any::<u32>(), vec(any::<u8>(), 0..80)), 0..4),
        trickle in 1..64usize,
        version in prop_oneof![Just(A_VERSION), Just(A_VERSION_MIN)],
    ) {
        // Valid messages around the noise, so that reads get past the header.
        let mut input = Vec::new();
        for (c, a0, a1, d) in &frames {
            input.extend(Message::new(*c, *a0, *a1, d.clone()).encode());
        }
        input.extend(&bytes);
        let mut r = Trickle { data: &input, n: trickle };
        let mut consumed = 0;
        while let Ok(m) = read_message(&mut r, 64, version) {
            prop_assert!(m.data.len() <= 64);
            let raw = m.encode();
            // The checksum is only checked below A_VERSION: at A_VERSION a
            // message may carry any checksum, which encode recomputes.
            if version < A_VERSION {
                let check = &input[consumed + 16..consumed + 20];
                if check != [0, 0, 0, 0] {
                    prop_assert_eq!(&raw[..], &input[consumed..consumed + raw.len()]);
                }
            }
            prop_assert_eq!(&raw[..16], &input[consumed..consumed + 16]);
            consumed += raw.len();
        }
    }

    /// Every message round trips at both versions, in any read sizes.
    #[test]
    fn messages_round_trip(
        msgs in vec((command(), any::<u32>(), any::<u32>(), vec(any::<u8>(), 0..300)), 1..6),
        trickle in 1..100usize,
    ) {
        let msgs: Vec<Message> = msgs.into_iter().map(|(c, a, b, d)| Message::new(c, a, b, d)).collect();
        let bytes: Vec<u8> = msgs.iter().flat_map(Message::encode).collect();
        for version in [A_VERSION_MIN, A_VERSION] {
            let mut r = Trickle { data: &bytes, n: trickle };
            for m in &msgs {
                prop_assert_eq!(&read_message(&mut r, MAX_PAYLOAD, version).unwrap(), m);
            }
            prop_assert!(read_message(&mut r, MAX_PAYLOAD, version).is_err(), "nothing after the last");
        }
    }

    /// Below A_VERSION, one changed payload byte always fails the checksum
    /// (a plain sum changes by the byte's difference).
    #[test]
    fn a_changed_payload_byte_fails_the_old_checksum(
        data in vec(any::<u8>(), 1..200),
        at in any::<Index>(),
        xor in 1u8..,
    ) {
        let mut raw = Message::new(A_WRTE, 1, 2, data.clone()).encode();
        let i = HEADER_LEN + at.index(data.len());
        raw[i] ^= xor;
        prop_assert!(read_message(&mut &raw[..], MAX_PAYLOAD, A_VERSION_MIN).is_err());
    }

    /// Shell v2 packets round trip in any chunking.
    #[test]
    fn shell_packets_round_trip(
        packets in vec((any::<u8>(), vec(any::<u8>(), 0..300)), 0..8),
        sizes in vec(1..400usize, 1..8),
    ) {
        let bytes: Vec<u8> = packets.iter().flat_map(|(id, d)| packet(*id, d)).collect();
        let mut d = Depacketizer::default();
        let mut got = Vec::new();
        for p in pieces(&bytes, &sizes) {
            got.extend(d.push(p).unwrap());
        }
        prop_assert_eq!(got, packets);
    }

    /// Any bytes: no panic; what comes out is never more than went in, a
    /// length over the limit is an error, and the result does not depend on
    /// how the bytes were cut.
    #[test]
    fn any_bytes_depacketize_within_bounds(
        bytes in vec(any::<u8>(), 0..2000),
        sizes in vec(1..300usize, 1..8),
    ) {
        let run = |sizes: &[usize]| {
            let mut d = Depacketizer::default();
            let mut got = Vec::new();
            for p in pieces(&bytes, sizes) {
                match d.push(p) {
                    Ok(v) => got.extend(v),
                    Err(_) => return (got, true),
                }
            }
            (got, false)
        };
        let (got, failed) = run(&sizes);
        prop_assert_eq!(&(got.clone(), failed), &run(&[usize::MAX]));
        let out: usize = got.iter().map(|(_, d)| d.len() + 5).sum();
        prop_assert!(out <= bytes.len());
        for (_, d) in &got {
            prop_assert!(d.len() <= MAX_PACKET);
        }
    }

    /// Any sequence of sync requests, including unknown ids and lying
    /// lengths: no panic, every reply is well formed, and a file sent is
    /// what STAT and RECV then report.
    #[test]
    fn sync_requests_get_well_formed_replies(reqs in vec(req(), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let input = encode_reqs(dir.path(), &reqs);
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = serve(&input[..], &tx);
        drop(tx);
        let out: Vec<u8> = rx.iter().flatten().collect();
        let replies = split_replies(&out).map_err(TestCaseError::fail)?;
        // Only files the test sent exist, each at most the largest body.
        let data: usize = replies.iter().filter(|r| r.0 == b"DATA").map(|r| r.2.len()).sum();
        let sent: usize = reqs.iter().map(|r| match r { Req::Send { body, .. } => body.len(), _ => 0 }).sum();
        prop_assert!(data <= sent * reqs.len(), "{} bytes of DATA", data);
        // The structured prefix, up to the first malformed request, is
        // served in order: its last SEND of each name is what RECV returns.
        let mut files = std::collections::BTreeMap::new();
        let mut expect: Vec<Vec<u8>> = Vec::new();
        for r in &reqs {
            match r {
                Req::Send { name, body, .. } => { files.insert(*name, body.clone()); }
                Req::Recv(n) => {
                    if let Some(b) = files.get(n) { expect.push(b.clone()); }
                }
                Req::Stat(_) => {}
                _ => break,
            }
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        for (id, _, body) in &replies {
            match &id[..] {
                b"DATA" => cur.get_or_insert_with(Vec::new).extend(body),
                b"DONE" => got.push(cur.take().unwrap_or_default()),
                _ => {}
            }
        }
        prop_assert!(got.len() >= expect.len(), "{} RECVs answered, {} expected", got.len(), expect.len());
        prop_assert_eq!(&got[..expect.len()], &expect[..]);
    }
}
