//! `hilt deploy`: puts one variant's kernel and initramfs on a real board,
//! by fastboot (a boot.img, booted once or flashed; over USB or TCP) or
//! into /boot over SSH, and prints what the board received with its SHA256
//! as JSON.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hilt_images::bootimg::{Addresses, BootImage, Header};
use hilt_transports::deploy::{self, BootFiles, Deployment};
use hilt_transports::ssh::SshSession;
use serde::Serialize;

use crate::artifacts::{self, Cache};
use crate::board::resources;
use crate::plan::{BoardFile, ResolvedPlan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// `fastboot boot`: runs once from RAM, flashes nothing.
    FastbootBoot,
    /// `fastboot flash boot`, then reboot.
    FastbootFlash,
    /// kernel, initrd and dtb into the board's /boot over SSH.
    Ssh,
}

pub struct DeployArgs {
    pub variant: String,
    pub via: Via,
    /// Boot image header version: 2 or 4.
    pub header: u32,
    pub dtb: Option<PathBuf>,
    pub cmdline: String,
    pub partition: String,
    pub boot_dir: String,
}

#[derive(Serialize)]
struct Record<'a> {
    plan: &'a str,
    variant: &'a str,
    board: &'a str,
    kernel: &'a str,
    kernel_release: &'a str,
    kernel_image_sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_build_key: Option<&'a str>,
    deployment: Deployment,
}

pub async fn deploy(
    plan: &ResolvedPlan,
    board: &BoardFile,
    a: &DeployArgs,
) -> anyhow::Result<String> {
    let v = plan
        .plan
        .variants
        .iter()
        .find(|v| v.name == a.variant)
        .with_context(|| {
            let names: Vec<&str> = plan.plan.variants.iter().map(|v| v.name.as_str()).collect();
            format!(
                "no variant {:?} in the plan: expected one of {}",
                a.variant,
                names.join(", ")
            )
        })?;
    let cache = Cache::default_for(&crate::plan::home_for(&plan.path));
    let say = |m: &str| eprintln!("hilt: {m}");
    let (pk, initramfs) = {
        let (plan_path, kernel, name) = (plan.path.clone(), v.kernel.clone(), v.name.clone());
        let (cache, board) = (cache.clone(), board.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let pk = artifacts::prepare_kernel(&cache, &plan_path, &name, &kernel, &say)?;
            let busybox = artifacts::fetch_busybox(&cache)?;
            let agent = artifacts::agent_binary()?;
            let boot = pk.boot.for_board(&board)?;
            let initramfs = artifacts::build_initramfs(&cache, &boot, &busybox, &agent)?;
            Ok((pk, initramfs))
        })
        .await??
    };
    let kernel = std::fs::read(&pk.boot.kernel.image)?;
    let initrd = std::fs::read(&initramfs)?;
    let dtb = match &a.dtb {
        Some(p) => {
            Some(std::fs::read(p).with_context(|| format!("reading the dtb {}", p.display()))?)
        }
        None => None,
    };
    let limit = Duration::from_secs(30);
    let deployment = match a.via {
        Via::FastbootBoot | Via::FastbootFlash => {
            let header = match a.header {
                2 => Header::V2 {
                    page_size: 2048,
                    addresses: Addresses::default(),
                    board: String::new(),
                    dtb: dtb.context("a v2 boot image needs the board's dtb: pass --dtb FILE")?,
                },
                4 => Header::V4,
                h => anyhow::bail!("boot image header version {h}: expected 2 or 4"),
            };
            let img = BootImage {
                header,
                kernel: &kernel,
                ramdisk: &initrd,
                cmdline: a.cmdline.clone(),
                os_version: 0,
                os_patch_level: 0,
            }
            .to_bytes()?;
            let f = board
                .fastboot
                .as_ref()
                .with_context(|| format!("board {} declares no fastboot transport", board.name))?;
            let mut fb = resources::open_fastboot(f, limit).await?;
            if a.via == Via::FastbootBoot {
                deploy::fastboot_boot(&mut fb, &img).await?
            } else {
                deploy::fastboot_flash(&mut fb, &a.partition, &img).await?
            }
        }
        Via::Ssh => {
            let s = board
                .ssh
                .as_ref()
                .with_context(|| format!("board {} declares no ssh transport", board.name))?;
            let sess = SshSession::connect(&resources::ssh_config(s)).await?;
            let dtb_name = a
                .dtb
                .as_deref()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned());
            deploy::ssh_boot_files(
                &sess,
                &a.boot_dir,
                &BootFiles {
                    release: &pk.boot.kernel.release,
                    kernel: &kernel,
                    initrd: Some(&initrd),
                    dtb: dtb_name.as_deref().zip(dtb.as_deref()),
                },
            )
            .await?
        }
    };
    let rec = Record {
        plan: &plan.plan.name,
        variant: &v.name,
        board: &board.name,
        kernel: &pk.label,
        kernel_release: &pk.boot.kernel.release,
        kernel_image_sha256: &pk.boot.kernel.image_sha256,
        kernel_build_key: pk.build.as_ref().map(|b| b.key.as_str()),
        deployment,
    };
    Ok(serde_json::to_string_pretty(&rec)?)
}
