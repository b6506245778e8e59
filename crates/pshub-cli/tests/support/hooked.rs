//! The embedded store with a hook before each commit, for tests that make a commit fail,
//! panic or wait; and the reference data those tests start from.

use pshub_engine::error::Result;
use pshub_engine::store::*;
use pshub_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use std::sync::Arc;

/// What runs before each commit; an error is the commit's.
pub trait BeforeCommit: Send + Sync {
    fn before_commit(&self, commit: &Commit) -> std::result::Result<(), CommitError>;
}

pub struct Hooked<H> {
    pub inner: SqliteStore,
    pub hook: H,
}

impl<H: BeforeCommit> Store for Hooked<H> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn commit(&self, commit: &Arc<Commit>) -> std::result::Result<(), CommitError> {
        self.hook.before_commit(commit)?;
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

pub fn event(source: &str, id: &str, kind: &str, data: Value) -> Value {
    json!({ "id": id, "source": source, "type": kind, "schema_version": 1,
            "occurred_at": "2026-03-04T17:02:11Z", "data": data })
}

/// A rate card (150 EUR an hour), a won deal for P-1, W-1 hired and assigned to it.
pub fn reference_batch() -> Vec<Value> {
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
