//! The checks of a variant's kernel: where it comes from, and the files
//! the plan names for it.

use super::{is_config_target, Check, MAX_KERNEL_FILES};
use crate::plan::model::*;
use crate::plan::{plan_relative, PlanError};

/// `variants[i].kernel`. Its files are looked for here so that `hilt
/// check` reports a missing one with its key, not a build later on.
pub(super) fn kernel_source<T>(
    c: &Check<'_, T>,
    i: usize,
    k: &KernelSource,
) -> Result<(), PlanError> {
    match k {
        KernelSource::Debian(pkg) => debian_kernel(c, i, pkg),
        KernelSource::Prebuilt(p) => prebuilt_kernel(c, i, p),
        KernelSource::Source(s) => {
            source_tree(c, i, s)?;
            source_config(c, i, s)?;
            source_files(c, i, s)
        }
    }
}

fn kernel_key(i: usize, rest: &str) -> String {
    format!("variants[{i}].kernel.{rest}")
}

/// A file the plan names for a kernel, relative to the plan file.
fn kernel_file<T>(c: &Check<'_, T>, key: String, value: &str, what: &str) -> Result<(), PlanError> {
    let p = plan_relative(c.file, value);
    if p.is_file() {
        Ok(())
    } else {
        Err(c.fail(
            &key,
            format!(
                "no file {}: expected {what} (paths are relative to the plan file)",
                p.display()
            ),
        ))
    }
}

/// A Debian package reference, `name` or `name=version`, of the kind
/// `prefix` names.
fn is_package(pkg: &str, prefix: &str) -> bool {
    hilt_kernels::PackageRef::parse(pkg).is_ok() && pkg.starts_with(prefix)
}

fn debian_kernel<T>(c: &Check<'_, T>, i: usize, pkg: &str) -> Result<(), PlanError> {
    if !is_package(pkg, "linux-image-") {
        return Err(c.fail(
            &kernel_key(i, "debian"),
            format!("{pkg:?} is not a kernel package: expected linux-image-<release>[=<version>]"),
        ));
    }
    Ok(())
}

fn prebuilt_kernel<T>(c: &Check<'_, T>, i: usize, p: &PrebuiltCfg) -> Result<(), PlanError> {
    match (&p.image, &p.modules, &p.deb) {
        (None, _, Some(deb)) if p.modules.is_none() => {
            kernel_file(c, kernel_key(i, "prebuilt.deb"), deb, "a linux-image .deb")
        }
        (Some(image), modules, None) => {
            kernel_file(
                c,
                kernel_key(i, "prebuilt.image"),
                image,
                "an uncompressed arm64 Image",
            )?;
            let Some(m) = modules else {
                return Err(c.fail(
                    &kernel_key(i, "prebuilt"),
                    "`image:` needs `modules:`, the Image's lib/modules/<release> from \
                     `make modules_install`: its modules.builtin says what is built in, \
                     even when nothing is a module",
                ));
            };
            let d = plan_relative(c.file, m);
            if !d.join("modules.builtin").is_file() {
                return Err(c.fail(
                    &kernel_key(i, "prebuilt.modules"),
                    format!(
                        "no {}/modules.builtin: expected the Image's lib/modules/<release> \
                         from `make modules_install`",
                        d.display()
                    ),
                ));
            }
            Ok(())
        }
        _ => Err(c.fail(
            &kernel_key(i, "prebuilt"),
            "expected either `image:` (with optional `modules:`) or `deb:`",
        )),
    }
}

/// Where the tree to build comes from: Debian's source package or a
/// directory.
fn source_tree<T>(c: &Check<'_, T>, i: usize, s: &SourceCfg) -> Result<(), PlanError> {
    match (&s.debian, &s.path) {
        (Some(pkg), None) => {
            if !is_package(pkg, "linux-source-") {
                return Err(c.fail(
                    &kernel_key(i, "source.debian"),
                    format!(
                        "{pkg:?}: expected Debian's kernel source package, linux-source-<version>[=<package version>]"
                    ),
                ));
            }
            Ok(())
        }
        (None, Some(path)) => {
            let d = plan_relative(c.file, path);
            if !d.join("Makefile").is_file() || !d.join("Kconfig").is_file() {
                return Err(c.fail(
                    &kernel_key(i, "source.path"),
                    format!(
                        "{} is not a kernel tree: expected a directory with a top-level Makefile and Kconfig",
                        d.display()
                    ),
                ));
            }
            Ok(())
        }
        _ => Err(c.fail(
            &kernel_key(i, "source"),
            "expected exactly one of `debian: linux-source-<version>` or `path: <kernel tree>`",
        )),
    }
}

fn source_config<T>(c: &Check<'_, T>, i: usize, s: &SourceCfg) -> Result<(), PlanError> {
    if s.config != "board" && !is_config_target(&s.config) {
        kernel_file(
            c,
            kernel_key(i, "source.config"),
            &s.config,
            "`board`, a kbuild config target such as `defconfig`, or a .config file",
        )?;
    }
    Ok(())
}

/// Fragments and patches: every list's length first, then every file.
fn source_files<T>(c: &Check<'_, T>, i: usize, s: &SourceCfg) -> Result<(), PlanError> {
    let lists = [
        ("fragments", &s.fragments, "a config fragment"),
        ("revert", &s.revert, "a patch to revert"),
        ("patches", &s.patches, "a patch to apply"),
    ];
    for (key, list, _) in lists {
        c.at_most(
            &kernel_key(i, &format!("source.{key}")),
            list,
            MAX_KERNEL_FILES,
            "files",
        )?;
    }
    for (key, list, what) in lists {
        for (j, f) in list.iter().enumerate() {
            kernel_file(c, kernel_key(i, &format!("source.{key}[{j}]")), f, what)?;
        }
    }
    Ok(())
}
