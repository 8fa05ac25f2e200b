//! A content-keyed cache directory: an entry is built into a temporary
//! name and renamed into place, so an interrupted build never leaves a
//! half-written entry that a later run would trust.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// `$HILT_CACHE`, else `<home>/.cache`.
    pub fn default_for(home: &Path) -> Self {
        let root = std::env::var_os("HILT_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".cache"));
        Self::new(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn key(parts: &[&[u8]]) -> String {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        hex::encode(&h.finalize()[..12])
    }

    /// Returns `<root>/<kind>/<key><suffix>`, building it with `build` (which
    /// writes to the path it is given) when absent.
    pub fn entry(
        &self,
        kind: &str,
        key: &str,
        suffix: &str,
        build: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<PathBuf> {
        let dir = self.root.join(kind);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{key}{suffix}"));
        if path.exists() {
            return Ok(path);
        }
        let tmp = dir.join(format!(".{key}{suffix}.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_file(&tmp);
        if let Err(e) = build(&tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}
