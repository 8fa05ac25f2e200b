//! A board in a labgrid lab, end to end, on one machine: the real
//! labgrid-coordinator and labgrid-exporter (the labgrid scripts/setup
//! installs into the cache) on 127.0.0.1. The emulated bench board's UART is
//! a pseudo-terminal exported as a `RawSerialPort`, so the console hilt gets
//! is the exporter's own ser2net speaking RFC 2217; its power switch is a
//! small HTTP relay in this test, exported as a `NetworkPowerPort` of the
//! `simplerest` model. The board file says only where the place is.
//! labgrid's own `labgrid-client show` is asked what it sees at each step.
//! Slow, so `#[ignore]`d; scripts/test runs it.

mod common;
use common::{control_suspected_by_watcher, free_port, records, repo, says, shared_cache, TestDir};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hilt_reports::Outcome;

const PLACE: &str = "lab-bench";
/// Who holds the place when it is not hilt: another CI runner.
const OTHER: &str = "other-runner";

fn venv() -> PathBuf {
    let v = shared_cache().join("labgrid/venv");
    assert!(
        v.join("bin/labgrid-coordinator").is_file(),
        "{} has no labgrid: run scripts/setup",
        v.display()
    );
    v
}

fn wait_port(port: u16, what: &str) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then SIGKILL if it lingers; waits for it.
fn stop(child: &mut Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pseudo-terminal that is the board's UART: the test keeps its slave
/// open too, so that the master never reads EIO while nobody else has it.
struct Uart {
    master: Arc<OwnedFd>,
    _slave: OwnedFd,
    path: PathBuf,
}

impl Uart {
    fn open() -> Uart {
        let (mut m, mut s) = (-1, -1);
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        unsafe {
            libc::tcgetattr(slave.as_raw_fd(), &mut t);
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t);
        }
        let mut name = [0u8; 128];
        let rc =
            unsafe { libc::ttyname_r(slave.as_raw_fd(), name.as_mut_ptr().cast(), name.len()) };
        assert_eq!(rc, 0);
        let len = name.iter().position(|&b| b == 0).unwrap();
        Uart {
            master: Arc::new(master),
            _slave: slave,
            path: PathBuf::from(std::str::from_utf8(&name[..len]).unwrap()),
        }
    }
}

fn write_fd(fd: &OwnedFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            return false;
        }
        data = &data[n as usize..];
    }
    true
}

/// The bench board's power: HTTP GET `/relay/0/1` runs scripts/bench-board
/// on (QEMU with its UART on a telnet port) and joins that port to the pty;
/// `/relay/0/0` powers it off; `/relay/0` says 1 or 0. Every request line
/// is kept, to show hilt drove the power through the place.
struct Relay {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    state: PathBuf,
}

struct Power {
    state: PathBuf,
    uart: Arc<OwnedFd>,
    /// The QEMU end of the UART while the board is on.
    qemu: Arc<Mutex<Option<TcpStream>>>,
}

impl Power {
    fn on(&self) {
        let mut q = self.qemu.lock().unwrap();
        if q.is_some() {
            return;
        }
        let port = free_port();
        let o = Command::new(repo().join("scripts/bench-board"))
            .arg("on")
            .arg(&self.state)
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(o.status.success(), "bench-board on: {}", says(&o));
        let t0 = Instant::now();
        let sock = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(
                        t0.elapsed() < Duration::from_secs(10),
                        "QEMU's UART port: {e}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let (mut from_qemu, uart) = (sock.try_clone().unwrap(), self.uart.clone());
        // QEMU's telnet server: drop its option negotiation, undo IAC IAC.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut skip = 0usize;
            let mut iac = false;
            while let Ok(n) = from_qemu.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut out = Vec::with_capacity(n);
                for &b in &buf[..n] {
                    if skip > 0 {
                        skip -= 1;
                    } else if iac {
                        iac = false;
                        match b {
                            255 => out.push(255),
                            251..=254 => skip = 1,
                            _ => {}
                        }
                    } else if b == 255 {
                        iac = true;
                    } else {
                        out.push(b);
                    }
                }
                if !write_fd(&uart, &out) {
                    break;
                }
            }
        });
        *q = Some(sock);
    }

    fn off(&self) {
        if let Some(s) = self.qemu.lock().unwrap().take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        let o = Command::new(repo().join("scripts/bench-board"))
            .arg("off")
            .arg(&self.state)
            .output()
            .unwrap();
        assert!(o.status.success(), "bench-board off: {}", says(&o));
    }
}

impl Relay {
    fn start(state: PathBuf, uart: &Uart) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let power = Arc::new(Power {
            state: state.clone(),
            uart: uart.master.clone(),
            qemu: Arc::new(Mutex::new(None)),
        });
        // What the board writes to its UART goes to QEMU while it is on,
        // and nowhere while it is off, as on a real board.
        let (m, q) = (uart.master.clone(), power.qemu.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = unsafe { libc::read(m.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let mut escaped = Vec::with_capacity(n as usize);
                for &b in &buf[..n as usize] {
                    escaped.push(b);
                    if b == 255 {
                        escaped.push(255);
                    }
                }
                if let Some(s) = q.lock().unwrap().as_mut() {
                    let _ = s.write_all(&escaped);
                }
            }
        });
        let (reqs, stopping) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                let mut line = String::new();
                let mut r = BufReader::new(c.try_clone().unwrap());
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                // The rest of the head, and the body it announces.
                let mut h = String::new();
                let mut length = 0usize;
                while r.read_line(&mut h).is_ok_and(|n| n > 2) {
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    h.clear();
                }
                let mut body = vec![0u8; length];
                if r.read_exact(&mut body).is_err() {
                    continue;
                }
                let body = String::from_utf8_lossy(&body).into_owned();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                // Relay 1 speaks the Shelly Gen1 API, a model hilt leaves
                // to labgrid-client: POST `turn=on|off`, state as JSON.
                let shelly = path == "/relay/1";
                reqs.lock().unwrap().push(if body.is_empty() {
                    path.clone()
                } else {
                    format!("{path} {body}")
                });
                match (path.as_str(), body.as_str()) {
                    ("/relay/0/1", _) | ("/relay/1", "turn=on") => power.on(),
                    ("/relay/0/0", _) | ("/relay/1", "turn=off") => power.off(),
                    _ => {}
                }
                let on = power.qemu.lock().unwrap().is_some();
                let json = format!("{{\"ison\": {on}}}");
                let (status, body) = match path.as_str() {
                    "/relay/0/1" | "/relay/0/0" | "/relay/0" => {
                        ("200 OK", if on { "1" } else { "0" })
                    }
                    _ if shelly => ("200 OK", json.as_str()),
                    _ => ("404 Not Found", ""),
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            power.off();
        });
        Relay {
            port,
            requests,
            stop,
            state,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = Command::new(repo().join("scripts/bench-board"))
            .arg("off")
            .arg(&self.state)
            .status();
    }
}

/// The lab: a coordinator, an exporter publishing the bench board's UART
/// and relay as group `bench`, and the place `lab-bench` matching them.
struct Lab {
    tmp: TestDir,
    addr: String,
    coordinator: Child,
    exporter: Child,
    uart: Uart,
    relay: Relay,
}

impl Lab {
    fn start() -> Lab {
        Lab::start_with(
            "model: simplerest\n    host: 'http://127.0.0.1:{relay}/relay/{{index}}/{{value}}'\n    index: '0'",
        )
    }

    /// A lab whose `NetworkPowerPort` has these parameters (`{relay}`: the
    /// relay's port; `{{`, `}}`: labgrid's own braces).
    fn start_with(power: &str) -> Lab {
        let tmp = TestDir::new();
        let venv = venv();
        let uart = Uart::open();
        // The TFTP root the board file names exists before the first power-on.
        std::fs::create_dir_all(tmp.path().join("board/tftp")).unwrap();
        let relay = Relay::start(tmp.path().join("board"), &uart);
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let coord_dir = tmp.path().join("coordinator");
        std::fs::create_dir_all(&coord_dir).unwrap();
        let coordinator = Command::new(venv.join("bin/labgrid-coordinator"))
            .args(["-l", &addr])
            .current_dir(&coord_dir)
            .stdout(std::fs::File::create(tmp.path().join("coordinator.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port, "labgrid-coordinator");
        let config = tmp.path().join("exporter.yaml");
        std::fs::write(
            &config,
            format!(
                "bench:\n  RawSerialPort:\n    port: {}\n    speed: 115200\n  NetworkPowerPort:\n    {}\n",
                uart.path.display(),
                power
                    .replace("{relay}", &relay.port.to_string())
                    .replace("{{", "{")
                    .replace("}}", "}")
            ),
        )
        .unwrap();
        let exporter = Command::new(venv.join("bin/labgrid-exporter"))
            .args(["-c", &addr, "--name", "exp1", "--hostname", "127.0.0.1"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("exporter.log")).unwrap())
            .spawn()
            .unwrap();
        let lab = Lab {
            tmp,
            addr,
            coordinator,
            exporter,
            uart,
            relay,
        };
        let t0 = Instant::now();
        loop {
            let o = lab.client(None, &["resources"]);
            let text = String::from_utf8_lossy(&o.stdout);
            if text.contains("exp1/bench/NetworkSerialPort") && text.contains("NetworkPowerPort") {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the exporter published nothing: {}",
                says(&o)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        lab.ok(None, &["-p", PLACE, "create"]);
        lab.ok(None, &["-p", PLACE, "add-match", "exp1/bench/*"]);
        lab
    }

    /// labgrid-client as `who` (another runner), or as hilt is (this
    /// host and user).
    fn client(&self, who: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(venv().join("bin/labgrid-client"));
        c.arg("-x").arg(&self.addr).args(args);
        if let Some(who) = who {
            c.env("LG_USERNAME", who);
        }
        c.output().unwrap()
    }

    fn ok(&self, who: Option<&str>, args: &[&str]) -> String {
        let o = self.client(who, args);
        assert!(o.status.success(), "labgrid-client {args:?}: {}", says(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Who labgrid says holds the place, if anyone.
    fn holder(&self) -> Option<String> {
        let show = self.ok(None, &["-p", PLACE, "show"]);
        let line = show
            .lines()
            .find(|l| l.trim_start().starts_with("acquired:"))
            .unwrap_or_else(|| panic!("no acquired: line in\n{show}"));
        let who = line.split_once(':').unwrap().1.trim();
        (who != "None" && !who.is_empty()).then(|| who.to_string())
    }

    fn board_file(&self) -> PathBuf {
        let text = std::fs::read_to_string(repo().join("boards/bench-emulated.yaml")).unwrap();
        let cut = |text: &str, from: &str, to: &str| -> String {
            let a = text.find(from).unwrap_or_else(|| panic!("{from}"));
            let b = a + text[a..].find(to).unwrap_or_else(|| panic!("{to}")) + to.len();
            format!("{}{}", &text[..a], &text[b..])
        };
        let text = cut(&text, "console:\n  ser2net:", "protocol: telnet\n");
        let text = cut(&text, "power:\n  command:", "/tmp/hilt-bench-emulated]\n");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("console:") || l.starts_with("power:")),
            "{text}"
        );
        let text = text
            .replace("name: bench-emulated", "name: lab-bench")
            .replace(
                "/tmp/hilt-bench-emulated",
                self.tmp.path().join("board").to_str().unwrap(),
            )
            + &format!(
                "labgrid:\n  coordinator: \"{}\"\n  place: {PLACE}\n",
                self.addr
            );
        let dir = self.tmp.path().join("boards");
        std::fs::create_dir_all(&dir).unwrap();
        for d in ["workloads", "scripts"] {
            let _ = std::os::unix::fs::symlink(repo().join(d), self.tmp.path().join(d));
        }
        let p = dir.join("lab-bench.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn hilt(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hilt"));
        c.current_dir(self.tmp.path())
            .env("HILT_LEASES", self.tmp.path().join("leases"))
            .env("HILT_HISTORY", self.tmp.path().join("history.sqlite"))
            .env("HILT_CACHE", shared_cache());
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The exporter stops the ser2net it started for the place.
        stop(&mut self.exporter);
        stop(&mut self.coordinator);
        kill_ser2net_on(&self.uart.path);
    }
}

/// A ser2net left on our pty (the exporter killed before it could stop
/// it) would hold the test's stderr: found by its command line, killed
/// by pid.
fn kill_ser2net_on(pty: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.starts_with("ser2net") && cmd.contains(pty.to_str().unwrap()) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
#[ignore = "starts a labgrid lab and boots the emulated board: run by scripts/test"]
fn a_lab_board_runs_a_plan_through_its_place_and_gives_it_back() {
    let lab = Lab::start();
    let board = lab.board_file();
    assert_eq!(lab.holder(), None);

    // hilt doctor acquires the place, reaches the console through the
    // exporter's ser2net and asks the relay for the power state.
    let o = lab
        .hilt()
        .args(["doctor", board.to_str().unwrap()])
        .output()
        .unwrap();
    let doc = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", says(&o));
    assert!(doc.contains("ok    console ser2net 127.0.0.1:"), "{doc}");
    assert!(doc.contains("RFC 2217"), "{doc}");
    assert!(doc.contains("answers: off"), "{doc}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("acquired labgrid place {PLACE}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("released labgrid place {PLACE}")),
        "{stderr}"
    );
    assert_eq!(lab.holder(), None, "doctor gave the place back");

    // The smoke plan and a positive control, through the place.
    let plan = common::bench_plan(
        lab.tmp.path(),
        "lab-bench",
        "lab",
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 8"),
        ],
        "controls:\n  - swap_freeze\n",
    );
    let out = lab.tmp.path().join("run");
    let mut child = lab
        .hilt()
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While it runs, labgrid agrees that hilt holds the place, with
    // hilt's holder record on it.
    let me = format!(
        "{}/{}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
    );
    let t0 = Instant::now();
    let mut holder = None;
    while holder.is_none() {
        if child.try_wait().unwrap().is_some() {
            panic!(
                "hilt ended before acquiring: {}",
                says(&child.wait_with_output().unwrap())
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "hilt never acquired the place"
        );
        std::thread::sleep(Duration::from_millis(500));
        holder = lab.holder();
    }
    if holder.as_deref() != Some(me.as_str()) || lab.holder() != holder {
        let _ = child.kill();
        panic!(
            "holder {holder:?}, then {:?}: {}",
            lab.holder(),
            says(&child.wait_with_output().unwrap())
        );
    }
    let show = lab.ok(None, &["-p", PLACE, "show"]);
    assert!(
        show.contains(&format!(
            "hilt_holder=host:{}",
            me.split('/').next().unwrap()
        )),
        "{show}"
    );
    assert!(show.contains(&format!("pid:{}", child.id())), "{show}");
    // `hilt boards` lists the place beside the board file, with its holder.
    let o = lab.hilt().arg("boards").output().unwrap();
    let boards = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", says(&o));
    assert!(
        boards.contains(&format!("labgrid places at {}:", lab.addr)),
        "{boards}"
    );
    let line = boards
        .lines()
        .skip_while(|l| !l.starts_with("labgrid places at"))
        .find(|l| l.starts_with(PLACE))
        .unwrap_or_else(|| panic!("{boards}"));
    assert!(
        line.contains("board lab-bench")
            && line.contains(&format!("held by {me} (hilt pid {}", child.id())),
        "{line}"
    );

    // A second hilt on the place meanwhile waits, then gives up naming
    // the holder; it never takes a live holder's place.
    let o = lab
        .hilt()
        .args(["doctor", board.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!("acquired by {me}")) && e.contains(&format!("hilt pid {}", child.id())),
        "{e}"
    );
    assert_eq!(
        lab.holder().as_deref(),
        Some(me.as_str()),
        "the run kept its place"
    );

    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", says(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let recs = records(&out);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let run = recs.iter().find(|r| r.control.is_none()).unwrap();
    assert_eq!(run.outcome, Outcome::Pass, "{}", run.detail);
    assert_eq!(run.board, "lab-bench");
    assert!(run.boot_ms.is_some() && run.reads > 0, "{run:?}");
    assert!(
        stdout.contains("control swap_freeze on unpatched: detected"),
        "{stdout}"
    );
    control_suspected_by_watcher(&recs, "the UART through ser2net");
    // The board's power went through the relay, and its console through
    // labgrid's ser2net: U-Boot and Linux on it, in the run's console log.
    let reqs = lab.relay.requests();
    assert!(
        reqs.iter().filter(|r| *r == "/relay/0/1").count() >= 2,
        "{reqs:?}"
    );
    assert!(reqs.iter().any(|r| r == "/relay/0/0"), "{reqs:?}");
    let console = std::fs::read_to_string(out.join("iterations/unpatched-0/console.log"))
        .or_else(|_| {
            std::fs::read_dir(out.join("iterations"))
                .unwrap()
                .flatten()
                .find(|e| !e.file_name().to_string_lossy().contains("control"))
                .map(|e| std::fs::read_to_string(e.path().join("console.log")).unwrap())
                .ok_or(())
        })
        .unwrap();
    for seen in ["U-Boot", "Starting kernel", "hilt-init: starting agent"] {
        assert!(console.contains(seen), "{seen:?} not in\n{console}");
    }

    // Released at the end: labgrid says nobody holds it, and the holder
    // record went with it.
    assert_eq!(lab.holder(), None);
    let show = lab.ok(None, &["-p", PLACE, "show"]);
    assert!(!show.contains("hilt_holder"), "{show}");
}

#[test]
#[ignore = "starts a labgrid lab: run by scripts/test"]
fn a_live_holder_keeps_its_place_and_a_dead_hilt_holder_is_taken_over() {
    let lab = Lab::start();
    let board = lab.board_file();
    let doctor = || {
        lab.hilt()
            .args(["doctor", board.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .replace('-', "");
    let far = 4_000_000_000u64;

    // Another runner holds the place, without a hilt record: never taken.
    lab.ok(Some(OTHER), &["-p", PLACE, "acquire"]);
    let holder = lab.holder().unwrap();
    assert!(holder.ends_with(&format!("/{OTHER}")), "{holder}");
    let o = doctor();
    assert!(!o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!("acquired by {holder}")) && e.contains("waited 10 s"),
        "{e}"
    );
    assert_eq!(lab.holder().as_deref(), Some(holder.as_str()));

    // A hilt record of a live process (this test) on this boot: not taken.
    let live = format!(
        "hilt_holder=host:{},pid:{},boot:{boot},expires:{far}",
        host.trim(),
        std::process::id()
    );
    lab.ok(None, &["-p", PLACE, "set-tags", &live]);
    let o = doctor();
    assert!(!o.status.success(), "{}", says(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("hilt pid {}", std::process::id()))
    );
    assert_eq!(lab.holder().as_deref(), Some(holder.as_str()));

    // The record of a hilt that was killed (its pid is gone): taken over,
    // with a release conditional on that holder, then given back.
    let mut killed = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = killed.id();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let dead = format!(
        "hilt_holder=host:{},pid:{pid},boot:{boot},expires:{far}",
        host.trim()
    );
    lab.ok(None, &["-p", PLACE, "set-tags", &dead]);
    let o = doctor();
    assert!(o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "taking it over from {holder} (its pid {pid} is dead)"
        )),
        "{e}"
    );
    assert_eq!(lab.holder(), None, "given back after the takeover");

    // An expired record of a holder on another host: taken over too.
    lab.ok(Some(OTHER), &["-p", PLACE, "acquire"]);
    lab.ok(
        None,
        &[
            "-p",
            PLACE,
            "set-tags",
            "hilt_holder=host:elsewhere,pid:1,boot:0,expires:1000",
        ],
    );
    let o = doctor();
    assert!(o.status.success(), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("its record expired"));
    assert_eq!(lab.holder(), None);

    // A second hilt waits for a place another runner holds, and gets it
    // once that runner releases it within the wait.
    lab.ok(Some(OTHER), &["-p", PLACE, "acquire"]);
    let mut waiting = lab
        .hilt()
        .args(["doctor", board.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = waiting.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("waiting up to") {
        let n = err.read(&mut buf).unwrap();
        assert!(n > 0, "the second hilt did not wait:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(lab.holder().as_deref(), Some(holder.as_str()));
    lab.ok(Some(OTHER), &["-p", PLACE, "release"]);
    err.read_to_string(&mut seen).unwrap();
    let status = waiting.wait().unwrap();
    assert!(status.success(), "{seen}");
    assert!(
        seen.contains(&format!("acquired labgrid place {PLACE}"))
            && seen.contains(&format!("released labgrid place {PLACE}")),
        "{seen}"
    );
    assert_eq!(lab.holder(), None);
}

#[test]
#[ignore = "starts a labgrid lab and boots the emulated board: run by scripts/test"]
fn a_place_taken_away_mid_run_stops_the_board_at_once_and_says_why() {
    let lab = Lab::start();
    lab.board_file();
    let plan = common::bench_plan(
        lab.tmp.path(),
        "lab-bench",
        "long",
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 120"),
        ],
        "",
    );
    let out = lab.tmp.path().join("run");
    let child = lab
        .hilt()
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the board is powered on for its iteration, another runner
    // kicks hilt out and takes the place.
    let t0 = Instant::now();
    while !lab.relay.requests().iter().any(|r| r == "/relay/0/1") {
        assert!(
            t0.elapsed() < Duration::from_secs(400),
            "the board was never powered on"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    lab.ok(Some(OTHER), &["-p", PLACE, "release", "--kick"]);
    lab.ok(Some(OTHER), &["-p", PLACE, "acquire"]);
    let kicked = Instant::now();
    let o = child.wait_with_output().unwrap();
    let took = kicked.elapsed();
    // The iteration had two minutes of workload left.
    assert!(
        took < Duration::from_secs(45),
        "hilt went on for {took:?}: {}",
        says(&o)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_ne!(recs[0].outcome, Outcome::Pass, "{:?}", recs[0]);
    assert!(
        recs[0]
            .detail
            .contains(&format!("labgrid place {PLACE} was taken by"))
            || recs[0].detail.contains("released by someone else"),
        "{}",
        recs[0].detail
    );
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(events.contains("\"kind\":\"lease_lost\""), "{events}");
    // hilt never releases a place that is no longer its own.
    let holder = lab.holder().unwrap();
    assert!(holder.ends_with(&format!("/{OTHER}")), "{holder}");
}

#[test]
#[ignore = "starts a labgrid lab and boots the emulated board: run by scripts/test"]
fn an_interrupted_run_gives_the_place_back() {
    let lab = Lab::start();
    lab.board_file();
    let plan = common::bench_plan(
        lab.tmp.path(),
        "lab-bench",
        "long",
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 120"),
        ],
        "",
    );
    let out = lab.tmp.path().join("run");
    let child = lab
        .hilt()
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !lab.relay.requests().iter().any(|r| r == "/relay/0/1") {
        assert!(
            t0.elapsed() < Duration::from_secs(400),
            "the board was never powered on"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(lab.holder().is_some());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", says(&o));
    assert_eq!(lab.holder(), None, "{}", says(&o));
    let show = lab.ok(None, &["-p", PLACE, "show"]);
    assert!(!show.contains("hilt_holder"), "{show}");
}

#[test]
#[ignore = "starts a labgrid lab: run by scripts/test"]
fn a_board_asking_for_tags_gets_a_place_through_a_reservation() {
    let lab = Lab::start();
    let board = lab.board_file();
    let text = std::fs::read_to_string(&board).unwrap();
    let place_line = format!("  place: {PLACE}\n");
    assert!(text.contains(&place_line));
    std::fs::write(
        &board,
        text.replace(&place_line, "  tags:\n    rig: bench_a\n"),
    )
    .unwrap();
    let doctor = || {
        lab.hilt()
            .args(["doctor", board.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let reservations = || lab.ok(None, &["reservations"]);

    // No place has the tag yet: the reservation waits, then is cancelled.
    let o = doctor();
    assert!(!o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no place with tags rig=bench_a was allocated within 10 s"),
        "{e}"
    );
    assert!(!reservations().contains("owner"), "{}", reservations());

    // Tagged, the place is allocated, acquired, checked, and given back
    // with the reservation cancelled.
    lab.ok(None, &["-p", PLACE, "set-tags", "rig=bench_a"]);
    let o = doctor();
    assert!(o.status.success(), "{}", says(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!("place {PLACE} allocated for tags rig=bench_a")),
        "{e}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("RFC 2217"));
    assert_eq!(lab.holder(), None);
    assert!(!reservations().contains("owner"), "{}", reservations());
}

#[test]
#[ignore = "starts a labgrid lab and boots the emulated board: run by scripts/test"]
fn a_power_model_hilt_does_not_speak_goes_through_labgrid_client_as_hilt() {
    // shelly_gen1: plain HTTP, so the test's relay can be the switch, but
    // a model only labgrid's own driver speaks.
    let lab =
        Lab::start_with("model: shelly_gen1\n    host: 'http://127.0.0.1:{relay}'\n    index: '1'");
    lab.board_file();
    let plan = common::bench_plan(
        lab.tmp.path(),
        "lab-bench",
        "shelly",
        &[
            ("iterations: 2", "iterations: 1"),
            ("duration_s: 15", "duration_s: 8"),
        ],
        "",
    );
    let out = lab.tmp.path().join("run");
    let o = lab
        .hilt()
        .env("LABGRID_CLIENT", venv().join("bin/labgrid-client"))
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", says(&o));
    let recs = records(&out);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].outcome, Outcome::Pass, "{}", recs[0].detail);
    assert!(recs[0].boot_ms.is_some(), "{:?}", recs[0]);
    // labgrid-client drove the switch, speaking as hilt: it refuses a
    // place acquired by another identity, so a request proves it.
    let reqs = lab.relay.requests();
    assert!(reqs.iter().any(|r| r == "/relay/1 turn=on"), "{reqs:?}");
    assert!(reqs.iter().any(|r| r == "/relay/1 turn=off"), "{reqs:?}");
    assert!(!reqs.iter().any(|r| r.starts_with("/relay/0")), "{reqs:?}");
    assert_eq!(lab.holder(), None, "the place was given back");
}
