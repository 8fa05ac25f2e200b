//! One module per way of bringing a board up for an iteration. A strategy
//! gets its devices from [`super::resources`] and the drivers beside it,
//! and never opens one itself.

pub mod android;
pub mod emulated;
pub mod own_os;
pub mod uboot_tftp;

use super::Strategy;
use crate::plan::BoardKind;

/// The strategy for each kind of board: adding a kind is a module here
/// and one arm in this table.
pub fn for_kind(kind: BoardKind) -> &'static dyn Strategy {
    match kind {
        BoardKind::Emulated => &emulated::Emulated,
        BoardKind::UbootTftp => &uboot_tftp::UbootTftp,
        BoardKind::OwnOs => &own_os::OwnOs,
        BoardKind::Android => &android::Android,
    }
}
