//! The emulated board: QEMU is its power, its UART and its disks. Each boot
//! starts QEMU, connects to the console first (QEMU waits for it, so not a
//! byte is lost), then to the agent's virtio-serial port, and, with U-Boot
//! as the firmware, boots through U-Boot over QEMU's TFTP.

use std::path::PathBuf;
use std::time::Duration;

use hilt_protocol::BlockDevice;
use hilt_transports::uboot::{Network, TftpBoot, UBoot, UBootConfig};
use tokio::net::UnixStream;

use crate::artifacts::{self, Cache, Media};
use crate::board::qemu::{self, Launch, QemuPower};
use crate::board::{
    uboot, AgentLink, Board, BoardStorage, Boot, BootRequest, Power, RunBoard, Session, Strategy,
};
use crate::console::{Console, TelnetConsole};
use crate::plan::{BoardFile, BootMethod, Plan, ResolvedPlan};

pub struct Emulated;

impl Strategy for Emulated {
    fn preflight(&self, b: &BoardFile, plan: &Plan) -> anyhow::Result<()> {
        // The plan and board checks cover the rest of what QEMU needs.
        crate::board::preflight::refuse_zram_existing(b, plan)
    }

    fn storage(
        &self,
        _: &Cache,
        _: &ResolvedPlan,
        media: &Media,
        _: &BoardFile,
    ) -> anyhow::Result<BoardStorage> {
        Ok(BoardStorage {
            storage: media.storage.clone(),
            swap: media.swap.clone(),
            control: BlockDevice::VirtioSerial(artifacts::media::CONTROL_DISK.into()),
            image: None,
            vbmeta: media.vbmeta.clone(),
        })
    }

    fn attach(&self, run: RunBoard) -> Box<dyn Board> {
        // One RAM file per board for the whole run: what the kernel left in
        // ramoops before a power cycle is read by the board's next boot.
        let ram_file = run.board().qemu.as_ref().filter(|q| q.ramoops).map(|_| {
            std::env::temp_dir().join(format!(
                "hilt-{}-board{}.ram",
                std::process::id(),
                run.index
            ))
        });
        Box::new(EmulatedBoard { run, ram_file })
    }
}

struct EmulatedBoard {
    run: RunBoard,
    ram_file: Option<PathBuf>,
}

impl Drop for EmulatedBoard {
    fn drop(&mut self) {
        if let Some(f) = &self.ram_file {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl EmulatedBoard {
    fn cmdline(&self) -> String {
        let plan = &self.run.plan;
        let append = plan.board.qemu.as_ref().map_or("", |q| q.append.as_str());
        // QEMU virt's PL011, and the agent on its own virtio-serial port;
        // a panic reboots, so that ramoops keeps the log.
        let line = format!("console=ttyAMA0 panic=5 loglevel=4 {append}")
            .trim()
            .to_string();
        match &self.ram_file {
            Some(_) => format!("{line} {}", Launch::ramoops_cmdline(plan.memory_mb())),
            None => line,
        }
    }
}

impl Board for EmulatedBoard {
    fn boot(&self, req: &BootRequest<'_>) -> Box<dyn Boot> {
        let plan = &self.run.plan;
        let qemu = plan
            .board
            .qemu
            .clone()
            .expect("an emulated board has a qemu: section");
        Box::new(QemuBoot(Launch {
            boot: match plan.plan.machine.boot {
                BootMethod::Direct => qemu::Boot::Direct,
                BootMethod::UbootTftp => qemu::Boot::UbootTftp {
                    firmware: qemu.uboot_firmware.clone().into(),
                },
            },
            qemu,
            console: plan.board.console.clone(),
            memory_mb: plan.memory_mb(),
            cpus: plan.cpus(),
            kernel: req.kernel.image.clone(),
            initrd: req.kernel.initramfs.clone(),
            append: self.cmdline(),
            disks: self.run.disks.clone(),
            // Sockets per slot: several boards never share one.
            runtime_dir: std::env::temp_dir().join(format!(
                "hilt-{}-{}",
                std::process::id(),
                req.slot
            )),
            log: req.dir.join("qemu.log"),
            ram_file: self.ram_file.clone(),
        }))
    }
}

struct QemuBoot(Launch);

#[async_trait::async_trait]
impl Boot for QemuBoot {
    async fn start(self: Box<Self>, boot_limit: Duration) -> anyhow::Result<Session> {
        let launch = self.0;
        let mut power = QemuPower::new(launch.clone());
        power.on().await?;
        let result = async {
            let console = qemu::connect_socket(
                &launch.console_socket(),
                &mut power,
                Duration::from_secs(15),
            )
            .await?;
            let agent =
                qemu::connect_socket(&launch.agent_socket(), &mut power, Duration::from_secs(15))
                    .await?;
            anyhow::Ok((console, agent))
        }
        .await;
        let (console, agent) = match result {
            Ok(c) => c,
            Err(e) => {
                let _ = power.off().await;
                return Err(e);
            }
        };
        let console = TelnetConsole::new(console);
        let console: Box<dyn Console> = match &launch.boot {
            qemu::Boot::Direct => Box::new(console),
            qemu::Boot::UbootTftp { .. } => match through_uboot(console, &launch, boot_limit).await
            {
                Ok(c) => c,
                Err(e) => {
                    let _ = power.off().await;
                    return Err(e);
                }
            },
        };
        Ok(Session {
            power: Box::new(power),
            console,
            agent: AgentLink::Own(Box::new(agent)),
            warm: None,
        })
    }

    fn power_switch(&self) -> Option<Box<dyn Power>> {
        // QEMU dies with its process: nothing outlives an abandoned boot.
        None
    }

    fn keeps_ramoops(&self) -> bool {
        self.0.ram_file.is_some()
    }
}

/// Drives U-Boot from its autoboot countdown to `booti` of the files QEMU's
/// TFTP serves.
async fn through_uboot(
    console: TelnetConsole<UnixStream>,
    launch: &Launch,
    limit: Duration,
) -> anyhow::Result<Box<dyn Console>> {
    let cfg = UBootConfig {
        stop_timeout: limit,
        command_timeout: Duration::from_secs(30).min(limit),
        ..Default::default()
    };
    let mut u = UBoot::new(console, cfg);
    let step = async {
        u.stop_autoboot().await?;
        let boot = TftpBoot {
            network: Network::Dhcp { serverip: None },
            kernel: qemu::TFTP_KERNEL.into(),
            initrd: Some(qemu::TFTP_INITRD.into()),
            dtb: None,
            bootargs: launch.append.clone(),
            reserve: Vec::new(),
        };
        u.tftp_boot(&boot, limit).await?;
        anyhow::Ok(())
    }
    .await;
    uboot::console_after(u, step)
}
