//! The legacy-table connector against the machine's PostgreSQL: each test has a database
//! of its own (`TestDatabase`, which fails the test when the server does not answer) and
//! reads the table itself with sqlx, not only the connector's answers.
//!
//! The connector's calls block on a runtime of its own, so these are plain tests; the raw
//! SQL of a test runs on a current-thread runtime made for that statement.

use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use pshub_connectors::legacy_table::LegacyTable;
use pshub_connectors::legacy_table::config::LegacyTableConfig;
use pshub_engine::ports::*;
use pshub_model::Currency;
use pshub_store_postgres::testing::TestDatabase;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const TABLE: &str = "legacy_lines";

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

/// A time line of `project` on `date`: `quantity` hours at `rate`, the amount their product.
fn line(key: &str, project: &str, date: NaiveDate, quantity: &str, rate: &str) -> LinePosting {
    LinePosting {
        idempotency_key: key.to_string(),
        kind: "time",
        project_code: project.to_string(),
        source_id: format!("TE-{key}"),
        posting: 1,
        worker_id: "W-1".to_string(),
        date,
        quantity: d(quantity),
        rate: d(rate),
        rate_currency: eur(),
        amount: d(quantity) * d(rate),
        currency: eur(),
        tax_code: "VAT20".to_string(),
        billing_class: "billable".to_string(),
        reverses_erp_id: None,
        role: None,
    }
}

fn config(db: &TestDatabase) -> LegacyTableConfig {
    let mut config = LegacyTableConfig::new(&db.url, TABLE);
    config.timeout = Duration::from_secs(5);
    config
}

fn connect(db: &TestDatabase) -> Arc<LegacyTable> {
    LegacyTable::connect("legacy", config(db)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `work` on a connection of its own to the test's database, outside the connector.
fn with_db<T>(
    db: &TestDatabase,
    work: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<T, sqlx::Error>,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", db.name));
        work(&mut conn).await.unwrap_or_else(|e| panic!("{e}"))
    })
}

/// `SELECT count(*), count(DISTINCT idempotency_key)` of the table.
fn counts(db: &TestDatabase) -> (i64, i64) {
    with_db(db, async |conn| {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT count(*), count(DISTINCT idempotency_key) FROM legacy_lines",
        )
        .fetch_one(conn)
        .await
    })
}

/// The row id of each key, as the table holds it.
fn row_id(db: &TestDatabase, key: &str) -> Option<i64> {
    let key = key.to_string();
    with_db(db, async move |conn| {
        sqlx::query_scalar::<_, i64>("SELECT id FROM legacy_lines WHERE idempotency_key = $1")
            .bind(key)
            .fetch_optional(conn)
            .await
    })
}

fn done_id(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done(id) => id.clone(),
        other => panic!("expected Done, got {other:?}"),
    }
}

#[test]
fn posting_twice_and_after_a_restart_keeps_one_row_per_key_with_the_same_ids() {
    let db = TestDatabase::create("legacy_idempotent");
    let lines = vec![
        line("K1", "P-A", day(2025, 3, 3), "8", "150"),
        line("K2", "P-A", day(2025, 3, 4), "7.5", "150"),
        line("K3", "P-B", day(2025, 3, 4), "1", "99.99"),
    ];

    let erp = connect(&db);
    let first = erp.post_lines(&lines);
    assert_eq!(first.len(), 3);
    let ids: Vec<String> = first.iter().map(done_id).collect();
    for (line, id) in lines.iter().zip(&ids) {
        let row = row_id(&db, &line.idempotency_key).expect("the line has a row");
        assert_eq!(id, &format!("legacy:{row}"), "{}", line.idempotency_key);
    }
    assert_eq!(counts(&db), (3, 3));

    // The same batch again (a retry after a lost answer): nothing new, the same ids.
    assert_eq!(erp.post_lines(&lines), first);
    assert_eq!(counts(&db), (3, 3));

    // As after a restart: a fresh connection to the table that is already there.
    drop(erp);
    let erp = connect(&db);
    assert_eq!(erp.post_lines(&lines), first);
    // A batch mixing a posted key with a new one answers the old id and posts the new.
    let mixed = vec![
        lines[1].clone(),
        line("K4", "P-B", day(2025, 3, 5), "2", "99.99"),
    ];
    let answers = erp.post_lines(&mixed);
    assert_eq!(answers[0], first[1]);
    let k4 = done_id(&answers[1]);
    assert!(!ids.contains(&k4), "{k4} is a new row");
    assert_eq!(counts(&db), (4, 4));

    assert_eq!(
        erp.lookup(&["K1", "K2", "K3", "K4", "never-posted"]),
        vec![
            Lookup::Applied(ids[0].clone()),
            Lookup::Applied(ids[1].clone()),
            Lookup::Applied(ids[2].clone()),
            Lookup::Applied(k4),
            Lookup::NotApplied,
        ]
    );
    assert_eq!(erp.lookup(&[]), vec![]);
}

#[test]
fn a_value_the_database_refuses_rejects_its_own_line_only() {
    let db = TestDatabase::create("legacy_reject");
    let erp = connect(&db);
    let mut lines: Vec<LinePosting> = (1..=5)
        .map(|n| line(&format!("R{n}"), "P-A", day(2025, 3, n), "1", "100"))
        .collect();
    // PostgreSQL refuses a NUL in text (SQLSTATE 22021): a value of the line, not an outage.
    lines[2].worker_id = "W-\0-1".to_string();

    let answers = erp.post_lines(&lines);
    assert_eq!(answers.len(), 5, "{answers:?}");
    for (i, answer) in answers.iter().enumerate() {
        let key = &lines[i].idempotency_key;
        if i == 2 {
            assert!(
                matches!(answer, Outcome::Rejected(m) if m.contains("legacy table refused")),
                "{key}: {answer:?}"
            );
        } else {
            let row = row_id(&db, key).unwrap_or_else(|| panic!("{key} has no row"));
            assert_eq!(answer, &Outcome::Done(format!("legacy:{row}")), "{key}");
        }
    }
    assert_eq!(counts(&db), (4, 4));
    assert_eq!(row_id(&db, "R3"), None);
    assert_eq!(
        erp.lookup(&["R1", "R3", "R5"])
            .iter()
            .map(|l| matches!(l, Lookup::Applied(_)))
            .collect::<Vec<_>>(),
        vec![true, false, true]
    );

    // The refused line alone is refused again, and the others stay as they were.
    let again = erp.post_lines(&lines[2..3]);
    assert!(matches!(again[..], [Outcome::Rejected(_)]), "{again:?}");
    assert_eq!(counts(&db), (4, 4));
}

#[test]
fn read_back_pages_through_every_line_in_id_order() {
    let db = TestDatabase::create("legacy_read_back");
    let erp = connect(&db);
    let mut lines: Vec<LinePosting> = (1..=7)
        .map(|n| line(&format!("B{n}"), "P-A", day(2025, 4, n), "1", "10"))
        .collect();
    lines[0] = line("B1", "P-R", day(2025, 4, 1), "7.5", "150");
    lines[0].posting = 3;
    lines[0].worker_id = "W-42".into();
    lines[0].source_id = "TE-77".into();
    lines[0].rate_currency = Currency::parse("USD").unwrap();
    // Trailing zeros as a client may send them; read back exact and without them.
    lines[0].quantity = d("7.50");
    lines[0].rate = d("150.00");
    lines[0].amount = d("1125.00");
    let ids: Vec<String> = erp.post_lines(&lines).iter().map(done_id).collect();

    let mut read = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let (items, next) = erp.read_back("lines", after, 3).unwrap();
        pages += 1;
        assert!(items.len() <= 3, "{items:?}");
        read.extend(items);
        match next {
            Some(n) => {
                assert!(n > after, "the position moves on");
                after = n;
            }
            None => break,
        }
        assert!(pages < 10, "read_back does not end");
    }
    assert_eq!(read.len(), 7, "{read:#?}");
    let read_ids: Vec<&str> = read.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(read_ids, ids, "every row once, in id order");
    let keys: Vec<&str> = read
        .iter()
        .map(|r| r["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]);

    let expected = json!({
        "id": ids[0], "idempotency_key": "B1", "kind": "time", "source_id": "TE-77",
        "posting": 3, "project_code": "P-R", "worker_id": "W-42", "date": "2025-04-01",
        "quantity": "7.5", "rate": "150", "rate_currency": "USD", "amount": "1125",
        "currency": "EUR", "status": "received", "invoice": Value::Null,
    });
    assert_eq!(read[0], expected);
    assert_eq!(read[6]["date"], "2025-04-07");
    assert_eq!(read[6]["amount"], "10");

    // A page from the last id is empty and ends; a page larger than the table ends at once.
    let last: u64 = ids[6].trim_start_matches("legacy:").parse().unwrap();
    assert_eq!(erp.read_back("lines", last, 3).unwrap(), (vec![], None));
    let (all, next) = erp.read_back("lines", 0, 100).unwrap();
    assert_eq!((all.len(), next), (7, None));
    // The legacy system keeps its billing rules itself: none are read back.
    assert_eq!(
        erp.read_back("billing-rules", 0, 10).unwrap(),
        (vec![], None)
    );
    assert!(erp.read_back("projects", 0, 10).is_err());
}

#[test]
fn statuses_set_by_the_legacy_system_are_read_back_by_the_watermark() {
    let db = TestDatabase::create("legacy_statuses");
    let erp = connect(&db);
    let lines = vec![
        line("S1", "P-A", day(2025, 5, 2), "8", "100"),
        line("S2", "P-A", day(2025, 5, 20), "4", "100"),
        line("S3", "P-B", day(2025, 5, 2), "8", "100"),
    ];
    erp.post_lines(&lines).iter().for_each(|o| {
        done_id(o);
    });

    // Every row is as inserted: nothing moved yet, whatever the watermark.
    assert_eq!(erp.statuses_since(DateTime::<Utc>::UNIX_EPOCH), Ok(vec![]));

    let updated = with_db(&db, async |conn| {
        sqlx::query(
            "UPDATE legacy_lines SET status = 'paid', invoice_number = 'L-1', updated_at = now()
             WHERE project_code = 'P-A'",
        )
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    });
    assert_eq!(updated, 2);
    let moved: DateTime<Utc> = with_db(&db, async |conn| {
        sqlx::query_scalar("SELECT max(updated_at) FROM legacy_lines WHERE project_code = 'P-A'")
            .fetch_one(conn)
            .await
    });

    let statuses = erp.statuses_since(DateTime::<Utc>::UNIX_EPOCH).unwrap();
    assert_eq!(statuses.len(), 1, "one project month: {statuses:?}");
    let status = &statuses[0];
    assert_eq!(
        (status.project_code.as_str(), status.period.as_str()),
        ("P-A", "2025-05")
    );
    assert_eq!(status.status, "paid");
    assert_eq!(status.moved, moved);

    // The watermark is inclusive (rows moved in the same instant are not lost) ...
    assert_eq!(erp.statuses_since(moved).unwrap(), statuses);
    // ... and a later one finds nothing until the legacy system moves another row.
    let later = moved + Span::microseconds(1);
    assert_eq!(erp.statuses_since(later), Ok(vec![]));
    // The rows the legacy system did not touch are still as inserted.
    let (read, _) = erp.read_back("lines", 0, 10).unwrap();
    let of = |key: &str| {
        read.iter()
            .find(|r| r["idempotency_key"] == key)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (of("S1")["status"].clone(), of("S1")["invoice"].clone()),
        (json!("paid"), json!("L-1"))
    );
    assert_eq!(
        (of("S3")["status"].clone(), of("S3")["invoice"].clone()),
        (json!("received"), Value::Null)
    );
}

#[test]
fn a_table_name_that_is_not_an_identifier_is_refused() {
    // Refused before anything is connected: no database is needed.
    let config = LegacyTableConfig::new("postgres://root@127.0.0.1:5432/x", "lines; drop table x");
    let error = LegacyTable::connect("legacy", config)
        .err()
        .expect("the table name is refused");
    assert!(error.contains("lines; drop table x"), "{error}");
}

#[test]
fn an_unreachable_database_fails_without_printing_the_password() {
    let mut config = LegacyTableConfig::new(
        "postgres://hub:s3cr3t-pw@127.0.0.1:1/legacy",
        "legacy_lines",
    );
    config.timeout = Duration::from_millis(500);
    let error = LegacyTable::connect("legacy", config)
        .err()
        .expect("nothing listens on port 1");
    assert!(error.contains("cannot connect"), "{error}");
    assert!(error.contains("127.0.0.1:1"), "{error}");
    assert!(!error.contains("s3cr3t-pw"), "{error}");
}

#[test]
fn describe_names_the_table_without_the_password() {
    // Trust authentication ignores the password; the connector must still never show it.
    let db = TestDatabase::create("legacy_describe");
    let url = db.url.replacen("://root@", "://root:s3cr3t-pw@", 1);
    assert_ne!(url, db.url, "the test server's URL names the user root");
    let mut config = LegacyTableConfig::new(&url, TABLE);
    config.timeout = Duration::from_secs(5);
    let erp = LegacyTable::connect("legacy", config).unwrap_or_else(|e| panic!("{e}"));
    let described = erp.describe().to_string();
    assert!(described.contains(TABLE), "{described}");
    assert!(!described.contains("s3cr3t-pw"), "{described}");
    assert!(!format!("{:?}", erp.config()).contains("s3cr3t-pw"));
}
