//! The commands that work on one board outside a run: `hilt boards` and
//! `hilt doctor` (what is attached, and whether it answers), `hilt flash`
//! and `hilt deploy`. They open the board's resources like a run does, and
//! share nothing else with it.

pub mod deploy;
pub mod doctor;
pub mod flash;

use std::time::Duration;

use crate::board::labgrid::{self, HeldPlace};
use crate::plan::BoardFile;

/// How long a command waits for a lab place someone else holds.
const PLACE_WAIT: Duration = Duration::from_secs(10);
/// A command's holder record outlives a hilt killed mid-command this long.
const PLACE_TTL: Duration = Duration::from_secs(120);

/// A board in a labgrid lab is driven only while its place is ours, as in
/// a run: acquires it and fills in the console and power it provides.
/// None for a board outside a lab.
pub async fn hold(b: &mut BoardFile) -> anyhow::Result<Option<HeldPlace>> {
    if b.labgrid.is_none() {
        return Ok(None);
    }
    let say = |m: &str| eprintln!("hilt: {m}");
    let h = labgrid::take(
        b,
        &labgrid::Wanted {
            wait: PLACE_WAIT,
            ttl: PLACE_TTL,
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

/// Runs `work` on the board with its place held, and releases the place
/// whatever `work` returned.
pub async fn on_held_board<T, F, Fut>(mut b: BoardFile, work: F) -> anyhow::Result<T>
where
    F: FnOnce(BoardFile) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let held = hold(&mut b).await?;
    let r = work(b).await;
    if let Some(h) = held {
        let place = h.place.clone();
        match h.release().await {
            Ok(()) => eprintln!("hilt: released labgrid place {place}"),
            Err(e) => eprintln!("hilt: warning: {e:#}"),
        }
    }
    r
}
