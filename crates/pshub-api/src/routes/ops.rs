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
use pshub_engine::store::{LineFilter, LineStatus, Outbound, OutboxState, Page};
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
    let summary = blocking(move || engine.read(|r| Summary::compute(r))).await??;
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
    let trail = blocking(move || engine.read(|r| r.trail(&lookup))).await??;
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
    } else if trail.outbox.iter().any(|o| o.state == OutboxState::Dead)
        || trail.lines.iter().any(|l| l.status == LineStatus::Failed)
    {
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

/// Dead letters: lines, then calls, that gave up after their retries; paged by their
/// names (`line-12`, `call-3`).
pub async fn dead_letters(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = PageQuery {
        limit: query.limit.clone(),
        cursor: None,
    }
    .page()?
    .limit;
    let after = match &query.cursor {
        None => Outbound::Line(0),
        Some(raw) => Outbound::parse(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("cursor: '{raw}' is not a cursor this API gave out"),
            )
        })?,
    };
    let engine = state.engine.clone();
    let items = blocking(move || {
        engine.read(|r| -> Result<Vec<(Outbound, Value)>, ApiError> {
            let mut items = Vec::new();
            if let Outbound::Line(after_line) = after {
                let filter = LineFilter {
                    status: Some(LineStatus::Failed),
                    ..LineFilter::default()
                };
                for line in r.lines(
                    &filter,
                    Page {
                        after: after_line,
                        limit,
                    },
                )? {
                    items.push((Outbound::Line(line.id), wire::dead_line(&line)));
                }
            }
            let after_call = match after {
                Outbound::Call(id) => id,
                Outbound::Line(_) => 0,
            };
            let room = limit.saturating_sub(items.len() as u32);
            if room > 0 {
                for item in r.outbox_list(
                    OutboxState::Dead,
                    Page {
                        after: after_call,
                        limit: room,
                    },
                )? {
                    items.push((Outbound::Call(item.id), wire::outbox(&item)));
                }
            }
            Ok(items)
        })
    })
    .await??;
    let next = (items.len() as u32 >= limit)
        .then(|| items.last().map(|(id, _)| id.to_string()))
        .flatten();
    Ok(Json(
        json!({ "items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), "next": next }),
    ))
}

pub async fn replay_dead_letter(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check(role.may_operate(), role, "replay dead letters")?;
    let target = Outbound::parse(&id).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_parameter",
            format!("id: '{id}' is not a dead letter id (line-N or call-N)"),
        )
    })?;
    let engine = state.engine.clone();
    blocking(move || engine.replay_dead_letter(target)).await??;
    Ok(Json(
        json!({ "id": target.to_string(), "state": "pending" }),
    ))
}

pub async fn quarantine(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page()?;
    let engine = state.engine.clone();
    let rows = blocking(move || engine.read(|r| r.quarantine_list(false, page))).await??;
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
