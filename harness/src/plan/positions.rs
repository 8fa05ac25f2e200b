//! Where each key of a YAML document is, by path (`variants[1].kernel`).
//!
//! serde reports the position of syntax and type errors itself; checks that
//! run after deserialising (a missing file, an impossible value) use this
//! index so their errors carry a line and column too.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default)]
pub struct Positions {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
}

impl Positions {
    #[cfg(test)]
    pub fn index(text: &str) -> Self {
        let mut b = Builder::default();
        let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
        // A syntax error is reported by serde with its position; the index
        // then just stays partial.
        let _ = parser.load(&mut b, false);
        b.out
    }

    /// The position of a value, else of its key, else of the nearest
    /// enclosing key that exists, so an error always has a place.
    pub fn of(&self, path: &str) -> Pos {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.values.get(&p).or_else(|| self.keys.get(&p)) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => {
                    return self
                        .values
                        .get("")
                        .copied()
                        .unwrap_or(Pos { line: 1, column: 1 })
                }
            }
        }
    }

    /// Where a key itself is; for a repeated key, its last occurrence.
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied()
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
pub(super) struct Builder {
    stack: Vec<Frame>,
    pub(super) out: Positions,
}

impl Builder {
    /// The path the next value will have, without consuming it.
    pub(super) fn next_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Map { path, key }) => {
                key.as_deref().map_or(path.clone(), |k| join(path, k))
            }
            Some(Frame::Seq { path, next }) => format!("{path}[{next}]"),
        }
    }

    /// The path of the top-level value being read: the key an error deep
    /// inside it is reported under.
    pub(super) fn top_path(&self) -> String {
        match self.stack.get(1) {
            Some(Frame::Map { path, .. } | Frame::Seq { path, .. }) => path.clone(),
            None => self.next_path(),
        }
    }

    /// The path of the value about to start, consuming the pending key.
    fn value_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn pos(m: Marker) -> Pos {
    Pos {
        line: m.line(),
        column: m.col() + 1,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                    if key.is_none() {
                        let p = join(path, &value);
                        self.out.keys.insert(p, pos(mark));
                        *key = Some(value);
                        return;
                    }
                }
                if let Some(p) = self.value_path() {
                    self.out.values.insert(p, pos(mark));
                }
            }
            Event::MappingStart(..) => {
                let path = self.value_path().unwrap_or_default();
                self.out.values.entry(path.clone()).or_insert(pos(mark));
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path().unwrap_or_default();
                self.out.values.entry(path.clone()).or_insert(pos(mark));
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                let _ = self.value_path();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values_by_path() {
        let text =
            "name: x\nvariants:\n  - name: a\n    kernel:\n      debian: pkg-a\n  - name: b\n";
        let p = Positions::index(text);
        // A sequence value starts at its first dash.
        assert_eq!(p.of("variants"), Pos { line: 3, column: 3 });
        assert_eq!(
            p.of("variants[0].kernel.debian"),
            Pos {
                line: 5,
                column: 15
            }
        );
        assert_eq!(
            p.of("variants[1].name"),
            Pos {
                line: 6,
                column: 11
            }
        );
        // Unknown paths fall back to their closest ancestor.
        assert_eq!(p.of("variants[1].missing"), p.of("variants[1]"));
    }
}
