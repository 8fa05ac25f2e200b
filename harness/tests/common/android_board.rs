//! The emulated board as an Android-style device (scripts/android-board):
//! the OS of common/os_board.rs, laid out as Android lays out a device, and
//! packed as the device's own boot image by Debian's real mkbootimg, with a
//! QEMU virt device tree, the way a vendor ships boot.img. The device's
//! bootloader stage is hilt-fastbootd.
//!
//! What is Android-like, and what hilt meets on a device: no devtmpfs, but
//! an ueventd (busybox's mdev) that puts block devices under /dev/block;
//! device-mapper's control at /dev/device-mapper; partitions linked by GPT
//! name under /dev/block/by-name; zram swap on from boot; the properties
//! hilt reads (`getprop`); `adb root` and `adb reboot bootloader` (through
//! the bootloader message in misc); userdata mounted. What is not: no
//! Android init, no SELinux policy, no Android userspace.

use std::path::Path;

use super::os_board::Os;

const ANDROID: Os = Os {
    init: INIT,
    files: &[
        ("etc/mdev.conf", 0o644, MDEV_CONF.as_bytes()),
        ("usr/bin/getprop", 0o755, GETPROP.as_bytes()),
        ("usr/bin/setprop", 0o755, SETPROP.as_bytes()),
    ],
};

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# No devtmpfs: Android's ueventd makes /dev, with block devices under
# /dev/block.
mount -t tmpfs -o mode=0755 tmpfs /dev
mkdir -p /dev/pts /dev/block/by-name /dev/__properties__
mount -t devpts -o ptmxmode=0666 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mknod -m 600 /dev/console c 5 1
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 644 /dev/kmsg c 1 11
mknod -m 666 /dev/tty c 5 0
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
setprop ro.build.type userdebug
setprop ro.product.device hilt_emulated
r=$(uname -r)
while read -r m; do insmod "/lib/modules/$r/$m" || echo "android-board: insmod $m failed"; done < "/lib/modules/$r/order"
# The ueventd: what exists now, then (as a daemon) what appears later, such
# as dm-N and zram.
mdev -s
mdev -d
rm -rf /dev/mapper
mknod -m 600 /dev/device-mapper c $(tr : ' ' < /sys/class/misc/device-mapper/dev)
for u in /sys/class/block/*/uevent; do
  n=$(sed -n 's/^PARTNAME=//p' "$u")
  d=$(sed -n 's/^DEVNAME=//p' "$u")
  [ -n "$n" ] && ln -s "/dev/block/$d" "/dev/block/by-name/$n"
done
# Android's /data stand-in, kept in use: hilt must never flash it.
mkdir -p /mnt/userdata && mount -t erofs -o ro /dev/block/by-name/userdata /mnt/userdata && echo "android-board: userdata mounted"
# zram swap from boot, as Android's fstab (zramsize=) sets it up.
echo 64M > /sys/block/zram0/disksize && mkswap /dev/block/zram0 >/dev/null && swapon /dev/block/zram0 && echo "android-board: zram swap on"
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
/usr/bin/hilt-adbd --port 5555 --product hilt_emulated &
setprop sys.boot_completed 1
echo "android-board: boot completed"
while true; do sleep 3600; done
"#;

/// Android's ueventd puts block devices under /dev/block; mdev's `=DIR/`
/// moves a node there.
const MDEV_CONF: &str =
    "(vd[a-z][0-9]*|dm-[0-9]+|zram[0-9]+|loop[0-9]+|ram[0-9]+) 0:0 600 =block/\n";

/// Android's property service, as one file per property.
const GETPROP: &str = r#"#!/bin/sh
if [ $# -eq 0 ]; then
  for f in /dev/__properties__/*; do [ -f "$f" ] && echo "[${f##*/}]: [$(cat "$f")]"; done
  exit 0
fi
cat "/dev/__properties__/$1" 2>/dev/null
echo
"#;

const SETPROP: &str = r#"#!/bin/sh
[ $# -eq 2 ] || { echo "usage: setprop NAME VALUE" >&2; exit 1; }
printf %s "$2" > "/dev/__properties__/$1"
"#;

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
    let releases = super::os_board::build(cache, kernel_packages, state, ssh_port, &ANDROID);
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
