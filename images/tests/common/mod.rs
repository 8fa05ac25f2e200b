//! Helpers shared by the integration tests. Host tools are required, not
//! optional: a missing tool fails the test with the package to install,
//! because a skipped comparison proves nothing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), tag)
    }

    pub fn new_in(base: &Path, tag: &str) -> Self {
        let p = base.join(format!("hilt-images-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `program args...`, panicking with an install hint if the program is
/// missing and with its output if it fails.
pub fn run(program: &str, package: &str, args: &[&str]) -> Output {
    let out = run_status(program, package, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// As [`run`] but returns failures to the caller.
pub fn run_status(program: &str, package: &str, args: &[&str]) -> Output {
    match Command::new(program).args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is required by this test but not installed: \
             apt-get install {package} (or run scripts/setup)"
        ),
        Err(e) => panic!("running {program}: {e}"),
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Runs a program with `stdin` from a file and in `cwd`, panicking like [`run`].
pub fn run_with_stdin(
    program: &str,
    package: &str,
    args: &[&str],
    stdin: &Path,
    cwd: &Path,
) -> Output {
    let file = std::fs::File::open(stdin).unwrap();
    let out = match Command::new(program)
        .args(args)
        .stdin(file)
        .current_dir(cwd)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is required by this test but not installed: \
             apt-get install {package} (or run scripts/setup)"
        ),
        Err(e) => panic!("running {program}: {e}"),
    };
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
