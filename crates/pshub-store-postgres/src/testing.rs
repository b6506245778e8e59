//! Databases for tests: each test creates its own on the PostgreSQL server named by
//! `PSHUB_TEST_POSTGRES` (by default the machine's, `postgres://root@127.0.0.1:5432`) and
//! drops it when done. A test that needs the server fails when it does not answer.

use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The server tests create their databases on.
pub fn server() -> String {
    std::env::var("PSHUB_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432".to_string())
        .trim_end_matches('/')
        .to_string()
}

/// A database of one test, dropped (with any connection still open to it) when this is.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

/// Runs one statement on the server's `postgres` database, on a thread of its own so that
/// async tests may call it too.
fn admin(statement: &str) -> Result<(), String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| admin_here(statement))
            .join()
            .unwrap_or_else(|_| Err("the admin connection panicked".to_string()))
    })
}

fn admin_here(statement: &str) -> Result<(), String> {
    let url = format!("{}/postgres", server());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .map_err(|e| format!("PostgreSQL at {url} does not answer: {e}"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("{statement}: {e}"))?;
        Ok(())
    })
}

impl TestDatabase {
    /// Creates an empty database named after the test. Panics (failing the test) when the
    /// server does not answer: a test that needs PostgreSQL never passes without it.
    pub fn create(test: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let clean: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let name = format!("pshub_t_{clean}_{}_{n}", std::process::id());
        if let Err(error) = admin(&format!("DROP DATABASE IF EXISTS {name}"))
            .and_then(|()| admin(&format!("CREATE DATABASE {name}")))
        {
            panic!("cannot create the test database {name}: {error}");
        }
        let url = format!("{}/{name}", server());
        TestDatabase { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
