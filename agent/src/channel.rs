//! The agent's own channel to the host: a virtio-serial port found by name.
//! Commands are accepted only from here; the agent opens no network socket.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hilt_protocol::{encode_frame, AgentMsg, Decoded, FrameDecoder, HostMsg};

pub fn find_port(name: &str) -> io::Result<PathBuf> {
    for entry in fs::read_dir("/sys/class/virtio-ports")? {
        let entry = entry?;
        let port_name = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if port_name.trim() == name {
            return Ok(Path::new("/dev").join(entry.file_name()));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no virtio-serial port named {name}"),
    ))
}

struct Out {
    file: File,
    seq: u64,
    buf: Vec<u8>,
}

/// Cloneable sender; one lock serialises frames so sequence numbers match
/// the order on the wire.
#[derive(Clone)]
pub struct Sender(Arc<Mutex<Out>>);

/// Set by the `mute` fault: the agent keeps running but says nothing.
pub static MUTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Sender {
    pub fn send(&self, msg: &AgentMsg) {
        if MUTED.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Out { file, seq, buf } = &mut *out;
        buf.clear();
        encode_frame(*seq, msg, buf);
        *seq += 1;
        // A failed write means the host went away; there is no one to tell,
        // and the watcher must keep running for the console side.
        let _ = file.write_all(buf);
    }

    /// The `channel_garbage` fault: damage of every kind the host's decoder
    /// must report rather than trust, each on its own line.
    pub fn garbage(&self, msg: &AgentMsg) {
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Out { file, seq, buf } = &mut *out;
        let mut junk = vec![0u8; 2048];
        crate::faults::Noise::from_clock().fill(&mut junk);
        junk.push(b'\n');
        buf.clear();
        // A frame cut short by a lost tail.
        encode_frame(*seq, msg, buf);
        buf.truncate(buf.len() / 2);
        buf.push(b'\n');
        *seq += 1;
        // A frame with one byte flipped in its JSON.
        let start = buf.len();
        encode_frame(*seq, msg, buf);
        *seq += 1;
        let flip = buf.len() - 4;
        buf[flip] ^= 0x20;
        debug_assert!(buf.len() > start + 8);
        // Two frames that never arrive: the next good one shows a gap.
        *seq += 2;
        let _ = file.write_all(&junk).and_then(|_| file.write_all(buf));
    }
}

pub struct Receiver {
    file: File,
    decoder: FrameDecoder,
    pending: std::collections::VecDeque<HostMsg>,
    /// A pipe or socket reads 0 only at its end; a virtio-serial port also
    /// reads 0 while nobody is connected on the host.
    zero_is_end: bool,
}

impl Receiver {
    /// Blocks until the next valid command; `None` when the channel closed.
    pub fn recv(&mut self) -> Option<HostMsg> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            let n = match self.file.read(&mut buf) {
                Ok(0) if self.zero_is_end => return None,
                Ok(0) => {
                    // virtio-serial reads 0 while the host side is not
                    // connected; wait instead of spinning.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            };
            let mut out = Vec::new();
            self.decoder.feed::<HostMsg>(&buf[..n], &mut out);
            for d in out {
                if let Decoded::Record { msg, .. } = d {
                    self.pending.push_back(msg);
                }
            }
        }
    }
}

/// The name that makes the agent talk on its stdin and stdout: the channel
/// of an SSH or adb shell command on a board that runs its own OS.
pub const STDIO: &str = "stdio";

/// `console` is the kernel's console; anything else is a node in /dev
/// (a UART, or a USB gadget's ttyGS0).
pub fn port_path(name: &str) -> PathBuf {
    match name {
        "console" => PathBuf::from("/dev/console"),
        n if n.starts_with('/') => PathBuf::from(n),
        n => Path::new("/dev").join(n),
    }
}

/// A tty carries frames only in raw mode: echo would send the host's
/// commands straight back, and output processing would rewrite newlines.
/// The speed is left alone; it is the console's, set by the kernel.
fn make_raw(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    if unsafe { libc::isatty(fd) } != 1 {
        return Ok(());
    }
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    unsafe { libc::cfmakeraw(&mut t) };
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn open(path: &Path) -> io::Result<(Sender, Receiver)> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    make_raw(&file)?;
    Ok(pair(file.try_clone()?, file, false))
}

fn pair(out: File, input: File, zero_is_end: bool) -> (Sender, Receiver) {
    let tx = Sender(Arc::new(Mutex::new(Out {
        file: out,
        seq: 0,
        buf: Vec::with_capacity(64 * 1024),
    })));
    let rx = Receiver {
        file: input,
        decoder: FrameDecoder::new(),
        pending: Default::default(),
        zero_is_end,
    };
    (tx, rx)
}

/// The channel on stdin and stdout. Both are moved to fresh descriptors
/// first, and 0 and 1 become /dev/null and stderr: a worker inherits 0, 1
/// and 2, and one stray byte of its output on the channel would corrupt a
/// frame.
pub fn open_stdio() -> io::Result<(Sender, Receiver)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let moved = |fd: libc::c_int| -> io::Result<File> {
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if new < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(new) })
    };
    let input = moved(0)?;
    let out = moved(1)?;
    let null = File::open("/dev/null")?;
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 || unsafe { libc::dup2(2, 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    make_raw(&input)?;
    Ok(pair(out, input, true))
}
