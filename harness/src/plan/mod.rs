//! Test plans: loading, resolving the board and workload files they name,
//! and validating everything before a board is touched.

mod bounds;
mod error;
mod load;
mod model;
mod positions;
pub mod snapshot;
mod validate;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use error::PlanError;
pub use load::load;
pub use model::*;
pub use validate::is_config_target;

/// A plan with everything it refers to loaded and checked.
#[derive(Debug, Clone)]
pub struct ResolvedPlan {
    pub plan: Plan,
    pub path: PathBuf,
    pub sha256: String,
    /// The first board; the one every board-independent setting comes from.
    pub board: BoardFile,
    /// Every board the plan names, `board` first.
    pub boards: Vec<BoardFile>,
    pub workloads: Vec<WorkloadFile>,
    /// Every file the plan was resolved from, as read: what a run uses,
    /// whatever happens to the files on disk afterwards.
    pub sources: Vec<snapshot::Source>,
}

impl ResolvedPlan {
    pub fn memory_mb(&self) -> u32 {
        self.plan
            .machine
            .memory_mb
            .or(self.board.qemu.as_ref().map(|q| q.memory_mb))
            .unwrap_or(256)
    }

    pub fn cpus(&self) -> u32 {
        self.plan
            .machine
            .cpus
            .or(self.board.qemu.as_ref().map(|q| q.cpus))
            .unwrap_or(2)
    }

    /// The boards a run drives at once: each named board, and each
    /// emulated one `instances` times. Instances after the first are named
    /// `<board>-2`, `<board>-3`...: the name is what results record and
    /// what is leased.
    pub fn instances(&self) -> Vec<BoardFile> {
        let mut out = Vec::new();
        for b in &self.boards {
            let n = if b.kind().can_copy() {
                self.plan.instances.max(1)
            } else {
                1
            };
            for i in 0..n {
                let mut b = b.clone();
                if i > 0 {
                    b.name = format!("{}-{}", b.name, i + 1);
                }
                out.push(b);
            }
        }
        out
    }
}

/// The directory that holds `boards/` and `workloads/`: the plan's own
/// ancestors first, so a plan in a checkout finds that checkout's files.
pub fn home_for(plan: &Path) -> PathBuf {
    let abs = std::path::absolute(plan).unwrap_or_else(|_| plan.to_path_buf());
    for dir in abs.ancestors().skip(1) {
        if dir.join("boards").is_dir() && dir.join("workloads").is_dir() {
            return dir.to_path_buf();
        }
    }
    std::env::current_dir().unwrap_or_default()
}

/// `name` or a path: a value with a slash or a .yaml suffix is a path
/// relative to the referring file, otherwise `<home>/<dir>/<name>.yaml`.
pub fn reference(home: &Path, referrer: &Path, dir: &str, value: &str) -> PathBuf {
    if value.contains('/') || value.ends_with(".yaml") || value.ends_with(".yml") {
        referrer.parent().unwrap_or(Path::new(".")).join(value)
    } else {
        home.join(dir).join(format!("{value}.yaml"))
    }
}

/// A path the plan gives for a kernel input (image, patch, fragment):
/// relative to the plan file unless absolute.
pub fn plan_relative(plan: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        plan.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// A board file on its own, loaded and checked.
pub fn load_board(path: &Path) -> Result<BoardFile, PlanError> {
    let b = load::<BoardFile>(path)?;
    validate::board(path, &b)?;
    Ok(b.value)
}

pub fn resolve(path: &Path) -> Result<ResolvedPlan, PlanError> {
    resolve_as(path, path)
}

/// Resolves the plan in `file` as if it were at `path`: a run directory's
/// snapshot of a plan finds the board and workload files the original did.
pub fn resolve_as(file: &Path, path: &Path) -> Result<ResolvedPlan, PlanError> {
    let mut loaded = load::<Plan>(file)?;
    let home = home_for(path);
    let plan = &loaded.value;
    let at = |key: &str| loaded.positions.of(key);

    let named: Vec<(String, &String)> =
        match (&plan.board, plan.boards.is_empty()) {
            (Some(b), true) => vec![("board".to_string(), b)],
            (None, false) => plan
                .boards
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("boards[{i}]"), b))
                .collect(),
            (Some(_), false) => {
                return Err(PlanError::new(
                    path,
                    at("boards"),
                    "boards",
                    "expected either `board:` (one board) or `boards:` (several), not both",
                ))
            }
            (None, true) => return Err(PlanError::new(
                path,
                positions::Pos { line: 1, column: 1 },
                "board",
                "missing: expected `board: NAME` or `boards: [NAME, ...]` naming files in boards/",
            )),
        };
    let mut boards: Vec<BoardFile> = Vec::new();
    let mut sources = vec![snapshot::Source::new("plan", path, &loaded.text)];
    for (key, name) in named {
        let board_path = reference(&home, path, "boards", name);
        if !board_path.is_file() {
            return Err(PlanError::new(
                path,
                at(&key),
                key,
                format!(
                    "no board file {}: expected a name from boards/ or a path to a board YAML",
                    board_path.display()
                ),
            ));
        }
        let board = load::<BoardFile>(&board_path)?;
        validate::board(&board_path, &board)?;
        if boards.iter().any(|b| b.name == board.value.name) {
            return Err(PlanError::new(
                path,
                at(&key),
                key,
                format!(
                    "board {:?} is named twice: to run several copies of an emulated board, use `instances:`",
                    board.value.name
                ),
            ));
        }
        sources.push(snapshot::Source::new("board", &board_path, &board.text));
        boards.push(board.value);
    }

    let mut workloads = Vec::new();
    for (i, w) in plan.workloads.iter().enumerate() {
        let key = format!("workloads[{i}]");
        let wpath = reference(&home, path, "workloads", w);
        if !wpath.is_file() {
            return Err(PlanError::new(
                path,
                at(&key),
                key,
                format!(
                    "no workload file {}: expected a name from workloads/ or a path",
                    wpath.display()
                ),
            ));
        }
        let wl = load::<WorkloadFile>(&wpath)?;
        validate::workload(&wpath, &wl)?;
        sources.push(snapshot::Source::new("workload", &wpath, &wl.text));
        workloads.push(wl.value);
    }
    validate::plan(path, &loaded, &boards, &workloads)?;
    let sha256 = hex::encode(Sha256::digest(loaded.text.as_bytes()));
    // Everything below reads one field; a single board is a list of one.
    if let Some(b) = loaded.value.board.take() {
        loaded.value.boards = vec![b];
    }
    Ok(ResolvedPlan {
        plan: loaded.value,
        path: path.to_path_buf(),
        sha256,
        board: boards[0].clone(),
        boards,
        workloads,
        sources,
    })
}
