//! Systems of record: an event about a domain from a system that does not own it is kept,
//! not applied, and held in an integration case until someone applies or drops it.

use crate::helpers::*;
use pshub_model::Domain;
use serde_json::{Value, json};

/// A termination of `worker` that the PSA sends, though the HRIS owns workers.
fn terminated_by_psa(worker: &str, date: &str) -> Value {
    let mut event = worker_change(worker, "terminated", date);
    event["source"] = json!("psa");
    event
}

pub async fn a_worker_change_from_the_psa_is_held_and_applied_only_when_resolved(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let results = app
        .send(json!([terminated_by_psa("W-1", "2026-03-01")]))
        .await;
    assert_eq!(statuses(&results), ["accepted"]);
    assert!(
        results[0]["reason"]
            .as_str()
            .unwrap()
            .contains("the system of record of worker is hris"),
        "{results:?}"
    );
    let cases = app.exceptions("kind=not_system_of_record").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["owner"], "integration");
    assert_eq!(cases[0]["business_key"], "W-1");
    assert_eq!(cases[0]["correlation_id"], results[0]["correlation_id"]);
    let (_, event) = app.get("/v1/events/psa/terminated-W-1-2026-03-01").await;
    assert_eq!(event["status"], "held", "{event}");

    // Not applied: W-1 still bills after the date the PSA sent.
    app.send(json!([time_entry(
        "t1",
        "T1",
        "W-1",
        "2026-03-04",
        json!("2")
    )]))
    .await;
    app.settle().await;
    assert_eq!(app.lines_of("T1").await.len(), 1);

    // Resolving applies the event as it was sent: W-1 is terminated from 2026-03-01 on.
    let id = cases[0]["id"].as_i64().unwrap();
    let (status, body) = app.post(&format!("/v1/exceptions/{id}/resolve")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["exception"]["state"], "resolved");
    app.settle().await;
    let (_, event) = app.get("/v1/events/psa/terminated-W-1-2026-03-01").await;
    assert_eq!(event["status"], "applied", "{event}");
    app.send(json!([time_entry(
        "t2",
        "T2",
        "W-1",
        "2026-03-05",
        json!("2")
    )]))
    .await;
    app.settle().await;
    assert!(app.lines_of("T2").await.is_empty());
    let held = app.exceptions("owner=pmo&kind=worker_inactive").await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["business_key"], "T2");

    // The change stays applied across a restart (it has its place in the reference order).
    let mut app = app;
    app.restart().await;
    app.send(json!([time_entry(
        "t3",
        "T3",
        "W-1",
        "2026-03-06",
        json!("1")
    )]))
    .await;
    app.settle().await;
    assert!(app.lines_of("T3").await.is_empty());
    assert_eq!(
        app.exceptions("owner=pmo&kind=worker_inactive").await.len(),
        2
    );
}

pub async fn a_dismissed_change_from_a_system_that_does_not_own_it_is_dropped(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([terminated_by_psa("W-2", "2026-03-01")]))
        .await;
    let id = app.exceptions("kind=not_system_of_record").await[0]["id"]
        .as_i64()
        .unwrap();
    let (status, _) = app.post(&format!("/v1/exceptions/{id}/dismiss")).await;
    assert_eq!(status, 200);
    let (_, event) = app.get("/v1/events/psa/terminated-W-2-2026-03-01").await;
    assert_eq!(event["status"], "dropped", "{event}");
    // Sent again, it is the same event: a duplicate, still not applied.
    let again = app
        .send(json!([terminated_by_psa("W-2", "2026-03-01")]))
        .await;
    assert_eq!(statuses(&again), ["duplicate"]);
    app.send(json!([time_entry(
        "t1",
        "T1",
        "W-2",
        "2026-03-04",
        json!("2")
    )]))
    .await;
    app.settle().await;
    assert_eq!(app.lines_of("T1").await.len(), 1);
}

pub async fn the_configured_owner_is_the_one_whose_changes_apply(store: Backend) {
    let mut config = test_config();
    config.owners.insert(Domain::Worker, "psa".into());
    let app = spawn_app_with(store, config).await;
    // The firm's hires come from the HRIS, which no longer owns workers: each is held.
    app.with_firm_unchecked().await;
    let held = app.exceptions("kind=not_system_of_record").await;
    assert_eq!(held.len(), 2, "{held:?}");
    // The PSA's change applies at once.
    let results = app
        .send(json!([terminated_by_psa("W-3", "2026-03-01")]))
        .await;
    assert_eq!(results[0]["reason"], Value::Null, "{results:?}");
    assert_eq!(app.exceptions("kind=not_system_of_record").await.len(), 2);
}
