//! The boot script hilt writes, booted by real U-Boot in
//! qemu-system-aarch64: Debian's U-Boot source for qemu_arm64, built by
//! scripts/build-uboot so that it can save its environment to QEMU's flash
//! and write ext4, whose distro boot finds boot.scr on a disk laid out as
//! `install: {layout: boot_scr}` leaves a board's boot partition. One
//! board, two Debian kernels: the board's own (known good) and the
//! variant's. A variant that comes up; then ones that panic, left hanging
//! as hilt leaves a board that misses boot_s, power cycled, and U-Boot
//! boots the known-good kernel from the mark the script saved: in its
//! environment (`fallback: bootcount`), and in a file on the FAT boot
//! partition (`fallback: boot_file`). Then an Armbian-shaped /boot on ext4:
//! Armbian's boot.scr boots the variant through the links hilt repointed
//! (its initrd a U-Boot ramdisk image hilt wrote); hilt's script falls back
//! from a panicking variant through a mark on ext4 formatted as Armbian
//! formats it, and boots the known-good kernel at once, saying why, where
//! U-Boot cannot write the ext4 (metadata_csum, Debian's mkfs default);
//! and the known-good kernel boots once the links point back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hilt_images::cpio::CpioWriter;
use hilt_kernels::{extract, fetch, Kernel, PackageRef};

use super::armbian;
use super::boot_scr::{self, Fallback, Names, OwnScript, Variant};
use super::uimage;

const GOOD: &str = "linux-image-6.1.0-44-arm64=6.1.164-1";
const VARIANT: &str = "linux-image-6.1.0-45-arm64=6.1.170-1";

/// The board's own boot script, in the shape flash-kernel writes on a
/// Debian board: loads chained with &&, a raw initrd with its size. The
/// device tree is the one QEMU gave U-Boot (qemu_arm64 has no DTB file).
fn own_script(release: &str) -> String {
    format!(
        r#"# The board's own boot script, as Debian's flash-kernel writes one
setenv bootargs "console=ttyAMA0 earlycon loglevel=4 panic=0"
setenv fk_kvers {release}
load ${{devtype}} ${{devnum}}:${{distro_bootpart}} ${{kernel_addr_r}} ${{prefix}}vmlinuz-${{fk_kvers}} \
&& load ${{devtype}} ${{devnum}}:${{distro_bootpart}} ${{ramdisk_addr_r}} ${{prefix}}initrd.img-${{fk_kvers}} \
&& echo "Booting Debian ${{fk_kvers}} from ${{devtype}} ${{devnum}}:${{distro_bootpart}}..." \
&& booti ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdtcontroladdr}}
"#
    )
}

/// An initrd that says which kernel it came up on and powers off.
const UP: &str = "#!/bin/busybox sh\n/bin/busybox echo \"hilt-e2e: up on $(/bin/busybox uname -r)\"\n/bin/busybox poweroff -f\n";
/// One whose /init fails: the kernel panics ("Attempted to kill init").
const FAILS: &str = "#!/bin/busybox sh\n/bin/busybox echo \"hilt-e2e: the variant fails on $(/bin/busybox uname -r)\"\nexit 1\n";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cache() -> PathBuf {
    std::env::var_os("HILT_CACHE")
        .map(PathBuf::from)
        .unwrap_or(repo().join(".cache"))
}

/// The U-Boot scripts/build-uboot builds (Debian's u-boot-qemu saves no
/// environment on QEMU 7.2's flash and cannot write ext4).
fn uboot() -> PathBuf {
    let bin = cache().join("uboot/u-boot.bin");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/build-uboot (scripts/setup does)",
        bin.display()
    );
    bin
}

fn kernel(spec: &str) -> Kernel {
    let deb = fetch(&PackageRef::parse(spec).unwrap(), &cache())
        .unwrap_or_else(|e| panic!("fetching {spec}: {e}"));
    Kernel::from_extracted(&extract(&deb, &cache()).unwrap(), &deb.name, &deb.version).unwrap()
}

fn initrd(busybox: &Path, init: &str, out: &Path) {
    let mut w = CpioWriter::new(std::io::BufWriter::new(std::fs::File::create(out).unwrap()));
    for d in ["bin", "dev", "proc"] {
        w.dir(d, 0o755).unwrap();
    }
    w.char_dev("dev/console", 0o600, 5, 1).unwrap();
    w.file_from_path("bin/busybox", 0o755, busybox).unwrap();
    w.file("init", 0o755, init.as_bytes()).unwrap();
    w.finish().unwrap();
}

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {o:?}");
}

/// A disk with one FAT boot partition holding `files` (name on the
/// partition, file on this host), as the board's /boot would after hilt's
/// install.
fn disk(dir: &Path, files: &[(String, PathBuf)]) -> PathBuf {
    let part = dir.join("boot.fat");
    let _ = std::fs::remove_file(&part);
    run(Command::new("mkfs.vfat").arg("-C").arg(&part).arg("196608"));
    for (name, from) in files {
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&part)
            .arg(from)
            .arg(format!("::{name}")));
    }
    whole_disk(dir, &part, "c")
}

/// An MBR disk whose one bootable partition (of `kind`) is `part`.
fn whole_disk(dir: &Path, part: &Path, kind: &str) -> PathBuf {
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let mut d = std::fs::OpenOptions::new()
        .append(true)
        .open(&disk)
        .unwrap();
    std::io::copy(&mut std::fs::File::open(part).unwrap(), &mut d).unwrap();
    drop(d);
    let mut sfdisk = Command::new("sfdisk")
        .arg("-q")
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(format!("label: dos\nstart=2048, type={kind}, bootable\n").as_bytes())
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    disk
}

struct Board {
    qemu: Child,
    log: PathBuf,
}

impl Board {
    /// QEMU's command line for the board, `machine` its -machine value.
    /// U-Boot keeps its environment in the second flash bank, a file
    /// beside the disk that outlives power cycles as a board's does.
    fn qemu(machine: &str, disk: &Path, log: &Path) -> Command {
        let flash = disk.with_file_name("env-flash.img");
        if !flash.exists() {
            // QEMU's virt machine takes a flash bank of exactly 64 MiB.
            let f = std::fs::File::create(&flash).unwrap();
            f.set_len(64 << 20).unwrap();
        }
        let mut c = Command::new("qemu-system-aarch64");
        c.args([
            "-machine",
            machine,
            "-cpu",
            "cortex-a53",
            "-smp",
            "2",
            "-m",
            "512",
        ])
        .arg("-bios")
        .arg(uboot())
        .arg("-drive")
        .arg(format!(
            "if=pflash,unit=1,file={},format=raw",
            flash.display()
        ))
        .arg("-drive")
        .arg(format!(
            "if=none,id=boot,file={},format=raw",
            disk.display()
        ))
        .args(["-device", "virtio-blk-device,drive=boot"])
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-nic",
            "none",
            "-no-reboot",
        ])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
        c
    }

    fn on(disk: &Path, log: &Path) -> Self {
        let _ = std::fs::remove_file(log);
        let qemu = Self::qemu("virt", disk, log)
            .spawn()
            .expect("qemu-system-aarch64 (qemu-system-arm)");
        Self {
            qemu,
            log: log.to_path_buf(),
        }
    }

    /// The device tree QEMU gives this board, dumped with exactly its
    /// command line (a DTB of another command line, -nodefaults say,
    /// names other devices and the kernel goes silent).
    fn device_tree(disk: &Path, out: &Path) {
        let log = out.with_extension("log");
        run(&mut Self::qemu(
            &format!("virt,dumpdtb={}", out.display()),
            disk,
            &log,
        ));
        assert!(std::fs::metadata(out).unwrap().len() > 0);
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until the console shows each of `want` in order.
    fn expect(&mut self, want: &[&str], limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            // Whether QEMU had exited before the console is read: what it
            // wrote before exiting (a poweroff right after the line looked
            // for) is then all there.
            let exited = self.qemu.try_wait().unwrap();
            let text = self.console();
            let mut at = 0;
            let mut seen = 0;
            for w in want {
                match text[at..].find(w) {
                    Some(i) => {
                        at += i + w.len();
                        seen += 1;
                    }
                    None => break,
                }
            }
            if seen == want.len() {
                return text;
            }
            assert!(
                exited.is_none() && Instant::now() < end,
                "the console never showed {:?} (QEMU {}):\n{}",
                want[seen],
                exited.map_or("still running".into(), |s| s.to_string()),
                &text[text.len().saturating_sub(6000)..]
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Power off, as a board's power switch does.
    fn off(mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// The boot partition as `install: {layout: boot_scr, fallback: ...}`
/// leaves it: the board's own kernel, initrd and boot.scr (saved as
/// boot.scr.hilt-orig), the variant's kernel and initrd beside them, and
/// hilt's boot.scr.
fn installed(
    dir: &Path,
    good: &Kernel,
    variant: &Kernel,
    busybox: &Path,
    variant_init: &str,
    fallback: Fallback,
) -> PathBuf {
    let own_text = own_script(&good.release);
    let own_scr = dir.join("own.scr");
    std::fs::write(
        &own_scr,
        super::uimage::wrap(super::uimage::Kind::Script, "own", own_text.as_bytes()),
    )
    .unwrap();
    let good_initrd = dir.join("good.cpio");
    initrd(busybox, UP, &good_initrd);
    let variant_initrd = dir.join("variant.cpio");
    initrd(busybox, variant_init, &variant_initrd);

    // What install_boot_scr does with the board's boot.scr.
    let own =
        OwnScript::parse(&boot_scr::own_text(&std::fs::read(&own_scr).unwrap()).unwrap()).unwrap();
    let kernel_name = format!("vmlinuz-{}", variant.release);
    let initrd_name = format!("initrd.hilt-{}", variant.release);
    assert_eq!(own.initrd_form().unwrap(), boot_scr::InitrdForm::Raw);
    let text = own
        .with_variant(&Variant {
            variant: "e2e",
            release: &variant.release,
            kernel: Names::variant(&kernel_name),
            initrd: Some(Names::variant(&initrd_name)),
            fallback,
        })
        .unwrap();
    let hilt_scr = dir.join("hilt.scr");
    std::fs::write(&hilt_scr, boot_scr::compile(&text)).unwrap();
    // Where the board's OS (its boot partition at /boot) gets them.
    let at = |own_path: &str, name: &str| -> String {
        boot_scr::on_board("/boot", own_path, name)
            .unwrap()
            .strip_prefix("/boot/")
            .unwrap()
            .to_string()
    };
    let files = vec![
        (format!("vmlinuz-{}", good.release), good.image.clone()),
        (format!("initrd.img-{}", good.release), good_initrd),
        ("boot.scr.hilt-orig".to_string(), own_scr),
        (at(own.kernel_path(), &kernel_name), variant.image.clone()),
        (at(own.initrd_path().unwrap(), &initrd_name), variant_initrd),
        ("boot.scr".to_string(), hilt_scr),
    ];
    disk(dir, &files)
}

#[test]
#[ignore = "boots U-Boot built from Debian's source and two Debian kernels: run by scripts/test"]
fn hilts_boot_scr_boots_the_variant_and_falls_back_in_real_u_boot() {
    uboot();
    let t0 = Instant::now();
    let good = kernel(GOOD);
    let variant = kernel(VARIANT);
    let busybox = hilt_kernels::busybox_from_extracted(
        &extract(
            &fetch(
                &PackageRef::parse("busybox-static:arm64").unwrap(),
                &cache(),
            )
            .unwrap(),
            &cache(),
        )
        .unwrap(),
        "",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let boot_limit = Duration::from_secs(120);
    let up_on = |k: &Kernel| format!("hilt-e2e: up on {}", k.release);
    let trying = format!("hilt: booting variant e2e (kernel {})", variant.release);

    // A variant that comes up: U-Boot runs hilt's boot.scr, which saves the
    // mark beside the kernel and loads the variant's kernel and initrd
    // through the board's own script.
    let a = tmp.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    let disk_a = installed(&a, &good, &variant, &busybox.path, UP, Fallback::File);
    eprintln!("disk laid out in {:?}", t0.elapsed());
    let mut board = Board::on(&disk_a, &a.join("console.log"));
    let text = board.expect(
        &[
            "Found U-Boot script /boot.scr",
            &trying,
            &format!("Booting Debian {} from virtio 0:1", good.release),
            "Starting kernel",
            &up_on(&variant),
        ],
        boot_limit,
    );
    assert!(!text.contains("did not come up"), "{text}");
    board.off();
    eprintln!("the variant came up at {:?}", t0.elapsed());

    // Variants that panic: the board hangs (panic=0) until hilt's boot_s
    // runs out and it power cycles it; then the mark the script saved
    // sends U-Boot to the board's own kernel. `fallback: bootcount` keeps
    // the mark in U-Boot's environment (word by word into QEMU's flash,
    // 30 s under TCG), `boot_file` in a file on FAT.
    for (name, fallback, saving) in [
        ("bootcount", Fallback::Env, "Saving Environment to Flash"),
        ("boot_file", Fallback::File, "Found U-Boot script /boot.scr"),
    ] {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let disk = installed(&dir, &good, &variant, &busybox.path, FAILS, fallback);
        panics_then_falls_back(&disk, &dir, saving, &trying, &up_on(&good), boot_limit);
        eprintln!(
            "{name}: the known-good kernel came up at {:?}",
            t0.elapsed()
        );
    }

    // Armbian: its boot.scr loads the Image and uInitrd links; hilt
    // installs the variant's versioned files and repoints the links, and a
    // restore points them back.
    let c = tmp.path().join("c");
    let dtb = c.join("qemu-virt.dtb");
    std::fs::create_dir_all(&c).unwrap();
    Board::device_tree(&disk_a, &dtb);
    let mut arm = Armbian::new(&c, &good, &busybox.path, &dtb);
    let own = OwnScript::parse(&arm.own_text).unwrap();
    let saved = arm.links();
    let install = |arm: &mut Armbian, init: &str, fallback: Fallback| {
        let plan = armbian::plan(&own, &saved, "e2e", &variant.release, true, fallback).unwrap();
        std::fs::copy(&variant.image, arm.boot.join(&plan.kernel)).unwrap();
        arm.ramdisk(&busybox.path, plan.initrd.as_deref().unwrap(), init);
        arm.point(&plan.links);
        arm.script(plan.script.as_deref().unwrap_or(ARMBIAN_CMD));
        plan
    };
    let plan = install(&mut arm, UP, Fallback::None);
    assert!(plan.script.is_none(), "Armbian's own boot.scr stays");
    let mut board = Board::on(&arm.disk(Ext4::Armbian), &c.join("console-1.log"));
    board.expect(
        &[
            "Found U-Boot script /boot/boot.scr",
            "Image Type:   AArch64 Linux RAMDisk Image (uncompressed)",
            "Starting kernel",
            &up_on(&variant),
        ],
        boot_limit,
    );
    board.off();
    eprintln!(
        "Armbian's boot.scr booted the variant at {:?}",
        t0.elapsed()
    );

    // A panicking variant with `fallback: boot_file`: hilt's script (the
    // board's own with its loads switched) saves the mark on the ext4 root
    // filesystem, formatted as Armbian's build formats it.
    install(&mut arm, FAILS, Fallback::File);
    let disk = arm.disk(Ext4::Armbian);
    panics_then_falls_back(
        &disk,
        &c.join("armbian"),
        "Found U-Boot script /boot/boot.scr",
        &trying,
        &up_on(&good),
        boot_limit,
    );
    eprintln!(
        "Armbian on ext4: the known-good kernel came up at {:?}",
        t0.elapsed()
    );

    // The same on ext4 as Debian's mke2fs makes it (metadata_csum), which
    // U-Boot's ext4 write refuses: the script cannot save its mark, so it
    // boots the known-good kernel at once and says why.
    let mut board = Board::on(&arm.disk(Ext4::Debian), &c.join("console-csum.log"));
    let text = board.expect(
        &[
            "Unsupported feature metadata_csum found, not writing.",
            boot_scr::MARK_NOT_SAVED,
            "Starting kernel",
            &up_on(&good),
        ],
        boot_limit,
    );
    assert!(!text.contains(&trying), "{text}");
    board.off();

    // Restored: the links point back and Armbian's own boot.scr is back.
    let back: Vec<(&'static str, String)> = armbian::LINKS
        .iter()
        .map(|l| (*l, armbian::target(&saved, l).to_string()))
        .collect();
    arm.point(&back);
    arm.script(ARMBIAN_CMD);
    let mut board = Board::on(&arm.disk(Ext4::Armbian), &c.join("console-2.log"));
    board.expect(&["Starting kernel", &up_on(&good)], boot_limit);
    board.off();
    eprintln!(
        "restored, the known-good kernel came up at {:?}",
        t0.elapsed()
    );
}

/// A variant that panics on its first boot (after `first`, where the
/// script saves its mark, and `trying`), the power cut as hilt cuts it,
/// and the second power on booting the known-good kernel (`good_up`)
/// through the script's fallback.
fn panics_then_falls_back(
    disk: &Path,
    logs: &Path,
    first: &str,
    trying: &str,
    good_up: &str,
    limit: Duration,
) {
    std::fs::create_dir_all(logs).unwrap();
    let mut board = Board::on(disk, &logs.join("console-1.log"));
    board.expect(
        &[
            first,
            trying,
            "hilt-e2e: the variant fails on",
            "Kernel panic - not syncing",
        ],
        limit,
    );
    board.off();
    let mut board = Board::on(disk, &logs.join("console-2.log"));
    let text = board.expect(
        &[
            "hilt: variant e2e did not come up: booting the known-good kernel",
            "Starting kernel",
            good_up,
        ],
        limit,
    );
    assert!(!text.contains(trying), "{text}");
    board.off();
}

/// The shape of Armbian's boot.cmd for arm64 boards (armbian/build,
/// config/bootscripts), with load addresses for QEMU's virt machine.
const ARMBIAN_CMD: &str = r#"# DO NOT EDIT THIS FILE
#
# Please edit /boot/armbianEnv.txt to set supported parameters
#
setenv load_addr "0x4f000000"
setenv fdt_addr_r "0x4fa00000"
setenv overlay_error "false"
# default values
setenv rootdev "/dev/vda1"
setenv verbosity "1"
setenv console "serial"
setenv rootfstype "ext4"

if test -e ${devtype} ${devnum} ${prefix}armbianEnv.txt; then
	load ${devtype} ${devnum} ${load_addr} ${prefix}armbianEnv.txt
	env import -t ${load_addr} ${filesize}
fi
if test "${console}" = "serial"; then setenv consoleargs "console=ttyAMA0"; fi
setenv bootargs "root=${rootdev} rootwait rootfstype=${rootfstype} ${consoleargs} consoleblank=0 loglevel=${verbosity} ${extraargs}"
load ${devtype} ${devnum} ${ramdisk_addr_r} ${prefix}uInitrd
load ${devtype} ${devnum} ${kernel_addr_r} ${prefix}Image
load ${devtype} ${devnum} ${fdt_addr_r} ${prefix}dtb/${fdtfile}
fdt addr ${fdt_addr_r}
fdt resize 65536
for overlay_file in ${overlays}; do
	if load ${devtype} ${devnum} ${load_addr} ${prefix}dtb/overlay/${overlay_prefix}-${overlay_file}.dtbo; then
		echo "Applying kernel provided DT overlay ${overlay_prefix}-${overlay_file}.dtbo"
		fdt apply ${load_addr} || setenv overlay_error "true"
	fi
done
booti ${kernel_addr_r} ${ramdisk_addr_r} ${fdt_addr_r}
# Recompile with:
# mkimage -C none -A arm -T script -d /boot/boot.cmd /boot/boot.scr
"#;

#[derive(Clone, Copy)]
enum Ext4 {
    /// As Armbian's build formats a root filesystem: without 64bit and
    /// metadata_csum.
    Armbian,
    /// As Debian's mke2fs formats one by default: metadata_csum, which
    /// U-Boot's ext4 write refuses.
    Debian,
}

/// An Armbian root filesystem's /boot (ext4, with links), the board's
/// own kernel installed as Armbian's packages install one.
struct Armbian {
    dir: PathBuf,
    boot: PathBuf,
    own_text: String,
    good: String,
}

impl Armbian {
    fn new(dir: &Path, good: &Kernel, busybox: &Path, dtb: &Path) -> Self {
        let root = dir.join("root");
        let boot = root.join("boot");
        let r = &good.release;
        std::fs::create_dir_all(boot.join(format!("dtb-{r}"))).unwrap();
        std::fs::copy(&good.image, boot.join(format!("vmlinuz-{r}"))).unwrap();
        std::fs::copy(dtb, boot.join(format!("dtb-{r}/qemu-virt.dtb"))).unwrap();
        std::os::unix::fs::symlink(format!("dtb-{r}"), boot.join("dtb")).unwrap();
        std::fs::write(
            boot.join("armbianEnv.txt"),
            "verbosity=1\nbootlogo=false\nconsole=serial\noverlay_prefix=qemu\nfdtfile=qemu-virt.dtb\nrootdev=/dev/vda1\nrootfstype=ext4\nextraargs=earlycon panic=0\nusbstoragequirks=0x2537:0x1066:u,0x2537:0x1068:u\n",
        )
        .unwrap();
        let mut a = Self {
            dir: dir.to_path_buf(),
            boot,
            own_text: ARMBIAN_CMD.to_string(),
            good: r.clone(),
        };
        a.script(ARMBIAN_CMD);
        a.ramdisk(busybox, &format!("uInitrd-{r}"), UP);
        a.point(&[
            ("Image", format!("vmlinuz-{r}")),
            ("uInitrd", format!("uInitrd-{r}")),
        ]);
        a
    }

    /// An initrd running `init`, as a U-Boot ramdisk image.
    fn ramdisk(&mut self, busybox: &Path, name: &str, init: &str) {
        let cpio = self.dir.join(format!("{name}.cpio"));
        initrd(busybox, init, &cpio);
        let bytes = std::fs::read(&cpio).unwrap();
        std::fs::write(
            self.boot.join(name),
            uimage::wrap(uimage::Kind::Ramdisk, "uInitrd", &bytes),
        )
        .unwrap();
    }

    fn point(&mut self, links: &[(&str, String)]) {
        for (link, to) in links {
            let path = self.boot.join(link);
            let _ = std::fs::remove_file(&path);
            std::os::unix::fs::symlink(to, &path).unwrap();
        }
    }

    /// Where the links pointed before hilt, as hilt saves them.
    fn links(&self) -> Vec<(String, String)> {
        let r = &self.good;
        armbian::parse_links(&format!("Image vmlinuz-{r}\nuInitrd uInitrd-{r}\n")).unwrap()
    }

    /// The boot script U-Boot runs, and the boot.cmd it was made from.
    fn script(&mut self, text: &str) {
        std::fs::write(self.boot.join("boot.cmd"), text).unwrap();
        std::fs::write(
            self.boot.join("boot.scr"),
            uimage::wrap(uimage::Kind::Script, "boot", text.as_bytes()),
        )
        .unwrap();
    }

    /// The root partition (ext4), /boot on it.
    fn disk(&self, format: Ext4) -> PathBuf {
        let part = self.dir.join("root.ext4");
        let _ = std::fs::remove_file(&part);
        let features = match format {
            // armbian/build formats its root filesystems so that U-Boot
            // can write them (lib/functions/image/partitioning.sh).
            Ext4::Armbian => ["-O", "^64bit,^metadata_csum"],
            Ext4::Debian => ["-O", "metadata_csum"],
        };
        run(Command::new("mkfs.ext4")
            .args(features)
            .args(["-q", "-F", "-d"])
            .arg(self.dir.join("root"))
            .arg(&part)
            .arg("160M"));
        whole_disk(&self.dir, &part, "83")
    }
}
