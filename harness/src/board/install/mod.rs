//! A complete kernel install on a board that boots its own Linux: the
//! variant's Image beside the board's own kernel, its modules under
//! /lib/modules/<release> (the board's modprobe and initrd tools find them
//! there), and a boot entry in the layout the board file names that makes
//! the variant the default while keeping the board's own entries.
//!
//! The board's own configuration is saved first (`<conf>.hilt-orig`) and
//! every later install starts from it, so the board's known-good entry is
//! never lost and `restore` can write it back.

pub mod armbian;
pub mod boot_scr;
pub mod extlinux;
mod script;
mod scripted;
#[cfg(test)]
mod uboot_e2e;
pub mod uimage;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use hilt_transports::deploy::{self, DeployedFile};
use hilt_transports::ssh::shell_quote;

use crate::board::remote::Remote;
use crate::plan::{InstallCfg, InstallFallback, InstallLayout};

/// The variant's files on this host.
pub struct VariantKernel<'a> {
    pub variant: &'a str,
    pub release: &'a str,
    pub image: &'a [u8],
    /// Its modules, `<release>/...` in a gzip'd tar.
    pub modules_archive: &'a Path,
    /// The initrd hilt built for the board's root, if its file asks.
    pub root_initrd: Option<&'a Path>,
}

/// What one install wrote: the kernel first.
pub struct Written {
    pub kernel: DeployedFile,
    pub others: Vec<DeployedFile>,
}

/// A boot configuration is a few KiB; more is not one.
const CONF_LIMIT: usize = 1 << 20;

pub async fn install(
    remote: &(dyn Remote + 'static),
    cfg: &InstallCfg,
    k: &VariantKernel<'_>,
) -> anyhow::Result<Written> {
    match cfg.layout {
        InstallLayout::Extlinux => install_extlinux(remote, cfg, k).await,
        InstallLayout::BootScr => scripted::install_boot_scr(remote, cfg, k).await,
        InstallLayout::Armbian => scripted::install_armbian(remote, cfg, k).await,
    }
}

fn conf_path(cfg: &InstallCfg) -> String {
    format!(
        "{}/extlinux/extlinux.conf",
        cfg.boot_dir.trim_end_matches('/')
    )
}

async fn install_extlinux(
    remote: &(dyn Remote + 'static),
    cfg: &InstallCfg,
    k: &VariantKernel<'_>,
) -> anyhow::Result<Written> {
    let shell = remote.shell();
    let conf = conf_path(cfg);
    let orig = format!("{conf}.hilt-orig");
    let own = board_config(remote, &conf, &orig).await?;
    let (good_label, own_kernel) =
        extlinux::known_good(&own).with_context(|| format!("reading the board's {conf}"))?;
    let boot_name = extlinux::kernel_path_beside(&own_kernel, k.release);
    let on_board = board_path(&cfg.boot_dir, &boot_name);
    let kernel = deploy::install(shell, &on_board, k.image)
        .await
        .with_context(|| format!("installing the kernel of {} at {on_board}", k.variant))?;
    let mut others = vec![install_modules(remote, k).await?];
    let initrd_name = match k.root_initrd {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            // Not initrd.img-<release>: that name is the distribution's.
            let name = extlinux::beside(&own_kernel, &format!("initrd.hilt-{}", k.release));
            let on_board = board_path(&cfg.boot_dir, &name);
            others.push(
                deploy::install(shell, &on_board, &bytes)
                    .await
                    .with_context(|| {
                        format!("installing the initrd of {} at {on_board}", k.variant)
                    })?,
            );
            Some(name)
        }
        None => None,
    };
    // Armed before the entry names the variant: from then on a power on
    // counts towards the fallback.
    if cfg.fallback == Some(InstallFallback::Bootcount) {
        arm_bootcount(remote, &good_label).await?;
    }
    let text = extlinux::with_variant(
        &own,
        &boot_name,
        initrd_name.as_deref(),
        k.variant,
        k.release,
    )
    .with_context(|| format!("reading the board's {conf}"))?;
    others.push(
        deploy::install(shell, &conf, text.as_bytes())
            .await
            .with_context(|| format!("writing {conf}"))?,
    );
    Ok(Written { kernel, others })
}

/// U-Boot's environment as fw_setenv (libubootenv-tool) sets it.
async fn fw_setenv(
    remote: &(dyn Remote + 'static),
    vars: &[(&str, Option<&str>)],
) -> anyhow::Result<()> {
    let mut script = String::from("set -e");
    for (name, value) in vars {
        script.push_str(&format!("; fw_setenv {name}"));
        if let Some(v) = value {
            script.push_str(&format!(" {}", shell_quote(v)));
        }
    }
    let line = remote.as_root(&format!("sh -c {}", shell_quote(&script)));
    let (status, out, err) = remote
        .shell()
        .run(&line, Duration::from_secs(60))
        .await
        .with_context(|| format!("running fw_setenv over {}", remote.via()))?;
    if status != 0 {
        bail!(
            "`{script}` failed ({status}): {} {}: `install: {{fallback: bootcount}}` needs fw_setenv (Debian's libubootenv-tool) with /etc/fw_env.config naming where U-Boot keeps its environment",
            out.trim(),
            err.trim()
        );
    }
    Ok(())
}

async fn arm_bootcount(remote: &(dyn Remote + 'static), good_label: &str) -> anyhow::Result<()> {
    let alt = format!("setenv pxe_label_override {good_label}; run bootcmd");
    fw_setenv(
        remote,
        &[
            ("bootlimit", Some("1")),
            ("altbootcmd", Some(&alt)),
            ("bootcount", Some("0")),
            ("upgrade_available", Some("1")),
        ],
    )
    .await
}

/// The variant came up: the next power on may boot it again.
pub async fn booted(remote: &(dyn Remote + 'static), cfg: &InstallCfg) -> anyhow::Result<()> {
    match (cfg.fallback, cfg.layout) {
        (None, _) => Ok(()),
        (Some(InstallFallback::Bootcount), InstallLayout::Extlinux) => {
            fw_setenv(remote, &[("bootcount", Some("0"))]).await
        }
        (Some(_), InstallLayout::BootScr | InstallLayout::Armbian) => {
            scripted::clear_mark(remote, cfg).await
        }
        (Some(InstallFallback::BootFile), InstallLayout::Extlinux) => {
            unreachable!("the board file's check refuses fallback: boot_file with layout: extlinux")
        }
    }
}

/// Puts back the board's own boot configuration (after its fallback
/// booted its own kernel) and disarms the fallback.
pub async fn restore(
    remote: &(dyn Remote + 'static),
    cfg: &InstallCfg,
) -> anyhow::Result<DeployedFile> {
    match cfg.layout {
        InstallLayout::Extlinux => restore_extlinux(remote, cfg).await,
        InstallLayout::BootScr => scripted::restore_boot_scr(remote, cfg).await,
        InstallLayout::Armbian => scripted::restore_armbian(remote, cfg).await,
    }
}

async fn restore_extlinux(
    remote: &(dyn Remote + 'static),
    cfg: &InstallCfg,
) -> anyhow::Result<DeployedFile> {
    let conf = conf_path(cfg);
    let orig = format!("{conf}.hilt-orig");
    let own = remote
        .pull(&orig, CONF_LIMIT)
        .await
        .with_context(|| format!("reading the board's own {conf}, saved as {orig}"))?;
    let rec = deploy::install(remote.shell(), &conf, &own)
        .await
        .with_context(|| format!("restoring {conf} from {orig}"))?;
    if cfg.fallback == Some(InstallFallback::Bootcount) {
        fw_setenv(
            remote,
            &[("upgrade_available", None), ("bootcount", Some("0"))],
        )
        .await?;
    }
    Ok(rec)
}

/// The board's own configuration: the saved copy once there is one (the
/// live file then names hilt's entry), else the live file, saved first.
async fn board_config(
    remote: &(dyn Remote + 'static),
    conf: &str,
    orig: &str,
) -> anyhow::Result<String> {
    let bytes = saved_original(remote, conf, orig)
        .await?
        .with_context(|| {
            format!("the board file's `install: {{layout: extlinux}}` needs {conf}, which U-Boot's distro boot reads")
        })?;
    String::from_utf8(bytes).with_context(|| format!("{conf} is not text"))
}

/// The board's own `path`: its saved copy `orig` once there is one, else
/// the live file, saved as `orig` first. None when neither exists.
async fn saved_original(
    remote: &(dyn Remote + 'static),
    path: &str,
    orig: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    let exists = |p: &str| format!("test -f {}", shell_quote(p));
    if remote
        .output(&exists(orig), Duration::from_secs(30))
        .await?
        .0
        == 0
    {
        let bytes = remote
            .pull(orig, CONF_LIMIT)
            .await
            .with_context(|| format!("reading the board's own {path}, saved as {orig}"))?;
        return Ok(Some(bytes));
    }
    if remote
        .output(&exists(path), Duration::from_secs(30))
        .await?
        .0
        != 0
    {
        return Ok(None);
    }
    let bytes = remote
        .pull(path, CONF_LIMIT)
        .await
        .with_context(|| format!("reading {path}"))?;
    deploy::install(remote.shell(), orig, &bytes)
        .await
        .with_context(|| format!("saving the board's own {path} as {orig}"))?;
    Ok(Some(bytes))
}

/// A shell script run as root on the board; its stdout.
async fn root_sh(
    remote: &(dyn Remote + 'static),
    script: &str,
    what: &str,
) -> anyhow::Result<String> {
    let line = remote.as_root(&format!("sh -c {}", shell_quote(script)));
    let (status, out, err) = remote
        .shell()
        .run(&line, Duration::from_secs(60))
        .await
        .with_context(|| format!("{what} over {}", remote.via()))?;
    if status != 0 {
        bail!(
            "{what}: `{script}` failed ({status}): {} {}",
            out.trim(),
            err.trim()
        );
    }
    Ok(out)
}

/// A path the bootloader reads, as a file on the running board: the
/// bootloader reads the partition mounted at `boot_dir`, unless the path
/// already names that directory (/boot on the root partition).
fn board_path(boot_dir: &str, boot_name: &str) -> String {
    let dir = boot_dir.trim_end_matches('/');
    if boot_name.starts_with(&format!("{dir}/")) {
        boot_name.to_string()
    } else {
        format!("{dir}/{}", boot_name.trim_start_matches('/'))
    }
}

/// The variant's modules, then depmod so that modprobe finds them
/// (Debian's postinst does the same).
async fn install_modules(
    remote: &(dyn Remote + 'static),
    k: &VariantKernel<'_>,
) -> anyhow::Result<DeployedFile> {
    let archive = std::fs::read(k.modules_archive)
        .with_context(|| format!("reading {}", k.modules_archive.display()))?;
    let staged = format!("{}/hilt-modules.tar.gz", remote.scratch());
    let sha256 = remote
        .shell()
        .push(&archive, &staged, 0o600)
        .await
        .with_context(|| format!("pushing the modules of {} over {}", k.release, remote.via()))?;
    let dest = format!("/lib/modules/{}", k.release);
    let new = format!("{dest}.hilt-new");
    // Unpacked beside the old tree and moved into place, so that a failed
    // unpack leaves what was there.
    let script = format!(
        "set -e; rm -rf {new}; mkdir -p {new}; tar -xzf {staged} -C {new}; rm -f {staged}; rm -rf {dest}; mv {new}/{rel} {dest}; rmdir {new}; depmod {rel}; sync",
        new = shell_quote(&new),
        staged = shell_quote(&staged),
        dest = shell_quote(&dest),
        rel = shell_quote(k.release),
    );
    let line = remote.as_root(&format!("sh -c {}", shell_quote(&script)));
    let (status, out, err) = remote
        .shell()
        .run(&line, Duration::from_secs(900))
        .await
        .with_context(|| {
            format!(
                "unpacking the modules of {} over {}",
                k.release,
                remote.via()
            )
        })?;
    if status != 0 {
        bail!(
            "installing the modules of {} in {dest} failed ({status}): {} {}: the board needs tar with gzip and depmod (kmod or busybox), and room under /lib/modules",
            k.release,
            out.trim(),
            err.trim()
        );
    }
    Ok(DeployedFile {
        name: dest,
        bytes: archive.len() as u64,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn boot_paths_map_to_the_partition_mounted_at_boot_dir() {
        assert_eq!(super::board_path("/boot", "/vmlinuz-R"), "/boot/vmlinuz-R");
        assert_eq!(
            super::board_path("/boot/", "/boot/vmlinuz-R"),
            "/boot/vmlinuz-R"
        );
        assert_eq!(
            super::board_path("/boot", "/bootx/Image"),
            "/boot/bootx/Image"
        );
    }
}
