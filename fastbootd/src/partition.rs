//! Where a partition's bytes live: in memory (tests), a whole file, or a
//! region of a file (a partition of a disk image), and the command-line
//! form that names them, `NAME=FILE[@OFFSET+SIZE]`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A partition's storage. Offsets are from the partition's start; the
/// device checks them against [`Partition::size`] before it writes.
pub trait Partition: Send {
    fn size(&self) -> u64;
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Makes what was written durable: the device says OKAY only after,
    /// since the board may lose power the moment the host has its answer.
    fn sync(&mut self) -> io::Result<()>;
}

/// The device's partitions by name, in the order `getvar:all` lists them.
pub type Table = std::collections::BTreeMap<String, Box<dyn Partition>>;

/// A partition with the name hosts flash it by.
pub type Named = (String, Box<dyn Partition>);

/// Bytes in memory, for tests that look at them afterwards.
pub struct Memory(pub Vec<u8>);

fn range(size: u64, offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(offset as usize..end as usize),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{len} bytes at {offset} are past the partition's {size} bytes"),
        )),
    }
}

impl Memory {
    /// A partition of `size` bytes of `fill`, with its name.
    pub fn named(name: &str, size: usize, fill: u8) -> Named {
        (name.to_string(), Box::new(Memory(vec![fill; size])))
    }
}

impl Partition for Memory {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let r = range(self.size(), offset, data.len())?;
        self.0[r].copy_from_slice(data);
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let r = range(self.size(), offset, buf.len())?;
        buf.copy_from_slice(&self.0[r]);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `size` bytes of a file from `offset`: a whole file, or one partition of
/// a disk image whose other bytes must stay as they are.
#[derive(Debug)]
pub struct FileRegion {
    file: File,
    path: PathBuf,
    offset: u64,
    size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} does not exist: create the partition's file (e.g. `truncate -s 64M {0}`) before the bootloader starts")]
    Missing(PathBuf),
    #[error("{path} is empty: a partition needs at least one byte")]
    Empty { path: PathBuf },
    #[error("the region {offset}+{size} of {path} ends at byte {end}, past the file's end at {len}: grow the image or fix the region")]
    PastEnd {
        path: PathBuf,
        offset: u64,
        size: u64,
        end: u128,
        len: u64,
    },
    #[error("cannot open {path} to read and write: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl FileRegion {
    /// The file at `path`, whole (`region` None) or `(offset, size)` of it.
    pub fn open(path: &Path, region: Option<(u64, u64)>) -> Result<FileRegion, OpenError> {
        let io_err = |source| OpenError::Io {
            path: path.to_owned(),
            source,
        };
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(OpenError::Missing(path.to_owned()))
            }
            Err(e) => return Err(io_err(e)),
        };
        let len = file.metadata().map_err(io_err)?.len();
        let (offset, size) = region.unwrap_or((0, len));
        let end = u128::from(offset) + u128::from(size);
        if end > u128::from(len) {
            return Err(OpenError::PastEnd {
                path: path.to_owned(),
                offset,
                size,
                end,
                len,
            });
        }
        if size == 0 {
            return Err(OpenError::Empty {
                path: path.to_owned(),
            });
        }
        // Canonical, so that two names for one file are seen to overlap.
        let path = path.canonicalize().map_err(io_err)?;
        Ok(FileRegion {
            file,
            path,
            offset,
            size,
        })
    }

    /// Whether two regions share a byte of the same file.
    pub fn overlaps(&self, other: &FileRegion) -> bool {
        self.path == other.path
            && self.offset < other.offset + other.size
            && other.offset < self.offset + self.size
    }
}

impl Partition for FileRegion {
    fn size(&self) -> u64 {
        self.size
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let r = range(self.size, offset, data.len())?;
        self.file.write_all_at(data, self.offset + r.start as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let r = range(self.size, offset, buf.len())?;
        self.file.read_exact_at(buf, self.offset + r.start as u64)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Partition and variable names go into command text after a ':', so they
/// cannot hold one.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(format!(
            "partition name {name:?}: expected printable ASCII without spaces or ':'"
        ));
    }
    Ok(())
}

/// `NAME=FILE` or `NAME=FILE@OFFSET+SIZE`, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    pub name: String,
    pub path: PathBuf,
    pub region: Option<(u64, u64)>,
}

/// As it was given, for messages that name the bad argument.
impl std::fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.path.display())?;
        match self.region {
            Some((offset, size)) => write!(f, "@{offset}+{size}"),
            None => Ok(()),
        }
    }
}

/// A byte count in decimal or 0x-hex.
pub fn parse_bytes(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl FromStr for PartitionSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const FORM: &str = "expected NAME=FILE or NAME=FILE@OFFSET+SIZE (bytes, decimal or 0x-hex)";
        let Some((name, rest)) = s.split_once('=') else {
            return Err(format!("{s:?} has no '=': {FORM}"));
        };
        check_name(name)?;
        // A file name may hold '@': only a tail with a '+' is a region.
        let (file, region) = match rest.rsplit_once('@') {
            Some((file, tail)) if tail.contains('+') => {
                let (off, size) = tail.split_once('+').unwrap_or_default();
                match (parse_bytes(off), parse_bytes(size)) {
                    (Some(off), Some(size)) => (file, Some((off, size))),
                    _ => return Err(format!("{s:?}: the region is not two numbers: {FORM}")),
                }
            }
            _ => (rest, None),
        };
        if file.is_empty() {
            return Err(format!("{s:?} names no file: {FORM}"));
        }
        if let Some((_, 0)) = region {
            return Err(format!("{s:?}: a region of 0 bytes: {FORM}"));
        }
        Ok(PartitionSpec {
            name: name.to_string(),
            path: PathBuf::from(file),
            region,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<PartitionSpec, String> {
        s.parse()
    }

    #[test]
    fn specs_name_a_file_or_a_region_of_one() {
        assert_eq!(
            spec("boot=/tmp/disk.img@1048576+0x10000").unwrap(),
            PartitionSpec {
                name: "boot".into(),
                path: "/tmp/disk.img".into(),
                region: Some((1 << 20, 0x10000)),
            }
        );
        let whole = spec("misc=/tmp/a@b.img").unwrap();
        assert_eq!((whole.path, whole.region), ("/tmp/a@b.img".into(), None));
        for (bad, says) in [
            ("boot", "no '='"),
            ("=/tmp/x", "partition name"),
            ("bo:ot=/tmp/x", "partition name"),
            ("boot=", "names no file"),
            ("boot=/tmp/x@1+y", "not two numbers"),
            ("boot=/tmp/x@0+0", "0 bytes"),
        ] {
            let err = spec(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_region_writes_its_bytes_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        std::fs::write(&path, vec![0x55u8; 100]).unwrap();
        let mut r = FileRegion::open(&path, Some((40, 20))).unwrap();
        assert_eq!(r.size(), 20);
        r.write_at(5, &[1, 2, 3]).unwrap();
        let err = r.write_at(18, &[9, 9, 9]).unwrap_err();
        assert!(
            err.to_string().contains("past the partition's 20 bytes"),
            "{err}"
        );
        r.sync().unwrap();
        let disk = std::fs::read(&path).unwrap();
        let mut want = vec![0x55u8; 100];
        want[45..48].copy_from_slice(&[1, 2, 3]);
        assert_eq!(disk, want);
        let mut back = [0u8; 4];
        r.read_at(4, &mut back).unwrap();
        assert_eq!(back, [0x55, 1, 2, 3]);
    }

    #[test]
    fn files_that_cannot_be_partitions_are_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let err = FileRegion::open(&path, None).unwrap_err();
        assert!(matches!(err, OpenError::Missing(_)), "{err}");
        assert!(err.to_string().contains("truncate -s"), "{err}");
        std::fs::write(&path, vec![0u8; 100]).unwrap();
        let err = FileRegion::open(&path, Some((90, 11))).unwrap_err();
        assert!(
            err.to_string()
                .contains("ends at byte 101, past the file's end at 100"),
            "{err}"
        );
        assert!(FileRegion::open(&path, Some((u64::MAX, 2))).is_err());
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let err = FileRegion::open(&dir.path().join("empty"), None).unwrap_err();
        assert!(matches!(err, OpenError::Empty { .. }), "{err}");
        let whole = FileRegion::open(&path, None).unwrap();
        assert_eq!(whole.size(), 100);
        let a = FileRegion::open(&path, Some((0, 50))).unwrap();
        let b = FileRegion::open(&path, Some((50, 50))).unwrap();
        assert!(!a.overlaps(&b) && whole.overlaps(&a) && whole.overlaps(&b));
    }
}
