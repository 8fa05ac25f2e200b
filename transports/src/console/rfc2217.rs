//! A serial port behind a terminal server speaking RFC 2217 (telnet
//! COM-PORT-OPTION), e.g. ser2net's `telnet(rfc2217)` accepter.
//!
//! Unlike a plain telnet port, the client sets the line itself (baud, data
//! bits, parity, stop bits, flow control) and can hold the line in BREAK for
//! as long as it wants, which is how a UART break is made with the same
//! duration as a local tcsendbreak. Every setting is acknowledged by the
//! server with the value it actually applied; a differing value is an error,
//! since a console at the wrong baud is garbage.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::serial::BREAK_DURATION;
use super::telnet::{
    self, Event, DO, DONT, IAC, OPT_BINARY, OPT_COM_PORT, OPT_ECHO, OPT_SGA, WILL, WONT,
};
use super::{Console, FlowControl, LineSettings, Parity};

/// COM-PORT-OPTION commands, client to server (RFC 2217 section 2 and 3).
/// The server answers each with the same code plus 100.
pub mod cmd {
    pub const SIGNATURE: u8 = 0;
    pub const SET_BAUDRATE: u8 = 1;
    pub const SET_DATASIZE: u8 = 2;
    pub const SET_PARITY: u8 = 3;
    pub const SET_STOPSIZE: u8 = 4;
    pub const SET_CONTROL: u8 = 5;
    pub const NOTIFY_LINESTATE: u8 = 6;
    pub const NOTIFY_MODEMSTATE: u8 = 7;
    pub const SERVER_OFFSET: u8 = 100;
}

/// SET-CONTROL values.
pub mod control {
    pub const FLOW_NONE: u8 = 1;
    pub const FLOW_XONXOFF: u8 = 2;
    pub const FLOW_HARDWARE: u8 = 3;
    pub const BREAK_ON: u8 = 5;
    pub const BREAK_OFF: u8 = 6;
}

/// How `send_break` makes a BREAK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakStyle {
    /// SET-CONTROL BREAK-ON, 250 ms, BREAK-OFF, each acknowledged.
    #[default]
    ComPort,
    /// Telnet `IAC BRK`: the server picks the duration (ser2net calls
    /// tcsendbreak). Not acknowledged.
    TelnetBrk,
}

/// Bytes queued for the socket before `poll_write` refuses more.
const OUT_LIMIT: usize = 64 * 1024;

pub struct Rfc2217Console {
    stream: TcpStream,
    addr: String,
    decoder: telnet::Decoder,
    decoded: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    acks: VecDeque<(u8, Vec<u8>)>,
    com_port: Option<bool>,
    answered: Vec<(u8, u8)>,
    ack_timeout: Duration,
    break_style: BreakStyle,
    notices: Vec<String>,
    eof: bool,
}

impl std::fmt::Debug for Rfc2217Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2217Console")
            .field("addr", &self.addr)
            .field("com_port", &self.com_port)
            .finish()
    }
}

impl Rfc2217Console {
    /// Connects, negotiates COM-PORT-OPTION and binary mode, and sets the
    /// line if `line` is given (otherwise the server's configured settings
    /// stay). Fails if the server does not do RFC 2217.
    pub async fn connect(
        addr: &str,
        line: Option<&LineSettings>,
        limit: Duration,
    ) -> io::Result<Self> {
        let stream = super::tcp::connect(addr, limit).await?;
        let mut me = Self {
            stream,
            addr: addr.to_string(),
            decoder: Default::default(),
            decoded: Vec::new(),
            pos: 0,
            out: Vec::new(),
            acks: VecDeque::new(),
            com_port: None,
            answered: Vec::new(),
            ack_timeout: limit,
            break_style: BreakStyle::ComPort,
            notices: Vec::new(),
            eof: false,
        };
        // Binary both ways: without it a telnet peer may turn CR into CR NUL
        // or drop a NUL after CR, and console bytes must pass unchanged.
        me.out.extend([
            IAC,
            WILL,
            OPT_COM_PORT,
            IAC,
            WILL,
            OPT_BINARY,
            IAC,
            DO,
            OPT_BINARY,
        ]);
        me.answered.extend([(DO, OPT_BINARY), (WILL, OPT_BINARY)]);
        me.flush().await?;
        let deadline = Instant::now() + limit;
        while me.com_port.is_none() {
            me.fill(deadline).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{addr} did not answer the RFC 2217 COM-PORT-OPTION offer ({e}): \
                         is ser2net's accepter telnet(rfc2217),tcp,PORT?"
                    ),
                )
            })?;
        }
        if me.com_port == Some(false) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{addr} refused RFC 2217 (DONT COM-PORT-OPTION): enable it with telnet(rfc2217) in ser2net's accepter"),
            ));
        }
        if let Some(line) = line {
            me.set_line(line).await?;
        }
        Ok(me)
    }

    pub fn set_break_style(&mut self, style: BreakStyle) {
        self.break_style = style;
    }

    /// Sets baud and framing, in the order the RFC recommends, and checks
    /// every acknowledgement.
    pub async fn set_line(&mut self, line: &LineSettings) -> io::Result<()> {
        line.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let baud = self.set_baudrate(line.baud).await?;
        if baud != line.baud {
            return Err(self.refused("baud", line.baud, baud));
        }
        let got = self.command(cmd::SET_DATASIZE, &[line.data_bits]).await?;
        self.expect_byte("data bits", line.data_bits, &got)?;
        let parity = match line.parity {
            Parity::None => 1,
            Parity::Odd => 2,
            Parity::Even => 3,
        };
        let got = self.command(cmd::SET_PARITY, &[parity]).await?;
        self.expect_byte("parity", parity, &got)?;
        let got = self.command(cmd::SET_STOPSIZE, &[line.stop_bits]).await?;
        self.expect_byte("stop bits", line.stop_bits, &got)?;
        let flow = match line.flow {
            FlowControl::None => control::FLOW_NONE,
            FlowControl::Software => control::FLOW_XONXOFF,
            FlowControl::Hardware => control::FLOW_HARDWARE,
        };
        let got = self.command(cmd::SET_CONTROL, &[flow]).await?;
        self.expect_byte("flow control", flow, &got)
    }

    /// SET-BAUDRATE; returns the baud the server applied.
    pub async fn set_baudrate(&mut self, baud: u32) -> io::Result<u32> {
        let got = self.command(cmd::SET_BAUDRATE, &baud.to_be_bytes()).await?;
        let v: [u8; 4] = got
            .as_slice()
            .try_into()
            .map_err(|_| self.malformed("SET-BAUDRATE", &got))?;
        Ok(u32::from_be_bytes(v))
    }

    /// SET-CONTROL BREAK-ON or BREAK-OFF; returns the value the server
    /// acknowledged.
    ///
    /// ser2net 4.3 (gensio 2.6) acknowledges BREAK-OFF with BREAK-ON even
    /// though it did clear the break (TIOCCBRK, seen with strace), so that
    /// answer is taken with a notice rather than as a failure.
    pub async fn set_break(&mut self, on: bool) -> io::Result<u8> {
        let want = if on {
            control::BREAK_ON
        } else {
            control::BREAK_OFF
        };
        let got = self.command(cmd::SET_CONTROL, &[want]).await?;
        match (on, got.as_slice()) {
            (_, [v]) if *v == want => Ok(want),
            (false, [control::BREAK_ON]) => {
                self.notices.push(format!(
                    "{}: the server acknowledged BREAK-OFF as BREAK-ON (ser2net/gensio does this after clearing the break)",
                    self.addr
                ));
                Ok(control::BREAK_ON)
            }
            _ => Err(self.expect_byte("BREAK state", want, &got).unwrap_err()),
        }
    }

    /// The server's signature text (SIGNATURE with no text asks for it).
    pub async fn signature(&mut self) -> io::Result<String> {
        let got = self.command(cmd::SIGNATURE, &[]).await?;
        Ok(String::from_utf8_lossy(&got).into_owned())
    }

    /// Sends one COM-PORT-OPTION command and waits for its acknowledgement.
    pub async fn command(&mut self, code: u8, value: &[u8]) -> io::Result<Vec<u8>> {
        let mut payload = vec![code];
        payload.extend_from_slice(value);
        self.out
            .extend(telnet::subnegotiation(OPT_COM_PORT, &payload));
        self.flush().await?;
        let want = code + cmd::SERVER_OFFSET;
        let deadline = Instant::now() + self.ack_timeout;
        loop {
            if let Some(i) = self.acks.iter().position(|(c, _)| *c == want) {
                return Ok(self.acks.remove(i).map(|(_, v)| v).unwrap_or_default());
            }
            self.fill(deadline).await.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{}: no acknowledgement of COM-PORT command {code}: {e}",
                        self.addr
                    ),
                )
            })?;
        }
    }

    fn refused(&self, what: &str, want: u32, got: u32) -> io::Error {
        io::Error::other(format!(
            "{}: asked for {what} {want}, the server applied {got}",
            self.addr
        ))
    }

    fn malformed(&self, what: &str, got: &[u8]) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: malformed {what} acknowledgement {got:?}", self.addr),
        )
    }

    fn expect_byte(&self, what: &str, want: u8, got: &[u8]) -> io::Result<()> {
        match got {
            [v] if *v == want => Ok(()),
            [v] => Err(self.refused(what, want.into(), (*v).into())),
            _ => Err(self.malformed(what, got)),
        }
    }

    /// Reads once from the socket (until `deadline`), keeping data for
    /// `poll_read` and handling commands.
    async fn fill(&mut self, deadline: Instant) -> io::Result<()> {
        let mut raw = [0u8; 4096];
        let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut raw)).await {
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
            Ok(r) => r?,
        };
        if n == 0 {
            self.eof = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.absorb(&raw[..n]);
        if !self.out.is_empty() {
            self.flush().await?;
        }
        Ok(())
    }

    fn absorb(&mut self, raw: &[u8]) {
        if self.pos == self.decoded.len() {
            self.decoded.clear();
            self.pos = 0;
        }
        let mut events = Vec::new();
        self.decoder
            .feed(raw, &mut self.decoded, &mut |e| events.push(e));
        for e in events {
            self.on_event(e);
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Negotiate(DO, OPT_COM_PORT) => self.com_port = Some(true),
            Event::Negotiate(DONT, OPT_COM_PORT) => self.com_port = Some(false),
            Event::Negotiate(verb, opt) => {
                // Agree to what a terminal server normally offers, refuse the
                // rest, and answer each request once so no loop can start.
                let answer = match (verb, opt) {
                    (DO, OPT_BINARY) | (WILL, OPT_BINARY) => None,
                    (WILL, OPT_SGA | OPT_ECHO) => Some(DO),
                    (WILL, _) => Some(DONT),
                    (DO, _) => Some(WONT),
                    _ => None,
                };
                if let Some(a) = answer {
                    if !self.answered.contains(&(a, opt)) {
                        self.answered.push((a, opt));
                        self.out.extend([IAC, a, opt]);
                    }
                }
            }
            Event::Sub(OPT_COM_PORT, payload) => {
                if let Some((&code, value)) = payload.split_first() {
                    match code.checked_sub(cmd::SERVER_OFFSET) {
                        Some(cmd::NOTIFY_LINESTATE)
                            if value.first().is_some_and(|v| v & 0x10 != 0) =>
                        {
                            self.notices
                                .push(format!("{}: the board side sent a BREAK", self.addr))
                        }
                        Some(cmd::NOTIFY_LINESTATE | cmd::NOTIFY_MODEMSTATE) => {}
                        Some(_) => {
                            // Bounded: a server that answers what was never asked
                            // must not grow memory.
                            if self.acks.len() >= 64 {
                                self.acks.pop_front();
                            }
                            self.acks.push_back((code, value.to_vec()));
                        }
                        None => {}
                    }
                }
            }
            Event::Sub(..) | Event::Command(_) => {}
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Rfc2217Console {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.decoded.len() {
                let n = (this.decoded.len() - this.pos).min(buf.remaining());
                buf.put_slice(&this.decoded[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // Answers to negotiation go out as soon as the socket takes them;
            // a full socket must not stop reading.
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            let mut raw = [0u8; 4096];
            let mut rb = ReadBuf::new(&mut raw);
            ready!(Pin::new(&mut this.stream).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.eof = true;
                return Poll::Ready(Ok(()));
            }
            let filled = rb.filled().to_vec();
            this.absorb(&filled);
        }
    }
}

impl AsyncWrite for Rfc2217Console {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.len() >= OUT_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        this.out.extend(telnet::escape(data));
        // Start sending now; what the socket does not take waits for flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl Console for Rfc2217Console {
    async fn send_break(&mut self) -> io::Result<()> {
        match self.break_style {
            BreakStyle::ComPort => {
                self.set_break(true).await?;
                tokio::time::sleep(BREAK_DURATION).await;
                self.set_break(false).await?;
                Ok(())
            }
            BreakStyle::TelnetBrk => {
                self.out.extend(telnet::BREAK);
                self.flush().await
            }
        }
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    async fn identify(&mut self) -> io::Result<Option<String>> {
        self.signature().await.map(Some)
    }
}
