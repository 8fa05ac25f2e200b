//! The commands that work on one board outside a run: `hilt boards` and
//! `hilt doctor` (what is attached, and whether it answers), `hilt flash`
//! and `hilt deploy`. They open the board's resources like a run does, and
//! share nothing else with it.

pub mod deploy;
pub mod doctor;
pub mod flash;
