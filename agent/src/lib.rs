//! The hilt board agent, as a library so benches and tests can reach its
//! parts; `main.rs` is the program.

pub mod block;
pub mod channel;
pub mod control;
pub mod data;
pub mod devnode;
pub mod dm;
pub mod dstate;
pub mod faults;
pub mod kmsg;
pub mod kprobe;
pub mod run;
pub mod sampler;
pub mod selfwatch;
pub mod settings;
pub mod shm;
pub mod storage;
pub mod swap;
pub mod sys;
pub mod watch;
pub mod workloads;
