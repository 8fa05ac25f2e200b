//! Boards that live in a labgrid lab (`labgrid: {coordinator, place}`).
//!
//! labgrid's lock is the board's lease: hilt acquires the place for as long
//! as it drives the board, records who it is (host, pid, boot id, expiry)
//! in a place tag it renews, and releases the place with `fromuser` so that
//! it never frees a place someone else took in the meantime. The place's
//! serial port and power switch become the board file's `console:` and
//! `power:` ([`resolve`]), so the strategies drive the board as they drive
//! any other: they never learn it came from a lab.

pub mod holder;
pub mod power;
mod resolve;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use hilt_labgrid::{ReservationState, Session};
use tokio::sync::watch;

use crate::plan::{BoardFile, LabgridCfg};
use holder::Record;
pub use resolve::resolve;

/// The tag that holds hilt's holder record.
pub const TAG: &str = "hilt_holder";

/// Who this process acquires places as: labgrid's `host/user`.
pub fn identity() -> String {
    format!("{}/{}", crate::lease::hostname(), crate::lease::user())
}

/// Places this process holds, for the exit path that cannot wait for
/// their owners' drops (a second Ctrl-C exits at once).
static HELD: Mutex<Vec<(String, String, String)>> = Mutex::new(Vec::new());

fn register(addr: &str, place: &str, me: &str) {
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((addr.into(), place.into(), me.into()));
}

fn unregister(addr: &str, place: &str) {
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(a, p, _)| !(a == addr && p == place));
}

/// Releases every place still held, each over a connection of its own, on
/// a thread of its own: callable from anywhere, including inside the
/// runtime and just before `process::exit`.
pub fn release_all_blocking() {
    let held: Vec<_> = std::mem::take(&mut *HELD.lock().unwrap_or_else(|p| p.into_inner()));
    if held.is_empty() {
        return;
    }
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        for (addr, place, me) in held {
            rt.block_on(clear_own_record(&addr, &place, &me));
            if let Err(e) = rt.block_on(hilt_labgrid::release_without_session(&addr, &place, &me)) {
                eprintln!("hilt: warning: could not release labgrid place {place}: {e}");
            }
        }
    })
    .join();
}

/// Removes this process's holder record from a place it still holds,
/// before releasing it: a record left on a free place would name a dead
/// hilt, and let a later hilt take over whoever acquires the place next
/// under the same `host/user` (e.g. its user with `labgrid-client`).
/// Best effort: the release matters more.
async fn clear_own_record(addr: &str, place: &str, me: &str) {
    let Ok(places) = hilt_labgrid::places(addr).await else {
        return;
    };
    let Some(p) = places.iter().find(|p| p.name == place) else {
        return;
    };
    let ours = p.acquired.as_deref() == Some(me)
        && p.tags
            .get(TAG)
            .and_then(|t| Record::decode(t))
            .is_some_and(|r| r.pid == std::process::id() && r.host == crate::lease::hostname());
    if ours {
        let clear = HashMap::from([(TAG.to_string(), String::new())]);
        let _ = hilt_labgrid::set_tags_without_session(addr, place, clear).await;
    }
}

/// A place this process holds: renewed and watched until released.
pub struct HeldPlace {
    pub board: String,
    pub place: String,
    session: Arc<Session>,
    me: String,
    lost: watch::Receiver<Option<String>>,
    keeper: tokio::task::JoinHandle<()>,
    released: bool,
    /// The reservation the place was allocated by, cancelled on release.
    reservation: Option<String>,
}

impl HeldPlace {
    /// Fires with the reason once the place is no longer this process's.
    pub fn lost(&self) -> watch::Receiver<Option<String>> {
        self.lost.clone()
    }

    pub async fn release(mut self) -> anyhow::Result<()> {
        self.released = true;
        self.keeper.abort();
        let clear = HashMap::from([(TAG.to_string(), String::new())]);
        // Only our own record is cleared: if the place is no longer ours,
        // the record is its new holder's.
        if self.still_ours() {
            let _ = self.session.set_tags(&self.place, clear).await;
        }
        let released = self
            .session
            .release(&self.place, Some(&self.me))
            .await
            .with_context(|| format!("releasing labgrid place {}", self.place));
        // Unregistered only now: a second Ctrl-C before this point still
        // releases the place (with `fromuser`, releasing twice is harmless).
        unregister(self.session.addr(), &self.place);
        if let Some(t) = &self.reservation {
            self.session
                .cancel_reservation(t)
                .await
                .with_context(|| format!("cancelling labgrid reservation {t}"))?;
        }
        released
    }

    fn still_ours(&self) -> bool {
        self.session
            .state()
            .places
            .get(&self.place)
            .and_then(|p| p.acquired.as_deref())
            == Some(self.me.as_str())
    }
}

impl Drop for HeldPlace {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Dropped without release(): an error path or a panicking worker.
        self.keeper.abort();
        let (addr, place, me) = (
            self.session.addr().to_string(),
            self.place.clone(),
            self.me.clone(),
        );
        unregister(&addr, &place);
        register(&addr, &place, &me);
        release_all_blocking();
    }
}

/// How a caller waits for a place and hears about it.
pub struct Wanted<'a> {
    pub wait: Duration,
    pub ttl: Duration,
    pub say: &'a (dyn Fn(&str) + Sync),
}

/// Acquires the board's place and fills in the console and power the
/// board file leaves to it. Waits up to `wait` for a place another holder
/// has; takes over only a holder hilt recorded that is provably gone.
pub async fn take(board: &mut BoardFile, w: &Wanted<'_>) -> anyhow::Result<HeldPlace> {
    let mut cfg = board
        .labgrid
        .clone()
        .context("the board has no `labgrid:` section")?;
    let me = identity();
    let session = Arc::new(
        Session::open(&cfg.coordinator, &me)
            .await
            .with_context(|| format!("board {}: opening a labgrid session", board.name))?,
    );
    let reservation = if cfg.place.is_empty() {
        let (token, place) = reserve(&session, &cfg.tags, w)
            .await
            .with_context(|| format!("board {}: reserving a labgrid place", board.name))?;
        (w.say)(&format!(
            "labgrid reservation {token}: place {place} allocated for tags {}",
            tags_text(&cfg.tags)
        ));
        cfg.place = place;
        Some(token)
    } else {
        None
    };
    if let Err(e) = acquire(&session, &cfg, &me, w).await {
        if let Some(t) = &reservation {
            let _ = session.cancel_reservation(t).await;
        }
        return Err(e.context(format!("board {}: labgrid place {}", board.name, cfg.place)));
    }
    register(&cfg.coordinator, &cfg.place, &me);
    let record = Record::mine(w.ttl);
    let held = |lost, keeper| HeldPlace {
        board: board.name.clone(),
        place: cfg.place.clone(),
        session: session.clone(),
        me: me.clone(),
        lost,
        keeper,
        released: false,
        reservation: reservation.clone(),
    };
    if let Err(e) = session
        .set_tags(&cfg.place, HashMap::from([(TAG.into(), record.encode())]))
        .await
    {
        let h = held(watch::channel(None).1, tokio::spawn(async {}));
        let _ = h.release().await;
        return Err(anyhow::Error::new(e).context("recording hilt as the place's holder"));
    }
    let (lost_tx, lost) = watch::channel(None);
    let keeper = tokio::spawn(keep(
        session.clone(),
        cfg.place.clone(),
        me.clone(),
        w.ttl,
        lost_tx,
    ));
    let h = held(lost, keeper);
    // Errors from here on drop `h`, which releases the place.
    let state = resolve::wait_for_ports(&session, &cfg).await;
    resolve(board, &cfg, &state)?;
    Ok(h)
}

fn tags_text(tags: &std::collections::BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reserves any place with `tags` and waits (up to `wait`) for the
/// coordinator to allocate one: the token and the place. The reservation
/// is cancelled if none is allocated in time.
async fn reserve(
    session: &Session,
    tags: &std::collections::BTreeMap<String, String>,
    w: &Wanted<'_>,
) -> anyhow::Result<(String, String)> {
    let filter: HashMap<String, String> =
        tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let token = session.reserve(filter, 0.0).await?;
    let deadline = tokio::time::Instant::now() + w.wait;
    let mut told = false;
    let why = loop {
        match session.poll_reservation(&token).await {
            Ok(r) => match (r.state, r.place) {
                (ReservationState::Allocated | ReservationState::Acquired, Some(p)) => {
                    return Ok((token, p))
                }
                (ReservationState::Expired | ReservationState::Invalid, _) => {
                    break format!("the coordinator marked reservation {token} {:?}", r.state)
                }
                _ => {}
            },
            Err(e) => break e.to_string(),
        }
        if tokio::time::Instant::now() >= deadline {
            break format!(
                "no place with tags {} was allocated within {} s (see `labgrid-client reservations` and `places`)",
                tags_text(tags),
                w.wait.as_secs()
            );
        }
        if !told {
            (w.say)(&format!(
                "labgrid reservation {token} for tags {} is waiting for a place",
                tags_text(tags)
            ));
            told = true;
        }
        // Well inside the minute after which a waiting reservation expires.
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let _ = session.cancel_reservation(&token).await;
    bail!("{why}")
}

/// Acquires the place once it is free (or its hilt holder provably gone),
/// with its matches online.
async fn acquire(
    session: &Session,
    cfg: &LabgridCfg,
    me: &str,
    w: &Wanted<'_>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + w.wait;
    let mut told = false;
    let mut watch = session.watch();
    loop {
        let state = session.state();
        let Some(place) = state.places.get(&cfg.place) else {
            bail!(
                "the coordinator at {} has no place {:?} (known: {}); create it with \
                 `labgrid-client -x {0} -p {1} create` and `add-match`",
                cfg.coordinator,
                cfg.place,
                state.places.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        if place.matches.is_empty() {
            bail!(
                "place {} has no resource matches: add them with `labgrid-client -p {0} add-match EXPORTER/GROUP/CLASS`",
                cfg.place
            );
        }
        let offline = state.offline_matches(place);
        let busy = match (&place.acquired, offline.is_empty()) {
            (Some(holder), _) => {
                let rec = place.tags.get(TAG).and_then(|t| Record::decode(t));
                match rec.as_ref().and_then(Record::gone) {
                    Some(why) => {
                        (w.say)(&format!(
                            "labgrid place {}: taking it over from {holder} ({why})",
                            cfg.place
                        ));
                        session.release(&cfg.place, Some(holder)).await?;
                        // Whoever acquires next, this loop looks again
                        // rather than hammering the coordinator.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    None => format!(
                        "acquired by {holder}{}",
                        rec.map(|r| format!(" ({})", r.describe()))
                            .unwrap_or_default()
                    ),
                }
            }
            (None, false) => format!(
                "its resource matches {} have no available resource (is the exporter running?)",
                offline.join(", ")
            ),
            (None, true) => match session.acquire(&cfg.place).await {
                Ok(()) => {
                    let now = session.state();
                    let holder = now.places.get(&cfg.place).and_then(|p| p.acquired.clone());
                    if holder.as_deref() == Some(me) {
                        return Ok(());
                    }
                    format!("acquired by {}", holder.unwrap_or_default())
                }
                // Someone acquired it between our look and our call.
                Err(e) => format!("{e}"),
            },
        };
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{busy}: waited {} s; try again later or raise --lease-wait",
                w.wait.as_secs()
            );
        }
        if !told {
            (w.say)(&format!(
                "labgrid place {}: {busy}; waiting up to {} s",
                cfg.place,
                w.wait.as_secs()
            ));
            told = true;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let _ = tokio::time::timeout(left.min(Duration::from_secs(2)), watch.changed()).await;
    }
}

/// Renews the holder record and watches the place: the moment it is no
/// longer ours (released or taken by someone else, the place deleted, the
/// session gone), says why on `lost` and stops.
async fn keep(
    session: Arc<Session>,
    place: String,
    me: String,
    ttl: Duration,
    lost: watch::Sender<Option<String>>,
) {
    let mut rx = session.watch();
    let beat = (ttl / 3).clamp(Duration::from_millis(500), crate::lease::HEARTBEAT);
    let mut tick = tokio::time::interval(beat);
    tick.tick().await;
    let why = loop {
        let gone = {
            let s = rx.borrow_and_update();
            match (s.closed.as_ref(), s.places.get(&place)) {
                (Some(c), _) => Some(format!("lost the labgrid session: {c}")),
                (None, None) => Some(format!("labgrid place {place} was deleted")),
                (None, Some(p)) if p.acquired.as_deref() != Some(me.as_str()) => {
                    Some(match &p.acquired {
                        Some(other) => format!("labgrid place {place} was taken by {other}"),
                        None => format!("labgrid place {place} was released by someone else"),
                    })
                }
                _ => None,
            }
        };
        if let Some(why) = gone {
            break why;
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { break "the labgrid session ended".into() },
            _ = tick.tick() => {
                let tags = HashMap::from([(TAG.to_string(), Record::mine(ttl).encode())]);
                if let Err(e) = session.set_tags(&place, tags).await {
                    eprintln!("hilt: warning: renewing the holder record of labgrid place {place}: {e}");
                }
            }
        }
    };
    let _ = lost.send(Some(why));
}
