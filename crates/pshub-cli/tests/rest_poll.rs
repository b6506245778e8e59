//! The polling REST connector as a deployment runs it: `pshub serve` with sources read by
//! polling, against local stand-ins of two vendors' published APIs (vendor systems cannot
//! be reached from here):
//!
//! - Salesforce's REST query API: `GET /services/data/v60.0/query?q=<SOQL>` answering
//!   `{totalSize, done, records, nextRecordsUrl}`, the next pages at
//!   `/services/data/v60.0/query/<locator>`, records with `attributes` and a
//!   `SystemModstamp` such as `2026-03-01T10:00:00.000+0000`, a bearer session;
//! - a Workday Report-as-a-Service report: `GET /ccx/service/customreport2/<tenant>/<owner>/
//!   <report>?format=json&Updated_From=<prompt>` answering `{"Report_Entry": [...]}`;
//! - SAP Concur expense reports as Concur Expense v4's resources hold them (a report, its
//!   expenses, their allocations), nested one report a page at `/concur/reports`.
//!
//! A window stopped by a SIGKILL between two pages is read again whole after the restart:
//! no record is skipped (not even one Salesforce stamped earlier than the saved cursor, as
//! a late commit does), none is taken twice. A Workday termination read from the report
//! gates billing, and a 429 with `Retry-After` is waited out. A Concur expense split over
//! two projects bills each project its approved share, once.

mod support;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// Records per page of the Salesforce stand-in (Salesforce's own is 2,000).
const PAGE: usize = 2;
const SF_TOKEN: &str = "00Dxx0000001gEF!stand-in-session";
const CDC_SECRET: &str = "cdc-relay-secret";

/// What the stand-ins hold and saw.
#[derive(Default)]
struct Vendors {
    accounts: Vec<Value>,
    opportunities: Vec<Value>,
    workers: Vec<Value>,
    /// Concur expense reports, each with its expenses and their allocations.
    reports: Vec<Value>,
    /// Each query's results, by locator number, as Salesforce keeps a query cursor.
    queries: Vec<Vec<Value>>,
    /// A page that hangs while set (a source slow to answer): the page at this offset of
    /// every query from this locator number on.
    hold: Option<(usize, usize)>,
    /// The next report call answers 429 with `Retry-After: 2`.
    throttle_next: bool,
    /// Each request: its path and query, and when it came.
    requests: Vec<(String, Instant)>,
}

type Shared = Arc<Mutex<Vendors>>;

fn modstamp(record: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    let text = record[field].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .unwrap()
        .to_utc()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {SF_TOKEN}"))
}

fn invalid_session() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(
            json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }]),
        ),
    )
        .into_response()
}

/// A page of a query's results from `offset`, as Salesforce writes it.
fn query_page(locator: usize, results: &[Value], offset: usize) -> Value {
    let end = (offset + PAGE).min(results.len());
    let mut page = json!({
        "totalSize": results.len(),
        "done": end == results.len(),
        "records": results[offset.min(end)..end],
    });
    if end < results.len() {
        page["nextRecordsUrl"] = json!(format!(
            "/services/data/v60.0/query/01gSTANDIN{locator}-{end}"
        ));
    }
    page
}

async fn soql_query(
    State(vendors): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return invalid_session();
    }
    let q = params.get("q").cloned().unwrap_or_default();
    let mut v = vendors.lock().unwrap();
    v.requests.push((format!("query?q={q}"), Instant::now()));
    // The one query shape the poller sends: ... WHERE SystemModstamp >= <literal> ...
    let Some(literal) = q
        .split_once("SystemModstamp >= ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
    else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!([{ "message": format!("unexpected query {q}"), "errorCode": "MALFORMED_QUERY" }]))).into_response();
    };
    let from = chrono::DateTime::parse_from_rfc3339(literal)
        .unwrap()
        .to_utc();
    let records = if q.contains("FROM Opportunity") {
        &v.opportunities
    } else {
        &v.accounts
    };
    let mut results: Vec<Value> = records
        .iter()
        .filter(|a| modstamp(a, "SystemModstamp") >= from)
        .cloned()
        .collect();
    results.sort_by_key(|a| modstamp(a, "SystemModstamp"));
    let locator = v.queries.len();
    v.queries.push(results.clone());
    axum::Json(query_page(locator, &results, 0)).into_response()
}

async fn soql_more(
    State(vendors): State<Shared>,
    headers: HeaderMap,
    UrlPath(locator): UrlPath<String>,
) -> Response {
    if !authorized(&headers) {
        return invalid_session();
    }
    let (number, offset) = locator
        .strip_prefix("01gSTANDIN")
        .and_then(|rest| rest.split_once('-'))
        .map(|(n, o)| (n.parse::<usize>().unwrap(), o.parse::<usize>().unwrap()))
        .unwrap();
    vendors
        .lock()
        .unwrap()
        .requests
        .push((format!("query/{locator}"), Instant::now()));
    // A held page answers once released (or never, when the hub is killed meanwhile).
    while vendors
        .lock()
        .unwrap()
        .hold
        .is_some_and(|(from, at)| number >= from && offset == at)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let v = vendors.lock().unwrap();
    axum::Json(query_page(number, &v.queries[number], offset)).into_response()
}

async fn raas_report(
    State(vendors): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut v = vendors.lock().unwrap();
    v.requests.push(("report".into(), Instant::now()));
    if std::mem::take(&mut v.throttle_next) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "2")],
            "slow down",
        )
            .into_response();
    }
    let from = params
        .get("Updated_From")
        .map(|p| chrono::DateTime::parse_from_rfc3339(p).unwrap().to_utc())
        .unwrap_or(chrono::DateTime::UNIX_EPOCH);
    let entries: Vec<&Value> = v
        .workers
        .iter()
        .filter(|w| modstamp(w, "Last_Updated") >= from)
        .collect();
    axum::Json(json!({ "Report_Entry": entries })).into_response()
}

/// The expense reports modified at or after `modifiedAfter`, one report a page, as Concur's
/// v4 resources hold them: each report with its expenses, each expense with its allocations.
async fn concur_reports(
    State(vendors): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut v = vendors.lock().unwrap();
    v.requests.push(("concur".into(), Instant::now()));
    let from = params
        .get("modifiedAfter")
        .map(|p| chrono::DateTime::parse_from_rfc3339(p).unwrap().to_utc())
        .unwrap_or(chrono::DateTime::UNIX_EPOCH);
    let mut reports: Vec<&Value> = v
        .reports
        .iter()
        .filter(|r| modstamp(r, "lastModifiedDate") >= from)
        .collect();
    reports.sort_by_key(|r| modstamp(r, "lastModifiedDate"));
    let offset: usize = params.get("offset").map_or(0, |o| o.parse().unwrap());
    let mut page = json!({ "items": reports.get(offset..(offset + 1).min(reports.len())).unwrap_or_default() });
    if offset + 1 < reports.len() {
        let after = params.get("modifiedAfter").cloned().unwrap_or_default();
        page["nextPage"] = json!(format!(
            "/concur/reports?modifiedAfter={after}&offset={}",
            offset + 1
        ));
    }
    axum::Json(page).into_response()
}

/// Starts the stand-ins on a free port; answers their base URL.
async fn stand_ins(vendors: Shared) -> String {
    let app = axum::Router::new()
        .route("/services/data/v60.0/query", axum::routing::get(soql_query))
        .route(
            "/services/data/v60.0/query/{locator}",
            axum::routing::get(soql_more),
        )
        .route(
            "/ccx/service/customreport2/acme/ISU_pshub/Workers",
            axum::routing::get(raas_report),
        )
        .route("/concur/reports", axum::routing::get(concur_reports))
        .with_state(vendors);
    serve_stand_in(app).await
}

fn account(id: &str, stamp: &str) -> Value {
    json!({
        "attributes": { "type": "Account", "url": format!("/services/data/v60.0/sobjects/Account/{id}") },
        "Id": id, "Name": format!("Client {id}"), "BillingCountryCode": "DE", "CurrencyIsoCode": "EUR",
        "Tax_ID__c": format!("DE{id}"), "SystemModstamp": stamp,
    })
}

fn config(base: &str) -> String {
    config_with(base, 100)
}

/// The configuration, the deals read every `deals_poll_ms`.
fn config_with(base: &str, deals_poll_ms: u64) -> String {
    format!(
        r#"
[sources]
allowed = ["crm", "psa", "hris", "erp", "payroll"]

[owners]
customer = "salesforce"
opportunity = "sf_deals"
worker = "workday"

[sources.salesforce]
connector = "rest_poll"
url = "{base}/services/data/v60.0/query?q=SELECT+Id,Name,BillingCountryCode,CurrencyIsoCode,Tax_ID__c,SystemModstamp+FROM+Account+WHERE+SystemModstamp+%3E%3D+{{cursor}}+ORDER+BY+SystemModstamp"
records = ".records"
next = ".nextRecordsUrl"
cursor = ".SystemModstamp"
overlap_s = 300
poll_ms = 100
start = "2026-01-01T00:00:00Z"
token = "{SF_TOKEN}"
mapping = "salesforce/account.v1"

[sources.sf_deals]
connector = "rest_poll"
url = "{base}/services/data/v60.0/query?q=SELECT+Id,Name,IsWon,CurrencyIsoCode,Project_Code__c,Rate_Card__c,Billing_Model__c,Contract_Start__c,Contract_End__c,Legal_Entity__c,Region__c,Service_Line__c,Account.Id,Account.Name,Account.BillingCountryCode,Account.Tax_ID__c,SystemModstamp+FROM+Opportunity+WHERE+IsWon+%3D+true+AND+SystemModstamp+%3E%3D+{{cursor}}+ORDER+BY+SystemModstamp"
records = ".records"
next = ".nextRecordsUrl"
cursor = ".SystemModstamp"
poll_ms = {deals_poll_ms}
start = "2026-01-01T00:00:00Z"
token = "{SF_TOKEN}"
mapping = "salesforce/opportunity.v1"

[sources.salesforce_cdc]
connector = "webhook"
signature = "hmac-sha256"
secret = "{CDC_SECRET}"
wakes = "sf_deals"
wake_on = ["Opportunity"]

[sources.workday]
connector = "rest_poll"
url = "{base}/ccx/service/customreport2/acme/ISU_pshub/Workers?format=json&Updated_From={{cursor}}"
records = ".Report_Entry"
cursor = ".Last_Updated"
overlap_s = 300
poll_ms = 100
start = "2026-01-01T00:00:00Z"
mapping = ["workday/worker.v1", "workday/worker_terminated.v1"]
"#
    )
}

async fn until_windows(api: &Api, source: &str, at_least: f64) {
    eventually(
        "a window is read to its end",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let done = api.connector_count(source, "window_done").await;
            if done >= at_least {
                Ok(())
            } else {
                Err(format!("{done} windows done"))
            }
        },
    )
    .await
}

async fn until_accepted(api: &Api, source: &str, id: &str) {
    eventually(
        "the record's event is accepted",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            match api.get(&format!("/v1/events/{source}/{id}")).await {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{id}: {other:?}")),
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_window_killed_between_pages_is_read_again_with_no_gap_and_no_double() {
    let vendors: Shared = Arc::default();
    let base = stand_ins(vendors.clone()).await;
    {
        let mut v = vendors.lock().unwrap();
        for (id, stamp) in [
            ("001A", "2026-03-01T10:00:00.000+0000"),
            ("001B", "2026-03-01T10:01:00.000+0000"),
            ("001C", "2026-03-01T10:02:00.000+0000"),
        ] {
            v.accounts.push(account(id, stamp));
        }
    }
    let dir = TempDir::new("rest-poll-restart");
    let config_path = dir.join("pshub.toml");
    std::fs::write(&config_path, config(&base)).unwrap();
    let start = |dir: &TempDir, log: &str| {
        let server = serve(dir.path())
            .env("PSHUB_CONFIG", config_path.to_str().unwrap())
            .log(dir.join(log))
            .spawn();
        wait_listening(server.port);
        server
    };
    let mut server = start(&dir, "serve-1.log");
    let token = create_token(dir.path(), None, "admin", None);
    let client = reqwest::Client::new();
    let api = Api::new(&client, &server.base, &token);

    // The first window: two pages, three accounts; the cursor is saved at 10:02.
    until_windows(&api, "salesforce", 1.0).await;
    for id in [
        "001A@2026-03-01T10:00:00.000+0000",
        "001B@2026-03-01T10:01:00.000+0000",
        "001C@2026-03-01T10:02:00.000+0000",
    ] {
        until_accepted(&api, "salesforce", id).await;
    }
    // Later changes, and one Salesforce stamped before the saved cursor (a late commit):
    // the next window starts an overlap before 10:02 and so finds it. Its third page hangs.
    {
        let mut v = vendors.lock().unwrap();
        for (id, stamp) in [
            ("001L", "2026-03-01T10:01:30.000+0000"),
            ("001D", "2026-03-01T10:03:00.000+0000"),
            ("001E", "2026-03-01T10:04:00.000+0000"),
            ("001F", "2026-03-01T10:05:00.000+0000"),
        ] {
            v.accounts.push(account(id, stamp));
        }
        v.hold = Some((v.queries.len(), 2 * PAGE));
        v.requests.clear();
    }
    // The window of 09:57 on: 001A, 001B | 001L, 001C | 001D, 001E (held) | 001F. Its
    // second page, with the late 001L, is committed before the hub is killed.
    until_accepted(&api, "salesforce", "001L@2026-03-01T10:01:30.000+0000").await;
    eventually(
        "the hub asks for the held page",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || async {
            let asked = vendors
                .lock()
                .unwrap()
                .requests
                .iter()
                .any(|(r, _)| r.ends_with(&format!("-{}", 2 * PAGE)));
            if asked { Ok(()) } else { Err("not yet".into()) }
        },
    )
    .await;
    let (_, before) = api.get("/v1/summary").await.unwrap();
    server.kill();

    // Killed mid-window. The source answers again; the hub starts again.
    vendors.lock().unwrap().hold = None;
    vendors.lock().unwrap().requests.clear();
    let server = start(&dir, "serve-2.log");
    let api = Api::new(&client, &server.base, &token);
    until_windows(&api, "salesforce", 2.0).await;
    let stamps = [
        ("001A", "10:00:00"),
        ("001B", "10:01:00"),
        ("001L", "10:01:30"),
        ("001C", "10:02:00"),
        ("001D", "10:03:00"),
        ("001E", "10:04:00"),
        ("001F", "10:05:00"),
    ];
    for (id, at) in stamps {
        until_accepted(
            &api,
            "salesforce",
            &format!("{id}@2026-03-01T{at}.000+0000"),
        )
        .await;
    }
    // The restarted window began where the saved cursor said, less the overlap: at 09:57.
    let first = vendors
        .lock()
        .unwrap()
        .requests
        .iter()
        .find(|(r, _)| r.starts_with("query?") && r.contains("FROM Account"))
        .map(|(r, _)| r.clone())
        .unwrap();
    assert!(
        first.contains("SystemModstamp >= 2026-03-01T09:57:00Z"),
        "{first}"
    );
    let (_, summary) = api.get("/v1/summary").await.unwrap();
    assert_eq!(
        summary["accepted"], 7,
        "each version of each account taken once: {summary} (before the kill: {before})"
    );
    assert!(
        summary["duplicates_suppressed"].as_u64().unwrap() >= 3,
        "what was read again came back as duplicates: {summary}"
    );
    let (status, customer) = api.get("/v1/customers/001F").await.unwrap();
    assert_eq!(status, 200, "{customer}");
}

fn worker_entry(termination: &str, updated: &str) -> Value {
    json!({
        "Employee_ID": "21001", "Worker": "Logan McNeil", "Email_-_Work": "lmcneil@example.com",
        "Hire_Date": "2024-01-08", "Termination_Date": termination, "Company_ID": "DE01",
        "Region": "emea", "Cost_Center_ID": "CC-41000", "Job_Profile": "consultant",
        "Management_Level": "G2", "Worker_Type": "Employee", "Last_Updated": updated,
    })
}

fn psa_event(id: &str, event_type: &str, data: Value) -> Value {
    json!({ "id": id, "source": "psa", "type": event_type, "schema_version": 1, "occurred_at": "2026-03-04T17:02:11Z", "data": data })
}

fn time_entry(entry: &str, date: &str) -> Value {
    psa_event(
        &format!("e-{entry}"),
        "time_entry.approved",
        json!({ "entry_id": entry, "worker_id": "21001", "project_code": "P-1", "work_date": date, "hours": "8", "billable": true }),
    )
}

/// Waits until the hub holds worker 21001 in `status`.
async fn until_worker(api: &Api, what: &str, status: &str) {
    eventually(
        what,
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            match api.get("/v1/workers/21001").await {
                Ok((200, worker)) if worker["status"] == status => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_workday_termination_read_from_the_report_gates_billing_and_a_429_is_waited_out() {
    let vendors: Shared = Arc::default();
    let base = stand_ins(vendors.clone()).await;
    vendors
        .lock()
        .unwrap()
        .workers
        .push(worker_entry("", "2026-03-01T09:15:00.000-08:00"));
    let dir = TempDir::new("rest-poll-workday");
    let (_server, api) = serve_with_config(&dir, &config(&base));

    // The worker comes from the report; the project, its rate card and the staffing from
    // the CRM and the PSA.
    until_worker(&api, "the report's worker is hired", "active").await;
    let mut won = closed_won("P-1", "EUR", "RC-EUR", "2026-01-01", None);
    won["data"]["customer"]["customer_id"] = json!("001A");
    // Deals come from the source that owns them here.
    won["source"] = json!("sf_deals");
    let results = api
        .post_events(&[
            psa_event(
                "rc-1",
                "rate_card.upserted",
                json!({ "rate_card_id": "RC-EUR", "currency": "EUR", "rates": [
                    { "role": "consultant", "region": "emea", "rate": "150.00", "valid_from": "2026-01-01" }
                ] }),
            ),
            won,
            psa_event(
                "as-1",
                "assignment.changed",
                json!({ "assignment_id": "A-1", "version": 1, "worker_id": "21001", "project_code": "P-1",
                        "role": "consultant", "start": "2026-01-01", "end": "2026-12-31", "hours": "160", "state": "approved" }),
            ),
        ])
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );

    // Workday terminates the worker on the 15th; the report's next call is throttled first.
    {
        let mut v = vendors.lock().unwrap();
        v.throttle_next = true;
        v.requests.clear();
        v.workers[0] = worker_entry("2026-03-15", "2026-03-16T07:40:00.000-07:00");
    }
    until_worker(&api, "the report's termination is read", "terminated").await;
    // The 429 asked for 2 s: the next call came no sooner, though the source polls every 100 ms.
    {
        let v = vendors.lock().unwrap();
        let report: Vec<Instant> = v
            .requests
            .iter()
            .filter(|(r, _)| r == "report")
            .map(|(_, at)| *at)
            .collect();
        assert!(report.len() >= 2, "{:?}", v.requests);
        let waited = report[1] - report[0];
        assert!(
            waited >= Duration::from_millis(1_950),
            "Retry-After: 2 waited out, not {waited:?}"
        );
    }
    assert_eq!(api.connector_count("workday", "throttled").await, 1.0);

    let results = api
        .post_events(&[
            time_entry("T-14", "2026-03-14"),
            time_entry("T-16", "2026-03-16"),
        ])
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );
    let case = eventually(
        "the entry after the termination is held",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let (_, cases) = api
                .get("/v1/exceptions?kind=worker_inactive")
                .await
                .map_err(|e| e.to_string())?;
            cases["items"]
                .as_array()
                .and_then(|items| items.first().cloned())
                .ok_or_else(|| cases.to_string())
        },
    )
    .await;
    assert_eq!(case["business_key"], "T-16");
    assert_eq!(
        case["reason"],
        "worker 21001 was terminated on 2026-03-15; the work is dated 2026-03-16"
    );
    let lines = async |entry: &str| api.lines_of(entry).await.len();
    eventually(
        "the entry before the termination is billed",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            match lines("T-14").await {
                1 => Ok(()),
                n => Err(format!("{n} lines")),
            }
        },
    )
    .await;
    assert_eq!(
        lines("T-16").await,
        0,
        "nothing is billed after the termination"
    );
}

/// A hub on `config` with the deals' rate card.
async fn hub_with_rate_card(dir: &TempDir, config: &str) -> (Server, Api) {
    let (server, api) = serve_with_config(dir, config);
    let results = api
        .post_events(&[psa_event(
            "rc-1",
            "rate_card.upserted",
            json!({ "rate_card_id": "RC-EUR", "currency": "EUR", "rates": [
                { "role": "consultant", "region": "emea", "rate": "150.00", "valid_from": "2026-01-01" }
            ] }),
        )])
        .await
        .unwrap();
    assert_eq!(results[0]["status"], "accepted", "{results:?}");
    (server, api)
}

fn won_opportunity(name: &str, stamp: &str) -> Value {
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../mappings/salesforce/fixtures/opportunity_won.json"),
    )
    .unwrap();
    let mut won: Value = serde_json::from_str(&fixture).unwrap();
    won["Name"] = json!(name);
    won["SystemModstamp"] = json!(stamp);
    won
}

#[tokio::test]
async fn a_won_opportunity_read_by_soql_becomes_one_project_however_often_it_changes() {
    let vendors: Shared = Arc::default();
    let base = stand_ins(vendors.clone()).await;
    vendors.lock().unwrap().opportunities.push(won_opportunity(
        "Client GmbH audit 2026",
        "2026-03-04T17:02:11.000+0000",
    ));
    let dir = TempDir::new("rest-poll-deals");
    let (_server, api) = hub_with_rate_card(&dir, &config(&base)).await;

    let engagements = |api: &Api| {
        let api = api.clone();
        async move {
            let (_, body) = api.get("/v1/sandbox/psa/engagements").await.unwrap();
            body["items"].as_array().cloned().unwrap_or_default()
        }
    };
    let project = eventually(
        "the won deal is provisioned",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            match api.get("/v1/projects/P-1001").await {
                Ok((200, project)) if !engagements(&api).await.is_empty() => Ok(project),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(project["opportunity_id"], "006Dn000004Won1AAA", "{project}");
    // The deal changes in Salesforce after it was won: a new version, the same project.
    vendors.lock().unwrap().opportunities[0] = won_opportunity(
        "Client GmbH audit 2026 (renamed)",
        "2026-03-05T08:00:00.000+0000",
    );
    until_accepted(
        &api,
        "sf_deals",
        "006Dn000004Won1AAA@2026-03-05T08:00:00.000+0000",
    )
    .await;
    until_windows(&api, "sf_deals", 3.0).await;
    assert_eq!(
        engagements(&api).await.len(),
        1,
        "one engagement for the deal"
    );
    let (_, projects) = api.get("/v1/sandbox/erp/projects").await.unwrap();
    assert_eq!(projects["items"].as_array().unwrap().len(), 1, "{projects}");
    let (status, xref) = api
        .get("/v1/xref/project/006Dn000004Won1AAA")
        .await
        .unwrap();
    assert_eq!(status, 200, "{xref}");
    assert_eq!(xref["id"], "P-1001", "{xref}");
}

/// A Change Data Capture event as Salesforce publishes it (the Pub/Sub API's event, as a
/// relay forwards it), for `entity`'s record `id`.
fn change_event(entity: &str, id: &str, replay: u64) -> String {
    json!({
        "data": {
            "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
            "payload": {
                "ChangeEventHeader": {
                    "entityName": entity, "recordIds": [id], "changeType": "UPDATE",
                    "changeOrigin": "com/salesforce/api/soap/60.0;client=SfdcInternalAPI/",
                    "transactionKey": "0002343d-9d90-e395-ed20-cf416ba652ad", "sequenceNumber": 1,
                    "commitTimestamp": 1_772_643_731_000_i64, "commitNumber": 10_769_622_537_387_i64,
                    "commitUser": "005Dn000001AbcdIAC",
                    "changedFields": ["StageName", "IsWon", "LastModifiedDate"]
                },
                "StageName": "Closed Won", "IsWon": true, "LastModifiedDate": "2026-03-04T17:02:11.000Z"
            },
            "event": { "replayId": replay }
        },
        "channel": format!("/data/{entity}ChangeEvent")
    })
    .to_string()
}

async fn post_change(client: &reqwest::Client, base: &str, body: &str) -> (u16, Value) {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(CDC_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let answer = client
        .post(format!("{base}/v1/hooks/salesforce_cdc"))
        .header("content-type", "application/json")
        .header("x-signature", format!("sha256={hex}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_salesforce_change_event_of_a_won_deal_wakes_its_query_and_becomes_one_project() {
    let vendors: Shared = Arc::default();
    let base = stand_ins(vendors.clone()).await;
    let dir = TempDir::new("rest-poll-cdc");
    // The deals are polled once an hour: only the change event explains a quick read.
    let (server, api) = hub_with_rate_card(&dir, &config_with(&base, 3_600_000)).await;
    let client = api.client.clone();
    // The first window (at start) found nothing: the deal is won afterwards.
    until_windows(&api, "sf_deals", 1.0).await;
    vendors.lock().unwrap().opportunities.push(won_opportunity(
        "Client GmbH audit 2026",
        "2026-03-04T17:02:11.000+0000",
    ));

    let (status, answer) = post_change(
        &client,
        &server.base,
        &change_event("Opportunity", "006Dn000004Won1AAA", 47_218),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "woke");
    assert_eq!(answer["poll"], "sf_deals");
    assert_eq!(
        answer["change"]["record_ids"],
        json!(["006Dn000004Won1AAA"])
    );
    assert_eq!(answer["change"]["change_type"], "UPDATE");
    eventually(
        "the woken query provisions the won deal",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async {
            match api.get("/v1/projects/P-1001").await {
                Ok((200, project)) => Ok(project),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    // The same change delivered again, and a change of another entity: one project still.
    let (status, _) = post_change(
        &client,
        &server.base,
        &change_event("Opportunity", "006Dn000004Won1AAA", 47_218),
    )
    .await;
    assert_eq!(status, 202);
    let (status, ignored) = post_change(
        &client,
        &server.base,
        &change_event("Account", "001Dn00000Abc01AAA", 47_219),
    )
    .await;
    assert_eq!(
        (status, ignored["status"].as_str()),
        (200, Some("ignored")),
        "{ignored}"
    );
    until_windows(&api, "sf_deals", 3.0).await;
    let (_, projects) = api.get("/v1/sandbox/erp/projects").await.unwrap();
    assert_eq!(projects["items"].as_array().unwrap().len(), 1, "{projects}");
    assert_eq!(api.connector_count("sf_deals", "woken").await, 2.0);
    // A body that is no change event is refused; an unsigned one is refused and kept.
    let (status, refused) = post_change(&client, &server.base, "{\"hello\": 1}").await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "not_a_change_event");
    let unsigned = client
        .post(format!("{}/v1/hooks/salesforce_cdc", server.base))
        .body(change_event("Opportunity", "006Dn000004Won1AAA", 47_220))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
}

/// A Concur allocation of `value` (a JSON number, as Concur writes it) to `project`.
fn allocation(id: &str, value: &str, project: &str, billable: bool) -> Value {
    let amount: Value = serde_json::from_str(value).unwrap();
    json!({
        "allocationId": id, "percentage": 0, "isPercentEdited": true, "isSystemAllocation": false,
        "approvedAmount": { "value": amount, "currencyCode": "EUR" },
        "customData": [
            { "id": "custom1", "value": project, "isValid": true },
            { "id": "custom2", "value": if billable { "Y" } else { "N" }, "isValid": true }
        ]
    })
}

/// A Concur expense of W-1 with its allocations.
fn concur_expense(id: &str, kind: &str, personal: bool, allocations: Vec<Value>) -> Value {
    json!({
        "expenseId": id, "transactionDate": "2026-03-05", "isPersonalExpense": personal,
        "expenseType": { "id": kind.to_uppercase(), "name": kind },
        "allocations": allocations
    })
}

fn concur_report(id: &str, status: &str, modified: &str, expenses: Vec<Value>) -> Value {
    json!({
        "reportId": id, "name": format!("Report {id}"), "employeeId": "W-1",
        "approvalStatusId": status, "currencyCode": "EUR", "lastModifiedDate": modified,
        "expenses": expenses
    })
}

#[tokio::test]
async fn a_concur_report_split_over_two_projects_bills_each_share_once() {
    let vendors: Shared = Arc::default();
    let base = stand_ins(vendors.clone()).await;
    let dir = TempDir::new("rest-poll-concur");
    let config = format!(
        r#"
[sources]
allowed = ["crm", "psa", "hris"]

[owners]
expense = "concur"

[sources.concur]
connector = "rest_poll"
url = "{base}/concur/reports?modifiedAfter={{cursor}}"
records = '[.items[] as $r | ($r.expenses // [])[] as $e | ($e.allocations // [])[] | {{report: ($r | del(.expenses)), expense: ($e | del(.allocations)), allocation: .}}]'
next = ".nextPage"
cursor = ".report.lastModifiedDate"
overlap_s = 60
poll_ms = 100
start = "2026-01-01T00:00:00Z"
mapping = "concur/expense_allocation.v1"
"#
    );
    let (_server, api) = serve_with_config(&dir, &config);
    let mut firm = firm(&["P-1", "P-2"]);
    firm.push(envelope(
        "psa",
        "as-2",
        "assignment.changed",
        json!({ "assignment_id": "A-2", "version": 1, "worker_id": "W-1", "project_code": "P-2",
                "role": "consultant", "start": "2026-01-01", "end": "2026-12-31", "hours": "160", "state": "approved" }),
    ));
    let results = api.post_events(&firm).await.unwrap();
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );
    // The reports, once the firm is known. One share does not say whether it bills.
    let mut unflagged = allocation("AL6", "32.00", "P-1", true);
    unflagged["customData"].as_array_mut().unwrap().pop();
    {
        let mut v = vendors.lock().unwrap();
        v.reports.push(concur_report(
            "R1",
            "A_APPR",
            "2026-03-09T14:20:00Z",
            vec![
                concur_expense(
                    "E1",
                    "Airfare",
                    false,
                    vec![
                        allocation("AL1", "600.00", "P-1", true),
                        allocation("AL2", "400.00", "P-2", true),
                    ],
                ),
                concur_expense(
                    "E2",
                    "Meals",
                    false,
                    vec![allocation("AL3", "45.50", "P-1", false)],
                ),
                concur_expense(
                    "E3",
                    "Personal car",
                    true,
                    vec![allocation("AL4", "80.00", "P-1", true)],
                ),
                concur_expense("E4", "Taxi", false, vec![unflagged]),
            ],
        ));
        v.reports.push(concur_report(
            "R2",
            "A_PEND",
            "2026-03-10T09:00:00Z",
            vec![concur_expense(
                "E5",
                "Hotel",
                false,
                vec![allocation("AL5", "210.40", "P-2", true)],
            )],
        ));
    }
    let billed = async |entry: &'static str| {
        eventually(
            "the allocation is billed",
            Duration::from_secs(30),
            Duration::from_millis(20),
            || async {
                match api.lines_of(entry).await.as_slice() {
                    [line] => Ok(line.clone()),
                    other => Err(format!("{entry}: {other:?}")),
                }
            },
        )
        .await
    };
    // Each share of the airfare is an expense of its own project, of the amount approved.
    let first = billed("CE-E1-AL1").await;
    let second = billed("CE-E1-AL2").await;
    assert_eq!(
        (first["project_code"].clone(), first["amount"].clone()),
        (json!("P-1"), json!("600.00")),
        "{first}"
    );
    assert_eq!(
        (second["project_code"].clone(), second["amount"].clone()),
        (json!("P-2"), json!("400.00")),
        "{second}"
    );
    // The meal is the firm's cost, not billed; the personal expense and the report still
    // in approval are no expenses of the firm; the share that does not say whether it
    // bills is refused, naming the field, not billed to no one.
    until_windows(&api, "concur", 1.0).await;
    until_accepted(&api, "concur", "concur-R1-AL3@2026-03-09T14:20:00Z").await;
    assert!(api.lines_of("CE-E2-AL3").await.is_empty());
    for event in [
        "concur-R1-AL4@2026-03-09T14:20:00Z",
        "concur-R2-AL5@2026-03-10T09:00:00Z",
    ] {
        let (status, _) = api
            .get(&format!("/v1/events/concur/{event}"))
            .await
            .unwrap();
        assert_eq!(status, 404, "{event} is not taken");
    }
    let (_, refused) = api
        .get("/v1/events/concur/concur-R1-AL6@2026-03-09T14:20:00Z")
        .await
        .unwrap();
    assert_eq!(refused["status"], "quarantined", "{refused}");
    assert!(refused.to_string().contains("data.billable"), "{refused}");
    // The pending report is approved, and the first is sent back and approved again with
    // one share changed: read again, the unchanged share is billed once, the changed one
    // reversed and billed at its new amount.
    {
        let mut v = vendors.lock().unwrap();
        v.reports[1]["approvalStatusId"] = json!("A_APPR");
        v.reports[1]["lastModifiedDate"] = json!("2026-03-12T10:00:00Z");
        v.reports[0]["lastModifiedDate"] = json!("2026-03-12T09:00:00Z");
        v.reports[0]["expenses"][0]["allocations"][1]["approvedAmount"]["value"] = json!(380);
    }
    let hotel = billed("CE-E5-AL5").await;
    assert_eq!(hotel["amount"], "210.40", "{hotel}");
    let rebilled = eventually(
        "the changed share is billed again",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let lines = api.lines_of("CE-E1-AL2").await;
            match lines.as_slice() {
                [_, _, _] => Ok(lines),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let amounts: Vec<&Value> = rebilled.iter().map(|l| &l["amount"]).collect();
    assert!(
        amounts.contains(&&json!("-400.00")) && amounts.contains(&&json!("380.00")),
        "{rebilled:?}"
    );
    assert_eq!(
        api.lines_of("CE-E1-AL1").await.len(),
        1,
        "unchanged: billed once"
    );
}
