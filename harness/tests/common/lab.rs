//! A labgrid lab on 127.0.0.1 for the tests: the real labgrid-coordinator
//! and labgrid-exporter (the labgrid scripts/setup installs into the
//! cache), a place, and labgrid-client to ask them what they see. The lab
//! can export the emulated bench board: its UART, a pseudo-terminal, as a
//! `RawSerialPort` (so hilt's console is the exporter's own ser2net
//! speaking RFC 2217), and its power, a small HTTP relay in the test, as a
//! `NetworkPowerPort`; or any resources a test writes the exporter's
//! configuration for.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common::{free_port, repo, says, shared_cache, TestDir};

pub const PLACE: &str = "lab-bench";
/// Who holds the place when it is not hilt: another CI runner.
pub const OTHER: &str = "other-runner";

pub fn venv() -> PathBuf {
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
pub fn stop(child: &mut Child) {
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
pub struct Uart {
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
pub struct Relay {
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

    pub fn requests(&self) -> Vec<String> {
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

/// A coordinator, an exporter `exp1`, and the place `lab-bench` matching
/// the exporter's group.
pub struct Lab {
    pub tmp: TestDir,
    pub addr: String,
    coordinator: Child,
    exporter: Option<Child>,
    /// The bench board's UART and power relay, when the lab exports them
    /// (as group `bench`).
    bench: Option<(Uart, Relay)>,
}

impl Lab {
    /// The bench board, its power a `simplerest` switch.
    pub fn start() -> Lab {
        Lab::start_with(
            "model: simplerest\n    host: 'http://127.0.0.1:{relay}/relay/{{index}}/{{value}}'\n    index: '0'",
        )
    }

    /// The bench board, its `NetworkPowerPort` with these parameters
    /// (`{relay}`: the relay's port; `{{`, `}}`: labgrid's own braces).
    pub fn start_with(power: &str) -> Lab {
        let mut lab = Lab::coordinator();
        let uart = Uart::open();
        // The TFTP root the board file names exists before the first power-on.
        std::fs::create_dir_all(lab.tmp.path().join("board/tftp")).unwrap();
        let relay = Relay::start(lab.tmp.path().join("board"), &uart);
        let config = format!(
            "bench:\n  RawSerialPort:\n    port: {}\n    speed: 115200\n  NetworkPowerPort:\n    {}\n",
            uart.path.display(),
            power
                .replace("{relay}", &relay.port.to_string())
                .replace("{{", "{")
                .replace("}}", "}")
        );
        lab.bench = Some((uart, relay));
        lab.export(
            "bench",
            &config,
            &["exp1/bench/NetworkSerialPort", "NetworkPowerPort"],
        );
        lab
    }

    /// A coordinator on a free port, nothing exported yet.
    pub fn coordinator() -> Lab {
        let tmp = TestDir::new();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let coord_dir = tmp.path().join("coordinator");
        std::fs::create_dir_all(&coord_dir).unwrap();
        let coordinator = Command::new(venv().join("bin/labgrid-coordinator"))
            .args(["-l", &addr])
            .current_dir(&coord_dir)
            .stdout(std::fs::File::create(tmp.path().join("coordinator.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port, "labgrid-coordinator");
        Lab {
            tmp,
            addr,
            coordinator,
            exporter: None,
            bench: None,
        }
    }

    /// Starts the exporter with `config` (exporter YAML), waits until
    /// `labgrid-client resources` lists each of `published`, and makes
    /// the place `lab-bench` match every resource of `group`.
    pub fn export(&mut self, group: &str, config: &str, published: &[&str]) {
        let path = self.tmp.path().join("exporter.yaml");
        std::fs::write(&path, config).unwrap();
        self.exporter = Some(
            Command::new(venv().join("bin/labgrid-exporter"))
                .args([
                    "-c",
                    &self.addr,
                    "--name",
                    "exp1",
                    "--hostname",
                    "127.0.0.1",
                ])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(self.tmp.path().join("exporter.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        let t0 = Instant::now();
        loop {
            let o = self.client(None, &["resources"]);
            let text = String::from_utf8_lossy(&o.stdout);
            if published.iter().all(|p| text.contains(p)) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the exporter did not publish {published:?}: {}",
                says(&o)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        self.ok(None, &["-p", PLACE, "create"]);
        self.ok(
            None,
            &["-p", PLACE, "add-match", &format!("exp1/{group}/*")],
        );
    }

    /// The bench board's power relay.
    pub fn relay(&self) -> &Relay {
        &self.bench.as_ref().expect("a lab with the bench board").1
    }

    /// labgrid-client as `who` (another runner), or as hilt is (this
    /// host and user).
    pub fn client(&self, who: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(venv().join("bin/labgrid-client"));
        c.arg("-x").arg(&self.addr).args(args);
        if let Some(who) = who {
            c.env("LG_USERNAME", who);
        }
        c.output().unwrap()
    }

    pub fn ok(&self, who: Option<&str>, args: &[&str]) -> String {
        let o = self.client(who, args);
        assert!(o.status.success(), "labgrid-client {args:?}: {}", says(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Who labgrid says holds the place, if anyone.
    pub fn holder(&self) -> Option<String> {
        let show = self.ok(None, &["-p", PLACE, "show"]);
        let line = show
            .lines()
            .find(|l| l.trim_start().starts_with("acquired:"))
            .unwrap_or_else(|| panic!("no acquired: line in\n{show}"));
        let who = line.split_once(':').unwrap().1.trim();
        (who != "None" && !who.is_empty()).then(|| who.to_string())
    }

    /// labgrid's `show` of the place has no hilt holder record.
    pub fn assert_no_record(&self) {
        let show = self.ok(None, &["-p", PLACE, "show"]);
        assert!(!show.contains("hilt_holder"), "{show}");
    }

    /// boards/bench-emulated.yaml as `lab-bench`, its console and power
    /// left to the place.
    pub fn board_file(&self) -> PathBuf {
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
            + &self.labgrid_section();
        self.write_board("lab-bench", &text)
    }

    /// The board file's `labgrid:` section naming this lab's place.
    pub fn labgrid_section(&self) -> String {
        format!(
            "labgrid:\n  coordinator: \"{}\"\n  place: {PLACE}\n",
            self.addr
        )
    }

    /// Writes boards/NAME.yaml in the lab's home, beside links to the
    /// checkout's workloads/ and scripts/.
    pub fn write_board(&self, name: &str, text: &str) -> PathBuf {
        let dir = self.tmp.path().join("boards");
        std::fs::create_dir_all(&dir).unwrap();
        for d in ["workloads", "scripts"] {
            let _ = std::os::unix::fs::symlink(repo().join(d), self.tmp.path().join(d));
        }
        let p = dir.join(format!("{name}.yaml"));
        std::fs::write(&p, text).unwrap();
        p
    }

    /// hilt in the lab's home, with leases and history of its own.
    pub fn hilt(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hilt"));
        c.current_dir(self.tmp.path())
            .env("HILT_LEASES", self.tmp.path().join("leases"))
            .env("HILT_HISTORY", self.tmp.path().join("history.sqlite"))
            .env("HILT_CACHE", shared_cache());
        c
    }

    /// `hilt doctor BOARD`, to its end.
    pub fn doctor(&self, board: &Path) -> Output {
        self.hilt()
            .args(["doctor", board.to_str().unwrap()])
            .output()
            .unwrap()
    }

    /// `hilt doctor BOARD --lease-wait SECS`, to its end: for a doctor
    /// that is to give up on a held place or lease, since what the test
    /// checks is that it waits and then names the holder, not how long.
    pub fn doctor_waiting(&self, board: &Path, secs: u32) -> Output {
        self.hilt()
            .args(["doctor", board.to_str().unwrap()])
            .args(["--lease-wait", &secs.to_string()])
            .output()
            .unwrap()
    }

    /// plans/smoke-bench.yaml on board `board` as plan `name`:
    /// `iterations` of `duration_s` seconds, with `extra` appended.
    pub fn plan(
        &self,
        board: &str,
        name: &str,
        iterations: u32,
        duration_s: u32,
        extra: &str,
    ) -> PathBuf {
        super::common::bench_plan(
            self.tmp.path(),
            board,
            name,
            &[
                ("iterations: 2", &format!("iterations: {iterations}")),
                ("duration_s: 15", &format!("duration_s: {duration_s}")),
            ],
            extra,
        )
    }

    /// `hilt run PLAN --out <home>/NAME --quiet`, its output piped; the
    /// run directory.
    pub fn spawn_run(&self, plan: &Path, name: &str) -> (Child, PathBuf) {
        let out = self.tmp.path().join(name);
        let child = self
            .hilt()
            .arg("run")
            .arg(plan)
            .arg("--out")
            .arg(&out)
            .arg("--quiet")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (child, out)
    }

    /// `hilt run PLAN --out <home>/NAME --quiet` with `env` added, to its
    /// end; the run directory.
    pub fn run(
        &self,
        plan: &Path,
        name: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (Output, PathBuf) {
        let out = self.tmp.path().join(name);
        let o = self
            .hilt()
            .envs(env.iter().copied())
            .arg("run")
            .arg(plan)
            .arg("--out")
            .arg(&out)
            .arg("--quiet")
            .output()
            .unwrap();
        (o, out)
    }

    /// How many times the relay was asked to power the bench board on.
    pub fn power_ons(&self) -> usize {
        self.relay()
            .requests()
            .iter()
            .filter(|r| *r == "/relay/0/1")
            .count()
    }

    /// Until the relay has powered the bench board on more than `before`
    /// times (`power_ons()` before the run that is to power it on).
    pub fn wait_powered_on(&self, before: usize) {
        let t0 = Instant::now();
        while self.power_ons() <= before {
            assert!(
                t0.elapsed() < Duration::from_secs(400),
                "the board was never powered on"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The exporter stops the ser2net it started for the place.
        if let Some(mut e) = self.exporter.take() {
            stop(&mut e);
        }
        stop(&mut self.coordinator);
        // The relay powers the board off here, while its state directory
        // (and QEMU's pidfile in it) still exists: dropped with the other
        // fields, after `tmp`, it could no longer find the QEMU a run left
        // on (a second Ctrl-C exits without powering off), and that QEMU
        // ran on after the test.
        if let Some((uart, relay)) = self.bench.take() {
            drop(relay);
            kill_ser2net_on(&uart.path);
        }
    }
}

/// hilt's labgrid identity: this host and user.
pub fn me() -> String {
    format!("{}/{}", hostname(), {
        let o = Command::new("id").arg("-un").output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    })
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// This boot, as hilt records it.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .replace('-', "")
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
