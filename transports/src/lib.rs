//! How hilt talks to boards. Each module is one transport; the harness
//! sees them through the traits at the seams (a console, power control).

pub mod console;
