//! `GET /v1/sandbox/{system}/{collection}` and `/v1/sandbox/stats`: what the sandbox systems hold, with the answers
//! of the sandbox's own inspection routes, wherever the sandbox runs. Admin and auditor only.

use crate::auth::{Role, check};
use crate::error::ApiError;
use crate::wire::PageQuery;
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde_json::Value;

fn refused((status, message): (u16, String)) -> ApiError {
    match status {
        400 => ApiError::bad_request("invalid_parameter", message),
        404 => ApiError::not_found(message),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "sandbox_unavailable", message),
    }
}

pub async fn collection(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path((system, collection)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    check(role.may_inspect_systems(), role, "read the sandbox systems")?;
    let Some(sandbox) = state.sandbox.clone() else {
        return Err(ApiError::not_found(
            "this hub is not connected to the sandbox systems",
        ));
    };
    let answer = blocking(move || {
        sandbox.page(
            &system,
            &collection,
            query.limit.as_deref(),
            query.cursor.as_deref(),
        )
    })
    .await?
    .map_err(refused)?;
    Ok(Json(answer))
}

/// `GET /v1/sandbox/stats`: per system, the creates it received and how many were repeats.
pub async fn stats(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
) -> Result<Json<Value>, ApiError> {
    check(role.may_inspect_systems(), role, "read the sandbox systems")?;
    let Some(sandbox) = state.sandbox.clone() else {
        return Err(ApiError::not_found(
            "this hub is not connected to the sandbox systems",
        ));
    };
    let answer = blocking(move || sandbox.stats()).await?.map_err(refused)?;
    Ok(Json(answer))
}
