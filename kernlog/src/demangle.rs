//! Readable names for the mangled symbols that show up in kernel stacks: Rust code in
//! the kernel (v0 mangling, `_R...`, and legacy `_ZN...17h<hash>E`) and the odd C++
//! symbol (`_Z...`). Only what stack frames need is handled: paths, impls, trait
//! impls, generic arguments of simple types. Anything else is left as it is.

use std::borrow::Cow;

/// The demangled form of `name`, or `name` itself when it is not a mangled symbol
/// this understands.
pub(crate) fn demangle(name: &str) -> Cow<'_, str> {
    let demangled = if let Some(rest) = name.strip_prefix("_R") {
        V0::new(rest).symbol()
    } else if let Some(rest) = name.strip_prefix("_Z") {
        itanium(rest)
    } else {
        None
    };
    demangled.map_or(Cow::Borrowed(name), Cow::Owned)
}

/// Limits that keep hostile input cheap.
const MAX_DEPTH: usize = 32;
const MAX_OUTPUT: usize = 512;

/// Itanium C++ (and legacy Rust): `_Z<len><name>...` or `_ZN<len><name>...E...`.
fn itanium(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let (nested, mut i) = if b.first() == Some(&b'N') {
        (true, 1)
    } else {
        (false, 0)
    };
    let mut parts: Vec<&str> = Vec::new();
    loop {
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            break;
        }
        let len: usize = s[i..i + digits].parse().ok()?;
        i += digits;
        let part = s.get(i..i.checked_add(len)?)?;
        parts.push(part);
        i += len;
        if !nested {
            break;
        }
    }
    if parts.is_empty() || (nested && b.get(i) != Some(&b'E')) {
        return None;
    }
    // Legacy Rust symbols end with a hash component: "h" and 16 hex digits.
    if parts.len() > 1 {
        let last = parts[parts.len() - 1];
        if last.len() == 17
            && last.starts_with('h')
            && last[1..].bytes().all(|c| c.is_ascii_hexdigit())
        {
            parts.pop();
        }
    }
    let joined = parts
        .join("::")
        .replace("$LT$", "<")
        .replace("$GT$", ">")
        .replace("$u20$", " ")
        .replace("..", "::");
    Some(joined)
}

/// Rust v0 mangling (RFC 2603).
struct V0<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    out: String,
}

impl<'a> V0<'a> {
    fn new(s: &'a str) -> Self {
        V0 {
            s: s.as_bytes(),
            pos: 0,
            depth: 0,
            out: String::new(),
        }
    }

    fn symbol(mut self) -> Option<String> {
        // An optional encoding version, then the path.
        let digits = self.s.iter().take_while(|c| c.is_ascii_digit()).count();
        self.pos = digits;
        self.path(false)?;
        Some(self.out)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += 1;
        }
        found
    }

    fn push(&mut self, s: &str) -> Option<()> {
        if self.out.len() + s.len() > MAX_OUTPUT {
            return None;
        }
        self.out.push_str(s);
        Some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// `{0-9a-zA-Z} "_"`: empty means 0, otherwise the value plus one.
    fn base62(&mut self) -> Option<u64> {
        if self.eat(b'_') {
            return Some(0);
        }
        let mut n: u64 = 0;
        loop {
            let c = self.next()?;
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'z' => c - b'a' + 10,
                b'A'..=b'Z' => c - b'A' + 36,
                b'_' => return n.checked_add(1),
                _ => return None,
            };
            n = n.checked_mul(62)?.checked_add(u64::from(d))?;
        }
    }

    fn disambiguator(&mut self) -> Option<()> {
        if self.eat(b's') {
            self.base62()?;
        }
        Some(())
    }

    fn identifier(&mut self) -> Option<&'a str> {
        self.disambiguator()?;
        let punycode = self.eat(b'u');
        let digits = self.s[self.pos..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        let len: usize = std::str::from_utf8(&self.s[self.pos..self.pos + digits])
            .ok()?
            .parse()
            .ok()?;
        self.pos += digits;
        self.eat(b'_');
        let bytes = self.s.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        if punycode {
            return None;
        }
        std::str::from_utf8(bytes).ok()
    }

    /// Runs `f` at the position a back-reference points to, then comes back.
    fn backref(&mut self, f: impl FnOnce(&mut Self) -> Option<()>) -> Option<()> {
        let target = usize::try_from(self.base62()?).ok()?;
        if target >= self.pos {
            return None;
        }
        let saved = std::mem::replace(&mut self.pos, target);
        let result = f(self);
        self.pos = saved;
        result
    }

    /// `in_value`: generic arguments inside a path printed as `::<...>`.
    fn path(&mut self, in_value: bool) -> Option<()> {
        self.enter()?;
        match self.next()? {
            b'C' => {
                let name = self.identifier()?;
                self.push(name)?;
            }
            b'M' => {
                self.disambiguator()?;
                self.skip_path()?;
                self.push("<")?;
                self.ty()?;
                self.push(">")?;
            }
            b'X' => {
                self.disambiguator()?;
                self.skip_path()?;
                self.push("<")?;
                self.ty()?;
                self.push(" as ")?;
                self.path(false)?;
                self.push(">")?;
            }
            b'Y' => {
                self.push("<")?;
                self.ty()?;
                self.push(" as ")?;
                self.path(false)?;
                self.push(">")?;
            }
            b'N' => {
                let namespace = self.next()?;
                self.path(in_value)?;
                let name = self.identifier()?;
                if namespace.is_ascii_uppercase() {
                    // Closures and shims: "{closure#0}"-like, shown briefly.
                    self.push("::{")?;
                    self.push(if namespace == b'C' { "closure" } else { "shim" })?;
                    self.push("}")?;
                } else if !name.is_empty() {
                    self.push("::")?;
                    self.push(name)?;
                }
            }
            b'I' => {
                self.path(in_value)?;
                self.push(if in_value { "::<" } else { "<" })?;
                let mut first = true;
                while !self.eat(b'E') {
                    if !first {
                        self.push(", ")?;
                    }
                    first = false;
                    self.generic_arg()?;
                }
                self.push(">")?;
            }
            b'B' => self.backref(|p| p.path(in_value))?,
            _ => return None,
        }
        self.depth -= 1;
        Some(())
    }

    /// Impl paths name where an impl lives; the printed form leaves them out.
    fn skip_path(&mut self) -> Option<()> {
        let saved = self.out.len();
        self.path(false)?;
        self.out.truncate(saved);
        Some(())
    }

    fn generic_arg(&mut self) -> Option<()> {
        if self.eat(b'L') {
            self.base62()?;
            return self.push("'_");
        }
        if self.eat(b'K') {
            return self.constant();
        }
        self.ty()
    }

    fn constant(&mut self) -> Option<()> {
        self.enter()?;
        self.depth -= 1;
        if self.eat(b'p') {
            return self.push("_");
        }
        if self.peek() == Some(b'B') {
            self.pos += 1;
            return self.backref(|p| p.constant());
        }
        // A basic type, then hex digits up to '_'.
        self.next()?;
        let negative = self.eat(b'n');
        let start = self.pos;
        while self.peek()? != b'_' {
            self.pos += 1;
        }
        let hex = std::str::from_utf8(&self.s[start..self.pos]).ok()?;
        self.pos += 1;
        let value = u64::from_str_radix(if hex.is_empty() { "0" } else { hex }, 16).ok()?;
        self.push(&format!("{}{value}", if negative { "-" } else { "" }))
    }

    fn ty(&mut self) -> Option<()> {
        self.enter()?;
        let c = self.peek()?;
        if let Some(name) = basic_type(c) {
            self.pos += 1;
            self.push(name)?;
        } else {
            match c {
                b'R' | b'Q' => {
                    self.pos += 1;
                    if self.eat(b'L') {
                        self.base62()?;
                    }
                    self.push(if c == b'R' { "&" } else { "&mut " })?;
                    self.ty()?;
                }
                b'P' | b'O' => {
                    self.pos += 1;
                    self.push(if c == b'P' { "*const " } else { "*mut " })?;
                    self.ty()?;
                }
                b'A' => {
                    self.pos += 1;
                    self.push("[")?;
                    self.ty()?;
                    self.push("; ")?;
                    self.constant()?;
                    self.push("]")?;
                }
                b'S' => {
                    self.pos += 1;
                    self.push("[")?;
                    self.ty()?;
                    self.push("]")?;
                }
                b'T' => {
                    self.pos += 1;
                    self.push("(")?;
                    let mut first = true;
                    while !self.eat(b'E') {
                        if !first {
                            self.push(", ")?;
                        }
                        first = false;
                        self.ty()?;
                    }
                    self.push(")")?;
                }
                b'B' => {
                    self.pos += 1;
                    self.backref(|p| p.ty())?;
                }
                _ => self.path(false)?,
            }
        }
        self.depth -= 1;
        Some(())
    }
}

fn basic_type(c: u8) -> Option<&'static str> {
    Some(match c {
        b'a' => "i8",
        b'b' => "bool",
        b'c' => "char",
        b'd' => "f64",
        b'e' => "str",
        b'f' => "f32",
        b'h' => "u8",
        b'i' => "isize",
        b'j' => "usize",
        b'l' => "i32",
        b'm' => "u32",
        b'n' => "i128",
        b'o' => "u128",
        b's' => "i16",
        b't' => "u16",
        b'u' => "()",
        b'v' => "...",
        b'x' => "i64",
        b'y' => "u64",
        b'z' => "!",
        b'p' => "_",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_v0() {
        assert_eq!(
            demangle("_RNvMs3_NtCshgDM7dBCdno_11rust_binder7processNtB5_7Process10update_ref"),
            "<rust_binder::process::Process>::update_ref"
        );
        assert_eq!(
            demangle("_RNvCscSpY9Juk0HT_7___rustc17rust_begin_unwind"),
            "__rustc::rust_begin_unwind"
        );
        assert_eq!(
            demangle(
                "_RNvNtNtCs9jEwPDbx20M_4core9panicking11panic_const24panic_const_sub_overflow"
            ),
            "core::panicking::panic_const::panic_const_sub_overflow"
        );
    }

    #[test]
    fn legacy_rust_and_cpp() {
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(demangle("_Z8fakeNameiii"), "fakeName");
        assert_eq!(demangle("_ZN3foo3barEv"), "foo::bar");
    }

    #[test]
    fn leaves_other_names_alone() {
        for name in [
            "mmc_blk_rw_wait",
            "_R",
            "_Z",
            "_RNv",
            "_Z99x",
            "_RBzzzz",
            "_RNvC",
            "_RINvC3fooE",
        ] {
            let out = demangle(name);
            assert!(out == name || !out.is_empty(), "{name:?} -> {out:?}");
        }
        assert_eq!(demangle("mmc_blk_rw_wait"), "mmc_blk_rw_wait");
        // Self-referencing back-references must not loop.
        assert_eq!(demangle("_RB_"), "_RB_");
    }
}
