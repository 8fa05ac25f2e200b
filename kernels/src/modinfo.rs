//! A kernel module's `.modinfo` section: NUL-separated `key=value` strings.
//!
//! Debian's kernel packages ship no modules.dep (depmod runs at install time), so each
//! module's own `depends=` entry is the only dependency information there is.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::cmd;
use crate::elf::Elf;
use crate::Error;

/// The kernel treats `-` and `_` in module names as the same character; so does this crate,
/// always reporting the `_` form (the one /proc/modules shows).
pub fn normalize_module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// If `file_name` is a kernel module (`.ko`, optionally compressed), its name as written.
pub(crate) fn module_file_stem(file_name: &str) -> Option<&str> {
    ["", ".xz", ".zst", ".gz"]
        .iter()
        .find_map(|ext| file_name.strip_suffix(ext)?.strip_suffix(".ko"))
        .filter(|stem| !stem.is_empty())
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModInfo {
    entries: Vec<(String, String)>,
}

impl ModInfo {
    /// Parses a raw `.modinfo` section. Runs of NULs are alignment padding between
    /// entries; strings without `=` are not modinfo entries and are ignored.
    pub fn parse(section: &[u8]) -> ModInfo {
        let entries = section
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let s = String::from_utf8_lossy(s);
                let (k, v) = s.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        ModInfo { entries }
    }

    /// Reads the `.modinfo` section of a module file, decompressing `.ko.xz`, `.ko.zst` and
    /// `.ko.gz` with the system's tools.
    pub fn read(path: &Path) -> Result<ModInfo, Error> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let decompressor = if name.ends_with(".ko.xz") {
            Some("xz")
        } else if name.ends_with(".ko.zst") {
            Some("zstd")
        } else if name.ends_with(".ko.gz") {
            Some("gzip")
        } else {
            None
        };
        let data = match decompressor {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.arg("-dc").arg(path);
                cmd::output(c)?
            }
            None => fs::read(path).map_err(|e| Error::io(path, e))?,
        };
        let elf_err = |reason: String| Error::Elf {
            path: path.to_path_buf(),
            reason,
        };
        let elf = Elf::parse(&data).map_err(elf_err)?;
        let section = elf
            .section(".modinfo")
            .map_err(elf_err)?
            .ok_or_else(|| elf_err("no .modinfo section: not a kernel module".into()))?;
        Ok(ModInfo::parse(section))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Keys such as `alias` and `parm` repeat; this yields every value in file order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The module's own name (normalized), if the module records one.
    pub fn name(&self) -> Option<String> {
        self.get("name").map(normalize_module_name)
    }

    /// Modules that must be loaded first, normalized; empty if there are none.
    pub fn depends(&self) -> Vec<String> {
        self.get("depends")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(normalize_module_name)
            .collect()
    }

    /// Names from `softdep=pre: ...` entries: modules (or aliases) modprobe loads before
    /// this one although the code does not link against them, e.g. libcrc32c's
    /// `pre: crc32c`, without which its init fails unless a crc32c driver is present.
    pub fn pre_softdeps(&self) -> Vec<String> {
        let mut out = Vec::new();
        for value in self.get_all("softdep") {
            let mut in_pre = false;
            for token in value.split_whitespace() {
                match token {
                    "pre:" => in_pre = true,
                    "post:" => in_pre = false,
                    name if in_pre => out.push(normalize_module_name(name)),
                    _ => {}
                }
            }
        }
        out
    }

    /// Plain names this module answers to, normalized; wildcard device aliases
    /// (`pci:v*d*`) are left out because nothing asks for them by name.
    pub fn aliases(&self) -> impl Iterator<Item = String> + '_ {
        self.get_all("alias")
            .filter(|a| !a.contains(['*', '?', '[']))
            .map(normalize_module_name)
    }

    pub fn vermagic(&self) -> Option<&str> {
        self.get("vermagic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{build_test_elf, EM_AARCH64};

    const DM_VERITY: &[u8] =
        b"alias=dm-verity\0license=GPL\0\0\0depends=reed_solomon,dm-mod,dm-bufio\0\
retpoline=Y\0intree=Y\0name=dm_verity\0vermagic=6.1.0-44-arm64 SMP mod_unload modversions aarch64\0\
parm=dev_wait:x\0parm=other:y\0garbage-without-equals\0";

    #[test]
    fn parses_entries_and_depends() {
        let m = ModInfo::parse(DM_VERITY);
        assert_eq!(m.name().as_deref(), Some("dm_verity"));
        assert_eq!(m.depends(), ["reed_solomon", "dm_mod", "dm_bufio"]);
        assert_eq!(
            m.vermagic(),
            Some("6.1.0-44-arm64 SMP mod_unload modversions aarch64")
        );
        assert_eq!(
            m.get_all("parm").collect::<Vec<_>>(),
            ["dev_wait:x", "other:y"]
        );
        assert_eq!(m.get("garbage-without-equals"), None);
    }

    #[test]
    fn pre_softdeps_and_plain_aliases() {
        let m = ModInfo::parse(
            b"softdep=pre: crc32c\0softdep=pre: a-b c post: d pre: e\0alias=crypto-crc32c\0\
alias=crc32c\0alias=pci:v0000104Cd0000803Bsv*sd*bc*sc*i*\0",
        );
        assert_eq!(m.pre_softdeps(), ["crc32c", "a_b", "c", "e"]);
        assert_eq!(m.aliases().collect::<Vec<_>>(), ["crypto_crc32c", "crc32c"]);
        assert!(ModInfo::parse(b"name=x\0").pre_softdeps().is_empty());
    }

    #[test]
    fn empty_depends_means_none() {
        let m = ModInfo::parse(b"depends=\0name=virtio_mmio\0");
        assert!(m.depends().is_empty());
        assert!(ModInfo::parse(b"name=x\0").depends().is_empty());
    }

    #[test]
    fn reads_modinfo_from_an_elf_file() {
        let dir = tempfile::tempdir().unwrap();
        let ko = dir.path().join("dm-verity.ko");
        let elf = build_test_elf(
            EM_AARCH64,
            &[
                (".text", b"\0\0\0\0"),
                (".modinfo", DM_VERITY),
                (".data", b"x"),
            ],
            None,
        );
        fs::write(&ko, elf).unwrap();
        let m = ModInfo::read(&ko).unwrap();
        assert_eq!(m.name().as_deref(), Some("dm_verity"));
        assert_eq!(m.depends(), ["reed_solomon", "dm_mod", "dm_bufio"]);
    }

    #[test]
    fn reads_xz_compressed_modules() {
        let dir = tempfile::tempdir().unwrap();
        let ko = dir.path().join("m.ko");
        fs::write(
            &ko,
            build_test_elf(
                EM_AARCH64,
                &[(".modinfo", b"name=m\0depends=a,b-c\0")],
                None,
            ),
        )
        .unwrap();
        let mut c = Command::new("xz");
        c.arg(&ko);
        cmd::output(c).unwrap();
        let m = ModInfo::read(&dir.path().join("m.ko.xz")).unwrap();
        assert_eq!(m.depends(), ["a", "b_c"]);
    }

    #[test]
    fn a_file_without_modinfo_is_not_a_module() {
        let dir = tempfile::tempdir().unwrap();
        let ko = dir.path().join("x.ko");
        fs::write(&ko, build_test_elf(EM_AARCH64, &[(".text", b"x")], None)).unwrap();
        let err = ModInfo::read(&ko).unwrap_err();
        assert!(err.to_string().contains("no .modinfo"), "{err}");
    }

    #[test]
    fn module_file_names() {
        assert_eq!(module_file_stem("dm-verity.ko"), Some("dm-verity"));
        assert_eq!(module_file_stem("zram.ko.xz"), Some("zram"));
        assert_eq!(module_file_stem("zram.ko.zst"), Some("zram"));
        assert_eq!(module_file_stem("x.ko.bz2"), None);
        assert_eq!(module_file_stem("modules.order"), None);
        assert_eq!(module_file_stem(".ko"), None);
    }
}
