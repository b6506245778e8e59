//! Flow 4 through the front door: approved time and expenses become exactly one line.

use crate::helpers::*;
use serde_json::json;

pub async fn one_event_sent_three_times_gives_one_line(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let entry = time_entry("psa-T1-approved-1", "T1", "W-1", "2026-03-04", json!("7.5"));
    let first = app.send(json!([entry.clone()])).await;
    // The same body with the hours as a number instead of a string is still the same event.
    let mut as_number = entry.clone();
    as_number["data"]["hours"] = serde_json::from_str("7.50").unwrap();
    let again = app.send(json!([entry, as_number])).await;
    assert_eq!(statuses(&first), ["accepted"]);
    assert_eq!(statuses(&again), ["duplicate", "duplicate"]);
    assert_eq!(again[0]["correlation_id"], first[0]["correlation_id"]);
    app.settle().await;

    let lines = app.lines_of("T1").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["amount"], "1125.00");
    assert_eq!(lines[0]["quantity"], "7.5");
    assert_eq!(
        lines[0]["rate"], "150",
        "rates are kept exactly, normalised"
    );
    assert_eq!(lines[0]["status"], "posted");
    assert!(lines[0]["erp_id"].as_str().unwrap().starts_with("ERP-L-"));
    assert_eq!(app.sandbox.line_count(), 1);
    let (_, event) = app.get("/v1/events/psa/psa-T1-approved-1").await;
    assert_eq!(event["status"], "applied");
    assert_eq!(event["lines"].as_array().unwrap().len(), 1);
}

pub async fn a_rejection_after_posting_reverses_to_zero_and_a_reapproval_posts_once_more(
    store: Backend,
) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([time_entry(
        "psa-T2-approved-1",
        "T2",
        "W-1",
        "2026-03-04",
        json!("8")
    )]))
    .await;
    app.settle().await;
    let rejection = rejected("psa-T2-rejected-1", "T2", "W-1", "2026-03-04", json!("8"));
    assert_eq!(
        statuses(&app.send(json!([rejection.clone(), rejection])).await),
        ["accepted", "duplicate"]
    );
    app.settle().await;

    let lines = app.lines_of("T2").await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (original, reversal) = (&lines[0], &lines[1]);
    assert_eq!(reversal["kind"], "reversal");
    assert_eq!(reversal["reverses"], original["id"]);
    assert_eq!(reversal["amount"], "-1200.00");
    assert_eq!(reversal["status"], "posted");
    let net: rust_decimal::Decimal = lines
        .iter()
        .map(|l| {
            l["amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert!(net.is_zero());

    let reapproval = time_entry("psa-T2-approved-2", "T2", "W-1", "2026-03-04", json!("8"));
    assert_eq!(
        statuses(&app.send(json!([reapproval.clone(), reapproval])).await),
        ["accepted", "duplicate"]
    );
    app.settle().await;
    let lines = app.lines_of("T2").await;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["kind"], "time");
    assert_eq!(lines[2]["amount"], "1200.00");
    assert_eq!(app.sandbox.line_count(), 3);
}

pub async fn an_inactive_workers_entry_opens_a_pmo_case_and_earlier_entries_still_bill(
    store: Backend,
) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([worker_change("W-2", "terminated", "2026-03-10")]))
        .await;
    let results = app
        .send(json!([
            time_entry("e-before", "T-before", "W-2", "2026-03-09", json!("8")),
            time_entry("e-last-day", "T-last-day", "W-2", "2026-03-10", json!("8")),
            time_entry("e-after", "T-after", "W-2", "2026-03-11", json!("8")),
        ]))
        .await;
    assert_eq!(statuses(&results), ["accepted", "accepted", "accepted"]);
    app.settle().await;

    assert_eq!(app.lines_of("T-before").await.len(), 1);
    assert_eq!(
        app.lines_of("T-last-day").await.len(),
        1,
        "the termination date is still billable"
    );
    assert!(app.lines_of("T-after").await.is_empty());
    let cases = app.exceptions("owner=pmo&kind=worker_inactive").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["kind"], "worker_inactive");
    assert_eq!(cases[0]["business_key"], "T-after");
    assert_eq!(cases[0]["state"], "open");
    assert_eq!(cases[0]["correlation_id"], results[2]["correlation_id"]);
    assert_eq!(
        cases[0]["reason"], "worker W-2 was terminated on 2026-03-10; the work is dated 2026-03-11",
        "the case names the termination date, not the work date"
    );
    assert_eq!(
        cases[0]["value"]["amount"], "1200.00",
        "a held entry keeps its value"
    );
    let (_, event) = app.get("/v1/events/psa/e-after").await;
    assert_eq!(event["status"], "held");
}

pub async fn a_leave_holds_from_its_start_through_the_day_before_it_ends(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        worker_change("W-1", "leave_started", "2026-03-05"),
        worker_change("W-1", "leave_ended", "2026-03-10")
    ]))
    .await;
    app.send(json!([
        time_entry("l1", "L1", "W-1", "2026-03-04", json!("1")),
        time_entry("l2", "L2", "W-1", "2026-03-05", json!("1")),
        time_entry("l3", "L3", "W-1", "2026-03-09", json!("1")),
        time_entry("l4", "L4", "W-1", "2026-03-10", json!("1")),
    ]))
    .await;
    app.settle().await;
    let billed: Vec<usize> = line_counts(&app, &["L1", "L2", "L3", "L4"]).await;
    assert_eq!(billed, [1, 0, 0, 1]);
}

async fn line_counts(app: &TestApp, ids: &[&str]) -> Vec<usize> {
    let mut lengths = Vec::new();
    for id in ids {
        lengths.push(app.lines_of(id).await.len());
    }
    lengths
}

pub async fn a_missing_rate_opens_a_finance_case_and_the_rate_card_then_resolving_posts_once(
    store: Backend,
) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        hired("W-3", "2025-01-01", "emea", "architect"),
        assignment("A-3", "W-3", "P-1", "approved")
    ]))
    .await;
    // The entry names its role; otherwise the assignment's role (consultant) would price it.
    let mut entry = time_entry("psa-T3", "T3", "W-3", "2026-03-04", json!("2"));
    entry["data"]["role"] = json!("architect");
    let results = app.send(json!([entry.clone()])).await;
    assert_eq!(statuses(&results), ["accepted"]);
    app.settle().await;
    assert!(app.lines_of("T3").await.is_empty());
    let cases = app.exceptions("owner=finance&kind=missing_rate").await;
    assert_eq!(cases.len(), 1);
    let id = cases[0]["id"].as_i64().unwrap();
    assert_eq!(cases[0]["business_key"], "T3");
    assert!(cases[0]["value"].is_null(), "no rate, no value");

    // Resolving before the rate exists changes nothing.
    let (status, body) = app.post(&format!("/v1/exceptions/{id}/resolve")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "still_failing");

    app.send(json!([rate_card(
        "RC-EUR",
        "EUR",
        &[
            ("consultant", "emea", "150.00", "2026-01-01", None),
            ("architect", "emea", "210.00", "2026-01-01", None),
        ]
    )]))
    .await;
    let (status, body) = app.post(&format!("/v1/exceptions/{id}/resolve")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["exception"]["state"], "resolved");
    assert_eq!(body["outcome"]["result"], "resumed");
    let (status, _) = app.post(&format!("/v1/exceptions/{id}/resolve")).await;
    assert_eq!(status, 409, "resolving twice is refused");
    assert_eq!(statuses(&app.send(json!([entry])).await), ["duplicate"]);
    app.settle().await;

    let lines = app.lines_of("T3").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["amount"], "420.00");
    assert_eq!(lines[0]["status"], "posted");
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(
        summary["straight_through_rate"].as_f64(),
        Some(0.0),
        "the only entry needed a person"
    );
}

pub async fn checks_run_in_order_and_each_failure_goes_to_its_owner(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        hired("W-9", "2025-01-01", "emea", "consultant"),
        assignment("A-9", "W-9", "P-1", "soft"),
        closed_won("P-OLD", "EUR", "RC-EUR", "2025-01-01", Some("2025-12-31")),
        assignment("A-old", "W-1", "P-OLD", "approved"),
        worker_change("W-2", "terminated", "2026-01-31"),
    ]))
    .await;
    let mut old = time_entry("c5", "C5", "W-1", "2026-03-04", json!("1"));
    old["data"]["project_code"] = json!("P-OLD");
    let mut unknown_project = time_entry("c2", "C2", "W-1", "2026-03-04", json!("1"));
    unknown_project["data"]["project_code"] = json!("P-404");
    app.send(json!([
        time_entry("c1", "C1", "W-404", "2026-03-04", json!("1")),
        unknown_project,
        time_entry("c3", "C3", "W-2", "2026-03-04", json!("1")),
        time_entry("c4", "C4", "W-9", "2026-03-04", json!("1")),
        old,
    ]))
    .await;
    app.settle().await;
    let cases = app.exceptions("state=open").await;
    let found: Vec<(String, String, String)> = cases
        .iter()
        .map(|c| {
            (
                c["business_key"].as_str().unwrap().into(),
                c["kind"].as_str().unwrap().into(),
                c["owner"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        // W-2's termination left an open assignment behind.
        ("W-2", "worker_unavailable_with_open_assignments", "pmo"),
        ("C1", "unknown_worker", "hr"),
        ("C2", "unknown_project", "integration"),
        // W-2 is terminated and has an approved assignment: inactivity is checked first.
        ("C3", "worker_inactive", "pmo"),
        ("C4", "no_approved_assignment", "pmo"),
        ("C5", "contract_expired", "finance"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(found, expected);
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["held_unvalued"]["hr"], 1);
    assert_eq!(summary["held_unvalued"]["integration"], 1);
}

pub async fn a_contract_in_another_currency_converts_with_the_latest_fx_rate_rounding_twice(
    store: Backend,
) {
    let app = spawn_app(store).await;
    app.send(json!([
        rate_card("RC-EUR", "EUR", &[("consultant", "emea", "133.33", "2026-01-01", None)]),
        closed_won("P-1", "USD", "RC-EUR", "2026-01-01", None),
        hired("W-1", "2025-01-01", "emea", "consultant"),
        assignment("A-1", "W-1", "P-1", "approved"),
        event("erp", "fx-1", "fx_rate.upserted", json!({ "from": "EUR", "to": "USD", "rate": "1.0835", "valid_on": "2026-03-01", "source": "ecb" })),
        event("erp", "fx-2", "fx_rate.upserted", json!({ "from": "EUR", "to": "USD", "rate": "1.2", "valid_on": "2026-03-20", "source": "ecb" })),
    ]))
    .await;
    app.send(json!([time_entry(
        "fx-t",
        "FX1",
        "W-1",
        "2026-03-04",
        json!("7.5")
    )]))
    .await;
    app.settle().await;
    let line = &app.lines_of("FX1").await[0];
    // value = round(7.5 x 133.33) = 999.98 EUR (999.975 rounds half away from zero);
    // amount = round(999.98 x 1.0835) = 1083.48 USD.
    assert_eq!(line["rate_currency"], "EUR");
    assert_eq!(line["fx_rate"], "1.0835");
    assert_eq!(line["amount"], "1083.48");
    assert_eq!(line["currency"], "USD");
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["approved_value"], json!({ "USD": "1083.48" }));
    assert_eq!(summary["posted_value"], json!({ "USD": "1083.48" }));
}

pub async fn expenses_bill_at_cost_and_a_missing_fx_rate_is_finances(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let expense = |id: &str, amount: &str, currency: &str| {
        event(
            "psa",
            id,
            "expense.approved",
            json!({
                "expense_id": id, "worker_id": "W-1", "project_code": "P-1", "spent_on": "2026-03-04",
                "amount": amount, "currency": currency, "category": "travel", "billable": true
            }),
        )
    };
    app.send(json!([
        expense("X1", "212.40", "EUR"),
        expense("X2", "99.99", "GBP")
    ]))
    .await;
    app.settle().await;
    let line = &app.lines_of("X1").await[0];
    assert_eq!(
        (
            line["kind"].clone(),
            line["quantity"].clone(),
            line["amount"].clone()
        ),
        (json!("expense"), json!("1"), json!("212.40"))
    );
    let cases = app.exceptions("kind=missing_fx_rate").await;
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0]["owner"], "finance");
    assert_eq!(cases[0]["business_key"], "X2");
}

pub async fn the_same_id_with_another_body_is_a_conflict_kept_and_not_applied(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([time_entry(
        "psa-T4",
        "T4",
        "W-1",
        "2026-03-04",
        json!("4")
    )]))
    .await;
    let results = app
        .send(json!([time_entry(
            "psa-T4",
            "T4",
            "W-1",
            "2026-03-04",
            json!("5")
        )]))
        .await;
    assert_eq!(statuses(&results), ["conflict"]);
    assert!(results[0]["reason"].as_str().unwrap().contains("different"));
    app.settle().await;
    let lines = app.lines_of("T4").await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["quantity"], "4");
    let (_, event) = app.get("/v1/events/psa/psa-T4").await;
    assert_eq!(event["conflicts"].as_array().unwrap().len(), 1);
    assert_eq!(event["conflicts"][0]["data"]["hours"], "5");
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["conflicts"], 1);
    // Conflicts are listed, each with the case that routes it to the integration team.
    let (status, listed) = app.get("/v1/conflicts").await;
    assert_eq!(status, 200);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["event_id"], "psa-T4");
    assert_eq!(items[0]["raw"]["data"]["hours"], "5");
    let cases = app.exceptions("kind=conflicting_event").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["owner"], "integration");
    assert_eq!(cases[0]["id"], items[0]["case_id"]);
}

pub async fn hours_beyond_the_daily_limit_hold_the_entry_that_crossed_it(store: Backend) {
    let app = spawn_app_with(
        store,
        pshub_engine::Config {
            max_daily_hours: Some(rust_decimal::Decimal::from(10)),
            ..test_config()
        },
    )
    .await;
    app.with_firm().await;
    let results = app
        .send(json!([
            time_entry("d1", "D1", "W-1", "2026-03-04", json!("6")),
            time_entry("d2", "D2", "W-1", "2026-03-04", json!("4")),
            time_entry("d3", "D3", "W-1", "2026-03-04", json!("0.25")),
            time_entry("d4", "D4", "W-1", "2026-03-05", json!("8")),
            time_entry("d5", "D5", "W-2", "2026-03-04", json!("8")),
        ]))
        .await;
    assert_eq!(statuses(&results), ["accepted"; 5]);
    app.settle().await;
    for posted in ["D1", "D2", "D4", "D5"] {
        assert_eq!(app.lines_of(posted).await.len(), 1, "{posted}");
    }
    assert!(
        app.lines_of("D3").await.is_empty(),
        "10.25 h on one day is held"
    );
    let cases = app.exceptions("kind=daily_hours_exceeded").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["owner"], "pmo");
    assert_eq!(cases[0]["business_key"], "D3");
    let (_, event) = app.get("/v1/events/psa/d3").await;
    assert_eq!(event["status"], "held");
}

pub async fn summary_keeps_conservation_of_money(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    app.send(json!([
        time_entry("s1", "S1", "W-1", "2026-03-02", json!("8")),
        time_entry("s2", "S2", "W-2", "2026-03-02", json!("3.25")),
        worker_change("W-2", "terminated", "2026-03-02"),
        time_entry("s3", "S3", "W-2", "2026-03-03", json!("1")),
    ]))
    .await;
    app.settle().await;
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["approved_value"], json!({ "EUR": "1837.50" }));
    assert_eq!(summary["posted_value"], json!({ "EUR": "1687.50" }));
    assert_eq!(summary["held_value"], json!({ "EUR": "150.00" }));
    assert_eq!(summary["conservation_holds"], json!(true));
    assert_eq!(summary["lines_posted"], 2);
    // The held entry, and the open assignment W-2's termination left behind.
    assert_eq!(summary["exceptions_by_owner"]["pmo"], 2);
}

pub async fn an_expense_and_a_time_entry_with_one_id_post_apart(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let expense = |id: &str, kind: &str| {
        event(
            "psa",
            id,
            kind,
            json!({ "expense_id": "E-1", "worker_id": "W-1", "project_code": "P-1",
                    "spent_on": "2026-03-04", "amount": "100.00", "currency": "EUR",
                    "category": "travel", "billable": true }),
        )
    };
    app.send(json!([
        expense("x-ok", "expense.approved"),
        expense("x-no", "expense.rejected"),
        time_entry("t-ok", "E-1", "W-1", "2026-03-04", json!("2")),
        rejected("t-no", "E-1", "W-1", "2026-03-04", json!("2")),
    ]))
    .await;
    app.settle().await;
    let page = app
        .sandbox
        .list(pshub_connectors::sandbox::System::Erp, "lines", 0, 100)
        .unwrap()
        .unwrap();
    let lines = page["items"].as_array().unwrap();
    let keys: Vec<&str> = lines
        .iter()
        .map(|l| l["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        4,
        "two lines and two reversals, each its own: {keys:?}"
    );
    let net: rust_decimal::Decimal = lines
        .iter()
        .map(|l| {
            l["amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert!(net.is_zero(), "the ERP bills nothing in the end: {page}");
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(
        summary["posted_value"],
        json!({ "EUR": "0.00" }),
        "{summary}"
    );
}
