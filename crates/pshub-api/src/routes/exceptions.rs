//! Exception cases: list, read, resolve, dismiss, acknowledge.

use crate::auth::{Caller, check};
use crate::error::ApiError;
use crate::wire::{self, PageQuery};
use crate::{AppState, blocking};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use pshub_engine::store::CaseFilter;
use pshub_engine::{Acting, Resolution};
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

/// The optional note of an action: `{"note": "..."}` in the body, or `?note=`.
#[derive(Debug, Deserialize)]
pub struct NoteQuery {
    pub note: Option<String>,
}

/// Reads the note an operator gave with an action, naming what is wrong with it.
pub fn note_of(query: &NoteQuery, body: &Bytes) -> Result<Option<String>, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}"))
        })?;
        match value.get("note") {
            None | Some(Value::Null) => None,
            Some(Value::String(note)) => Some(note.clone()),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    "note: must be a string",
                ));
            }
        }
    };
    let note = from_body.or_else(|| query.note.clone());
    if let Some(note) = &note
        && note.chars().count() > 2_000
    {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "note: at most 2000 characters",
        ));
    }
    Ok(note.filter(|n| !n.trim().is_empty()))
}

type Action = fn(&pshub_engine::Engine, i64, &Acting) -> Result<Value, pshub_engine::ActionError>;

/// Runs an action on a case after checking that the caller's role owns it.
async fn act(
    state: AppState,
    caller: Caller,
    raw_id: String,
    note: Option<String>,
    verb: &'static str,
    action: Action,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw_id)?;
    let case = load(state.engine.clone(), id).await?;
    check(
        caller.role.may_act_for(case.owner.as_str()),
        caller.role,
        &format!("{verb} {} exceptions", case.owner.as_str()),
    )?;
    let acting = Acting {
        actor: caller.actor(),
        note,
    };
    let engine = state.engine.clone();
    let outcome = blocking(move || action(&engine, id, &acting)).await??;
    let case = load(state.engine.clone(), id).await?;
    Ok(Json(
        json!({ "exception": wire::case(&case), "outcome": outcome }),
    ))
}

pub async fn resolve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<NoteQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let note = note_of(&query, &body)?;
    act(state, caller, id, note, "resolve", |engine, id, acting| {
        Ok(match engine.resolve(id, acting)? {
            Resolution::Posted { line_id } => json!({ "result": "resumed", "line_id": line_id }),
            Resolution::Replayed { step_id } => json!({ "result": "replayed", "step_id": step_id }),
            Resolution::Closed => json!({ "result": "closed" }),
            Resolution::HandedOver { case_id, reason } => {
                json!({ "result": "handed_over", "exception_id": case_id, "reason": reason })
            }
        })
    })
    .await
}

pub async fn dismiss(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<NoteQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let note = note_of(&query, &body)?;
    act(state, caller, id, note, "dismiss", |engine, id, acting| {
        engine
            .dismiss(id, acting)
            .map(|()| json!({ "result": "dismissed" }))
    })
    .await
}

pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<NoteQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let note = note_of(&query, &body)?;
    act(
        state,
        caller,
        id,
        note,
        "acknowledge",
        |engine, id, acting| {
            engine
                .acknowledge(id, acting)
                .map(|()| json!({ "result": "acknowledged" }))
        },
    )
    .await
}
