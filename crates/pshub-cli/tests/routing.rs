//! ERP routing for a cut-over in waves, through the front door: `pshub serve` with two ERPs,
//! a real Tryton 8.2 (`tests/tryton/setup.sh`) and a legacy ERP's table in the machine's
//! PostgreSQL. Legal entities are routed to each, one route posts to both in shadow mode,
//! and what is checked is read from Tryton and from the table themselves.

mod support;

use pshub_connectors::legacy_table::LegacyTable;
use pshub_connectors::legacy_table::config::LegacyTableConfig;
use pshub_connectors::tryton::client::Client;
use pshub_connectors::tryton::local::LocalTryton;
use pshub_engine::ports::Erp;
use pshub_store_postgres::testing::TestDatabase;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::*;

const TABLE: &str = "legacy_erp_lines";
/// The legal entity onboarded by configuration.
const AT01: &str = "\n[legal_entities.AT01]\ncurrency = \"EUR\"\ntax_code = \"AT-VAT20\"\n";

fn event(source: &str, id: &str, kind: &str, data: Value) -> Value {
    json!({ "id": id, "source": source, "type": kind, "schema_version": 1,
            "occurred_at": "2026-10-01T09:00:00Z", "data": data })
}

/// A won deal for project `code` of `entity`, billed in `currency`.
fn won(code: &str, entity: &str, region: &str, currency: &str) -> Value {
    event(
        "crm",
        &format!("won-{code}"),
        "opportunity.closed_won",
        json!({
            "opportunity_id": format!("OPP-{code}"),
            "customer": { "customer_id": format!("C-{code}"), "legal_name": format!("Customer of {code} Ltd"),
                          "tax_id": format!("TX-{code}"), "country": "DE", "currency": currency },
            "contract": { "contract_id": format!("K-{code}"), "billing_model": "time_and_materials", "currency": currency,
                          "rate_card_id": format!("RC-{currency}"), "start": "2026-01-01" },
            "project": { "project_code": code, "name": "Wave", "legal_entity": entity, "region": region, "service_line": "advisory" }
        }),
    )
}

/// Rate cards in EUR and USD, two hired consultants.
fn reference() -> Vec<Value> {
    let mut events = Vec::new();
    for (currency, region, rate) in [("EUR", "emea", "100.00"), ("USD", "emea", "120.00")] {
        events.push(event(
            "psa",
            &format!("rc-{currency}"),
            "rate_card.upserted",
            json!({ "rate_card_id": format!("RC-{currency}"), "currency": currency, "rates": [
                { "role": "consultant", "region": region, "rate": rate, "valid_from": "2026-01-01" }
            ] }),
        ));
    }
    for w in 1..=2 {
        events.push(event(
            "hris",
            &format!("hire-W-R{w}"),
            "worker.hired",
            json!({ "worker_id": format!("W-R{w}"), "effective_date": "2026-01-01", "legal_entity": "DE01",
                    "region": "emea", "cost_center": "CC1", "role": "consultant", "grade": "G2" }),
        ));
    }
    events
}

/// The assignments of both consultants to `code`.
fn assignments(code: &str) -> Vec<Value> {
    (1..=2)
        .map(|w| {
            event(
                "psa",
                &format!("a-{code}-{w}"),
                "assignment.changed",
                json!({ "assignment_id": format!("A-{code}-{w}"), "version": 1, "worker_id": format!("W-R{w}"),
                        "project_code": code, "role": "consultant", "start": "2026-01-01",
                        "end": "2026-12-31", "hours": "2000", "state": "approved" }),
            )
        })
        .collect()
}

/// `n` approvals on `code`, entry ids `<code>-<from + i>`, 2 hours each.
fn approvals(code: &str, from: usize, n: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| {
            event(
                "psa",
                &format!("ok-{code}-{i}"),
                "time_entry.approved",
                json!({ "entry_id": format!("{code}-{i}"), "worker_id": format!("W-R{}", i % 2 + 1),
                        "project_code": code, "work_date": format!("2026-10-{:02}", i % 28 + 1),
                        "hours": "2", "billable": true }),
            )
        })
        .collect()
}

/// The configuration: DE01 to Tryton (the default), US01 to the legacy table, FR01 to
/// Tryton with the legacy table as its shadow; `extra` goes first among the routes.
fn config(legacy_url: &str, extra_entities: &str, first_routes: &str) -> String {
    format!(
        r#"[legal_entities.DE01]
currency = "EUR"
tax_code = "DE-VAT19"

[legal_entities.FR01]
currency = "EUR"
tax_code = "FR-VAT20"

[legal_entities.US01]
currency = "USD"
tax_code = "US-EXEMPT"
{extra_entities}
[erp]
connector = "tryton"

[connectors.tryton]
kind = "tryton"
url = "${{PSHUB_TRYTON_URL}}"
database = "${{PSHUB_TRYTON_DATABASE}}"
user = "${{PSHUB_TRYTON_USER}}"
password = "${{PSHUB_TRYTON_PASSWORD}}"
product = "Consulting hour"
batch_size = 500
batch_wait_ms = 100
poll_interval_s = 5

[connectors.legacy]
kind = "legacy_table"
url = "{legacy_url}"
table = "{TABLE}"
watermark_column = "updated_at"
poll_interval_s = 1
{first_routes}
[[routes]]
name = "us-legacy"
legal_entity = "US01"
erp = "legacy"

[[routes]]
name = "fr-shadow"
legal_entity = "FR01"
erp = "tryton"
mode = "shadow"
shadow = "legacy"
"#
    )
}

/// Lines per project as Tryton holds them (the entry ids name their project).
fn tryton_lines(admin: &Client) -> BTreeMap<String, usize> {
    let rows = tokio::task::block_in_place(|| {
        admin.model(
            "timesheet.line",
            "search_read",
            vec![
                json!([["description", "like", "pshub:P-%"]]),
                json!(0),
                Value::Null,
                Value::Null,
                json!(["description"]),
            ],
        )
    })
    .unwrap();
    let mut by_project = BTreeMap::new();
    for row in rows.as_array().unwrap() {
        // pshub:P-DE-3:1
        let description = row["description"].as_str().unwrap();
        let entry = description.split(':').nth(1).unwrap();
        let project = entry.rsplit_once('-').unwrap().0;
        *by_project.entry(project.to_string()).or_default() += 1;
    }
    by_project
}

/// Lines per project as the legacy table holds them.
fn legacy_lines(table: &LegacyTable) -> BTreeMap<String, usize> {
    let (rows, _) = tokio::task::block_in_place(|| table.read_back("lines", 0, 10_000)).unwrap();
    let mut by_project = BTreeMap::new();
    for row in rows {
        *by_project
            .entry(row["project_code"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    by_project
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Waits until both ERPs hold exactly the lines expected of each.
async fn until_posted(
    admin: &Client,
    table: &LegacyTable,
    in_tryton: BTreeMap<String, usize>,
    in_legacy: BTreeMap<String, usize>,
    server: &Server,
) {
    eventually(
        "the lines reach the ERPs their routes name",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let (t, l) = (tryton_lines(admin), legacy_lines(table));
            let ok = t == in_tryton && l == in_legacy;
            let log = server.log_tail(10);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(format!("tryton {t:?}, legacy {l:?}\n{log}"))
                }
            }
        },
    )
    .await
}

/// Sends `events`, each of which the hub must accept.
async fn send_accepted(api: &Api, events: &[Value]) {
    let results = api.post_events(events).await.unwrap();
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );
}

/// Runs `statement` on the legacy database, as the legacy system would.
fn legacy_sql(url: &str, statement: &str) {
    // On a thread of its own: its runtime may not run, nor be dropped, inside the test's.
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            })
        })
        .join()
        .unwrap()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_post_to_their_routed_erp_a_shadow_finds_a_difference_and_waves_move_by_reload() {
    let dir = TempDir::new("routing-front-door");
    let database = TestDatabase::create("routing_front_door");
    let tryton = tokio::task::block_in_place(|| LocalTryton::start(dir.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    let config_path = dir.join("pshub.toml");
    std::fs::write(&config_path, config(&database.url, "", "")).unwrap();
    let server = serve_with_tryton(dir.path(), &config_path, &tryton);
    let token = create_token(dir.path(), None, "admin", None);
    let api = Api::new(&reqwest::Client::new(), &server.base, &token);
    let admin = Client::new(&tryton.admin_config()).unwrap();
    let table = tokio::task::block_in_place(|| {
        LegacyTable::connect("check", LegacyTableConfig::new(&database.url, TABLE))
    })
    .unwrap();

    let mut events = reference();
    for (code, entity, region, currency) in [
        ("P-DE", "DE01", "emea", "EUR"),
        ("P-FR", "FR01", "emea", "EUR"),
        ("P-US", "US01", "amer", "USD"),
    ] {
        events.push(won(code, entity, region, currency));
        events.extend(assignments(code));
    }
    send_accepted(&api, &events).await;
    let mut work = Vec::new();
    for code in ["P-DE", "P-FR", "P-US"] {
        work.extend(approvals(code, 0, 10));
    }
    send_accepted(&api, &work).await;

    // DE01 in Tryton only, US01 in the legacy table only, FR01 in both.
    until_posted(
        &admin,
        &table,
        counts(&[("P-DE", 10), ("P-FR", 10)]),
        counts(&[("P-FR", 10), ("P-US", 10)]),
        &server,
    )
    .await;
    let summary = api.summary().await;
    assert_eq!(
        summary["lines_posted"], 30,
        "shadow copies are not counted: {summary}"
    );

    // The shadow route's two ERPs agree: the wave is ready.
    let report = eventually(
        "the shadow report is empty",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async {
            let (status, report) = api
                .get("/v1/reports/shadow?route=fr-shadow&period=2026-10")
                .await?;
            if status == 200 && report["ready"] == true {
                Ok(report)
            } else {
                Err(format!("{status} {report}"))
            }
        },
    )
    .await;
    assert_eq!(report["primary"], "tryton");
    assert_eq!(report["shadow"], "legacy");
    assert_eq!(report["primary_lines"], 10);
    assert_eq!(report["shadow_lines"], 10);
    assert_eq!(report["invoices"], 1);

    // A difference injected on the legacy side is found and named: the line and its invoice.
    legacy_sql(
        &database.url,
        &format!("UPDATE {TABLE} SET amount = amount + 10 WHERE source_id = 'P-FR-3'"),
    );
    let (status, report) = api
        .get("/v1/reports/shadow?route=fr-shadow&period=2026-10")
        .await
        .unwrap();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ready"], false);
    let differences = report["differences"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = differences
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["key"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("amount", "pshub:time_to_bill:post_line:time:P-FR-3:1"),
            ("invoice_total", "INV-P-FR-2026-10"),
        ],
        "{report}"
    );
    assert_eq!(differences[0]["primary"], "200");
    assert_eq!(differences[0]["shadow"], "210");
    // The same from the command line, which exits with 1 while there is a difference.
    let output = std::process::Command::new(BIN)
        .args([
            "shadow",
            "report",
            "--route",
            "fr-shadow",
            "--url",
            &server.base,
            "--token",
            &token,
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("amount P-FR pshub:time_to_bill:post_line:time:P-FR-3:1"),
        "{printed}"
    );
    let (status, refused) = api.get("/v1/reports/shadow?route=us-legacy").await.unwrap();
    assert_eq!(
        status, 409,
        "a route not in shadow mode has no shadow report: {refused}"
    );

    // A new legal entity by configuration only: AT01 and its route, reloaded by the CLI.
    std::fs::write(
        &config_path,
        config(
            &database.url,
            AT01,
            "\n[[routes]]\nname = \"at-legacy\"\nlegal_entity = \"AT01\"\nerp = \"legacy\"\n",
        ),
    )
    .unwrap();
    let output = std::process::Command::new(BIN)
        .args([
            "config",
            "reload",
            "--url",
            &server.base,
            "--token",
            &token,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reloaded: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        reloaded["legal_entities_added"],
        json!(["AT01"]),
        "{reloaded}"
    );
    let mut events = vec![won("P-AT", "AT01", "emea", "EUR")];
    events.extend(assignments("P-AT"));
    events.extend(approvals("P-AT", 0, 5));
    send_accepted(&api, &events).await;
    until_posted(
        &admin,
        &table,
        counts(&[("P-DE", 10), ("P-FR", 10)]),
        counts(&[("P-AT", 5), ("P-FR", 10), ("P-US", 10)]),
        &server,
    )
    .await;
    let onboarding = eventually(
        "AT01's onboarding is measured",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async {
            let (_, body) = api.get("/v1/reports/onboarding").await?;
            match body["items"][0]["entity_onboarding_seconds"].as_f64() {
                Some(_) => Ok(body),
                None => Err(body.to_string()),
            }
        },
    )
    .await;
    let at = &onboarding["items"][0];
    assert_eq!(at["legal_entity"], "AT01");
    let seconds = at["entity_onboarding_seconds"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&seconds), "{onboarding}");
    let summary = api.summary().await;
    assert_eq!(
        summary["entity_onboarding_seconds"]["AT01"].as_f64(),
        Some(seconds),
        "the KPI in the summary: {summary}"
    );
    let metrics = api.get_text("/metrics").await.unwrap();
    assert!(
        metric(
            &metrics,
            "pshub_entity_onboarding_seconds{legal_entity=\"AT01\"}"
        )
        .is_some(),
        "{metrics}"
    );

    // A wave cut over by SIGHUP: DE01's new work goes to the legacy table; what Tryton
    // holds stays there.
    std::fs::write(
        &config_path,
        config(
            &database.url,
            AT01,
            "\n[[routes]]\nname = \"at-legacy\"\nlegal_entity = [\"AT01\", \"DE01\"]\nerp = \"legacy\"\n",
        ),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    eventually(
        "the SIGHUP reload is logged",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            async move {
                if log.matches("configuration reloaded").count() >= 2 {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                }
            }
        },
    )
    .await;
    send_accepted(&api, &approvals("P-DE", 10, 4)).await;
    until_posted(
        &admin,
        &table,
        counts(&[("P-DE", 10), ("P-FR", 10)]),
        counts(&[("P-AT", 5), ("P-DE", 4), ("P-FR", 10), ("P-US", 10)]),
        &server,
    )
    .await;

    // A status the legacy system sets comes back by the watermark: paid reaches the CRM.
    // Where the table is only FR01's shadow, its statuses are not the invoice's.
    legacy_sql(
        &database.url,
        &format!(
            "UPDATE {TABLE} SET status = 'paid', invoice_number = 'L-1', updated_at = now() WHERE project_code IN ('P-US', 'P-FR')"
        ),
    );
    eventually(
        "the legacy table's paid reaches the hub's invoice",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let (status, invoice) = api.get("/v1/invoices/INV-P-US-2026-10").await?;
            if status == 200 && invoice["status"] == "paid" {
                Ok(())
            } else {
                Err(format!("{status} {invoice}"))
            }
        },
    )
    .await;
    let (_, shadowed) = api.get("/v1/invoices/INV-P-FR-2026-10").await.unwrap();
    assert_ne!(
        shadowed["status"], "paid",
        "a shadow's paid is not the invoice's: {shadowed}"
    );
    drop(server);
}
