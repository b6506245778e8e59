//! `POST /v1/events` and `GET /v1/events/{source}/{id}`.

use crate::auth::{Role, check};
use crate::error::ApiError;
use crate::{AppState, MAX_BODY_BYTES, MAX_EVENTS_PER_REQUEST, blocking, wire};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use pshub_engine::store::{CaseFilter, LineFilter, LineStatus, Operation, OutboxState, Page};
use serde_json::{Value, json};

/// Reads the body as one event or an array of events. Whatever else is refused whole.
fn events_of(body: Result<Bytes, BytesRejection>) -> Result<Vec<Value>, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is larger than {MAX_BODY_BYTES} bytes; send at most {MAX_EVENTS_PER_REQUEST} events per request"))
        } else {
            ApiError::bad_request("unreadable_body", rejection.body_text())
        }
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}")))?;
    let events = match value {
        Value::Object(_) => vec![value],
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::bad_request(
                "not_events",
                "the body must be an event object or an array of event objects",
            ));
        }
    };
    if events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!(
                "{} events in one request; at most {MAX_EVENTS_PER_REQUEST} are accepted",
                events.len()
            ),
        ));
    }
    if let Some(position) = events.iter().position(|e| !e.is_object()) {
        return Err(ApiError::bad_request(
            "not_events",
            format!("element {position} of the array is not an event object"),
        ));
    }
    Ok(events)
}

pub async fn post_events(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    check(role.may_operate(), role, "send events")?;
    let events = events_of(body)?;
    let engine = state.engine.clone();
    let results = blocking(move || engine.submit(events)).await??;
    Ok(Json(
        json!({ "results": results.iter().map(wire::ingest_result).collect::<Vec<_>>() }),
    ))
}

pub async fn get_event(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path((source, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut answer = event_status(state, source, id).await?;
    if role == Role::Viewer {
        wire::strip_pii(&mut answer);
    }
    Ok(Json(answer))
}

async fn event_status(state: AppState, source: String, id: String) -> Result<Value, ApiError> {
    let engine = state.engine.clone();
    blocking(move || {
        // The writer's index finds the event; the rest is read without waiting for it.
        let found = engine.with_hub(|hub| hub.store().find_event(&source, &id))?;
        engine.read(|store| -> Result<Value, ApiError> {
            let Some(event) = found else {
                let quarantined = store.quarantine_of_event(&source, &id)?;
                if quarantined.is_empty() {
                    return Err(ApiError::not_found(format!("no event {id} from {source} was received")));
                }
                return Ok(json!({
                    "source": source, "id": id, "status": "quarantined",
                    "correlation_id": Value::Null,
                    "quarantine": quarantined.iter().map(wire::quarantined).collect::<Vec<_>>(),
                    "lines": [], "exceptions": [],
                }));
            };
            let lines = store.lines(&LineFilter { event_seq: Some(event.seq), ..LineFilter::default() }, Page::ALL)?;
            let cases = store.cases(&CaseFilter { event_seq: Some(event.seq), ..CaseFilter::default() }, Page::ALL)?;
            let conflicts = store.conflicts_of(event.seq)?;
            // Calls the event itself caused (a project to provision), other than its lines.
            let calls: Vec<_> = store
                .trail(&event.correlation_id)?
                .outbox
                .into_iter()
                .filter(|o| o.operation == Operation::ProvisionProject && o.subject == event.seq)
                .collect();
            let status = if cases.iter().any(|c| c.state.is_open()) {
                "held"
            } else if lines.iter().any(|l| l.status != LineStatus::Posted)
                || calls.iter().any(|o| o.state != OutboxState::Delivered)
            {
                "pending"
            } else {
                "applied"
            };
            Ok(json!({
                "source": event.source,
                "id": event.event_id,
                "type": event.event_type,
                "seq": event.seq,
                "status": status,
                "correlation_id": event.correlation_id,
                "received_at": event.received_at,
                "business_key": event.business_key,
                "data": serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null),
                "lines": lines.iter().map(wire::line).collect::<Vec<_>>(),
                "deliveries": calls.iter().map(wire::outbox).collect::<Vec<_>>(),
                "exceptions": cases.iter().map(wire::case).collect::<Vec<_>>(),
                "conflicts": conflicts.iter().map(|c| json!({ "id": c.id, "received_at": c.received_at, "type": c.event_type,
                    "data": serde_json::from_str::<Value>(&c.data).unwrap_or(Value::Null) })).collect::<Vec<_>>(),
            }))
        })
    })
    .await?
}
