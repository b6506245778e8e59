//! Cut-over in waves: `POST /v1/config/reload` takes the configuration file's routes and
//! legal entities without a restart; `GET /v1/reports/shadow?route=&period=` compares the
//! two ERPs of a route in shadow mode; `GET /v1/reports/onboarding` gives each legal entity
//! added by a reload its `entity_onboarding_seconds`.

use crate::auth::{Caller, check};
use crate::error::ApiError;
use crate::{AppState, blocking};
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

pub async fn reload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    check(
        caller.role.may_operate(),
        caller.role,
        "reload the configuration",
    )?;
    let engine = state.engine.clone();
    let reloaded = blocking(move || engine.reload_configured()).await??;
    Ok(Json(reloaded.to_json()))
}

#[derive(Debug, Deserialize)]
pub struct ShadowQuery {
    route: Option<String>,
    period: Option<String>,
}

pub async fn shadow(
    State(state): State<AppState>,
    Query(query): Query<ShadowQuery>,
) -> Result<Json<Value>, ApiError> {
    let Some(route) = query.route.filter(|r| !r.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "route: is required (the name of a [[routes]] entry in shadow mode)",
        ));
    };
    if let Some(period) = &query.period {
        pshub_engine::payroll::check_period(period)
            .map_err(|e| ApiError::bad_request("invalid_parameter", e))?;
    }
    let engine = state.engine.clone();
    let report = blocking(move || engine.shadow_report(&route, query.period.as_deref())).await??;
    Ok(Json(report.to_json()))
}

pub async fn onboarding(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let entities = blocking(move || engine.onboarding()).await??;
    Ok(Json(json!({
        "items": entities.iter().map(|o| o.to_json()).collect::<Vec<_>>(),
    })))
}
