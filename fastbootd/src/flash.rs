//! What `flash` and `erase` do to a partition. An image is checked whole
//! first ([`plan`]), then written ([`write`]): a refused image leaves the
//! partition as it was.

use std::io;

use crate::partition::Partition;
use crate::sparse::{self, Op, SparseError};

#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("nothing downloaded to flash: send `download` first")]
    NothingDownloaded,
    #[error("a {image}-byte image does not fit the partition's {partition} bytes")]
    TooLarge { image: u64, partition: u64 },
    #[error(transparent)]
    Sparse(#[from] SparseError),
    #[error("writing the partition failed: {0}")]
    Io(#[from] io::Error),
}

/// The writes that flashing `image` means: a raw image goes to the
/// partition's start and leaves the rest alone; a sparse image says itself.
pub fn plan(partition_size: u64, image: &[u8]) -> Result<Vec<Op<'_>>, FlashError> {
    if image.is_empty() {
        return Err(FlashError::NothingDownloaded);
    }
    if sparse::is_sparse(image) {
        return Ok(sparse::parse(image, partition_size)?);
    }
    if image.len() as u64 > partition_size {
        return Err(FlashError::TooLarge {
            image: image.len() as u64,
            partition: partition_size,
        });
    }
    Ok(vec![Op::Write {
        offset: 0,
        data: image,
    }])
}

/// Writes `pattern` over `len` bytes from `offset`, a bounded buffer at a
/// time: erasing a multi-gigabyte partition must not allocate it.
fn fill(part: &mut dyn Partition, offset: u64, len: u64, pattern: [u8; 4]) -> io::Result<()> {
    // A multiple of 4, so each write starts the pattern where the last ended.
    const BUF: usize = 1 << 20;
    let buf: Vec<u8> = pattern.iter().copied().cycle().take(BUF).collect();
    let mut done = 0;
    while done < len {
        let n = (len - done).min(BUF as u64) as usize;
        part.write_at(offset + done, &buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

/// Carries out `ops` and syncs.
pub fn write(part: &mut dyn Partition, ops: &[Op]) -> io::Result<()> {
    for op in ops {
        match *op {
            Op::Write { offset, data } => part.write_at(offset, data)?,
            Op::Fill {
                offset,
                len,
                pattern,
            } => fill(part, offset, len, pattern)?,
        }
    }
    part.sync()
}

/// Every byte 0xff, what erased flash reads as.
pub fn erase(part: &mut dyn Partition) -> io::Result<()> {
    let size = part.size();
    write(
        part,
        &[Op::Fill {
            offset: 0,
            len: size,
            pattern: [0xff; 4],
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Memory;
    use crate::sparse::tests::build;

    fn flash(part: &mut Memory, image: &[u8]) -> Result<(), FlashError> {
        let ops = plan(part.size(), image)?;
        Ok(write(part, &ops)?)
    }

    #[test]
    fn a_raw_image_goes_to_the_start_and_leaves_the_rest() {
        let mut p = Memory(vec![0x55; 10]);
        flash(&mut p, &[1, 2, 3]).unwrap();
        assert_eq!(p.0, [1, 2, 3, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55]);
        flash(&mut p, &[7; 10]).unwrap();
        assert_eq!(p.0, [7; 10]);
    }

    #[test]
    fn refused_images_leave_the_partition_as_it_was() {
        let mut p = Memory(vec![0x55; 8]);
        let err = flash(&mut p, &[1; 9]).unwrap_err();
        assert!(err
            .to_string()
            .contains("9-byte image does not fit the partition's 8 bytes"));
        assert!(matches!(
            flash(&mut p, &[]),
            Err(FlashError::NothingDownloaded)
        ));
        // A sparse image whose second chunk is bad: the first is not written.
        let bad = build(4, 2, &[(0xcac1, 1, vec![1; 4]), (0xcac2, 1, vec![2; 3])]);
        assert!(matches!(flash(&mut p, &bad), Err(FlashError::Sparse(_))));
        assert_eq!(p.0, [0x55; 8]);
    }

    #[test]
    fn a_sparse_image_writes_its_chunks_only() {
        let mut p = Memory(vec![0x55; 16]);
        let f = build(
            4,
            4,
            &[
                (0xcac3, 1, vec![]),
                (0xcac1, 1, vec![1, 2, 3, 4]),
                (0xcac2, 1, vec![9, 8, 7, 6]),
                (0xcac3, 1, vec![]),
            ],
        );
        flash(&mut p, &f).unwrap();
        let mut want = vec![0x55; 16];
        want[4..12].copy_from_slice(&[1, 2, 3, 4, 9, 8, 7, 6]);
        assert_eq!(p.0, want);
    }

    #[test]
    fn fills_and_erases_larger_than_one_buffer_keep_the_pattern() {
        let mut p = Memory(vec![0; (1 << 20) + 24]);
        fill(&mut p, 4, (1 << 20) + 16, [1, 2, 3, 4]).unwrap();
        assert_eq!(&p.0[..4], &[0; 4]);
        assert!(p.0[4..(1 << 20) + 20].chunks(4).all(|w| w == [1, 2, 3, 4]));
        assert_eq!(&p.0[(1 << 20) + 20..], &[0; 4]);
        erase(&mut p).unwrap();
        assert!(p.0.iter().all(|&b| b == 0xff));
    }
}
