//! Fetches Debian packages into the cache, extracts them and reports what the board
//! would get from them.
//!
//!     cargo run --release -p hilt-kernels --example fetch -- --cache DIR PKG...
//!
//! PKG is NAME[:ARCH][=VERSION] (ARCH defaults to arm64). For kernels this prints the
//! release, the Image's SHA256, the config facts the harness depends on, and the load
//! order of the modules the board uses.

use std::path::PathBuf;
use std::process::ExitCode;

use hilt_kernels::{busybox_from_extracted, extract, fetch, Kernel, PackageRef};

/// Modules the board setup asks for, with the config symbol that builds each, so a
/// report can say "built in" or "module" from the config as well as from the files.
const BOARD_MODULES: &[(&str, &str)] = &[
    ("virtio_mmio", "CONFIG_VIRTIO_MMIO"),
    ("virtio_blk", "CONFIG_VIRTIO_BLK"),
    ("virtio_console", "CONFIG_VIRTIO_CONSOLE"),
    ("dm-mod", "CONFIG_BLK_DEV_DM"),
    ("dm-verity", "CONFIG_DM_VERITY"),
    ("erofs", "CONFIG_EROFS_FS"),
    ("zram", "CONFIG_ZRAM"),
    ("sdhci", "CONFIG_MMC_SDHCI"),
    ("sdhci-pci", "CONFIG_MMC_SDHCI_PCI"),
    ("mmc_block", "CONFIG_MMC_BLOCK"),
    ("brd", "CONFIG_BLK_DEV_RAM"),
    ("dm-delay", "CONFIG_DM_DELAY"),
    ("null_blk", "CONFIG_BLK_DEV_NULL_BLK"),
    ("ramoops", "CONFIG_PSTORE_RAM"),
];

/// Config facts the harness relies on (console, RNG, erofs, swap, PSI, verity, SD,
/// pstore, tracing, preemption model, devtmpfs). Prefixes ending in `*` list every match.
const CONFIG_FACTS: &[&str] = &[
    "CONFIG_VIRTIO_CONSOLE",
    "CONFIG_HW_RANDOM_VIRTIO",
    "CONFIG_EROFS_FS_ZIP",
    "CONFIG_EROFS_FS_ZIP_LZMA",
    "CONFIG_ZRAM",
    "CONFIG_PSI",
    "CONFIG_DM_VERITY",
    "CONFIG_DM_INIT",
    "CONFIG_MMC_SDHCI_PCI",
    "CONFIG_PSTORE_RAM",
    "CONFIG_KPROBES",
    "CONFIG_KPROBE_EVENTS",
    "CONFIG_FUNCTION_GRAPH_TRACER",
    "CONFIG_PREEMPT*",
    "CONFIG_DEVTMPFS*",
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fetch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut cache = std::env::var_os("HILT_CACHE").map(PathBuf::from);
    let mut packages = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cache" => cache = Some(args.next().ok_or("--cache needs a directory")?.into()),
            "-h" | "--help" => {
                println!("usage: fetch --cache DIR NAME[:ARCH][=VERSION]...");
                return Ok(());
            }
            _ => packages.push(PackageRef::parse(&arg)?),
        }
    }
    let cache = cache.ok_or("no cache directory: pass --cache DIR or set HILT_CACHE")?;
    if packages.is_empty() {
        return Err("no packages given".into());
    }
    for pkg in &packages {
        let deb = fetch(pkg, &cache)?;
        let root = extract(&deb, &cache)?;
        println!(
            "{}={}",
            pkg.apt_spec().split('=').next().unwrap_or_default(),
            deb.version
        );
        println!("  deb     {} sha256 {}", deb.path.display(), deb.sha256);
        println!("  tree    {}", root.display());
        if root.join("boot").is_dir() {
            report_kernel(&Kernel::from_extracted(&root, &deb.name, &deb.version)?)?;
        } else if deb.name.starts_with("busybox") {
            let bb = busybox_from_extracted(&root, &deb.version)?;
            println!("  busybox {} (static aarch64)", bb.path.display());
        }
    }
    Ok(())
}

fn report_kernel(k: &Kernel) -> Result<(), Box<dyn std::error::Error>> {
    println!("  release {}", k.release);
    println!("  image   {} sha256 {}", k.image.display(), k.image_sha256);
    for fact in CONFIG_FACTS {
        match fact.strip_suffix('*') {
            Some(prefix) => {
                let set = k.config_matching(prefix);
                let shown: Vec<String> = set.iter().map(|(n, v)| format!("{n}={v}")).collect();
                println!(
                    "  config  {fact}: {}",
                    if shown.is_empty() {
                        "none set".into()
                    } else {
                        shown.join(" ")
                    }
                );
            }
            None => println!(
                "  config  {fact}={}",
                k.config_value(fact).unwrap_or_else(|| "(not set)".into())
            ),
        }
    }
    for (module, symbol) in BOARD_MODULES {
        let how = match (k.find_module(module), k.is_builtin(module)) {
            (Some(path), _) => format!("module {}", path.strip_prefix(&k.modules_dir)?.display()),
            (None, true) => "built in".to_string(),
            (None, false) => "absent".to_string(),
        };
        let value = k.config_value(symbol).unwrap_or_else(|| "(not set)".into());
        println!("  wants   {module:<15} {symbol}={value:<3} {how}");
    }
    let wanted: Vec<&str> = BOARD_MODULES.iter().map(|(m, _)| *m).collect();
    let plan = k.plan(&wanted)?;
    println!("  builtin {}", plan.builtin.join(" "));
    let order: Vec<&str> = plan.modules.iter().map(|m| m.name.as_str()).collect();
    println!("  load    {}", order.join(" "));
    Ok(())
}
