//! A variant's kernel, whatever the plan names: a Debian package, a
//! prebuilt Image or .deb, or a source tree hilt builds.

use std::path::Path;

use anyhow::Context;
use hilt_kernels::source::{self, ConfigBase, PatchStep, Provenance, SourceSpec, TreeSource};
use hilt_kernels::{FetchedDeb, Kernel};
use serde::Serialize;

use super::{fetch_kernel, sha256_file, BootKernel, Cache, BOARD_MODULES};
use crate::plan::{plan_relative, KernelSource, PrebuiltCfg, SourceCfg};

pub struct PreparedKernel {
    pub boot: BootKernel,
    /// What run.json calls the kernel's package: the Debian package, or
    /// `source:<tree>` / `prebuilt:<file>`.
    pub label: String,
    pub build: Option<Provenance>,
    pub prebuilt: Option<PrebuiltRecord>,
}

/// What was taken from the user for a prebuilt kernel.
#[derive(Debug, Clone, Serialize)]
pub struct PrebuiltRecord {
    pub origin: String,
    pub sha256: String,
}

pub fn prepare_kernel(
    cache: &Cache,
    plan_path: &Path,
    variant: &str,
    src: &KernelSource,
    say: &dyn Fn(&str),
) -> anyhow::Result<PreparedKernel> {
    match src {
        KernelSource::Debian(pkg) => {
            say(&format!("{variant}: fetching {pkg}"));
            let k = fetch_kernel(cache, pkg)?;
            Ok(PreparedKernel {
                label: format!("{}={}", k.kernel.package, k.kernel.package_version),
                boot: k,
                build: None,
                prebuilt: None,
            })
        }
        KernelSource::Prebuilt(p) => prebuilt(cache, plan_path, p),
        KernelSource::Source(s) => from_source(cache, plan_path, variant, s, say),
    }
}

fn boot_kernel(kernel: Kernel) -> anyhow::Result<BootKernel> {
    let release = kernel.release.clone();
    BootKernel::resolved(kernel, BOARD_MODULES, Vec::new()).with_context(|| {
        format!(
            "kernel {release}: resolving the board's modules (with a source build, set them =y in the config)"
        )
    })
}

fn from_source(
    cache: &Cache,
    plan_path: &Path,
    variant: &str,
    s: &SourceCfg,
    say: &dyn Fn(&str),
) -> anyhow::Result<PreparedKernel> {
    let rel = |v: &str| plan_relative(plan_path, v);
    let tree = match (&s.debian, &s.path) {
        (Some(pkg), _) => TreeSource::Debian(pkg.clone()),
        (None, Some(p)) => TreeSource::Path(rel(p)),
        (None, None) => {
            anyhow::bail!("variant {variant}: a source kernel needs `debian:` or `path:`")
        }
    };
    let config = if s.config == "board" {
        ConfigBase::Board
    } else if crate::plan::is_config_target(&s.config) {
        ConfigBase::Defconfig(s.config.clone())
    } else {
        ConfigBase::File(rel(&s.config))
    };
    let mut patches = Vec::new();
    for (list, reverse) in [(&s.revert, true), (&s.patches, false)] {
        for p in list {
            patches.push(PatchStep::read(&rel(p), reverse)?);
        }
    }
    let spec = SourceSpec {
        tree,
        config,
        fragments: s.fragments.iter().map(|f| rel(f)).collect(),
        patches,
    };
    let built = source::build(&spec, cache.root(), &mut |m| {
        say(&format!("{variant}: {m}"))
    })
    .with_context(|| format!("variant {variant}: building its kernel from source"))?;
    let p = built.provenance;
    let kernel = Kernel::from_extracted(&built.root, &format!("source:{}", p.tree.origin), &p.key)?;
    Ok(PreparedKernel {
        label: format!("source:{} ({})", p.tree.origin, &p.key[..12]),
        boot: boot_kernel(kernel)?,
        build: Some(p),
        prebuilt: None,
    })
}

fn prebuilt(cache: &Cache, plan_path: &Path, p: &PrebuiltCfg) -> anyhow::Result<PreparedKernel> {
    let rel = |v: &str| plan_relative(plan_path, v);
    if let Some(deb) = &p.deb {
        let path = rel(deb);
        let sha = sha256_file(&path).with_context(|| format!("reading {}", path.display()))?;
        let field = |f: &str| -> anyhow::Result<String> {
            let out = std::process::Command::new("dpkg-deb")
                .arg("-f")
                .arg(&path)
                .arg(f)
                .output()
                .context("running dpkg-deb (install dpkg)")?;
            anyhow::ensure!(
                out.status.success(),
                "{} is not a .deb: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let fetched = FetchedDeb {
            name: field("Package")?,
            version: field("Version")?,
            arch: field("Architecture")?,
            sha256: sha.clone(),
            path: path.clone(),
        };
        let root = hilt_kernels::extract(&fetched, cache.root())?;
        let kernel = Kernel::from_extracted(&root, &fetched.name, &fetched.version)?;
        return Ok(PreparedKernel {
            label: format!("prebuilt:{}={}", fetched.name, fetched.version),
            boot: boot_kernel(kernel)?,
            build: None,
            prebuilt: Some(PrebuiltRecord {
                origin: path.display().to_string(),
                sha256: sha,
            }),
        });
    }
    let image = rel(p.image.as_deref().context("prebuilt: `image:` or `deb:`")?);
    let image_sha = sha256_file(&image).with_context(|| format!("reading {}", image.display()))?;
    let modules = rel(p
        .modules
        .as_deref()
        .context("prebuilt: `image:` needs `modules:` (lib/modules/<release>)")?);
    let release = modules
        .file_name()
        .context("modules: expected lib/modules/<release>")?
        .to_string_lossy()
        .into_owned();
    let modules_hash = source::hash_tree(&modules)?;
    let key = Cache::key(&[
        image_sha.as_bytes(),
        modules_hash.as_bytes(),
        release.as_bytes(),
    ]);
    let root = prebuilt_root(cache, &key, &image, &modules, &release)?;
    let kernel = Kernel::from_extracted(&root, "prebuilt", &key)?;
    Ok(PreparedKernel {
        label: format!("prebuilt:{}", image.display()),
        boot: boot_kernel(kernel)?,
        build: None,
        prebuilt: Some(PrebuiltRecord {
            origin: image.display().to_string(),
            sha256: image_sha,
        }),
    })
}

/// The cache entry of a prebuilt kernel, laid out like an unpacked package
/// so that the same reader finds the Image, its modules and its built-in
/// list. The modules are taken into the entry, not linked to: the entry
/// outlives the user's directory. An entry from a hilt that linked to them,
/// its link now dangling, is made again.
fn prebuilt_root(
    cache: &Cache,
    key: &str,
    image: &Path,
    modules: &Path,
    release: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let make = |out: &Path| -> anyhow::Result<()> {
        std::fs::create_dir_all(out.join("boot"))?;
        std::fs::copy(image, out.join("boot").join(format!("vmlinuz-{release}")))?;
        let lib = out.join("lib/modules");
        std::fs::create_dir_all(&lib)?;
        Ok(link_or_copy_tree(modules, &lib.join(release))?)
    };
    let root = cache.entry("prebuilt", key, "", make)?;
    if root.join("lib/modules").join(release).is_dir() {
        return Ok(root);
    }
    std::fs::remove_dir_all(&root)
        .with_context(|| format!("removing the stale cache entry {}", root.display()))?;
    cache.entry("prebuilt", key, "", make)
}

/// `from`'s tree at `to`: files hard-linked where both are on one
/// filesystem (a module tree is hundreds of MB), copied where not;
/// symbolic links kept as they are.
fn link_or_copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            link_or_copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_kernel(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let modules = dir.join("lib/modules/6.1.0-test");
        std::fs::create_dir_all(modules.join("kernel/fs")).unwrap();
        std::fs::write(modules.join("kernel/fs/erofs.ko"), b"module").unwrap();
        std::fs::write(modules.join("modules.builtin"), b"").unwrap();
        std::os::unix::fs::symlink("/nonexistent/build", modules.join("build")).unwrap();
        let image = dir.join("Image");
        std::fs::write(&image, b"image").unwrap();
        (image, modules)
    }

    #[test]
    fn a_prebuilt_entry_outlives_the_users_module_tree() {
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(cache_dir.path().to_path_buf());
        let user = tempfile::tempdir().unwrap();
        let (image, modules) = user_kernel(user.path());
        let root = prebuilt_root(&cache, "k", &image, &modules, "6.1.0-test").unwrap();
        drop(user);
        let tree = root.join("lib/modules/6.1.0-test");
        assert_eq!(
            std::fs::read(tree.join("kernel/fs/erofs.ko")).unwrap(),
            b"module"
        );
        assert_eq!(
            std::fs::read_link(tree.join("build")).unwrap(),
            Path::new("/nonexistent/build")
        );
    }

    #[test]
    fn an_entry_whose_module_link_dangles_is_made_again() {
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(cache_dir.path().to_path_buf());
        // As an earlier hilt left it: a link to a directory now gone.
        let stale = cache_dir.path().join("prebuilt/k/lib/modules");
        std::fs::create_dir_all(&stale).unwrap();
        std::os::unix::fs::symlink("/nonexistent/modules", stale.join("6.1.0-test")).unwrap();
        let user = tempfile::tempdir().unwrap();
        let (image, modules) = user_kernel(user.path());
        let root = prebuilt_root(&cache, "k", &image, &modules, "6.1.0-test").unwrap();
        assert!(root
            .join("lib/modules/6.1.0-test/kernel/fs/erofs.ko")
            .is_file());
    }
}
