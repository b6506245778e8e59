//! Listing invoice lines: filters and stable cursor paging.

use crate::helpers::*;
use serde_json::{Value, json};

pub async fn pages_follow_each_other_in_a_stable_order_without_gaps_or_repeats(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let events: Vec<Value> = (1..=7)
        .map(|i| {
            time_entry(
                &format!("p{i}"),
                &format!("P{i}"),
                "W-1",
                "2026-03-04",
                json!("1"),
            )
        })
        .collect();
    app.send(json!(events)).await;
    app.send(json!([time_entry(
        "p8",
        "P8",
        "W-2",
        "2026-03-04",
        json!("1")
    )]))
    .await;
    app.settle().await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/invoice-lines?worker_id=W-1&limit=3".to_string(),
            Some(c) => format!("/v1/invoice-lines?worker_id=W-1&limit=3&cursor={c}"),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200);
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["worker_id"], "W-1");
            seen.push(item["source_id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["P1", "P2", "P3", "P4", "P5", "P6", "P7"]);
    let (_, all) = app
        .get("/v1/invoice-lines?project_code=P-1&status=posted")
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 8);
    assert!(all["next"].is_null());
    let (_, none) = app.get("/v1/invoice-lines?status=pending").await;
    assert!(none["items"].as_array().unwrap().is_empty());
}
