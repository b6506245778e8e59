//! The embedded store: one SQLite file in WAL mode with a full fsync on every transaction.
//!
//! Invariants: each [`Commit`] is written completely or not at all. Uniqueness is the
//! schema's: a second row for a key fails the commit as a conflict. Updates of versioned
//! rows are conditional on the version read.
//!
//! Every write goes through one group commit ([`group`]): commits, claims, lease renewals and
//! id reservations that arrive while a transaction is being made durable wait, and then share
//! the next one, each in a savepoint of its own, so that one that conflicts is undone without
//! its neighbours. Lookups
//! of events and entries by their external keys are accelerated by in-memory indexes whose
//! misses the UNIQUE constraints back up.

mod group;
mod index;
mod postings;
mod reader;
mod rows;
mod write;

use group::{Group, Job, JobResult};
use index::{KeySet, entry_key, event_key};
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

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "engine",
        sql: include_str!("../sql/migrations/0001_engine.sql"),
    },
    Migration {
        version: 2,
        name: "line_postings",
        sql: include_str!("../sql/migrations/0002_line_postings.sql"),
    },
    Migration {
        version: 3,
        name: "costing",
        sql: include_str!("../sql/migrations/0003_costing.sql"),
    },
    Migration {
        version: 4,
        name: "line_roles",
        sql: include_str!("../sql/migrations/0004_line_roles.sql"),
    },
    Migration {
        version: 5,
        name: "connector_cursors",
        sql: include_str!("../sql/migrations/0005_connector_cursors.sql"),
    },
    Migration {
        version: 6,
        name: "xrefs",
        sql: include_str!("../sql/migrations/0006_xrefs.sql"),
    },
    Migration {
        version: 7,
        name: "outbound_published",
        sql: include_str!("../sql/migrations/0007_outbound_published.sql"),
    },
];

pub(crate) fn queries() -> &'static Queries {
    static QUERIES: OnceLock<Queries> = OnceLock::new();
    QUERIES.get_or_init(|| Queries::parse(include_str!("../sql/queries.sql")))
}

pub(crate) fn q(name: &str) -> Result<&'static str> {
    queries().get(name)
}

/// Page cache of the writer's connection, and of each reader's (KiB). Readers scan or
/// look up recent rows, which the operating system's cache holds anyway; the writer's
/// B-trees are the ones worth keeping in memory, but only their upper levels and recent
/// leaves are hot: a million-entry `bench time-to-bill` ran as fast with 8 MB as with 32
/// (228-233 MB peak against 245-270). A hub opens about ten readers (the API's pool, one
/// per delivery worker, the hub's own), so their share is kept small.
const WRITER_CACHE_KIB: u32 = 8_000;
const READER_CACHE_KIB: u32 = 2_000;

fn connect(path: &Path, cache_kib: u32) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA page_size = 16384;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -{cache_kib};
         PRAGMA temp_store = MEMORY;"
    ))?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

pub(crate) fn db(error: rusqlite::Error) -> EngineError {
    EngineError::Store(error.to_string())
}

/// Whether an error is a unique key taken by another row.
fn is_taken(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation)
}

/// Why a job stops: another writer got there first, or the store failed.
pub(crate) enum Stop {
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

/// The indexes of external keys, with a connection of their own to verify hits on.
struct Lookup {
    conn: Connection,
    events: KeySet,
    entries: KeySet,
}

pub struct SqliteStore {
    group: Group,
    lookup: Mutex<Lookup>,
    path: PathBuf,
    /// Cleared when a commit finds a key the indexes missed: another process writes this
    /// file too, so only the database knows what is stored.
    trust_misses: AtomicBool,
}

/// The steps of a system due at `now_ms` (pending and due, or running under a lapsed lease).
pub(crate) fn due_steps(conn: &Connection, claim: &ClaimRequest) -> Result<Vec<StepRow>> {
    let mut stmt = conn.prepare_cached(q("claimable_steps")?).map_err(db)?;
    let rows = stmt
        .query_map(params![claim.system, claim.now_ms, claim.limit], step_row)
        .map_err(db)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db)
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
        // A checkpoint every 64 MiB of WAL keeps the WAL (and each fsync of it) short.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 4096;")
            .map_err(db)?;
        let lookup_conn = connect(&path, READER_CACHE_KIB).map_err(db)?;
        let events = KeySet::build(&lookup_conn, q("event_keys")?, event_key).map_err(db)?;
        let entries = KeySet::build(&lookup_conn, q("entry_keys")?, entry_key).map_err(db)?;
        Ok(SqliteStore {
            group: Group::new(conn),
            lookup: Mutex::new(Lookup {
                conn: lookup_conn,
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

    fn lookup(&self) -> MutexGuard<'_, Lookup> {
        self.lookup.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a key the indexes missed turned out to be stored: trust only the database.
    fn distrust_misses(&self) {
        if self.trust_misses.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                "another process writes this store; event and entry lookups now read through"
            );
        }
    }

    /// Adds what a commit inserted to the indexes.
    fn index(&self, commit: &Commit) -> rusqlite::Result<()> {
        let mut lookup = self.lookup();
        for row in &commit.inbox {
            lookup.events.insert(&event_key(&row.source, &row.event_id));
        }
        for row in commit.entries.iter().filter(|e| e.version == 0) {
            lookup
                .entries
                .insert(&entry_key(row.kind.as_str(), &row.entry_id));
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn commit(&self, commit: &Arc<Commit>) -> std::result::Result<(), CommitError> {
        if commit.is_empty() {
            return Ok(());
        }
        match self.group.run(Job::Commit(commit.clone())) {
            JobResult::Committed(Ok(())) => {
                self.index(commit).map_err(|e| CommitError::Store(db(e)))?;
                Ok(())
            }
            JobResult::Committed(Err(CommitError::Conflict(why))) => {
                self.distrust_misses();
                Err(CommitError::Conflict(why))
            }
            JobResult::Committed(Err(error)) => Err(error),
            other => Err(CommitError::Store(other.unexpected())),
        }
    }

    fn reader(&self) -> Result<Box<dyn StoreReader>> {
        Ok(Box::new(SqliteReader::new(
            connect(&self.path, READER_CACHE_KIB).map_err(db)?,
        )))
    }

    fn reserve_ids(&self, kind: IdKind, count: u32) -> Result<i64> {
        match self.group.run(Job::Reserve { kind, count }) {
            JobResult::Reserved(first) => first,
            other => Err(other.unexpected()),
        }
    }

    fn find_events(&self, keys: &[(&str, &str)]) -> Result<Vec<Option<InboxRow>>> {
        let lookup = self.lookup();
        let trust = self.trust_misses.load(Ordering::Relaxed);
        keys.iter()
            .map(|(source, event_id)| {
                if source.is_empty()
                    || (trust && !lookup.events.may_hold(&event_key(source, event_id)))
                {
                    return Ok(None);
                }
                lookup
                    .conn
                    .prepare_cached(q("event_by_key")?)
                    .and_then(|mut s| s.query_row([source, event_id], inbox_row).optional())
                    .map_err(db)
            })
            .collect()
    }

    fn find_entries(&self, keys: &[(EntryKind, &str)]) -> Result<Vec<Option<EntryRow>>> {
        let lookup = self.lookup();
        let trust = self.trust_misses.load(Ordering::Relaxed);
        keys.iter()
            .map(|(kind, entry_id)| {
                if trust && !lookup.entries.may_hold(&entry_key(kind.as_str(), entry_id)) {
                    return Ok(None);
                }
                lookup
                    .conn
                    .prepare_cached(q("entry_by_key")?)
                    .and_then(|mut s| {
                        s.query_row(params![kind.as_str(), entry_id], entry_row)
                            .optional()
                    })
                    .map_err(db)
            })
            .collect()
    }

    fn reference_version(&self) -> Result<i64> {
        let lookup = self.lookup();
        lookup
            .conn
            .query_row(q("reference_version")?, [], |r| r.get(0))
            .map_err(db)
    }

    fn reference_since(
        &self,
        after: i64,
        visit: &mut dyn FnMut(InboxRow) -> Result<()>,
    ) -> Result<i64> {
        // A reader of its own, so that a long replay at start never holds anything up.
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

    fn claim_steps(&self, claim: &ClaimRequest) -> Result<Vec<Claimed>> {
        // Found on a reader, so that finding nothing due costs the writers nothing.
        let due = due_steps(&self.lookup().conn, claim)?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let job = Job::Lease {
            due,
            owner: claim.owner,
            until: claim.until_ms(),
            now: claim.now_ms,
        };
        match self.group.run(job) {
            JobResult::Claimed(claimed) => claimed,
            other => Err(other.unexpected()),
        }
    }

    fn commit_and_claim(
        &self,
        commit: &Arc<Commit>,
        claim: &ClaimRequest,
    ) -> (std::result::Result<(), CommitError>, Result<Vec<Claimed>>) {
        let claim = Job::Claim(claim.clone());
        let mut results = self
            .group
            .run_all(vec![Job::Commit(commit.clone()), claim])
            .into_iter();
        let committed = match results.next() {
            Some(JobResult::Committed(Ok(()))) => {
                self.index(commit).map_err(|e| CommitError::Store(db(e)))
            }
            Some(JobResult::Committed(Err(CommitError::Conflict(why)))) => {
                self.distrust_misses();
                Err(CommitError::Conflict(why))
            }
            Some(JobResult::Committed(Err(error))) => Err(error),
            _ => Err(CommitError::Store(EngineError::Store(
                "no commit result".into(),
            ))),
        };
        let claimed = match results.next() {
            Some(JobResult::Claimed(claimed)) => claimed,
            _ => Err(EngineError::Store("no claim result".into())),
        };
        (committed, claimed)
    }

    fn renew_leases(&self, ids: &[i64], owner: i64, until_ms: i64) -> Result<usize> {
        let job = Job::Renew {
            ids: ids.to_vec(),
            owner,
            until_ms,
        };
        match self.group.run(job) {
            JobResult::Renewed(held) => held,
            other => Err(other.unexpected()),
        }
    }

    fn load_payroll(&self, load: PayrollLoad) -> Result<PayrollLoadRow> {
        match self.group.run(Job::Payroll(Box::new(load))) {
            JobResult::Loaded(result) => result,
            other => Err(other.unexpected()),
        }
    }

    fn add_token(&self, token: &TokenRow) -> Result<()> {
        match self.group.run(Job::Token(token.clone())) {
            JobResult::Done(done) => done,
            other => Err(other.unexpected()),
        }
    }

    fn save_cursor(&self, name: &str, cursor: &str, saved_at: &str) -> Result<()> {
        let job = Job::Cursor([name, cursor, saved_at].map(String::from));
        match self.group.run(job) {
            JobResult::Done(done) => done,
            other => Err(other.unexpected()),
        }
    }
}
