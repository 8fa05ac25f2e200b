//! Test plans: loading, resolving the board and workload files they name,
//! and validating everything before a board is touched.

mod error;
mod load;
mod model;
mod positions;
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
    pub text: String,
    pub sha256: String,
    pub board: BoardFile,
    pub workloads: Vec<WorkloadFile>,
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
    let loaded = load::<Plan>(path)?;
    let home = home_for(path);
    let plan = &loaded.value;
    let at = |key: &str| loaded.positions.of(key);

    let board_path = reference(&home, path, "boards", &plan.board);
    if !board_path.is_file() {
        return Err(PlanError::new(
            path,
            at("board"),
            "board",
            format!(
                "no board file {}: expected a name from boards/ or a path to a board YAML",
                board_path.display()
            ),
        ));
    }
    let board = load::<BoardFile>(&board_path)?;
    validate::board(&board_path, &board)?;

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
        workloads.push(wl.value);
    }
    validate::plan(path, &loaded, &board.value, &workloads)?;
    let sha256 = hex::encode(Sha256::digest(loaded.text.as_bytes()));
    Ok(ResolvedPlan {
        plan: loaded.value,
        path: path.to_path_buf(),
        text: loaded.text,
        sha256,
        board: board.value,
        workloads,
    })
}
