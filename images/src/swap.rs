//! Linux swap area header (v1, "SWAPSPACE2"), so a partition built on the
//! host can be `swapon`ed on the board without running mkswap there.
//!
//! Layout (include/linux/swap.h, `union swap_header`): the first page holds
//! 1024 bytes of boot/label space, then version, last_page, nr_badpages,
//! uuid and volume label; the magic sits in the page's last 10 bytes. The
//! kernel reads it in its own byte order and page size, so the header is only
//! valid for little-endian kernels with the page size it was built for.

use std::fs::OpenOptions;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// Page size of the Debian arm64 and amd64 kernels we boot.
pub const PAGE_SIZE: u32 = 4096;

/// Fixed so `blkid` output (and any fstab by UUID) is reproducible.
pub const SWAP_UUID: [u8; 16] = *b"hilt-swap-uuid-1";

/// `swapon -L hilt-swap` works on the board.
pub const SWAP_LABEL: &str = "hilt-swap";

/// mkswap refuses fewer pages; the kernel accepts them but they are useless.
const MIN_PAGES: u64 = 10;

/// The first page of a swap area covering `size_bytes` with 4 KiB pages.
pub fn swap_header(size_bytes: u64) -> io::Result<Vec<u8>> {
    swap_header_for_page_size(size_bytes, PAGE_SIZE)
}

/// As [`swap_header`] for a kernel with another page size (16 KiB/64 KiB arm64
/// builds look for the magic at the end of *their* first page).
pub fn swap_header_for_page_size(size_bytes: u64, page_size: u32) -> io::Result<Vec<u8>> {
    if !page_size.is_power_of_two() || page_size < 4096 {
        return Err(invalid(format!(
            "page size {page_size} is not a power of two >= 4096"
        )));
    }
    let pages = size_bytes / u64::from(page_size);
    if pages < MIN_PAGES {
        return Err(invalid(format!(
            "swap area of {size_bytes} bytes is smaller than {MIN_PAGES} pages of {page_size} bytes"
        )));
    }
    let last_page = u32::try_from(pages - 1).map_err(|_| {
        invalid(format!(
            "swap area of {size_bytes} bytes exceeds the v1 header's page count"
        ))
    })?;
    let mut page = vec![0u8; page_size as usize];
    page[1024..1028].copy_from_slice(&1u32.to_le_bytes());
    page[1028..1032].copy_from_slice(&last_page.to_le_bytes());
    // nr_badpages stays 0.
    page[1036..1052].copy_from_slice(&SWAP_UUID);
    page[1052..1052 + SWAP_LABEL.len()].copy_from_slice(SWAP_LABEL.as_bytes());
    let magic_at = page_size as usize - 10;
    page[magic_at..].copy_from_slice(b"SWAPSPACE2");
    Ok(page)
}

/// Writes a 4 KiB-page swap header for a `size_bytes` area starting at byte
/// `offset` of the existing file `path` (a partition inside a disk image, or
/// a plain swap file).
pub fn write_swap_signature(path: &Path, offset: u64, size_bytes: u64) -> io::Result<()> {
    let header = swap_header(size_bytes)?;
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&header)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let h = swap_header(64 << 20).unwrap();
        assert_eq!(h.len(), 4096);
        assert_eq!(&h[4086..], b"SWAPSPACE2");
        assert_eq!(u32::from_le_bytes(h[1024..1028].try_into().unwrap()), 1);
        assert_eq!(
            u32::from_le_bytes(h[1028..1032].try_into().unwrap()),
            (64 << 20) / 4096 - 1
        );
        assert!(h[..1024].iter().all(|&b| b == 0));
    }

    #[test]
    fn too_small_is_rejected() {
        assert!(swap_header(9 * 4096).is_err());
        assert!(swap_header(10 * 4096).is_ok());
        let big = swap_header_for_page_size(1 << 30, 65536).unwrap();
        assert_eq!(big.len(), 65536);
        assert_eq!(&big[65536 - 10..], b"SWAPSPACE2");
    }
}
