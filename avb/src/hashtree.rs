//! `AvbHashtreeDescriptor`: how a partition's dm-verity hash tree was made
//! and where it lies.

use crate::be::{all_zero, put_u32, put_u64, Reader};
use crate::error::{invalid, Error};

pub(crate) const TAG: u64 = 1;
/// The fixed part, descriptor header (tag, num_bytes_following) included.
const FIXED_SIZE: usize = 180;
const RESERVED: usize = 60;
const ALGORITHM_FIELD: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashtreeDescriptor {
    pub dm_verity_version: u32,
    /// Bytes of data the tree covers, from the start of the partition: the
    /// image rounded up to the data block size.
    pub image_size: u64,
    /// Where the tree starts, from the start of the partition.
    pub tree_offset: u64,
    pub tree_size: u64,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub fec_num_roots: u32,
    pub fec_offset: u64,
    pub fec_size: u64,
    /// "sha256", "sha1" or "sha512", as dm-verity names them.
    pub hash_algorithm: String,
    /// Without the A/B suffix.
    pub partition_name: String,
    pub salt: Vec<u8>,
    /// Empty when the root digest is kept on the device (persistent digest).
    pub root_digest: Vec<u8>,
    /// AVB_HASHTREE_DESCRIPTOR_FLAGS_*: bit 0 do-not-use-A/B, bit 1
    /// check-at-most-once.
    pub flags: u32,
}

fn digest_size(algorithm: &str) -> Option<usize> {
    match algorithm {
        "sha1" => Some(20),
        "sha256" => Some(32),
        "sha512" => Some(64),
        _ => None,
    }
}

/// Bytes of the hash tree for `image_size` bytes of data: every level's
/// digests (each padded to a power of two) rounded up to whole blocks, down
/// to the level that fits in one block. Zero when the image is a single
/// block, whose digest is the root itself.
pub fn tree_size(image_size: u64, block_size: u32, digest_size: u32) -> u64 {
    let block = u64::from(block_size);
    let digest = u64::from(digest_size.next_power_of_two());
    let mut total = 0;
    let mut size = image_size;
    while size > block {
        let level = (size.div_ceil(block) * digest).div_ceil(block) * block;
        total += level;
        size = level;
    }
    total
}

impl HashtreeDescriptor {
    pub fn to_bytes(&self) -> Vec<u8> {
        let name = self.partition_name.as_bytes();
        let following = (FIXED_SIZE - 16 + name.len() + self.salt.len() + self.root_digest.len())
            .next_multiple_of(8);
        let mut v = Vec::with_capacity(16 + following);
        put_u64(&mut v, TAG);
        put_u64(&mut v, following as u64);
        put_u32(&mut v, self.dm_verity_version);
        put_u64(&mut v, self.image_size);
        put_u64(&mut v, self.tree_offset);
        put_u64(&mut v, self.tree_size);
        put_u32(&mut v, self.data_block_size);
        put_u32(&mut v, self.hash_block_size);
        put_u32(&mut v, self.fec_num_roots);
        put_u64(&mut v, self.fec_offset);
        put_u64(&mut v, self.fec_size);
        let mut alg = [0u8; ALGORITHM_FIELD];
        alg[..self.hash_algorithm.len()].copy_from_slice(self.hash_algorithm.as_bytes());
        v.extend_from_slice(&alg);
        put_u32(&mut v, name.len() as u32);
        put_u32(&mut v, self.salt.len() as u32);
        put_u32(&mut v, self.root_digest.len() as u32);
        put_u32(&mut v, self.flags);
        v.resize(FIXED_SIZE, 0);
        v.extend_from_slice(name);
        v.extend_from_slice(&self.salt);
        v.extend_from_slice(&self.root_digest);
        v.resize(16 + following, 0);
        v
    }

    /// Parses one whole descriptor (its 16-byte header included), as
    /// [`crate::vbmeta::Vbmeta::parse`] hands it over.
    pub fn parse(bytes: &[u8]) -> Result<HashtreeDescriptor, Error> {
        const WHAT: &str = "hashtree descriptor";
        if bytes.len() < FIXED_SIZE {
            return Err(Error::Truncated {
                what: WHAT,
                need: FIXED_SIZE as u64,
                have: bytes.len() as u64,
            });
        }
        let mut r = Reader::new(bytes);
        let tag = r.u64();
        if tag != TAG {
            return Err(invalid(WHAT, format!("tag is {tag}, not {TAG}")));
        }
        let following = r.u64();
        if following.checked_add(16) != Some(bytes.len() as u64) {
            return Err(invalid(
                WHAT,
                format!(
                    "num_bytes_following is {following}, the descriptor holds {} bytes after its header",
                    bytes.len() - 16
                ),
            ));
        }
        let dm_verity_version = r.u32();
        let image_size = r.u64();
        let tree_offset = r.u64();
        let tree_size = r.u64();
        let data_block_size = r.u32();
        let hash_block_size = r.u32();
        let fec_num_roots = r.u32();
        let fec_offset = r.u64();
        let fec_size = r.u64();
        let alg_field = r.take(ALGORITHM_FIELD);
        let name_len = r.u32() as u64;
        let salt_len = r.u32() as u64;
        let digest_len = r.u32() as u64;
        let flags = r.u32();
        if !all_zero(r.take(RESERVED)) {
            return Err(invalid(WHAT, "reserved bytes are not zero"));
        }
        let need = FIXED_SIZE as u64 + name_len + salt_len + digest_len;
        if need > bytes.len() as u64 {
            return Err(Error::Truncated {
                what: WHAT,
                need,
                have: bytes.len() as u64,
            });
        }
        let alg_len = alg_field
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(ALGORITHM_FIELD);
        if !all_zero(&alg_field[alg_len..]) {
            return Err(invalid(WHAT, "hash algorithm name is not NUL-padded"));
        }
        let hash_algorithm = std::str::from_utf8(&alg_field[..alg_len])
            .map_err(|_| invalid(WHAT, "hash algorithm name is not UTF-8"))?
            .to_owned();
        let partition_name = std::str::from_utf8(r.take(name_len as usize))
            .map_err(|_| invalid(WHAT, "partition name is not UTF-8"))?
            .to_owned();
        let salt = r.take(salt_len as usize).to_vec();
        let root_digest = r.take(digest_len as usize).to_vec();
        if let Some(size) = digest_size(&hash_algorithm) {
            if !root_digest.is_empty() && root_digest.len() != size {
                return Err(invalid(
                    WHAT,
                    format!(
                        "root digest is {} bytes; {hash_algorithm} digests are {size}",
                        root_digest.len()
                    ),
                ));
            }
        }
        Ok(HashtreeDescriptor {
            dm_verity_version,
            image_size,
            tree_offset,
            tree_size,
            data_block_size,
            hash_block_size,
            fec_num_roots,
            fec_offset,
            fec_size,
            hash_algorithm,
            partition_name,
            salt,
            root_digest,
            flags,
        })
    }

    /// Checks everything dm-verity needs from this descriptor on a partition
    /// of `partition_size` bytes whose data and tree are on the same
    /// device: a supported version and algorithm, a root digest in the
    /// descriptor, block sizes the kernel takes, whole data and hash blocks,
    /// and a tree of the size the data needs that lies after the data and
    /// inside the partition.
    pub fn check(&self, partition_size: u64) -> Result<(), Error> {
        const WHAT: &str = "hashtree descriptor";
        if self.dm_verity_version != 1 {
            return Err(invalid(
                WHAT,
                format!(
                    "dm-verity version {} (only 1 is supported)",
                    self.dm_verity_version
                ),
            ));
        }
        let Some(dsize) = digest_size(&self.hash_algorithm) else {
            return Err(invalid(
                WHAT,
                format!(
                    "hash algorithm {:?} (expected sha256, sha1 or sha512)",
                    self.hash_algorithm
                ),
            ));
        };
        if self.root_digest.is_empty() {
            return Err(invalid(
                WHAT,
                "no root digest: it is a persistent digest kept by the bootloader, which hilt cannot read",
            ));
        }
        for (name, size) in [
            ("data block size", self.data_block_size),
            ("hash block size", self.hash_block_size),
        ] {
            if !size.is_power_of_two() || !(512..=65536).contains(&size) {
                return Err(invalid(
                    WHAT,
                    format!("{name} {size} is not a power of two between 512 and 65536"),
                ));
            }
        }
        if self.image_size == 0 || self.image_size % u64::from(self.data_block_size) != 0 {
            return Err(invalid(
                WHAT,
                format!(
                    "image size {} is not a non-zero multiple of the {}-byte data block",
                    self.image_size, self.data_block_size
                ),
            ));
        }
        if self.tree_offset % u64::from(self.hash_block_size) != 0 {
            return Err(invalid(
                WHAT,
                format!(
                    "tree offset {} is not on a {}-byte hash block boundary",
                    self.tree_offset, self.hash_block_size
                ),
            ));
        }
        if self.tree_offset < self.image_size {
            return Err(invalid(
                WHAT,
                format!(
                    "the tree at {} overlaps the {} bytes of data it covers",
                    self.tree_offset, self.image_size
                ),
            ));
        }
        if self.data_block_size == self.hash_block_size {
            let want = tree_size(self.image_size, self.hash_block_size, dsize as u32);
            if self.tree_size != want {
                return Err(invalid(
                    WHAT,
                    format!(
                        "tree size {} does not match the {want} bytes a tree over {} bytes takes",
                        self.tree_size, self.image_size
                    ),
                ));
            }
        }
        match self.tree_offset.checked_add(self.tree_size) {
            Some(end) if end <= partition_size => Ok(()),
            _ => Err(invalid(
                WHAT,
                format!(
                    "the tree at {} ({} bytes) runs past the end of the {partition_size}-byte partition",
                    self.tree_offset, self.tree_size
                ),
            )),
        }
    }

    /// The number of data blocks dm-verity covers.
    pub fn data_blocks(&self) -> u64 {
        self.image_size / u64::from(self.data_block_size)
    }

    /// The dm-verity target's parameters with data and tree on `device`
    /// (the partition itself), and the target's length in 512-byte sectors.
    /// Call [`HashtreeDescriptor::check`] first.
    pub fn verity_target(&self, device: &str) -> (u64, String) {
        let salt = if self.salt.is_empty() {
            "-".to_owned()
        } else {
            hex(&self.salt)
        };
        let params = format!(
            "{} {device} {device} {} {} {} {} {} {} {salt}",
            self.dm_verity_version,
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks(),
            self.tree_offset / u64::from(self.hash_block_size),
            self.hash_algorithm,
            hex(&self.root_digest),
        );
        (self.image_size / 512, params)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> HashtreeDescriptor {
        HashtreeDescriptor {
            dm_verity_version: 1,
            image_size: 300 * 4096,
            tree_offset: 300 * 4096,
            tree_size: 4 * 4096,
            data_block_size: 4096,
            hash_block_size: 4096,
            fec_num_roots: 0,
            fec_offset: 0,
            fec_size: 0,
            hash_algorithm: "sha256".into(),
            partition_name: "scratch".into(),
            salt: vec![7; 32],
            root_digest: vec![0xab; 32],
            flags: 0,
        }
    }

    #[test]
    fn tree_sizes_follow_levels() {
        assert_eq!(tree_size(4096, 4096, 32), 0);
        assert_eq!(tree_size(2 * 4096, 4096, 32), 4096);
        assert_eq!(tree_size(128 * 4096, 4096, 32), 4096);
        // 129 leaves need two leaf blocks and one block above them.
        assert_eq!(tree_size(129 * 4096, 4096, 32), 3 * 4096);
        // 300 leaves: three leaf blocks, one above them.
        assert_eq!(tree_size(300 * 4096, 4096, 32), 4 * 4096);
        // sha1's 20-byte digests take 32 bytes each in the tree.
        assert_eq!(tree_size(129 * 4096, 4096, 20), 3 * 4096);
    }

    #[test]
    fn round_trip() {
        let d = sample();
        let b = d.to_bytes();
        assert_eq!(b.len() % 8, 0);
        assert_eq!(b.len(), 180 + 7 + 32 + 32 + 5);
        assert_eq!(HashtreeDescriptor::parse(&b).unwrap(), d);
        d.check(304 * 4096).unwrap();
        assert!(d.check(304 * 4096 - 1).is_err());
    }

    #[test]
    fn parse_rejects_corruption() {
        let b = sample().to_bytes();
        assert!(matches!(
            HashtreeDescriptor::parse(&b[..100]),
            Err(Error::Truncated { .. })
        ));
        // Cutting the tail leaves num_bytes_following pointing past the end.
        assert!(HashtreeDescriptor::parse(&b[..b.len() - 8]).is_err());
        let mut tag = b.clone();
        tag[7] = 2;
        assert!(HashtreeDescriptor::parse(&tag).is_err());
        // A salt length larger than the descriptor.
        let mut salt = b.clone();
        salt[108..112].copy_from_slice(&1000u32.to_be_bytes());
        assert!(matches!(
            HashtreeDescriptor::parse(&salt),
            Err(Error::Truncated { .. })
        ));
        let mut digest = b.clone();
        digest[112..116].copy_from_slice(&31u32.to_be_bytes());
        assert!(HashtreeDescriptor::parse(&digest).is_err());
        let mut reserved = b;
        reserved[170] = 1;
        assert!(HashtreeDescriptor::parse(&reserved).is_err());
    }

    #[test]
    fn check_refuses_what_dm_verity_cannot_use() {
        let ok = sample();
        let part = 304 * 4096;
        for (bad, needle) in [
            (
                HashtreeDescriptor {
                    hash_algorithm: "md5".into(),
                    ..ok.clone()
                },
                "md5",
            ),
            (
                HashtreeDescriptor {
                    root_digest: vec![],
                    ..ok.clone()
                },
                "persistent",
            ),
            (
                HashtreeDescriptor {
                    tree_size: 4096,
                    ..ok.clone()
                },
                "tree size",
            ),
            (
                HashtreeDescriptor {
                    tree_offset: 4096,
                    ..ok.clone()
                },
                "overlaps",
            ),
            (
                HashtreeDescriptor {
                    image_size: 1000,
                    ..ok.clone()
                },
                "multiple",
            ),
            (
                HashtreeDescriptor {
                    data_block_size: 3000,
                    ..ok.clone()
                },
                "power of two",
            ),
        ] {
            let e = bad.check(part).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        assert!(ok
            .check(303 * 4096)
            .unwrap_err()
            .to_string()
            .contains("past the end"));
    }

    #[test]
    fn verity_target_uses_tree_offset_in_hash_blocks() {
        let (sectors, params) = sample().verity_target("/dev/vda");
        assert_eq!(sectors, 300 * 8);
        assert_eq!(
            params,
            format!(
                "1 /dev/vda /dev/vda 4096 4096 300 300 sha256 {} {}",
                "ab".repeat(32),
                "07".repeat(32)
            )
        );
    }
}
