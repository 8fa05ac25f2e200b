//! A board on the bench booted the way LAVA boots a ramdisk: power from its
//! controller (a hub port, a relay, a PDU command), the console from its
//! UART (local or behind ser2net), and U-Boot over TFTP.
//!
//! Each boot: power off, open the console, power on, stop autoboot, write
//! the plan's image to the board's storage partition on the run's first
//! boot, fetch the variant's kernel and hilt's initramfs, `booti`. The
//! agent then shares the console with printk (`hilt.agent_port=console`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context};
use hilt_transports::uboot::{TftpBoot, UBoot};

use crate::board::preflight;
use crate::board::storage::FlashJob;
use crate::board::{
    resources, uboot, AgentLink, Board, Boot, BootRequest, Power, RunBoard, Session, Strategy,
    WarmReset,
};
use crate::console::Console;
use crate::plan::{AgentChannelCfg, BenchBootCfg, BoardFile, Plan, UbootTftpCfg};

mod card;
mod warm;

use warm::{cmdline, reset_after};

pub struct UbootTftp;

impl Strategy for UbootTftp {
    fn preflight(&self, b: &BoardFile, plan: &Plan) -> anyhow::Result<()> {
        let tftp = tftp_cfg(b)?;
        if let Some(serve) = &tftp.serve {
            // Every boot would fail on it: say so before the run starts.
            let ip: std::net::IpAddr = serve.address.parse()?;
            std::net::UdpSocket::bind((ip, serve.port)).map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    "ports below 1024 need root, or `setcap cap_net_bind_service=+ep` on hilt"
                } else {
                    "is another TFTP server (or another run) using it?"
                };
                anyhow::anyhow!(
                    "board {}: hilt cannot serve TFTP on {ip} port {} ({e}): {why}",
                    b.name,
                    serve.port
                )
            })?;
        }
        if !matches!(b.agent, AgentChannelCfg::Console) {
            bail!(
                "board {}: a ramdisk boot has only the console for the agent; set `agent: console`",
                b.name
            );
        }
        uboot::config(b, Duration::ZERO)?;
        uboot::flash_target(b)?;
        preflight::check_partitions(b, plan)?;
        preflight::refuse_zram_existing(b, plan)?;
        preflight::refuse_emulator_faults(b, plan, true)
    }

    fn attach(&self, run: RunBoard) -> Box<dyn Board> {
        let flash = FlashJob::for_run(&run);
        Box::new(BenchBoard {
            run,
            flash,
            left_on: Arc::new(AtomicBool::new(false)),
            card: Arc::new(OnceLock::new()),
        })
    }
}

fn tftp_cfg(b: &BoardFile) -> anyhow::Result<&UbootTftpCfg> {
    match &b.boot {
        Some(BenchBootCfg::UbootTftp(t)) => Ok(t),
        _ => bail!(
            "board {}: hilt run boots a board on the bench through U-Boot and TFTP, and its file has no `boot:` (boot: {{uboot_tftp: {{root: /srv/tftp}}}}); \
             a board that boots its own Linux or Android takes `agent: ssh` or `agent: adb` instead",
            b.name
        ),
    }
}

struct BenchBoard {
    run: RunBoard,
    flash: Option<FlashJob>,
    /// The last boot left the board on, to reset itself warm (ramoops).
    left_on: Arc<AtomicBool>,
    /// Whether U-Boot's `mmc` device and Linux's disk are one card, once
    /// the identification boot has said.
    card: Arc<OnceLock<Result<(), String>>>,
}

impl Board for BenchBoard {
    fn boot(&self, req: &BootRequest<'_>) -> Box<dyn Boot> {
        let reset_after = reset_after(&self.run.plan.plan);
        Box::new(RamdiskBoot {
            board: self.run.board().clone(),
            home: self.run.home(),
            kernel: req.kernel.image.clone(),
            initrd: req.kernel.initramfs.clone(),
            append: cmdline(self.run.board(), reset_after),
            flash: self.flash.as_ref().map(FlashJob::share),
            tftp_record: self.run.run_dir.join("tftp.jsonl"),
            warm_record: self.run.run_dir.join("warm_reset.jsonl"),
            left_on: self.left_on.clone(),
            card: self.card.clone(),
            reset_after,
        })
    }

    fn left_on(&self) -> Option<Box<dyn Power>> {
        if !self.left_on.swap(false, Ordering::Relaxed) {
            return None;
        }
        resources::open_power(self.run.board(), &self.run.home()).ok()
    }
}

struct RamdiskBoot {
    board: BoardFile,
    home: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    /// The kernel command line.
    append: String,
    flash: Option<FlashJob>,
    /// Where the transfers of hilt's own TFTP server are recorded (the run
    /// directory's tftp.jsonl).
    tftp_record: PathBuf,
    /// Where each boot that met a board left on is recorded (the run
    /// directory's warm_reset.jsonl).
    warm_record: PathBuf,
    /// Shared by the board's boots: the previous one left it on.
    left_on: Arc<AtomicBool>,
    /// Shared by the board's boots: what the identification boot found.
    card: Arc<OnceLock<Result<(), String>>>,
    /// The kernel's panic= delay on a board with ramoops.
    reset_after: Duration,
}

/// One transfer of hilt's TFTP server, a line of the run's tftp.jsonl.
#[derive(serde::Serialize)]
struct TftpRecord<'a> {
    board: &'a str,
    peer: String,
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[async_trait::async_trait]
impl Boot for RamdiskBoot {
    async fn start(self: Box<Self>, boot_limit: Duration) -> anyhow::Result<Session> {
        let tftp = tftp_cfg(&self.board)?;
        let files = self.stage_tftp(tftp)?;
        // Served for this boot's U-Boot steps only: once booti is typed,
        // everything the board fetches is in its RAM.
        let server = resources::serve_tftp(tftp, &self.home)?;
        self.check_card(tftp, &files, boot_limit)
            .await
            .map_err(|e| match uboot::server_said(server.as_ref(), tftp) {
                served if served.is_empty() => e,
                served => anyhow::anyhow!("{e:#}{served}"),
            })?;
        let warm = match self.left_on.swap(false, Ordering::Relaxed) {
            true => self.meet_warm_reset(tftp, &files, boot_limit).await?,
            false => None,
        };
        let (mut power, booted) = match warm {
            Some((power, console)) => (power, Ok(console)),
            None => {
                let (power, console) =
                    resources::power_cycle_to_console(&self.board, &self.home).await?;
                (power, self.uboot(console, tftp, &files, boot_limit).await)
            }
        };
        let booted = booted.map_err(|e| match uboot::server_said(server.as_ref(), tftp) {
            served if served.is_empty() => e,
            served => anyhow::anyhow!("{e:#}{served}"),
        });
        if let Some(server) = server {
            drop_and_record(server, &self.board.name, &self.tftp_record)?;
        }
        match booted {
            Ok(console) => Ok(Session {
                power,
                console,
                agent: AgentLink::Console,
                warm: self
                    .board
                    .ramoops
                    .is_some()
                    .then(|| WarmReset::new(self.left_on.clone())),
            }),
            Err(e) => {
                let _ = power.off().await;
                Err(e)
            }
        }
    }

    fn power_switch(&self) -> Option<Box<dyn Power>> {
        resources::open_power(&self.board, &self.home).ok()
    }

    fn keeps_ramoops(&self) -> bool {
        self.board.ramoops.is_some()
    }
}

/// Stops the server (its transfers end with it) and records what it served.
fn drop_and_record(server: hilt_tftpd::Server, board: &str, record: &Path) -> anyhow::Result<()> {
    let served = server.transfers();
    drop(server);
    for t in &served {
        crate::durable::append_json_line(
            record,
            &TftpRecord {
                board,
                peer: t.peer.to_string(),
                file: &t.file,
                bytes: t.outcome.as_ref().ok().copied(),
                error: t.outcome.as_ref().err().map(String::as_str),
            },
        )?;
    }
    Ok(())
}

#[derive(Clone)]
struct TftpFiles {
    kernel: String,
    initrd: String,
    dtb: Option<String>,
    /// The TFTP root, where the flasher puts its image file.
    root: PathBuf,
}

impl RamdiskBoot {
    /// Puts the kernel (and device tree) and initramfs in the board's own
    /// directory of the TFTP root; returns their names relative to it.
    fn stage_tftp(&self, cfg: &UbootTftpCfg) -> anyhow::Result<TftpFiles> {
        let sub = format!("hilt-{}", self.board.name);
        let root = resources::tftp_root(cfg, &self.home);
        let dir = root.join(&sub);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating {} in the TFTP root", dir.display()))?;
        let put = |name: &str, from: &Path| -> anyhow::Result<String> {
            // A copy, not a link: TFTP servers confine reads to their root.
            std::fs::copy(from, dir.join(name))
                .with_context(|| format!("copying {} to {}", from.display(), dir.display()))?;
            Ok(format!("{sub}/{name}"))
        };
        Ok(TftpFiles {
            kernel: put("Image", &self.kernel)?,
            initrd: put("initrd", &self.initrd)?,
            dtb: cfg
                .dtb
                .as_deref()
                .map(|d| put("board.dtb", &self.home.join(resources::expand_home(d))))
                .transpose()?,
            root,
        })
    }

    async fn uboot(
        &self,
        console: Box<dyn Console>,
        cfg: &UbootTftpCfg,
        files: &TftpFiles,
        limit: Duration,
    ) -> anyhow::Result<Box<dyn Console>> {
        let ucfg = uboot::config(&self.board, limit)?;
        let boot = self.tftp_boot(cfg, files);
        let flash = match FlashJob::pending(self.flash.as_ref()) {
            Some(job) => Some((job, uboot::flash_target(&self.board)?)),
            None => None,
        };
        let mut u = UBoot::new(console, ucfg);
        let step = async {
            u.stop_autoboot().await?;
            uboot::point_at_server(&mut u, cfg).await?;
            uboot::load_addresses(&mut u, &self.board, needed(&boot)).await?;
            if let Some((job, target)) = flash {
                u.net_up(&boot.network, limit).await?;
                let image = job.read_image()?;
                let rec = uboot::write_image(&mut u, &self.board.name, &image, target, &files.root)
                    .await?;
                job.finished(&rec)?;
            }
            u.tftp_boot(&boot, limit).await?;
            anyhow::Ok(())
        }
        .await;
        uboot::console_after(u, step)
    }

    fn tftp_boot(&self, cfg: &UbootTftpCfg, files: &TftpFiles) -> TftpBoot {
        TftpBoot {
            network: uboot::network(cfg),
            kernel: files.kernel.clone(),
            initrd: Some(files.initrd.clone()),
            dtb: files.dtb.clone(),
            bootargs: self.append.clone(),
            reserve: self.reserved(),
        }
    }
}

/// The load addresses a boot uses.
fn needed(boot: &TftpBoot) -> &'static [&'static str] {
    if boot.dtb.is_some() || !boot.reserve.is_empty() {
        &["kernel_addr_r", "ramdisk_addr_r", "fdt_addr_r"]
    } else {
        &["kernel_addr_r", "ramdisk_addr_r"]
    }
}
