//! Memory follows the store, never leads it: when a batch's commit fails, or panics, the
//! reference data of that batch is not in memory, and when the sender re-sends the batch, a
//! closed-won writes its provisioning and a rate card prices, as if the failure never was.

mod support;

use pshub_connectors::sandbox::{InProcess, Sandbox};
use pshub_engine::store::*;
use pshub_engine::{Config, Engine, Systems};
use pshub_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use support::hooked::{BeforeCommit, Hooked, event, reference_batch};

const PASS: u8 = 0;
const FAIL_NEXT: u8 = 1;
const PANIC_NEXT: u8 = 2;

/// Makes the next commit fail or panic when asked to.
struct Flaky {
    next: AtomicU8,
}

impl BeforeCommit for Flaky {
    fn before_commit(&self, _: &Commit) -> std::result::Result<(), CommitError> {
        match self.next.swap(PASS, Ordering::SeqCst) {
            FAIL_NEXT => Err(CommitError::Store(pshub_engine::error::EngineError::Store(
                "the disk is full".into(),
            ))),
            PANIC_NEXT => panic!("the store's driver panicked"),
            _ => Ok(()),
        }
    }
}

fn entry(id: &str) -> Value {
    event(
        "psa",
        id,
        "time_entry.approved",
        json!({ "entry_id": id, "worker_id": "W-1", "project_code": "P-1", "work_date": "2026-03-04",
                "hours": "2", "billable": true }),
    )
}

fn check_failure_then_resend(mode: u8, name: &str) {
    let dir = std::env::temp_dir().join(format!("pshub-memory-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(Hooked {
        inner: SqliteStore::open(&dir).unwrap(),
        hook: Flaky {
            next: AtomicU8::new(PASS),
        },
    });
    let sandbox = Sandbox::in_memory();
    let engine = Engine::open(
        store.clone(),
        Config::default(),
        InProcess::systems(&sandbox, Systems::default()),
    )
    .unwrap();

    store.hook.next.store(mode, Ordering::SeqCst);
    let mut batch = reference_batch();
    batch.push(entry("T-1"));
    assert!(
        engine.submit(batch.clone()).is_err(),
        "the batch whose commit failed is not acknowledged"
    );
    // Nothing of the failed batch is in memory: an entry now finds no worker.
    let results = engine.submit(vec![entry("T-0")]).unwrap();
    assert_eq!(results[0].status.as_str(), "accepted");

    // The sender re-sends what was not acknowledged: everything takes effect once.
    let results = engine.submit(batch).unwrap();
    let statuses: Vec<&str> = results.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["accepted"; 5], "{results:?}");
    assert!(engine.settle(Duration::from_secs(20)).unwrap());
    let mut reader = store.reader().unwrap();
    let project = reader
        .project("P-1")
        .unwrap()
        .expect("the project is provisioned");
    let steps = reader
        .steps_of_subject("opportunity_to_project", project.id)
        .unwrap();
    assert_eq!(
        steps.len(),
        5,
        "the closed-won wrote its provisioning steps"
    );
    assert!(
        steps.iter().all(|s| s.state == StepState::Done),
        "{steps:?}"
    );
    assert_eq!(sandbox.stats()["psa"]["records"], 1);
    let lines = sandbox
        .list(pshub_connectors::sandbox::System::Erp, "lines", 0, 10)
        .unwrap()
        .unwrap();
    let items = lines["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "T-1 posts; T-0 was held for its unknown worker: {lines}"
    );
    assert_eq!(items[0]["source_id"], "T-1");
    assert_eq!(
        items[0]["amount"], "300.00",
        "priced with the re-sent rate card"
    );
    let held = reader.cases(&CaseFilter::default(), Page::ALL).unwrap();
    assert!(
        held.iter()
            .any(|c| c.business_key == "T-0" && c.kind == "unknown_worker"),
        "{held:?}"
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_commit_leaves_memory_as_the_store_has_it() {
    check_failure_then_resend(FAIL_NEXT, "fail");
}

#[test]
fn a_panic_inside_a_batch_rebuilds_memory_from_the_store() {
    check_failure_then_resend(PANIC_NEXT, "panic");
}
