//! Reading a partition's own AVB metadata: footer, vbmeta, and the
//! hashtree descriptor that dm-verity is set up from.

use std::io::{self, Read, Seek, SeekFrom};

use crate::{Error, Footer, HashtreeDescriptor, Vbmeta, FOOTER_SIZE};

/// avbtool reserves 64 KiB for a footer's vbmeta; a larger size is a corrupt
/// footer, and must not become an allocation of that size.
pub const MAX_VBMETA_SIZE: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FootedPartition {
    /// Bytes, footer included.
    pub size: u64,
    pub footer: Footer,
    /// The vbmeta image as stored, `footer.vbmeta_size` bytes.
    pub vbmeta: Vec<u8>,
    /// The descriptor for the partition asked for, checked against `size`.
    pub descriptor: HashtreeDescriptor,
}

/// Reads the footer in the last 64 bytes of `part` (a block device or an
/// image file), the vbmeta it points at, and the hashtree descriptor for
/// `partition_name`, and checks that dm-verity can be set up from it with
/// the tree on the same partition. Format errors are `InvalidData` with a
/// message that says what is wrong.
pub fn read_footed<R: Read + Seek>(
    part: &mut R,
    partition_name: &str,
) -> io::Result<FootedPartition> {
    let size = part.seek(SeekFrom::End(0))?;
    let bad = |e: Error| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    if size < FOOTER_SIZE as u64 {
        return Err(bad(Error::Truncated {
            what: "partition with an AVB footer",
            need: FOOTER_SIZE as u64,
            have: size,
        }));
    }
    let mut raw = [0u8; FOOTER_SIZE];
    part.seek(SeekFrom::Start(size - FOOTER_SIZE as u64))?;
    part.read_exact(&mut raw)?;
    let footer = Footer::parse(&raw).map_err(bad)?;
    footer.check_fits(size).map_err(bad)?;
    if footer.vbmeta_size > MAX_VBMETA_SIZE {
        return Err(bad(crate::error::invalid(
            "AVB footer",
            format!(
                "vbmeta size {} is over the {MAX_VBMETA_SIZE} bytes avbtool allows",
                footer.vbmeta_size
            ),
        )));
    }
    let mut vbmeta = vec![0u8; footer.vbmeta_size as usize];
    part.seek(SeekFrom::Start(footer.vbmeta_offset))?;
    part.read_exact(&mut vbmeta)?;
    let parsed = Vbmeta::parse(&vbmeta).map_err(bad)?;
    let descriptor = parsed.hashtree(partition_name).cloned().ok_or_else(|| {
        let names: Vec<&str> = parsed
            .descriptors
            .iter()
            .filter_map(|d| match d {
                crate::Descriptor::Hashtree(h) => Some(h.partition_name.as_str()),
                _ => None,
            })
            .collect();
        bad(crate::error::invalid(
            "vbmeta",
            format!("no hashtree descriptor for partition {partition_name:?} (it has {names:?})"),
        ))
    })?;
    descriptor.check(size).map_err(bad)?;
    if footer.original_image_size > descriptor.image_size
        || descriptor.tree_offset.saturating_add(descriptor.tree_size) > footer.vbmeta_offset
    {
        return Err(bad(crate::error::invalid(
            "AVB footer",
            format!(
                "the image ({} bytes) and tree ({} at {}) do not fit before vbmeta at {}",
                footer.original_image_size,
                descriptor.tree_size,
                descriptor.tree_offset,
                footer.vbmeta_offset
            ),
        )));
    }
    Ok(FootedPartition {
        size,
        footer,
        vbmeta,
        descriptor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Descriptor;
    use std::io::Cursor;

    fn partition(vbmeta_size_override: Option<u64>) -> Vec<u8> {
        let d = HashtreeDescriptor {
            dm_verity_version: 1,
            image_size: 2 * 4096,
            tree_offset: 2 * 4096,
            tree_size: 4096,
            data_block_size: 4096,
            hash_block_size: 4096,
            fec_num_roots: 0,
            fec_offset: 0,
            fec_size: 0,
            hash_algorithm: "sha256".into(),
            partition_name: "scratch".into(),
            salt: vec![],
            root_digest: vec![5; 32],
            flags: 0,
        };
        let vbmeta = Vbmeta::unsigned(vec![Descriptor::Hashtree(d)], "t")
            .to_bytes()
            .unwrap();
        let mut p = vec![0u8; 5 * 4096];
        p[3 * 4096..3 * 4096 + vbmeta.len()].copy_from_slice(&vbmeta);
        let footer = Footer::new(
            8000,
            3 * 4096,
            vbmeta_size_override.unwrap_or(vbmeta.len() as u64),
        );
        let n = p.len();
        p[n - 64..].copy_from_slice(&footer.to_bytes());
        p
    }

    #[test]
    fn reads_a_footed_partition() {
        let p = read_footed(&mut Cursor::new(partition(None)), "scratch").unwrap();
        assert_eq!(p.size, 5 * 4096);
        assert_eq!(p.descriptor.data_blocks(), 2);
        assert_eq!(p.footer.original_image_size, 8000);
    }

    #[test]
    fn refuses_wrong_name_missing_footer_and_huge_vbmeta() {
        let e = read_footed(&mut Cursor::new(partition(None)), "system").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("[\"scratch\"]"), "{e}");
        let e = read_footed(&mut Cursor::new(vec![0u8; 8192]), "scratch").unwrap_err();
        assert!(e.to_string().contains("AVBf"), "{e}");
        let e = read_footed(&mut Cursor::new(vec![0u8; 10]), "scratch").unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        // A vbmeta that runs into the footer.
        let e = read_footed(&mut Cursor::new(partition(Some(8192))), "scratch").unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }
}
