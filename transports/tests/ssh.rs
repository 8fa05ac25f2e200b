//! SSH against a real OpenSSH sshd on loopback, started per test with its
//! own host key, authorized_keys and configuration.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, require, wait_port, Peer};
use hilt_transports::ssh::{ExecChunk, Secret, SshConfig, SshError, SshSession};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);

struct Sshd {
    _peer: Peer,
    dir: tempfile::TempDir,
    port: u16,
}

fn keygen(path: &Path, kind: &str, passphrase: &str) {
    let out = Command::new(require("ssh-keygen", "openssh-client"))
        .args(["-q", "-t", kind, "-N", passphrase, "-C", "hilt-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// sshd with a fresh host key, and client keys id_ed25519 and id_locked
/// (ed25519 with a passphrase) authorized; id_stranger is not.
fn sshd() -> Sshd {
    let bin = require("sshd", "openssh-server");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("host_ed25519"), "ed25519", "");
    keygen(&d.join("id_ed25519"), "ed25519", "");
    keygen(&d.join("id_locked"), "ed25519", "correct horse");
    keygen(&d.join("id_stranger"), "ed25519", "");
    let mut auth = String::new();
    for k in ["id_ed25519", "id_locked"] {
        auth += &std::fs::read_to_string(d.join(format!("{k}.pub"))).unwrap();
    }
    std::fs::write(d.join("authorized_keys"), auth).unwrap();
    let port = free_port();
    let cfg = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n\
         LogLevel ERROR\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), cfg).unwrap();
    // sshd refuses to start without its privilege separation directory,
    // which only the openssh-server service creates.
    let _ = std::fs::create_dir_all("/run/sshd");
    let mut peer = Peer::spawn(
        "sshd",
        Command::new(bin)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config")),
    );
    wait_port(port, T);
    peer.assert_alive();
    Sshd {
        _peer: peer,
        dir,
        port,
    }
}

impl Sshd {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self, key: &str) -> SshConfig {
        SshConfig::new(
            "127.0.0.1",
            self.port,
            &user(),
            self.path(key),
            self.path("known_hosts"),
        )
    }

    /// The line ssh-keyscan would add, from the host key itself.
    fn trust(&self) {
        let pubkey = std::fs::read_to_string(self.path("host_ed25519.pub")).unwrap();
        let mut it = pubkey.split_whitespace();
        let line = format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            it.next().unwrap(),
            it.next().unwrap()
        );
        std::fs::write(self.path("known_hosts"), line).unwrap();
    }
}

async fn run(s: &SshSession, cmd: &str) -> (i32, Vec<(Instant, ExecChunk)>) {
    let (tx, mut rx) = mpsc::channel(64);
    let collect = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(c) = rx.recv().await {
            v.push((Instant::now(), c));
        }
        v
    });
    let status = s.exec(cmd, T, tx).await.unwrap();
    (status, collect.await.unwrap())
}

fn joined(chunks: &[(Instant, ExecChunk)], stderr: bool) -> String {
    let mut s = Vec::new();
    for (_, c) in chunks {
        match (c, stderr) {
            (ExecChunk::Stdout(b), false) | (ExecChunk::Stderr(b), true) => s.extend(b),
            _ => {}
        }
    }
    String::from_utf8(s).unwrap()
}

#[tokio::test]
async fn unknown_host_key_is_an_error_that_says_how_to_add_it() {
    let d = sshd();
    let err = SshSession::connect(&d.config("id_ed25519"))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("ssh-keyscan -p {} 127.0.0.1 >>", d.port)),
        "{msg}"
    );
    assert!(msg.contains("SHA256:"), "{msg}");
    assert!(
        !d.path("known_hosts").exists(),
        "known_hosts must not be written without accept_new"
    );
}

#[tokio::test]
async fn accept_new_adds_the_key_once_and_then_it_is_checked() {
    let d = sshd();
    let mut cfg = d.config("id_ed25519");
    cfg.accept_new = true;
    SshSession::connect(&cfg).await.unwrap();
    let kh = std::fs::read_to_string(d.path("known_hosts")).unwrap();
    assert!(
        kh.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", d.port)),
        "{kh}"
    );
    // OpenSSH's own tools agree the entry is for this host.
    let out = Command::new("ssh-keygen")
        .args(["-F", &format!("[127.0.0.1]:{}", d.port), "-f"])
        .arg(d.path("known_hosts"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -F did not find the added entry"
    );
    cfg.accept_new = false;
    SshSession::connect(&cfg).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(d.path("known_hosts")).unwrap(),
        kh,
        "nothing added the second time"
    );
}

#[tokio::test]
async fn changed_host_key_is_refused_even_with_accept_new() {
    let d = sshd();
    keygen(&d.path("other_host"), "ed25519", "");
    let other = std::fs::read_to_string(d.path("other_host.pub")).unwrap();
    let mut it = other.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        d.port,
        it.next().unwrap(),
        it.next().unwrap()
    );
    std::fs::write(d.path("known_hosts"), &line).unwrap();
    let mut cfg = d.config("id_ed25519");
    cfg.accept_new = true;
    let err = SshSession::connect(&cfg).await.unwrap_err();
    assert!(matches!(err, SshError::ChangedHostKey { .. }), "{err}");
    assert!(err.to_string().contains("ssh-keygen -R"), "{err}");
    assert_eq!(
        std::fs::read_to_string(d.path("known_hosts")).unwrap(),
        line
    );
}

/// Issue 20, finding 8: libssh2 skips `@revoked` lines, and a host key
/// both listed and revoked was accepted. Revoked for another host pattern
/// too, and with accept_new, which must not add it either.
#[tokio::test]
async fn a_revoked_host_key_is_refused() {
    let d = sshd();
    d.trust();
    let listed = std::fs::read_to_string(d.path("known_hosts")).unwrap();
    let pubkey = std::fs::read_to_string(d.path("host_ed25519.pub")).unwrap();
    let key: Vec<&str> = pubkey.split_whitespace().take(2).collect();
    for (hosts, with_listed) in [("*", true), ("[127.0.0.1]:*,other", true), ("*", false)] {
        let content = format!(
            "# comment\n{}@revoked {hosts} {} {} old key\n",
            if with_listed { listed.as_str() } else { "" },
            key[0],
            key[1]
        );
        std::fs::write(d.path("known_hosts"), &content).unwrap();
        let mut cfg = d.config("id_ed25519");
        cfg.accept_new = !with_listed;
        let err = SshSession::connect(&cfg).await.unwrap_err();
        assert!(
            matches!(err, SshError::RevokedHostKey { .. }),
            "{hosts}: {err}"
        );
        assert!(err.to_string().contains("@revoked"), "{err}");
        assert_eq!(
            std::fs::read_to_string(d.path("known_hosts")).unwrap(),
            content
        );
    }
    // Another key's revocation does not refuse this one.
    keygen(&d.path("other_host"), "ed25519", "");
    let other = std::fs::read_to_string(d.path("other_host.pub")).unwrap();
    std::fs::write(d.path("known_hosts"), format!("{listed}@revoked * {other}")).unwrap();
    SshSession::connect(&d.config("id_ed25519")).await.unwrap();
}

#[tokio::test]
async fn ed25519_exec_streams_output_and_exit_status() {
    let d = sshd();
    d.trust();
    let s = SshSession::connect(&d.config("id_ed25519")).await.unwrap();
    let t0 = Instant::now();
    let (status, chunks) = run(
        &s,
        "printf out1; printf err1 >&2; sleep 0.5; printf out2; exit 7",
    )
    .await;
    let total = t0.elapsed();
    assert_eq!(status, 7);
    assert_eq!(joined(&chunks, false), "out1out2");
    assert_eq!(joined(&chunks, true), "err1");
    // Streamed: the first chunk arrived before the command's sleep ended.
    let first = chunks.first().unwrap().0.duration_since(t0);
    assert!(
        first + Duration::from_millis(300) < total,
        "first chunk at {first:?} of {total:?}"
    );
    // The session is reusable.
    let (status, chunks) = run(&s, "true").await;
    assert_eq!((status, chunks.len()), (0, 0));
}

#[tokio::test]
async fn rsa_key_and_argv_quoting() {
    let d = sshd();
    d.trust();
    // RSA keys take a while to make: only this test has one.
    keygen(&d.path("id_rsa"), "rsa", "");
    let mut auth = std::fs::read_to_string(d.path("authorized_keys")).unwrap();
    auth += &std::fs::read_to_string(d.path("id_rsa.pub")).unwrap();
    std::fs::write(d.path("authorized_keys"), auth).unwrap();
    let s = SshSession::connect(&d.config("id_rsa")).await.unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let status = s
        .exec_argv(
            &["printf", "%s|", "a b", "it's", "$HOME", "$(echo no)"],
            T,
            tx,
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(ExecChunk::Stdout(b)) = rx.recv().await {
        out.extend(b);
    }
    assert_eq!(status, 0);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "a b|it's|$HOME|$(echo no)|"
    );
}

#[tokio::test]
async fn passphrase_protected_key() {
    let d = sshd();
    d.trust();
    let mut cfg = d.config("id_locked");
    let err = SshSession::connect(&cfg).await.unwrap_err();
    assert!(matches!(err, SshError::Auth(_)), "{err}");
    cfg.passphrase = Some(Secret::new("correct horse"));
    assert!(!format!("{cfg:?}").contains("correct horse"));
    let s = SshSession::connect(&cfg).await.unwrap();
    let (status, out, _) = s.output("echo ok", T).await.unwrap();
    assert_eq!((status, out.as_slice()), (0, &b"ok\n"[..]));
}

#[tokio::test]
async fn unauthorized_key_says_where_it_should_be() {
    let d = sshd();
    d.trust();
    let err = SshSession::connect(&d.config("id_stranger"))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Auth(_)), "{err}");
    assert!(err.to_string().contains("authorized_keys"), "{err}");
}

#[tokio::test]
async fn push_writes_and_reads_back_the_same_bytes() {
    let d = sshd();
    d.trust();
    let s = SshSession::connect(&d.config("id_ed25519")).await.unwrap();
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let local = d.path("payload.bin");
    std::fs::write(&local, &data).unwrap();
    let remote = d.path("pushed.bin");
    let sum = s
        .push(&local, remote.to_str().unwrap(), 0o640)
        .await
        .unwrap();
    use sha2::Digest;
    assert_eq!(sum, hex::encode(sha2::Sha256::digest(&data)));
    // The board is this machine: look at the file itself.
    assert_eq!(std::fs::read(&remote).unwrap(), data);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&remote).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let err = s
        .push_bytes(vec![1], "/nonexistent-dir/x", 0o644)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("writing /nonexistent-dir/x failed"),
        "{err}"
    );
    // More than the channel's window: the shell gives up before reading
    // it, and what it said still comes back instead of a broken write.
    let err = s
        .push_bytes(vec![7; 8 << 20], "/nonexistent-dir/y", 0o644)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("writing /nonexistent-dir/y failed")
            && err.to_string().contains("nonexistent"),
        "{err}"
    );
    // The session is still good for the next command.
    assert_eq!(run(&s, "echo after").await.0, 0);
}

#[tokio::test]
async fn exec_timeout_is_an_error() {
    let d = sshd();
    d.trust();
    let s = SshSession::connect(&d.config("id_ed25519")).await.unwrap();
    let (tx, _rx) = mpsc::channel(16);
    let err = s
        .exec("sleep 5", Duration::from_millis(500), tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still running"), "{err}");
}

/// The dd strategy over real sshd, onto a real block device (a loop device
/// over a file) when this host allows one, else onto a file: the image
/// lands at the start, the rest of the "partition" is untouched, and the
/// read back digest is the image's. A device that cannot be written fails
/// with the board's own error, never a false success.
#[tokio::test]
async fn dd_flash_over_ssh_writes_reads_back_and_records_digests() {
    use hilt_transports::flash::{DdFlasher, FlashImage, Flasher};
    let d = sshd();
    d.trust();
    let s = SshSession::connect(&d.config("id_ed25519")).await.unwrap();
    let part = d.path("partition.img");
    std::fs::write(&part, vec![0x5au8; 1 << 20]).unwrap();
    let loop_dev = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&part)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    let device = loop_dev
        .clone()
        .unwrap_or_else(|| part.display().to_string());
    let image = FlashImage::new(
        "erofs.img",
        (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect(),
        Some("c0ffee".repeat(10) + "abcd"),
    );
    let mut f = DdFlasher {
        shell: s,
        device: device.clone(),
        staging: d.path("stage 1.img").display().to_string(),
        limit: T,
    };
    let rec = f.flash(&image).await;
    if let Some(dev) = &loop_dev {
        let _ = Command::new("losetup").args(["-d", dev]).status();
    }
    let rec = rec.unwrap();
    assert_eq!(rec.method, "ssh_dd");
    assert_eq!(rec.target, device);
    assert_eq!(rec.sha256, image.sha256);
    assert_eq!(rec.readback, Some(format!("sha256:{}", image.sha256)));
    assert_eq!(rec.verity_root_hash, image.verity_root_hash);
    let after = std::fs::read(&part).unwrap();
    assert_eq!(after.len(), 1 << 20, "the partition keeps its size");
    assert_eq!(&after[..300_000], &image.data[..]);
    assert!(after[300_000..].iter().all(|&b| b == 0x5a));
    assert!(
        !d.path("stage 1.img").exists(),
        "the staged copy is removed"
    );

    let mut bad = DdFlasher {
        shell: SshSession::connect(&d.config("id_ed25519")).await.unwrap(),
        device: "/nonexistent/dir/mmcblk9p1".into(),
        staging: d.path("stage2.img").display().to_string(),
        limit: T,
    };
    let err = bad.flash(&image).await.unwrap_err().to_string();
    assert!(err.contains("exited with"), "{err}");
}

#[tokio::test]
async fn deploys_kernel_initrd_and_dtb_into_a_boot_dir_with_their_digests() {
    use hilt_transports::deploy::{ssh_boot_files, BootFiles};
    use sha2::{Digest, Sha256};
    let d = sshd();
    d.trust();
    let s = SshSession::connect(&d.config("id_ed25519")).await.unwrap();
    let boot = d.path("boot");
    std::fs::create_dir(&boot).unwrap();
    let kernel: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let initrd = vec![7u8; 12_345];
    let dtb = vec![0xd0u8; 999];
    let rec = ssh_boot_files(
        &s,
        &boot.display().to_string(),
        &BootFiles {
            release: "6.1.192-hilt",
            kernel: &kernel,
            initrd: Some(&initrd),
            dtb: Some(("board.dtb", &dtb)),
        },
    )
    .await
    .unwrap();
    assert_eq!(rec.method, format!("ssh:{}", boot.display()));
    let names: Vec<&str> = rec
        .files
        .iter()
        .map(|f| f.name.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "vmlinuz-6.1.192-hilt",
            "initrd.img-6.1.192-hilt",
            "board.dtb"
        ]
    );
    for (f, data) in rec.files.iter().zip([&kernel, &initrd, &dtb]) {
        let on_disk = std::fs::read(&f.name).unwrap();
        assert_eq!(&on_disk, data);
        assert_eq!(f.sha256, hex::encode(Sha256::digest(data)));
        assert_eq!(f.bytes, data.len() as u64);
    }
    // Nothing half-written is left behind.
    let left: Vec<_> = std::fs::read_dir(&boot)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".hilt-new"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A boot dir that does not exist fails with the path in the message.
    let err = ssh_boot_files(
        &s,
        "/nonexistent-hilt-boot",
        &BootFiles {
            release: "r",
            kernel: &kernel,
            initrd: None,
            dtb: None,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent-hilt-boot"), "{err}");
}

/// The agent's channel on a board that runs its own OS: the command's
/// stdin and stdout as one stream, both ways at once, and stderr apart.
#[tokio::test]
async fn a_command_is_a_two_way_stream_with_stderr_apart() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = sshd();
    d.trust();
    let (err_tx, mut err_rx) = mpsc::channel(16);
    // A line goes back doubled before the next is sent: each direction
    // must flow while the other is open.
    let script =
        "echo started >&2; while read -r l; do echo \"$l$l\"; done; echo stdin-closed >&2; exit 7";
    let (stream, ended) =
        hilt_transports::ssh::open_stream(&d.config("id_ed25519"), script, err_tx)
            .await
            .unwrap();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut got = Vec::new();
    for word in ["ab", "cd", "ef"] {
        wr.write_all(format!("{word}\n").as_bytes()).await.unwrap();
        let want = format!("{word}{word}\n");
        let mut line = vec![0u8; want.len()];
        tokio::time::timeout(T, rd.read_exact(&mut line))
            .await
            .expect("the echo came back")
            .unwrap();
        got.push(String::from_utf8(line).unwrap());
    }
    assert_eq!(got, ["abab\n", "cdcd\n", "efef\n"]);
    // A megabyte each way: more than either side's window.
    let big: Vec<u8> = (0..1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let mut payload = big.clone();
    payload.push(b'\n');
    let writer = tokio::spawn(async move {
        wr.write_all(&payload).await.unwrap();
        // Dropping the writer half closes the command's stdin.
        wr.shutdown().await.unwrap();
        drop(wr);
    });
    let mut rest = Vec::new();
    tokio::time::timeout(T * 3, rd.read_to_end(&mut rest))
        .await
        .expect("stdout ended")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(rest.len(), big.len() * 2 + 1);
    assert!(rest[..big.len()] == big[..] && rest[big.len()..2 * big.len()] == big[..]);
    let status = tokio::time::timeout(T, ended).await.unwrap().unwrap();
    assert_eq!(status.unwrap(), 7);
    let mut err = Vec::new();
    while let Ok(b) = err_rx.try_recv() {
        err.extend(b);
    }
    assert_eq!(String::from_utf8(err).unwrap(), "started\nstdin-closed\n");
}
