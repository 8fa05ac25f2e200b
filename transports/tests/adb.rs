//! adb: the server protocol against Debian's real adb server (29.0.6), and
//! the device protocol against a PROTOCOL DOUBLE of adbd (no adbd can run
//! here). The double is written in this file from AOSP adb's protocol.txt,
//! SYNC.TXT, SERVICES.TXT and shell_protocol.h, independently of the
//! crate's own codec; it also sits behind the real adb server, which then
//! checks it (and our server client) end to end.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, require, wait_port, Peer};
use hilt_transports::adb::auth::{parse_public_key, AdbKey};
use hilt_transports::adb::{AdbDevice, AdbServer, ConnectOptions};
use hilt_transports::ssh::ExecChunk;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// PROTOCOL DOUBLE of adbd (TCP). Not adbd: a model of what the documents say.
// ---------------------------------------------------------------------------

const CNXN: u32 = u32::from_le_bytes(*b"CNXN");
const AUTH: u32 = u32::from_le_bytes(*b"AUTH");
const OPEN: u32 = u32::from_le_bytes(*b"OPEN");
const OKAY: u32 = u32::from_le_bytes(*b"OKAY");
const CLSE: u32 = u32::from_le_bytes(*b"CLSE");
const WRTE: u32 = u32::from_le_bytes(*b"WRTE");

#[derive(Clone)]
struct DoubleCfg {
    /// Keys "already authorized" on the device (as in /data/misc/adb/adb_keys).
    known: Arc<Mutex<Vec<RsaPublicKey>>>,
    /// Whether the "user" accepts a new key offered with RSAPUBLICKEY.
    accept_new: bool,
    features: &'static str,
    /// What the device advertises as its max payload: small, so that hosts
    /// must split their writes.
    max_payload: u32,
    root: PathBuf,
    /// What happened, for the test to check ("signature-ok", violations...).
    log: Arc<Mutex<Vec<String>>>,
}

impl DoubleCfg {
    fn note(&self, s: impl Into<String>) {
        self.log.lock().unwrap().push(s.into());
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

struct DMsg {
    cmd: u32,
    a0: u32,
    a1: u32,
    data: Vec<u8>,
}

struct DConn {
    sock: TcpStream,
    cfg: DoubleCfg,
    host_max: u32,
}

impl DConn {
    async fn recv(&mut self) -> Option<DMsg> {
        let mut h = [0u8; 24];
        self.sock.read_exact(&mut h).await.ok()?;
        let w = |i: usize| u32::from_le_bytes(h[i * 4..i * 4 + 4].try_into().unwrap());
        if w(5) != !w(0) {
            self.cfg
                .note(format!("violation: bad magic for {:#x}", w(0)));
            return None;
        }
        let mut data = vec![0u8; w(3) as usize];
        self.sock.read_exact(&mut data).await.ok()?;
        let sum = data.iter().map(|&b| b as u32).fold(0u32, u32::wrapping_add);
        if w(4) != 0 && w(4) != sum {
            self.cfg.note("violation: bad data_check");
        }
        if w(3) > self.cfg.max_payload && w(0) != CNXN && w(0) != AUTH {
            self.cfg.note(format!(
                "violation: {} byte message over max payload {}",
                w(3),
                self.cfg.max_payload
            ));
        }
        Some(DMsg {
            cmd: w(0),
            a0: w(1),
            a1: w(2),
            data,
        })
    }

    async fn send(&mut self, cmd: u32, a0: u32, a1: u32, data: &[u8]) {
        let sum = data.iter().map(|&b| b as u32).fold(0u32, u32::wrapping_add);
        let mut v = Vec::with_capacity(24 + data.len());
        for x in [cmd, a0, a1, data.len() as u32, sum, !cmd] {
            v.extend(x.to_le_bytes());
        }
        v.extend_from_slice(data);
        let _ = self.sock.write_all(&v).await;
    }
}

/// mincrypt RSAPublicKey, decoded independently of the crate.
fn double_parse_key(payload: &[u8]) -> Option<RsaPublicKey> {
    use base64::Engine;
    let text = payload.strip_suffix(&[0])?;
    let b64 = text.split(|&b| b == b' ').next()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let word = |i: usize| u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().unwrap());
    if raw.len() != 524 || word(0) != 64 {
        return None;
    }
    let n = BigUint::from_bytes_le(&raw[8..264]);
    let rr = BigUint::from_bytes_le(&raw[264..520]);
    if word(1).wrapping_mul(word(2)) != 0xffff_ffff || rr != (BigUint::from(1u8) << 4096usize) % &n
    {
        return None;
    }
    RsaPublicKey::new(n, BigUint::from(word(130))).ok()
}

struct DStream<'a> {
    c: &'a mut DConn,
    me: u32,
    host: u32,
    inbuf: Vec<u8>,
    closed: bool,
}

impl DStream<'_> {
    /// More bytes from the host for this stream; false once it closed.
    async fn pull(&mut self) -> bool {
        loop {
            let Some(m) = self.c.recv().await else {
                return false;
            };
            match m.cmd {
                WRTE if m.a1 == self.me => {
                    self.c.send(OKAY, self.me, self.host, &[]).await;
                    self.inbuf.extend(m.data);
                    return true;
                }
                CLSE if m.a1 == self.me => {
                    self.closed = true;
                    return false;
                }
                _ => {}
            }
        }
    }

    async fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.inbuf.len() < n {
            if !self.pull().await {
                return None;
            }
        }
        Some(self.inbuf.drain(..n).collect())
    }

    async fn write(&mut self, data: &[u8]) {
        let max = self.c.cfg.max_payload.min(self.c.host_max) as usize;
        for chunk in data.chunks(max) {
            self.c.send(WRTE, self.me, self.host, chunk).await;
            // Wait for the host's OKAY (buffering any data it sends meanwhile).
            loop {
                let Some(m) = self.c.recv().await else { return };
                match m.cmd {
                    OKAY if m.a1 == self.me => break,
                    WRTE if m.a1 == self.me => {
                        self.c.send(OKAY, self.me, self.host, &[]).await;
                        self.inbuf.extend(m.data);
                    }
                    CLSE if m.a1 == self.me => {
                        self.closed = true;
                        return;
                    }
                    _ => {}
                }
            }
        }
    }

    async fn close(&mut self) {
        self.c.send(CLSE, self.me, self.host, &[]).await;
    }
}

fn v2_packet(id: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![id];
    v.extend((data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

async fn double_shell(s: &mut DStream<'_>, cmd: &str, v2: bool) {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .await
        .unwrap();
    if v2 {
        if !out.stdout.is_empty() {
            s.write(&v2_packet(1, &out.stdout)).await;
        }
        if !out.stderr.is_empty() {
            s.write(&v2_packet(2, &out.stderr)).await;
        }
        s.write(&v2_packet(3, &[out.status.code().unwrap_or(255) as u8]))
            .await;
    } else {
        s.write(&[out.stdout, out.stderr].concat()).await;
    }
    s.close().await;
}

fn double_path(cfg: &DoubleCfg, p: &str) -> PathBuf {
    cfg.root.join(p.trim_start_matches('/'))
}

async fn double_sync(s: &mut DStream<'_>) {
    let cfg = s.c.cfg.clone();
    let u32le = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap());
    loop {
        let Some(req) = s.read_exact(8).await else {
            return;
        };
        let (id, len) = (&req[..4], u32le(&req[4..8]) as usize);
        match id {
            b"SEND" => {
                let arg = String::from_utf8(s.read_exact(len).await.unwrap()).unwrap();
                let (path, mode) = arg.rsplit_once(',').unwrap();
                let mode = mode.parse::<u32>().unwrap();
                let mut data = Vec::new();
                loop {
                    let h = s.read_exact(8).await.unwrap();
                    let n = u32le(&h[4..8]) as usize;
                    match &h[..4] {
                        b"DATA" => {
                            if n > 64 * 1024 {
                                cfg.note(format!("violation: sync DATA of {n} bytes"));
                            }
                            data.extend(s.read_exact(n).await.unwrap());
                        }
                        b"DONE" => break,
                        other => {
                            cfg.note(format!("violation: {other:?} inside SEND"));
                            return;
                        }
                    }
                }
                let dest = double_path(&cfg, path);
                let reply = match std::fs::write(&dest, &data) {
                    Ok(()) => {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(
                            &dest,
                            std::fs::Permissions::from_mode(mode & 0o7777),
                        )
                        .unwrap();
                        cfg.note(format!("sync: wrote {path} mode {mode:o}"));
                        b"OKAY\0\0\0\0".to_vec()
                    }
                    Err(e) => {
                        let msg = format!("couldn't create file: {e}");
                        [
                            b"FAIL".to_vec(),
                            (msg.len() as u32).to_le_bytes().to_vec(),
                            msg.into_bytes(),
                        ]
                        .concat()
                    }
                };
                s.write(&reply).await;
            }
            b"STAT" => {
                let path = String::from_utf8(s.read_exact(len).await.unwrap()).unwrap();
                let (mode, size) = match std::fs::metadata(double_path(&cfg, &path)) {
                    Ok(m) => {
                        use std::os::unix::fs::MetadataExt;
                        (m.mode(), m.size() as u32)
                    }
                    Err(_) => (0, 0),
                };
                s.write(
                    &[
                        b"STAT".to_vec(),
                        mode.to_le_bytes().to_vec(),
                        size.to_le_bytes().to_vec(),
                        0u32.to_le_bytes().to_vec(),
                    ]
                    .concat(),
                )
                .await;
            }
            b"RECV" => {
                let path = String::from_utf8(s.read_exact(len).await.unwrap()).unwrap();
                let data = std::fs::read(double_path(&cfg, &path)).unwrap();
                let mut out = Vec::new();
                for c in data.chunks(64 * 1024) {
                    out.extend(b"DATA");
                    out.extend((c.len() as u32).to_le_bytes());
                    out.extend(c);
                }
                out.extend(b"DONE\0\0\0\0");
                s.write(&out).await;
            }
            b"QUIT" => {
                s.close().await;
                return;
            }
            other => {
                cfg.note(format!("violation: unknown sync request {other:?}"));
                return;
            }
        }
    }
}

async fn double_conn(sock: TcpStream, cfg: DoubleCfg) {
    let mut c = DConn {
        sock,
        cfg: cfg.clone(),
        host_max: 4096,
    };
    let Some(m) = c.recv().await else { return };
    if m.cmd != CNXN {
        cfg.note("violation: first message is not CNXN");
        return;
    }
    if m.a0 < 0x0100_0000 {
        cfg.note(format!("violation: CNXN version {:#x}", m.a0));
    }
    c.host_max = m.a1;
    cfg.note(format!(
        "cnxn: {}",
        String::from_utf8_lossy(&m.data).trim_end_matches('\0')
    ));
    let token: [u8; 20] = rand::random();
    c.send(AUTH, 1, 0, &token).await;
    loop {
        let Some(m) = c.recv().await else { return };
        match (m.cmd, m.a0) {
            (AUTH, 2) => {
                let ok = cfg.known.lock().unwrap().iter().any(|k| {
                    k.verify(Pkcs1v15Sign::new::<sha1::Sha1>(), &token, &m.data)
                        .is_ok()
                });
                if ok {
                    cfg.note("auth: signature-ok");
                    break;
                }
                cfg.note("auth: signature-unknown");
                let token2: [u8; 20] = rand::random();
                c.send(AUTH, 1, 0, &token2).await;
            }
            (AUTH, 3) => match double_parse_key(&m.data) {
                Some(k) if cfg.accept_new => {
                    cfg.note(format!(
                        "auth: publickey-accepted {}",
                        String::from_utf8_lossy(&m.data).trim_end_matches('\0')
                    ));
                    cfg.known.lock().unwrap().push(k);
                    break;
                }
                Some(_) => {
                    cfg.note("auth: publickey-refused");
                    // The user never answers the prompt: stay silent.
                    while c.recv().await.is_some() {}
                    return;
                }
                None => {
                    cfg.note("violation: unparsable public key");
                    return;
                }
            },
            _ => {
                cfg.note("violation: unexpected message during auth");
                return;
            }
        }
    }
    let banner = format!("device::ro.product.name=hilt_double;ro.product.model=Double;ro.product.device=double;features={}", cfg.features);
    c.send(CNXN, 0x0100_0001, cfg.max_payload, banner.as_bytes())
        .await;
    let mut next_id = 100;
    while let Some(m) = c.recv().await {
        if m.cmd != OPEN {
            continue;
        }
        let service = String::from_utf8_lossy(&m.data)
            .trim_end_matches('\0')
            .to_string();
        cfg.note(format!("open: {service}"));
        next_id += 1;
        let host = m.a0;
        let known = service.starts_with("shell") || service == "sync:";
        if !known {
            c.send(CLSE, 0, host, &[]).await;
            continue;
        }
        c.send(OKAY, next_id, host, &[]).await;
        let mut s = DStream {
            c: &mut c,
            me: next_id,
            host,
            inbuf: Vec::new(),
            closed: false,
        };
        if let Some(cmd) = service
            .strip_prefix("shell,v2,raw:")
            .or(service.strip_prefix("shell,v2:"))
        {
            double_shell(&mut s, cmd, true).await;
        } else if let Some(cmd) = service.strip_prefix("shell:") {
            double_shell(&mut s, cmd, false).await;
        } else {
            double_sync(&mut s).await;
        }
        let _ = s.closed;
    }
}

async fn start_double(
    known: Vec<RsaPublicKey>,
    accept_new: bool,
    features: &'static str,
) -> (u16, DoubleCfg, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = DoubleCfg {
        known: Arc::new(Mutex::new(known)),
        accept_new,
        features,
        max_payload: 4096,
        root: root.path().to_path_buf(),
        log: Default::default(),
    };
    let c2 = cfg.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(double_conn(sock, c2.clone()));
        }
    });
    (port, cfg, root)
}

// ---------------------------------------------------------------------------

fn collect(mut rx: mpsc::Receiver<ExecChunk>) -> tokio::task::JoinHandle<(Vec<u8>, Vec<u8>)> {
    tokio::spawn(async move {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        while let Some(c) = rx.recv().await {
            match c {
                ExecChunk::Stdout(b) => o.extend(b),
                ExecChunk::Stderr(b) => e.extend(b),
            }
        }
        (o, e)
    })
}

fn payload(n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

/// A key from ssh-keygen (PKCS#8 PEM, as adb writes adbkey): generating
/// one with the rsa crate takes half a minute in a debug build.
fn key() -> AdbKey {
    static KEY: std::sync::OnceLock<AdbKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adbkey");
        let out = Command::new(require("ssh-keygen", "openssh-client"))
            .args([
                "-q", "-t", "rsa", "-b", "2048", "-m", "PKCS8", "-N", "", "-f",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        AdbKey::load(&path).unwrap()
    })
    .clone()
}

#[tokio::test]
async fn direct_tcp_known_key_shell_and_push() {
    let key = key();
    let (port, cfg, root) = start_double(vec![key.public()], false, "shell_v2,cmd").await;
    let mut dev = AdbDevice::connect_tcp(&format!("127.0.0.1:{port}"), &ConnectOptions::new(key))
        .await
        .unwrap();
    assert!(dev.banner().starts_with("device::"));
    assert_eq!(dev.features(), vec!["shell_v2", "cmd"]);
    assert_eq!(dev.max_payload(), 4096);

    let (tx, rx) = mpsc::channel(16);
    let out = collect(rx);
    let status = dev
        .shell("printf out; printf err >&2; exit 3", &tx)
        .await
        .unwrap();
    drop(tx);
    assert_eq!(status, Some(3));
    assert_eq!(out.await.unwrap(), (b"out".to_vec(), b"err".to_vec()));

    // Larger than a sync DATA chunk and than the device's max payload.
    let data = payload(200_000);
    let sum = dev.push(&data, "/pushed.bin", 0o640).await.unwrap();
    assert_eq!(sum, hex::encode(sha2::Sha256::digest(&data)));
    assert_eq!(std::fs::read(root.path().join("pushed.bin")).unwrap(), data);
    let log = cfg.log();
    assert!(log.contains(&"auth: signature-ok".to_string()), "{log:?}");
    assert!(
        log.contains(&"sync: wrote /pushed.bin mode 100640".to_string()),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("violation")), "{log:?}");
    // A refused service is an error, and the connection stays usable.
    assert!(dev.open("reboot:bootloader").await.is_err());
    let (tx, _rx) = mpsc::channel(16);
    assert_eq!(dev.shell("true", &tx).await.unwrap(), Some(0));
}

#[tokio::test]
async fn direct_tcp_new_key_is_offered_and_accepted() {
    let key = key();
    let (port, cfg, _root) = start_double(vec![], true, "cmd").await;
    let mut opts = ConnectOptions::new(key.clone());
    opts.key_comment = "hilt@rig".into();
    let mut dev = AdbDevice::connect_tcp(&format!("127.0.0.1:{port}"), &opts)
        .await
        .unwrap();
    let log = cfg.log();
    assert!(
        log.contains(&"auth: signature-unknown".to_string()),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("auth: publickey-accepted") && l.ends_with(" hilt@rig")),
        "{log:?}"
    );
    assert_eq!(cfg.known.lock().unwrap()[0], key.public());
    // No shell_v2 feature: plain shell, output but no exit status.
    let (tx, rx) = mpsc::channel(16);
    let out = collect(rx);
    assert_eq!(dev.shell("echo v1; exit 5", &tx).await.unwrap(), None);
    drop(tx);
    assert_eq!(out.await.unwrap().0, b"v1\n");
}

#[tokio::test]
async fn direct_tcp_unaccepted_key_says_to_accept_the_prompt() {
    let (port, cfg, _root) = start_double(vec![], false, "").await;
    let mut opts = ConnectOptions::new(key());
    opts.accept_wait = Duration::from_millis(500);
    let err = AdbDevice::connect_tcp(&format!("127.0.0.1:{port}"), &opts)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Allow USB debugging"), "{err}");
    assert!(cfg.log().contains(&"auth: publickey-refused".to_string()));
}

struct RealServer {
    _peer: Peer,
    home: tempfile::TempDir,
    server: AdbServer,
}

/// Debian's adb server on its own port and with its own HOME (its key).
/// A command through the server's shell v2: its stdout, its stderr and
/// its exit status come back apart.
async fn shell_v2_keeps_stdout_stderr_and_status_apart(server: &AdbServer, serial: &str) {
    let (tx, rx) = mpsc::channel(16);
    let out = collect(rx);
    let status = server
        .shell(Some(serial), "printf 'a b'; printf E >&2; exit 9", &tx)
        .await
        .unwrap();
    drop(tx);
    assert_eq!(status, 9);
    assert_eq!(out.await.unwrap(), (b"a b".to_vec(), b"E".to_vec()));
}

async fn real_server(preset_key: Option<&AdbKey>) -> RealServer {
    let bin = require("adb", "adb");
    let home = tempfile::tempdir().unwrap();
    if let Some(k) = preset_key {
        k.save(&home.path().join(".android/adbkey"), "hilt@test")
            .unwrap();
    }
    let port = free_port();
    let peer = Peer::spawn(
        "adb server",
        Command::new(bin)
            .args(["-P", &port.to_string(), "nodaemon", "server"])
            .env("HOME", home.path())
            .env("ANDROID_USER_HOME", home.path().join(".android"))
            .env_remove("ANDROID_ADB_SERVER_PORT")
            .env_remove("ADB_VENDOR_KEYS")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_port(port, T);
    RealServer {
        _peer: peer,
        home,
        server: AdbServer::new(format!("127.0.0.1:{port}")),
    }
}

fn adbkey_path(home: &Path) -> PathBuf {
    home.join(".android/adbkey")
}

#[tokio::test]
async fn real_server_version_devices_and_clean_failure() {
    let s = real_server(None).await;
    assert_eq!(
        s.server.version().await.unwrap(),
        41,
        "adb 29.0.6 speaks server protocol 41 (0x29)"
    );
    assert_eq!(s.server.devices().await.unwrap(), vec![]);
    let err = s
        .server
        .transport(None)
        .await
        .err()
        .expect("transport-any with no device");
    assert!(
        err.to_string().contains("no devices/emulators found"),
        "{err}"
    );
    let err = s.server.transport(Some("nosuch")).await.err().unwrap();
    assert!(err.to_string().contains("nosuch"), "{err}");
    // The key the real adb generated is in the format we parse and write.
    let theirs = AdbKey::load(&adbkey_path(s.home.path())).unwrap();
    let pubtext =
        std::fs::read_to_string(adbkey_path(s.home.path()).with_extension("pub")).unwrap();
    assert_eq!(
        parse_public_key(pubtext.trim_end().as_bytes()).unwrap(),
        theirs.public()
    );
    assert_eq!(
        theirs.public_key_text("x").split(' ').next(),
        pubtext.split(' ').next()
    );
}

#[tokio::test]
async fn real_server_in_front_of_the_double_shell_and_push() {
    // The real adb server authenticates with OUR key file: adb reads the
    // PEM we write and signs as our AdbKey does, which the double checks.
    let key = key();
    let s = real_server(Some(&key)).await;
    let (port, cfg, root) = start_double(vec![key.public()], false, "shell_v2,cmd,stat_v2").await;
    let serial = format!("127.0.0.1:{port}");
    let msg = s.server.connect_device(&serial).await.unwrap();
    assert!(msg.contains(&serial), "{msg}");
    s.server.wait_for_device(&serial, T).await.unwrap();
    let devices = s.server.devices().await.unwrap();
    let d = devices.iter().find(|d| d.serial == serial).unwrap();
    assert!(
        d.details.contains(&("model".into(), "Double".into())),
        "{d:?}"
    );
    assert!(
        cfg.log().contains(&"auth: signature-ok".to_string()),
        "{:?}",
        cfg.log()
    );

    shell_v2_keeps_stdout_stderr_and_status_apart(&s.server, &serial).await;

    let data = payload(300_000);
    let sum = s
        .server
        .push(Some(&serial), &data, "/through-server.bin", 0o600)
        .await
        .unwrap();
    assert_eq!(sum, hex::encode(sha2::Sha256::digest(&data)));
    assert_eq!(
        std::fs::read(root.path().join("through-server.bin")).unwrap(),
        data
    );
    assert_eq!(
        s.server.stat(Some(&serial), "/missing").await.unwrap().mode,
        0
    );
    // With one device, transport-any finds it.
    let (tx, _rx) = mpsc::channel(16);
    assert_eq!(s.server.shell(None, "exit 0", &tx).await.unwrap(), 0);
    let log = cfg.log();
    assert!(!log.iter().any(|l| l.starts_with("violation")), "{log:?}");
    s.server.disconnect_device(&serial).await.unwrap();
}

#[tokio::test]
async fn real_server_offers_its_key_to_a_device_that_does_not_know_it() {
    let s = real_server(None).await;
    let (port, cfg, _root) = start_double(vec![], true, "shell_v2").await;
    let serial = format!("127.0.0.1:{port}");
    // adb 29 reports the offer of its key as "failed to authenticate"; the
    // device (the double, whose user accepts) then lets it in.
    let msg = s.server.connect_device(&serial).await.unwrap();
    assert!(msg.contains(&serial), "{msg}");
    s.server.wait_for_device(&serial, T).await.unwrap();
    let theirs = AdbKey::load(&adbkey_path(s.home.path())).unwrap();
    // The double decoded the real adb's RSAPUBLICKEY to the real key.
    assert_eq!(
        cfg.known.lock().unwrap().first().map(|k| k.n().clone()),
        Some(theirs.public().n().clone())
    );
}

/// hilt-adbd, the adbd of the emulated board that stands in for an Android
/// device, behind Debian's real adb server: listed with its product; shell
/// v2 with stdout, stderr and the status apart; a checked push; and a
/// command's stdio as one two-way stream, the agent's channel in hilt run.
#[tokio::test]
async fn real_server_in_front_of_hilt_adbd_shell_push_and_stream() {
    let s = real_server(None).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let banner = hilt_adbd::device::banner("hilt_test");
        for sock in listener.incoming().flatten() {
            let banner = banner.clone();
            std::thread::spawn(move || hilt_adbd::device::serve(sock, &banner));
        }
    });
    let serial = format!("127.0.0.1:{port}");
    s.server.connect_device(&serial).await.unwrap();
    s.server.wait_for_device(&serial, T).await.unwrap();
    let devices = s.server.devices().await.unwrap();
    let d = devices.iter().find(|d| d.serial == serial).unwrap();
    assert!(
        d.details.contains(&("model".into(), "hilt_test".into())),
        "{d:?}"
    );

    shell_v2_keeps_stdout_stderr_and_status_apart(&s.server, &serial).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pushed.bin");
    let data = payload(300_000);
    let sum = s
        .server
        .push(Some(&serial), &data, path.to_str().unwrap(), 0o640)
        .await
        .unwrap();
    assert_eq!(sum, hex::encode(sha2::Sha256::digest(&data)));
    assert_eq!(std::fs::read(&path).unwrap(), data);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );

    let (etx, mut erx) = mpsc::channel(16);
    let (mut stream, ended) = s
        .server
        .open_stream(Some(&serial), "echo started >&2; cat", etx)
        .await
        .unwrap();
    assert_eq!(erx.recv().await.unwrap(), b"started\n");
    for line in [&b"ping\n"[..], &b"pong\n"[..]] {
        stream.write_all(line).await.unwrap();
        let mut back = vec![0u8; line.len()];
        tokio::time::timeout(T, stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, line);
    }
    // Dropping the stream closes the command's stdin: cat ends, status 0.
    drop(stream);
    assert_eq!(
        tokio::time::timeout(T, ended)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn no_server_says_how_to_start_one() {
    let err = AdbServer::new(format!("127.0.0.1:{}", free_port()))
        .version()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("adb start-server"), "{err}");
}

/// The dd strategy through the real adb server to the adbd double. The
/// double serves sync under its own root but runs shell commands on this
/// host, so the staging file is reached from both through a link at the
/// path the board would use.
#[tokio::test]
async fn dd_flash_through_the_real_server_reads_back_and_records_digests() {
    use hilt_transports::flash::{AdbShell, DdFlasher, FlashImage, Flasher};
    let key = key();
    let s = real_server(Some(&key)).await;
    let (port, _cfg, root) = start_double(vec![key.public()], false, "shell_v2,cmd,stat_v2").await;
    let serial = format!("127.0.0.1:{port}");
    s.server.connect_device(&serial).await.unwrap();
    s.server.wait_for_device(&serial, T).await.unwrap();

    let stage_name = format!("hilt-adb-stage-{}.img", std::process::id());
    let stage = format!("/tmp/{stage_name}");
    std::fs::create_dir_all(root.path().join("tmp")).unwrap();
    std::os::unix::fs::symlink(root.path().join("tmp").join(&stage_name), &stage).unwrap();
    let part = root.path().join("mmcblk0p9");
    std::fs::write(&part, vec![0xa5u8; 600_000]).unwrap();
    let image = FlashImage::new("system.img", payload(400_000), None);
    let mut f = DdFlasher {
        shell: AdbShell {
            server: s.server.clone(),
            serial: Some(serial.clone()),
        },
        device: part.display().to_string(),
        staging: stage.clone(),
        limit: T,
    };
    let rec = f.flash(&image).await;
    let _ = std::fs::remove_file(&stage);
    let rec = rec.unwrap();
    assert_eq!(rec.method, "adb_dd");
    assert_eq!(rec.readback, Some(format!("sha256:{}", image.sha256)));
    let after = std::fs::read(&part).unwrap();
    assert_eq!(&after[..400_000], &image.data[..]);
    assert!(after[400_000..].iter().all(|&b| b == 0xa5));
    s.server.disconnect_device(&serial).await.unwrap();
}
