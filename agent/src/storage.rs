//! erofs, optionally on dm-verity, mounted read-only.

use std::io;
use std::path::{Path, PathBuf};

use hilt_protocol::{StorageSpec, VeritySource, VeritySpec};

use crate::{block, dm, sys};

pub const MOUNT_POINT: &str = "/mnt/erofs";
pub const VERITY_NAME: &str = "hilt-verity";

pub struct Mounted {
    pub device: PathBuf,
    pub lower: PathBuf,
    /// Where dm-verity's parameters came from, for the stage report; None
    /// without verity.
    pub verity: Option<String>,
}

pub fn set_up(spec: &StorageSpec) -> io::Result<Mounted> {
    let lower = block::resolve(&spec.erofs)?;
    if let Some(s) = &spec.io_scheduler {
        set_scheduler(&lower, s)?;
    }
    let mut verity = None;
    let device = match &spec.verity {
        None => lower.clone(),
        Some(source) => {
            let (sectors, params, from) = match source {
                VeritySource::Explicit(v) => {
                    let (sectors, params) = explicit_target(&lower, v)?;
                    (sectors, params, "the host's numbers".to_owned())
                }
                VeritySource::AvbFooter { partition_name } => {
                    footer_target(&lower, partition_name)?
                }
            };
            verity = Some(from);
            let _ = dm::remove(VERITY_NAME);
            dm::create(
                VERITY_NAME,
                &[dm::Target {
                    start: 0,
                    sectors,
                    kind: "verity",
                    params: &params,
                }],
                true,
            )?
        }
    };
    std::fs::create_dir_all(MOUNT_POINT)?;
    sys::mount(
        &device,
        MOUNT_POINT,
        "erofs",
        libc::MS_RDONLY,
        &spec.mount_options,
    )?;
    if let Some(mode) = spec.sync_decompress {
        let dev = device
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        sys::write_attr(
            format!("/sys/fs/erofs/{dev}/sync_decompress"),
            &mode.to_string(),
        )?;
    }
    Ok(Mounted {
        device,
        lower,
        verity,
    })
}

/// The dm-verity target from the numbers the host computed.
fn explicit_target(lower: &Path, v: &VeritySpec) -> io::Result<(u64, String)> {
    let hash = block::resolve(&v.hash)?;
    let sectors = v.data_blocks * (v.data_block_size as u64 / 512);
    let params = format!(
        "1 {} {} {} {} {} {} sha256 {} {}",
        lower.display(),
        hash.display(),
        v.data_block_size,
        v.hash_block_size,
        v.data_blocks,
        v.hash_start_block,
        v.root_hash,
        v.salt
    );
    Ok((sectors, params))
}

/// The dm-verity target from the AVB footer at the end of `lower` and the
/// hashtree descriptor in the vbmeta it points at: data and tree are both
/// on `lower`, the tree at the descriptor's tree_offset. Nothing comes from
/// the host but the partition name the descriptor must carry. Also returns
/// what was found, for the stage report.
fn footer_target(lower: &Path, partition_name: &str) -> io::Result<(u64, String, String)> {
    let mut dev = std::fs::File::open(lower)?;
    let part = hilt_avb::read_footed(&mut dev, partition_name)
        .map_err(|e| io::Error::new(e.kind(), format!("AVB footer of {}: {e}", lower.display())))?;
    let d = &part.descriptor;
    let from = format!(
        "its AVB footer: partition {:?}, {} data blocks of {} bytes, tree at {} ({} bytes), root {}",
        d.partition_name,
        d.data_blocks(),
        d.data_block_size,
        d.tree_offset,
        d.tree_size,
        d.root_digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let (sectors, params) = d.verity_target(&lower.to_string_lossy());
    Ok((sectors, params, from))
}

pub fn set_scheduler(dev: &Path, sched: &str) -> io::Result<()> {
    let Some(disk) = block::disk_name(dev) else {
        return Ok(());
    };
    sys::write_attr(format!("/sys/block/{disk}/queue/scheduler"), sched)
}

/// Lists the dataset files under the mount, sorted so every reader sees the
/// same order.
pub fn files() -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(MOUNT_POINT)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}
