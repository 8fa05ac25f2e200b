//! hilt: hardware-in-the-loop stress harness for ARM/Android boards.

mod artifacts;
mod board;
mod cli;
mod commands;
mod console;
mod durable;
mod failpoint;
mod interrupt;
mod lease;
mod plan;
mod reporting;
mod runner;

fn main() {
    std::process::exit(cli::main());
}
