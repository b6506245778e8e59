//! `pshub serve --config examples/tryton.toml` against a real Tryton 8.2 on loopback
//! (`tests/tryton/setup.sh`, which `.ci/run` runs first). Events go in through the front
//! door; what is checked is read from Tryton itself, as its administrator.

mod support;

use pshub_connectors::tryton::client::Client;
use pshub_connectors::tryton::local::LocalTryton;
use pshub_connectors::tryton::mapping::read_hours;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn event(source: &str, id: &str, kind: &str, data: Value) -> Value {
    json!({ "id": id, "source": source, "type": kind, "schema_version": 1,
            "occurred_at": "2026-10-01T09:00:00Z", "data": data })
}

fn won(event_id: &str) -> Value {
    event(
        "crm",
        event_id,
        "opportunity.closed_won",
        json!({
            "opportunity_id": "OPP-T1",
            "customer": { "customer_id": "C-T1", "legal_name": "Globex GmbH", "tax_id": "DE999", "country": "DE", "currency": "EUR" },
            "contract": { "contract_id": "K-T1", "billing_model": "time_and_materials", "currency": "EUR",
                          "rate_card_id": "RC-T", "start": "2026-01-01" },
            "project": { "project_code": "P-T1", "name": "Rollout", "legal_entity": "DE01", "region": "emea", "service_line": "advisory" }
        }),
    )
}

fn approval(entry: &str, worker: &str, day: u32, hours: &str) -> Value {
    event(
        "psa",
        &format!("ok-{entry}"),
        "time_entry.approved",
        json!({ "entry_id": entry, "worker_id": worker, "project_code": "P-T1",
                "work_date": format!("2026-10-{day:02}"), "hours": hours, "billable": true }),
    )
}

struct Reader {
    admin: Client,
}

impl Reader {
    /// `search_read` as the administrator (a blocking call, off the test's runtime).
    fn read(&self, model: &str, domain: Value, fields: &[&str]) -> Vec<Value> {
        let rows = tokio::task::block_in_place(|| {
            self.admin.model_with(
                model,
                "search_read",
                vec![domain, json!(0), Value::Null, Value::Null, json!(fields)],
                json!({"active_test": false}),
            )
        })
        .unwrap();
        rows.as_array().cloned().unwrap_or_default()
    }

    /// Polls until `done` holds on the rows of `model`, for at most 60 s.
    async fn until(
        &self,
        model: &str,
        domain: Value,
        fields: &[&str],
        done: impl Fn(&[Value]) -> bool,
        why: impl Fn() -> String,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let rows = self.read(model, domain.clone(), fields);
            if done(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "{model} never got there ({} rows): {}",
                rows.len(),
                why()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Tryton's hours per employee (party code) over timesheet lines read with
/// `duration` and `employee.party.code`.
fn hours_by_worker(rows: &[Value]) -> BTreeMap<String, Decimal> {
    let mut hours: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in rows {
        let worker = row["employee."]["party."]["code"]
            .as_str()
            .unwrap()
            .to_string();
        *hours.entry(worker).or_default() += read_hours(&row["duration"]).unwrap();
    }
    hours
}

fn serve_on_tryton(dir: &Path, tryton: &LocalTryton) -> Server {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tryton.toml");
    serve_with_tryton(dir, &example, tryton)
}

/// A rate card, four hired and assigned consultants, and the deal, sent twice and again
/// under a new event id.
fn reference() -> Vec<Value> {
    let mut reference = vec![event(
        "psa",
        "rc-t",
        "rate_card.upserted",
        json!({ "rate_card_id": "RC-T", "currency": "EUR", "rates": [
            { "role": "consultant", "region": "emea", "rate": "150.00", "valid_from": "2026-01-01" }
        ] }),
    )];
    for w in 1..=4 {
        reference.push(event(
            "hris",
            &format!("hire-W-T{w}"),
            "worker.hired",
            json!({ "worker_id": format!("W-T{w}"), "effective_date": "2026-01-01", "legal_entity": "DE01",
                    "region": "emea", "cost_center": "CC1", "role": "consultant", "grade": "G2" }),
        ));
    }
    for w in 1..=4 {
        reference.push(event(
            "psa",
            &format!("a-W-T{w}"),
            "assignment.changed",
            json!({ "assignment_id": format!("A-T{w}"), "version": 1, "worker_id": format!("W-T{w}"),
                    "project_code": "P-T1", "role": "consultant", "start": "2026-01-01",
                    "end": "2026-12-31", "hours": "2000", "state": "approved" }),
        ));
    }
    // The deal, sent twice, and again under a new event id.
    reference.push(won("won-1"));
    reference.push(won("won-1"));
    reference.push(won("won-1-again"));
    reference
}

const HOURS: [&str; 8] = ["0.5", "1", "1.25", "2", "3.5", "4", "7.75", "8"];

/// `n` approvals over the four workers in October, with the hours each worker is owed.
fn approvals(n: usize) -> (Vec<Value>, BTreeMap<String, Decimal>) {
    let mut expected: BTreeMap<String, Decimal> = BTreeMap::new();
    let approvals = (0..n)
        .map(|i| {
            let worker = format!("W-T{}", i % 4 + 1);
            let h = HOURS[i % HOURS.len()];
            *expected.entry(format!("EMP-{worker}")).or_default() += h.parse::<Decimal>().unwrap();
            approval(&format!("TT-{i}"), &worker, (i % 28 + 1) as u32, h)
        })
        .collect();
    (approvals, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deals_and_approved_time_reach_tryton_once_and_a_rejection_removes_its_line() {
    let dir = TempDir::new("tryton-front-door");
    let tryton = tokio::task::block_in_place(|| LocalTryton::start(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    let server = serve_on_tryton(dir.path(), &tryton);
    let token = create_token(dir.path(), None, "admin", None);
    let api = Api::new(&reqwest::Client::new(), &server.base, &token);
    let reader = Reader {
        admin: Client::new(&tryton.admin_config()).unwrap(),
    };
    let log = || server.log_tail(30);

    let reference = reference();
    let results = api.post_events(&reference).await.unwrap();
    assert!(
        results.iter().all(|r| r["status"] != "quarantined"),
        "{results:?}"
    );

    let (approvals, expected) = approvals(1000);
    for batch in approvals.chunks(250) {
        let results = api.post_events(batch).await.unwrap();
        assert!(
            results.iter().all(|r| r["status"] == "accepted"),
            "{results:?}"
        );
    }
    // Sent again: nothing new.
    let results = api.post_events(&approvals[..100]).await.unwrap();
    assert!(
        results.iter().all(|r| r["status"] == "duplicate"),
        "{:?}",
        &results[..3]
    );

    let rows = reader
        .until(
            "timesheet.line",
            json!([["description", "like", "pshub:TT-%"]]),
            &["description", "duration", "employee.party.code"],
            |rows| rows.len() >= 1000,
            log,
        )
        .await;
    assert_eq!(rows.len(), 1000);
    assert_eq!(hours_by_worker(&rows), expected);
    let descriptions: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r["description"].as_str())
        .collect();
    assert_eq!(descriptions.len(), 1000, "every line once");
    assert!(descriptions.contains("pshub:TT-0:1"));

    let parties = reader.read("party.party", json!([["code", "=", "C-T1"]]), &["name"]);
    assert_eq!(parties.len(), 1, "{parties:?}");
    let projects = reader.read(
        "project.work",
        json!([["comment", "=", "pshub:project:P-T1"]]),
        &["name", "party"],
    );
    assert_eq!(projects.len(), 1, "{projects:?}");
    assert_eq!(projects[0]["name"], "P-T1 Rollout");
    assert_eq!(projects[0]["party"], parties[0]["id"]);
    let employees = reader.read(
        "company.employee",
        json!([["party.code", "like", "EMP-W-T%"]]),
        &[],
    );
    assert_eq!(employees.len(), 4, "{employees:?}");
    let tasks = reader.read("project.work", json!([["type", "=", "task"]]), &["name"]);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["name"], "consultant @ 150.00 EUR");

    // A rejection before invoicing removes the line from Tryton.
    let mut rejection = approval("TT-7", "W-T4", 8, HOURS[7 % HOURS.len()]);
    rejection["id"] = json!("no-TT-7");
    rejection["type"] = json!("time_entry.rejected");
    let results = api.post_events(&[rejection]).await.unwrap();
    assert_eq!(results[0]["status"], "accepted", "{results:?}");
    reader
        .until(
            "timesheet.line",
            json!([["description", "like", "pshub:TT-%"]]),
            &[],
            |rows| rows.len() == 999,
            log,
        )
        .await;
    assert!(
        reader
            .read(
                "timesheet.line",
                json!([["description", "=", "pshub:TT-7:1"]]),
                &[]
            )
            .is_empty()
    );

    // October has ended by the hub's clock: one posted invoice for the project and month,
    // for every hour but the rejected entry's, at 150.00.
    let rejected: Decimal = HOURS[7 % HOURS.len()].parse().unwrap();
    let total: Decimal = expected.values().copied().sum::<Decimal>() - rejected;
    let invoices = reader
        .until(
            "account.invoice",
            json!([["reference", "=", "pshub:P-T1:2026-10"]]),
            &["state", "untaxed_amount", "total_amount", "party", "number"],
            |rows| rows.len() == 1 && rows[0]["state"] == "posted",
            log,
        )
        .await;
    let invoice = &invoices[0];
    assert_eq!(
        pshub_connectors::tryton::mapping::read_decimal(&invoice["untaxed_amount"]),
        Some(total * Decimal::from(150))
    );
    let lines = reader.read(
        "timesheet.line",
        json!([["description", "like", "pshub:TT-%"]]),
        &["invoice_line.invoice"],
    );
    assert!(
        lines
            .iter()
            .all(|l| l["invoice_line."]["invoice"] == invoice["id"]),
        "every line points at its invoice"
    );
    assert_eq!(
        reader
            .read("account.invoice", json!([["type", "=", "out"]]), &[])
            .len(),
        1
    );

    // On demand: nothing is left of October; a month that has not ended is refused.
    let invoice_run = |period: &str| {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tryton.toml");
        let (user, password) = pshub_connectors::tryton::local::CONNECTOR_USER;
        std::process::Command::new(env!("CARGO_BIN_EXE_pshub"))
            .args(["invoice", "run", "--period", period, "--config"])
            .arg(&example)
            .env("PSHUB_TRYTON_URL", tryton.url())
            .env(
                "PSHUB_TRYTON_DATABASE",
                pshub_connectors::tryton::local::DATABASE,
            )
            .env("PSHUB_TRYTON_USER", user)
            .env("PSHUB_TRYTON_PASSWORD", password)
            .output()
            .unwrap()
    };
    let done = tokio::task::block_in_place(|| invoice_run("2026-10"));
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success() && said.contains("2026-10: no lines left to invoice"),
        "{said}"
    );
    let open = tokio::task::block_in_place(|| invoice_run("2999-01"));
    let said = String::from_utf8_lossy(&open.stderr);
    assert!(
        !open.status.success() && said.contains("has not ended"),
        "{said}"
    );
    let bad = tokio::task::block_in_place(|| invoice_run("2026-13"));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("'2026-13' is not a month"));

    // Paid in Tryton with its pay wizard: the hub hears it and tells the CRM.
    pay(&reader.admin, invoice);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = api.get_ok("/v1/invoices/INV-P-T1-2026-10").await;
        if answer["crm_status"] == "paid" {
            assert_eq!(answer["status"], "paid", "{answer}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the CRM never heard of the payment: {answer}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pays an invoice in full with Tryton's pay wizard, as an accountant would.
fn pay(admin: &Client, invoice: &Value) {
    tokio::task::block_in_place(|| {
        let id = invoice["id"].as_i64().unwrap();
        let method = admin
            .model(
                "account.invoice.payment.method",
                "search",
                vec![json!([]), json!(0), json!(1), Value::Null],
            )
            .unwrap()[0]
            .clone();
        let context =
            json!({"active_model": "account.invoice", "active_id": id, "active_ids": [id]});
        let session = admin
            .call_with(
                "wizard.account.invoice.pay.create",
                vec![],
                Some(context.clone()),
            )
            .unwrap();
        let sid = session[0].clone();
        let today = chrono::Utc::now().date_naive();
        admin
            .call_with(
                "wizard.account.invoice.pay.execute",
                vec![sid.clone(), json!({}), json!("start")],
                Some(context.clone()),
            )
            .unwrap();
        let start = json!({"start": {
            "payee": invoice["party"], "amount": invoice["total_amount"], "currency": 1, "company": 1,
            "payment_method": method, "date": pshub_connectors::tryton::mapping::date(today),
            "description": "paid in full",
        }});
        admin
            .call_with(
                "wizard.account.invoice.pay.execute",
                vec![sid.clone(), start, json!("choice")],
                Some(context.clone()),
            )
            .unwrap();
        let _ = admin.call_with(
            "wizard.account.invoice.pay.delete",
            vec![sid],
            Some(context),
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_while_lines_go_to_tryton_leave_every_line_and_record_there_once() {
    let dir = TempDir::new("tryton-sigkill");
    let tryton = tokio::task::block_in_place(|| LocalTryton::start(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut server = serve_on_tryton(dir.path(), &tryton);
    let token = create_token(dir.path(), None, "admin", None);
    let reader = Reader {
        admin: Client::new(&tryton.admin_config()).unwrap(),
    };
    let lines = |reader: &Reader| {
        reader.read(
            "timesheet.line",
            json!([["description", "like", "pshub:TT-%"]]),
            &["description"],
        )
    };
    const N: usize = 4000;
    let (approvals, expected) = approvals(N);
    let api = Api::new(&reqwest::Client::new(), &server.base, &token);
    api.post_events(&reference()).await.unwrap();
    for batch in approvals.chunks(500) {
        api.post_events(batch).await.unwrap();
    }

    // Killed once while the first batch is in flight, and once in the middle.
    for at_least in [1, N / 2] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let count = lines(&reader).len();
            if count >= at_least {
                assert!(count < N, "every line was posted before the kill ({count})");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no lines reached Tryton: {}",
                server.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill();
        server = serve_on_tryton(dir.path(), &tryton);
    }
    // Everything sent again to the last process: nothing new.
    let api = Api::new(&reqwest::Client::new(), &server.base, &token);
    let again = api.post_events(&reference()).await.unwrap();
    assert!(
        again.iter().all(|r| r["status"] == "duplicate"),
        "{again:?}"
    );
    for batch in approvals.chunks(500) {
        api.post_events(batch).await.unwrap();
    }

    let all = reader
        .until(
            "timesheet.line",
            json!([["description", "like", "pshub:TT-%"]]),
            &["description", "duration", "employee.party.code"],
            |rows| rows.len() >= N,
            || server.log_tail(20),
        )
        .await;
    // Settled: nothing more arrives after the hub has nothing left to post.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let summary = api.summary().await;
        if summary["lines_posted"] == N && summary["lines_undelivered"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{summary}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_after = lines(&reader);
    assert_eq!(all_after.len(), N, "no line twice");
    let descriptions: std::collections::BTreeSet<&str> = all
        .iter()
        .filter_map(|r| r["description"].as_str())
        .collect();
    assert_eq!(descriptions.len(), N);
    assert_eq!(hours_by_worker(&all), expected);
    assert_eq!(
        reader
            .read("party.party", json!([["code", "=", "C-T1"]]), &[])
            .len(),
        1
    );
    assert_eq!(
        reader
            .read("project.work", json!([["type", "=", "project"]]), &[])
            .len(),
        1
    );
    assert_eq!(
        reader
            .read("project.work", json!([["type", "=", "task"]]), &[])
            .len(),
        1
    );
    assert_eq!(reader.read("company.employee", json!([]), &[]).len(), 4);
    // And one invoice for the month, once the restarted hub finds October open.
    let invoices = reader
        .until(
            "account.invoice",
            json!([["type", "=", "out"]]),
            &["reference", "state"],
            |rows| rows.iter().any(|r| r["state"] == "posted"),
            || server.log_tail(20),
        )
        .await;
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    assert_eq!(invoices[0]["reference"], "pshub:P-T1:2026-10");
}

/// A deal converted in Tryton's opportunities, read by `write_date`, becomes the hub's
/// project (through its steps, the Tryton project among them) with no event sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converted_tryton_opportunity_becomes_a_project_of_the_hub_and_of_tryton() {
    let dir = TempDir::new("tryton-opportunities");
    let tryton = tokio::task::block_in_place(|| LocalTryton::start(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tryton.toml");
    let config = dir.join("pshub.toml");
    let text = std::fs::read_to_string(example).unwrap()
        + "\n[connectors.tryton.opportunities]\nrate_card_id = \"RC-T\"\nlegal_entity = \"DE01\"\nregion = \"emea\"\nservice_line = \"advisory\"\ncountry = \"DE\"\n";
    std::fs::write(&config, text).unwrap();
    let server = serve_with_tryton(dir.path(), &config, &tryton);
    let token = create_token(dir.path(), None, "admin", None);
    let api = Api::new(&reqwest::Client::new(), &server.base, &token);
    let reader = Reader {
        admin: Client::new(&tryton.admin_config()).unwrap(),
    };

    // What a salesperson does in Tryton.
    let opportunity = tokio::task::block_in_place(|| {
        pshub_connectors::tryton::local::converted_opportunity(
            &reader.admin,
            "C-UMB",
            "Umbrella GmbH",
            "Data platform",
            chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
            None,
        )
    })
    .unwrap();
    let number = reader.read(
        "sale.opportunity",
        json!([["id", "=", opportunity]]),
        &["number"],
    )[0]["number"]
        .as_str()
        .unwrap()
        .to_string();
    let code = format!("TRY-{number}");

    let project = eventually(
        "the hub has the project",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let (status, body) = api.get(&format!("/v1/projects/{code}")).await?;
            (status == 200)
                .then_some(body.clone())
                .ok_or(format!("{status} {body}"))
        },
    )
    .await;
    assert_eq!(
        project["opportunity_id"],
        format!("TRYTON-OPP-{number}"),
        "{project}"
    );
    let projects = reader
        .until(
            "project.work",
            json!([["comment", "=", format!("pshub:project:{code}")]]),
            &["name", "party.code"],
            |rows| !rows.is_empty(),
            || server.log_tail(20),
        )
        .await;
    assert_eq!(projects.len(), 1, "{projects:?}");
    assert_eq!(projects[0]["party."]["code"], "C-UMB");
    assert_eq!(projects[0]["name"], format!("{code} Data platform"));
}
