//! Kernels built from source: a tree (Debian's `linux-source-*` or a local
//! directory), a base config, config fragments, and patches to apply or
//! revert, cross-compiled for arm64 and cached by content.
//!
//! Layout under the cache root:
//! - `kernel-trees/<tree>/src`: the tree, with the current variant's patches;
//! - `kernel-trees/<tree>/obj`: kbuild's object directory, shared by every
//!   variant of that tree, so a second variant recompiles only what differs;
//! - `kernel-builds/<key>/`: a finished kernel laid out like an unpacked
//!   Debian package (`boot/vmlinuz-<release>`, `boot/config-<release>`,
//!   `lib/modules/<release>/`) plus `provenance.json`;
//! - `kernel-builds/recipes/<recipe key>`: the build key a recipe produced.

mod config;
mod key;
mod make;
mod patch;
mod tree;

pub use config::{
    diff as config_diff, dropped, merge, parse as parse_config, render, ConfigDiff, Dropped,
    Symbols,
};
pub use key::{build_key, recipe_key};
pub use make::CROSS_COMPILE;
pub use patch::{run_patch, PatchStep};
pub use tree::{hash_tree, TreeInfo, TreeSource};

use std::fs;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::digest::{sha256_bytes, sha256_file};
use crate::Error;
use make::Kbuild;
use patch::TreeState;
use tree::Tree;

/// hilt's board-sized config for the emulated board: a fragment applied
/// over `allnoconfig`, everything built in, CONFIG_PREEMPT=y.
pub const BOARD_CONFIG: &str = include_str!("../../configs/board-virt.config");

/// Where the config starts, before fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigBase {
    /// [`BOARD_CONFIG`] over allnoconfig.
    Board,
    /// A kbuild config target, e.g. `defconfig`.
    Defconfig(String),
    /// A full `.config` file.
    File(PathBuf),
}

impl ConfigBase {
    fn describe(&self) -> String {
        match self {
            ConfigBase::Board => "board (hilt board-virt.config over allnoconfig)".into(),
            ConfigBase::Defconfig(t) => format!("make {t}"),
            ConfigBase::File(p) => format!("file {}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub tree: TreeSource,
    pub config: ConfigBase,
    pub fragments: Vec<PathBuf>,
    /// Applied in order: reverts (reverse: true) and patches as the plan lists them.
    pub patches: Vec<PatchStep>,
}

/// Everything needed to say what a kernel is and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub key: String,
    pub recipe_key: String,
    pub tree: TreeInfo,
    pub release: String,
    pub config_base: String,
    pub fragments: Vec<FileDigest>,
    pub patches: Vec<PatchRecord>,
    /// The final config against its base (before fragments).
    pub config_diff: Vec<String>,
    pub config_sha256: String,
    /// The GNU build id of vmlinux.
    pub build_id: String,
    pub image_sha256: String,
    pub compiler: String,
    pub build_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchRecord {
    pub path: String,
    pub sha256: String,
    /// `apply` or `revert`.
    pub action: String,
}

/// A kernel ready to boot, and whether this call built it.
#[derive(Debug, Clone)]
pub struct Built {
    /// Laid out like an unpacked kernel package: [`crate::Kernel::from_extracted`] reads it.
    pub root: PathBuf,
    pub provenance: Provenance,
    /// False when the cache already had it.
    pub built_now: bool,
}

/// Builds `spec` (or finds it in the cache), calling `progress` with
/// one-line status updates.
pub fn build(
    spec: &SourceSpec,
    cache: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Built, Error> {
    check_tools()?;
    let compiler = make::compiler_version()?;
    progress("identifying the source tree");
    let tree = Tree::resolve(&spec.tree, cache)?;
    let fragments = spec
        .fragments
        .iter()
        .map(|p| {
            let bytes = fs::read(p).map_err(|e| Error::io(p, e))?;
            Ok((p.display().to_string(), bytes))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let base_id = match &spec.config {
        ConfigBase::Board => format!("board:{}", sha256_bytes(BOARD_CONFIG.as_bytes())),
        ConfigBase::Defconfig(t) => format!("target:{t}"),
        ConfigBase::File(p) => format!("file:{}", sha256_file(p)?),
    };
    let recipe = recipe_key(
        &tree.info.identity,
        &base_id,
        &fragments,
        &spec.patches,
        &compiler,
    );

    let builds = cache.join("kernel-builds");
    let recipes = builds.join("recipes");
    fs::create_dir_all(&recipes).map_err(|e| Error::io(&recipes, e))?;
    if let Ok(k) = fs::read_to_string(recipes.join(&recipe)) {
        if let Some(b) = load_built(&builds.join(k.trim()))? {
            progress(&format!(
                "cached kernel {} ({})",
                b.provenance.key, b.provenance.release
            ));
            return Ok(b);
        }
    }

    let work = cache.join("kernel-trees").join(&tree.dir_name);
    fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let _lock = lock(&work.join("lock"))?;
    let src = work.join("src");
    if !src.is_dir() {
        progress(&format!("unpacking {}", tree.info.origin));
        tree.populate(&src)?;
    }
    let obj = work.join("obj");
    fs::create_dir_all(&obj).map_err(|e| Error::io(&obj, e))?;

    progress(&format!("patching ({} step(s))", spec.patches.len()));
    TreeState::load(work.join("patches.json"))?.switch_to(&src, &spec.patches)?;

    progress(&format!("configuring: {}", spec.config.describe()));
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut kb = Kbuild {
        src: src.clone(),
        obj: obj.clone(),
        jobs,
        build_version: None,
    };
    let (base, final_cfg) = configure(&kb, &work, spec)?;
    let final_text =
        fs::read_to_string(obj.join(".config")).map_err(|e| Error::io(obj.join(".config"), e))?;
    let key = build_key(&tree.info.identity, &final_text, &spec.patches);
    let out = builds.join(&key);
    if let Some(b) = load_built(&out)? {
        fs::write(recipes.join(&recipe), &key).map_err(|e| Error::io(recipes.join(&recipe), e))?;
        progress(&format!("cached kernel {key} ({})", b.provenance.release));
        return Ok(b);
    }

    kb.build_version = Some(key[..12].to_string());
    let log = work.join(format!("build-{key}.log"));
    let _ = fs::remove_file(&log);
    progress(&format!(
        "building kernel {key} with {jobs} jobs (log: {})",
        log.display()
    ));
    let start = Instant::now();
    let modules = final_cfg
        .get("CONFIG_MODULES")
        .cloned()
        .flatten()
        .as_deref()
        == Some("y");
    let targets: &[&str] = if modules {
        &["Image", "modules"]
    } else {
        &["Image"]
    };
    kb.build(targets, &log, Duration::from_secs(15), progress)?;
    let seconds = start.elapsed().as_secs_f64();

    let release = fs::read_to_string(obj.join("include/config/kernel.release"))
        .map_err(|e| Error::io(obj.join("include/config/kernel.release"), e))?
        .trim()
        .to_string();
    let tmp = builds.join(format!(".{key}.tmp{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let boot = tmp.join("boot");
    fs::create_dir_all(&boot).map_err(|e| Error::io(&boot, e))?;
    let image = boot.join(format!("vmlinuz-{release}"));
    fs::copy(obj.join("arch/arm64/boot/Image"), &image).map_err(|e| Error::io(&image, e))?;
    fs::write(boot.join(format!("config-{release}")), &final_text)
        .map_err(|e| Error::io(boot.join("config"), e))?;
    let moddir = tmp.join("lib/modules").join(&release);
    if modules {
        let mut c = std::process::Command::new("make");
        c.current_dir(&src)
            .env("ARCH", "arm64")
            .env("CROSS_COMPILE", CROSS_COMPILE)
            .arg(format!("O={}", obj.display()))
            .arg(format!("INSTALL_MOD_PATH={}", tmp.display()))
            .arg("INSTALL_MOD_STRIP=1")
            .arg("modules_install");
        crate::cmd::output(c)?;
        // Links back into the work tree would dangle once it moves on.
        for l in ["build", "source"] {
            let _ = fs::remove_file(moddir.join(l));
        }
    }
    fs::create_dir_all(&moddir).map_err(|e| Error::io(&moddir, e))?;
    if !moddir.join("modules.builtin").exists() {
        // Without module support kbuild still lists what is built in.
        for f in ["modules.builtin", "modules.builtin.modinfo"] {
            if obj.join(f).is_file() {
                fs::copy(obj.join(f), moddir.join(f)).map_err(|e| Error::io(moddir.join(f), e))?;
            }
        }
    }
    let provenance = Provenance {
        key: key.clone(),
        recipe_key: recipe.clone(),
        tree: tree.info.clone(),
        release,
        config_base: spec.config.describe(),
        fragments: spec
            .fragments
            .iter()
            .zip(&fragments)
            .map(|(p, (_, b))| FileDigest {
                path: p.display().to_string(),
                sha256: sha256_bytes(b),
            })
            .collect(),
        patches: spec
            .patches
            .iter()
            .map(|p| PatchRecord {
                path: p.path.display().to_string(),
                sha256: p.sha256.clone(),
                action: if p.reverse { "revert" } else { "apply" }.into(),
            })
            .collect(),
        config_diff: config::diff(&base, &final_cfg).changed,
        config_sha256: sha256_bytes(final_text.as_bytes()),
        build_id: build_id(&obj.join("vmlinux"))?,
        image_sha256: sha256_file(&image)?,
        compiler,
        build_seconds: (seconds * 10.0).round() / 10.0,
    };
    let pj = tmp.join("provenance.json");
    fs::write(
        &pj,
        serde_json::to_vec_pretty(&provenance).expect("serializes"),
    )
    .map_err(|e| Error::io(&pj, e))?;
    let _ = fs::copy(&log, tmp.join("build.log"));
    if out.exists() {
        fs::remove_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    }
    fs::rename(&tmp, &out).map_err(|e| Error::io(&out, e))?;
    fs::write(recipes.join(&recipe), &key).map_err(|e| Error::io(recipes.join(&recipe), e))?;
    Ok(Built {
        root: out,
        provenance,
        built_now: true,
    })
}

/// Everything kbuild and hilt call while building, checked up front so
/// the user gets one message naming all of them and the command to run.
fn check_tools() -> Result<(), Error> {
    let gcc = format!("{CROSS_COMPILE}gcc");
    let on_path = |t: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
    };
    let mut missing: Vec<String> = [
        "make",
        "bison",
        "flex",
        "bc",
        "patch",
        "tar",
        "xz",
        "perl",
        gcc.as_str(),
    ]
    .into_iter()
    .filter(|t| !on_path(t))
    .map(str::to_string)
    .collect();
    // modules_install runs depmod from /sbin whatever PATH says.
    if !["/sbin/depmod", "/usr/sbin/depmod"]
        .iter()
        .any(|p| Path::new(p).is_file())
    {
        missing.push("depmod".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::KernelBuildTools { missing })
    }
}

fn load_built(dir: &Path) -> Result<Option<Built>, Error> {
    let pj = dir.join("provenance.json");
    let Ok(bytes) = fs::read(&pj) else {
        return Ok(None);
    };
    let provenance: Provenance = serde_json::from_slice(&bytes).map_err(|e| {
        Error::artifact(
            &pj,
            format!("unreadable ({e}); delete {} to rebuild", dir.display()),
        )
    })?;
    Ok(Some(Built {
        root: dir.to_path_buf(),
        provenance,
        built_now: false,
    }))
}

/// Generates the base config, lays the fragments over it, lets kconfig
/// settle it, and checks that every fragment value survived. Returns the
/// base and the final config.
fn configure(kb: &Kbuild, work: &Path, spec: &SourceSpec) -> Result<(Symbols, Symbols), Error> {
    let dotconfig = kb.obj.join(".config");
    let board_frag = work.join("board-virt.config");
    let mut base_frags = Vec::new();
    match &spec.config {
        ConfigBase::Board => {
            fs::write(&board_frag, BOARD_CONFIG).map_err(|e| Error::io(&board_frag, e))?;
            kb.quiet(&["allnoconfig"], &[("KCONFIG_ALLCONFIG", &board_frag)])?;
            base_frags.push((
                PathBuf::from("board-virt.config"),
                config::parse(BOARD_CONFIG, &board_frag)?,
            ));
        }
        ConfigBase::Defconfig(t) => kb.quiet(&[t.as_str()], &[])?,
        ConfigBase::File(p) => {
            fs::copy(p, &dotconfig).map_err(|e| Error::io(p, e))?;
            kb.quiet(&["olddefconfig"], &[])?;
        }
    }
    let read = |p: &Path| -> Result<Symbols, Error> {
        config::parse(&fs::read_to_string(p).map_err(|e| Error::io(p, e))?, p)
    };
    let base = read(&dotconfig)?;
    let bad = config::dropped(&base, &base_frags);
    if !bad.is_empty() {
        return Err(config_dropped(bad));
    }
    let frags = spec
        .fragments
        .iter()
        .map(|p| Ok((p.clone(), read(p)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    if !frags.is_empty() {
        fs::write(&dotconfig, config::render(&config::merge(&base, &frags)))
            .map_err(|e| Error::io(&dotconfig, e))?;
        kb.quiet(&["olddefconfig"], &[])?;
    }
    let fin = read(&dotconfig)?;
    let bad = config::dropped(&fin, &frags);
    if !bad.is_empty() {
        return Err(config_dropped(bad));
    }
    Ok((base, fin))
}

fn config_dropped(bad: Vec<Dropped>) -> Error {
    Error::ConfigDropped {
        symbols: bad.iter().map(|d| d.to_string()).collect(),
    }
}

/// An exclusive lock held for the life of the returned file: two hilt runs
/// must not patch or build in one work tree at once.
fn lock(path: &Path) -> Result<fs::File, Error> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    // SAFETY: flock on a descriptor we own; it is released when `f` closes.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(f)
}

/// The GNU build id note of an ELF file, as hex.
fn build_id(vmlinux: &Path) -> Result<String, Error> {
    let data = fs::read(vmlinux).map_err(|e| Error::io(vmlinux, e))?;
    let elf = crate::elf::Elf::parse(&data).map_err(|reason| Error::Elf {
        path: vmlinux.into(),
        reason,
    })?;
    let note = elf
        .section(".notes")
        .ok()
        .flatten()
        .or_else(|| elf.section(".note.gnu.build-id").ok().flatten())
        .ok_or_else(|| Error::artifact(vmlinux, "no build id note"))?;
    parse_build_id(note).ok_or_else(|| Error::artifact(vmlinux, "no GNU build id in its notes"))
}

/// Walks ELF notes (namesz, descsz, type, name, desc; 4-byte aligned) for
/// NT_GNU_BUILD_ID (3) owned by "GNU".
fn parse_build_id(mut notes: &[u8]) -> Option<String> {
    let align = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let u = |i: usize| u32::from_le_bytes(notes[i..i + 4].try_into().unwrap()) as usize;
        let (namesz, descsz, kind) = (u(0), u(4), u(8));
        let name_end = 12 + align(namesz);
        let desc_end = name_end + align(descsz);
        if desc_end > notes.len() {
            return None;
        }
        if kind == 3 && &notes[12..12 + namesz] == b"GNU\0" {
            return Some(hex::encode(&notes[name_end..name_end + descsz]));
        }
        notes = &notes[desc_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_gnu_build_id_among_notes() {
        let mut n = Vec::new();
        // A Xen-style note first, then the build id.
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&1u32.to_le_bytes());
        n.extend_from_slice(b"Xen\0");
        n.extend_from_slice(&[1, 2, 3, 4]);
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&3u32.to_le_bytes());
        n.extend_from_slice(&3u32.to_le_bytes());
        n.extend_from_slice(b"GNU\0");
        n.extend_from_slice(&[0xab, 0xcd, 0xef, 0]);
        assert_eq!(parse_build_id(&n).as_deref(), Some("abcdef"));
        assert_eq!(parse_build_id(&n[..20]), None);
    }

    #[test]
    fn the_board_config_asks_for_what_the_board_needs() {
        let s = parse_config(BOARD_CONFIG, Path::new("board-virt.config")).unwrap();
        for sym in [
            "CONFIG_PREEMPT",
            "CONFIG_EROFS_FS",
            "CONFIG_EROFS_FS_ZIP",
            "CONFIG_DM_VERITY",
            "CONFIG_ZRAM",
            "CONFIG_MMC_SDHCI_PCI",
            "CONFIG_VIRTIO_MMIO",
            "CONFIG_VIRTIO_CONSOLE",
            "CONFIG_KPROBE_EVENTS",
            "CONFIG_PSTORE_RAM",
            "CONFIG_DETECT_HUNG_TASK",
            "CONFIG_PSI",
        ] {
            assert_eq!(s.get(sym).cloned().flatten().as_deref(), Some("y"), "{sym}");
        }
    }
}
