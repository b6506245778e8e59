//! `GET /v1/workers` and `GET /v1/workers/{worker_id}`: the worker master as the HRIS's
//! changes made it, with its history. Personal fields (`name`, `email`) are read from the
//! latest change that carried them, and shown to admin, hr and auditor only.

use crate::auth::Role;
use crate::error::ApiError;
use crate::wire::{PageQuery, page_of, positions};
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use pshub_engine::hub::parse_stored;
use pshub_engine::world::{WorkerOnDate, World};
use pshub_model::EventData;
use pshub_model::records::WorkerChangeKind;
use serde_json::{Value, json};

fn kind_name(kind: WorkerChangeKind) -> &'static str {
    match kind {
        WorkerChangeKind::Hired => "worker.hired",
        WorkerChangeKind::Transferred => "worker.transferred",
        WorkerChangeKind::LeaveStarted => "worker.leave_started",
        WorkerChangeKind::LeaveEnded => "worker.leave_ended",
        WorkerChangeKind::Terminated => "worker.terminated",
    }
}

fn attributes(state: &WorkerOnDate<'_>) -> Value {
    json!({
        "legal_entity": state.legal_entity, "region": state.region, "role": state.role,
        "grade": state.grade, "cost_center": state.cost_center,
    })
}

/// A worker as the world knows them, without personal fields.
fn worker(world: &World, id: &str) -> Option<(Value, Option<i64>)> {
    let history = world.worker_history(id)?;
    let entries: Vec<Value> = history
        .iter()
        .map(|h| {
            let mut entry = attributes(&h.state);
            entry["event_type"] = json!(kind_name(h.kind));
            entry["state"] = json!(h.state.status);
            entry["effective_date"] = json!(h.effective_date.to_string());
            entry
        })
        .collect();
    let today = chrono::Utc::now().date_naive();
    let now = world.worker_on(&pshub_model::WorkerId::parse(id).ok()?, today)?;
    let latest = history.last().map(|h| h.state.clone())?;
    let mut answer = attributes(&latest);
    answer["worker_id"] = json!(id);
    answer["status"] = json!(now.status);
    answer["status_since"] = json!(now.status_since.map(|d| d.to_string()));
    answer["history"] = Value::Array(entries);
    answer["assignments"] = world
        .assignments_of_worker(id)
        .iter()
        .map(|a| json!({ "assignment_id": a.assignment_id, "project_code": a.project_code, "state": a.state,
            "version": a.version, "start": a.start.to_string(), "end": a.end.to_string(), "hours": a.hours.to_string() }))
        .collect();
    Some((answer, world.personal_seq(id)))
}

/// Adds `name` and `email` from the stored event, or null for a role that may not see them.
pub(crate) fn with_personal(
    engine: &pshub_engine::Engine,
    mut answer: Value,
    seq: Option<i64>,
    role: Role,
) -> Result<Value, ApiError> {
    let (mut name, mut email) = (Value::Null, Value::Null);
    if role.may_see_personal_data()
        && let Some(seq) = seq
        && let Some(row) = engine.read(|r| r.event(seq))?
        && let Ok(EventData::Worker(change)) = parse_stored(&row)
    {
        name = json!(change.name);
        email = json!(change.email);
    }
    answer["name"] = name;
    answer["email"] = email;
    Ok(answer)
}

pub async fn get_one(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path(worker_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let answer = blocking(move || {
        let found = engine.with_hub(|hub| worker(hub.world(), &worker_id));
        let (answer, seq) = found.ok_or_else(|| {
            ApiError::not_found(format!("no worker {worker_id} is known to the hub"))
        })?;
        with_personal(&engine, answer, seq, role)
    })
    .await??;
    Ok(Json(answer))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page()?;
    let engine = state.engine.clone();
    let answer = blocking(move || {
        let rows = engine.with_hub(|hub| {
            let world = hub.world();
            positions(world.worker_ids().into_iter(), page)
                .into_iter()
                .filter_map(|(n, id)| Some((n, worker(world, id)?)))
                .collect::<Vec<_>>()
        });
        let mut items = Vec::with_capacity(rows.len());
        for (n, (answer, seq)) in rows {
            items.push((n, with_personal(&engine, answer, seq, role)?));
        }
        Ok::<_, ApiError>(page_of(&items, page, |r| r.0, |r| r.1.clone()))
    })
    .await??;
    Ok(Json(answer))
}
