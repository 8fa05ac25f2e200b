use std::path::PathBuf;

/// Everything that can go wrong while turning Debian packages into board artifacts.
///
/// Messages name the file or command involved and, where the fix is on the user's
/// side, say what to run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid package reference {input:?}: {reason} (expected NAME[:ARCH][=VERSION])")]
    InvalidPackageRef { input: String, reason: String },

    #[error("`{tool}` is not installed or not on PATH: run scripts/setup")]
    ToolMissing { tool: String },

    #[error("`{command}` failed ({status}): {stderr}")]
    ToolFailed {
        command: String,
        status: String,
        stderr: String,
    },

    #[error(
        "package {package} is not in apt's index: run scripts/setup \
         (it adds the arm64 architecture and runs apt-get update), \
         or `apt-get update` if the version was superseded"
    )]
    PackageNotFound { package: String },

    #[error("apt's index record for {package} has no {field} field; run `apt-get update`")]
    IndexRecord { package: String, field: String },

    #[error(
        "SHA256 mismatch for {}: apt's signed index says {expected}, the file has {actual}; \
         the file was deleted, run again to download it afresh",
        path.display()
    )]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {reason}", path.display())]
    Artifact { path: PathBuf, reason: String },

    #[error("{}: not a usable ELF file: {reason}", path.display())]
    Elf { path: PathBuf, reason: String },

    #[error(
        "module {name} is neither a .ko file under {} nor built into kernel {release}",
        modules_dir.display()
    )]
    ModuleNotFound {
        name: String,
        release: String,
        modules_dir: PathBuf,
    },

    #[error("module {module} depends on {dependency}, which is neither a .ko file nor built in")]
    MissingDependency { module: String, dependency: String },

    #[error("could not {action} {} in {}: {detail}", patch.display(), tree.display())]
    PatchFailed {
        patch: PathBuf,
        tree: PathBuf,
        action: &'static str,
        detail: String,
    },

    #[error(
        "kconfig dropped config values the plan asked for (their dependencies are not met, \
         or the symbol does not exist in this tree); add what they depend on to the fragment: {}",
        symbols.join("; ")
    )]
    ConfigDropped { symbols: Vec<String> },

    #[error(
        "building a kernel from source needs {}, not installed: run `scripts/setup --kernel-build`",
        missing.join(", ")
    )]
    KernelBuildTools { missing: Vec<String> },

    #[error("module dependency cycle: {}", cycle.join(" -> "))]
    DependencyCycle { cycle: Vec<String> },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn artifact(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::Artifact {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
