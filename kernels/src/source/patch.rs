//! Applying and reverting patches in a kernel work tree, with GNU patch.
//!
//! The work tree is shared by every variant built from the same source, so
//! what is applied is recorded in a state file before the tree changes and
//! taken back out before the next variant's patches go in. An interrupted
//! build therefore never leaks one variant's patches into another's.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::digest::sha256_bytes;
use crate::Error;

/// One patch of a variant: applied as written, or reverted (applied in reverse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchStep {
    /// Where the user's file was; for the record only.
    pub path: PathBuf,
    pub sha256: String,
    pub reverse: bool,
    /// The patch itself, so the state file can undo it even if the user's
    /// file changed or disappeared in the meantime.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub text: String,
}

impl PatchStep {
    pub fn read(path: &Path, reverse: bool) -> Result<PatchStep, Error> {
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| Error::artifact(path, "not a text patch (invalid UTF-8)"))?;
        if !text.lines().any(|l| l.starts_with("+++ ")) {
            return Err(Error::artifact(
                path,
                "no `+++ ` line: expected a unified diff (diff -u, git diff or git format-patch)",
            ));
        }
        Ok(PatchStep {
            path: path.to_path_buf(),
            sha256: sha256_bytes(&bytes),
            reverse,
            text,
        })
    }

    fn verb(&self) -> &'static str {
        if self.reverse {
            "revert"
        } else {
            "apply"
        }
    }
}

/// The patches currently in a work tree, in the order they went in.
pub(crate) struct TreeState {
    file: PathBuf,
    applied: Vec<PatchStep>,
}

impl TreeState {
    pub fn load(file: PathBuf) -> Result<TreeState, Error> {
        let applied = match fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::artifact(
                    &file,
                    format!("unreadable patch state ({e}): delete the work tree to start over"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&file, e)),
        };
        Ok(TreeState { file, applied })
    }

    fn save(&self) -> Result<(), Error> {
        let tmp = self.file.with_extension("tmp");
        let json = serde_json::to_vec_pretty(&self.applied).expect("patch state serializes");
        fs::write(&tmp, json).map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &self.file).map_err(|e| Error::io(&self.file, e))
    }

    /// Brings `tree` to exactly `wanted`: a no-op when it is already there,
    /// so an unchanged variant touches no file (and kbuild rebuilds nothing).
    pub fn switch_to(&mut self, tree: &Path, wanted: &[PatchStep]) -> Result<(), Error> {
        let same = self.applied.len() == wanted.len()
            && self
                .applied
                .iter()
                .zip(wanted)
                .all(|(a, b)| a.sha256 == b.sha256 && a.reverse == b.reverse);
        if same {
            return Ok(());
        }
        while let Some(last) = self.applied.last().cloned() {
            let undo = PatchStep {
                reverse: !last.reverse,
                ..last.clone()
            };
            run_patch(tree, &undo).map_err(|e| {
                Error::artifact(
                    tree,
                    format!(
                        "could not take {} back out of the work tree ({e}); delete {} to start over",
                        last.path.display(),
                        tree.display()
                    ),
                )
            })?;
            self.applied.pop();
            self.save()?;
        }
        for step in wanted {
            // Recorded first: should patch die half-way, the next run still
            // knows to take it out.
            self.applied.push(step.clone());
            self.save()?;
            if let Err(e) = run_patch(tree, step) {
                self.applied.pop();
                self.save()?;
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Applies one step: a dry run first, so a patch that does not fit leaves
/// the tree untouched and the error says which hunks failed.
pub fn run_patch(tree: &Path, step: &PatchStep) -> Result<(), Error> {
    let attempt = |dry: bool| -> Result<std::process::Output, Error> {
        let mut c = Command::new("patch");
        c.current_dir(tree).env("LC_ALL", "C").args([
            "-p1",
            "--batch",
            "--forward",
            "--no-backup-if-mismatch",
            "-r",
            "-",
        ]);
        if step.reverse {
            c.arg("--reverse");
        }
        if dry {
            c.arg("--dry-run");
        }
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ToolMissing {
                tool: "patch".into(),
            },
            _ => Error::io(tree, e),
        })?;
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(step.text.as_bytes())
            .map_err(|e| Error::io(&step.path, e))?;
        child.wait_with_output().map_err(|e| Error::io(tree, e))
    };
    let dry = attempt(true)?;
    if !dry.status.success() {
        let out = String::from_utf8_lossy(&dry.stdout);
        let failed: Vec<&str> = out
            .lines()
            .filter(|l| {
                l.contains("FAILED")
                    || l.contains("can't find file")
                    || l.contains("Reversed")
                    || l.contains("No file to patch")
                    || l.contains("Unreversed")
            })
            .collect();
        let hint = if step.reverse {
            "is the change present in this tree? a revert needs the patch as it was applied"
        } else {
            "was it made against another tree, or is it applied already?"
        };
        return Err(Error::PatchFailed {
            patch: step.path.clone(),
            tree: tree.to_path_buf(),
            action: step.verb(),
            detail: format!(
                "{}; {hint}",
                if failed.is_empty() {
                    out.lines().last().unwrap_or("patch failed").to_string()
                } else {
                    failed.join("; ")
                }
            ),
        });
    }
    let real = attempt(false)?;
    if !real.status.success() {
        return Err(Error::PatchFailed {
            patch: step.path.clone(),
            tree: tree.to_path_buf(),
            action: step.verb(),
            detail: String::from_utf8_lossy(&real.stdout).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIG: &str = "static void kickoff(void)\n{\n\tint a;\n\n\twork();\n}\n";
    const FIXED: &str =
        "static void kickoff(void)\n{\n\tint a;\n\tint flags;\n\n\tflags = save();\n\twork();\n\trestore(flags);\n}\n";
    const FIX: &str = "--- a/fs/z.c\n+++ b/fs/z.c\n@@ -1,6 +1,9 @@\n static void kickoff(void)\n {\n \tint a;\n+\tint flags;\n \n+\tflags = save();\n \twork();\n+\trestore(flags);\n }\n";

    fn tree(content: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("fs")).unwrap();
        fs::write(d.path().join("fs/z.c"), content).unwrap();
        d
    }

    fn step(dir: &Path, name: &str, text: &str, reverse: bool) -> PatchStep {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        PatchStep::read(&p, reverse).unwrap()
    }

    fn read(d: &tempfile::TempDir) -> String {
        fs::read_to_string(d.path().join("fs/z.c")).unwrap()
    }

    #[test]
    fn applies_and_reverts_a_fix() {
        let p = tempfile::tempdir().unwrap();
        let t = tree(ORIG);
        run_patch(t.path(), &step(p.path(), "fix.patch", FIX, false)).unwrap();
        assert_eq!(read(&t), FIXED);
        run_patch(t.path(), &step(p.path(), "fix.patch", FIX, true)).unwrap();
        assert_eq!(read(&t), ORIG);
    }

    #[test]
    fn a_revert_of_an_absent_change_fails_and_leaves_the_tree_alone() {
        let p = tempfile::tempdir().unwrap();
        let t = tree(ORIG);
        let err = run_patch(t.path(), &step(p.path(), "fix.patch", FIX, true)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("revert") && msg.contains("fix.patch"), "{msg}");
        assert_eq!(read(&t), ORIG);
    }

    #[test]
    fn a_patch_that_does_not_fit_names_the_failure() {
        let p = tempfile::tempdir().unwrap();
        let t = tree("something else entirely\n");
        let err = run_patch(t.path(), &step(p.path(), "fix.patch", FIX, false)).unwrap_err();
        assert!(err.to_string().contains("FAILED"), "{err}");
        assert_eq!(read(&t), "something else entirely\n");
    }

    #[test]
    fn not_a_diff_is_rejected_when_read() {
        let p = tempfile::tempdir().unwrap();
        fs::write(p.path().join("x.patch"), "hello\n").unwrap();
        let err = PatchStep::read(&p.path().join("x.patch"), false).unwrap_err();
        assert!(err.to_string().contains("unified diff"), "{err}");
    }

    #[test]
    fn state_switches_between_variants_and_survives_reload() {
        let p = tempfile::tempdir().unwrap();
        let t = tree(FIXED);
        let state_file = p.path().join("state.json");
        let revert = step(p.path(), "fix.patch", FIX, true);

        let mut s = TreeState::load(state_file.clone()).unwrap();
        s.switch_to(t.path(), std::slice::from_ref(&revert))
            .unwrap();
        assert_eq!(read(&t), ORIG);

        // A new process finds the revert recorded and takes it out.
        let mut s = TreeState::load(state_file.clone()).unwrap();
        assert_eq!(s.applied.len(), 1);
        s.switch_to(t.path(), &[]).unwrap();
        assert_eq!(read(&t), FIXED);

        // Asking twice for the same state touches nothing.
        let mut s = TreeState::load(state_file).unwrap();
        s.switch_to(t.path(), std::slice::from_ref(&revert))
            .unwrap();
        let before = fs::metadata(t.path().join("fs/z.c"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.switch_to(t.path(), &[revert]).unwrap();
        let after = fs::metadata(t.path().join("fs/z.c"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn a_failed_step_is_not_recorded() {
        let p = tempfile::tempdir().unwrap();
        let t = tree(ORIG);
        let state_file = p.path().join("state.json");
        let mut s = TreeState::load(state_file.clone()).unwrap();
        let bad = step(p.path(), "fix.patch", FIX, true);
        assert!(s.switch_to(t.path(), &[bad]).is_err());
        assert!(TreeState::load(state_file).unwrap().applied.is_empty());
    }
}
