//! SSH to a board running a Linux build: key authentication, commands with
//! their output streamed as it comes, and file pushes checked by reading
//! back what was written.
//!
//! The host key is always checked against a known_hosts file. A board that
//! was reflashed gets a new host key, and a test rig on a shared network is
//! exactly where a wrong machine answers at the board's address: an unknown
//! key is an error that says how to add it, and a changed key is an error
//! that no option turns off. `accept_new` adds unknown keys (trust on first
//! use), never replaces one.
//!
//! libssh2 is blocking; every call runs on tokio's blocking pool.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use ssh2::{CheckResult, KnownHostFileKind, Session};
use tokio::sync::mpsc;

mod stream;
pub use stream::{open_stream, Ended};

/// A password or passphrase: never printed, zeroed when dropped.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The only way to the value; grep for it to audit where secrets go.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // SAFETY: overwriting initialized bytes with zeros keeps valid UTF-8.
        unsafe { self.0.as_bytes_mut() }.iter_mut().for_each(|b| {
            // Volatile so the store is not optimized away as dead.
            // SAFETY: b is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(b, 0) }
        });
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// Private key file (OpenSSH or PEM format; ed25519, RSA, ECDSA).
    pub key: PathBuf,
    #[serde(default)]
    pub passphrase: Option<Secret>,
    /// Usually ~/.ssh/known_hosts.
    pub known_hosts: PathBuf,
    /// Add an unknown host key to known_hosts (never a changed one).
    #[serde(default)]
    pub accept_new: bool,
    #[serde(default = "default_timeout", with = "secs")]
    pub timeout: Duration,
}

fn default_port() -> u16 {
    22
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

mod secs {
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(serde::Deserialize::deserialize(d)?))
    }
}

impl SshConfig {
    pub fn new(
        host: &str,
        port: u16,
        user: &str,
        key: impl Into<PathBuf>,
        known_hosts: impl Into<PathBuf>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            key: key.into(),
            passphrase: None,
            known_hosts: known_hosts.into(),
            accept_new: false,
            timeout: default_timeout(),
        }
    }

    /// How known_hosts and ssh name this host: `[host]:port` off port 22.
    fn host_entry(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    fn keyscan(&self) -> String {
        format!(
            "ssh-keyscan -p {} {} >> {}",
            self.port,
            shell_quote(&self.host),
            shell_quote(&self.known_hosts.display().to_string())
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "the host key of {host} is not in {known_hosts} ({fingerprint}). \
         Check the fingerprint on the board's console (ssh-keygen -lf /etc/ssh/ssh_host_{short}_key.pub), then add it: {keyscan}; \
         or set accept_new to trust it on first use"
    )]
    UnknownHostKey {
        host: String,
        known_hosts: String,
        fingerprint: String,
        short: String,
        keyscan: String,
    },
    #[error(
        "THE HOST KEY OF {host} HAS CHANGED (now {fingerprint}) and does not match {known_hosts}. \
         Either the board was reflashed or another machine answers at its address. \
         If the board was reflashed: ssh-keygen -R '{host}' -f {known_hosts}, then {keyscan}"
    )]
    ChangedHostKey {
        host: String,
        known_hosts: String,
        fingerprint: String,
        keyscan: String,
    },
    #[error(
        "the host key of {host} ({fingerprint}) is marked @revoked in {known_hosts}: \
         it is never accepted. Either the board still has a compromised key or another machine answers at its address"
    )]
    RevokedHostKey {
        host: String,
        known_hosts: String,
        fingerprint: String,
    },
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{context}: {source}")]
    Ssh {
        context: String,
        source: ssh2::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl SshError {
    /// Whether trying again later may succeed: a board that is still
    /// booting refuses the connection, or accepts it and drops it before
    /// its sshd runs. A key that does not match never gets better.
    pub fn is_transient(&self) -> bool {
        matches!(self, SshError::Io(_) | SshError::Ssh { .. })
    }
}

fn ctx(context: impl Into<String>) -> impl FnOnce(ssh2::Error) -> SshError {
    let context = context.into();
    move |source| SshError::Ssh { context, source }
}

/// POSIX shell quoting: the remote side of SSH always runs the command
/// through the user's shell, so every argument is quoted.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// A piece of a command's output, in the order it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecChunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// Gathers a command's streamed output: (stdout, stderr).
pub async fn collect_chunks(mut rx: mpsc::Receiver<ExecChunk>) -> (Vec<u8>, Vec<u8>) {
    let (mut o, mut e) = (Vec::new(), Vec::new());
    while let Some(c) = rx.recv().await {
        match c {
            ExecChunk::Stdout(b) => o.extend(b),
            ExecChunk::Stderr(b) => e.extend(b),
        }
    }
    (o, e)
}

/// An authenticated SSH session. Cheap to clone; commands on one session
/// run one at a time.
#[derive(Clone)]
pub struct SshSession {
    session: Arc<Mutex<Session>>,
    target: String,
    timeout: Duration,
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("target", &self.target)
            .finish()
    }
}

fn sha256_fingerprint(key: &[u8]) -> String {
    use base64::Engine;
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(key))
    )
}

fn key_type_name(t: ssh2::HostKeyType) -> (&'static str, &'static str) {
    use ssh2::HostKeyType as H;
    match t {
        H::Rsa => ("ssh-rsa", "rsa"),
        H::Dss => ("ssh-dss", "dsa"),
        H::Ecdsa256 => ("ecdsa-sha2-nistp256", "ecdsa"),
        H::Ecdsa384 => ("ecdsa-sha2-nistp384", "ecdsa"),
        H::Ecdsa521 => ("ecdsa-sha2-nistp521", "ecdsa"),
        H::Ed25519 => ("ssh-ed25519", "ed25519"),
        H::Unknown => ("unknown", "*"),
    }
}

fn check_host_key(sess: &Session, cfg: &SshConfig) -> Result<(), SshError> {
    use base64::Engine;
    let (key, key_type) = sess
        .host_key()
        .ok_or_else(|| SshError::Other("the server sent no host key".into()))?;
    let fingerprint = sha256_fingerprint(key);
    let (type_name, short) = key_type_name(key_type);
    let mut known = sess.known_hosts().map_err(ctx("known_hosts"))?;
    let kh = cfg.known_hosts.display().to_string();
    if cfg.known_hosts.exists() {
        known
            .read_file(&cfg.known_hosts, KnownHostFileKind::OpenSSH)
            .map_err(ctx(format!("reading {kh}")))?;
    }
    // libssh2 skips `@revoked` lines, so a revoked key that is also listed
    // (or new, with accept_new) would be accepted.
    if cfg.known_hosts.exists() {
        let text = std::fs::read(&cfg.known_hosts)
            .map_err(|e| SshError::Other(format!("reading {kh}: {e}")))?;
        if is_revoked(&text, key) {
            return Err(SshError::RevokedHostKey {
                host: cfg.host_entry(),
                known_hosts: kh,
                fingerprint,
            });
        }
    }
    match known.check_port(&cfg.host, cfg.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(SshError::ChangedHostKey {
            host: cfg.host_entry(),
            known_hosts: kh,
            fingerprint,
            keyscan: cfg.keyscan(),
        }),
        CheckResult::NotFound if cfg.accept_new => {
            // Appended by hand: libssh2's write_file rewrites the whole file
            // and would drop the user's comments and entries it cannot parse.
            let line = format!(
                "{} {type_name} {}\n",
                cfg.host_entry(),
                base64::engine::general_purpose::STANDARD.encode(key)
            );
            if let Some(dir) = cfg
                .known_hosts
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&cfg.known_hosts)
                .map_err(|e| {
                    SshError::Other(format!(
                        "adding the host key of {} to {kh}: {e}",
                        cfg.host_entry()
                    ))
                })?;
            f.write_all(line.as_bytes())?;
            Ok(())
        }
        CheckResult::NotFound => Err(SshError::UnknownHostKey {
            host: cfg.host_entry(),
            known_hosts: kh,
            fingerprint,
            short: short.into(),
            keyscan: cfg.keyscan(),
        }),
        CheckResult::Failure => Err(SshError::Other(format!(
            "checking the host key of {} against {kh} failed",
            cfg.host_entry()
        ))),
    }
}

/// Whether a `@revoked` line of a known_hosts file holds `key` (the key
/// blob, as sent by the server). Stricter than OpenSSH, which honours the
/// line only for the hosts its pattern names: a key revoked for any host is
/// refused for every host, so a hashed or mistyped pattern cannot let it in.
pub fn is_revoked(known_hosts: &[u8], key: &[u8]) -> bool {
    use base64::Engine;
    known_hosts.split(|&b| b == b'\n').any(|line| {
        let Ok(line) = std::str::from_utf8(line) else {
            return false;
        };
        let mut words = line.split_ascii_whitespace();
        if !words
            .next()
            .is_some_and(|m| m.eq_ignore_ascii_case("@revoked"))
        {
            return false;
        }
        // @revoked <hosts> <type> <base64 key> [comment]
        words.nth(2).is_some_and(|blob| {
            base64::engine::general_purpose::STANDARD
                .decode(blob)
                .is_ok_and(|b| b == key)
        })
    })
}

fn connect_blocking(cfg: &SshConfig) -> Result<Session, SshError> {
    let target = format!("{}@{}", cfg.user, cfg.host_entry());
    let addr = (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()
        .map_err(|e| SshError::Other(format!("resolving {}: {e}", cfg.host)))?
        .next()
        .ok_or_else(|| SshError::Other(format!("{} has no address", cfg.host)))?;
    let tcp = TcpStream::connect_timeout(&addr, cfg.timeout).map_err(|e| {
        SshError::Io(io::Error::new(
            e.kind(),
            format!("connecting to {addr} for SSH: {e}; is the board up and sshd running?"),
        ))
    })?;
    let mut sess = Session::new().map_err(ctx("libssh2 session"))?;
    sess.set_timeout(cfg.timeout.as_millis().min(u32::MAX as u128) as u32);
    sess.set_tcp_stream(tcp);
    sess.handshake()
        .map_err(ctx(format!("SSH handshake with {addr}")))?;
    check_host_key(&sess, cfg)?;
    if !cfg.key.exists() {
        return Err(SshError::Auth(format!(
            "the SSH key file {} does not exist",
            cfg.key.display()
        )));
    }
    let pass = cfg.passphrase.as_ref().map(Secret::expose);
    if let Err(e) = sess.userauth_pubkey_file(&cfg.user, None, &cfg.key, pass) {
        // The error text comes from libssh2 and never contains the passphrase.
        let hint = if cfg.passphrase.is_none()
            && e.message().to_lowercase().contains("unable to extract")
        {
            " (is the key protected by a passphrase? set passphrase)"
        } else {
            ""
        };
        return Err(SshError::Auth(format!(
            "{target} refused the key {}: {}{hint}. Is its .pub in the board's ~{}/.ssh/authorized_keys?",
            cfg.key.display(),
            e.message(),
            cfg.user
        )));
    }
    if !sess.authenticated() {
        return Err(SshError::Auth(format!(
            "{target}: not authenticated after the key was accepted"
        )));
    }
    Ok(sess)
}

/// Waits until libssh2's socket is ready in the direction it is blocked on.
fn wait_socket(sess: &Session, limit: Duration) {
    let fd = sess.as_raw_fd();
    let dirs = sess.block_directions();
    let mut events = 0;
    if matches!(
        dirs,
        ssh2::BlockDirections::Inbound | ssh2::BlockDirections::Both
    ) {
        events |= libc::POLLIN;
    }
    if matches!(
        dirs,
        ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
    ) {
        events |= libc::POLLOUT;
    }
    if events == 0 {
        events = libc::POLLIN;
    }
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, limit.as_millis().clamp(1, 100) as i32) };
}

fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(-37)
}

impl SshSession {
    /// Connects, checks the host key, authenticates with the key file.
    pub async fn connect(cfg: &SshConfig) -> Result<Self, SshError> {
        let cfg = cfg.clone();
        let target = format!("{}@{}", cfg.user, cfg.host_entry());
        let timeout = cfg.timeout;
        let sess = tokio::task::spawn_blocking(move || connect_blocking(&cfg))
            .await
            .map_err(|e| SshError::Other(format!("SSH connect task: {e}")))??;
        Ok(Self {
            session: Arc::new(Mutex::new(sess)),
            target,
            timeout,
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, SshError> + Send + 'static,
    ) -> Result<T, SshError> {
        let session = self.session.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut s)
        })
        .await
        .map_err(|e| SshError::Other(format!("SSH task: {e}")))?
    }

    /// Runs a shell command line on the board; output goes to `out` as it
    /// comes; returns the exit status. The line is run by the remote user's
    /// shell: build it with [`shell_quote`], or use [`Self::exec_argv`].
    /// The command's stdin is closed at once, as `ssh host cmd </dev/null`.
    pub async fn exec(
        &self,
        command: &str,
        timeout: Duration,
        out: mpsc::Sender<ExecChunk>,
    ) -> Result<i32, SshError> {
        let command = command.to_string();
        let target = self.target.clone();
        self.blocking(move |sess| {
            run_channel(sess, &command, &[], timeout, &target, &mut |chunk| {
                // A receiver that went away only stops the forwarding.
                let _ = out.blocking_send(chunk);
            })
        })
        .await
    }

    /// Runs a program with arguments, each quoted for the remote shell.
    pub async fn exec_argv(
        &self,
        argv: &[&str],
        timeout: Duration,
        out: mpsc::Sender<ExecChunk>,
    ) -> Result<i32, SshError> {
        let line = argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        self.exec(&line, timeout, out).await
    }

    /// Runs a command and collects its output: (exit status, stdout, stderr).
    pub async fn output(
        &self,
        command: &str,
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>, Vec<u8>), SshError> {
        let (tx, rx) = mpsc::channel(64);
        let collect = tokio::spawn(collect_chunks(rx));
        let status = self.exec(command, timeout, tx).await?;
        let (o, e) = collect.await.map_err(|e| SshError::Other(e.to_string()))?;
        Ok((status, o, e))
    }

    /// Writes `data` to `remote` with `mode`, reads it back, and returns
    /// the sha256 (hex) of what is on the board, after checking it is the
    /// sha256 of `data`.
    ///
    /// The bytes go to `cat` on the board's stdin, not over SFTP: libssh2
    /// lets go of an SFTP channel after reading any one packet, so the
    /// sftp-server may still be exiting when the next command's channel
    /// opens. dropbear before 2024.86 (Debian 12 ships 2022.83) closes a
    /// channel that opens in the same turn of its loop as a child's
    /// SIGCHLD, then aborts the whole connection when that channel's
    /// command writes ("Failed assertion (common-channel.c:705):
    /// `!channel->sent_close'", dropbear issue #321, fixed by its PR
    /// #326). Every channel here ends with the server's close, which
    /// dropbear sends only after it reaped the channel's process, so no
    /// exit is left to race the next channel. No sftp-server is needed
    /// on the board either.
    pub async fn push_bytes(
        &self,
        data: Vec<u8>,
        remote: &str,
        mode: i32,
    ) -> Result<String, SshError> {
        let remote = remote.to_string();
        let target = self.target.clone();
        let timeout = self.transfer_timeout(data.len());
        self.blocking(move |sess| {
            let want = hex::encode(Sha256::digest(&data));
            let quoted = shell_quote(&remote);
            let write = format!("cat > {quoted} && chmod {mode:o} {quoted}");
            let mut err = Vec::new();
            let status = run_channel(sess, &write, &data, timeout, &target, &mut |c| {
                if let ExecChunk::Stderr(b) = c {
                    err.extend(b)
                }
            })?;
            if status != 0 {
                return Err(SshError::Other(format!(
                    "{target}: writing {remote} failed ({status}): {}",
                    String::from_utf8_lossy(&err).trim()
                )));
            }
            let (mut hash, mut len) = (Sha256::new(), 0usize);
            err.clear();
            let status = run_channel(sess, &format!("cat {quoted}"), &[], timeout, &target, &mut |c| match c {
                ExecChunk::Stdout(b) => {
                    len += b.len();
                    hash.update(&b);
                }
                ExecChunk::Stderr(b) => err.extend(b),
            })?;
            if status != 0 {
                return Err(SshError::Other(format!(
                    "{target}: reading back {remote} failed ({status}): {}",
                    String::from_utf8_lossy(&err).trim()
                )));
            }
            let got = hex::encode(hash.finalize());
            if got != want {
                return Err(SshError::Other(format!(
                    "{target}: {remote} reads back with sha256 {got} ({len} bytes), not the pushed {want} ({} bytes)",
                    data.len()
                )));
            }
            Ok(got)
        })
        .await
    }

    /// How long one way of a push may take: the session's timeout, plus
    /// the bytes at 512 KiB/s (a slow board's SD card, or an emulated
    /// board decrypting in software).
    fn transfer_timeout(&self, bytes: usize) -> Duration {
        self.timeout + Duration::from_secs((bytes >> 19) as u64 + 1)
    }

    /// [`Self::push_bytes`] of a local file.
    pub async fn push(&self, local: &Path, remote: &str, mode: i32) -> Result<String, SshError> {
        let data = tokio::fs::read(local)
            .await
            .map_err(|e| SshError::Other(format!("reading {} to push it: {e}", local.display())))?;
        self.push_bytes(data, remote, mode).await
    }
}

/// Runs `command` on a channel of its own: `stdin` is written as the
/// server's window allows (then EOF), stdout and stderr go to `sink` as
/// they come, and the channel is done only when the server closed it.
/// Non-blocking throughout, so that a full stdout window never stalls the
/// stdin writes nor the other way round.
fn run_channel(
    sess: &mut Session,
    command: &str,
    stdin: &[u8],
    timeout: Duration,
    target: &str,
    sink: &mut dyn FnMut(ExecChunk),
) -> Result<i32, SshError> {
    sess.set_blocking(true);
    let mut ch = sess
        .channel_session()
        .map_err(ctx(format!("{target}: opening a channel")))?;
    ch.exec(command).map_err(ctx(format!("{target}: exec")))?;
    sess.set_blocking(false);
    let res = drive_channel(sess, &mut ch, stdin, timeout, target, sink);
    sess.set_blocking(true);
    res
}

fn drive_channel(
    sess: &Session,
    ch: &mut ssh2::Channel,
    mut stdin: &[u8],
    timeout: Duration,
    target: &str,
    sink: &mut dyn FnMut(ExecChunk),
) -> Result<i32, SshError> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 32 * 1024];
    let (mut out_eof, mut err_eof, mut eof_sent) = (false, false, false);
    // A command that exits before reading all of its stdin (`cat` that
    // cannot create its file) closes the channel under the writes: its
    // exit status and stderr say why, so they are still read.
    let mut stdin_lost = None;
    loop {
        let mut progressed = false;
        if !stdin.is_empty() {
            match ch.write(&stdin[..stdin.len().min(256 * 1024)]) {
                Ok(n) => {
                    stdin = &stdin[n..];
                    progressed |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    stdin_lost = Some(format!("{} bytes of its stdin unsent: {e}", stdin.len()));
                    stdin = &[];
                    eof_sent = true;
                }
            }
        } else if !eof_sent {
            match ch.send_eof() {
                Ok(()) => {
                    eof_sent = true;
                    progressed = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(ctx(format!("{target}: closing the command's stdin"))(e)),
            }
        }
        for is_err in [false, true] {
            if (is_err && err_eof) || (!is_err && out_eof) {
                continue;
            }
            let mut stream = ch.stream(if is_err {
                ssh2::EXTENDED_DATA_STDERR
            } else {
                0
            });
            match stream.read(&mut buf) {
                Ok(0) => {
                    if is_err {
                        err_eof = true
                    } else {
                        out_eof = true
                    }
                }
                Ok(n) => {
                    progressed = true;
                    let chunk = buf[..n].to_vec();
                    sink(if is_err {
                        ExecChunk::Stderr(chunk)
                    } else {
                        ExecChunk::Stdout(chunk)
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    return Err(SshError::Other(format!(
                        "{target}: reading command output: {e}"
                    )))
                }
            }
        }
        if out_eof && err_eof {
            break;
        }
        if Instant::now() >= deadline {
            // Not waited for: the command is still running, and the
            // server keeps its channel until it exits.
            let _ = ch.close();
            return Err(SshError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{target}: command still running after {} s",
                    timeout.as_secs()
                ),
            )));
        }
        if !progressed {
            wait_socket(sess, deadline.saturating_duration_since(Instant::now()));
        }
    }
    // The server's close, not only its EOF: dropbear sends it once it has
    // reaped the command, and a channel opened before that may be lost
    // (see push_bytes).
    loop {
        match ch.wait_close() {
            Ok(()) => break,
            Err(e) if would_block(&e) && Instant::now() < deadline => {
                wait_socket(sess, Duration::from_millis(100))
            }
            Err(e) => return Err(ctx(format!("{target}: waiting for the command to end"))(e)),
        }
    }
    let status = ch
        .exit_status()
        .map_err(ctx(format!("{target}: exit status")))?;
    if let Ok(Some(sig)) = ch.exit_signal().map(|s| s.exit_signal) {
        return Err(SshError::Other(format!(
            "{target}: command killed by SIG{sig}"
        )));
    }
    match stdin_lost {
        Some(lost) if status == 0 => Err(SshError::Other(format!(
            "{target}: the command exited 0 with {lost}"
        ))),
        _ => Ok(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let mut cfg = SshConfig::new("b", 22, "root", "/k", "/kh");
        cfg.passphrase = Some(Secret::new("hunter2"));
        let dbg = format!("{cfg:?} {:?}", cfg.passphrase);
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(shell_quote("plain-1.0"), "plain-1.0");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's $x"), r"'it'\''s $x'");
        for arg in ["a b", "it's", "$(reboot)", "`x`", "\\", "*", "a\nb", "'"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(arg)))
                .output()
                .unwrap();
            assert_eq!(out.stdout, arg.as_bytes(), "{arg:?}");
        }
    }
}
