//! The embedded store: one SQLite file in WAL mode with full fsync on every commit.
//!
//! Invariant: each [`Commit`] is one transaction; nothing in it is visible or durable
//! unless all of it is. Lookups of events by their external `(source, id)` go through an
//! in-memory index (hash of the key to inbox seq, verified against the row), because a
//! B-tree index on random text keys would slow inserts to a crawl at millions of rows.

mod index;
mod rows;

use index::EventIndex;
use pshub_engine::error::{EngineError, Result};
use pshub_engine::store::*;
use pshub_model::Currency;
use pshub_model::records::LineKind;
use rows::*;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};

const SCHEMA: &str = include_str!("../sql/schema.sql");

/// The file inside the data folder.
pub const DB_FILE: &str = "pshub.sqlite";

/// Page cache of the writer's connection, and of each reader's (KiB). Readers scan or
/// look up recent rows; the writer's B-trees are the ones worth keeping in memory.
const WRITER_CACHE_KIB: u32 = 32_000;
const READER_CACHE_KIB: u32 = 8_000;

fn connect(path: &Path, cache_kib: u32) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA page_size = 16384;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -{cache_kib};
         PRAGMA wal_autocheckpoint = 4096;
         PRAGMA temp_store = MEMORY;"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn one<T>(
    conn: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
    map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    stmt.query_row(args, map).optional().map_err(db)
}

fn query<T>(
    conn: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
    map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let rows = stmt.query_map(args, map).map_err(db)?;
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db)
}

/// Reads on one connection: the writer's own ([`SqliteStore::reads`]), or a reader's.
pub struct SqliteReader {
    conn: Connection,
}

pub struct SqliteStore {
    /// The writer's connection, with the reads on it.
    db: SqliteReader,
    index: EventIndex,
    path: PathBuf,
}

fn db(error: rusqlite::Error) -> EngineError {
    EngineError::Store(error.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            EngineError::Store(format!(
                "cannot create data folder {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = connect(&path, WRITER_CACHE_KIB).map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        let index = EventIndex::build(&conn).map_err(db)?;
        Ok(SqliteStore {
            db: SqliteReader { conn },
            index,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, commit: &Commit) -> rusqlite::Result<()> {
        let tx = self
            .db
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO inbox (seq, source, event_id, event_type, business_key, correlation_id, occurred_at, received_at, data, reference)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            for r in &commit.inbox {
                stmt.execute(params![
                    r.seq,
                    r.source,
                    r.event_id,
                    r.event_type,
                    r.business_key,
                    r.correlation_id,
                    r.occurred_at,
                    r.received_at,
                    r.data,
                    r.reference
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO quarantine (id, source, event_id, raw, field, reason, received_at, state, replayed_seq)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            for r in &commit.quarantine {
                stmt.execute(params![
                    r.id,
                    r.source,
                    r.event_id,
                    r.raw,
                    r.field,
                    r.reason,
                    r.received_at,
                    r.state,
                    r.replayed_seq
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO conflicts (id, source, event_id, original_seq, event_type, data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?;
            for r in &commit.conflicts {
                stmt.execute(params![
                    r.id,
                    r.source,
                    r.event_id,
                    r.original_seq,
                    r.event_type,
                    r.data,
                    r.received_at
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO entries (row_id, kind, entry_id, phase, event_seq, fingerprint, line_id, case_id, value, currency, manual)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (row_id) DO UPDATE SET phase = excluded.phase, event_seq = excluded.event_seq,
                    fingerprint = excluded.fingerprint, line_id = excluded.line_id, case_id = excluded.case_id,
                    value = excluded.value, currency = excluded.currency, manual = excluded.manual",
            )?;
            for r in &commit.entries {
                stmt.execute(params![
                    r.row_id,
                    r.kind.as_str(),
                    r.entry_id,
                    r.phase.as_str(),
                    r.event_seq,
                    r.fingerprint as i64,
                    r.line_id,
                    r.case_id,
                    r.value.map(|v| v.to_string()),
                    r.currency.map(|c| c.code().to_string()),
                    r.manual
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO lines (id, kind, status, erp_id, entry_row, source_id, event_seq, project_code, worker_id, date,
                    quantity, rate, rate_currency, fx_rate, amount, currency, tax_code, billing_class, reverses, correlation_id, created_at, posted_at,
                    attempts, next_attempt_at, last_error)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            for r in &commit.lines {
                stmt.execute(params![
                    r.id,
                    r.kind.as_str(),
                    r.status.as_str(),
                    r.erp_id,
                    r.entry_row,
                    r.source_id,
                    r.event_seq,
                    r.project_code,
                    r.worker_id,
                    r.date.to_string(),
                    r.quantity.to_string(),
                    r.rate.to_string(),
                    r.rate_currency.code(),
                    r.fx_rate.map(|v| v.to_string()),
                    r.amount.to_string(),
                    r.currency.code(),
                    r.tax_code,
                    r.billing_class,
                    r.reverses,
                    r.correlation_id,
                    r.created_at,
                    r.posted_at,
                    r.attempts,
                    r.next_attempt_at,
                    r.last_error
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO outbox (id, target, operation, subject, idempotency_key, state, attempts, next_attempt_at, last_error, correlation_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            for r in &commit.outbox {
                stmt.execute(params![
                    r.id,
                    r.target,
                    r.operation.as_str(),
                    r.subject,
                    r.idempotency_key,
                    r.state.as_str(),
                    r.attempts,
                    r.next_attempt_at,
                    r.last_error,
                    r.correlation_id
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "UPDATE lines SET status = ?, erp_id = ?, posted_at = ?, attempts = ?, next_attempt_at = ?, last_error = ?
                 WHERE id = ?",
            )?;
            for u in &commit.line_updates {
                stmt.execute(params![
                    u.status.as_str(),
                    u.erp_id,
                    u.posted_at,
                    u.attempts,
                    u.next_attempt_at,
                    u.last_error,
                    u.id
                ])?;
            }
            let mut stmt =
                tx.prepare_cached("UPDATE outbox SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?")?;
            for u in &commit.outbox_updates {
                stmt.execute(params![
                    u.state.as_str(),
                    u.attempts,
                    u.next_attempt_at,
                    u.last_error,
                    u.id
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO cases (id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq,
                    entry_row, line_id, outbox_id, value, currency, created_at, updated_at, resolution)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, reason = excluded.reason, event_seq = excluded.event_seq,
                    value = excluded.value, currency = excluded.currency, updated_at = excluded.updated_at, resolution = excluded.resolution",
            )?;
            for r in &commit.cases {
                stmt.execute(params![
                    r.id,
                    r.kind,
                    r.owner.as_str(),
                    r.business_key,
                    r.state.as_str(),
                    r.reason,
                    r.suggested_fix,
                    r.correlation_id,
                    r.event_seq,
                    r.entry_row,
                    r.line_id,
                    r.outbox_id,
                    r.value.map(|v| v.to_string()),
                    r.currency.map(|c| c.code().to_string()),
                    r.created_at,
                    r.updated_at,
                    r.resolution
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO steps (correlation_id, at, step, detail) VALUES (?, ?, ?, ?)",
            )?;
            for r in &commit.steps {
                stmt.execute(params![r.correlation_id, r.at, r.step, r.detail])?;
            }
            let c = &commit.counters;
            if *c != Counters::default() {
                tx.prepare_cached(
                    "UPDATE counters SET received = received + ?, duplicates = duplicates + ?, conflicts = conflicts + ?, quarantined = quarantined + ? WHERE id = 1",
                )?
                .execute(params![c.received as i64, c.duplicates as i64, c.conflicts as i64, c.quarantined as i64])?;
            }
        }
        tx.commit()
    }

    fn max_id(&self, table: &str, column: &str) -> Result<i64> {
        let sql = format!("SELECT COALESCE(MAX({column}), 0) FROM {table}");
        self.db.conn.query_row(&sql, [], |r| r.get(0)).map_err(db)
    }
}

/// Builds `WHERE a = ? AND b = ?` from the filters that are set.
struct Filter {
    clauses: Vec<&'static str>,
    args: Vec<Box<dyn rusqlite::ToSql>>,
}

impl Filter {
    fn new(page: Page) -> Self {
        Filter {
            clauses: vec!["id > ?"],
            args: vec![Box::new(page.after)],
        }
    }

    fn add<T: rusqlite::ToSql + 'static>(&mut self, clause: &'static str, value: Option<T>) {
        if let Some(value) = value {
            self.clauses.push(clause);
            self.args.push(Box::new(value));
        }
    }

    fn run<T>(
        self,
        conn: &Connection,
        select: &str,
        page: Page,
        map: fn(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let sql = format!(
            "{select} WHERE {} ORDER BY id LIMIT {}",
            self.clauses.join(" AND "),
            page.limit.min(1_000_000)
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt
            .query_map(params_from_iter(self.args.iter()), map)
            .map_err(db)?;
        rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db)
    }
}

impl StoreReader for SqliteReader {
    fn event(&mut self, seq: i64) -> Result<Option<InboxRow>> {
        one(
            &self.conn,
            &format!("{INBOX_SELECT} WHERE seq = ?"),
            &[&seq],
            inbox_row,
        )
    }

    fn quarantined(&mut self, id: i64) -> Result<Option<QuarantineRow>> {
        one(
            &self.conn,
            &format!("{QUARANTINE_SELECT} WHERE id = ?"),
            &[&id],
            quarantine_row,
        )
    }

    fn quarantine_list(&mut self, open_only: bool, page: Page) -> Result<Vec<QuarantineRow>> {
        let mut filter = Filter::new(page);
        filter.add("state = ?", open_only.then_some("open"));
        filter.run(&self.conn, QUARANTINE_SELECT, page, quarantine_row)
    }

    fn quarantine_of_event(&mut self, source: &str, event_id: &str) -> Result<Vec<QuarantineRow>> {
        query(
            &self.conn,
            &format!("{QUARANTINE_SELECT} WHERE source = ? AND event_id = ? ORDER BY id"),
            &[&source, &event_id],
            quarantine_row,
        )
    }

    fn conflicts_of(&mut self, original_seq: i64) -> Result<Vec<ConflictRow>> {
        query(
            &self.conn,
            &format!("{CONFLICT_SELECT} WHERE original_seq = ? ORDER BY id"),
            &[&original_seq],
            conflict_row,
        )
    }

    fn entry(&mut self, row_id: i64) -> Result<Option<EntryRow>> {
        one(
            &self.conn,
            &format!("{ENTRY_SELECT} WHERE row_id = ?"),
            &[&row_id],
            entry_row,
        )
    }

    fn line(&mut self, id: i64) -> Result<Option<LineRow>> {
        one(
            &self.conn,
            &format!("{LINE_SELECT} WHERE id = ?"),
            &[&id],
            line_row,
        )
    }

    fn lines(&mut self, f: &LineFilter, page: Page) -> Result<Vec<LineRow>> {
        let mut filter = Filter::new(page);
        filter.add("project_code = ?", f.project_code.clone());
        filter.add("worker_id = ?", f.worker_id.clone());
        filter.add("entry_row = ?", f.entry_row);
        filter.add("status = ?", f.status.map(|s| s.as_str()));
        filter.add("event_seq = ?", f.event_seq);
        filter.run(&self.conn, LINE_SELECT, page, line_row)
    }

    fn case(&mut self, id: i64) -> Result<Option<CaseRow>> {
        one(
            &self.conn,
            &format!("{CASE_SELECT} WHERE id = ?"),
            &[&id],
            case_row,
        )
    }

    fn cases(&mut self, f: &CaseFilter, page: Page) -> Result<Vec<CaseRow>> {
        let mut filter = Filter::new(page);
        filter.add("owner = ?", f.owner.map(|o| o.as_str()));
        filter.add("state = ?", f.state.map(|s| s.as_str()));
        filter.add("kind = ?", f.kind.clone());
        filter.add("event_seq = ?", f.event_seq);
        filter.add("correlation_id = ?", f.correlation_id.clone());
        filter.run(&self.conn, CASE_SELECT, page, case_row)
    }

    fn outbox_item(&mut self, id: i64) -> Result<Option<OutboxRow>> {
        one(
            &self.conn,
            &format!("{OUTBOX_SELECT} WHERE id = ?"),
            &[&id],
            outbox_row,
        )
    }

    fn outbox_list(&mut self, state: OutboxState, page: Page) -> Result<Vec<OutboxRow>> {
        let mut filter = Filter::new(page);
        filter.add("state = ?", Some(state.as_str()));
        filter.run(&self.conn, OUTBOX_SELECT, page, outbox_row)
    }

    fn trail(&mut self, correlation_id: &str) -> Result<Trail> {
        let args: &[&dyn rusqlite::ToSql] = &[&correlation_id];
        Ok(Trail {
            events: query(
                &self.conn,
                &format!("{INBOX_SELECT} WHERE correlation_id = ? ORDER BY seq"),
                args,
                inbox_row,
            )?,
            lines: query(
                &self.conn,
                &format!("{LINE_SELECT} WHERE correlation_id = ? ORDER BY id"),
                args,
                line_row,
            )?,
            outbox: query(
                &self.conn,
                &format!("{OUTBOX_SELECT} WHERE correlation_id = ? ORDER BY id"),
                args,
                outbox_row,
            )?,
            cases: query(
                &self.conn,
                &format!("{CASE_SELECT} WHERE correlation_id = ? ORDER BY id"),
                args,
                case_row,
            )?,
            steps: query(
                &self.conn,
                "SELECT correlation_id, at, step, detail FROM steps WHERE correlation_id = ? ORDER BY id",
                args,
                |r| {
                    Ok(StepRow {
                        correlation_id: r.get(0)?,
                        at: r.get(1)?,
                        step: r.get(2)?,
                        detail: r.get(3)?,
                    })
                },
            )?,
        })
    }

    fn counters(&mut self) -> Result<Counters> {
        self.conn
            .query_row(
                "SELECT received, duplicates, conflicts, quarantined FROM counters WHERE id = 1",
                [],
                |r| {
                    Ok(Counters {
                        received: r.get::<_, i64>(0)? as u64,
                        duplicates: r.get::<_, i64>(1)? as u64,
                        conflicts: r.get::<_, i64>(2)? as u64,
                        quarantined: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .map_err(db)
    }

    fn each_entry(&mut self, visit: &mut dyn FnMut(&EntryRow)) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(ENTRY_SELECT).map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            visit(&entry_row(row).map_err(db)?);
        }
        Ok(())
    }

    fn each_case(&mut self, visit: &mut dyn FnMut(&CaseRow)) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{CASE_SELECT} ORDER BY id"))
            .map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            visit(&case_row(row).map_err(db)?);
        }
        Ok(())
    }

    fn each_line_amount(
        &mut self,
        visit: &mut dyn FnMut(LineKind, LineStatus, Currency, Decimal),
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, status, currency, amount FROM lines")
            .map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let kind = parse_col(row, 0, LineKind::parse).map_err(db)?;
            let status = parse_col(row, 1, LineStatus::parse).map_err(db)?;
            let currency = currency_col(row, 2).map_err(db)?;
            let amount = decimal_col(row, 3).map_err(db)?;
            visit(kind, status, currency, amount);
        }
        Ok(())
    }

    fn token_role(&mut self, token_hash: &str) -> Result<Option<String>> {
        one(
            &self.conn,
            "SELECT role FROM tokens WHERE hash = ?",
            &[&token_hash],
            |r| r.get(0),
        )
    }

    fn due_deliveries(&mut self, now_ms: i64, limit: u32) -> Result<Vec<Due>> {
        let mut due = query(
            &self.conn,
            &format!(
                "{OUTBOX_SELECT} WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?"
            ),
            &[&now_ms, &limit],
            |r| outbox_row(r).map(Due::Call),
        )?;
        due.extend(query(
            &self.conn,
            DUE_LINES_SELECT,
            &[&now_ms, &limit],
            due_line,
        )?);
        Ok(due)
    }

    fn undelivered(&mut self, operation: Operation) -> Result<Vec<OutboxRow>> {
        // Served by the partial index outbox_undelivered.
        query(
            &self.conn,
            &format!("{OUTBOX_SELECT} WHERE operation = ? AND state != 'delivered' ORDER BY id"),
            &[&operation.as_str()],
            outbox_row,
        )
    }
}

impl Store for SqliteStore {
    fn reads(&mut self) -> &mut dyn StoreReader {
        &mut self.db
    }

    fn reader(&self) -> Result<Box<dyn StoreReader>> {
        Ok(Box::new(SqliteReader {
            conn: connect(&self.path, READER_CACHE_KIB).map_err(db)?,
        }))
    }

    fn load(&mut self) -> Result<Loaded> {
        let reference = query(
            &self.db.conn,
            &format!("{INBOX_SELECT} WHERE reference = 1 ORDER BY seq"),
            &[],
            inbox_row,
        )?;
        let max_ids = MaxIds {
            seq: self.max_id("inbox", "seq")?,
            quarantine: self.max_id("quarantine", "id")?,
            conflict: self.max_id("conflicts", "id")?,
            entry: self.max_id("entries", "row_id")?,
            line: self.max_id("lines", "id")?,
            outbox: self.max_id("outbox", "id")?,
            case: self.max_id("cases", "id")?,
        };
        Ok(Loaded { reference, max_ids })
    }

    fn commit(&mut self, commit: &Commit) -> Result<()> {
        self.write(commit).map_err(db)?;
        for row in &commit.inbox {
            self.index
                .insert(&self.db.conn, &row.source, &row.event_id, row.seq)
                .map_err(db)?;
        }
        Ok(())
    }

    fn find_event(&mut self, source: &str, event_id: &str) -> Result<Option<InboxRow>> {
        self.index.find(&self.db.conn, source, event_id).map_err(db)
    }

    fn add_token(&mut self, token_hash: &str, role: &str, label: &str) -> Result<()> {
        let now = chrono::Utc::now().to_rfc3339();
        self.db
            .conn
            .execute(
                "INSERT INTO tokens (hash, role, label, created_at) VALUES (?, ?, ?, ?)",
                params![token_hash, role, label, now],
            )
            .map_err(db)?;
        Ok(())
    }
}
