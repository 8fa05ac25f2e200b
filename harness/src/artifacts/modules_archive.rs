//! A variant's modules as hilt installs them on a board that boots its own
//! Linux: `<release>/...` in a gzip'd tar, the whole tree as the kernel's
//! package installs it, or only the modules the board file names with
//! their dependencies (for boards whose storage or link makes hundreds of
//! MiB costly), always with the kernel's modules.builtin and
//! modules.order so that depmod on the board indexes them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hilt_kernels::Kernel;

use super::Cache;

pub fn build_modules_archive(
    cache: &Cache,
    kernel: &Kernel,
    only: Option<&[String]>,
) -> anyhow::Result<PathBuf> {
    let parent = kernel
        .modules_dir
        .parent()
        .with_context(|| format!("{} has no parent", kernel.modules_dir.display()))?;
    let release = &kernel.release;
    let members: Vec<String> = match only {
        None => vec![release.clone()],
        Some(names) => {
            let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
            let plan = kernel.plan(&wanted).with_context(|| {
                format!(
                    "resolving install.modules ({}) in kernel {release}",
                    names.join(", ")
                )
            })?;
            let mut m: Vec<String> = [
                "modules.order",
                "modules.builtin",
                "modules.builtin.modinfo",
            ]
            .iter()
            .filter(|f| kernel.modules_dir.join(f).exists())
            .map(|f| format!("{release}/{f}"))
            .collect();
            for module in &plan.modules {
                let rel = module.path.strip_prefix(parent).with_context(|| {
                    format!("{} is outside {}", module.path.display(), parent.display())
                })?;
                m.push(rel.to_string_lossy().into_owned());
            }
            m
        }
    };
    let key = Cache::key(&[kernel.image_sha256.as_bytes(), members.join(",").as_bytes()]);
    cache.entry("modules", &format!("{release}-{key}"), ".tar.gz", |out| {
        pack(parent, &members, out)
    })
}

fn pack(parent: &Path, members: &[String], out: &Path) -> anyhow::Result<()> {
    let o = std::process::Command::new("tar")
        .arg("-C")
        .arg(parent)
        // Fast gzip: the link to the board is the slow part.
        .args(["--use-compress-program=gzip -1", "-cf"])
        .arg(out)
        .args(members)
        .output()
        .context("running tar (with gzip) on this host to pack the variant's modules")?;
    if !o.status.success() {
        bail!(
            "packing the modules under {} failed: {}",
            parent.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}
