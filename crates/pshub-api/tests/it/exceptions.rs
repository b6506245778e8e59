//! Exception cases: owners, states, actions and who may take them.

use crate::helpers::*;
use serde_json::json;

pub async fn a_dismissed_case_is_written_off_and_cannot_be_resolved(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        worker_change("W-1", "terminated", "2026-03-01"),
        time_entry("d1", "D1", "W-1", "2026-03-04", json!("2"))
    ]))
    .await;
    let id = app.exceptions("owner=pmo&kind=worker_inactive").await[0]["id"]
        .as_i64()
        .unwrap();

    let (status, body) = app.post(&format!("/v1/exceptions/{id}/acknowledge")).await;
    assert_eq!(
        (status, body["exception"]["state"].clone()),
        (200, json!("acknowledged"))
    );
    let (status, body) = app.post(&format!("/v1/exceptions/{id}/dismiss")).await;
    assert_eq!(
        (status, body["exception"]["state"].clone()),
        (200, json!("dismissed"))
    );
    let (status, body) = app.post(&format!("/v1/exceptions/{id}/resolve")).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "wrong_state");
    assert!(app.lines_of("D1").await.is_empty());
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["written_off_value"], json!({ "EUR": "300.00" }));
    assert_eq!(summary["held_value"], json!({ "EUR": "0.00" }));
    assert_eq!(summary["conservation_holds"], json!(true));
}

pub async fn a_rejection_withdraws_the_case_that_held_the_entry(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        worker_change("W-1", "terminated", "2026-03-01"),
        time_entry("w1", "W1E", "W-1", "2026-03-04", json!("2"))
    ]))
    .await;
    app.send(json!([rejected(
        "w1-r",
        "W1E",
        "W-1",
        "2026-03-04",
        json!("2")
    )]))
    .await;
    let cases = app.exceptions("owner=pmo&kind=worker_inactive").await;
    assert_eq!(cases[0]["state"], "dismissed");
    assert!(
        cases[0]["resolution"]
            .as_str()
            .unwrap()
            .contains("rejected")
    );
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["approved_value"], json!({}));
}

pub async fn only_the_owning_team_or_an_admin_may_act_on_a_case(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        worker_change("W-1", "terminated", "2026-03-01"),
        time_entry("r1", "R1", "W-1", "2026-03-04", json!("2"))
    ]))
    .await;
    let id = app.exceptions("owner=pmo&kind=worker_inactive").await[0]["id"]
        .as_i64()
        .unwrap();
    let finance = app.token_for("finance").await;
    let refused = app
        .post_raw(&format!("/v1/exceptions/{id}/dismiss"), "", Some(&finance))
        .await;
    assert_eq!(refused.status(), 403);
    let pmo = app.token_for("pmo").await;
    let allowed = app
        .post_raw(&format!("/v1/exceptions/{id}/dismiss"), "", Some(&pmo))
        .await;
    assert_eq!(allowed.status(), 200);
}

pub async fn a_case_resolved_into_another_failure_is_handed_over_to_its_owner(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([time_entry(
        "h1",
        "H1",
        "W-404",
        "2026-03-04",
        json!("2")
    )]))
    .await;
    let hr_case = app.exceptions("owner=hr").await[0]["id"].as_i64().unwrap();
    // The worker appears, but has no approved assignment yet: the case moves to the PMO.
    app.send(json!([hired("W-404", "2025-01-01", "emea", "consultant")]))
        .await;
    let (status, body) = app.post(&format!("/v1/exceptions/{hr_case}/resolve")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"]["result"], "handed_over");
    let pmo = app.exceptions("owner=pmo&state=open").await;
    assert_eq!(pmo.len(), 1);
    assert_eq!(pmo[0]["kind"], "no_approved_assignment");
    assert_eq!(pmo[0]["business_key"], "H1");
}

pub async fn actions_record_who_acted_and_their_note_on_the_timeline(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        worker_change("W-1", "terminated", "2026-03-01"),
        time_entry("n1", "N1", "W-1", "2026-03-04", json!("2"))
    ]))
    .await;
    let case = app.exceptions("owner=pmo&kind=worker_inactive").await[0].clone();
    let id = case["id"].as_i64().unwrap();
    let pmo = app.token_for("pmo").await;
    let response = app
        .post_raw(
            &format!("/v1/exceptions/{id}/acknowledge"),
            json!({ "note": "asking the manager" }).to_string(),
            Some(&pmo),
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .post_raw(
            &format!(
                "/v1/exceptions/{id}/dismiss?note=worked%20after%20leaving%3B%20not%20billable"
            ),
            "",
            Some(&pmo),
        )
        .await;
    assert_eq!(response.status(), 200);

    let correlation = case["correlation_id"].as_str().unwrap();
    let (_, timeline) = app.get(&format!("/v1/transactions/{correlation}")).await;
    let acted: Vec<&serde_json::Value> = timeline["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.get("actor").is_some())
        .collect();
    assert_eq!(acted.len(), 2, "{timeline}");
    for step in &acted {
        assert_eq!(step["actor"]["name"], "test pmo", "{step}");
        assert_eq!(step["actor"]["role"], "pmo");
        assert!(step["actor"]["token_id"].is_i64(), "{step}");
    }
    assert!(
        acted[0]["detail"]
            .as_str()
            .unwrap()
            .contains("asking the manager"),
        "{}",
        acted[0]
    );
    assert!(
        acted[1]["detail"]
            .as_str()
            .unwrap()
            .contains("worked after leaving; not billable"),
        "{}",
        acted[1]
    );

    // A note longer than a note is refused, naming the limit.
    let (status, body) = app
        .post_json(
            &format!("/v1/exceptions/{id}/acknowledge"),
            json!({ "note": "x".repeat(5000) }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}
