//! Contracts: milestones bill once, fixed-fee time bills nothing, amendments apply from
//! their effective date.

use crate::helpers::*;
use serde_json::{Value, json};

fn fixed_fee() -> Value {
    let mut won = closed_won("P-FIX", "EUR", "RC-EUR", "2026-01-01", None);
    won["data"]["opportunity_id"] = json!("OPP-FIX");
    won["data"]["contract"]["billing_model"] = json!("fixed_fee");
    won["data"]["contract"]["milestones"] = json!([
        { "milestone_id": "M-1", "name": "Kick-off", "amount": "1000.00" },
        { "milestone_id": "M-2", "name": "Go-live", "amount": "4000.00" }
    ]);
    won
}

fn reached(id: &str, contract: &str, milestone: &str, on: &str) -> Value {
    event(
        "psa",
        id,
        "milestone.reached",
        json!({ "milestone_id": milestone, "contract_id": contract, "reached_on": on }),
    )
}

fn amended(id: &str, effective_from: &str, changes: Value) -> Value {
    event(
        "crm",
        id,
        "contract.amended",
        json!({ "contract_id": "K-P-1", "effective_from": effective_from, "changes": changes }),
    )
}

pub async fn a_milestone_bills_one_line_however_often_it_is_sent(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        fixed_fee(),
        assignment("A-F", "W-1", "P-FIX", "approved")
    ]))
    .await;
    let mut fix_time = time_entry("f1", "F1", "W-1", "2026-03-04", json!("8"));
    fix_time["data"]["project_code"] = json!("P-FIX");
    let results = app
        .send(json!([
            reached("ms-1", "K-P-FIX", "M-1", "2026-03-10"),
            reached("ms-1", "K-P-FIX", "M-1", "2026-03-10"),
            reached("ms-1-again", "K-P-FIX", "M-1", "2026-03-11"),
            reached("ms-9", "K-P-FIX", "M-9", "2026-03-10"),
            reached("ms-x", "K-404", "M-1", "2026-03-10"),
            fix_time,
        ]))
        .await;
    assert_eq!(
        statuses(&results),
        [
            "accepted",
            "duplicate",
            "accepted",
            "accepted",
            "accepted",
            "accepted"
        ]
    );
    app.settle().await;
    let lines = app.lines_of("M-1").await;
    assert_eq!(lines.len(), 1, "{lines:?} {:?}", app.exceptions("").await);
    let line = &lines[0];
    assert_eq!(
        (
            line["kind"].clone(),
            line["quantity"].clone(),
            line["rate"].clone(),
            line["amount"].clone(),
            line["currency"].clone(),
            line["worker_id"].clone(),
            line["status"].clone()
        ),
        (
            json!("milestone"),
            json!("1"),
            json!("1000.00"),
            json!("1000.00"),
            json!("EUR"),
            Value::Null,
            json!("posted")
        ),
        "{line}"
    );
    let (_, erp) = app.get("/v1/sandbox/erp/lines").await;
    let milestone_lines = erp["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "milestone")
        .count();
    assert_eq!(milestone_lines, 1);
    // Fixed-fee time posts nothing and counts as no approved value.
    assert!(app.lines_of("F1").await.is_empty());
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(
        summary["approved_value"],
        json!({ "EUR": "1000.00" }),
        "{summary}"
    );
    assert_eq!(summary["conservation_holds"], true);

    let unknown = app.exceptions("kind=unknown_milestone").await;
    assert_eq!(
        (unknown.len(), unknown[0]["owner"].clone()),
        (1, json!("finance"))
    );
    let contract = app.exceptions("kind=unknown_contract").await;
    assert_eq!(
        (contract.len(), contract[0]["owner"].clone()),
        (1, json!("integration"))
    );

    // An amendment that adds the milestone lets finance resolve the held one.
    let mut add = amended(
        "amend-ms",
        "2026-03-01",
        json!({ "milestones": [
        { "milestone_id": "M-1", "name": "Kick-off", "amount": "1000.00" },
        { "milestone_id": "M-9", "name": "Extra", "amount": "250.00" }
    ] }),
    );
    add["data"]["contract_id"] = json!("K-P-FIX");
    app.send(json!([add])).await;
    let id = unknown[0]["id"].as_i64().unwrap();
    let (status, body) = app.post(&format!("/v1/exceptions/{id}/resolve")).await;
    assert_eq!(status, 200, "{body}");
    app.settle().await;
    assert_eq!(app.lines_of("M-9").await[0]["amount"], "250.00");
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["posted_value"], json!({ "EUR": "1250.00" }));

    // The amended schedule went to the ERP, and the project shows its terms and backlog.
    let (_, project) = app.get("/v1/projects/P-FIX").await;
    assert_eq!(project["schedule_version"], 2, "{project}");
    assert_eq!(
        project["billing_rules"]["amendments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        project["backlog"],
        json!({ "currency": "EUR", "contract_value": "1250.00", "billed": "1250.00", "not_yet_billed": "0.00" })
    );
    let (_, schedules) = app.get("/v1/sandbox/erp/schedules").await;
    let items = schedules["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{schedules}");
    assert_eq!(
        (
            items[0]["version"].clone(),
            items[0]["project_code"].clone()
        ),
        (json!(2), json!("P-FIX"))
    );
    assert_eq!(items[0]["milestones"].as_array().unwrap().len(), 2);
}

pub async fn an_amendment_changes_the_rate_from_its_effective_date_only(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([time_entry(
        "before",
        "T-BEFORE",
        "W-1",
        "2026-03-31",
        json!("1")
    ),]))
        .await;
    app.settle().await;
    app.send(json!([
        rate_card(
            "RC-HIGH",
            "EUR",
            &[("consultant", "emea", "200.00", "2026-01-01", None)]
        ),
        amended(
            "amend-rate",
            "2026-04-01",
            json!({ "rate_card_id": "RC-HIGH", "end": "2026-04-30" })
        ),
        time_entry("late-march", "T-MARCH", "W-1", "2026-03-31", json!("1")),
        time_entry("april", "T-APRIL", "W-1", "2026-04-01", json!("1")),
        time_entry("april-end", "T-APRIL-END", "W-1", "2026-04-30", json!("1")),
        time_entry("may", "T-MAY", "W-1", "2026-05-02", json!("1")),
    ]))
    .await;
    app.settle().await;
    // One hour each: the amount is the rate, rounded to the cent.
    let rate = |lines: Vec<Value>| lines[0]["amount"].as_str().unwrap().to_string();
    // The line posted before the amendment is not re-priced; the terms follow the work date.
    assert_eq!(rate(app.lines_of("T-BEFORE").await), "150.00");
    assert_eq!(rate(app.lines_of("T-MARCH").await), "150.00");
    assert_eq!(rate(app.lines_of("T-APRIL").await), "200.00");
    // The amended end is inclusive; a later entry is held.
    assert_eq!(rate(app.lines_of("T-APRIL-END").await), "200.00");
    assert!(app.lines_of("T-MAY").await.is_empty());
    let expired = app.exceptions("kind=contract_expired").await;
    assert_eq!(
        (
            expired.len(),
            expired[0]["business_key"].clone(),
            expired[0]["owner"].clone()
        ),
        (1, json!("T-MAY"), json!("finance"))
    );

    // Amendments are reference data: they hold across a restart.
    let mut app = app;
    app.restart().await;
    app.send(json!([time_entry(
        "april-2",
        "T-APRIL-2",
        "W-1",
        "2026-04-02",
        json!("1")
    )]))
    .await;
    app.settle().await;
    assert_eq!(rate(app.lines_of("T-APRIL-2").await), "200.00");
}

fn on_capped(mut event: Value) -> Value {
    event["data"]["project_code"] = json!("P-CAP");
    event
}

pub async fn a_capped_contract_posts_up_to_its_cap_and_holds_the_line_that_crosses_it(
    store: Backend,
) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let mut capped = closed_won("P-CAP", "EUR", "RC-EUR", "2026-01-01", None);
    capped["data"]["opportunity_id"] = json!("OPP-CAP");
    capped["data"]["contract"]["billing_model"] = json!("capped_tm");
    capped["data"]["contract"]["cap"] = json!("1000.00");
    let expense = event(
        "psa",
        "x1",
        "expense.approved",
        json!({ "expense_id": "X1", "worker_id": "W-1", "project_code": "P-CAP", "spent_on": "2026-03-06",
                "amount": "100.00", "currency": "EUR", "category": "travel", "billable": true }),
    );
    app.send(json!([
        capped,
        assignment("A-C", "W-1", "P-CAP", "approved")
    ]))
    .await;
    // 300 + 450 = 750; the next 300 would make 1050: held whole. 150 more fits (900), and an
    // expense of 100 reaches the cap exactly, which is allowed.
    for batch in [
        json!([on_capped(time_entry(
            "c1",
            "C1",
            "W-1",
            "2026-03-02",
            json!("2")
        ))]),
        json!([on_capped(time_entry(
            "c2",
            "C2",
            "W-1",
            "2026-03-03",
            json!("3")
        ))]),
        json!([on_capped(time_entry(
            "c3",
            "C3",
            "W-1",
            "2026-03-04",
            json!("2")
        ))]),
        json!([on_capped(time_entry(
            "c4",
            "C4",
            "W-1",
            "2026-03-05",
            json!("1")
        ))]),
        json!([expense]),
    ] {
        app.send(batch).await;
    }
    app.settle().await;
    for posted in ["C1", "C2", "C4", "X1"] {
        assert_eq!(app.lines_of(posted).await.len(), 1, "{posted}");
    }
    assert!(app.lines_of("C3").await.is_empty());
    let held = app.exceptions("kind=cap_exceeded").await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (held[0]["owner"].clone(), held[0]["business_key"].clone()),
        (json!("finance"), json!("C3"))
    );
    assert_eq!(
        held[0]["value"],
        json!({ "amount": "300.00", "currency": "EUR" })
    );

    // A reversal frees 300 but releases nothing by itself; resolving checks again and posts.
    app.send(json!([on_capped(rejected(
        "c2-r",
        "C2",
        "W-1",
        "2026-03-03",
        json!("3")
    ))]))
    .await;
    app.settle().await;
    assert_eq!(
        app.exceptions("kind=cap_exceeded").await[0]["state"],
        "open"
    );
    let id = held[0]["id"].as_i64().unwrap();
    let (status, body) = app.post(&format!("/v1/exceptions/{id}/resolve")).await;
    assert_eq!(status, 200, "{body}");
    app.settle().await;
    assert_eq!(app.lines_of("C3").await.len(), 1);
    // Now at 1000 - 450 + 300 = 850: 2 hours more (300) would cross again.
    app.send(json!([on_capped(time_entry(
        "c5",
        "C5",
        "W-1",
        "2026-03-09",
        json!("2")
    ))]))
    .await;
    assert_eq!(
        app.exceptions("kind=cap_exceeded&state=open").await.len(),
        1
    );

    // A cap raised from April on applies to entries dated from then; earlier lines count.
    let mut raise = amended("raise", "2026-04-01", json!({ "cap": "2000.00" }));
    raise["data"]["contract_id"] = json!("K-P-CAP");
    app.send(json!([
        raise,
        on_capped(time_entry("c6", "C6", "W-1", "2026-04-02", json!("2"))),
        on_capped(time_entry("c7", "C7", "W-1", "2026-03-10", json!("2"))),
    ]))
    .await;
    app.settle().await;
    assert_eq!(app.lines_of("C6").await.len(), 1);
    assert!(app.lines_of("C7").await.is_empty());
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["conservation_holds"], true, "{summary}");
}

pub async fn tax_codes_follow_the_configured_legal_entities(store: Backend) {
    use pshub_engine::config::LegalEntity;
    let mut config = test_config();
    config.default_tax_code = None;
    config.tax_codes.insert("DE01".into(), "DE-VAT19".into());
    config.legal_entities.insert(
        "DE01".into(),
        LegalEntity {
            currency: None,
            tax_code: Some("DE-VAT19".into()),
            // Customers in France may only be invoiced under reverse charge.
            allowed_tax_codes: [("FR".to_string(), vec!["EU-REVERSE".to_string()])].into(),
            ..LegalEntity::default()
        },
    );
    let app = spawn_app_with(store, config).await;
    app.with_firm().await;
    let mut french = closed_won("P-FR", "EUR", "RC-EUR", "2026-01-01", None);
    french["data"]["opportunity_id"] = json!("OPP-FR");
    french["data"]["customer"]["customer_id"] = json!("C-FR");
    french["data"]["customer"]["country"] = json!("FR");
    french["data"]["customer"]["tax_id"] = json!("FR999");
    let mut elsewhere = closed_won("P-US", "EUR", "RC-EUR", "2026-01-01", None);
    elsewhere["data"]["opportunity_id"] = json!("OPP-US");
    elsewhere["data"]["project"]["legal_entity"] = json!("US01");
    app.send(json!([
        french,
        elsewhere,
        assignment("A-FR", "W-1", "P-FR", "approved"),
        assignment("A-US", "W-2", "P-US", "approved"),
    ]))
    .await;
    let on = |project: &str, id: &str| {
        let mut entry = time_entry(
            id,
            &id.to_uppercase(),
            if project == "P-US" { "W-2" } else { "W-1" },
            "2026-03-04",
            json!("1"),
        );
        entry["data"]["project_code"] = json!(project);
        entry
    };
    app.send(json!([
        on("P-1", "de1"),
        on("P-FR", "fr1"),
        on("P-US", "us1")
    ]))
    .await;
    app.settle().await;
    assert_eq!(app.lines_of("DE1").await[0]["tax_code"], "DE-VAT19");
    assert!(app.lines_of("FR1").await.is_empty());
    assert!(app.lines_of("US1").await.is_empty());
    let mismatch = app.exceptions("kind=tax_code_mismatch").await;
    assert_eq!(
        (
            mismatch.len(),
            mismatch[0]["owner"].clone(),
            mismatch[0]["business_key"].clone()
        ),
        (1, json!("finance"), json!("FR1"))
    );
    let missing = app.exceptions("kind=missing_tax_code").await;
    assert_eq!(
        (missing.len(), missing[0]["business_key"].clone()),
        (1, json!("US1"))
    );
}
