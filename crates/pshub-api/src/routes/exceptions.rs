//! Exception cases: list, read, resolve, dismiss, acknowledge.

use crate::auth::{Role, check};
use crate::error::ApiError;
use crate::wire::{self, PageQuery};
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use pshub_engine::hub::Resolution;
use pshub_engine::store::CaseFilter;
use pshub_model::records::{ExceptionState, OwnerTeam};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    owner: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<CaseQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page.page()?;
    let owner = wire::parse_param(
        "owner",
        &query.owner,
        OwnerTeam::parse,
        "integration, finance, pmo, hr",
    )?;
    let case_state = wire::parse_param(
        "state",
        &query.state,
        ExceptionState::parse,
        "open, acknowledged, resolved, dismissed",
    )?;
    let filter = CaseFilter {
        owner,
        state: case_state,
        kind: query.kind,
        ..CaseFilter::default()
    };
    let engine = state.engine.clone();
    let rows = blocking(move || engine.read(|r| r.cases(&filter, page))).await??;
    Ok(Json(wire::page_of(&rows, page, |c| c.id, wire::case)))
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_parameter",
            format!("id: '{raw}' is not an exception id"),
        )
    })
}

async fn load(
    engine: Arc<pshub_engine::Engine>,
    id: i64,
) -> Result<pshub_engine::store::CaseRow, ApiError> {
    blocking(move || engine.read(|r| r.case(id)))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("exception {id} was not found")))
}

pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let case = load(state.engine.clone(), parse_id(&id)?).await?;
    Ok(Json(wire::case(&case)))
}

/// Runs an action on a case after checking that the caller's role owns it.
async fn act(
    state: AppState,
    role: Role,
    raw_id: String,
    verb: &'static str,
    action: fn(&pshub_engine::Engine, i64) -> Result<Value, pshub_engine::ActionError>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw_id)?;
    let case = load(state.engine.clone(), id).await?;
    check(
        role.may_act_for(case.owner.as_str()),
        role,
        &format!("{verb} {} exceptions", case.owner.as_str()),
    )?;
    let engine = state.engine.clone();
    let outcome = blocking(move || action(&engine, id)).await??;
    let case = load(state.engine.clone(), id).await?;
    Ok(Json(
        json!({ "exception": wire::case(&case), "outcome": outcome }),
    ))
}

pub async fn resolve(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(state, role, id, "resolve", |engine, id| {
        Ok(match engine.resolve(id)? {
            Resolution::Posted { line_id } => json!({ "result": "resumed", "line_id": line_id }),
            Resolution::HandedOver { case_id, reason } => {
                json!({ "result": "handed_over", "exception_id": case_id, "reason": reason })
            }
        })
    })
    .await
}

pub async fn dismiss(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(state, role, id, "dismiss", |engine, id| {
        engine
            .dismiss(id)
            .map(|()| json!({ "result": "dismissed" }))
    })
    .await
}

pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    act(state, role, id, "acknowledge", |engine, id| {
        engine
            .acknowledge(id)
            .map(|()| json!({ "result": "acknowledged" }))
    })
    .await
}
