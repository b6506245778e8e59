//! The trusted resource view: `GET /v1/resources/{worker_id}` and
//! `GET /v1/resources?legal_entity=&region=`, each worker reconciled from the HRIS
//! (identity, employment), the PSA (availability) and the cost rates, with the month's
//! approved hours, capacity and utilization (`?month=YYYY-MM`, default this month), and the
//! fields two systems disagree on. Names and emails for admin, hr and auditor only.

use crate::auth::Role;
use crate::error::ApiError;
use crate::wire::{PageQuery, page_of, positions};
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use pshub_engine::flows::resources::view_json;
use pshub_engine::store::HoursFilter;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
pub struct ResourceQuery {
    #[serde(flatten)]
    page: PageQuery,
    legal_entity: Option<String>,
    region: Option<String>,
    month: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
}

/// The month asked for (default: this one) and its first and last day.
fn month_of(
    raw: Option<&str>,
) -> Result<(String, (chrono::NaiveDate, chrono::NaiveDate)), ApiError> {
    let month = match raw {
        Some(month) => month.to_string(),
        None => chrono::Utc::now().format("%Y-%m").to_string(),
    };
    let range = pshub_engine::costing::month_range(&month).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_parameter",
            format!("month: '{month}' is not a month (YYYY-MM)"),
        )
    })?;
    Ok((month, range))
}

/// The views of `workers` as JSON, without the month's hours.
fn views(
    engine: &pshub_engine::Engine,
    workers: &[String],
    month: &str,
    range: (chrono::NaiveDate, chrono::NaiveDate),
) -> Vec<Option<(Value, Option<i64>)>> {
    let today = chrono::Utc::now().date_naive();
    engine.with_hub(|hub| {
        let world = hub.world();
        workers
            .iter()
            .map(|w| {
                let view =
                    pshub_engine::resources::view(world, engine.config(), w, month, range, today)?;
                Some((view_json(&view), world.personal_seq(w)))
            })
            .collect()
    })
}

/// Adds the month's approved hours and utilization, and the personal fields the role may
/// see.
fn complete(
    engine: &pshub_engine::Engine,
    mut view: Value,
    seq: Option<i64>,
    role: Role,
    range: (chrono::NaiveDate, chrono::NaiveDate),
) -> Result<Value, ApiError> {
    let worker = view["worker_id"].as_str().unwrap_or_default().to_string();
    let hours: Decimal = engine
        .read(|r| {
            r.worked_hours(&HoursFilter {
                from: range.0,
                to: range.1,
                worker_id: Some(worker),
                project_code: None,
            })
        })?
        .iter()
        .fold(Decimal::ZERO, |sum, e| sum.saturating_add(e.work.hours));
    let capacity: Decimal = view["capacity_hours"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or_default();
    view["approved_hours"] = json!(hours.normalize().to_string());
    view["utilization_pct"] = if capacity.is_zero() {
        Value::Null
    } else {
        json!(
            (hours * Decimal::ONE_HUNDRED / capacity)
                .round_dp(2)
                .to_string()
        )
    };
    super::workers::with_personal(engine, view, seq, role)
}

pub async fn get_one(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Path(worker_id): Path<String>,
    Query(query): Query<MonthQuery>,
) -> Result<Json<Value>, ApiError> {
    let (month, range) = month_of(query.month.as_deref())?;
    let engine = state.engine.clone();
    let answer = blocking(move || {
        let found = views(&engine, std::slice::from_ref(&worker_id), &month, range)
            .pop()
            .flatten();
        let (view, seq) = found.ok_or_else(|| {
            ApiError::not_found(format!("no worker {worker_id} is known to the hub"))
        })?;
        complete(&engine, view, seq, role, range)
    })
    .await??;
    Ok(Json(answer))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(role): Extension<Role>,
    Query(query): Query<ResourceQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page.page()?;
    let (month, range) = month_of(query.month.as_deref())?;
    let engine = state.engine.clone();
    let answer = blocking(move || {
        let workers: Vec<String> = engine.with_hub(|hub| {
            let world = hub.world();
            world
                .worker_ids()
                .into_iter()
                .filter(|id| {
                    let Some(latest) = pshub_model::WorkerId::parse(id)
                        .ok()
                        .and_then(|w| world.worker_latest(&w))
                    else {
                        return false;
                    };
                    query
                        .legal_entity
                        .as_deref()
                        .is_none_or(|e| latest.legal_entity == Some(e))
                        && query
                            .region
                            .as_deref()
                            .is_none_or(|r| latest.region == Some(r))
                })
                .map(str::to_string)
                .collect()
        });
        let chosen: Vec<(i64, String)> = positions(workers.into_iter(), page);
        let ids: Vec<String> = chosen.iter().map(|(_, id)| id.clone()).collect();
        let found = views(&engine, &ids, &month, range);
        let mut items = Vec::with_capacity(found.len());
        for ((n, _), found) in chosen.iter().zip(found) {
            if let Some((view, seq)) = found {
                items.push((*n, complete(&engine, view, seq, role, range)?));
            }
        }
        Ok::<_, ApiError>(page_of(&items, page, |r| r.0, |r| r.1.clone()))
    })
    .await??;
    Ok(Json(answer))
}
