//! `AvbFooter`: the last 64 bytes of a partition that carries its own
//! vbmeta, as avbtool's add_hashtree_footer and add_hash_footer write it.

use crate::be::{put_u32, put_u64, Reader};
use crate::error::{invalid, Error};

pub const FOOTER_SIZE: usize = 64;
const MAGIC: [u8; 4] = *b"AVBf";
const VERSION_MAJOR: u32 = 1;
const VERSION_MINOR: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub version_major: u32,
    pub version_minor: u32,
    /// The image's size before anything was appended to it.
    pub original_image_size: u64,
    /// Where the vbmeta image starts, from the start of the partition.
    pub vbmeta_offset: u64,
    pub vbmeta_size: u64,
}

impl Footer {
    /// A footer of the version this crate writes (1.0, as libavb's
    /// AVB_FOOTER_VERSION_MAJOR/MINOR).
    pub fn new(original_image_size: u64, vbmeta_offset: u64, vbmeta_size: u64) -> Self {
        Footer {
            version_major: VERSION_MAJOR,
            version_minor: VERSION_MINOR,
            original_image_size,
            vbmeta_offset,
            vbmeta_size,
        }
    }

    pub fn to_bytes(&self) -> [u8; FOOTER_SIZE] {
        let mut v = Vec::with_capacity(FOOTER_SIZE);
        v.extend_from_slice(&MAGIC);
        put_u32(&mut v, self.version_major);
        put_u32(&mut v, self.version_minor);
        put_u64(&mut v, self.original_image_size);
        put_u64(&mut v, self.vbmeta_offset);
        put_u64(&mut v, self.vbmeta_size);
        v.resize(FOOTER_SIZE, 0);
        v.try_into().expect("64 bytes")
    }

    /// Parses exactly the 64 footer bytes (the last 64 of the partition).
    /// Like libavb, a footer of another major version is refused and the
    /// reserved bytes are not looked at.
    pub fn parse(bytes: &[u8]) -> Result<Footer, Error> {
        if bytes.len() != FOOTER_SIZE {
            return Err(Error::Truncated {
                what: "AVB footer",
                need: FOOTER_SIZE as u64,
                have: bytes.len() as u64,
            });
        }
        let mut r = Reader::new(bytes);
        let found = r.magic();
        if found != MAGIC {
            return Err(Error::BadMagic {
                what: "AVB footer",
                expected: MAGIC,
                found,
            });
        }
        let f = Footer {
            version_major: r.u32(),
            version_minor: r.u32(),
            original_image_size: r.u64(),
            vbmeta_offset: r.u64(),
            vbmeta_size: r.u64(),
        };
        if f.version_major != VERSION_MAJOR {
            return Err(Error::UnsupportedVersion {
                what: "AVB footer",
                major: f.version_major,
                minor: f.version_minor,
            });
        }
        Ok(f)
    }

    /// Checks that the vbmeta it points at lies inside a partition of
    /// `partition_size` bytes, before the footer, and after the image.
    pub fn check_fits(&self, partition_size: u64) -> Result<(), Error> {
        let limit = partition_size
            .checked_sub(FOOTER_SIZE as u64)
            .ok_or_else(|| {
                invalid(
                    "AVB footer",
                    format!("a partition of {partition_size} bytes cannot hold a 64-byte footer"),
                )
            })?;
        let end = self.vbmeta_offset.checked_add(self.vbmeta_size);
        match end {
            Some(end) if end <= limit => {}
            _ => {
                return Err(invalid(
                    "AVB footer",
                    format!(
                        "vbmeta at {} ({} bytes) does not fit before the footer of a {partition_size}-byte partition",
                        self.vbmeta_offset, self.vbmeta_size
                    ),
                ))
            }
        }
        if self.original_image_size > self.vbmeta_offset {
            return Err(invalid(
                "AVB footer",
                format!(
                    "vbmeta at {} overlaps the {}-byte image it describes",
                    self.vbmeta_offset, self.original_image_size
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let f = Footer::new(1000, 8192, 640);
        let b = f.to_bytes();
        assert_eq!(&b[..4], b"AVBf");
        assert_eq!(&b[4..8], &[0, 0, 0, 1]);
        assert_eq!(&b[12..20], &1000u64.to_be_bytes());
        assert_eq!(&b[20..28], &8192u64.to_be_bytes());
        assert_eq!(&b[28..36], &640u64.to_be_bytes());
        assert!(b[36..].iter().all(|&x| x == 0));
        assert_eq!(Footer::parse(&b).unwrap(), f);
    }

    #[test]
    fn rejects_truncated_magic_and_version() {
        let b = Footer::new(1, 4096, 64).to_bytes();
        assert!(matches!(
            Footer::parse(&b[..63]),
            Err(Error::Truncated {
                need: 64,
                have: 63,
                ..
            })
        ));
        let mut bad = b;
        bad[3] = b'g';
        let e = Footer::parse(&bad).unwrap_err();
        assert!(matches!(e, Error::BadMagic { .. }));
        assert!(e.to_string().contains("AVBf"), "{e}");
        let mut v2 = b;
        v2[7] = 2;
        assert!(matches!(
            Footer::parse(&v2),
            Err(Error::UnsupportedVersion { major: 2, .. })
        ));
    }

    #[test]
    fn fits_checks_bounds() {
        let f = Footer::new(4096, 8192, 640);
        f.check_fits(8192 + 640 + 64).unwrap();
        assert!(f.check_fits(8192 + 640 + 63).is_err());
        assert!(f.check_fits(10).is_err());
        assert!(Footer::new(1, u64::MAX, 2).check_fits(u64::MAX).is_err());
        assert!(Footer::new(9000, 8192, 64).check_fits(1 << 20).is_err());
    }
}
