//! The sandbox systems as a network peer (`pshub sandbox --listen`): HTTP/JSON, one route
//! per create, each with an `Idempotency-Key` header (lines carry one key each in the body,
//! since one request posts many), a lookup of keys per system, and read-only inspection.
//! Faults misbehave the way a network does: a 503 with `Retry-After`, a request held until
//! the caller gives up, and a reply lost after the write (the connection drops mid-answer).
//! The sandbox's routes need no token: it is a test peer on loopback.

use super::wire::*;
use super::{Answer, Fault, Sandbox, System};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Shared = Arc<Sandbox>;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": code, "message": message.into() } });
    (status, Json(body)).into_response()
}

fn key_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

fn missing_key() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "idempotency_key_missing",
        "send an Idempotency-Key header with every create",
    )
}

/// A reply that never arrives whole: the status goes out, the body breaks off.
fn lost_reply() -> Response {
    let broken = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("reply lost"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(broken))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The fault, if any, that the dice give this call to `system`.
async fn roll(sandbox: &Shared, system: System) -> Option<Fault> {
    let dice = sandbox.clone();
    tokio::task::spawn_blocking(move || dice.fault(system))
        .await
        .unwrap_or(None)
}

/// Runs a create under the dice: `write` is done unless the call fails or times out.
async fn under_faults<T: serde::Serialize + Send + 'static>(
    sandbox: Shared,
    system: System,
    write: impl FnOnce(&Sandbox) -> std::io::Result<T> + Send + 'static,
    status: impl FnOnce(&T) -> StatusCode,
) -> Response {
    let fault = roll(&sandbox, system).await;
    match fault {
        Some(Fault::Fail { retry_after }) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the {} is unavailable", system.as_str()),
            );
            if let Some(after) = retry_after
                && let Ok(value) = after.as_secs().to_string().parse()
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Some(Fault::Timeout { hold }) => {
            tokio::time::sleep(hold).await;
            error(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the request took too long",
            )
        }
        lost => {
            let written = tokio::task::spawn_blocking(move || write(&sandbox))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match written {
                Ok(_) if lost == Some(Fault::LostReply) => lost_reply(),
                Ok(answer) => (status(&answer), Json(answer)).into_response(),
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "write_failed",
                    e.to_string(),
                ),
            }
        }
    }
}

fn created(answer: &AnswerBody) -> StatusCode {
    if answer.refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::CREATED
    }
}

/// A create under the `Idempotency-Key` header: refused without one, else run under faults.
async fn keyed_create(
    sandbox: Shared,
    headers: &HeaderMap,
    system: System,
    create: impl FnOnce(&Sandbox, &str) -> std::io::Result<Answer> + Send + 'static,
) -> Response {
    let Some(key) = key_of(headers) else {
        return missing_key();
    };
    let write = move |s: &Sandbox| create(s, &key).map(|a| AnswerBody::from(&a));
    under_faults(sandbox, system, write, created).await
}

async fn create_engagement(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<EngagementBody>,
) -> Response {
    keyed_create(sandbox, &headers, System::Psa, move |s, key| {
        s.create_engagement(key, &body)
    })
    .await
}

async fn provision_project(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<ProjectBody>,
) -> Response {
    keyed_create(sandbox, &headers, System::Erp, move |s, key| {
        s.provision_project(key, &body)
    })
    .await
}

async fn attach_billing_rules(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<BillingRulesBody>,
) -> Response {
    keyed_create(sandbox, &headers, System::Erp, move |s, key| {
        s.attach_billing_rules(key, &body)
    })
    .await
}

/// Keeps an update (a worker's resource status or costing attributes, an invoice's status)
/// in one of `system`'s kept collections, under the `Idempotency-Key` header.
async fn keep_update(
    sandbox: Shared,
    headers: &HeaderMap,
    system: System,
    collection: &'static str,
    body: Value,
) -> Response {
    keyed_create(sandbox, headers, system, move |s, key| {
        s.keep(system, collection, key, body)
    })
    .await
}

async fn update_resource(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<ResourceBody>,
) -> Response {
    let body = serde_json::to_value(body).unwrap_or(Value::Null);
    keep_update(sandbox, &headers, System::Psa, "resources", body).await
}

async fn update_costing(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<CostingBody>,
) -> Response {
    let body = serde_json::to_value(body).unwrap_or(Value::Null);
    keep_update(sandbox, &headers, System::Erp, "employees", body).await
}

async fn update_cost_price(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<CostPriceBody>,
) -> Response {
    let body = serde_json::to_value(body).unwrap_or(Value::Null);
    keep_update(sandbox, &headers, System::Erp, "cost-prices", body).await
}

async fn issue_schedule(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<ScheduleBody>,
) -> Response {
    let body = serde_json::to_value(body).unwrap_or(Value::Null);
    keep_update(sandbox, &headers, System::Erp, "schedules", body).await
}

async fn update_invoice_status(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<InvoiceStatusBody>,
) -> Response {
    let body = serde_json::to_value(body).unwrap_or(Value::Null);
    keep_update(sandbox, &headers, System::Crm, "invoices", body).await
}

async fn post_lines(State(sandbox): State<Shared>, Json(lines): Json<Vec<LineBody>>) -> Response {
    if let Some(at) = lines
        .iter()
        .position(|l| l.idempotency_key.trim().is_empty())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "idempotency_key_missing",
            format!("line {at} has no idempotency_key"),
        );
    }
    under_faults(
        sandbox,
        System::Erp,
        move |s| {
            s.post_lines(&lines)
                .map(|answers| answers.iter().map(AnswerBody::from).collect::<Vec<_>>())
        },
        |_| StatusCode::OK,
    )
    .await
}

async fn write_back_ids(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<WriteBackBody>,
) -> Response {
    keyed_create(sandbox, &headers, System::Crm, move |s, key| {
        s.write_back_ids(key, &body)
    })
    .await
}

async fn lookup(
    State(sandbox): State<Shared>,
    Path(system): Path<String>,
    Json(body): Json<LookupBody>,
) -> Response {
    let Some(system) = System::parse(&system) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no system {system}"),
        );
    };
    let fault = roll(&sandbox, system).await;
    if let Some(Fault::Fail { .. } | Fault::Timeout { .. }) = fault {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "try again later",
        );
    }
    let found = tokio::task::spawn_blocking(move || sandbox.lookup(system, &body.keys))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    match found {
        Ok(found) => Json(LookupAnswer { found }).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "read_failed",
            e.to_string(),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

impl PageQuery {
    pub fn new(limit: Option<String>, cursor: Option<String>) -> Self {
        PageQuery { limit, cursor }
    }
}

/// Reads `limit` (1 to 1,000, default 100) and `cursor`, naming the one that is wrong.
pub fn page_of(query: &PageQuery) -> Result<(u64, u32), String> {
    let limit = match &query.limit {
        None => 100,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1_000).contains(n))
            .ok_or_else(|| format!("limit: '{raw}' is not a whole number from 1 to 1000"))?,
    };
    let after = match &query.cursor {
        None => 0,
        Some(raw) => raw
            .parse::<u64>()
            .map_err(|_| format!("cursor: '{raw}' is not a cursor this API gave out"))?,
    };
    Ok((after, limit))
}

/// `GET /sandbox/{system}/{collection}` and the hub's `GET /v1/sandbox/...`: one page.
pub fn inspect(
    sandbox: &Sandbox,
    system: &str,
    collection: &str,
    query: &PageQuery,
) -> Result<Value, (u16, String)> {
    let system = System::parse(system).ok_or_else(|| {
        (
            404,
            format!("no sandbox system {system}; there are psa, erp and crm"),
        )
    })?;
    let (after, limit) = page_of(query).map_err(|e| (400, e))?;
    match sandbox.list(system, collection, after, limit) {
        Ok(Some(page)) => Ok(page),
        Ok(None) => Err((
            404,
            format!(
                "the {} has no collection {collection}; it has {}",
                system.as_str(),
                system.collections().join(", ")
            ),
        )),
        Err(e) => Err((500, e.to_string())),
    }
}

async fn list(
    State(sandbox): State<Shared>,
    Path((system, collection)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Response {
    let answer =
        tokio::task::spawn_blocking(move || inspect(&sandbox, &system, &collection, &query)).await;
    match answer {
        Ok(Ok(page)) => Json(page).into_response(),
        Ok(Err((400, message))) => error(StatusCode::BAD_REQUEST, "invalid_parameter", message),
        Ok(Err((404, message))) => error(StatusCode::NOT_FOUND, "not_found", message),
        Ok(Err((_, message))) => error(StatusCode::INTERNAL_SERVER_ERROR, "read_failed", message),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "read_failed",
            e.to_string(),
        ),
    }
}

async fn stats(State(sandbox): State<Shared>) -> Json<Value> {
    Json(sandbox.stats())
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub fn router(sandbox: Shared) -> Router {
    Router::new()
        .route("/psa/engagements", post(create_engagement))
        .route("/psa/resources", post(update_resource))
        .route("/erp/employees", post(update_costing))
        .route("/erp/cost-prices", post(update_cost_price))
        .route("/erp/schedules", post(issue_schedule))
        .route("/erp/projects", post(provision_project))
        .route("/erp/billing-rules", post(attach_billing_rules))
        .route("/erp/lines", post(post_lines))
        .route("/crm/write-backs", post(write_back_ids))
        .route("/crm/invoices", post(update_invoice_status))
        .route("/{system}/lookup", post(lookup))
        .route("/sandbox/stats", get(stats))
        .route("/sandbox/{system}/{collection}", get(list))
        .route("/healthz", get(healthz))
        .with_state(sandbox)
}

/// Serves the sandbox on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sandbox: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(sandbox))
        .with_graceful_shutdown(shutdown)
        .await
}
