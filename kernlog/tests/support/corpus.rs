//! Reads the syzkaller console-log corpus (format: see shared/corpus/README.md).
//! Shared by the corpus test and the throughput bench.

use std::fs;
use std::path::{Path, PathBuf};

pub struct CorpusFile {
    pub name: String,
    /// `TITLE:`; `None` (or empty) means the log holds no crash.
    pub title: Option<String>,
    /// `ALT:` titles, also accepted.
    pub alt: Vec<String>,
    /// `TYPE:`, e.g. `HANG`.
    pub kind: Option<String>,
    pub log: Vec<u8>,
}

impl CorpusFile {
    pub fn expects_crash(&self) -> bool {
        self.title.as_deref().is_some_and(|t| !t.is_empty())
    }

    pub fn accepts(&self, title: &str) -> bool {
        self.title.as_deref() == Some(title) || self.alt.iter().any(|a| a == title)
    }
}

/// `HILT_CORPUS`, else `shared/corpus/syzkaller-linux-report` beside the repository.
pub fn dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("HILT_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/syzkaller-linux-report")
        }
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "corpus not found at {}: set HILT_CORPUS to the syzkaller-linux-report directory \
             (normally shared/corpus/syzkaller-linux-report beside the repository checkout)",
            dir.display()
        ))
    }
}

pub fn load(dir: &Path) -> Result<Vec<CorpusFile>, String> {
    let mut files = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if !path.is_file() {
            continue;
        }
        let data = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        files.push(parse(name, &data));
    }
    files.sort_by_key(|f| natural_key(&f.name));
    if files.is_empty() {
        return Err(format!("no corpus files in {}", dir.display()));
    }
    Ok(files)
}

fn natural_key(name: &str) -> (u64, String) {
    (name.parse().unwrap_or(u64::MAX), name.to_string())
}

/// Header lines up to the first empty line, then the log, then optionally an empty
/// line, `REPORT:` and the expected report (ignored here).
pub fn parse(name: String, data: &[u8]) -> CorpusFile {
    let data: Vec<u8> = data.iter().copied().filter(|&b| b != b'\r').collect();
    let mut file = CorpusFile {
        name,
        title: None,
        alt: Vec::new(),
        kind: None,
        log: Vec::new(),
    };
    let mut in_header = true;
    let mut prev_empty = false;
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    for line in body.split(|&b| b == b'\n') {
        if in_header {
            if line.is_empty() {
                in_header = false;
                prev_empty = true;
                continue;
            }
            let text = String::from_utf8_lossy(line);
            if let Some(v) = header_value(&text, "TITLE:") {
                file.title = Some(v);
            } else if let Some(v) = header_value(&text, "ALT:") {
                file.alt.push(v);
            } else if let Some(v) = header_value(&text, "TYPE:") {
                file.kind = Some(v);
            }
            continue;
        }
        if prev_empty && line == b"REPORT:" {
            break;
        }
        file.log.extend_from_slice(line);
        file.log.push(b'\n');
        prev_empty = line.is_empty();
    }
    file
}

fn header_value(line: &str, key: &str) -> Option<String> {
    line.strip_prefix(key).map(|v| v.trim().to_string())
}
