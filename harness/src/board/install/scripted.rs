//! The layouts whose U-Boot runs a boot script: `boot_scr` (hilt writes
//! its own boot.scr around the board's) and `armbian` (the Image and
//! uInitrd links repointed, Armbian's boot.scr rewritten only for the
//! fallback). The board's boot.scr (and boot.cmd) are saved as
//! `*.hilt-orig` before the first install and every later install starts
//! from them, as the extlinux layout does with its extlinux.conf.

use anyhow::Context;
use hilt_transports::deploy::{self, DeployedFile};
use hilt_transports::ssh::shell_quote;

use super::armbian::{self, parse_links, target, LINKS};
use super::boot_scr::{self, Fallback, InitrdForm, Names, OwnScript, Variant};
use super::uimage;
use super::{
    board_path, fw_setenv, install_modules, root_sh, saved_original, VariantKernel, Written,
};
use crate::board::remote::Remote;
use crate::plan::{InstallCfg, InstallFallback};

struct Paths {
    dir: String,
    scr: String,
    cmd: String,
}

impl Paths {
    fn of(cfg: &InstallCfg) -> Self {
        let dir = cfg.boot_dir.trim_end_matches('/').to_string();
        Self {
            scr: format!("{dir}/boot.scr"),
            cmd: format!("{dir}/boot.cmd"),
            dir,
        }
    }
}

fn orig(path: &str) -> String {
    format!("{path}.hilt-orig")
}

/// The board's own script (saved first), and whether it has a boot.cmd.
async fn own_script(
    remote: &(dyn Remote + 'static),
    p: &Paths,
    layout: &str,
) -> anyhow::Result<(OwnScript, bool)> {
    let scr = saved_original(remote, &p.scr, &orig(&p.scr))
        .await?
        .with_context(|| {
            format!("the board file's `install: {{layout: {layout}}}` needs {}, the script the board's U-Boot runs", p.scr)
        })?;
    let has_cmd = saved_original(remote, &p.cmd, &orig(&p.cmd))
        .await?
        .is_some();
    let text =
        boot_scr::own_text(&scr).with_context(|| format!("reading the board's {}", p.scr))?;
    let own = OwnScript::parse(&text).with_context(|| format!("reading the board's {}", p.scr))?;
    Ok((own, has_cmd))
}

/// hilt's boot.cmd (where the board keeps one) and boot.scr.
async fn write_script(
    remote: &(dyn Remote + 'static),
    p: &Paths,
    text: &str,
    has_cmd: bool,
    others: &mut Vec<DeployedFile>,
) -> anyhow::Result<()> {
    if has_cmd {
        others.push(
            deploy::install(remote.shell(), &p.cmd, text.as_bytes())
                .await
                .with_context(|| format!("writing {}", p.cmd))?,
        );
    }
    others.push(
        deploy::install(remote.shell(), &p.scr, &boot_scr::compile(text))
            .await
            .with_context(|| format!("writing {}", p.scr))?,
    );
    Ok(())
}

/// hilt's root initrd in the form the board's script hands to booti.
fn initrd_bytes(path: &std::path::Path, form: InitrdForm) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(match form {
        InitrdForm::Raw => bytes,
        InitrdForm::UImage => uimage::wrap(uimage::Kind::Ramdisk, "hilt root initrd", &bytes),
    })
}

fn fallback(cfg: &InstallCfg) -> Fallback {
    match cfg.fallback {
        None => Fallback::None,
        Some(InstallFallback::Bootcount) => Fallback::Env,
        Some(InstallFallback::BootFile) => Fallback::File,
    }
}

/// Clears the script's mark that the variant is being tried: once the
/// variant is up, and before an install (a fallback taken before must not
/// send the new variant straight to the board's own kernel).
pub(super) async fn clear_mark(
    remote: &(dyn Remote + 'static),
    cfg: &InstallCfg,
) -> anyhow::Result<()> {
    match fallback(cfg) {
        Fallback::None => Ok(()),
        Fallback::Env => fw_setenv(remote, &[(boot_scr::TRYING, None)]).await,
        Fallback::File => {
            let p = Paths::of(cfg);
            let own = remote
                .pull(&orig(&p.scr), super::CONF_LIMIT)
                .await
                .with_context(|| {
                    format!(
                        "reading the board's own {}, saved as {}",
                        p.scr,
                        orig(&p.scr)
                    )
                })?;
            let text =
                boot_scr::own_text(&own).with_context(|| format!("reading {}", orig(&p.scr)))?;
            let own =
                OwnScript::parse(&text).with_context(|| format!("reading {}", orig(&p.scr)))?;
            let mark = boot_scr::on_board(&cfg.boot_dir, own.kernel_path(), boot_scr::TRYING_FILE)?;
            root_sh(
                remote,
                &format!("rm -f {}; sync", shell_quote(&mark)),
                "deleting the boot script's mark that the variant is being tried",
            )
            .await?;
            Ok(())
        }
    }
}

pub(super) async fn install_boot_scr(
    remote: &(dyn Remote + 'static),
    cfg: &InstallCfg,
    k: &VariantKernel<'_>,
) -> anyhow::Result<Written> {
    let p = Paths::of(cfg);
    let (own, has_cmd) = own_script(remote, &p, "boot_scr").await?;
    let kernel_name = format!("vmlinuz-{}", k.release);
    let at = boot_scr::on_board(&cfg.boot_dir, own.kernel_path(), &kernel_name)
        .with_context(|| format!("reading the board's {}", p.scr))?;
    let kernel = deploy::install(remote.shell(), &at, k.image)
        .await
        .with_context(|| format!("installing the kernel of {} at {at}", k.variant))?;
    let mut others = vec![install_modules(remote, k).await?];
    let initrd = match k.root_initrd {
        Some(path) => {
            let form = own
                .initrd_form()
                .with_context(|| format!("reading the board's {}", p.scr))?;
            // Not initrd.img-<release>: that name is the distribution's.
            let name = match form {
                InitrdForm::Raw => format!("initrd.hilt-{}", k.release),
                InitrdForm::UImage => format!("uInitrd.hilt-{}", k.release),
            };
            let own_path = own.initrd_path().expect("initrd_form found a load");
            let at = boot_scr::on_board(&cfg.boot_dir, own_path, &name)?;
            others.push(
                deploy::install(remote.shell(), &at, &initrd_bytes(path, form)?)
                    .await
                    .with_context(|| format!("installing the initrd of {} at {at}", k.variant))?,
            );
            Some(Names::variant(&name))
        }
        None => None,
    };
    clear_mark(remote, cfg).await?;
    let text = own.with_variant(&Variant {
        variant: k.variant,
        release: k.release,
        kernel: Names::variant(&kernel_name),
        initrd,
        fallback: fallback(cfg),
    })?;
    write_script(remote, &p, &text, has_cmd, &mut others).await?;
    Ok(Written { kernel, others })
}

/// Writes the board's own boot.scr (and boot.cmd) back.
async fn restore_script(
    remote: &(dyn Remote + 'static),
    p: &Paths,
) -> anyhow::Result<DeployedFile> {
    let own = remote
        .pull(&orig(&p.scr), super::CONF_LIMIT)
        .await
        .with_context(|| {
            format!(
                "reading the board's own {}, saved as {}",
                p.scr,
                orig(&p.scr)
            )
        })?;
    let rec = deploy::install(remote.shell(), &p.scr, &own)
        .await
        .with_context(|| format!("restoring {}", p.scr))?;
    let script = format!(
        "if [ -f {o} ]; then cp {o} {c}.hilt-new && mv -f {c}.hilt-new {c}; fi; sync",
        o = shell_quote(&orig(&p.cmd)),
        c = shell_quote(&p.cmd)
    );
    root_sh(remote, &script, &format!("restoring {}", p.cmd)).await?;
    Ok(rec)
}

pub(super) async fn restore_boot_scr(
    remote: &(dyn Remote + 'static),
    cfg: &InstallCfg,
) -> anyhow::Result<DeployedFile> {
    let rec = restore_script(remote, &Paths::of(cfg)).await?;
    clear_mark(remote, cfg).await?;
    Ok(rec)
}

/// The known-good links, saved as `<boot_dir>/armbian-links.hilt-orig`
/// before hilt first repoints them.
async fn own_links(
    remote: &(dyn Remote + 'static),
    p: &Paths,
) -> anyhow::Result<Vec<(String, String)>> {
    let text = root_sh(remote, &read_links_script(&p.dir), "reading Armbian's Image and uInitrd links")
        .await
        .with_context(|| {
            format!("`install: {{layout: armbian}}` needs {0}/Image and {0}/uInitrd to be links to the versioned files, as Armbian's kernel packages install them", p.dir)
        })?;
    let links = parse_links(&text).with_context(|| format!("reading the links of {}", p.dir))?;
    root_sh(
        remote,
        &save_links_script(&p.dir, &text),
        "saving Armbian's links",
    )
    .await
    .with_context(|| {
        format!(
            "saving where {}/Image and uInitrd pointed as {}",
            p.dir,
            saved_links(&p.dir)
        )
    })?;
    Ok(links)
}

fn saved_links(dir: &str) -> String {
    format!("{dir}/armbian-links.hilt-orig")
}

/// Prints `<link> <target>` lines: the saved ones once hilt has saved
/// them, else where the links point now.
fn read_links_script(dir: &str) -> String {
    let mut script = format!(
        "if [ -f {s} ]; then cat {s}; exit 0; fi",
        s = shell_quote(&saved_links(dir))
    );
    for l in LINKS {
        let path = shell_quote(&format!("{dir}/{l}"));
        script.push_str(&format!(
            "; [ -L {path} ] || {{ echo {msg} >&2; exit 3; }}; printf '%s %s\\n' {l} \"$(readlink {path})\"",
            msg = shell_quote(&format!("{dir}/{l} is not a link"))
        ));
    }
    script
}

/// Saves `text` (from [`read_links_script`]) unless a copy is saved.
fn save_links_script(dir: &str, text: &str) -> String {
    format!(
        "[ -f {s} ] || {{ printf %s {t} > {s}.hilt-new && mv -f {s}.hilt-new {s}; }}; sync",
        s = shell_quote(&saved_links(dir)),
        t = shell_quote(text)
    )
}

/// Points each link at its file: a new link renamed over the old one, so
/// that there is never a moment without it.
fn point_script(dir: &str, links: &[(&str, &str)]) -> String {
    let mut script = String::from("set -e");
    for (link, to) in links {
        let path = format!("{dir}/{link}");
        script.push_str(&format!(
            "; ln -sfn {to} {new}; mv -Tf {new} {path}",
            to = shell_quote(to),
            new = shell_quote(&format!("{path}.hilt-new")),
            path = shell_quote(&path)
        ));
    }
    script.push_str("; sync");
    script
}

async fn point(
    remote: &(dyn Remote + 'static),
    p: &Paths,
    links: &[(&str, &str)],
) -> anyhow::Result<()> {
    root_sh(
        remote,
        &point_script(&p.dir, links),
        "pointing Armbian's links",
    )
    .await?;
    Ok(())
}

pub(super) async fn install_armbian(
    remote: &(dyn Remote + 'static),
    cfg: &InstallCfg,
    k: &VariantKernel<'_>,
) -> anyhow::Result<Written> {
    let p = Paths::of(cfg);
    let links = own_links(remote, &p).await?;
    let (own, has_cmd) = own_script(remote, &p, "armbian").await?;
    let plan = armbian::plan(
        &own,
        &links,
        k.variant,
        k.release,
        k.root_initrd.is_some(),
        fallback(cfg),
    )
    .with_context(|| format!("reading the board's {}", p.scr))?;
    let at = board_path(&cfg.boot_dir, &plan.kernel);
    let kernel = deploy::install(remote.shell(), &at, k.image)
        .await
        .with_context(|| format!("installing the kernel of {} at {at}", k.variant))?;
    let mut others = vec![install_modules(remote, k).await?];
    if let (Some(path), Some(name)) = (k.root_initrd, &plan.initrd) {
        let at = board_path(&cfg.boot_dir, name);
        others.push(
            deploy::install(
                remote.shell(),
                &at,
                &initrd_bytes(path, InitrdForm::UImage)?,
            )
            .await
            .with_context(|| format!("installing the initrd of {} at {at}", k.variant))?,
        );
    }
    clear_mark(remote, cfg).await?;
    // The script first: from the moment the links name the variant a
    // power on tries it, and the fallback must already be there.
    if let Some(text) = &plan.script {
        write_script(remote, &p, text, has_cmd, &mut others).await?;
    }
    let repoint: Vec<(&str, &str)> = plan.links.iter().map(|(l, t)| (*l, t.as_str())).collect();
    point(remote, &p, &repoint).await?;
    Ok(Written { kernel, others })
}

pub(super) async fn restore_armbian(
    remote: &(dyn Remote + 'static),
    cfg: &InstallCfg,
) -> anyhow::Result<DeployedFile> {
    let p = Paths::of(cfg);
    let links = own_links(remote, &p).await?;
    point(remote, &p, &LINKS.map(|l| (l, target(&links, l)))).await?;
    let rec = restore_script(remote, &p).await?;
    clear_mark(remote, cfg).await?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (bool, String, String) {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// The shell an install runs on an Armbian board, run here on a
    /// directory laid out as Armbian's /boot.
    #[test]
    fn links_are_read_saved_once_repointed_and_pointed_back() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("boot dir");
        std::fs::create_dir(&dir).unwrap();
        let d = dir.to_str().unwrap();
        for f in [
            "vmlinuz-6.6.16-current-meson64",
            "uInitrd-6.6.16-current-meson64",
            "vmlinuz-R",
        ] {
            std::fs::write(dir.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("vmlinuz-6.6.16-current-meson64", dir.join("Image")).unwrap();
        std::os::unix::fs::symlink("uInitrd-6.6.16-current-meson64", dir.join("uInitrd")).unwrap();

        let (ok, text, err) = sh(&read_links_script(d));
        assert!(ok, "{err}");
        let links = parse_links(&text).unwrap();
        assert_eq!(target(&links, "Image"), "vmlinuz-6.6.16-current-meson64");
        let (ok, _, err) = sh(&save_links_script(d, &text));
        assert!(ok, "{err}");

        let (ok, _, err) = sh(&point_script(d, &[("Image", "vmlinuz-R")]));
        assert!(ok, "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join("Image")).unwrap(),
            "vmlinuz-R"
        );
        assert!(!dir.join("Image.hilt-new").exists());
        // Once saved, the saved targets are read, not the repointed links.
        let (_, again, _) = sh(&read_links_script(d));
        assert_eq!(again, text);
        let (ok, _, err) = sh(&save_links_script(d, "Image vmlinuz-R\nuInitrd x\n"));
        assert!(ok, "{err}");
        assert_eq!(sh(&read_links_script(d)).1, text, "the first save stays");

        let back: Vec<(&str, &str)> = LINKS.iter().map(|l| (*l, target(&links, l))).collect();
        let (ok, _, err) = sh(&point_script(d, &back));
        assert!(ok, "{err}");
        assert_eq!(
            std::fs::read_link(dir.join("Image")).unwrap().to_str(),
            Some("vmlinuz-6.6.16-current-meson64")
        );

        // A board whose Image is a file is told what the layout needs.
        let plain = t.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        std::fs::write(plain.join("Image"), "k").unwrap();
        let (ok, _, err) = sh(&read_links_script(plain.to_str().unwrap()));
        assert!(!ok);
        assert!(err.contains("plain/Image is not a link"), "{err}");
    }
}
