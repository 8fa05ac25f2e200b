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

/// Shown by `hilt run --help`; the README has the same table.
const RUN_EXIT_CODES: &str = "\
Exit codes:
  0    the run completed; no regression against the history
  1    regression: the history check found the run worse than the last nights,
       or a signature deadlocked where the plan says it must not (absent_in)
  2    bad plan or usage: nothing was run (the error names file:line:col and key)
  3    infrastructure failure: artifacts could not be prepared, every iteration
       was an infrastructure error, the results could not be written (disk
       full), a --junit/--json file could not be written, or hilt's loop for
       a board panicked (a bug in hilt)
  4    invalid run: a positive control was not detected
  130  interrupted (Ctrl-C or SIGTERM): boards off, results and report written";

#[derive(Subcommand)]
enum Cmd {
    /// Run a test plan against its boards.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(RunCmd),
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
    Doctor {
        board: String,
        #[command(flatten)]
        wait: LeaseWait,
    },
    /// Write an image to a real board's storage with its board file's `flash:`
    /// method, read it back where the transport can, and print the record.
    Flash {
        board: String,
        image: PathBuf,
        /// Partition name from the board's `partitions:` (default: the one `flash:` names).
        #[arg(long)]
        partition: Option<String>,
        /// The image's dm-verity root hash, recorded with its sha256.
        #[arg(long)]
        root_hash: Option<String>,
        /// Append the record (JSON) to this file.
        #[arg(long)]
        record: Option<PathBuf>,
        #[command(flatten)]
        wait: LeaseWait,
    },
    /// Put a variant's kernel and initramfs on a real board; prints what
    /// the board received, with SHA256s, as JSON.
    Deploy(DeployCmd),
    /// Find kernel reports (hangs, lockups, oopses...) in a log file.
    Parse {
        log: PathBuf,
        /// One JSON object per event.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct RunCmd {
    /// The plan (not with --resume, which uses the run's own copy).
    #[arg(required_unless_present = "resume", conflicts_with = "resume")]
    plan: Option<PathBuf>,
    /// Continue an interrupted run in RUN_DIR: finished iterations are
    /// kept, the rest run, and the report covers all of them.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Seconds to wait for a board another run holds before failing.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    lease_wait: u64,
    /// Seconds a board's lease lasts without a heartbeat (renewed every
    /// few seconds while the run lives).
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=86_400))]
    lease_ttl: u64,
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
    /// Also write the run's JUnit XML here (one test case per iteration).
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Also write the run's status, exit code and report as JSON here;
    /// `-` is stdout, and everything else printed then goes to stderr.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// How long `doctor`, `flash` and `deploy` wait for their board.
#[derive(clap::Args, Clone, Copy)]
struct LeaseWait {
    /// Seconds to wait for a board another hilt (or, in a labgrid lab,
    /// another client) holds before failing.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    lease_wait: u64,
}

impl LeaseWait {
    fn get(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_wait)
    }
}

#[derive(clap::Args)]
struct DeployCmd {
    plan: PathBuf,
    #[arg(long)]
    variant: String,
    /// A board name (boards/<name>.yaml) or path.
    #[arg(long)]
    board: String,
    #[arg(long, value_enum)]
    via: crate::commands::deploy::Via,
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
    #[command(flatten)]
    wait: LeaseWait,
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
        Cmd::Run(cmd) => run(&cmd),
        Cmd::Report { run } => report(&[run], None),
        Cmd::Compare { runs, baseline } => report(&runs, baseline),
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
        Cmd::Check { plan } => check(&plan),
        Cmd::Fetch { plan } => with_plan(&plan, |p| {
            runner::fetch_all(&p, &|m| eprintln!("hilt: {m}"))?;
            Ok(exit::OK)
        }),
        Cmd::Deploy(cmd) => deploy(cmd),
        Cmd::Parse { log, json } => parse(&log, json),
        Cmd::Boards => boards(),
        Cmd::Doctor { board, wait } => doctor(&board, wait),
        Cmd::Flash {
            board,
            image,
            partition,
            root_hash,
            record,
            wait,
        } => flash(
            &board,
            crate::commands::flash::FlashRequest {
                image,
                partition,
                verity_root_hash: root_hash,
            },
            record,
            wait,
        ),
    }
}

/// `hilt run`: a new run of a plan, or the rest of an interrupted one.
fn run(cmd: &RunCmd) -> i32 {
    match (&cmd.plan, &cmd.resume) {
        (_, Some(dir)) => match runner::resume_plan(dir) {
            Ok(p) => fallible(|| run_resolved(p, Some(dir.clone()), true, cmd)),
            Err(e) => {
                eprintln!("error: {e:#}");
                exit::BAD_INPUT
            }
        },
        (Some(path), None) => with_plan(path, |p| run_resolved(p, cmd.out.clone(), false, cmd)),
        (None, None) => unreachable!("clap requires a plan or --resume"),
    }
}

fn run_resolved(
    p: plan::ResolvedPlan,
    out: Option<PathBuf>,
    resuming: bool,
    cmd: &RunCmd,
) -> anyhow::Result<i32> {
    if let Some(code) = refused_by_a_strategy(&p) {
        return Ok(code);
    }
    let history = (!cmd.no_history).then(|| {
        cmd.history
            .clone()
            .unwrap_or_else(reporting::default_history)
    });
    let json = json_target(cmd.json.clone())?;
    let out = out.unwrap_or_else(|| runner::default_out(&p));
    let exports = reporting::Exports {
        junit: cmd.junit.clone(),
        json,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let r = rt.block_on(runner::run_plan(
        p,
        runner::RunOptions {
            resume: resuming,
            out: Some(out.clone()),
            quiet: cmd.quiet,
            history,
            exports: exports.clone(),
            leases: crate::lease::default_dir(),
            lease_wait: std::time::Duration::from_secs(cmd.lease_wait),
            lease_ttl: std::time::Duration::from_secs(cmd.lease_ttl),
        },
    ));
    // A run that failed before its end (artifacts that could not be
    // prepared) still tells CI why, in the JSON it waits for.
    if let (Err(e), Some(json)) = (&r, &exports.json) {
        export_failure(json, &out, e);
    }
    r
}

fn json_target(path: Option<PathBuf>) -> anyhow::Result<Option<reporting::JsonTarget>> {
    Ok(match path {
        Some(p) if p.as_os_str() == "-" => Some(reporting::JsonTarget::Stdout(
            std::sync::Arc::new(std::sync::Mutex::new(stdout_for_json()?)),
        )),
        Some(p) => Some(reporting::JsonTarget::Path(p)),
        None => None,
    })
}

/// Best effort: the run's own error is what the caller reports.
fn export_failure(json: &reporting::JsonTarget, out: &std::path::Path, e: &anyhow::Error) {
    let only_json = reporting::Exports {
        json: Some(json.clone()),
        junit: None,
    };
    let why = format!("{e:#}");
    let _ = reporting::export(
        &only_json,
        out,
        &reporting::Published::default(),
        exit::INFRA,
        "infrastructure",
        None,
        Some(&why),
    );
}

fn report(runs: &[PathBuf], baseline: Option<String>) -> i32 {
    fallible(|| {
        println!("report: {}", reporting::report(runs, baseline)?.display());
        Ok(exit::OK)
    })
}

/// A board hilt run cannot drive with this plan is a mistake in its file:
/// `hilt check` says so, and `hilt run` before anything is leased or built.
fn refused_by_a_strategy(p: &plan::ResolvedPlan) -> Option<i32> {
    for b in p.instances() {
        if let Err(e) = crate::board::strategy::for_kind(b.kind()).preflight(&b, &p.plan) {
            eprintln!("error: {e:#}");
            return Some(exit::BAD_INPUT);
        }
    }
    None
}

fn check(path: &std::path::Path) -> i32 {
    with_plan(path, |p| {
        if let Some(code) = refused_by_a_strategy(&p) {
            return Ok(code);
        }
        println!(
            "{}: ok ({} variants × {} iterations{} on {}, {} workloads)",
            path.display(),
            p.plan.variants.len(),
            p.plan.max_iterations(),
            match &p.plan.stop {
                Some(s) => format!(" at most, stopping at α = {}", s.alpha),
                None => String::new(),
            },
            p.instances()
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            p.workloads.len()
        );
        Ok(exit::OK)
    })
}

fn deploy(cmd: DeployCmd) -> i32 {
    with_plan(&cmd.plan, |p| {
        let b = plan::load_board(&board_path(&cmd.board)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let args = crate::commands::deploy::DeployArgs {
            variant: cmd.variant,
            via: cmd.via,
            header: cmd.header,
            dtb: cmd.dtb,
            cmdline: cmd.cmdline,
            partition: cmd.partition,
            boot_dir: cmd.boot_dir,
        };
        let rt = tokio::runtime::Runtime::new()?;
        let out = rt.block_on(crate::commands::on_held_board(
            b,
            "deploy",
            cmd.wait.get(),
            |b| async move { crate::commands::deploy::deploy(&p, &b, &args).await },
        ))?;
        println!("{out}");
        Ok(exit::OK)
    })
}

/// Takes stdout for the JSON result alone: the real stdout is kept aside
/// and fd 1 becomes stderr, so nothing else hilt (or a library) prints can
/// end up inside the JSON a CI step parses.
fn stdout_for_json() -> anyhow::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    std::io::stdout().flush()?;
    let saved = unsafe { libc::dup(1) };
    if saved < 0 || unsafe { libc::dup2(2, 1) } < 0 {
        anyhow::bail!(
            "--json -: cannot separate stdout from stderr: {}",
            std::io::Error::last_os_error()
        );
    }
    // The descriptor is fresh from dup and owned by nothing else.
    Ok(unsafe { std::fs::File::from_raw_fd(saved) })
}

fn home() -> std::path::PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors()
        .find(|d| d.join("boards").is_dir())
        .map(|d| d.to_path_buf())
        .unwrap_or(cwd)
}

fn boards() -> i32 {
    let known = crate::commands::doctor::known(&home());
    if known.is_empty() {
        eprintln!("error: no boards/ directory here or above");
        return exit::BAD_INPUT;
    }
    let leases = crate::lease::Leases::new(crate::lease::default_dir());
    let states = leases.list();
    let lease_of = |name: &str| {
        states
            .iter()
            .find(|s| crate::lease::holder(s).board == name)
            .map(lease_text)
            .unwrap_or_else(|| "free".into())
    };
    println!(
        "{:<16} {:<16} {:<48} {:<20} {:<14} {:<10} lease",
        "board", "soc", "console", "power", "agent", "flash"
    );
    let mut code = exit::OK;
    let mut names = Vec::new();
    let mut labs: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (path, b) in known {
        match b {
            Ok(b) => {
                if let Some(l) = b.labgrid.as_ref().filter(|l| !l.place.is_empty()) {
                    match labs.iter_mut().find(|(a, _)| *a == l.coordinator) {
                        Some((_, v)) => v.push((l.place.clone(), b.name.clone())),
                        None => labs.push((
                            l.coordinator.clone(),
                            vec![(l.place.clone(), b.name.clone())],
                        )),
                    }
                }
                let [soc, console, power, agent, flash] = crate::commands::doctor::describe(&b);
                println!(
                    "{:<16} {soc:<16} {console:<48} {power:<20} {agent:<14} {flash:<10} {}",
                    b.name,
                    lease_of(&b.name)
                );
                names.push(b.name);
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
    // Copies of emulated boards (`instances:`) have leases but no file.
    let others: Vec<_> = states
        .iter()
        .filter(|s| !names.contains(&crate::lease::holder(s).board))
        .collect();
    if !others.is_empty() {
        println!("\nother leases in {}:", leases.dir().display());
        for s in others {
            println!("{:<16} {}", crate::lease::holder(s).board, lease_text(s));
        }
    }
    if !labs.is_empty() && !print_places(&labs) {
        code = exit::INFRA;
    }
    code
}

/// Every place of each coordinator a board file names, with its holder:
/// labgrid's lock is the lease of a board in a lab. False when a
/// coordinator could not be asked.
fn print_places(labs: &[(String, Vec<(String, String)>)]) -> bool {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return false;
    };
    let mut ok = true;
    for (addr, ours) in labs {
        println!("\nlabgrid places at {addr}:");
        match rt.block_on(hilt_labgrid::places(addr)) {
            Ok(places) => {
                let known: Vec<String> = places.iter().map(|p| p.name.clone()).collect();
                for p in places {
                    let board = ours
                        .iter()
                        .filter(|(place, _)| *place == p.name)
                        .map(|(_, b)| b.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    let holder = match &p.acquired {
                        Some(h) => {
                            let rec = p
                                .tags
                                .get(crate::board::labgrid::TAG)
                                .and_then(|t| crate::board::labgrid::holder::Record::decode(t));
                            match rec {
                                Some(r) => format!("held by {h} ({})", r.describe()),
                                None => format!("held by {h}"),
                            }
                        }
                        None => "free".to_string(),
                    };
                    let board = if board.is_empty() { "-".into() } else { board };
                    println!("{:<16} board {board:<16} {holder}", p.name);
                }
                for (place, b) in ours.iter().filter(|(p, _)| !known.contains(p)) {
                    println!(
                        "{place:<16} board {b:<16} MISSING: the coordinator has no such place"
                    );
                }
            }
            Err(e) => {
                println!("unreachable: {e}");
                ok = false;
            }
        }
    }
    ok
}

fn lease_text(s: &crate::lease::State) -> String {
    match s {
        crate::lease::State::Held(h) => format!("held by {}", crate::lease::describe(h)),
        crate::lease::State::Stale(h, why) => {
            format!("free ({why}: was {})", crate::lease::describe(h))
        }
    }
}

/// A board named on the command line: a name from boards/ or a path.
fn board_path(board: &str) -> PathBuf {
    let home = home();
    plan::reference(&home, &home.join("boards").join("x"), "boards", board)
}

fn board_file(board: &str) -> Result<plan::BoardFile, i32> {
    plan::load_board(&board_path(board)).map_err(|e| {
        eprintln!("error: {e}");
        exit::BAD_INPUT
    })
}

fn flash(
    board: &str,
    req: crate::commands::flash::FlashRequest,
    record: Option<PathBuf>,
    wait: LeaseWait,
) -> i32 {
    let b = match board_file(board) {
        Ok(b) => b,
        Err(code) => return code,
    };
    fallible(|| {
        let rt = tokio::runtime::Runtime::new()?;
        let rec = rt.block_on(crate::commands::on_held_board(
            b,
            "flash",
            wait.get(),
            |b| async move { crate::commands::flash::flash(&b, &home(), &req).await },
        ))?;
        if let Some(path) = &record {
            crate::durable::append_json_line(path, &rec)?;
        }
        println!("{}", serde_json::to_string_pretty(&rec)?);
        Ok(exit::OK)
    })
}

fn doctor(board: &str, wait: LeaseWait) -> i32 {
    let b = match board_file(board) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INFRA;
        }
    };
    let results = rt.block_on(crate::commands::on_held_board(
        b,
        "doctor",
        wait.get(),
        |b| async move { Ok(crate::commands::doctor::check(&b, &home()).await) },
    ));
    let results = match results {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
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
    f().unwrap_or_else(failed)
}

/// The exit code of a command that failed, having said why.
fn failed(e: anyhow::Error) -> i32 {
    if e.is::<crate::interrupt::Interrupted>() {
        eprintln!("hilt: interrupted");
        return exit::INTERRUPTED;
    }
    eprintln!("error: {e:#}");
    exit::INFRA
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
    fallible(|| f(p))
}

/// The parser reads the first 4 KiB of a line's text: what lies beyond
/// this is skipped, so that a line without end (a log of NULs) costs no
/// memory.
const MAX_LINE: u64 = 64 << 10;

fn parse(path: &std::path::Path, json: bool) -> i32 {
    let bad = |e: &dyn std::fmt::Display| {
        eprintln!("error: {}: {e}", path.display());
        exit::BAD_INPUT
    };
    let file = match open_log(path) {
        Ok(f) => f,
        Err(e) => return bad(&e),
    };
    let mut reader = std::io::BufReader::with_capacity(64 << 10, file);
    let mut parser = hilt_kernlog::StreamParser::new();
    // Reports end out of order; each event waits here until no report that
    // started before it is still open, so that they print in log order.
    let mut ended: Vec<(u64, hilt_kernlog::Event)> = Vec::new();
    let mut line = Vec::new();
    let mut printed = 0usize;
    let mut out = std::io::stdout().lock();
    // As hilt_kernlog::parse splits a log: a log ending in '\n' (or empty)
    // ends with an empty line.
    let mut last_ended = true;
    loop {
        last_ended = match next_line(&mut reader, &mut line) {
            Ok(Some(complete)) => complete,
            Ok(None) => break,
            Err(e) => return bad(&e),
        };
        parser.push_line_seq(&line, &mut ended);
        if ended.is_empty() {
            continue;
        }
        ended.sort_by_key(|(seq, _)| *seq);
        let before = parser.oldest_open().unwrap_or(u64::MAX);
        let ready = ended.partition_point(|(seq, _)| *seq < before);
        for (_, e) in ended.drain(..ready) {
            if print_event(&mut out, &e, json).is_err() {
                return exit::OK; // stdout closed (e.g. piped to head)
            }
            printed += 1;
        }
    }
    if last_ended {
        parser.push_line_seq(b"", &mut ended);
    }
    parser.flush_seq(&mut ended);
    ended.sort_by_key(|(seq, _)| *seq);
    for (_, e) in &ended {
        if print_event(&mut out, e, json).is_err() {
            return exit::OK;
        }
        printed += 1;
    }
    if !json && printed == 0 {
        let _ = writeln!(out, "no kernel reports found");
    }
    exit::OK
}

/// A device such as /dev/zero never ends; a saved log is a file, or a
/// pipe that its writer closes.
fn open_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::FileTypeExt;
    let file = std::fs::File::open(path)?;
    let t = file.metadata()?.file_type();
    if t.is_file() || t.is_fifo() {
        Ok(file)
    } else {
        Err(std::io::Error::other(
            "not a saved log: expected a regular file or a pipe",
        ))
    }
}

/// Reads the next line into `line`, cut at MAX_LINE with the rest of it
/// skipped. `None` at the end of the log, else whether the line ended
/// (a cut line that ends later counts as ended, and gets its '\n').
fn next_line(
    reader: &mut impl std::io::BufRead,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    use std::io::{BufRead, Read};
    line.clear();
    let n = reader.by_ref().take(MAX_LINE).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(None);
    }
    let ended = line.last() == Some(&b'\n');
    if ended || (n as u64) < MAX_LINE {
        return Ok(Some(ended));
    }
    let mut rest = Vec::new();
    loop {
        rest.clear();
        if reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut rest)?
            == 0
        {
            return Ok(Some(false));
        }
        if rest.last() == Some(&b'\n') {
            line.push(b'\n');
            return Ok(Some(true));
        }
    }
}

fn print_event(out: &mut impl Write, e: &hilt_kernlog::Event, json: bool) -> std::io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, e).map_err(std::io::Error::other)?;
        return writeln!(out);
    }
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
    writeln!(out, "{ts}{:?}: {}{task}", e.kind, e.title)?;
    for f in e.frames.iter().take(12) {
        writeln!(out, "    {f}")?;
    }
    Ok(())
}
