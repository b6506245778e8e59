//! Revenue leakage with a known answer: one kind of each, and the amounts per currency.

use crate::helpers::*;
use pshub_connectors::sandbox::wire::LineBody;
use serde_json::json;

fn foreign_line(key: &str, source: &str, amount: &str) -> LineBody {
    LineBody {
        idempotency_key: key.into(),
        kind: "time".into(),
        project_code: "P-1".into(),
        source_id: source.into(),
        posting: 1,
        worker_id: "W-1".into(),
        date: "2026-03-02".into(),
        quantity: "2".parse().unwrap(),
        rate: "150".parse().unwrap(),
        rate_currency: "EUR".into(),
        amount: amount.parse().unwrap(),
        currency: "EUR".into(),
        tax_code: "STANDARD".into(),
        billing_class: "professional_services".into(),
        reverses_erp_id: None,
    }
}

pub async fn the_leakage_report_finds_each_kind_with_its_amount_per_currency(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        time_entry("l1", "L1", "W-1", "2026-03-02", json!("2")),
        time_entry("l2", "L2", "W-2", "2026-03-03", json!("3")),
        worker_change("W-2", "terminated", "2026-03-10"),
        // After the termination: held, valued at 2 x 150.00.
        time_entry("l3", "L3", "W-2", "2026-03-12", json!("2")),
    ]))
    .await;
    app.settle().await;
    let (_, clean) = app.get("/v1/reports/leakage?period=2026-03").await;
    assert_eq!(clean["counts"]["approved_unbilled"], 1, "{clean}");
    assert_eq!(clean["counts"]["rate_mismatch"], 0, "{clean}");

    // What others did to the ERP and the terms: a line nobody approved, a second copy of
    // L1 under another key, a rate card raised after posting, a cap the ERP never got.
    app.sandbox
        .post_lines(&[
            foreign_line("legacy:X-1", "X-1", "99.00"),
            foreign_line("legacy:L1", "L1", "300.00"),
        ])
        .unwrap();
    app.send(json!([
        rate_card(
            "RC-EUR",
            "EUR",
            &[
                ("consultant", "emea", "160.00", "2026-01-01", None),
                ("auditor", "emea", "90.00", "2026-01-01", None)
            ]
        ),
        event(
            "crm",
            "amend-cap",
            "contract.amended",
            json!({ "contract_id": "K-P-1", "effective_from": "2026-04-01", "changes": { "cap": "9000" } })
        ),
    ]))
    .await;
    app.settle().await;

    let (status, report) = app.get("/v1/reports/leakage?period=2026-03").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["counts"],
        json!({ "approved_unbilled": 1, "billed_unapproved": 1, "duplicate": 1, "rate_mismatch": 2, "terms_mismatch": 1 }),
        "{report}"
    );
    assert_eq!(
        report["amounts"],
        json!({
            "approved_unbilled": { "EUR": "300.00" },
            "billed_unapproved": { "EUR": "99.00" },
            "duplicate": { "EUR": "300.00" },
            "rate_mismatch": { "EUR": "-50.00" },
        }),
        "{report}"
    );
    let items = report["items"].as_array().unwrap();
    let held = items
        .iter()
        .find(|i| i["kind"] == "approved_unbilled")
        .unwrap();
    assert_eq!(held["entry_id"], "L3");
    assert!(
        held["detail"].as_str().unwrap().contains("held by case"),
        "{held}"
    );
    let terms = items
        .iter()
        .find(|i| i["kind"] == "terms_mismatch")
        .unwrap();
    assert!(
        terms["detail"].as_str().unwrap().starts_with("cap:"),
        "{terms}"
    );
    // Another month holds none of the month's lines.
    let (_, april) = app.get("/v1/reports/leakage?period=2026-04").await;
    assert_eq!(april["counts"]["rate_mismatch"], 0, "{april}");
    assert_eq!(april["counts"]["terms_mismatch"], 1);
    let (status, _) = app.get("/v1/reports/leakage?period=March").await;
    assert_eq!(status, 400);
}
