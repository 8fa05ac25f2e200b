//! The shell of a board that boots its own OS, whichever way it is reached:
//! SSH on a Linux build, adb on Android. The strategy in
//! [`super::strategy::own_os`]
//! works through [`Remote`] alone, so one plan runs on either.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use hilt_transports::flash::{AdbShell, BoardShell};
use hilt_transports::ssh::{shell_quote, SshConfig, SshSession};
use tokio::io::AsyncWriteExt;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::retry::Attempt;
use crate::plan::{AdbCfg, AgentChannelCfg, BoardFile};

#[async_trait::async_trait]
pub trait Remote: Send + Sync {
    /// "SSH" or "adb", for messages.
    fn via(&self) -> &'static str;
    /// Commands, and files pushed and read back.
    fn shell(&self) -> &dyn BoardShell;
    /// A directory in RAM where root may write: the agent and the staged
    /// image go there, so nothing of a run outlives a power cycle.
    fn scratch(&self) -> &'static str;
    /// `command` as root: the agent locks memory, sets sysrq and mounts.
    fn as_root(&self, command: &str) -> String;
    /// Reads a file (or, as root, a block device) from the board, refusing
    /// more than `limit` bytes.
    async fn pull(&self, path: &str, limit: usize) -> anyhow::Result<Vec<u8>>;
    /// The command's stdin and stdout as one stream, its stderr to
    /// `stderr`; dropping the stream closes its stdin.
    async fn open_stream(
        &self,
        command: &str,
        stderr: mpsc::Sender<Vec<u8>>,
    ) -> anyhow::Result<DuplexStream>;
}

impl dyn Remote {
    /// Whether the board runs this kernel, told by its banner (or, when the
    /// Image has none, its release); and what /proc/version says.
    pub async fn runs_kernel(
        &self,
        banner: Option<&str>,
        release: &str,
    ) -> anyhow::Result<(bool, String)> {
        let (status, running) = self
            .output("cat /proc/version", Duration::from_secs(30))
            .await?;
        let running = running.trim().to_string();
        let same = status == 0
            && match banner {
                Some(want) => running == want,
                None => running.starts_with(&format!("Linux version {release} ")),
            };
        Ok((same, running))
    }

    /// Pushes the agent (read back), runs it as root with its stdio as the
    /// channel, and keeps its stderr in `log`.
    pub async fn start_agent(&self, agent: &Path, log: &Path) -> anyhow::Result<DuplexStream> {
        let via = self.via();
        let bytes = std::fs::read(agent).with_context(|| format!("reading {}", agent.display()))?;
        let agent_path = format!("{}/hilt-agent", self.scratch());
        self.shell()
            .push(&bytes, &agent_path, 0o755)
            .await
            .with_context(|| format!("pushing the agent over {via}"))?;
        let command = self.as_root(&format!("{} --port stdio", shell_quote(&agent_path)));
        let (err_tx, mut err_rx) = mpsc::channel::<Vec<u8>>(64);
        let stream = self
            .open_stream(&command, err_tx)
            .await
            .with_context(|| format!("starting the agent over {via}"))?;
        let log = log.to_path_buf();
        tokio::spawn(async move {
            let Ok(mut f) = tokio::fs::File::create(&log).await else {
                return;
            };
            while let Some(b) = err_rx.recv().await {
                let _ = f.write_all(&b).await;
                let _ = f.flush().await;
            }
        });
        Ok(stream)
    }

    /// Runs a command line: (status, stdout).
    pub async fn output(&self, line: &str, limit: Duration) -> anyhow::Result<(i32, String)> {
        let (status, out, _) = self
            .shell()
            .run(line, limit)
            .await
            .with_context(|| format!("running `{line}` over {}", self.via()))?;
        Ok((status, out))
    }
}

/// A board's sshd.
pub struct Ssh {
    session: SshSession,
    cfg: SshConfig,
    user: String,
}

#[async_trait::async_trait]
impl Remote for Ssh {
    fn via(&self) -> &'static str {
        "SSH"
    }
    fn shell(&self) -> &dyn BoardShell {
        &self.session
    }
    fn scratch(&self) -> &'static str {
        "/tmp"
    }
    fn as_root(&self, command: &str) -> String {
        if self.user == "root" {
            format!("exec {command}")
        } else {
            format!("exec sudo -n {command}")
        }
    }
    async fn pull(&self, path: &str, limit: usize) -> anyhow::Result<Vec<u8>> {
        let line = self.as_root(&format!("cat {}", shell_quote(path)));
        let (status, out, err) = self
            .session
            .output(&line, Duration::from_secs(600))
            .await
            .with_context(|| format!("reading {path} over SSH"))?;
        if status != 0 {
            bail!(
                "reading {path} over SSH: exit {status}: {}",
                String::from_utf8_lossy(&err).trim()
            );
        }
        if out.len() > limit {
            bail!("reading {path} over SSH: more than {limit} bytes");
        }
        Ok(out)
    }
    async fn open_stream(
        &self,
        command: &str,
        stderr: mpsc::Sender<Vec<u8>>,
    ) -> anyhow::Result<DuplexStream> {
        let (stream, _ended) =
            hilt_transports::ssh::open_stream(&self.cfg, command, stderr).await?;
        Ok(stream)
    }
}

#[async_trait::async_trait]
impl Remote for AdbShell {
    fn via(&self) -> &'static str {
        "adb"
    }
    fn shell(&self) -> &dyn BoardShell {
        self
    }
    fn scratch(&self) -> &'static str {
        // Android's one directory the shell user may write; not /tmp.
        "/data/local/tmp"
    }
    fn as_root(&self, command: &str) -> String {
        // adbd runs commands as root or not at all (checked on connect).
        format!("exec {command}")
    }
    async fn pull(&self, path: &str, limit: usize) -> anyhow::Result<Vec<u8>> {
        self.server
            .pull(self.serial.as_deref(), path, limit)
            .await
            .with_context(|| format!("adb pull {path}"))
    }
    async fn open_stream(
        &self,
        command: &str,
        stderr: mpsc::Sender<Vec<u8>>,
    ) -> anyhow::Result<DuplexStream> {
        let (stream, _ended) = self
            .server
            .open_stream(self.serial.as_deref(), command, stderr)
            .await?;
        Ok(stream)
    }
}

/// Connects once the board answers on its agent channel: until then it is
/// still booting. Errors that waiting cannot cure end the wait at once.
pub async fn connect(b: &BoardFile, limit: Duration) -> anyhow::Result<Box<dyn Remote>> {
    match b.agent {
        AgentChannelCfg::Ssh => {
            let s = b.ssh.as_ref().context("no `ssh:` section")?;
            let cfg = super::resources::ssh_config(s);
            let session = wait_for_ssh(&cfg, limit).await?;
            Ok(Box::new(Ssh {
                session,
                cfg,
                user: s.user.clone(),
            }))
        }
        AgentChannelCfg::Adb => {
            let a = b.adb.as_ref().context("no `adb:` section")?;
            Ok(Box::new(wait_for_adb(a, limit).await?))
        }
        _ => bail!("board {}: the agent is not over SSH or adb", b.name),
    }
}

async fn wait_for_ssh(cfg: &SshConfig, limit: Duration) -> anyhow::Result<SshSession> {
    let mut probe = cfg.clone();
    probe.timeout = Duration::from_secs(5);
    let probe = &probe;
    super::retry::retry_until(
        limit,
        Duration::from_millis(500),
        "SSH did not answer after power on",
        || async move {
            match SshSession::connect(probe).await {
                // The probe's short timeout would cut long pushes short:
                // the session that does the work has the board file's.
                Ok(_) => Ok(SshSession::connect(cfg).await?),
                Err(e) if !e.is_transient() => Err(Attempt::Fatal(e.into())),
                Err(e) => Err(Attempt::Again(e.into())),
            }
        },
    )
    .await
}

/// `adb root`, once per boot, as a person would before running anything
/// that mounts or swaps. adbd restarts as root and drops off the server for
/// a moment; the caller's wait sees it come back.
async fn become_root(
    server: &hilt_transports::adb::AdbServer,
    a: &AdbCfg,
    uid: &str,
) -> anyhow::Result<()> {
    use hilt_transports::adb::RootAnswer;
    match server.root(Some(&a.serial)).await? {
        RootAnswer::Restarting => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(())
        }
        RootAnswer::AlreadyRoot => bail!(
            "adb on {} runs commands as uid {uid} although adbd says it runs as root: the agent needs root",
            a.serial
        ),
        RootAnswer::Refused(said) => bail!(
            "adb on {} runs commands as uid {uid}, the agent needs root, and `adb root` was refused ({said:?}): flash a userdebug or eng build, or one whose adbd may run as root",
            a.serial
        ),
    }
}

/// A device over TCP (`host:port`) is connected by the adb server, as
/// `adb connect` does, again after each power cycle; a USB one appears by
/// itself. Either way it must then answer a command as root.
async fn wait_for_adb(a: &AdbCfg, limit: Duration) -> anyhow::Result<AdbShell> {
    let server = super::resources::adb_server(a);
    let over_tcp = a.serial.contains(':');
    if over_tcp {
        // The server's connection to the last boot is dead; it might
        // otherwise report it as the device for a while.
        let _ = server.disconnect_device(&a.serial).await;
    }
    let server = &server;
    super::retry::retry_until(
        limit,
        Duration::from_millis(500),
        &format!("adb device {} did not come up after power on", a.serial),
        || async move {
            if over_tcp {
                // Refused until adbd listens; a server that is down fails
                // the listing below, with what to do.
                let _ = server.connect_device(&a.serial).await;
            }
            let devices = server
                .devices()
                .await
                .map_err(|e| Attempt::Fatal(e.into()))?;
            let state = devices
                .iter()
                .find(|d| d.serial == a.serial)
                .map_or("not listed", |d| d.state.as_str());
            if state != "device" {
                return Err(Attempt::Again(anyhow::anyhow!("it is {state}")));
            }
            let shell = AdbShell {
                server: server.clone(),
                serial: Some(a.serial.clone()),
            };
            let (status, out, _) = shell.run("id -u", Duration::from_secs(20)).await?;
            match (status, out.trim()) {
                (0, "0") => Ok(shell),
                (0, uid) => {
                    become_root(server, a, uid).await.map_err(Attempt::Fatal)?;
                    Err(Attempt::Again(anyhow::anyhow!(
                        "adbd is restarting as root"
                    )))
                }
                (status, _) => Err(Attempt::Again(anyhow::anyhow!("`id -u` exited {status}"))),
            }
        },
    )
    .await
}
