//! A restart over a store that holds events of every type, in every optional-field
//! combination: the hub starts, answers exactly as before, and prices as before.

use crate::helpers::*;
use serde_json::{Value, json};

fn every_kind_of_event() -> Vec<Value> {
    let mut events = vec![
        event(
            "crm",
            "cust-1",
            "customer.upserted",
            json!({ "customer_id": "C-1", "legal_name": "Client GmbH", "tax_id": "DE123", "country": "DE", "currency": "EUR" }),
        ),
        event(
            "crm",
            "cust-2",
            "customer.upserted",
            json!({ "customer_id": "C-2", "legal_name": "Other Ltd", "country": "GB", "currency": "GBP" }),
        ),
        event(
            "erp",
            "fx-1",
            "fx_rate.upserted",
            json!({ "from": "USD", "to": "EUR", "rate": "0.92", "valid_on": "2026-03-01", "source": "ecb" }),
        ),
        rate_card(
            "RC-EUR",
            "EUR",
            &[
                ("consultant", "emea", "150.00", "2026-01-01", None),
                (
                    "manager",
                    "emea",
                    "210.00",
                    "2026-01-01",
                    Some("2026-06-30"),
                ),
            ],
        ),
        rate_card(
            "RC-USD",
            "USD",
            &[("consultant", "emea", "160.00", "2026-01-01", None)],
        ),
        event(
            "psa",
            "cost-worker",
            "cost_rate.upserted",
            json!({ "worker_id": "W-1", "currency": "EUR", "hourly_cost": "80.00", "valid_from": "2026-01-01" }),
        ),
        event(
            "psa",
            "cost-grade",
            "cost_rate.upserted",
            json!({ "grade": "G2", "currency": "EUR", "hourly_cost": "70.00", "valid_from": "2026-01-01", "valid_to": "2026-12-31" }),
        ),
        closed_won("P-1", "EUR", "RC-EUR", "2026-01-01", None),
        closed_won("P-2", "EUR", "RC-USD", "2026-01-01", Some("2026-12-31")),
    ];
    let mut capped = closed_won("P-CAP", "EUR", "RC-EUR", "2026-01-01", None);
    capped["data"]["opportunity_id"] = json!("OPP-CAP");
    capped["data"]["contract"]["billing_model"] = json!("capped_tm");
    capped["data"]["contract"]["cap"] = json!("50000.00");
    capped["data"]["customer"]
        .as_object_mut()
        .unwrap()
        .remove("tax_id");
    let mut fixed = closed_won("P-FIX", "EUR", "RC-EUR", "2026-01-01", Some("2026-09-30"));
    fixed["data"]["opportunity_id"] = json!("OPP-FIX");
    fixed["data"]["contract"]["billing_model"] = json!("fixed_fee");
    fixed["data"]["contract"]["milestones"] = json!([
        { "milestone_id": "M-1", "name": "Kick-off", "amount": "1000.00" },
        { "milestone_id": "M-2", "name": "Go-live", "amount": "4000.00" }
    ]);
    events.extend([capped, fixed]);
    let amend = |id: &str, changes: Value| {
        event(
            "crm",
            id,
            "contract.amended",
            json!({ "contract_id": "K-P-CAP", "effective_from": "2026-04-01", "changes": changes }),
        )
    };
    events.extend([
        amend("amend-cap", json!({ "cap": "60000" })),
        amend("amend-card", json!({ "rate_card_id": "RC-USD" })),
        amend("amend-end", json!({ "end": "2026-11-30" })),
        amend(
            "amend-ms",
            json!({ "milestones": [{ "milestone_id": "M-9", "name": "Extra", "amount": "10" }] }),
        ),
        hired("W-1", "2025-01-01", "emea", "consultant"),
        hired("W-2", "2025-01-01", "emea", "consultant"),
        event(
            "hris",
            "hire-W-3",
            "worker.hired",
            json!({ "worker_id": "W-3", "effective_date": "2026-02-01", "legal_entity": "DE01",
                    "region": "emea", "cost_center": "CC1", "role": "consultant", "grade": "G2" }),
        ),
        event(
            "hris",
            "transfer-W-2",
            "worker.transferred",
            json!({ "worker_id": "W-2", "effective_date": "2026-03-15", "region": "emea", "role": "manager" }),
        ),
        worker_change("W-3", "leave_started", "2026-03-10"),
        worker_change("W-3", "leave_ended", "2026-03-20"),
        worker_change("W-2", "terminated", "2026-05-31"),
        assignment("A-1", "W-1", "P-1", "approved"),
        assignment("A-2", "W-2", "P-1", "approved"),
        assignment("A-3", "W-3", "P-1", "approved"),
        assignment("A-4", "W-1", "P-2", "tentative"),
        assignment("A-5", "W-1", "P-2", "approved"),
        time_entry("t-1", "T-1", "W-1", "2026-03-04", json!("8")),
        time_entry("t-2", "T-2", "W-3", "2026-03-12", json!("4")),
    ]);
    let mut with_role = time_entry("t-3", "T-3", "W-2", "2026-03-16", json!("2.5"));
    with_role["data"]["role"] = json!("manager");
    with_role["data"]["task"] = json!("workshop");
    let mut usd = time_entry("t-4", "T-4", "W-1", "2026-03-05", json!("3"));
    usd["data"]["project_code"] = json!("P-2");
    let mut unbillable = time_entry("t-5", "T-5", "W-1", "2026-03-06", json!("1"));
    unbillable["data"]["billable"] = json!(false);
    let expense = |id: &str, kind: &str| {
        event(
            "psa",
            id,
            kind,
            json!({ "expense_id": "X-1", "worker_id": "W-1", "project_code": "P-1",
                    "spent_on": "2026-03-04", "amount": "120.50", "currency": "USD",
                    "category": "travel", "billable": true }),
        )
    };
    events.extend([
        with_role,
        usd,
        unbillable,
        rejected("t-1-rejected", "T-1", "W-1", "2026-03-04", json!("8")),
        expense("x-1", "expense.approved"),
        expense("x-1-rejected", "expense.rejected"),
        time_entry("t-missing", "T-M", "W-9", "2026-03-04", json!("1")),
        event(
            "psa",
            "ms-1",
            "milestone.reached",
            json!({ "milestone_id": "M-1", "contract_id": "K-P-FIX", "reached_on": "2026-03-10" }),
        ),
        event(
            "erp",
            "inv-1",
            "invoice.status_changed",
            json!({ "invoice_id": "INV-1", "status": "paid", "at": "2026-03-10T10:00:00Z" }),
        ),
        event(
            "payroll",
            "pay-1",
            "payroll.actuals",
            json!({ "worker_id": "W-1", "period": "2026-03", "gross_cost": "5200.00", "currency": "EUR" }),
        ),
    ]);
    events
}

/// What the hub answers about everything it holds.
async fn answers(app: &TestApp, sent: &[Value]) -> Vec<(String, Value)> {
    let mut paths: Vec<String> = sent
        .iter()
        .filter_map(|e| {
            Some(format!(
                "/v1/events/{}/{}",
                e["source"].as_str()?,
                e["id"].as_str()?
            ))
        })
        .collect();
    for project in ["P-1", "P-2", "P-CAP", "P-FIX"] {
        paths.push(format!("/v1/projects/{project}"));
    }
    for list in [
        "/v1/summary",
        "/v1/invoice-lines?limit=1000",
        "/v1/exceptions?limit=1000",
        "/v1/conflicts",
        "/v1/quarantine",
        "/v1/outbound",
        "/v1/dead-letters",
        "/v1/sandbox/erp/lines",
    ] {
        paths.push(list.to_string());
    }
    let mut out = Vec::new();
    for path in paths {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        out.push((path, body));
    }
    out
}

pub async fn a_restart_over_every_kind_of_event_answers_as_before(store: Backend) {
    let app = &mut spawn_app(store).await;
    let mut sent = every_kind_of_event();
    let results = app.send(Value::Array(sent.clone())).await;
    let refused: Vec<&Value> = results
        .iter()
        .filter(|r| r["status"] != "accepted")
        .collect();
    assert!(refused.is_empty(), "every event is valid: {refused:?}");
    // A quarantine, a duplicate and a conflict are part of what the store holds, too.
    let mut broken = time_entry("t-broken", "T-B", "W-1", "2026-03-04", json!("7,5"));
    broken["data"]["task"] = json!("x");
    let mut conflicting = time_entry("t-2", "T-2", "W-3", "2026-03-12", json!("5"));
    conflicting["data"]["task"] = json!("other");
    let results = app
        .send(json!([broken, sent[0].clone(), conflicting]))
        .await;
    assert_eq!(statuses(&results), ["quarantined", "duplicate", "conflict"]);
    sent.push(json!({ "source": "psa", "id": "t-broken" }));
    app.settle().await;
    let before = answers(app, &sent).await;
    let (_, summary) = app.get("/v1/summary").await;
    assert!(summary["lines_posted"].as_u64().unwrap() >= 3, "{summary}");

    app.restart().await;
    let after = answers(app, &sent).await;
    for ((path, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(was, is, "{path} answers as before the restart");
    }

    // Memory was rebuilt from the store: new work prices with the same reference data.
    app.send(json!([
        time_entry("t-after", "T-AFTER", "W-1", "2026-03-09", json!("8")),
        rejected("t-1-rejected-again", "T-1", "W-1", "2026-03-04", json!("8")),
    ]))
    .await;
    app.settle().await;
    let line = &app.lines_of("T-AFTER").await[0];
    assert_eq!(
        (line["rate"].as_str(), line["amount"].as_str()),
        (Some("150"), Some("1200.00"))
    );
    assert_eq!(
        app.lines_of("T-1").await.len(),
        2,
        "the rejection was remembered: no new reversal"
    );
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["conservation_holds"], true, "{summary}");
}

pub async fn a_stored_event_that_no_longer_reads_is_quarantined_and_the_start_goes_on(
    store: Backend,
) {
    use pshub_engine::store::{Commit, IdKind, InboxRow, ReferenceCheck};
    let app = &mut spawn_app(store).await;
    app.with_firm().await;
    // A row as an older release might have stored it: its data no longer parses.
    let engine = app.engine.clone();
    tokio::task::spawn_blocking(move || {
        let store = engine.store();
        let seq = store.reserve_ids(IdKind::Event, 1).unwrap();
        let seen = store.reference_version().unwrap();
        let row = InboxRow {
            seq,
            source: "hris".into(),
            event_id: "cost-old".into(),
            event_type: "cost_rate.upserted".into(),
            correlation_id: "cor-old".into(),
            occurred_at: "2026-03-04T17:02:11.000Z".into(),
            received_at: "2026-03-04T17:02:12.000Z".into(),
            raw: r#"{"id":"cost-old","source":"hris","type":"cost_rate.upserted","data":{"hourly_cost":"80"}}"#.into(),
            data: r#"{"hourly_cost":"80"}"#.into(),
            ref_version: Some(seen + 1),
        };
        store
            .commit(&std::sync::Arc::new(Commit {
                inbox: vec![row],
                reference: Some(ReferenceCheck { seen, to: seen + 1 }),
                ..Commit::default()
            }))
            .unwrap();
    })
    .await
    .unwrap();

    app.restart().await;
    let (_, quarantine) = app.get("/v1/quarantine").await;
    let items = quarantine["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{quarantine}");
    assert_eq!(items[0]["event_id"], "cost-old");
    assert!(
        items[0]["reason"]
            .as_str()
            .unwrap()
            .contains("worker_id or grade")
    );
    let cases = app.exceptions("kind=unreadable_stored_event").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["owner"], "integration");
    // The hub runs on: the firm's work still bills.
    app.send(json!([time_entry(
        "t-on",
        "T-ON",
        "W-1",
        "2026-03-04",
        json!("1")
    )]))
    .await;
    app.settle().await;
    assert_eq!(app.lines_of("T-ON").await.len(), 1);
    // And the next start does not find it again.
    app.restart().await;
    assert_eq!(
        app.exceptions("kind=unreadable_stored_event").await.len(),
        1
    );
}
