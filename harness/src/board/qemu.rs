//! The QEMU driver: qemu-system-aarch64's command line, the process as
//! the emulated board's power, and its sockets (the UART on a telnet
//! chardev, the agent's virtio-serial port).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

use super::Power;
use crate::artifacts::disk::{Attach, Disk};
use crate::plan::{ConsoleCfg, QemuCfg};
use hilt_protocol::AGENT_PORT_NAME;

/// How the kernel gets into the board's RAM.
#[derive(Debug, Clone, PartialEq)]
pub enum Boot {
    /// QEMU's own loader: -kernel, -initrd, -append.
    Direct,
    /// U-Boot as the firmware; kernel and initrd come from QEMU's TFTP
    /// server, which serves `Launch::tftp_dir()`.
    UbootTftp { firmware: PathBuf },
}

/// The names the TFTP root serves the variant's files under.
pub const TFTP_KERNEL: &str = "Image";
pub const TFTP_INITRD: &str = "initrd";

#[derive(Debug, Clone)]
pub struct Launch {
    pub qemu: QemuCfg,
    pub console: ConsoleCfg,
    pub memory_mb: u32,
    pub cpus: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
    pub disks: Vec<Disk>,
    /// Holds the sockets; kept short because of the 108-byte socket path limit.
    pub runtime_dir: PathBuf,
    pub log: PathBuf,
    /// The board's RAM as a file, kept across power cycles (ramoops).
    pub ram_file: Option<PathBuf>,
    pub boot: Boot,
}

/// The ramoops region: the top MiB of RAM, kept from the kernel with mem=.
pub const RAMOOPS_BYTES: u64 = 1 << 20;
/// QEMU virt's RAM starts here.
const RAM_BASE: u64 = 0x4000_0000;

impl Launch {
    /// Kernel parameters that reserve and describe the ramoops region; the
    /// module takes `ramoops.*` from the command line when it loads.
    pub fn ramoops_cmdline(memory_mb: u32) -> String {
        let top = RAM_BASE + ((memory_mb as u64) << 20) - RAMOOPS_BYTES;
        format!(
            "mem={}M ramoops.mem_address={top:#x} ramoops.mem_size={RAMOOPS_BYTES:#x} ramoops.record_size=0x40000 ramoops.max_reason=2",
            memory_mb - 1
        )
    }
}

impl Launch {
    pub fn console_socket(&self) -> PathBuf {
        self.runtime_dir.join("console.sock")
    }

    pub fn agent_socket(&self) -> PathBuf {
        self.runtime_dir.join("agent.sock")
    }

    pub fn tftp_dir(&self) -> PathBuf {
        self.runtime_dir.join("tftp")
    }

    /// Links kernel and initrd into the TFTP root: the cached files stay
    /// where they are, and only these two names are reachable.
    fn populate_tftp(&self) -> std::io::Result<()> {
        let dir = self.tftp_dir();
        std::fs::create_dir_all(&dir)?;
        for (name, target) in [(TFTP_KERNEL, &self.kernel), (TFTP_INITRD, &self.initrd)] {
            let link = dir.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(std::path::absolute(target)?, link)?;
        }
        Ok(())
    }

    /// The command line, as separate arguments: nothing here goes through
    /// a shell.
    pub fn args(&self) -> Vec<String> {
        let q = &self.qemu;
        let machine = match &self.ram_file {
            Some(_) => format!("{},memory-backend=ram0", q.machine),
            None => q.machine.clone(),
        };
        let mut a: Vec<String> = vec![
            "-M".into(),
            machine,
            "-cpu".into(),
            q.cpu.clone(),
            "-smp".into(),
            self.cpus.to_string(),
            "-m".into(),
            self.memory_mb.to_string(),
            "-display".into(),
            "none".into(),
            "-monitor".into(),
            "none".into(),
            "-no-reboot".into(),
        ];
        match &self.boot {
            Boot::Direct => a.extend([
                "-kernel".into(),
                self.kernel.display().to_string(),
                "-initrd".into(),
                self.initrd.display().to_string(),
                "-append".into(),
                self.append.clone(),
                // No network: without this, `virt` adds a virtio-net-pci
                // NIC whose option ROM (ipxe-qemu) a fresh machine lacks,
                // and QEMU refuses to start.
                "-nic".into(),
                "none".into(),
            ]),
            // restrict=on: the board reaches QEMU's DHCP and TFTP servers
            // and nothing beyond the QEMU process.
            Boot::UbootTftp { firmware } => a.extend([
                "-bios".into(),
                firmware.display().to_string(),
                "-netdev".into(),
                format!(
                    "user,id=net0,restrict=on,tftp={}",
                    self.tftp_dir().display()
                ),
                "-device".into(),
                "virtio-net-device,netdev=net0".into(),
            ]),
        }
        if let Some(f) = &self.ram_file {
            a.push("-object".into());
            a.push(format!(
                "memory-backend-file,id=ram0,size={}M,mem-path={},share=on",
                self.memory_mb,
                f.display()
            ));
        }
        // The console is connected first, with wait=on, so that not one
        // byte of the boot is lost.
        match self.console {
            ConsoleCfg::QemuTelnet => {
                a.push("-chardev".into());
                a.push(format!(
                    "socket,id=con0,path={},server=on,wait=on,telnet=on",
                    self.console_socket().display()
                ));
                a.push("-serial".into());
                a.push("chardev:con0".into());
            }
            // A pty, or a board file naming a real UART (rejected by the
            // plan checks before this), gets QEMU's pty.
            _ => {
                a.push("-serial".into());
                a.push("pty".into());
            }
        }
        a.extend([
            "-chardev".into(),
            format!(
                "socket,id=agent0,path={},server=on,wait=on",
                self.agent_socket().display()
            ),
            "-device".into(),
            "virtio-serial-device".into(),
            "-device".into(),
            format!("virtserialport,chardev=agent0,name={AGENT_PORT_NAME}"),
        ]);
        let mut sdhci = false;
        for d in &self.disks {
            let mut drive = format!("file={},format=raw,if=none,id={}", d.path.display(), d.id);
            if d.read_only {
                drive.push_str(",readonly=on");
            }
            if d.snapshot {
                drive.push_str(",snapshot=on");
            }
            a.push("-drive".into());
            a.push(drive);
            a.push("-device".into());
            match &d.attach {
                Attach::Virtio { serial } => {
                    a.push(format!("virtio-blk-device,drive={},serial={serial}", d.id))
                }
                Attach::SdCard => {
                    if !sdhci {
                        a.push("sdhci-pci".into());
                        a.push("-device".into());
                        sdhci = true;
                    }
                    a.push(format!("sd-card,drive={}", d.id));
                }
            }
        }
        a.extend(q.extra_args.iter().cloned());
        a
    }
}

pub struct QemuPower {
    launch: Launch,
    child: Option<Child>,
}

impl QemuPower {
    pub fn new(launch: Launch) -> Self {
        Self {
            launch,
            child: None,
        }
    }
}

#[async_trait::async_trait]
impl Power for QemuPower {
    async fn on(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.launch.runtime_dir)?;
        for s in [self.launch.console_socket(), self.launch.agent_socket()] {
            let _ = std::fs::remove_file(s);
        }
        if let Boot::UbootTftp { firmware } = &self.launch.boot {
            if !firmware.exists() {
                bail!(
                    "U-Boot firmware {} is missing (apt-get install u-boot-qemu, or run scripts/setup)",
                    firmware.display()
                );
            }
            self.launch
                .populate_tftp()
                .context("preparing the TFTP root")?;
        }
        let log = std::fs::File::create(&self.launch.log).context("creating qemu.log")?;
        let mut cmd = Command::new(&self.launch.qemu.binary);
        // A hilt killed with -9 runs no destructor: the kernel powers its
        // boards off instead, so none outlives the run or its lease.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .args(self.launch.args())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (install qemu-system-arm, or run scripts/setup)",
                    self.launch.qemu.binary
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    async fn off(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), c.wait()).await;
        }
        let _ = std::fs::remove_dir_all(&self.launch.runtime_dir);
        Ok(())
    }

    fn cut(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }

    fn lost(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => Some(format!("QEMU exited ({status})")),
            _ => None,
        }
    }
}

/// Connects to one of QEMU's sockets once it listens; QEMU dying first
/// ends the wait with its log.
pub async fn connect_socket(
    path: &Path,
    power: &mut QemuPower,
    limit: Duration,
) -> anyhow::Result<UnixStream> {
    let start = tokio::time::Instant::now();
    loop {
        if let Some(why) = power.lost() {
            let log = std::fs::read_to_string(&power.launch.log).unwrap_or_default();
            bail!(
                "{why} before {} accepted a connection: {}",
                path.display(),
                log.trim()
            );
        }
        match UnixStream::connect(path).await {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() > limit => bail!("connecting to {}: {e}", path.display()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct-boot launch with no disks and no RAM file, its files in `dir`.
    fn test_launch(dir: &Path) -> Launch {
        Launch {
            qemu: QemuCfg {
                binary: "qemu-system-aarch64".into(),
                machine: "virt".into(),
                cpu: "cortex-a53".into(),
                cpus: 2,
                memory_mb: 256,
                append: String::new(),
                extra_args: vec![],
                ramoops: false,
                uboot_firmware: String::new(),
            },
            console: ConsoleCfg::QemuTelnet,
            memory_mb: 256,
            cpus: 2,
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.cpio"),
            append: "console=ttyAMA0".into(),
            disks: vec![],
            runtime_dir: dir.join("rt"),
            log: dir.join("qemu.log"),
            ram_file: None,
            boot: Boot::Direct,
        }
    }

    #[test]
    fn sd_cards_share_one_controller_and_disks_keep_serials() {
        let l = Launch {
            memory_mb: 384,
            disks: vec![
                Disk {
                    id: "sd0".into(),
                    path: "sd.img".into(),
                    attach: Attach::SdCard,
                    read_only: false,
                    snapshot: true,
                },
                Disk {
                    id: "hash".into(),
                    path: "h.img".into(),
                    attach: Attach::Virtio {
                        serial: "hash".into(),
                    },
                    read_only: true,
                    snapshot: false,
                },
            ],
            runtime_dir: "/tmp/r".into(),
            ram_file: Some("/tmp/ram".into()),
            ..test_launch(Path::new("/tmp"))
        };
        let a = l.args().join(" ");
        assert!(a.contains("-m 384"));
        // A NIC would need an option ROM that a fresh machine lacks.
        assert!(a.contains("-nic none"), "{a}");
        assert!(a.contains("-M virt,memory-backend=ram0"));
        assert!(a.contains("memory-backend-file,id=ram0,size=384M,mem-path=/tmp/ram,share=on"));
        assert_eq!(
            Launch::ramoops_cmdline(256),
            "mem=255M ramoops.mem_address=0x4ff00000 ramoops.mem_size=0x100000 ramoops.record_size=0x40000 ramoops.max_reason=2"
        );
        assert_eq!(a.matches("sdhci-pci").count(), 1);
        assert!(a.contains("-device sd-card,drive=sd0"));
        assert!(a.contains("file=sd.img,format=raw,if=none,id=sd0,snapshot=on"));
        assert!(a.contains("virtio-blk-device,drive=hash,serial=hash"));
        assert!(a.contains("path=/tmp/r/console.sock,server=on,wait=on,telnet=on"));
        assert!(
            a.find("con0").unwrap() < a.find("agent0").unwrap(),
            "console must be connected first"
        );
    }

    fn uboot_launch(dir: &Path, firmware: &str) -> Launch {
        let base = test_launch(dir);
        Launch {
            qemu: QemuCfg {
                uboot_firmware: firmware.into(),
                ..base.qemu.clone()
            },
            boot: Boot::UbootTftp {
                firmware: firmware.into(),
            },
            ..base
        }
    }

    #[test]
    fn uboot_boot_replaces_the_loader_with_firmware_and_tftp() {
        let l = uboot_launch(Path::new("/tmp/b"), "/fw/u-boot.bin");
        let a = l.args().join(" ");
        assert!(a.contains("-bios /fw/u-boot.bin"));
        assert!(a.contains("-netdev user,id=net0,restrict=on,tftp=/tmp/b/rt/tftp"));
        assert!(a.contains("virtio-net-device,netdev=net0"));
        assert!(!a.contains("-nic none"), "{a}");
        for direct in ["-kernel", "-initrd", "-append"] {
            assert!(!a.contains(direct), "{direct} in {a}");
        }
    }

    #[tokio::test]
    async fn missing_firmware_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let l = uboot_launch(dir.path(), "/nonexistent/u-boot.bin");
        let err = QemuPower::new(l).on().await.unwrap_err().to_string();
        assert!(err.contains("/nonexistent/u-boot.bin is missing"), "{err}");
        assert!(err.contains("u-boot-qemu"), "{err}");
    }

    #[test]
    fn tftp_root_links_exactly_the_two_files() {
        let dir = tempfile::tempdir().unwrap();
        let l = uboot_launch(dir.path(), "/fw");
        std::fs::write(&l.kernel, b"k").unwrap();
        std::fs::write(&l.initrd, b"i").unwrap();
        l.populate_tftp().unwrap();
        l.populate_tftp().unwrap(); // again, as every power-on does
        let mut names: Vec<_> = std::fs::read_dir(l.tftp_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["Image", "initrd"]);
        assert_eq!(std::fs::read(l.tftp_dir().join("Image")).unwrap(), b"k");
    }
}
