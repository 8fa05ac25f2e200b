//! A partition image with an AVB hashtree footer, laid out as AOSP's
//! `avbtool add_hashtree_footer` lays it out:
//!
//! ```text
//! 0                 image, zero-padded to a whole block   (image_size)
//! tree_offset       dm-verity hash tree, top level first  (tree_size)
//! vbmeta_offset     vbmeta image, zero-padded to a block  (vbmeta_size)
//!                   zeros (a sparse hole)
//! size - block      zeros, then the 64-byte footer in the last bytes
//! ```
//!
//! The tree is the dm-verity one of [`crate::verity`] without the
//! veritysetup superblock, and the vbmeta is unsigned (algorithm NONE).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use hilt_avb::{Descriptor, Footer, HashtreeDescriptor, Vbmeta, FOOTER_SIZE};

use crate::verity::{self, VerityParams};
use crate::Error;

/// What the vbmeta header says wrote it.
pub const RELEASE_STRING: &str = "hilt avb 1";

#[derive(Debug, Clone)]
pub struct AvbOptions {
    /// The descriptor's partition name, which the agent checks.
    pub partition_name: String,
    /// The whole partition, footer included; `None` for the smallest that
    /// holds image, tree, vbmeta and footer. A multiple of the block size.
    pub partition_size: Option<u64>,
    /// Data and hash block sizes must be equal, as avbtool makes them.
    pub verity: VerityParams,
    pub release_string: String,
}

impl AvbOptions {
    pub fn new(partition_name: &str) -> Self {
        AvbOptions {
            partition_name: partition_name.to_owned(),
            partition_size: None,
            verity: VerityParams::default(),
            release_string: RELEASE_STRING.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FootedImage {
    pub partition_size: u64,
    pub footer: Footer,
    pub descriptor: HashtreeDescriptor,
    /// The vbmeta image exactly as it is in the partition, without padding:
    /// what a user flashes to `vbmeta` (with `--disable-verification`) or
    /// hands to their own `avbtool make_vbmeta_image --include_descriptors_from_image`.
    pub vbmeta: Vec<u8>,
}

/// The smallest partition that holds an image of `image_bytes` with its
/// tree, vbmeta and footer: what [`add_hashtree_footer`] makes when
/// `partition_size` is None. Lets a caller that must round the partition
/// (to a disk's alignment, say) ask for the rounded size up front.
pub fn min_partition_size(image_bytes: u64, opts: &AvbOptions) -> Result<u64, Error> {
    let block = u64::from(opts.verity.data_block_size);
    let image_size = image_bytes.div_ceil(block) * block;
    let tree_size = hilt_avb::tree_size(image_size, block as u32, 32);
    // Only the lengths of salt, name and digest shape the vbmeta's size.
    let shape = HashtreeDescriptor {
        dm_verity_version: 1,
        image_size,
        tree_offset: image_size,
        tree_size,
        data_block_size: block as u32,
        hash_block_size: block as u32,
        fec_num_roots: 0,
        fec_offset: 0,
        fec_size: 0,
        hash_algorithm: "sha256".into(),
        partition_name: opts.partition_name.clone(),
        salt: opts.verity.salt.clone(),
        root_digest: vec![0; 32],
        flags: 0,
    };
    let vbmeta = Vbmeta::unsigned(vec![Descriptor::Hashtree(shape)], &opts.release_string)
        .to_bytes()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(image_size + tree_size + (vbmeta.len() as u64).next_multiple_of(block) + block)
}

/// Writes `out`: `image` with its hash tree, vbmeta and footer, sized to the
/// partition.
pub fn add_hashtree_footer(
    image: &Path,
    out: &Path,
    opts: &AvbOptions,
) -> Result<FootedImage, Error> {
    let block = opts.verity.data_block_size;
    if opts.verity.hash_block_size != block {
        return Err(Error::InvalidOption {
            what: "AVB block sizes",
            reason: format!(
                "data block {block} and hash block {} must be equal, as avbtool writes them",
                opts.verity.hash_block_size
            ),
        });
    }
    let block = u64::from(block);
    let original_image_size = std::fs::metadata(image)
        .map_err(|e| Error::io("reading the size of", image, e))?
        .len();
    std::fs::copy(image, out).map_err(|e| Error::io("copying the image to", out, e))?;
    let image_size =
        verity::pad_to_block(out, block as u32).map_err(|e| Error::io("padding", out, e))?;
    let tree = verity::hash_tree(out, &opts.verity).map_err(|e| Error::io("hashing", out, e))?;

    let descriptor = HashtreeDescriptor {
        dm_verity_version: 1,
        image_size,
        tree_offset: image_size,
        tree_size: tree.levels.len() as u64,
        data_block_size: block as u32,
        hash_block_size: block as u32,
        fec_num_roots: 0,
        fec_offset: 0,
        fec_size: 0,
        hash_algorithm: "sha256".into(),
        partition_name: opts.partition_name.clone(),
        salt: tree.info.salt.clone(),
        root_digest: tree.info.root_hash.to_vec(),
        flags: 0,
    };
    let vbmeta = Vbmeta::unsigned(
        vec![Descriptor::Hashtree(descriptor.clone())],
        &opts.release_string,
    )
    .to_bytes()
    .map_err(|e| Error::Invalid(e.to_string()))?;
    let vbmeta_offset = image_size + descriptor.tree_size;
    let needed = vbmeta_offset + (vbmeta.len() as u64).next_multiple_of(block) + block;
    debug_assert_eq!(needed, min_partition_size(original_image_size, opts)?);
    let partition_size = match opts.partition_size {
        None => needed,
        Some(size) if size % block != 0 => {
            return Err(Error::InvalidOption {
                what: "AVB partition size",
                reason: format!("{size} bytes is not a multiple of the {block}-byte block"),
            })
        }
        Some(size) if size < needed => {
            return Err(Error::InvalidOption {
                what: "AVB partition size",
                reason: format!(
                    "{size} bytes cannot hold the {original_image_size}-byte image with its \
                     {}-byte hash tree, vbmeta and footer: it needs at least {needed} bytes",
                    descriptor.tree_size
                ),
            })
        }
        Some(size) => size,
    };
    let footer = Footer::new(original_image_size, vbmeta_offset, vbmeta.len() as u64);

    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).open(out)?;
        f.seek(SeekFrom::Start(image_size))?;
        f.write_all(&tree.levels)?;
        f.write_all(&vbmeta)?;
        // Everything between vbmeta and footer stays a hole of zeros.
        f.set_len(partition_size)?;
        f.seek(SeekFrom::Start(partition_size - FOOTER_SIZE as u64))?;
        f.write_all(&footer.to_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| Error::io("writing the AVB footer into", out, e))?;
    Ok(FootedImage {
        partition_size,
        footer,
        descriptor,
        vbmeta,
    })
}

/// Reads a footed partition image back: its footer, its vbmeta and the
/// hashtree descriptor for `partition_name`, checked against the file's
/// size with the same code the board's agent checks a device with.
pub fn read_footer(path: &Path, partition_name: &str) -> Result<FootedImage, Error> {
    let mut f = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let p = hilt_avb::read_footed(&mut f, partition_name).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Error::Invalid(format!("{}: {e}", path.display())),
        _ => Error::io("reading the AVB footer of", path, e),
    })?;
    Ok(FootedImage {
        partition_size: p.size,
        footer: p.footer,
        descriptor: p.descriptor,
        vbmeta: p.vbmeta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(dir: &Path, bytes: usize) -> std::path::PathBuf {
        let p = dir.join("in.img");
        std::fs::write(
            &p,
            (0..bytes).map(|i| (i * 13 % 251) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        p
    }

    #[test]
    fn layout_matches_the_descriptor_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let input = image(dir.path(), 300 * 4096 - 100);
        let out = dir.path().join("out.img");
        let opts = AvbOptions {
            partition_size: Some(2 << 20),
            ..AvbOptions::new("scratch")
        };
        let f = add_hashtree_footer(&input, &out, &opts).unwrap();
        assert_eq!(f.partition_size, 2 << 20);
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 2 << 20);
        assert_eq!(f.footer.original_image_size, 300 * 4096 - 100);
        assert_eq!(f.descriptor.image_size, 300 * 4096);
        assert_eq!(f.descriptor.tree_offset, 300 * 4096);
        assert_eq!(f.descriptor.tree_size, 4 * 4096);
        assert_eq!(f.footer.vbmeta_offset, 304 * 4096);

        // The tree in the image is the one veritysetup's format puts after
        // its superblock, and the root is the same.
        let padded = dir.path().join("padded.img");
        let mut data = std::fs::read(&input).unwrap();
        data.resize(300 * 4096, 0);
        std::fs::write(&padded, &data).unwrap();
        let hash = dir.path().join("hash.img");
        let info = verity::format(&padded, &hash, &VerityParams::default()).unwrap();
        assert_eq!(f.descriptor.root_digest, info.root_hash);
        let written = std::fs::read(&out).unwrap();
        assert_eq!(written[..300 * 4096], data[..]);
        assert_eq!(
            written[300 * 4096..304 * 4096],
            std::fs::read(&hash).unwrap()[4096..]
        );

        assert_eq!(read_footer(&out, "scratch").unwrap(), f);
        let e = read_footer(&out, "system").unwrap_err().to_string();
        assert!(e.contains("no hashtree descriptor"), "{e}");
    }

    #[test]
    fn smallest_partition_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let input = image(dir.path(), 4096);
        let out = dir.path().join("out.img");
        let f = add_hashtree_footer(&input, &out, &AvbOptions::new("p")).unwrap();
        // One data block: no tree, a vbmeta block, a footer block.
        assert_eq!(f.descriptor.tree_size, 0);
        assert_eq!(f.partition_size, 3 * 4096);
        assert_eq!(
            min_partition_size(4096, &AvbOptions::new("p")).unwrap(),
            3 * 4096
        );
        assert_eq!(
            min_partition_size(300 * 4096 - 100, &AvbOptions::new("scratch")).unwrap(),
            306 * 4096
        );
        read_footer(&out, "p").unwrap();

        let small = AvbOptions {
            partition_size: Some(2 * 4096),
            ..AvbOptions::new("p")
        };
        let e = add_hashtree_footer(&input, &out, &small)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 12288"), "{e}");
        let odd = AvbOptions {
            partition_size: Some(5 * 4096 + 1),
            ..AvbOptions::new("p")
        };
        assert!(add_hashtree_footer(&input, &out, &odd).is_err());

        // An image without a footer says so.
        let e = read_footer(&input, "p").unwrap_err().to_string();
        assert!(e.contains("AVBf"), "{e}");
    }
}
