//! The embedded store: one SQLite file in WAL mode with a full fsync on every commit.
//!
//! Invariants: each [`Commit`] is one transaction, and nothing in it is visible or durable
//! unless all of it is. Uniqueness is the schema's: a second row for a key fails the commit
//! as a conflict. Updates of versioned rows are conditional on the version read. Lookups of
//! events and entries by their external keys are accelerated by in-memory indexes whose
//! misses the UNIQUE constraints back up.

mod index;
mod reader;
mod rows;

use index::{KeyIndex, entry_key, event_key};
use pshub_engine::error::{EngineError, Result};
use pshub_engine::store::sql::{Migration, Queries};
use pshub_engine::store::*;
pub use reader::SqliteReader;
use rows::*;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The file inside the data folder.
pub const DB_FILE: &str = "pshub.sqlite";

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "engine",
    sql: include_str!("../sql/migrations/0001_engine.sql"),
}];

pub(crate) fn queries() -> &'static Queries {
    static QUERIES: OnceLock<Queries> = OnceLock::new();
    QUERIES.get_or_init(|| Queries::parse(include_str!("../sql/queries.sql")))
}

pub(crate) fn q(name: &str) -> Result<&'static str> {
    queries().get(name)
}

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
    conn.set_prepared_statement_cache_capacity(96);
    Ok(conn)
}

pub(crate) fn db(error: rusqlite::Error) -> EngineError {
    EngineError::Store(error.to_string())
}

/// Whether an error is a unique key taken by another row.
fn is_taken(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation)
}

struct Writer {
    conn: Connection,
    events: KeyIndex,
    entries: KeyIndex,
}

pub struct SqliteStore {
    writer: Mutex<Writer>,
    path: PathBuf,
    /// Cleared when a commit finds a key the indexes missed: another process writes this
    /// file too, so only the database knows what is stored.
    trust_misses: AtomicBool,
}

/// Why a commit stops: another writer got there first, or the store failed.
enum Stop {
    Conflict(String),
    Db(EngineError),
}

impl From<rusqlite::Error> for Stop {
    fn from(error: rusqlite::Error) -> Self {
        if is_taken(&error) {
            Stop::Conflict(error.to_string())
        } else {
            Stop::Db(db(error))
        }
    }
}

impl From<EngineError> for Stop {
    fn from(error: EngineError) -> Self {
        Stop::Db(error)
    }
}

/// Fails the commit when a conditional update changed no row.
fn changed(rows: usize, what: &str, id: i64) -> std::result::Result<(), Stop> {
    if rows == 1 {
        Ok(())
    } else {
        Err(Stop::Conflict(format!(
            "{what} {id} changed since it was read"
        )))
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, applying any migration it lacks.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            EngineError::Store(format!(
                "cannot create data folder {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = connect(&path, WRITER_CACHE_KIB).map_err(db)?;
        migrate(&mut conn)?;
        let events = KeyIndex::build(&conn, q("event_keys")?, event_key, |seq, key| {
            Ok(read_event(&conn, seq)?.is_some_and(|r| event_key(&r.source, &r.event_id) == key))
        })
        .map_err(db)?;
        let entries = KeyIndex::build(&conn, q("entry_keys")?, entry_key, |row_id, key| {
            Ok(read_entry(&conn, row_id)?
                .is_some_and(|e| entry_key(e.kind.as_str(), &e.entry_id) == key))
        })
        .map_err(db)?;
        Ok(SqliteStore {
            writer: Mutex::new(Writer {
                conn,
                events,
                entries,
            }),
            path,
            trust_misses: AtomicBool::new(true),
        })
    }

    /// Opens the store at a `sqlite:` URL's path (a data folder or a file in one).
    pub fn open_url(url: &str) -> Result<Self> {
        let path = url.strip_prefix("sqlite:").unwrap_or(url);
        let path = Path::new(path);
        match path.file_name().and_then(|n| n.to_str()) {
            Some(DB_FILE) => Self::open(path.parent().unwrap_or(Path::new("."))),
            _ if path.extension().is_some() => Err(EngineError::Store(format!(
                "sqlite:{}: the embedded store's file is named {DB_FILE}; name its folder or that file",
                path.display()
            ))),
            _ => Self::open(path),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a key the indexes missed turned out to be stored: trust only the database.
    fn distrust_misses(&self) {
        if self.trust_misses.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "another process writes this store; event and entry lookups now read through"
            );
        }
    }

    fn write(writer: &mut Writer, commit: &Commit) -> std::result::Result<(), Stop> {
        let tx = writer
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(check) = commit.reference {
            let current: i64 = tx.query_row(q("reference_version")?, [], |r| r.get(0))?;
            if current != check.seen {
                return Err(Stop::Conflict(format!(
                    "reference data moved to version {current} since version {}",
                    check.seen
                )));
            }
            if check.to != check.seen {
                tx.execute(q("set_reference_version")?, [check.to])?;
            }
        }
        let mut stmt = tx.prepare_cached(q("insert_inbox")?)?;
        for r in &commit.inbox {
            stmt.execute(params![
                r.seq,
                r.source,
                r.event_id,
                r.event_type,
                r.correlation_id,
                r.occurred_at,
                r.received_at,
                r.raw,
                r.data,
                r.ref_version
            ])?;
        }
        drop(stmt);
        for seq in &commit.inbox_removed {
            tx.execute(q("delete_inbox")?, [seq])?;
        }
        for r in commit.quarantine.iter() {
            if r.version == 0 {
                tx.prepare_cached(q("insert_quarantine")?)?
                    .execute(params![
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
            } else {
                let n = tx
                    .prepare_cached(q("update_quarantine")?)?
                    .execute(params![r.state, r.replayed_seq, r.id, r.version])?;
                changed(n, "quarantined event", r.id)?;
            }
        }
        for r in &commit.conflicts {
            tx.prepare_cached(q("insert_conflict")?)?.execute(params![
                r.id,
                r.source,
                r.event_id,
                r.original_seq,
                r.event_type,
                r.data,
                r.raw,
                r.received_at,
                r.case_id
            ])?;
        }
        let mut insert = tx.prepare_cached(q("insert_entry")?)?;
        let mut update = tx.prepare_cached(q("update_entry")?)?;
        for r in commit.entries.iter() {
            let value = r.value.map(|v| v.to_string());
            let currency = r.currency.map(|c| c.code().to_string());
            if r.version == 0 {
                insert.execute(params![
                    r.row_id,
                    r.kind.as_str(),
                    r.entry_id,
                    r.phase.as_str(),
                    r.event_seq,
                    r.fingerprint as i64,
                    r.line_id,
                    r.case_id,
                    value,
                    currency,
                    r.manual,
                    r.postings
                ])?;
            } else {
                let n = update.execute(params![
                    r.phase.as_str(),
                    r.event_seq,
                    r.fingerprint as i64,
                    r.line_id,
                    r.case_id,
                    value,
                    currency,
                    r.manual,
                    r.postings,
                    r.row_id,
                    r.version
                ])?;
                changed(n, "entry", r.row_id)?;
            }
        }
        drop((insert, update));
        let mut stmt = tx.prepare_cached(q("insert_line")?)?;
        for r in &commit.lines {
            stmt.execute(params![
                r.id,
                r.kind.as_str(),
                r.entry_row,
                r.posting,
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
                r.step_id
            ])?;
        }
        drop(stmt);
        let mut insert = tx.prepare_cached(q("insert_step")?)?;
        let mut update = tx.prepare_cached(q("update_step")?)?;
        let mut release = tx.prepare_cached(q("release_waiters")?)?;
        let mut release_new = tx.prepare_cached(q("release_if_done")?)?;
        for r in commit.steps.iter() {
            if r.version == 0 {
                insert.execute(params![
                    r.id,
                    r.flow,
                    r.step,
                    r.system,
                    r.subject,
                    r.business_key,
                    r.state.as_str(),
                    r.waits_on,
                    r.attempts,
                    r.next_attempt_at,
                    r.lease_owner,
                    r.lease_until,
                    r.result,
                    r.last_error,
                    r.outcome_unknown,
                    r.correlation_id,
                    r.event_seq,
                    r.created_at,
                    r.done_at
                ])?;
                if r.state == StepState::Waiting {
                    release_new.execute([r.id])?;
                }
            } else {
                let n = update.execute(params![
                    r.state.as_str(),
                    r.waits_on,
                    r.attempts,
                    r.next_attempt_at,
                    r.lease_owner,
                    r.lease_until,
                    r.result,
                    r.last_error,
                    r.outcome_unknown,
                    r.done_at,
                    r.id,
                    r.version
                ])?;
                changed(n, "step", r.id)?;
            }
            if r.state == StepState::Done {
                release.execute([r.id])?;
            }
        }
        drop((insert, update, release, release_new));
        let mut insert = tx.prepare_cached(q("insert_case")?)?;
        let mut update = tx.prepare_cached(q("update_case")?)?;
        for r in commit.cases.iter() {
            let value = r.value.map(|v| v.to_string());
            let currency = r.currency.map(|c| c.code().to_string());
            if r.version == 0 {
                insert.execute(params![
                    r.id,
                    r.kind,
                    r.owner.as_str(),
                    r.business_key,
                    r.state.as_str(),
                    r.reason,
                    r.suggested_fix,
                    r.correlation_id,
                    r.event_seq,
                    r.flow,
                    r.entry_row,
                    r.step_id,
                    value,
                    currency,
                    r.created_at,
                    r.updated_at,
                    r.resolution,
                    r.evidence
                ])?;
            } else {
                let n = update.execute(params![
                    r.state.as_str(),
                    r.reason,
                    r.event_seq,
                    value,
                    currency,
                    r.updated_at,
                    r.resolution,
                    r.evidence,
                    r.id,
                    r.version
                ])?;
                changed(n, "case", r.id)?;
            }
        }
        drop((insert, update));
        for r in &commit.projects {
            tx.prepare_cached(q("insert_project")?)?.execute(params![
                r.id,
                r.project_code,
                r.opportunity_id,
                r.event_seq,
                r.correlation_id,
                r.created_at
            ])?;
        }
        for r in &commit.outbound {
            tx.prepare_cached(q("insert_outbound")?)?.execute(params![
                r.id,
                r.event_type,
                r.key,
                r.data,
                r.correlation_id,
                r.published_at
            ])?;
        }
        let mut stmt = tx.prepare_cached(q("insert_timeline")?)?;
        for r in &commit.timeline {
            stmt.execute(params![
                r.correlation_id,
                r.at,
                r.what,
                r.detail,
                r.step_id,
                r.actor
            ])?;
        }
        drop(stmt);
        for r in commit.worker_days.iter() {
            if r.version == 0 {
                tx.prepare_cached(q("insert_worker_day")?)?
                    .execute(params![
                        r.id,
                        r.worker_id,
                        r.day.to_string(),
                        r.hours.to_string()
                    ])?;
            } else {
                let n = tx
                    .prepare_cached(q("update_worker_day")?)?
                    .execute(params![r.hours.to_string(), r.id, r.version])?;
                changed(n, "worker day", r.id)?;
            }
        }
        let c = &commit.counters;
        if !c.is_zero() {
            tx.prepare_cached(q("add_counters")?)?.execute(params![
                commit.node,
                c.received as i64,
                c.duplicates as i64,
                c.conflicts as i64,
                c.quarantined as i64
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds what a commit inserted to the indexes.
    fn index(writer: &mut Writer, commit: &Commit) -> rusqlite::Result<()> {
        let Writer {
            conn,
            events,
            entries,
        } = writer;
        for row in &commit.inbox {
            events.insert(&event_key(&row.source, &row.event_id), row.seq, |other| {
                Ok(read_event(conn, other)?
                    .is_some_and(|r| r.source == row.source && r.event_id == row.event_id))
            })?;
        }
        for row in commit.entries.iter().filter(|e| e.version == 0) {
            entries.insert(
                &entry_key(row.kind.as_str(), &row.entry_id),
                row.row_id,
                |other| {
                    Ok(read_entry(conn, other)?
                        .is_some_and(|e| e.kind == row.kind && e.entry_id == row.entry_id))
                },
            )?;
        }
        Ok(())
    }
}

fn read_event(conn: &Connection, seq: i64) -> rusqlite::Result<Option<InboxRow>> {
    conn.prepare_cached(queries().get("event_by_seq").unwrap_or("SELECT 1 WHERE 0"))?
        .query_row([seq], inbox_row)
        .optional()
}

fn read_entry(conn: &Connection, row_id: i64) -> rusqlite::Result<Option<EntryRow>> {
    conn.prepare_cached(queries().get("entry_by_id").unwrap_or("SELECT 1 WHERE 0"))?
        .query_row([row_id], entry_row)
        .optional()
}

/// Applies the migrations a store lacks, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .map_err(db)?;
    let applied: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    let old_layout: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    if applied == 0 && old_layout > 0 {
        return Err(EngineError::Store(
            "this data folder was written by pshub 0.1, whose layout this release does not read; start with a new data folder and send the events again".into(),
        ));
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(migration.sql).map_err(|e| {
            EngineError::Store(format!(
                "migration {} ({}) failed: {e}",
                migration.version, migration.name
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            params![
                migration.version,
                migration.name,
                chrono::Utc::now().to_rfc3339()
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "store migrated"
        );
    }
    Ok(())
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn commit(&self, commit: &Commit) -> std::result::Result<(), CommitError> {
        if commit.is_empty() {
            return Ok(());
        }
        let mut writer = self.lock();
        match Self::write(&mut writer, commit) {
            Ok(()) => {
                Self::index(&mut writer, commit).map_err(|e| CommitError::Store(db(e)))?;
                Ok(())
            }
            Err(Stop::Conflict(why)) => {
                self.distrust_misses();
                Err(CommitError::Conflict(why))
            }
            Err(Stop::Db(error)) => Err(CommitError::Store(error)),
        }
    }

    fn reader(&self) -> Result<Box<dyn StoreReader>> {
        Ok(Box::new(SqliteReader::new(
            connect(&self.path, READER_CACHE_KIB).map_err(db)?,
        )))
    }

    fn reserve_ids(&self, kind: IdKind, count: u32) -> Result<i64> {
        let writer = self.lock();
        writer
            .conn
            .query_row(q("reserve_ids")?, params![kind.as_str(), count], |r| {
                r.get(0)
            })
            .map_err(db)
    }

    fn find_events(&self, keys: &[(&str, &str)]) -> Result<Vec<Option<InboxRow>>> {
        let writer = self.lock();
        let trust = self.trust_misses.load(Ordering::Relaxed);
        keys.iter()
            .map(|(source, event_id)| {
                if source.is_empty() {
                    return Ok(None);
                }
                if !trust {
                    return writer
                        .conn
                        .prepare_cached(q("event_by_key")?)
                        .and_then(|mut s| s.query_row([source, event_id], inbox_row).optional())
                        .map_err(db);
                }
                let mut found = None;
                let seq = writer
                    .events
                    .get(&event_key(source, event_id), |seq| {
                        found = read_event(&writer.conn, seq)?
                            .filter(|r| r.source == *source && r.event_id == *event_id);
                        Ok(found.is_some())
                    })
                    .map_err(db)?;
                match (found, seq) {
                    (Some(row), _) => Ok(Some(row)),
                    // Not the key under its hash: the side table of colliding keys had it.
                    (None, Some(seq)) => read_event(&writer.conn, seq).map_err(db),
                    (None, None) => Ok(None),
                }
            })
            .collect()
    }

    fn find_entries(&self, keys: &[(EntryKind, &str)]) -> Result<Vec<Option<EntryRow>>> {
        let writer = self.lock();
        let trust = self.trust_misses.load(Ordering::Relaxed);
        keys.iter()
            .map(|(kind, entry_id)| {
                if !trust {
                    return writer
                        .conn
                        .prepare_cached(q("entry_by_key")?)
                        .and_then(|mut s| {
                            s.query_row(params![kind.as_str(), entry_id], entry_row)
                                .optional()
                        })
                        .map_err(db);
                }
                let mut found = None;
                let row_id = writer
                    .entries
                    .get(&entry_key(kind.as_str(), entry_id), |row_id| {
                        found = read_entry(&writer.conn, row_id)?
                            .filter(|e| e.kind == *kind && e.entry_id == *entry_id);
                        Ok(found.is_some())
                    })
                    .map_err(db)?;
                match (found, row_id) {
                    (Some(row), _) => Ok(Some(row)),
                    (None, Some(row_id)) => read_entry(&writer.conn, row_id).map_err(db),
                    (None, None) => Ok(None),
                }
            })
            .collect()
    }

    fn reference_version(&self) -> Result<i64> {
        let writer = self.lock();
        writer
            .conn
            .query_row(q("reference_version")?, [], |r| r.get(0))
            .map_err(db)
    }

    fn reference_since(
        &self,
        after: i64,
        visit: &mut dyn FnMut(InboxRow) -> Result<()>,
    ) -> Result<i64> {
        // A reader of its own, so that a long replay at start never holds the writer.
        let conn = connect(&self.path, READER_CACHE_KIB).map_err(db)?;
        let tx = conn.unchecked_transaction().map_err(db)?;
        let version: i64 = tx
            .query_row(q("reference_version")?, [], |r| r.get(0))
            .map_err(db)?;
        {
            let mut stmt = tx.prepare(q("reference_since")?).map_err(db)?;
            let mut rows = stmt.query([after, version]).map_err(db)?;
            while let Some(row) = rows.next().map_err(db)? {
                visit(inbox_row(row).map_err(db)?)?;
            }
        }
        tx.finish().map_err(db)?;
        Ok(version)
    }

    fn claim_steps(
        &self,
        system: &str,
        now_ms: i64,
        limit: u32,
        owner: i64,
        lease_ms: i64,
    ) -> Result<Vec<Claimed>> {
        let mut writer = self.lock();
        let tx = writer
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let due: Vec<(i64, String)> = {
            let mut stmt = tx.prepare_cached(q("claimable_steps")?).map_err(db)?;
            let rows = stmt
                .query_map(params![system, now_ms, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)?
        };
        let mut claimed = Vec::with_capacity(due.len());
        {
            let mut lease = tx.prepare_cached(q("lease_step")?).map_err(db)?;
            for (id, state) in due {
                let step = lease
                    .query_row(params![owner, now_ms + lease_ms, id], step_row)
                    .map_err(db)?;
                claimed.push(Claimed {
                    step,
                    taken_over: state == "running",
                });
            }
        }
        tx.commit().map_err(db)?;
        Ok(claimed)
    }

    fn renew_leases(&self, ids: &[i64], owner: i64, until_ms: i64) -> Result<usize> {
        let writer = self.lock();
        let mut held = 0;
        let mut stmt = writer.conn.prepare_cached(q("renew_lease")?).map_err(db)?;
        for id in ids {
            held += stmt.execute(params![until_ms, id, owner]).map_err(db)?;
        }
        Ok(held)
    }

    fn add_token(&self, token: &TokenRow) -> Result<()> {
        let writer = self.lock();
        writer
            .conn
            .execute(
                q("insert_token")?,
                params![
                    token.hash,
                    token.id,
                    token.role,
                    token.name,
                    token.created_at
                ],
            )
            .map_err(db)?;
        Ok(())
    }
}

/// A store shared by the threads of one process.
pub fn shared(store: SqliteStore) -> Arc<dyn Store> {
    Arc::new(store)
}
