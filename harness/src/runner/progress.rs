//! Progress for people on a TTY (one line per board), plain timestamped
//! lines for logs, and nothing at all with --quiet.

use std::io::IsTerminal;
use std::sync::Arc;

use hilt_reports::IterationRecord;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    multi: Option<Arc<MultiProgress>>,
    quiet: bool,
}

/// One board's line.
#[derive(Clone)]
pub struct BoardLine {
    bar: Option<ProgressBar>,
    quiet: bool,
    board: String,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let multi =
            (!quiet && std::io::stderr().is_terminal()).then(|| Arc::new(MultiProgress::new()));
        Self { multi, quiet }
    }

    pub fn note(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(format!("hilt: {msg}"));
            }
            None if !self.quiet => {
                eprintln!("{} hilt: {msg}", chrono::Utc::now().format("%H:%M:%S"))
            }
            None => {}
        }
    }

    pub fn board(&self, board: &str) -> BoardLine {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {prefix} {msg}")
                    .expect("static template"),
            );
            b.set_prefix(board.to_string());
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        });
        BoardLine {
            bar,
            quiet: self.quiet,
            board: board.to_string(),
        }
    }

    pub fn finish(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl BoardLine {
    pub fn iteration(&self, label: &str, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(format!("{label}: {msg}")),
            None if !self.quiet => eprintln!(
                "{} {}: {label}: {msg}",
                chrono::Utc::now().format("%H:%M:%S"),
                self.board
            ),
            None => {}
        }
    }

    pub fn done(&self, progress: &Progress, label: &str, r: &IterationRecord) {
        let boot = r
            .boot_ms
            .map(|b| format!(", boot {:.1} s", b as f64 / 1000.0))
            .unwrap_or_default();
        progress.note(&format!(
            "{}: {label}: {} ({}) in {:.1} s{boot}",
            self.board,
            r.outcome.as_str(),
            r.detail,
            r.wall_ms as f64 / 1000.0
        ));
    }

    pub fn idle(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.finish_with_message(msg.to_string()),
            None if !self.quiet => eprintln!(
                "{} {}: {msg}",
                chrono::Utc::now().format("%H:%M:%S"),
                self.board
            ),
            None => {}
        }
    }
}
