//! The PostgreSQL table connector against the machine's PostgreSQL: a legacy HR system's
//! table of worker changes (`[sources.legacy_hr] connector = "pg_table"`), read by its
//! `changed_at` watermark through a mapping of the deployment's own (`[mappings] dir`).
//!
//! - Rows become workers; a row changed again is a new event, one read again is not.
//! - A hub stopped and started reads on from its saved cursor: the rows written meanwhile
//!   arrive, and the window it reads again is all duplicates. Neither a gap nor a double.
//! - A row stamped before the cursor by a transaction that committed late is still read,
//!   within the overlap.
//! - The outbound stream written to a table (`[targets.landing] connector = "pg_table"`)
//!   holds each business event once, masked for its target, across a restart.

mod support;

use pshub_store_postgres::testing::TestDatabase;
use serde_json::Value;
use std::time::Duration;
use support::*;

const MAPPING: &str = r#"
source = "legacy_hr"
record = "worker"
version = 1
target = "worker.hired"
description = "A legacy HR system's worker changes, one row per change"

[envelope]
id = '"legacy-" + (.id | tostring) + "@" + .changed_at'
occurred_at = { timestamp = ".changed_at" }

[data]
worker_id = ".worker_id"
effective_date = ".hired_on"
legal_entity = ".legal_entity"
region = ".region"
role = ".role"
"#;

fn config(url: &str) -> String {
    format!(
        r#"
[sources]
allowed = ["crm", "psa", "hris", "erp", "payroll", "legacy_hr"]

[owners]
worker = "legacy_hr"

[mappings]
dir = "mappings"

[sources.legacy_hr]
connector = "pg_table"
url = "{url}"
table = "hr.worker_changes"
watermark = "changed_at"
key = "id"
overlap_s = 60
poll_ms = 100
batch = 2
mapping = "legacy_hr/worker.v1"
"#
    )
}

fn insert(url: &str, worker: &str, role: &str, changed_at: &str) {
    psql(
        url,
        &format!(
            "INSERT INTO hr.worker_changes (worker_id, hired_on, legal_entity, region, role, changed_at) \
             VALUES ('{worker}', '2025-01-01', 'DE01', 'emea', '{role}', {changed_at})"
        ),
    );
}

async fn role_of(api: &Api, worker: &str) -> Value {
    api.get_ok(&format!("/v1/workers/{worker}")).await["role"].clone()
}

#[tokio::test]
async fn a_table_read_by_its_watermark_across_a_restart_neither_skips_nor_doubles_a_row() {
    let database = TestDatabase::create("pg_table_source");
    let url = database.url.clone();
    psql(
        &url,
        "CREATE SCHEMA hr; CREATE TABLE hr.worker_changes (id serial PRIMARY KEY, worker_id text NOT NULL, \
         hired_on date NOT NULL, legal_entity text NOT NULL, region text NOT NULL, role text NOT NULL, \
         changed_at timestamptz NOT NULL DEFAULT now())",
    );
    for worker in ["W-1", "W-2", "W-3"] {
        insert(&url, worker, "consultant", "now()");
    }
    let dir = TempDir::new("pg-table");
    std::fs::create_dir_all(dir.join("mappings/legacy_hr")).unwrap();
    std::fs::write(dir.join("mappings/legacy_hr/worker.v1.toml"), MAPPING).unwrap();
    std::fs::write(dir.join("pshub.toml"), config(&url)).unwrap();
    let start = |log: &str| serve_configured(&dir, log);
    let mut server = start("serve-1.log");
    let token = create_token(dir.path(), None, "admin", None);
    let client = reqwest::Client::new();
    let api = Api::new(&client, &server.base, &token);

    // Three rows, read two a page.
    api.until_accepted(3).await;
    assert_eq!(role_of(&api, "W-3").await, "consultant");

    // Stopped; meanwhile W-1 is promoted and W-4 joins.
    server.kill();
    insert(&url, "W-1", "manager", "now()");
    insert(&url, "W-4", "consultant", "now()");
    let server = start("serve-2.log");
    let api = Api::new(&client, &server.base, &token);
    let summary = api.until_accepted(5).await;
    assert_eq!(role_of(&api, "W-1").await, "manager");
    assert_eq!(role_of(&api, "W-4").await, "consultant");
    // The restart read its window again: what it had taken came back as duplicates.
    assert!(
        summary["duplicates_suppressed"].as_u64().unwrap() >= 3,
        "{summary}"
    );

    // A row a long transaction stamped before the cursor, committed now: in the overlap.
    insert(
        &url,
        "W-5",
        "consultant",
        "(SELECT max(changed_at) FROM hr.worker_changes) - interval '30 seconds'",
    );
    api.until_accepted(6).await;
    assert_eq!(role_of(&api, "W-5").await, "consultant");
    assert_eq!(api.connector_count("legacy_hr", "trouble").await, 0.0);

    // The catalog shows the table, its password nowhere.
    let (_, catalog) = api.get("/v1/catalog").await.unwrap();
    let inbound = &catalog["systems"]["legacy_hr"]["inbound"];
    assert!(
        inbound.to_string().contains("hr.worker_changes"),
        "{inbound}"
    );
}

/// The outbound stream written to a table (`[targets.landing] connector = "pg_table"`):
/// the table is made, each business event is one row by its key, masked for its target as
/// `GET /v1/outbound?target=landing` shows it, and a restart that writes its window again
/// adds no row.
#[tokio::test]
async fn the_business_events_are_written_to_a_table_once_each_across_a_restart() {
    let database = TestDatabase::create("pg_table_target");
    let url = database.url.clone();
    psql(&url, "CREATE SCHEMA landing");
    let dir = TempDir::new("pg-table-out");
    let config = format!(
        r#"
[sources]
allowed = ["crm", "psa", "hris", "erp", "payroll"]

[masking.landing]
mask = ["worker_id"]

[targets.landing]
connector = "pg_table"
url = "{url}"
table = "landing.pshub_events"
"#
    );
    let (mut server, api) = serve_with_config(&dir, &config);
    api.post_accepted(&{
        let mut events = firm(&["P-1"]);
        events.push(approved_time("T1", "2026-03-04", "2"));
        events
    })
    .await;
    let count = |filter: &str| -> usize {
        psql(
            &url,
            &format!("SELECT count(*) FROM landing.pshub_events WHERE {filter}"),
        )
        .trim()
        .parse()
        .unwrap()
    };
    let line = eventually(
        "the posted line is in the table",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let rows = psql(
                &url,
                "SELECT event::text FROM landing.pshub_events \
                 WHERE type = 'invoice_line.posted' AND event->'data'->>'source_id' = 'T1'",
            );
            match rows.lines().collect::<Vec<_>>().as_slice() {
                [row] => Ok(serde_json::from_str::<Value>(row).unwrap()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(line["data"]["worker_id"], "***", "masked: {line}");
    assert!(count("type = 'project.provisioned'") >= 1);
    let shown = api.outbound_event("landing", "invoice_line.posted").await;
    assert_eq!(shown, line, "as the stream's readers see it");
    let key = line["key"].as_str().unwrap().to_string();
    assert_eq!(count(&format!("key = '{key}'")), 1);

    // A restart writes its window again: no row is added, and what comes next is written.
    let before = count("true");
    server.kill();
    let server = serve_configured(&dir, "serve-2.log");
    let api = Api::new(&api.client, &server.base, &api.token);
    api.post_accepted(&[approved_time("T2", "2026-03-05", "3")])
        .await;
    eventually(
        "the next line is in the table",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            match count("event->'data'->>'source_id' = 'T2'") {
                1 => Ok(()),
                n => Err(format!("{n} rows")),
            }
        },
    )
    .await;
    assert_eq!(count(&format!("key = '{key}'")), 1, "written once");
    assert!(count("true") > before);
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) - count(DISTINCT event->>'key') FROM landing.pshub_events"
        )
        .trim(),
        "0"
    );
    drop(server);
}
