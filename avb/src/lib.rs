//! The parts of the Android Verified Boot (AVB) on-disk format that a
//! dm-verity protected partition needs, after AOSP's libavb headers
//! (avb_footer.h, avb_vbmeta_image.h, avb_descriptor.h,
//! avb_hashtree_descriptor.h):
//!
//! * [`Footer`]: the last 64 bytes of a partition, pointing at its vbmeta;
//! * [`vbmeta`]: the vbmeta image (header, authentication and auxiliary
//!   blocks) and the descriptors inside it;
//! * [`HashtreeDescriptor`]: where the dm-verity hash tree is and how to set
//!   up dm-verity from it.
//!
//! Every integer is big-endian on disk. Parsing is strict: sizes and
//! offsets are checked against the buffer before anything is read, so
//! truncated or corrupt input is an [`Error`], never a panic or a guess.
//! Signatures are not checked: hilt writes algorithm NONE (unsigned), and a
//! board that verifies vbmeta does so in its bootloader, not here.

mod be;
mod error;
mod footer;
mod hashtree;
mod partition;
pub mod vbmeta;

pub use error::Error;
pub use footer::{Footer, FOOTER_SIZE};
pub use hashtree::{tree_size, HashtreeDescriptor};
pub use partition::{read_footed, FootedPartition, MAX_VBMETA_SIZE};
pub use vbmeta::{Descriptor, Vbmeta};

/// Rounds `n` up to a multiple of `to` (a power of two or not), `None` on
/// overflow.
pub(crate) fn round_up(n: u64, to: u64) -> Option<u64> {
    n.checked_add(to - 1).map(|x| x / to * to)
}
