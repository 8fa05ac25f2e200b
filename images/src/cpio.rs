//! newc ("070701") cpio writer for Linux initramfs archives.
//!
//! Output is deterministic (mtime 0, uid/gid 0, inode numbers in write
//! order) so a cached base initramfs keeps its hash. The kernel unpacks
//! several archives concatenated back to back and skips zero bytes between
//! them as long as each archive starts 4-byte aligned (init/initramfs.c);
//! [`CpioWriter::finish`] pads to [`FINISH_ALIGN`] so a per-run archive can
//! simply be appended to a base one.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// Archive end alignment. 512 is what GNU cpio produces, which keeps the
/// result identical in shape to a `cpio -o -H newc` archive.
pub const FINISH_ALIGN: u64 = 512;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const PERM_MASK: u32 = 0o7777;
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: u64 = 110;

pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

struct Entry<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    size: u64,
    rdev: (u32, u32),
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            // Inode 0 is avoided: some extractors treat it as "no inode".
            next_ino: 1,
        }
    }

    /// `mode` is taken as permission bits (`& 0o7777`); the file type bits
    /// come from the method. A leading `/` on `path` is dropped, as the
    /// kernel and `cpio -i` want relative names.
    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.entry(
            Entry {
                name: clean(path)?,
                mode: S_IFDIR | (mode & PERM_MASK),
                nlink: 2,
                size: 0,
                rdev: (0, 0),
            },
            &[],
        )
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(
            Entry {
                name: clean(path)?,
                mode: S_IFREG | (mode & PERM_MASK),
                nlink: 1,
                size: data.len() as u64,
                rdev: (0, 0),
            },
            data,
        )
    }

    /// Streams `src` into the archive without reading it into memory.
    pub fn file_from_path(&mut self, path: &str, mode: u32, src: &Path) -> io::Result<()> {
        let name = clean(path)?;
        let f = File::open(src)?;
        let size = f.metadata()?.len();
        let ino = self.take_ino();
        self.header(
            ino,
            &Entry {
                name,
                mode: S_IFREG | (mode & PERM_MASK),
                nlink: 1,
                size,
                rdev: (0, 0),
            },
        )?;
        let copied = io::copy(&mut f.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while being archived ({copied} of {size} bytes)",
                    src.display()
                ),
            ));
        }
        self.written += copied;
        self.pad(4)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        if target.is_empty() || target.contains('\0') {
            return Err(invalid(format!("symlink target {target:?} for {path:?}")));
        }
        self.entry(
            Entry {
                name: clean(path)?,
                mode: S_IFLNK | 0o777,
                nlink: 1,
                size: target.len() as u64,
                rdev: (0, 0),
            },
            target.as_bytes(),
        )
    }

    /// Device nodes in the initramfs let early init open `/dev/console`
    /// before devtmpfs is mounted.
    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(
            Entry {
                name: clean(path)?,
                mode: S_IFCHR | (mode & PERM_MASK),
                nlink: 1,
                size: 0,
                rdev: (major, minor),
            },
            &[],
        )
    }

    /// Bytes emitted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes the trailer, zero-pads to [`FINISH_ALIGN`] and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        let trailer = Entry {
            name: TRAILER,
            mode: 0,
            nlink: 1,
            size: 0,
            rdev: (0, 0),
        };
        // GNU cpio gives the trailer inode 0; so do we.
        self.header(0, &trailer)?;
        self.pad(FINISH_ALIGN)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn take_ino(&mut self) -> u32 {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn entry(&mut self, e: Entry<'_>, data: &[u8]) -> io::Result<()> {
        let ino = self.take_ino();
        self.header(ino, &e)?;
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        self.pad(4)
    }

    fn header(&mut self, ino: u32, e: &Entry<'_>) -> io::Result<()> {
        let size = u32::try_from(e.size).map_err(|_| {
            invalid(format!(
                "{} is {} bytes; newc caps files at 4 GiB",
                e.name, e.size
            ))
        })?;
        let namesize = e.name.len() as u32 + 1;
        let fields = [
            ino, e.mode, 0, 0, e.nlink, 0, size, 0, 0, e.rdev.0, e.rdev.1, namesize, 0,
        ];
        let mut h = String::with_capacity(HEADER_LEN as usize);
        h.push_str("070701");
        for f in fields {
            h.push_str(&format!("{f:08X}"));
        }
        debug_assert_eq!(h.len() as u64, HEADER_LEN);
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(e.name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.written += HEADER_LEN + u64::from(namesize);
        self.pad(4)
    }

    fn pad(&mut self, align: u64) -> io::Result<()> {
        let n = (align - self.written % align) % align;
        if n > 0 {
            self.out.write_all(&vec![0u8; n as usize])?;
            self.written += n;
        }
        Ok(())
    }
}

fn clean(path: &str) -> io::Result<&str> {
    let p = path.trim_start_matches('/');
    if p.is_empty()
        || p.contains('\0')
        || p == TRAILER
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(invalid(format!(
            "archive path {path:?}: use a relative path like \"bin/sh\" without empty, . or .. components"
        )));
    }
    Ok(p)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_alignment() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("/init", 0o755, b"#!/bin/sh\n").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % FINISH_ALIGN as usize, 0);
        let h = std::str::from_utf8(&bytes[..110]).unwrap();
        assert_eq!(&h[..6], "070701");
        assert_eq!(&h[6..14], "00000001"); // ino
        assert_eq!(&h[14..22], "000081ED"); // regular file 0755
        assert_eq!(&h[54..62], "0000000A"); // size
        assert_eq!(&h[94..102], "00000005"); // "init\0"
        assert_eq!(&bytes[110..115], b"init\0");
        // 110 + 5 = 115, padded to 116 before data.
        assert_eq!(&bytes[116..126], b"#!/bin/sh\n");
        let trailer = bytes.windows(10).position(|w| w == b"TRAILER!!!").unwrap();
        assert_eq!((trailer - 110) % 4, 0);
    }

    #[test]
    fn rejects_bad_paths() {
        let mut w = CpioWriter::new(Vec::new());
        for p in ["", "/", "a//b", "../etc", "a/./b", "TRAILER!!!"] {
            assert!(w.dir(p, 0o755).is_err(), "{p:?}");
        }
        assert_eq!(w.written(), 0);
    }
}
