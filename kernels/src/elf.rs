//! Just enough ELF to read a section by name and tell static from dynamic binaries.
//!
//! Kernel modules and busybox are all this crate looks into, so no relocation, symbol or
//! note handling; both classes and byte orders are accepted because armhf boards exist.

pub(crate) const EM_AARCH64: u16 = 183;
const SHT_NOBITS: u32 = 8;
const PT_INTERP: u32 = 3;
const SHN_XINDEX: u16 = 0xffff;

pub(crate) struct Elf<'a> {
    data: &'a [u8],
    is64: bool,
    little: bool,
    pub machine: u16,
}

struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, String> {
        if data.len() < 52 || &data[..4] != b"\x7fELF" {
            return Err("no ELF magic".into());
        }
        let is64 = match data[4] {
            1 => false,
            2 => true,
            c => return Err(format!("unknown ELF class {c}")),
        };
        let little = match data[5] {
            1 => true,
            2 => false,
            d => return Err(format!("unknown ELF data encoding {d}")),
        };
        let mut elf = Elf {
            data,
            is64,
            little,
            machine: 0,
        };
        elf.machine = elf.u16(18)?;
        Ok(elf)
    }

    fn bytes(&self, at: u64, len: u64) -> Result<&'a [u8], String> {
        let end = at
            .checked_add(len)
            .filter(|&end| end <= self.data.len() as u64)
            .ok_or_else(|| format!("truncated: {len} bytes at {at} past end of file"))?;
        Ok(&self.data[at as usize..end as usize])
    }

    fn u16(&self, at: u64) -> Result<u16, String> {
        let b: [u8; 2] = self.bytes(at, 2)?.try_into().unwrap();
        Ok(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32(&self, at: u64) -> Result<u32, String> {
        let b: [u8; 4] = self.bytes(at, 4)?.try_into().unwrap();
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// An address-sized field: 8 bytes in ELF64, 4 in ELF32.
    fn word(&self, at: u64) -> Result<u64, String> {
        if self.is64 {
            let b: [u8; 8] = self.bytes(at, 8)?.try_into().unwrap();
            Ok(if self.little {
                u64::from_le_bytes(b)
            } else {
                u64::from_be_bytes(b)
            })
        } else {
            self.u32(at).map(u64::from)
        }
    }

    fn section_header(&self, shoff: u64, entsize: u64, index: u64) -> Result<Section, String> {
        let base = index
            .checked_mul(entsize)
            .and_then(|o| o.checked_add(shoff))
            .ok_or("section header offset overflows")?;
        // The offset comes from the file: a header near u64::MAX must be
        // an error, not a wrapped offset that reads another part of it.
        let field = |at: u64| {
            base.checked_add(at)
                .ok_or_else(|| format!("section header at {base} runs past the end of the file"))
        };
        let (offset, size, link) = if self.is64 {
            (24, 32, 40)
        } else {
            (16, 20, 24)
        };
        Ok(Section {
            name: self.u32(base)?,
            kind: self.u32(field(4)?)?,
            offset: self.word(field(offset)?)?,
            size: self.word(field(size)?)?,
            link: self.u32(field(link)?)?,
        })
    }

    fn sections(&self) -> Result<(Vec<Section>, u64), String> {
        let (shoff, entsize, shnum, shstrndx) = if self.is64 {
            (self.word(40)?, self.u16(58)?, self.u16(60)?, self.u16(62)?)
        } else {
            (self.word(32)?, self.u16(46)?, self.u16(48)?, self.u16(50)?)
        };
        if shoff == 0 {
            return Ok((Vec::new(), 0));
        }
        let entsize = u64::from(entsize);
        let min = if self.is64 { 64 } else { 40 };
        if entsize < min {
            return Err(format!("section header size {entsize} is below {min}"));
        }
        // Past 0xff00 sections the real count and string-table index live in section 0.
        let first = self.section_header(shoff, entsize, 0)?;
        let count = if shnum == 0 {
            first.size
        } else {
            u64::from(shnum)
        };
        let strndx = if shstrndx == SHN_XINDEX {
            u64::from(first.link)
        } else {
            u64::from(shstrndx)
        };
        let table_fits = count
            .checked_mul(entsize)
            .and_then(|n| n.checked_add(shoff))
            .is_some_and(|end| end <= self.data.len() as u64);
        if !table_fits {
            return Err(format!(
                "{count} section headers at {shoff} run past the end of the file"
            ));
        }
        let sections = (0..count)
            .map(|i| self.section_header(shoff, entsize, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((sections, strndx))
    }

    /// The contents of the first section called `name`, or None if there is none.
    pub fn section(&self, name: &str) -> Result<Option<&'a [u8]>, String> {
        let (sections, strndx) = self.sections()?;
        if sections.is_empty() {
            return Ok(None);
        }
        let strtab = sections
            .get(strndx as usize)
            .ok_or_else(|| format!("section name table index {strndx} out of range"))?;
        let names = self.bytes(strtab.offset, strtab.size)?;
        for s in &sections {
            let Some(tail) = names.get(s.name as usize..) else {
                continue;
            };
            let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            if &tail[..end] == name.as_bytes() {
                if s.kind == SHT_NOBITS {
                    return Ok(Some(&[]));
                }
                return self.bytes(s.offset, s.size).map(Some);
            }
        }
        Ok(None)
    }

    /// True if a program header asks for a dynamic loader, i.e. the binary is not static.
    pub fn has_interpreter(&self) -> Result<bool, String> {
        let (phoff, entsize, phnum) = if self.is64 {
            (self.word(32)?, self.u16(54)?, self.u16(56)?)
        } else {
            (self.word(28)?, self.u16(42)?, self.u16(44)?)
        };
        for i in 0..u64::from(phnum) {
            let at = phoff
                .checked_add(i * u64::from(entsize))
                .ok_or("program header offset overflows")?;
            if self.u32(at)? == PT_INTERP {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Builds small ELF files for tests: an ELF64 little-endian object with the given
/// sections, and optionally one program header of the given type.
#[cfg(test)]
pub(crate) fn build_test_elf(
    machine: u16,
    sections: &[(&str, &[u8])],
    phdr: Option<u32>,
) -> Vec<u8> {
    let mut names = vec![0u8];
    let mut name_offsets = Vec::new();
    for (name, _) in sections {
        name_offsets.push(names.len() as u32);
        names.extend_from_slice(name.as_bytes());
        names.push(0);
    }
    let shstrtab_name = names.len() as u32;
    names.extend_from_slice(b".shstrtab\0");

    let mut out = vec![0u8; 64];
    let phoff = if phdr.is_some() { 64u64 } else { 0 };
    if let Some(kind) = phdr {
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&ph);
    }
    let mut placed = Vec::new();
    for (_, data) in sections {
        placed.push((out.len() as u64, data.len() as u64));
        out.extend_from_slice(data);
    }
    let names_at = out.len() as u64;
    out.extend_from_slice(&names);
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let shoff = out.len() as u64;
    let shdr = |name: u32, kind: u32, offset: u64, size: u64| {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[24..32].copy_from_slice(&offset.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h
    };
    out.extend(shdr(0, 0, 0, 0));
    for (i, (offset, size)) in placed.iter().enumerate() {
        out.extend(shdr(name_offsets[i], 1, *offset, *size));
    }
    out.extend(shdr(shstrtab_name, 3, names_at, names.len() as u64));
    let shnum = sections.len() as u16 + 2;

    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&1u16.to_le_bytes());
    out[18..20].copy_from_slice(&machine.to_le_bytes());
    out[32..40].copy_from_slice(&phoff.to_le_bytes());
    out[40..48].copy_from_slice(&shoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&u16::from(phdr.is_some()).to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes());
    out[60..62].copy_from_slice(&shnum.to_le_bytes());
    out[62..64].copy_from_slice(&(shnum - 1).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sections_by_name() {
        let elf = build_test_elf(
            EM_AARCH64,
            &[(".text", b"\x01\x02"), (".modinfo", b"a=b\0")],
            None,
        );
        let e = Elf::parse(&elf).unwrap();
        assert_eq!(e.machine, EM_AARCH64);
        assert_eq!(e.section(".modinfo").unwrap(), Some(&b"a=b\0"[..]));
        assert_eq!(e.section(".text").unwrap(), Some(&b"\x01\x02"[..]));
        assert_eq!(e.section(".modinfo.x").unwrap(), None);
        assert_eq!(e.section(".modinf").unwrap(), None);
    }

    #[test]
    fn tells_static_from_dynamic() {
        let stat = build_test_elf(EM_AARCH64, &[], Some(1));
        assert!(!Elf::parse(&stat).unwrap().has_interpreter().unwrap());
        let dynamic = build_test_elf(EM_AARCH64, &[], Some(PT_INTERP));
        assert!(Elf::parse(&dynamic).unwrap().has_interpreter().unwrap());
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(
            Elf::parse(b"MZ not an elf at all, but long enough to have a header.....").is_err()
        );
        let elf = build_test_elf(EM_AARCH64, &[(".modinfo", b"a=b\0")], None);
        // Cutting off the section headers must be an error, never a panic or a silent None.
        let cut = &elf[..elf.len() - 10];
        assert!(Elf::parse(cut).unwrap().section(".modinfo").is_err());
        // A section that claims to run past the end of the file.
        let mut bad = elf.clone();
        let shoff = u64::from_le_bytes(bad[40..48].try_into().unwrap()) as usize;
        let size_field = shoff + 64 + 32;
        bad[size_field..size_field + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Elf::parse(&bad).unwrap().section(".modinfo").is_err());
    }

    /// Found by kernels/src/fuzz.rs: a section header table said to start
    /// just below u64::MAX overflowed the field offsets (wrapping in
    /// release builds, to offsets at the start of the file).
    #[test]
    fn a_section_table_at_the_end_of_the_address_space_is_an_error() {
        let mut elf = build_test_elf(EM_AARCH64, &[(".modinfo", b"a=b\0")], None);
        for shoff in [u64::MAX, u64::MAX - 4, u64::MAX - 39, u64::MAX - 63] {
            elf[40..48].copy_from_slice(&shoff.to_le_bytes());
            assert!(
                Elf::parse(&elf).unwrap().section(".modinfo").is_err(),
                "{shoff}"
            );
        }
    }
}
