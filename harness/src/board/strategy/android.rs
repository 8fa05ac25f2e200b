//! An Android device, driven the way its owners drive it: power and UART
//! from the bench, fastboot from its bootloader, the agent over adb.
//!
//! Each boot: power off, open the console, power on into the bootloader
//! (the board file's `bootloader_on`, e.g. a relay on the update key, or
//! Android's own `adb reboot bootloader`), wait
//! for fastboot, flash the device's own boot image with only the kernel
//! replaced by the variant's, on the run's first boot flash the plan's
//! image to the scratch partition, `fastboot reboot`, wait for adb and
//! Android's boot to complete, check the variant's kernel runs, push and
//! start the agent.
//!
//! Before the run's first flash, Android is booted once as it is, and the
//! scratch partition is refused if anything has it mounted.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hilt_transports::console::Replayed;
use hilt_transports::fastboot::{Fastboot, FastbootIo};
use hilt_transports::flash::{FastbootFlasher, FlashImage, FlashRecord, Flasher};

use crate::board::remote::{self, Remote};
use crate::board::retry::Attempt;
use crate::board::storage::FlashJob;
use crate::board::{
    preflight, resources, AgentLink, Board, Boot, BootRequest, Power, RunBoard, Session, Strategy,
};
use crate::console::Console;
use crate::plan::{
    is_android_partition, AndroidFastbootCfg, BenchBootCfg, BoardFile, FlashCfg, Plan,
};

pub struct Android;

impl Strategy for Android {
    fn preflight(&self, b: &BoardFile, plan: &Plan) -> anyhow::Result<()> {
        let cfg = android_cfg(b)?;
        if b.adb.is_none() || b.fastboot.is_none() {
            bail!(
                "board {}: an Android board is reached over adb (`adb: {{serial: ...}}`) and flashed from its bootloader's fastboot (`fastboot: {{target: ...}}`)",
                b.name
            );
        }
        let scratch = scratch_partition(b)?;
        if is_android_partition(scratch) && !cfg.allow_overwrite.iter().any(|p| p == scratch) {
            bail!(
                "board {}: the plan's image would overwrite {scratch:?}, one of Android's own partitions: name a spare partition in `flash: {{fastboot: {{partition: ...}}}}`, or list {scratch:?} in `boot.android_fastboot.allow_overwrite` if this device can lose it",
                b.name
            );
        }
        if !b.partitions.contains_key(scratch) {
            bail!(
                "board {}: partition {scratch:?} is not in `partitions:`: the agent needs its device node on the board",
                b.name
            );
        }
        preflight::check_partitions(b, plan)?;
        preflight::refuse_emulator_faults(b, plan, false)
    }

    fn attach(&self, run: RunBoard) -> Box<dyn Board> {
        let flash = FlashJob::for_run(&run);
        Box::new(AndroidBoard {
            run,
            flash,
            mounts_checked: Arc::new(AtomicBool::new(false)),
        })
    }
}

fn android_cfg(b: &BoardFile) -> anyhow::Result<&AndroidFastbootCfg> {
    match &b.boot {
        Some(BenchBootCfg::AndroidFastboot(c)) => Ok(c),
        _ => bail!(
            "board {}: not an Android board (boot: {{android_fastboot: ...}})",
            b.name
        ),
    }
}

/// The partition fastboot writes the plan's image to, by fastboot's name
/// for it (also its name in `partitions:`).
fn scratch_partition(b: &BoardFile) -> anyhow::Result<&str> {
    match &b.flash {
        Some(FlashCfg::Fastboot { partition }) => Ok(partition),
        _ => bail!(
            "board {}: an Android board gets the plan's image by fastboot: `flash: {{fastboot: {{partition: <spare partition>}}}}`",
            b.name
        ),
    }
}

struct AndroidBoard {
    run: RunBoard,
    flash: Option<FlashJob>,
    /// Set once Android was seen not to have the scratch partition mounted.
    mounts_checked: Arc<AtomicBool>,
}

impl Board for AndroidBoard {
    fn boot(&self, req: &BootRequest<'_>) -> Box<dyn Boot> {
        Box::new(AndroidBoot {
            board: self.run.board().clone(),
            home: self.run.home(),
            agent: self.run.agent.clone(),
            flash: self.flash.as_ref().map(FlashJob::share),
            mounts_checked: self.mounts_checked.clone(),
            device_image_read: self
                .run
                .run_dir
                .join(format!("device-boot-{}.img", self.run.board().name)),
            agent_log: req.dir.join("agent-stderr.log"),
            variant: req.kernel.variant.clone(),
            kernel_image: req.kernel.image.clone(),
            kernel_release: req.kernel.release.clone(),
            deploy_record: self.run.run_dir.join("deploy.jsonl"),
            boots_record: self.run.run_dir.join("android-boots.jsonl"),
        })
    }
}

struct AndroidBoot {
    board: BoardFile,
    home: PathBuf,
    agent: PathBuf,
    flash: Option<FlashJob>,
    mounts_checked: Arc<AtomicBool>,
    /// Where the device's own boot image is kept once read from it (when
    /// the board file names no file): read once per run, since after the
    /// first flash the partition holds hilt's image.
    device_image_read: PathBuf,
    agent_log: PathBuf,
    variant: String,
    kernel_image: PathBuf,
    kernel_release: String,
    /// Where each boot image flash is recorded (deploy.jsonl).
    deploy_record: PathBuf,
    /// Where each boot's SELinux mode and kernel are recorded.
    boots_record: PathBuf,
}

/// One boot of Android with a variant's kernel, a line of the run
/// directory's android-boots.jsonl: what the agent was started on.
#[derive(serde::Serialize)]
struct AndroidBootRecord<'a> {
    board: &'a str,
    variant: &'a str,
    /// /proc/version.
    running: &'a str,
    selinux: SelinuxRecord,
}

#[derive(serde::Serialize)]
struct SelinuxRecord {
    /// enforcing, permissive or disabled, as the boot left it...
    found: &'static str,
    /// ...and as the agent runs under it.
    now: &'static str,
}

/// One boot image flash, a line of the run directory's deploy.jsonl.
#[derive(serde::Serialize)]
struct BootFlashRecord<'a> {
    board: &'a str,
    variant: &'a str,
    kernel_release: &'a str,
    /// The device's own boot image the kernel went into, and its sha256.
    device_boot_image: String,
    device_boot_image_sha256: String,
    flash: FlashRecord,
}

#[async_trait::async_trait]
impl Boot for AndroidBoot {
    async fn start(self: Box<Self>, boot_limit: Duration) -> anyhow::Result<Session> {
        let kernel = std::fs::read(&self.kernel_image)
            .with_context(|| format!("reading {}", self.kernel_image.display()))?;
        let banner = hilt_kernels::linux_banner(&kernel);
        let must_check = FlashJob::pending(self.flash.as_ref()).is_some()
            && !self.mounts_checked.load(Ordering::Relaxed);
        if must_check || self.device_image_path().is_none() {
            self.look_at_android_as_it_is(boot_limit).await?;
        }
        let device_image = self.device_boot_image()?;
        let boot_img = hilt_images::bootimg::replace_kernel(&device_image.data, &kernel)
            .with_context(|| {
                format!(
                    "putting the kernel of {} into {}",
                    self.variant, device_image.name
                )
            })?;
        let mut power = resources::open_power(&self.board, &self.home)?;
        power.off().await.context("powering the board off first")?;
        tokio::time::sleep(resources::OFF_TIME).await;
        let early = resources::open_console(&self.board, Duration::from_secs(5))
            .await
            .ok();
        let steps = self.through_bootloader(&device_image, boot_img, early, boot_limit);
        let (mut console, mut heard) = match steps.await {
            Ok(c) => c,
            Err(e) => {
                let _ = power.off().await;
                return Err(e);
            }
        };
        let up = self.android_up(banner.as_deref(), boot_limit);
        match crate::console::record_while(&mut console, &mut heard, up).await {
            Ok(stream) => Ok(Session {
                power,
                console: Box::new(Replayed::new(heard, console)),
                agent: AgentLink::Own(Box::new(stream)),
                warm: None,
            }),
            Err(e) => {
                let _ = power.off().await;
                Err(crate::console::with_console_tail(e, &heard))
            }
        }
    }

    fn power_switch(&self) -> Option<Box<dyn Power>> {
        resources::open_power(&self.board, &self.home).ok()
    }

    fn keeps_ramoops(&self) -> bool {
        // The device's kernel config and reserved memory are its own.
        false
    }
}

impl AndroidBoot {
    fn cfg(&self) -> &AndroidFastbootCfg {
        android_cfg(&self.board).expect("attached boards passed preflight")
    }

    /// The device's own boot image on this host: the board file's, or the
    /// one read from the device earlier in this run; None before that.
    fn device_image_path(&self) -> Option<PathBuf> {
        match &self.cfg().boot_image {
            Some(f) => Some(self.home.join(resources::expand_home(f))),
            None => Some(self.device_image_read.clone()).filter(|p| p.exists()),
        }
    }

    fn device_boot_image(&self) -> anyhow::Result<FlashImage> {
        let path = self
            .device_image_path()
            .context("the device's boot image was not read")?;
        FlashImage::from_file(&path, None).with_context(|| {
            format!(
                "reading the device's own boot image {} (board {}: boot.android_fastboot.boot_image)",
                path.display(),
                self.board.name
            )
        })
    }

    /// Powers on into the bootloader, flashes, and reboots into Android;
    /// returns the console, opened as early as it could be, and what it
    /// said so far.
    async fn through_bootloader(
        &self,
        device_image: &FlashImage,
        boot_img: Vec<u8>,
        early: Option<Box<dyn Console>>,
        limit: Duration,
    ) -> anyhow::Result<(Box<dyn Console>, Vec<u8>)> {
        let b = &self.board;
        let mut heard = Vec::new();
        let mut console = early;
        match &self.cfg().bootloader_on {
            Some(on) => resources::power_switching_on_with(b, &self.home, Some(on))?
                .on()
                .await
                .context("powering on into the bootloader (boot.android_fastboot.bootloader_on)")?,
            None => {
                resources::open_power(b, &self.home)?
                    .on()
                    .await
                    .context("powering the board on")?;
                let mut c = match console.take() {
                    Some(c) => c,
                    None => resources::open_console_retrying(b, Duration::from_secs(15)).await?,
                };
                let asking = self.adb_reboot_bootloader(limit);
                crate::console::record_while(&mut c, &mut heard, asking).await?;
                // A UART stays open across the reboot, but an emulated
                // board's console goes with its QEMU: opened afresh below.
            }
        }
        let flashing = self.flash_in_bootloader(device_image, boot_img, limit);
        let flashed = match console.as_mut() {
            Some(c) => crate::console::record_while(c, &mut heard, flashing).await,
            None => flashing.await,
        };
        flashed?;
        let console = match console {
            Some(c) => c,
            None => resources::open_console_retrying(b, Duration::from_secs(15)).await?,
        };
        Ok((console, heard))
    }

    /// Without a way to power on into the bootloader, Android boots and is
    /// asked to reboot there, as a person at the bench does.
    async fn adb_reboot_bootloader(&self, limit: Duration) -> anyhow::Result<()> {
        let b = &self.board;
        let a = b.adb.as_ref().context("no `adb:` section")?;
        remote::connect(b, limit)
            .await
            .context("waiting for Android, to run `adb reboot bootloader` (the board file names no boot.android_fastboot.bootloader_on)")?;
        resources::adb_server(a)
            .reboot(Some(&a.serial), "bootloader")
            .await
            .with_context(|| format!("adb -s {} reboot bootloader", a.serial))?;
        Ok(())
    }

    async fn flash_in_bootloader(
        &self,
        device_image: &FlashImage,
        boot_img: Vec<u8>,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let b = &self.board;
        let mut fb = wait_for_fastboot(b, limit).await?;
        let cfg = self.cfg();
        let image = FlashImage::new(format!("boot-{}.img", self.variant), boot_img, None);
        let rec = flash(&mut fb, &cfg.boot_partition, &image).await?;
        crate::durable::append_json_line(
            &self.deploy_record,
            &BootFlashRecord {
                board: &b.name,
                variant: &self.variant,
                kernel_release: &self.kernel_release,
                device_boot_image: device_image.name.clone(),
                device_boot_image_sha256: device_image.sha256.clone(),
                flash: rec,
            },
        )?;
        if let Some(job) = FlashJob::pending(self.flash.as_ref()) {
            let rec = flash(&mut fb, scratch_partition(b)?, &job.read_image()?).await?;
            job.finished(&rec)?;
        }
        fb.reboot()
            .await
            .map_err(|e| anyhow::anyhow!("fastboot reboot: {e}"))
    }

    /// Android up with the variant's kernel, and the agent talking.
    async fn android_up(
        &self,
        banner: Option<&str>,
        limit: Duration,
    ) -> anyhow::Result<tokio::io::DuplexStream> {
        let remote = remote::connect(&self.board, limit).await?;
        wait_boot_completed(remote.as_ref(), limit).await?;
        let (runs, running) = remote.runs_kernel(banner, &self.kernel_release).await?;
        if !runs {
            bail!(
                "hilt flashed the kernel of {} in the boot image, and the device runs \"{running}\": does its bootloader boot partition {:?}? (a device with A/B slots boots the active slot's)",
                self.variant,
                self.cfg().boot_partition
            );
        }
        let selinux = self.selinux(remote.as_ref()).await?;
        crate::durable::append_json_line(
            &self.boots_record,
            &AndroidBootRecord {
                board: &self.board.name,
                variant: &self.variant,
                running: &running,
                selinux,
            },
        )?;
        remote.start_agent(&self.agent, &self.agent_log).await
    }

    /// SELinux as the agent will meet it. Enforcing is left alone unless the
    /// board file allows `setenforce 0` for the boot: a userdebug build's
    /// root shell is permissive anyway, and a device's policy is its owner's.
    async fn selinux(&self, remote: &(dyn Remote + 'static)) -> anyhow::Result<SelinuxRecord> {
        let read = || async {
            let (_, out) = remote
                .output(
                    "cat /sys/fs/selinux/enforce 2>/dev/null || echo disabled",
                    Duration::from_secs(10),
                )
                .await?;
            anyhow::Ok(match out.trim() {
                "1" => "enforcing",
                "0" => "permissive",
                _ => "disabled",
            })
        };
        let found = read().await?;
        if found != "enforcing" || !self.cfg().selinux_permissive {
            return Ok(SelinuxRecord { found, now: found });
        }
        remote
            .output(
                "setenforce 0 2>/dev/null || echo 0 > /sys/fs/selinux/enforce",
                Duration::from_secs(10),
            )
            .await?;
        let now = read().await?;
        if now != "permissive" {
            bail!(
                "board {}: `setenforce 0` left SELinux {now} (boot.android_fastboot.selinux_permissive asks for permissive)",
                self.board.name
            );
        }
        Ok(SelinuxRecord { found, now })
    }

    /// Boots Android as it is, once per run: the scratch partition is
    /// refused if anything has it mounted (fastboot would overwrite a live
    /// filesystem), and the device's own boot image is read from its boot
    /// partition when the board file names no file.
    async fn look_at_android_as_it_is(&self, limit: Duration) -> anyhow::Result<()> {
        let b = &self.board;
        let (mut power, mut console) = resources::power_cycle_to_console(b, &self.home).await?;
        let mut heard = Vec::new();
        let look = async {
            let remote = remote::connect(b, limit).await?;
            if FlashJob::pending(self.flash.as_ref()).is_some() {
                self.refuse_mounted_scratch(remote.as_ref()).await?;
            }
            if self.device_image_path().is_none() {
                self.read_device_boot_image(remote.as_ref()).await?;
            }
            anyhow::Ok(())
        };
        let looked = crate::console::record_while(&mut console, &mut heard, look).await;
        let _ = power.off().await;
        looked
    }

    async fn refuse_mounted_scratch(&self, remote: &(dyn Remote + 'static)) -> anyhow::Result<()> {
        let b = &self.board;
        let scratch = scratch_partition(b)?;
        let node = b
            .partitions
            .get(scratch)
            .with_context(|| format!("board {}: no node for partition {scratch:?}", b.name))?;
        match mounted_at(remote, node).await? {
            Some(at) => bail!(
                "board {}: partition {scratch:?} ({node}) is mounted at {at} on the device: hilt does not flash a partition in use; name a spare one in `flash: {{fastboot: {{partition: ...}}}}`",
                b.name
            ),
            None => {
                self.mounts_checked.store(true, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Reads the boot partition (the current slot's, on an A/B device) and
    /// keeps the boot image it holds.
    async fn read_device_boot_image(&self, remote: &(dyn Remote + 'static)) -> anyhow::Result<()> {
        let b = &self.board;
        let part = &self.cfg().boot_partition;
        let (_, suffix) = remote
            .output(
                "command -v getprop >/dev/null && getprop ro.boot.slot_suffix",
                Duration::from_secs(10),
            )
            .await?;
        let node = b
            .partitions
            .get(&format!("{part}{}", suffix.trim()))
            .or_else(|| b.partitions.get(part))
            .with_context(|| format!("board {}: no node for partition {part:?}", b.name))?;
        let bytes = remote.pull(node, 512 << 20).await?;
        let len = hilt_images::bootimg::image_len(&bytes)
            .with_context(|| format!("the device's boot partition {node}"))?;
        crate::durable::write_atomic(&self.device_image_read, &bytes[..len])
            .with_context(|| format!("keeping {}", self.device_image_read.display()))
    }
}

async fn flash<IO: FastbootIo + Send>(
    fb: &mut Fastboot<IO>,
    partition: &str,
    image: &FlashImage,
) -> anyhow::Result<FlashRecord> {
    FastbootFlasher {
        fastboot: fb,
        partition: partition.to_string(),
    }
    .flash(image)
    .await
    .with_context(|| format!("fastboot flash {partition}"))
}

/// Connects to the bootloader's fastboot once it answers; until then the
/// board is still on its way there.
async fn wait_for_fastboot(
    b: &BoardFile,
    limit: Duration,
) -> anyhow::Result<Fastboot<Box<dyn FastbootIo>>> {
    let f = b.fastboot.as_ref().context("no `fastboot:` section")?;
    crate::board::retry::retry_until(
        limit,
        Duration::from_millis(500),
        "the bootloader's fastboot did not answer after powering on into it",
        || async {
            let mut fb = resources::open_fastboot(f, Duration::from_secs(5)).await?;
            fb.getvar("product")
                .await
                .map_err(|e| anyhow::anyhow!("fastboot getvar product: {e}"))?;
            Ok(fb)
        },
    )
    .await
}

/// Waits for `sys.boot_completed`: adb answers well before Android has
/// mounted its partitions and started its services. A device without
/// Android's property service (a plain Linux userspace) has no such
/// property, and adb answering is all there is to wait for.
async fn wait_boot_completed(
    remote: &(dyn Remote + 'static),
    limit: Duration,
) -> anyhow::Result<()> {
    crate::board::retry::retry_until(
        limit,
        Duration::from_secs(1),
        "Android did not finish booting",
        || async {
            let (_, out) = remote
                .output(
                    "command -v getprop >/dev/null && getprop sys.boot_completed || echo no-getprop",
                    Duration::from_secs(10),
                )
                .await
                .map_err(Attempt::Fatal)?;
            match out.trim() {
                "1" | "no-getprop" => Ok(()),
                v => Err(Attempt::Again(anyhow::anyhow!(
                    "sys.boot_completed is {v:?}, not \"1\""
                ))),
            }
        },
    )
    .await
}

/// Where the device has `node` mounted, if anywhere: by the node's real
/// name, since /proc/mounts names `/dev/block/mmcblk0p20` where the board
/// file may say `/dev/block/by-name/scratch`.
async fn mounted_at(remote: &(dyn Remote + 'static), node: &str) -> anyhow::Result<Option<String>> {
    let quoted = hilt_transports::ssh::shell_quote(node);
    let (_, real) = remote
        .output(&format!("readlink -f {quoted}"), Duration::from_secs(10))
        .await?;
    let real = real.trim();
    let real = if real.is_empty() { node } else { real };
    let (_, mounts) = remote
        .output("cat /proc/mounts", Duration::from_secs(10))
        .await?;
    Ok(mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (dev, at) = (f.next()?, f.next()?);
        (dev == real || dev == node).then(|| at.to_string())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(flash_partition: &str, allow: &str) -> BoardFile {
        let text = format!(
            "name: phone\narch: arm64\nconsole: {{ serial: {{ device: /dev/null }} }}\n\
             power: {{ command: {{ on: [true], off: [true] }} }}\nagent: adb\n\
             adb: {{ serial: 'x' }}\nfastboot: {{ target: 'tcp:127.0.0.1:5554' }}\n\
             flash: {{ fastboot: {{ partition: {flash_partition} }} }}\n\
             partitions: {{ scratch: /dev/block/by-name/scratch, userdata: /dev/block/by-name/userdata, system_b: /dev/block/by-name/system_b }}\n\
             storage: {{ image: {flash_partition} }}\n\
             boot: {{ android_fastboot: {{ bootloader_on: [true], boot_image: boot.img{allow} }} }}\n"
        );
        serde_yaml_ng::from_str(&text).unwrap()
    }

    fn plan() -> Plan {
        serde_yaml_ng::from_str(
            "name: p\nboard: phone\niterations: 1\nduration_s: 20\nvariants: [{name: a, kernel: {debian: linux-image-6.1.0-44-arm64}}]\ndataset: {size_mb: 8, files: 2}\nimage: {compressor: lz4hc, pcluster_kb: 64, verity: true}\nstorage: {erofs_on: virtio}\nswap: {zram: {size_mb: 64}}\nworkloads: []\n",
        )
        .unwrap()
    }

    #[test]
    fn androids_own_partitions_are_refused_unless_allowed() {
        let p = plan();
        assert!(Android.preflight(&board("scratch", ""), &p).is_ok());
        for part in ["userdata", "system_b"] {
            let e = Android
                .preflight(&board(part, ""), &p)
                .unwrap_err()
                .to_string();
            assert!(e.contains("one of Android's own partitions"), "{e}");
            assert!(e.contains("allow_overwrite"), "{e}");
        }
        let allowed = board("userdata", ", allow_overwrite: [userdata]");
        assert!(Android.preflight(&allowed, &p).is_ok());
        assert_eq!(allowed.kind(), crate::plan::BoardKind::Android);
    }
}
