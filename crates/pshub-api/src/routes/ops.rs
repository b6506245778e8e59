//! Operations: transaction timelines, dead letters, quarantine, conflicts, the outbound
//! stream, summary, systems, health, metrics.

use crate::auth::{Caller, Role, check};
use crate::error::ApiError;
use crate::logging::CorrelationId;
use crate::routes::exceptions::{NoteQuery, note_of};
use crate::wire::{self, PageQuery};
use crate::{AppState, blocking};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pshub_engine::Acting;
use pshub_engine::flows::time_to_bill;
use pshub_engine::store::{Outbound, StepState};
use pshub_engine::summary::Summary;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// 200 when the store answers and the workers run; 503 with the reason otherwise.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let engine = state.engine.clone();
    match blocking(move || engine.health()).await {
        Ok(Ok(())) => Json(json!({ "status": "ok" })).into_response(),
        Ok(Err(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.engine.render_metrics(),
    )
}

pub async fn summary(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let (summary, onboarding) = blocking(move || {
        let summary = engine.read(|r| Summary::compute(r))?;
        Ok::<_, pshub_engine::EngineError>((summary, engine.onboarding()?))
    })
    .await??;
    let mut answer = summary.to_json();
    // The KPI of each legal entity a reload added: from the change to its first posted line.
    answer["entity_onboarding_seconds"] = onboarding
        .iter()
        .map(|o| (o.legal_entity.clone(), json!(o.seconds())))
        .collect::<serde_json::Map<_, _>>()
        .into();
    Ok(Json(answer))
}

pub async fn systems(State(state): State<AppState>) -> Json<Value> {
    Json(state.engine.systems())
}

pub async fn catalog(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "systems": state.engine.catalog() }))
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
) -> Result<Response, ApiError> {
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
        // A record mapped again under another mapping version says what it replays.
        if let Some(Ok(origin)) = pshub_engine::hooks::Origin::of_stored(&e.raw)
            && let Some(of) = origin.replay_of()
        {
            steps.push((
                e.received_at.clone(),
                json!({ "at": e.received_at, "step": "remapped", "system": e.source,
                "actor": of["by"],
                "detail": format!("{} mapped again by {} (was {}, seq {})", of["event_id"].as_str().unwrap_or("?"),
                    origin.mapping.as_deref().unwrap_or("?"), of["mapping"].as_str().unwrap_or("?"), of["seq"]) }),
            ));
        }
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
            l.line.created_at.clone(),
            json!({ "at": l.line.created_at, "step": "line created", "system": "pshub",
            "detail": format!("line {} {} {} {}", l.line.id, l.line.kind.as_str(), l.line.amount, l.line.currency) }),
        ));
    }
    for s in &trail.steps {
        if let Some(at) = &s.done_at {
            let what = if s.flow == time_to_bill::NAME {
                "posted"
            } else {
                "step done"
            };
            steps.push((
                at.clone(),
                json!({ "at": at, "step": what, "system": s.system, "operation": s.qualified_name(),
                    "attempts": s.attempts, "result": s.result,
                    "detail": format!("{} as {}", s.qualified_name(), s.result.as_deref().unwrap_or("?")) }),
            ));
        }
    }
    let systems: HashMap<i64, &str> = trail
        .steps
        .iter()
        .map(|s| (s.id, s.system.as_str()))
        .collect();
    for t in &trail.timeline {
        let system = t
            .step_id
            .and_then(|id| systems.get(&id).copied())
            .unwrap_or("pshub");
        let mut entry = json!({ "at": t.at, "step": t.what, "system": system, "detail": t.detail });
        if let Some(actor) = &t.actor {
            entry["actor"] = wire::json_of(actor);
        }
        steps.push((t.at.clone(), entry));
    }
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    let outcome = if trail.cases.iter().any(|c| c.state.is_open()) {
        "held"
    } else if trail.steps.iter().any(|s| s.state == StepState::Failed) {
        "dead_lettered"
    } else if trail.steps.iter().any(|s| s.state != StepState::Done) {
        "in_progress"
    } else {
        "completed"
    };
    let mut response = Json(json!({
        "correlation_id": correlation_id,
        "outcome": outcome,
        "steps": steps.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "flow_steps": trail.steps.iter().map(wire::step).collect::<Vec<_>>(),
        "deliveries": trail.steps.iter().filter(|s| s.flow != time_to_bill::NAME).map(wire::step).collect::<Vec<_>>(),
        "lines": trail.lines.iter().map(wire::line).collect::<Vec<_>>(),
        "exceptions": trail.cases.iter().map(wire::case).collect::<Vec<_>>(),
    }))
    .into_response();
    response
        .extensions_mut()
        .insert(CorrelationId(correlation_id));
    Ok(response)
}

/// Dead letters: steps that gave up after their retries, oldest first.
pub async fn dead_letters(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page()?;
    let engine = state.engine.clone();
    let items = blocking(move || {
        engine.read(|r| -> Result<(Vec<Value>, Option<String>), ApiError> {
            let dead = r.steps_in_state(StepState::Failed, page)?;
            let line_ids: Vec<i64> = dead
                .iter()
                .filter(|s| s.flow == time_to_bill::NAME)
                .map(|s| s.subject)
                .collect();
            let lines: HashMap<i64, _> = r
                .lines_by_ids(&line_ids)?
                .into_iter()
                .map(|l| (l.step_id, l))
                .collect();
            let next = (dead.len() as u32 >= page.limit)
                .then(|| dead.last().map(|s| s.id.to_string()))
                .flatten();
            let items = dead
                .iter()
                .map(|s| wire::dead_letter(s, lines.get(&s.id)))
                .collect();
            Ok((items, next))
        })
    })
    .await??;
    Ok(Json(json!({ "items": items.0, "next": items.1 })))
}

pub async fn replay_dead_letter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<NoteQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check(
        caller.role.may_operate(),
        caller.role,
        "replay dead letters",
    )?;
    let target = Outbound::parse(&id).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_parameter",
            format!("id: '{id}' is not a dead letter id (line-N or call-N)"),
        )
    })?;
    let acting = Acting {
        actor: caller.actor(),
        note: note_of(&query, &body)?,
    };
    let engine = state.engine.clone();
    blocking(move || engine.replay_dead_letter(target, &acting)).await??;
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
/// stored one as it was. A note goes in `?note=`.
pub async fn replay_quarantined(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<NoteQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check(
        caller.role.may_operate(),
        caller.role,
        "replay quarantined events",
    )?;
    let id = parse_id(&id, "quarantine")?;
    let corrected: Option<String> = if body.iter().all(u8::is_ascii_whitespace) {
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
        Some(String::from_utf8_lossy(&body).trim().to_string())
    };
    let acting = Acting {
        actor: caller.actor(),
        note: query.note.clone(),
    };
    let engine = state.engine.clone();
    let result = blocking(move || engine.replay_quarantined(id, corrected, &acting)).await??;
    Ok(Json(
        json!({ "quarantine_id": id, "result": wire::ingest_result(&result) }),
    ))
}

/// Bodies received under an event's id that differ from the first: kept, not applied.
pub async fn conflicts(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page()?;
    let engine = state.engine.clone();
    let rows = blocking(move || engine.read(|r| r.conflicts(page))).await??;
    let mut answer = wire::page_of(&rows, page, |c| c.id, wire::conflict);
    if role == Role::Viewer {
        wire::strip_pii(&mut answer);
    }
    Ok(Json(answer))
}

#[derive(Debug, Deserialize)]
pub struct OutboundQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// The downstream target reading: its `[masking]` policy applies.
    target: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// The hub's outbound stream of business events, in order.
pub async fn outbound(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Query(query): Query<OutboundQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page.page()?;
    let engine = state.engine.clone();
    let event_type = query.event_type;
    let config = state.engine.config();
    let policy = match &query.target {
        None => None,
        Some(target) => {
            // The bus is a target of its own: its readers get `[masking.bus]`.
            let known = config.masking.contains_key(target)
                || config.knows_source(target)
                || state.engine.port(target).is_some()
                || config.amqp_targets.contains_key(target)
                || config.pg_table_targets.contains_key(target)
                || (config.bus.is_some() && target == "bus");
            if !known {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("target: '{target}' is no configured system or [masking] target"),
                ));
            }
            Some(config.masking.get(target).cloned().unwrap_or_default())
        }
    };
    let mut answer = blocking(move || {
        engine.read(|r| -> Result<Value, ApiError> {
            let rows = r.outbound(event_type.as_deref(), page)?;
            let mut answer = wire::page_of(&rows, page, |o| o.id, wire::outbound);
            answer["items"] = Value::Array(wire::outbound_events(r, &rows, policy.as_ref())?);
            Ok(answer)
        })
    })
    .await??;
    if role == Role::Viewer {
        wire::strip_pii(&mut answer);
    }
    Ok(Json(answer))
}
