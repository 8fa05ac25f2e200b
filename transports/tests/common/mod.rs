//! Helpers shared by the integration tests: pseudo-terminals, free loopback
//! ports, real peers started as child processes.
#![allow(dead_code)]

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Fails (never skips) when a peer the test needs is not installed.
pub fn require(binary: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/lib/android-sdk/platform-tools",
    ] {
        let p = Path::new(dir).join(binary);
        if p.exists() {
            return p;
        }
    }
    panic!("{binary} is missing: this test needs a real peer; install it with `apt-get install -y {package}` (scripts/setup does)");
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on the port.
pub fn wait_port(port: u16, limit: Duration) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < limit,
            "nothing listens on 127.0.0.1:{port} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when the test ends, however it ends.
pub struct Peer(pub Child, pub &'static str);

impl Peer {
    pub fn spawn(what: &'static str, cmd: &mut Command) -> Self {
        Peer(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("starting {what}: {e}")),
            what,
        )
    }

    /// Fails the test if the peer died (with its exit status).
    pub fn assert_alive(&mut self) {
        if let Some(st) = self.0.try_wait().unwrap() {
            panic!("{} exited early: {st}", self.1);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pseudo-terminal pair: the test plays the board on the master side,
/// the code under test opens the slave by path like a /dev/ttyUSB node.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: Option<OwnedFd>,
    pub path: PathBuf,
}

impl Pty {
    pub fn open() -> Self {
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty writes two fds; the name buffer is not used.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", io::Error::last_os_error());
        // SAFETY: fresh fds we own.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let mut name = [0u8; 128];
        // SAFETY: buffer and length match.
        let rc =
            unsafe { libc::ttyname_r(slave.as_raw_fd(), name.as_mut_ptr().cast(), name.len()) };
        assert_eq!(rc, 0);
        let len = name.iter().position(|&b| b == 0).unwrap();
        let path = PathBuf::from(std::str::from_utf8(&name[..len]).unwrap());
        // The slave starts cooked (echo, icanon): make it a raw line, as a
        // UART is before anyone configures it, so that nothing echoes back.
        let mut t = termios(&slave);
        // SAFETY: valid termios.
        unsafe { libc::cfmakeraw(&mut t) };
        set_termios(&slave, &t);
        Pty {
            master,
            slave: Some(slave),
            path,
        }
    }

    /// The slave's termios as seen from the master: on Linux, termios ioctls
    /// on a pty master act on its slave, the side a program configured.
    pub fn slave_termios(&self) -> libc::termios {
        termios(&self.master)
    }

    pub fn write(&self, data: &[u8]) {
        let mut off = 0;
        while off < data.len() {
            // SAFETY: valid slice.
            let n = unsafe {
                libc::write(
                    self.master.as_raw_fd(),
                    data[off..].as_ptr().cast(),
                    data.len() - off,
                )
            };
            assert!(n > 0, "write to pty master: {}", io::Error::last_os_error());
            off += n as usize;
        }
    }

    /// Reads from the master until `want` bytes came or `limit` passed.
    pub fn read_exact_timeout(&self, want: usize, limit: Duration) -> Vec<u8> {
        let out = self.read_up_to(want, limit);
        assert!(
            out.len() == want,
            "pty master: got {} of {want} bytes: {:?}",
            out.len(),
            String::from_utf8_lossy(&out)
        );
        out
    }

    /// What came from the master, up to `want` bytes, within `limit`.
    pub fn read_up_to(&self, want: usize, limit: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        let t0 = Instant::now();
        while out.len() < want {
            let left = limit.saturating_sub(t0.elapsed());
            if left.is_zero() {
                break;
            }
            let mut pfd = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
            if pfd.revents & libc::POLLIN != 0 {
                let mut buf = [0u8; 4096];
                let cap = (want - out.len()).min(buf.len());
                // SAFETY: valid buffer.
                let n =
                    unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), cap) };
                if n > 0 {
                    out.extend_from_slice(&buf[..n as usize]);
                }
            }
        }
        out
    }

    /// Reads until `needle` appears.
    pub fn read_until(&self, needle: &[u8], limit: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        let t0 = Instant::now();
        while !out.windows(needle.len()).any(|w| w == needle) {
            let left = limit.saturating_sub(t0.elapsed());
            assert!(
                !left.is_zero(),
                "pty master: no {:?} in {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&out)
            );
            out.extend(self.read_exact_timeout(1, left));
        }
        out
    }
}

pub fn termios(fd: &OwnedFd) -> libc::termios {
    // SAFETY: zeroed termios is valid storage for tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and storage.
    assert_eq!(
        unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) },
        0,
        "tcgetattr: {}",
        io::Error::last_os_error()
    );
    t
}

pub fn set_termios(fd: &OwnedFd, t: &libc::termios) {
    // SAFETY: valid fd and termios.
    assert_eq!(
        unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, t) },
        0
    );
}

/// The output baud of a tty (of the slave, through a pty master) in
/// bauds: TCGETS2 gives it whether it was set as a Bnnn constant or as
/// BOTHER with a number, as serialport does.
pub fn baud(fd: &OwnedFd) -> u32 {
    // SAFETY: zeroed termios2 is valid storage for TCGETS2.
    let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and storage of the type TCGETS2 writes.
    assert_eq!(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCGETS2, &mut t) },
        0,
        "TCGETS2: {}",
        io::Error::last_os_error()
    );
    t.c_ospeed
}
