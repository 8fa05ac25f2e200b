//! Thin wrappers over the procfs/sysfs and syscalls the agent needs.

use std::fs;
use std::io;
use std::path::Path;

pub fn uptime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // CLOCK_BOOTTIME matches the kernel's printk clock closely enough to
    // line up agent samples with kernel reports.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

pub fn read_trimmed(path: impl AsRef<Path>) -> io::Result<String> {
    Ok(fs::read_to_string(path)?.trim().to_string())
}

/// Writes a sysfs/procfs attribute, naming the path in the error because a
/// bare "Invalid argument" tells the user nothing.
pub fn write_attr(path: impl AsRef<Path>, value: &str) -> io::Result<()> {
    let path = path.as_ref();
    fs::write(path, value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", path.display()),
        )
    })
}

pub fn cstr(s: &str) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

pub fn check(ret: libc::c_int, what: &str) -> io::Result<()> {
    if ret < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// mount(2), with the command a person would type in the error.
pub fn mount(
    src: &Path,
    dst: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let (c_src, c_dst) = (cstr(&src.to_string_lossy())?, cstr(dst)?);
    let (c_fs, c_data) = (cstr(fstype)?, cstr(data)?);
    let ret = unsafe {
        libc::mount(
            c_src.as_ptr(),
            c_dst.as_ptr(),
            c_fs.as_ptr(),
            flags,
            c_data.as_ptr() as *const libc::c_void,
        )
    };
    let opts = if data.is_empty() {
        String::new()
    } else {
        format!(" -o {data}")
    };
    check(
        ret,
        &format!("mount -t {fstype} {} {dst}{opts}", src.display()),
    )
}

const PR_SET_IO_FLUSHER: libc::c_int = 57;

/// Keeps the watcher resident and last in line for the OOM killer: it must
/// outlive the pressure it is there to observe.
///
/// mlockall is not enough: the kernel allocates on the agent's behalf (a
/// struct file per open of /proc, a stack per thread), and under pressure
/// those allocations enter direct reclaim and wait on swap I/O, which is
/// exactly what is stuck when a board hangs. PR_SET_IO_FLUSHER makes the
/// agent's allocations NOIO, as for userspace block drivers, so its reclaim
/// never waits on I/O. Threads inherit it; workers clear it.
pub fn harden_self() -> io::Result<()> {
    // ONFAULT: lock what is touched, as it is touched, rather than fault in
    // every mapping whole (all of the binary's text, every stack): what the
    // agent uses stays resident, what it never touches costs nothing.
    const MCL_ONFAULT: libc::c_int = 4;
    check(
        unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | MCL_ONFAULT) },
        "mlockall",
    )?;
    write_attr("/proc/self/oom_score_adj", "-1000")?;
    // The D-state watcher keeps an fd per thread between scans.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_cur = lim.rlim_max.min(20_000);
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    check(
        unsafe { libc::prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) },
        "prctl(PR_SET_IO_FLUSHER)",
    )
}

/// Workloads must reclaim the ordinary way: their reclaim is the test.
pub fn clear_io_flusher() {
    unsafe { libc::prctl(PR_SET_IO_FLUSHER, 0, 0, 0, 0) };
}

pub fn uname() -> (String, String, String) {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&u.release), field(&u.version), field(&u.machine))
}

pub fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Stack size of the agent's own threads. mlockall pins every byte of
/// every stack, and std's default of 2 MiB per thread made most of the
/// agent's resident memory; none of its threads recurses deeply.
pub const THREAD_STACK: usize = 256 << 10;

/// Spawns one of the agent's long-lived threads, named, with a small stack.
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(THREAD_STACK)
        .spawn(f)
        .unwrap_or_else(|e| panic!("spawning the {name} thread: {e}"));
}

/// The kernel features a run relies on, as the board has them.
pub fn kernel_facts() -> std::collections::BTreeMap<String, String> {
    let exists = |p: &str| if Path::new(p).exists() { "yes" } else { "no" }.to_string();
    let mut f = std::collections::BTreeMap::new();
    f.insert("psi".into(), exists("/proc/pressure/memory"));
    f.insert("sysrq".into(), exists("/proc/sysrq-trigger"));
    f.insert(
        "hung_task_detector".into(),
        exists("/proc/sys/kernel/hung_task_timeout_secs"),
    );
    f.insert(
        "kprobe_events".into(),
        exists("/sys/kernel/tracing/kprobe_events"),
    );
    f.insert("pstore".into(), exists("/sys/fs/pstore"));
    f.insert("schedstat".into(), exists("/proc/self/schedstat"));
    f.insert("task_stack".into(), exists("/proc/self/stack"));
    if let Ok(t) = read_trimmed("/proc/sys/kernel/hung_task_timeout_secs") {
        f.insert("hung_task_timeout_secs".into(), t);
    }
    f
}

/// The SD cards and eMMCs in /sys/block (mmcblkN, not their boot and
/// RPMB areas), each by its card's identity. A card still being probed
/// when the agent starts is waited for, briefly: the host compares these
/// with U-Boot's `mmc info` before it writes anything.
pub fn mmc_cards() -> Vec<hilt_protocol::MmcCard> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let cards = read_mmc_cards(Path::new("/sys/block"));
        // Every host with a card has its disk once the card is probed.
        if cards.len() >= cards_on_hosts() || std::time::Instant::now() >= deadline {
            return cards;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Cards the MMC hosts have found (`/sys/class/mmc_host/mmcN/mmcN:RCA`).
fn cards_on_hosts() -> usize {
    let Ok(hosts) = fs::read_dir("/sys/class/mmc_host") else {
        return 0;
    };
    hosts
        .flatten()
        .filter_map(|h| fs::read_dir(h.path()).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.file_name().to_string_lossy().contains(':'))
        .filter(|e| {
            // SDIO cards (Wi-Fi) have no disk.
            read_trimmed(e.path().join("type")).is_ok_and(|t| t == "SD" || t == "MMC")
        })
        .count()
}

pub fn read_mmc_cards(block: &Path) -> Vec<hilt_protocol::MmcCard> {
    let Ok(dir) = fs::read_dir(block) else {
        return Vec::new();
    };
    let mut cards: Vec<_> = dir
        .flatten()
        .filter_map(|e| {
            let disk = e.file_name().to_string_lossy().into_owned();
            let n = disk.strip_prefix("mmcblk")?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let p = e.path();
            let hex = |f: &str| {
                let t = read_trimmed(p.join("device").join(f)).ok()?;
                u32::from_str_radix(t.trim_start_matches("0x"), 16).ok()
            };
            Some(hilt_protocol::MmcCard {
                kind: read_trimmed(p.join("device/type")).ok()?,
                manfid: hex("manfid")?,
                oemid: hex("oemid")?,
                name: read_trimmed(p.join("device/name")).ok()?,
                sectors: read_trimmed(p.join("size")).ok()?.parse().ok()?,
                disk,
            })
        })
        .collect();
    cards.sort_by(|a, b| a.disk.cmp(&b.disk));
    cards
}

/// Reads what the previous boot left in pstore, then deletes it so the
/// next boot does not report it again.
pub fn take_pstore() -> Vec<hilt_protocol::PstoreFile> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/fs/pstore") else {
        return out;
    };
    for e in dir.flatten() {
        if let Ok(bytes) = std::fs::read(e.path()) {
            out.push(hilt_protocol::PstoreFile {
                name: e.file_name().to_string_lossy().into_owned(),
                content: String::from_utf8_lossy(&bytes).into_owned(),
            });
            let _ = std::fs::remove_file(e.path());
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub fn sysrq(key: char) -> io::Result<()> {
    write_attr("/proc/sysrq-trigger", &key.to_string())
}

/// The value of `name=value` on the kernel command line.
pub fn cmdline_value(name: &str) -> Option<String> {
    let line = std::fs::read_to_string("/proc/cmdline").ok()?;
    find_arg(&line, name)
}

fn find_arg(line: &str, name: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_string)
}

#[cfg(test)]
mod cmdline_tests {
    #[test]
    fn finds_only_the_exact_argument() {
        let line = "console=ttyAMA0 hilt.agent_portx=no hilt.agent_port=console panic=5\n";
        assert_eq!(
            super::find_arg(line, "hilt.agent_port").as_deref(),
            Some("console")
        );
        assert_eq!(super::find_arg(line, "hilt.agent"), None);
        assert_eq!(super::find_arg(line, "quiet"), None);
    }
}

#[cfg(test)]
mod mmc_tests {
    /// The sysfs of QEMU's sd-card behind sdhci-pci, as Debian's 6.1 kernel
    /// showed it (`cat /sys/block/mmcblk0/device/*`, `size`), beside an
    /// eMMC's boot area and a virtio disk that are not cards.
    #[test]
    fn cards_are_read_from_sysfs_and_other_disks_skipped() {
        let root = tempfile::tempdir().unwrap();
        let card = |disk: &str, files: &[(&str, &str)]| {
            let d = root.path().join(disk);
            std::fs::create_dir_all(d.join("device")).unwrap();
            for (f, v) in files {
                std::fs::write(d.join(f), format!("{v}\n")).unwrap();
            }
        };
        let qemu_sd = [
            ("device/type", "SD"),
            ("device/manfid", "0x0000aa"),
            ("device/oemid", "0x5859"),
            ("device/name", "QEMU!"),
            ("size", "524288"),
        ];
        card("mmcblk0", &qemu_sd);
        card("mmcblk0boot0", &qemu_sd);
        card("vda", &[("size", "460800")]);
        // A card whose sysfs lacks a field is left out, not guessed.
        card("mmcblk1", &qemu_sd[..4]);
        let cards = super::read_mmc_cards(root.path());
        assert_eq!(
            cards,
            vec![hilt_protocol::MmcCard {
                disk: "mmcblk0".into(),
                kind: "SD".into(),
                manfid: 0xaa,
                oemid: 0x5859,
                name: "QEMU!".into(),
                sectors: 524_288,
            }]
        );
    }
}
