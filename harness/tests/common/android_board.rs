//! The emulated board as an Android-style device (scripts/android-board):
//! the OS of common/os_board.rs packed as the device's own boot image by
//! Debian's real mkbootimg, with a QEMU virt device tree, the way a vendor
//! ships boot.img. The device's bootloader stage is hilt-fastbootd.

use std::path::Path;

/// The boot partition's size: room for any variant's kernel with the
/// device's ramdisk.
const BOOT_PARTITION_BYTES: u64 = 96 << 20;
use std::process::Command;

/// Builds the device into `state`: the OS (kernels, initrd, modules of
/// every kernel in `kernel_packages`), then `device-boot.img` (the
/// device's own boot image, as its vendor made it) and `parts/boot.img`
/// (the factory content of its boot partition: that image, then zeros),
/// which scripts/android-board writes to the eMMC. Returns the releases.
pub fn build(cache: &Path, kernel_packages: &[&str], state: &Path, ssh_port: u16) -> Vec<String> {
    let releases = super::os_board::build(cache, kernel_packages, state, ssh_port);
    let dtb = state.join("virt.dtb");
    let o = Command::new("qemu-system-aarch64")
        .args(["-machine"])
        .arg(format!("virt,dumpdtb={}", dtb.display()))
        .args([
            "-cpu",
            "cortex-a53",
            "-smp",
            "2",
            "-m",
            "384",
            "-display",
            "none",
            // No NIC: its option ROM (ipxe-qemu) is not on a fresh machine.
            "-nic",
            "none",
        ])
        .output()
        .expect("qemu-system-aarch64 (scripts/setup installs it)");
    assert!(dtb.exists(), "QEMU dumped no device tree: {o:?}");
    let image = state.join("device-boot.img");
    let o = Command::new("mkbootimg")
        .args(["--header_version", "2", "--kernel"])
        .arg(state.join("boot/Image"))
        .arg("--ramdisk")
        .arg(state.join("boot/initrd"))
        .arg("--dtb")
        .arg(&dtb)
        .args(["--cmdline", "console=ttyAMA0 loglevel=4 panic=0", "-o"])
        .arg(&image)
        .output()
        .expect("mkbootimg (Debian package mkbootimg; scripts/setup installs it)");
    assert!(o.status.success(), "mkbootimg: {o:?}");
    // A boot partition is larger than the image it holds: a variant's
    // kernel may be larger than the device's.
    std::fs::create_dir_all(state.join("parts")).unwrap();
    let part = state.join("parts/boot.img");
    std::fs::copy(&image, &part).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .unwrap()
        .set_len(BOOT_PARTITION_BYTES)
        .unwrap();
    releases
}
