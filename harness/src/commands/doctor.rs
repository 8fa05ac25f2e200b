//! `hilt boards` and `hilt doctor BOARD`: what is known, and whether a
//! connected board answers on every transport its file declares.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hilt_transports::ssh::SshSession;

use crate::board::resources;
use crate::plan::{self, BenchBootCfg, BoardFile, BoardKind, ConsoleCfg, FlashCfg, PowerCfg};

/// Board files under `<home>/boards`, with the first error (if any) of each.
pub fn known(home: &Path) -> Vec<(PathBuf, Result<BoardFile, plan::PlanError>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(home.join("boards"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.clone(), plan::load_board(&p)))
        .collect()
}

pub fn describe(b: &BoardFile) -> [String; 5] {
    let console = match &b.console {
        ConsoleCfg::QemuTelnet => "qemu telnet".to_string(),
        ConsoleCfg::QemuPty => "qemu pty".to_string(),
        ConsoleCfg::Serial { device, line } => format!("serial {device} {line}"),
        ConsoleCfg::Ser2net {
            host,
            port,
            protocol,
        } => format!("ser2net {host}:{port} ({protocol:?})"),
        ConsoleCfg::FromLabgrid => match &b.labgrid {
            Some(l) => format!("labgrid {} place {}", l.coordinator, l.place),
            None => "-".into(),
        },
    };
    let power = match &b.power {
        PowerCfg::Qemu => "qemu process".to_string(),
        PowerCfg::Command { on, .. } => {
            format!("command {}", on.first().map(String::as_str).unwrap_or("?"))
        }
        PowerCfg::UsbRelay { relay, .. } => format!("usb relay #{relay}"),
        PowerCfg::FromLabgrid => "labgrid place".to_string(),
        PowerCfg::Http(h) => format!("labgrid {:?} {}", h.model, h.url).to_lowercase(),
    };
    let agent = format!("{:?}", b.agent).to_lowercase();
    let flash = match &b.flash {
        None => "-".to_string(),
        Some(FlashCfg::Fastboot { partition }) => format!("fastboot {partition}"),
        Some(FlashCfg::SshDd { partition }) => format!("ssh dd {partition}"),
        Some(FlashCfg::AdbDd { partition }) => format!("adb dd {partition}"),
        Some(FlashCfg::UbootMmc { mmc_dev, .. }) => format!("u-boot mmc {mmc_dev}"),
        Some(FlashCfg::UbootBlock { interface, dev, .. }) => {
            format!("u-boot {} {dev}", interface.name())
        }
        Some(FlashCfg::QemuDisks) => "qemu disks".to_string(),
    };
    [
        b.soc.clone().unwrap_or_else(|| "-".into()),
        console,
        power,
        agent,
        flash,
    ]
}

/// One line per check: (what, Ok(detail) or Err(why)).
/// `home` holds `boards/`: relative paths in the board file are relative
/// to it, as in `hilt run`.
pub async fn check(b: &BoardFile, home: &Path) -> Vec<(String, Result<String, String>)> {
    let limit = Duration::from_secs(8);
    let mut out = Vec::new();
    let console = match &b.console {
        ConsoleCfg::QemuTelnet | ConsoleCfg::QemuPty => {
            let bin = b
                .qemu
                .as_ref()
                .map(|q| q.binary.clone())
                .unwrap_or_default();
            ("console (QEMU)".to_string(), program_version(&bin).await)
        }
        ConsoleCfg::Serial { device, line } => {
            let r = resources::serial_console(device, line, false)
                .map(|_| format!("{device} opened exclusively at {line}"))
                .map_err(|e| format!("{e:#}"));
            (format!("console {device}"), r)
        }
        ConsoleCfg::Ser2net { host, port, .. } => {
            let r = match resources::open_console(b, limit).await {
                Ok(mut c) => match c.identify().await {
                    Ok(Some(s)) => Ok(format!("RFC 2217 port, {s}")),
                    Ok(None) => Ok("connected".to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(format!("{e:#}")),
            };
            (format!("console ser2net {host}:{port}"), r)
        }
        ConsoleCfg::FromLabgrid => (
            "console".to_string(),
            Err("comes from the labgrid place, which doctor acquires first".to_string()),
        ),
    };
    out.push(console);
    let power = match &b.power {
        PowerCfg::Qemu => None,
        PowerCfg::Command { on, .. } => {
            let argv = resources::resolve_program(on, home);
            Some(("power command".to_string(), on_path(&argv[0])))
        }
        PowerCfg::UsbRelay { serial, relay } => Some((
            format!("power usb relay #{relay}"),
            hilt_transports::power::UsbRelay::open(serial.as_deref(), *relay, false)
                .map(|_| "found".to_string())
                .map_err(|e| format!("{e:#}")),
        )),
        PowerCfg::FromLabgrid => Some((
            "power".to_string(),
            Err("comes from the labgrid place, which doctor acquires first".to_string()),
        )),
        PowerCfg::Http(h) => {
            let r = match crate::board::labgrid::power::HttpPower::new(h) {
                Ok(p) => p
                    .get()
                    .await
                    .map(|on| format!("answers: {}", if on { "on" } else { "off" }))
                    .map_err(|e| format!("{e:#}")),
                Err(e) => Err(format!("{e:#}")),
            };
            Some((format!("power {:?} {}", h.model, h.url).to_lowercase(), r))
        }
    };
    out.extend(power);
    if let Some(s) = &b.ssh {
        let r = match SshSession::connect(&resources::ssh_config(s)).await {
            Ok(sess) => sess
                .output("uname -a", limit)
                .await
                .map(|(code, o, _)| format!("exit {code}: {}", String::from_utf8_lossy(&o).trim()))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        out.push((format!("ssh {}@{}:{}", s.user, s.host, s.port), r));
    }
    if let Some(a) = &b.adb {
        let server = resources::adb_server(a);
        if a.serial.contains(':') {
            // A device on TCP is listed once the server has connected to
            // it, as `adb connect` does; hilt run does the same.
            let _ = server.connect_device(&a.serial).await;
        }
        let r = match server.devices().await {
            Ok(devs) => match devs.iter().find(|d| d.serial == a.serial) {
                Some(d) if d.state == "device" => Ok(format!("{} is online", d.serial)),
                Some(d) => Err(format!("{} is {}", d.serial, d.state)),
                None => Err(format!(
                    "not among the adb server's {} device(s): check the cable, or `adb connect` it",
                    devs.len()
                )),
            },
            Err(e) => Err(format!("adb server: {e}")),
        };
        out.push((format!("adb {}", a.serial), r));
    }
    if let Some(f) = &b.fastboot {
        let r = match resources::open_fastboot(f, limit).await {
            Ok(mut fb) => fb
                .getvar("product")
                .await
                .map(|p| format!("product {p}"))
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("{e:#}")),
        };
        out.push((format!("fastboot {}", f.target), r));
    }
    if b.uboot.is_some() {
        out.push((
            "u-boot".into(),
            Ok("checked at the next power-on (doctor does not power-cycle)".into()),
        ));
    }
    if let Some(BenchBootCfg::UbootTftp(t)) = &b.boot {
        let root = resources::tftp_root(t, home);
        let probe = root.join(format!(".hilt-doctor-{}", std::process::id()));
        let r = std::fs::write(&probe, b"")
            .map(|_| format!("{} is writable; hilt run puts hilt-{}/ there", root.display(), b.name))
            .map_err(|e| format!("{}: {e} (hilt run writes the boot files there; create it, or fix `boot.uboot_tftp.root`)", root.display()));
        let _ = std::fs::remove_file(&probe);
        out.push(("tftp root".into(), r));
    }
    if matches!(b.agent, plan::AgentChannelCfg::VirtioSerial) && b.kind() != BoardKind::Emulated {
        out.push((
            "agent".into(),
            Err("virtio_serial needs an emulated board".into()),
        ));
    }
    out
}

fn on_path(prog: &str) -> Result<String, String> {
    if prog.contains('/') {
        return if Path::new(prog).is_file() {
            Ok(prog.to_string())
        } else {
            Err(format!("{prog} does not exist"))
        };
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(prog))
                .find(|c| c.is_file())
        })
        .map(|p| p.display().to_string())
        .ok_or_else(|| format!("{prog} is not on PATH"))
}

async fn program_version(bin: &str) -> Result<String, String> {
    let out = tokio::process::Command::new(bin)
        .arg("--version")
        .output()
        .await
        .map_err(|e| format!("{bin}: {e} (install qemu-system-arm, or run scripts/setup)"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}
