//! Armbian's boot directory: `Image`, `uInitrd` and `dtb` are links to
//! the versioned files its kernel packages install (`vmlinuz-<version>`,
//! `uInitrd-<version>`, `dtb-<version>/`), and its boot.scr loads the links
//! with settings from armbianEnv.txt. A variant is installed as Armbian
//! installs a kernel: its versioned files, the links repointed. The
//! known-good files stay under their versioned names, which the fallback
//! (Armbian's script with its kernel and initrd loads switched to them)
//! and a restore (the links pointed back) use.

use anyhow::bail;

use super::boot_scr::{Fallback, Names, OwnScript, Variant};

/// Armbian's links in the boot directory hilt repoints. `dtb` stays: the
/// variant boots with the board's device tree, as in the other layouts.
pub const LINKS: [&str; 2] = ["Image", "uInitrd"];

/// `<link> <target>` lines: where the board's links pointed before hilt.
pub fn parse_links(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((link, target)) = line.split_once(' ') else {
            bail!("`{line}` is not `<link> <target>`");
        };
        out.push((link.to_string(), target.to_string()));
    }
    for l in LINKS {
        if !out.iter().any(|(k, _)| k == l) {
            bail!("it does not say where {l} pointed");
        }
    }
    Ok(out)
}

pub fn target<'a>(links: &'a [(String, String)], link: &str) -> &'a str {
    links
        .iter()
        .find(|(l, _)| l == link)
        .map(|(_, t)| t.as_str())
        .expect("parse_links checked")
}

/// What an install does on an Armbian board.
#[derive(Debug)]
pub struct Plan {
    /// The variant's kernel, in the boot directory.
    pub kernel: String,
    /// hilt's initrd as a U-Boot ramdisk image, with `root_modules`.
    pub initrd: Option<String>,
    /// Each link and the file it is to name.
    pub links: Vec<(&'static str, String)>,
    /// hilt's boot.cmd, with a fallback; without one Armbian's stays.
    pub script: Option<String>,
}

pub fn plan(
    own: &OwnScript,
    links: &[(String, String)],
    variant: &str,
    release: &str,
    with_initrd: bool,
    fallback: Fallback,
) -> anyhow::Result<Plan> {
    if !own.kernel_path().ends_with("Image") {
        bail!(
            "it loads its kernel from {}, not the Image link Armbian's boot scripts load: use `layout: boot_scr`",
            own.kernel_path()
        );
    }
    if with_initrd && !own.initrd_path().is_some_and(|p| p.ends_with("uInitrd")) {
        bail!("`install.root_modules` needs an initrd load of the uInitrd link, as Armbian's boot scripts have: leave root_modules out to boot with the board's initrd");
    }
    // Armbian's own names for a kernel package's files.
    let kernel = format!("vmlinuz-{release}");
    let initrd = with_initrd.then(|| format!("uInitrd-{release}"));
    let mut repoint = vec![("Image", kernel.clone())];
    if let Some(i) = &initrd {
        repoint.push(("uInitrd", i.clone()));
    }
    let base = |t: &str| t.rsplit('/').next().unwrap_or(t).to_string();
    let script = match fallback {
        Fallback::None => None,
        f => Some(own.with_variant(&Variant {
            variant,
            release,
            kernel: Names {
                variant: None,
                own: Some(base(target(links, "Image"))),
            },
            initrd: with_initrd.then(|| Names {
                variant: None,
                own: Some(base(target(links, "uInitrd"))),
            }),
            fallback: f,
        })?),
    };
    Ok(Plan {
        kernel,
        initrd,
        links: repoint,
        script,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::install::boot_scr::tests::ARMBIAN;

    #[test]
    fn saved_links_name_both_targets() {
        let l = parse_links(
            "Image vmlinuz-6.6.16-current-meson64\nuInitrd uInitrd-6.6.16-current-meson64\n",
        )
        .unwrap();
        assert_eq!(target(&l, "Image"), "vmlinuz-6.6.16-current-meson64");
        assert_eq!(target(&l, "uInitrd"), "uInitrd-6.6.16-current-meson64");
        assert!(parse_links("Image vmlinuz-x\n")
            .unwrap_err()
            .to_string()
            .contains("uInitrd"));
        assert!(parse_links("Image\n").is_err());
    }

    fn links() -> Vec<(String, String)> {
        parse_links(
            "Image vmlinuz-6.6.16-current-sunxi64\nuInitrd uInitrd-6.6.16-current-sunxi64\n",
        )
        .unwrap()
    }

    #[test]
    fn the_links_name_the_variant_and_the_script_stays_without_a_fallback() {
        let own = OwnScript::parse(ARMBIAN).unwrap();
        let p = plan(
            &own,
            &links(),
            "patched",
            "6.1.0-45-arm64",
            true,
            Fallback::None,
        )
        .unwrap();
        assert_eq!(p.kernel, "vmlinuz-6.1.0-45-arm64");
        assert_eq!(p.initrd.as_deref(), Some("uInitrd-6.1.0-45-arm64"));
        assert_eq!(
            p.links,
            [
                ("Image", "vmlinuz-6.1.0-45-arm64".to_string()),
                ("uInitrd", "uInitrd-6.1.0-45-arm64".to_string())
            ]
        );
        assert!(p.script.is_none());
        let p = plan(&own, &links(), "patched", "R", false, Fallback::None).unwrap();
        assert_eq!(
            p.links,
            [("Image", "vmlinuz-R".to_string())],
            "the board's uInitrd stays"
        );
    }

    #[test]
    fn the_fallback_loads_the_known_good_versioned_files() {
        let own = OwnScript::parse(ARMBIAN).unwrap();
        let p = plan(&own, &links(), "patched", "R", true, Fallback::Env).unwrap();
        let s = p.script.unwrap();
        assert!(s.contains("then load ${devtype} ${devnum} ${kernel_addr_r} ${prefix}vmlinuz-6.6.16-current-sunxi64; else load ${devtype} ${devnum} ${kernel_addr_r} ${prefix}Image; fi'"), "{s}");
        assert!(s.contains("then load ${devtype} ${devnum} ${ramdisk_addr_r} ${prefix}uInitrd-6.6.16-current-sunxi64; else load ${devtype} ${devnum} ${ramdisk_addr_r} ${prefix}uInitrd; fi'"), "{s}");
        let not_armbian = OwnScript::parse(
            "load mmc 0:1 ${kernel_addr_r} /boot/vmlinuz\nbooti ${kernel_addr_r} - ${fdt_addr_r}\n",
        )
        .unwrap();
        assert!(
            plan(&not_armbian, &links(), "p", "R", false, Fallback::None)
                .unwrap_err()
                .to_string()
                .contains("layout: boot_scr")
        );
    }
}
