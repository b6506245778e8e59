//! Bad input gets a clear 4xx or a quarantine with a reason naming the field; never a 5xx.

use crate::helpers::*;
use serde_json::{Value, json};

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("errors are JSON");
    (
        status,
        body["error"]["code"].as_str().unwrap().into(),
        body["error"]["message"].as_str().unwrap().into(),
    )
}

pub async fn bodies_that_are_not_events_are_refused_whole(store: Backend) {
    let app = spawn_app(store).await;
    let cases: [(&str, &str); 5] = [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        ("42", "not_events"),
        ("[{\"id\": \"a\"}, 7]", "not_events"),
        ("\"text\"", "not_events"),
    ];
    for (body, code) in cases {
        let (status, got, message) =
            error_of(app.post_raw("/v1/events", body, Some(&app.token)).await).await;
        assert_eq!((status, got.as_str()), (400, code), "{body}: {message}");
    }
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["events"], 0, "nothing of a refused body is taken");
}

pub async fn oversized_bodies_and_arrays_are_refused_with_413(store: Backend) {
    let app = spawn_app(store).await;
    let huge = format!("[\"{}\"]", "x".repeat(pshub_api::MAX_BODY_BYTES + 10));
    let (status, code, _) =
        error_of(app.post_raw("/v1/events", huge, Some(&app.token)).await).await;
    assert_eq!((status, code.as_str()), (413, "body_too_large"));
    let many: Vec<Value> = (0..10_001).map(|i| json!({ "id": i })).collect();
    let (status, code, message) = error_of(
        app.post_raw("/v1/events", json!(many).to_string(), Some(&app.token))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (413, "too_many_events"));
    assert!(message.contains("10001"));
}

pub async fn a_missing_or_wrong_token_is_refused_with_401_and_health_needs_none(store: Backend) {
    let app = spawn_app(store).await;
    let event = time_entry("x", "X", "W-1", "2026-03-04", json!("1")).to_string();
    let (status, code, message) =
        error_of(app.post_raw("/v1/events", event.clone(), None).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(message.contains("Authorization"));
    let (status, _, message) = error_of(
        app.post_raw("/v1/events", event.clone(), Some("psh_wrong"))
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert!(message.contains("not valid"));
    for path in ["/v1/summary", "/metrics", "/openapi.json", "/v1/exceptions"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let viewer = app.token_for("viewer").await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("pshub_events_received_total")
    );
    let (status, code, _) = error_of(app.post_raw("/v1/events", event, Some(&viewer)).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
}

pub async fn events_that_break_the_contract_are_quarantined_with_the_field_named(store: Backend) {
    let app = spawn_app(store).await;
    let good = time_entry("q0", "Q0", "W-1", "2026-03-04", json!("1"));
    let mut wrong_type = good.clone();
    wrong_type["id"] = json!("q1");
    wrong_type["data"]["hours"] = json!(true);
    let mut missing = good.clone();
    missing["id"] = json!("q2");
    missing["data"].as_object_mut().unwrap().remove("work_date");
    let mut unknown_type = good.clone();
    unknown_type["id"] = json!("q3");
    unknown_type["type"] = json!("time_entry.deleted");
    let mut bad_decimal = good.clone();
    bad_decimal["id"] = json!("q4");
    bad_decimal["data"]["hours"] = json!("7,5");
    let no_id = json!({ "source": "psa", "type": "time_entry.approved" });
    let results = app
        .send(json!([
            wrong_type,
            missing,
            unknown_type,
            bad_decimal,
            no_id,
            good
        ]))
        .await;
    assert_eq!(
        statuses(&results),
        [
            "quarantined",
            "quarantined",
            "quarantined",
            "quarantined",
            "quarantined",
            "accepted"
        ]
    );
    let reasons: Vec<&str> = results
        .iter()
        .take(5)
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons[0],
        "data.hours: expected a decimal number (string or number), got true"
    );
    assert_eq!(reasons[1], "data.work_date: is required");
    assert_eq!(
        reasons[2],
        "type: 'time_entry.deleted' is not an event type of schema version 1"
    );
    assert_eq!(reasons[3], "data.hours: '7,5' is not a decimal number");
    assert_eq!(reasons[4], "id: is required");
    assert!(results[4]["id"].is_null());

    let (status, listed) = app.get("/v1/quarantine").await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 5);
    assert_eq!(listed["items"][0]["field"], "data.hours");
    let (_, event) = app.get("/v1/events/psa/q2").await;
    assert_eq!(event["status"], "quarantined");
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["quarantined"], 5);
    assert_eq!(summary["events"], 6);
}

pub async fn a_quarantined_event_can_be_corrected_and_replayed_once(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let mut broken = time_entry("psa-fix", "FIX1", "W-1", "2026-03-04", json!("7,5"));
    app.send(json!([broken.clone()])).await;
    let (_, listed) = app.get("/v1/quarantine").await;
    let id = listed["items"][0]["id"].as_i64().unwrap();

    let still_broken = app
        .post_raw(&format!("/v1/quarantine/{id}/replay"), "", Some(&app.token))
        .await;
    assert_eq!(still_broken.status(), 422);
    broken["data"]["hours"] = json!("7.5");
    let replayed = app
        .post_raw(
            &format!("/v1/quarantine/{id}/replay"),
            broken.to_string(),
            Some(&app.token),
        )
        .await;
    assert_eq!(replayed.status(), 200);
    let body: Value = replayed.json().await.unwrap();
    assert_eq!(body["result"]["status"], "accepted");
    let again = app
        .post_raw(
            &format!("/v1/quarantine/{id}/replay"),
            broken.to_string(),
            Some(&app.token),
        )
        .await;
    assert_eq!(again.status(), 409);
    app.settle().await;
    assert_eq!(app.lines_of("FIX1").await.len(), 1);
    let (_, event) = app.get("/v1/events/psa/psa-fix").await;
    assert_eq!(event["status"], "applied");
    let (_, summary) = app.get("/v1/summary").await;
    // The with_firm events, the broken one and its corrected replay: each a receipt.
    assert_eq!(
        (summary["quarantined"].clone(), summary["accepted"].clone()),
        (json!(1), json!(7))
    );
    assert_eq!(summary["events"], 8);
}

pub async fn bad_parameters_and_unknown_routes_are_4xx(store: Backend) {
    let app = spawn_app(store).await;
    for path in [
        "/v1/invoice-lines?limit=0",
        "/v1/invoice-lines?limit=1001",
        "/v1/invoice-lines?limit=ten",
        "/v1/invoice-lines?cursor=abc",
        "/v1/invoice-lines?status=paid",
        "/v1/exceptions?owner=sales",
        "/v1/exceptions?state=closed",
        "/v1/exceptions/abc",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(':'),
            "{path}: names the parameter"
        );
    }
    assert_eq!(app.get("/v1/exceptions/999").await.0, 404);
    assert_eq!(app.get("/v1/events/psa/nothing").await.0, 404);
    assert_eq!(app.get("/v1/nothing").await.0, 404);
    assert_eq!(app.post("/v1/exceptions/999/resolve").await.0, 404);
    assert_eq!(app.post("/v1/dead-letters/line-999/replay").await.0, 404);
    assert_eq!(app.post("/v1/dead-letters/999/replay").await.0, 400);
}

pub async fn the_viewer_role_sees_no_personal_data(store: Backend) {
    let app = spawn_app(store).await;
    app.send(json!([hired("W-1", "2025-01-01", "emea", "consultant")]))
        .await;
    let (_, as_admin) = app.get("/v1/events/hris/hire-W-1").await;
    assert_eq!(as_admin["data"]["email"], "ada@example.com");
    let viewer = app.token_for("viewer").await;
    let answer: Value = app
        .client
        .get(format!("{}/v1/events/hris/hire-W-1", app.address))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["data"]["worker_id"], "W-1");
    assert!(
        answer["data"].get("email").is_none() && answer["data"].get("name").is_none(),
        "{answer}"
    );
}
