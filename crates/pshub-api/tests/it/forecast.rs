//! The forecast: approved assignments only, recomputed on each change, and the margin floor.

use crate::helpers::*;
use serde_json::{Value, json};

fn booking(id: &str, version: u32, worker: &str, state: &str) -> Value {
    event(
        "psa",
        &format!("{id}-v{version}"),
        "assignment.changed",
        json!({
            "assignment_id": id, "version": version, "worker_id": worker, "project_code": "P-1",
            "role": "consultant", "start": "2026-01-01", "end": "2026-12-31", "hours": "160", "state": state
        }),
    )
}

fn cost_rate(id: &str, subject: Value, hourly: &str) -> Value {
    let mut data = json!({ "currency": "EUR", "hourly_cost": hourly, "valid_from": "2025-01-01" });
    for (k, v) in subject.as_object().unwrap() {
        data[k] = v.clone();
    }
    event("psa", id, "cost_rate.upserted", data)
}

pub async fn the_forecast_counts_approved_assignments_only_and_follows_each_change(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    // No cost rate yet: both approved assignments are left out, with the reason.
    let (status, forecast) = app.get("/v1/projects/P-1/forecast").await;
    assert_eq!(status, 200, "{forecast}");
    assert_eq!(forecast["left_out"], 2);
    assert_eq!(forecast["assignments"][0]["cost"], Value::Null);
    assert!(
        forecast["assignments"][0]["missing"][0]
            .as_str()
            .unwrap()
            .contains("no cost rate")
    );
    assert_eq!(forecast["revenue"], "0.00");
    assert_eq!(forecast["margin_pct"], Value::Null);

    app.send(json!([
        cost_rate("cost-g2", json!({ "grade": "G2" }), "100.00"),
        hired("W-3", "2025-01-01", "emea", "consultant"),
        booking("A-3", 1, "W-3", "soft"),
    ]))
    .await;
    let (_, forecast) = app.get("/v1/projects/P-1/forecast").await;
    // 2 x 160 h x 150.00 revenue, 2 x 160 h x 100.00 cost; the soft booking counts for nothing.
    assert_eq!(
        (
            forecast["revenue"].clone(),
            forecast["cost"].clone(),
            forecast["margin"].clone(),
            forecast["margin_pct"].clone(),
            forecast["left_out"].clone()
        ),
        (
            json!("48000.00"),
            json!("32000.00"),
            json!("16000.00"),
            json!("33.33"),
            json!(0)
        ),
        "{forecast}"
    );
    let ids: Vec<&str> = forecast["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["assignment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A-1", "A-2"]);
    assert_eq!(forecast["currency"], "EUR");

    // W-3's own cost rate beats the grade's; approving A-3 takes the margin under the floor.
    app.send(json!([
        cost_rate("cost-w3", json!({ "worker_id": "W-3" }), "200.00"),
        booking("A-3", 2, "W-3", "approved"),
    ]))
    .await;
    let (_, forecast) = app.get("/v1/projects/P-1/forecast").await;
    assert_eq!(
        (forecast["cost"].clone(), forecast["margin_pct"].clone()),
        (json!("64000.00"), json!("11.11"))
    );
    let cases = app.exceptions("kind=margin_below_floor").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(
        (
            cases[0]["owner"].clone(),
            cases[0]["business_key"].clone(),
            cases[0]["state"].clone()
        ),
        (json!("pmo"), json!("P-1"), json!("open"))
    );
    assert!(
        cases[0]["reason"].as_str().unwrap().contains("11.11%"),
        "{:?}",
        cases[0]
    );

    // Still under: the one case is updated, not doubled.
    app.send(json!([booking("A-3", 3, "W-3", "approved")]))
        .await;
    assert_eq!(app.exceptions("kind=margin_below_floor").await.len(), 1);

    // Cancelled, the margin recovers and the case resolves by itself.
    app.send(json!([booking("A-3", 4, "W-3", "cancelled")]))
        .await;
    let cases = app.exceptions("kind=margin_below_floor").await;
    assert_eq!(cases[0]["state"], "resolved", "{cases:?}");
    let (_, forecast) = app.get("/v1/projects/P-1/forecast").await;
    assert_eq!(forecast["margin_pct"], "33.33");
    let (status, _) = app.get("/v1/projects/P-404/forecast").await;
    assert_eq!(status, 404);
}

pub async fn lists_show_what_the_hub_knows_paged_and_filtered(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        event("erp", "fx-1", "fx_rate.upserted", json!({ "from": "EUR", "to": "USD", "rate": "1.085", "valid_on": "2026-03-01", "source": "ecb" })),
        event("erp", "fx-2", "fx_rate.upserted", json!({ "from": "USD", "to": "EUR", "rate": "0.92", "valid_on": "2026-03-01", "source": "ecb" })),
        booking("A-3", 1, "W-2", "soft"),
    ]))
    .await;
    let (_, projects) = app.get("/v1/projects").await;
    assert_eq!(projects["items"][0]["project_code"], "P-1");
    assert_eq!(projects["items"][0]["hub_customer_id"], "CUS-000001");
    let (_, cards) = app.get("/v1/rate-cards").await;
    assert_eq!(cards["items"][0]["rate_card_id"], "RC-EUR");
    let row = &cards["items"][0]["rates"][0];
    assert_eq!(
        (
            row["role"].clone(),
            row["region"].clone(),
            row["valid_from"].clone(),
            row["valid_to"].clone()
        ),
        (
            json!("consultant"),
            json!("emea"),
            json!("2026-01-01"),
            Value::Null
        )
    );
    let rate: rust_decimal::Decimal = row["rate"].as_str().unwrap().parse().unwrap();
    assert_eq!(rate, rust_decimal::Decimal::from(150));
    let (_, fx) = app.get("/v1/fx-rates?from=USD").await;
    assert_eq!(fx["items"].as_array().unwrap().len(), 1, "{fx}");
    assert_eq!(fx["items"][0]["to"], "EUR");
    let (status, body) = app.get("/v1/fx-rates?from=EURO").await;
    assert_eq!(status, 400, "{body}");
    let (_, mine) = app.get("/v1/assignments?worker_id=W-2").await;
    let ids: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["assignment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A-2", "A-3"]);
    let (_, first) = app.get("/v1/assignments?project_code=P-1&limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next"]
        .as_str()
        .expect("a full page has a next cursor")
        .to_string();
    let (_, rest) = app
        .get(&format!(
            "/v1/assignments?project_code=P-1&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["next"], Value::Null);
}

pub async fn hours_beyond_an_assignment_still_bill_and_open_one_pmo_case(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    // A-1 books 160 hours; seven days of 24 make 168.
    let entries: Vec<Value> = (1..=7)
        .map(|day| {
            time_entry(
                &format!("h{day}"),
                &format!("H{day}"),
                "W-1",
                &format!("2026-03-0{day}"),
                json!("24"),
            )
        })
        .collect();
    app.send(Value::Array(entries[..6].to_vec())).await;
    assert!(
        app.exceptions("kind=hours_over_assignment")
            .await
            .is_empty()
    );
    app.send(Value::Array(entries[6..].to_vec())).await;
    app.send(json!([time_entry(
        "h8",
        "H8",
        "W-1",
        "2026-03-08",
        json!("1")
    )]))
    .await;
    app.settle().await;
    for day in 1..=8 {
        assert_eq!(
            app.lines_of(&format!("H{day}")).await.len(),
            1,
            "H{day} bills"
        );
    }
    let cases = app.exceptions("kind=hours_over_assignment").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(
        (cases[0]["owner"].clone(), cases[0]["business_key"].clone()),
        (json!("pmo"), json!("A-1"))
    );
    assert!(
        cases[0]["reason"].as_str().unwrap().contains("168"),
        "{:?}",
        cases[0]
    );
}
