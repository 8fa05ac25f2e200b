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
use hilt_transports::uboot::{BlockInterface, Reserved, TftpBoot, UBoot};

use crate::board::mmc_identity::{self, UbootCard};
use crate::board::preflight;
use crate::board::storage::FlashJob;
use crate::board::{
    resources, uboot, AgentLink, Board, Boot, BootRequest, Power, RunBoard, Session, Strategy,
    WarmReset,
};
use crate::console::Console;
use crate::plan::{
    AgentChannelCfg, BenchBootCfg, BoardFile, Plan, RamoopsCfg, RamoopsReserve, UbootTftpCfg,
};

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

/// The kernel command line's console= for a board on the bench, how its
/// agent reaches the host, and its ramoops region.
fn cmdline(board: &BoardFile, reset_after: Duration) -> String {
    let console = board.kernel_console.as_deref().unwrap_or("ttyAML0,115200");
    let base = format!("console={console} hilt.agent_port=console loglevel=4");
    match board.ramoops.as_ref().and_then(RamoopsCfg::numbers) {
        // panic=0: a board that rebooted by itself would run its own
        // autoboot into the evidence window; the host power-cycles it.
        None => format!("{base} panic=0"),
        // With ramoops the reset must be warm, which only the board itself
        // can do after a panic: late enough that the host has finished the
        // iteration and waits for U-Boot on the console.
        Some((address, size, record)) => format!(
            "{base} panic={} ramoops.mem_address={address:#x} ramoops.mem_size={size:#x} ramoops.record_size={record:#x} ramoops.max_reason=2",
            reset_after.as_secs()
        ),
    }
}

/// How long after a panic a board with ramoops resets itself: the evidence
/// window, the end of the iteration and the start of the next boot fit in
/// it.
fn reset_after(plan: &Plan) -> Duration {
    Duration::from_secs(plan.watch.evidence_s + 20)
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

/// A boot that met a board left on after a panic, a line of the run's
/// warm_reset.jsonl: whether U-Boot came back by itself (RAM kept) or the
/// board had to be power-cycled (the previous boot's ramoops log is lost).
#[derive(serde::Serialize)]
struct WarmRecord<'a> {
    board: &'a str,
    met_uboot: bool,
    waited_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
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

impl RamdiskBoot {
    /// The previous boot left the board on after a panic: with the console
    /// open and no power cut, waits for the kernel's panic= delay to reset
    /// it into U-Boot, and boots from there. None when U-Boot did not come
    /// (or failed): the boot then starts over from a power cycle, and
    /// warm_reset.jsonl says why the previous boot's log is lost.
    async fn meet_warm_reset(
        &self,
        tftp: &UbootTftpCfg,
        files: &TftpFiles,
        boot_limit: Duration,
    ) -> anyhow::Result<Option<(Box<dyn Power>, Box<dyn Console>)>> {
        let t0 = std::time::Instant::now();
        let met = async {
            let power = resources::open_power(&self.board, &self.home)?;
            let console = resources::open_console(&self.board, Duration::from_secs(5)).await?;
            let console = self
                .uboot(console, tftp, files, boot_limit + self.reset_after)
                .await?;
            anyhow::Ok((power, console))
        }
        .await;
        let waited_ms = t0.elapsed().as_millis() as u64;
        match met {
            Ok((power, console)) => {
                self.record_warm(true, waited_ms, None)?;
                Ok(Some((power, console)))
            }
            Err(e) => {
                self.record_warm(false, waited_ms, Some(format!("{e:#}")))?;
                Ok(None)
            }
        }
    }

    /// Before the run's first write to an SD card or eMMC: one boot that
    /// writes nothing, where U-Boot's `mmc info` of the board file's
    /// `mmc_dev` and the agent's report of Linux's cards are compared (see
    /// [`mmc_identity`]). A mismatch fails this boot and every later one
    /// of the run, without powering the board again.
    async fn check_card(
        &self,
        tftp: &UbootTftpCfg,
        files: &TftpFiles,
        limit: Duration,
    ) -> anyhow::Result<()> {
        if let Some(found) = self.card.get() {
            return found.clone().map_err(anyhow::Error::msg);
        }
        if FlashJob::pending(self.flash.as_ref()).is_none() {
            return Ok(());
        }
        let Some((dev, ..)) = mmc_identity::pairing(&self.board) else {
            return Ok(());
        };
        let (mut power, console) =
            resources::power_cycle_to_console(&self.board, &self.home).await?;
        let seen = self.identify(console, tftp, files, dev, limit).await;
        let _ = power.off().await;
        let (uboot, linux) = seen.context("the identification boot, before the first write")?;
        crate::durable::append_json_line(
            &self.tftp_record.with_file_name("mmc_identity.jsonl"),
            &serde_json::json!({
                "board": self.board.name,
                "mmc_dev": dev,
                "uboot": uboot,
                "linux": linux,
            }),
        )?;
        let found = mmc_identity::check(&self.board, &uboot, &linux).map_err(|e| format!("{e:#}"));
        let _ = self.card.set(found.clone());
        found.map_err(anyhow::Error::msg)
    }

    /// U-Boot's `mmc info` for `mmc dev`, then the kernel and initramfs
    /// booted without writing, until the agent's hello lists Linux's cards.
    async fn identify(
        &self,
        console: Box<dyn Console>,
        tftp: &UbootTftpCfg,
        files: &TftpFiles,
        dev: u32,
        limit: Duration,
    ) -> anyhow::Result<(UbootCard, Vec<hilt_protocol::MmcCard>)> {
        let mut u = UBoot::new(console, uboot::config(&self.board, limit)?);
        let boot = self.tftp_boot(tftp, files);
        let step = async {
            u.stop_autoboot().await?;
            uboot::point_at_server(&mut u, tftp).await?;
            uboot::load_addresses(&mut u, &self.board, needed(&boot)).await?;
            u.select_device(BlockInterface::Mmc, dev, limit).await?;
            let card = mmc_identity::parse_mmc_info(&u.run_checked("mmc info").await?)?;
            u.tftp_boot(&boot, limit).await?;
            anyhow::Ok(card)
        }
        .await;
        let card = match step {
            Ok(card) => card,
            Err(e) => {
                let said = String::from_utf8_lossy(u.transcript()).into_owned();
                let tail = &said[said.len().saturating_sub(600)..];
                bail!("{e:#}\n--- U-Boot said ---\n{tail}");
            }
        };
        let hello = agent_hello(u.into_console(), limit).await?;
        Ok((card, hello.mmc))
    }

    fn record_warm(
        &self,
        met_uboot: bool,
        waited_ms: u64,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        crate::durable::append_json_line(
            &self.warm_record,
            &WarmRecord {
                board: &self.board.name,
                met_uboot,
                waited_ms,
                error,
            },
        )
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

    /// What hilt adds to the kernel's device tree: the ramoops region,
    /// unless the board's own tree reserves it.
    fn reserved(&self) -> Vec<Reserved> {
        match &self.board.ramoops {
            Some(r) if r.reserve == RamoopsReserve::Uboot => r
                .numbers()
                .map(|(address, size, _)| Reserved {
                    name: "hilt-ramoops".into(),
                    address,
                    size,
                })
                .into_iter()
                .collect(),
            _ => Vec::new(),
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

/// Reads the console (printk with the agent's frames in it) until the
/// agent's hello; without one, the error ends with what the board said.
async fn agent_hello(
    mut console: Box<dyn Console>,
    limit: Duration,
) -> anyhow::Result<hilt_protocol::Hello> {
    use hilt_protocol::{AgentMsg, Decoded, FrameDecoder};
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + limit;
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    let mut heard: Vec<u8> = Vec::new();
    loop {
        let n = match tokio::time::timeout_at(deadline, console.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => format!("reading the console: {e}"),
                    Err(_) => format!(
                        "no hello from the agent within {} s of booti: hilt cannot see which cards Linux found",
                        limit.as_secs()
                    ),
                    Ok(_) => "the console closed before the agent's hello".to_string(),
                };
                let tail = String::from_utf8_lossy(&heard[heard.len().saturating_sub(1500)..]);
                bail!("{why}\n--- the board said ---\n{tail}");
            }
        };
        heard.extend_from_slice(&buf[..n]);
        if heard.len() > 64 << 10 {
            heard.drain(..heard.len() - (16 << 10));
        }
        dec.feed::<AgentMsg>(&buf[..n], &mut out);
        for d in out.drain(..) {
            if let Decoded::Record {
                msg: AgentMsg::Hello(h),
                ..
            } = d
            {
                return Ok(h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hilt_protocol::{encode_frame, AgentMsg, Hello, MmcCard};
    use tokio::io::AsyncWriteExt;

    /// The identification boot reads the agent's hello off a console that
    /// carries printk too, a frame split across reads included.
    #[tokio::test]
    async fn the_agent_hello_is_found_among_the_kernels_lines() {
        let hello = Hello {
            protocol: hilt_protocol::PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            kernel_release: "6.1.0-44-arm64".into(),
            kernel_version: "#1 SMP Debian 6.1.164-1".into(),
            machine: "aarch64".into(),
            uptime_ms: 7_500,
            mem_total_kb: 200_000,
            cpus: 2,
            facts: Default::default(),
            mmc: vec![MmcCard {
                disk: "mmcblk0".into(),
                kind: "SD".into(),
                manfid: 0xaa,
                oemid: 0x5859,
                name: "QEMU!".into(),
                sectors: 131_072,
            }],
        };
        let mut frame = Vec::new();
        encode_frame(0, &AgentMsg::Hello(hello.clone()), &mut frame);
        let (ours, mut board) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            board
                .write_all(b"[    7.45] ramoops: using 0x100000@0x4d000000\r\nhilt-init: starting agent\r\n")
                .await
                .unwrap();
            let (a, b) = frame.split_at(frame.len() / 2);
            board.write_all(a).await.unwrap();
            board.flush().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            board.write_all(b).await.unwrap();
            board
        });
        let console = Box::new(crate::console::TelnetConsole::new(ours));
        let got = super::agent_hello(console, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got, hello);
        drop(writer.await.unwrap());

        let (ours, board) = tokio::io::duplex(64);
        drop(board);
        let err = super::agent_hello(
            Box::new(crate::console::TelnetConsole::new(ours)),
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("closed before the agent's hello"),
            "{err}"
        );

        // Silence: the error says how long it waited and what came before.
        let (ours, mut board) = tokio::io::duplex(1 << 10);
        board
            .write_all(b"[    2.10] mmc0: new SD card\r\n")
            .await
            .unwrap();
        let err = super::agent_hello(
            Box::new(crate::console::TelnetConsole::new(ours)),
            std::time::Duration::from_millis(200),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no hello from the agent within 0 s of booti")
                && err.ends_with("--- the board said ---\n[    2.10] mmc0: new SD card\r\n"),
            "{err}"
        );
        drop(board);
    }

    /// A U-Boot double on a raw TCP console, as ser2net serves a UART:
    /// the prompt, `echo`, `printenv`, status echoes, `mmc info` of an SD
    /// card (print_mmcinfo's layout) and, on `booti`, printk lines and the
    /// agent's hello listing `linux`. Every command typed is kept.
    async fn fake_board(
        listener: tokio::net::TcpListener,
        linux: Vec<MmcCard>,
        typed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        use tokio::io::AsyncReadExt;
        loop {
            let Ok((mut io, _)) = listener.accept().await else {
                return;
            };
            io.write_all(b"U-Boot 2023.01\r\nHit any key to stop autoboot:  2 ")
                .await
                .unwrap();
            let (mut line, mut stopped, mut b) = (Vec::new(), false, [0u8; 1]);
            while io.read(&mut b).await.unwrap_or(0) == 1 {
                match b[0] {
                    _ if !stopped => {
                        stopped = true;
                        io.write_all(b"\x08\x08\x08 0 \r\n=> ").await.unwrap();
                    }
                    b'\n' => {
                        let cmd = String::from_utf8(std::mem::take(&mut line)).unwrap();
                        typed.lock().unwrap().push(cmd.clone());
                        io.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
                        if cmd.starts_with("booti ") {
                            let mut out = b"\r\nStarting kernel ...\r\n\r\n[    2.10] mmc0: new SD card at address 4567\r\n".to_vec();
                            let hello = Hello {
                                protocol: hilt_protocol::PROTOCOL_VERSION,
                                agent_version: "0.1.0".into(),
                                kernel_release: "6.1.0-44-arm64".into(),
                                kernel_version: "#1".into(),
                                machine: "aarch64".into(),
                                uptime_ms: 7_500,
                                mem_total_kb: 200_000,
                                cpus: 2,
                                facts: Default::default(),
                                mmc: linux.clone(),
                            };
                            encode_frame(0, &AgentMsg::Hello(hello), &mut out);
                            io.write_all(&out).await.unwrap();
                            continue;
                        }
                        let (body, status) = match cmd.split_once("; echo hilt-status=$?") {
                            Some((body, _)) => (body.to_string(), true),
                            None => (cmd.clone(), false),
                        };
                        let mut out = if let Some(v) = body.strip_prefix("printenv ") {
                            let value = match v {
                                "filesize" => "1388",
                                "kernel_addr_r" => "0x40400000",
                                "ramdisk_addr_r" => "0x44000000",
                                _ => "",
                            };
                            format!("{v}={value}\r\n")
                        } else if let Some(rest) = body.strip_prefix("echo ") {
                            format!("{}\r\n", rest.replace("''", ""))
                        } else if body == "mmc info" {
                            crate::board::mmc_identity::tests_sd_info().replace('\n', "\r\n")
                        } else {
                            String::new()
                        };
                        if status {
                            out.push_str("hilt-status=0\r\n");
                        }
                        io.write_all(format!("{out}=> ").as_bytes()).await.unwrap();
                    }
                    3 => line.clear(),
                    c => line.push(c),
                }
            }
        }
    }

    fn card(disk: &str, kind: &str, manfid: u32, name: &str, sectors: u64) -> MmcCard {
        MmcCard {
            disk: disk.into(),
            kind: kind.into(),
            manfid,
            oemid: if kind == "SD" { 0x5859 } else { 0x100 },
            name: name.into(),
            sectors,
        }
    }

    /// The identification boot against a U-Boot double: U-Boot's mmc 0 is
    /// the SD card, the board file pairs it with mmcblk0, which Linux says
    /// is an eMMC. The boot fails naming both, nothing is written, and the
    /// next boot fails at once without touching the board; with the SD card
    /// at mmcblk0 the same boot passes and both sides are recorded.
    #[tokio::test]
    async fn the_identification_boot_refuses_a_pair_of_different_cards() {
        let dir = tempfile::tempdir().unwrap();
        let run = |linux: Vec<MmcCard>| {
            let dir = dir.path().to_path_buf();
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                let typed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let fake = tokio::spawn(fake_board(listener, linux, typed.clone()));
                let board: crate::plan::BoardFile = serde_yaml_ng::from_str(&format!(
                    "name: fake-bench\narch: arm64\nconsole:\n  ser2net: {{host: 127.0.0.1, port: {port}, protocol: raw}}\n\
                     kernel_console: ttyAMA0\npower:\n  command: {{on: [\"true\"], off: [\"true\"]}}\nagent: console\n\
                     uboot: {{prompt: \"=> \", interrupt: \" \", autoboot_text: \"Hit any key to stop autoboot\"}}\n\
                     boot:\n  uboot_tftp: {{root: {}}}\nflash:\n  uboot_mmc: {{mmc_dev: 0, start_block: 2048}}\n\
                     partitions: {{data: /dev/mmcblk0p3}}\nstorage: {{image: data}}\n",
                    dir.display()
                ))
                .unwrap();
                let boot = super::RamdiskBoot {
                    home: dir.clone(),
                    kernel: dir.join("Image"),
                    initrd: dir.join("initrd"),
                    append: super::cmdline(&board, std::time::Duration::ZERO),
                    flash: Some(crate::board::storage::FlashJob::new(
                        crate::artifacts::media::PartitionImage {
                            path: dir.join("image.img"),
                            verity_root_hash: None,
                        },
                        dir.join("flash.jsonl"),
                    )),
                    tftp_record: dir.join("tftp.jsonl"),
                    warm_record: dir.join("warm_reset.jsonl"),
                    left_on: Default::default(),
                    card: Default::default(),
                    reset_after: std::time::Duration::ZERO,
                    board,
                };
                let files = super::TftpFiles {
                    kernel: "hilt-fake-bench/Image".into(),
                    initrd: "hilt-fake-bench/initrd".into(),
                    dtb: None,
                    root: dir.clone(),
                };
                let tftp = super::tftp_cfg(&boot.board).unwrap().clone();
                let limit = std::time::Duration::from_secs(20);
                let first = boot.check_card(&tftp, &files, limit).await;
                let commands = typed.lock().unwrap().clone();
                let second = boot.check_card(&tftp, &files, limit).await;
                let again = typed.lock().unwrap().len() - commands.len();
                fake.abort();
                (first, second, commands, again)
            }
        };

        let emmc = card("mmcblk0", "MMC", 0x15, "8GME4R", 15_269_888);
        let sd = |disk: &str| card(disk, "SD", 0xaa, "QEMU!", 524_288);
        let (first, second, commands, again) = run(vec![emmc.clone(), sd("mmcblk1")]).await;
        let err = format!("{:#}", first.unwrap_err());
        for want in [
            "pairs U-Boot's mmc 0 (flash.uboot_mmc.mmc_dev: 0) with Linux's mmcblk0 (partitions.data: /dev/mmcblk0p3), and they are different cards",
            "U-Boot's mmc 0: SD card, manufacturer 0xaa, OEM 0x5859, name \"QEMU!\", 256 MiB",
            "Linux's mmcblk0: MMC card",
            "Linux's mmcblk1 is U-Boot's mmc 0",
        ] {
            assert!(err.contains(want), "{want:?} not in {err}");
        }
        assert!(
            commands.iter().any(|c| c.starts_with("mmc info")),
            "{commands:?}"
        );
        assert!(
            commands.iter().any(|c| c.starts_with("booti ")),
            "{commands:?}"
        );
        assert!(
            !commands.iter().any(|c| c.contains("write")),
            "nothing is written: {commands:?}"
        );
        assert_eq!(format!("{:#}", second.unwrap_err()), err);
        assert_eq!(again, 0, "the second boot did not touch the board");

        let emmc = card("mmcblk1", "MMC", 0x15, "8GME4R", 15_269_888);
        let (first, _, _, _) = run(vec![sd("mmcblk0"), emmc]).await;
        first.unwrap();
        let recorded = std::fs::read_to_string(dir.path().join("mmc_identity.jsonl")).unwrap();
        assert_eq!(recorded.lines().count(), 2, "{recorded}");
        assert!(recorded.contains("\"name\":\"QEMU!\""), "{recorded}");
    }
}
