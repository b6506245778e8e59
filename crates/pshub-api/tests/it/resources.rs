//! The trusted resource view: identity from the HRIS, availability from the PSA, costing
//! from the cost rates; a field the PSA and the HRIS disagree on is flagged with each
//! source; `resource.changed` reaches a masked target without names or emails.

use crate::helpers::*;
use pshub_engine::config::Masking;
use serde_json::{Value, json};

fn availability(id: &str, worker: &str, hours: &str, region: &str) -> Value {
    event(
        "psa",
        id,
        "availability.changed",
        json!({ "worker_id": worker, "from": "2026-03-01", "to": "2026-03-31",
                "hours_per_week": hours, "region": region, "role": "consultant" }),
    )
}

pub async fn the_view_reconciles_its_sources_flags_disagreements_and_hides_names_from_masked_targets(
    store: Backend,
) {
    let mut config = test_config();
    config
        .masking
        .insert("warehouse".into(), Masking::default());
    config.masking.insert(
        "people".into(),
        Masking {
            allow: vec!["name".into(), "email".into()],
            ..Masking::default()
        },
    );
    let app = spawn_app_with(store, config).await;
    app.with_firm().await;
    let results = app
        .send(json!([
            availability("av-1", "W-1", "20", "apac"),
            event(
                "psa",
                "cost-w1",
                "cost_rate.upserted",
                json!({ "worker_id": "W-1", "currency": "EUR", "hourly_cost": "95.00", "valid_from": "2025-01-01" })
            ),
            time_entry("r1", "R1", "W-1", "2026-03-02", json!("8")),
        ]))
        .await;
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );
    app.settle().await;

    let (status, view) = app.get("/v1/resources/W-1?month=2026-03").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (
            view["region"].clone(),
            view["legal_entity"].clone(),
            view["status"].clone(),
            view["classification"].clone(),
            view["name"].clone()
        ),
        (
            json!("emea"),
            json!("DE01"),
            json!("active"),
            json!("employee"),
            json!("Ada Example")
        ),
        "{view}"
    );
    // The HRIS's region stands; the PSA's is flagged beside it.
    assert_eq!(
        view["disagreements"],
        json!([{ "field": "region", "values": [
            { "source": "hris", "value": "emea" }, { "source": "psa", "value": "apac" }
        ] }]),
        "{view}"
    );
    // 22 working days in March 2026 at 20 h a week (4 h a day), 8 h approved.
    assert_eq!(
        (
            view["capacity_hours"].clone(),
            view["capacity_source"].clone(),
            view["approved_hours"].clone(),
            view["utilization_pct"].clone()
        ),
        (json!("88"), json!("psa"), json!("8"), json!("9.09"))
    );
    assert_eq!(
        view["cost_rate"],
        json!({ "currency": "EUR", "hourly_cost": "95", "of": "worker" })
    );
    assert_eq!(view["open_assignments"][0]["assignment_id"], "A-1");
    assert_eq!(view["sources"]["availability"], "psa");

    // W-2: no availability sent, so the default week of 40 h over the 22 days.
    let (_, other) = app.get("/v1/resources/W-2?month=2026-03").await;
    assert_eq!(
        (
            other["capacity_hours"].clone(),
            other["capacity_source"].clone(),
            other["disagreements"].clone()
        ),
        (json!("176"), json!("region"), json!([]))
    );
    let viewer = app.token_for("viewer").await;
    let (_, hidden) = app.get_with(&viewer, "/v1/resources/W-1").await;
    assert_eq!(hidden["name"], Value::Null, "{hidden}");

    let (_, listed) = app.get("/v1/resources?region=emea&month=2026-03").await;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["worker_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["W-1", "W-2"]);
    let (_, none) = app.get("/v1/resources?legal_entity=US01").await;
    assert_eq!(none["items"], json!([]));
    let (status, _) = app.get("/v1/resources/W-404").await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/v1/resources/W-1?month=March").await;
    assert_eq!(status, 400);

    // Each change is on the outbound stream; names only where the policy allows them.
    let (_, stream) = app
        .get("/v1/outbound?type=resource.changed&limit=1000")
        .await;
    let items = stream["items"].as_array().unwrap();
    let hire = items
        .iter()
        .find(|e| e["data"]["worker_id"] == "W-1" && e["data"]["name"].is_string())
        .unwrap_or_else(|| panic!("no W-1 change with its name: {stream}"));
    assert_eq!(hire["data"]["email"], "ada@example.com");
    assert!(
        items
            .iter()
            .any(|e| e["data"]["disagreements"][0]["field"] == "region"),
        "the availability change is published: {stream}"
    );
    let (_, warehouse) = app
        .get("/v1/outbound?type=resource.changed&target=warehouse&limit=1000")
        .await;
    let seen = warehouse["items"].as_array().unwrap();
    assert_eq!(seen.len(), items.len());
    for event in seen {
        assert!(event["data"].get("name").is_none(), "{event}");
        assert!(event["data"].get("email").is_none(), "{event}");
        assert!(event["data"]["worker_id"].is_string());
    }
    let (_, people) = app
        .get("/v1/outbound?type=resource.changed&target=people&limit=1000")
        .await;
    assert!(
        people["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["data"]["name"] == "Ada Example"),
        "{people}"
    );
}
