//! The console capture's notes: activity, the agent's exit, kernel reports,
//! and the console closing.

use std::time::{Duration, Instant};

use hilt_reports::Detector;

use super::journal::{HostEvent, KernelLine};
use super::{Flow, Iteration};
use crate::console::capture::ConsoleNote;

impl Iteration<'_> {
    pub(super) async fn on_console_note(&mut self, note: Option<ConsoleNote>) -> Flow {
        match note {
            Some(ConsoleNote::Activity(t)) => self.st.last_activity = self.st.last_activity.max(t),
            Some(ConsoleNote::AgentExited(status)) => {
                let exited = HostEvent::Phase {
                    phase: "agent_exited",
                };
                self.journal.log("console", &exited);
                self.st.agent_gone.get_or_insert_with(|| {
                    let why = format!("the board agent exited (status {status})");
                    (Instant::now(), why)
                });
            }
            Some(ConsoleNote::Kernel(event)) => {
                let line = KernelLine {
                    kind: "kernel",
                    event: &event,
                };
                self.journal.log("console", &line);
                self.on_kernel_event(*event, Detector::Console, None).await;
            }
            Some(ConsoleNote::Closed) | None => {
                // The console closes when QEMU exits; the power check
                // says why. Otherwise the transport alone failed: the
                // agent channel still carries the iteration, and the
                // kernel's reports still reach it through /dev/kmsg.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(why) = self.links.power.lost() {
                    return self.st.lost_power(why);
                }
                self.st.console_open = false;
                let closed = HostEvent::Phase {
                    phase: "console_closed",
                };
                self.journal.log("host", &closed);
                self.say("console closed; continuing on the agent channel");
            }
        }
        Flow::Continue
    }
}
