//! The telnet layer of a QEMU telnet chardev or a ser2net port.
//!
//! Data is passed through byte-exact; commands and option negotiation are
//! stripped. [`Decoder`] never agrees to any option: a raw 8-bit stream is
//! what a UART gives, and QEMU does not require answers. [`Decoder::feed`]
//! also reports the commands, for clients that do negotiate (RFC 2217).

pub const IAC: u8 = 255;
pub const BRK: u8 = 243;
pub const SB: u8 = 250;
pub const SE: u8 = 240;
pub const WILL: u8 = 251;
pub const WONT: u8 = 252;
pub const DO: u8 = 253;
pub const DONT: u8 = 254;

/// Telnet options we name (RFC 856, RFC 857, RFC 858, RFC 2217).
pub const OPT_BINARY: u8 = 0;
pub const OPT_ECHO: u8 = 1;
pub const OPT_SGA: u8 = 3;
pub const OPT_COM_PORT: u8 = 44;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    #[default]
    Data,
    Iac,
    Option(u8),
    Sub,
    SubIac,
}

/// A telnet command seen in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// WILL/WONT/DO/DONT and the option.
    Negotiate(u8, u8),
    /// A subnegotiation: the option, then its payload with IAC IAC undone.
    Sub(u8, Vec<u8>),
    /// Any other two-byte command (BRK, NOP, AYT...).
    Command(u8),
}

#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
    sub: Vec<u8>,
}

/// Subnegotiations longer than this are a broken peer, not a payload to keep.
const MAX_SUB: usize = 4096;

impl Decoder {
    /// Appends the data bytes of `input` to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.feed(input, out, &mut |_| {});
    }

    /// Appends the data bytes of `input` to `out` and reports every command.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, on_event: &mut dyn FnMut(Event)) {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Data, IAC) => State::Iac,
                (State::Data, _) => {
                    out.push(b);
                    State::Data
                }
                (State::Iac, IAC) => {
                    out.push(IAC);
                    State::Data
                }
                (State::Iac, SB) => {
                    self.sub.clear();
                    State::Sub
                }
                (State::Iac, WILL..=DONT) => State::Option(b),
                (State::Iac, _) => {
                    on_event(Event::Command(b));
                    State::Data
                }
                (State::Option(verb), _) => {
                    on_event(Event::Negotiate(verb, b));
                    State::Data
                }
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, _) => {
                    if self.sub.len() < MAX_SUB {
                        self.sub.push(b);
                    }
                    State::Sub
                }
                (State::SubIac, SE) => {
                    if let Some((&opt, payload)) = self.sub.split_first() {
                        on_event(Event::Sub(opt, payload.to_vec()));
                    }
                    State::Data
                }
                (State::SubIac, _) => {
                    // IAC IAC inside a subnegotiation is a literal 0xff.
                    if self.sub.len() < MAX_SUB {
                        self.sub.push(b);
                    }
                    State::Sub
                }
            };
        }
    }
}

/// Escapes data for sending: a literal 0xff must be doubled.
pub fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out
}

/// `IAC SB option payload IAC SE`, with 0xff in the payload doubled.
pub fn subnegotiation(option: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![IAC, SB];
    out.extend(escape(&[option]));
    out.extend(escape(payload));
    out.extend([IAC, SE]);
    out
}

/// The telnet BREAK command; QEMU turns it into a UART break, which the
/// kernel's serial driver reads as the start of a magic sysrq.
pub const BREAK: [u8; 2] = [IAC, BRK];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_negotiation_and_unescapes_in_any_chunking() {
        let stream = [
            &[IAC, WILL, 1, IAC, WILL, 3][..],
            b"boot",
            &[IAC, IAC],
            &[IAC, SB, 24, 1, IAC, SE],
            b"ok\r\n",
        ]
        .concat();
        for chunk in 1..stream.len() {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                d.decode(c, &mut out);
            }
            assert_eq!(out, b"boot\xffok\r\n", "chunk {chunk}");
        }
    }

    #[test]
    fn escape_doubles_iac() {
        assert_eq!(escape(&[1, IAC, 2]), vec![1, IAC, IAC, 2]);
    }

    #[test]
    fn reports_commands_and_subnegotiations_in_any_chunking() {
        let stream = [
            &[IAC, DO, OPT_COM_PORT][..],
            b"a",
            &subnegotiation(OPT_COM_PORT, &[101, 0, 1, 0xc2, 0xff]),
            &[IAC, BRK],
            b"b",
        ]
        .concat();
        for chunk in 1..stream.len() {
            let mut d = Decoder::default();
            let (mut out, mut events) = (Vec::new(), Vec::new());
            for c in stream.chunks(chunk) {
                d.feed(c, &mut out, &mut |e| events.push(e));
            }
            assert_eq!(out, b"ab");
            assert_eq!(
                events,
                vec![
                    Event::Negotiate(DO, OPT_COM_PORT),
                    Event::Sub(OPT_COM_PORT, vec![101, 0, 1, 0xc2, 0xff]),
                    Event::Command(BRK)
                ]
            );
        }
    }
}
