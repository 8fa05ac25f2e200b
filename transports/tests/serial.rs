//! The local serial console against real pseudo-terminals: the test holds
//! the master side (the board), the console opens the slave by path.

mod common;

use std::time::{Duration, Instant};

use common::{baud, Pty};
use hilt_transports::console::{
    Console, FlowControl, LineSettings, Parity, Reconnect, SerialConfig, SerialConsole,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

fn config(path: &std::path::Path) -> SerialConfig {
    let mut cfg = SerialConfig::new(path);
    cfg.reconnect = Some(Reconnect {
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        give_up_after: Duration::from_secs(5),
    });
    cfg
}

async fn read_n(c: &mut (impl AsyncReadExt + Unpin), n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(T, c.read_exact(&mut buf))
        .await
        .expect("console read timed out")
        .expect("console read");
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_pass_both_ways_unchanged() {
    let pty = Pty::open();
    let mut c: Box<dyn Console> = Box::new(SerialConsole::open(config(&pty.path)).unwrap());
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    pty.write(&all);
    assert_eq!(read_n(&mut c, all.len()).await, all);
    c.write_all(&all).await.unwrap();
    c.flush().await.unwrap();
    assert_eq!(
        tokio::task::block_in_place(|| pty.read_exact_timeout(all.len(), T)),
        all
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_from_config_reaches_the_tty() {
    let pty = Pty::open();
    let mut cfg = config(&pty.path);
    cfg.line = LineSettings {
        baud: 9600,
        data_bits: 7,
        parity: Parity::Even,
        stop_bits: 2,
        flow: FlowControl::Hardware,
    };
    let _c = SerialConsole::open(cfg).unwrap();
    let t = pty.slave_termios();
    assert_eq!(baud(&pty.master), 9600);
    // Linux's pty_set_termios forces CS8 and clears PARENB whatever is
    // asked, so data bits and parity cannot be seen on a pty; PARODD is
    // left alone, and so are stop bits and flow control.
    assert_eq!(
        t.c_cflag & libc::CSIZE,
        libc::CS8,
        "pty_set_termios no longer forces CS8?"
    );
    assert_eq!(t.c_cflag & libc::PARODD, 0, "even parity");
    assert_ne!(t.c_cflag & libc::CSTOPB, 0, "two stop bits");
    assert_ne!(t.c_cflag & libc::CRTSCTS, 0, "RTS/CTS");
    drop(_c);

    let mut cfg = config(&pty.path);
    cfg.line = "115200o81,xonxoff".parse().unwrap();
    let _c = SerialConsole::open(cfg).unwrap();
    let t = pty.slave_termios();
    assert_eq!(baud(&pty.master), 115_200);
    assert_ne!(t.c_cflag & libc::PARODD, 0, "odd parity");
    assert_eq!(t.c_cflag & libc::CSTOPB, 0, "one stop bit");
    assert_eq!(t.c_cflag & libc::CRTSCTS, 0);
    assert_ne!(t.c_iflag & libc::IXON, 0, "XON/XOFF");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opener_is_refused() {
    let pty = Pty::open();
    let c = SerialConsole::open(config(&pty.path)).unwrap();
    // Another hilt (or anything using flock) is refused with a useful message.
    let err = SerialConsole::open(config(&pty.path)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
    assert!(
        err.to_string().contains("in use by another program"),
        "{err}"
    );

    // TIOCEXCL refuses any other open(2), even without flock, except to
    // CAP_SYS_ADMIN: check it as an unprivileged user when we are root.
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        std::fs::set_permissions(
            &pty.path,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .unwrap();
        let try_open = || {
            std::process::Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--",
                    "sh",
                    "-c",
                ])
                .arg(format!("exec 3<>'{}'", pty.path.display()))
                .output()
                .expect("setpriv (util-linux)")
        };
        let out = try_open();
        assert!(
            !out.status.success(),
            "an unprivileged open succeeded despite TIOCEXCL"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("busy"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop(c);
        let out = try_open();
        assert!(
            out.status.success(),
            "after close: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_port_says_what_to_check() {
    let err = SerialConsole::open(config(
        "/dev/serial/by-id/usb-FTDI_nothing-if00-port0".as_ref(),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(
        err.to_string()
            .contains("is the USB serial adapter plugged in"),
        "{err}"
    );
}

/// A pty has no line to hold low: Linux pty drivers have no break_ctl, so
/// TIOCSBRK succeeds and does nothing visible. What can be checked: the
/// ioctls are accepted, the break lasts its 250 ms, and the line works after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_lasts_250ms_and_the_line_still_works() {
    let pty = Pty::open();
    let mut c = SerialConsole::open(config(&pty.path)).unwrap();
    let t0 = Instant::now();
    c.sysrq(b'w').await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        tokio::task::block_in_place(|| pty.read_exact_timeout(1, T)),
        b"w"
    );
    pty.write(b"ok");
    assert_eq!(read_n(&mut c, 2).await, b"ok");
}

/// The adapter re-enumerates: its node goes away and a new one appears
/// behind the same by-id link. The console follows the link, says so, and
/// the byte stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_the_adapter_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir
        .path()
        .join("usb-FTDI_FT232R_USB_UART_A10K1234-if00-port0");
    let first = Pty::open();
    std::os::unix::fs::symlink(&first.path, &link).unwrap();
    let mut c = SerialConsole::open(config(&link)).unwrap();
    first.write(b"one");
    assert_eq!(read_n(&mut c, 3).await, b"one");

    // Unplug: the master goes away, the slave hangs up, the link dangles.
    drop(first);
    std::fs::remove_file(&link).unwrap();
    let reader = tokio::spawn(async move {
        let bytes = read_n(&mut c, 3).await;
        (c, bytes)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Plug in again, under another pts number.
    let second = Pty::open();
    std::os::unix::fs::symlink(&second.path, &link).unwrap();
    // Keep writing until the console is back: bytes written before the
    // reopen are lost on a real adapter as well.
    let t0 = Instant::now();
    while !reader.is_finished() {
        assert!(t0.elapsed() < T, "console did not come back");
        second.write(b"two");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut c, bytes) = reader.await.unwrap();
    assert_eq!(bytes, b"two");
    assert_eq!(c.reconnects(), 1);
    let notices = c.take_notices();
    assert!(notices[0].contains("went away"), "{notices:?}");
    assert!(
        notices[1].starts_with("reconnected to")
            && notices[1].contains(&link.display().to_string()),
        "{notices:?}"
    );
    c.write_all(b"back").await.unwrap();
    let got = tokio::task::block_in_place(|| second.read_until(b"back", T));
    assert!(got.ends_with(b"back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_when_the_adapter_stays_away() {
    let pty = Pty::open();
    let mut cfg = config(&pty.path);
    cfg.reconnect = Some(Reconnect {
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
        give_up_after: Duration::from_millis(300),
    });
    let mut c = SerialConsole::open(cfg).unwrap();
    drop(pty);
    let mut buf = [0u8; 8];
    let err = tokio::time::timeout(T, c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("did not come back"), "{err}");
    // And without reconnection a hangup is an end of stream.
    let pty = Pty::open();
    let mut cfg = config(&pty.path);
    cfg.reconnect = None;
    let mut c = SerialConsole::open(cfg).unwrap();
    drop(pty);
    assert_eq!(
        tokio::time::timeout(T, c.read(&mut buf))
            .await
            .unwrap()
            .unwrap(),
        0
    );
}
