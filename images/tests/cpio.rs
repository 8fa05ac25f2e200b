//! The newc writer against GNU cpio, the reference reader, plus the
//! kernel's rule for concatenated archives.

mod common;

use std::fs::{self, File};
use std::io::BufWriter;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{run_with_stdin, Scratch};
use hilt_images::cpio::{CpioWriter, FINISH_ALIGN};

/// 100_003 bytes: not a multiple of 4, to exercise data padding.
fn big_payload() -> Vec<u8> {
    (0..100_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn write_base(path: &Path, payload_src: &Path) {
    let mut w = CpioWriter::new(BufWriter::new(File::create(path).unwrap()));
    w.dir("bin", 0o755).unwrap();
    w.dir("/dev", 0o755).unwrap();
    w.dir("etc", 0o700).unwrap();
    w.file("init", 0o755, b"#!/bin/sh\nexec /bin/agent\n")
        .unwrap();
    w.file("etc/motd", 0o100644, b"").unwrap();
    w.file("bin/su", 0o4755, b"x").unwrap();
    w.file_from_path("bin/agent", 0o755, payload_src).unwrap();
    w.symlink("bin/sh", "busybox").unwrap();
    w.char_dev("dev/console", 0o600, 5, 1).unwrap();
    w.char_dev("dev/null", 0o666, 1, 3).unwrap();
    w.finish().unwrap();
}

/// `cpio -itvn` lines as (mode string, nlink, uid, gid, size-or-device, name).
fn listing(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // mode nlink uid gid size month day year name... | for devices
            // the size column is "maj," "min".
            let (size, rest) = if f[0].starts_with('c') {
                (format!("{}{}", f[4], f[5]), &f[9..])
            } else {
                (f[4].to_owned(), &f[8..])
            };
            format!(
                "{} {} {} {} {} {}",
                f[0],
                f[1],
                f[2],
                f[3],
                size,
                rest.join(" ")
            )
        })
        .collect()
}

#[test]
fn gnu_cpio_lists_and_extracts_what_was_written() {
    let dir = Scratch::new("cpio-gnu");
    let payload = dir.path("payload");
    fs::write(&payload, big_payload()).unwrap();
    let archive = dir.path("base.cpio");
    write_base(&archive, &payload);
    assert_eq!(fs::metadata(&archive).unwrap().len() % FINISH_ALIGN, 0);

    let out = run_with_stdin("cpio", "cpio", &["-itvn"], &archive, &dir.0);
    assert_eq!(
        listing(&out.stdout),
        [
            "drwxr-xr-x 2 0 0 0 bin",
            "drwxr-xr-x 2 0 0 0 dev",
            "drwx------ 2 0 0 0 etc",
            "-rwxr-xr-x 1 0 0 26 init",
            "-rw-r--r-- 1 0 0 0 etc/motd",
            "-rwsr-xr-x 1 0 0 1 bin/su",
            "-rwxr-xr-x 1 0 0 100003 bin/agent",
            "lrwxrwxrwx 1 0 0 7 bin/sh -> busybox",
            "crw------- 1 0 0 5,1 dev/console",
            "crw-rw-rw- 1 0 0 1,3 dev/null",
        ]
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().all(|l| l.contains("1970")),
        "mtime must be 0:\n{text}"
    );

    let root = dir.path("root");
    fs::create_dir(&root).unwrap();
    run_with_stdin(
        "cpio",
        "cpio",
        &["-idm", "--no-absolute-filenames", "--quiet"],
        &archive,
        &root,
    );
    assert_eq!(fs::read(root.join("bin/agent")).unwrap(), big_payload());
    assert_eq!(
        fs::read(root.join("init")).unwrap(),
        b"#!/bin/sh\nexec /bin/agent\n"
    );
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let console = fs::symlink_metadata(root.join("dev/console")).unwrap();
    let rdev = console.rdev();
    assert_eq!(((rdev >> 8) & 0xfff, rdev & 0xff), (5, 1));
    assert_eq!(console.permissions().mode() & 0o7777, 0o600);
    assert_eq!(fs::metadata(root.join("init")).unwrap().mtime(), 0);
}

/// `(cpio -it; cpio -it) < a+b` reads both halves only if the first archive
/// ends on a 512-byte block boundary; the kernel is laxer (4 bytes) but the
/// same file must satisfy both.
#[test]
fn concatenated_archives_read_back_both_halves() {
    let dir = Scratch::new("cpio-concat");
    let payload = dir.path("payload");
    fs::write(&payload, big_payload()).unwrap();
    write_base(&dir.path("base.cpio"), &payload);

    let mut extra = CpioWriter::new(Vec::new());
    extra.dir("run", 0o755).unwrap();
    extra
        .file("run/config.json", 0o644, b"{\"seed\":1}")
        .unwrap();
    let extra = extra.finish().unwrap();

    let mut both = fs::read(dir.path("base.cpio")).unwrap();
    both.extend_from_slice(&extra);
    fs::write(dir.path("both.cpio"), &both).unwrap();

    let out = run_with_stdin(
        "sh",
        "dash",
        &["-c", "cpio -it --quiet && echo --- && cpio -it --quiet"],
        &dir.path("both.cpio"),
        &dir.0,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (first, second) = text.split_once("---\n").unwrap();
    assert_eq!(first.lines().count(), 10, "{text}");
    assert_eq!(
        second.lines().collect::<Vec<_>>(),
        ["run", "run/config.json"],
        "{text}"
    );

    assert_eq!(kernel_style_names(&both).len(), 12);
}

/// The entry walk of init/initramfs.c: headers start on 4-byte boundaries,
/// zero bytes between archives are skipped, TRAILER!!! ends one archive.
fn kernel_style_names(mut buf: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut pos = 0usize;
    while !buf.is_empty() {
        if buf[0] == 0 {
            buf = &buf[1..];
            pos += 1;
            continue;
        }
        assert_eq!(pos % 4, 0, "header at unaligned offset {pos}");
        assert_eq!(&buf[..6], b"070701", "bad magic at {pos}");
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&buf[6 + 8 * i..14 + 8 * i]).unwrap(),
                16,
            )
            .unwrap() as usize
        };
        let (size, namesize) = (field(6), field(11));
        let name = std::str::from_utf8(&buf[110..110 + namesize - 1])
            .unwrap()
            .to_owned();
        let data_at = (110 + namesize).next_multiple_of(4);
        let next = (data_at + size).next_multiple_of(4);
        if name != "TRAILER!!!" {
            names.push(name);
        }
        buf = &buf[next..];
        pos += next;
    }
    names
}

#[test]
fn output_is_deterministic() {
    let dir = Scratch::new("cpio-det");
    let payload = dir.path("payload");
    fs::write(&payload, big_payload()).unwrap();
    write_base(&dir.path("a"), &payload);
    write_base(&dir.path("b"), &payload);
    assert_eq!(
        fs::read(dir.path("a")).unwrap(),
        fs::read(dir.path("b")).unwrap()
    );
}
