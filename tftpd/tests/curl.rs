//! The server against a real TFTP client: curl's (Debian's curl is built
//! with tftp://), with and without option negotiation, across the block
//! number's rollover, and refusing names outside its root.

use std::path::Path;
use std::process::{Command, Output};

use hilt_tftpd::Server;

fn curl(server: &Server, name: &str, out: &Path, extra: &[&str]) -> Output {
    Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--path-as-is",
            "--max-time",
            "120",
        ])
        .args(extra)
        .arg("--output")
        .arg(out)
        .arg(format!("tftp://{}/{name}", server.local_addr()))
        .output()
        .expect("curl (apt-get install curl)")
}

/// Bytes that differ from block to block, so a block sent twice or out of
/// order changes the file.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn served() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("root/hilt-board")).unwrap();
    let server = Server::start("127.0.0.1:0".parse().unwrap(), &dir.path().join("root")).unwrap();
    (dir, server)
}

#[test]
fn a_file_over_32_mib_survives_the_block_number_rollover() {
    let (dir, server) = served();
    // 65536 blocks of 512 bytes and a bit: block numbers pass 65535, and
    // the last block is short.
    let want = pattern(32 * 1024 * 1024 + 5000);
    std::fs::write(dir.path().join("root/hilt-board/initrd"), &want).unwrap();
    let out = dir.path().join("got");
    let o = curl(
        &server,
        "hilt-board/initrd",
        &out,
        &["--tftp-blksize", "512"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the bytes differ");
    let t = server.transfers();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].outcome, Ok(want.len() as u64));
    assert_eq!(t[0].file, "hilt-board/initrd");
}

#[test]
fn with_negotiated_blocks_and_without_options() {
    let (dir, server) = served();
    // A whole number of blocks: the transfer ends with an empty one.
    let want = pattern(1468 * 100);
    std::fs::write(dir.path().join("root/Image"), &want).unwrap();
    for (i, extra) in [
        &["--tftp-blksize", "1468"][..],
        &["--tftp-blksize", "8192"],
        &["--tftp-no-options"],
    ]
    .iter()
    .enumerate()
    {
        let out = dir.path().join(format!("got{i}"));
        let o = curl(&server, "Image", &out, extra);
        assert!(
            o.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(std::fs::read(&out).unwrap() == want, "{extra:?}");
    }
    assert!(server
        .transfers()
        .iter()
        .all(|t| t.outcome == Ok(want.len() as u64)));
}

#[test]
fn names_outside_the_root_are_refused() {
    let (dir, server) = served();
    std::fs::write(dir.path().join("secret"), b"not for boards").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("root/link")).unwrap();
    for name in [
        "../secret",
        "hilt-board/../../secret",
        "/etc/passwd",
        "link",
    ] {
        let out = dir.path().join("got");
        let _ = std::fs::remove_file(&out);
        let o = curl(&server, name, &out, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name} was served");
        // curl's CURLE_TFTP_PERM: the server's access violation.
        assert_eq!(o.status.code(), Some(69), "{name}: {err}");
        assert!(
            std::fs::read(&out).unwrap_or_default().is_empty(),
            "{name}: bytes arrived"
        );
    }
    let o = curl(&server, "nonesuch", &dir.path().join("got"), &[]);
    // CURLE_TFTP_NOTFOUND.
    assert_eq!(o.status.code(), Some(68));
    let refused: Vec<_> = server
        .transfers()
        .into_iter()
        .filter(|t| t.outcome.is_err())
        .collect();
    assert_eq!(refused.len(), 5, "{refused:?}");
    let why: Vec<String> = refused
        .iter()
        .map(|t| t.outcome.clone().unwrap_err())
        .collect();
    for (i, w) in [
        "`..` is refused",
        "`..` is refused",
        "absolute names are refused",
        "leads outside the TFTP root",
        "no such file",
    ]
    .iter()
    .enumerate()
    {
        assert!(why[i].contains(w), "{why:?}");
    }
}

#[test]
fn dropping_the_server_frees_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start("127.0.0.1:0".parse().unwrap(), dir.path()).unwrap();
    let addr = server.local_addr();
    drop(server);
    let again = Server::start(addr, dir.path()).unwrap();
    assert_eq!(again.local_addr(), addr);
    let err = match Server::start(addr, dir.path()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a second server on one port"),
    };
    assert!(
        err.contains(&format!("binding UDP {addr} for TFTP")),
        "{err}"
    );
}
