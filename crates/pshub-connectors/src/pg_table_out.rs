//! The outbound stream to a PostgreSQL table (`[targets.<name>] connector = "pg_table"`):
//! the hub's business events, rendered and masked as `GET /v1/outbound?target=<name>` shows
//! them, written by the relay of `pshub_engine::outbound_relay` to a table of the firm's
//! database (a warehouse's landing table, a legacy system's inbox), one row per event:
//! `key` (the primary key), `type`, `published_at`, `event` (jsonb) and `written_at`. The
//! table is made when missing. A page is one statement in one transaction, and a key
//! already written is left as it is, so the page a crash makes the relay write again
//! changes nothing: each event is in the table once. What it does is logged and counted
//! (`pshub_connector_events_total{source}`): `written`, `trouble`; the database's password
//! never shows.

use pshub_engine::Engine;
use pshub_engine::outbound_relay::{Relay, Render};
use pshub_engine::pg_table::PgTableTarget;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

/// Bounds the connection and each statement.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Writer {
    engine: Arc<Engine>,
    target: String,
    table: PgTableTarget,
    relay: Relay,
    runtime: tokio::runtime::Runtime,
    /// The pool, with the table made, once connected; made again after trouble.
    pool: Option<PgPool>,
}

impl Writer {
    pub fn new(
        engine: Arc<Engine>,
        target: &str,
        table: PgTableTarget,
        render: Render,
    ) -> Result<Writer, String> {
        Ok(Writer {
            relay: Relay::new(PgTableTarget::cursor_name(target), target, render),
            engine,
            target: target.to_string(),
            table,
            runtime: crate::client_runtime(&format!("pg-out-{target}"))?,
            pool: None,
        })
    }

    /// Writes until `stop` is set; the database's outages are waited out.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        crate::spawn_stream_writer("pg-out", self, "written", stop)
    }
}

impl crate::StreamWriter for Writer {
    fn target(&self) -> &str {
        &self.target
    }

    fn reset(&mut self) {
        self.pool = None;
    }

    fn emit(&self, event: &'static str, detail: &str) {
        let target = self.target.as_str();
        match event {
            "trouble" => tracing::warn!(target, detail, "pg table out: trouble"),
            _ => tracing::debug!(target, detail, "pg table out: events written"),
        }
        self.engine.metrics().connector_event(target, event);
    }

    fn pass(&mut self) -> Result<usize, String> {
        if self.pool.is_none() {
            self.pool = Some(self.runtime.block_on(connect(&self.table))?);
        }
        let Some(pool) = &self.pool else {
            return Ok(0);
        };
        let (runtime, statement) = (&self.runtime, self.table.insert_statement());
        let mut write = |events: &[Value]| runtime.block_on(write_page(pool, &statement, events));
        self.relay.pass(&self.engine, &mut write)
    }
}

/// A pool of one connection, with the table made when missing.
async fn connect(table: &PgTableTarget) -> Result<PgPool, String> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(TIMEOUT)
        .connect(table.url.expose())
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", table.shown_url()))?;
    // The table's name is checked when the configuration is read (name or schema.name).
    sqlx::query(sqlx::AssertSqlSafe(table.create_statement()))
        .execute(&pool)
        .await
        .map_err(|e| format!("the table {}: {e}", table.table))?;
    Ok(pool)
}

/// Writes a page of events in one statement, committed before the relay moves on.
async fn write_page(pool: &PgPool, statement: &str, events: &[Value]) -> Result<(), String> {
    let text = |event: &Value, field: &str| event[field].as_str().unwrap_or_default().to_string();
    let keys: Vec<String> = events.iter().map(|e| text(e, "key")).collect();
    if let Some(event) = events.iter().find(|e| text(e, "key").is_empty()) {
        return Err(format!("an event has no key: {event}"));
    }
    let types: Vec<String> = events.iter().map(|e| text(e, "type")).collect();
    let published: Vec<chrono::DateTime<chrono::Utc>> = events
        .iter()
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(&text(e, "published_at"))
                .map(|at| at.to_utc())
                .map_err(|error| format!("an event's published_at: {error}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let bodies: Vec<String> = events.iter().map(Value::to_string).collect();
    tokio::time::timeout(
        TIMEOUT,
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .bind(&keys)
            .bind(&types)
            .bind(&published)
            .bind(&bodies)
            .execute(pool),
    )
    .await
    .map_err(|_| "the insert took longer than 10 s".to_string())?
    .map_err(|e| format!("insert: {e}"))?;
    Ok(())
}
