//! Property tests of the console frame splitter ([`FrameTap`]), which
//! separates the agent's frames from console text on a shared UART. A unit
//! test module because the harness is a binary crate.
//!
//! For any bytes in any chunking: the same split as in one piece, nothing
//! invented (each torn frame adds the one line break that ends it), at most
//! a frame's worth held back; and text and frames that were interleaved come
//! back apart exactly.
//!
//! 256 cases per property unless PROPTEST_CASES is set (docs/fuzzing.md).

use proptest::collection::vec;
use proptest::prelude::*;

use super::capture::FrameTap;

fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = None;
    c
}

fn tap(input: &[u8], sizes: &[usize]) -> (Vec<u8>, Vec<u8>) {
    let mut tap = FrameTap::default();
    let (mut text, mut frames) = (Vec::new(), Vec::new());
    let mut rest = input;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(n.clamp(1, rest.len()));
        tap.split(now, &mut text, &mut frames);
        rest = later;
    }
    (text, frames)
}

fn frame(seq: u64, v: &serde_json::Value) -> Vec<u8> {
    let mut f = Vec::new();
    hilt_protocol::encode_frame(seq, v, &mut f);
    f
}

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(any::<u8>(), 0..30),
        2 => proptest::sample::select(vec![&b"@H2 "[..], b"@H", b"@", b"\r\n", b"\r", b"\n", b"[   12.345678] ", b"@H9"])
            .prop_map(<[u8]>::to_vec),
        2 => (any::<u64>(), "[ -~]{0,30}").prop_map(|(s, t)| frame(s, &serde_json::Value::from(t))),
    ]
}

/// Console text that cannot be taken for a frame: no `@`, lines ended by
/// `\r\n` as the kernel ends them.
fn text_line() -> impl Strategy<Value = Vec<u8>> {
    "[^@\r\n]{0,40}".prop_map(|l| format!("{l}\r\n").into_bytes())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_split_the_same_in_any_chunking(pieces in vec(piece(), 0..20), sizes in vec(1..40usize, 1..6)) {
        let input = pieces.concat();
        let (text, frames) = tap(&input, &sizes);
        prop_assert_eq!(&(text.clone(), frames.clone()), &tap(&input, &[usize::MAX]));
        let tears = input.iter().filter(|&&b| b == b'\r').count();
        let out = text.len() + frames.len();
        prop_assert!(out <= input.len() + tears, "{} bytes out of {}", out, input.len());
        // Held back: at most the frame in progress and two bytes of magic.
        let open_frame = input.len() - input.iter().rposition(|&b| b == b'\n' || b == b'\r').map_or(0, |i| i + 1);
        prop_assert!(out + open_frame + 2 >= input.len(), "{} bytes out of {}", out, input.len());
    }

    #[test]
    fn interleaved_text_and_frames_come_apart_exactly(
        items in vec((vec(text_line(), 0..3), any::<u64>(), "[ -~]{0,40}"), 0..6),
        sizes in vec(1..40usize, 1..6),
    ) {
        let (mut input, mut want_text, mut want_frames): (Vec<u8>, Vec<u8>, Vec<u8>) = Default::default();
        for (lines, seq, payload) in &items {
            for l in lines {
                input.extend(l);
                want_text.extend(l);
            }
            let f = frame(*seq, &serde_json::Value::from(payload.as_str()));
            input.extend(&f);
            want_frames.extend(f);
        }
        let (text, frames) = tap(&input, &sizes);
        prop_assert_eq!(text, want_text);
        prop_assert_eq!(frames, want_frames);
    }
}
