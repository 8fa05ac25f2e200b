//! Faults a test injects into a real hilt process with
//! `HILT_FAILPOINT=NAME`, for the paths only a bug in hilt reaches: a
//! board's loop that panics must still give the boards back and keep the
//! results so far, and the test that shows it cannot wait for a real bug.
//! Unset, a failpoint costs one environment lookup where it stands.

/// Panics when `HILT_FAILPOINT` names this point.
pub fn hit(name: &str) {
    if std::env::var_os("HILT_FAILPOINT").is_some_and(|v| v == name) {
        panic!("failpoint {name}");
    }
}
