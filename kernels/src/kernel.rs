//! A Debian `linux-image-*` package, extracted: the arm64 Image, its config and modules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::deps::{self, LoadPlan, Lookup, Module};
use crate::digest::sha256_file;
use crate::modinfo::{module_file_stem, normalize_module_name, ModInfo};
use crate::Error;

/// arm64 `Image` header magic ("ARM\x64"), at byte 56 per Documentation/arm64/booting.rst.
const ARM64_IMAGE_MAGIC: &[u8; 4] = b"ARM\x64";
const ARM64_IMAGE_MAGIC_OFFSET: usize = 56;

#[derive(Clone)]
pub struct Kernel {
    pub package: String,
    pub package_version: String,
    /// `uname -r` of this kernel, e.g. `6.1.0-44-arm64`.
    pub release: String,
    /// `boot/vmlinuz-<release>`: an uncompressed arm64 Image that QEMU's `-kernel` takes.
    pub image: PathBuf,
    pub image_sha256: String,
    /// `lib/modules/<release>`.
    pub modules_dir: PathBuf,
    /// `boot/config-<release>`, if the package ships it.
    pub config: Option<PathBuf>,
    config_values: HashMap<String, String>,
    /// Module files by normalized name.
    module_files: BTreeMap<String, PathBuf>,
    builtin: BuiltinSource,
    /// Alias -> module names. Building it reads every module file, so it is built only
    /// when a softdep names something that is not a module file name.
    aliases: OnceLock<Result<BTreeMap<String, BTreeSet<String>>, String>>,
}

/// Where "is this built in?" answers come from.
#[derive(Clone)]
enum BuiltinSource {
    /// Names from modules.builtin / modules.builtin.modinfo: authoritative.
    Listed(BTreeSet<String>),
    /// Without those lists the best available answer is `CONFIG_<NAME>=y`, which
    /// catches the common case of a symbol named after its module.
    ConfigGuess,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("package", &self.package)
            .field("package_version", &self.package_version)
            .field("release", &self.release)
            .field("image", &self.image)
            .field("image_sha256", &self.image_sha256)
            .field("modules_dir", &self.modules_dir)
            .field("config", &self.config)
            .field("module_files", &self.module_files.len())
            .finish_non_exhaustive()
    }
}

impl Kernel {
    /// Reads an extracted kernel package: finds the single `boot/vmlinuz-*`, checks that it
    /// is an uncompressed arm64 Image, hashes it, and indexes config and module files.
    pub fn from_extracted(
        root: &Path,
        package: &str,
        package_version: &str,
    ) -> Result<Kernel, Error> {
        let boot = root.join("boot");
        let entries = fs::read_dir(&boot).map_err(|e| Error::io(&boot, e))?;
        let mut releases = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&boot, e))?;
            if let Some(rel) = entry.file_name().to_string_lossy().strip_prefix("vmlinuz-") {
                releases.push(rel.to_string());
            }
        }
        let release = match releases.len() {
            1 => releases.remove(0),
            0 => {
                return Err(Error::artifact(
                    &boot,
                    "no vmlinuz-* here: not a kernel image package",
                ))
            }
            _ => {
                releases.sort();
                return Err(Error::artifact(
                    &boot,
                    format!(
                        "several kernels ({}), expected one per package",
                        releases.join(", ")
                    ),
                ));
            }
        };

        let image = boot.join(format!("vmlinuz-{release}"));
        check_arm64_image(&image)?;
        let image_sha256 = sha256_file(&image)?;

        // Debian 12 ships /lib/modules; merged-/usr releases ship /usr/lib/modules.
        let modules_dir = ["lib/modules", "usr/lib/modules"]
            .iter()
            .map(|d| root.join(d).join(&release))
            .find(|d| d.is_dir())
            .ok_or_else(|| Error::artifact(root, format!("no lib/modules/{release} directory")))?;

        let config_path = boot.join(format!("config-{release}"));
        let (config, config_values) = if config_path.is_file() {
            let text = fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
            (Some(config_path), parse_config(&text))
        } else {
            (None, HashMap::new())
        };

        let mut module_files = BTreeMap::new();
        index_modules(&modules_dir, &mut module_files)?;
        let builtin = read_builtin_lists(&modules_dir)?;

        Ok(Kernel {
            package: package.to_string(),
            package_version: package_version.to_string(),
            release,
            image,
            image_sha256,
            modules_dir,
            config,
            config_values,
            module_files,
            builtin,
            aliases: OnceLock::new(),
        })
    }

    /// The value of a kernel config symbol (`"CONFIG_ZRAM"` or `"ZRAM"`): `"y"`, `"m"`, a
    /// number, or a string without its quotes. None when unset or when there is no config.
    pub fn config_value(&self, key: &str) -> Option<String> {
        let key = if key.starts_with("CONFIG_") {
            key.to_string()
        } else {
            format!("CONFIG_{key}")
        };
        self.config_values.get(&key).cloned()
    }

    /// Config symbols starting with `prefix` and their values, sorted by name
    /// (e.g. `"CONFIG_PREEMPT"` gives every preemption setting that is set).
    pub fn config_matching(&self, prefix: &str) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .config_values
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    /// The module file for `name` (`-` and `_` are equivalent; `.ko` or compressed).
    pub fn find_module(&self, name: &str) -> Option<PathBuf> {
        self.module_files.get(&normalize_module_name(name)).cloned()
    }

    /// True if `name` is compiled into the kernel rather than shipped as a module.
    pub fn is_builtin(&self, name: &str) -> bool {
        let name = normalize_module_name(name);
        match &self.builtin {
            BuiltinSource::Listed(set) => set.contains(&name),
            BuiltinSource::ConfigGuess => {
                !self.module_files.contains_key(&name)
                    && self.config_value(&name.to_ascii_uppercase()).as_deref() == Some("y")
            }
        }
    }

    /// Module files to load for `wanted`, dependencies first, each once. Built-in names
    /// are left out; [`Kernel::plan`] reports them.
    pub fn load_order(&self, wanted: &[&str]) -> Result<Vec<Module>, Error> {
        Ok(self.plan(wanted)?.modules)
    }

    /// Like [`Kernel::load_order`], and also lists which requested modules (or their
    /// dependencies) are built in and so need no loading.
    pub fn plan(&self, wanted: &[&str]) -> Result<LoadPlan, Error> {
        deps::resolve(
            wanted,
            |name| {
                if let Some(path) = self.module_files.get(name) {
                    let info = ModInfo::read(path)?;
                    return Ok(Lookup::Module(Module {
                        name: info.name().unwrap_or_else(|| name.to_string()),
                        path: path.clone(),
                        depends: info.depends(),
                        softdeps: self.softdep_providers(&info.pre_softdeps())?,
                    }));
                }
                Ok(if self.is_builtin(name) {
                    Lookup::Builtin
                } else {
                    Lookup::Missing
                })
            },
            |name| Error::ModuleNotFound {
                name: name.to_string(),
                release: self.release.clone(),
                modules_dir: self.modules_dir.clone(),
            },
        )
    }
}

impl Kernel {
    /// Module files that satisfy softdep names, the way modprobe (libkmod) resolves them:
    /// a module name first, then every module with that alias, and only then built-in
    /// code (nothing to load). The order matters where a name is both: f2fs asks for
    /// "crc32", which is the built-in lib/crc32 and also the alias of the crypto driver
    /// f2fs actually needs (crc32_generic); stopping at the built-in, f2fs fails to mount
    /// with "Cannot load crc32 driver".
    fn softdep_providers(&self, names: &[String]) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for name in names {
            if self.module_files.contains_key(name) {
                out.push(name.clone());
            } else if let Some(providers) = self.alias_index()?.get(name) {
                out.extend(providers.iter().cloned());
            }
        }
        Ok(out)
    }

    fn alias_index(&self) -> Result<&BTreeMap<String, BTreeSet<String>>, Error> {
        let built = self.aliases.get_or_init(|| {
            let mut index: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (name, path) in &self.module_files {
                let info = ModInfo::read(path).map_err(|e| e.to_string())?;
                for alias in info.aliases() {
                    index.entry(alias).or_default().insert(name.clone());
                }
            }
            Ok(index)
        });
        built.as_ref().map_err(|reason| {
            Error::artifact(
                &self.modules_dir,
                format!("indexing module aliases: {reason}"),
            )
        })
    }
}

/// The kernel's own `linux_banner`, as /proc/version prints it on the board
/// that runs it: "Linux version RELEASE (builder) (compiler) #N SMP ...".
/// The release alone cannot tell two builds of one tree apart (a patched
/// and an unpatched kernel); the banner also carries the build's `uname -v`.
/// The Image also holds a format string and a placeholder from the build's
/// first link ("# SMP"); only the banner has `#` and the build number.
pub fn linux_banner(image: &[u8]) -> Option<String> {
    const START: &[u8] = b"Linux version ";
    let mut from = 0;
    while let Some(at) = image[from..]
        .windows(START.len())
        .position(|w| w == START)
        .map(|p| from + p)
    {
        let end = image[at..]
            .iter()
            .position(|&b| !(0x20..0x7f).contains(&b))
            .map_or(image.len(), |p| at + p);
        let text = &image[at..end];
        if text
            .windows(3)
            .any(|w| w[0] == b' ' && w[1] == b'#' && w[2].is_ascii_digit())
        {
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        from = at + START.len();
    }
    None
}

fn check_arm64_image(image: &Path) -> Result<(), Error> {
    let mut header = [0u8; 64];
    File::open(image)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| Error::io(image, e))?;
    let magic = &header[ARM64_IMAGE_MAGIC_OFFSET..ARM64_IMAGE_MAGIC_OFFSET + 4];
    if magic == ARM64_IMAGE_MAGIC {
        return Ok(());
    }
    let reason = if header.starts_with(&[0x1f, 0x8b]) {
        "gzip-compressed; QEMU's -kernel and booti want the uncompressed arm64 Image"
    } else if header.starts_with(b"MZ") && &header[4..8] == b"zimg" {
        "an EFI zboot (compressed) image; QEMU's -kernel and booti want the uncompressed arm64 Image"
    } else {
        "no arm64 Image magic \"ARM\\x64\" at offset 56: not an arm64 kernel"
    };
    Err(Error::artifact(image, reason))
}

/// Parses a kconfig `.config`. `# CONFIG_X is not set` lines are left out on purpose:
/// unset and absent mean the same thing to the kernel.
fn parse_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map(|v| v.replace("\\\"", "\"").replace("\\\\", "\\"))
                .unwrap_or_else(|| v.to_string());
            (k.to_string(), v)
        })
        .collect()
}

fn index_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<(), Error> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io(dir, e))?;
    // Sorted so that, should two files claim one name, the choice is reproducible.
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() {
            index_modules(&path, out)?;
        } else if let Some(stem) = module_file_stem(&entry.file_name().to_string_lossy()) {
            out.entry(normalize_module_name(stem)).or_insert(path);
        }
    }
    Ok(())
}

fn read_builtin_lists(modules_dir: &Path) -> Result<BuiltinSource, Error> {
    let mut names = BTreeSet::new();
    let mut found = false;
    let list = modules_dir.join("modules.builtin");
    if list.is_file() {
        found = true;
        let text = fs::read_to_string(&list).map_err(|e| Error::io(&list, e))?;
        for line in text.lines() {
            let file = line.rsplit('/').next().unwrap_or(line);
            if let Some(stem) = module_file_stem(file) {
                names.insert(normalize_module_name(stem));
            }
        }
    }
    // Lists built-in code that has module parameters or aliases but no file in
    // modules.builtin; entries look like `name.key=value`.
    let modinfo = modules_dir.join("modules.builtin.modinfo");
    if modinfo.is_file() {
        found = true;
        let data = fs::read(&modinfo).map_err(|e| Error::io(&modinfo, e))?;
        for entry in data.split(|&b| b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((name, _)) = entry.split_once('.') else {
                continue;
            };
            names.insert(normalize_module_name(name));
        }
    }
    Ok(if found {
        BuiltinSource::Listed(names)
    } else {
        BuiltinSource::ConfigGuess
    })
}

#[cfg(test)]
mod banner_tests {
    use super::linux_banner;

    #[test]
    fn the_banner_is_the_string_with_the_build_number_not_the_format() {
        let mut image = vec![0u8; 64];
        image.extend_from_slice(b"Linux version %s (%s) %s\0\0");
        image.extend_from_slice(
            b"Linux version 6.1.0-44-arm64 (debian-kernel@lists.debian.org) (gcc-12) # SMP Debian 6.1.164-1 (2026-03-09)\0",
        );
        image.extend_from_slice(
            b"Linux version 6.1.0-44-arm64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP Debian 6.1.164-1 (2026-03-09)\n\0",
        );
        assert_eq!(
            linux_banner(&image).as_deref(),
            Some("Linux version 6.1.0-44-arm64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP Debian 6.1.164-1 (2026-03-09)")
        );
        assert_eq!(linux_banner(b"no kernel here"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{build_test_elf, EM_AARCH64};

    fn fake_kernel(root: &Path, builtin_list: bool) {
        let rel = "6.1.0-99-arm64";
        fs::create_dir_all(root.join("boot")).unwrap();
        let mut image = vec![0u8; 4096];
        image[56..60].copy_from_slice(b"ARM\x64");
        fs::write(root.join(format!("boot/vmlinuz-{rel}")), &image).unwrap();
        fs::write(
            root.join(format!("boot/config-{rel}")),
            "# comment\nCONFIG_ZRAM=m\nCONFIG_VIRTIO_MMIO=y\n# CONFIG_PREEMPT is not set\n\
             CONFIG_PREEMPT_VOLUNTARY=y\nCONFIG_CMDLINE=\"console=\\\"x\\\"\"\nCONFIG_HZ=250\n",
        )
        .unwrap();
        let mods = root.join(format!("lib/modules/{rel}/kernel/drivers"));
        fs::create_dir_all(&mods).unwrap();
        let ko = |name: &str, depends: &str| {
            let info = format!("name={}\0depends={depends}\0", normalize_module_name(name));
            build_test_elf(EM_AARCH64, &[(".modinfo", info.as_bytes())], None)
        };
        fs::write(mods.join("zram.ko"), ko("zram", "zsmalloc")).unwrap();
        fs::write(mods.join("zsmalloc.ko"), ko("zsmalloc", "")).unwrap();
        fs::write(mods.join("dm-verity.ko"), ko("dm-verity", "dm-bufio")).unwrap();
        fs::write(mods.join("dm-bufio.ko"), ko("dm-bufio", "")).unwrap();
        let with = |name: &str, extra: &str| {
            let info = format!("name={name}\0depends=\0{extra}");
            build_test_elf(EM_AARCH64, &[(".modinfo", info.as_bytes())], None)
        };
        // libcrc32c's real softdep names an alias, not a module file.
        fs::write(
            mods.join("libcrc32c.ko"),
            with("libcrc32c", "softdep=pre: crc32c\0"),
        )
        .unwrap();
        fs::write(
            mods.join("crc32c_generic.ko"),
            with("crc32c_generic", "alias=crypto-crc32c\0alias=crc32c\0"),
        )
        .unwrap();
        fs::write(
            mods.join("needs-builtin.ko"),
            with("needs_builtin", "softdep=pre: sha256\0"),
        )
        .unwrap();
        // Debian's f2fs: "crc32" is both built-in lib/crc32 and the crypto
        // driver's alias, and only the driver will do.
        fs::write(mods.join("f2fs.ko"), with("f2fs", "softdep=pre: crc32\0")).unwrap();
        fs::write(
            mods.join("crc32_generic.ko"),
            with("crc32_generic", "alias=crypto-crc32\0alias=crc32\0"),
        )
        .unwrap();
        if builtin_list {
            fs::write(
                root.join(format!("lib/modules/{rel}/modules.builtin")),
                "kernel/drivers/virtio/virtio_mmio.ko\nkernel/drivers/mmc/core/mmc_block.ko\nkernel/lib/crc32.ko\n",
            )
            .unwrap();
            fs::write(
                root.join(format!("lib/modules/{rel}/modules.builtin.modinfo")),
                "sha256_generic.alias=sha256\0sha256_generic.license=GPL\0",
            )
            .unwrap();
        }
    }

    #[test]
    fn reads_a_fake_kernel_tree() {
        let dir = tempfile::tempdir().unwrap();
        fake_kernel(dir.path(), true);
        let k =
            Kernel::from_extracted(dir.path(), "linux-image-6.1.0-99-arm64", "6.1.999-1").unwrap();
        assert_eq!(k.release, "6.1.0-99-arm64");
        assert_eq!(k.config_value("CONFIG_ZRAM").as_deref(), Some("m"));
        assert_eq!(k.config_value("VIRTIO_MMIO").as_deref(), Some("y"));
        assert_eq!(k.config_value("CONFIG_PREEMPT"), None);
        assert_eq!(
            k.config_value("CONFIG_CMDLINE").as_deref(),
            Some("console=\"x\"")
        );
        assert_eq!(k.config_value("CONFIG_HZ").as_deref(), Some("250"));
        assert_eq!(
            k.config_matching("CONFIG_PREEMPT"),
            [("CONFIG_PREEMPT_VOLUNTARY".to_string(), "y".to_string())]
        );
        assert!(k
            .find_module("dm_verity")
            .unwrap()
            .ends_with("dm-verity.ko"));
        assert_eq!(k.find_module("dm-verity"), k.find_module("dm_verity"));
        assert_eq!(k.find_module("zsmalloc.ko"), None);

        let plan = k
            .plan(&["zram", "mmc-block", "dm-verity", "virtio_mmio"])
            .unwrap();
        let names: Vec<_> = plan.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["zsmalloc", "zram", "dm_bufio", "dm_verity"]);
        assert_eq!(plan.builtin, ["mmc_block", "virtio_mmio"]);
        assert_eq!(k.load_order(&["zram"]).unwrap().len(), 2);
        assert!(k.is_builtin("sha256_generic"));

        let order = k.load_order(&["libcrc32c", "needs-builtin"]).unwrap();
        let names: Vec<_> = order.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["crc32c_generic", "libcrc32c", "needs_builtin"]);
        assert_eq!(order[1].softdeps, ["crc32c_generic"]);
        assert!(order[2].softdeps.is_empty());
        // An alias wins over a built-in of the same name, as in libkmod.
        assert!(k.is_builtin("crc32"));
        let order = k.load_order(&["f2fs"]).unwrap();
        let names: Vec<&str> = order.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["crc32_generic", "f2fs"]);

        let err = k.load_order(&["nonesuch"]).unwrap_err();
        assert!(err.to_string().contains("6.1.0-99-arm64"), "{err}");
    }

    #[test]
    fn without_builtin_lists_config_y_counts_as_builtin() {
        let dir = tempfile::tempdir().unwrap();
        fake_kernel(dir.path(), false);
        let k = Kernel::from_extracted(dir.path(), "p", "1").unwrap();
        assert!(k.is_builtin("virtio-mmio"));
        assert!(!k.is_builtin("zram"));
        assert!(!k.is_builtin("mmc_block"));
    }

    #[test]
    fn rejects_images_without_the_arm64_magic() {
        let dir = tempfile::tempdir().unwrap();
        fake_kernel(dir.path(), true);
        let image = dir.path().join("boot/vmlinuz-6.1.0-99-arm64");
        let mut gz = vec![0u8; 4096];
        gz[..2].copy_from_slice(&[0x1f, 0x8b]);
        fs::write(&image, &gz).unwrap();
        let err = Kernel::from_extracted(dir.path(), "p", "1").unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
        fs::write(&image, vec![0u8; 4096]).unwrap();
        let err = Kernel::from_extracted(dir.path(), "p", "1").unwrap_err();
        assert!(err.to_string().contains("magic"), "{err}");
        fs::write(&image, b"short").unwrap();
        assert!(Kernel::from_extracted(dir.path(), "p", "1").is_err());
    }

    #[test]
    fn refuses_trees_with_no_or_several_kernels() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("boot")).unwrap();
        let err = Kernel::from_extracted(dir.path(), "p", "1").unwrap_err();
        assert!(err.to_string().contains("no vmlinuz"), "{err}");
        fake_kernel(dir.path(), true);
        fs::write(dir.path().join("boot/vmlinuz-6.1.0-98-arm64"), b"x").unwrap();
        let err = Kernel::from_extracted(dir.path(), "p", "1").unwrap_err();
        assert!(err.to_string().contains("several"), "{err}");
    }
}
