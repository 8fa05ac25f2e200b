//! The initrd hilt installs with a variant's kernel on a board that boots
//! its own Linux: the modules the board's root needs (from the variant's
//! own kernel, so they match it), then mount `root=` and switch to the
//! board's init, as a distribution's initramfs does. Unlike the board's
//! own initrd it holds nothing of the board's kernel, so a variant whose
//! modules do not fit its kernel cannot slip through.

use std::path::PathBuf;

use anyhow::Context;
use hilt_images::cpio::CpioWriter;
use hilt_kernels::{Busybox, Kernel};

use super::Cache;

/// A failure leaves /init, and the kernel panics: with `panic=` on the
/// command line the board resets, and its bootloader's fallback boots the
/// known-good kernel. A shell here would keep the board up and stuck.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "hilt-initrd: $*"; exit 1; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "hilt-initrd: loading the root's modules"
while read -r m; do insmod "/lib/modules/$m" || echo "hilt-initrd: insmod $m failed"; done < /etc/hilt/modules
root= fstype= flags= mode=ro init=/sbin/init
for a in $(cat /proc/cmdline); do
  case "$a" in
  root=*) root=${a#root=} ;;
  rootfstype=*) fstype=${a#rootfstype=} ;;
  rootflags=*) flags=${a#rootflags=} ;;
  rw) mode=rw ;;
  ro) mode=ro ;;
  init=*) init=${a#init=} ;;
  esac
done
[ -n "$root" ] || fail "no root= on the kernel command line"
# Storage probes after the modules load: wait for the device to appear.
n=0
while :; do
  case "$root" in
  /dev/*) dev=$root; [ -b "$dev" ] && break ;;
  UUID=* | LABEL=*) dev=$(findfs "$root" 2>/dev/null) && break ;;
  # A share's tag or a network root: nothing appears under /dev.
  *) dev=$root; break ;;
  esac
  n=$((n + 1))
  [ $n -le 30 ] || fail "root $root did not appear within 30 s"
  sleep 1
done
if [ -n "$fstype" ]; then
  mount -t "$fstype" -o "$mode${flags:+,$flags}" "$dev" /root || fail "cannot mount root $dev ($fstype)"
else
  mount -o "$mode${flags:+,$flags}" "$dev" /root || fail "cannot mount root $dev"
fi
[ -x "/root$init" ] || [ -L "/root$init" ] || fail "the root $dev has no $init"
echo "hilt-initrd: root $dev mounted, starting $init"
umount /sys /proc /dev
exec switch_root /root "$init"
"#;

pub fn build_root_initrd(
    cache: &Cache,
    kernel: &Kernel,
    modules: &[String],
    busybox: &Busybox,
) -> anyhow::Result<PathBuf> {
    let wanted: Vec<&str> = modules.iter().map(String::as_str).collect();
    let plan = kernel.plan(&wanted).with_context(|| {
        format!(
            "resolving install.root_modules ({}) in kernel {}",
            modules.join(", "),
            kernel.release
        )
    })?;
    let names: Vec<String> = plan.modules.iter().map(|m| m.name.clone()).collect();
    let key = Cache::key(&[
        kernel.image_sha256.as_bytes(),
        names.join(",").as_bytes(),
        busybox.version.as_bytes(),
        INIT.as_bytes(),
    ]);
    cache.entry(
        "root-initrd",
        &format!("{}-{key}", kernel.release),
        ".cpio",
        |out| {
            let mut w = CpioWriter::new(std::io::BufWriter::new(std::fs::File::create(out)?));
            for d in [
                "bin",
                "dev",
                "etc",
                "etc/hilt",
                "lib",
                "lib/modules",
                "proc",
                "sys",
                "root",
            ] {
                w.dir(d, 0o755)?;
            }
            w.char_dev("dev/console", 0o600, 5, 1)?;
            w.file_from_path("bin/busybox", 0o755, &busybox.path)?;
            w.file("init", 0o755, INIT.as_bytes())?;
            super::initramfs::write_modules(&mut w, &plan.modules)?;
            w.finish()?;
            Ok(())
        },
    )
}
