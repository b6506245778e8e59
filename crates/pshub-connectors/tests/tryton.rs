//! The Tryton connector against a real Tryton 8.2 on loopback (`tests/tryton/setup.sh`
//! installs it; `.ci/run` runs that first). Every test reads Tryton itself, as its
//! administrator, not the connector's answers.

use chrono::NaiveDate;
use pshub_connectors::tryton::Tryton;
use pshub_connectors::tryton::client::Client;
use pshub_connectors::tryton::config::TrytonConfig;
use pshub_connectors::tryton::local::LocalTryton;
use pshub_connectors::tryton::mapping::read_hours;
use pshub_engine::ports::*;
use pshub_model::Currency;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    server: LocalTryton,
    erp: Arc<Tryton>,
    admin: Client,
}

fn setup() -> Setup {
    setup_with(|_| {})
}

/// A Tryton of its own and the connector on it, with a short grace and `edit` applied.
fn setup_with(edit: impl FnOnce(&mut TrytonConfig)) -> Setup {
    let server = LocalTryton::start(&std::env::temp_dir()).unwrap_or_else(|e| panic!("{e}"));
    let mut config = server.config();
    config.recovery_grace = Duration::from_millis(50);
    edit(&mut config);
    let erp = Tryton::connect(config).unwrap();
    let admin = Client::new(&server.admin_config()).unwrap();
    Setup { server, erp, admin }
}

impl Setup {
    /// `search_read` as the administrator.
    fn read(&self, model: &str, domain: Value, fields: &[&str]) -> Vec<Value> {
        let rows = self
            .admin
            .model_with(
                model,
                "search_read",
                vec![domain, json!(0), Value::Null, Value::Null, json!(fields)],
                json!({"active_test": false}),
            )
            .unwrap_or_else(|e| panic!("{e:?}\n{}", self.server.log()));
        rows.as_array().cloned().unwrap_or_default()
    }
}

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn project(code: &str, key: &str, currency: &str) -> ProjectRequest {
    ProjectRequest {
        idempotency_key: key.into(),
        project_code: code.into(),
        name: "Rollout".into(),
        legal_entity: "DE01".into(),
        currency: Currency::parse(currency).unwrap(),
        psa_id: "PSA-1".into(),
        customer_id: "C-1".into(),
        customer_name: "Globex GmbH".into(),
    }
}

fn line(entry: &str, posting: u32, project: &str, worker: &str, hours: &str) -> LinePosting {
    LinePosting {
        idempotency_key: format!("pshub:time_to_bill:post_line:time:{entry}:{posting}"),
        kind: "time",
        project_code: project.into(),
        source_id: entry.into(),
        posting,
        worker_id: worker.into(),
        date: day(2026, 10, 5),
        quantity: d(hours),
        rate: d("150.00"),
        rate_currency: Currency::parse("EUR").unwrap(),
        amount: d(hours) * d("150.00"),
        currency: Currency::parse("EUR").unwrap(),
        tax_code: "DE-VAT19".into(),
        billing_class: "professional_services".into(),
        reverses_erp_id: None,
        role: Some("consultant".into()),
    }
}

fn done(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done(id) => id.clone(),
        other => panic!("not done: {other:?}"),
    }
}

#[test]
fn a_project_provisioned_again_is_still_one_party_and_one_project() {
    let t = setup();
    let first = done(&t.erp.provision_project(&project("P-100", "k1", "EUR")));
    let again = done(&t.erp.provision_project(&project("P-100", "k1", "EUR")));
    // A new key for the same project (a re-sent deal under a new event id), from a
    // connector that remembers nothing: found by the project's comment.
    let fresh = Tryton::connect(t.server.config()).unwrap();
    let other_key = done(&fresh.provision_project(&project("P-100", "k2", "EUR")));
    assert_eq!(
        (first.as_str(), again.as_str()),
        (other_key.as_str(), other_key.as_str())
    );

    let parties = t.read("party.party", json!([["code", "=", "C-1"]]), &["name"]);
    assert_eq!(parties.len(), 1, "{parties:?}");
    assert_eq!(parties[0]["name"], "Globex GmbH");
    let projects = t.read(
        "project.work",
        json!([["comment", "=", "pshub:project:P-100"]]),
        &[
            "name",
            "type",
            "party",
            "project_invoice_method",
            "product.name",
        ],
    );
    assert_eq!(projects.len(), 1, "{projects:?}");
    let p = &projects[0];
    assert_eq!(p["id"].to_string(), first);
    assert_eq!(p["name"], "P-100 Rollout");
    assert_eq!(p["type"], "project");
    assert_eq!(p["party"], parties[0]["id"]);
    assert_eq!(p["project_invoice_method"], "timesheet");
    assert_eq!(p["product."]["name"], "Consulting hour");
}

#[test]
fn a_thousand_lines_become_a_thousand_timesheet_lines_once() {
    let t = setup();
    for code in ["P-1", "P-2"] {
        done(&t.erp.provision_project(&project(code, code, "EUR")));
    }
    let hours = ["0.25", "1", "1.5", "2.75", "8"];
    let mut expected: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    let lines: Vec<LinePosting> = (0..1000)
        .map(|i| {
            let project = if i % 3 == 0 { "P-1" } else { "P-2" };
            let worker = format!("W-{:05}", i % 7);
            let h = hours[i % hours.len()];
            *expected
                .entry((format!("{project} Rollout"), format!("EMP-{worker}")))
                .or_default() += d(h);
            line(&format!("TS-{i}"), 1, project, &worker, h)
        })
        .collect();
    let answers = t.erp.post_lines(&lines);
    let ids: Vec<String> = answers.iter().map(done).collect();
    // A retry of the whole batch (a replay after a lost answer) creates nothing.
    let again: Vec<String> = t.erp.post_lines(&lines).iter().map(done).collect();
    assert_eq!(ids, again);
    let keys: Vec<&str> = lines.iter().map(|l| l.idempotency_key.as_str()).collect();
    let found = Erp::lookup(t.erp.as_ref(), &keys);
    assert!(
        found
            .iter()
            .zip(&ids)
            .all(|(f, id)| *f == Lookup::Applied(id.clone()))
    );

    let project_of_work: BTreeMap<i64, String> = t
        .read(
            "project.work",
            json!([["type", "=", "task"]]),
            &["timesheet_works", "parent.name"],
        )
        .iter()
        .flat_map(|task| {
            let name = task["parent."]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let works: Vec<i64> = task["timesheet_works"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect();
            works.into_iter().map(move |w| (w, name.clone()))
        })
        .collect();
    let rows = t.read(
        "timesheet.line",
        json!([["description", "like", "pshub:TS-%"]]),
        &["description", "duration", "employee.party.code", "work"],
    );
    assert_eq!(rows.len(), 1000);
    let mut by_description = std::collections::BTreeSet::new();
    let mut actual: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for row in &rows {
        assert!(by_description.insert(row["description"].as_str().unwrap().to_string()));
        let project = &project_of_work[&row["work"].as_i64().unwrap()];
        let worker = row["employee."]["party."]["code"]
            .as_str()
            .unwrap_or_default();
        *actual
            .entry((project.clone(), worker.to_string()))
            .or_default() += read_hours(&row["duration"]).unwrap();
    }
    assert_eq!(actual, expected);
    let tasks = t.read(
        "project.work",
        json!([["type", "=", "task"]]),
        &["name", "list_price"],
    );
    assert_eq!(
        tasks.len(),
        2,
        "one task per project for its one rate: {tasks:?}"
    );
    assert!(tasks.iter().all(|t| t["name"] == "consultant @ 150.00 EUR"));
}

#[test]
fn a_reversal_before_invoicing_deletes_the_line_once() {
    let t = setup();
    done(&t.erp.provision_project(&project("P-1", "P-1", "EUR")));
    let posted = done(&t.erp.post_lines(&[line("TS-9", 1, "P-1", "W-1", "2")])[0]);
    let mut reversal = line("TS-9", 2, "P-1", "W-1", "-2");
    reversal.reverses_erp_id = Some(posted.clone());
    let withdrawn = done(&t.erp.post_lines(std::slice::from_ref(&reversal))[0]);
    assert_eq!(withdrawn, format!("deleted:{posted}"));
    assert!(
        t.read(
            "timesheet.line",
            json!([["description", "like", "pshub:TS-9:%"]]),
            &[]
        )
        .is_empty()
    );
    // Sent again (its answer was lost): the same answer, nothing else touched.
    assert_eq!(done(&t.erp.post_lines(&[reversal])[0]), withdrawn);
}

#[test]
fn a_contract_outside_the_company_currency_is_refused_with_the_reason() {
    let t = setup();
    match t.erp.provision_project(&project("P-US", "P-US", "USD")) {
        Outcome::Rejected(reason) => {
            assert!(
                reason.contains("USD") && reason.contains("company currency EUR"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(
        t.read(
            "project.work",
            json!([["comment", "=", "pshub:project:P-US"]]),
            &[]
        )
        .is_empty()
    );
}

#[test]
fn a_line_tryton_refuses_is_isolated_from_its_batch() {
    let t = setup();
    done(&t.erp.provision_project(&project("P-1", "P-1", "EUR")));
    let hire = CostingRequest {
        idempotency_key: "hire".into(),
        worker_id: "W-7".into(),
        status: "active".into(),
        effective_date: day(2026, 1, 1),
        legal_entity: None,
        cost_center: None,
        grade: None,
    };
    done(&t.erp.update_costing(&hire));
    let leave = CostingRequest {
        idempotency_key: "leave".into(),
        status: "terminated".into(),
        effective_date: day(2026, 9, 30),
        ..hire
    };
    done(&t.erp.update_costing(&leave));
    let employees = t.read(
        "company.employee",
        json!([["party.code", "=", "EMP-W-7"]]),
        &["start_date", "end_date"],
    );
    assert_eq!(employees.len(), 1, "{employees:?}");
    assert_eq!(employees[0]["end_date"]["month"], 9);

    let mut lines: Vec<LinePosting> = (0..10)
        .map(|i| line(&format!("TS-{i}"), 1, "P-1", "W-8", "1"))
        .collect();
    // After the worker's end date: Tryton refuses it.
    lines[6] = line("TS-6", 1, "P-1", "W-7", "1");
    let answers = t.erp.post_lines(&lines);
    for (i, answer) in answers.iter().enumerate() {
        match (i, answer) {
            (6, Outcome::Rejected(reason)) => assert!(!reason.is_empty()),
            (6, other) => panic!("line 6: {other:?}"),
            (_, Outcome::Done(_)) => {}
            (i, other) => panic!("line {i}: {other:?}"),
        }
    }
    assert_eq!(t.read("timesheet.line", json!([]), &[]).len(), 9);
}

#[test]
fn an_expired_session_logs_in_again() {
    let t = setup();
    done(&t.erp.provision_project(&project("P-1", "P-1", "EUR")));
    t.erp.client().logout().unwrap();
    done(&t.erp.post_lines(&[line("TS-1", 1, "P-1", "W-1", "1")])[0]);
    // The old session was refused, and the call went through on a new one.
    assert!(
        t.server.log().contains("\" 401 -"),
        "no refused call: {}",
        t.server.log()
    );
    assert_eq!(t.read("timesheet.line", json!([]), &[]).len(), 1);
}

fn dated(entry: &str, project: &str, on: NaiveDate, hours: &str) -> LinePosting {
    LinePosting {
        date: on,
        ..line(entry, 1, project, "W-1", hours)
    }
}

#[test]
fn each_ended_period_gets_one_posted_invoice_and_late_lines_go_on_the_next() {
    let t = setup_with(|config| {
        config.invoicing.enabled = true;
        config.invoicing.after_idle = Duration::ZERO;
    });
    done(&t.erp.provision_project(&project("P-1", "P-1", "EUR")));
    let october: Vec<LinePosting> = (1..=10)
        .map(|i| dated(&format!("OCT-{i}"), "P-1", day(2026, 10, i), &i.to_string()))
        .collect();
    t.erp
        .post_lines(&october)
        .iter()
        .for_each(|o| drop(done(o)));
    // December has not ended on 1 December: its line waits.
    done(
        &t.erp
            .post_lines(&[dated("DEC-1", "P-1", day(2026, 12, 1), "3")])[0],
    );

    let today = day(2026, 12, 1);
    // While the hub still holds an October line of the project, October waits.
    let held = |project: &str, up_to: NaiveDate| project == "P-1" && up_to >= day(2026, 10, 31);
    assert!(t.erp.invoice_due(today, &held).is_empty());
    assert!(t.read("account.invoice", json!([]), &[]).is_empty());
    let passes = t.erp.invoice_due(today, &|_, _| false);
    assert_eq!(passes.len(), 1, "{passes:?}");
    let invoice = passes[0].2.clone().unwrap().unwrap();
    assert_eq!(invoice.reference, "pshub:P-1:2026-10");
    assert_eq!(invoice.state, "posted");
    assert!(invoice.number.is_some());
    // 55 hours at 150.00.
    assert_eq!(invoice.untaxed_amount, d("8250.00"));
    let invoiced = t.read(
        "timesheet.line",
        json!([["description", "like", "pshub:OCT-%"]]),
        &["invoice_line"],
    );
    assert!(
        invoiced.iter().all(|l| !l["invoice_line"].is_null()),
        "{invoiced:?}"
    );
    assert!(
        t.erp.invoice_due(today, &|_, _| false).is_empty(),
        "nothing is due twice"
    );

    // A late October line goes on November's invoice, never on a second October one.
    done(
        &t.erp
            .post_lines(&[dated("OCT-LATE", "P-1", day(2026, 10, 20), "2")])[0],
    );
    let passes = t.erp.invoice_due(today, &|_, _| false);
    let late = passes[0].2.clone().unwrap().unwrap();
    assert_eq!(late.reference, "pshub:P-1:2026-11");
    assert_eq!(late.untaxed_amount, d("300.00"));
    let invoices = t.read(
        "account.invoice",
        json!([["type", "=", "out"]]),
        &["reference", "state"],
    );
    assert_eq!(invoices.len(), 2, "{invoices:?}");
    let december = t.read(
        "timesheet.line",
        json!([["description", "=", "pshub:DEC-1:1"]]),
        &["invoice_line"],
    );
    assert!(december[0]["invoice_line"].is_null());

    // An invoiced line is locked: its reversal is a credit on the next invoice.
    let posted = t.read(
        "timesheet.line",
        json!([["description", "=", "pshub:OCT-1:1"]]),
        &[],
    );
    let mut reversal = dated("OCT-1", "P-1", day(2026, 10, 1), "-1");
    reversal.idempotency_key = "pshub:time_to_bill:post_line:time:OCT-1:2".into();
    reversal.posting = 2;
    reversal.kind = "reversal";
    reversal.reverses_erp_id = Some(posted[0]["id"].to_string());
    let credit = done(&t.erp.post_lines(std::slice::from_ref(&reversal))[0]);
    assert!(credit.starts_with("invoice_line:"), "{credit}");
    assert_eq!(
        done(&t.erp.post_lines(&[reversal])[0]),
        credit,
        "sent again: the same credit"
    );
    // October and November are invoiced: the credit waits for December's invoice.
    assert!(t.erp.invoice_due(today, &|_, _| false).is_empty());
    let passes = t.erp.invoice_due(day(2027, 1, 1), &|_, _| false);
    assert_eq!(passes.len(), 1, "{passes:?}");
    let next = passes[0].2.clone().unwrap().unwrap();
    assert_eq!(next.reference, "pshub:P-1:2026-12");
    // DEC-1's 3 hours, less the hour credited, at 150.00.
    assert_eq!(next.untaxed_amount, d("300.00"));
    let lines = t.read(
        "account.invoice.line",
        json!([["invoice", "=", next.id]]),
        &["quantity", "description"],
    );
    assert!(
        lines
            .iter()
            .any(|l| l["description"] == "pshub:OCT-1:2" && l["quantity"].as_f64() == Some(-1.0)),
        "{lines:?}"
    );
}

#[test]
fn a_draft_left_by_a_crash_before_its_reference_is_posted_not_doubled() {
    let t = setup();
    let project_id: i64 = done(&t.erp.provision_project(&project("P-2", "P-2", "EUR")))
        .parse()
        .unwrap();
    done(
        &t.erp
            .post_lines(&[dated("NOV-1", "P-2", day(2026, 11, 3), "4")])[0],
    );
    // What a crash right after Tryton's invoicing leaves: a draft with no reference.
    t.admin
        .model("project.work", "write", vec![json!([project_id]), json!({"project_invoice_timesheet_up_to": pshub_connectors::tryton::mapping::date(day(2026, 11, 30))})])
        .unwrap();
    t.admin
        .model("project.work", "invoice", vec![json!([project_id])])
        .unwrap();
    let period = pshub_connectors::tryton::invoicing::Period::parse("2026-11").unwrap();
    let invoice = t.erp.invoice_period("P-2", period).unwrap().unwrap();
    assert_eq!(
        (invoice.reference.as_str(), invoice.state.as_str()),
        ("pshub:P-2:2026-11", "posted")
    );
    let invoices = t.read(
        "account.invoice",
        json!([["type", "=", "out"]]),
        &["reference"],
    );
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    // And again: found by its reference.
    assert_eq!(
        t.erp.invoice_period("P-2", period).unwrap().unwrap().id,
        invoice.id
    );
}

/// An expense (`entry`, `amount`) or a milestone (`entry` = `<contract>:<milestone>`).
fn charge(
    kind: &'static str,
    entry: &str,
    project: &str,
    on: NaiveDate,
    amount: &str,
) -> LinePosting {
    LinePosting {
        idempotency_key: format!("pshub:time_to_bill:post_line:{kind}:{entry}:1"),
        kind,
        source_id: entry.rsplit(':').next().unwrap().into(),
        quantity: Decimal::ONE,
        rate: d(amount),
        amount: d(amount),
        role: None,
        billing_class: kind.into(),
        ..dated(entry, project, on, "1")
    }
}

#[test]
fn expenses_and_milestones_go_on_their_months_invoice_with_their_products() {
    let t = setup();
    done(&t.erp.provision_project(&project("P-1", "P-1", "EUR")));
    let lines = [
        dated("T-1", "P-1", day(2026, 10, 5), "2"),
        charge("expense", "X-1", "P-1", day(2026, 10, 6), "120.50"),
        charge("milestone", "K-1:M-1", "P-1", day(2026, 10, 7), "5000"),
    ];
    let first: Vec<String> = t.erp.post_lines(&lines).iter().map(done).collect();
    // An expense whose id is a time entry's is a line of its own.
    let twin = done(
        &t.erp
            .post_lines(&[charge("expense", "T-1", "P-1", day(2026, 10, 6), "9")])[0],
    );
    assert!(
        twin.starts_with("invoice_line:") && !first.contains(&twin),
        "{twin}"
    );
    assert!(first[1].starts_with("invoice_line:") && first[2].starts_with("invoice_line:"));
    let again: Vec<String> = t.erp.post_lines(&lines).iter().map(done).collect();
    assert_eq!(again, first, "sent again: found by their descriptions");
    let keys: Vec<&str> = lines.iter().map(|l| l.idempotency_key.as_str()).collect();
    let found = Erp::lookup(t.erp.as_ref(), &keys);
    assert_eq!(found[2], Lookup::Applied(first[2].clone()), "{found:?}");
    let standalone = t.read(
        "account.invoice.line",
        json!([["description", "like", "pshub:%"]]),
        &["description", "product.name", "unit_price", "invoice"],
    );
    assert_eq!(standalone.len(), 3, "{standalone:?}");
    assert!(
        standalone
            .iter()
            .any(|l| l["description"] == "pshub:milestone:K-1:M-1:1"
                && l["product."]["name"] == "Milestone")
    );
    assert!(standalone.iter().all(|l| l["invoice"].is_null()));

    // A reversal before invoicing deletes the expense line.
    let mut reversal = charge("expense", "X-2", "P-1", day(2026, 10, 8), "-40");
    let posted = done(
        &t.erp
            .post_lines(&[charge("expense", "X-2", "P-1", day(2026, 10, 8), "40")])[0],
    );
    reversal.idempotency_key = "pshub:time_to_bill:post_line:expense:X-2:2".into();
    reversal.posting = 2;
    reversal.kind = "reversal";
    reversal.reverses_erp_id = Some(posted);
    assert!(done(&t.erp.post_lines(&[reversal])[0]).starts_with("deleted:"));
    assert!(
        t.read(
            "account.invoice.line",
            json!([["description", "=", "pshub:expense:X-2:1"]]),
            &[]
        )
        .is_empty()
    );

    let period = pshub_connectors::tryton::invoicing::Period::parse("2026-10").unwrap();
    let invoice = t.erp.invoice_period("P-1", period).unwrap().unwrap();
    assert_eq!(invoice.state, "posted");
    // 2 hours at 150.00, the two expenses and the milestone.
    assert_eq!(invoice.untaxed_amount, d("5429.50"));
    let on_invoice = t.read(
        "account.invoice.line",
        json!([["invoice", "=", invoice.id]]),
        &["product.name"],
    );
    let mut products: Vec<&str> = on_invoice
        .iter()
        .filter_map(|l| l["product."]["name"].as_str())
        .collect();
    products.sort_unstable();
    assert_eq!(
        products,
        ["Consulting hour", "Expense", "Expense", "Milestone"]
    );

    // A project whose month holds only an expense gets an invoice of its own.
    done(&t.erp.provision_project(&ProjectRequest {
        customer_id: "C-3".into(),
        ..project("P-3", "P-3", "EUR")
    }));
    done(
        &t.erp
            .post_lines(&[charge("expense", "X-3", "P-3", day(2026, 10, 9), "75")])[0],
    );
    let own = t.erp.invoice_period("P-3", period).unwrap().unwrap();
    assert_eq!(
        (own.state.as_str(), own.untaxed_amount),
        ("posted", d("75"))
    );
    assert_eq!(own.reference, "pshub:P-3:2026-10");
    assert_eq!(
        t.erp.invoice_period("P-3", period).unwrap().unwrap().id,
        own.id
    );
}

#[test]
fn the_grace_after_a_start_covers_the_longest_create_an_earlier_run_timed() {
    let t = setup();
    done(&t.erp.provision_project(&project("P-1", "P-1", "EUR")));
    let file = std::env::temp_dir().join(format!("tryton-timings-{}", std::process::id()));
    let mut config = t.server.config();
    config.recovery_grace = Duration::from_millis(10);
    config.timings_file = Some(file.clone());
    let first = Tryton::connect(config.clone()).unwrap();
    done(&first.post_lines(&[line("TS-1", 1, "P-1", "W-1", "1")])[0]);
    let kept: u64 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(kept > 0, "the create was timed");
    // A later run reads it: its first lookup waits at least that long.
    std::fs::write(&file, "700").unwrap();
    let started = std::time::Instant::now();
    let again = Tryton::connect(config).unwrap();
    done(&again.post_lines(&[line("TS-1", 1, "P-1", "W-1", "1")])[0]);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_file(&file);
}

fn cost(worker: &str, from: NaiveDate, hourly: &str, currency: &str) -> CostPriceRequest {
    CostPriceRequest {
        idempotency_key: format!("pshub:resources:cost_price:{worker}:{from}:1"),
        worker_id: worker.into(),
        valid_from: from,
        hourly_cost: d(hourly),
        currency: Currency::parse(currency).unwrap(),
    }
}

#[test]
fn cost_rates_become_dated_cost_prices_that_cost_later_lines() {
    let t = setup();
    done(&t.erp.provision_project(&project("P-1", "P-1", "EUR")));
    let first = done(
        &t.erp
            .update_cost_price(&cost("W-1", day(2026, 1, 1), "60", "EUR")),
    );
    // The same date again rewrites its price; a later date adds one.
    assert_eq!(
        done(
            &t.erp
                .update_cost_price(&cost("W-1", day(2026, 1, 1), "65", "EUR"))
        ),
        first
    );
    done(
        &t.erp
            .update_cost_price(&cost("W-1", day(2026, 7, 1), "70", "EUR")),
    );
    let prices = t.read(
        "company.employee_cost_price",
        json!([["employee.party.code", "=", "EMP-W-1"]]),
        &["date", "cost_price"],
    );
    let mut seen: Vec<(i64, Decimal)> = prices
        .iter()
        .map(|p| {
            (
                p["date"]["month"].as_i64().unwrap(),
                pshub_connectors::tryton::mapping::read_decimal(&p["cost_price"]).unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, vec![(1, d("65")), (7, d("70"))], "{prices:?}");
    // Tryton costs a line at the price of its date.
    done(
        &t.erp
            .post_lines(&[dated("AUG-1", "P-1", day(2026, 8, 3), "2")])[0],
    );
    done(
        &t.erp
            .post_lines(&[dated("MAR-1", "P-1", day(2026, 3, 3), "2")])[0],
    );
    let lines = t.read(
        "timesheet.line",
        json!([["description", "in", ["pshub:AUG-1:1", "pshub:MAR-1:1"]]]),
        &["description", "cost_price"],
    );
    let cost_of = |description: &str| {
        lines
            .iter()
            .find(|l| l["description"] == description)
            .and_then(|l| pshub_connectors::tryton::mapping::read_decimal(&l["cost_price"]))
    };
    assert_eq!(cost_of("pshub:AUG-1:1"), Some(d("70")), "{lines:?}");
    assert_eq!(cost_of("pshub:MAR-1:1"), Some(d("65")), "{lines:?}");
    // A rate in another currency than the company's is refused with the reason.
    match t
        .erp
        .update_cost_price(&cost("W-1", day(2026, 9, 1), "90", "USD"))
    {
        Outcome::Rejected(reason) => assert!(reason.contains("USD"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn as_the_psa_an_engagement_is_the_project_the_erp_step_finds_again() {
    let t = setup();
    let engagement = EngagementRequest {
        idempotency_key: "pshub:opportunity_to_project:psa:P-9".into(),
        project_code: "P-9".into(),
        name: "Rollout".into(),
        opportunity_id: "OPP-9".into(),
        customer_id: "C-9".into(),
        customer_name: "Initech AG".into(),
        start: day(2026, 1, 1),
        end: None,
    };
    let psa: &dyn Psa = t.erp.as_ref();
    let made = done(&psa.create_engagement(&engagement));
    assert_eq!(
        done(&psa.create_engagement(&engagement)),
        made,
        "again: the same"
    );
    assert_eq!(
        psa.lookup(&["pshub:opportunity_to_project:psa:P-9"]),
        vec![Lookup::Applied(made.clone())]
    );
    // The ERP's provisioning that follows finds the project the PSA step made.
    let provisioned = done(&t.erp.provision_project(&ProjectRequest {
        customer_id: "C-9".into(),
        customer_name: "Initech AG".into(),
        ..project("P-9", "pshub:opportunity_to_project:erp:P-9", "EUR")
    }));
    assert_eq!(provisioned, made);
    let projects = t.read(
        "project.work",
        json!([["comment", "=", "pshub:project:P-9"]]),
        &["party.code"],
    );
    assert_eq!(projects.len(), 1, "{projects:?}");
    assert_eq!(projects[0]["party."]["code"], "C-9");

    // A worker's resource status is their employee's dates.
    let resource = |status: &str, on: NaiveDate| ResourceRequest {
        idempotency_key: format!("pshub:worker_lifecycle:resource:W-9:{status}"),
        worker_id: "W-9".into(),
        status: status.into(),
        effective_date: on,
        role: Some("consultant".into()),
        region: Some("emea".into()),
    };
    done(&psa.update_resource(&resource("active", day(2026, 2, 1))));
    done(&psa.update_resource(&resource("on_leave", day(2026, 5, 1))));
    done(&psa.update_resource(&resource("terminated", day(2026, 9, 30))));
    let employees = t.read(
        "company.employee",
        json!([["party.code", "=", "EMP-W-9"]]),
        &["start_date", "end_date"],
    );
    assert_eq!(employees.len(), 1, "{employees:?}");
    assert_eq!(employees[0]["start_date"]["month"], 2);
    assert_eq!(employees[0]["end_date"]["month"], 9);
}

#[test]
fn converted_opportunities_are_read_as_won_deals_by_their_write_date() {
    let t = setup_with(|config| {
        config.opportunities = Some(pshub_connectors::tryton::config::Opportunities {
            rate_card_id: "RC-T".into(),
            billing_model: "time_and_materials".into(),
            legal_entity: "DE01".into(),
            region: "emea".into(),
            service_line: "advisory".into(),
            country: "DE".into(),
            project_prefix: "TRY-".into(),
            mapping: pshub_connectors::tryton::config::OPPORTUNITY_MAPPING.into(),
        });
    });
    let (none, _) = t.erp.won_deals(None).unwrap();
    assert!(none.is_empty());
    let id = pshub_connectors::tryton::local::converted_opportunity(
        &t.admin,
        "C-OPP-1",
        "Data platform rollout Ltd",
        "Data platform rollout",
        day(2026, 11, 2),
        Some(day(2027, 3, 31)),
    )
    .unwrap();
    let (records, newest) = t.erp.won_deals(None).unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    // What was read is the record the shipped mapping makes the event of.
    let config = pshub_engine::Config::default();
    let mapping = config
        .mappings
        .get(pshub_connectors::tryton::config::OPPORTUNITY_MAPPING)
        .unwrap();
    let (event, _) = pshub_engine::hooks::canonical(mapping, "crm", &records[0], |s| s == "crm")
        .unwrap()
        .expect("a converted opportunity is a won deal");
    let event = &event;
    assert_eq!(records[0]["opportunity"]["start_date"], "2026-11-02");
    assert_eq!(event["id"], format!("tryton-opportunity-{id}"));
    assert_eq!(event["type"], "opportunity.closed_won");
    let number = t.read("sale.opportunity", json!([["id", "=", id]]), &["number"])[0]["number"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        event["data"]["project"]["project_code"],
        format!("TRY-{number}")
    );
    assert_eq!(event["data"]["project"]["name"], "Data platform rollout");
    assert_eq!(event["data"]["customer"]["customer_id"], "C-OPP-1");
    assert_eq!(event["data"]["customer"]["country"], "DE");
    assert_eq!(event["data"]["contract"]["start"], "2026-11-02");
    assert_eq!(event["data"]["contract"]["end"], "2027-03-31");
    // From the newest write on: the same instant again, nothing older.
    let (again, _) = t.erp.won_deals(newest).unwrap();
    assert_eq!(again.len(), 1);
    let later = newest.map(|n| n + chrono::Duration::seconds(1));
    let (after, _) = t.erp.won_deals(later).unwrap();
    assert!(after.is_empty(), "{after:?}");
}
