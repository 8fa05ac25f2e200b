//! A board that boots its own OS (a Linux build, or Android): power from its
//! controller, the console from its UART (the kernel's reports, and BREAK
//! for sysrq), and the agent over SSH or adb ([`crate::board::remote`]), the way
//! LAVA and labgrid drive a board with an SSH or adb driver.
//!
//! The strategy for each boot: power off, open the console, power on, wait
//! until SSH or adb answers, install the variant's kernel if the board runs
//! another (then power cycle), write the plan's image to the storage
//! partition on the run's first boot (dd, read back, sha256 compared), push
//! the agent (read back), and run it with its stdin and stdout as the
//! channel.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use hilt_transports::console::Replayed;
use hilt_transports::deploy;
use hilt_transports::flash::{DdFlasher, Flasher};

use crate::board::install::boot_scr::MARK_NOT_SAVED;
use crate::board::preflight;
use crate::board::storage::FlashJob;
use crate::board::{
    install, remote, resources, AgentLink, Board, Boot, BootRequest, Power, RunBoard, Session,
    Strategy, VariantDidNotBoot,
};
use crate::plan::{AgentChannelCfg, BoardFile, FlashCfg, Plan};

pub struct OwnOs;

impl Strategy for OwnOs {
    fn preflight(&self, b: &BoardFile, plan: &Plan) -> anyhow::Result<()> {
        match b.agent {
            AgentChannelCfg::Ssh => {
                if !b.has_ssh() {
                    bail!(
                        "board {}: `agent: ssh` needs an `ssh:` section (host, user, key, known_hosts)",
                        b.name
                    );
                }
                if !matches!(b.flash, Some(FlashCfg::SshDd { .. })) {
                    bail!(
                        "board {}: with the agent over SSH, hilt run writes the plan's image with dd over SSH (flash: {{ssh_dd: {{partition: <name>}}}})",
                        b.name
                    );
                }
            }
            AgentChannelCfg::Adb => {
                b.adb.as_ref().with_context(|| {
                    format!(
                        "board {}: `agent: adb` needs an `adb:` section (serial)",
                        b.name
                    )
                })?;
                if !matches!(b.flash, Some(FlashCfg::AdbDd { .. })) {
                    bail!(
                        "board {}: with the agent over adb, hilt run writes the plan's image with dd over adb (flash: {{adb_dd: {{partition: <name>}}}}); fastboot flashing is `hilt flash`, before the run",
                        b.name
                    );
                }
            }
            _ => bail!(
                "board {}: not a board with the agent over SSH or adb",
                b.name
            ),
        }
        preflight::check_partitions(b, plan)?;
        preflight::refuse_emulator_faults(b, plan, false)
    }

    fn attach(&self, run: RunBoard) -> Box<dyn Board> {
        let flash = FlashJob::for_run(&run);
        Box::new(OwnOsBoard { run, flash })
    }
}

struct OwnOsBoard {
    run: RunBoard,
    flash: Option<FlashJob>,
}

impl Board for OwnOsBoard {
    fn boot(&self, req: &BootRequest<'_>) -> Box<dyn Boot> {
        Box::new(OwnOsBoot {
            board: self.run.board().clone(),
            home: self.run.home(),
            agent: self.run.agent.clone(),
            flash: self.flash.as_ref().map(FlashJob::share),
            agent_log: req.dir.join("agent-stderr.log"),
            variant: req.kernel.variant.clone(),
            kernel_image: req.kernel.image.clone(),
            kernel_release: req.kernel.release.clone(),
            modules_archive: req.kernel.modules_archive.clone(),
            root_initrd: req.kernel.root_initrd.clone(),
            deploy_record: self.run.run_dir.join("deploy.jsonl"),
        })
    }
}

struct OwnOsBoot {
    board: BoardFile,
    /// The directory holding `boards/`, for the power programs' paths.
    home: PathBuf,
    /// The static aarch64 agent on this host.
    agent: PathBuf,
    flash: Option<FlashJob>,
    /// The agent's stderr, kept with the iteration's logs.
    agent_log: PathBuf,
    /// The variant's kernel: what the board must run, and what hilt
    /// installs at the board file's `kernel_path` when it runs another.
    variant: String,
    kernel_image: PathBuf,
    kernel_release: String,
    /// Its modules, which `install:` copies to the board.
    modules_archive: Option<PathBuf>,
    root_initrd: Option<PathBuf>,
    /// Where installs are recorded (the run directory's deploy.jsonl).
    deploy_record: PathBuf,
}

/// What one boot ended in.
enum BootOutcome {
    /// The variant's kernel runs and the agent is talking.
    Ready(tokio::io::DuplexStream),
    /// The variant's kernel was installed; the next boot runs it.
    Installed,
    /// After the install the board did not answer within the boot limit:
    /// the variant's kernel may have failed, and a power cycle lets the
    /// bootloader's fallback act.
    Silent(anyhow::Error),
    /// The bootloader's fallback booted the board's own kernel (what
    /// /proc/version says), and hilt restored the board's boot
    /// configuration.
    FellBack(String),
}

#[async_trait::async_trait]
impl Boot for OwnOsBoot {
    async fn start(self: Box<Self>, boot_limit: Duration) -> anyhow::Result<Session> {
        let image = std::fs::read(&self.kernel_image)
            .with_context(|| format!("reading {}", self.kernel_image.display()))?;
        let banner = hilt_kernels::linux_banner(&image);
        // Every boot's console, in order: a boot that installed the kernel
        // belongs in console.log too.
        let mut heard = Vec::new();
        let mut installed = false;
        // Why the board was power cycled for its fallback, once it was.
        let mut cycled: Option<anyhow::Error> = None;
        loop {
            let (mut power, mut console) =
                resources::power_cycle_to_console(&self.board, &self.home).await?;
            let work = self.boot_once(boot_limit, &image, banner.as_deref(), installed);
            // The console is read while SSH comes up. A variant that panics
            // on its first boot is silent at once: the fallback need not
            // wait out the boot limit.
            let watch_panic = installed && cycled.is_none() && self.has_fallback();
            let stop = |said: &[u8]| watch_panic && crate::console::kernel_panicked(said);
            let result = crate::console::record_until(&mut console, &mut heard, work, stop)
                .await
                .unwrap_or_else(|| {
                    Ok(BootOutcome::Silent(anyhow::anyhow!(
                        "the kernel panicked while booting"
                    )))
                });
            match result {
                Ok(BootOutcome::Ready(stream)) => {
                    return Ok(Session {
                        power,
                        console: Box::new(Replayed::new(heard, console)),
                        agent: AgentLink::Own(Box::new(stream)),
                        warm: None,
                    })
                }
                Ok(BootOutcome::Installed) => {
                    installed = true;
                    power
                        .off()
                        .await
                        .context("powering off to boot the installed kernel")?;
                }
                Ok(BootOutcome::Silent(why)) if cycled.is_none() => {
                    cycled = Some(why);
                    power
                        .off()
                        .await
                        .context("powering off so that the bootloader's fallback can act")?;
                }
                Ok(BootOutcome::Silent(e)) => {
                    let _ = power.off().await;
                    return Err(crate::console::with_console_tail(e, &heard));
                }
                Ok(BootOutcome::FellBack(running)) => {
                    let _ = power.off().await;
                    if let Some(e) = mark_not_saved(&heard, &running) {
                        return Err(e);
                    }
                    let tail = String::from_utf8_lossy(&heard[heard.len().saturating_sub(3000)..])
                        .into_owned();
                    return Err(VariantDidNotBoot(format!(
                        "the variant did not boot: kernel {} of variant {} was installed and made the default, and {}the board's bootloader fell back to its own kernel (\"{running}\"); hilt restored the board's boot configuration\n--- the console said ---\n{tail}",
                        self.kernel_release,
                        self.variant,
                        match &cycled {
                            Some(why) => format!("it did not answer ({why:#}); after a power cycle "),
                            None => String::new(),
                        },
                    ))
                    .into());
                }
                Err(e) => {
                    let _ = power.off().await;
                    return Err(crate::console::with_console_tail(e, &heard));
                }
            }
        }
    }

    fn power_switch(&self) -> Option<Box<dyn Power>> {
        resources::open_power(&self.board, &self.home).ok()
    }

    fn keeps_ramoops(&self) -> bool {
        // Its kernel is its own: hilt does not know where its ramoops is.
        false
    }
}

/// The lab's error when hilt's boot script could not save its mark (it
/// then boots the board's own kernel rather than a variant with no way
/// back): not a result about the variant's kernel.
fn mark_not_saved(heard: &[u8], running: &str) -> Option<anyhow::Error> {
    let at = crate::console::find(heard, MARK_NOT_SAVED.as_bytes())?;
    let said = String::from_utf8_lossy(&heard[at..]);
    let line = said.lines().next().unwrap_or_default();
    Some(anyhow::anyhow!(
        "the variant was not booted: {}, so hilt's boot script booted the board's own kernel (\"{running}\") rather than leave the board with no way back; hilt restored the board's boot configuration. Make U-Boot able to save it: for `fallback: bootcount` a writable environment (saveenv), for `fallback: boot_file` a boot filesystem U-Boot can write (FAT, or ext4 without metadata_csum: `tune2fs -O ^metadata_csum`, as Armbian formats it)",
        line.trim_end().trim_end_matches(": booting the known-good kernel")
    ))
}

impl OwnOsBoot {
    /// One power-on: the agent talking, or the variant's kernel installed
    /// for the next.
    /// Whether the board's bootloader falls back by itself from a variant
    /// that does not boot.
    fn has_fallback(&self) -> bool {
        self.board
            .install
            .as_ref()
            .is_some_and(|i| i.fallback.is_some())
    }

    async fn boot_once(
        &self,
        limit: Duration,
        image: &[u8],
        banner: Option<&str>,
        installed: bool,
    ) -> anyhow::Result<BootOutcome> {
        let b = &self.board;
        let remote = match remote::connect(b, limit).await {
            Ok(r) => r,
            Err(e) if installed && self.has_fallback() => return Ok(BootOutcome::Silent(e)),
            Err(e) => return Err(e),
        };
        let via = remote.via();
        let (is_variants, running) = remote.runs_kernel(banner, &self.kernel_release).await?;
        if !is_variants {
            let want = banner.unwrap_or(&self.kernel_release);
            if let (true, Some(cfg)) = (installed, &b.install) {
                if cfg.fallback.is_some() {
                    let rec = install::restore(&*remote, cfg).await.with_context(|| {
                        format!(
                            "restoring board {}'s boot configuration after its fallback",
                            b.name
                        )
                    })?;
                    crate::durable::append_json_line(
                        &self.deploy_record,
                        &RestoreRecord {
                            board: &b.name,
                            variant: &self.variant,
                            running: &running,
                            restored: rec,
                        },
                    )
                    .context("recording the restore")?;
                    return Ok(BootOutcome::FellBack(running));
                }
            }
            if !installed {
                let (file, also) = self.install(&*remote, image, b, &running, want).await?;
                crate::durable::append_json_line(
                    &self.deploy_record,
                    &InstallRecord {
                        board: &b.name,
                        variant: &self.variant,
                        kernel_release: &self.kernel_release,
                        banner,
                        replaced: &running,
                        file,
                        also,
                    },
                )
                .context("recording the install")?;
                return Ok(BootOutcome::Installed);
            }
            let wrote = match (&b.install, &b.kernel_path) {
                (Some(i), _) => format!(
                    "with `install:` (layout {:?}, boot_dir {})",
                    i.layout, i.boot_dir
                ),
                (None, Some(path)) => format!("at {path}"),
                (None, None) => unreachable!("install() refused a board with neither"),
            };
            bail!(
                "hilt installed the kernel of variant {} {wrote}, and after a power cycle the board still runs \"{running}\", not \"{want}\": does its bootloader read what hilt wrote?",
                self.variant
            );
        }
        if let Some(cfg) = &b.install {
            install::booted(&*remote, cfg).await.with_context(|| {
                format!(
                    "telling board {}'s bootloader that the variant booted",
                    b.name
                )
            })?;
        }
        let scratch = remote.scratch();
        if let Some(job) = FlashJob::pending(self.flash.as_ref()) {
            let partition = match &b.flash {
                Some(FlashCfg::SshDd { partition } | FlashCfg::AdbDd { partition }) => partition,
                _ => bail!("board {}: no ssh_dd or adb_dd flash method", b.name),
            };
            let device = b.partitions.get(partition).with_context(|| {
                format!(
                    "board {}: partition {partition:?} is not in `partitions:`",
                    b.name
                )
            })?;
            let image = job.read_image()?;
            let rec = DdFlasher {
                shell: remote.shell(),
                device: device.clone(),
                staging: format!("{scratch}/hilt-flash.img"),
                limit: Duration::from_secs(600),
            }
            .flash(&image)
            .await
            .with_context(|| format!("writing the plan's image over {via}"))?;
            job.finished(&rec)?;
        }
        let stream = remote.start_agent(&self.agent, &self.agent_log).await?;
        Ok(BootOutcome::Ready(stream))
    }
}

impl OwnOsBoot {
    /// Puts the variant's kernel where the board's bootloader finds it:
    /// completely (`install:`), or its Image alone (`kernel_path`).
    async fn install(
        &self,
        remote: &(dyn remote::Remote + 'static),
        image: &[u8],
        b: &BoardFile,
        running: &str,
        want: &str,
    ) -> anyhow::Result<(deploy::DeployedFile, Vec<deploy::DeployedFile>)> {
        let via = remote.via();
        if let Some(cfg) = &b.install {
            let w = install::install(
                remote,
                cfg,
                &install::VariantKernel {
                    variant: &self.variant,
                    release: &self.kernel_release,
                    image,
                    modules_archive: self
                        .modules_archive
                        .as_deref()
                        .context("no modules were packed for this board's `install:`")?,
                    root_initrd: self.root_initrd.as_deref(),
                },
            )
            .await
            .with_context(|| format!("installing the kernel of {} over {via}", self.variant))?;
            return Ok((w.kernel, w.others));
        }
        let Some(path) = &b.kernel_path else {
            bail!(
                "the board runs \"{running}\", and variant {} is \"{want}\": give board {name} an `install:` section (layout: extlinux, boot_scr or armbian) so that hilt installs the kernel with its modules, or set `kernel_path` in board {name} (the file its bootloader loads) for the Image alone, or install it yourself (on Android: hilt deploy flashes a boot image with fastboot) and run again",
                self.variant,
                name = b.name
            );
        };
        let rec = deploy::install(remote.shell(), path, image)
            .await
            .with_context(|| {
                format!(
                    "installing the kernel of {} at {path} over {via}",
                    self.variant
                )
            })?;
        Ok((rec, Vec::new()))
    }
}

/// The board's own boot configuration put back after its bootloader fell
/// back from a variant that did not boot, a line of deploy.jsonl.
#[derive(serde::Serialize)]
struct RestoreRecord<'a> {
    board: &'a str,
    variant: &'a str,
    /// What /proc/version said: the board's own kernel.
    running: &'a str,
    restored: deploy::DeployedFile,
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
    /// The kernel.
    file: deploy::DeployedFile,
    /// What a complete install wrote besides: the modules (as the archive
    /// pushed), the boot configuration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also: Vec<deploy::DeployedFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_u_boot_could_not_save_is_the_labs_error_and_says_what_to_change() {
        let heard = format!(
            "Unsupported feature metadata_csum found, not writing.\r\n{MARK_NOT_SAVED}: booting the known-good kernel\r\nStarting kernel ...\r\n"
        );
        let e = mark_not_saved(heard.as_bytes(), "Linux version 6.1.0-44-arm64")
            .unwrap()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "the variant was not booted: {MARK_NOT_SAVED}, so "
            )),
            "{e}"
        );
        assert!(e.contains("(\"Linux version 6.1.0-44-arm64\")"), "{e}");
        assert!(e.contains("tune2fs -O ^metadata_csum"), "{e}");
        assert!(mark_not_saved(b"hilt: variant p did not come up", "x").is_none());
    }
}
