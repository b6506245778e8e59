//! The scale-out store: PostgreSQL, shared by any number of hub processes.
//!
//! Invariants: each [`Commit`] is one transaction. Uniqueness is the schema's, updates are
//! conditional on row versions, and due steps are claimed with `FOR UPDATE SKIP LOCKED`
//! under leases, so processes never coordinate except through the database. The reference
//! version row serialises changes of reference data against the batches priced on it.
//!
//! The engine calls stores synchronously; this one runs sqlx on a runtime of its own and
//! waits for each query on the caller's thread.

mod reader;
mod rows;
pub mod testing;
mod write;

use futures_util::TryStreamExt;
use pshub_engine::error::{EngineError, Result};
use pshub_engine::store::sql::{Migration, Queries};
use pshub_engine::store::*;
use reader::PostgresReader;
use rows::*;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "engine",
        sql: include_str!("../sql/migrations/0001_engine.sql"),
    },
    Migration {
        version: 2,
        name: "costing",
        sql: include_str!("../sql/migrations/0002_costing.sql"),
    },
    Migration {
        version: 3,
        name: "line_roles",
        sql: include_str!("../sql/migrations/0003_line_roles.sql"),
    },
    Migration {
        version: 4,
        name: "connector_cursors",
        sql: include_str!("../sql/migrations/0004_connector_cursors.sql"),
    },
    Migration {
        version: 5,
        name: "xrefs",
        sql: include_str!("../sql/migrations/0005_xrefs.sql"),
    },
    Migration {
        version: 6,
        name: "outbound_published",
        sql: include_str!("../sql/migrations/0006_outbound_published.sql"),
    },
];

/// Held while migrating, so that processes starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x7073_6875_6201;

pub(crate) fn queries() -> &'static Queries {
    static QUERIES: OnceLock<Queries> = OnceLock::new();
    QUERIES.get_or_init(|| Queries::parse(include_str!("../sql/queries.sql")))
}

pub(crate) fn q(name: &str) -> Result<&'static str> {
    queries().get(name)
}

pub(crate) fn pg(error: sqlx::Error) -> EngineError {
    EngineError::Store(error.to_string())
}

/// Whether an error means another writer got there first: a unique key taken, a deadlock
/// broken, a serialisation failure.
pub(crate) fn conflict_of(error: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    matches!(db.code().as_deref(), Some("23505" | "40P01" | "40001")).then(|| db.to_string())
}

/// The pool and the runtime that drives it.
pub(crate) struct Pg {
    pub pool: PgPool,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Pg {
    /// Runs a query's future to completion on the calling thread, with its I/O and timers
    /// driven by the store's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match &self.runtime {
            Some(runtime) => wait(runtime, future),
            None => unreachable_runtime(),
        }
    }
}

/// Waits for `future` on this thread. Unlike `Runtime::block_on` this also works on a
/// thread that already runs inside another runtime (an API handler calling the engine): the
/// store's own worker threads drive the sockets and timers, and this thread only polls.
fn wait<F: std::future::Future>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let _context = runtime.enter();
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

fn unreachable_runtime() -> ! {
    // The runtime is taken only in `drop`, after which no method runs.
    panic!("the store's runtime was used after the store was dropped")
}

impl Drop for Pg {
    fn drop(&mut self) {
        // The store may be dropped inside another runtime; never block there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

pub struct PostgresStore {
    pg: Arc<Pg>,
    url: String,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`) and applies any
    /// migration it lacks.
    pub fn open(url: &str) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pshub-postgres")
            .enable_all()
            .build()
            .map_err(|e| EngineError::Store(format!("cannot start the store's runtime: {e}")))?;
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| EngineError::Store(format!("not a PostgreSQL URL: {e}")))?
            .application_name("pshub");
        let pool = wait(
            &runtime,
            PgPoolOptions::new()
                .max_connections(8)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(15))
                .connect_with(options),
        );
        let pool =
            pool.map_err(|e| EngineError::Store(format!("cannot connect: {}", connect_error(&e))))?;
        let store = PostgresStore {
            pg: Arc::new(Pg {
                pool,
                runtime: Some(runtime),
            }),
            url: url.to_string(),
        };
        store.pg.block_on(migrate(&store.pg.pool))?;
        Ok(store)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A connection failure in words an operator can act on.
fn connect_error(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => {
            format!(
                "{} (create it first, for example with createdb)",
                db.message()
            )
        }
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

/// Applies the migrations the database lacks, under an advisory lock.
async fn migrate(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(pg)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(pg)?;
    let outcome = async {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            .execute(&mut *conn)
            .await
            .map_err(pg)?;
        let applied: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::bigint FROM schema_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(pg)?;
        for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(pg)?;
            sqlx::raw_sql(migration.sql).execute(&mut *tx).await.map_err(|e| {
                EngineError::Store(format!(
                    "migration {} ({}) failed: {e}",
                    migration.version, migration.name
                ))
            })?;
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(migration.version)
                .bind(migration.name)
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            tracing::info!(version = migration.version, name = migration.name, "store migrated");
        }
        Ok::<(), EngineError>(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(pg)?;
    outcome
}

async fn claim_due(pool: &PgPool, claim: &ClaimRequest) -> Result<Vec<Claimed>> {
    let rows = sqlx::query(q("claim_steps")?)
        .bind(&claim.system)
        .bind(claim.now_ms)
        .bind(i64::from(claim.limit))
        .bind(claim.owner)
        .bind(claim.until_ms())
        .fetch_all(pool)
        .await
        .map_err(pg)?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            let before: String = sqlx::Row::try_get(row, 20)?;
            Ok(Claimed {
                step: step_row(row)?,
                taken_over: before == "running",
            })
        })
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
        .map_err(pg)?;
    claimed.sort_by_key(|c| c.step.id);
    Ok(claimed)
}

impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn commit(&self, commit: &Arc<Commit>) -> std::result::Result<(), CommitError> {
        if commit.is_empty() {
            return Ok(());
        }
        self.pg.block_on(async {
            let mut tx = self
                .pg
                .pool
                .begin()
                .await
                .map_err(|e| match conflict_of(&e) {
                    Some(why) => CommitError::Conflict(why),
                    None => CommitError::Store(pg(e)),
                })?;
            match write::write(&mut tx, commit).await {
                Ok(()) => {}
                Err(write::Stop::Conflict(why)) => return Err(CommitError::Conflict(why)),
                Err(write::Stop::Db(error)) => return Err(CommitError::Store(error)),
            }
            tx.commit().await.map_err(|e| match conflict_of(&e) {
                Some(why) => CommitError::Conflict(why),
                None => CommitError::Store(pg(e)),
            })
        })
    }

    fn reader(&self) -> Result<Box<dyn StoreReader>> {
        Ok(Box::new(PostgresReader::new(self.pg.clone())))
    }

    fn reserve_ids(&self, kind: IdKind, count: u32) -> Result<i64> {
        self.pg.block_on(async {
            sqlx::query_scalar(q("reserve_ids")?)
                .bind(kind.as_str())
                .bind(i64::from(count))
                .fetch_one(&self.pg.pool)
                .await
                .map_err(pg)
        })
    }

    fn find_events(&self, keys: &[(&str, &str)]) -> Result<Vec<Option<InboxRow>>> {
        let wanted: Vec<&(&str, &str)> = keys.iter().filter(|(s, _)| !s.is_empty()).collect();
        if wanted.is_empty() {
            return Ok(keys.iter().map(|_| None).collect());
        }
        let rows = self.pg.block_on(async {
            sqlx::query(q("events_by_keys")?)
                .bind(wanted.iter().map(|(s, _)| *s).collect::<Vec<_>>())
                .bind(wanted.iter().map(|(_, id)| *id).collect::<Vec<_>>())
                .fetch_all(&self.pg.pool)
                .await
                .map_err(pg)
        })?;
        let mut found = std::collections::HashMap::new();
        for row in &rows {
            let row = inbox_row(row).map_err(pg)?;
            found.insert((row.source.clone(), row.event_id.clone()), row);
        }
        Ok(keys
            .iter()
            .map(|(s, id)| found.get(&(s.to_string(), id.to_string())).cloned())
            .collect())
    }

    fn find_entries(&self, keys: &[(EntryKind, &str)]) -> Result<Vec<Option<EntryRow>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.pg.block_on(async {
            sqlx::query(q("entries_by_keys")?)
                .bind(keys.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
                .bind(keys.iter().map(|(_, id)| *id).collect::<Vec<_>>())
                .fetch_all(&self.pg.pool)
                .await
                .map_err(pg)
        })?;
        let mut found = std::collections::HashMap::new();
        for row in &rows {
            let row = entry_row(row).map_err(pg)?;
            found.insert((row.kind, row.entry_id.clone()), row);
        }
        Ok(keys
            .iter()
            .map(|(k, id)| found.get(&(*k, id.to_string())).cloned())
            .collect())
    }

    fn reference_version(&self) -> Result<i64> {
        self.pg.block_on(async {
            sqlx::query_scalar(q("reference_version")?)
                .fetch_one(&self.pg.pool)
                .await
                .map_err(pg)
        })
    }

    fn reference_since(
        &self,
        after: i64,
        visit: &mut dyn FnMut(InboxRow) -> Result<()>,
    ) -> Result<i64> {
        self.pg.block_on(async {
            // Reference writers bump the version in the transaction that adds their rows, one
            // at a time: every row up to the version read is committed.
            let version: i64 = sqlx::query_scalar(q("reference_version")?)
                .fetch_one(&self.pg.pool)
                .await
                .map_err(pg)?;
            let mut rows = sqlx::query(q("reference_since")?)
                .bind(after)
                .bind(version)
                .fetch(&self.pg.pool);
            while let Some(row) = rows.try_next().await.map_err(pg)? {
                visit(inbox_row(&row).map_err(pg)?)?;
            }
            Ok(version)
        })
    }

    fn claim_steps(&self, claim: &ClaimRequest) -> Result<Vec<Claimed>> {
        self.pg.block_on(claim_due(&self.pg.pool, claim))
    }

    fn renew_leases(&self, ids: &[i64], owner: i64, until_ms: i64) -> Result<usize> {
        self.pg.block_on(async {
            sqlx::query(q("renew_leases")?)
                .bind(until_ms)
                .bind(ids)
                .bind(owner)
                .execute(&self.pg.pool)
                .await
                .map(|done| done.rows_affected() as usize)
                .map_err(pg)
        })
    }

    fn load_payroll(&self, load: PayrollLoad) -> Result<PayrollLoadRow> {
        self.pg.block_on(async {
            let mut tx = self.pg.pool.begin().await.map_err(pg)?;
            let row = match write::load_payroll(&mut tx, &load).await {
                Ok(row) => row,
                Err(write::Stop::Conflict(why)) => {
                    return Err(EngineError::Store(format!("payroll load refused: {why}")));
                }
                Err(write::Stop::Db(error)) => return Err(error),
            };
            tx.commit().await.map_err(pg)?;
            Ok(row)
        })
    }

    fn add_token(&self, token: &TokenRow) -> Result<()> {
        self.pg.block_on(async {
            sqlx::query(q("insert_token")?)
                .bind(&token.hash)
                .bind(token.id)
                .bind(&token.role)
                .bind(&token.name)
                .bind(&token.created_at)
                .execute(&self.pg.pool)
                .await
                .map(|_| ())
                .map_err(pg)
        })
    }

    fn save_cursor(&self, name: &str, cursor: &str, saved_at: &str) -> Result<()> {
        self.pg.block_on(async {
            sqlx::query(q("save_cursor")?)
                .bind(name)
                .bind(cursor)
                .bind(saved_at)
                .execute(&self.pg.pool)
                .await
                .map(|_| ())
                .map_err(pg)
        })
    }
}
