//! The emulated board as a board that boots its own Linux, reached over
//! SSH or adb: a stock Debian arm64 kernel and a small OS of its own
//! (busybox, Debian's dropbear sshd without any sftp-server, the kernel's
//! modules) with no trace of hilt in it but hilt-adbd, the adbd that stands in for
//! an Android device's (no adbd can be had here). `scripts/os-board` is
//! its power switch and its firmware: it boots whatever is in `STATE/boot/`.
//!
//! Everything comes from Debian's arm64 archive, fetched and checked the way
//! hilt fetches kernels. The host key is made once, with dropbear's own
//! dropbearkey run under qemu-user, so that known_hosts can hold it from
//! the start: hilt never skips the host key check, and this board must not
//! need it skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use hilt_images::cpio::CpioWriter;
use hilt_kernels::{extract, fetch, Kernel, PackageRef};

/// What the agent needs loaded, and the NIC.
const MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "dm-mod",
    "dm-verity",
    "erofs",
    "zram",
    "9pnet_virtio",
    "9p",
];

/// dropbear, its libraries, and the loader. No sftp-server: hilt pushes
/// through `cat`, as it must to boards whose dropbear has none.
const USERLAND: &[&str] = &[
    "dropbear-bin",
    "libc6",
    "libcrypt1",
    "libtomcrypt1",
    "libtommath1",
    "libgmp10",
    "zlib1g",
];

const LIBS: &[&str] = &[
    "libc.so.6",
    "libcrypt.so.1",
    "libtomcrypt.so.1",
    "libtommath.so.1",
    "libgmp.so.10",
    "libz.so.1",
];

/// What differs between the OS flavours built here: its /init, and files
/// of its own (path in the initrd, mode, content).
pub struct Os<'a> {
    pub init: &'a str,
    pub files: &'a [(&'a str, u32, &'a [u8])],
}

/// The start of both OSes' /init: busybox's applets, and the kernel's
/// filesystems mounted.
macro_rules! os_start {
    () => {
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
"#
    };
}

/// The end both share: /boot from the bootloader's share, the network,
/// and sshd.
macro_rules! os_network {
    () => {
        r#"mount -t 9p -o trans=virtio,version=9p2000.L boot /boot || echo "os-board: no /boot"
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "os-board: sshd on port 22"
/usr/sbin/dropbear -F -E -s -r /etc/dropbear/dropbear_ed25519_host_key &
"#
    };
}

/// The Linux board's OS: devtmpfs, the disk under its kernel names.
#[allow(dead_code)] // e2e_android builds only the Android flavour
pub const LINUX: Os = Os {
    init: INIT,
    files: &[],
};

const INIT: &str = concat!(
    os_start!(),
    r#"# Every installed kernel has its modules here, as on a Debian system: the
# one that booted loads its own.
r=$(uname -r)
while read -r m; do insmod "/lib/modules/$r/$m" || echo "os-board: insmod $m failed"; done < "/lib/modules/$r/order"
"#,
    // /boot is where the bootloader (scripts/os-board) finds the kernel.
    os_network!(),
    r#"echo "os-board: adbd on port 5555"
/usr/bin/hilt-adbd --port 5555 --product os_board &
while true; do sleep 3600; done
"#
);

/// Builds the board's OS into `state`: boot/Image (the first of
/// `kernel_packages`; the modules of all of them are installed),
/// boot/initrd, the host key, the client key id_ed25519 and a known_hosts
/// naming the key at 127.0.0.1:`ssh_port`. Returns the kernels' releases.
pub fn build(
    cache: &Path,
    kernel_packages: &[&str],
    state: &Path,
    ssh_port: u16,
    os: &Os,
) -> Vec<String> {
    std::fs::create_dir_all(state.join("boot")).unwrap();
    let get = |spec: &str| -> PathBuf {
        let deb = fetch(&PackageRef::parse(spec).unwrap(), cache)
            .unwrap_or_else(|e| panic!("fetching {spec}: {e}"));
        extract(&deb, cache).unwrap()
    };
    let kernels: Vec<Kernel> = kernel_packages
        .iter()
        .map(|spec| {
            let root = get(spec);
            let deb = fetch(&PackageRef::parse(spec).unwrap(), cache).unwrap();
            Kernel::from_extracted(&root, &deb.name, &deb.version).unwrap()
        })
        .collect();
    std::fs::copy(&kernels[0].image, state.join("boot/Image")).unwrap();

    let busybox = hilt_kernels::busybox_from_extracted(&get("busybox-static:arm64"), "").unwrap();
    // One sysroot for the dynamic binaries, so that qemu-user can run
    // dropbearkey from it exactly as the board runs dropbear.
    let sysroot = state.join("sysroot");
    let libdir = sysroot.join("lib/aarch64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    let roots: Vec<PathBuf> = USERLAND
        .iter()
        .map(|p| get(&format!("{p}:arm64")))
        .collect();
    let find = |rel: &str| -> PathBuf {
        roots
            .iter()
            .map(|r| r.join(rel))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{rel} is in none of {USERLAND:?}"))
    };
    for lib in LIBS.iter().chain(["ld-linux-aarch64.so.1"].iter()) {
        let from = ["lib/aarch64-linux-gnu/", "usr/lib/aarch64-linux-gnu/"]
            .iter()
            .map(|d| format!("{d}{lib}"))
            .find(|rel| roots.iter().any(|r| r.join(rel).exists()))
            .unwrap_or_else(|| panic!("no {lib}"));
        // Follow the package's symlink to the library itself.
        let real = std::fs::canonicalize(find(&from)).unwrap();
        std::fs::copy(real, libdir.join(lib)).unwrap();
    }
    std::fs::create_dir_all(sysroot.join("lib")).unwrap();
    let ld_link = sysroot.join("lib/ld-linux-aarch64.so.1");
    let _ = std::fs::remove_file(&ld_link);
    std::os::unix::fs::symlink("aarch64-linux-gnu/ld-linux-aarch64.so.1", &ld_link).unwrap();

    let host_key = state.join("dropbear_ed25519_host_key");
    if !host_key.exists() {
        let o = Command::new("qemu-aarch64-static")
            .arg("-L")
            .arg(&sysroot)
            .arg(find("usr/bin/dropbearkey"))
            .args(["-t", "ed25519", "-f"])
            .arg(&host_key)
            .output()
            .expect("qemu-aarch64-static (qemu-user-static) runs dropbearkey");
        assert!(o.status.success(), "dropbearkey: {o:?}");
    }
    let o = Command::new("qemu-aarch64-static")
        .arg("-L")
        .arg(&sysroot)
        .arg(find("usr/bin/dropbearkey"))
        .args(["-y", "-f"])
        .arg(&host_key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let public = text
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .unwrap_or_else(|| panic!("dropbearkey -y printed no key: {text}"));
    let mut fields = public.split_whitespace();
    std::fs::write(
        state.join("known_hosts"),
        format!(
            "[127.0.0.1]:{ssh_port} {} {}\n",
            fields.next().unwrap(),
            fields.next().unwrap()
        ),
    )
    .unwrap();
    let client = state.join("id_ed25519");
    if !client.exists() {
        let o = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "hilt-test", "-f"])
            .arg(&client)
            .output()
            .unwrap();
        assert!(o.status.success(), "ssh-keygen: {o:?}");
    }
    let authorized = std::fs::read(state.join("id_ed25519.pub")).unwrap();

    let out = std::fs::File::create(state.join("boot/initrd")).unwrap();
    let mut w = CpioWriter::new(std::io::BufWriter::new(out));
    for d in [
        "bin",
        "sbin",
        "dev",
        "etc",
        "etc/dropbear",
        "lib",
        "lib/modules",
        "lib/aarch64-linux-gnu",
        "usr",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/libexec",
        "proc",
        "sys",
        "tmp",
        "var",
        "var/run",
        "mnt",
        "boot",
        "data",
        "data/local",
        "data/local/tmp",
    ] {
        w.dir(d, 0o755).unwrap();
    }
    w.dir("root", 0o700).unwrap();
    w.dir("root/.ssh", 0o700).unwrap();
    w.file("root/.ssh/authorized_keys", 0o600, &authorized)
        .unwrap();
    w.char_dev("dev/console", 0o600, 5, 1).unwrap();
    w.file_from_path("bin/busybox", 0o755, &busybox.path)
        .unwrap();
    w.file("init", 0o755, os.init.as_bytes()).unwrap();
    for (path, mode, content) in os.files {
        w.file(path, *mode, content).unwrap();
    }
    w.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .unwrap();
    // A password no crypt() result can equal: key logins only.
    w.file("etc/shadow", 0o600, b"root:nologin:19000:0:99999:7:::\n")
        .unwrap();
    w.file("etc/group", 0o644, b"root:x:0:\n").unwrap();
    w.file("etc/shells", 0o644, b"/bin/sh\n").unwrap();
    w.file(
        "etc/nsswitch.conf",
        0o644,
        b"passwd: files\ngroup: files\nshadow: files\n",
    )
    .unwrap();
    w.file_from_path("etc/dropbear/dropbear_ed25519_host_key", 0o600, &host_key)
        .unwrap();
    w.file_from_path("usr/sbin/dropbear", 0o755, &find("usr/sbin/dropbear"))
        .unwrap();
    let adbd = super::common::repo().join("target/agent/hilt-adbd");
    assert!(
        adbd.exists(),
        "{} is missing: run scripts/build-agent",
        adbd.display()
    );
    w.file_from_path("usr/bin/hilt-adbd", 0o755, &adbd).unwrap();
    for lib in LIBS.iter().chain(["ld-linux-aarch64.so.1"].iter()) {
        w.file_from_path(
            &format!("lib/aarch64-linux-gnu/{lib}"),
            0o755,
            &libdir.join(lib),
        )
        .unwrap();
    }
    w.symlink(
        "lib/ld-linux-aarch64.so.1",
        "aarch64-linux-gnu/ld-linux-aarch64.so.1",
    )
    .unwrap();
    for kernel in &kernels {
        let dir = format!("lib/modules/{}", kernel.release);
        w.dir(&dir, 0o755).unwrap();
        let mut order = String::new();
        for m in kernel.plan(MODULES).unwrap().modules {
            let file = m.path.file_name().unwrap().to_string_lossy().into_owned();
            w.file_from_path(&format!("{dir}/{file}"), 0o644, &m.path)
                .unwrap();
            order += &file;
            order.push('\n');
        }
        w.file(&format!("{dir}/order"), 0o644, order.as_bytes())
            .unwrap();
    }
    w.finish().unwrap();
    kernels.iter().map(|k| k.release.clone()).collect()
}

/// What the board's own initrd loads to reach its root, as a distribution's
/// initramfs would for the board's root device (here a virtio-9p share).
#[allow(dead_code)] // only the install tests boot from a root of their own
pub const ROOT_MODULES: &[&str] = &["virtio_mmio", "9pnet_virtio", "9p"];

/// The board's kernel command line: its root on the 9p share `root`.
#[allow(dead_code)]
pub const ROOT_APPEND: &str = "console=ttyAMA0 loglevel=4 panic=5 root=root rootfstype=9p rootflags=trans=virtio,version=9p2000.L,cache=mmap,msize=262144 rw";

/// libubootenv's fw_setenv for this board's U-Boot environment, which
/// scripts/os-board keeps as NAME=VALUE lines in /boot/uboot.env: the
/// same command line (NAME alone deletes it).
const FW_SETENV: &str = r#"#!/bin/sh
set -e
env=/boot/uboot.env
name=$1
shift
touch "$env"
{ grep -v "^$name=" "$env" || true; [ $# -eq 0 ] || echo "$name=$*"; } > "$env.new"
mv "$env.new" "$env"
sync
"#;

/// The board's own initrd's /init, as small as a distribution's is in
/// effect: the root's modules, mount `root=`, switch_root.
const BOOT_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /root
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
while read -r m; do /bin/busybox insmod "/lib/modules/$m"; done < /etc/modules-initrd
for a in $(/bin/busybox cat /proc/cmdline); do
  case "$a" in root=*) root=${a#root=} ;; rootfstype=*) fstype=${a#rootfstype=} ;; rootflags=*) flags=${a#rootflags=} ;; esac
done
/bin/busybox mount -t "$fstype" -o "$flags" "$root" /root || { echo "os-board initrd: cannot mount root $root"; exit 1; }
/bin/busybox umount /proc
/bin/busybox umount /dev
exec /bin/busybox switch_root /root /sbin/init
"#;

/// The OS on its root: what the initrd-only OS's /init does, with the
/// running kernel's modules loaded by modprobe from /lib/modules on the
/// root (only the kernels installed there have them) and /etc/modules
/// loaded as Debian loads it at boot.
#[allow(dead_code)]
pub const ROOT_INIT: &str = concat!(
    os_start!(),
    r#"echo "os-board: root on 9p, kernel $(uname -r)"
# crc32c_generic first: busybox's modprobe does not follow libcrc32c's
# softdep on it, as kmod's would, and erofs needs libcrc32c.
for m in virtio_blk virtio_net dm-mod dm-verity crc32c_generic erofs zram; do
  modprobe "$m" || echo "os-board: modprobe $m failed"
done
for m in $(cat /etc/modules); do
  if modprobe "$m" && grep -q "^$m " /proc/modules; then echo "os-board: modprobe $m: loaded"; else echo "os-board: modprobe $m failed"; fi
done
"#,
    os_network!(),
    "while true; do sleep 3600; done\n"
);

/// The board as a Debian board is laid out: its root (STATE/root, a
/// virtio-9p share) holds the OS and /lib/modules/<release> of the kernel
/// it boots (the first of `kernel_packages`, every module, depmod run);
/// its /boot (STATE/boot) holds that kernel, its own initrd (only what
/// mounting the root needs) and extlinux/extlinux.conf naming them, which
/// scripts/os-board reads as U-Boot's distro boot does. Returns the
/// kernels' releases.
#[allow(dead_code)]
pub fn build_rooted(
    cache: &Path,
    kernel_packages: &[&str],
    state: &Path,
    ssh_port: u16,
) -> Vec<String> {
    let os = Os {
        init: ROOT_INIT,
        files: &[("etc/modules", 0o644, b"dummy\n")],
    };
    // The initrd-only OS, unpacked as the root; its init becomes /sbin/init
    // and its modules give way to the kernel's whole tree.
    build(cache, &kernel_packages[..1], state, ssh_port, &os);
    let root = state.join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let initrd = std::fs::File::open(state.join("boot/initrd")).unwrap();
    let st = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(&root)
        .stdin(initrd)
        .status()
        .unwrap();
    assert!(st.success(), "cpio -idm");
    std::fs::create_dir_all(root.join("sbin")).unwrap();
    std::fs::rename(root.join("init"), root.join("sbin/init")).unwrap();
    let fw_setenv = root.join("usr/bin/fw_setenv");
    std::fs::write(&fw_setenv, FW_SETENV).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&fw_setenv)
        .status()
        .unwrap();
    std::fs::remove_dir_all(root.join("lib/modules")).unwrap();
    std::fs::create_dir_all(root.join("lib/modules")).unwrap();
    let deb = fetch(&PackageRef::parse(kernel_packages[0]).unwrap(), cache).unwrap();
    let extracted = extract(&deb, cache).unwrap();
    let kernel = Kernel::from_extracted(&extracted, &deb.name, &deb.version).unwrap();
    let r = &kernel.release;
    let st = Command::new("cp")
        .arg("-a")
        .arg(&kernel.modules_dir)
        .arg(root.join("lib/modules"))
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("depmod")
        .arg("-b")
        .arg(&root)
        .arg(r)
        .status()
        .expect("depmod (kmod) on this host");
    assert!(st.success(), "depmod -b {} {r}", root.display());

    let boot = state.join("boot");
    std::fs::rename(boot.join("Image"), boot.join(format!("vmlinuz-{r}"))).unwrap();
    std::fs::remove_file(boot.join("initrd")).unwrap();
    let busybox = hilt_kernels::busybox_from_extracted(
        &extract(
            &fetch(&PackageRef::parse("busybox-static:arm64").unwrap(), cache).unwrap(),
            cache,
        )
        .unwrap(),
        "",
    )
    .unwrap();
    let out = std::fs::File::create(boot.join(format!("initrd.img-{r}"))).unwrap();
    let mut w = CpioWriter::new(std::io::BufWriter::new(out));
    for d in ["bin", "dev", "etc", "lib", "lib/modules", "proc", "root"] {
        w.dir(d, 0o755).unwrap();
    }
    w.char_dev("dev/console", 0o600, 5, 1).unwrap();
    w.file_from_path("bin/busybox", 0o755, &busybox.path)
        .unwrap();
    w.file("init", 0o755, BOOT_INIT.as_bytes()).unwrap();
    let mut order = String::new();
    for m in kernel.plan(ROOT_MODULES).unwrap().modules {
        let file = m.path.file_name().unwrap().to_string_lossy().into_owned();
        w.file_from_path(&format!("lib/modules/{file}"), 0o644, &m.path)
            .unwrap();
        order += &file;
        order.push('\n');
    }
    w.file("etc/modules-initrd", 0o644, order.as_bytes())
        .unwrap();
    w.finish().unwrap();

    std::fs::create_dir_all(boot.join("extlinux")).unwrap();
    std::fs::write(
        boot.join("extlinux/extlinux.conf"),
        format!(
            "## written as Debian's u-boot-menu writes it\ndefault l0\nmenu title U-Boot menu\ntimeout 1\n\nlabel l0\n\tmenu label Debian GNU/Linux, kernel {r}\n\tlinux /vmlinuz-{r}\n\tinitrd /initrd.img-{r}\n\tappend {ROOT_APPEND}\n"
        ),
    )
    .unwrap();
    kernel_packages
        .iter()
        .map(|spec| {
            let deb = fetch(&PackageRef::parse(spec).unwrap(), cache).unwrap();
            Kernel::from_extracted(&extract(&deb, cache).unwrap(), &deb.name, &deb.version)
                .unwrap()
                .release
        })
        .collect()
}
