//! What the legacy-table connector needs to know: the PostgreSQL database and table a
//! legacy ERP reads its invoice lines from, and the column it moves when it changes a
//! line's status. Read from `[connectors.<name>]` with `kind = "legacy_table"`.

use std::fmt;
use std::time::Duration;

#[derive(Clone, PartialEq)]
pub struct LegacyTableConfig {
    /// `postgres://user@host:port/db`; a password in it is never printed.
    pub url: String,
    /// The table, `name` or `schema.name`.
    pub table: String,
    /// A `timestamptz` column the legacy system sets whenever it changes a row.
    pub watermark_column: String,
    /// How often statuses are read back.
    pub poll_interval: Duration,
    /// Bounds each statement.
    pub timeout: Duration,
}

impl LegacyTableConfig {
    pub fn new(url: &str, table: &str) -> Self {
        LegacyTableConfig {
            url: url.to_string(),
            table: table.to_string(),
            watermark_column: "updated_at".into(),
            poll_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }

    /// What is wrong with the configuration, each in words.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            problems.push("url is not a postgres:// URL".to_string());
        }
        if !is_table_name(&self.table) {
            problems.push(format!(
                "table '{}' is not a table name (letters, digits and _, optionally schema.table)",
                self.table
            ));
        }
        if !is_identifier(&self.watermark_column) {
            problems.push(format!(
                "watermark_column '{}' is not a column name (letters, digits and _)",
                self.watermark_column
            ));
        }
        if self.poll_interval.is_zero() {
            problems.push("poll_interval_s must be at least 1".into());
        }
        if self.timeout < Duration::from_millis(100) {
            problems.push("timeout_ms must be at least 100".into());
        }
        problems
    }
}

pub use pshub_engine::pg_table::{is_identifier, is_table_name};

impl fmt::Debug for LegacyTableConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyTableConfig")
            .field("url", &redact(&self.url))
            .field("table", &self.table)
            .field("watermark_column", &self.watermark_column)
            .finish_non_exhaustive()
    }
}

pub use crate::redact;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_need_quoting_are_refused() {
        let mut config = LegacyTableConfig::new("postgres://root@127.0.0.1/x", "erp.lines");
        assert!(config.problems().is_empty());
        config.table = "lines; drop table x".into();
        config.watermark_column = "1st".into();
        let problems = config.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("lines; drop table x"));
    }

    #[test]
    fn the_password_is_never_printed() {
        let config = LegacyTableConfig::new("postgres://hub:secret@db/x", "lines");
        assert!(!format!("{config:?}").contains("secret"));
    }
}
