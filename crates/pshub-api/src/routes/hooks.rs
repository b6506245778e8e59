//! `POST /v1/hooks/{source}`: the inbound webhook connector. A source's request proves its
//! sender by its signature (HMAC-SHA256 over the raw body, or Stripe's scheme), not by a
//! bearer token. A request that does not verify is refused with 401 and kept, unverified,
//! in the quarantine; one that does is mapped (`hooks::receive`) and goes to the engine as
//! any event does.

use crate::error::ApiError;
use crate::routes::events::{results_response, submit};
use crate::{AppState, wire};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pshub_engine::hooks::{self, KEPT_HEADERS, Received};
use pshub_engine::rest_poll::ChangeEvent;
use serde_json::json;
use std::collections::BTreeMap;

/// Largest webhook body accepted (413 above): a vendor's event is kilobytes.
pub const MAX_HOOK_BYTES: usize = 1024 * 1024;

pub async fn post_hook(
    State(state): State<AppState>,
    Path(source): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let config = engine.config();
    let Some(inbound) = config.inbound.get(&source) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_hook",
            format!(
                "no webhook source '{source}' is configured ([sources.{source}] connector = \"webhook\")"
            ),
        ));
    };
    let body = body.map_err(|rejection| {
        ApiError::new(rejection.status(), "unreadable_body", rejection.body_text())
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let kept: BTreeMap<String, String> = KEPT_HEADERS
        .iter()
        .filter_map(|name| Some((name.to_string(), header(name)?.to_string())))
        .collect();
    let text = String::from_utf8_lossy(&body).into_owned();
    let now = chrono::Utc::now().timestamp();
    if let Err(why) = inbound.verify(&body, header, now) {
        tracing::warn!(source = %source, reason = %why, "webhook refused: signature");
        let kept_as = submit(
            &engine,
            vec![hooks::unverified(&source, &kept, &text, &why)],
        )
        .await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            format!(
                "{why}; the request is kept for inspection (GET /v1/quarantine) and is never applied"
            ),
        )
        .with_detail(json!({ "kept": kept_as.first().map(wire::ingest_result) })));
    }
    if let Some(poll) = &inbound.wakes {
        return wake(&engine, &source, poll, &inbound.wake_on, &text);
    }
    let version = header(hooks::SCHEMA_VERSION_HEADER)
        .or(query.get("schema_version").map(String::as_str))
        .map(|v| {
            v.parse::<u32>().ok().filter(|&v| v > 0).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_schema_version",
                    format!("schema_version: '{v}' is not a mapping version (1, 2, ...)"),
                )
            })
        })
        .transpose()?;
    let mappings = inbound.mappings_for(version);
    let incoming = match hooks::receive(&source, &mappings, &kept, &text, config) {
        Received::Event(incoming) => incoming,
        Received::NotTaken(why) => {
            tracing::debug!(source = %source, reason = %why, "webhook record not for its mapping");
            return Ok(
                Json(json!({ "results": [{ "status": "ignored", "reason": why }] }))
                    .into_response(),
            );
        }
    };
    Ok(results_response(&submit(&engine, vec![incoming]).await?))
}

/// A verified change event for a source that wakes a poller: answered 202 with what the
/// event says changed, and the poller reads its window now. A body that is no change event
/// is refused (400); a change of another entity is answered `ignored`.
fn wake(
    engine: &pshub_engine::Engine,
    source: &str,
    poll: &str,
    wake_on: &[String],
    text: &str,
) -> Result<Response, ApiError> {
    let change = serde_json::from_str(text)
        .ok()
        .and_then(|body| ChangeEvent::parse(&body))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "not_a_change_event",
                "the body is no change event: it has no ChangeEventHeader with entityName and changeType (itself, under payload, or under data.payload)",
            )
        })?;
    let what = json!({ "entity": change.entity, "change_type": change.change_type,
                       "record_ids": change.record_ids, "changed_fields": change.changed_fields,
                       "commit_timestamp": change.commit_timestamp });
    if !wake_on.is_empty() && !wake_on.contains(&change.entity) {
        engine.metrics().connector_event(source, "change_ignored");
        return Ok(Json(json!({ "status": "ignored", "reason": format!("{source} wakes {poll} on {} only", wake_on.join(", ")), "change": what })).into_response());
    }
    tracing::info!(source, poll, entity = %change.entity, change_type = %change.change_type, records = change.record_ids.len(), "change event: waking the poller");
    engine.metrics().connector_event(source, "change_woke");
    engine.waker(poll).wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "woke", "poll": poll, "change": what })),
    )
        .into_response())
}
