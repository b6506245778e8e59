//! `POST /v1/events` and `GET /v1/events/{source}/{id}`.

use crate::auth::{Role, check};
use crate::error::ApiError;
use crate::logging::CorrelationId;
use crate::{AppState, MAX_BODY_BYTES, MAX_EVENTS_PER_REQUEST, blocking, wire};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pshub_engine::Incoming;
use pshub_engine::hub::parse_stored;
use pshub_engine::store::{CaseFilter, LineFilter, Page, StepState, StoreReader};
use pshub_model::EventType;
use pshub_model::records::ExceptionState;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Events up to this many are parsed on the request's own task; more go to the blocking pool.
const PARSE_INLINE: usize = 64;

/// Reads the body as one event or an array of events, each kept as the text it arrived in.
/// Whatever else is refused whole.
fn events_of(body: Result<Bytes, BytesRejection>) -> Result<Vec<String>, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is larger than {MAX_BODY_BYTES} bytes; send at most {MAX_EVENTS_PER_REQUEST} events per request"))
        } else {
            ApiError::bad_request("unreadable_body", rejection.body_text())
        }
    })?;
    let not_json = |e: serde_json::Error| {
        ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}"))
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let events: Vec<String> = match first {
        Some(b'{') => {
            let raw: &RawValue = serde_json::from_slice(&bytes).map_err(not_json)?;
            vec![raw.get().to_string()]
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(&bytes).map_err(not_json)?;
            if items.len() > MAX_EVENTS_PER_REQUEST {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_many_events",
                    format!(
                        "{} events in one request; at most {MAX_EVENTS_PER_REQUEST} are accepted",
                        items.len()
                    ),
                ));
            }
            if let Some(position) = items.iter().position(|e| !e.get().starts_with('{')) {
                return Err(ApiError::bad_request(
                    "not_events",
                    format!("element {position} of the array is not an event object"),
                ));
            }
            items.into_iter().map(|raw| raw.get().to_string()).collect()
        }
        _ => {
            serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(not_json)?;
            return Err(ApiError::bad_request(
                "not_events",
                "the body must be an event object or an array of event objects",
            ));
        }
    };
    Ok(events)
}

pub async fn post_events(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check(role.may_operate(), role, "send events")?;
    let texts = events_of(body)?;
    let engine = state.engine.clone();
    let parse = move |texts: Vec<String>, engine: &pshub_engine::Engine| -> Vec<Incoming> {
        texts
            .into_iter()
            .map(|raw| Incoming::parse(raw, engine.config()))
            .collect()
    };
    let incoming = if texts.len() <= PARSE_INLINE {
        parse(texts, &engine)
    } else {
        let engine = engine.clone();
        blocking(move || parse(texts, &engine)).await?
    };
    Ok(results_response(&submit(&engine, incoming).await?))
}

/// `{"results": [...]}`, one per event, logged under the first event's correlation id.
pub fn results_response(results: &[pshub_engine::IngestResult]) -> Response {
    let correlation = results
        .first()
        .and_then(|r| r.correlation_id.clone())
        .unwrap_or_default();
    let mut response =
        Json(json!({ "results": results.iter().map(wire::ingest_result).collect::<Vec<_>>() }))
            .into_response();
    response.extensions_mut().insert(CorrelationId(correlation));
    response
}

/// Hands parsed events to the engine's writer and waits until they are durable.
pub async fn submit(
    engine: &pshub_engine::Engine,
    incoming: Vec<Incoming>,
) -> Result<Vec<pshub_engine::IngestResult>, ApiError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    engine.submit_parsed(
        incoming,
        Box::new(move |result| {
            let _ = reply.send(result);
        }),
    );
    Ok(answer
        .await
        .map_err(|_| ApiError::unavailable("the writer stopped; nothing was recorded, retry"))??)
}

pub async fn get_event(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path((source, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let mut answer = blocking(move || engine.read(|r| event_status(r, &source, &id))).await??;
    if role == Role::Viewer {
        wire::strip_pii(&mut answer);
    }
    Ok(Json(answer))
}

/// Whether a waiting step waits, through the steps it waits on, for one that failed or is held.
fn blocked(store: &mut dyn StoreReader, mut waits_on: Option<i64>) -> Result<bool, ApiError> {
    for _ in 0..64 {
        let Some(id) = waits_on else { return Ok(false) };
        let Some(step) = store.step(id)? else {
            return Ok(false);
        };
        match step.state {
            StepState::Failed | StepState::Held => return Ok(true),
            StepState::Waiting => waits_on = step.waits_on,
            _ => return Ok(false),
        }
    }
    Ok(false)
}

fn event_status(store: &mut dyn StoreReader, source: &str, id: &str) -> Result<Value, ApiError> {
    let Some(event) = store.event_by_key(source, id)? else {
        let quarantined = store.quarantine_of_event(source, id)?;
        if quarantined.is_empty() {
            return Err(ApiError::not_found(format!(
                "no event {id} from {source} was received"
            )));
        }
        return Ok(json!({
            "source": source, "id": id, "status": "quarantined",
            "correlation_id": Value::Null,
            "quarantine": quarantined.iter().map(wire::quarantined).collect::<Vec<_>>(),
            "lines": [], "exceptions": [],
        }));
    };
    let lines = store.lines(
        &LineFilter {
            event_seq: Some(event.seq),
            ..LineFilter::default()
        },
        Page::ALL,
    )?;
    let steps = store.steps_of_event(event.seq)?;
    let cases = store.cases(
        &CaseFilter {
            event_seq: Some(event.seq),
            ..CaseFilter::default()
        },
        Page::ALL,
    )?;
    let conflicts = store.conflicts_of(event.seq)?;
    let event_type = EventType::parse(&event.event_type);
    let acted_on = event_type.is_some_and(|t| pshub_engine::flows::for_type(t).is_some());
    let data = parse_stored(&event).ok();
    // Reference data is applied once it has its place in the reference order.
    let reference = event.ref_version.is_some();
    let mut is_blocked = false;
    for step in steps.iter().filter(|s| s.state == StepState::Waiting) {
        if blocked(store, step.waits_on)? {
            is_blocked = true;
            break;
        }
    }
    // Notices hold nothing (a conflict case is about a later body, not about the event).
    let holding = cases
        .iter()
        .any(|c| c.state.is_open() && !pshub_engine::flows::NOTICES.contains(&c.kind.as_str()));
    let dropped = cases.iter().any(|c| {
        c.kind == pshub_engine::hub::NOT_SYSTEM_OF_RECORD && c.state == ExceptionState::Dismissed
    });
    let status = if holding {
        "held"
    } else if dropped {
        "dropped"
    } else if is_blocked {
        "blocked"
    } else if steps.iter().any(|s| s.state != StepState::Done) {
        "pending"
    } else if !acted_on && !reference {
        "recorded"
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
        "business_key": data.as_ref().map(|d| d.business_key()),
        "data": wire::json_of(&event.data),
        "raw": wire::json_of(&event.raw),
        "lines": lines.iter().map(wire::line).collect::<Vec<_>>(),
        "steps": steps.iter().map(wire::step).collect::<Vec<_>>(),
        "deliveries": steps.iter().filter(|s| s.flow != pshub_engine::flows::time_to_bill::NAME)
            .map(wire::step).collect::<Vec<_>>(),
        "exceptions": cases.iter().map(wire::case).collect::<Vec<_>>(),
        "conflicts": conflicts.iter().map(|c| json!({ "id": c.id, "received_at": c.received_at, "type": c.event_type,
            "data": wire::json_of(&c.data), "case_id": c.case_id })).collect::<Vec<_>>(),
    }))
}
