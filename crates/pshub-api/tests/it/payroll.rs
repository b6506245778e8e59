//! Payroll actuals through the front door: bad rows with their lines and in quarantine,
//! actual cost spread over projects pro rata to hours to the cent, the variance against
//! standard cost with a finance case, the same file twice, contractors.

use crate::helpers::*;
use serde_json::{Value, json};

fn entry(id: &str, worker: &str, project: &str, date: &str, hours: &str, billable: bool) -> Value {
    event(
        "psa",
        &format!("te-{id}"),
        "time_entry.approved",
        json!({
            "entry_id": id, "worker_id": worker, "project_code": project, "work_date": date,
            "hours": hours, "billable": billable
        }),
    )
}

fn grade_cost(hourly: &str) -> Value {
    event(
        "psa",
        &format!("cost-g2-{hourly}"),
        "cost_rate.upserted",
        json!({ "grade": "G2", "currency": "EUR", "hourly_cost": hourly, "valid_from": "2025-01-01" }),
    )
}

/// P-1 and P-2 (EUR), W-1 to W-3 in G2 at 100.00 an hour, and March's hours: W-1 3 h and
/// 4 h (not billable) on P-1 and 2 h on P-2, W-2 5 h on P-1, W-3 none.
async fn firm_with_hours(app: &TestApp) {
    app.with_firm().await;
    let mut second = closed_won("P-2", "EUR", "RC-EUR", "2026-01-01", None);
    second["id"] = json!("won-P-2");
    second["data"]["opportunity_id"] = json!("OPP-P-2");
    second["data"]["contract"]["contract_id"] = json!("K-P-2");
    let results = app
        .send(json!([
            second,
            grade_cost("100.00"),
            hired("W-3", "2025-01-01", "emea", "consultant"),
            assignment("A-3", "W-1", "P-2", "approved"),
            entry("E-1", "W-1", "P-1", "2026-03-02", "3", true),
            entry("E-2", "W-1", "P-1", "2026-03-03", "4", false),
            entry("E-3", "W-1", "P-2", "2026-03-04", "2", true),
            entry("E-4", "W-2", "P-1", "2026-03-02", "5", true),
            // Another month: not spread over.
            entry("E-5", "W-1", "P-1", "2026-04-01", "8", true),
        ]))
        .await;
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );
    app.settle().await;
}

const MARCH: &str = "\u{feff}currency,gross_cost,note,period,worker_id\r\n\
EUR,1000.00,\"bonus, none\",2026-03,W-1\r\n\
EUR,-5.00,,2026-03,W-2\r\n\
EUR,500.00,,2026-03,W-2\r\n\
EURO,10.00,,2026-03,W-3\r\n\
EUR,900.00,\"two\r\nlines\",2026-03,W-3\r\n\
EUR,750.00,,2026-03,W-9\r\n";

pub async fn bad_rows_are_reported_with_their_lines_and_kept_in_quarantine_while_good_rows_load(
    store: Backend,
) {
    let app = spawn_app(store).await;
    firm_with_hours(&app).await;
    let (status, answer) = app.post_payroll("march.csv", MARCH).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["rows"].clone(),
            answer["loaded"].clone(),
            answer["duplicates"].clone()
        ),
        (json!(6), json!(4), json!(0)),
        "{answer}"
    );
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{answer}");
    assert_eq!(rejected[0]["line"], 3);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("gross_cost -5.00 is negative"),
        "{rejected:?}"
    );
    assert_eq!(rejected[1]["line"], 5);
    assert!(
        rejected[1]["reason"].as_str().unwrap().contains("currency"),
        "{rejected:?}"
    );

    let (_, quarantine) = app.get("/v1/quarantine").await;
    let rows: Vec<&Value> = quarantine["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["kind"] == "payroll_row")
        .collect();
    assert_eq!(rows.len(), 2, "{quarantine}");
    assert_eq!(
        (
            rows[0]["file"].clone(),
            rows[0]["line"].clone(),
            rows[0]["raw"].clone()
        ),
        (
            json!("march.csv"),
            json!(3),
            json!("EUR,-5.00,,2026-03,W-2")
        ),
        "{:?}",
        rows[0]
    );
    assert!(rows[0]["reason"].as_str().unwrap().contains("negative"));

    // A file without a required column is refused whole, naming it.
    let (status, body) = app
        .post_payroll("bad.csv", "worker_id,period,currency\nW-1,2026-03,EUR\n")
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("gross_cost"),
        "{body}"
    );

    // The refused row, corrected and replayed, is loaded as if it had been good.
    let id = rows[1]["id"].as_i64().unwrap();
    let (status, replayed) = app
        .post_json(
            &format!("/v1/quarantine/{id}/replay"),
            json!({ "worker_id": "W-3", "period": "2026-04", "gross_cost": "10.00", "currency": "EUR" }),
        )
        .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["result"]["status"], "accepted", "{replayed}");
    let (_, quarantine) = app.get("/v1/quarantine").await;
    let state = quarantine["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == id)
        .map(|q| q["state"].clone());
    assert_eq!(state, Some(json!("replayed")));
    app.check_payroll().await;
    // W-3 has no hours in April either: its case says so.
    let cases = app.exceptions("kind=payroll_without_hours").await;
    let keys: Vec<&str> = cases
        .iter()
        .map(|c| c["business_key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"W-3:2026-04"), "{keys:?}");
}

pub async fn actual_cost_is_spread_pro_rata_to_the_cent_and_the_variance_opens_finance_cases(
    store: Backend,
) {
    let app = spawn_app(store).await;
    firm_with_hours(&app).await;
    let (status, _) = app.post_payroll("march.csv", MARCH).await;
    assert_eq!(status, 200);
    let checked = app.check_payroll().await;
    assert_eq!(checked.actuals, 4);

    // W-1's 1000.00 over 3 h, 4 h and 2 h: 333.33, 444.45 (the largest remainder takes the
    // cent left over) and 222.22. Standard: 100.00 an hour.
    let (status, variance) = app
        .get("/v1/projects/P-1/cost-variance?period=2026-03")
        .await;
    assert_eq!(status, 200, "{variance}");
    assert_eq!(variance["currency"], "EUR");
    let rows = variance["rows"].as_array().unwrap();
    let row = |worker: &str| {
        rows.iter()
            .find(|r| r["worker_id"] == worker)
            .map(|r| {
                (
                    r["hours"].clone(),
                    r["actual_cost"].clone(),
                    r["standard_cost"].clone(),
                    r["variance"].clone(),
                    r["variance_pct"].clone(),
                )
            })
            .unwrap_or_else(|| panic!("no row for {worker}: {variance}"))
    };
    assert_eq!(
        row("W-1"),
        (
            json!("7"),
            json!("777.78"),
            json!("700.00"),
            json!("77.78"),
            json!("11.11")
        )
    );
    assert_eq!(
        row("W-2"),
        (
            json!("5"),
            json!("500.00"),
            json!("500.00"),
            json!("0.00"),
            json!("0.00")
        )
    );
    assert_eq!(variance["totals"]["actual_cost"], "1277.78", "{variance}");
    assert_eq!(variance["totals"]["standard_cost"], "1200.00");
    let (_, other) = app
        .get("/v1/projects/P-2/cost-variance?period=2026-03")
        .await;
    // To the cent: 777.78 on P-1 and 222.22 on P-2 make W-1's 1000.00.
    assert_eq!(other["rows"][0]["actual_cost"], "222.22", "{other}");

    let cases = app.exceptions("kind=cost_variance").await;
    let mut keys: Vec<(String, String)> = cases
        .iter()
        .map(|c| {
            (
                c["business_key"].as_str().unwrap().to_string(),
                c["owner"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("P-1:W-1:2026-03".to_string(), "finance".to_string()),
            ("P-2:W-1:2026-03".to_string(), "finance".to_string())
        ]
    );
    let without = app.exceptions("kind=payroll_without_hours").await;
    assert_eq!(without.len(), 1, "{without:?}");
    assert_eq!(
        (
            without[0]["business_key"].clone(),
            without[0]["owner"].clone()
        ),
        (json!("W-3:2026-03"), json!("finance"))
    );
    let unknown = app.exceptions("kind=payroll_unknown_worker").await;
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(unknown[0]["owner"], "hr");

    // The same file again changes nothing and opens nothing.
    let (_, again) = app.post_payroll("march.csv", MARCH).await;
    assert_eq!(
        (again["loaded"].clone(), again["duplicates"].clone()),
        (json!(0), json!(4)),
        "{again}"
    );
    let checked = app.check_payroll().await;
    assert_eq!(checked.cases_opened, 0);
    assert_eq!(app.exceptions("kind=cost_variance").await.len(), 2);
    let (_, same) = app
        .get("/v1/projects/P-1/cost-variance?period=2026-03")
        .await;
    assert_eq!(same["rows"], variance["rows"]);

    // A later row replaces W-1's actual: 945.00 puts both projects at 5%, and the cases
    // resolve by themselves.
    let (_, later) = app
        .post_payroll(
            "march-fix.csv",
            "worker_id,period,gross_cost,currency\nW-1,2026-03,945,EUR\n",
        )
        .await;
    assert_eq!(later["loaded"], 1, "{later}");
    app.check_payroll().await;
    let cases = app.exceptions("kind=cost_variance").await;
    assert!(cases.iter().all(|c| c["state"] == "resolved"), "{cases:?}");
    let (_, fixed) = app
        .get("/v1/projects/P-1/cost-variance?period=2026-03")
        .await;
    assert_eq!(fixed["rows"][0]["actual_cost"], "735.00", "{fixed}");

    let (status, _) = app
        .get("/v1/projects/P-1/cost-variance?period=2026-3")
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .get("/v1/projects/P-404/cost-variance?period=2026-03")
        .await;
    assert_eq!(status, 404);
}

pub async fn a_contractors_cost_comes_from_their_rate_agreement_never_from_payroll(store: Backend) {
    let app = spawn_app(store).await;
    firm_with_hours(&app).await;
    let mut contractor = hired("W-4", "2025-01-01", "emea", "consultant");
    contractor["data"]["classification"] = json!("contractor");
    let results = app
        .send(json!([
            contractor,
            event(
                "psa",
                "cost-w4",
                "cost_rate.upserted",
                json!({ "worker_id": "W-4", "currency": "EUR", "hourly_cost": "120.00", "valid_from": "2025-01-01" })
            ),
            assignment("A-4", "W-4", "P-1", "approved"),
            entry("E-6", "W-4", "P-1", "2026-03-05", "5", true),
        ]))
        .await;
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );
    app.settle().await;
    let (_, loaded) = app
        .post_payroll(
            "march.csv",
            "worker_id,period,gross_cost,currency\nW-4,2026-03,9999.00,EUR\n",
        )
        .await;
    assert_eq!(loaded["loaded"], 1, "{loaded}");
    app.check_payroll().await;
    let cases = app.exceptions("kind=payroll_for_contractor").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(
        (cases[0]["owner"].clone(), cases[0]["business_key"].clone()),
        (json!("hr"), json!("W-4:2026-03"))
    );
    let (_, variance) = app
        .get("/v1/projects/P-1/cost-variance?period=2026-03")
        .await;
    let row = variance["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["worker_id"] == "W-4")
        .cloned()
        .unwrap();
    // 5 h at the contractor's own 120.00, not the grade's 100.00, and not the payroll row.
    assert_eq!(
        (
            row["classification"].clone(),
            row["actual_cost"].clone(),
            row["standard_cost"].clone(),
            row["variance"].clone()
        ),
        (
            json!("contractor"),
            json!("600.00"),
            json!("600.00"),
            json!("0.00")
        ),
        "{row}"
    );
    assert!(app.exceptions("kind=cost_variance").await.is_empty());
}

pub async fn a_payroll_actuals_event_takes_the_same_path_as_a_file_row(store: Backend) {
    let app = spawn_app(store).await;
    firm_with_hours(&app).await;
    let row = json!({ "worker_id": "W-2", "period": "2026-03", "gross_cost": "650.00", "currency": "EUR" });
    let results = app
        .send(json!([event(
            "payroll",
            "pay-W-2-2026-03",
            "payroll.actuals",
            row
        )]))
        .await;
    assert_eq!(results[0]["status"], "accepted", "{results:?}");
    let checked = app.check_payroll().await;
    assert_eq!(checked.actuals, 1);
    let cases = app.exceptions("kind=cost_variance").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["business_key"], "P-1:W-2:2026-03");
    assert!(
        cases[0]["reason"].as_str().unwrap().contains("30.00%"),
        "{:?}",
        cases[0]
    );
    // The same actual from a file is a duplicate of the event's.
    let (_, again) = app
        .post_payroll(
            "march.csv",
            "worker_id,period,gross_cost,currency\nW-2,2026-03,650.0,EUR\n",
        )
        .await;
    assert_eq!(
        (again["loaded"].clone(), again["duplicates"].clone()),
        (json!(0), json!(1)),
        "{again}"
    );
}

pub async fn a_load_larger_than_a_slice_opens_each_case_once(store: Backend) {
    let app = spawn_app(store).await;
    app.with_firm().await;
    let rows = pshub_engine::flows::payroll_costing::SLICE + 3;
    let mut csv = String::from("worker_id,period,gross_cost,currency\n");
    for i in 0..rows {
        csv.push_str(&format!("X-{i:05},2026-03,1000,EUR\n"));
    }
    let (status, loaded) = app.post_payroll("unknown.csv", &csv).await;
    assert_eq!(status, 200, "{loaded}");
    assert_eq!(loaded["loaded"], rows, "{loaded}");
    let checked = app.check_payroll().await;
    assert_eq!(
        (checked.actuals, checked.cases_opened),
        (rows as u64, rows as u64)
    );
    // Checked: nothing left to do, and nothing opened twice.
    let again = app.check_payroll().await;
    assert_eq!((again.actuals, again.cases_opened), (0, 0));
    let (_, page) = app
        .get("/v1/exceptions?kind=payroll_unknown_worker&limit=1000")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1000);
    assert!(page["next"].is_string());
}
