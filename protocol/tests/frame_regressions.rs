//! Minimal reproductions of what the framing properties in `fuzz_frames.rs`
//! found, one test per defect, so each stays checked once fixed.

use hilt_kernlog::{Event, EventKind};
use hilt_protocol::*;

fn frame(seq: u64, msg: &AgentMsg) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(seq, msg, &mut out);
    out
}

fn decode(bytes: &[u8]) -> Vec<Decoded<AgentMsg>> {
    let mut d = FrameDecoder::new();
    let mut out = Vec::new();
    d.feed(bytes, &mut out);
    d.finish(&mut out);
    out
}

fn records(out: &[Decoded<AgentMsg>]) -> Vec<(u64, &AgentMsg)> {
    out.iter()
        .filter_map(|d| match d {
            Decoded::Record { seq, msg } => Some((*seq, msg)),
            _ => None,
        })
        .collect()
}

const HB: AgentMsg = AgentMsg::Heartbeat { uptime_ms: 5 };

/// A frame numbered u64::MAX made `next_seq = seq + 1` overflow: a panic
/// in debug builds (the test profile), a silent wrap in release. Any peer,
/// or a corrupted counter, can send that number. Fix: `seq.checked_add(1)`
/// (no expectation after the last number).
#[test]
fn the_largest_sequence_number_does_not_panic() {
    let mut bytes = frame(u64::MAX, &HB);
    bytes.extend(frame(0, &HB));
    let out = decode(&bytes);
    assert_eq!(records(&out), vec![(u64::MAX, &HB), (0, &HB)], "{out:?}");
}

/// The CRC covers only the JSON, not the sequence number in front of it: a
/// changed or dropped digit of the sequence number yields a record with
/// the wrong number, which the decoder then reports as a Gap that did not
/// happen (and hides the real position of the frame in the stream). Fix:
/// the CRC covers `<seq> <json>`; as that changes the wire format, bump the
/// magic or PROTOCOL_VERSION with it.
#[test]
fn a_damaged_sequence_number_is_not_trusted() {
    let good = frame(12, &HB);
    let changed = String::from_utf8(good.clone())
        .unwrap()
        .replacen("@H2 12 ", "@H2 13 ", 1);
    let dropped = String::from_utf8(good)
        .unwrap()
        .replacen("@H2 12 ", "@H2 1 ", 1);
    for damaged in [changed, dropped] {
        let out = decode(damaged.as_bytes());
        assert!(records(&out).is_empty(), "{damaged:?} was trusted: {out:?}");
        assert!(
            matches!(out.as_slice(), [Decoded::Corrupt { .. }]),
            "{damaged:?}: {out:?}"
        );
    }
}

/// When a frame's newline is lost, the next frame lands on the same line.
/// The decoder tries only the first `@H2 ` of a line, so the intact frame
/// after the damaged one is lost too, even though the module comment says a
/// frame may follow garbage on its line. The same happens when the garbage
/// is the remains of a frame whose payload quoted `@H2 ` (found by the
/// dropped-bytes property: only the tail of frame 996 survived). Fix: when
/// the frame at the first magic fails, try the next occurrences on the line
/// (a bounded number), reporting what was skipped as Corrupt.
#[test]
fn an_intact_frame_after_a_damaged_one_on_the_same_line_is_decoded() {
    let mut bytes = frame(0, &HB);
    let mut second = frame(1, &HB);
    second.pop(); // its newline is lost
    bytes.extend(second);
    bytes.extend(frame(2, &HB));
    let out = decode(&bytes);
    assert_eq!(records(&out), vec![(0, &HB), (2, &HB)], "{out:?}");
    assert!(
        out.iter().any(|d| matches!(d, Decoded::Corrupt { .. })),
        "frame 1 not reported: {out:?}"
    );
    assert!(
        out.contains(&Decoded::Gap {
            expected: 1,
            got: 2
        }),
        "{out:?}"
    );

    let quoting = AgentMsg::Error {
        stage: Stage::Watch,
        message: "see @H2 above".into(),
    };
    let damaged = frame(1, &quoting);
    let at = damaged.windows(4).rposition(|w| w == b"see ").unwrap();
    let mut bytes = frame(0, &HB);
    bytes.extend_from_slice(&damaged[at..damaged.len() - 1]); // its head and newline lost
    bytes.extend(frame(2, &HB));
    let out = decode(&bytes);
    assert_eq!(records(&out), vec![(0, &HB), (2, &HB)], "{out:?}");
}

/// serde_json's default float parser is fast but not always exact: this
/// printk timestamp comes back one ULP off (…696e-191 instead of
/// …6961e-191). Fix: the `float_roundtrip` feature of serde_json, which
/// parses exactly.
#[test]
fn floats_come_back_exactly() {
    let t = -7.801348852576961e-191;
    let msg = AgentMsg::Kernel {
        uptime_ms: 0,
        event: Box::new(Event {
            kind: EventKind::HungTask,
            title: String::new(),
            task: None,
            frames: vec![],
            excerpt: String::new(),
            timestamp: Some(t),
            caller: None,
            corrupted: false,
        }),
    };
    let out = decode(&frame(0, &msg));
    assert_eq!(records(&out), vec![(0, &msg)], "{out:?}");
}
