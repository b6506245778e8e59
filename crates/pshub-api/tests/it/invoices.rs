//! Invoices and their status: applied in order of `at`, written back to the CRM, disputes
//! held by finance.

use crate::helpers::*;
use serde_json::{Value, json};

fn status(id: &str, invoice: &str, status: &str, at: &str) -> Value {
    event(
        "erp",
        id,
        "invoice.status_changed",
        json!({ "invoice_id": invoice, "status": status, "at": at }),
    )
}

pub async fn paid_reaches_the_crm_and_disputed_opens_a_finance_case(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        time_entry("t1", "T1", "W-1", "2026-03-04", json!("2")),
        time_entry("t2", "T2", "W-2", "2026-03-05", json!("1")),
        time_entry("t3", "T3", "W-1", "2026-04-01", json!("1")),
    ]))
    .await;
    app.settle().await;
    let line = &app.lines_of("T1").await[0];
    assert_eq!(line["invoice_id"], "INV-P-1-2026-03");
    let (_, erp) = app.get("/v1/sandbox/erp/lines").await;
    assert!(erp["items"].as_array().unwrap().iter().all(|l| {
        l["invoice_id"]
            .as_str()
            .unwrap()
            .starts_with("INV-P-1-2026-0")
    }));

    let march = "INV-P-1-2026-03";
    let results = app
        .send(json!([
            status("s1", march, "sent", "2026-04-02T09:00:00Z"),
            status("s3", march, "paid", "2026-04-20T09:00:00Z"),
            // Older than what is known: ignored.
            status("s2", march, "disputed", "2026-04-10T09:00:00Z"),
        ]))
        .await;
    app.settle().await;
    let (status_code, invoice) = app.get(&format!("/v1/invoices/{march}")).await;
    assert_eq!(status_code, 200, "{invoice}");
    assert_eq!(
        (
            invoice["status"].clone(),
            invoice["amount"].clone(),
            invoice["currency"].clone(),
            invoice["crm_status"].clone(),
            invoice["project_code"].clone()
        ),
        (
            json!("paid"),
            json!("450.00"),
            json!("EUR"),
            json!("paid"),
            json!("P-1")
        ),
        "{invoice}"
    );
    assert_eq!(invoice["lines"].as_array().unwrap().len(), 2);
    let history: Vec<&str> = invoice["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["sent", "paid"]);
    assert!(invoice["crm_updated_at"].is_string());
    // `paid` reached the CRM as a step of its transaction.
    let (_, timeline) = app
        .get(&format!(
            "/v1/transactions/{}",
            results[1]["correlation_id"].as_str().unwrap()
        ))
        .await;
    let steps = timeline["flow_steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["system"] == "crm" && s["state"] == "done"),
        "{timeline}"
    );
    let (_, crm) = app.get("/v1/sandbox/crm/invoices").await;
    let told: Vec<&str> = crm["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(told, ["sent", "paid"]);
    assert!(app.exceptions("kind=invoice_disputed").await.is_empty());

    // Paid to draft is forbidden; an invoice with no posted line is unknown.
    app.send(json!([
        status("s4", march, "draft", "2026-05-01T09:00:00Z"),
        status("s5", "INV-P-1-2026-07", "sent", "2026-08-01T09:00:00Z"),
    ]))
    .await;
    let forbidden = app.exceptions("kind=forbidden_invoice_transition").await;
    assert_eq!(
        (
            forbidden.len(),
            forbidden[0]["owner"].clone(),
            forbidden[0]["business_key"].clone()
        ),
        (1, json!("integration"), json!(march))
    );
    let unknown = app.exceptions("kind=unknown_invoice").await;
    assert_eq!(
        (unknown.len(), unknown[0]["owner"].clone()),
        (1, json!("integration"))
    );

    // A dispute opens one finance case; paying resolves it.
    let april = "INV-P-1-2026-04";
    app.send(json!([status(
        "a1",
        april,
        "disputed",
        "2026-05-02T09:00:00Z"
    )]))
    .await;
    app.send(json!([status(
        "a1b",
        april,
        "disputed",
        "2026-05-03T09:00:00Z"
    )]))
    .await;
    let disputed = app.exceptions("kind=invoice_disputed").await;
    assert_eq!(disputed.len(), 1, "{disputed:?}");
    assert_eq!(
        (
            disputed[0]["owner"].clone(),
            disputed[0]["business_key"].clone(),
            disputed[0]["state"].clone()
        ),
        (json!("finance"), json!(april), json!("open"))
    );
    app.send(json!([status("a2", april, "paid", "2026-05-20T09:00:00Z")]))
        .await;
    assert_eq!(
        app.exceptions("kind=invoice_disputed").await[0]["state"],
        "resolved"
    );
    let (code, _) = app.get("/v1/invoices/INV-P-404-2026-03").await;
    assert_eq!(code, 404);
}
