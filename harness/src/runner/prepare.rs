//! What a run prepares before it boots anything: each variant's kernel and
//! initramfs, and the media. `hilt fetch` does only this.

use crate::artifacts::{self, Cache};
use crate::board::KernelFiles;
use crate::plan::ResolvedPlan;

pub struct PreparedVariant {
    pub kernel: KernelFiles,
    pub kernel_package: String,
    pub kernel_image_sha256: String,
    pub builtin_modules: Vec<String>,
    pub loaded_modules: Vec<String>,
    pub kernel_build: Option<hilt_kernels::source::Provenance>,
    pub kernel_prebuilt: Option<artifacts::kernel::PrebuiltRecord>,
}

pub fn prepare(
    plan: &ResolvedPlan,
    say: &dyn Fn(&str),
) -> anyhow::Result<(Vec<PreparedVariant>, artifacts::Media)> {
    let home = crate::plan::home_for(&plan.path);
    let cache = Cache::default_for(&home);
    let agent = artifacts::agent_binary()?;
    say("fetching busybox");
    let busybox = artifacts::fetch_busybox(&cache)?;
    let mut out = Vec::new();
    for v in &plan.plan.variants {
        let pk = artifacts::prepare_kernel(&cache, &plan.path, &v.name, &v.kernel, say)?;
        let k = &pk.boot;
        let initramfs = artifacts::build_initramfs(&cache, k, &busybox, &agent)?;
        out.push(PreparedVariant {
            kernel: KernelFiles {
                variant: v.name.clone(),
                image: k.kernel.image.clone(),
                initramfs,
                release: k.kernel.release.clone(),
            },
            kernel_package: pk.label.clone(),
            kernel_build: pk.build.clone(),
            kernel_prebuilt: pk.prebuilt.clone(),
            kernel_image_sha256: k.kernel.image_sha256.clone(),
            builtin_modules: k.builtin.clone(),
            loaded_modules: k.modules.iter().map(|m| m.name.clone()).collect(),
        });
    }
    let media = artifacts::build_media(&cache, &plan.plan, say)?;
    Ok((out, media))
}

/// `hilt fetch`: everything `hilt run` would prepare, without booting.
pub fn fetch_all(plan: &ResolvedPlan, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let (variants, media) = prepare(plan, say)?;
    for v in &variants {
        say(&format!(
            "{}: {} ({}), initramfs {}",
            v.kernel.variant,
            v.kernel_package,
            v.kernel.release,
            v.kernel.initramfs.display()
        ));
    }
    say(&format!(
        "erofs image {} bytes, sha256 {}{}",
        media.provenance.erofs_bytes,
        media.provenance.erofs_sha256,
        media
            .provenance
            .verity_root_hash
            .as_ref()
            .map(|r| format!(", verity root {r}"))
            .unwrap_or_default()
    ));
    Ok(())
}
