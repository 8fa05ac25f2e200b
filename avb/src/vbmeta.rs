//! The vbmeta image: a 256-byte header, an authentication block (hash and
//! signature) and an auxiliary block (descriptors, public key and its
//! metadata), each block a multiple of 64 bytes.

use crate::be::{put_u32, put_u64, Reader};
use crate::error::{invalid, Error};
use crate::hashtree::{self, HashtreeDescriptor};
use crate::round_up;

pub const HEADER_SIZE: usize = 256;
const MAGIC: [u8; 4] = *b"AVB0";
const RELEASE_STRING_SIZE: usize = 48;
/// The highest AvbAlgorithmType (SHA512_RSA8192).
const MAX_ALGORITHM: u32 = 6;
/// AvbAlgorithmType NONE: no hash, no signature.
pub const ALGORITHM_NONE: u32 = 0;
/// AVB_VBMETA_IMAGE_FLAGS_VERIFICATION_DISABLED, what
/// `fastboot --disable-verification` sets.
pub const FLAG_VERIFICATION_DISABLED: u32 = 1 << 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Descriptor {
    Hashtree(HashtreeDescriptor),
    /// Any other kind (property, hash, kernel cmdline, chain partition),
    /// kept whole so it can be written back unchanged.
    Other {
        tag: u64,
        bytes: Vec<u8>,
    },
}

impl Descriptor {
    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Descriptor::Hashtree(d) => d.to_bytes(),
            Descriptor::Other { bytes, .. } => bytes.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vbmeta {
    pub required_libavb_version_major: u32,
    pub required_libavb_version_minor: u32,
    pub algorithm_type: u32,
    pub rollback_index: u64,
    pub flags: u32,
    pub rollback_index_location: u32,
    pub release_string: String,
    pub descriptors: Vec<Descriptor>,
}

impl Vbmeta {
    /// An unsigned (algorithm NONE) vbmeta image holding `descriptors`, as
    /// libavb 1.0 reads it. A bootloader that verifies vbmeta refuses it
    /// unless verification is disabled or the device is unlocked.
    pub fn unsigned(descriptors: Vec<Descriptor>, release_string: &str) -> Vbmeta {
        Vbmeta {
            required_libavb_version_major: 1,
            required_libavb_version_minor: 0,
            algorithm_type: ALGORITHM_NONE,
            rollback_index: 0,
            flags: 0,
            rollback_index_location: 0,
            release_string: release_string.to_owned(),
            descriptors,
        }
    }

    /// The hashtree descriptor for `partition`, if there is one.
    pub fn hashtree(&self, partition: &str) -> Option<&HashtreeDescriptor> {
        self.descriptors.iter().find_map(|d| match d {
            Descriptor::Hashtree(h) if h.partition_name == partition => Some(h),
            _ => None,
        })
    }

    /// Serialises an unsigned image: descriptors first in the auxiliary
    /// block, no public key, an empty authentication block. Only
    /// [`ALGORITHM_NONE`] can be written, since there is nothing to sign
    /// with; the release string must fit 47 bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        if self.algorithm_type != ALGORITHM_NONE {
            return Err(invalid(
                "vbmeta",
                format!(
                    "algorithm {} needs a key; only unsigned (NONE) images are written",
                    self.algorithm_type
                ),
            ));
        }
        if self.release_string.len() >= RELEASE_STRING_SIZE || self.release_string.contains('\0') {
            return Err(invalid(
                "vbmeta",
                format!(
                    "release string {:?} must be under {RELEASE_STRING_SIZE} bytes, without NUL",
                    self.release_string
                ),
            ));
        }
        let descriptors: Vec<u8> = self.descriptors.iter().flat_map(|d| d.to_bytes()).collect();
        let aux_size = round_up(descriptors.len() as u64, 64).expect("small");
        let mut v = Vec::with_capacity(HEADER_SIZE + aux_size as usize);
        v.extend_from_slice(&MAGIC);
        put_u32(&mut v, self.required_libavb_version_major);
        put_u32(&mut v, self.required_libavb_version_minor);
        put_u64(&mut v, 0); // authentication block size
        put_u64(&mut v, aux_size);
        put_u32(&mut v, self.algorithm_type);
        put_u64(&mut v, 0); // hash offset
        put_u64(&mut v, 0); // hash size
        put_u64(&mut v, 0); // signature offset
        put_u64(&mut v, 0); // signature size
                            // The public key and its metadata would follow the descriptors.
        put_u64(&mut v, descriptors.len() as u64);
        put_u64(&mut v, 0);
        put_u64(&mut v, descriptors.len() as u64);
        put_u64(&mut v, 0);
        put_u64(&mut v, 0); // descriptors offset
        put_u64(&mut v, descriptors.len() as u64);
        put_u64(&mut v, self.rollback_index);
        put_u32(&mut v, self.flags);
        put_u32(&mut v, self.rollback_index_location);
        v.extend_from_slice(self.release_string.as_bytes());
        v.resize(HEADER_SIZE, 0);
        v.extend_from_slice(&descriptors);
        v.resize(HEADER_SIZE + aux_size as usize, 0);
        Ok(v)
    }

    /// Parses a vbmeta image that starts at `bytes[0]`; `bytes` may run on
    /// past its end (a whole vbmeta partition, say). Checks the layout, not
    /// the signature.
    pub fn parse(bytes: &[u8]) -> Result<Vbmeta, Error> {
        const WHAT: &str = "vbmeta header";
        if bytes.len() < HEADER_SIZE {
            return Err(Error::Truncated {
                what: WHAT,
                need: HEADER_SIZE as u64,
                have: bytes.len() as u64,
            });
        }
        let mut r = Reader::new(&bytes[..HEADER_SIZE]);
        let found = r.magic();
        if found != MAGIC {
            return Err(Error::BadMagic {
                what: "vbmeta image",
                expected: MAGIC,
                found,
            });
        }
        let major = r.u32();
        let minor = r.u32();
        if major != 1 {
            return Err(Error::UnsupportedVersion {
                what: "vbmeta (required libavb)",
                major,
                minor,
            });
        }
        let auth_size = r.u64();
        let aux_size = r.u64();
        let algorithm_type = r.u32();
        let mut ranges = [(0u64, 0u64); 5];
        for range in &mut ranges {
            *range = (r.u64(), r.u64());
        }
        let [hash, signature, public_key, public_key_metadata, descriptors] = ranges;
        let rollback_index = r.u64();
        let flags = r.u32();
        let rollback_index_location = r.u32();
        let release = r.take(RELEASE_STRING_SIZE);

        if algorithm_type > MAX_ALGORITHM {
            return Err(invalid(
                WHAT,
                format!("unknown algorithm type {algorithm_type}"),
            ));
        }
        for (name, size) in [
            ("authentication block", auth_size),
            ("auxiliary block", aux_size),
        ] {
            if size % 64 != 0 {
                return Err(invalid(
                    WHAT,
                    format!("{name} size {size} is not a multiple of 64"),
                ));
            }
        }
        let total = auth_size
            .checked_add(aux_size)
            .and_then(|s| s.checked_add(HEADER_SIZE as u64))
            .ok_or_else(|| invalid(WHAT, "block sizes overflow"))?;
        if total > bytes.len() as u64 {
            return Err(Error::Truncated {
                what: "vbmeta image",
                need: total,
                have: bytes.len() as u64,
            });
        }
        for (name, (off, len), block) in [
            ("hash", hash, auth_size),
            ("signature", signature, auth_size),
            ("public key", public_key, aux_size),
            ("public key metadata", public_key_metadata, aux_size),
            ("descriptors", descriptors, aux_size),
        ] {
            if off.checked_add(len).is_none_or(|end| end > block) {
                return Err(invalid(
                    WHAT,
                    format!("{name} at {off} ({len} bytes) lies outside its {block}-byte block"),
                ));
            }
        }
        let nul = release
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| invalid(WHAT, "release string is not NUL-terminated"))?;
        let release_string = std::str::from_utf8(&release[..nul])
            .map_err(|_| invalid(WHAT, "release string is not UTF-8"))?
            .to_owned();

        let aux_start = HEADER_SIZE as u64 + auth_size;
        let start = (aux_start + descriptors.0) as usize;
        let descriptors = parse_descriptors(&bytes[start..start + descriptors.1 as usize])?;
        Ok(Vbmeta {
            required_libavb_version_major: major,
            required_libavb_version_minor: minor,
            algorithm_type,
            rollback_index,
            flags,
            rollback_index_location,
            release_string,
            descriptors,
        })
    }
}

fn parse_descriptors(mut bytes: &[u8]) -> Result<Vec<Descriptor>, Error> {
    const WHAT: &str = "vbmeta descriptor";
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 16 {
            return Err(Error::Truncated {
                what: WHAT,
                need: 16,
                have: bytes.len() as u64,
            });
        }
        let mut r = Reader::new(bytes);
        let tag = r.u64();
        let following = r.u64();
        if following % 8 != 0 {
            return Err(invalid(
                WHAT,
                format!("num_bytes_following {following} is not a multiple of 8"),
            ));
        }
        let len = following
            .checked_add(16)
            .filter(|&l| l <= bytes.len() as u64)
            .ok_or(Error::Truncated {
                what: WHAT,
                need: following.saturating_add(16),
                have: bytes.len() as u64,
            })? as usize;
        let (one, rest) = bytes.split_at(len);
        out.push(if tag == hashtree::TAG {
            Descriptor::Hashtree(HashtreeDescriptor::parse(one)?)
        } else {
            Descriptor::Other {
                tag,
                bytes: one.to_vec(),
            }
        });
        bytes = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HashtreeDescriptor {
        HashtreeDescriptor {
            dm_verity_version: 1,
            image_size: 8192,
            tree_offset: 8192,
            tree_size: 4096,
            data_block_size: 4096,
            hash_block_size: 4096,
            fec_num_roots: 0,
            fec_offset: 0,
            fec_size: 0,
            hash_algorithm: "sha256".into(),
            partition_name: "erofs".into(),
            salt: vec![1, 2, 3],
            root_digest: vec![9; 32],
            flags: 0,
        }
    }

    #[test]
    fn round_trip_with_other_descriptors() {
        let other = {
            let mut b = 0u64.to_be_bytes().to_vec();
            b.extend_from_slice(&8u64.to_be_bytes());
            b.extend_from_slice(b"propprop");
            Descriptor::Other { tag: 0, bytes: b }
        };
        let v = Vbmeta::unsigned(vec![Descriptor::Hashtree(sample()), other], "hilt test");
        let b = v.to_bytes().unwrap();
        assert_eq!(b.len() % 64, 0);
        assert_eq!(&b[..4], b"AVB0");
        // Trailing bytes (the rest of a partition) are allowed.
        let mut padded = b.clone();
        padded.resize(b.len() + 4096, 0);
        let back = Vbmeta::parse(&padded).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.hashtree("erofs"), Some(&sample()));
        assert_eq!(back.hashtree("system"), None);
    }

    #[test]
    fn rejects_corrupt_headers() {
        let b = Vbmeta::unsigned(vec![Descriptor::Hashtree(sample())], "hilt")
            .to_bytes()
            .unwrap();
        let e = Vbmeta::parse(&b[..200]).unwrap_err();
        assert!(matches!(e, Error::Truncated { need: 256, .. }), "{e}");
        assert!(matches!(
            Vbmeta::parse(&b[..b.len() - 64]),
            Err(Error::Truncated { .. })
        ));
        let mut magic = b.clone();
        magic[0] = b'X';
        assert!(matches!(Vbmeta::parse(&magic), Err(Error::BadMagic { .. })));
        let mut aux = b.clone();
        aux[27] = 65; // auxiliary size no longer a multiple of 64
        assert!(Vbmeta::parse(&aux).is_err());
        let mut desc_size = b.clone();
        desc_size[111] = desc_size[111].wrapping_add(64);
        assert!(Vbmeta::parse(&desc_size).is_err());
        let mut release = b.clone();
        release[128..176].fill(b'x');
        assert!(Vbmeta::parse(&release).is_err());
        let mut algo = b.clone();
        algo[31] = 42;
        assert!(Vbmeta::parse(&algo).is_err());
        // A descriptor whose length runs past the descriptor area.
        let mut nbf = b;
        nbf[256 + 15] = nbf[256 + 15].wrapping_add(64);
        assert!(Vbmeta::parse(&nbf).is_err());
    }

    #[test]
    fn writes_only_unsigned_images() {
        let mut v = Vbmeta::unsigned(vec![], "hilt");
        v.algorithm_type = 1;
        assert!(v.to_bytes().is_err());
        assert!(Vbmeta::unsigned(vec![], &"x".repeat(48))
            .to_bytes()
            .is_err());
        assert_eq!(Vbmeta::unsigned(vec![], "").to_bytes().unwrap().len(), 256);
    }
}
