//! TFTP packets as RFC 1350 lays them out, with the option extension of
//! RFC 2347: a read or write request, DATA, ACK, ERROR and OACK.

/// Opcodes (RFC 1350 section 5, RFC 2347).
const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// Error codes (RFC 1350 appendix; 8 from RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    IllegalOperation = 4,
    UnknownTid = 5,
    OptionRefused = 8,
}

/// What a client asks of the server's well-known port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Read {
        file: String,
        mode: String,
        /// Option names in lower case (they are case-insensitive), in the
        /// order the client sent them.
        options: Vec<(String, String)>,
    },
    Write {
        file: String,
    },
}

/// Why a request could not be read, with the error to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub ErrorCode, pub String);

pub fn parse_request(buf: &[u8]) -> Result<Request, Malformed> {
    let illegal = |why: &str| Malformed(ErrorCode::IllegalOperation, why.to_string());
    if buf.len() < 2 {
        return Err(illegal("a packet shorter than its opcode"));
    }
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    if op != RRQ && op != WRQ {
        return Err(illegal("expected a read request"));
    }
    // Netascii strings, each ending in a zero byte; a trailing piece
    // without one is malformed.
    let body = &buf[2..];
    if body.last() != Some(&0) {
        return Err(illegal("request fields must end in a zero byte"));
    }
    let mut fields = body[..body.len() - 1]
        .split(|&b| b == 0)
        .map(|f| std::str::from_utf8(f).map_err(|_| illegal("request fields must be text")));
    let file = fields.next().transpose()?.unwrap_or_default().to_string();
    let mode = fields
        .next()
        .transpose()?
        .ok_or_else(|| illegal("a request without a mode"))?
        .to_ascii_lowercase();
    if op == WRQ {
        return Ok(Request::Write { file });
    }
    let rest: Vec<&str> = fields.collect::<Result<_, _>>()?;
    if rest.len() % 2 != 0 {
        return Err(illegal("an option without a value"));
    }
    let options = rest
        .chunks(2)
        .map(|p| (p[0].to_ascii_lowercase(), p[1].to_string()))
        .collect();
    Ok(Request::Read {
        file,
        mode,
        options,
    })
}

pub fn data(block: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + payload.len());
    p.extend_from_slice(&DATA.to_be_bytes());
    p.extend_from_slice(&block.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

pub fn error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + message.len());
    p.extend_from_slice(&ERROR.to_be_bytes());
    p.extend_from_slice(&(code as u16).to_be_bytes());
    p.extend_from_slice(message.as_bytes());
    p.push(0);
    p
}

pub fn oack(options: &[(String, String)]) -> Vec<u8> {
    let mut p = OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        p.extend_from_slice(name.as_bytes());
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        p.push(0);
    }
    p
}

/// What a client sends during a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ack(u16),
    /// The client gave up, with its code and message.
    Error(u16, String),
    Other,
}

pub fn parse_reply(buf: &[u8]) -> Reply {
    if buf.len() < 4 {
        return Reply::Other;
    }
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    let n = u16::from_be_bytes([buf[2], buf[3]]);
    match op {
        ACK => Reply::Ack(n),
        ERROR => {
            let msg = buf[4..].split(|&b| b == 0).next().unwrap_or_default();
            Reply::Error(n, String::from_utf8_lossy(msg).into_owned())
        }
        _ => Reply::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(fields: &[&str]) -> Vec<u8> {
        let mut p = vec![0, 1];
        for f in fields {
            p.extend_from_slice(f.as_bytes());
            p.push(0);
        }
        p
    }

    #[test]
    fn a_read_request_with_options() {
        let r = parse_request(&rrq(&[
            "hilt-b/Image",
            "OCTET",
            "BlkSize",
            "1468",
            "tsize",
            "0",
        ]));
        assert_eq!(
            r,
            Ok(Request::Read {
                file: "hilt-b/Image".into(),
                mode: "octet".into(),
                options: vec![
                    ("blksize".into(), "1468".into()),
                    ("tsize".into(), "0".into())
                ],
            })
        );
    }

    #[test]
    fn malformed_requests_are_illegal_operations() {
        for bad in [
            vec![0u8],
            vec![0, 3, 0, 1],
            b"\x00\x01file\x00octet".to_vec(),
            rrq(&["file"]),
            rrq(&["file", "octet", "blksize"]),
            b"\x00\x01\xff\x00octet\x00".to_vec(),
        ] {
            let e = parse_request(&bad).unwrap_err();
            assert_eq!(e.0, ErrorCode::IllegalOperation, "{bad:?}");
        }
        let mut w = rrq(&["f", "octet"]);
        w[1] = 2;
        assert_eq!(parse_request(&w), Ok(Request::Write { file: "f".into() }));
    }

    #[test]
    fn packets_are_laid_out_as_the_rfcs_say() {
        assert_eq!(data(0x0102, b"ab"), [0, 3, 1, 2, b'a', b'b']);
        assert_eq!(
            error(ErrorCode::FileNotFound, "no"),
            [0, 5, 0, 1, b'n', b'o', 0]
        );
        assert_eq!(
            oack(&[("tsize".into(), "5".into())]),
            b"\x00\x06tsize\x005\x00"
        );
        assert_eq!(parse_reply(&[0, 4, 0xff, 0xff]), Reply::Ack(65535));
        assert_eq!(
            parse_reply(b"\x00\x05\x00\x08no\x00"),
            Reply::Error(8, "no".into())
        );
        assert_eq!(parse_reply(&[0, 3, 0, 1]), Reply::Other);
        assert_eq!(parse_reply(&[0, 4]), Reply::Other);
    }
}
