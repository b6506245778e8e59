//! SQL lives in `.sql` files of each store crate. A file of queries names each one with a
//! `-- name: <name>` line above it; migrations are numbered files applied in order. This is
//! text handling only: the engine runs no SQL.

use crate::error::{EngineError, Result};
use std::collections::HashMap;

/// Named queries of one `.sql` file.
#[derive(Debug, Clone)]
pub struct Queries {
    by_name: HashMap<&'static str, &'static str>,
}

impl Queries {
    /// Splits `text` at its `-- name: <name>` lines.
    pub fn parse(text: &'static str) -> Self {
        let mut by_name = HashMap::new();
        let mut rest = text;
        while let Some(at) = rest.find("-- name:") {
            rest = &rest[at + "-- name:".len()..];
            let (name, body) = rest.split_once('\n').unwrap_or((rest, ""));
            let end = body.find("-- name:").unwrap_or(body.len());
            by_name.insert(name.trim(), body[..end].trim());
            rest = &body[end..];
        }
        Queries { by_name }
    }

    /// The query called `name`.
    pub fn get(&self, name: &str) -> Result<&'static str> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| EngineError::Store(format!("no query named {name} in the store's SQL")))
    }

    pub fn names(&self) -> impl Iterator<Item = &&'static str> {
        self.by_name.keys()
    }
}

/// One schema change, applied once and recorded by its number.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_names() {
        let queries = Queries::parse(
            "-- a file comment\n-- name: one\nSELECT 1;\n\n-- name: two\nSELECT 2\nFROM t;\n",
        );
        assert_eq!(queries.get("one").unwrap(), "SELECT 1;");
        assert_eq!(queries.get("two").unwrap(), "SELECT 2\nFROM t;");
        assert!(queries.get("three").is_err());
    }
}
