//! The telnet layer of a QEMU telnet chardev or a ser2net port.
//!
//! Data is passed through byte-exact; commands and option negotiation are
//! stripped. We never agree to any option: a raw 8-bit stream is what a
//! UART gives, and QEMU does not require answers.

pub const IAC: u8 = 255;
pub const BRK: u8 = 243;
const SB: u8 = 250;
const SE: u8 = 240;
const WILL: u8 = 251;
const DONT: u8 = 254;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    #[default]
    Data,
    Iac,
    Option,
    Sub,
    SubIac,
}

#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    /// Appends the data bytes of `input` to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
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
                (State::Iac, SB) => State::Sub,
                (State::Iac, WILL..=DONT) => State::Option,
                (State::Iac, _) => State::Data,
                (State::Option, _) => State::Data,
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, _) => State::Sub,
                (State::SubIac, SE) => State::Data,
                (State::SubIac, _) => State::Sub,
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
}
