//! Regional rules from the configuration file alone, and payroll loaded by `pshub load
//! payroll` while `serve` runs on the same store: a new region's overtime is costed and
//! billed by its rules, a contractor's lines take their tax treatment, and the running hub
//! opens the cases the payroll implies.

mod support;

use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_pshub");

fn event(source: &str, id: &str, kind: &str, data: Value) -> Value {
    json!({ "id": id, "source": source, "type": kind, "schema_version": 1,
            "occurred_at": "2026-03-04T17:02:11Z", "data": data })
}

fn hire(worker: &str, region: &str, classification: &str) -> Value {
    event(
        "hris",
        &format!("hire-{worker}"),
        "worker.hired",
        json!({ "worker_id": worker, "effective_date": "2025-01-01", "legal_entity": "SE01",
                "region": region, "cost_center": "CC1", "role": "consultant", "grade": "G2",
                "classification": classification }),
    )
}

fn entry(id: &str, worker: &str, date: &str, hours: &str) -> Value {
    event(
        "psa",
        id,
        "time_entry.approved",
        json!({ "entry_id": id, "worker_id": worker, "project_code": "P-N", "work_date": date,
                "hours": hours, "billable": true }),
    )
}

/// A region nobody wrote code for: its week, its overtime, and an entity that reverse
/// charges contractors' work.
const CONFIG: &str = r#"
[legal_entities.SE01]
currency = "EUR"
tax_code = "SE-VAT25"

[legal_entities.SE01.classification_tax_codes]
contractor = "SE-REVERSE"

[regions.nordics]
weekly_hours = 37.5

[regions.nordics.overtime]
daily_hours = 8
weekly_hours = 37.5
cost_multiplier = 1.5
bill_multiplier = 1.25

[payroll]
variance_threshold_pct = 10
"#;

/// Polls `path` until `done` holds on its answer, for at most 20 s.
async fn wait_for(api: &Api, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = api.get_ok(path).await;
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_region_added_in_the_configuration_file_alone_costs_and_bills_its_overtime() {
    let dir = TempDir::new("costing-region");
    let config = dir.join("pshub.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let log = dir.join("serve.log");
    let mut server = serve(dir.path())
        .env("PSHUB_CONFIG", config.to_str().unwrap())
        .log(log)
        .spawn();
    wait_listening(server.port);
    let token = create_token(dir.path(), None, "admin", None);
    let api = Api::new(&reqwest::Client::new(), &server.base, &token);

    let events = vec![
        event(
            "psa",
            "rc-n",
            "rate_card.upserted",
            json!({ "rate_card_id": "RC-N", "currency": "EUR", "rates": [
                { "role": "consultant", "region": "nordics", "rate": "100.00", "valid_from": "2026-01-01" }
            ] }),
        ),
        event(
            "crm",
            "won-n",
            "opportunity.closed_won",
            json!({
                "opportunity_id": "OPP-N",
                "customer": { "customer_id": "C-N", "legal_name": "Fjord AB", "tax_id": "SE1", "country": "SE", "currency": "EUR" },
                "contract": { "contract_id": "K-N", "billing_model": "time_and_materials", "currency": "EUR",
                              "rate_card_id": "RC-N", "start": "2026-01-01", "bill_overtime": true },
                "project": { "project_code": "P-N", "name": "Fjord", "legal_entity": "SE01", "region": "nordics", "service_line": "advisory" }
            }),
        ),
        event(
            "psa",
            "cost-g2",
            "cost_rate.upserted",
            json!({ "grade": "G2", "currency": "EUR", "hourly_cost": "60.00", "valid_from": "2025-01-01" }),
        ),
        hire("W-N", "nordics", "employee"),
        hire("W-C", "nordics", "contractor"),
        event(
            "psa",
            "cost-wc",
            "cost_rate.upserted",
            json!({ "worker_id": "W-C", "currency": "EUR", "hourly_cost": "90.00", "valid_from": "2025-01-01" }),
        ),
    ];
    let mut all = events;
    for worker in ["W-N", "W-C"] {
        all.push(event(
            "psa",
            &format!("a-{worker}"),
            "assignment.changed",
            json!({ "assignment_id": format!("A-{worker}"), "version": 1, "worker_id": worker, "project_code": "P-N",
                    "role": "consultant", "start": "2026-01-01", "end": "2026-12-31", "hours": "400", "state": "approved" }),
        ));
    }
    // Monday 10 h: 2 past the day's 8. Tuesday to Thursday 8 h each (34 h in the week),
    // Friday 6 h: 2.5 past the week's 37.5.
    all.push(entry("N-MON", "W-N", "2026-03-02", "10"));
    for (id, date) in [
        ("N-TUE", "2026-03-03"),
        ("N-WED", "2026-03-04"),
        ("N-THU", "2026-03-05"),
    ] {
        all.push(entry(id, "W-N", date, "8"));
    }
    all.push(entry("N-FRI", "W-N", "2026-03-06", "6"));
    all.push(entry("C-MON", "W-C", "2026-03-02", "4"));
    let results = api.post_events(&all).await.unwrap();
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );

    let posted = |lines: &Vec<Value>| lines.len() == 1 && lines[0]["status"] == "posted";
    let monday = loop_until(&api, "N-MON", posted).await;
    // 10 h at 100.00, 2 of them at 1.25: 1000.00 + 2 x 25.00.
    assert_eq!(
        (
            monday["amount"].clone(),
            monday["overtime_hours"].clone(),
            monday["tax_code"].clone()
        ),
        (json!("1050.00"), json!("2"), json!("SE-VAT25")),
        "{monday}"
    );
    let tuesday = loop_until(&api, "N-TUE", posted).await;
    assert_eq!(
        (tuesday["amount"].clone(), tuesday["overtime_hours"].clone()),
        (json!("800.00"), Value::Null)
    );
    let friday = loop_until(&api, "N-FRI", posted).await;
    assert_eq!(
        (friday["amount"].clone(), friday["overtime_hours"].clone()),
        (json!("662.50"), json!("2.5")),
        "{friday}"
    );
    let contractor = loop_until(&api, "C-MON", posted).await;
    assert_eq!(contractor["tax_code"], "SE-REVERSE", "{contractor}");

    // Payroll loaded by another process into the store the hub runs on.
    let payroll = dir.join("march.csv");
    std::fs::write(
        &payroll,
        "worker_id,period,gross_cost,currency\nW-N,2026-03,3000.00,EUR\nW-C,2026-03,500.00,EUR\nW-X,2026-13,1,EUR\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["load", "payroll"])
        .arg(&payroll)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:4: period '2026-13' is not a month",
            payroll.display()
        )),
        "{stderr}"
    );
    assert!(
        stdout.contains("3 rows, 2 loaded, 0 duplicates, 1 rejected"),
        "{stdout}"
    );

    // Standard cost: 35.5 regular hours and 4.5 overtime at 1.5, at 60.00: 2535.00.
    let variance = api
        .get_ok("/v1/projects/P-N/cost-variance?period=2026-03")
        .await;
    let row = |worker: &str| {
        variance["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["worker_id"] == worker)
            .cloned()
            .unwrap_or_else(|| panic!("no {worker} in {variance}"))
    };
    let employee = row("W-N");
    assert_eq!(
        (
            employee["hours"].clone(),
            employee["actual_cost"].clone(),
            employee["standard_cost"].clone(),
            employee["variance"].clone(),
            employee["variance_pct"].clone()
        ),
        (
            json!("40"),
            json!("3000.00"),
            json!("2535.00"),
            json!("465.00"),
            json!("18.34")
        ),
        "{variance}"
    );
    // The contractor's cost is their rate agreement, whatever payroll says.
    assert_eq!(row("W-C")["actual_cost"], "360.00");

    // The running hub finds the load and opens its cases.
    let cases = wait_for(&api, "/v1/exceptions?kind=cost_variance", |body| {
        body["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    })
    .await;
    assert_eq!(
        cases["items"][0]["business_key"], "P-N:W-N:2026-03",
        "{cases}"
    );
    assert_eq!(cases["items"][0]["owner"], "finance");
    let contractor_cases = wait_for(&api, "/v1/exceptions?kind=payroll_for_contractor", |body| {
        body["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    })
    .await;
    assert_eq!(contractor_cases["items"][0]["owner"], "hr");
    let quarantine = api.get_ok("/v1/quarantine").await;
    assert!(
        quarantine["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["kind"] == "payroll_row" && q["line"] == 4),
        "{quarantine}"
    );
    // The leakage report over the same store, from the command line: the ERP holds every
    // line the hub posted, and the contract's terms as the deal made them.
    let report = api.get_ok("/v1/reports/leakage?period=2026-03").await;
    server.kill();
    let out = dir.join("leakage");
    let output = Command::new(BIN)
        .args([
            "reconcile",
            "ledger",
            "--period",
            "2026-03",
            "--json",
            "--out",
        ])
        .arg(&out)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["counts"], report["counts"], "{printed}");
    assert_eq!(
        printed["counts"],
        json!({ "approved_unbilled": 0, "billed_unapproved": 0, "duplicate": 0, "rate_mismatch": 0, "terms_mismatch": 0 })
    );
    let csv = std::fs::read_to_string(out.join("leakage.csv")).unwrap();
    assert!(
        csv.starts_with("kind,entry_id,project_code,worker_id,date,hub_amount,erp_amount,amount,currency,detail\n"),
        "{csv}"
    );
    let bad = Command::new(BIN)
        .args(["reconcile", "ledger", "--period", "2026-3", "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--period"));
}

/// The one line of an entry once `done` holds on its lines, within 20 s.
async fn loop_until(api: &Api, entry: &str, done: impl Fn(&Vec<Value>) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = api.lines_of(entry).await;
        if done(&lines) {
            return lines[0].clone();
        }
        assert!(Instant::now() < deadline, "{entry}: {lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
