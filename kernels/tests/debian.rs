//! Against the real Debian archive: needs apt with the arm64 architecture and fresh lists
//! (scripts/setup does both). Uses the shared cache, so after the first run only the
//! corrupted-cache test touches the network.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hilt_kernels::{busybox_from_extracted, extract, fetch, Error, FetchedDeb, Kernel, PackageRef};
use sha2::{Digest, Sha256};

const KERNEL: &str = "linux-image-6.1.0-44-arm64=6.1.164-1";
const BUSYBOX: &str = "busybox-static:arm64";

fn cache() -> PathBuf {
    match std::env::var_os("HILT_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache"),
    }
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

fn fetch_ok(spec: &str, cache: &Path) -> FetchedDeb {
    let pkg = PackageRef::parse(spec).unwrap();
    fetch(&pkg, cache).unwrap_or_else(|e| panic!("fetch {spec}: {e}"))
}

fn position(names: &[&str], name: &str) -> usize {
    names
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("{name} missing from {names:?}"))
}

#[test]
fn kernel_is_fetched_verified_and_extracted() {
    let cache = cache();
    let deb = fetch_ok(KERNEL, &cache);
    assert_eq!(deb.version, "6.1.164-1");
    assert_eq!(deb.arch, "arm64");
    assert_eq!(sha256(&deb.path), deb.sha256);

    // A second fetch must use the cached file as it is, not download it again.
    let before = fs::metadata(&deb.path).unwrap();
    assert_eq!(fetch_ok(KERNEL, &cache), deb);
    let after = fs::metadata(&deb.path).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );

    let root = extract(&deb, &cache).unwrap();
    assert_eq!(extract(&deb, &cache).unwrap(), root);
    let k = Kernel::from_extracted(&root, &deb.name, &deb.version).unwrap();
    assert_eq!(k.release, "6.1.0-44-arm64");
    assert!(k.image.ends_with("boot/vmlinuz-6.1.0-44-arm64"));
    let image = fs::read(&k.image).unwrap();
    assert_eq!(&image[56..60], b"ARM\x64");
    assert_eq!(k.image_sha256, hex::encode(Sha256::digest(&image)));
    assert!(k.modules_dir.ends_with("lib/modules/6.1.0-44-arm64"));
    assert_eq!(k.config_value("CONFIG_PSI").as_deref(), Some("y"));
    assert_eq!(k.config_value("CONFIG_DM_VERITY").as_deref(), Some("m"));
    assert!(k
        .find_module("dm_verity")
        .unwrap()
        .ends_with("drivers/md/dm-verity.ko"));

    let order = k.load_order(&["erofs", "dm-verity", "zram"]).unwrap();
    let names: Vec<&str> = order.iter().map(|m| m.name.as_str()).collect();
    assert!(
        position(&names, "dm_bufio") < position(&names, "dm_verity"),
        "{names:?}"
    );
    assert!(
        position(&names, "dm_mod") < position(&names, "dm_bufio"),
        "{names:?}"
    );
    assert!(
        position(&names, "zsmalloc") < position(&names, "zram"),
        "{names:?}"
    );
    // libcrc32c only finds crc32c if crc32c_generic (its softdep, named by alias) is in.
    assert!(
        position(&names, "crc32c_generic") < position(&names, "libcrc32c"),
        "{names:?}"
    );
    assert!(
        position(&names, "libcrc32c") < position(&names, "erofs"),
        "{names:?}"
    );
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    for m in &order {
        assert!(m.path.starts_with(&k.modules_dir));
    }

    let plan = k.plan(&["mmc_block", "virtio-mmio"]).unwrap();
    assert_eq!(plan.builtin, ["mmc_block"]);
    assert_eq!(plan.modules.len(), 1);
    assert!(matches!(
        k.load_order(&["no_such_module"]),
        Err(Error::ModuleNotFound { .. })
    ));
}

#[test]
fn busybox_is_static_aarch64_and_runs() {
    let cache = cache();
    let deb = fetch_ok(BUSYBOX, &cache);
    assert_eq!(sha256(&deb.path), deb.sha256);
    let root = extract(&deb, &cache).unwrap();
    let bb = busybox_from_extracted(&root, &deb.version).unwrap();
    assert_eq!(bb.version, deb.version);
    let out = Command::new("qemu-aarch64-static")
        .arg(&bb.path)
        .args(["echo", "board-ok"])
        .output()
        .expect("qemu-aarch64-static (package qemu-user-static) is needed: run scripts/setup");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "board-ok");
}

#[test]
fn corrupted_cached_deb_is_never_accepted() {
    let good = fetch_ok(BUSYBOX, &cache());
    let tmp = tempfile::tempdir().unwrap();
    let debs = tmp.path().join("debs");
    fs::create_dir_all(&debs).unwrap();
    let planted = debs.join(good.path.file_name().unwrap());
    let mut bytes = fs::read(&good.path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&planted, &bytes).unwrap();
    let corrupted = sha256(&planted);
    assert_ne!(corrupted, good.sha256);

    let fetched = fetch_ok(BUSYBOX, tmp.path());
    assert_eq!(fetched.path, planted);
    assert_eq!(fetched.sha256, good.sha256);
    assert_eq!(
        sha256(&fetched.path),
        good.sha256,
        "the corrupted file was kept"
    );
    // Nothing else (temporary download directories) is left behind.
    assert_eq!(fs::read_dir(&debs).unwrap().count(), 1);
}

#[test]
fn unknown_package_points_at_setup() {
    let pkg = PackageRef::parse("hilt-no-such-package:arm64").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let err = fetch(&pkg, tmp.path()).unwrap_err();
    assert!(matches!(err, Error::PackageNotFound { .. }), "{err}");
    assert!(err.to_string().contains("scripts/setup"), "{err}");

    let gone = PackageRef::parse("busybox-static:arm64=0.0.1-1").unwrap();
    let err = fetch(&gone, tmp.path()).unwrap_err();
    assert!(matches!(err, Error::PackageNotFound { .. }), "{err}");
}
