//! Where a kernel device's node is. Desktop Linux mounts devtmpfs: block
//! devices at /dev/NAME, device-mapper's control at /dev/mapper/control.
//! Android has no devtmpfs; its ueventd makes block devices under
//! /dev/block/NAME, the control at /dev/device-mapper, and links
//! partitions by name under /dev/block/by-name (older devices:
//! /dev/block/platform/SOC/by-name). The agent finds either layout, and
//! makes the node itself when none appears, from the numbers sysfs gives.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The /dev and /sys the agent looks in: the system's, or a test's tree.
pub struct Tree {
    pub dev: PathBuf,
    pub sys: PathBuf,
}

impl Tree {
    pub fn system() -> Self {
        Tree {
            dev: PathBuf::from("/dev"),
            sys: PathBuf::from("/sys"),
        }
    }

    /// Where the node of block device `name` (vda1, dm-0, zram0) is now.
    pub fn block_node(&self, name: &str) -> Option<PathBuf> {
        [self.dev.join("block").join(name), self.dev.join(name)]
            .into_iter()
            .find(|p| p.exists())
    }

    /// The kernel name of the partition whose (GPT) name is `part`.
    pub fn partition_named(&self, part: &str) -> Option<String> {
        let mut found = None;
        for entry in fs::read_dir(self.sys.join("class/block")).ok()?.flatten() {
            let uevent = fs::read_to_string(entry.path().join("uevent")).unwrap_or_default();
            if uevent
                .lines()
                .any(|l| l.strip_prefix("PARTNAME=") == Some(part))
            {
                found = Some(entry.file_name().to_string_lossy().into_owned());
                break;
            }
        }
        found
    }

    /// `major:minor` of a block device, from sysfs.
    fn block_numbers(&self, name: &str) -> io::Result<(u32, u32)> {
        numbers(&self.sys.join("class/block").join(name).join("dev"))
    }

    /// Android's by-name links, wherever this device keeps them.
    fn by_name_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.dev.join("block/by-name")];
        // platform/msm_sdcc.1/by-name on some, platform/soc/7824900.sdhci/by-name
        // on others.
        for bus in subdirs(&self.dev.join("block/platform")) {
            dirs.push(bus.join("by-name"));
            dirs.extend(subdirs(&bus).into_iter().map(|d| d.join("by-name")));
        }
        dirs.push(self.dev.join("disk/by-partlabel"));
        dirs
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn numbers(dev_file: &Path) -> io::Result<(u32, u32)> {
    let text = fs::read_to_string(dev_file)?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not major:minor", dev_file.display()),
        )
    };
    let (ma, mi) = text.trim().split_once(':').ok_or_else(bad)?;
    Ok((
        ma.parse().map_err(|_| bad())?,
        mi.parse().map_err(|_| bad())?,
    ))
}

fn mknod(path: &Path, char_dev: bool, (major, minor): (u32, u32)) -> io::Result<()> {
    let p = crate::sys::cstr(&path.to_string_lossy())?;
    let kind = if char_dev {
        libc::S_IFCHR
    } else {
        libc::S_IFBLK
    };
    let ret = unsafe { libc::mknod(p.as_ptr(), kind | 0o600, libc::makedev(major, minor)) };
    if ret != 0 && io::Error::last_os_error().kind() != io::ErrorKind::AlreadyExists {
        return crate::sys::check(ret, &format!("mknod {}", path.display()));
    }
    Ok(())
}

/// The node of block device `name`. A ueventd makes nodes a moment after
/// the kernel announces a device, so wait briefly; then make it.
pub fn block(name: &str) -> io::Result<PathBuf> {
    let t = Tree::system();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(p) = t.block_node(name) {
            return Ok(p);
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = if t.dev.join("block").is_dir() {
        t.dev.join("block")
    } else {
        t.dev.clone()
    };
    let path = dir.join(name);
    mknod(&path, false, t.block_numbers(name)?)?;
    Ok(path)
}

/// A partition named in a board file by its by-name link, found on a
/// device that keeps the link elsewhere or has none: by its GPT name.
pub fn by_name(path: &Path) -> Option<io::Result<PathBuf>> {
    let part = path
        .to_str()?
        .rsplit_once("/by-name/")
        .map(|(_, n)| n.to_string())?;
    let t = Tree::system();
    if let Some(p) = t
        .by_name_dirs()
        .into_iter()
        .map(|d| d.join(&part))
        .find(|p| p.exists())
    {
        return Some(Ok(p));
    }
    let name = t.partition_named(&part)?;
    Some(block(&name))
}

/// device-mapper's control node, whichever layout the board has.
pub fn dm_control() -> io::Result<File> {
    let t = Tree::system();
    let candidates = [t.dev.join("mapper/control"), t.dev.join("device-mapper")];
    for c in &candidates {
        if c.exists() {
            return OpenOptions::new().read(true).write(true).open(c);
        }
    }
    let misc = t.sys.join("class/misc/device-mapper/dev");
    let nums = numbers(&misc).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "no {} nor {}, and {}: {e} (is dm-mod loaded?)",
                candidates[0].display(),
                candidates[1].display(),
                misc.display()
            ),
        )
    })?;
    mknod(&candidates[1], true, nums)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&candidates[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Tree) {
        let d = tempfile::tempdir().unwrap();
        let t = Tree {
            dev: d.path().join("dev"),
            sys: d.path().join("sys"),
        };
        for (name, part) in [
            ("vda", None),
            ("vda1", Some("misc")),
            ("vda2", Some("scratch")),
        ] {
            let dir = t.sys.join("class/block").join(name);
            fs::create_dir_all(&dir).unwrap();
            let mut uevent = format!("MAJOR=254\nDEVNAME={name}\n");
            if let Some(p) = part {
                uevent += &format!("PARTNAME={p}\n");
            }
            fs::write(dir.join("uevent"), uevent).unwrap();
            fs::write(dir.join("dev"), "254:2\n").unwrap();
        }
        (d, t)
    }

    #[test]
    fn finds_android_and_desktop_layouts() {
        let (_d, t) = tree();
        fs::create_dir_all(t.dev.join("block")).unwrap();
        assert_eq!(t.block_node("vda2"), None);
        fs::write(t.dev.join("vda2"), "").unwrap();
        assert_eq!(t.block_node("vda2"), Some(t.dev.join("vda2")));
        fs::write(t.dev.join("block/vda2"), "").unwrap();
        assert_eq!(
            t.block_node("vda2"),
            Some(t.dev.join("block/vda2")),
            "Android's place first"
        );
    }

    #[test]
    fn partitions_by_gpt_name() {
        let (_d, t) = tree();
        assert_eq!(t.partition_named("scratch").as_deref(), Some("vda2"));
        assert_eq!(t.partition_named("misc").as_deref(), Some("vda1"));
        assert_eq!(t.partition_named("scratc"), None, "whole names only");
        assert_eq!(t.partition_named("userdata"), None);
        assert_eq!(t.block_numbers("vda2").unwrap(), (254, 2));
    }

    #[test]
    fn by_name_links_on_older_devices() {
        let (_d, t) = tree();
        let two_levels = t.dev.join("block/platform/soc/d0074000.mmc/by-name");
        let one_level = t.dev.join("block/platform/msm_sdcc.1/by-name");
        fs::create_dir_all(&two_levels).unwrap();
        fs::create_dir_all(&one_level).unwrap();
        let dirs = t.by_name_dirs();
        assert_eq!(dirs[0], t.dev.join("block/by-name"));
        assert!(dirs.contains(&two_levels), "{dirs:?}");
        assert!(dirs.contains(&one_level), "{dirs:?}");
    }

    #[test]
    fn bad_dev_files_are_errors() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("dev"), "nonsense").unwrap();
        assert!(numbers(&d.path().join("dev")).is_err());
    }
}
