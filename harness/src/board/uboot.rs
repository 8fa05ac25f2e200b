//! U-Boot as a board file sets it up: its prompt, its network, where it
//! writes an image, and what to do with its dialogue afterwards. Used by
//! the boot strategies that go through U-Boot (a bench board, an emulated
//! board with U-Boot firmware) and by `hilt flash`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use hilt_transports::flash::{FlashImage, FlashRecord, Flasher, UBootFlasher};
use hilt_transports::uboot::{BlockInterface, Network, UBoot, UBootConfig};

use super::resources;
use crate::console::Console;
use crate::plan::{BenchBootCfg, BoardFile, FlashCfg, UbootTftpCfg};

pub fn config(b: &BoardFile, limit: Duration) -> anyhow::Result<UBootConfig> {
    let u = b
        .uboot
        .as_ref()
        .with_context(|| format!("board {}: a U-Boot board needs `uboot:`", b.name))?;
    Ok(UBootConfig {
        prompt: u.prompt.clone(),
        interrupt: u.interrupt.clone(),
        autoboot_patterns: u.autoboot_text.all(),
        stop_timeout: limit,
        command_timeout: Duration::from_secs(30).min(limit),
        max_line: u.max_line as usize,
        char_delay: Duration::from_millis(u64::from(u.char_delay_ms)),
    })
}

/// Sets the load addresses the board file gives, then checks that every one
/// of `needed` is set: vendor U-Boots often lack mainline's, and hilt's
/// `tftpboot ${kernel_addr_r}` would otherwise load to address 0.
pub async fn load_addresses<C: Console>(
    u: &mut UBoot<C>,
    b: &BoardFile,
    needed: &[&str],
) -> anyhow::Result<()> {
    let given = b.uboot.as_ref().and_then(|u| u.addresses.as_ref());
    for name in ["kernel_addr_r", "ramdisk_addr_r", "fdt_addr_r"] {
        if let Some(v) = given.and_then(|a| a.get(name)) {
            u.setenv(name, v).await?;
        }
    }
    let mut missing = Vec::new();
    for name in needed {
        if u.getenv(name).await?.is_none() {
            missing.push(*name);
        }
    }
    if !missing.is_empty() {
        bail!(
            "board {}: this U-Boot's environment has no {} (mainline's load addresses; vendor builds often lack them):              set them in the board file, e.g. `uboot: {{addresses: {{{}}}}}`, to free RAM that holds the kernel              (tens of MiB), the initramfs and the device tree without overlapping (`bdinfo` at the U-Boot prompt              shows the RAM; mainline U-Boot for Amlogic SoCs uses kernel_addr_r 0x08080000, ramdisk_addr_r 0x13000000, fdt_addr_r 0x08008000)",
            b.name,
            missing.join(", "),
            missing
                .iter()
                .map(|n| format!("{n}: \"0x...\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

pub fn network(cfg: &UbootTftpCfg) -> Network {
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

/// With hilt's own TFTP server on a port other than 69, tells U-Boot where
/// it listens. Only a U-Boot built with CONFIG_TFTP_PORT reads
/// `tftpdstp`; any other keeps sending to port 69, and its TFTP then
/// times out ([`server_said`] says so).
pub async fn point_at_server<C: Console>(
    u: &mut UBoot<C>,
    cfg: &UbootTftpCfg,
) -> anyhow::Result<()> {
    if let Some(serve) = cfg.serve.as_ref().filter(|s| s.port != 69) {
        u.setenv("tftpdstp", &serve.port.to_string()).await?;
    }
    Ok(())
}

/// What hilt's TFTP server saw, for the error of a failed U-Boot step: the
/// difference between U-Boot never reaching it and a transfer that broke.
pub fn server_said(server: Option<&hilt_tftpd::Server>, cfg: &UbootTftpCfg) -> String {
    let Some(server) = server else {
        return String::new();
    };
    let t = server.transfers();
    if t.is_empty() {
        let port = server.local_addr().port();
        let hint = if port == 69 {
            String::new()
        } else {
            format!(
                "; U-Boot sends to port 69 unless built with CONFIG_TFTP_PORT (then hilt sets tftpdstp={port}): serve on port 69, or use such a U-Boot"
            )
        };
        return format!(
            "\nhilt's TFTP server on {} received no request (if U-Boot got an answer, another server gave it){hint}; U-Boot's serverip must be this host as the board sees it{}",
            server.local_addr(),
            cfg.serverip
                .as_deref()
                .map(|s| format!(" (it is {s})"))
                .unwrap_or_default()
        );
    }
    let lines: Vec<String> = t
        .iter()
        .map(|t| match &t.outcome {
            Ok(n) => format!("  {} from {}: {n} bytes", t.file, t.peer),
            Err(e) => format!("  {} from {}: {e}", t.file, t.peer),
        })
        .collect();
    format!(
        "\nhilt's TFTP server on {} served:\n{}",
        server.local_addr(),
        lines.join("\n")
    )
}

/// Where U-Boot writes an image: the board file's device and block, and the
/// partition that block should start (when the board file names the
/// storage partition), which U-Boot's partition table must confirm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    interface: BlockInterface,
    dev: u32,
    start_block: u64,
    partition: Option<u32>,
}

pub fn flash_target(b: &BoardFile) -> anyhow::Result<Target> {
    let partition = b
        .storage
        .as_ref()
        .and_then(|s| b.partitions.get(&s.image))
        .and_then(|node| partition_number(node));
    match &b.flash {
        Some(FlashCfg::UbootMmc {
            mmc_dev,
            start_block,
        }) => Ok(Target {
            interface: BlockInterface::Mmc,
            dev: *mmc_dev,
            start_block: *start_block,
            partition,
        }),
        Some(FlashCfg::UbootBlock {
            interface,
            dev,
            start_block,
        }) => Ok(Target {
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

/// Writes an image from U-Boot: TFTP into RAM, a block write, and a
/// read-back compared by CRC32.
pub async fn write_image<C: Console>(
    u: &mut UBoot<C>,
    board: &str,
    image: &FlashImage,
    target: Target,
    tftp_root: &Path,
) -> anyhow::Result<FlashRecord> {
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
pub async fn flash_standalone(
    b: &BoardFile,
    home: &Path,
    image: &FlashImage,
) -> anyhow::Result<FlashRecord> {
    let Some(BenchBootCfg::UbootTftp(tftp)) = &b.boot else {
        bail!(
            "board {}: U-Boot fetches the image over TFTP, and the board file has no TFTP root (boot: {{uboot_tftp: {{root: /srv/tftp}}}})",
            b.name
        );
    };
    let target = flash_target(b)?;
    let limit = Duration::from_secs(120);
    let root = resources::tftp_root(tftp, home);
    let server = resources::serve_tftp(tftp, home)?;
    let (mut power, console) = resources::power_cycle_to_console(b, home).await?;
    let mut u = UBoot::new(console, config(b, limit)?);
    let result = async {
        u.stop_autoboot().await?;
        point_at_server(&mut u, tftp).await?;
        load_addresses(&mut u, b, &["kernel_addr_r"]).await?;
        u.net_up(&network(tftp), limit).await?;
        write_image(&mut u, &b.name, image, target, &root).await
    }
    .await;
    let _ = power.off().await;
    result.map_err(|e| {
        let tail = last_words(&u);
        let served = server_said(server.as_ref(), tftp);
        e.context(format!("--- U-Boot said ---\n{tail}{served}"))
    })
}

/// After U-Boot's part of a boot: the console handed on with U-Boot's
/// whole dialogue replayed first, so the capture (and console.log) holds
/// the boot from the firmware's first byte; or, when a step failed, an
/// error that ends with what U-Boot last said.
pub fn console_after<C: Console + 'static>(
    u: UBoot<C>,
    step: anyhow::Result<()>,
) -> anyhow::Result<Box<dyn Console>> {
    if let Err(e) = step {
        let tail = last_words(&u);
        bail!("booting through U-Boot: {e:#}\n--- U-Boot said ---\n{tail}");
    }
    let head = u.transcript().to_vec();
    Ok(Box::new(hilt_transports::console::Replayed::new(
        head,
        u.into_console(),
    )))
}

/// The end of U-Boot's dialogue, for an error: usually its own complaint.
fn last_words<C: Console>(u: &UBoot<C>) -> String {
    let t = u.transcript();
    String::from_utf8_lossy(&t[t.len().saturating_sub(600)..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::partition_number;

    /// The emulated bench board's real U-Boot (scripts/bench-board), with
    /// a state directory and console port of its own; powered off when
    /// dropped.
    struct BenchUboot {
        state: tempfile::TempDir,
        repo: std::path::PathBuf,
    }

    impl Drop for BenchUboot {
        fn drop(&mut self) {
            let _ = std::process::Command::new(self.repo.join("scripts/bench-board"))
                .arg("off")
                .arg(self.state.path())
                .status();
        }
    }

    #[tokio::test]
    #[ignore = "boots U-Boot on the emulated bench board: run by scripts/test"]
    async fn missing_load_addresses_are_named_and_the_board_files_are_set() {
        use std::time::Duration;
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let bench = BenchUboot {
            state: tempfile::tempdir().unwrap(),
            repo: repo.clone(),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let state = bench.state.path().display().to_string();
        let text = std::fs::read_to_string(repo.join("boards/bench-emulated.yaml"))
            .unwrap()
            .replace("/tmp/hilt-bench-emulated", &state)
            .replace("5560", &port.to_string());
        let file = bench.state.path().join("bench.yaml");
        std::fs::write(&file, &text).unwrap();
        let b = crate::plan::load_board(&file).unwrap();
        let (mut power, console) = super::resources::power_cycle_to_console(&b, &repo)
            .await
            .unwrap();
        let mut u = super::UBoot::new(console, super::config(&b, Duration::from_secs(60)).unwrap());
        u.stop_autoboot().await.unwrap();
        // As on a vendor U-Boot without them: `setenv NAME` deletes.
        u.run("setenv fdt_addr_r").await.unwrap();
        u.run("setenv ramdisk_addr_r").await.unwrap();
        let needed = ["kernel_addr_r", "ramdisk_addr_r", "fdt_addr_r"];
        let err = super::load_addresses(&mut u, &b, &needed)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("this U-Boot's environment has no ramdisk_addr_r, fdt_addr_r")
                && err.contains(
                    "`uboot: {addresses: {ramdisk_addr_r: \"0x...\", fdt_addr_r: \"0x...\"}}`"
                ),
            "{err}"
        );
        let with = crate::plan::load_board(&{
            let f = bench.state.path().join("with.yaml");
            std::fs::write(
                &f,
                text.replace(
                    "  autoboot_text: \"Hit any key to stop autoboot\"\n",
                    "  autoboot_text: \"Hit any key to stop autoboot\"\n  addresses: {ramdisk_addr_r: \"0x48000000\", fdt_addr_r: \"0x4f000000\"}\n",
                ),
            )
            .unwrap();
            f
        })
        .unwrap();
        super::load_addresses(&mut u, &with, &needed).await.unwrap();
        assert_eq!(
            u.getenv("fdt_addr_r").await.unwrap().as_deref(),
            Some("0x4f000000")
        );
        assert_eq!(
            u.getenv("kernel_addr_r").await.unwrap().as_deref(),
            Some("0x40400000"),
            "U-Boot's own value is kept where the board file gives none"
        );
        power.off().await.unwrap();
    }

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
