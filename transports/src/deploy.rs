//! Putting a variant's kernel on a real board, and recording exactly what
//! went there: every deployment returns the SHA256 of what the board got.
//!
//! - [`fastboot_boot`]: `fastboot boot boot.img`, runs once without flashing;
//! - [`fastboot_flash`]: `fastboot flash boot boot.img`;
//! - [`ssh_boot_files`]: kernel, initrd and dtb copied into /boot over SSH,
//!   each read back and checked, then renamed into place so the board never
//!   sees a half-written kernel under its final name.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::fastboot::{Fastboot, FastbootError, FastbootIo};
use crate::flash::{BoardShell, FlashError};
use crate::ssh::{shell_quote, SshError, SshSession};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// `fastboot-boot`, `fastboot-flash:<partition>` or `ssh:/boot`.
    pub method: String,
    /// Each file or image the board received and its SHA256.
    pub files: Vec<DeployedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

fn digest(name: &str, data: &[u8]) -> DeployedFile {
    DeployedFile {
        name: name.to_string(),
        bytes: data.len() as u64,
        sha256: hex::encode(Sha256::digest(data)),
    }
}

/// Boots `boot_img` once from RAM; what is flashed stays as it was.
pub async fn fastboot_boot<IO: FastbootIo>(
    fb: &mut Fastboot<IO>,
    boot_img: &[u8],
) -> Result<Deployment, FastbootError> {
    fb.boot(boot_img).await?;
    Ok(Deployment {
        method: "fastboot-boot".into(),
        files: vec![digest("boot.img", boot_img)],
    })
}

/// Flashes `boot_img` to `partition` (normally `boot`) and reboots into it.
pub async fn fastboot_flash<IO: FastbootIo>(
    fb: &mut Fastboot<IO>,
    partition: &str,
    boot_img: &[u8],
) -> Result<Deployment, FastbootError> {
    fb.flash(partition, boot_img).await?;
    fb.reboot().await?;
    Ok(Deployment {
        method: format!("fastboot-flash:{partition}"),
        files: vec![digest("boot.img", boot_img)],
    })
}

/// What goes into the board's /boot, named the Debian way so flash-kernel,
/// extlinux or a boot.scr that loads `vmlinuz-<release>` finds it.
pub struct BootFiles<'a> {
    pub release: &'a str,
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    /// File name under /boot and contents, e.g. `("meson-g12b-a311d-khadas-vim3.dtb", ..)`.
    pub dtb: Option<(&'a str, &'a [u8])>,
}

/// Writes one file on the board (over SSH or adb) under a temporary name,
/// reads it back, and renames it into place: a power cut leaves the old
/// file or the new one, never half of one under the name a bootloader loads.
pub async fn install<S: BoardShell + ?Sized>(
    shell: &S,
    path: &str,
    data: &[u8],
) -> Result<DeployedFile, FlashError> {
    let tmp = format!("{path}.hilt-new");
    let sha256 = shell.push(data, &tmp, 0o644).await?;
    let line = format!(
        "sync && mv -f {} {} && sync",
        shell_quote(&tmp),
        shell_quote(path)
    );
    let (status, _, err) = shell.run(&line, std::time::Duration::from_secs(60)).await?;
    if status != 0 {
        return Err(FlashError::Transport(format!(
            "moving {tmp} into place failed ({status}): {}",
            err.trim()
        )));
    }
    Ok(DeployedFile {
        name: path.to_string(),
        bytes: data.len() as u64,
        sha256,
    })
}

/// Copies `files` into `boot_dir` (normally `/boot`) over SSH.
pub async fn ssh_boot_files(
    sess: &SshSession,
    boot_dir: &str,
    files: &BootFiles<'_>,
) -> Result<Deployment, SshError> {
    let mut items: Vec<(String, &[u8])> =
        vec![(format!("vmlinuz-{}", files.release), files.kernel)];
    if let Some(i) = files.initrd {
        items.push((format!("initrd.img-{}", files.release), i));
    }
    if let Some((name, d)) = files.dtb {
        if name.contains('/') || name.is_empty() {
            return Err(SshError::Other(format!(
                "dtb name {name:?}: expected a plain file name"
            )));
        }
        items.push((name.to_string(), d));
    }
    let mut out = Vec::new();
    for (name, data) in items {
        let file = install(sess, &format!("{boot_dir}/{name}"), data)
            .await
            .map_err(|e| SshError::Other(e.to_string()))?;
        out.push(file);
    }
    Ok(Deployment {
        method: format!("ssh:{boot_dir}"),
        files: out,
    })
}
