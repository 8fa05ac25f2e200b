//! The device end of one adb connection: the handshake, then one thread per
//! open stream running its service, with protocol.txt's flow control (a
//! stream sends its next WRTE only after the host's OKAY for the last one).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::wire::*;

/// What the device says of itself in its CNXN: the host lists the
/// product, model and device, and uses only the features named here.
pub fn banner(product: &str) -> String {
    format!(
        "device::ro.product.name={product};ro.product.model={product};ro.product.device={product};features=shell_v2"
    )
}

/// Messages leave through one writer, shared by every stream's pump.
#[derive(Clone)]
struct Out(Arc<Mutex<TcpStream>>);

impl Out {
    fn send(&self, m: &Message) -> io::Result<()> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.write_all(&m.encode())
    }
}

/// An open stream as the connection's reader sees it. Dropping it is how a
/// service learns that the host closed the stream: its input ends, and its
/// pump stops waiting for OKAYs.
struct Open {
    remote: u32,
    input: Sender<Vec<u8>>,
    okay: Sender<()>,
}

type Streams = Arc<Mutex<HashMap<u32, Open>>>;

fn lock(s: &Streams) -> std::sync::MutexGuard<'_, HashMap<u32, Open>> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A service's view of what the host writes to it.
pub struct Input {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Input {
    /// The next piece the host wrote, or None once it closed the stream.
    pub fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.pos < self.buf.len() {
            let rest = self.buf.split_off(self.pos);
            self.pos = 0;
            self.buf.clear();
            return Some(rest);
        }
        self.rx.recv().ok()
    }
}

impl Read for Input {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Serves one host connection until it ends.
pub fn serve(sock: TcpStream, banner: &str) -> io::Result<()> {
    let _ = sock.set_nodelay(true);
    let out = Out(Arc::new(Mutex::new(sock.try_clone()?)));
    let mut rd = io::BufReader::with_capacity(1 << 16, sock);
    let streams: Streams = Arc::default();
    let (mut version, mut max_payload, mut next_id) = (A_VERSION_MIN, MAX_PAYLOAD_V1, 1u32);
    loop {
        let m = match read_message(&mut rd, MAX_PAYLOAD, version) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => {
                lock(&streams).clear();
                return Err(e);
            }
        };
        match m.command {
            A_CNXN => {
                // A host that says CNXN again starts over.
                lock(&streams).clear();
                version = m.arg0.min(A_VERSION);
                max_payload = m.arg1.clamp(MAX_PAYLOAD_V1, MAX_PAYLOAD);
                out.send(&Message::new(
                    A_CNXN,
                    A_VERSION,
                    MAX_PAYLOAD,
                    banner.as_bytes().to_vec(),
                ))?;
            }
            A_OPEN => {
                let remote = m.arg0;
                let name = String::from_utf8_lossy(&m.data)
                    .trim_end_matches('\0')
                    .to_string();
                let Some(service) = crate::services::parse(&name) else {
                    eprintln!("hilt-adbd: no service {name:?}");
                    out.send(&Message::new(A_CLSE, 0, remote, Vec::new()))?;
                    continue;
                };
                let local = next_id;
                next_id = next_id.wrapping_add(1).max(1);
                let (input_tx, input_rx) = channel();
                let (okay_tx, okay_rx) = channel();
                let (data_tx, data_rx) = channel();
                lock(&streams).insert(
                    local,
                    Open {
                        remote,
                        input: input_tx,
                        okay: okay_tx,
                    },
                );
                out.send(&Message::new(A_OKAY, local, remote, Vec::new()))?;
                let input = Input {
                    rx: input_rx,
                    buf: Vec::new(),
                    pos: 0,
                };
                std::thread::spawn(move || service.run(input, data_tx));
                let pump = Pump {
                    out: out.clone(),
                    streams: streams.clone(),
                    local,
                    remote,
                    max_payload: max_payload as usize,
                };
                std::thread::spawn(move || pump.run(data_rx, okay_rx));
            }
            A_WRTE => {
                let s = lock(&streams);
                if let Some(open) = s.get(&m.arg1) {
                    let _ = open.input.send(m.data);
                    out.send(&Message::new(A_OKAY, m.arg1, open.remote, Vec::new()))?;
                }
            }
            A_OKAY => {
                if let Some(open) = lock(&streams).get(&m.arg1) {
                    let _ = open.okay.send(());
                }
            }
            A_CLSE => {
                lock(&streams).remove(&m.arg1);
            }
            // No AUTH is asked for, so none should come; anything else is
            // from a newer host and is not for us.
            _ => {}
        }
    }
    lock(&streams).clear();
    Ok(())
}

/// Moves one service's output to the host as WRTEs, one in flight at a time.
struct Pump {
    out: Out,
    streams: Streams,
    local: u32,
    remote: u32,
    max_payload: usize,
}

impl Pump {
    fn run(self, data: Receiver<Vec<u8>>, okay: Receiver<()>) {
        while let Ok(mut pending) = data.recv() {
            // What queued while the last WRTE was in flight goes in one.
            while pending.len() < self.max_payload {
                match data.try_recv() {
                    Ok(more) => pending.extend(more),
                    Err(_) => break,
                }
            }
            for chunk in pending.chunks(self.max_payload) {
                let m = Message::new(A_WRTE, self.local, self.remote, chunk.to_vec());
                if self.out.send(&m).is_err() || okay.recv().is_err() {
                    return;
                }
            }
        }
        // The service is done: close our end, unless the host closed first.
        if lock(&self.streams).remove(&self.local).is_some() {
            let _ = self
                .out
                .send(&Message::new(A_CLSE, self.local, self.remote, Vec::new()));
        }
    }
}
