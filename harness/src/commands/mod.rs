//! The commands that work on one board outside a run: `hilt boards` and
//! `hilt doctor` (what is attached, and whether it answers), `hilt flash`
//! and `hilt deploy`. They open the board's resources like a run does, and
//! share nothing else with it.

pub mod deploy;
pub mod doctor;
pub mod flash;

use std::time::Duration;

use tokio::sync::watch;

use crate::board::labgrid::{self, HeldPlace};
use crate::interrupt::{self, Interrupted};
use crate::lease;
use crate::plan::BoardFile;

/// A command's lease and holder record outlive a hilt killed mid-command
/// this long.
const TTL: Duration = Duration::from_secs(120);

/// A board in a labgrid lab is driven only while its place is ours, as in
/// a run: acquires it and fills in the console and power it provides.
/// None for a board outside a lab.
async fn hold(b: &mut BoardFile, wait: Duration) -> anyhow::Result<Option<HeldPlace>> {
    if b.labgrid.is_none() {
        return Ok(None);
    }
    let say = |m: &str| eprintln!("hilt: {m}");
    let h = labgrid::take(
        b,
        &labgrid::Wanted {
            wait,
            ttl: TTL,
            say: &say,
        },
    )
    .await?;
    eprintln!(
        "hilt: acquired labgrid place {} as {}",
        h.place,
        labgrid::identity()
    );
    Ok(Some(h))
}

/// Takes the board's lease in the host-wide directory, as `hilt run`
/// does: a run and a command, or two commands, never drive one board at
/// once. Waits up to `wait` for another holder, naming it.
async fn lease_board(b: &BoardFile, command: &str, wait: Duration) -> anyhow::Result<lease::Held> {
    let leases = lease::Leases::new(lease::default_dir());
    let claim = lease::Claim {
        run_dir: String::new(),
        plan: String::new(),
        ttl: TTL,
        command: command.to_string(),
    };
    let say = |m: &str| eprintln!("hilt: {m}");
    let held = lease::acquire(&leases, std::slice::from_ref(&b.name), claim, wait, &say).await?;
    eprintln!(
        "hilt: leased board {} (in {})",
        b.name,
        leases.dir().display()
    );
    Ok(held)
}

/// `fut`, unless the command is interrupted first.
async fn unless_interrupted<T>(
    cancel: &mut watch::Receiver<bool>,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        r = fut => r,
        _ = cancel.wait_for(|c| *c) => Err(Interrupted.into()),
    }
}

/// Runs `work` (the command `command`) on the board with its lease and,
/// for a board in a lab, its place held; gives both back whatever `work`
/// returned, and on Ctrl-C or SIGTERM, which stop `work` where it is.
/// `wait` bounds the wait for each.
pub async fn on_held_board<T, F, Fut>(
    mut b: BoardFile,
    command: &str,
    wait: Duration,
    work: F,
) -> anyhow::Result<T>
where
    F: FnOnce(BoardFile) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut cancel =
        interrupt::watch("interrupted: giving the board back (interrupt again to exit at once)");
    let name = b.name.clone();
    let lease = unless_interrupted(&mut cancel, lease_board(&b, command, wait)).await?;
    let held = match unless_interrupted(&mut cancel, hold(&mut b, wait)).await {
        Ok(h) => h,
        Err(e) => {
            // Interrupted between acquiring the place and handing it over:
            // it is only in the registry of places this process holds.
            labgrid::release_all_blocking();
            return Err(e);
        }
    };
    let lost: Vec<_> = lease
        .lost(&name)
        .into_iter()
        .chain(held.as_ref().map(HeldPlace::lost))
        .collect();
    let r = tokio::select! {
        r = unless_interrupted(&mut cancel, work(b)) => r,
        why = lease::first_loss(lost) => Err(anyhow::anyhow!(
            "stopped driving board {name}: {why}"
        )),
    };
    if let Some(h) = held {
        let place = h.place.clone();
        match h.release().await {
            Ok(()) => eprintln!("hilt: released labgrid place {place}"),
            Err(e) => eprintln!("hilt: warning: {e:#}"),
        }
    }
    drop(lease);
    eprintln!("hilt: released the lease of board {name}");
    r
}
