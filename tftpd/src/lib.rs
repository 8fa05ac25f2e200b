//! A read-only TFTP server for one directory, for boards whose U-Boot
//! fetches hilt's kernel and initramfs when the lab has no TFTP server of
//! its own (or hilt should not write into it).
//!
//! RFC 1350 (octet mode), with the option negotiation of RFC 2347 and the
//! `blksize` (RFC 2348), `tsize` and `timeout` (RFC 2349) options. Block
//! numbers roll over from 65535 to 0, as tftp-hpa, atftp, curl and U-Boot
//! expect, so files of any size are served. Only files under the root are
//! served (see [`root::Root::open`]); write requests are refused.
//!
//! ```no_run
//! let server = hilt_tftpd::Server::start("0.0.0.0:69".parse()?, std::path::Path::new("/srv/tftp"))?;
//! println!("serving on {}", server.local_addr());
//! // ... the board fetches its files; dropping `server` stops it.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod packet;
pub mod root;
mod transfer;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use packet::{ErrorCode, Request};
use root::Root;

/// How often the listener and transfers look at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Transfers at once: a lab has a few boards; more is a flood.
const MAX_TRANSFERS: usize = 32;

/// One request and how it ended, for the caller's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub peer: SocketAddr,
    pub file: String,
    /// Bytes sent and acknowledged, or why the transfer failed.
    pub outcome: Result<u64, String>,
}

/// A running server; dropping it stops the listener and every transfer.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Transfer>>>,
    listener: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (port 0: any free port) and serves `root` from a
    /// thread of its own.
    pub fn start(addr: SocketAddr, root: &Path) -> io::Result<Server> {
        let root = Root::new(root)?;
        let socket = UdpSocket::bind(addr).map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::PermissionDenied && addr.port() < 1024 {
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            } else {
                ""
            };
            io::Error::new(e.kind(), format!("binding UDP {addr} for TFTP: {e}{hint}"))
        })?;
        socket.set_read_timeout(Some(POLL))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let listener = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::Builder::new()
                .name("tftpd".into())
                .spawn(move || listen(socket, root, stop, log))?
        };
        Ok(Server {
            addr,
            stop,
            log,
            listener: Some(listener),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The transfers that have ended so far.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.listener.take() {
            let _ = t.join();
        }
    }
}

fn listen(socket: UdpSocket, root: Root, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Transfer>>>) {
    let mut running: Vec<JoinHandle<()>> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let local_ip = socket.local_addr().map(|a| a.ip()).ok();
    while !stop.load(Ordering::Relaxed) {
        running.retain(|t| !t.is_finished());
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            // An ICMP error from an earlier answer surfaces here on Linux.
            Err(_) => continue,
        };
        let request = match packet::parse_request(&buf[..n]) {
            Ok(Request::Read {
                file,
                mode,
                options,
            }) => (file, mode, options),
            Ok(Request::Write { file }) => {
                let _ = socket.send_to(
                    &packet::error(ErrorCode::AccessViolation, "this server is read-only"),
                    peer,
                );
                push(&log, peer, file, Err("write request refused".into()));
                continue;
            }
            Err(packet::Malformed(code, why)) => {
                let _ = socket.send_to(&packet::error(code, &why), peer);
                continue;
            }
        };
        if running.len() >= MAX_TRANSFERS {
            let _ = socket.send_to(
                &packet::error(
                    ErrorCode::NotDefined,
                    "too many transfers at once; try again",
                ),
                peer,
            );
            continue;
        }
        let (root, stop, log) = (root.clone(), stop.clone(), log.clone());
        let bind = SocketAddr::new(
            local_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
            0,
        );
        let spawned = std::thread::Builder::new()
            .name("tftpd-transfer".into())
            .spawn(move || {
                let (file, mode, options) = request;
                let outcome = transfer::send(bind, peer, &root, &file, &mode, &options, &stop);
                push(&log, peer, file, outcome);
            });
        if let Ok(t) = spawned {
            running.push(t);
        }
    }
    for t in running {
        let _ = t.join();
    }
}

fn push(log: &Mutex<Vec<Transfer>>, peer: SocketAddr, file: String, outcome: Result<u64, String>) {
    log.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Transfer {
            peer,
            file,
            outcome,
        });
}
