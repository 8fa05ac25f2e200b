//! The dataset, its erofs image and verity tree, and the disks the
//! emulated board gets for one plan's storage stack.

use std::path::{Path, PathBuf};

use hilt_images::{avb, datafs, dataset, disk, erofs, verity};
use hilt_protocol::{BlockDevice, DataSpec, StorageSpec, SwapSpec, VeritySource, VeritySpec};
use serde::{Deserialize, Serialize};

use super::disk::{Attach, Disk};
use super::Cache;
use crate::plan::{BoardFile, Compressor, DataCfg, ErofsOn, Plan, SwapCfg, Verity};
use anyhow::Context;

/// The serial of the disk that positive controls put their swap on.
pub const CONTROL_DISK: &str = "ctlswap";

/// The partition name in the AVB descriptor of the emulated board's image;
/// a real board's is its `storage.image` partition.
pub const EMULATED_AVB_PARTITION: &str = "erofs";

/// What the board is given, and how the agent will find it.
#[derive(Debug, Clone)]
pub struct Media {
    pub disks: Vec<Disk>,
    pub storage: StorageSpec,
    pub swap: SwapSpec,
    pub provenance: MediaProvenance,
    /// The standalone vbmeta image matching the emulated board's AVB
    /// footer, when the plan asks for `verity: avb`.
    pub vbmeta: Option<PathBuf>,
    /// The images themselves, for boards on the bench (see [`partition_storage`]).
    erofs: PathBuf,
    verity: Option<(PathBuf, VerityRecord)>,
    avb: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaProvenance {
    pub dataset_bytes: u64,
    pub dataset_files: u32,
    pub erofs_bytes: u64,
    pub erofs_sha256: String,
    pub verity_root_hash: Option<String>,
    pub verity_salt: Option<String>,
    /// With `verity: avb`, the image the emulated board reads: erofs with
    /// its AVB hash tree, vbmeta and footer. A board on the bench gets one
    /// sized to its partition instead, recorded with its sha256 in
    /// flash.jsonl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avb_image_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avb_image_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VerityRecord {
    root_hash: String,
    salt: String,
    data_blocks: u64,
    hash_start_block: u64,
    data_block_size: u32,
    hash_block_size: u32,
}

struct Images {
    erofs: PathBuf,
    erofs_info: erofs::ErofsInfo,
    verity: Option<(PathBuf, VerityRecord)>,
}

fn build_images(cache: &Cache, plan: &Plan, say: &dyn Fn(&str)) -> anyhow::Result<Images> {
    let spec = dataset::DatasetSpec {
        seed: plan.dataset.seed,
        total_bytes: plan.dataset.size_mb << 20,
        files: plan.dataset.files,
    };
    let dkey = Cache::key(&[b"dataset-v1", &serde_json::to_vec(&spec)?]);
    let data_dir = cache.entry("datasets", &dkey, "", |dir| {
        say(&format!(
            "generating a {} MiB dataset in {} files",
            plan.dataset.size_mb, plan.dataset.files
        ));
        std::fs::create_dir_all(dir)?;
        dataset::generate(&spec, dir)?;
        Ok(())
    })?;
    let opts = erofs::ErofsOptions {
        compressor: match plan.image.compressor {
            Compressor::Lz4 => "lz4".into(),
            Compressor::Lz4hc => "lz4hc".into(),
        },
        level: plan.image.level,
        pcluster_bytes: plan.image.pcluster_kb * 1024,
    };
    let ekey = Cache::key(&[dkey.as_bytes(), &serde_json::to_vec(&opts)?]);
    let erofs_path = cache.entry("erofs", &ekey, ".img", |out| {
        say(&format!(
            "building the erofs image ({}, {} KiB pclusters)",
            opts.compressor, plan.image.pcluster_kb
        ));
        erofs::build(&data_dir, out, &opts)?;
        Ok(())
    })?;
    let erofs_info = erofs_info(cache, &ekey, &erofs_path)?;
    let verity = if plan.image.verity == Verity::Table {
        let params = verity::VerityParams::default();
        let vdir = cache.entry("verity", &ekey, "", |dir| {
            say("computing the dm-verity hash tree");
            std::fs::create_dir_all(dir)?;
            let info = verity::format(&erofs_path, &dir.join("hash.img"), &params)?;
            let rec = VerityRecord {
                root_hash: info.root_hash_hex(),
                salt: hex::encode(&info.salt),
                data_blocks: info.data_blocks,
                hash_start_block: info.hash_start_block,
                data_block_size: info.data_block_size,
                hash_block_size: info.hash_block_size,
            };
            std::fs::write(dir.join("verity.json"), serde_json::to_vec_pretty(&rec)?)?;
            Ok(())
        })?;
        let rec: VerityRecord = serde_json::from_slice(&std::fs::read(vdir.join("verity.json"))?)?;
        Some((vdir.join("hash.img"), rec))
    } else {
        None
    };
    Ok(Images {
        erofs: erofs_path,
        erofs_info,
        verity,
    })
}

/// The image's digest is cached beside it: hashing 150 MB per run would
/// cost more than the run's setup.
fn erofs_info(cache: &Cache, key: &str, img: &Path) -> anyhow::Result<erofs::ErofsInfo> {
    let p = cache.entry("erofs", key, ".json", |out| {
        let sha = super::sha256_file(img)?;
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&sha, &mut sha256)?;
        let info = erofs::ErofsInfo {
            size_bytes: std::fs::metadata(img)?.len(),
            sha256,
        };
        std::fs::write(out, serde_json::to_vec(&info)?)?;
        Ok(())
    })?;
    Ok(serde_json::from_slice(&std::fs::read(p)?)?)
}

/// An erofs image with its AVB hashtree footer, and the vbmeta image that
/// describes it, cached by image, partition name and size.
pub struct Footed {
    /// `partition.img`: exactly the partition's size.
    pub image: PathBuf,
    /// `vbmeta.img`: the same vbmeta as in the partition, standalone.
    pub vbmeta: PathBuf,
    pub root_hash: String,
    pub salt: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct FootedRecord {
    root_hash: String,
    salt: String,
    sha256: String,
    bytes: u64,
}

fn footed_image(
    cache: &Cache,
    erofs: &Path,
    erofs_sha256: &str,
    partition_name: &str,
    partition_size: Option<u64>,
    say: &dyn Fn(&str),
) -> anyhow::Result<Footed> {
    let opts = avb::AvbOptions {
        partition_size,
        ..avb::AvbOptions::new(partition_name)
    };
    let key = Cache::key(&[
        b"avb-v1",
        erofs_sha256.as_bytes(),
        partition_name.as_bytes(),
        &partition_size.unwrap_or(0).to_le_bytes(),
        &opts.verity.salt,
        opts.release_string.as_bytes(),
    ]);
    let dir = cache.entry("avb", &key, "", |dir| {
        say(&format!(
            "adding the AVB hashtree footer for partition {partition_name:?}"
        ));
        std::fs::create_dir_all(dir)?;
        let image = dir.join("partition.img");
        let f = avb::add_hashtree_footer(erofs, &image, &opts)?;
        std::fs::write(dir.join("vbmeta.img"), &f.vbmeta)?;
        let rec = FootedRecord {
            root_hash: hex::encode(&f.descriptor.root_digest),
            salt: hex::encode(&f.descriptor.salt),
            sha256: super::sha256_file(&image)?,
            bytes: f.partition_size,
        };
        std::fs::write(dir.join("avb.json"), serde_json::to_vec_pretty(&rec)?)?;
        Ok(())
    })?;
    let rec: FootedRecord = serde_json::from_slice(&std::fs::read(dir.join("avb.json"))?)?;
    Ok(Footed {
        image: dir.join("partition.img"),
        vbmeta: dir.join("vbmeta.img"),
        root_hash: rec.root_hash,
        salt: rec.salt,
        sha256: rec.sha256,
        bytes: rec.bytes,
    })
}

/// An empty filesystem of the plan's kind; the agent writes its files on
/// the board, so one image serves every plan of that size.
fn data_fs(cache: &Cache, d: &DataCfg) -> anyhow::Result<PathBuf> {
    let name = d.fs.name();
    cache.entry("disks", &format!("{name}-{}M", d.size_mb), ".img", |out| {
        datafs::format(out, name, d.size_mb << 20)?;
        Ok(())
    })
}

fn zero_disk(cache: &Cache, size_mb: u64) -> anyhow::Result<PathBuf> {
    cache.entry("disks", &format!("zero-{size_mb}M"), ".img", |out| {
        let f = std::fs::File::create(out)?;
        f.set_len(size_mb << 20)?;
        Ok(())
    })
}

pub fn build_media(cache: &Cache, plan: &Plan, say: &dyn Fn(&str)) -> anyhow::Result<Media> {
    let img = build_images(cache, plan, say)?;
    // With AVB, the one erofs disk or partition carries data, tree, vbmeta
    // and footer, and the agent reads the footer; there is no hash disk.
    let footed = match plan.image.verity {
        Verity::Avb => {
            // The footer must end the device: an SD card partition is
            // rounded up to the card's alignment, so the image is made that
            // size; a virtio disk is the image itself.
            let size = match plan.storage.erofs_on {
                ErofsOn::Virtio => None,
                ErofsOn::Sdcard => {
                    let min = avb::min_partition_size(
                        img.erofs_info.size_bytes,
                        &avb::AvbOptions::new(EMULATED_AVB_PARTITION),
                    )?;
                    Some(min.next_multiple_of(disk::ALIGN_BYTES))
                }
            };
            Some(footed_image(
                cache,
                &img.erofs,
                &img.erofs_info.sha256_hex(),
                EMULATED_AVB_PARTITION,
                size,
                say,
            )?)
        }
        _ => None,
    };
    let erofs_disk = footed
        .as_ref()
        .map_or_else(|| img.erofs.clone(), |f| f.image.clone());
    let mut disks = Vec::new();
    let mut data = None;
    let virtio = |id: &str, path: PathBuf, read_only: bool, snapshot: bool| Disk {
        id: id.into(),
        path,
        attach: Attach::Virtio { serial: id.into() },
        read_only,
        snapshot,
    };
    let (erofs_dev, hash_dev, swap) = match plan.storage.erofs_on {
        ErofsOn::Virtio => {
            disks.push(virtio("erofs", erofs_disk.clone(), true, false));
            let hash = img.verity.as_ref().map(|(p, _)| {
                disks.push(virtio("hash", p.clone(), true, false));
                BlockDevice::VirtioSerial("hash".into())
            });
            let swap = match &plan.swap {
                SwapCfg::Disk { size_mb } => {
                    disks.push(virtio("swap", zero_disk(cache, *size_mb)?, false, true));
                    SwapSpec::Device {
                        device: BlockDevice::VirtioSerial("swap".into()),
                    }
                }
                other => generic_swap(other),
            };
            (BlockDevice::VirtioSerial("erofs".into()), hash, swap)
        }
        ErofsOn::Sdcard => {
            // One card holds everything that should share its mmc queue:
            // erofs, then swap (when on the card), then the hash tree.
            let mut parts = vec![disk::PartitionSpec {
                source: Some(erofs_disk.clone()),
                size_bytes: 0,
                type_id: disk::TYPE_LINUX,
            }];
            let mut swap = generic_swap(&plan.swap);
            if let SwapCfg::Sdcard { size_mb } = plan.swap {
                parts.push(disk::PartitionSpec {
                    source: None,
                    size_bytes: size_mb << 20,
                    type_id: disk::TYPE_SWAP,
                });
                swap = SwapSpec::Device {
                    device: BlockDevice::Mmc {
                        partition: Some(parts.len() as u32),
                    },
                };
            }
            let mut hash = None;
            if let Some((p, _)) = &img.verity {
                parts.push(disk::PartitionSpec {
                    source: Some(p.clone()),
                    size_bytes: 0,
                    type_id: disk::TYPE_LINUX,
                });
                hash = Some(BlockDevice::Mmc {
                    partition: Some(parts.len() as u32),
                });
            }
            if let Some(d) = &plan.storage.data {
                parts.push(disk::PartitionSpec {
                    source: Some(data_fs(cache, d)?),
                    size_bytes: 0,
                    type_id: disk::TYPE_LINUX,
                });
                data = Some(DataSpec {
                    device: BlockDevice::Mmc {
                        partition: Some(parts.len() as u32),
                    },
                    fs: d.fs,
                    files: d.files,
                    file_bytes: d.file_mb << 20,
                });
            }
            if let SwapCfg::Disk { size_mb } = &plan.swap {
                disks.push(virtio("swap", zero_disk(cache, *size_mb)?, false, true));
                swap = SwapSpec::Device {
                    device: BlockDevice::VirtioSerial("swap".into()),
                };
            }
            let key = Cache::key(&[
                b"sdcard-v1",
                &serde_json::to_vec(&parts)?,
                img.erofs_info.sha256_hex().as_bytes(),
                footed.as_ref().map_or(&b""[..], |f| f.sha256.as_bytes()),
            ]);
            let card = cache.entry("sdcard", &key, ".img", |out| {
                say("writing the SD card image");
                disk::build_mbr_image(out, &parts)?;
                Ok(())
            })?;
            disks.push(Disk {
                id: "card0".into(),
                path: card,
                attach: Attach::SdCard,
                read_only: false,
                snapshot: true,
            });
            (BlockDevice::Mmc { partition: Some(1) }, hash, swap)
        }
    };
    if !plan.controls.is_empty() {
        disks.push(virtio(CONTROL_DISK, zero_disk(cache, 128)?, false, true));
    }
    let explicit = match (&img.verity, hash_dev) {
        (Some((_, r)), Some(hash)) => Some(VeritySpec {
            hash,
            root_hash: r.root_hash.clone(),
            salt: r.salt.clone(),
            data_blocks: r.data_blocks,
            data_block_size: r.data_block_size,
            hash_block_size: r.hash_block_size,
            hash_start_block: r.hash_start_block,
        }),
        _ => None,
    };
    let (root, salt) = match (&explicit, &footed) {
        (Some(v), _) => (Some(v.root_hash.clone()), Some(v.salt.clone())),
        (None, Some(f)) => (Some(f.root_hash.clone()), Some(f.salt.clone())),
        (None, None) => (None, None),
    };
    let verity = match &footed {
        Some(_) => Some(VeritySource::AvbFooter {
            partition_name: EMULATED_AVB_PARTITION.into(),
        }),
        None => explicit.map(VeritySource::Explicit),
    };
    let provenance = MediaProvenance {
        dataset_bytes: plan.dataset.size_mb << 20,
        dataset_files: plan.dataset.files,
        erofs_bytes: img.erofs_info.size_bytes,
        erofs_sha256: img.erofs_info.sha256_hex(),
        verity_root_hash: root,
        verity_salt: salt,
        avb_image_sha256: footed.as_ref().map(|f| f.sha256.clone()),
        avb_image_bytes: footed.as_ref().map(|f| f.bytes),
    };
    Ok(Media {
        disks,
        storage: StorageSpec {
            erofs: erofs_dev,
            verity,
            mount_options: plan.storage.mount_options.clone(),
            io_scheduler: plan.storage.io_scheduler.clone(),
            sync_decompress: plan.storage.sync_decompress,
            data,
        },
        swap,
        provenance,
        vbmeta: footed.map(|f| f.vbmeta),
        erofs: img.erofs,
        verity: img.verity,
        avb: plan.image.verity == Verity::Avb,
    })
}

/// The one image a board on the bench gets in its `storage.image`
/// partition: erofs, then its verity hash tree (superblock first), the way
/// Android appends hash trees to the partitions they verify.
#[derive(Debug, Clone)]
pub struct PartitionImage {
    pub path: PathBuf,
    pub verity_root_hash: Option<String>,
}

/// Where a real board keeps the plan's storage stack: the devices
/// are the board file's partitions, not QEMU disks.
pub struct PartitionStorage {
    pub image: PartitionImage,
    /// With `verity: avb`, the vbmeta image matching the partition's footer.
    pub vbmeta: Option<PathBuf>,
    pub storage: StorageSpec,
    pub swap: SwapSpec,
    /// The device a positive control freezes its swap on.
    pub control_device: Option<BlockDevice>,
}

pub fn partition_storage(
    cache: &Cache,
    media: &Media,
    plan: &Plan,
    board: &BoardFile,
) -> anyhow::Result<PartitionStorage> {
    let cfg = board.storage.as_ref().with_context(|| {
        format!(
            "board {} has no `storage:` section: name the partition that receives the image \
             (storage: {{image: data}}) and, for swap on disk, the swap partition",
            board.name
        )
    })?;
    let node = |part: &str| -> anyhow::Result<BlockDevice> {
        board
            .partitions
            .get(part)
            .map(|p| BlockDevice::Path(p.clone()))
            .with_context(|| {
                format!(
                    "board {}: partition {part:?} is not in `partitions:`",
                    board.name
                )
            })
    };
    let device = node(&cfg.image)?;
    let swap_part = cfg.swap.as_deref().map(node).transpose()?;
    let swap = match &plan.swap {
        SwapCfg::Disk { .. } | SwapCfg::Sdcard { .. } => SwapSpec::Device {
            device: swap_part.clone().with_context(|| {
                format!(
                    "the plan swaps on a disk, and board {} names no swap partition (storage: {{swap: <partition>}})",
                    board.name
                )
            })?,
        },
        other => generic_swap(other),
    };
    if media.avb {
        let size = cfg.image_bytes.with_context(|| {
            format!(
                "board {}: `verity: avb` puts the AVB footer in the last bytes of partition {:?}, so hilt must know its size: \
                 add storage: {{image_bytes: N}} (on the board, `blockdev --getsize64 <node>`)",
                board.name, cfg.image
            )
        })?;
        let f = footed_image(
            cache,
            &media.erofs,
            &media.provenance.erofs_sha256,
            &cfg.image,
            Some(size),
            &|_| {},
        )?;
        return Ok(PartitionStorage {
            image: PartitionImage {
                path: f.image,
                verity_root_hash: Some(f.root_hash),
            },
            vbmeta: Some(f.vbmeta),
            storage: StorageSpec {
                erofs: device,
                verity: Some(VeritySource::AvbFooter {
                    partition_name: cfg.image.clone(),
                }),
                ..media.storage.clone()
            },
            swap,
            control_device: swap_part,
        });
    }
    let erofs_bytes = std::fs::metadata(&media.erofs)?.len();
    let (image, verity) = match &media.verity {
        None => (
            PartitionImage {
                path: media.erofs.clone(),
                verity_root_hash: None,
            },
            None,
        ),
        Some((hash, r)) => {
            // verity hashes whole blocks, so the image is a whole number of
            // them, and the hash tree starts on a hash-block boundary.
            let data_bytes = r.data_blocks * r.data_block_size as u64;
            anyhow::ensure!(
                data_bytes == erofs_bytes && data_bytes.is_multiple_of(r.hash_block_size as u64),
                "the erofs image ({erofs_bytes} bytes) is not the {} verity data blocks it was hashed as",
                r.data_blocks
            );
            let key = Cache::key(&[
                b"partition-v1",
                media.provenance.erofs_sha256.as_bytes(),
                r.root_hash.as_bytes(),
            ]);
            let path = cache.entry("partition", &key, ".img", |out| {
                let mut f = std::fs::File::create(out)?;
                std::io::copy(&mut std::fs::File::open(&media.erofs)?, &mut f)?;
                f.set_len(data_bytes)?;
                use std::io::Seek;
                f.seek(std::io::SeekFrom::End(0))?;
                std::io::copy(&mut std::fs::File::open(hash)?, &mut f)?;
                Ok(())
            })?;
            let spec = VeritySpec {
                hash: device.clone(),
                root_hash: r.root_hash.clone(),
                salt: r.salt.clone(),
                data_blocks: r.data_blocks,
                data_block_size: r.data_block_size,
                hash_block_size: r.hash_block_size,
                hash_start_block: data_bytes / r.hash_block_size as u64 + r.hash_start_block,
            };
            (
                PartitionImage {
                    path,
                    verity_root_hash: Some(r.root_hash.clone()),
                },
                Some(spec),
            )
        }
    };
    Ok(PartitionStorage {
        image,
        vbmeta: None,
        storage: StorageSpec {
            erofs: device,
            verity: verity.map(VeritySource::Explicit),
            ..media.storage.clone()
        },
        swap,
        control_device: swap_part,
    })
}

fn generic_swap(cfg: &SwapCfg) -> SwapSpec {
    match cfg {
        SwapCfg::Zram { size_mb, algorithm } => SwapSpec::Zram {
            size_bytes: size_mb << 20,
            algorithm: algorithm.clone(),
        },
        SwapCfg::ZramExisting => SwapSpec::ZramExisting,
        _ => SwapSpec::None,
    }
}
