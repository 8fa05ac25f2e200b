//! The plan, board and workload files as they were when a run started.
//!
//! A night is long and a plan file may be edited (or checked out anew)
//! while a run uses it. The run keeps what it resolved at the start, copies
//! those exact bytes into RUN_DIR/snapshot/ with their sha256, and warns
//! when a file on disk no longer matches, so nobody mistakes the results
//! for results of the edited file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// plan, board or workload.
    pub role: &'static str,
    pub path: PathBuf,
    /// The file name in the snapshot directory.
    pub name: String,
    pub sha256: String,
    #[serde(skip)]
    pub text: String,
}

impl Source {
    pub fn new(role: &'static str, path: &Path, text: &str) -> Self {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{role}.yaml"));
        Self {
            role,
            path: path.to_path_buf(),
            // Workloads are a directory of their own in the tree; keep the
            // role in the name so a board and a workload never collide.
            name: format!("{role}-{file}"),
            sha256: sha256(text.as_bytes()),
            text: text.to_string(),
        }
    }

    /// Why the file on disk is no longer what the run uses, if it is not.
    pub fn changed(&self) -> Option<String> {
        // Read as the loader reads: a file swapped for a huge one (or for
        // /dev/zero) is a change, found without reading all of it.
        let now = std::fs::File::open(&self.path).and_then(|f| {
            use std::io::Read;
            let mut now = Vec::new();
            f.take(super::bounds::MAX_FILE_BYTES as u64 + 1)
                .read_to_end(&mut now)
                .map(|_| now)
        });
        match now {
            Ok(now) if sha256(&now) == self.sha256 => None,
            Ok(now) => Some(format!(
                "{} {} changed on disk since the run started (sha256 {} now, {} in the snapshot)",
                self.role,
                self.path.display(),
                &sha256(&now)[..12],
                &self.sha256[..12]
            )),
            Err(e) => Some(format!(
                "{} {} can no longer be read ({e}); the run goes on with its snapshot",
                self.role,
                self.path.display()
            )),
        }
    }
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Writes `dir/snapshot/` (the files and `sources.json`) and `dir/plan.yaml`.
pub fn write(sources: &[Source], dir: &Path) -> anyhow::Result<()> {
    let snap = dir.join("snapshot");
    std::fs::create_dir_all(&snap).with_context(|| format!("creating {}", snap.display()))?;
    for s in sources {
        let p = snap.join(&s.name);
        std::fs::write(&p, &s.text).with_context(|| format!("writing {}", p.display()))?;
        if s.role == "plan" {
            // Where reports and earlier tools look for the plan as run.
            let p = dir.join("plan.yaml");
            std::fs::write(&p, &s.text).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    let p = snap.join("sources.json");
    std::fs::write(&p, serde_json::to_vec_pretty(sources)?)
        .with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

/// Watches the files for changes, reporting each changed file once.
#[derive(Default)]
pub struct ChangeWatch {
    reported: Vec<PathBuf>,
}

impl ChangeWatch {
    pub fn check(&mut self, sources: &[Source]) -> Vec<String> {
        let mut out = Vec::new();
        for s in sources {
            if self.reported.contains(&s.path) {
                continue;
            }
            if let Some(why) = s.changed() {
                self.reported.push(s.path.clone());
                out.push(why);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_keeps_the_bytes_and_a_change_is_reported_once() {
        let tmp = tempfile::tempdir().unwrap();
        let plan = tmp.path().join("p.yaml");
        std::fs::write(&plan, "name: a\n").unwrap();
        let sources = vec![Source::new("plan", &plan, "name: a\n")];
        let run = tmp.path().join("run");
        write(&sources, &run).unwrap();
        assert_eq!(
            std::fs::read_to_string(run.join("snapshot/plan-p.yaml")).unwrap(),
            "name: a\n"
        );
        assert_eq!(
            std::fs::read_to_string(run.join("plan.yaml")).unwrap(),
            "name: a\n"
        );
        let listed: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("snapshot/sources.json")).unwrap())
                .unwrap();
        assert_eq!(listed[0]["sha256"], sha256(b"name: a\n"));

        let mut watch = ChangeWatch::default();
        assert!(watch.check(&sources).is_empty());
        std::fs::write(&plan, "name: b\n").unwrap();
        let w = watch.check(&sources);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("changed on disk"), "{}", w[0]);
        assert!(watch.check(&sources).is_empty(), "reported once");
    }
}
