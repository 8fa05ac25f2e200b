//! A local serial port: a USB serial adapter (`/dev/ttyUSB0`,
//! `/dev/serial/by-id/...`) or an on-board UART.
//!
//! The port is opened exclusively (TIOCEXCL plus an exclusive flock, both
//! from `serialport`) because two readers of one UART each get half the
//! bytes, which looks exactly like a garbled console. The fd is put back in
//! non-blocking mode and driven by tokio's reactor, so no thread sits in
//! `read(2)`.
//!
//! USB adapters vanish when the board's power cycling browns out the hub, or
//! when someone touches the cable: the device node goes away and comes back,
//! maybe under another number. A hangup (EIO, or a zero-length read) is not
//! the end of the console: it is reopened by path with backoff, and a notice
//! says so. Configure a `/dev/serial/by-id/` path so the reopened node is the
//! same adapter.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Console, FlowControl, LineSettings, Parity};

/// How long a BREAK lasts: what tcsendbreak(fd, 0) gives on Linux, and
/// comfortably longer than the one character time the 8250/PL011/meson UART
/// drivers need to see a break at any baud used for consoles.
pub const BREAK_DURATION: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Prefer `/dev/serial/by-id/...`: it names the adapter, not the order
    /// in which adapters enumerated.
    pub path: PathBuf,
    #[serde(default)]
    pub line: LineSettings,
    /// TIOCEXCL and an exclusive flock. Only turn this off to share a port
    /// with a tool that knows what it is doing.
    #[serde(default = "yes")]
    pub exclusive: bool,
    /// `None`: a hangup is the end of the console (read returns EOF).
    #[serde(default = "Reconnect::some_default")]
    pub reconnect: Option<Reconnect>,
}

fn yes() -> bool {
    true
}

impl SerialConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            line: LineSettings::default(),
            exclusive: true,
            reconnect: Some(Reconnect::default()),
        }
    }
}

/// Backoff for reopening a port whose device went away.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconnect {
    #[serde(with = "millis")]
    pub first_delay: Duration,
    #[serde(with = "millis")]
    pub max_delay: Duration,
    /// Give up (reads and writes fail) when the port has been gone this long.
    #[serde(with = "millis")]
    pub give_up_after: Duration,
}

impl Default for Reconnect {
    /// A USB serial adapter re-enumerates in well under a second; a board
    /// whose power cycle takes the hub with it needs a few.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            give_up_after: Duration::from_secs(60),
        }
    }
}

impl Reconnect {
    fn some_default() -> Option<Self> {
        Some(Self::default())
    }
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(serde::Deserialize::deserialize(d)?))
    }
}

/// Opens the port as configured and explains failures in terms of what the
/// user can do about them.
///
/// The fd is opened and locked here rather than by `TTYPort::open`: that one
/// sets TIOCEXCL before trying the flock, and on failure its close clears
/// TIOCEXCL, which is a flag of the tty, not of the fd. A second opener (as
/// root, whom TIOCEXCL does not stop) would thus silently take away the
/// first one's exclusivity. Locking first and closing plainly keeps it.
fn open_port(cfg: &SerialConfig) -> io::Result<AsyncFd<TTYPort>> {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    cfg.line
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let path = cfg.path.display().to_string();
    let cpath = std::ffi::CString::new(cfg.path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{path}: NUL in path")))?;
    // SAFETY: valid C string; the flags take no mode argument.
    let raw = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(explain_open_error(&path, io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let sys = |what: &str, rc: libc::c_int| {
        if rc < 0 {
            let e = io::Error::last_os_error();
            Err(io::Error::new(e.kind(), format!("{path}: {what}: {e}")))
        } else {
            Ok(())
        }
    };
    if cfg.exclusive {
        // SAFETY: flock and ioctl on an fd we own.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } < 0 {
            return Err(explain_open_error(
                &path,
                io::Error::from_raw_os_error(libc::EBUSY),
            ));
        }
        // SAFETY: as above.
        sys("TIOCEXCL", unsafe {
            libc::ioctl(fd.as_raw_fd(), libc::TIOCEXCL)
        })?;
    }
    // Raw mode: a console is a byte stream, no line discipline editing it.
    // SAFETY: zeroed termios is valid storage; calls on an fd we own.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        sys("tcgetattr", libc::tcgetattr(fd.as_raw_fd(), &mut t))?;
        libc::cfmakeraw(&mut t);
        t.c_cflag |= libc::CREAD | libc::CLOCAL;
        sys(
            "tcsetattr",
            libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &t),
        )?;
    }
    // SAFETY: ownership of the fd moves to the TTYPort.
    let mut port = unsafe { TTYPort::from_raw_fd(fd.into_raw_fd()) };
    let setting = |what: &str, r: serialport::Result<()>| {
        r.map_err(|e| io::Error::other(format!("{path}: setting {what}: {e}")))
    };
    if !cfg.exclusive {
        setting("shared access", port.set_exclusive(false))?;
    }
    let line = &cfg.line;
    setting(
        "data bits",
        port.set_data_bits(match line.data_bits {
            5 => serialport::DataBits::Five,
            6 => serialport::DataBits::Six,
            7 => serialport::DataBits::Seven,
            _ => serialport::DataBits::Eight,
        }),
    )?;
    setting(
        "parity",
        port.set_parity(match line.parity {
            Parity::None => serialport::Parity::None,
            Parity::Odd => serialport::Parity::Odd,
            Parity::Even => serialport::Parity::Even,
        }),
    )?;
    setting(
        "stop bits",
        port.set_stop_bits(if line.stop_bits == 2 {
            serialport::StopBits::Two
        } else {
            serialport::StopBits::One
        }),
    )?;
    setting(
        "flow control",
        port.set_flow_control(match line.flow {
            FlowControl::None => serialport::FlowControl::None,
            FlowControl::Software => serialport::FlowControl::Software,
            FlowControl::Hardware => serialport::FlowControl::Hardware,
        }),
    )?;
    setting("baud", port.set_baud_rate(line.baud))?;
    // SAFETY: TTYPort owns its fd, closes it only on drop, and always
    // returns the same one from as_raw_fd.
    Ok(unsafe { AsyncFd::register(port) }?)
}

fn explain_open_error(path: &str, e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "permission denied opening {path}: add yourself to the group that owns it \
                 (usually dialout: sudo usermod -aG dialout $USER, then log in again)"
            ),
        ),
        Some(libc::ENOENT | libc::ENXIO | libc::ENODEV) => io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{path} does not exist: is the USB serial adapter plugged in? \
                 `ls -l /dev/serial/by-id/` lists the adapters the kernel sees"
            ),
        ),
        // EBUSY: another opener's TIOCEXCL, or its flock (mapped above).
        Some(libc::EBUSY) => io::Error::new(
            io::ErrorKind::ResourceBusy,
            format!(
                "{path} is in use by another program: close it (`fuser -v {path}` names it); \
                 a console must have a single reader"
            ),
        ),
        _ => io::Error::new(e.kind(), format!("cannot open {path}: {e}")),
    }
}

/// Errors that mean the device is gone, not that this one call failed.
fn is_hangup(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::ENXIO | libc::ENODEV | libc::EBADF | libc::EPIPE)
    )
}

/// Wakes every task waiting for a reconnection, not only the last to poll:
/// a reader and a writer (tokio::io::split) both wait on the same timer.
#[derive(Default)]
struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    fn register(&self, w: &Waker) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|x| x.will_wake(w)) {
            list.push(w.clone());
        }
    }

    fn wake_all(&self) {
        let list = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        list.into_iter().for_each(Waker::wake);
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_all();
    }
}

enum State {
    Open(AsyncFd<TTYPort>),
    Gone {
        since: Instant,
        delay: Duration,
        timer: Pin<Box<tokio::time::Sleep>>,
        last_error: String,
    },
    Failed(String),
}

/// A local serial port as a [`Console`].
pub struct SerialConsole {
    cfg: SerialConfig,
    state: State,
    waiters: Arc<Waiters>,
    notices: Vec<String>,
    reconnects: u64,
}

impl std::fmt::Debug for SerialConsole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialConsole")
            .field("path", &self.cfg.path)
            .field("reconnects", &self.reconnects)
            .finish()
    }
}

impl SerialConsole {
    /// Opens the port now: a console that cannot be opened at the start is a
    /// configuration error, not something to wait out. Must be called inside
    /// a tokio runtime.
    pub fn open(cfg: SerialConfig) -> io::Result<Self> {
        let fd = open_port(&cfg)?;
        Ok(Self {
            cfg,
            state: State::Open(fd),
            waiters: Default::default(),
            notices: Vec::new(),
            reconnects: 0,
        })
    }

    pub fn config(&self) -> &SerialConfig {
        &self.cfg
    }

    /// How many times the port was reopened after a hangup.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    fn hung_up(&mut self, why: &io::Error) {
        let msg = format!("{} went away ({why})", self.cfg.path.display());
        self.state = match self.cfg.reconnect {
            None => State::Failed(msg.clone()),
            Some(r) => State::Gone {
                since: Instant::now(),
                delay: r.first_delay,
                timer: Box::pin(tokio::time::sleep(r.first_delay)),
                last_error: why.to_string(),
            },
        };
        self.notices.push(msg);
    }

    /// Ready when the port is open; drives the reopening while it is not.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                State::Open(_) => return Poll::Ready(Ok(())),
                State::Failed(msg) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        msg.clone(),
                    )))
                }
                State::Gone {
                    since,
                    delay,
                    timer,
                    last_error,
                } => {
                    self.waiters.register(cx.waker());
                    let fanout = Waker::from(self.waiters.clone());
                    ready!(timer.as_mut().poll(&mut Context::from_waker(&fanout)));
                    let policy = self.cfg.reconnect.unwrap_or_default();
                    match open_port(&self.cfg) {
                        Ok(fd) => {
                            self.reconnects += 1;
                            self.notices.push(format!(
                                "reconnected to {} after {:.1} s",
                                self.cfg.path.display(),
                                since.elapsed().as_secs_f64()
                            ));
                            self.state = State::Open(fd);
                            self.waiters.wake_all();
                        }
                        Err(e) if since.elapsed() >= policy.give_up_after => {
                            let msg = format!(
                                "{} did not come back within {} s (last error: {e}); check the adapter and its cable",
                                self.cfg.path.display(),
                                policy.give_up_after.as_secs()
                            );
                            self.notices.push(msg.clone());
                            self.state = State::Failed(msg);
                            self.waiters.wake_all();
                        }
                        Err(e) => {
                            *last_error = e.to_string();
                            *delay = (*delay * 2).min(policy.max_delay);
                            timer.as_mut().reset(tokio::time::Instant::now() + *delay);
                        }
                    }
                }
            }
        }
    }

    fn port(&self) -> &AsyncFd<TTYPort> {
        match &self.state {
            State::Open(fd) => fd,
            _ => unreachable!("port() after poll_open said it is open"),
        }
    }
}

impl AsyncRead for SerialConsole {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if let Err(e) = ready!(this.poll_open(cx)) {
                // Without reconnection a hangup is a plain end of stream.
                return Poll::Ready(if this.cfg.reconnect.is_none() {
                    Ok(())
                } else {
                    Err(e)
                });
            }
            let mut guard = ready!(this.port().poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let res = guard.try_io(|fd| {
                // SAFETY: reading into an initialized buffer of the given length.
                let n = unsafe {
                    libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Err(_would_block) => continue,
                Ok(Ok(0)) => this.hung_up(&io::Error::new(io::ErrorKind::UnexpectedEof, "hangup")),
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if is_hangup(&e) => this.hung_up(&e),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SerialConsole {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            ready!(this.poll_open(cx))?;
            let mut guard = ready!(this.port().poll_write_ready(cx))?;
            let res = guard.try_io(|fd| {
                // SAFETY: writing from a valid slice.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Err(_would_block) => continue,
                Ok(Ok(n)) => return Poll::Ready(Ok(n)),
                Ok(Err(e)) if is_hangup(&e) => this.hung_up(&e),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Bytes written to a tty are in the kernel's queue; waiting for the UART
    /// to drain them (tcdrain) would block the runtime, and nothing hilt
    /// sends needs that guarantee.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[async_trait::async_trait]
impl Console for SerialConsole {
    /// TIOCSBRK, 250 ms, TIOCCBRK: tcsendbreak(fd, 0) without blocking a
    /// runtime thread for the duration.
    async fn send_break(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_open(cx)).await?;
        let path = self.cfg.path.display().to_string();
        self.port()
            .get_ref()
            .set_break()
            .map_err(|e| io::Error::other(format!("BREAK on {path}: {e}")))?;
        tokio::time::sleep(BREAK_DURATION).await;
        // The port may have hung up meanwhile; a new one starts without break.
        if let State::Open(fd) = &self.state {
            fd.get_ref()
                .clear_break()
                .map_err(|e| io::Error::other(format!("ending BREAK on {path}: {e}")))?;
        }
        Ok(())
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}
