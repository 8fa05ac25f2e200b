//! Command-line interface.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::plan;
use crate::reporting;
use crate::runner::{self, exit};

#[derive(Parser)]
#[command(
    name = "hilt",
    version,
    about = "Hardware-in-the-loop stress harness for ARM/Android boards"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a test plan against its board.
    Run {
        plan: PathBuf,
        /// Results directory (default: runs/<plan>-<time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress output; the summary still goes to stdout.
        #[arg(long, short)]
        quiet: bool,
        /// History database (default: $HILT_HISTORY or ~/.local/share/hilt/history.sqlite).
        #[arg(long)]
        history: Option<PathBuf>,
        /// Leave this run out of the history.
        #[arg(long)]
        no_history: bool,
    },
    /// Write RUN_DIR/report/ (index.html, summary.md, junit.xml, report.json, plots/).
    Report { run: PathBuf },
    /// Compare runs: the report goes to the first run's report/ directory.
    Compare {
        #[arg(required = true, num_args = 2..)]
        runs: Vec<PathBuf>,
        /// The variant the others are compared with, e.g. night1/unpatched.
        #[arg(long)]
        baseline: Option<String>,
    },
    /// Trends over nights: hang rate and p99 per variant, with plots.
    History {
        #[arg(long)]
        plan: Option<String>,
        /// Only the last N runs.
        #[arg(long)]
        last: Option<usize>,
        /// Write trends.md and plots under DIR/<plan>/.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Validate a plan and the board and workload files it names.
    Check { plan: PathBuf },
    /// Fetch and build everything a plan needs (kernels, initramfs, images).
    Fetch { plan: PathBuf },
    /// List the known boards (boards/*.yaml).
    Boards,
    /// Check that a connected board answers on every transport its file declares.
    Doctor { board: String },
    /// Put a variant's kernel and initramfs on a real board; prints what
    /// the board received, with SHA256s, as JSON.
    Deploy {
        plan: PathBuf,
        #[arg(long)]
        variant: String,
        /// A board name (boards/<name>.yaml) or path.
        #[arg(long)]
        board: String,
        #[arg(long, value_enum)]
        via: crate::board::deploy::Via,
        /// Boot image header version for fastboot: 2 (with dtb) or 4 (GKI).
        #[arg(long, default_value_t = 2)]
        header: u32,
        /// The board's device tree (needed by header v2; copied to /boot over ssh).
        #[arg(long)]
        dtb: Option<PathBuf>,
        /// Kernel command line in the boot image.
        #[arg(long, default_value = "")]
        cmdline: String,
        #[arg(long, default_value = "boot")]
        partition: String,
        #[arg(long, default_value = "/boot")]
        boot_dir: String,
    },
    /// Find kernel reports (hangs, lockups, oopses...) in a log file.
    Parse {
        log: PathBuf,
        /// One JSON object per event.
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
        }
    };
    match cli.cmd {
        Cmd::Run {
            plan,
            out,
            quiet,
            history,
            no_history,
        } => with_plan(&plan, |p| {
            let history = (!no_history).then(|| history.unwrap_or_else(reporting::default_history));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(runner::run_plan(
                p,
                runner::RunOptions {
                    out,
                    quiet,
                    history,
                },
            ))
        }),
        Cmd::Report { run } => fallible(|| {
            println!("report: {}", reporting::report(&[run], None)?.display());
            Ok(exit::OK)
        }),
        Cmd::Compare { runs, baseline } => fallible(|| {
            println!("report: {}", reporting::report(&runs, baseline)?.display());
            Ok(exit::OK)
        }),
        Cmd::History {
            plan,
            last,
            out,
            db,
        } => fallible(|| {
            reporting::history(
                &db.unwrap_or_else(reporting::default_history),
                plan,
                last,
                out,
            )
        }),
        Cmd::Check { plan } => with_plan(&plan, |p| {
            println!(
                "{}: ok ({} variants × {} iterations on {}, {} workloads)",
                plan.display(),
                p.plan.variants.len(),
                p.plan.iterations,
                p.board.name,
                p.workloads.len()
            );
            Ok(exit::OK)
        }),
        Cmd::Fetch { plan } => with_plan(&plan, |p| {
            runner::fetch_all(&p, &|m| eprintln!("hilt: {m}"))?;
            Ok(exit::OK)
        }),
        Cmd::Deploy {
            plan,
            variant,
            board,
            via,
            header,
            dtb,
            cmdline,
            partition,
            boot_dir,
        } => with_plan(&plan, |p| {
            let home = home();
            let path = plan::reference(&home, &home.join("boards").join("x"), "boards", &board);
            let b = plan::load_board(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
            let args = crate::board::deploy::DeployArgs {
                variant,
                via,
                header,
                dtb,
                cmdline,
                partition,
                boot_dir,
            };
            let rt = tokio::runtime::Runtime::new()?;
            println!(
                "{}",
                rt.block_on(crate::board::deploy::deploy(&p, &b, &args))?
            );
            Ok(exit::OK)
        }),
        Cmd::Parse { log, json } => parse(&log, json),
        Cmd::Boards => boards(),
        Cmd::Doctor { board } => doctor(&board),
    }
}

fn home() -> std::path::PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors()
        .find(|d| d.join("boards").is_dir())
        .map(|d| d.to_path_buf())
        .unwrap_or(cwd)
}

fn boards() -> i32 {
    let known = crate::board::doctor::known(&home());
    if known.is_empty() {
        eprintln!("error: no boards/ directory here or above");
        return exit::BAD_INPUT;
    }
    println!(
        "{:<16} {:<16} {:<48} {:<20} {:<14} flash",
        "board", "soc", "console", "power", "agent"
    );
    let mut code = exit::OK;
    for (path, b) in known {
        match b {
            Ok(b) => {
                let [soc, console, power, agent, flash] = crate::board::doctor::describe(&b);
                println!(
                    "{:<16} {soc:<16} {console:<48} {power:<20} {agent:<14} {flash}",
                    b.name
                );
            }
            Err(e) => {
                println!(
                    "{:<16} invalid: {e}",
                    path.file_stem().unwrap_or_default().to_string_lossy()
                );
                code = exit::BAD_INPUT;
            }
        }
    }
    code
}

fn doctor(board: &str) -> i32 {
    let home = home();
    let path = plan::reference(&home, &home.join("boards").join("x"), "boards", board);
    let b = match plan::load_board(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INFRA;
        }
    };
    let results = rt.block_on(crate::board::doctor::check(&b));
    let mut ok = true;
    for (what, r) in results {
        match r {
            Ok(d) => println!("ok    {what}: {d}"),
            Err(e) => {
                ok = false;
                println!("FAIL  {what}: {e}");
            }
        }
    }
    if ok {
        exit::OK
    } else {
        exit::INFRA
    }
}

fn fallible(f: impl FnOnce() -> anyhow::Result<i32>) -> i32 {
    match f() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::INFRA
        }
    }
}

fn with_plan(
    path: &std::path::Path,
    f: impl FnOnce(plan::ResolvedPlan) -> anyhow::Result<i32>,
) -> i32 {
    let p = match plan::resolve(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    match f(p) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::INFRA
        }
    }
}

fn parse(path: &std::path::Path, json: bool) -> i32 {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return exit::BAD_INPUT;
        }
    };
    let events = hilt_kernlog::parse(&data);
    let mut out = std::io::stdout().lock();
    for e in &events {
        let r = if json {
            serde_json::to_writer(&mut out, e)
                .map_err(std::io::Error::other)
                .and_then(|_| writeln!(out))
        } else {
            let task = e
                .task
                .as_ref()
                .map(|t| {
                    format!(
                        " [{}{}]",
                        t.comm,
                        t.pid.map(|p| format!(":{p}")).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            let ts = e
                .timestamp
                .map(|t| format!("[{t:>12.6}] "))
                .unwrap_or_default();
            writeln!(out, "{ts}{:?}: {}{task}", e.kind, e.title).and_then(|_| {
                for f in e.frames.iter().take(12) {
                    writeln!(out, "    {f}")?;
                }
                Ok(())
            })
        };
        if r.is_err() {
            return exit::OK; // stdout closed (e.g. piped to head)
        }
    }
    if !json && events.is_empty() {
        let _ = writeln!(out, "no kernel reports found");
    }
    exit::OK
}
