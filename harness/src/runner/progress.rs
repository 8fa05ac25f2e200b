//! Progress for people on a TTY, plain timestamped lines for logs, and
//! nothing at all with --quiet.

use std::io::IsTerminal;
use std::sync::Arc;

use hilt_reports::IterationRecord;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    bar: Option<Arc<ProgressBar>>,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .expect("static template"),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            Arc::new(b)
        });
        Self { bar, quiet }
    }

    pub fn note(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(format!("hilt: {msg}")),
            None if !self.quiet => {
                eprintln!("{} hilt: {msg}", chrono::Utc::now().format("%H:%M:%S"))
            }
            None => {}
        }
    }

    pub fn iteration(&self, label: &str, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(format!("{label}: {msg}")),
            None if !self.quiet => {
                eprintln!("{} {label}: {msg}", chrono::Utc::now().format("%H:%M:%S"))
            }
            None => {}
        }
    }

    pub fn done(&self, label: &str, r: &IterationRecord) {
        let boot = r
            .boot_ms
            .map(|b| format!(", boot {:.1} s", b as f64 / 1000.0))
            .unwrap_or_default();
        self.note(&format!(
            "{label}: {} ({}) in {:.1} s{boot}",
            r.outcome.as_str(),
            r.detail,
            r.wall_ms as f64 / 1000.0
        ));
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
