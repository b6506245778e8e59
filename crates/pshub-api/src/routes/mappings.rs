//! `POST /v1/mappings/replay`: a source's kept payloads mapped again under another version
//! of their mappings (`pshub_engine::mapping_replay`), as a dry run or for real.

use crate::auth::{Caller, check};
use crate::error::ApiError;
use crate::{AppState, blocking};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use pshub_engine::mapping_replay::{ReplayRequest, parse_since};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    source: String,
    from: u32,
    to: u32,
    /// A date (`2026-11-01`, from its midnight UTC) or an RFC 3339 instant.
    since: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub async fn replay(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check(
        caller.role.may_operate(),
        caller.role,
        "replay payloads under another mapping version",
    )?;
    let body: ReplayBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("the replay request does not read: {e}"),
        )
    })?;
    if body.from == 0 || body.to == 0 {
        return Err(ApiError::bad_request(
            "invalid_body",
            "from and to are mapping versions: 1, 2, ...",
        ));
    }
    let since = body
        .since
        .as_deref()
        .map(parse_since)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_body", e))?;
    let request = ReplayRequest {
        source: body.source,
        from: body.from,
        to: body.to,
        since,
        dry_run: body.dry_run,
        actor: Some(caller.actor().name),
    };
    tracing::info!(actor = ?request.actor, source = %request.source, from = request.from,
        to = request.to, dry_run = request.dry_run, "mapping replay requested");
    let engine = state.engine.clone();
    let report = blocking(move || engine.replay_mapping(&request)).await??;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}
