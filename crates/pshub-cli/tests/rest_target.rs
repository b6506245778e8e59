//! The outbound REST target as a deployment runs it: `pshub serve` whose CRM is Salesforce
//! (`[targets.salesforce] connector = "rest"`, `api = "salesforce"`, `role = "crm"`),
//! against a local stand-in of Salesforce's published REST API (vendor systems cannot be
//! reached from here): the OAuth 2.0 client-credentials flow at `/services/oauth2/token`
//! (no `expires_in`, as Salesforce answers), sObject PATCHes under
//! `/services/data/v60.0/sobjects/`, and Salesforce's error bodies
//! (`[{"message", "errorCode"}]`).
//!
//! Won deals write their PSA and ERP ids back to the Opportunity; a Stripe `invoice.paid`
//! (signed, mapped by `stripe/invoice.v1`) reaches the CRM's invoice. On the way: a token
//! that expires mid-run is fetched again and the call made again, a 429 with
//! `Retry-After` is waited out, and the calls keep to the target's rate budget.
//!
//! Avalara as the tax engine (`api = "avalara"`, `role = "tax"`), against a stand-in of
//! AvaTax's published REST v2 `POST /api/v2/transactions/create` (HTTP Basic, the
//! `CreateTransactionModel` in, a `TransactionModel` out, AvaTax's error bodies): each new
//! line's tax is determined before it goes to the ERP, and a tax code other than the
//! configured one holds the line in a finance case.
//!
//! NetSuite as the ERP (`api = "netsuite"`, `role = "erp"`), against a stand-in of its REST
//! record service (`PUT`/`GET /services/rest/record/v1/<type>/eid:<externalId>`, OAuth 2.0
//! at `/services/rest/auth/oauth2/v1/token`, NetSuite's error bodies): a won deal becomes
//! its customer and project, approved time the items of the month's invoice, each once even
//! when NetSuite's answer to a write is lost.

mod support;

use axum::extract::{Form, Json, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const SECRET: &str = "whsec_rest_target";
/// API calls one token is good for, after which Salesforce answers INVALID_SESSION_ID.
const CALLS_PER_TOKEN: usize = 2;
const RATE_PER_S: u32 = 4;

#[derive(Default)]
struct Salesforce {
    tokens_issued: usize,
    /// The live token and the calls it has left.
    token: Option<(String, usize)>,
    opportunities: HashMap<String, Value>,
    invoices: HashMap<String, Value>,
    throttle_next: bool,
    /// Each sObject call: its path, when it came and what it was answered.
    calls: Vec<(String, Instant, u16)>,
}

type Shared = Arc<Mutex<Salesforce>>;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!([{ "message": message, "errorCode": code }])),
    )
        .into_response()
}

async fn token(State(sf): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some("pshub-connected-app")
        && form.get("client_secret").map(String::as_str) == Some("s3cret");
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_client", "error_description": "invalid client credentials" })),
        )
            .into_response();
    }
    let mut sf = sf.lock().unwrap();
    sf.tokens_issued += 1;
    let access = format!("00Dxx!token-{}", sf.tokens_issued);
    sf.token = Some((access.clone(), CALLS_PER_TOKEN));
    axum::Json(json!({
        "access_token": access, "instance_url": "http://stand-in", "token_type": "Bearer",
        "issued_at": "1796126400000", "signature": "stand-in",
    }))
    .into_response()
}

/// The call's answer when its session is not valid, recorded as a refused call of `path`
/// (else the call uses up one of the session's).
fn refused(sf: &mut Salesforce, headers: &HeaderMap, path: &str) -> Option<Response> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    match &mut sf.token {
        Some((live, left)) if Some(&*live) == given.as_ref() && *left > 0 => {
            *left -= 1;
            None
        }
        _ => {
            sf.calls.push((path.to_string(), Instant::now(), 401));
            Some(error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            ))
        }
    }
}

/// A PATCH's fields written onto the record.
fn set_fields(record: &mut Value, fields: &Value) {
    for (k, v) in fields.as_object().unwrap() {
        record[k] = v.clone();
    }
}

async fn patch_opportunity(
    State(sf): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    axum::Json(fields): axum::Json<Value>,
) -> Response {
    let mut sf = sf.lock().unwrap();
    let path = format!("Opportunity/{id}");
    if let Some(refused) = refused(&mut sf, &headers, &path) {
        return refused;
    }
    if std::mem::take(&mut sf.throttle_next) {
        sf.calls.push((path, Instant::now(), 429));
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response();
    }
    sf.calls.push((path, Instant::now(), 204));
    set_fields(
        sf.opportunities.entry(id).or_insert_with(|| json!({})),
        &fields,
    );
    StatusCode::NO_CONTENT.into_response()
}

async fn upsert_invoice(
    State(sf): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    axum::Json(fields): axum::Json<Value>,
) -> Response {
    let mut sf = sf.lock().unwrap();
    let path = format!("Pshub_Invoice__c/{id}");
    if let Some(refused) = refused(&mut sf, &headers, &path) {
        return refused;
    }
    let created = !sf.invoices.contains_key(&id);
    sf.calls
        .push((path, Instant::now(), if created { 201 } else { 204 }));
    set_fields(sf.invoices.entry(id).or_insert_with(|| json!({})), &fields);
    if created {
        (
            StatusCode::CREATED,
            axum::Json(json!({ "id": "a01Dn000001Inv1AAA", "success": true, "errors": [], "created": true })),
        )
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

async fn stand_in(sf: Shared) -> String {
    let app = axum::Router::new()
        .route("/services/oauth2/token", axum::routing::post(token))
        .route(
            "/services/data/v60.0/sobjects/Opportunity/{id}",
            axum::routing::patch(patch_opportunity),
        )
        .route(
            "/services/data/v60.0/sobjects/Pshub_Invoice__c/Pshub_Invoice_Id__c/{id}",
            axum::routing::patch(upsert_invoice),
        )
        .with_state(sf);
    serve_stand_in(app).await
}

fn config(base: &str) -> String {
    format!(
        r#"
[sources]
allowed = ["crm", "psa", "hris", "erp", "payroll"]

[owners]
invoice_status = "stripe"

[sources.stripe]
connector = "webhook"
signature = "stripe"
secret = "{SECRET}"
mapping = "stripe/invoice.v1"

[targets.salesforce]
connector = "rest"
api = "salesforce"
role = "crm"
url = "{base}"
auth = "oauth2"
token_url = "{base}/services/oauth2/token"
client_id = "pshub-connected-app"
client_secret = "s3cret"
rate_per_s = {RATE_PER_S}
"#
    )
}

fn event(source: &str, id: &str, event_type: &str, data: Value) -> Value {
    json!({ "id": id, "source": source, "type": event_type, "schema_version": 1, "occurred_at": "2026-03-04T17:02:11Z", "data": data })
}

/// Stripe's `invoice.paid` for the hub's invoice, signed as Stripe signs it.
fn invoice_paid(invoice: &str) -> (String, String) {
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../mappings/stripe/fixtures/invoice.paid.json"),
    )
    .unwrap();
    let mut paid: Value = serde_json::from_str(&fixture).unwrap();
    paid["data"]["object"]["metadata"]["pshub_invoice_id"] = json!(invoice);
    let body = paid.to_string();
    let t = chrono::Utc::now().timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let v1: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (body, format!("t={t},v1={v1}"))
}

#[tokio::test]
async fn salesforce_as_the_crm_gets_write_backs_and_paid_invoices_through_expiring_tokens_and_a_429()
 {
    let sf: Shared = Arc::default();
    sf.lock().unwrap().throttle_next = true;
    let base = stand_in(sf.clone()).await;
    let dir = TempDir::new("rest-target");
    let (server, api) = serve_with_config(&dir, &config(&base));
    let client = api.client.clone();

    let mut events = firm(&["P-1", "P-2", "P-3"]);
    events.push(approved_time("T1", "2026-03-04", "2"));
    api.post_accepted(&events).await;

    // Each won deal's ids reach its Opportunity.
    let written = eventually(
        "the write-backs reach Salesforce",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let sf = sf.lock().unwrap();
            let done: Vec<Value> = ["OPP-P-1", "OPP-P-2", "OPP-P-3"]
                .iter()
                .filter_map(|id| sf.opportunities.get(*id).cloned())
                .collect();
            if done.len() == 3 {
                Ok(done)
            } else {
                Err(format!("{:?}", sf.calls))
            }
        },
    )
    .await;
    for (record, project) in written.iter().zip(["P-1", "P-2", "P-3"]) {
        assert_eq!(record["Pshub_Project_Code__c"], project, "{record}");
        assert!(
            record["PSA_Engagement_Id__c"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
                && record["ERP_Project_Id__c"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
            "{record}"
        );
    }

    // The paid invoice, from Stripe's signed webhook, reaches the CRM's invoice object.
    let invoice = "INV-P-1-2026-03";
    eventually(
        "the entry's line is posted to its invoice",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            match api.get(&format!("/v1/invoices/{invoice}")).await {
                Ok((200, body)) => Ok(body),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let (body, signature) = invoice_paid(invoice);
    let answer = client
        .post(format!("{}/v1/hooks/stripe", server.base))
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let record = eventually(
        "the paid status reaches Salesforce",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let sf = sf.lock().unwrap();
            match sf.invoices.get(invoice) {
                Some(record) if record["Status__c"] == "paid" => Ok(record.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(record["Project_Code__c"], "P-1", "{record}");

    // The target as the hub shows it: the CRM, its breaker closed, its secret nowhere.
    let (_, systems) = api.get("/v1/systems").await.unwrap();
    let target = &systems["salesforce"];
    assert_eq!(target["kind"], "crm", "{target}");
    assert_eq!(target["breaker"]["state"], "closed", "{target}");
    assert_eq!(
        target["target"]["auth"], "oauth2_client_credentials",
        "{target}"
    );
    assert_eq!(target["target"]["rate_per_s"], RATE_PER_S, "{target}");
    let (_, catalog) = api.get("/v1/catalog").await.unwrap();
    assert!(!systems.to_string().contains("s3cret") && !catalog.to_string().contains("s3cret"));
    let token_refusals = api.connector_count("salesforce", "token_refused").await;
    let throttled = api.connector_count("salesforce", "throttled").await;
    let sf = sf.lock().unwrap();
    // The tokens ran out mid-run: each refusal fetched a new one and the call went again.
    let refused = sf.calls.iter().filter(|(_, _, s)| *s == 401).count();
    assert!(refused >= 1, "{:?}", sf.calls);
    assert!(sf.tokens_issued >= 2, "{} tokens", sf.tokens_issued);
    assert_eq!(token_refusals, refused as f64);
    assert_eq!(throttled, 1.0);
    // The 429 asked for a second: that call came again no sooner.
    let (throttled, at, _) = sf.calls.iter().find(|(_, _, s)| *s == 429).unwrap();
    let again = sf
        .calls
        .iter()
        .find(|(path, when, s)| path == throttled && when > at && *s != 401)
        .expect("the throttled call was made again");
    assert!(
        again.1 - *at >= Duration::from_millis(990),
        "Retry-After: 1 waited out, not {:?}",
        again.1 - *at
    );
    // The budget: no two calls closer than a quarter of a second, and the run as a
    // whole no faster than the budget. Times are taken where the stand-in receives a
    // call, so a loaded machine's scheduling delay on one call is allowed for.
    let every = Duration::from_secs(1) / RATE_PER_S;
    let jitter = Duration::from_millis(40);
    let (first, last) = (sf.calls[0].1, sf.calls[sf.calls.len() - 1].1);
    let span = every * (sf.calls.len() as u32 - 1);
    assert!(
        last - first >= span - jitter,
        "{} calls in {:?}",
        sf.calls.len(),
        last - first
    );
    for pair in sf.calls.windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= every - jitter,
            "{:?} then {:?}: {:?} apart",
            pair[0].0,
            pair[1].0,
            pair[1].1 - pair[0].1
        );
    }
}

/// HTTP Basic of the AvaTax account `1100012345` with license key `lic3nse-key`.
const AVATAX_BASIC: &str = "Basic MTEwMDAxMjM0NTpsaWMzbnNlLWtleQ==";

/// A stand-in of AvaTax: its item catalog classifies what is sold, and the catalog's tax
/// code is what AvaTax applies to a line of that item, whatever code the line asked for.
#[derive(Default)]
struct AvaTax {
    items: HashMap<String, String>,
    /// Each transaction created, as it came.
    documents: Vec<Value>,
    /// Calls refused for their credentials.
    unauthenticated: usize,
}

type SharedAvaTax = Arc<Mutex<AvaTax>>;

async fn create_transaction(
    State(avatax): State<SharedAvaTax>,
    headers: HeaderMap,
    Json(model): Json<Value>,
) -> Response {
    let mut avatax = avatax.lock().unwrap();
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(AVATAX_BASIC) {
        avatax.unauthenticated += 1;
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": { "code": "AuthenticationException", "message": "Authentication failed.",
                "details": [{ "code": "AuthenticationException", "number": 34, "severity": "Error",
                              "description": "Missing authentication or unable to authenticate the user or the account." }] } })),
        )
            .into_response();
    }
    avatax.documents.push(model.clone());
    let line = &model["lines"][0];
    let item = line["itemCode"].as_str().unwrap_or_default();
    let applied = avatax
        .items
        .get(item)
        .cloned()
        .or_else(|| line["taxCode"].as_str().map(str::to_string))
        .unwrap_or_else(|| "P0000000".into());
    let id = avatax.documents.len();
    axum::Json(json!({
        "id": id, "code": model["code"], "companyId": 7, "date": model["date"], "status": "Saved",
        "type": "SalesInvoice", "currencyCode": model["currencyCode"], "customerCode": model["customerCode"],
        "totalAmount": line["amount"], "totalTax": "0",
        "lines": [{ "id": id * 10, "lineNumber": "1", "itemCode": item, "taxCode": applied,
                    "lineAmount": line["amount"], "quantity": line["quantity"], "tax": "0" }],
    }))
    .into_response()
}

async fn avatax_stand_in(avatax: SharedAvaTax) -> String {
    let app = axum::Router::new()
        .route(
            "/api/v2/transactions/create",
            axum::routing::post(create_transaction),
        )
        .with_state(avatax);
    serve_stand_in(app).await
}

fn avalara_config(base: &str) -> String {
    format!(
        r#"
[sources]
allowed = ["crm", "psa", "hris", "erp", "payroll"]

[legal_entities.DE01]
currency = "EUR"
tax_code = "DE-VAT19"

[targets.avalara]
connector = "rest"
api = "avalara"
role = "tax"
url = "{base}"
auth = "basic"
username = "1100012345"
password = "lic3nse-key"
company_code = "ACME"
location_code = "HQ"
"#
    )
}

/// The ERP's lines, as the sandbox holds them.
async fn erp_lines(api: &Api) -> Vec<Value> {
    api.get_ok("/v1/sandbox/erp/lines?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn avalara_determines_each_new_lines_tax_and_a_mismatch_holds_the_line_for_finance() {
    let avatax: SharedAvaTax = Arc::default();
    {
        let mut avatax = avatax.lock().unwrap();
        avatax
            .items
            .insert("professional_services".into(), "DE-VAT19".into());
        // The expense item is classified under a reduced rate: not what DE01 invoices.
        avatax
            .items
            .insert("reimbursable_expense".into(), "DE-VAT7".into());
    }
    let base = avatax_stand_in(avatax.clone()).await;
    let dir = TempDir::new("avalara");
    let (_server, api) = serve_with_config(&dir, &avalara_config(&base));

    let mut events = firm(&["P-1"]);
    events.extend([
        approved_time("T1", "2026-03-04", "2"),
        event(
            "psa",
            "x1",
            "expense.approved",
            json!({ "expense_id": "X1", "worker_id": "W-1", "project_code": "P-1", "spent_on": "2026-03-04",
                    "amount": "80.00", "currency": "EUR", "category": "travel", "billable": true }),
        ),
    ]);
    api.post_accepted(&events).await;

    // The time line goes to the ERP with the tax code AvaTax applied; the expense line is
    // held in a finance case, its mismatch in evidence.
    let case = eventually(
        "the time line is posted and the expense's mismatch opens a case",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let lines = erp_lines(&api).await;
            let cases = api
                .get_ok("/v1/exceptions?kind=tax_code_mismatch&state=open")
                .await;
            match (
                lines.as_slice(),
                cases["items"].as_array().unwrap().as_slice(),
            ) {
                ([line], [case]) if line["source_id"] == "T1" => Ok((line.clone(), case.clone())),
                _ => Err(format!("{lines:?} {cases}")),
            }
        },
    )
    .await;
    let (time_line, case) = case;
    assert_eq!(time_line["tax_code"], "DE-VAT19", "{time_line}");
    assert_eq!(time_line["amount"], "300.00", "{time_line}");
    assert_eq!(case["owner"], "finance", "{case}");
    let evidence: Value = match &case["evidence"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    assert_eq!(evidence["expected_tax_code"], "DE-VAT19", "{case}");
    assert_eq!(evidence["applied_tax_code"], "DE-VAT7", "{case}");
    assert_eq!(evidence["item_code"], "reimbursable_expense", "{case}");
    assert_eq!(evidence["amount"], "80.00", "{case}");
    let expense_document = evidence["idempotency_key"].as_str().unwrap().to_string();
    {
        let avatax = avatax.lock().unwrap();
        assert_eq!(avatax.unauthenticated, 0);
        assert_eq!(avatax.documents.len(), 2, "{:?}", avatax.documents);
        // The documents in AvaTax's published shape, one per line.
        let time = avatax
            .documents
            .iter()
            .find(|d| d["lines"][0]["ref1"] == "T1")
            .expect("T1's document");
        assert_eq!(time["type"], "SalesInvoice", "{time}");
        assert_eq!(time["companyCode"], "ACME", "{time}");
        assert_eq!(time["customerCode"], "P-1", "{time}");
        assert_eq!(time["currencyCode"], "EUR", "{time}");
        assert_eq!(time["commit"], false, "{time}");
        assert_eq!(time["date"], "2026-03-04", "{time}");
        assert_eq!(time["lines"][0]["taxCode"], "DE-VAT19", "{time}");
        assert_eq!(
            time["lines"][0]["itemCode"], "professional_services",
            "{time}"
        );
        assert_eq!(time["lines"][0]["amount"], "300.00", "{time}");
        assert_eq!(
            time["addresses"]["singleLocation"]["locationCode"], "HQ",
            "{time}"
        );
        assert!(
            avatax
                .documents
                .iter()
                .any(|d| d["referenceCode"] == expense_document.as_str()),
            "{expense_document}"
        );
    }

    // Finance corrects the item's classification in AvaTax and resolves the case: the tax
    // engine is asked again under the same document code and the line is posted, once.
    avatax
        .lock()
        .unwrap()
        .items
        .insert("reimbursable_expense".into(), "DE-VAT19".into());
    let (status, body) = api
        .post(&format!("/v1/exceptions/{}/resolve", case["id"]))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let expense_line = eventually(
        "the expense line is posted after the case is resolved",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let lines = erp_lines(&api).await;
            match lines.iter().find(|l| l["source_id"] == "X1") {
                Some(line) => Ok(line.clone()),
                None => Err(format!("{lines:?}")),
            }
        },
    )
    .await;
    assert_eq!(expense_line["tax_code"], "DE-VAT19", "{expense_line}");
    assert_eq!(expense_line["amount"], "80.00", "{expense_line}");
    let documents: Vec<Value> = avatax.lock().unwrap().documents.clone();
    let asked: Vec<&Value> = documents
        .iter()
        .filter(|d| d["referenceCode"] == expense_document.as_str())
        .collect();
    assert_eq!(asked.len(), 2, "asked twice: {documents:?}");
    assert_eq!(asked[0]["code"], asked[1]["code"], "under one code");

    // A rejection after billing reverses the line: a reversal is not taxed again.
    let results = api
        .post_events(&[event(
            "psa",
            "t1-rejected",
            "time_entry.rejected",
            json!({ "entry_id": "T1", "worker_id": "W-1", "project_code": "P-1", "work_date": "2026-03-04", "hours": "2", "billable": true }),
        )])
        .await
        .unwrap();
    assert_eq!(results[0]["status"], "accepted", "{results:?}");
    let reversal = eventually(
        "the reversal is posted",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let lines = erp_lines(&api).await;
            match lines.iter().find(|l| !l["reverses_erp_id"].is_null()) {
                Some(line) => Ok(line.clone()),
                None => Err(format!("{lines:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        reversal["reverses_erp_id"], time_line["erp_id"],
        "{reversal}"
    );
    assert_eq!(erp_lines(&api).await.len(), 3);
    assert_eq!(avatax.lock().unwrap().documents.len(), 3);

    // The tax engine as the hub shows it; its license key nowhere.
    let (_, systems) = api.get("/v1/systems").await.unwrap();
    let target = &systems["avalara"];
    assert_eq!(target["kind"], "tax", "{target}");
    assert_eq!(target["target"]["auth"], "basic", "{target}");
    assert_eq!(target["target"]["company_code"], "ACME", "{target}");
    let (_, catalog) = api.get("/v1/catalog").await.unwrap();
    let entry = &catalog["systems"]["avalara"];
    assert!(
        entry["flows"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("time_to_bill"))),
        "{entry}"
    );
    assert_eq!(entry["health"]["failed_calls"], 0, "{entry}");
    assert!(entry["health"]["last_success"].is_string(), "{entry}");
    assert!(!systems.to_string().contains("lic3nse") && !catalog.to_string().contains("lic3nse"));
}

/// A stand-in of NetSuite's REST record service: records by type and external id, each with
/// the internal id NetSuite gave it.
#[derive(Default)]
struct NetSuite {
    records: HashMap<(String, String), Value>,
    next_id: u64,
    /// The answer to the next invoice write is lost: written, then answered too late.
    lose_next_invoice_reply: bool,
    /// Each write: its record type and external id, for failure messages.
    writes: Vec<(String, String)>,
}

type SharedNetSuite = Arc<Mutex<NetSuite>>;

fn netsuite_error(status: StatusCode, code: &str, detail: &str) -> Response {
    (
        status,
        axum::Json(
            json!({ "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
            "title": status.canonical_reason(), "status": status.as_u16(),
            "o:errorDetails": [{ "detail": detail, "o:errorCode": code }] }),
        ),
    )
        .into_response()
}

async fn netsuite_token(Form(form): Form<HashMap<String, String>>) -> Response {
    if form.get("client_secret").map(String::as_str) != Some("ns-s3cret") {
        return netsuite_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_LOGIN",
            "Invalid client credentials.",
        );
    }
    axum::Json(json!({ "access_token": "ns-token", "token_type": "Bearer", "expires_in": 3600 }))
        .into_response()
}

fn external_id(eid: &str) -> Option<String> {
    eid.strip_prefix("eid:").map(str::to_string)
}

/// `PUT` creates the record of an external id or replaces it whole; `PATCH` sets the fields
/// given on the record held, a sublist named by `replace` replaced.
async fn netsuite_put(
    ns: State<SharedNetSuite>,
    headers: HeaderMap,
    path: UrlPath<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    netsuite_write(ns, headers, path, body).await
}

async fn netsuite_patch(
    ns: State<SharedNetSuite>,
    headers: HeaderMap,
    path: UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    let held = {
        let ns = ns.lock().unwrap();
        let (record, eid) = (&path.0.0, &path.0.1);
        external_id(eid).and_then(|id| ns.records.get(&(record.clone(), id)).cloned())
    };
    let Some(mut merged) = held else {
        return netsuite_error(
            StatusCode::NOT_FOUND,
            "NONEXISTENT_ID",
            "The record instance does not exist.",
        );
    };
    for (field, value) in body.as_object().cloned().unwrap_or_default() {
        // Without replace, NetSuite adds the sublist lines given to those it holds.
        let replace = query
            .get("replace")
            .is_some_and(|r| r.split(',').any(|s| s == field));
        match (&mut merged[&field]["items"], value["items"].as_array()) {
            (Value::Array(held), Some(given)) if !replace => held.extend(given.iter().cloned()),
            _ => merged[&field] = value,
        }
    }
    netsuite_write(ns, headers, path, merged).await
}

async fn netsuite_write(
    State(ns): State<SharedNetSuite>,
    headers: HeaderMap,
    UrlPath((record, eid)): UrlPath<(String, String)>,
    mut body: Value,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer ns-token") {
        return netsuite_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_LOGIN",
            "Invalid login attempt.",
        );
    }
    let Some(external) = external_id(&eid) else {
        return netsuite_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ID",
            "Expected eid:<externalId>.",
        );
    };
    let lose = {
        let mut ns = ns.lock().unwrap();
        // A record must name records NetSuite holds.
        let must_hold = match record.as_str() {
            "job" => Some(("customer", body["parent"]["externalId"].clone())),
            "invoice" => Some(("job", body["entity"]["externalId"].clone())),
            _ => None,
        };
        if let Some((kind, id)) = must_hold {
            let known = id
                .as_str()
                .is_some_and(|id| ns.records.contains_key(&(kind.to_string(), id.to_string())));
            if !known {
                return netsuite_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_KEY_OR_REF",
                    &format!("Invalid {kind} reference key {id}."),
                );
            }
        }
        let key = (record.clone(), external.clone());
        let id = match ns.records.get(&key) {
            Some(held) => held["id"].clone(),
            None => {
                ns.next_id += 1;
                json!(ns.next_id.to_string())
            }
        };
        body["id"] = id;
        ns.records.insert(key, body);
        ns.writes.push((record.clone(), external));
        record == "invoice" && std::mem::take(&mut ns.lose_next_invoice_reply)
    };
    if lose {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn netsuite_get(
    State(ns): State<SharedNetSuite>,
    UrlPath((record, eid)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let ns = ns.lock().unwrap();
    match external_id(&eid).and_then(|id| ns.records.get(&(record.clone(), id))) {
        // Sublists are links unless expanded, as NetSuite answers.
        Some(held) if query.get("expandSubResources").map(String::as_str) != Some("true") => {
            let mut shown = held.clone();
            if shown["item"].is_object() {
                shown["item"] = json!({ "links": [{ "rel": "self", "href": format!("/services/rest/record/v1/{record}/{}/item", held["id"].as_str().unwrap_or_default()) }] });
            }
            axum::Json(shown).into_response()
        }
        Some(held) => axum::Json(held.clone()).into_response(),
        None => netsuite_error(
            StatusCode::NOT_FOUND,
            "NONEXISTENT_ID",
            &format!(
                "The record instance does not exist. Provide a valid record instance ID ({record} {eid})."
            ),
        ),
    }
}

async fn netsuite_stand_in(ns: SharedNetSuite) -> String {
    let app = axum::Router::new()
        .route(
            "/services/rest/auth/oauth2/v1/token",
            axum::routing::post(netsuite_token),
        )
        .route(
            "/services/rest/record/v1/{record}/{eid}",
            axum::routing::put(netsuite_put)
                .patch(netsuite_patch)
                .get(netsuite_get),
        )
        .with_state(ns);
    serve_stand_in(app).await
}

#[tokio::test]
async fn netsuite_as_the_erp_holds_each_project_and_invoice_line_once_by_external_id() {
    let ns: SharedNetSuite = Arc::default();
    ns.lock().unwrap().lose_next_invoice_reply = true;
    let base = netsuite_stand_in(ns.clone()).await;
    let dir = TempDir::new("netsuite");
    let (_server, api) = serve_with_config(
        &dir,
        &format!(
            r#"
[sources]
allowed = ["crm", "psa", "hris", "erp", "payroll"]

[targets.netsuite]
connector = "rest"
api = "netsuite"
role = "erp"
url = "{base}"
auth = "oauth2"
token_url = "{base}/services/rest/auth/oauth2/v1/token"
client_id = "pshub-integration"
client_secret = "ns-s3cret"
timeout_ms = 1000
"#
        ),
    );
    api.post_accepted(&{
        let mut events = firm(&["P-1"]);
        events.extend([
            approved_time("T1", "2026-03-04", "2"),
            approved_time("T2", "2026-03-05", "3"),
        ]);
        events
    })
    .await;

    // Both lines are items of the month's invoice, once each, though NetSuite's answer to
    // the first invoice write was lost.
    let invoice = eventually(
        "both lines reach the month's invoice",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let summary = api.summary().await;
            let ns = ns.lock().unwrap();
            match ns
                .records
                .get(&("invoice".into(), "INV-P-1-2026-03".into()))
            {
                Some(invoice)
                    if summary["lines_undelivered"] == 0 && summary["lines_posted"] == 2 =>
                {
                    Ok(invoice.clone())
                }
                other => Err(format!("{other:?} {summary}")),
            }
        },
    )
    .await;
    let items = invoice["item"]["items"].as_array().unwrap();
    let keys: Vec<&str> = items
        .iter()
        .map(|i| i["custcol_pshub_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{invoice}");
    assert_ne!(keys[0], keys[1], "{invoice}");
    let amounts: Vec<&str> = items
        .iter()
        .map(|i| i["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["300.00", "450.00"], "{invoice}");
    assert_eq!(invoice["entity"]["externalId"], "P-1", "{invoice}");
    assert_eq!(invoice["currency"]["refName"], "EUR", "{invoice}");
    let dated = invoice["tranDate"].clone();

    // A later line goes onto the invoice NetSuite holds: its items grow, its header stays.
    let results = api
        .post_events(&[approved_time("T3", "2026-03-20", "1")])
        .await
        .unwrap();
    assert_eq!(results[0]["status"], "accepted", "{results:?}");
    let invoice = eventually(
        "the third line reaches the invoice",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let ns = ns.lock().unwrap();
            match ns
                .records
                .get(&("invoice".into(), "INV-P-1-2026-03".into()))
            {
                Some(invoice) if invoice["item"]["items"].as_array().map(Vec::len) == Some(3) => {
                    Ok(invoice.clone())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(invoice["tranDate"], dated, "{invoice}");
    let mut keys: Vec<&str> = invoice["item"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["custcol_pshub_key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 3, "each line once: {invoice}");

    let job_id = {
        let ns = ns.lock().unwrap();
        // The customer, and the project under it with the PSA's id.
        let customer = &ns.records[&("customer".to_string(), "C-1".to_string())];
        assert_eq!(customer["companyName"], "Client GmbH", "{customer}");
        let job = &ns.records[&("job".to_string(), "P-1".to_string())];
        assert_eq!(job["parent"]["externalId"], "C-1", "{job}");
        assert!(
            job["custentity_pshub_psa_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{job}"
        );
        // The answer to an invoice write was lost (the line's next attempt found its key on
        // the invoice and wrote nothing again).
        assert!(!ns.lose_next_invoice_reply, "{:?}", ns.writes);
        job["id"].as_str().unwrap().to_string()
    };

    // The registry holds NetSuite's internal id of the project.
    let (status, xref) = api.get("/v1/xref/project/P-1").await.unwrap();
    assert_eq!(status, 200, "{xref}");
    assert_eq!(xref["ids"]["netsuite"], job_id.as_str(), "{xref}");
    let (_, systems) = api.get("/v1/systems").await.unwrap();
    assert_eq!(
        systems["netsuite"]["kind"], "erp",
        "{}",
        systems["netsuite"]
    );
    assert!(!systems.to_string().contains("ns-s3cret"));
}
