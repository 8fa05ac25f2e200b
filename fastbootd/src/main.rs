//! hilt-fastbootd: the emulated board's bootloader stage. The board's
//! supervisor runs it when the board powers on into the bootloader, and
//! reads its exit status to know what to boot next.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use hilt_fastbootd::partition::{parse_bytes, Named};
use hilt_fastbootd::DEFAULT_MAX_DOWNLOAD;
use hilt_fastbootd::{Config, Device, FileRegion, Next, Partition, PartitionSpec};

/// The exit statuses, which the supervisor script matches on.
const BOOT_OS: u8 = 0;
const IO_FAILURE: u8 = 1;
const BAD_ARGUMENTS: u8 = 2;
const STAY_IN_BOOTLOADER: u8 = 10;
const BOOT_ONCE: u8 = 11;

#[derive(Parser)]
#[command(
    name = "hilt-fastbootd",
    version,
    about = "A fastboot device over TCP that writes an emulated board's partitions",
    after_help = "Exit status: 0 boot the OS (reboot, continue); 10 stay in the bootloader \
                  (reboot-bootloader); 11 boot the image written to --boot-once, once (boot); \
                  2 bad arguments; 1 I/O failure."
)]
struct Args {
    /// Where fastboot hosts connect (`fastboot -s tcp:IP:PORT`)
    #[arg(long, value_name = "IP:PORT", value_parser = parse_listen)]
    listen: SocketAddr,
    /// getvar:product
    #[arg(long, value_name = "NAME", value_parser = parse_text)]
    product: String,
    /// getvar:serialno
    #[arg(long, value_name = "S", default_value = "HILT0001", value_parser = parse_text)]
    serialno: String,
    /// The largest download taken; the host splits larger images
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_DOWNLOAD, value_parser = parse_max_download)]
    max_download: u32,
    /// A partition: a whole file, or SIZE bytes of FILE from OFFSET (bytes,
    /// decimal or 0x-hex). Repeat for each partition
    #[arg(
        long = "partition",
        value_name = "NAME=FILE[@OFFSET+SIZE]",
        required = true
    )]
    partitions: Vec<PartitionSpec>,
    /// Where `fastboot boot` puts the image to boot once; without it `boot`
    /// is refused
    #[arg(long, value_name = "FILE")]
    boot_once: Option<PathBuf>,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?}: expected IP:PORT, e.g. 127.0.0.1:5554"))
}

/// Values go into 256-byte responses and onto the host's terminal.
fn parse_text(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{s:?}: expected 1 to 64 printable ASCII characters without spaces"
        ));
    }
    Ok(s.to_string())
}

fn parse_max_download(s: &str) -> Result<u32, String> {
    parse_bytes(s)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!("{s:?}: expected a byte count from 1 to 4294967295 (download sizes are 32-bit)")
        })
}

/// Why the bootloader stopped without being asked to boot.
enum Failure {
    BadArguments(String),
    Io(String),
}

fn open_partitions(specs: &[PartitionSpec]) -> Result<Vec<Named>, Failure> {
    let mut opened: Vec<(&PartitionSpec, FileRegion)> = Vec::new();
    for spec in specs {
        let region = FileRegion::open(&spec.path, spec.region)
            .map_err(|e| Failure::BadArguments(format!("--partition {spec}: {e}")))?;
        if let Some((other, _)) = opened.iter().find(|(_, r)| r.overlaps(&region)) {
            return Err(Failure::BadArguments(format!(
                "--partition {spec} and --partition {other} share bytes of one file: \
                 give each partition its own region"
            )));
        }
        opened.push((spec, region));
    }
    Ok(opened
        .into_iter()
        .map(|(spec, r)| (spec.name.clone(), Box::new(r) as Box<dyn Partition>))
        .collect())
}

fn write_boot_image(path: &Path, image: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(image)?;
    // The supervisor boots it as soon as we exit.
    f.sync_all()
}

fn run(args: Args) -> Result<u8, Failure> {
    let partitions = open_partitions(&args.partitions)?;
    if let Some(path) = &args.boot_once {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if dir.is_some_and(|d| !d.is_dir()) {
            return Err(Failure::BadArguments(format!(
                "--boot-once {}: its directory does not exist; create it first",
                path.display()
            )));
        }
    }
    let mut config = Config::new(args.product);
    config.serialno = args.serialno;
    config.max_download = args.max_download;
    config.boot_once = args.boot_once.is_some();
    config.echo = true;
    let device = Device::new(config, partitions)
        .map_err(|e| Failure::BadArguments(format!("--partition: {e}")))?;

    let listener = TcpListener::bind(args.listen).map_err(|e| {
        Failure::Io(format!(
            "cannot listen on {}: {e} (is another bootloader on that port?)",
            args.listen
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Io(e.to_string()))?;
    eprintln!(
        "hilt-fastbootd: listening on {addr}, product {}, {} partition(s)",
        device.config().product,
        args.partitions.len()
    );
    let next = hilt_fastbootd::serve(&device, &listener)
        .map_err(|e| Failure::Io(format!("accepting hosts on {addr}: {e}")))?;
    Ok(match next {
        Next::BootOs => BOOT_OS,
        Next::Bootloader => STAY_IN_BOOTLOADER,
        Next::BootOnce(image) => {
            // `boot` is only taken with --boot-once.
            let path = args.boot_once.unwrap_or_default();
            write_boot_image(&path, &image).map_err(|e| {
                Failure::Io(format!(
                    "cannot write the image to boot to {}: {e}",
                    path.display()
                ))
            })?;
            BOOT_ONCE
        }
    })
}

fn main() -> ExitCode {
    // clap exits with status 2 on a bad argument, as we do.
    match run(Args::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(Failure::BadArguments(msg)) => {
            eprintln!("hilt-fastbootd: {msg}");
            ExitCode::from(BAD_ARGUMENTS)
        }
        Err(Failure::Io(msg)) => {
            eprintln!("hilt-fastbootd: {msg}");
            ExitCode::from(IO_FAILURE)
        }
    }
}
