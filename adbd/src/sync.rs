//! The `sync:` service, device side (AOSP SYNC.TXT): requests of a 4-byte
//! id and a little-endian u32 length; STAT, SEND (DATA... DONE), RECV and
//! QUIT, the version 1 set that a host uses when the device does not
//! advertise the v2 features.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::mpsc::Sender;

/// SYNC.TXT's limit on one DATA chunk.
pub const DATA_MAX: usize = 64 * 1024;
/// Longest path a request may name (adbd's own limit).
const PATH_MAX: usize = 1024;

fn reply(id: &[u8; 4], arg: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(id);
    v.extend(arg.to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn fail(msg: &str) -> Vec<u8> {
    reply(b"FAIL", msg.len() as u32, msg.as_bytes())
}

fn read_request(r: &mut impl Read) -> io::Result<Option<([u8; 4], u32)>> {
    let mut h = [0u8; 8];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let id = h[..4].try_into().expect("4 bytes");
    Ok(Some((
        id,
        u32::from_le_bytes(h[4..].try_into().expect("4 bytes")),
    )))
}

fn read_path(r: &mut impl Read, len: u32) -> io::Result<String> {
    if len as usize > PATH_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sync path of {len} bytes"),
        ));
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// Serves requests until QUIT or the host closes the stream.
pub fn serve(mut input: impl Read, out: &Sender<Vec<u8>>) -> io::Result<()> {
    let send = |v: Vec<u8>| {
        out.send(v)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "stream closed"))
    };
    while let Some((id, len)) = read_request(&mut input)? {
        match &id {
            b"STAT" => {
                let path = read_path(&mut input, len)?;
                let (mode, size, mtime) = match fs::metadata(&path) {
                    Ok(m) => (m.mode(), m.size() as u32, m.mtime() as u32),
                    Err(_) => (0, 0, 0),
                };
                let mut v = reply(b"STAT", mode, &size.to_le_bytes());
                v.extend(mtime.to_le_bytes());
                send(v)?;
            }
            b"SEND" => {
                let arg = read_path(&mut input, len)?;
                let answer = match receive_file(&mut input, &arg)? {
                    Ok(()) => reply(b"OKAY", 0, &[]),
                    Err(e) => fail(&e),
                };
                send(answer)?;
            }
            b"RECV" => {
                let path = read_path(&mut input, len)?;
                match fs::File::open(&path) {
                    Ok(mut f) => {
                        let mut buf = vec![0u8; DATA_MAX];
                        loop {
                            let n = f.read(&mut buf)?;
                            if n == 0 {
                                break;
                            }
                            send(reply(b"DATA", n as u32, &buf[..n]))?;
                        }
                        send(reply(b"DONE", 0, &[]))?;
                    }
                    Err(e) => send(fail(&format!("{path}: {e}")))?,
                }
            }
            b"QUIT" => return Ok(()),
            other => {
                send(fail(&format!(
                    "unknown sync request {:?}",
                    String::from_utf8_lossy(other)
                )))?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// SEND's "path,mode", then DATA chunks up to DONE. The outer error is the
/// stream's; the inner one is the file's, told to the host as FAIL once
/// the host has sent everything.
fn receive_file(input: &mut impl Read, arg: &str) -> io::Result<Result<(), String>> {
    let (path, mode) = match arg.rsplit_once(',') {
        Some((p, m)) => (p, m.parse::<u32>().unwrap_or(0o644)),
        None => (arg, 0o644),
    };
    let mut file = fs::File::create(path).map_err(|e| format!("{path}: {e}"));
    loop {
        let Some((id, len)) = read_request(input)? else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "SEND ended without DONE",
            ));
        };
        match &id {
            b"DATA" if len as usize <= DATA_MAX => {
                let mut b = vec![0u8; len as usize];
                input.read_exact(&mut b)?;
                if let Ok(f) = file.as_mut() {
                    if let Err(e) = f.write_all(&b) {
                        file = Err(format!("{path}: {e}"));
                    }
                }
            }
            b"DONE" => {
                let f = match file {
                    Ok(f) => f,
                    Err(e) => return Ok(Err(e)),
                };
                let done = f
                    .sync_all()
                    .and_then(|_| {
                        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
                    })
                    .map_err(|e| format!("{path}: {e}"));
                return Ok(done);
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "SEND: {:?} of {len} bytes where DATA or DONE belongs",
                        String::from_utf8_lossy(other)
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
        reply(id, data.len() as u32, data)
    }

    #[test]
    fn send_stat_recv_quit() {
        let dir = std::env::temp_dir().join(format!("hilt-adbd-sync-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f").to_string_lossy().into_owned();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut input = request(b"SEND", format!("{path},{}", 0o100600).as_bytes());
        for c in body.chunks(DATA_MAX) {
            input.extend(request(b"DATA", c));
        }
        input.extend(reply(b"DONE", 0, &[]));
        input.extend(request(b"STAT", path.as_bytes()));
        input.extend(request(b"RECV", path.as_bytes()));
        input.extend(request(b"QUIT", &[]));
        let (tx, rx) = std::sync::mpsc::channel();
        serve(&input[..], &tx).unwrap();
        drop(tx);
        let got: Vec<u8> = rx.iter().flatten().collect();
        assert_eq!(&got[..8], b"OKAY\0\0\0\0");
        assert_eq!(&got[8..12], b"STAT");
        let mode = u32::from_le_bytes(got[12..16].try_into().unwrap());
        assert_eq!(mode & 0o7777, 0o600);
        assert_eq!(u32::from_le_bytes(got[16..20].try_into().unwrap()), 100_000);
        // DATA chunks, then DONE.
        let (mut at, mut back) = (24, Vec::new());
        while &got[at..at + 4] == b"DATA" {
            let n = u32::from_le_bytes(got[at + 4..at + 8].try_into().unwrap()) as usize;
            back.extend_from_slice(&got[at + 8..at + 8 + n]);
            at += 8 + n;
        }
        assert_eq!(&got[at..at + 4], b"DONE");
        assert_eq!(back, body);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_cannot_be_written_is_a_fail_after_done() {
        let mut input = request(b"SEND", b"/nonexistent-dir/f,33188");
        input.extend(request(b"DATA", b"abc"));
        input.extend(reply(b"DONE", 0, &[]));
        let (tx, rx) = std::sync::mpsc::channel();
        serve(&input[..], &tx).unwrap();
        drop(tx);
        let got: Vec<u8> = rx.iter().flatten().collect();
        assert_eq!(&got[..4], b"FAIL");
        assert!(String::from_utf8_lossy(&got[8..]).contains("/nonexistent-dir/f"));
    }
}
