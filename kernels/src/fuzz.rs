//! Property tests of the ELF reader and the `.modinfo` parser, which read
//! files from Debian packages and kernel builds: a damaged or hostile file
//! must give an error, never a panic, an overflow, or a read outside it.
//! A unit-test module rather than tests/, to reach the crate-private ELF
//! reader and its test-file builder.
//!
//! 256 cases per property unless PROPTEST_CASES is set (docs/fuzzing.md).

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use crate::elf::{build_test_elf, Elf, EM_AARCH64};
use crate::modinfo::ModInfo;

fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = None;
    c
}

/// What a damaged file may have: bytes flipped, fields set to extremes
/// (offsets, sizes and counts live at 2-, 4- and 8-byte aligned places),
/// or the file cut short.
#[derive(Debug, Clone)]
enum Damage {
    Flip(Index, u8),
    Field(Index, u8, u64),
    Cut(Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<Index>(), 1u8..).prop_map(|(i, x)| Damage::Flip(i, x)),
        (
            any::<Index>(),
            prop_oneof![Just(2u8), Just(4), Just(8)],
            prop_oneof![
                Just(0u64),
                Just(u64::MAX),
                Just(u64::MAX - 63),
                Just(0xffff),
                Just(0xff00),
                Just(1 << 32),
                0..4096u64
            ]
        )
            .prop_map(|(i, w, v)| Damage::Field(i, w, v)),
        any::<Index>().prop_map(Damage::Cut),
    ]
}

fn apply(mut data: Vec<u8>, d: &Damage) -> Vec<u8> {
    if data.is_empty() {
        return data;
    }
    match d {
        Damage::Flip(i, x) => {
            let at = i.index(data.len());
            data[at] ^= x;
        }
        Damage::Field(i, w, v) => {
            let w = *w as usize;
            if data.len() < w {
                return data;
            }
            let at = i.index(data.len() / w) * w;
            data[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
        }
        Damage::Cut(i) => data.truncate(i.index(data.len() + 1)),
    }
    data
}

fn section_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(".modinfo".to_string()),
        Just(".text".to_string()),
        // Not empty: the null section 0 is called "" too. Not the name
        // table's own name either.
        "[.a-z]{1,12}".prop_filter("the name table's name", |n| n != ".shstrtab"),
    ]
}

/// Every read of `data` the crate makes, none of which may panic. A
/// section's contents must lie inside the file (a slice of it).
fn read_everything(data: &[u8], names: &[&str]) -> Result<(), TestCaseError> {
    let Ok(elf) = Elf::parse(data) else {
        return Ok(());
    };
    for name in names {
        if let Ok(Some(s)) = elf.section(name) {
            let range = data.as_ptr_range();
            prop_assert!(
                s.is_empty() || (range.start <= s.as_ptr() && s.as_ptr_range().end <= range.end)
            );
            let _ = ModInfo::parse(s);
        }
    }
    let _ = elf.has_interpreter();
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// A well-formed file gives back each section's bytes (the first of
    /// each name) and its program header's kind.
    #[test]
    fn sections_round_trip(
        sections in vec((section_name(), vec(any::<u8>(), 0..200)), 0..6),
        interp in proptest::option::of(prop_oneof![Just(3u32), Just(1u32)]),
    ) {
        let refs: Vec<(&str, &[u8])> = sections.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        let data = build_test_elf(EM_AARCH64, &refs, interp);
        let elf = Elf::parse(&data).unwrap();
        for (name, _) in &sections {
            let want = sections.iter().find(|(n, _)| n == name).map(|(_, d)| d.as_slice());
            prop_assert_eq!(elf.section(name).unwrap(), want, "section {:?}", name);
        }
        prop_assert_eq!(elf.has_interpreter().unwrap(), interp == Some(3));
    }

    /// Up to four kinds of damage to a well-formed file: no panic, no
    /// overflow, no read outside the file.
    #[test]
    fn a_damaged_file_is_an_error_or_an_answer(
        sections in vec((section_name(), vec(any::<u8>(), 0..64)), 0..4),
        interp in proptest::option::of(prop_oneof![Just(3u32), Just(1u32)]),
        damages in vec(damage(), 1..5),
        big_endian in any::<bool>(),
        class32 in any::<bool>(),
    ) {
        let refs: Vec<(&str, &[u8])> = sections.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        let mut data = build_test_elf(EM_AARCH64, &refs, interp);
        // The other byte order and class read the same bytes as other
        // numbers: all the more extreme fields.
        if big_endian { data[5] = 2; }
        if class32 { data[4] = 1; }
        for d in &damages {
            data = apply(data, d);
        }
        let names: Vec<&str> = sections.iter().map(|(n, _)| n.as_str()).chain([".modinfo"]).collect();
        read_everything(&data, &names)?;
    }

    /// Any bytes behind an ELF identification.
    #[test]
    fn any_bytes_after_the_magic(class in 0u8..4, order in 0u8..4, rest in vec(any::<u8>(), 0..400)) {
        let mut data = b"\x7fELF".to_vec();
        data.extend([class, order]);
        data.extend(rest);
        read_everything(&data, &[".modinfo", ""])?;
    }

    /// `.modinfo` entries come back in order, whatever the NUL padding
    /// between them; anything without `=` is ignored; arbitrary bytes
    /// never panic and give no more entries than there are `=` signs.
    #[test]
    fn modinfo_round_trips(
        entries in vec(("[^=\u{0}]{1,12}", "[^\u{0}]{0,20}", 1..8usize), 0..8),
        noise in vec(any::<u8>(), 0..200),
    ) {
        let mut section = Vec::new();
        for (k, v, pad) in &entries {
            section.extend(format!("{k}={v}").as_bytes());
            section.extend(std::iter::repeat_n(0u8, *pad));
        }
        let info = ModInfo::parse(&section);
        for (k, v, _) in &entries {
            let want = entries.iter().find(|(k2, _, _)| k2 == k).map(|(_, v, _)| v.as_str());
            prop_assert_eq!(info.get(k), want);
            prop_assert!(info.get_all(k).any(|x| x == v));
        }
        let info = ModInfo::parse(&noise);
        let equals = noise.iter().filter(|&&b| b == b'=').count();
        prop_assert!(info.get_all("").count() <= equals);
    }
}
