//! A board that boots its own Linux: power from its controller, the console
//! from its UART (the kernel's reports, and BREAK for sysrq), and the agent
//! over SSH, the way LAVA and labgrid drive a board with an SSH driver.
//!
//! The strategy for each boot: power off, open the console, power on, wait
//! until SSH answers, write the plan's image to the storage partition on the
//! run's first boot (dd, read back, sha256 compared), push the agent (read
//! back), and run it with its stdin and stdout as the channel. The kernel is
//! the one the board boots; the iteration checks it is the variant's.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hilt_transports::console::Replayed;
use hilt_transports::deploy;
use hilt_transports::flash::{DdFlasher, FlashImage, Flasher};
use hilt_transports::ssh::{shell_quote, SshConfig, SshSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::bench::{power_cycle_to_console, FlashJob};
use super::{AgentLink, Session};
use crate::plan::{AgentChannelCfg, BoardFile, FaultKind, FlashCfg, Plan};

/// Where the agent is put on the board: tmpfs on most systems, so nothing
/// of a run outlives the next power cycle.
const AGENT_PATH: &str = "/tmp/hilt-agent";
/// Where dd's image waits before it is written and read back.
const STAGING: &str = "/tmp/hilt-flash.img";

pub struct Bringup {
    pub board: BoardFile,
    /// The directory holding `boards/`, for the power programs' paths.
    pub home: PathBuf,
    /// The static aarch64 agent on this host.
    pub agent: PathBuf,
    pub flash: Option<FlashJob>,
    /// The agent's stderr, kept with the iteration's logs.
    pub agent_log: PathBuf,
    /// The variant's kernel: what the board must run, and what hilt
    /// installs at the board file's `kernel_path` when it runs another.
    pub variant: String,
    pub kernel_image: PathBuf,
    pub kernel_release: String,
    /// Where installs are recorded (the run directory's deploy.jsonl).
    pub deploy_record: PathBuf,
}

/// What one boot ended in.
enum Booted {
    /// The variant's kernel runs and the agent is talking.
    Ready(tokio::io::DuplexStream),
    /// The variant's kernel was installed; the next boot runs it.
    Installed,
}

/// Whether `hilt run` can drive this board with this plan; the error says
/// what to change.
pub fn preflight(b: &BoardFile, plan: &Plan) -> anyhow::Result<()> {
    match b.agent {
        AgentChannelCfg::Ssh => {}
        AgentChannelCfg::Adb => bail!(
            "board {}: hilt run drives a board that boots its own OS with the agent over SSH; over adb it is not supported yet (hilt flash, deploy and doctor do use adb)",
            b.name
        ),
        _ => bail!("board {}: not a board with the agent over SSH", b.name),
    }
    b.ssh.as_ref().with_context(|| {
        format!(
            "board {}: `agent: ssh` needs an `ssh:` section (host, user, key, known_hosts)",
            b.name
        )
    })?;
    match &b.flash {
        Some(FlashCfg::SshDd { .. }) => {}
        _ => bail!(
            "board {}: with the agent over SSH, hilt run writes the plan's image with dd over SSH (flash: {{ssh_dd: {{partition: <name>}}}})",
            b.name
        ),
    }
    super::bench::check_storage(b, plan)?;
    for f in &plan.faults {
        if f.kind == FaultKind::PowerLoss {
            bail!(
                "board {}: the power_loss fault kills QEMU, and this board's switch is a command: run that fault on an emulated board",
                b.name
            );
        }
    }
    Ok(())
}

impl Bringup {
    pub async fn start(self: Box<Self>, boot_limit: Duration) -> anyhow::Result<Session> {
        let image = std::fs::read(&self.kernel_image)
            .with_context(|| format!("reading {}", self.kernel_image.display()))?;
        let banner = hilt_kernels::linux_banner(&image);
        // Every boot's console, in order: a boot that installed the kernel
        // belongs in console.log too.
        let mut heard = Vec::new();
        let mut installed = false;
        loop {
            let (mut power, mut console) = power_cycle_to_console(&self.board, &self.home).await?;
            let work = self.boot(boot_limit, &image, banner.as_deref(), installed);
            tokio::pin!(work);
            // The console is read while SSH comes up: the boot's log belongs
            // in console.log, and a UART nobody reads would stall the board.
            let mut buf = vec![0u8; 4096];
            let result = loop {
                tokio::select! {
                    r = &mut work => break r,
                    n = console.read(&mut buf) => match n {
                        Ok(n) if n > 0 => heard.extend_from_slice(&buf[..n]),
                        _ => break work.await,
                    },
                }
            };
            match result {
                Ok(Booted::Ready(stream)) => {
                    return Ok(Session {
                        power,
                        console: Box::new(Replayed::new(heard, console)),
                        agent: AgentLink::Own(Box::new(stream)),
                    })
                }
                Ok(Booted::Installed) => {
                    installed = true;
                    power
                        .off()
                        .await
                        .context("powering off to boot the installed kernel")?;
                }
                Err(e) => {
                    let _ = power.off().await;
                    let tail = String::from_utf8_lossy(&heard[heard.len().saturating_sub(1500)..])
                        .into_owned();
                    return Err(anyhow::anyhow!("{e:#}\n--- the console said ---\n{tail}"));
                }
            }
        }
    }

    async fn boot(
        &self,
        limit: Duration,
        image: &[u8],
        banner: Option<&str>,
        installed: bool,
    ) -> anyhow::Result<Booted> {
        let b = &self.board;
        let s = b.ssh.as_ref().context("no `ssh:` section")?;
        let cfg = super::doctor::ssh_config(s);
        let session = wait_for_ssh(&cfg, limit).await?;
        let (status, out, _) = session
            .output("cat /proc/version", Duration::from_secs(30))
            .await
            .context("reading /proc/version over SSH")?;
        let running = String::from_utf8_lossy(&out).trim().to_string();
        let is_variants = status == 0
            && match banner {
                Some(want) => running == want,
                None => running.starts_with(&format!("Linux version {} ", self.kernel_release)),
            };
        if !is_variants {
            let want = banner.unwrap_or(&self.kernel_release);
            match (&b.kernel_path, installed) {
                (Some(path), false) => {
                    let rec = deploy::ssh_install(&session, path, image)
                        .await
                        .with_context(|| format!("installing the kernel of {} at {path}", self.variant))?;
                    super::flash::append_record(&self.deploy_record, &InstallRecord {
                        board: &b.name,
                        variant: &self.variant,
                        kernel_release: &self.kernel_release,
                        banner,
                        replaced: &running,
                        file: rec,
                    })
                    .context("recording the install")?;
                    return Ok(Booted::Installed);
                }
                (Some(path), true) => bail!(
                    "hilt installed the kernel of variant {} at {path}, and after a power cycle the board still runs \"{running}\", not \"{want}\": does its bootloader load {path}?",
                    self.variant
                ),
                (None, _) => bail!(
                    "the board runs \"{running}\", and variant {} is \"{want}\": set `kernel_path` in board {} (the file its bootloader loads) so that hilt installs it, or install it yourself and run again",
                    self.variant,
                    b.name
                ),
            }
        }
        if let Some(job) = self
            .flash
            .as_ref()
            .filter(|j| !j.done.load(Ordering::Relaxed))
        {
            let Some(FlashCfg::SshDd { partition }) = &b.flash else {
                bail!("board {}: no ssh_dd flash method", b.name);
            };
            let device = b.partitions.get(partition).with_context(|| {
                format!(
                    "board {}: partition {partition:?} is not in `partitions:`",
                    b.name
                )
            })?;
            let image = FlashImage::from_file(&job.image.path, job.image.verity_root_hash.clone())
                .with_context(|| format!("reading {}", job.image.path.display()))?;
            let rec = DdFlasher {
                shell: session.clone(),
                device: device.clone(),
                staging: STAGING.into(),
                limit: Duration::from_secs(600),
            }
            .flash(&image)
            .await
            .context("writing the plan's image over SSH")?;
            super::flash::append_record(&job.record, &rec)?;
            job.done.store(true, Ordering::Relaxed);
        }
        session
            .push(&self.agent, AGENT_PATH, 0o755)
            .await
            .context("pushing the agent over SSH")?;
        drop(session);
        let mut command = format!("exec {} --port stdio", shell_quote(AGENT_PATH));
        if s.user != "root" {
            // The agent locks memory, sets sysrq and mounts: root's work.
            command = format!("exec sudo -n {} --port stdio", shell_quote(AGENT_PATH));
        }
        let (err_tx, mut err_rx) = mpsc::channel::<Vec<u8>>(64);
        let (stream, _ended) = hilt_transports::ssh::open_stream(&cfg, &command, err_tx)
            .await
            .context("starting the agent over SSH")?;
        let log = self.agent_log.clone();
        tokio::spawn(async move {
            let Ok(mut f) = tokio::fs::File::create(&log).await else {
                return;
            };
            while let Some(b) = err_rx.recv().await {
                let _ = f.write_all(&b).await;
                let _ = f.flush().await;
            }
        });
        Ok(Booted::Ready(stream))
    }
}

/// One kernel install, a line of the run directory's deploy.jsonl.
#[derive(serde::Serialize)]
struct InstallRecord<'a> {
    board: &'a str,
    variant: &'a str,
    kernel_release: &'a str,
    /// The kernel's banner, as /proc/version prints it once it runs.
    banner: Option<&'a str>,
    /// What /proc/version said before.
    replaced: &'a str,
    file: deploy::DeployedFile,
}

/// Connects once the board's sshd answers: until then the board is still
/// booting. Errors that waiting cannot cure (a wrong host key, a refused
/// key) end the wait at once.
async fn wait_for_ssh(cfg: &SshConfig, limit: Duration) -> anyhow::Result<SshSession> {
    let t0 = Instant::now();
    let mut probe = cfg.clone();
    probe.timeout = Duration::from_secs(5);
    loop {
        match SshSession::connect(&probe).await {
            // The probe's short timeout would cut long pushes short: the
            // session that does the work has the board file's.
            Ok(_) => return Ok(SshSession::connect(cfg).await?),
            Err(e) if !e.is_transient() => return Err(e.into()),
            Err(e) if t0.elapsed() >= limit => {
                return Err(anyhow::Error::from(e).context(format!(
                    "SSH did not answer within {} s of power on",
                    limit.as_secs()
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
