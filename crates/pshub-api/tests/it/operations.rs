//! Operations: retries and dead letters, timelines, health, metrics, the OpenAPI document.

use crate::helpers::*;
use pshub_connectors::sandbox::Faults;
use serde_json::{Value, json};

pub async fn technical_failures_retry_then_dead_letter_and_a_replay_posts_once(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.erp_faults(failing_erp());
    app.send(json!([time_entry(
        "dl1",
        "DL1",
        "W-1",
        "2026-03-04",
        json!("1")
    )]))
    .await;
    app.settle().await;
    let (_, letters) = app.get("/v1/dead-letters").await;
    let items = letters["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{letters}");
    assert_eq!(
        items[0]["id"],
        format!("line-{}", app.lines_of("DL1").await[0]["id"])
    );
    assert_eq!(items[0]["attempts"], 4, "one attempt and three retries");
    assert!(items[0]["last_error"].as_str().unwrap().contains("503"));
    assert_eq!(app.lines_of("DL1").await[0]["status"], "failed");
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["undelivered_value"], json!({ "EUR": "150.00" }));
    assert_eq!(summary["conservation_holds"], json!(true));
    assert_eq!(
        summary["straight_through_rate"].as_f64(),
        Some(0.0),
        "a line that never reached the ERP went through nothing"
    );
    // The dead letter is a case for the integration team, with its attempt history.
    let cases = app.exceptions("kind=delivery_failed").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["owner"], "integration");
    assert_eq!(
        cases[0]["evidence"]["attempts"].as_array().unwrap().len(),
        4
    );
    let (_, event) = app.get("/v1/events/psa/dl1").await;
    assert_eq!(event["status"], "held");

    app.erp_faults(Faults::default());
    let id = items[0]["id"].as_str().unwrap().to_string();
    let (status, _) = app.post(&format!("/v1/dead-letters/{id}/replay")).await;
    assert_eq!(status, 200);
    let (status, _) = app.post(&format!("/v1/dead-letters/{id}/replay")).await;
    assert_eq!(status, 409, "no longer a dead letter");
    app.settle().await;
    assert_eq!(app.lines_of("DL1").await[0]["status"], "posted");
    assert_eq!(app.sandbox.line_count(), 1);
    let (_, letters) = app.get("/v1/dead-letters").await;
    assert!(letters["items"].as_array().unwrap().is_empty());
}

pub async fn a_transaction_timeline_shows_each_step_and_the_outcome(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let mut entry = time_entry("tl1", "TL1", "W-1", "2026-03-04", json!("1"));
    entry["correlation_id"] = json!("corr-42");
    app.erp_faults(failing_erp());
    app.send(json!([entry])).await;
    let engine = app.engine.clone();
    tokio::task::spawn_blocking(move || engine.deliver_due(10).unwrap())
        .await
        .unwrap();
    app.erp_faults(Faults::default());
    app.settle().await;
    let (status, timeline) = app.get("/v1/transactions/corr-42").await;
    assert_eq!(status, 200);
    assert_eq!(timeline["outcome"], "completed");
    let steps: Vec<&str> = timeline["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["received", "line created", "attempt failed", "posted"]
    );
    assert_eq!(timeline["lines"][0]["attempts"], 2);
    assert_eq!(app.get("/v1/transactions/unknown").await.0, 404);
}

pub async fn health_metrics_and_the_openapi_document_answer(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        time_entry("m1", "M1", "W-1", "2026-03-04", json!("1")),
        time_entry("m1", "M1", "W-1", "2026-03-04", json!("1"))
    ]))
    .await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pshub_events_duplicate_total 1"),
        "{metrics}"
    );
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/events"]["post"].is_object());
    let (_, systems) = app.get("/v1/systems").await;
    assert_eq!(systems["erp"]["kind"], "erp");
    assert_eq!(systems["erp"]["target"]["kind"], "sandbox");
    assert_eq!(systems["erp"]["breaker"]["state"], "closed");
    assert_eq!(systems["psa"]["kind"], "psa");
    assert_eq!(systems["hub"]["kind"], "outbound");
    // Senders too, with the domains each owns and when it was last seen.
    assert_eq!(systems["erp"]["roles"], json!(["source", "target"]));
    assert_eq!(systems["erp"]["owns"], json!(["fx", "invoice_status"]));
    assert_eq!(systems["hris"]["roles"], json!(["source"]));
    assert_eq!(systems["hris"]["owns"], json!(["worker"]));
    assert_eq!(systems["payroll"]["last_seen"], Value::Null);
    assert!(systems["psa"]["last_seen"].is_string(), "{systems}");
}

pub async fn a_closed_deal_is_pending_until_its_project_is_provisioned_in_the_erp(store: Backend) {
    let app = spawn_app(store).await;
    app.erp_faults(failing_erp());
    app.send(json!([closed_won(
        "P-1",
        "EUR",
        "RC-EUR",
        "2026-01-01",
        None
    )]))
    .await;
    let engine = app.engine.clone();
    tokio::task::spawn_blocking(move || engine.deliver_due(10).unwrap())
        .await
        .unwrap();
    let (_, event) = app.get("/v1/events/crm/won-P-1").await;
    assert_eq!(event["status"], "pending");
    let steps: Vec<(String, String)> = event["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["operation"].as_str().unwrap().into(),
                s["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        steps[..2],
        [
            ("opportunity_to_project.psa".into(), "done".into()),
            ("opportunity_to_project.erp".into(), "pending".into())
        ],
        "the PSA answered; the ERP step waits for its turn"
    );
    app.erp_faults(Faults::default());
    app.settle().await;
    let (_, event) = app.get("/v1/events/crm/won-P-1").await;
    assert_eq!(event["status"], "applied");
    assert!(
        event["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "done"),
        "{event}"
    );
}

pub async fn every_flow_publishes_its_business_events_masked_per_target(store: Backend) {
    use pshub_engine::config::Masking;
    let mut config = test_config();
    config.masking.insert(
        "crm".into(),
        Masking {
            drop: vec!["email".into()],
            hash: vec!["name".into()],
            mask: vec!["cost_center".into()],
            ..Masking::default()
        },
    );
    let app = spawn_app_with(store, config).await;
    app.with_firm().await;
    app.send(json!([
        time_entry("o1", "O1", "W-1", "2026-03-04", json!("2")),
        time_entry("o2", "O2", "W-404", "2026-03-04", json!("2")),
    ]))
    .await;
    app.settle().await;
    // Once its line is posted, the invoice's status is news.
    app.send(json!([event(
        "erp",
        "inv",
        "invoice.status_changed",
        json!({ "invoice_id": "INV-P-1-2026-03", "status": "sent", "at": "2026-04-01T09:00:00Z" })
    )]))
    .await;
    app.settle().await;
    let (_, all) = app.get("/v1/outbound?limit=1000").await;
    let types: std::collections::BTreeSet<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for expected in [
        "project.provisioned",
        "worker.changed",
        "assignment.changed",
        "invoice_line.posted",
        "invoice.status_changed",
        "exception.opened",
    ] {
        assert!(
            types.contains(expected),
            "{expected} missing from {types:?}"
        );
    }
    let ids: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order");
    let (_, line) = app.get("/v1/outbound?type=invoice_line.posted").await;
    assert_eq!(line["items"][0]["data"]["source_id"], "O1");
    assert!(line["items"][0]["data"]["erp_id"].is_string());
    assert_eq!(line["items"][0]["data"]["invoice_id"], "INV-P-1-2026-03");
    let (_, opened) = app.get("/v1/outbound?type=exception.opened").await;
    assert_eq!(opened["items"][0]["data"]["kind"], "unknown_worker");

    // The worker's change as the CRM may see it, and as it is.
    let (_, as_is) = app.get("/v1/outbound?type=worker.changed").await;
    assert_eq!(as_is["items"][0]["data"]["name"], "Ada Example");
    let (_, for_crm) = app.get("/v1/outbound?type=worker.changed&target=crm").await;
    let data = &for_crm["items"][0]["data"];
    assert!(data.get("email").is_none(), "{data}");
    assert!(
        data["name"].as_str().unwrap().starts_with("sha256:"),
        "{data}"
    );
    assert_eq!(data["cost_center"], "***");
    assert_eq!(data["region"], "emea");
    let viewer = app.token_for("viewer").await;
    let (_, seen) = app
        .get_with(&viewer, "/v1/outbound?type=worker.changed")
        .await;
    assert!(seen["items"][0]["data"].get("name").is_none(), "{seen}");
    let (status, _) = app.get("/v1/outbound?target=nowhere").await;
    assert_eq!(status, 400);
}

/// The answer schema of `method path` in the document.
fn answer_schema(doc: &Value, method: &str, path: &str) -> Value {
    doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"].clone()
}

pub async fn the_openapi_document_describes_every_event_and_the_answers_as_they_are(
    store: Backend,
) {
    use pshub_api::openapi::{check, schema};
    use pshub_connectors::sandbox::{FirmSpec, SimulatedFirm};
    let app = spawn_app(store).await;
    let (_, doc) = app.get("/openapi.json").await;
    // Every event of a simulated month, of every type, fits its type's schema.
    let firm = SimulatedFirm::new(FirmSpec {
        workers: 20,
        projects: 12,
        entries: 600,
        contracts: true,
        ..FirmSpec::default()
    });
    let mut events: Vec<Value> = firm.reference_events();
    events.extend(firm.work_events());
    events.extend(firm.invoice_events());
    let mut types = std::collections::BTreeSet::new();
    for event in &events {
        check(&doc, &schema("Event"), event, "event").unwrap_or_else(|e| panic!("{e}: {event}"));
        types.insert(event["type"].as_str().unwrap().to_string());
    }
    assert!(types.len() >= 12, "{types:?}");
    // Answers of the routes, as the hub gives them.
    app.with_firm().await;
    let results = app
        .send(json!([
            time_entry("s1", "S1", "W-1", "2026-03-04", json!("2")),
            time_entry("s2", "S2", "W-404", "2026-03-04", json!("1"))
        ]))
        .await;
    app.settle().await;
    for result in &results {
        check(&doc, &schema("IngestResult"), result, "result").unwrap();
    }
    let (status, loaded) = app
        .post_payroll(
            "march.csv",
            "worker_id,period,gross_cost,currency\nW-1,2026-03,400.00,EUR\nW-2,2026-03,-1,EUR\n",
        )
        .await;
    assert_eq!(status, 200, "{loaded}");
    check(&doc, &schema("PayrollLoaded"), &loaded, "payroll").unwrap_or_else(|e| panic!("{e}"));
    for (path, query) in [
        ("/v1/invoice-lines", ""),
        ("/v1/exceptions", ""),
        ("/v1/conflicts", ""),
        ("/v1/quarantine", ""),
        ("/v1/dead-letters", ""),
        ("/v1/outbound", ""),
    ] {
        let (status, body) = app.get(&format!("{path}{query}")).await;
        assert_eq!(status, 200, "{path}");
        check(&doc, &answer_schema(&doc, "get", path), &body, path)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    app.send(json!([event(
        "erp",
        "inv-s",
        "invoice.status_changed",
        json!({ "invoice_id": "INV-P-1-2026-03", "status": "sent", "at": "2026-04-01T09:00:00Z" })
    )]))
    .await;
    for (path, route) in [
        ("/v1/events/psa/s1", "/v1/events/{source}/{id}"),
        ("/v1/projects/P-1", "/v1/projects/{project_code}"),
        (
            "/v1/projects/P-1/forecast",
            "/v1/projects/{project_code}/forecast",
        ),
        (
            "/v1/projects/P-1/cost-variance?period=2026-03",
            "/v1/projects/{project_code}/cost-variance",
        ),
        ("/v1/projects", "/v1/projects"),
        ("/v1/resources?month=2026-03", "/v1/resources"),
        ("/v1/reports/leakage?period=2026-03", "/v1/reports/leakage"),
        (
            "/v1/resources/W-1?month=2026-03",
            "/v1/resources/{worker_id}",
        ),
        ("/v1/customers", "/v1/customers"),
        ("/v1/customers/C-1", "/v1/customers/{customer_id}"),
        ("/v1/workers", "/v1/workers"),
        ("/v1/workers/W-1", "/v1/workers/{worker_id}"),
        ("/v1/invoices/INV-P-1-2026-03", "/v1/invoices/{invoice_id}"),
        ("/v1/rate-cards", "/v1/rate-cards"),
        ("/v1/fx-rates", "/v1/fx-rates"),
        ("/v1/assignments", "/v1/assignments"),
        ("/v1/summary", "/v1/summary"),
        ("/v1/systems", "/v1/systems"),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let answer = answer_schema(&doc, "get", route);
        assert_ne!(
            answer,
            json!({ "type": "object" }),
            "{route} is described field by field"
        );
        check(&doc, &answer, &body, path).unwrap_or_else(|e| panic!("{e}"));
    }
    let (status, timeline) = app
        .get(&format!(
            "/v1/transactions/{}",
            results[0]["correlation_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    check(
        &doc,
        &answer_schema(&doc, "get", "/v1/transactions/{correlation_id}"),
        &timeline,
        "transaction",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let case = app.exceptions("kind=unknown_worker").await[0]["id"]
        .as_i64()
        .unwrap();
    let (status, acknowledged) = app
        .post(&format!("/v1/exceptions/{case}/acknowledge"))
        .await;
    assert_eq!(status, 200);
    check(
        &doc,
        &answer_schema(&doc, "post", "/v1/exceptions/{id}/acknowledge"),
        &acknowledged,
        "acknowledge",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (_, error) = app.get("/v1/exceptions?owner=nobody").await;
    check(&doc, &schema("Error"), &error, "error").unwrap();
}
