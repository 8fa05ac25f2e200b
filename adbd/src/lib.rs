//! adb's wire format ([`wire`], [`shell`]) shared by both ends, and the
//! device end itself ([`device`]): an adbd for a board that runs Linux but
//! not Android, so that hilt's adb paths meet a device end on a real
//! kernel. It is the device side of AOSP's protocol.txt, SYNC.TXT and
//! shell_protocol.h, written from those documents; it is not Android's
//! adbd. Like an eng build's adbd with `ro.adb.secure=0`, it asks for no key.

pub mod device;
pub mod reboot;
pub mod services;
pub mod shell;
pub mod sync;
pub mod wire;
