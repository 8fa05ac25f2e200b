//! What the device prints: one line per command, host and refusal, kept for
//! tests to read and, in the binary, echoed to stderr as a bootloader
//! prints on its UART.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many lines are kept: a host can send commands without end.
pub const MAX_LINES: usize = 10_000;

/// Lines that record a host breaking the protocol start with this.
pub const VIOLATION: &str = "violation: ";

pub struct Log {
    lines: Mutex<VecDeque<String>>,
    echo: bool,
}

impl Log {
    pub fn new(echo: bool) -> Log {
        Log {
            lines: Mutex::default(),
            echo,
        }
    }

    pub fn note(&self, line: String) {
        if self.echo {
            eprintln!("hilt-fastbootd: {line}");
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() >= MAX_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect()
    }
}
