//! A remote command whose stdin and stdout are one byte stream: how the
//! agent talks to the host on a board that runs its own OS, the way it
//! talks over virtio-serial on the emulated board.
//!
//! The stream gets an SSH connection of its own. libssh2 serialises all
//! channels of a session behind one lock, and this channel lives as long
//! as the run: pushes and commands on a shared session would wait for it.
//! A thread drives the channel in non-blocking mode, so the board's output
//! is read as it comes while the host's writes still go out.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use ssh2::{Channel, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use super::{connect_blocking, ctx, wait_socket, SshConfig, SshError};

/// Buffered in each direction before a writer waits.
const WINDOW: usize = 256 * 1024;

/// The command's end: its exit status, or why the stream broke.
pub type Ended = tokio::sync::oneshot::Receiver<Result<i32, SshError>>;

/// Runs `command` through the remote user's shell and returns its stdin
/// and stdout as one stream; stderr arrives on `stderr` as it comes. When
/// the host drops the stream, the command's stdin is closed (EOF).
pub async fn open_stream(
    cfg: &SshConfig,
    command: &str,
    stderr: mpsc::Sender<Vec<u8>>,
) -> Result<(DuplexStream, Ended), SshError> {
    let cfg = cfg.clone();
    let command = command.to_string();
    let target = format!("{}@{}", cfg.user, cfg.host_entry());
    let (sess, ch) = tokio::task::spawn_blocking(move || {
        let sess = connect_blocking(&cfg)?;
        let mut ch = sess
            .channel_session()
            .map_err(ctx(format!("{target}: opening a channel")))?;
        ch.exec(&command)
            .map_err(ctx(format!("{target}: exec {command}")))?;
        Ok::<_, SshError>((sess, ch))
    })
    .await
    .map_err(|e| SshError::Other(format!("SSH connect task: {e}")))??;

    let (host_side, pump_side) = tokio::io::duplex(WINDOW);
    let (mut from_host, mut to_host) = tokio::io::split(pump_side);
    let (to_board, board_rx) = std_mpsc::channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from_host.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_board.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `to_board` tells the pump to send EOF.
    });
    let (board_tx, mut board_out) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        while let Some(b) = board_out.recv().await {
            if to_host.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = to_host.shutdown().await;
    });
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ssh-stream".into())
        .spawn(move || {
            let r = pump(&sess, ch, board_rx, board_tx, stderr);
            let _ = ended_tx.send(r);
        })
        .map_err(SshError::Io)?;
    Ok((host_side, ended))
}

fn pump(
    sess: &Session,
    mut ch: Channel,
    from_host: std_mpsc::Receiver<Vec<u8>>,
    to_host: mpsc::Sender<Vec<u8>>,
    stderr: mpsc::Sender<Vec<u8>>,
) -> Result<i32, SshError> {
    sess.set_blocking(false);
    let mut pending: VecDeque<u8> = VecDeque::new();
    let mut host_done = false;
    let mut eof_sent = false;
    let (mut out_eof, mut err_eof) = (false, false);
    let mut buf = vec![0u8; 32 * 1024];
    while !(out_eof && err_eof) {
        let mut progressed = false;
        while pending.len() < WINDOW && !host_done {
            match from_host.try_recv() {
                Ok(b) => pending.extend(b),
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => host_done = true,
            }
        }
        if !pending.is_empty() {
            let (head, _) = pending.as_slices();
            match ch.write(head) {
                Ok(n) => {
                    pending.drain(..n);
                    progressed |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(SshError::Other(format!("writing to the command: {e}"))),
            }
        } else if host_done && !eof_sent {
            match ch.send_eof() {
                Ok(()) => eof_sent = true,
                Err(e) if super::would_block(&e) => {}
                Err(e) => return Err(ctx("closing the command's stdin")(e)),
            }
        }
        for is_err in [false, true] {
            if (is_err && err_eof) || (!is_err && out_eof) {
                continue;
            }
            let id = if is_err {
                ssh2::EXTENDED_DATA_STDERR
            } else {
                0
            };
            match ch.stream(id).read(&mut buf) {
                Ok(0) => {
                    if is_err {
                        err_eof = true
                    } else {
                        out_eof = true
                    }
                }
                Ok(n) => {
                    progressed = true;
                    let sink = if is_err { &stderr } else { &to_host };
                    // A host that stopped listening only loses the bytes.
                    let _ = sink.blocking_send(buf[..n].to_vec());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    return Err(SshError::Other(format!(
                        "reading the command's output: {e}"
                    )))
                }
            }
        }
        if !progressed {
            // New bytes from the host do not wake poll(): a short wait
            // bounds how long they sit here.
            wait_socket(sess, Duration::from_millis(10));
        }
    }
    let _ = ch.close();
    for _ in 0..100 {
        match ch.wait_close() {
            Ok(()) => break,
            Err(e) if super::would_block(&e) => wait_socket(sess, Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    ch.exit_status().map_err(ctx("the command's exit status"))
}
