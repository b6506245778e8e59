//! Decimals at their edges: every decimal field of every event type takes the largest and
//! smallest decimals, 29 digits, 1e-28, exponents and worse, and the hub answers each with
//! an acceptance or a quarantine naming the field: never a 5xx, never a guess.

use crate::helpers::*;
use serde_json::{Value, json};

/// One valid event of every type that carries a decimal, with the pointers of its decimals.
fn decimal_carriers() -> Vec<(Value, Vec<&'static str>)> {
    let mut capped = closed_won("P-CAP", "EUR", "RC-EUR", "2026-01-01", None);
    capped["id"] = json!("won-cap");
    capped["data"]["opportunity_id"] = json!("OPP-CAP");
    capped["data"]["contract"]["billing_model"] = json!("capped_tm");
    capped["data"]["contract"]["cap"] = json!("50000.00");
    let mut fixed = closed_won("P-FIX", "EUR", "RC-EUR", "2026-01-01", None);
    fixed["id"] = json!("won-fix");
    fixed["data"]["opportunity_id"] = json!("OPP-FIX");
    fixed["data"]["contract"]["billing_model"] = json!("fixed_fee");
    fixed["data"]["contract"]["milestones"] =
        json!([{ "milestone_id": "M-1", "name": "Kick-off", "amount": "1000.00" }]);
    let expense = |id: &str, kind: &str| {
        event(
            "psa",
            id,
            kind,
            json!({ "expense_id": format!("X-{id}"), "worker_id": "W-1", "project_code": "P-1",
                    "spent_on": "2026-03-04", "amount": "120.50", "currency": "EUR",
                    "category": "travel", "billable": true }),
        )
    };
    vec![
        (capped, vec!["/data/contract/cap"]),
        (fixed, vec!["/data/contract/milestones/0/amount"]),
        (
            event(
                "crm",
                "amend-1",
                "contract.amended",
                json!({ "contract_id": "K-P-1", "effective_from": "2026-03-01",
                        "changes": { "cap": "9000", "milestones": [{ "milestone_id": "M-2", "name": "Go-live", "amount": "500" }] } }),
            ),
            vec!["/data/changes/cap", "/data/changes/milestones/0/amount"],
        ),
        (
            rate_card(
                "RC-EDGE",
                "EUR",
                &[("consultant", "emea", "150.00", "2026-01-01", None)],
            ),
            vec!["/data/rates/0/rate"],
        ),
        (
            event(
                "psa",
                "cost-w",
                "cost_rate.upserted",
                json!({ "worker_id": "W-1", "currency": "EUR", "hourly_cost": "80.00", "valid_from": "2026-01-01" }),
            ),
            vec!["/data/hourly_cost"],
        ),
        (
            event(
                "psa",
                "cost-g",
                "cost_rate.upserted",
                json!({ "grade": "G2", "currency": "EUR", "hourly_cost": "70.00", "valid_from": "2026-01-01", "valid_to": null }),
            ),
            vec!["/data/hourly_cost"],
        ),
        (
            event(
                "erp",
                "fx-1",
                "fx_rate.upserted",
                json!({ "from": "USD", "to": "EUR", "rate": "0.92", "valid_on": "2026-03-01", "source": "ecb" }),
            ),
            vec!["/data/rate"],
        ),
        (
            assignment("A-EDGE", "W-1", "P-1", "approved"),
            vec!["/data/hours"],
        ),
        (
            time_entry("t-edge", "T-EDGE", "W-1", "2026-03-04", json!("2")),
            vec!["/data/hours"],
        ),
        (
            rejected("r-edge", "R-EDGE", "W-1", "2026-03-04", json!("2")),
            vec!["/data/hours"],
        ),
        (expense("x-edge", "expense.approved"), vec!["/data/amount"]),
        (expense("xr-edge", "expense.rejected"), vec!["/data/amount"]),
        (
            event(
                "payroll",
                "pay-1",
                "payroll.actuals",
                json!({ "worker_id": "W-1", "period": "2026-03", "gross_cost": "5200.00", "currency": "EUR" }),
            ),
            vec!["/data/gross_cost"],
        ),
    ]
}

/// The values every decimal field is tried with.
fn edge_values() -> Vec<Value> {
    let mut values: Vec<Value> = [
        "79228162514264337593543950335",
        "-79228162514264337593543950335",
        "79228162514264337593543950336",
        "0.0000000000000000000000000001",
        "0.00000000000000000000000000001",
        "1e-28",
        "1E+5",
        "1e30",
        "1e-400",
        "1e400",
        "12345678901234567890123456789",
        "1234567890123456.7890123456789",
        "1.0000000000000000000000000000000000000001",
        "999999999999.999999",
        "1000000000000",
        "0",
        "-0",
        "-1",
        "24",
        "24.0000001",
        "0.0000001",
        "",
        " 1",
        "NaN",
        "Infinity",
        "0x10",
        "1_000",
    ]
    .iter()
    .map(|s| json!(s))
    .collect();
    // The same as JSON numbers (kept exactly: the hub reads numbers as their text).
    for raw in [
        "79228162514264337593543950335",
        "79228162514264337593543950336",
        "1e-28",
        "1e30",
        "1E+400",
        "-1e-400",
        "0.0000000000000000000000000001",
        "12345678901234567890123456789",
        "24",
        "-0.0",
    ] {
        values.push(serde_json::from_str(raw).expect("a JSON number"));
    }
    values.extend([json!(null), json!(true), json!({}), json!([])]);
    values
}

fn set(event: &mut Value, pointer: &str, value: Value) {
    *event
        .pointer_mut(pointer)
        .expect("the pointer names a field") = value;
}

pub async fn decimal_edge_values_in_every_decimal_field_never_answer_5xx(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let mut sent = 0;
    for (base, pointers) in decimal_carriers() {
        // The unaltered event is valid: the edge values are the only thing wrong.
        let mut probe = base.clone();
        probe["id"] = json!(format!("{}-valid", base["id"].as_str().unwrap()));
        let results = app.send(json!([probe])).await;
        assert_eq!(results[0]["status"], "accepted", "{base}: {results:?}");
        for pointer in pointers {
            let mut batch = Vec::new();
            for (n, value) in edge_values().into_iter().enumerate() {
                let mut variant = base.clone();
                variant["id"] = json!(format!("{}-{pointer}-{n}", base["id"].as_str().unwrap()));
                set(&mut variant, pointer, value);
                batch.push(variant);
            }
            sent += batch.len();
            let response = app
                .post_raw(
                    "/v1/events",
                    Value::Array(batch.clone()).to_string(),
                    Some(&app.token),
                )
                .await;
            assert_eq!(response.status(), 200, "{pointer} of {}", base["type"]);
            let body: Value = response.json().await.unwrap();
            for (variant, result) in batch.iter().zip(body["results"].as_array().unwrap()) {
                let status = result["status"].as_str().unwrap();
                let value = variant.pointer(pointer).unwrap();
                match status {
                    "accepted" => {}
                    "quarantined" => {
                        let reason = result["reason"].as_str().unwrap();
                        let field = pointer.trim_start_matches('/').replace('/', ".");
                        let field = field.replace(".0.", "[0].");
                        assert!(
                            reason.starts_with(&format!("{field}: ")),
                            "{value} at {pointer}: the reason names the field: {reason}"
                        );
                    }
                    other => panic!("{value} at {pointer}: answered {other}: {result}"),
                }
            }
        }
    }
    assert!(sent > 400, "{sent} variants sent");
    // Whatever was accepted is priced or held, and the books still balance.
    app.settle().await;
    let (status, summary) = app.get("/v1/summary").await;
    assert_eq!(status, 200);
    assert_eq!(summary["conservation_holds"], true, "{summary}");
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

pub async fn values_out_of_bounds_are_quarantined_with_the_field_named(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let mut huge_rate = rate_card(
        "RC-EUR",
        "EUR",
        &[(
            "consultant",
            "emea",
            "79228162514264337593543950335",
            "2026-03-01",
            None,
        )],
    );
    huge_rate["id"] = json!("rc-huge");
    let hours =
        |id: &str, value: Value| time_entry(id, &id.to_uppercase(), "W-1", "2026-03-05", value);
    let fx = |id: &str, rate: &str| {
        event(
            "erp",
            id,
            "fx_rate.upserted",
            json!({ "from": "USD", "to": "EUR", "rate": rate, "valid_on": "2026-03-01", "source": "ecb" }),
        )
    };
    let mut precise_rate = rate_card(
        "RC-EUR",
        "EUR",
        &[("consultant", "emea", "150.1234567", "2026-03-01", None)],
    );
    precise_rate["id"] = json!("rc-precise");
    let events = json!([
        huge_rate,
        time_entry("after-huge", "AH", "W-1", "2026-03-04", json!("2")),
        hours("h-1e30", json!(1e30)),
        hours("h-1e30-text", json!("1e30")),
        hours("h-25", json!("24.01")),
        hours("h-0", json!("0")),
        hours("h-neg", json!("-1")),
        hours(
            "h-inexact",
            json!("1.0000000000000000000000000000000000000001")
        ),
        fx("fx-0", "0"),
        fx("fx-13", "0.9200000000001"),
        fx("fx-12", "0.920000000001"),
        precise_rate,
    ]);
    let results = app.send(events).await;
    assert_eq!(
        statuses(&results),
        [
            "quarantined",
            "accepted",
            "quarantined",
            "quarantined",
            "quarantined",
            "quarantined",
            "quarantined",
            "quarantined",
            "quarantined",
            "quarantined",
            "accepted",
            "quarantined"
        ],
        "{results:?}"
    );
    let reason = |n: usize| results[n]["reason"].as_str().unwrap().to_string();
    assert!(
        reason(0).starts_with("data.rates[0].rate: "),
        "{}",
        reason(0)
    );
    for n in 2..8 {
        assert!(reason(n).starts_with("data.hours: "), "{}", reason(n));
    }
    assert!(
        reason(7).contains("exactly"),
        "an inexact decimal says so: {}",
        reason(7)
    );
    assert!(reason(8).starts_with("data.rate: "), "{}", reason(8));
    assert!(reason(9).starts_with("data.rate: "), "{}", reason(9));
    assert!(
        reason(11).starts_with("data.rates[0].rate: "),
        "{}",
        reason(11)
    );
    // The entry after the refused rate card is priced with the rate that stands.
    app.settle().await;
    let lines = app.lines_of("AH").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["amount"], "300.00");
}

pub async fn a_key_given_twice_is_quarantined_not_read_as_the_last(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let body = r#"[{"id":"dup-key","source":"psa","type":"time_entry.approved","schema_version":1,
        "occurred_at":"2026-03-04T17:02:11Z","data":{"entry_id":"DK","worker_id":"W-1",
        "project_code":"P-1","work_date":"2026-03-04","hours":"1","hours":"20","billable":true}}]"#;
    let response = app.post_raw("/v1/events", body, Some(&app.token)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let result = &answer["results"][0];
    assert_eq!(result["status"], "quarantined", "{answer}");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .starts_with("data.hours: "),
        "{result}"
    );
    assert!(app.lines_of("DK").await.is_empty());
}

pub async fn the_inbox_keeps_the_payload_as_it_arrived(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let body = r#"[{"id":"raw-1","source":"psa","type":"time_entry.approved","schema_version":1,
        "occurred_at":"2026-03-04T17:02:11Z","data":{"entry_id":"RAW1","worker_id":"W-1",
        "project_code":"P-1","work_date":"2026-03-04","hours":1.50,"billable":true,
        "approver":"M-7","x_vendor":{"sheet":42}}}]"#;
    let response = app.post_raw("/v1/events", body, Some(&app.token)).await;
    assert_eq!(response.status(), 200);
    app.settle().await;
    let (_, event) = app.get("/v1/events/psa/raw-1").await;
    assert_eq!(event["status"], "applied", "{event}");
    assert_eq!(event["raw"]["data"]["approver"], "M-7", "{event}");
    assert_eq!(event["raw"]["data"]["x_vendor"], json!({ "sheet": 42 }));
    assert_eq!(
        event["raw"]["data"]["hours"].to_string(),
        "1.50",
        "the number as it was written"
    );
}

pub async fn every_event_type_has_a_flow_and_is_reported_as_it_stands(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let events = json!([
        event(
            "psa",
            "ms-1",
            "milestone.reached",
            json!({ "milestone_id": "M-1", "contract_id": "K-P-1", "reached_on": "2026-03-10" })
        ),
        event(
            "erp",
            "inv-1",
            "invoice.status_changed",
            json!({ "invoice_id": "INV-1", "status": "paid", "at": "2026-03-10T10:00:00Z" })
        ),
        event(
            "payroll",
            "pay-1",
            "payroll.actuals",
            json!({ "worker_id": "W-1", "period": "2026-03", "gross_cost": "5200.00", "currency": "EUR" })
        ),
        event(
            "crm",
            "amend-1",
            "contract.amended",
            json!({ "contract_id": "K-P-1", "effective_from": "2026-03-01", "changes": { "cap": "9000" } })
        ),
    ]);
    let results = app.send(events).await;
    assert_eq!(statuses(&results), ["accepted"; 4]);
    // A payroll actual is stored as one, as a payroll file's row is.
    let (_, payroll) = app.get("/v1/events/payroll/pay-1").await;
    assert_eq!(payroll["status"], "applied", "{payroll}");
    // An invoice the hub posted nothing to: its status is kept, and integration told.
    let (_, invoice) = app.get("/v1/events/erp/inv-1").await;
    assert_eq!(invoice["status"], "applied", "{invoice}");
    assert_eq!(
        invoice["exceptions"][0]["kind"], "unknown_invoice",
        "{invoice}"
    );
    // Milestones and amendments have their flows: a milestone the contract lacks is held.
    let (_, milestone) = app.get("/v1/events/psa/ms-1").await;
    assert_eq!(milestone["status"], "held", "{milestone}");
    let (_, amendment) = app.get("/v1/events/crm/amend-1").await;
    assert_eq!(amendment["status"], "applied", "{amendment}");
    for (source, id) in [
        ("hris", "hire-W-1"),
        ("crm", "won-P-1"),
        ("psa", "A-1-approved"),
    ] {
        let (_, event) = app.get(&format!("/v1/events/{source}/{id}")).await;
        assert_eq!(event["status"], "applied", "{event}");
    }
}
