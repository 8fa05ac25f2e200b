//! `adb reboot` and `adb reboot bootloader`. A device's bootloader learns
//! that it should stay in fastboot from a bootloader message that Android
//! leaves in the misc partition (AOSP's bootloader_message: a 32-byte
//! `command` field at offset 0, "bootonce-bootloader"), or from a reboot
//! reason register; the misc partition is the one a board emulated with
//! QEMU can carry across a reset.

use std::fs::OpenOptions;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

pub const MISC: &str = "/dev/block/by-name/misc";
pub const BOOTONCE_BOOTLOADER: &[u8] = b"bootonce-bootloader";

/// The bootloader message's `command` field, NUL padded.
pub fn bcb_command(command: &[u8]) -> [u8; 32] {
    let mut field = [0u8; 32];
    field[..command.len()].copy_from_slice(command);
    field
}

fn write_bcb(misc: &Path, command: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(misc).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{}: {e}: the bootloader is told to stay in fastboot through the misc partition",
                misc.display()
            ),
        )
    })?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&bcb_command(command))?;
    f.sync_all()
}

/// Reboots after a moment, so that the host sees its stream close first,
/// as it does with adbd.
pub fn reboot(target: &str) -> io::Result<()> {
    if target == "bootloader" {
        write_bcb(Path::new(MISC), BOOTONCE_BOOTLOADER)?;
    }
    let arg = std::ffi::CString::new(target).expect("target has no NUL");
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        unsafe {
            libc::sync();
            libc::syscall(
                libc::SYS_reboot,
                libc::LINUX_REBOOT_MAGIC1,
                libc::LINUX_REBOOT_MAGIC2,
                libc::LINUX_REBOOT_CMD_RESTART2,
                arg.as_ptr(),
            );
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootloader_message_lands_in_the_command_field() {
        let dir = tempfile::tempdir().unwrap();
        let misc = dir.path().join("misc");
        std::fs::write(&misc, vec![0xaau8; 4096]).unwrap();
        write_bcb(&misc, BOOTONCE_BOOTLOADER).unwrap();
        let b = std::fs::read(&misc).unwrap();
        assert_eq!(&b[..19], b"bootonce-bootloader");
        assert!(b[19..32].iter().all(|&x| x == 0));
        assert!(b[32..].iter().all(|&x| x == 0xaa), "beyond the field");
        let e = write_bcb(&dir.path().join("none"), BOOTONCE_BOOTLOADER).unwrap_err();
        assert!(e.to_string().contains("misc partition"), "{e}");
    }
}
