//! Reading a U-Boot (hush) boot script well enough to find the commands
//! that load its kernel and initrd: split into simple commands at `;`,
//! `&&`, `||` and line ends outside quotes, comments skipped, each command
//! split into words. Nothing is evaluated: variables stay as written.

use std::ops::Range;

/// One simple command: where it is in the script (its keyword prefix such
/// as `if` or `then` left out) and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub span: Range<usize>,
    pub words: Vec<String>,
}

/// Words that open or join compound commands: what follows them is the
/// command (as in `if load ...; then`).
const KEYWORDS: [&str; 8] = ["if", "then", "else", "elif", "do", "while", "until", "!"];

pub fn commands(text: &str) -> Vec<Command> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // One command: words until a separator outside quotes.
        let mut words: Vec<(usize, usize)> = Vec::new();
        let mut word_start: Option<usize> = None;
        let mut quote: Option<u8> = None;
        while i < b.len() {
            let c = b[i];
            if let Some(q) = quote {
                if c == b'\\' && q == b'"' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
                i += 1;
                continue;
            }
            let separator = c == b'\n'
                || c == b';'
                || (c == b'&' && b.get(i + 1) == Some(&b'&'))
                || (c == b'|' && b.get(i + 1) == Some(&b'|'));
            if separator || c == b' ' || c == b'\t' || c == b'\r' {
                if let Some(s) = word_start.take() {
                    words.push((s, i));
                }
                if separator {
                    break;
                }
                i += 1;
                continue;
            }
            if c == b'#' && word_start.is_none() {
                // A comment runs to the end of the line.
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            if word_start.is_none() {
                word_start = Some(i);
            }
            match c {
                b'\\' if b.get(i + 1) == Some(&b'\n') => {
                    // A continued line: the command goes on.
                    word_start = None;
                    i += 2;
                    continue;
                }
                b'\\' => i += 1,
                b'"' | b'\'' => quote = Some(c),
                _ => {}
            }
            i += 1;
        }
        if let Some(s) = word_start.take() {
            words.push((s, i.min(b.len())));
        }
        // Past the separator (two bytes for && and ||).
        if i < b.len() && (b[i] == b'&' || b[i] == b'|') {
            i += 1;
        }
        i += 1;
        let first = words
            .iter()
            .position(|&(s, e)| !KEYWORDS.contains(&&text[s..e]));
        if let Some(f) = first {
            let words = &words[f..];
            out.push(Command {
                span: words[0].0..words[words.len() - 1].1,
                words: words.iter().map(|&(s, e)| text[s..e].to_string()).collect(),
            });
        }
    }
    out
}

/// `${name}` and `$name` are one variable: the name, or the word itself
/// when it is no plain variable reference.
pub fn variable(word: &str) -> &str {
    if let Some(inner) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
        return inner;
    }
    word.strip_prefix('$').unwrap_or(word)
}

/// The commands that read a file into memory: `load` and the per-filesystem
/// ones, all `CMD IFACE DEV[:PART] ADDR FILE ...`.
pub fn is_load(cmd: &Command) -> bool {
    matches!(
        cmd.words[0].as_str(),
        "load" | "fatload" | "ext2load" | "ext4load"
    ) && cmd.words.len() >= 5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Vec<String>> {
        commands(text).into_iter().map(|c| c.words).collect()
    }

    #[test]
    fn commands_split_at_separators_outside_quotes() {
        let w = words("setenv a \"x; y\" && echo 'p || q'; booti ${k} - ${f} # done\n# all\nfi\n");
        assert_eq!(
            w,
            [
                vec!["setenv", "a", "\"x; y\""],
                vec!["echo", "'p || q'"],
                vec!["booti", "${k}", "-", "${f}"],
                vec!["fi"],
            ]
        );
    }

    #[test]
    fn keywords_are_not_the_command() {
        let text = "if load mmc 0 ${a} /x; then echo ok; else echo no; fi";
        let c = commands(text);
        assert_eq!(c[0].words[0], "load");
        assert_eq!(&text[c[0].span.clone()], "load mmc 0 ${a} /x");
        assert_eq!(c[1].words, ["echo", "ok"]);
        assert_eq!(c[2].words, ["echo", "no"]);
    }

    #[test]
    fn continued_lines_are_one_command() {
        let text = "load virtio 0:1 ${kernel_addr_r} \\\n  /vmlinuz \\\n&& echo loaded";
        let c = commands(text);
        assert_eq!(
            c[0].words,
            ["load", "virtio", "0:1", "${kernel_addr_r}", "/vmlinuz"]
        );
        assert_eq!(c[1].words, ["echo", "loaded"]);
    }

    #[test]
    fn variables_are_named_either_way() {
        assert_eq!(variable("${kernel_addr_r}"), "kernel_addr_r");
        assert_eq!(variable("$kernel_addr_r"), "kernel_addr_r");
        assert_eq!(variable("0x40400000"), "0x40400000");
    }
}
