//! A board on the bench: power from its controller (a hub port, a relay, a
//! PDU command), the console from its UART (local or behind ser2net), and
//! a boot through U-Boot over TFTP, the way LAVA boots a ramdisk.
//!
//! The strategy is the same for every such board: power off, open the
//! console, power on, stop autoboot, write the plan's image to the board's
//! storage partition on the run's first boot, fetch the variant's kernel
//! and hilt's initramfs, `booti`. The agent then shares the console with
//! printk (`hilt.agent_port=console`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hilt_transports::console::{
    Rfc2217Console, SerialConfig, SerialConsole, TcpConsole, TelnetConsole,
};
use hilt_transports::flash::{FlashImage, Flasher, UBootFlasher};
use hilt_transports::power::{CommandPower, CommandPowerConfig, UsbRelay};
use hilt_transports::uboot::{BlockInterface, Network, TftpBoot, UBoot, UBootConfig};

use super::{AgentLink, Power, Session};
use crate::artifacts::media::PartitionImage;
use crate::console::Console;
use crate::plan::{
    AgentChannelCfg, BenchBootCfg, BoardFile, ConsoleCfg, FaultKind, FlashCfg, Plan, PowerCfg,
    Ser2netProtocol, SwapCfg, UbootTftpCfg,
};

/// How long a board stays off before it is powered on again: long enough
/// for its supply rails to drain, so that it really resets.
const OFF_TIME: Duration = Duration::from_secs(2);

/// The plan's image, written to the board's storage once per run.
pub struct FlashJob {
    pub image: PartitionImage,
    /// Set once the image is on the board and read back intact.
    pub done: Arc<AtomicBool>,
    /// Where the flash record is appended (the run directory's flash.jsonl).
    pub record: PathBuf,
}

pub struct Bringup {
    pub board: BoardFile,
    /// The directory holding `boards/`: relative paths in the board file
    /// (power programs, the TFTP root, a device tree) are relative to it.
    pub home: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The kernel command line.
    pub append: String,
    pub flash: Option<FlashJob>,
    /// The board's kernel keeps a ramoops region across power cycles.
    pub ramoops: bool,
}

/// The kernel command line's console= for a board on the bench, and how
/// its agent reaches the host.
pub fn cmdline(board: &BoardFile) -> String {
    let console = board.kernel_console.as_deref().unwrap_or("ttyAML0,115200");
    // panic=0: a board that rebooted by itself would run its own autoboot
    // into the evidence window; the host power-cycles it instead.
    format!("console={console} hilt.agent_port=console panic=0")
}

/// Whether `hilt run` can drive this board with this plan, checked before
/// a run leases it or builds anything; the error says what is missing.
pub fn preflight<'a>(b: &'a BoardFile, plan: &Plan) -> anyhow::Result<&'a UbootTftpCfg> {
    let Some(BenchBootCfg::UbootTftp(tftp)) = &b.boot else {
        bail!(
            "board {}: hilt run boots a board on the bench through U-Boot and TFTP, and its file has no `boot:` (boot: {{uboot_tftp: {{root: /srv/tftp}}}}); \
             a board that boots its own Linux or Android, with the agent over SSH or adb, is not supported by hilt run yet",
            b.name
        );
    };
    if !matches!(b.agent, AgentChannelCfg::Console) {
        bail!(
            "board {}: a ramdisk boot has only the console for the agent; set `agent: console`",
            b.name
        );
    }
    uboot_config(b, Duration::ZERO)?;
    flash_target(b)?;
    check_storage(b, plan)?;
    for f in &plan.faults {
        match f.kind {
            FaultKind::PowerLoss => bail!(
                "board {}: the power_loss fault kills QEMU, and a bench board's switch is a command: run that fault on an emulated board",
                b.name
            ),
            FaultKind::ConsoleClose => bail!(
                "board {}: closing the console would also close the agent's channel on a shared UART, so console_close tests nothing here: run it on an emulated board",
                b.name
            ),
            _ => {}
        }
    }
    Ok(tftp)
}

/// A board outside QEMU gets the plan's image on a partition of its own,
/// and swap on another when the plan wants swap on a disk.
pub fn check_storage(b: &BoardFile, plan: &Plan) -> anyhow::Result<()> {
    let storage = b.storage.as_ref().with_context(|| {
        format!(
            "board {} has no `storage:`: name the partition that receives the plan's image (storage: {{image: data}})",
            b.name
        )
    })?;
    let disk_swap = matches!(plan.swap, SwapCfg::Disk { .. } | SwapCfg::Sdcard { .. });
    if storage.swap.is_none() && (disk_swap || !plan.controls.is_empty()) {
        bail!(
            "board {}: the plan {} swap on a disk, and the board names no swap partition (storage: {{swap: <partition>}})",
            b.name,
            if disk_swap { "puts" } else { "has a positive control, which freezes" }
        );
    }
    Ok(())
}

impl Bringup {
    pub async fn start(self: Box<Self>, boot_limit: Duration) -> anyhow::Result<Session> {
        let b = &self.board;
        let tftp = match &b.boot {
            Some(BenchBootCfg::UbootTftp(t)) => t,
            None => bail!("board {}: no `boot:` section", b.name),
        };
        let files = self.stage_tftp(tftp)?;
        let (mut power, console) = power_cycle_to_console(b, &self.home).await?;
        match self.uboot(console, tftp, files, boot_limit).await {
            Ok(console) => Ok(Session {
                power,
                console,
                agent: AgentLink::Console,
            }),
            Err(e) => {
                let _ = power.off().await;
                Err(e)
            }
        }
    }

    /// Puts the kernel (and device tree) and initramfs in the board's own
    /// directory of the TFTP root; returns their names relative to it.
    fn stage_tftp(&self, cfg: &UbootTftpCfg) -> anyhow::Result<TftpFiles> {
        let sub = format!("hilt-{}", self.board.name);
        let root = tftp_root(cfg, &self.home);
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
                .map(|d| put("board.dtb", &self.home.join(super::doctor::expand(d))))
                .transpose()?,
            root,
        })
    }

    async fn uboot(
        &self,
        console: Box<dyn Console>,
        cfg: &UbootTftpCfg,
        files: TftpFiles,
        limit: Duration,
    ) -> anyhow::Result<Box<dyn Console>> {
        let ucfg = uboot_config(&self.board, limit)?;
        let network = network(cfg);
        let boot = TftpBoot {
            network,
            kernel: files.kernel,
            initrd: Some(files.initrd),
            dtb: files.dtb,
            bootargs: self.append.clone(),
        };
        let flash = match self
            .flash
            .as_ref()
            .filter(|f| !f.done.load(Ordering::Relaxed))
        {
            Some(job) => Some((job, flash_target(&self.board)?)),
            None => None,
        };
        let mut u = UBoot::new(console, ucfg);
        let step = async {
            u.stop_autoboot().await?;
            if let Some((job, target)) = flash {
                u.net_up(&boot.network, limit).await?;
                let image =
                    FlashImage::from_file(&job.image.path, job.image.verity_root_hash.clone())
                        .with_context(|| format!("reading {}", job.image.path.display()))?;
                let rec =
                    flash_from_uboot(&mut u, &self.board.name, &image, target, &files.root).await?;
                super::flash::append_record(&job.record, &rec)?;
                job.done.store(true, Ordering::Relaxed);
            }
            u.tftp_boot(&boot, limit).await?;
            anyhow::Ok(())
        }
        .await;
        handed_on(u, step)
    }
}

struct TftpFiles {
    kernel: String,
    initrd: String,
    dtb: Option<String>,
    /// The TFTP root, where the flasher puts its image file.
    root: PathBuf,
}

/// Writes an image from U-Boot: TFTP into RAM, a block write, and a
/// read-back compared by CRC32.
async fn flash_from_uboot<C: Console>(
    u: &mut UBoot<C>,
    board: &str,
    image: &FlashImage,
    target: UbootTarget,
    tftp_root: &Path,
) -> anyhow::Result<hilt_transports::flash::FlashRecord> {
    UBootFlasher {
        uboot: u,
        tftp_root: tftp_root.to_path_buf(),
        tftp_subdir: Some(format!("hilt-{board}")),
        interface: target.interface,
        dev: target.dev,
        start_block: target.start_block,
        partition: target.partition,
        limit: Duration::from_secs(600),
    }
    .flash(image)
    .await
    .context("writing the image to the board from U-Boot")
}

/// `hilt flash` on a U-Boot board: power cycle, stop autoboot, write the
/// image, power off.
pub async fn flash_via_uboot(
    b: &BoardFile,
    home: &Path,
    image: &FlashImage,
) -> anyhow::Result<hilt_transports::flash::FlashRecord> {
    let Some(BenchBootCfg::UbootTftp(tftp)) = &b.boot else {
        bail!(
            "board {}: U-Boot fetches the image over TFTP, and the board file has no TFTP root (boot: {{uboot_tftp: {{root: /srv/tftp}}}})",
            b.name
        );
    };
    let target = flash_target(b)?;
    let limit = Duration::from_secs(120);
    let root = tftp_root(tftp, home);
    let (mut power, console) = power_cycle_to_console(b, home).await?;
    let mut u = UBoot::new(console, uboot_config(b, limit)?);
    let result = async {
        u.stop_autoboot().await?;
        u.net_up(&network(tftp), limit).await?;
        flash_from_uboot(&mut u, &b.name, image, target, &root).await
    }
    .await;
    let _ = power.off().await;
    result.map_err(|e| {
        let tail = said_last(&u);
        e.context(format!("--- U-Boot said ---\n{tail}"))
    })
}

/// Powers the board off, then on, with its console open from as early as
/// it can be: a ser2net port or a UART is there before the board is, and
/// opened first misses nothing; a console that only exists while the board
/// is powered is opened as soon as it appears.
pub(super) async fn power_cycle_to_console(
    b: &BoardFile,
    home: &Path,
) -> anyhow::Result<(Box<dyn Power>, Box<dyn Console>)> {
    let mut power = open_power(b, home)?;
    // Whatever the board was doing, it starts from off.
    power.off().await.context("powering the board off first")?;
    tokio::time::sleep(OFF_TIME).await;
    let early = open_console(b, Duration::from_secs(5)).await;
    if let Err(e) = power.on().await {
        // A command that timed out may still have switched the board on.
        let _ = power.off().await;
        return Err(e.context("powering the board on"));
    }
    let console = match early {
        Ok(c) => Ok(c),
        Err(_) => open_console_retrying(b, Duration::from_secs(15)).await,
    };
    match console {
        Ok(c) => Ok((power, c)),
        Err(e) => {
            let _ = power.off().await;
            Err(e)
        }
    }
}

fn uboot_config(b: &BoardFile, limit: Duration) -> anyhow::Result<UBootConfig> {
    let u = b
        .uboot
        .as_ref()
        .with_context(|| format!("board {}: a U-Boot board needs `uboot:`", b.name))?;
    Ok(UBootConfig {
        prompt: u.prompt.clone(),
        interrupt: u.interrupt.clone(),
        autoboot_patterns: vec![u.autoboot_text.clone()],
        stop_timeout: limit,
        command_timeout: Duration::from_secs(30).min(limit),
        ..Default::default()
    })
}

fn network(cfg: &UbootTftpCfg) -> Network {
    match (&cfg.ipaddr, &cfg.serverip) {
        (Some(ip), Some(server)) => Network::Static {
            ipaddr: ip.clone(),
            netmask: cfg
                .netmask
                .clone()
                .unwrap_or_else(|| "255.255.255.0".into()),
            serverip: server.clone(),
        },
        _ => Network::Dhcp {
            serverip: cfg.serverip.clone(),
        },
    }
}

/// Where U-Boot writes an image: the board file's device and block, and the
/// partition that block should start (when the board file names the
/// storage partition), which U-Boot's partition table must confirm.
#[derive(Debug, Clone, Copy, PartialEq)]
struct UbootTarget {
    interface: BlockInterface,
    dev: u32,
    start_block: u64,
    partition: Option<u32>,
}

fn flash_target(b: &BoardFile) -> anyhow::Result<UbootTarget> {
    let partition = b
        .storage
        .as_ref()
        .and_then(|s| b.partitions.get(&s.image))
        .and_then(|node| partition_number(node));
    match &b.flash {
        Some(FlashCfg::UbootMmc {
            mmc_dev,
            start_block,
        }) => Ok(UbootTarget {
            interface: BlockInterface::Mmc,
            dev: *mmc_dev,
            start_block: *start_block,
            partition,
        }),
        Some(FlashCfg::UbootBlock {
            interface,
            dev,
            start_block,
        }) => Ok(UbootTarget {
            interface: *interface,
            dev: *dev,
            start_block: *start_block,
            partition,
        }),
        _ => bail!(
            "board {}: hilt run writes the image from U-Boot (flash: uboot_mmc or uboot_block); \
             with another flash method, write it first with `hilt flash {0} IMAGE` and run again",
            b.name
        ),
    }
}

/// The partition number in a Linux partition node's name (`/dev/mmcblk1p2`,
/// `/dev/nvme0n1p3`, `/dev/sda2`, `/dev/vda1`), which is also its number in
/// U-Boot's `part` commands. None for a whole disk or any other name.
fn partition_number(node: &str) -> Option<u32> {
    let name = node.rsplit('/').next()?;
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = name.split_at(name.len() - digits);
    let n: u32 = number.parse().ok().filter(|n| *n > 0)?;
    let whole_disk_stem = |s: &str| {
        ["sd", "vd", "hd", "xvd"].iter().any(|p| {
            s.strip_prefix(p)
                .is_some_and(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_lowercase()))
        })
    };
    match stem.strip_suffix('p') {
        // mmcblk0p2, nvme0n1p2: the disk's own name ends in a digit.
        Some(disk) if disk.ends_with(|c: char| c.is_ascii_digit()) => Some(n),
        _ if whole_disk_stem(stem) => Some(n),
        _ => None,
    }
}

/// After U-Boot's part of a boot: the console handed on with U-Boot's
/// whole dialogue replayed first, so the capture (and console.log) holds
/// the boot from the firmware's first byte; or, when a step failed, an
/// error that ends with what U-Boot last said.
pub fn handed_on<C: Console + 'static>(
    u: UBoot<C>,
    step: anyhow::Result<()>,
) -> anyhow::Result<Box<dyn Console>> {
    if let Err(e) = step {
        let tail = said_last(&u);
        bail!("booting through U-Boot: {e:#}\n--- U-Boot said ---\n{tail}");
    }
    let head = u.transcript().to_vec();
    Ok(Box::new(hilt_transports::console::Replayed::new(
        head,
        u.into_console(),
    )))
}

/// The end of U-Boot's dialogue, for an error: usually its own complaint.
fn said_last<C: Console>(u: &UBoot<C>) -> String {
    let t = u.transcript();
    String::from_utf8_lossy(&t[t.len().saturating_sub(600)..]).into_owned()
}

/// The board's TFTP root on this host: relative to the checkout, like the
/// board file's other paths.
pub fn tftp_root(cfg: &UbootTftpCfg, home: &Path) -> PathBuf {
    home.join(super::doctor::expand(&cfg.root))
}

/// A program named by a relative path (`scripts/bench-board`) is the
/// checkout's; a bare name (`uhubctl`) is looked up on PATH.
pub fn resolve_program(argv: &[String], home: &Path) -> Vec<String> {
    let mut v = argv.to_vec();
    if let Some(p) = v.first_mut() {
        if p.contains('/') && Path::new(p.as_str()).is_relative() {
            *p = home.join(&*p).display().to_string();
        }
    }
    v
}

pub fn open_power(b: &BoardFile, home: &Path) -> anyhow::Result<Box<dyn Power>> {
    match &b.power {
        PowerCfg::Command { on, off, cycle } => {
            let cfg = CommandPowerConfig {
                on: resolve_program(on, home),
                off: resolve_program(off, home),
                cycle: cycle.as_deref().map(|c| resolve_program(c, home)),
                timeout_s: 30,
                off_s: OFF_TIME.as_secs(),
            };
            let vars = BTreeMap::from([("board".to_string(), b.name.clone())]);
            Ok(Box::new(CommandPower::new(&cfg, &vars)?))
        }
        PowerCfg::UsbRelay { serial, relay } => {
            Ok(Box::new(UsbRelay::open(serial.as_deref(), *relay, false)?))
        }
        PowerCfg::Qemu => bail!("board {}: QEMU power belongs to an emulated board", b.name),
    }
}

pub async fn open_console(b: &BoardFile, limit: Duration) -> anyhow::Result<Box<dyn Console>> {
    Ok(match &b.console {
        ConsoleCfg::Serial { device, line } => {
            let mut cfg = SerialConfig::new(device);
            cfg.line = line
                .parse()
                .map_err(|e| anyhow::anyhow!("console line {line:?}: {e}"))?;
            Box::new(SerialConsole::open(cfg).with_context(|| format!("opening {device}"))?)
        }
        ConsoleCfg::Ser2net {
            host,
            port,
            protocol,
        } => {
            let addr = format!("{host}:{port}");
            match protocol {
                Ser2netProtocol::Telnet => {
                    Box::new(TelnetConsole::new(TcpConsole::connect(&addr, limit).await?))
                }
                Ser2netProtocol::Raw => Box::new(TcpConsole::connect(&addr, limit).await?),
                Ser2netProtocol::Rfc2217 => {
                    Box::new(Rfc2217Console::connect(&addr, None, limit).await?)
                }
            }
        }
        ConsoleCfg::QemuTelnet | ConsoleCfg::QemuPty => {
            bail!(
                "board {}: a QEMU console belongs to an emulated board",
                b.name
            )
        }
    })
}

async fn open_console_retrying(b: &BoardFile, limit: Duration) -> anyhow::Result<Box<dyn Console>> {
    let t0 = Instant::now();
    loop {
        match open_console(b, Duration::from_secs(2)).await {
            Ok(c) => return Ok(c),
            Err(e) if t0.elapsed() >= limit => {
                return Err(e.context(format!(
                    "the console did not open within {} s of power on",
                    limit.as_secs()
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::partition_number;

    #[test]
    fn partition_numbers_come_from_linux_node_names() {
        for (node, want) in [
            ("/dev/mmcblk1p2", Some(2)),
            ("/dev/nvme0n1p13", Some(13)),
            ("/dev/sda2", Some(2)),
            ("/dev/vda1", Some(1)),
            ("/dev/xvdb3", Some(3)),
            ("/dev/mmcblk0", None),
            ("/dev/nvme0n1", None),
            ("/dev/sda", None),
            ("/dev/loop0", None),
            ("/dev/disk/by-partlabel/data", None),
            ("/dev/vda0", None),
        ] {
            assert_eq!(partition_number(node), want, "{node}");
        }
    }
}
