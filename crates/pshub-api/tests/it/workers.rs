//! Worker lifecycle and assignments: the worker master with its history, cases for open
//! assignments a worker leaves behind, versions of assignments, and the steps downstream.

use crate::helpers::*;
use serde_json::{Value, json};

fn change(worker: &str, kind: &str, date: &str, data: Value) -> Value {
    let mut event = worker_change(worker, kind, date);
    for (k, v) in data.as_object().unwrap() {
        event["data"][k] = v.clone();
    }
    event
}

fn booking(id: &str, version: u32, worker: &str, state: &str, end: &str) -> Value {
    event(
        "psa",
        &format!("{id}-v{version}-{state}"),
        "assignment.changed",
        json!({
            "assignment_id": id, "version": version, "worker_id": worker, "project_code": "P-1",
            "role": "consultant", "start": "2026-01-01", "end": end, "hours": "160", "state": state
        }),
    )
}

pub async fn worker_history_has_its_dates_and_hides_personal_fields_from_a_viewer(store: Backend) {
    let app = spawn_app(store).await;
    let results = app
        .send(json!([
            hired("W-1", "2025-01-01", "emea", "consultant"),
            change(
                "W-1",
                "transferred",
                "2026-02-01",
                json!({ "region": "apac", "grade": "G3" })
            ),
            change("W-1", "leave_started", "2026-03-01", json!({})),
            change("W-1", "leave_ended", "2026-03-10", json!({})),
            change("W-1", "terminated", "2026-06-30", json!({})),
        ]))
        .await;
    assert!(results.iter().all(|r| r["reason"].is_null()), "{results:?}");
    let (status, worker) = app.get("/v1/workers/W-1").await;
    assert_eq!(status, 200, "{worker}");
    let history = worker["history"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|h| {
            (
                h["event_type"].as_str().unwrap(),
                h["state"].as_str().unwrap(),
                h["effective_date"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("worker.hired", "active", "2025-01-01"),
            ("worker.transferred", "active", "2026-02-01"),
            ("worker.leave_started", "on_leave", "2026-03-01"),
            ("worker.leave_ended", "active", "2026-03-10"),
            ("worker.terminated", "terminated", "2026-06-30"),
        ]
    );
    assert_eq!(history[0]["region"], "emea");
    assert_eq!(history[1]["region"], "apac");
    assert_eq!(history[1]["grade"], "G3");
    assert_eq!(history[1]["legal_entity"], "DE01");
    assert_eq!(worker["status"], "terminated");
    assert_eq!(worker["name"], "Ada Example");
    assert_eq!(worker["email"], "ada@example.com");
    for role in ["hr", "auditor"] {
        let token = app.token_for(role).await;
        let (_, seen) = app.get_with(&token, "/v1/workers/W-1").await;
        assert_eq!(seen["name"], "Ada Example", "{role}");
    }
    for role in ["viewer", "finance", "pmo"] {
        let token = app.token_for(role).await;
        let (status, seen) = app.get_with(&token, "/v1/workers/W-1").await;
        assert_eq!(status, 200);
        assert_eq!(
            (seen["name"].clone(), seen["email"].clone()),
            (Value::Null, Value::Null),
            "{role}"
        );
        assert_eq!(seen["history"].as_array().unwrap().len(), 5);
        let (_, list) = app.get_with(&token, "/v1/workers").await;
        assert_eq!(list["items"][0]["name"], Value::Null, "{role}");
    }
    let (status, _) = app.get("/v1/workers/W-404").await;
    assert_eq!(status, 404);
}

pub async fn a_termination_and_a_leave_with_open_assignments_open_pmo_cases_naming_them(
    store: Backend,
) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let results = app
        .send(json!([
            worker_change("W-1", "leave_started", "2026-05-01"),
            worker_change("W-2", "terminated", "2026-06-30"),
        ]))
        .await;
    let cases = app
        .exceptions("kind=worker_unavailable_with_open_assignments")
        .await;
    assert_eq!(cases.len(), 2, "{cases:?}");
    let of = |worker: &str| {
        cases
            .iter()
            .find(|c| c["business_key"] == worker)
            .unwrap()
            .clone()
    };
    let (w1, w2) = (of("W-1"), of("W-2"));
    assert_eq!(w1["owner"], "pmo");
    assert!(w1["reason"].as_str().unwrap().contains("A-1"), "{w1}");
    assert!(w2["reason"].as_str().unwrap().contains("A-2"), "{w2}");
    assert_eq!(w1["correlation_id"], results[0]["correlation_id"]);
    let (_, detail) = app.get(&format!("/v1/exceptions/{}", w2["id"])).await;
    let evidence: Value = match &detail["evidence"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    assert_eq!(evidence["assignment_ids"], json!(["A-2"]), "{detail}");

    // An assignment that ended before the termination is not open past it.
    app.send(json!([
        booking("A-OLD", 1, "W-3", "approved", "2026-03-31"),
        hired("W-3", "2025-01-01", "emea", "consultant"),
        worker_change("W-3", "terminated", "2026-04-30"),
    ]))
    .await;
    assert!(
        app.exceptions("kind=worker_unavailable_with_open_assignments")
            .await
            .iter()
            .all(|c| c["business_key"] != "W-3")
    );

    // Each change went downstream: the PSA's resource status, the ERP's costing attributes.
    app.settle().await;
    let (_, resources) = app.get("/v1/sandbox/psa/resources").await;
    let statuses: Vec<(String, String)> = resources["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["worker_id"].as_str().unwrap().into(),
                r["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("W-1", "on_leave"),
        ("W-2", "terminated"),
        ("W-3", "terminated"),
        ("W-1", "active"),
    ] {
        assert!(
            statuses.contains(&(expected.0.into(), expected.1.into())),
            "{statuses:?}"
        );
    }
    let (_, employees) = app.get("/v1/sandbox/erp/employees").await;
    let hires = employees["items"].as_array().unwrap();
    assert_eq!(hires.len(), 3, "one costing update per hire: {employees}");
    assert!(
        hires
            .iter()
            .all(|e| e["legal_entity"] == "DE01" && e["grade"] == "G2")
    );
}

pub async fn a_late_older_assignment_version_neither_undoes_an_approval_nor_revives_a_cancellation(
    store: Backend,
) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        booking("A-7", 2, "W-1", "approved", "2026-12-31"),
        booking("A-7", 1, "W-1", "soft", "2026-12-31"),
        booking("A-8", 3, "W-2", "cancelled", "2026-12-31"),
        booking("A-8", 2, "W-2", "approved", "2026-12-31"),
    ]))
    .await;
    let (_, w1) = app.get("/v1/workers/W-1").await;
    let a7 = w1["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["assignment_id"] == "A-7")
        .unwrap()
        .clone();
    assert_eq!(
        (a7["version"].clone(), a7["state"].clone()),
        (json!(2), json!("approved"))
    );
    let (_, w2) = app.get("/v1/workers/W-2").await;
    let a8 = w2["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["assignment_id"] == "A-8")
        .unwrap()
        .clone();
    assert_eq!(
        (a8["version"].clone(), a8["state"].clone()),
        (json!(3), json!("cancelled"))
    );
    assert!(
        app.exceptions("kind=assignment_version_conflict")
            .await
            .is_empty()
    );

    // The same version with other terms is a conflict, not applied.
    let mut other = booking("A-7", 2, "W-1", "approved", "2026-06-30");
    other["id"] = json!("A-7-v2-again");
    app.send(json!([other])).await;
    let cases = app.exceptions("kind=assignment_version_conflict").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(
        (cases[0]["owner"].clone(), cases[0]["business_key"].clone()),
        (json!("integration"), json!("A-7"))
    );
    let (_, w1) = app.get("/v1/workers/W-1").await;
    let a7 = w1["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["assignment_id"] == "A-7")
        .unwrap()
        .clone();
    assert_eq!(a7["end"], "2026-12-31");
}

pub async fn an_assignment_approved_for_dates_when_the_worker_cannot_work_opens_a_case(
    store: Backend,
) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([worker_change("W-1", "terminated", "2026-12-31")]))
        .await;
    assert!(
        app.exceptions("kind=worker_unavailable_with_open_assignments")
            .await
            .is_empty()
    );
    app.send(json!([
        worker_change("W-2", "terminated", "2026-08-31"),
        booking("A-LATE", 2, "W-2", "approved", "2026-12-31"),
    ]))
    .await;
    let cases = app
        .exceptions("kind=worker_unavailable_with_open_assignments")
        .await;
    let late: Vec<&Value> = cases
        .iter()
        .filter(|c| c["reason"].as_str().unwrap().contains("A-LATE"))
        .collect();
    assert_eq!(late.len(), 1, "{cases:?}");
    assert!(
        late[0]["reason"].as_str().unwrap().contains("2026-09-01"),
        "{:?}",
        late[0]
    );
}

pub async fn a_workers_cost_rate_reaches_the_erp_as_a_dated_cost_price(backend: Backend) {
    let app = spawn_app(backend).await;
    app.with_firm().await;
    let rate = event(
        "psa",
        "cost-w1",
        "cost_rate.upserted",
        json!({ "worker_id": "W-1", "currency": "EUR", "hourly_cost": "80.00", "valid_from": "2026-01-01" }),
    );
    // A grade's rate stays in the hub: it costs each worker of the grade there.
    let grade = event(
        "psa",
        "cost-g2",
        "cost_rate.upserted",
        json!({ "grade": "G2", "currency": "EUR", "hourly_cost": "70.00", "valid_from": "2026-01-01" }),
    );
    app.send(json!([rate, grade])).await;
    app.send(json!([rate])).await;
    app.settle().await;
    let (status, page) = app.get("/v1/sandbox/erp/cost-prices").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "once, however often it is sent: {page}");
    assert_eq!(items[0]["worker_id"], "W-1");
    assert_eq!(items[0]["valid_from"], "2026-01-01");
    assert_eq!(items[0]["hourly_cost"], "80");
    assert_eq!(items[0]["currency"], "EUR");
}
