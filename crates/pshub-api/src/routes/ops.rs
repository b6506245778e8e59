//! Operations: transaction timelines, dead letters, quarantine, summary, health, metrics.

use crate::auth::{Role, check};
use crate::error::ApiError;
use crate::wire::{self, PageQuery};
use crate::{AppState, blocking};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use pshub_engine::store::{LineStatus, OutboxState};
use pshub_engine::summary::Summary;
use serde_json::{Value, json};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.engine.metrics().render(),
    )
}

pub async fn summary(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let summary = blocking(move || engine.with_hub(|hub| Summary::compute(hub.store()))).await??;
    Ok(Json(summary.to_json()))
}

pub async fn systems(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "erp": state.engine.describe_erp() }))
}

fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_parameter",
            format!("id: '{raw}' is not a {what} id"),
        )
    })
}

pub async fn transaction(
    State(state): State<AppState>,
    Path(correlation_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let lookup = correlation_id.clone();
    let trail = blocking(move || engine.with_hub(|hub| hub.store().trail(&lookup))).await??;
    if trail.events.is_empty() && trail.lines.is_empty() && trail.cases.is_empty() {
        return Err(ApiError::not_found(format!(
            "no transaction has correlation id {correlation_id}"
        )));
    }
    let mut steps: Vec<(String, Value)> = Vec::new();
    for e in &trail.events {
        steps.push((
            e.received_at.clone(),
            json!({ "at": e.received_at, "step": "received", "system": e.source,
            "detail": format!("{} {} (seq {})", e.event_type, e.event_id, e.seq) }),
        ));
    }
    for c in &trail.cases {
        steps.push((
            c.created_at.clone(),
            json!({ "at": c.created_at, "step": "exception opened", "system": "pshub",
            "detail": format!("case {} {} for {}: {}", c.id, c.kind, c.owner.as_str(), c.reason) }),
        ));
    }
    for l in &trail.lines {
        steps.push((
            l.created_at.clone(),
            json!({ "at": l.created_at, "step": "line created", "system": "pshub",
            "detail": format!("line {} {} {} {}", l.id, l.kind.as_str(), l.amount, l.currency) }),
        ));
        if let Some(at) = &l.posted_at {
            steps.push((
                at.clone(),
                json!({ "at": at, "step": "posted", "system": "erp",
                "detail": format!("line {} as {}", l.id, l.erp_id.as_deref().unwrap_or("?")) }),
            ));
        }
    }
    for s in &trail.steps {
        steps.push((
            s.at.clone(),
            json!({ "at": s.at, "step": s.step, "system": "pshub", "detail": s.detail }),
        ));
    }
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    let outcome = if trail.cases.iter().any(|c| c.state.is_open()) {
        "held"
    } else if trail.outbox.iter().any(|o| o.state == OutboxState::Dead) {
        "dead_lettered"
    } else if trail.lines.iter().any(|l| l.status != LineStatus::Posted)
        || trail.outbox.iter().any(|o| o.state == OutboxState::Pending)
    {
        "in_progress"
    } else {
        "completed"
    };
    Ok(Json(json!({
        "correlation_id": correlation_id,
        "outcome": outcome,
        "steps": steps.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "deliveries": trail.outbox.iter().map(wire::outbox).collect::<Vec<_>>(),
        "lines": trail.lines.iter().map(wire::line).collect::<Vec<_>>(),
        "exceptions": trail.cases.iter().map(wire::case).collect::<Vec<_>>(),
    })))
}

pub async fn dead_letters(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page()?;
    let engine = state.engine.clone();
    let rows =
        blocking(move || engine.with_hub(|hub| hub.store().outbox_list(OutboxState::Dead, page)))
            .await??;
    Ok(Json(wire::page_of(&rows, page, |o| o.id, wire::outbox)))
}

pub async fn replay_dead_letter(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check(role.may_operate(), role, "replay dead letters")?;
    let id = parse_id(&id, "dead letter")?;
    let engine = state.engine.clone();
    blocking(move || engine.replay_dead_letter(id)).await??;
    Ok(Json(json!({ "id": id, "state": "pending" })))
}

pub async fn quarantine(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page()?;
    let engine = state.engine.clone();
    let rows =
        blocking(move || engine.with_hub(|hub| hub.store().quarantine_list(false, page))).await??;
    let mut answer = wire::page_of(&rows, page, |q| q.id, wire::quarantined);
    if role == Role::Viewer {
        wire::strip_pii(&mut answer);
    }
    Ok(Json(answer))
}

/// Replays a quarantined event: the corrected event in the body, or (empty body) the
/// stored one as it was.
pub async fn replay_quarantined(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check(role.may_operate(), role, "replay quarantined events")?;
    let id = parse_id(&id, "quarantine")?;
    let corrected: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}"))
        })?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "not_events",
                "the body must be the corrected event object, or empty",
            ));
        }
        Some(value)
    };
    let engine = state.engine.clone();
    let result = blocking(move || engine.replay_quarantined(id, corrected.as_ref())).await??;
    Ok(Json(
        json!({ "quarantine_id": id, "result": wire::ingest_result(&result) }),
    ))
}
