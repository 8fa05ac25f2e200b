//! Reproducible erofs images via erofs-utils' `mkfs.erofs` (1.5 or later).
//!
//! Reproducibility matters because the verity root hash and the run reports
//! name an image by its hash: the same tree and options must give the same
//! bytes. mkfs.erofs gets there with a fixed UUID (`-U`), a fixed timestamp
//! for the superblock and every inode (`-T0`), root ownership (`--all-root`)
//! and no xattrs (`-x-1`, otherwise SELinux labels or `user.*` attributes on
//! the build host leak into the image). It sorts directory entries itself,
//! so readdir order of the source does not matter.

use std::fs::{self, File};
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// Filesystem UUID written into every image; arbitrary but fixed.
pub const FS_UUID: &str = "68696c74-0000-4000-8000-00000000e50f";

/// erofs' block size on 4 KiB-page kernels, which every board we run has;
/// physical clusters are whole blocks.
pub const BLOCK_SIZE: u32 = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErofsOptions {
    /// A compressor mkfs.erofs knows (1.5 has `lz4` and `lz4hc`), or `none`
    /// for an uncompressed image.
    pub compressor: String,
    /// Compression level (lz4hc: 0..=12); `None` leaves mkfs.erofs' default.
    pub level: Option<u32>,
    /// Maximum physical cluster size (`-C`), a multiple of 4096. Big
    /// pclusters are what make reads allocate several pages at once under
    /// memory pressure, so this is a stress knob, not just a ratio knob.
    pub pcluster_bytes: u32,
}

impl Default for ErofsOptions {
    fn default() -> Self {
        ErofsOptions {
            compressor: "lz4hc".to_owned(),
            // lz4hc's own default, spelled out so an erofs-utils with another
            // default cannot change our images. 12 compresses this dataset
            // only 1.5% better at 40% of the speed.
            level: Some(9),
            pcluster_bytes: 65536,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErofsInfo {
    /// Always a multiple of [`BLOCK_SIZE`], so the image can go straight to
    /// [`crate::verity::format`].
    pub size_bytes: u64,
    pub sha256: [u8; 32],
}

impl ErofsInfo {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Builds `out` from the tree at `src_dir`.
///
/// The image is written to a sibling temporary file and renamed into place,
/// so `out` is either the complete new image or untouched.
pub fn build(src_dir: &Path, out: &Path, opts: &ErofsOptions) -> Result<ErofsInfo, Error> {
    build_with("mkfs.erofs", src_dir, out, opts)
}

/// `build` with the mkfs.erofs program named, so the missing-tool path can be
/// tested without touching the process-wide PATH.
fn build_with(
    program: &'static str,
    src_dir: &Path,
    out: &Path,
    opts: &ErofsOptions,
) -> Result<ErofsInfo, Error> {
    let args = mkfs_args(opts)?;
    if !src_dir.is_dir() {
        return Err(Error::InvalidOption {
            what: "erofs source",
            reason: format!("{} is not a directory", src_dir.display()),
        });
    }
    let tmp = temp_sibling(out);
    // A leftover from an interrupted build must not leak into this one.
    let _ = fs::remove_file(&tmp);

    let mut cmd = Command::new(program);
    cmd.args(&args).arg(&tmp).arg(src_dir);
    let command = format!(
        "{program} {} {} {}",
        args.join(" "),
        tmp.display(),
        src_dir.display()
    );
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::ToolMissing {
                tool: program,
                package: "erofs-utils",
            })
        }
        Err(e) => return Err(Error::io("running mkfs.erofs for", out, e)),
    };
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        return Err(Error::ToolFailed {
            command,
            status: output.status.to_string(),
            output: text,
        });
    }
    let info = hash_file(&tmp).map_err(|e| Error::io("reading", &tmp, e))?;
    fs::rename(&tmp, out).map_err(|e| Error::io("renaming the new image to", out, e))?;
    Ok(info)
}

/// Where one piece of a file lives in an image, as dump.erofs reports it.
/// A compressed extent maps `logical` bytes of the file to a whole physical
/// cluster; an uncompressed one maps them 1:1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub logical: Range<u64>,
    pub physical: Range<u64>,
}

impl Extent {
    /// Image blocks holding this extent: what to hand to
    /// [`crate::verity::corrupt_block`] to make reads of this part of the
    /// file fail verification.
    pub fn blocks(&self) -> Range<u64> {
        let bs = u64::from(BLOCK_SIZE);
        self.physical.start / bs..self.physical.end.div_ceil(bs)
    }
}

/// Extents of `path_in_image` (e.g. `f0001.txt`) in `image`, via
/// `dump.erofs -e`, so a test can corrupt exactly the blocks one file reads.
pub fn file_extents(image: &Path, path_in_image: &str) -> Result<Vec<Extent>, Error> {
    let target = format!("--path=/{}", path_in_image.trim_start_matches('/'));
    let output = match Command::new("dump.erofs")
        .arg(&target)
        .arg("-e")
        .arg(image)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::ToolMissing {
                tool: "dump.erofs",
                package: "erofs-utils",
            })
        }
        Err(e) => return Err(Error::io("running dump.erofs on", image, e)),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // dump.erofs 1.5 exits 0 even when the path does not exist, so its
    // "<E>" lines are the failure signal.
    if !output.status.success() || stderr.contains("<E>") {
        return Err(Error::ToolFailed {
            command: format!("dump.erofs {target} -e {}", image.display()),
            status: output.status.to_string(),
            output: format!("{stderr}{stdout}"),
        });
    }
    Ok(parse_extents(&stdout))
}

/// Parses rows like `  0:   0..  222477 |  222477 :  270336..  335872 |  65536`.
fn parse_extents(text: &str) -> Vec<Extent> {
    text.lines()
        .filter_map(|line| {
            let (index, rest) = line.trim_start().split_once(':')?;
            index.parse::<u32>().ok()?;
            let nums: Vec<u64> = rest
                .replace("..", " ")
                .split(|c: char| c.is_whitespace() || c == '|' || c == ':')
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().ok())
                .collect::<Option<_>>()?;
            match nums[..] {
                [ls, le, _, ps, pe, _] => Some(Extent {
                    logical: ls..le,
                    physical: ps..pe,
                }),
                _ => None,
            }
        })
        .collect()
}

fn mkfs_args(opts: &ErofsOptions) -> Result<Vec<String>, Error> {
    let mut args = vec![
        "--quiet".to_owned(),
        "-x-1".to_owned(),
        "-T0".to_owned(),
        format!("-U{FS_UUID}"),
        "--all-root".to_owned(),
    ];
    let comp = opts.compressor.as_str();
    if comp == "none" {
        if opts.level.is_some() {
            return Err(Error::InvalidOption {
                what: "erofs options",
                reason: "a compression level was given with compressor \"none\"".to_owned(),
            });
        }
        return Ok(args);
    }
    if comp.is_empty() || !comp.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::InvalidOption {
            what: "erofs compressor",
            reason: format!("{comp:?}; use \"lz4hc\", \"lz4\" or \"none\""),
        });
    }
    if opts.pcluster_bytes == 0 || opts.pcluster_bytes % BLOCK_SIZE != 0 {
        return Err(Error::InvalidOption {
            what: "erofs pcluster size",
            reason: format!(
                "{} bytes; it must be a non-zero multiple of {BLOCK_SIZE}, e.g. 65536",
                opts.pcluster_bytes
            ),
        });
    }
    match opts.level {
        Some(level) => args.push(format!("-z{comp},{level}")),
        None => args.push(format!("-z{comp}")),
    }
    args.push(format!("-C{}", opts.pcluster_bytes));
    Ok(args)
}

fn temp_sibling(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    out.with_file_name(name)
}

fn hash_file(path: &Path) -> io::Result<ErofsInfo> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(ErofsInfo {
        size_bytes: size,
        sha256: hasher.finalize().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_for_default_options() {
        let args = mkfs_args(&ErofsOptions::default()).unwrap();
        assert!(args.contains(&"-zlz4hc,9".to_owned()));
        assert!(args.contains(&"-C65536".to_owned()));
        assert!(args.contains(&"-T0".to_owned()));
        assert!(args.contains(&format!("-U{FS_UUID}")));
    }

    #[test]
    fn rejects_bad_pcluster_and_compressor() {
        let bad = ErofsOptions {
            pcluster_bytes: 5000,
            ..ErofsOptions::default()
        };
        assert!(matches!(mkfs_args(&bad), Err(Error::InvalidOption { .. })));
        let bad = ErofsOptions {
            compressor: "lz4hc -T1".to_owned(),
            ..ErofsOptions::default()
        };
        assert!(matches!(mkfs_args(&bad), Err(Error::InvalidOption { .. })));
    }

    #[test]
    fn missing_tool_says_what_to_install() {
        let dir = std::env::temp_dir();
        let out = dir.join(format!("hilt-images-missing-{}.erofs", std::process::id()));
        let err = build_with(
            "mkfs.erofs-not-installed",
            &dir,
            &out,
            &ErofsOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::ToolMissing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("install the Debian package `erofs-utils`"),
            "{msg}"
        );
        assert!(msg.contains("scripts/setup"), "{msg}");
        assert!(!out.exists());
    }

    #[test]
    fn parses_dump_erofs_extents() {
        let text = "File : /f0001.txt\n\
            Size: 896453  On-disk size: 266240  regular file\n\
            Uid: 0   Gid: 0  Access: 0644/rw-r--r--\n\
            Timestamp: 1970-01-01 00:00:00.000000000\n\n \
            Ext:   logical offset   |  length :     physical offset    |  length\n   \
            0:        0..  222477 |  222477 :     270336..    335872 |   65536\n   \
            1:   888722..  896453 |    7731 :     532480..    536576 |    4096\n\
            /f0001.txt: 2 extents found\n";
        let e = parse_extents(text);
        assert_eq!(
            e,
            [
                Extent {
                    logical: 0..222477,
                    physical: 270336..335872
                },
                Extent {
                    logical: 888722..896453,
                    physical: 532480..536576
                },
            ]
        );
        assert_eq!(e[0].blocks(), 66..82);
    }

    #[test]
    fn uncompressed_has_no_z_flag() {
        let opts = ErofsOptions {
            compressor: "none".to_owned(),
            level: None,
            pcluster_bytes: 0,
        };
        let args = mkfs_args(&opts).unwrap();
        assert!(!args
            .iter()
            .any(|a| a.starts_with("-z") || a.starts_with("-C")));
    }
}
