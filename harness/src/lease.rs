//! Board leases: which hilt process on this host (or on hosts sharing the
//! directory) drives which board, until when.
//!
//! One file per board, `<dir>/<board>.lease`, holding the holder as JSON.
//! Every change happens under an exclusive flock of `<board>.lock`, so two
//! processes never both see a lease as free; the kernel drops the flock of
//! a killed process, so the lock itself can never be left held. A lease
//! whose expiry has passed, or whose holder is a dead pid on this host, is
//! taken over: a run killed with -9 blocks nobody beyond its lease.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// How often a running hilt renews its leases.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub board: String,
    pub pid: u32,
    pub host: String,
    pub user: String,
    pub run_dir: String,
    pub plan: String,
    /// Unix seconds.
    pub taken_at: u64,
    pub expires_at: u64,
    /// Distinguishes two leases of one pid (a reused pid, a second run in
    /// one process).
    pub token: String,
    /// The holder host's boot: its pid means nothing on another boot.
    /// Empty in leases written before it was recorded.
    #[serde(default)]
    pub boot_id: String,
    /// The command holding the board when it is not a run (`doctor`,
    /// `flash`, `deploy`); empty for a run.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
}

/// What a lease file says, as `hilt boards` shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Held(Holder),
    /// Past its expiry, or its pid is dead on this host: free to take.
    Stale(Holder, &'static str),
}

/// The lease directory every user of this host shares, so that two
/// users' runs see each other's boards. `scripts/setup` creates it owned by
/// the group [`GROUP`], mode 2775: group members may create, replace and
/// remove any lease in it. It is deliberately not a sticky world-writable
/// directory like /tmp: there only a file's owner may rename over it or
/// remove it, so a run could neither take over another user's stale lease
/// (the lease is replaced by an atomic rename) nor clean it up. setgid makes
/// every file in it belong to the group whatever the creator's own group.
pub const HOST_DIR: &str = "/var/lib/hilt/leases";
/// The group whose members share [`HOST_DIR`].
pub const GROUP: &str = "hilt";

/// `$HILT_LEASES` (a directory of one's own, e.g. for tests), else the
/// host-wide [`HOST_DIR`].
pub fn default_dir() -> PathBuf {
    match std::env::var_os("HILT_LEASES").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(HOST_DIR),
    }
}

/// What to do about a lease directory that cannot be used: `e` is the
/// error of creating it or a file in it.
fn dir_advice(dir: &Path, e: &std::io::Error) -> String {
    let own = "or set HILT_LEASES to a directory of your own (boards are then not shared with other users' runs)";
    if e.kind() == std::io::ErrorKind::NotFound && dir == Path::new(HOST_DIR) {
        return format!(
            "the host-wide lease directory {HOST_DIR} does not exist: run scripts/setup \
             (it creates it for the group {GROUP}), {own}"
        );
    }
    if e.kind() != std::io::ErrorKind::PermissionDenied {
        return format!("lease directory {}: {e}; {own}", dir.display());
    }
    let Ok(meta) = std::fs::metadata(dir) else {
        return format!("lease directory {}: {e}; {own}", dir.display());
    };
    use std::os::unix::fs::MetadataExt;
    let group = group_name(meta.gid()).unwrap_or_else(|| meta.gid().to_string());
    if !in_group(meta.gid()) {
        return format!(
            "lease directory {}: {e}: it belongs to the group {group} and you ({}) are not in it: \
             have an administrator run `usermod -aG {group} {}`, then log in again (or run \
             `newgrp {group}`); {own}",
            dir.display(),
            user(),
            user()
        );
    }
    format!(
        "lease directory {}: {e}: it must be writable by its group {group} (mode 2775, as \
         scripts/setup makes it: `chmod 2775 {}`); {own}",
        dir.display(),
        dir.display()
    )
}

/// Whether this process has `gid` as its own or a supplementary group.
fn in_group(gid: libc::gid_t) -> bool {
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n <= 0 {
        return false;
    }
    let mut groups = vec![0 as libc::gid_t; n as usize];
    let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    n > 0 && groups[..n as usize].contains(&gid)
}

/// The name of group `gid`, with the reentrant lookup (see [`user_name`]).
fn group_name(gid: libc::gid_t) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        let r =
            unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
        if r == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if r != 0 || out.is_null() || gr.gr_name.is_null() {
            return None;
        }
        let name = unsafe { std::ffi::CStr::from_ptr(gr.gr_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// Lets the other users of a shared lease directory use a file this
/// process created, whatever its umask: they must read its lease and open
/// its lock. Files of other owners are theirs to set.
fn share(f: &File) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = f.metadata()?;
    if meta.uid() == unsafe { libc::geteuid() } && meta.mode() & 0o664 != 0o664 {
        f.set_permissions(std::fs::Permissions::from_mode(0o664))?;
    }
    Ok(())
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn user() -> String {
    let uid = unsafe { libc::getuid() };
    user_name(uid).unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| uid.to_string()))
}

/// The account name of `uid`, with getpwuid_r: getpwuid returns a static
/// buffer that another thread's lookup (several boards lease at once) may
/// overwrite while it is read.
fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let r =
            unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
        if r == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if r != 0 || out.is_null() || pw.pw_name.is_null() {
            return None;
        }
        let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// This boot of this host.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().replace('-', ""))
        .unwrap_or_default()
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    // EPERM means it exists under another user.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Holder {
    fn staleness(&self, at: u64) -> Option<&'static str> {
        if self.expires_at <= at {
            Some("expired")
        } else if self.host != hostname() {
            None
        } else if !self.boot_id.is_empty() && self.boot_id != boot_id() {
            Some("holder's host rebooted")
        } else if !pid_alive(self.pid) {
            Some("holder died")
        } else {
            None
        }
    }
}

/// The board directory: one lease and one lock file per board.
#[derive(Debug, Clone)]
pub struct Leases {
    dir: PathBuf,
}

/// What the holder puts in its leases.
#[derive(Debug, Clone)]
pub struct Claim {
    pub run_dir: String,
    pub plan: String,
    pub ttl: Duration,
    /// See [`Holder::command`].
    pub command: String,
}

impl Leases {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this process may take leases here at all, said before it
    /// waits for a board it could never take.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        if !self.dir.exists() && self.dir != Path::new(HOST_DIR) {
            return Ok(()); // created on first use
        }
        let c = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes())?;
        if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            let e = std::io::Error::last_os_error();
            bail!("{}", dir_advice(&self.dir, &e));
        }
        Ok(())
    }

    fn lease_path(&self, board: &str) -> PathBuf {
        self.dir.join(format!("{board}.lease"))
    }

    /// Runs `f` with the board's lock held.
    fn locked<T>(&self, board: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        // The host-wide directory is setup's to create: made here, it
        // would have this user's group and umask, and lock out the others.
        if self.dir != Path::new(HOST_DIR) {
            std::fs::create_dir_all(&self.dir).map_err(|e| {
                anyhow::anyhow!(
                    "creating the lease directory: {}",
                    dir_advice(&self.dir, &e)
                )
            })?;
        }
        // Read-only: flock needs no write access, so another user's lock
        // file only has to be readable.
        use std::os::unix::fs::OpenOptionsExt;
        let lock = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CREAT)
            .mode(0o664)
            .open(self.dir.join(format!("{board}.lock")))
            .map_err(|e| {
                anyhow::anyhow!(
                    "opening the lock of board {board}: {}",
                    dir_advice(&self.dir, &e)
                )
            })?;
        share(&lock).with_context(|| format!("sharing the lock of board {board}"))?;
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("locking board {board}: {}", std::io::Error::last_os_error());
        }
        let r = f();
        drop(lock); // closing the file releases the flock
        r
    }

    fn read(&self, board: &str) -> Option<Holder> {
        self.read_checked(board).ok().flatten()
    }

    /// The lease, None when there is none; an error when there is a file
    /// that cannot be read or understood, which must count as held: it may
    /// be a live holder's, written by a newer hilt or damaged.
    fn read_checked(&self, board: &str) -> anyhow::Result<Option<Holder>> {
        let path = self.lease_path(board);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => bail!(
                "the lease file {} cannot be read ({e}); board {board} counts as held: \
                 fix its permissions, or remove it once no hilt drives the board",
                path.display()
            ),
        };
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            anyhow::anyhow!(
                "the lease file {} is not a lease ({e}); board {board} counts as held: \
                 remove it once no hilt drives the board",
                path.display()
            )
        })
    }

    /// Replaces the lease whole: a reader without the lock (`hilt boards`)
    /// never sees half a lease, and after a host crash the lease is the
    /// old one or the new one, never an empty file that frees the board.
    fn write(&self, h: &Holder) -> anyhow::Result<()> {
        let path = self.lease_path(&h.board);
        crate::durable::write_atomic(&path, &serde_json::to_vec_pretty(h)?).map_err(|e| {
            anyhow::anyhow!(
                "writing the lease {}: {}",
                path.display(),
                dir_advice(&self.dir, &e)
            )
        })?;
        // Under the lock, so no taker reads it before it is readable.
        File::open(&path)
            .and_then(|f| share(&f))
            .with_context(|| format!("sharing the lease {}", path.display()))
    }

    /// Takes the lease if it is free or stale; otherwise says who holds it.
    pub fn try_take(&self, board: &str, claim: &Claim) -> anyhow::Result<Result<Holder, Holder>> {
        self.locked(board, || {
            let at = now();
            if let Some(h) = self.read_checked(board)? {
                if h.staleness(at).is_none() {
                    return Ok(Err(h));
                }
            }
            let h = Holder {
                board: board.to_string(),
                pid: std::process::id(),
                host: hostname(),
                user: user(),
                run_dir: claim.run_dir.clone(),
                plan: claim.plan.clone(),
                taken_at: at,
                expires_at: at + claim.ttl.as_secs().max(1),
                token: format!("{:x}", rand_token()),
                boot_id: boot_id(),
                command: claim.command.clone(),
            };
            self.write(&h)?;
            Ok(Ok(h))
        })
    }

    /// Pushes the expiry on; false when the lease is no longer ours (it
    /// expired and another run took it).
    pub fn renew(&self, mine: &mut Holder, ttl: Duration) -> anyhow::Result<bool> {
        self.locked(&mine.board.clone(), || {
            match self.read(&mine.board) {
                Some(h) if h.token == mine.token => {}
                _ => return Ok(false),
            }
            mine.expires_at = now() + ttl.as_secs().max(1);
            self.write(mine)?;
            Ok(true)
        })
    }

    pub fn release(&self, mine: &Holder) -> anyhow::Result<()> {
        self.locked(&mine.board, || {
            if self
                .read(&mine.board)
                .is_some_and(|h| h.token == mine.token)
            {
                std::fs::remove_file(self.lease_path(&mine.board))?;
            }
            Ok(())
        })
    }

    /// Every lease file, by board name.
    pub fn list(&self) -> Vec<State> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let at = now();
        let mut out: Vec<State> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let board = name.strip_suffix(".lease")?;
                let h = self.read(board)?;
                Some(match h.staleness(at) {
                    Some(why) => State::Stale(h, why),
                    None => State::Held(h),
                })
            })
            .collect();
        out.sort_by(|a, b| holder(a).board.cmp(&holder(b).board));
        out
    }
}

pub fn holder(s: &State) -> &Holder {
    match s {
        State::Held(h) | State::Stale(h, _) => h,
    }
}

/// One line for people: who, where, what, until when.
pub fn describe(h: &Holder) -> String {
    let left = h.expires_at.saturating_sub(now());
    let what = match h.command.as_str() {
        "" => format!("plan {}, run {}", h.plan, h.run_dir),
        c => format!("`hilt {c}`"),
    };
    format!(
        "{}@{} pid {}, {what}, expires in {left} s",
        h.user, h.host, h.pid
    )
}

/// Every lease this process holds, for the exit path that cannot wait for
/// their owners' drops (a second Ctrl-C exits at once, and no destructor
/// runs after `process::exit`).
static TAKEN: std::sync::Mutex<Vec<(PathBuf, Holder)>> = std::sync::Mutex::new(Vec::new());

fn taken() -> std::sync::MutexGuard<'static, Vec<(PathBuf, Holder)>> {
    TAKEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Releases every lease this process still holds. Blocking file work,
/// callable from anywhere, including just before `process::exit`.
pub fn release_all_now() {
    let held = std::mem::take(&mut *taken());
    for (dir, h) in held {
        if let Err(e) = Leases::new(dir).release(&h) {
            eprintln!(
                "hilt: warning: could not release the lease of board {}: {e:#}",
                h.board
            );
        }
    }
}

fn rand_token() -> u64 {
    let mut b = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        return now() ^ ((std::process::id() as u64) << 32);
    }
    u64::from_ne_bytes(b)
}

/// Leases held by this run, renewed in the background until dropped.
pub struct Held {
    leases: Leases,
    held: Arc<std::sync::Mutex<Vec<Holder>>>,
    heartbeat: tokio::task::JoinHandle<()>,
    lost: Arc<std::collections::BTreeMap<String, tokio::sync::watch::Sender<Option<String>>>>,
    /// Of every lease taken, including those lost since.
    tokens: Vec<String>,
}

impl Held {
    /// Fires with the reason once the board's lease is no longer this
    /// run's: the board must not be driven any more.
    pub fn lost(&self, board: &str) -> Option<tokio::sync::watch::Receiver<Option<String>>> {
        self.lost.get(board).map(|tx| tx.subscribe())
    }

    pub fn boards(&self) -> Vec<String> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|h| h.board.clone())
            .collect()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.heartbeat.abort();
        let mine = self.held.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for h in &mine {
            let _ = self.leases.release(h);
        }
        // Unregistered only once released: an exit in between still
        // releases them (a release is conditional on the token, so twice
        // is harmless).
        taken().retain(|(_, h)| !self.tokens.contains(&h.token));
    }
}

/// Why the first of a board's leases (its lease here, or its labgrid
/// place: each a receiver that turns Some(why) when lost) was lost;
/// pending while none is. Whoever holds the lease now may already be
/// driving the board.
pub async fn first_loss(lost: Vec<tokio::sync::watch::Receiver<Option<String>>>) -> String {
    let each: Vec<_> = lost
        .into_iter()
        .map(|mut rx| {
            Box::pin(async move {
                let why = rx
                    .wait_for(|w| w.is_some())
                    .await
                    .map(|w| w.clone().unwrap_or_default());
                match why {
                    Ok(why) => why,
                    // A keeper that is gone says nothing more.
                    Err(_) => std::future::pending().await,
                }
            })
        })
        .collect();
    if each.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(each).await.0
}

/// Takes every board's lease, in name order so that two runs wanting the
/// same boards cannot each hold half. Waits for a held board up to `wait`,
/// saying who holds it, then fails naming the holder.
pub async fn acquire(
    leases: &Leases,
    boards: &[String],
    claim: Claim,
    wait: Duration,
    say: &dyn Fn(&str),
) -> anyhow::Result<Held> {
    leases.check_writable()?;
    let mut names: Vec<String> = boards.to_vec();
    names.sort();
    let deadline = tokio::time::Instant::now() + wait;
    let mut got: Vec<Holder> = Vec::new();
    let release_all = |got: &[Holder]| {
        for h in got {
            let _ = leases.release(h);
        }
    };
    for b in &names {
        let mut told = false;
        loop {
            match leases.try_take(b, &claim) {
                Ok(Ok(h)) => {
                    got.push(h);
                    break;
                }
                Ok(Err(other)) => {
                    if tokio::time::Instant::now() >= deadline {
                        release_all(&got);
                        bail!(
                            "board {b} is leased to {} (lease file {}): waited {} s; \
                             try again later, raise --lease-wait, or see `hilt boards`",
                            describe(&other),
                            leases.lease_path(b).display(),
                            wait.as_secs()
                        );
                    }
                    if !told {
                        say(&format!(
                            "board {b} is leased to {}; waiting up to {} s for it",
                            describe(&other),
                            deadline
                                .saturating_duration_since(tokio::time::Instant::now())
                                .as_secs()
                        ));
                        told = true;
                    }
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    tokio::time::sleep(left.min(Duration::from_millis(500))).await;
                }
                Err(e) => {
                    release_all(&got);
                    return Err(e);
                }
            }
        }
    }
    taken().extend(got.iter().map(|h| (leases.dir().to_path_buf(), h.clone())));
    let tokens = got.iter().map(|h| h.token.clone()).collect();
    let lost = Arc::new(
        got.iter()
            .map(|h| (h.board.clone(), tokio::sync::watch::channel(None).0))
            .collect::<std::collections::BTreeMap<_, _>>(),
    );
    let held = Arc::new(std::sync::Mutex::new(got));
    let (l2, h2, ttl, lost2) = (leases.clone(), held.clone(), claim.ttl, lost.clone());
    let beat = (ttl / 6).clamp(Duration::from_millis(200), HEARTBEAT);
    let heartbeat = tokio::spawn(async move {
        let mut tick = tokio::time::interval(beat);
        tick.tick().await;
        loop {
            tick.tick().await;
            let l3 = l2.clone();
            let h3 = h2.clone();
            // File locking blocks: keep it off the runtime's threads.
            let lost = tokio::task::spawn_blocking(move || {
                let mut v = h3.lock().unwrap_or_else(|p| p.into_inner());
                let mut lost = Vec::new();
                for h in v.iter_mut() {
                    if let Ok(false) = l3.renew(h, ttl) {
                        lost.push(h.board.clone());
                    }
                }
                v.retain(|h| !lost.contains(&h.board));
                lost
            })
            .await
            .unwrap_or_default();
            for b in lost {
                let why = format!(
                    "its lease was taken over (this run did not renew it within {} s)",
                    ttl.as_secs()
                );
                if let Some(tx) = lost2.get(&b) {
                    let _ = tx.send(Some(why));
                }
            }
        }
    });
    Ok(Held {
        leases: leases.clone(),
        held,
        heartbeat,
        lost,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_agree_with_id_and_across_threads() {
        let me = unsafe { libc::getuid() };
        let id = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        let want = String::from_utf8(id.stdout).unwrap().trim().to_string();
        assert_eq!(user_name(me).as_deref(), Some(want.as_str()));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        // Lookups of two accounts at once each get their own answer.
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let want = want.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let (uid, name) = if i % 2 == 0 {
                            (0, "root")
                        } else {
                            (me, want.as_str())
                        };
                        assert_eq!(user_name(uid).as_deref(), Some(name));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    fn claim(ttl: u64) -> Claim {
        Claim {
            run_dir: "runs/x".into(),
            plan: "smoke".into(),
            ttl: Duration::from_secs(ttl),
            command: String::new(),
        }
    }

    #[test]
    fn a_held_lease_is_refused_then_free_after_release() {
        let d = tempfile::tempdir().unwrap();
        let l = Leases::new(d.path().to_path_buf());
        let a = l.try_take("b1", &claim(60)).unwrap().unwrap();
        let other = l.try_take("b1", &claim(60)).unwrap().unwrap_err();
        assert_eq!(other.token, a.token);
        assert_eq!(other.pid, std::process::id());
        l.release(&a).unwrap();
        assert!(l.list().is_empty());
        l.try_take("b1", &claim(60)).unwrap().unwrap();
    }

    #[test]
    fn expired_and_dead_holders_are_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let l = Leases::new(d.path().to_path_buf());
        let mut h = l.try_take("b1", &claim(60)).unwrap().unwrap();
        // Another host's lease past its expiry.
        h.host = "elsewhere".into();
        h.expires_at = now() - 1;
        l.write(&h).unwrap();
        assert!(matches!(&l.list()[0], State::Stale(_, "expired")));
        let h2 = l.try_take("b1", &claim(60)).unwrap().unwrap();
        assert_ne!(h2.token, h.token);
        // A dead pid on this host, long before its expiry.
        let mut dead = h2.clone();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        dead.pid = child.id();
        child.wait().unwrap();
        l.write(&dead).unwrap();
        assert!(matches!(&l.list()[0], State::Stale(_, "holder died")));
        l.try_take("b1", &claim(60)).unwrap().unwrap();
    }

    /// A lease write the disk has no room for leaves the lease as it was,
    /// and no temporary file in a directory every hilt on the host shares.
    #[test]
    fn a_failed_lease_write_keeps_the_old_lease_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let name = "lease::tests::a_failed_lease_write_keeps_the_old_lease_and_no_temporary";
        if let Some(dir) = crate::durable::small_disk(name, 4096, d.path()) {
            let l = Leases::new(dir);
            let mut mine = l.try_take("b1", &claim(60)).unwrap().unwrap();
            mine.run_dir = "x".repeat(8192);
            l.renew(&mut mine, Duration::from_secs(120)).unwrap_err();
            return;
        }
        let l = Leases::new(d.path().to_path_buf());
        assert_eq!(l.read("b1").unwrap().run_dir, "runs/x");
        assert_eq!(crate::durable::temps_in(d.path()), Vec::<String>::new());
    }

    #[test]
    fn an_unreadable_lease_counts_as_held_and_a_rebooted_holder_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let l = Leases::new(d.path().to_path_buf());
        std::fs::write(l.lease_path("b1"), b"{\"board\": \"b1\", half a lease").unwrap();
        let e = format!("{:#}", l.try_take("b1", &claim(60)).unwrap_err());
        assert!(
            e.contains("is not a lease") && e.contains("counts as held"),
            "{e}"
        );
        assert!(std::fs::read(l.lease_path("b1"))
            .unwrap()
            .starts_with(b"{\"board"));
        std::fs::remove_file(l.lease_path("b1")).unwrap();
        // This very process's lease, but from an earlier boot of the host.
        let mut h = l.try_take("b1", &claim(60)).unwrap().unwrap();
        assert_eq!(h.boot_id, boot_id());
        assert!(matches!(&l.list()[0], State::Held(_)));
        h.boot_id = "0".repeat(32);
        l.write(&h).unwrap();
        assert!(matches!(
            &l.list()[0],
            State::Stale(_, "holder's host rebooted")
        ));
        // A lease from before boot ids were recorded still reads.
        let old = serde_json::to_value(&h).unwrap();
        let mut old = old.as_object().unwrap().clone();
        old.remove("boot_id");
        std::fs::write(l.lease_path("b1"), serde_json::to_vec(&old).unwrap()).unwrap();
        assert!(matches!(&l.list()[0], State::Held(_)));
    }

    #[test]
    fn renewing_a_lease_taken_over_says_so() {
        let d = tempfile::tempdir().unwrap();
        let l = Leases::new(d.path().to_path_buf());
        let mut mine = l.try_take("b1", &claim(60)).unwrap().unwrap();
        let before = mine.expires_at;
        assert!(l.renew(&mut mine, Duration::from_secs(120)).unwrap());
        assert!(mine.expires_at > before);
        let mut theirs = mine.clone();
        theirs.token = "other".into();
        l.write(&theirs).unwrap();
        assert!(!l.renew(&mut mine, Duration::from_secs(120)).unwrap());
        // Releasing what is no longer ours leaves the other holder alone.
        l.release(&mine).unwrap();
        assert_eq!(l.read("b1").unwrap().token, "other");
    }
}
