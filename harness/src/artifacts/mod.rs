//! Everything a board boots and reads, built once and cached by content:
//! kernels from Debian packages, the initramfs, the dataset, the erofs
//! image and its verity tree, and the emulated board's disks.

pub mod cache;
pub mod disk;
pub mod initramfs;
pub mod kernel;
pub mod media;
pub mod modules_archive;
pub mod root_initrd;

pub use cache::Cache;
pub use initramfs::build_initramfs;
pub use kernel::prepare_kernel;
pub use media::{build_media, Media};

use std::path::{Path, PathBuf};

use anyhow::Context;
use hilt_kernels::{normalize_module_name, Busybox, Kernel, Module, PackageRef};

use crate::plan::{BoardFile, Plan};

/// Modules the board needs, by name; the kernel's own dependencies are
/// added and built-ins skipped when the load order is resolved.
pub const BOARD_MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_console",
    "virtio_blk",
    "dm-mod",
    "dm-verity",
    "erofs",
    "zram",
    "sdhci",
    "sdhci-pci",
    "mmc_block",
    "ramoops",
];

#[derive(Clone)]
pub struct BootKernel {
    pub kernel: Kernel,
    pub modules: Vec<Module>,
    pub builtin: Vec<String>,
    /// What the plan adds to every board's list (its data filesystem).
    plan_modules: Vec<String>,
}

impl BootKernel {
    pub(super) fn resolved(
        kernel: Kernel,
        wanted: &[&str],
        plan_modules: Vec<String>,
    ) -> Result<Self, hilt_kernels::Error> {
        let plan = kernel.plan(wanted)?;
        Ok(BootKernel {
            kernel,
            modules: plan.modules,
            builtin: plan.builtin,
            plan_modules,
        })
    }

    /// The kernel with the modules `plan` needs on any board: the driver of
    /// its data filesystem (nothing when built in).
    pub fn for_plan(&self, plan: &Plan) -> anyhow::Result<BootKernel> {
        let Some(d) = &plan.storage.data else {
            return Ok(self.clone());
        };
        let name = d.fs.name();
        let mut wanted: Vec<&str> = BOARD_MODULES.to_vec();
        wanted.push(name);
        let k = &self.kernel;
        Self::resolved(k.clone(), &wanted, vec![name.to_string()]).with_context(|| {
            format!(
                "storage.data: kernel {} ({} {}) has no {name}, neither built in nor as a module: \
                 pick a kernel that has it, or build one with kernels/configs/{name}.config",
                k.release, k.package, k.package_version
            )
        })
    }

    /// The kernel as `board` boots it: the modules every board gets, the
    /// plan's, then those its file names under `initramfs.modules`, each
    /// resolved with its dependencies from this kernel. A name the kernel
    /// has built in adds nothing (it joins `builtin`).
    pub fn for_board(&self, board: &BoardFile) -> anyhow::Result<BootKernel> {
        let Some(extra) = board.initramfs.as_ref().map(|i| &i.modules) else {
            return Ok(self.clone());
        };
        let mut wanted: Vec<&str> = BOARD_MODULES.to_vec();
        wanted.extend(self.plan_modules.iter().map(String::as_str));
        wanted.extend(extra.iter().map(String::as_str));
        let k = &self.kernel;
        Self::resolved(k.clone(), &wanted, self.plan_modules.clone()).map_err(|e| match e {
            hilt_kernels::Error::ModuleNotFound { ref name, .. }
                if extra.iter().any(|m| normalize_module_name(m) == *name) =>
            {
                anyhow::anyhow!(
                    "board {}: initramfs.modules names {name}, which kernel {} ({} {}) has neither as a module under {} nor built in: check the name (`modinfo -F name` on the .ko), or whether this kernel's config enables the driver at all",
                    board.name,
                    k.release,
                    k.package,
                    k.package_version,
                    k.modules_dir.display()
                )
            }
            e => anyhow::Error::new(e).context(format!(
                "board {}: resolving its initramfs modules in kernel {}",
                board.name, k.release
            )),
        })
    }
}

pub fn fetch_kernel(cache: &Cache, package: &str) -> anyhow::Result<BootKernel> {
    let pkg = PackageRef::parse(package).with_context(|| format!("kernel package {package:?}"))?;
    let deb =
        hilt_kernels::fetch(&pkg, cache.root()).with_context(|| format!("fetching {package}"))?;
    let root = hilt_kernels::extract(&deb, cache.root())?;
    let kernel = Kernel::from_extracted(&root, &deb.name, &deb.version)?;
    BootKernel::resolved(kernel, BOARD_MODULES, Vec::new())
        .context("resolving the board's kernel modules")
}

pub fn fetch_busybox(cache: &Cache) -> anyhow::Result<Busybox> {
    let pkg = PackageRef::parse("busybox-static:arm64")?;
    let deb = hilt_kernels::fetch(&pkg, cache.root()).context("fetching busybox-static:arm64")?;
    let root = hilt_kernels::extract(&deb, cache.root())?;
    Ok(hilt_kernels::busybox_from_extracted(&root, &deb.version)?)
}

/// Where the static aarch64 agent is: `$HILT_AGENT`, else next to the
/// build output of this binary (target/agent/hilt-agent).
pub fn agent_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("HILT_AGENT") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let candidates = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("agent/hilt-agent"))
        .collect::<Vec<_>>();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no board agent binary (looked in {}): run scripts/build-agent, or set HILT_AGENT",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}
