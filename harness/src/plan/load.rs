//! Reading a YAML file into a typed model, keeping positions for errors.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::error::PlanError;
use super::positions::{Pos, Positions};

pub struct Loaded<T> {
    pub value: T,
    pub text: String,
    pub positions: Positions,
}

pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Loaded<T>, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PlanError::new(
            path,
            Pos { line: 1, column: 1 },
            "",
            format!("cannot read file: {e}"),
        )
    })?;
    let value = parse(path, &text)?;
    Ok(Loaded {
        value,
        positions: Positions::index(&text),
        text,
    })
}

pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, PlanError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
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
        if let Some(field) = unknown_field(&message) {
            if !key.ends_with(&field) {
                key = if key.is_empty() {
                    field
                } else {
                    format!("{key}.{field}")
                };
            }
        }
        let pos = inner
            .location()
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or_else(|| Positions::index(text).of(&key));
        PlanError::new(path, pos, key, message)
    })
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}
