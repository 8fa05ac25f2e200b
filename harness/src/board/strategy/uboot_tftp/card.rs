//! The SD/eMMC identification boot: before a run's first write to a card,
//! U-Boot's `mmc info` and the agent's report of Linux's cards are
//! compared (see [`mmc_identity`]), on one boot that writes nothing.

use std::time::Duration;

use anyhow::{bail, Context};
use hilt_transports::uboot::{BlockInterface, UBoot};

use super::{needed, RamdiskBoot, TftpFiles};
use crate::board::mmc_identity::{self, UbootCard};
use crate::board::storage::FlashJob;
use crate::board::{resources, uboot};
use crate::console::Console;
use crate::plan::UbootTftpCfg;

impl RamdiskBoot {
    /// Before the run's first write to an SD card or eMMC: one boot that
    /// writes nothing, where U-Boot's `mmc info` of the board file's
    /// `mmc_dev` and the agent's report of Linux's cards are compared (see
    /// [`mmc_identity`]). A mismatch fails this boot and every later one
    /// of the run, without powering the board again.
    pub(super) async fn check_card(
        &self,
        tftp: &UbootTftpCfg,
        files: &TftpFiles,
        limit: Duration,
    ) -> anyhow::Result<()> {
        if let Some(found) = self.card.get() {
            return found.clone().map_err(anyhow::Error::msg);
        }
        if FlashJob::pending(self.flash.as_ref()).is_none() {
            return Ok(());
        }
        let Some((dev, ..)) = mmc_identity::pairing(&self.board) else {
            return Ok(());
        };
        let (mut power, console) =
            resources::power_cycle_to_console(&self.board, &self.home).await?;
        let seen = self.identify(console, tftp, files, dev, limit).await;
        let _ = power.off().await;
        let (uboot, linux) = seen.context("the identification boot, before the first write")?;
        crate::durable::append_json_line(
            &self.tftp_record.with_file_name("mmc_identity.jsonl"),
            &serde_json::json!({
                "board": self.board.name,
                "mmc_dev": dev,
                "uboot": uboot,
                "linux": linux,
            }),
        )?;
        let found = mmc_identity::check(&self.board, &uboot, &linux).map_err(|e| format!("{e:#}"));
        let _ = self.card.set(found.clone());
        found.map_err(anyhow::Error::msg)
    }

    /// U-Boot's `mmc info` for `mmc dev`, then the kernel and initramfs
    /// booted without writing, until the agent's hello lists Linux's cards.
    async fn identify(
        &self,
        console: Box<dyn Console>,
        tftp: &UbootTftpCfg,
        files: &TftpFiles,
        dev: u32,
        limit: Duration,
    ) -> anyhow::Result<(UbootCard, Vec<hilt_protocol::MmcCard>)> {
        let mut u = UBoot::new(console, uboot::config(&self.board, limit)?);
        let boot = self.tftp_boot(tftp, files);
        let step = async {
            u.stop_autoboot().await?;
            uboot::point_at_server(&mut u, tftp).await?;
            uboot::load_addresses(&mut u, &self.board, needed(&boot)).await?;
            u.select_device(BlockInterface::Mmc, dev, limit).await?;
            let card = mmc_identity::parse_mmc_info(&u.run_checked("mmc info").await?)?;
            u.tftp_boot(&boot, limit).await?;
            anyhow::Ok(card)
        }
        .await;
        let card = match step {
            Ok(card) => card,
            Err(e) => {
                let said = String::from_utf8_lossy(u.transcript()).into_owned();
                let tail = &said[said.len().saturating_sub(600)..];
                bail!("{e:#}\n--- U-Boot said ---\n{tail}");
            }
        };
        let hello = agent_hello(u.into_console(), limit).await?;
        Ok((card, hello.mmc))
    }
}

/// Reads the console (printk with the agent's frames in it) until the
/// agent's hello; without one, the error ends with what the board said.
async fn agent_hello(
    mut console: Box<dyn Console>,
    limit: Duration,
) -> anyhow::Result<hilt_protocol::Hello> {
    use hilt_protocol::{AgentMsg, Decoded, FrameDecoder};
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + limit;
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    let mut heard: Vec<u8> = Vec::new();
    loop {
        let n = match tokio::time::timeout_at(deadline, console.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => format!("reading the console: {e}"),
                    Err(_) => format!(
                        "no hello from the agent within {} s of booti: hilt cannot see which cards Linux found",
                        limit.as_secs()
                    ),
                    Ok(_) => "the console closed before the agent's hello".to_string(),
                };
                let tail = String::from_utf8_lossy(&heard[heard.len().saturating_sub(1500)..]);
                bail!("{why}\n--- the board said ---\n{tail}");
            }
        };
        heard.extend_from_slice(&buf[..n]);
        if heard.len() > 64 << 10 {
            heard.drain(..heard.len() - (16 << 10));
        }
        dec.feed::<AgentMsg>(&buf[..n], &mut out);
        for d in out.drain(..) {
            if let Decoded::Record {
                msg: AgentMsg::Hello(h),
                ..
            } = d
            {
                return Ok(h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hilt_protocol::{encode_frame, AgentMsg, Hello, MmcCard};
    use tokio::io::AsyncWriteExt;

    /// The identification boot reads the agent's hello off a console that
    /// carries printk too, a frame split across reads included.
    #[tokio::test]
    async fn the_agent_hello_is_found_among_the_kernels_lines() {
        let hello = Hello {
            protocol: hilt_protocol::PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            kernel_release: "6.1.0-44-arm64".into(),
            kernel_version: "#1 SMP Debian 6.1.164-1".into(),
            machine: "aarch64".into(),
            uptime_ms: 7_500,
            mem_total_kb: 200_000,
            cpus: 2,
            facts: Default::default(),
            mmc: vec![MmcCard {
                disk: "mmcblk0".into(),
                kind: "SD".into(),
                manfid: 0xaa,
                oemid: 0x5859,
                name: "QEMU!".into(),
                sectors: 131_072,
            }],
        };
        let mut frame = Vec::new();
        encode_frame(0, &AgentMsg::Hello(hello.clone()), &mut frame);
        let (ours, mut board) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            board
                .write_all(b"[    7.45] ramoops: using 0x100000@0x4d000000\r\nhilt-init: starting agent\r\n")
                .await
                .unwrap();
            let (a, b) = frame.split_at(frame.len() / 2);
            board.write_all(a).await.unwrap();
            board.flush().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            board.write_all(b).await.unwrap();
            board
        });
        let console = Box::new(crate::console::TelnetConsole::new(ours));
        let got = super::agent_hello(console, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got, hello);
        drop(writer.await.unwrap());

        let (ours, board) = tokio::io::duplex(64);
        drop(board);
        let err = super::agent_hello(
            Box::new(crate::console::TelnetConsole::new(ours)),
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("closed before the agent's hello"),
            "{err}"
        );

        // Silence: the error says how long it waited and what came before.
        let (ours, mut board) = tokio::io::duplex(1 << 10);
        board
            .write_all(b"[    2.10] mmc0: new SD card\r\n")
            .await
            .unwrap();
        let err = super::agent_hello(
            Box::new(crate::console::TelnetConsole::new(ours)),
            std::time::Duration::from_millis(200),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no hello from the agent within 0 s of booti")
                && err.ends_with("--- the board said ---\n[    2.10] mmc0: new SD card\r\n"),
            "{err}"
        );
        drop(board);
    }

    /// A U-Boot double on a raw TCP console, as ser2net serves a UART:
    /// the prompt, `echo`, `printenv`, status echoes, `mmc info` of an SD
    /// card (print_mmcinfo's layout) and, on `booti`, printk lines and the
    /// agent's hello listing `linux`. Every command typed is kept.
    async fn fake_board(
        listener: tokio::net::TcpListener,
        linux: Vec<MmcCard>,
        typed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        use tokio::io::AsyncReadExt;
        loop {
            let Ok((mut io, _)) = listener.accept().await else {
                return;
            };
            io.write_all(b"U-Boot 2023.01\r\nHit any key to stop autoboot:  2 ")
                .await
                .unwrap();
            let (mut line, mut stopped, mut b) = (Vec::new(), false, [0u8; 1]);
            while io.read(&mut b).await.unwrap_or(0) == 1 {
                match b[0] {
                    _ if !stopped => {
                        stopped = true;
                        io.write_all(b"\x08\x08\x08 0 \r\n=> ").await.unwrap();
                    }
                    b'\n' => {
                        let cmd = String::from_utf8(std::mem::take(&mut line)).unwrap();
                        typed.lock().unwrap().push(cmd.clone());
                        io.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
                        if cmd.starts_with("booti ") {
                            let mut out = b"\r\nStarting kernel ...\r\n\r\n[    2.10] mmc0: new SD card at address 4567\r\n".to_vec();
                            let hello = Hello {
                                protocol: hilt_protocol::PROTOCOL_VERSION,
                                agent_version: "0.1.0".into(),
                                kernel_release: "6.1.0-44-arm64".into(),
                                kernel_version: "#1".into(),
                                machine: "aarch64".into(),
                                uptime_ms: 7_500,
                                mem_total_kb: 200_000,
                                cpus: 2,
                                facts: Default::default(),
                                mmc: linux.clone(),
                            };
                            encode_frame(0, &AgentMsg::Hello(hello), &mut out);
                            io.write_all(&out).await.unwrap();
                            continue;
                        }
                        let (body, status) = match cmd.split_once("; echo hilt-status=$?") {
                            Some((body, _)) => (body.to_string(), true),
                            None => (cmd.clone(), false),
                        };
                        let mut out = if let Some(v) = body.strip_prefix("printenv ") {
                            let value = match v {
                                "filesize" => "1388",
                                "kernel_addr_r" => "0x40400000",
                                "ramdisk_addr_r" => "0x44000000",
                                _ => "",
                            };
                            format!("{v}={value}\r\n")
                        } else if let Some(rest) = body.strip_prefix("echo ") {
                            format!("{}\r\n", rest.replace("''", ""))
                        } else if body == "mmc info" {
                            crate::board::mmc_identity::tests_sd_info().replace('\n', "\r\n")
                        } else {
                            String::new()
                        };
                        if status {
                            out.push_str("hilt-status=0\r\n");
                        }
                        io.write_all(format!("{out}=> ").as_bytes()).await.unwrap();
                    }
                    3 => line.clear(),
                    c => line.push(c),
                }
            }
        }
    }

    fn card(disk: &str, kind: &str, manfid: u32, name: &str, sectors: u64) -> MmcCard {
        MmcCard {
            disk: disk.into(),
            kind: kind.into(),
            manfid,
            oemid: if kind == "SD" { 0x5859 } else { 0x100 },
            name: name.into(),
            sectors,
        }
    }

    /// The identification boot against a U-Boot double: U-Boot's mmc 0 is
    /// the SD card, the board file pairs it with mmcblk0, which Linux says
    /// is an eMMC. The boot fails naming both, nothing is written, and the
    /// next boot fails at once without touching the board; with the SD card
    /// at mmcblk0 the same boot passes and both sides are recorded.
    #[tokio::test]
    async fn the_identification_boot_refuses_a_pair_of_different_cards() {
        let dir = tempfile::tempdir().unwrap();
        let run = |linux: Vec<MmcCard>| {
            let dir = dir.path().to_path_buf();
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                let typed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                let fake = tokio::spawn(fake_board(listener, linux, typed.clone()));
                let board: crate::plan::BoardFile = serde_yaml_ng::from_str(&format!(
                    "name: fake-bench\narch: arm64\nconsole:\n  ser2net: {{host: 127.0.0.1, port: {port}, protocol: raw}}\n\
                     kernel_console: ttyAMA0\npower:\n  command: {{on: [\"true\"], off: [\"true\"]}}\nagent: console\n\
                     uboot: {{prompt: \"=> \", interrupt: \" \", autoboot_text: \"Hit any key to stop autoboot\"}}\n\
                     boot:\n  uboot_tftp: {{root: {}}}\nflash:\n  uboot_mmc: {{mmc_dev: 0, start_block: 2048}}\n\
                     partitions: {{data: /dev/mmcblk0p3}}\nstorage: {{image: data}}\n",
                    dir.display()
                ))
                .unwrap();
                let boot = super::RamdiskBoot {
                    home: dir.clone(),
                    kernel: dir.join("Image"),
                    initrd: dir.join("initrd"),
                    append: super::super::cmdline(&board, std::time::Duration::ZERO),
                    flash: Some(crate::board::storage::FlashJob::new(
                        crate::artifacts::media::PartitionImage {
                            path: dir.join("image.img"),
                            verity_root_hash: None,
                        },
                        dir.join("flash.jsonl"),
                    )),
                    tftp_record: dir.join("tftp.jsonl"),
                    warm_record: dir.join("warm_reset.jsonl"),
                    left_on: Default::default(),
                    card: Default::default(),
                    reset_after: std::time::Duration::ZERO,
                    board,
                };
                let files = super::TftpFiles {
                    kernel: "hilt-fake-bench/Image".into(),
                    initrd: "hilt-fake-bench/initrd".into(),
                    dtb: None,
                    root: dir.clone(),
                };
                let tftp = super::super::tftp_cfg(&boot.board).unwrap().clone();
                let limit = std::time::Duration::from_secs(20);
                let first = boot.check_card(&tftp, &files, limit).await;
                let commands = typed.lock().unwrap().clone();
                let second = boot.check_card(&tftp, &files, limit).await;
                let again = typed.lock().unwrap().len() - commands.len();
                fake.abort();
                (first, second, commands, again)
            }
        };

        let emmc = card("mmcblk0", "MMC", 0x15, "8GME4R", 15_269_888);
        let sd = |disk: &str| card(disk, "SD", 0xaa, "QEMU!", 524_288);
        let (first, second, commands, again) = run(vec![emmc.clone(), sd("mmcblk1")]).await;
        let err = format!("{:#}", first.unwrap_err());
        for want in [
            "pairs U-Boot's mmc 0 (flash.uboot_mmc.mmc_dev: 0) with Linux's mmcblk0 (partitions.data: /dev/mmcblk0p3), and they are different cards",
            "U-Boot's mmc 0: SD card, manufacturer 0xaa, OEM 0x5859, name \"QEMU!\", 256 MiB",
            "Linux's mmcblk0: MMC card",
            "Linux's mmcblk1 is U-Boot's mmc 0",
        ] {
            assert!(err.contains(want), "{want:?} not in {err}");
        }
        assert!(
            commands.iter().any(|c| c.starts_with("mmc info")),
            "{commands:?}"
        );
        assert!(
            commands.iter().any(|c| c.starts_with("booti ")),
            "{commands:?}"
        );
        assert!(
            !commands.iter().any(|c| c.contains("write")),
            "nothing is written: {commands:?}"
        );
        assert_eq!(format!("{:#}", second.unwrap_err()), err);
        assert_eq!(again, 0, "the second boot did not touch the board");

        let emmc = card("mmcblk1", "MMC", 0x15, "8GME4R", 15_269_888);
        let (first, _, _, _) = run(vec![sd("mmcblk0"), emmc]).await;
        first.unwrap();
        let recorded = std::fs::read_to_string(dir.path().join("mmc_identity.jsonl")).unwrap();
        assert_eq!(recorded.lines().count(), 2, "{recorded}");
        assert!(recorded.contains("\"name\":\"QEMU!\""), "{recorded}");
    }
}
