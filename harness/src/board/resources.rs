//! Resources: what a board file declares (power, console, SSH, adb,
//! fastboot, a TFTP root), opened as the transports' drivers. Strategies
//! and commands get their devices here and nowhere else, so a setting is
//! turned into a device in one place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use hilt_transports::adb::AdbServer;
use hilt_transports::console::{
    Rfc2217Console, SerialConfig, SerialConsole, TcpConsole, TelnetConsole,
};
use hilt_transports::fastboot::{Fastboot, FastbootIo};
use hilt_transports::power::{CommandPower, CommandPowerConfig, UsbRelay};
use hilt_transports::ssh::SshConfig;

use super::Power;
use crate::console::Console;
use crate::plan::{
    AdbCfg, BoardFile, ConsoleCfg, FastbootCfg, PowerCfg, Ser2netProtocol, SshCfg, UbootTftpCfg,
};

/// How long a board stays off before it is powered on again: long enough
/// for its supply rails to drain, so that it really resets.
pub const OFF_TIME: Duration = Duration::from_secs(2);

/// A path from a board file: `~/` is the user's home.
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
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

/// The board's TFTP root on this host: relative to the checkout, like the
/// board file's other paths.
pub fn tftp_root(cfg: &UbootTftpCfg, home: &Path) -> PathBuf {
    home.join(expand_home(&cfg.root))
}

/// hilt's own TFTP server on the board's TFTP root, if the board file
/// asks for it (`serve:`); it serves until dropped.
pub fn serve_tftp(cfg: &UbootTftpCfg, home: &Path) -> anyhow::Result<Option<hilt_tftpd::Server>> {
    let Some(serve) = &cfg.serve else {
        return Ok(None);
    };
    let ip: std::net::IpAddr = serve
        .address
        .parse()
        .with_context(|| format!("boot.uboot_tftp.serve.address {:?}", serve.address))?;
    let root = tftp_root(cfg, home);
    // hilt writes the files it serves there itself; nothing else need make it.
    std::fs::create_dir_all(&root)
        .with_context(|| format!("creating the TFTP root {}", root.display()))?;
    let server = hilt_tftpd::Server::start((ip, serve.port).into(), &root)
        .with_context(|| format!("serving {} over TFTP", root.display()))?;
    Ok(Some(server))
}

pub fn ssh_config(s: &SshCfg) -> SshConfig {
    SshConfig::new(
        &s.host,
        s.port,
        &s.user,
        expand_home(&s.key),
        expand_home(&s.known_hosts),
    )
}

/// The adb server a board file names, or the local one.
pub fn adb_server(a: &AdbCfg) -> AdbServer {
    a.server
        .as_deref()
        .map(AdbServer::new)
        .unwrap_or_else(AdbServer::local)
}

/// Where a board's fastboot answers: `tcp:HOST:PORT`, or a USB serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastbootTarget<'a> {
    Tcp(&'a str),
    Usb(&'a str),
}

impl<'a> FastbootTarget<'a> {
    pub fn of(f: &'a FastbootCfg) -> Self {
        match f.target.strip_prefix("tcp:") {
            Some(addr) => FastbootTarget::Tcp(addr),
            None => FastbootTarget::Usb(&f.target),
        }
    }
}

pub async fn open_fastboot(
    f: &FastbootCfg,
    limit: Duration,
) -> anyhow::Result<Fastboot<Box<dyn FastbootIo>>> {
    let io: Box<dyn FastbootIo> = match FastbootTarget::of(f) {
        FastbootTarget::Tcp(addr) => Box::new(
            hilt_transports::fastboot::tcp::TcpIo::connect(addr, limit)
                .await
                .with_context(|| format!("fastboot tcp:{addr}"))?,
        ),
        FastbootTarget::Usb(serial) => Box::new(
            hilt_transports::fastboot::usb::UsbIo::open(Some(serial))
                .with_context(|| format!("{serial} (is the board in fastboot mode?)"))?,
        ),
    };
    Ok(Fastboot::new(io))
}

pub fn open_power(b: &BoardFile, home: &Path) -> anyhow::Result<Box<dyn Power>> {
    power_switching_on_with(b, home, None)
}

/// The board's power, switched on by `on` instead of the board file's own
/// on-command: how a board is powered on into its bootloader with a key
/// held. Only a board whose power is a command has such a switch.
pub fn power_switching_on_with(
    b: &BoardFile,
    home: &Path,
    on_instead: Option<&[String]>,
) -> anyhow::Result<Box<dyn Power>> {
    match (&b.power, on_instead) {
        (PowerCfg::Command { on, off, cycle }, _) => {
            let on = on_instead.unwrap_or(on);
            let cfg = CommandPowerConfig {
                on: resolve_program(on, home),
                off: resolve_program(off, home),
                cycle: cycle
                    .as_deref()
                    .filter(|_| on_instead.is_none())
                    .map(|c| resolve_program(c, home)),
                timeout_s: 30,
                off_s: OFF_TIME.as_secs(),
            };
            let vars = BTreeMap::from([("board".to_string(), b.name.clone())]);
            Ok(Box::new(CommandPower::new(&cfg, &vars)?))
        }
        (PowerCfg::UsbRelay { serial, relay }, None) => {
            Ok(Box::new(UsbRelay::open(serial.as_deref(), *relay, false)?))
        }
        (PowerCfg::UsbRelay { .. }, Some(_)) => bail!(
            "board {}: a USB relay switches the power only: to power on into the bootloader, `power:` must be a command",
            b.name
        ),
        (PowerCfg::Http(cfg), None) => Ok(Box::new(super::labgrid::power::HttpPower::new(cfg)?)),
        (PowerCfg::Http(_), Some(_)) => bail!(
            "board {}: a labgrid power port switches the power only: to power on into the bootloader, `power:` must be a command",
            b.name
        ),
        (PowerCfg::Qemu, _) => bail!("board {}: QEMU power belongs to an emulated board", b.name),
        (PowerCfg::FromLabgrid, _) => bail!(
            "board {}: its power comes from its labgrid place, which is not acquired here",
            b.name
        ),
    }
}

/// A serial console as the board file sets it; `reconnect: false` for a
/// probe that must not wait for a device to come back.
pub fn serial_console(device: &str, line: &str, reconnect: bool) -> anyhow::Result<SerialConsole> {
    let mut cfg = SerialConfig::new(device);
    cfg.line = line
        .parse()
        .map_err(|e| anyhow::anyhow!("console line {line:?}: {e}"))?;
    if !reconnect {
        cfg.reconnect = None;
    }
    SerialConsole::open(cfg).with_context(|| format!("opening {device}"))
}

pub async fn open_console(b: &BoardFile, limit: Duration) -> anyhow::Result<Box<dyn Console>> {
    Ok(match &b.console {
        ConsoleCfg::Serial { device, line } => Box::new(serial_console(device, line, true)?),
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
        ConsoleCfg::FromLabgrid => bail!(
            "board {}: its console comes from its labgrid place, which is not acquired here",
            b.name
        ),
    })
}

pub async fn open_console_retrying(
    b: &BoardFile,
    limit: Duration,
) -> anyhow::Result<Box<dyn Console>> {
    super::retry::retry_until(
        limit,
        Duration::from_millis(50),
        "the console did not open after power on",
        || async { Ok(open_console(b, Duration::from_secs(2)).await?) },
    )
    .await
}

/// Powers the board off, then on, with its console open from as early as
/// it can be: a ser2net port or a UART is there before the board is, and
/// opened first misses nothing; a console that only exists while the board
/// is powered is opened as soon as it appears.
pub async fn power_cycle_to_console(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastboot_targets_are_tcp_addresses_or_usb_serials() {
        let t = |s: &str| FastbootCfg { target: s.into() };
        assert_eq!(
            FastbootTarget::of(&t("tcp:127.0.0.1:5554")),
            FastbootTarget::Tcp("127.0.0.1:5554")
        );
        assert_eq!(
            FastbootTarget::of(&t("0123456789ABCDEF")),
            FastbootTarget::Usb("0123456789ABCDEF")
        );
    }
}
