//! Report titles: filling a `formats.rs` template and normalising the result the way
//! syzkaller does, so that one bug keeps one title across runs and machines.

use crate::compile::tables;
use crate::formats::MAX_TITLE_LEN;

/// Fills `{1}`, `{2}`, ... with `args` (1-based). A missing argument renders as
/// "corrupted", as a title whose frame could not be found does.
pub(crate) fn render(template: &str, args: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after.as_bytes().get(digits) == Some(&b'}') {
            let n: usize = after[..digits].parse().unwrap_or(0);
            out.push_str(
                n.checked_sub(1)
                    .and_then(|i| args.get(i))
                    .copied()
                    .unwrap_or("corrupted"),
            );
            rest = &after[digits + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Replaces pids, addresses, line numbers, IPs and CPU numbers with placeholders,
/// then drops control and non-ASCII characters, squeezes spaces and caps the length.
pub(crate) fn normalise(title: &str) -> String {
    let mut s = ascii_only(title);
    // Every rule rewrites a digit or a run of six hex digits; most titles have neither.
    if !needs_rewriting(&s) {
        return sanitise(&s);
    }
    for (re, with) in &tables().replacements {
        // Matches can overlap ("0,1,2"), so repeat until nothing changes.
        loop {
            let replaced = re.replace_all(&s, *with);
            if replaced == s.as_str() {
                break;
            }
            s = replaced.into_owned();
        }
    }
    sanitise(&s)
}

fn needs_rewriting(s: &str) -> bool {
    let mut hex_run = 0;
    for b in s.bytes() {
        if b.is_ascii_digit() {
            return true;
        }
        hex_run = if (b'a'..=b'f').contains(&b) {
            hex_run + 1
        } else {
            0
        };
        if hex_run >= 6 {
            return true;
        }
    }
    false
}

fn ascii_only(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii()).collect()
}

fn sanitise(title: &str) -> String {
    let mut out = String::with_capacity(title.len().min(MAX_TITLE_LEN));
    let mut prev = b' ';
    for &b in title.as_bytes().iter().take(MAX_TITLE_LEN) {
        let b = if b == b'\t' { b' ' } else { b };
        if !(0x20..0x7f).contains(&b) || (b == b' ' && prev == b' ') {
            continue;
        }
        out.push(b as char);
        prev = b;
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(render("WARNING in {3}", &["a", "b", "f"]), "WARNING in f");
        assert_eq!(
            render(
                "KASAN: {1} {3} in {4}",
                &["use-after-free", "x", "Read", "f"]
            ),
            "KASAN: use-after-free Read in f"
        );
        assert_eq!(
            render("INFO: task hung in {1}", &[]),
            "INFO: task hung in corrupted"
        );
        assert_eq!(
            render("BUG: using {1}() in {2}", &["x", "y"]),
            "BUG: using x() in y"
        );
        assert_eq!(render("odd { brace", &[]), "odd { brace");
    }

    #[test]
    fn normalisation_matches_syzkaller_conventions() {
        assert_eq!(
            normalise("kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"),
            "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
        );
        assert_eq!(
            normalise("KASAN: slab-out-of-bounds in ffff88001234abcd"),
            "KASAN: slab-out-of-bounds in ADDR"
        );
        assert_eq!(
            normalise("WARNING in syz-executor.3:1234"),
            "WARNING in syz-executor"
        );
        assert_eq!(
            normalise("BUG: soft lockup on CPU#3"),
            "BUG: soft lockup on CPU"
        );
        assert_eq!(
            normalise("kernel BUG at fs/ext4/inode.c:123!"),
            "kernel BUG at fs/ext4/inode.c:LINE!"
        );
        assert_eq!(
            normalise("WARNING in cfg80211_connect"),
            "WARNING in cfg80211_connect"
        );
        assert_eq!(normalise("a  \t b\x01 c\u{e9}"), "a b c");
        assert_eq!(normalise(&"x".repeat(300)).len(), MAX_TITLE_LEN);
    }
}
