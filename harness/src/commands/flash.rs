//! `hilt flash BOARD IMAGE`: writes an image to a real board's storage with
//! the strategy its board file names, and records what landed where.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use hilt_transports::flash::{
    AdbShell, DdFlasher, FastbootFlasher, FlashImage, FlashRecord, Flasher,
};
use hilt_transports::ssh::SshSession;

use crate::board::{resources, uboot};
use crate::plan::{BoardFile, FlashCfg};

/// Long enough for a few hundred MB over USB 2 or 100 Mbit Ethernet.
const LIMIT: Duration = Duration::from_secs(1800);

pub struct FlashRequest {
    pub image: PathBuf,
    /// Overrides the partition the board file's `flash:` names.
    pub partition: Option<String>,
    pub verity_root_hash: Option<String>,
}

fn device<'a>(b: &'a BoardFile, partition: &str) -> anyhow::Result<&'a str> {
    b.partitions
        .get(partition)
        .map(String::as_str)
        .with_context(|| {
            format!(
                "board {}: partition {partition:?} is not in its `partitions:` table (known: {})",
                b.name,
                b.partitions.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
}

fn check_root_hash(h: &str) -> anyhow::Result<()> {
    if h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
        bail!("--root-hash {h:?}: expected 64 hex digits (a sha256 dm-verity root hash)");
    }
    Ok(())
}

/// `home` is the directory holding `boards/`: relative paths in the board
/// file are relative to it.
pub async fn flash(b: &BoardFile, home: &Path, req: &FlashRequest) -> anyhow::Result<FlashRecord> {
    if let Some(h) = &req.verity_root_hash {
        check_root_hash(h)?;
    }
    let cfg = b
        .flash
        .as_ref()
        .with_context(|| format!("board {} has no `flash:` method in its board file", b.name))?;
    let image = FlashImage::from_file(&req.image, req.verity_root_hash.clone())
        .with_context(|| format!("reading {}", req.image.display()))?;
    let part = |p: &String| req.partition.clone().unwrap_or_else(|| p.clone());
    let rec = match cfg {
        FlashCfg::SshDd { partition } => {
            let s = b
                .ssh
                .as_ref()
                .with_context(|| format!("board {}: ssh_dd needs an `ssh:` section", b.name))?;
            let session = SshSession::connect(&resources::ssh_config(s)).await?;
            DdFlasher {
                shell: session,
                device: device(b, &part(partition))?.to_string(),
                staging: "/tmp/hilt-flash.img".into(),
                limit: LIMIT,
            }
            .flash(&image)
            .await?
        }
        FlashCfg::AdbDd { partition } => {
            let a = b
                .adb
                .as_ref()
                .with_context(|| format!("board {}: adb_dd needs an `adb:` section", b.name))?;
            DdFlasher {
                shell: AdbShell {
                    server: resources::adb_server(a),
                    serial: Some(a.serial.clone()),
                },
                device: device(b, &part(partition))?.to_string(),
                staging: "/data/local/tmp/hilt-flash.img".into(),
                limit: LIMIT,
            }
            .flash(&image)
            .await?
        }
        FlashCfg::Fastboot { partition } => {
            let f = b.fastboot.as_ref().with_context(|| {
                format!("board {}: fastboot flashing needs a `fastboot:` section", b.name)
            })?;
            let mut fb = resources::open_fastboot(f, Duration::from_secs(10)).await?;
            FastbootFlasher {
                fastboot: &mut fb,
                partition: part(partition),
            }
            .flash(&image)
            .await?
        }
        FlashCfg::UbootMmc { .. } | FlashCfg::UbootBlock { .. } => {
            if req.partition.is_some() {
                bail!(
                    "board {}: --partition names a partition for fastboot and dd; U-Boot writes at the board file's start_block",
                    b.name
                );
            }
            uboot::flash_standalone(b, home, &image).await?
        }
        FlashCfg::QemuDisks => bail!(
            "board {}: the emulated board's disks are built by `hilt run` (their sha256 and verity root hash are in the run's run.json)",
            b.name
        ),
    };
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(flash: &str) -> BoardFile {
        let text = format!(
            "name: t\narch: arm64\nconsole: {{ serial: {{ device: /dev/null }} }}\npower: {{ command: {{ on: [true], off: [true] }} }}\nagent: ssh\nflash: {flash}\npartitions: {{ system: /dev/mmcblk1p5 }}\n"
        );
        serde_yaml_ng::from_str(&text).unwrap()
    }

    #[tokio::test]
    async fn errors_name_the_missing_piece() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("x.img");
        std::fs::write(&img, b"data").unwrap();
        let req = |partition: Option<&str>, hash: Option<&str>| FlashRequest {
            image: img.clone(),
            partition: partition.map(Into::into),
            verity_root_hash: hash.map(Into::into),
        };
        let e = flash(
            &board("{ ssh_dd: { partition: system } }"),
            dir.path(),
            &req(None, None),
        )
        .await
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("needs an `ssh:` section"),
            "{e:#}"
        );
        let e = flash(
            &board("{ adb_dd: { partition: system } }"),
            dir.path(),
            &req(Some("vendor"), None),
        )
        .await
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("needs an `adb:` section"),
            "{e:#}"
        );
        let e = flash(&board("qemu_disks"), dir.path(), &req(None, Some("zz")))
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("expected 64 hex digits"), "{e:#}");
        let b = board("qemu_disks");
        assert!(format!("{:#}", device(&b, "vendor").unwrap_err()).contains("known: system"));
    }
}
