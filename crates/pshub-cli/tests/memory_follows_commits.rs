//! Memory follows the store, never leads it: when a batch's commit fails, or panics, the
//! reference data of that batch is not in memory, and when the sender re-sends the batch, a
//! closed-won writes its provisioning and a rate card prices, as if the failure never was.

use pshub_connectors::sandbox::{InProcess, Sandbox};
use pshub_engine::error::Result;
use pshub_engine::store::*;
use pshub_engine::{Config, Engine, Systems};
use pshub_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

const PASS: u8 = 0;
const FAIL_NEXT: u8 = 1;
const PANIC_NEXT: u8 = 2;

/// A store whose next commit fails or panics when asked to.
struct Flaky {
    inner: SqliteStore,
    next: AtomicU8,
}

impl Flaky {
    fn trip(&self) -> std::result::Result<(), CommitError> {
        match self.next.swap(PASS, Ordering::SeqCst) {
            FAIL_NEXT => Err(CommitError::Store(pshub_engine::error::EngineError::Store(
                "the disk is full".into(),
            ))),
            PANIC_NEXT => panic!("the store's driver panicked"),
            _ => Ok(()),
        }
    }
}

impl Store for Flaky {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn commit(&self, commit: &Arc<Commit>) -> std::result::Result<(), CommitError> {
        self.trip()?;
        self.inner.commit(commit)
    }
    fn reader(&self) -> Result<Box<dyn StoreReader>> {
        self.inner.reader()
    }
    fn save_cursor(&self, name: &str, cursor: &str, saved_at: &str) -> Result<()> {
        self.inner.save_cursor(name, cursor, saved_at)
    }
    fn reserve_ids(&self, kind: IdKind, count: u32) -> Result<i64> {
        self.inner.reserve_ids(kind, count)
    }
    fn find_events(&self, keys: &[(&str, &str)]) -> Result<Vec<Option<InboxRow>>> {
        self.inner.find_events(keys)
    }
    fn find_entries(&self, keys: &[(EntryKind, &str)]) -> Result<Vec<Option<EntryRow>>> {
        self.inner.find_entries(keys)
    }
    fn reference_version(&self) -> Result<i64> {
        self.inner.reference_version()
    }
    fn reference_since(
        &self,
        after: i64,
        visit: &mut dyn FnMut(InboxRow) -> Result<()>,
    ) -> Result<i64> {
        self.inner.reference_since(after, visit)
    }
    fn claim_steps(&self, claim: &ClaimRequest) -> Result<Vec<Claimed>> {
        self.inner.claim_steps(claim)
    }
    fn renew_leases(&self, ids: &[i64], owner: i64, until_ms: i64) -> Result<usize> {
        self.inner.renew_leases(ids, owner, until_ms)
    }
    fn add_token(&self, token: &TokenRow) -> Result<()> {
        self.inner.add_token(token)
    }
    fn load_payroll(&self, load: PayrollLoad) -> Result<PayrollLoadRow> {
        self.inner.load_payroll(load)
    }
}

fn event(source: &str, id: &str, kind: &str, data: Value) -> Value {
    json!({ "id": id, "source": source, "type": kind, "schema_version": 1,
            "occurred_at": "2026-03-04T17:02:11Z", "data": data })
}

fn reference_batch() -> Vec<Value> {
    vec![
        event(
            "psa",
            "rc-1",
            "rate_card.upserted",
            json!({ "rate_card_id": "RC-1", "currency": "EUR",
                    "rates": [{ "role": "consultant", "region": "emea", "rate": "150.00", "valid_from": "2026-01-01" }] }),
        ),
        event(
            "crm",
            "won-1",
            "opportunity.closed_won",
            json!({
                "opportunity_id": "OPP-1",
                "customer": { "customer_id": "C-1", "legal_name": "Client GmbH", "country": "DE", "currency": "EUR" },
                "contract": { "contract_id": "K-1", "billing_model": "time_and_materials", "currency": "EUR",
                              "rate_card_id": "RC-1", "start": "2026-01-01" },
                "project": { "project_code": "P-1", "name": "Audit", "legal_entity": "DE01", "region": "emea", "service_line": "advisory" }
            }),
        ),
        event(
            "hris",
            "hire-1",
            "worker.hired",
            json!({ "worker_id": "W-1", "effective_date": "2025-01-01", "legal_entity": "DE01",
                    "region": "emea", "cost_center": "CC1", "role": "consultant", "grade": "G2" }),
        ),
        event(
            "psa",
            "asg-1",
            "assignment.changed",
            json!({ "assignment_id": "A-1", "version": 1, "worker_id": "W-1", "project_code": "P-1",
                    "role": "consultant", "start": "2026-01-01", "end": "2026-12-31", "hours": "160", "state": "approved" }),
        ),
    ]
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
    let store = Arc::new(Flaky {
        inner: SqliteStore::open(&dir).unwrap(),
        next: AtomicU8::new(PASS),
    });
    let sandbox = Sandbox::in_memory();
    let engine = Engine::open(
        store.clone(),
        Config::default(),
        InProcess::systems(&sandbox, Systems::default()),
    )
    .unwrap();

    store.next.store(mode, Ordering::SeqCst);
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
