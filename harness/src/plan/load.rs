//! Reading a YAML file into a typed model, keeping positions for errors.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::bounds;
use super::error::PlanError;
use super::positions::{Pos, Positions};

pub struct Loaded<T> {
    pub value: T,
    pub text: String,
    pub positions: Positions,
}

pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Loaded<T>, PlanError> {
    let text = bounds::read(path)?;
    let (value, positions) = parse(path, &text)?;
    Ok(Loaded {
        value,
        positions,
        text,
    })
}

pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<(T, Positions), PlanError> {
    // The YAML parser ends lines at NEL, LS and PS (YAML 1.1), editors do
    // not: positions after one would be off, and one in a comment turns the
    // rest of the comment into content. Reject it where an editor shows it.
    if let Some(i) = text.find(['\u{85}', '\u{2028}', '\u{2029}']) {
        let before = text[..i].replace("\r\n", "\n").replace('\r', "\n");
        let line = before.matches('\n').count() + 1;
        let column = before[before.rfind('\n').map_or(0, |n| n + 1)..]
            .chars()
            .count()
            + 1;
        let c = text[i..].chars().next().unwrap_or_default() as u32;
        let message = format!(
            "character U+{c:04X} is not allowed: YAML parsers disagree on whether it ends a line"
        );
        return Err(PlanError::new(path, Pos { line, column }, "", message));
    }
    let positions = bounds::scan(path, text)?;
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        let mut key = e.path().to_string();
        if key == "." {
            key.clear();
        }
        let inner = e.inner();
        let message = inner.to_string();
        // serde_yaml appends " at line L column C"; we print the position
        // up front instead.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        // serde_yaml prefixes the path it was at (for an unknown field, the
        // parent of our key); we print the key ourselves.
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if !key.is_empty() && key.starts_with(prefix) => rest.to_string(),
            _ => message,
        };
        let duplicate = field_in(&message, "duplicate field `");
        if let Some(field) = field_in(&message, "unknown field `").or(duplicate.clone()) {
            if !key.ends_with(&field) {
                key = if key.is_empty() {
                    field
                } else {
                    format!("{key}.{field}")
                };
            }
        }
        // serde reports a duplicate at the start of the enclosing mapping; the
        // position index keeps the last occurrence of a key: the repeat.
        let pos = duplicate
            .and_then(|_| positions.key(&key))
            .or_else(|| {
                inner.location().map(|l| Pos {
                    line: l.line(),
                    column: l.column(),
                })
            })
            .unwrap_or_else(|| positions.of(&key));
        PlanError::new(path, pos, key, message)
    })?;
    Ok((value, positions))
}

/// The name in "<prefix>name`...", as serde words unknown and duplicate fields.
fn field_in(msg: &str, prefix: &str) -> Option<String> {
    let rest = msg.strip_prefix(prefix)?;
    Some(rest[..rest.find('`')?].to_string())
}
