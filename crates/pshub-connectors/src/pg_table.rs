//! The poller of the PostgreSQL table connector: a legacy system's table read by its
//! watermark column every `poll_ms` (the engine's half, the window, the page's statement
//! and a row through the mappings, is `pshub_engine::pg_table`).
//!
//! Each window is read page by page; a page is committed before the next is asked for, and
//! the cursor is saved in the store once the window is whole, so a restart reads the window
//! again (what it had taken comes back as duplicates by event id) and skips nothing. A
//! window reads at most 1,000 pages; one cut short saves its cursor and the next run goes on
//! from its last row, so that a bulk change of more rows than that cannot hold it. What
//! the poller does is logged and counted (`pshub_connector_events_total{source}`): `window`,
//! `not_taken`, `trouble`; the database's password never shows.

use chrono::{DateTime, Utc};
use pshub_engine::Engine;
use pshub_engine::hooks::Received;
use pshub_engine::hub::IngestStatus;
use pshub_engine::pg_table::{PgTable, receive_row};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bounds each statement and the connection.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most pages one window reads: a table that grows faster than it is read stops here,
/// and the next run goes on from the cursor.
const MAX_PAGES: usize = 1_000;

/// What the poller does, each logged and counted.
enum TableEvent<'a> {
    /// A window was read whole and committed.
    Window {
        rows: usize,
        accepted: usize,
    },
    /// A row none of the source's mappings takes.
    NotTaken {
        why: &'a str,
    },
    Trouble {
        what: &'a str,
    },
}

pub struct Poller {
    engine: Arc<Engine>,
    source: String,
    table: PgTable,
    runtime: tokio::runtime::Runtime,
    pool: Option<PgPool>,
    /// Where a window cut short by [`MAX_PAGES`] stopped: the next run goes on from there
    /// rather than from the cursor less the overlap, so that more rows in the overlap than
    /// one window reads cannot hold the cursor in place.
    resume: Option<(DateTime<Utc>, String)>,
}

impl Poller {
    pub fn new(engine: Arc<Engine>, source: &str, table: PgTable) -> Result<Poller, String> {
        Ok(Poller {
            engine,
            source: source.to_string(),
            table,
            runtime: crate::client_runtime(&format!("pg-{source}"))?,
            pool: None,
            resume: None,
        })
    }

    fn emit(&self, event: TableEvent<'_>) {
        let source = self.source.as_str();
        let name = match event {
            TableEvent::Window { rows, accepted } => {
                tracing::debug!(source, rows, accepted, "pg table: window read");
                "window"
            }
            TableEvent::NotTaken { why } => {
                tracing::info!(source, why, "pg table: a row no mapping takes");
                "not_taken"
            }
            TableEvent::Trouble { what } => {
                tracing::warn!(source, what, "pg table: trouble");
                "trouble"
            }
        };
        self.engine.metrics().connector_event(source, name);
    }

    /// Reads a window every `poll` until `stop` is set.
    pub fn spawn(mut self, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("pg-{}", self.source))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(what) = self.read_window() {
                        self.emit(TableEvent::Trouble { what: &what });
                    }
                    let until = Instant::now() + self.table.poll;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
    }

    fn pool(&mut self) -> Result<PgPool, String> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let pool = self
            .runtime
            .block_on(
                PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(TIMEOUT)
                    .connect(self.table.url.expose()),
            )
            .map_err(|e| format!("cannot connect to {}: {e}", self.table.shown_url()))?;
        self.pool = Some(pool.clone());
        Ok(pool)
    }

    /// One page: each row as JSON, with its watermark and key.
    fn page(
        &mut self,
        from: DateTime<Utc>,
        after: &(DateTime<Utc>, String),
    ) -> Result<Vec<(String, DateTime<Utc>, String)>, String> {
        let pool = self.pool()?;
        let sql = self.table.page_sql();
        let limit = i64::from(self.table.batch);
        let rows = self.runtime.block_on(async {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(from)
                .bind(after.0)
                .bind(after.1.clone())
                .bind(limit)
                .fetch_all(&pool);
            tokio::time::timeout(TIMEOUT, query)
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        });
        let rows = rows.map_err(|e| {
            // A lost connection is made again on the next run.
            self.pool = None;
            format!("{}: {e}", self.table.table)
        })?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| format!("{}: {e}", self.table.table))
    }

    fn read_window(&mut self) -> Result<(), String> {
        let name = PgTable::cursor_name(&self.source);
        let saved = self
            .engine
            .read(|r| r.cursor(&name))
            .map_err(|e| format!("the cursor cannot be read: {e}"))?;
        let saved = saved
            .as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| format!("the saved cursor '{s}' is not a timestamp"))
            })
            .transpose()?;
        let overlap = chrono::Duration::from_std(self.table.overlap).unwrap_or_default();
        let (from, mut after) = match self.resume.take() {
            Some(resume) => (resume.0, resume),
            None => {
                let from = saved.map_or(DateTime::<Utc>::UNIX_EPOCH, |at| {
                    at.checked_sub_signed(overlap).unwrap_or(at)
                });
                (from, (from, String::new()))
            }
        };
        let (mut rows, mut accepted, mut newest) = (0, 0, saved);
        let mut whole = false;
        for _ in 0..MAX_PAGES {
            let page = self.page(from, &after)?;
            let Some(last) = page.last() else {
                whole = true;
                break;
            };
            after = (last.1, last.2.clone());
            let full = page.len() == self.table.batch as usize;
            let config = self.engine.config();
            let mut incoming = Vec::with_capacity(page.len());
            for (row, _, _) in &page {
                match receive_row(&self.source, &self.table, row, config) {
                    Received::Event(event) => incoming.push(event),
                    Received::NotTaken(why) => self.emit(TableEvent::NotTaken { why: &why }),
                }
            }
            let results = self
                .engine
                .submit_incoming(incoming)
                .map_err(|e| format!("the commit failed: {e}"))?;
            rows += page.len();
            accepted += results
                .iter()
                .filter(|r| r.status == IngestStatus::Accepted)
                .count();
            newest = newest.max(Some(after.0));
            if !full {
                whole = true;
                break;
            }
        }
        if !whole {
            self.resume = Some(after);
        }
        if let Some(newest) = newest.filter(|n| Some(*n) != saved) {
            let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            self.engine
                .store()
                .save_cursor(&name, &stamp(newest), &stamp(Utc::now()))
                .map_err(|e| format!("the cursor cannot be saved: {e}"))?;
        }
        if rows > 0 {
            self.emit(TableEvent::Window { rows, accepted });
        }
        Ok(())
    }
}
