//! The engine's half of the PostgreSQL table connector (the poller, which queries the table
//! and keeps the cursor, is `pshub_connectors::pg_table`): a source whose records are the
//! rows of a legacy system's table, read by a watermark column, a modification time the
//! system sets whenever it changes a row.
//!
//! A run reads a **window**: every row whose watermark is at or after the saved cursor less
//! the overlap (a row a long transaction stamped earlier than it committed is read on the
//! next run), in pages ordered by watermark and key, each page taken after the last row of
//! the one before. Each row, as `row_to_json` gives it, is one record for the source's
//! mappings, whose event id names the row and its watermark: a row read again in the
//! overlap is a duplicate by event id, and a row changed again is a new event. The cursor
//! moves to the newest watermark read once every page of the window is committed, so a run
//! stopped mid-window reads the whole window again. Neither a gap nor a double.

use crate::config::Config;
use crate::hooks::{Received, Secret, Via, map_payload};
use serde_json::Value;
use std::time::Duration;

/// A source read from a PostgreSQL table (`[sources.<name>]` with `connector = "pg_table"`).
#[derive(Debug, Clone)]
pub struct PgTable {
    /// `postgres://user:password@host:port/database`: a secret, as it may hold a password.
    pub url: Secret,
    /// `name` or `schema.name`.
    pub table: String,
    /// The modification time of a row (`timestamptz`, or `timestamp` read in UTC).
    pub watermark: String,
    /// A column unique per row: rows of one watermark are read in its order.
    pub key: String,
    pub overlap: Duration,
    pub poll: Duration,
    /// Rows a page takes (one commit).
    pub batch: u32,
    pub mappings: Vec<String>,
}

/// A SQL identifier that needs no quoting: it is spliced into statements.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

/// A table name that needs no quoting: `name` or `schema.name`.
pub fn is_table_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((schema, table)) => is_identifier(schema) && is_identifier(table),
        None => is_identifier(name),
    }
}

/// A table the outbound stream of business events is written to
/// (`[targets.<name>] connector = "pg_table"`), masked by `[masking.<name>]`: one row per
/// event, its key the primary key, so that a page written again changes nothing.
#[derive(Debug, Clone)]
pub struct PgTableTarget {
    pub url: Secret,
    /// `name` or `schema.name`; made when missing.
    pub table: String,
}

impl PgTableTarget {
    /// The name its relay's cursor is saved under.
    pub fn cursor_name(target: &str) -> String {
        format!("pg_table_out:{target}")
    }

    pub fn shown_url(&self) -> String {
        crate::hooks::shown_url(self.url.expose())
    }

    /// The table, made when missing (its schema must exist).
    pub fn create_statement(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, type text NOT NULL, \
             published_at timestamptz NOT NULL, event jsonb NOT NULL, \
             written_at timestamptz NOT NULL DEFAULT now())",
            self.table
        )
    }

    /// One page of events: keys, types, publication times and events (as JSON text) as
    /// arrays, a row each, a key already written left as it is.
    pub fn insert_statement(&self) -> String {
        format!(
            "INSERT INTO {} (key, type, published_at, event) \
             SELECT k, t, p, e::jsonb \
             FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS u(k, t, p, e) \
             ON CONFLICT (key) DO NOTHING",
            self.table
        )
    }
}

impl PgTable {
    /// The name its cursor is saved under.
    pub fn cursor_name(source: &str) -> String {
        format!("pg_table:{source}")
    }

    /// One page of a window: rows at or after `$1`, after the row (`$2`, `$3`) the page
    /// before ended on (the window's start and `''` for the first), at most `$4`. Each row
    /// as JSON, its watermark, its key as text.
    pub fn page_sql(&self) -> String {
        let (w, k) = (&self.watermark, &self.key);
        format!(
            "SELECT row_to_json(t)::text, t.{w}::timestamptz, t.{k}::text FROM {table} t \
             WHERE t.{w}::timestamptz >= $1 AND (t.{w}::timestamptz, t.{k}::text) > ($2, $3) \
             ORDER BY t.{w}::timestamptz, t.{k}::text LIMIT $4",
            table = self.table
        )
    }

    /// The URL with its password masked.
    pub fn shown_url(&self) -> String {
        crate::hooks::shown_url(self.url.expose())
    }
}

/// One row of `source`'s table through its mappings.
pub fn receive_row(source: &str, table: &PgTable, row: &str, config: &Config) -> Received {
    let via = Via::connector("pg_table").with("table", Value::from(table.table.as_str()));
    map_payload(source, &table.mappings, &via, row, None, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(url: &str) -> PgTable {
        PgTable {
            url: Secret::new(url.into()),
            table: "hr.workers".into(),
            watermark: "changed_at".into(),
            key: "id".into(),
            overlap: Duration::from_secs(60),
            poll: Duration::from_secs(5),
            batch: 500,
            mappings: Vec::new(),
        }
    }

    #[test]
    fn names_that_would_need_quoting_are_not_identifiers() {
        assert!(is_table_name("hr.workers") && is_table_name("workers"));
        for bad in ["workers; drop table x", "1st", "a.b.c", "", "hr.\"w\""] {
            assert!(!is_table_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_page_is_ordered_by_watermark_then_key_and_the_url_hides_its_password() {
        let t = table("postgres://legacy:s3cret@db.internal:5432/hr");
        let sql = t.page_sql();
        assert!(sql.contains("FROM hr.workers t"), "{sql}");
        assert!(
            sql.ends_with("ORDER BY t.changed_at::timestamptz, t.id::text LIMIT $4"),
            "{sql}"
        );
        assert_eq!(t.shown_url(), "postgres://legacy:***@db.internal:5432/hr");
        assert_eq!(
            table("postgres://root@127.0.0.1/hr").shown_url(),
            "postgres://root:***@127.0.0.1/hr"
        );
        // A password in the query is not shown either.
        assert_eq!(
            table("postgres://db.internal/hr?user=u&password=s3cret").shown_url(),
            "postgres://db.internal/hr?…"
        );
    }
}
