//! A bench board with ramoops resets itself warm after a panic, so that
//! the panic's log survives in RAM for the next boot to read from pstore:
//! the kernel's command line for that, the region U-Boot reserves in the
//! device tree, and the next boot meeting U-Boot on a board left on.

use std::time::Duration;

use hilt_transports::uboot::Reserved;

use super::{RamdiskBoot, TftpFiles};
use crate::board::{resources, Power};
use crate::console::Console;
use crate::plan::{BoardFile, Plan, RamoopsCfg, RamoopsReserve, UbootTftpCfg};

/// The kernel command line's console= for a board on the bench, how its
/// agent reaches the host, and its ramoops region.
pub(super) fn cmdline(board: &BoardFile, reset_after: Duration) -> String {
    let console = board.kernel_console.as_deref().unwrap_or("ttyAML0,115200");
    let base = format!("console={console} hilt.agent_port=console loglevel=4");
    match board.ramoops.as_ref().and_then(RamoopsCfg::numbers) {
        // panic=0: a board that rebooted by itself would run its own
        // autoboot into the evidence window; the host power-cycles it.
        None => format!("{base} panic=0"),
        // With ramoops the reset must be warm, which only the board itself
        // can do after a panic: late enough that the host has finished the
        // iteration and waits for U-Boot on the console.
        Some((address, size, record)) => format!(
            "{base} panic={} ramoops.mem_address={address:#x} ramoops.mem_size={size:#x} ramoops.record_size={record:#x} ramoops.max_reason=2",
            reset_after.as_secs()
        ),
    }
}

/// How long after a panic a board with ramoops resets itself: the evidence
/// window, the end of the iteration and the start of the next boot fit in
/// it.
pub(super) fn reset_after(plan: &Plan) -> Duration {
    Duration::from_secs(plan.watch.evidence_s + 20)
}

/// A boot that met a board left on after a panic, a line of the run's
/// warm_reset.jsonl: whether U-Boot came back by itself (RAM kept) or the
/// board had to be power-cycled (the previous boot's ramoops log is lost).
#[derive(serde::Serialize)]
struct WarmRecord<'a> {
    board: &'a str,
    met_uboot: bool,
    waited_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl RamdiskBoot {
    /// The previous boot left the board on after a panic: with the console
    /// open and no power cut, waits for the kernel's panic= delay to reset
    /// it into U-Boot, and boots from there. None when U-Boot did not come
    /// (or failed): the boot then starts over from a power cycle, and
    /// warm_reset.jsonl says why the previous boot's log is lost.
    pub(super) async fn meet_warm_reset(
        &self,
        tftp: &UbootTftpCfg,
        files: &TftpFiles,
        boot_limit: Duration,
    ) -> anyhow::Result<Option<(Box<dyn Power>, Box<dyn Console>)>> {
        let t0 = std::time::Instant::now();
        let met = async {
            let power = resources::open_power(&self.board, &self.home)?;
            let console = resources::open_console(&self.board, Duration::from_secs(5)).await?;
            let console = self
                .uboot(console, tftp, files, boot_limit + self.reset_after)
                .await?;
            anyhow::Ok((power, console))
        }
        .await;
        let waited_ms = t0.elapsed().as_millis() as u64;
        match met {
            Ok((power, console)) => {
                self.record_warm(true, waited_ms, None)?;
                Ok(Some((power, console)))
            }
            Err(e) => {
                self.record_warm(false, waited_ms, Some(format!("{e:#}")))?;
                Ok(None)
            }
        }
    }

    fn record_warm(
        &self,
        met_uboot: bool,
        waited_ms: u64,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        crate::durable::append_json_line(
            &self.warm_record,
            &WarmRecord {
                board: &self.board.name,
                met_uboot,
                waited_ms,
                error,
            },
        )
    }

    /// What hilt adds to the kernel's device tree: the ramoops region,
    /// unless the board's own tree reserves it.
    pub(super) fn reserved(&self) -> Vec<Reserved> {
        match &self.board.ramoops {
            Some(r) if r.reserve == RamoopsReserve::Uboot => r
                .numbers()
                .map(|(address, size, _)| Reserved {
                    name: "hilt-ramoops".into(),
                    address,
                    size,
                })
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }
}
