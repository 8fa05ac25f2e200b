//! Kconfig files as data: parsing `.config` and fragments, merging a
//! fragment over a base (what scripts/kconfig/merge_config.sh does), and
//! checking what survived `make olddefconfig`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Error;

/// Symbol -> value; `None` is "is not set". Ordered, so the files written
/// and the diffs recorded are the same every time.
pub type Symbols = BTreeMap<String, Option<String>>;

/// Reads `CONFIG_X=v` and `# CONFIG_X is not set` lines; other comments
/// and blank lines are ignored. `origin` names the file in errors.
pub fn parse(text: &str, origin: &Path) -> Result<Symbols, Error> {
    let mut out = Symbols::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(sym) = rest.strip_suffix(" is not set") {
                if valid_symbol(sym) {
                    out.insert(sym.to_string(), None);
                }
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(bad_line(origin, n, raw));
        };
        if !valid_symbol(k) || v.is_empty() {
            return Err(bad_line(origin, n, raw));
        }
        // `=n` in a fragment means the same as "is not set".
        let v = (v != "n").then(|| v.to_string());
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

fn bad_line(origin: &Path, n: usize, raw: &str) -> Error {
    Error::artifact(
        origin,
        format!(
            "line {}: {raw:?} is not a config line: expected CONFIG_NAME=value or \
             `# CONFIG_NAME is not set`",
            n + 1
        ),
    )
}

fn valid_symbol(s: &str) -> bool {
    s.strip_prefix("CONFIG_").is_some_and(|r| {
        !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Writes symbols in `.config` syntax.
pub fn render(symbols: &Symbols) -> String {
    let mut s = String::new();
    for (k, v) in symbols {
        match v {
            Some(v) => s.push_str(&format!("{k}={v}\n")),
            None => s.push_str(&format!("# {k} is not set\n")),
        }
    }
    s
}

/// `base` with every fragment laid over it, later fragments winning.
pub fn merge(base: &Symbols, fragments: &[(PathBuf, Symbols)]) -> Symbols {
    let mut out = base.clone();
    for (_, f) in fragments {
        for (k, v) in f {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// A requested value that Kconfig did not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub fragment: PathBuf,
    pub symbol: String,
    pub wanted: Option<String>,
    pub got: Option<String>,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "not set".into());
        write!(
            f,
            "{}: {} wanted {}, got {}",
            self.fragment.display(),
            self.symbol,
            show(&self.wanted),
            show(&self.got)
        )
    }
}

/// Every fragment value that the final config does not have: the symbol's
/// dependencies were not met, or it does not exist in this tree. Kconfig
/// drops these silently; a build must not.
pub fn dropped(final_cfg: &Symbols, fragments: &[(PathBuf, Symbols)]) -> Vec<Dropped> {
    let mut wanted: BTreeMap<&str, (&Path, &Option<String>)> = BTreeMap::new();
    for (path, f) in fragments {
        for (k, v) in f {
            wanted.insert(k, (path, v));
        }
    }
    wanted
        .into_iter()
        .filter_map(|(k, (path, v))| {
            let got = final_cfg.get(k).cloned().flatten();
            (got != *v).then(|| Dropped {
                fragment: path.to_path_buf(),
                symbol: k.to_string(),
                wanted: v.clone(),
                got,
            })
        })
        .collect()
}

/// How the final config differs from its base, for the provenance record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    /// `CONFIG_X: old -> new`, with "n" for unset.
    pub changed: Vec<String>,
}

pub fn diff(base: &Symbols, new: &Symbols) -> ConfigDiff {
    let show = |v: Option<&Option<String>>| v.cloned().flatten().unwrap_or_else(|| "n".into());
    let mut keys: Vec<&String> = base.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let changed = keys
        .into_iter()
        .filter_map(|k| {
            let (a, b) = (show(base.get(k)), show(new.get(k)));
            (a != b).then(|| format!("{k}: {a} -> {b}"))
        })
        .collect();
    ConfigDiff { changed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Symbols {
        parse(s, Path::new("t.config")).unwrap()
    }

    #[test]
    fn parses_set_unset_and_strings() {
        let s = p("# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n\nCONFIG_D=n\n");
        assert_eq!(s["CONFIG_A"].as_deref(), Some("y"));
        assert_eq!(s["CONFIG_B"], None);
        assert_eq!(s["CONFIG_C"].as_deref(), Some("\"x y\""));
        assert_eq!(s["CONFIG_D"], None);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn rejects_garbage_with_the_line_number() {
        let err = parse("CONFIG_A=y\nPREEMPT=y\n", Path::new("frag.config")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("frag.config") && msg.contains("line 2"),
            "{msg}"
        );
        assert!(parse("CONFIG_A=\n", Path::new("f")).is_err());
    }

    #[test]
    fn later_fragments_win_and_render_round_trips() {
        let base = p("CONFIG_PREEMPT_VOLUNTARY=y\n# CONFIG_PREEMPT is not set\nCONFIG_HZ=250\n");
        let f1 = (
            PathBuf::from("a"),
            p("CONFIG_PREEMPT=y\n# CONFIG_PREEMPT_VOLUNTARY is not set\n"),
        );
        let f2 = (PathBuf::from("b"), p("CONFIG_HZ=100\nCONFIG_HZ=1000\n"));
        let m = merge(&base, &[f1, f2]);
        assert_eq!(m["CONFIG_PREEMPT"].as_deref(), Some("y"));
        assert_eq!(m["CONFIG_PREEMPT_VOLUNTARY"], None);
        assert_eq!(m["CONFIG_HZ"].as_deref(), Some("1000"));
        assert_eq!(p(&render(&m)), m);
        let d = diff(&base, &m);
        assert_eq!(
            d.changed,
            vec![
                "CONFIG_HZ: 250 -> 1000",
                "CONFIG_PREEMPT: n -> y",
                "CONFIG_PREEMPT_VOLUNTARY: y -> n",
            ]
        );
    }

    #[test]
    fn reports_values_kconfig_dropped() {
        let frag = (
            PathBuf::from("f.config"),
            p("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n"),
        );
        let fin = p("CONFIG_A=y\n# CONFIG_B is not set\n");
        let d = dropped(&fin, std::slice::from_ref(&frag));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].to_string(), "f.config: CONFIG_B wanted y, got not set");
    }
}
