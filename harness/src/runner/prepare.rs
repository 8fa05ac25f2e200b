//! What a run prepares before it boots anything: each variant's kernel and
//! initramfs, and the media. `hilt fetch` does only this.

use std::path::PathBuf;

use anyhow::Context;

use crate::artifacts::{self, Cache};
use crate::board::KernelFiles;
use crate::plan::{BoardFile, ResolvedPlan};

pub struct PreparedVariant {
    /// The kernel, with the initramfs of a board whose file adds no modules.
    pub kernel: KernelFiles,
    /// The initramfs of each board whose file adds modules of its own.
    pub boards: Vec<BoardInitramfs>,
    /// The initrd installed with the kernel for each `install.root_modules`
    /// list among the run's boards.
    pub root_initrds: Vec<(Vec<String>, PathBuf)>,
    /// The modules installed with the kernel for each `install.modules`
    /// choice among the run's boards (None: the whole tree).
    pub module_archives: Vec<(Option<Vec<String>>, PathBuf)>,
    pub kernel_package: String,
    pub kernel_image_sha256: String,
    pub builtin_modules: Vec<String>,
    pub loaded_modules: Vec<String>,
    pub kernel_build: Option<hilt_kernels::source::Provenance>,
    pub kernel_prebuilt: Option<artifacts::kernel::PrebuiltRecord>,
}

/// A variant's initramfs for a board whose file adds modules.
pub struct BoardInitramfs {
    /// The board file's name (instances of it share this initramfs).
    pub board: String,
    /// What its `initramfs.modules` asked for.
    pub modules: Vec<String>,
    pub initramfs: PathBuf,
    /// Every module it loads, in order, and what the kernel had built in.
    pub loaded_modules: Vec<String>,
    pub builtin_modules: Vec<String>,
}

impl PreparedVariant {
    /// The kernel files `board` boots: its own initramfs if its file adds
    /// modules. Matched by the modules asked for, not the name, so that
    /// the copies of an emulated board (`<board>-2`) find theirs.
    pub fn for_board(&self, board: &BoardFile) -> KernelFiles {
        let own = board.initramfs.as_ref().and_then(|i| {
            self.boards
                .iter()
                .find(|b| b.modules == i.modules)
                .map(|b| b.initramfs.clone())
        });
        KernelFiles {
            variant: self.kernel.variant.clone(),
            image: self.kernel.image.clone(),
            initramfs: own.unwrap_or_else(|| self.kernel.initramfs.clone()),
            release: self.kernel.release.clone(),
            modules_archive: board.install.as_ref().and_then(|i| {
                self.module_archives
                    .iter()
                    .find(|(want, _)| *want == i.modules)
                    .map(|(_, p)| p.clone())
            }),
            root_initrd: board
                .install
                .as_ref()
                .and_then(|i| i.root_modules.as_ref())
                .and_then(|m| self.root_initrds.iter().find(|(want, _)| want == m))
                .map(|(_, p)| p.clone()),
        }
    }
}

pub fn prepare(
    plan: &ResolvedPlan,
    say: &dyn Fn(&str),
) -> anyhow::Result<(Vec<PreparedVariant>, artifacts::Media)> {
    let home = crate::plan::home_for(&plan.path);
    let cache = Cache::default_for(&home);
    let agent = artifacts::agent_binary()?;
    say("fetching busybox");
    let busybox = artifacts::fetch_busybox(&cache)?;
    let mut out = Vec::new();
    for v in &plan.plan.variants {
        let mut pk = artifacts::prepare_kernel(&cache, &plan.path, &v.name, &v.kernel, say)?;
        pk.boot = pk.boot.for_plan(&plan.plan)?;
        let k = &pk.boot;
        let initramfs = artifacts::build_initramfs(&cache, k, &busybox, &agent)?;
        let mut boards = Vec::new();
        for b in &plan.boards {
            let Some(own) = &b.initramfs else { continue };
            let bk = k.for_board(b)?;
            // Reported, not an error: a driver built in needs no loading.
            let built_in: Vec<String> = own
                .modules
                .iter()
                .map(|m| hilt_kernels::normalize_module_name(m))
                .filter(|m| bk.builtin.contains(m))
                .collect();
            say(&format!(
                "{}: board {}: initramfs loads {} modules for kernel {}{}",
                v.name,
                b.name,
                bk.modules.len(),
                bk.kernel.release,
                if built_in.is_empty() {
                    String::new()
                } else {
                    format!("; built in, so not added: {}", built_in.join(", "))
                }
            ));
            boards.push(BoardInitramfs {
                modules: own.modules.clone(),
                initramfs: artifacts::build_initramfs(&cache, &bk, &busybox, &agent)?,
                board: b.name.clone(),
                loaded_modules: bk.modules.iter().map(|m| m.name.clone()).collect(),
                builtin_modules: bk.builtin.clone(),
            });
        }
        let mut root_initrds: Vec<(Vec<String>, PathBuf)> = Vec::new();
        for b in &plan.boards {
            let Some(m) = b.install.as_ref().and_then(|i| i.root_modules.as_ref()) else {
                continue;
            };
            if root_initrds.iter().any(|(want, _)| want == m) {
                continue;
            }
            let initrd = artifacts::root_initrd::build_root_initrd(&cache, &k.kernel, m, &busybox)
                .with_context(|| format!("board {}", b.name))?;
            say(&format!(
                "{}: board {}: initrd for its root with {} for kernel {}",
                v.name,
                b.name,
                m.join(", "),
                k.kernel.release
            ));
            root_initrds.push((m.clone(), initrd));
        }
        let mut module_archives: Vec<(Option<Vec<String>>, PathBuf)> = Vec::new();
        for b in &plan.boards {
            let Some(i) = &b.install else { continue };
            if module_archives.iter().any(|(want, _)| *want == i.modules) {
                continue;
            }
            say(&format!(
                "{}: board {}: packing the modules of kernel {}",
                v.name, b.name, k.kernel.release
            ));
            let archive = artifacts::modules_archive::build_modules_archive(
                &cache,
                &k.kernel,
                i.modules.as_deref(),
            )
            .with_context(|| format!("board {}", b.name))?;
            module_archives.push((i.modules.clone(), archive));
        }
        out.push(PreparedVariant {
            boards,
            kernel: KernelFiles {
                variant: v.name.clone(),
                image: k.kernel.image.clone(),
                initramfs,
                release: k.kernel.release.clone(),
                modules_archive: None,
                root_initrd: None,
            },
            root_initrds,
            module_archives,
            kernel_package: pk.label.clone(),
            kernel_build: pk.build.clone(),
            kernel_prebuilt: pk.prebuilt.clone(),
            kernel_image_sha256: k.kernel.image_sha256.clone(),
            builtin_modules: k.builtin.clone(),
            loaded_modules: k.modules.iter().map(|m| m.name.clone()).collect(),
        });
    }
    let media = artifacts::build_media(&cache, &plan.plan, say)?;
    Ok((out, media))
}

/// `hilt fetch`: everything `hilt run` would prepare, without booting.
pub fn fetch_all(plan: &ResolvedPlan, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let (variants, media) = prepare(plan, say)?;
    for v in &variants {
        say(&format!(
            "{}: {} ({}), initramfs {}",
            v.kernel.variant,
            v.kernel_package,
            v.kernel.release,
            v.kernel.initramfs.display()
        ));
        for b in &v.boards {
            say(&format!(
                "{}: board {}: initramfs {} (loads {})",
                v.kernel.variant,
                b.board,
                b.initramfs.display(),
                b.loaded_modules.join(" ")
            ));
        }
    }
    say(&format!(
        "erofs image {} bytes, sha256 {}{}",
        media.provenance.erofs_bytes,
        media.provenance.erofs_sha256,
        media
            .provenance
            .verity_root_hash
            .as_ref()
            .map(|r| format!(", verity root {r}"))
            .unwrap_or_default()
    ));
    Ok(())
}
