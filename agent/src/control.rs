//! Positive controls: hangs injected on purpose, so that "no hang seen" can
//! be trusted to mean "no hang happened".
//!
//! The swap freeze is set up before the workloads start, and checked: the
//! iteration only runs once swapoff is seen blocked. An earlier version froze
//! swap under the hog's pressure and let swapoff read pages back; the OOM
//! killer picks swapoff first (it is the "OOM origin"), and when it struck
//! before swapoff had reached its read, swapoff returned and the control
//! passed undetected.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::{dm, dstate, sampler, swap, sys};

/// What the filler pushes into the frozen swap device.
pub const FILLER_BYTES: usize = 32 << 20;
const MADV_PAGEOUT: libc::c_int = 21;
/// How long swapoff must stay in D before the freeze counts as holding.
const BLOCKED_MS: u64 = 500;

/// The swapoff that will block, and the filler whose stuck writeback it will
/// wait on; both forked before the freeze, since once swap is frozen forking
/// (a new stack, page tables) can itself wait on swap.
pub struct SwapFreeze {
    victim: Child,
    filler: Child,
}

impl SwapFreeze {
    pub fn prepare(node: &Path) -> io::Result<Self> {
        let exe = std::env::current_exe()?;
        let victim = Command::new(&exe)
            .arg("swapoff")
            .arg(node)
            .stdin(Stdio::piped())
            .spawn()?;
        let filler = Command::new(&exe)
            .arg("swap-filler")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        match filler {
            Ok(filler) => Ok(Self { victim, filler }),
            Err(e) => {
                let mut victim = victim;
                let _ = victim.kill();
                let _ = victim.wait();
                Err(e)
            }
        }
    }

    /// Freezes swap with `stuck_kb` of writeback in it and returns once
    /// swapoff is blocked on that writeback, with a line for the stage
    /// report. On failure the device is resumed and both helpers killed, so
    /// the board is left as it was.
    pub fn freeze(mut self, stuck_kb: u64, within_ms: u64) -> io::Result<String> {
        let deadline = sys::uptime_ms() + within_ms;
        match self.try_freeze(stuck_kb, deadline) {
            Ok(detail) => {
                // Both stay as they are for the rest of the boot: the filler
                // parked on its pages, swapoff waiting for their writeback.
                std::mem::forget(self);
                Ok(detail)
            }
            Err(e) => {
                let _ = dm::resume(swap::CONTROL_DM);
                for c in [&mut self.victim, &mut self.filler] {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                Err(e)
            }
        }
    }

    fn try_freeze(&mut self, stuck_kb: u64, deadline: u64) -> io::Result<String> {
        let mut from_filler = self.filler.stdout.take().ok_or_else(|| other("no pipe"))?;
        expect_line(&mut from_filler, "filled", deadline)?;
        let before = swap_used_kb();
        dm::suspend_noflush(swap::CONTROL_DM)
            .map_err(|e| other(format!("suspending {}: {e}", swap::CONTROL_DM)))?;
        tell(&mut self.filler, "go")?;
        expect_line(&mut from_filler, "paged", deadline)?;
        let stuck = swap_used_kb().saturating_sub(before);
        if stuck < stuck_kb {
            return Err(other(format!(
                "only {stuck} kB went to the frozen swap, {stuck_kb} kB needed"
            )));
        }
        tell(&mut self.victim, "go")?;
        let pid = self.victim.id();
        // D for a moment is any disk wait; D for a while is the freeze.
        match wait_blocked(&mut self.victim, deadline, |state, _| state == 'D')? {
            Blocked::At(wchan) => Ok(format!(
                "swap-freeze: {} suspended with {stuck} kB of writeback in it; swapoff pid {pid} blocked in D at {wchan}",
                swap::CONTROL_DM
            )),
            Blocked::Exited(status) => Err(other(format!(
                "swapoff (pid {pid}) returned before it blocked: {status}"
            ))),
            Blocked::TimedOut(_) => Err(other(format!(
                "swapoff (pid {pid}) was not blocked in D state in time"
            ))),
        }
    }
}

/// How the wait for a control's task to block ended.
enum Blocked {
    /// Blocked for BLOCKED_MS, at this wchan.
    At(String),
    Exited(std::process::ExitStatus),
    /// The deadline passed; the last wchan seen.
    TimedOut(String),
}

/// Polls `task` until it has stayed blocked, as `blocked` judges its state
/// and wchan, for BLOCKED_MS: a moment's wait is any disk I/O, a while is
/// the control's freeze.
fn wait_blocked(
    task: &mut Child,
    deadline: u64,
    blocked: impl Fn(char, &str) -> bool,
) -> io::Result<Blocked> {
    let pid = task.id();
    let mut since = None;
    loop {
        if let Some(status) = task.try_wait()? {
            return Ok(Blocked::Exited(status));
        }
        let now = sys::uptime_ms();
        let wchan = sys::read_trimmed(format!("/proc/{pid}/wchan")).unwrap_or_default();
        since = match proc_state(pid) {
            Some(state) if blocked(state, &wchan) => since.or(Some(now)),
            _ => None,
        };
        if since.is_some_and(|t| now - t >= BLOCKED_MS) {
            return Ok(Blocked::At(wchan));
        }
        if now >= deadline {
            return Ok(Blocked::TimedOut(wchan));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The bio-wait control: `hilt-agent zeroout` asks the kernel to zero a
/// MiB of the suspended device, and the kernel's BLKZEROOUT waits for that
/// bio in submit_bio_wait(), as the seed's reclaim waits for its swap-out.
/// Returns once the task is seen there, with the stage report's line.
pub fn bio_wait_freeze(dev: &Path, within_ms: u64) -> io::Result<String> {
    let deadline = sys::uptime_ms() + within_ms;
    let node = swap::freezable(dev)?;
    dm::suspend_noflush(swap::CONTROL_DM)
        .map_err(|e| other(format!("suspending {}: {e}", swap::CONTROL_DM)))?;
    let mut task = Command::new(std::env::current_exe()?)
        .arg("zeroout")
        .arg(&node)
        .spawn()?;
    let pid = task.id();
    let in_bio_wait = |state, wchan: &str| state == 'D' && dstate::is_bio_wait(wchan.as_bytes());
    match wait_blocked(&mut task, deadline, in_bio_wait)? {
        Blocked::At(wchan) => {
            // It stays in the wait for the rest of the boot, or until a
            // stall control resumes the device.
            std::mem::forget(task);
            Ok(format!(
                "bio-wait: {} suspended; zeroout pid {pid} waiting in D at {wchan}",
                node.display()
            ))
        }
        Blocked::Exited(status) => {
            let _ = dm::resume(swap::CONTROL_DM);
            Err(other(format!(
                "zeroout (pid {pid}) returned before it blocked: {status}"
            )))
        }
        Blocked::TimedOut(wchan) => {
            // Resumed, the bio completes and the task can be reaped.
            let _ = dm::resume(swap::CONTROL_DM);
            let _ = task.wait();
            Err(other(format!(
                "zeroout (pid {pid}) was not seen waiting in submit_bio_wait in time (wchan {wchan:?})"
            )))
        }
    }
}

/// `hilt-agent zeroout NODE`: BLKZEROOUT over the first MiB of NODE, which
/// the kernel turns into bios it waits for with submit_bio_wait().
pub fn zeroout(node: &Path) -> io::Result<()> {
    const BLKZEROOUT: libc::c_ulong = 0x127f;
    let f = std::fs::OpenOptions::new().write(true).open(node)?;
    let range: [u64; 2] = [0, 1 << 20];
    let ret = unsafe { libc::ioctl(f.as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) };
    sys::check(ret, &format!("BLKZEROOUT {}", node.display()))
}

/// Lets a frozen swap go after `ms`: the hang it caused then recovers, which
/// is what a stall looks like.
pub fn resume_later(ms: u64) -> io::Result<()> {
    std::thread::Builder::new()
        .name("control-resume".into())
        .stack_size(crate::sys::THREAD_STACK)
        .spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            let _ = dm::resume(swap::CONTROL_DM);
        })
        .map(|_| ())
}

fn swap_used_kb() -> u64 {
    let m = sampler::read_mem();
    m.swap_total_kb.saturating_sub(m.swap_free_kb)
}

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(format!("swap-freeze: {}", msg.into()))
}

/// Writes a line to a helper and never closes the pipe: closing it takes the
/// pipe's mutex, which must not become one more place to block once swap is
/// frozen.
fn tell(child: &mut Child, word: &str) -> io::Result<()> {
    let pipe = child.stdin.as_mut().ok_or_else(|| other("no pipe"))?;
    pipe.write_all(format!("{word}\n").as_bytes())
}

/// Reads one line from a helper by `deadline` (uptime, ms), and checks it.
fn expect_line(from: &mut ChildStdout, want: &str, deadline: u64) -> io::Result<()> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        let left = deadline.saturating_sub(sys::uptime_ms());
        let mut pfd = libc::pollfd {
            fd: from.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ready = unsafe { libc::poll(&mut pfd, 1, left.min(i32::MAX as u64) as i32) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ready == 0 {
            return Err(other(format!("the filler did not say {want:?} in time")));
        }
        if from.read(&mut byte)? == 0 {
            return Err(other(format!("the filler exited before saying {want:?}")));
        }
        line.push(byte[0]);
    }
    let got = String::from_utf8_lossy(&line);
    if got.trim() != want {
        return Err(other(format!(
            "the filler said {:?}, not {want:?}",
            got.trim()
        )));
    }
    Ok(())
}

/// The state letter of /proc/PID/stat.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    crate::dstate::comm_and_state(&stat).map(|(_, state)| state as char)
}

/// Allocates and fills FILLER_BYTES, says "filled", waits for "go", pages it
/// all out into the frozen swap, says "paged", then parks forever without
/// touching it: runs as `hilt-agent swap-filler`.
pub fn swap_filler() -> ! {
    sys::clear_io_flusher();
    unsafe { libc::prctl(libc::PR_SET_NAME, c"hilt-swapfill".as_ptr()) };
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            FILLER_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::process::exit(1);
    }
    let mem = unsafe { std::slice::from_raw_parts_mut(p as *mut u8, FILLER_BYTES) };
    // Not zero (zero pages need no swap slot), not uniform.
    for (i, page) in mem.chunks_mut(4096).enumerate() {
        page[0] = 0xa5;
        page[8] = i as u8;
    }
    let mut out = io::stdout();
    let _ = writeln!(out, "filled");
    let _ = out.flush();
    let mut go = String::new();
    if io::stdin().read_line(&mut go).is_err() || go.trim() != "go" {
        std::process::exit(1);
    }
    // Reclaim now (Linux 5.4+): each page goes to the swap cache, and its
    // write is queued on the suspended device, where it stays, so the page
    // stays under writeback for good.
    unsafe { libc::madvise(p, FILLER_BYTES, MADV_PAGEOUT) };
    let _ = writeln!(out, "paged");
    let _ = out.flush();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
