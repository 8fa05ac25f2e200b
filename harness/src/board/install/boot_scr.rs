//! A board whose U-Boot runs a boot script (`boot.scr`, compiled from
//! `boot.cmd`): hilt's script is the board's own with the commands that
//! load its kernel (and, with `root_modules`, its initrd) switched to the
//! variant's files. Everything else (bootargs, device tree, overlays) is
//! the board's, as in the extlinux layout only the kernel differs.
//!
//! Each switched load becomes `run hilt_load_N`, a variable holding the
//! variant's load and the board's own, verbatim, picked by `hilt_boot`.
//! With a fallback the script keeps a mark that the variant is being
//! tried, set before it boots and cleared by hilt once it is up: still set
//! at the next power on, the variant did not come up, and the board's own
//! loads run. `fallback: bootcount` keeps the mark in U-Boot's environment
//! (`hilt_trying`, saveenv; fw_setenv on the board clears it),
//! `fallback: boot_file` in a file beside the kernel written with U-Boot's
//! `save` (the board's OS deletes it). Neither needs U-Boot's
//! CONFIG_BOOTCOUNT_LIMIT, which few board U-Boots (and neither Debian's
//! nor Armbian's) are built with. A mark U-Boot cannot save (an
//! environment it cannot write; ext4 with metadata_csum, which U-Boot's
//! ext4 write refuses) would leave a variant that does not boot booted at
//! every power on: the script then boots the board's own kernel and says
//! why ([`MARK_NOT_SAVED`]).

use std::collections::BTreeSet;

use anyhow::{bail, Context};

use super::script::{self, Command};
use super::uimage;

/// The variable the script's head keeps its boot count in
/// (`fallback: bootcount`).
pub const TRYING: &str = "hilt_trying";

/// The file the script marks a try with (`fallback: boot_file`), beside
/// the kernel.
pub const TRYING_FILE: &str = "hilt-trying";

/// What the script says when U-Boot cannot save its mark (a read-only
/// environment, a filesystem its `save` cannot write): the variant is not
/// booted without a way back, the board's own kernel is, and hilt tells
/// this from a variant that did not come up.
pub const MARK_NOT_SAVED: &str =
    "hilt: U-Boot could not save the mark that the variant is being tried";

/// Where the script keeps its mark that the variant is being tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// No mark: the variant boots at every power on.
    None,
    /// `hilt_trying` in U-Boot's environment (saveenv; fw_setenv clears).
    Env,
    /// A file beside the kernel, written with U-Boot's `save`.
    File,
}

/// What the generated script boots: per file, the base name the variant's
/// load reads and the one the board's own (fallback) load reads; `None`
/// keeps the name the board's script has.
pub struct Variant<'a> {
    pub variant: &'a str,
    pub release: &'a str,
    pub kernel: Names,
    /// With `None`, the initrd loads stay as they are in both.
    pub initrd: Option<Names>,
    pub fallback: Fallback,
}

#[derive(Debug, Clone, Default)]
pub struct Names {
    pub variant: Option<String>,
    pub own: Option<String>,
}

impl Names {
    /// The variant's file under a new name, the board's as it is named.
    pub fn variant(name: &str) -> Self {
        Self {
            variant: Some(name.to_string()),
            own: None,
        }
    }
}

/// How the board's own script hands an initrd to `booti`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitrdForm {
    /// `${ramdisk_addr_r}:${filesize}`: the cpio as it is.
    Raw,
    /// `${ramdisk_addr_r}` alone: a U-Boot ramdisk image (uInitrd).
    UImage,
}

/// The loads hilt switches, found in the board's own script.
#[derive(Debug)]
pub struct OwnScript {
    text: String,
    kernel_loads: Vec<Command>,
    initrd_loads: Vec<Command>,
    initrd_form: Option<InitrdForm>,
}

impl OwnScript {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if text.contains(TRYING) || text.contains(TRYING_FILE) || text.contains("run hilt_load_") {
            bail!("it is a script hilt wrote: put the board's own boot.scr back (hilt keeps it as boot.scr.hilt-orig) before a run");
        }
        let cmds = script::commands(text);
        let boots: Vec<&Command> = cmds.iter().filter(|c| c.words[0] == "booti").collect();
        if boots.is_empty() {
            bail!("it has no `booti` command: hilt installs arm64 Images, which U-Boot boots with booti, and cannot tell which load is the kernel (a script booting a uImage with bootm needs the kernel packed as one, which hilt does not do)");
        }
        let mut kernel_addrs = BTreeSet::new();
        let mut initrd_addrs = BTreeSet::new();
        let mut forms: Vec<InitrdForm> = Vec::new();
        for b in &boots {
            if let Some(k) = b.words.get(1) {
                kernel_addrs.insert(script::variable(k).to_string());
            }
            match b.words.get(2).map(String::as_str) {
                None | Some("-") => {}
                Some(i) => {
                    let (addr, form) = match i.split_once(':') {
                        Some((a, _)) => (a, InitrdForm::Raw),
                        None => (i, InitrdForm::UImage),
                    };
                    initrd_addrs.insert(script::variable(addr).to_string());
                    if !forms.contains(&form) {
                        forms.push(form);
                    }
                }
            }
        }
        if forms.len() > 1 {
            bail!("its booti commands take the initrd both with a size (`addr:size`, a plain cpio) and without one (a uInitrd): hilt cannot tell which form to write");
        }
        let initrd_form = forms.first().copied();
        let loads_to = |addrs: &BTreeSet<String>| -> Vec<Command> {
            cmds.iter()
                .filter(|c| script::is_load(c) && addrs.contains(script::variable(&c.words[3])))
                .cloned()
                .collect()
        };
        let kernel_loads = loads_to(&kernel_addrs);
        if kernel_loads.is_empty() {
            bail!(
                "no `load` (or fatload/ext4load) command in it reads a file to the address booti boots ({}): hilt switches that load to the variant's kernel",
                kernel_addrs.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        for c in kernel_loads.iter() {
            if text[c.span.clone()].contains('\'') {
                bail!("its kernel load `{}` holds a single quote, which hilt cannot keep inside the variable it runs the load from", &text[c.span.clone()]);
            }
        }
        Ok(Self {
            text: text.to_string(),
            initrd_loads: loads_to(&initrd_addrs),
            kernel_loads,
            initrd_form,
        })
    }

    /// The form an initrd replacing the board's must be written in, or
    /// what to do when hilt cannot replace it.
    pub fn initrd_form(&self) -> anyhow::Result<InitrdForm> {
        match (self.initrd_form, self.initrd_loads.is_empty()) {
            (Some(f), false) => Ok(f),
            _ => bail!("it boots without an initrd, or loads it where no booti takes it from: `install.root_modules` needs an initrd load hilt can switch to its own initrd; leave root_modules out to boot the variant the way the board boots its own kernel"),
        }
    }

    /// Where the board's own kernel is, as its script names it (the path
    /// of the first load hilt switches): the variant's goes beside it.
    pub fn kernel_path(&self) -> &str {
        &self.kernel_loads[0].words[4]
    }

    pub fn initrd_path(&self) -> Option<&str> {
        self.initrd_loads.first().map(|c| c.words[4].as_str())
    }

    /// hilt's boot.cmd: the head, then the board's script with the
    /// switched loads run from variables that load the variant's files
    /// or, once the variant failed to come up, the board's own.
    pub fn with_variant(&self, v: &Variant<'_>) -> anyhow::Result<String> {
        let mut switched: Vec<(&Command, &Names)> = Vec::new();
        for c in &self.kernel_loads {
            switched.push((c, &v.kernel));
        }
        if let Some(initrd) = &v.initrd {
            self.initrd_form()?;
            for c in &self.initrd_loads {
                switched.push((c, initrd));
            }
        }
        switched.sort_by_key(|(c, _)| c.span.start);
        let load = |c: &Command, name: &Option<String>| match name {
            None => self.text[c.span.clone()].replace("\\\n", " "),
            Some(n) => {
                let mut w = c.words.clone();
                w[4] = beside(&c.words[4], n);
                w.join(" ")
            }
        };
        let either = |c: &Command, names: &Names| {
            format!(
                "if test \"${{hilt_boot}}\" = own; then {}; else {}; fi",
                load(c, &names.own),
                load(c, &names.variant)
            )
        };
        let mut out = format!(
            "# Written by hilt: variant {variant} (kernel {release}) boots through the board's\n# own boot script below, its kernel{initrd} loads run from hilt_load_N.\n# The board's own script is kept as boot.scr.hilt-orig (and boot.cmd.hilt-orig).\n",
            variant = v.variant,
            release = v.release,
            initrd = if v.initrd.is_some() { " and initrd" } else { "" },
        );
        let up = format!(
            "echo \"hilt: booting variant {} (kernel {})\"",
            v.variant, v.release
        );
        let down = format!(
            "echo \"hilt: variant {} did not come up: booting the known-good kernel\"",
            v.variant
        );
        let unsaved = format!("echo \"{MARK_NOT_SAVED}: booting the known-good kernel\"");
        match v.fallback {
            Fallback::None => {
                out.push_str(&up);
                out.push('\n');
                for (n, (c, names)) in switched.iter().enumerate() {
                    out.push_str(&format!(
                        "setenv hilt_load_{n} '{}'\n",
                        load(c, &names.variant)
                    ));
                }
            }
            Fallback::Env => {
                out.push_str(&format!(
                    "# {TRYING}=1 is saved before the variant boots and cleared (fw_setenv) by hilt once\n# it is up: still set at the next power on, the variant did not come up.\nif test \"${{{TRYING}}}\" = \"1\"; then\n\t{down}\n\tsetenv hilt_boot own\nelse\n\tsetenv {TRYING} 1\n\tif saveenv; then\n\t\t{up}\n\t\tsetenv hilt_boot variant\n\telse\n\t\t{unsaved}\n\t\tsetenv hilt_boot own\n\tfi\nfi\n"
                ));
                for (n, (c, names)) in switched.iter().enumerate() {
                    out.push_str(&format!("setenv hilt_load_{n} '{}'\n", either(c, names)));
                }
            }
            Fallback::File => {
                // The mark is written where the board's script loads, the
                // first time one of the switched loads runs: only there are
                // the device variables it loads from set.
                let devices: BTreeSet<&[String]> =
                    switched.iter().map(|(c, _)| &c.words[1..3]).collect();
                if devices.len() > 1 {
                    bail!("its kernel and initrd loads read from different devices: `fallback: boot_file` keeps one file beside the kernel, which hilt cannot place for both");
                }
                let file = beside(self.kernel_path(), TRYING_FILE);
                out.push_str(&format!(
                    "# {TRYING_FILE}, written by U-Boot (save) before the variant's first load and deleted by\n# hilt once it is up: still there at the next power on, the variant did not come up.\nsetenv hilt_boot\n"
                ));
                for (n, (c, names)) in switched.iter().enumerate() {
                    let dev = c.words[1..3].join(" ");
                    let addr = &c.words[3];
                    out.push_str(&format!(
                        "setenv hilt_decide_{n} 'if test -z \"${{hilt_boot}}\"; then if test -e {dev} {file}; then {down}; setenv hilt_boot own; else mw.b {addr} 0x31 1; if save {dev} {addr} {file} 1; then {up}; setenv hilt_boot variant; else {unsaved}; setenv hilt_boot own; fi; fi; fi'\nsetenv hilt_load_{n} 'run hilt_decide_{n}; {}'\n",
                        either(c, names)
                    ));
                }
            }
        }
        out.push_str("# The board's own script:\n");
        let mut at = 0;
        for (n, (c, _)) in switched.iter().enumerate() {
            out.push_str(&self.text[at..c.span.start]);
            out.push_str(&format!("run hilt_load_{n}"));
            at = c.span.end;
            // U-Boot's hush reads `\` before a line end as an argument
            // holding the line end (load takes it for a size of 0, the
            // whole file, which is why chains like flash-kernel's work); run
            // would take it for a variable to run. The chain goes on, on
            // one line.
            let rest = &self.text[at..];
            let blank = rest.len() - rest.trim_start_matches([' ', '\t']).len();
            if rest[blank..].starts_with("\\\n") {
                out.push(' ');
                at += blank + 2;
            }
        }
        out.push_str(&self.text[at..]);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        Ok(out)
    }
}

/// `name` in the directory of `path` as the script names it: after its
/// last `/`, or after the variable it starts with (`${prefix}Image`).
pub fn beside(path: &str, name: &str) -> String {
    format!("{}{name}", dir_of(path))
}

fn dir_of(path: &str) -> &str {
    if let Some(i) = path.rfind('/') {
        return &path[..=i];
    }
    if path.starts_with("${") {
        if let Some(i) = path.find('}') {
            return &path[..=i];
        }
    }
    ""
}

/// Where a file the script names beside `own_path` is on the running
/// board, whose `boot_dir` holds the script: a path starting with a
/// variable (`${prefix}`, the script's own directory under distro boot) is
/// relative to it; any other is on the partition mounted at `boot_dir`.
pub fn on_board(boot_dir: &str, own_path: &str, name: &str) -> anyhow::Result<String> {
    let dir = dir_of(own_path);
    let rest = match dir.strip_prefix("${") {
        Some(r) => r.split_once('}').map(|(_, r)| r).unwrap_or(""),
        None => dir,
    };
    if rest.contains('$') {
        bail!("its kernel is loaded from `{own_path}`, a directory named by variables: hilt cannot tell where that is on the board");
    }
    Ok(super::board_path(boot_dir, &format!("{rest}{name}")))
}

/// boot.scr from hilt's boot.cmd.
pub fn compile(text: &str) -> Vec<u8> {
    uimage::wrap(uimage::Kind::Script, "hilt boot script", text.as_bytes())
}

/// The board's own script's text, from its boot.scr.
pub fn own_text(boot_scr: &[u8]) -> anyhow::Result<String> {
    uimage::script_text(boot_scr).context("reading it as a U-Boot script image")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The shape of Debian's flash-kernel generic boot script
    /// (bootscr.uboot-generic): the kernel found by a loop over prefixes,
    /// loads chained with && over lines ended by `\\`, a raw initrd with
    /// its size.
    pub const FLASH_KERNEL: &str = r#"# boot script for Debian, generated by flash-kernel
setenv bootargs "${bootargs} root=/dev/mmcblk0p2 rootwait"
if test -z "${fk_kvers}"; then
   setenv fk_kvers '6.1.0-44-arm64'
fi
if test -n "${fdtfile}"; then
   setenv fdtpath dtbs/${fk_kvers}/${fdtfile}
else
   setenv fdtpath dtb-${fk_kvers}
fi
if test -z "${distro_bootpart}"; then
  setenv partition ${bootpart}
else
  setenv partition ${distro_bootpart}
fi
for pathprefix in ${fk_image_locations}
do
  if test -e ${devtype} ${devnum}:${partition} ${pathprefix}vmlinuz-${fk_kvers}
  then
    load ${devtype} ${devnum}:${partition} ${kernel_addr_r} ${pathprefix}vmlinuz-${fk_kvers} \
    && load ${devtype} ${devnum}:${partition} ${fdt_addr_r} ${pathprefix}${fdtpath} \
    && load ${devtype} ${devnum}:${partition} ${ramdisk_addr_r} ${pathprefix}initrd.img-${fk_kvers} \
    && echo "Booting Debian ${fk_kvers} from ${devtype} ${devnum}:${partition}..." \
    && booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}
  fi
done
"#;

    /// The shape of Armbian's boot.cmd for arm64 boards (config/bootscripts
    /// in armbian/build): armbianEnv.txt imported, a uInitrd without a size,
    /// the kernel through the Image link, overlays applied.
    pub const ARMBIAN: &str = r#"# DO NOT EDIT THIS FILE
setenv load_addr "0x9000000"
setenv rootdev "/dev/mmcblk0p1"
setenv rootfstype "ext4"
if test -e ${devtype} ${devnum} ${prefix}armbianEnv.txt; then
	load ${devtype} ${devnum} ${load_addr} ${prefix}armbianEnv.txt
	env import -t ${load_addr} ${filesize}
fi
setenv bootargs "root=${rootdev} rootwait rootfstype=${rootfstype} ${consoleargs} ${extraargs}"
load ${devtype} ${devnum} ${ramdisk_addr_r} ${prefix}uInitrd
load ${devtype} ${devnum} ${kernel_addr_r} ${prefix}Image
load ${devtype} ${devnum} ${fdt_addr_r} ${prefix}dtb/${fdtfile}
fdt addr ${fdt_addr_r}
fdt resize 65536
for overlay_file in ${overlays}; do
	if load ${devtype} ${devnum} ${load_addr} ${prefix}dtb/allwinner/overlay/${overlay_prefix}-${overlay_file}.dtbo; then
		echo "Applying kernel provided DT overlay ${overlay_prefix}-${overlay_file}.dtbo"
		fdt apply ${load_addr} || setenv overlay_error "true"
	fi
done
booti ${kernel_addr_r} ${ramdisk_addr_r} ${fdt_addr_r}
# Recompile with:
# mkimage -C none -A arm -T script -d /boot/boot.cmd /boot/boot.scr
"#;

    fn v(fallback: Fallback, initrd: Option<&'static str>) -> Variant<'static> {
        Variant {
            variant: "patched",
            release: "6.1.0-45-arm64",
            kernel: Names::variant("vmlinuz-6.1.0-45-arm64"),
            initrd: initrd.map(Names::variant),
            fallback,
        }
    }

    /// The board's script after the head hilt puts before it.
    fn tail(out: &str) -> &str {
        &out[out.find("# The board's own script:\n").unwrap()..]
    }

    #[test]
    fn flash_kernels_loop_loads_the_variants_kernel_through_run() {
        let own = OwnScript::parse(FLASH_KERNEL).unwrap();
        assert_eq!(own.kernel_path(), "${pathprefix}vmlinuz-${fk_kvers}");
        assert_eq!(own.initrd_form().unwrap(), InitrdForm::Raw);
        let out = own
            .with_variant(&v(Fallback::Env, Some("initrd.hilt-6.1.0-45-arm64")))
            .unwrap();
        // The chain still reads load && load && load && echo && booti.
        assert!(
            out.contains("    run hilt_load_0     && load ${devtype} ${devnum}:${partition} ${fdt_addr_r} ${pathprefix}${fdtpath} \\\n    && run hilt_load_1     && echo"),
            "{out}"
        );
        // Either load, the board's verbatim, picked when it runs.
        assert!(out.contains("\nsetenv hilt_load_0 'if test \"${hilt_boot}\" = own; then load ${devtype} ${devnum}:${partition} ${kernel_addr_r} ${pathprefix}vmlinuz-${fk_kvers}; else load ${devtype} ${devnum}:${partition} ${kernel_addr_r} ${pathprefix}vmlinuz-6.1.0-45-arm64; fi'\n"), "{out}");
        assert!(out.contains("\nsetenv hilt_load_1 'if test \"${hilt_boot}\" = own; then load ${devtype} ${devnum}:${partition} ${ramdisk_addr_r} ${pathprefix}initrd.img-${fk_kvers}; else load ${devtype} ${devnum}:${partition} ${ramdisk_addr_r} ${pathprefix}initrd.hilt-6.1.0-45-arm64; fi'\n"), "{out}");
        // The mark is saved in the variant's branch only, before anything loads.
        let head = &out[..out.find("# The board's own script:").unwrap()];
        let (own_branch, variant_branch) = head.split_once("\nelse\n").unwrap();
        assert!(own_branch.contains("if test \"${hilt_trying}\" = \"1\"; then"));
        assert!(own_branch.contains("setenv hilt_boot own") && !own_branch.contains("saveenv"));
        assert!(variant_branch.contains("\tsetenv hilt_trying 1\n\tif saveenv; then\n\t\techo \"hilt: booting variant patched (kernel 6.1.0-45-arm64)\"\n\t\tsetenv hilt_boot variant\n\telse\n\t\techo \"hilt: U-Boot could not save the mark that the variant is being tried: booting the known-good kernel\"\n\t\tsetenv hilt_boot own\n\tfi\nfi\n"), "{variant_branch}");
        assert_eq!(tail(&out).matches("run hilt_load_").count(), 2);
        assert_eq!(tail(&out).matches(" load ").count(), 1, "{}", tail(&out));
        // A script hilt wrote is never taken for the board's own.
        assert!(OwnScript::parse(&out)
            .unwrap_err()
            .to_string()
            .contains("boot.scr.hilt-orig"));
    }

    #[test]
    fn a_boot_file_mark_is_written_where_the_boards_loads_run() {
        let own = OwnScript::parse(FLASH_KERNEL).unwrap();
        let out = own.with_variant(&v(Fallback::File, None)).unwrap();
        assert!(!out.contains("saveenv"), "{out}");
        assert!(
            out.contains("\nsetenv hilt_boot\n"),
            "cleared at every boot: {out}"
        );
        assert!(out.contains("\nsetenv hilt_decide_0 'if test -z \"${hilt_boot}\"; then if test -e ${devtype} ${devnum}:${partition} ${pathprefix}hilt-trying; then echo \"hilt: variant patched did not come up: booting the known-good kernel\"; setenv hilt_boot own; else mw.b ${kernel_addr_r} 0x31 1; if save ${devtype} ${devnum}:${partition} ${kernel_addr_r} ${pathprefix}hilt-trying 1; then echo \"hilt: booting variant patched (kernel 6.1.0-45-arm64)\"; setenv hilt_boot variant; else echo \"hilt: U-Boot could not save the mark that the variant is being tried: booting the known-good kernel\"; setenv hilt_boot own; fi; fi; fi'\n"), "{out}");
        assert!(
            out.contains("\nsetenv hilt_load_0 'run hilt_decide_0; if test"),
            "{out}"
        );
        assert!(tail(&out).contains("    run hilt_load_0     && load"));
    }

    #[test]
    fn armbians_script_keeps_its_links_for_the_fallback_and_wants_a_uinitrd() {
        let own = OwnScript::parse(ARMBIAN).unwrap();
        assert_eq!(own.kernel_path(), "${prefix}Image");
        assert_eq!(own.initrd_path(), Some("${prefix}uInitrd"));
        assert_eq!(own.initrd_form().unwrap(), InitrdForm::UImage);
        let out = own
            .with_variant(&v(Fallback::None, Some("uInitrd-6.1.0-45-arm64")))
            .unwrap();
        assert!(
            !out.contains("saveenv") && !out.contains("hilt_boot"),
            "no fallback, no mark: {out}"
        );
        assert!(out.contains("setenv hilt_load_0 'load ${devtype} ${devnum} ${ramdisk_addr_r} ${prefix}uInitrd-6.1.0-45-arm64'\n"), "{out}");
        assert!(out.contains("setenv hilt_load_1 'load ${devtype} ${devnum} ${kernel_addr_r} ${prefix}vmlinuz-6.1.0-45-arm64'\n"), "{out}");
        // The overlay load inside `if` is untouched; the armbianEnv one too.
        assert!(out.contains(
            "\tif load ${devtype} ${devnum} ${load_addr} ${prefix}dtb/allwinner/overlay/"
        ));
        assert!(out.contains("\tload ${devtype} ${devnum} ${load_addr} ${prefix}armbianEnv.txt\n"));
        // Armbian's layout: the links name the variant, the fallback the
        // known-good versioned files.
        let out = own
            .with_variant(&Variant {
                variant: "patched",
                release: "R",
                kernel: Names {
                    variant: None,
                    own: Some("vmlinuz-6.6.16-current-sunxi64".into()),
                },
                initrd: None,
                fallback: Fallback::File,
            })
            .unwrap();
        assert!(out.contains("then load ${devtype} ${devnum} ${kernel_addr_r} ${prefix}vmlinuz-6.6.16-current-sunxi64; else load ${devtype} ${devnum} ${kernel_addr_r} ${prefix}Image; fi'"), "{out}");
        assert!(tail(&out).contains(
            "\nload ${devtype} ${devnum} ${ramdisk_addr_r} ${prefix}uInitrd\nrun hilt_load_0\n"
        ));
    }

    #[test]
    fn without_root_modules_the_boards_initrd_stays() {
        let own = OwnScript::parse(FLASH_KERNEL).unwrap();
        let out = own.with_variant(&v(Fallback::None, None)).unwrap();
        assert!(out.contains("${ramdisk_addr_r} ${pathprefix}initrd.img-${fk_kvers} \\\n"));
        assert_eq!(out.matches("setenv hilt_load_").count(), 1);
    }

    #[test]
    fn scripts_hilt_cannot_switch_are_refused_with_the_reason() {
        let bootm = "load mmc 0:1 ${loadaddr} /uImage\nbootm ${loadaddr}\n";
        assert!(OwnScript::parse(bootm)
            .unwrap_err()
            .to_string()
            .contains("no `booti`"));
        let tftp = "tftp ${kernel_addr_r} Image\nbooti ${kernel_addr_r} - ${fdtcontroladdr}\n";
        assert!(OwnScript::parse(tftp)
            .unwrap_err()
            .to_string()
            .contains("no `load`"));
        let no_initrd =
            "load mmc 0:1 ${kernel_addr_r} /Image\nbooti ${kernel_addr_r} - ${fdt_addr_r}\n";
        let own = OwnScript::parse(no_initrd).unwrap();
        assert!(own
            .with_variant(&v(Fallback::None, Some("i")))
            .unwrap_err()
            .to_string()
            .contains("leave root_modules out"));
    }

    #[test]
    fn variant_files_land_beside_the_boards_on_the_board() {
        assert_eq!(beside("${prefix}Image", "vmlinuz-R"), "${prefix}vmlinuz-R");
        assert_eq!(beside("/boot/Image", "vmlinuz-R"), "/boot/vmlinuz-R");
        assert_eq!(beside("Image", "vmlinuz-R"), "vmlinuz-R");
        assert_eq!(on_board("/boot", "${prefix}Image", "v").unwrap(), "/boot/v");
        assert_eq!(
            on_board("/boot", "${prefix}kernels/Image", "v").unwrap(),
            "/boot/kernels/v"
        );
        assert_eq!(on_board("/boot", "/boot/Image", "v").unwrap(), "/boot/v");
        assert_eq!(on_board("/boot", "/Image", "v").unwrap(), "/boot/v");
        assert!(on_board("/boot", "${prefix}${ver}/Image", "v").is_err());
    }

    #[test]
    fn compiled_scripts_read_back() {
        let text = OwnScript::parse(ARMBIAN)
            .unwrap()
            .with_variant(&v(Fallback::Env, None))
            .unwrap();
        assert_eq!(own_text(&compile(&text)).unwrap(), text);
    }
}
