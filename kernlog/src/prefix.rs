//! Splits one log line into its printk prefix (level, timestamp, caller id) and the message.
//!
//! Accepted shapes, in any sensible combination:
//! - `/dev/kmsg` records: `pri,seq,usec,flags[,caller=T12];message` (and the
//!   ` KEY=value` dictionary lines that may follow a record);
//! - console lines: `<6>[  123.456789][ T123] message`, `[  12.3][    C1] message`,
//!   `[    T1] message`, or bare messages;
//! - `** 5 printk messages dropped ** ` and `host login: ` in front of the prefix.
//!
//! Everything works on bytes: a garbled or non-UTF-8 prefix simply stays part of the message.

/// Which printk caller emitted a line; lines are de-interleaved by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Context {
    /// No printk prefix at all (raw text, or output of something other than printk).
    Bare,
    /// A timestamp but no caller id: everything shares one stream.
    Console,
    /// `[T123]`: printed by task 123.
    Task(u32),
    /// `[C1]`: printed by CPU 1 in interrupt context.
    Cpu(u32),
}

impl Context {
    /// Without caller ids, output from different CPUs cannot be told apart.
    pub(crate) fn is_shared(self) -> bool {
        matches!(self, Context::Bare | Context::Console)
    }

    pub(crate) fn caller(self) -> Option<String> {
        match self {
            Context::Task(id) => Some(format!("T{id}")),
            Context::Cpu(id) => Some(format!("C{id}")),
            Context::Bare | Context::Console => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub text: &'a [u8],
    stamp: Stamp<'a>,
    pub context: Context,
    /// A `/dev/kmsg` dictionary continuation (` SUBSYSTEM=...`): metadata, not a message.
    pub kmsg_dict: bool,
    /// The console said it dropped messages just before this line.
    pub dropped_before: bool,
    /// What the console printer says it is doing, not a kernel message (see [`Marker`]).
    pub marker: Option<Marker>,
}

/// Lines the console printer adds on its own (kernel/printk/printk.c,
/// `console_prepend_dropped` and `console_prepend_replay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// `** 5 printk messages dropped **` alone on its line (6.x prints it with a newline).
    Dropped,
    /// `** replaying previous printk message **`: an nbcon console (6.12+) took over
    /// from a context that was cut off inside a record and prints that record again.
    /// Whatever precedes the marker on its line is the cut-off copy.
    Replay,
}

const REPLAY_MARKER: &[u8] = b"** replaying previous printk message **";

/// The timestamp as found; converted only for the few lines that start a report.
#[derive(Debug, Clone, Copy)]
enum Stamp<'a> {
    None,
    /// Seconds and fraction digits of `[  123.456789]`.
    Console(&'a [u8], &'a [u8]),
    Micros(u64),
}

impl Line<'_> {
    pub(crate) fn timestamp(&self) -> Option<f64> {
        match self.stamp {
            Stamp::None => None,
            Stamp::Micros(us) => Some(us as f64 / 1e6),
            Stamp::Console(secs, frac) => {
                let frac = &frac[..frac.len().min(9)];
                let scale = 10f64.powi(frac.len() as i32);
                Some(parse_u64(secs)? as f64 + parse_u64(frac)? as f64 / scale)
            }
        }
    }
}

pub(crate) fn split(line: &[u8]) -> Line<'_> {
    let mut s = line;
    while let [rest @ .., b'\r' | b'\n'] = s {
        s = rest;
    }
    if s.ends_with(REPLAY_MARKER) {
        return Line {
            text: b"",
            stamp: Stamp::None,
            context: Context::Bare,
            kmsg_dict: false,
            dropped_before: false,
            marker: Some(Marker::Replay),
        };
    }
    // The common shape first: `[  123.456789] ` with an optional caller id.
    if s.first() == Some(&b'[') {
        if let Some((secs, frac, used)) = bracket_timestamp(s) {
            let mut s = &s[used..];
            let mut context = Context::Console;
            if let Some((ctx, used)) = bracket_caller(s) {
                context = ctx;
                s = &s[used..];
            }
            let text = s.strip_prefix(b" ").unwrap_or(s);
            return Line {
                text,
                stamp: Stamp::Console(secs, frac),
                context,
                kmsg_dict: false,
                dropped_before: false,
                marker: None,
            };
        }
    }
    if s.first().is_some_and(u8::is_ascii_digit) {
        if let Some(parsed) = kmsg_record(s) {
            return parsed;
        }
    }
    if s.first() == Some(&b' ') && is_kmsg_dict(s) {
        return Line {
            text: s,
            stamp: Stamp::None,
            context: Context::Bare,
            kmsg_dict: true,
            dropped_before: false,
            marker: None,
        };
    }
    let mut dropped_before = false;
    if let Some(rest) = strip_dropped_marker(s) {
        if rest.is_empty() {
            return Line {
                text: b"",
                stamp: Stamp::None,
                context: Context::Bare,
                kmsg_dict: false,
                dropped_before: true,
                marker: Some(Marker::Dropped),
            };
        }
        s = rest;
        dropped_before = true;
    }
    if !matches!(s.first(), Some(b'[' | b'<')) {
        if let Some(rest) = strip_login(s) {
            s = rest;
        }
    }
    if s.first() == Some(&b'<') {
        if let Some(end) = angle_level(s) {
            s = &s[end..];
        }
    }
    let mut stamp = Stamp::None;
    let mut context = Context::Bare;
    if let Some((secs, frac, used)) = bracket_timestamp(s) {
        stamp = Stamp::Console(secs, frac);
        context = Context::Console;
        s = &s[used..];
    }
    if let Some((ctx, used)) = bracket_caller(s) {
        context = ctx;
        s = &s[used..];
    }
    if context != Context::Bare && s.first() == Some(&b' ') {
        s = &s[1..];
    }
    Line {
        text: s,
        stamp,
        context,
        kmsg_dict: false,
        dropped_before,
        marker: None,
    }
}

/// `pri,seq,usec,flags[,more];message` as read from /dev/kmsg.
fn kmsg_record(s: &[u8]) -> Option<Line<'_>> {
    let semi = s.iter().take(96).position(|&b| b == b';')?;
    let head = &s[..semi];
    let mut fields = head.split(|&b| b == b',');
    let pri = fields.next()?;
    let seq = fields.next()?;
    let usec = fields.next()?;
    let flags = fields.next()?;
    if !all_digits(pri, 1, 4) || !all_digits(seq, 1, 20) || !all_digits(usec, 1, 20) {
        return None;
    }
    if !matches!(flags, b"-" | b"c" | b"+" | b"") {
        return None;
    }
    let mut context = Context::Console;
    for field in fields {
        if let Some(id) = field.strip_prefix(b"caller=") {
            context = caller_id(id).unwrap_or(context);
        }
    }
    Some(Line {
        text: &s[semi + 1..],
        stamp: Stamp::Micros(parse_u64(usec)?),
        context,
        kmsg_dict: false,
        dropped_before: false,
        marker: None,
    })
}

fn is_kmsg_dict(s: &[u8]) -> bool {
    let body = &s[1..];
    let Some(eq) = body.iter().position(|&b| b == b'=') else {
        return false;
    };
    eq > 0
        && body[..eq]
            .iter()
            .all(|b| b.is_ascii_uppercase() || *b == b'_')
}

/// `** 5 printk messages dropped ** ` in front of a line (older kernels), or the
/// whole line (6.x); returns what follows it.
fn strip_dropped_marker(s: &[u8]) -> Option<&[u8]> {
    let rest = s.strip_prefix(b"** ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let rest = rest[digits..].strip_prefix(b" printk messages dropped **")?;
    match rest {
        [] => Some(rest),
        [b' ', rest @ ..] => Some(rest),
        _ => None,
    }
}

/// `syzkaller login: [   36.85] ...`: a getty prompt glued to the next kernel line.
fn strip_login(s: &[u8]) -> Option<&[u8]> {
    const LOGIN: &[u8] = b" login: ";
    let pos = memchr::memmem::find(s, LOGIN)?;
    let rest = &s[pos + LOGIN.len()..];
    matches!(rest.first(), Some(b'[' | b'<')).then_some(rest)
}

/// Length of a `<N>` syslog priority prefix.
fn angle_level(s: &[u8]) -> Option<usize> {
    let digits = s[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0 && digits <= 3 && s.get(1 + digits) == Some(&b'>')).then_some(digits + 2)
}

/// `[  123.456789]`: returns the seconds digits, the fraction digits and the prefix length.
fn bracket_timestamp(s: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    if s.first() != Some(&b'[') {
        return None;
    }
    let digits_from = |i: usize| s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut i = 1 + s[1..].iter().take_while(|&&b| b == b' ').count();
    let int_start = i;
    i += digits_from(i);
    let int_end = i;
    if int_end == int_start || s.get(i) != Some(&b'.') {
        return None;
    }
    i += 1;
    let frac_start = i;
    i += digits_from(i);
    if i == frac_start || s.get(i) != Some(&b']') {
        return None;
    }
    Some((&s[int_start..int_end], &s[frac_start..i], i + 1))
}

/// `[ T123]` / `[C1]`: returns the context and the prefix length.
fn bracket_caller(s: &[u8]) -> Option<(Context, usize)> {
    if s.first() != Some(&b'[') {
        return None;
    }
    let mut i = 1 + s[1..].iter().take_while(|&&b| b == b' ').count();
    // `i` is at the T or C; `caller_id` checks which.
    s.get(i)?;
    let digits = s[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
    i += 1 + digits;
    if s.get(i) != Some(&b']') {
        return None;
    }
    Some((caller_id(&s[i - digits - 1..i])?, i + 1))
}

fn caller_id(id: &[u8]) -> Option<Context> {
    let (&kind, digits) = id.split_first()?;
    if !all_digits(digits, 1, 10) {
        return None;
    }
    let n = u32::try_from(parse_u64(digits)?).ok()?;
    match kind {
        b'T' => Some(Context::Task(n)),
        b'C' => Some(Context::Cpu(n)),
        _ => None,
    }
}

fn all_digits(s: &[u8], min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.iter().all(u8::is_ascii_digit)
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: &[u8]) -> &[u8] {
        split(line).text
    }

    #[test]
    fn bare_line_is_untouched() {
        let l = split(b"  __schedule+0x33c/0xa40");
        assert_eq!(l.text, b"  __schedule+0x33c/0xa40");
        assert_eq!(l.context, Context::Bare);
        assert_eq!(l.timestamp(), None);
    }

    #[test]
    fn console_timestamp() {
        let l = split(b"[  123.456789] INFO: task x:1 blocked");
        assert_eq!(l.text, b"INFO: task x:1 blocked");
        assert_eq!(l.context, Context::Console);
        assert!((l.timestamp().unwrap() - 123.456789).abs() < 1e-9);
    }

    #[test]
    fn level_timestamp_and_caller() {
        let l = split(b"<4>[   12.300000][ T123]  __schedule+0x1/0x2");
        assert_eq!(l.text, b" __schedule+0x1/0x2");
        assert_eq!(l.context, Context::Task(123));
        assert!((l.timestamp().unwrap() - 12.3).abs() < 1e-9);
        let l = split(b"[  161.009133][    C1] rcu: INFO: rcu_preempt detected stalls");
        assert_eq!(l.context, Context::Cpu(1));
        assert_eq!(l.text, b"rcu: INFO: rcu_preempt detected stalls");
        let l = split(b"[  144.247612][T11794] IPv6: ready");
        assert_eq!(l.context, Context::Task(11794));
    }

    #[test]
    fn caller_without_timestamp() {
        let l = split(b"[    T1] hello");
        assert_eq!(l.context, Context::Task(1));
        assert_eq!(l.text, b"hello");
        assert_eq!(l.timestamp(), None);
    }

    #[test]
    fn kmsg_records() {
        let l = split(b"4,1234,5678901,-;INFO: task a:1 blocked for more than 10 seconds.");
        assert_eq!(l.text, b"INFO: task a:1 blocked for more than 10 seconds.");
        assert_eq!(l.context, Context::Console);
        assert!((l.timestamp().unwrap() - 5.678901).abs() < 1e-9);
        let l = split(b"6,339,5140900,-,caller=T17;hello");
        assert_eq!(l.context, Context::Task(17));
        assert_eq!(l.text, b"hello");
        let l = split(b" SUBSYSTEM=pci");
        assert!(l.kmsg_dict);
        // A message that merely contains commas and a semicolon is not a record.
        assert_eq!(text(b"a,b,c,d;e"), b"a,b,c,d;e");
    }

    #[test]
    fn crlf_and_markers() {
        assert_eq!(text(b"[    1.000000] hello\r"), b"hello");
        assert_eq!(text(b"** 5 printk messages dropped ** [    1.0] hi"), b"hi");
        assert!(split(b"** 5 printk messages dropped ** [    1.0] hi").dropped_before);
        let alone = split(b"** 12 printk messages dropped **\r");
        assert_eq!(
            (alone.text, alone.marker, alone.dropped_before),
            (&b""[..], Some(Marker::Dropped), true)
        );
        for replay in [
            &b"** replaying previous printk message **"[..],
            b"[   40.100000] INFO: task a:1 blocked for mo** replaying previous printk message **",
        ] {
            let l = split(replay);
            assert_eq!((l.text, l.marker), (&b""[..], Some(Marker::Replay)));
        }
        assert_eq!(split(b"[    1.0] hi").marker, None);
        assert_eq!(
            text(b"** many printk messages dropped ** x"),
            b"** many printk messages dropped ** x"
        );
        assert_eq!(
            text(b"syzkaller login: [   36.852785][ T3615] traps: x"),
            b"traps: x"
        );
    }

    #[test]
    fn garbage_never_panics() {
        for bad in [
            &b"["[..],
            b"[ ",
            b"[1.",
            b"[1.2",
            b"<",
            b"<9999>",
            b"[   1.5][",
            b"[   1.5][T",
            b"\xff\xfe[\x80]",
            b"1,2,3,-",
            b"99999999999999999999999,1,1,-;x",
        ] {
            let _ = split(bad);
        }
        assert_eq!(text(b"[1.5]x"), b"x");
    }
}
