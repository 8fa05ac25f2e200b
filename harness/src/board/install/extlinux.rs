//! U-Boot distro boot's extlinux.conf: the variant's entry made the
//! default, the board's own entries kept as they were, so that the one it
//! booted before stays a label away (and is what a restore writes back).

use anyhow::bail;

/// The label hilt's entry goes under.
pub const LABEL: &str = "hilt";

/// The keys of one entry that hilt copies from the board's default entry:
/// the variant boots with the board's own initrd, device tree and command
/// line, only the kernel differs.
const COPIED: [&str; 5] = ["initrd", "fdt", "devicetree", "fdtdir", "append"];

/// One `label` block: its name and its `key value` lines.
struct Entry {
    name: String,
    lines: Vec<(String, String)>,
}

fn key_value(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (k, v) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

fn entries(conf: &str) -> (Option<String>, Vec<Entry>) {
    let mut default = None;
    let mut out: Vec<Entry> = Vec::new();
    for line in conf.lines() {
        let Some((k, v)) = key_value(line) else {
            continue;
        };
        match k.as_str() {
            "default" => default = Some(v),
            "label" => out.push(Entry {
                name: v,
                lines: Vec::new(),
            }),
            _ => {
                if let Some(e) = out.last_mut() {
                    e.lines.push((k, v));
                }
            }
        }
    }
    (default, out)
}

/// The default entry's name and kernel path in `conf`, the board's own
/// (known-good) configuration.
pub fn known_good(conf: &str) -> anyhow::Result<(String, String)> {
    let (default, entries) = entries(conf);
    let Some(default) = default else {
        bail!("it names no `default` label, so hilt cannot tell which entry boots the board's known-good kernel: add `default <label>` naming it");
    };
    if default == LABEL {
        bail!("its default is already hilt's label `{LABEL}`: restore the board's own extlinux.conf (hilt keeps it as extlinux.conf.hilt-orig) before a run");
    }
    let Some(e) = entries.iter().find(|e| e.name == default) else {
        bail!("its default `{default}` is no `label` in it");
    };
    let Some((_, kernel)) = e.lines.iter().find(|(k, _)| k == "kernel" || k == "linux") else {
        bail!("its default entry `{default}` has no `kernel` (or `linux`) line");
    };
    Ok((default, kernel.clone()))
}

/// The board's configuration with hilt's entry for `kernel` (a path as the
/// bootloader sees it) as the default, every entry of the board's own kept.
/// `initrd`, when given, replaces the board's own initrd in hilt's entry.
pub fn with_variant(
    conf: &str,
    kernel: &str,
    initrd: Option<&str>,
    variant: &str,
    release: &str,
) -> anyhow::Result<String> {
    let (good, _) = known_good(conf)?;
    let (_, entries) = entries(conf);
    let own = entries
        .iter()
        .find(|e| e.name == good)
        .expect("known_good found it");
    let mut out = format!(
        "# hilt: variant {variant} (kernel {release}) is the default; the board's own default was `{good}`\ndefault {LABEL}\n"
    );
    for line in conf.lines() {
        if key_value(line).is_some_and(|(k, _)| k == "default") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("\nlabel {LABEL}\n    kernel {kernel}\n"));
    if let Some(i) = initrd {
        out.push_str(&format!("    initrd {i}\n"));
    }
    for (k, v) in &own.lines {
        if COPIED.contains(&k.as_str()) && !(k == "initrd" && initrd.is_some()) {
            out.push_str(&format!("    {k} {v}\n"));
        }
    }
    Ok(out)
}

/// Where the variant's kernel goes, as the bootloader names it: beside the
/// board's own kernel, so that it is on the partition the bootloader reads.
pub fn kernel_path_beside(own_kernel: &str, release: &str) -> String {
    beside(own_kernel, &format!("vmlinuz-{release}"))
}

/// `name` in the directory of `own_kernel`, as the bootloader names it.
pub fn beside(own_kernel: &str, name: &str) -> String {
    match own_kernel.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "## /boot/extlinux/extlinux.conf\ndefault l0\nmenu title U-Boot menu\ntimeout 20\n\nlabel l0\n\tmenu label Debian GNU/Linux 6.1.0-44-arm64\n\tlinux /vmlinuz-6.1.0-44-arm64\n\tinitrd /initrd.img-6.1.0-44-arm64\n\tfdtdir /dtbs/6.1.0-44-arm64/\n\tappend root=/dev/mmcblk1p2 rw\n\nlabel l0r\n\tlinux /vmlinuz-6.1.0-44-arm64\n\tappend single\n";

    #[test]
    fn the_variant_is_the_default_with_the_boards_initrd_fdt_and_append() {
        let out = with_variant(
            DEBIAN,
            "/vmlinuz-6.1.0-45-arm64",
            None,
            "patched",
            "6.1.0-45-arm64",
        )
        .unwrap();
        let (d, entries) = entries(&out);
        assert_eq!(d.as_deref(), Some(LABEL));
        assert_eq!(out.matches("\ndefault ").count(), 1, "{out}");
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["l0", "l0r", LABEL]);
        let h = &entries[2].lines;
        assert_eq!(h[0], ("kernel".into(), "/vmlinuz-6.1.0-45-arm64".into()));
        assert!(h.contains(&("initrd".into(), "/initrd.img-6.1.0-44-arm64".into())));
        assert!(h.contains(&("fdtdir".into(), "/dtbs/6.1.0-44-arm64/".into())));
        assert!(h.contains(&("append".into(), "root=/dev/mmcblk1p2 rw".into())));
        // The board's own entries are untouched.
        assert!(out.contains("label l0\n\tmenu label Debian GNU/Linux 6.1.0-44-arm64\n\tlinux /vmlinuz-6.1.0-44-arm64\n"));
    }

    #[test]
    fn hilts_initrd_replaces_the_boards_own() {
        let out = with_variant(DEBIAN, "/v", Some("/initrd.hilt-R"), "p", "R").unwrap();
        let (_, entries) = entries(&out);
        let initrds: Vec<&String> = entries[2]
            .lines
            .iter()
            .filter(|(k, _)| k == "initrd")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(initrds, ["/initrd.hilt-R"]);
    }

    #[test]
    fn a_conf_without_a_usable_default_is_refused_with_what_to_do() {
        let none = DEBIAN.replace("default l0\n", "");
        assert!(known_good(&none)
            .unwrap_err()
            .to_string()
            .contains("add `default <label>`"));
        let ours = with_variant(DEBIAN, "/v", None, "p", "r").unwrap();
        assert!(known_good(&ours)
            .unwrap_err()
            .to_string()
            .contains("hilt-orig"));
        let missing = DEBIAN.replace("default l0", "default l9");
        assert!(known_good(&missing)
            .unwrap_err()
            .to_string()
            .contains("`l9` is no `label`"));
    }

    #[test]
    fn the_variant_lands_beside_the_boards_kernel() {
        assert_eq!(
            kernel_path_beside("/vmlinuz-6.1.0-44-arm64", "R"),
            "/vmlinuz-R"
        );
        assert_eq!(kernel_path_beside("/boot/Image", "R"), "/boot/vmlinuz-R");
        assert_eq!(kernel_path_beside("Image", "R"), "vmlinuz-R");
    }
}
