//! Where one board keeps the plan's storage stack, and the image a real
//! board gets written once per run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use hilt_protocol::{BlockDevice, StorageSpec, SwapSpec};

use crate::artifacts::media::PartitionImage;
use crate::artifacts::{self, Cache, Media};
use crate::plan::{BoardFile, ResolvedPlan};

/// The devices the agent sets the storage stack up on: QEMU disks on the
/// emulated board, partitions on a real one.
#[derive(Clone)]
pub struct BoardStorage {
    pub storage: StorageSpec,
    pub swap: SwapSpec,
    /// Where a positive control puts the swap it freezes.
    pub control: BlockDevice,
    /// What a real board gets written to its image partition.
    pub image: Option<PartitionImage>,
    /// With `verity: avb`, the vbmeta image matching the image's footer,
    /// for the user to flash where the device checks vbmeta.
    pub vbmeta: Option<PathBuf>,
}

/// Room for the control's stuck writeback (tens of MiB) and then some.
const CONTROL_ZRAM_BYTES: u64 = 128 << 20;

impl BoardStorage {
    /// On the board file's partitions: the image partition, and the swap
    /// partition when the plan swaps on a disk (the positive control uses
    /// it too, or a zram device when there is none).
    pub fn on_partitions(
        cache: &Cache,
        plan: &ResolvedPlan,
        media: &Media,
        board: &BoardFile,
    ) -> anyhow::Result<Self> {
        let b = artifacts::media::partition_storage(cache, media, &plan.plan, board)?;
        // Without a spare partition (most Android devices have none), the
        // control's swap goes on a zram device the agent adds for the run.
        let control = b.control_device.clone().unwrap_or(BlockDevice::NewZram {
            size_bytes: CONTROL_ZRAM_BYTES,
        });
        Ok(Self {
            storage: b.storage,
            swap: b.swap,
            control,
            image: Some(b.image),
            vbmeta: b.vbmeta,
        })
    }
}

/// The plan's image, written to a real board's storage once per run.
pub struct FlashJob {
    pub image: PartitionImage,
    /// Set once the image is on the board and read back intact.
    done: Arc<AtomicBool>,
    /// Where the flash record is appended (the run directory's flash.jsonl).
    record: PathBuf,
}

impl FlashJob {
    /// One job per board per run, shared by the boots of its iterations.
    pub fn new(image: PartitionImage, record: PathBuf) -> Self {
        Self {
            image,
            done: Arc::new(AtomicBool::new(false)),
            record,
        }
    }

    /// A real board's job for the run: the image its storage layout holds,
    /// recorded in the run directory's flash.jsonl.
    pub fn for_run(run: &super::RunBoard) -> Option<Self> {
        let image = run.storage.image.clone()?;
        Some(Self::new(image, run.run_dir.join("flash.jsonl")))
    }

    /// The same job, for one more boot.
    pub fn share(&self) -> Self {
        Self {
            image: self.image.clone(),
            done: self.done.clone(),
            record: self.record.clone(),
        }
    }

    /// The job, while the image is still to be written.
    pub fn pending(job: Option<&FlashJob>) -> Option<&FlashJob> {
        job.filter(|j| !j.done.load(Ordering::Relaxed))
    }

    pub fn read_image(&self) -> anyhow::Result<hilt_transports::flash::FlashImage> {
        hilt_transports::flash::FlashImage::from_file(
            &self.image.path,
            self.image.verity_root_hash.clone(),
        )
        .with_context(|| format!("reading {}", self.image.path.display()))
    }

    /// Records what was written, and never writes it again this run.
    pub fn finished(&self, rec: &impl serde::Serialize) -> anyhow::Result<()> {
        crate::durable::append_json_line(&self.record, rec)?;
        self.done.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// With `verity: avb`: copies each distinct vbmeta image into the run
/// directory (`vbmeta.img`, or `vbmeta-<board>.img` when boards differ) and
/// returns, for each, the line that tells the user what a device that checks
/// vbmeta needs. hilt never flashes vbmeta or changes verification itself.
pub fn publish_vbmeta(
    storages: &[BoardStorage],
    boards: &[BoardFile],
    run_dir: &std::path::Path,
) -> anyhow::Result<Vec<String>> {
    let mut distinct: Vec<&PathBuf> = storages.iter().filter_map(|s| s.vbmeta.as_ref()).collect();
    distinct.sort();
    distinct.dedup();
    let mut lines = Vec::new();
    let mut copied = Vec::new();
    for (s, b) in storages.iter().zip(boards) {
        let Some(src) = &s.vbmeta else { continue };
        if copied.contains(&src) {
            continue;
        }
        copied.push(src);
        let dst = run_dir.join(if distinct.len() == 1 {
            "vbmeta.img".to_owned()
        } else {
            format!("vbmeta-{}.img", b.name)
        });
        std::fs::copy(src, &dst)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        lines.push(if b.qemu.is_some() {
            format!(
                "verity: avb: the image carries its own AVB hashtree footer; its unsigned vbmeta is {} (the emulated board does not check vbmeta)",
                dst.display()
            )
        } else {
            format!(
                "verity: avb: the image for {} carries its own AVB hashtree footer; its unsigned vbmeta (algorithm NONE) is {}. \
                 If this device's bootloader verifies that partition, unlock the bootloader, or flash vbmeta yourself with \
                 `fastboot flash --disable-verification vbmeta {}` (this disables verification of every partition), \
                 or include the descriptor in your own signed vbmeta; hilt does none of this for you",
                b.name,
                dst.display(),
                dst.display()
            )
        });
    }
    Ok(lines)
}
