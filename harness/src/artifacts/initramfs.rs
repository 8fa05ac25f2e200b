//! The emulated board's initramfs: busybox, the kernel's own modules and
//! the agent, with an /init that loads the modules and starts the agent.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hilt_images::cpio::CpioWriter;
use hilt_kernels::Busybox;

use super::{sha256_file, BootKernel, Cache};

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
echo "hilt-init: loading modules"
# Like modprobe, hand each module its <module>.<param>= arguments from the
# kernel command line: insmod alone does not (ramoops needs its region).
while read -r m; do
  name=${m%.ko}
  set --
  for a in $(cat /proc/cmdline); do
    case "$a" in "$name".*) set -- "$@" "${a#"$name".}" ;; esac
  done
  insmod "/lib/modules/$m" "$@" || echo "hilt-init: insmod $m failed"
done < /etc/hilt/modules
# After the modules: ramoops is one of them.
mount -t pstore pstore /sys/fs/pstore 2>/dev/null
echo "hilt-init: starting agent"
/sbin/hilt-agent
echo "hilt-init: agent exited with status $?"
while true; do sleep 3600; done
"#;

pub fn build_initramfs(
    cache: &Cache,
    kernel: &BootKernel,
    busybox: &Busybox,
    agent: &Path,
) -> anyhow::Result<PathBuf> {
    let agent_sha =
        sha256_file(agent).with_context(|| format!("reading the agent {}", agent.display()))?;
    let names: Vec<String> = kernel.modules.iter().map(|m| m.name.clone()).collect();
    let key = Cache::key(&[
        kernel.kernel.image_sha256.as_bytes(),
        names.join(",").as_bytes(),
        busybox.version.as_bytes(),
        agent_sha.as_bytes(),
        INIT.as_bytes(),
    ]);
    cache.entry(
        "initramfs",
        &format!("{}-{key}", kernel.kernel.release),
        ".cpio",
        |out| {
            let mut w = CpioWriter::new(std::io::BufWriter::new(std::fs::File::create(out)?));
            for d in [
                "bin",
                "sbin",
                "dev",
                "etc",
                "etc/hilt",
                "lib",
                "lib/modules",
                "mnt",
                "proc",
                "sys",
                "tmp",
            ] {
                w.dir(d, 0o755)?;
            }
            w.char_dev("dev/console", 0o600, 5, 1)?;
            w.file_from_path("bin/busybox", 0o755, &busybox.path)?;
            w.file_from_path("sbin/hilt-agent", 0o755, agent)?;
            w.file("init", 0o755, INIT.as_bytes())?;
            write_modules(&mut w, &kernel.modules)?;
            w.finish()?;
            Ok(())
        },
    )
}

/// The modules under lib/modules/, and their load order, one file name a
/// line, in etc/hilt/modules, which /init reads.
pub(super) fn write_modules<W: std::io::Write>(
    w: &mut CpioWriter<W>,
    modules: &[hilt_kernels::Module],
) -> anyhow::Result<()> {
    let mut order = String::new();
    for m in modules {
        let file = m
            .path
            .file_name()
            .context("module without a file name")?
            .to_string_lossy()
            .into_owned();
        w.file_from_path(&format!("lib/modules/{file}"), 0o644, &m.path)?;
        order.push_str(&file);
        order.push('\n');
    }
    w.file("etc/hilt/modules", 0o644, order.as_bytes())?;
    Ok(())
}
